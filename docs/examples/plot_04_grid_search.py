"""
=============================================
Model selection with memorization in the loop
=============================================

Regularisation trades fit for memorization. A multi-metric
:class:`~sklearn.model_selection.GridSearchCV` reports, for every candidate,
the held-out log-likelihood (:func:`~sklearn_mem.metrics.heldout_loglik_scorer`)
and the 0.95-quantile of the memorization scores
(:func:`~sklearn_mem.metrics.make_memorization_scorer`), so that a model can
be chosen with both in view -- here the most likely Gaussian mixture whose
memorization stays under a budget.
"""

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV

from sklearn_mem import MemorizationScorer
from sklearn_mem.metrics import heldout_loglik_scorer, make_memorization_scorer

FAST = os.environ.get("SKLEARN_MEM_EXAMPLE_FAST", "0") == "1"
N_SAMPLES = 300 if FAST else 1200
REG_COVAR = [1e-2, 1e-1, 1.0] if FAST else [3e-3, 1e-2, 3e-2, 1e-1, 3e-1]
N_COMPONENTS = 3 if FAST else 10
N_JOBS = 1 if FAST else 2

X = load_digits().data[:N_SAMPLES] / 16

# %%
# The search
# ----------
# Each candidate is a :class:`~sklearn_mem.MemorizationScorer` around the
# mixture. On every outer training part it runs its own 5-fold
# cross-validation (the memorization scores) and refits on the whole part
# (the model scored on the outer validation part). The memorization scorer
# reads the scores stored for the training part; it never sees the
# validation rows, which have no memorization score.
scorer = MemorizationScorer(
    GaussianMixture(N_COMPONENTS, max_iter=50), cv=3 if FAST else 5, random_state=0
)
BUDGET = 5.0  # nats: the largest 0.95-quantile of M we accept


def most_likely_under_budget(cv_results):
    """Index of the best held-out likelihood with q95(M) <= BUDGET."""
    loglik = np.asarray(cv_results["mean_test_loglik"])
    q95 = -np.asarray(cv_results["mean_test_mem_q95"])  # the scorer negates
    allowed = np.flatnonzero(q95 <= BUDGET)
    if allowed.size == 0:  # nothing under budget: least memorization
        return int(np.argmin(q95))
    return int(allowed[np.argmax(loglik[allowed])])


search = GridSearchCV(
    scorer,
    {"estimator__reg_covar": REG_COVAR},
    scoring={
        "loglik": heldout_loglik_scorer,
        "mem_q95": make_memorization_scorer("quantile", q=0.95),
    },
    refit=most_likely_under_budget,
    cv=2 if FAST else 3,
    n_jobs=N_JOBS,
).fit(X)

res = search.cv_results_
q95 = -res["mean_test_mem_q95"]
for reg, ll, q in zip(REG_COVAR, res["mean_test_loglik"], q95):
    print(f"reg_covar = {reg:6.3f}: held-out loglik = {ll:8.2f}, q95 M = {q:6.2f}")
print("chosen:", search.best_params_)

# %%
# The trade-off
# -------------
# Weak regularisation gives the best held-out likelihood and the most
# memorization; strong regularisation memorizes little and fits worse.
fig, ax1 = plt.subplots(figsize=(6.5, 4), layout="constrained")
ax1.plot(REG_COVAR, res["mean_test_loglik"], "o-", color="C0")
ax1.set(xscale="log", xlabel="reg_covar")
ax1.set_ylabel("mean held-out log-likelihood (nats)", color="C0")
ax2 = ax1.twinx()
ax2.plot(REG_COVAR, q95, "s--", color="C3")
ax2.axhline(BUDGET, color="C3", linestyle=":", linewidth=1)
ax2.set_ylabel("0.95-quantile of M (nats)", color="C3")
ax1.axvline(search.best_params_["estimator__reg_covar"], color="0.5", linestyle=":")
ax1.set_title("GaussianMixture on digits: fit vs memorization")
plt.show()

# %%
# The refit search is itself a fitted MemorizationScorer, trained on all of
# ``X``: its scores, plots and membership AUC are at hand.
best = search.best_estimator_
print(f"chosen model: median M = {np.median(best.memorization_scores_):.2f} nats")
