"""
==========
Quickstart
==========

Memorization scores of a kernel density estimate and a Gaussian mixture on
scikit-learn's digits. :class:`~sklearn_mem.MemorizationScorer` wraps any
density estimator with ``fit`` and ``score_samples``, runs a K-fold
cross-validation and gives every training sample a score

    M_i = log P(x_i | D) - log P(x_i | D without x_i)     (nats)

from the "in" fits (trained on x_i) and the "out" fits (not trained on it).
"""

# %%
# Settings
# --------
# ``SKLEARN_MEM_EXAMPLE_FAST=1`` shrinks the example for the test suite.
import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KernelDensity

from sklearn_mem import MemorizationScorer
from sklearn_mem.metrics import membership_auc
from sklearn_mem.plotting import (
    MemorizationHistogramDisplay,
    MemorizedSamplesDisplay,
)

FAST = os.environ.get("SKLEARN_MEM_EXAMPLE_FAST", "0") == "1"
N_SAMPLES = 400 if FAST else None  # None: all 1797 digits
K = 5 if FAST else 10  # folds; the paper uses 10
N_COMPONENTS = 5 if FAST else 10
N_JOBS = 1 if FAST else 2  # parallel fits

X = load_digits().data / 16  # 8x8 grey images scaled to [0, 1]
X = X[:N_SAMPLES]
print(f"{X.shape[0]} samples, {X.shape[1]} features")

# %%
# A kernel density estimate: computed in closed form
# ---------------------------------------------------
# For a :class:`~sklearn.neighbors.KernelDensity` the scorer needs no refits:
# the log-likelihood of every fold's model comes from pairwise kernel sums.
kde = MemorizationScorer(KernelDensity(bandwidth=0.5), cv=K, random_state=0)
M_kde = kde.fit_transform(X)  # shape (n_samples, 1)
print("path:", kde.method_)
print("fits x samples:", kde.loglik_.shape)
print(
    f"median M = {np.median(M_kde):.3f} nats, "
    f"0.95-quantile = {np.quantile(M_kde, 0.95):.3f} nats"
)

# %%
# A Gaussian mixture: one refit per fold
# --------------------------------------
# Every fold trains a clone of the mixture with its own seed, drawn from
# ``random_state``; ``n_jobs=2`` runs two fits at a time and gives the same
# scores bit for bit as ``n_jobs=1``.
gmm = MemorizationScorer(
    GaussianMixture(N_COMPONENTS, reg_covar=1e-2),
    cv=K,
    n_jobs=N_JOBS,
    random_state=0,
)
gmm.fit(X)
M_gmm = gmm.memorization_scores_
print("path:", gmm.method_)
print(
    f"median M = {np.median(M_gmm):.3f} nats, "
    f"0.95-quantile = {np.quantile(M_gmm, 0.95):.3f} nats"
)

# %%
# The "in" and "out" log-likelihoods behind the score are kept:
# ``M = in_loglik_ - out_loglik_``.
i = int(np.argmax(M_gmm))
print(
    f"most memorized sample {i}: U = {gmm.in_loglik_[i]:.1f}, "
    f"V = {gmm.out_loglik_[i]:.1f}, M = {M_gmm[i]:.1f} nats"
)

# %%
# Distribution of the scores
# --------------------------
# The paper summarises a model by the 0.95-quantile of its scores.
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
MemorizationHistogramDisplay.from_estimator(kde, ax=axes[0])
axes[0].set_title("KernelDensity(bandwidth=0.5)")
MemorizationHistogramDisplay.from_estimator(gmm, ax=axes[1])
axes[1].set_title(f"GaussianMixture({N_COMPONENTS})")
plt.show()

# %%
# Which digits are memorized
# --------------------------
# The most, median and least memorized training images of the mixture.
MemorizedSamplesDisplay.from_estimator(gmm, X, image_shape=(8, 8), n_samples=8)
plt.show()

# %%
# Membership inference from the same fits
# ---------------------------------------
# Every (fit, sample) pair is a membership-inference case: the LOSS attack
# guesses "member" when the log-likelihood is high. 0.5 means the fits do not
# reveal membership.
print(f"membership AUC, KDE: {membership_auc(kde):.3f}")
print(f"membership AUC, GMM: {membership_auc(gmm):.3f}")
