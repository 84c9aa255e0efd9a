"""
======================================
Finding flipped labels by memorization
======================================

A classifier that fits every training label must *memorize* the wrong ones:
a digit labelled "3" that looks like a "5" is predicted "3" only when it was
in the training data. Feldman's memorization score of a labelled sample,

    M_i = P(h(x_i) = y_i | i in training) - P(h(x_i) = y_i | i left out),

estimated over random subsamples (``response="correct"``,
``aggregate="mean"``), is then close to 1 for a wrong label and close to 0
for a typical one. This example flips a few percent of the labels of
scikit-learn's digits on purpose and checks how many of the flipped samples
the highest scores find (precision at k, k = the number flipped), against
the loss of the model trained on all the data, the usual "small-loss"
baseline.
"""

# %%
# Settings and the noisy labels
# -----------------------------
# ``SKLEARN_MEM_EXAMPLE_FAST=1`` shrinks the example for the test suite.
import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import ShuffleSplit

from sklearn_mem import MemorizationScorer
from sklearn_mem.plotting import (
    MemorizationHistogramDisplay,
    MemorizedSamplesDisplay,
)

FAST = os.environ.get("SKLEARN_MEM_EXAMPLE_FAST", "0") == "1"
N_SAMPLES = 600 if FAST else None  # None: all 1797 digits
N_SPLITS = 30 if FAST else 50  # random subsamples, 70% of the data each
N_TREES = 30 if FAST else 100
N_JOBS = 1 if FAST else 2
FLIP_RATE = 0.05

X, y = load_digits(return_X_y=True)
X, y = X[:N_SAMPLES] / 16, y[:N_SAMPLES]
rng = np.random.RandomState(0)
n_flip = int(round(FLIP_RATE * len(y)))
flipped = rng.choice(len(y), n_flip, replace=False)
y_noisy = y.copy()
# a different digit, uniformly among the nine others
y_noisy[flipped] = (y[flipped] + rng.randint(1, 10, n_flip)) % 10
is_flipped = np.zeros(len(y), dtype=bool)
is_flipped[flipped] = True
print(f"{len(y)} digits, {n_flip} labels flipped ({FLIP_RATE:.0%})")


def precision_at_k(score, k=n_flip):
    """Share of flipped samples among the k highest scores.

    Ties at the k-th score are shared out evenly (the expected precision of
    a random tie-break), so a constant score gets the flip rate, not the
    luck of the row order.
    """
    score = np.nan_to_num(score, nan=-np.inf)
    kth = np.sort(score)[::-1][k - 1]
    above, tied = score > kth, score == kth
    hits = is_flipped[above].sum() + (k - above.sum()) * is_flipped[tied].mean()
    return hits / k


# %%
# Memorization scores of a model that fits its training labels
# ------------------------------------------------------------
# Extremely randomized trees grown to pure leaves predict every training
# label, wrong ones included. ``ShuffleSplit`` gives Feldman and Zhang's
# subsampling design; ``estimator_`` is the model refit on all the data.
cv = ShuffleSplit(n_splits=N_SPLITS, train_size=0.7, random_state=0)


def memorization(clf):
    return MemorizationScorer(
        clf,
        cv=cv,
        response="correct",
        aggregate="mean",
        n_jobs=N_JOBS,
        random_state=0,
    ).fit(X, y_noisy)


def training_loss(mem):
    """Log-loss of the (noisy) label under the model trained on all data."""
    proba = mem.estimator_.predict_proba(X)
    column = np.searchsorted(mem.estimator_.classes_, y_noisy)
    return -np.log(np.clip(proba[np.arange(len(y)), column], 1e-12, None))


trees = memorization(ExtraTreesClassifier(N_TREES))
M = trees.memorization_scores_
print(
    "mean M: flipped "
    f"{M[is_flipped].mean():.2f}, clean {np.nanmean(M[~is_flipped]):.2f}"
)

# %%
# Precision at k
# --------------
# Three rankings of the samples, the highest first: the memorization score,
# the training loss (the model trained on all the data), and, for
# reference, the held-out error (``1 - out_loglik_``: how often the fits that
# left the sample out got its label wrong).
print(f"precision at k = {n_flip} (chance: {n_flip / len(y):.2f})")


def report(name, mem):
    row = {
        "memorization": precision_at_k(mem.memorization_scores_),
        "training loss": precision_at_k(training_loss(mem)),
        "held-out error": precision_at_k(1 - mem.out_loglik_),
    }
    print(f"  {name:20s}" + "".join(f"  {k} {v:.2f}" for k, v in row.items()))
    return row


report("extra trees", trees)

# %%
# The training loss is blind here: the trees fit every label, so every
# training sample has (nearly) zero loss and the ranking is no better than
# chance. The memorization score sees what the trees had to do to fit the
# wrong labels: they are right on them only when trained on them. Since the
# trees are right on *every* training sample, ``M_i`` is 1 minus the held-out
# accuracy, and the held-out error ranks the samples the same way.
#
# A model that cannot fit the wrong labels does not memorize them: a
# regularised logistic regression gets them wrong in *and* out, so their
# memorization score is near 0, and the training loss, no longer blind,
# finds them instead.
linear = memorization(LogisticRegression(C=1.0, max_iter=500))
report("logistic regression", linear)

# %%
# The distribution of the scores
# ------------------------------
# :class:`~sklearn_mem.plotting.MemorizationHistogramDisplay` of the trees'
# scores, the flipped samples' share of each bar overlaid.
disp = MemorizationHistogramDisplay.from_estimator(trees, bins=20)
disp.ax_.hist(
    M[is_flipped & ~np.isnan(M)],
    bins=disp.bin_edges_,
    color="C3",
    alpha=0.8,
    label=f"flipped labels ({n_flip})",
)
disp.ax_.legend(fontsize="small")
disp.ax_.set_yscale("log")
# with response="correct", M is a difference of accuracies, not nats
disp.ax_.set_xlabel("memorization score M (accuracy in - accuracy out)")
disp.ax_.set_title("Memorization scores of the extra trees")
plt.show()

# %%
# The most memorized digits
# -------------------------
# :class:`~sklearn_mem.plotting.MemorizedSamplesDisplay` shows the digits
# with the highest scores; each title gives the label the trees were trained
# on and the true one, red where the label was flipped.
disp = MemorizedSamplesDisplay.from_estimator(
    trees, X, image_shape=(8, 8), n_samples=10, which=("most",)
)
for cell, i in zip(disp.axes_[0], disp.indices_["most"]):
    flip = is_flipped[i]
    cell.set_title(
        f"{y_noisy[i]} (true {y[i]})\nM = {M[i]:.2f}",
        fontsize="small",
        color="C3" if flip else "k",
    )
disp.figure_.suptitle("Most memorized digits: trained label (true label)")
plt.show()
