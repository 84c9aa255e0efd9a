"""
=====================================
High-influence train/test digit pairs
=====================================

Feldman and Zhang's influence of a training sample ``i`` on a test sample
``z`` is how much more often the model classifies ``z`` correctly when ``i``
is in its training data:

    infl(i, z) = P(h(x_z) = y_z | i in training) - P(h(x_z) = y_z | i left out),

estimated from the same random subsamples as the memorization score
(:meth:`~sklearn_mem.MemorizationScorer.influence` with
``response="correct"``, ``aggregate="mean"``). Most test digits are
classified correctly whatever the subsample, so every influence on them is
0; a few atypical test digits are classified correctly only when one
particular training digit, usually a near twin, is present.
:class:`~sklearn_mem.plotting.InfluentialPairsDisplay` draws those pairs.
"""

# %%
# Settings, data and the scorer
# -----------------------------
# ``SKLEARN_MEM_EXAMPLE_FAST=1`` shrinks the example for the test suite.
import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import ShuffleSplit, train_test_split
from sklearn.svm import SVC

from sklearn_mem import MemorizationScorer
from sklearn_mem.plotting import InfluentialPairsDisplay

FAST = os.environ.get("SKLEARN_MEM_EXAMPLE_FAST", "0") == "1"
N_SAMPLES = 800 if FAST else None  # None: all 1797 digits
N_SPLITS = 40 if FAST else 200  # random subsamples, 70% of the data each
N_JOBS = 1 if FAST else 2

X, y = load_digits(return_X_y=True)
X, y = X[:N_SAMPLES] / 16, y[:N_SAMPLES]
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0
)

# ``keep_estimators=True`` keeps the classifier of every split, which
# ``influence`` scores on the test digits.
mem = MemorizationScorer(
    SVC(C=10, gamma=0.05),
    cv=ShuffleSplit(n_splits=N_SPLITS, train_size=0.7, random_state=0),
    response="correct",
    aggregate="mean",
    keep_estimators=True,
    n_jobs=N_JOBS,
    random_state=0,
).fit(X_train, y_train)
print(f"{len(X_train)} training and {len(X_test)} test digits, {N_SPLITS} fits")
print(
    f"test accuracy of the model refit on all training digits: "
    f"{mem.score(X_test, y_test):.3f}"
)

# %%
# The influence matrix
# --------------------
# One row per training digit, one column per test digit.
infl = mem.influence(X_test, y_test)
print("influence matrix:", infl.shape)
top = np.nanmax(infl, axis=0)  # the highest influence on each test digit
for threshold in (0.2, 0.5):
    print(
        f"test digits with a training digit of influence > {threshold}: "
        f"{(top > threshold).sum()} of {len(X_test)}"
    )

# %%
# The top influencer is usually the test digit's nearest training digit, of
# the same class: the model gets the atypical test digit right only through
# its twin.
order = np.argsort(-top, kind="stable")[:8]
best = np.nanargmax(infl[:, order], axis=0)
distances = np.linalg.norm(X_test[order, None] - X_train[None], axis=2)
print(
    "of the 8 highest-influence pairs: "
    f"{(best == distances.argmin(axis=1)).sum()} are nearest neighbours, "
    f"{(y_train[best] == y_test[order]).sum()} share the label"
)

# %%
# The pairs
# ---------
# The eight test digits whose most influential training digit has the
# highest influence, each above its two most influential training digits.
disp = InfluentialPairsDisplay.from_estimator(
    mem,
    X_train,
    X_test,
    y_test,
    y_train=y_train,
    image_shape=(8, 8),
    n_pairs=8,
    n_influencers=2,
)
plt.show()

# %%
# How much is noise
# -----------------
# Each influence is a difference of two accuracies over about 70% and 30% of
# the fits, so for a test digit classified correctly half the time its
# standard error is about ``0.5 * sqrt(1 / n_in + 1 / n_out)``; the highest
# of a thousand such noisy values lies about three standard errors up. Only
# influences well above that stand out: the top pairs do (with the full
# settings); the second-ranked training digits, often of another class, are
# at the noise level. More fits shrink it.
n_in = mem.n_in_.mean()
se = 0.5 * np.sqrt(1 / n_in + 1 / (N_SPLITS - n_in))
print(f"standard error of an influence near 0.5 accuracy: {se:.2f}")
print(f"highest influences: {np.round(np.sort(top)[::-1][:8], 2)}")
