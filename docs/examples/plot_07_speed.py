"""
=====================================================
Speed: fold-batched training and the cost of scoring
=====================================================

A memorization run of a deep model costs K trainings and K scorings of every
sample. This example times the two halves on scikit-learn's digits with a
small :class:`~sklearn_mem.models.VAEDensity`:

- training: the K fold models one per worker (``fold_batching=False``)
  against all K trained at once as one batched model (the default,
  ``fold_batching="auto"``), with the scores they give;
- scoring: the importance-weighted estimate grows linearly with the number of
  importance samples S, and at the paper's S it can cost more than training.

Times depend on the machine; the ratios are what carries over. The README's
performance section has the full benchmark (``python benchmarks/run.py``).

This example needs the ``torch`` extra (``pip install -e ".[torch]"`` from a
clone; install a CPU-only or CUDA torch first, as the home page shows).
"""

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.base import clone
from sklearn.datasets import load_digits

from sklearn_mem import MemorizationScorer
from sklearn_mem.models import VAEDensity  # needs torch and skorch

FAST = os.environ.get("SKLEARN_MEM_EXAMPLE_FAST", "0") == "1"
N_SAMPLES = 300 if FAST else None
EPOCHS = 2 if FAST else 20
K = 3 if FAST else 10
S_GRID = [8, 32] if FAST else [16, 64, 256]

X = load_digits().data[:N_SAMPLES] / 16  # grey levels in [0, 1]


def make_vae(S=S_GRID[0]):
    return VAEDensity(max_epochs=EPOCHS, n_importance_samples=S)


# %%
# One model per fold, or all folds as one model
# ---------------------------------------------
# With ``fold_batching=False`` the K fits run in ``n_jobs`` worker processes,
# one fold each. By default the folds are stacked into one model whose
# matrix products run over all folds at once; each fold keeps its own
# initialisation, batches, noise and optimizer state. ``method_`` says which
# path ran. Set ``verbose=1`` to follow a batched run's epochs and scoring.
runs = {}
for batching in (False, True):
    start = time.perf_counter()
    mem = MemorizationScorer(
        make_vae(), cv=K, n_jobs=2, fold_batching=batching, random_state=0
    ).fit(X)
    runs[mem.method_] = (time.perf_counter() - start, mem)
    print(f"{mem.method_:>8}: {runs[mem.method_][0]:.1f} s")

# %%
# The two paths train the same models up to floating-point rounding (the
# order of additions inside the batched products differs), so their
# memorization scores agree closely; they are not bit-identical.
M_refit = runs["refit"][1].memorization_scores_
M_batched = runs["batched"][1].memorization_scores_
r = np.corrcoef(M_refit, M_batched)[0, 1]
print(f"correlation of the scores: {r:.4f}")

fig, (ax_time, ax_scores) = plt.subplots(1, 2, figsize=(9, 3.5))
names = list(runs)
ax_time.bar(names, [runs[n][0] for n in names], color=["0.6", "C0"])
ax_time.set_ylabel("seconds (training + scoring)")
ax_time.set_title(f"K={K} VAEs, {EPOCHS} epochs")
ax_scores.scatter(M_refit, M_batched, s=4)
lims = [min(M_refit.min(), M_batched.min()), max(M_refit.max(), M_batched.max())]
ax_scores.plot(lims, lims, color="0.5", lw=1)
ax_scores.set_xlabel("M, one model per fold (nats)")
ax_scores.set_ylabel("M, fold-batched (nats)")
ax_scores.set_title(f"r = {r:.4f}")
fig.tight_layout()
plt.show()

# %%
# Scoring cost grows with the importance samples
# ----------------------------------------------
# ``score_samples`` estimates log p(x) from S importance samples per row, so
# scoring all K models costs K x n x S decoder evaluations: linear in S.
# ``score_folds`` scores the K fitted models together, drawing each row's
# common random numbers once for all of them. Larger S lowers the noise of
# the estimate (see the VAE example); time it before choosing S for a big
# dataset.
# ``fit_folds`` is the batched trainer the scorer used: it returns the K
# fitted fold models (the scorer keeps only their log-likelihoods).
#
# ``score_precision="bfloat16"`` runs the scoring's matrix products in
# bfloat16: several times faster on CPUs with AMX or AVX512-BF16 and on GPUs
# (it can be slower elsewhere), at an error far below the Monte Carlo noise
# of the estimate.
vae = make_vae()
trains = [np.flatnonzero(row) for row in runs["batched"][1].in_mask_]
clones = [clone(vae).set_params(random_state=k) for k in range(K)]
fitted = vae.fit_folds(clones, X, trains)
times = {"float32": [], "bfloat16": []}
for S in S_GRID:
    rows = {}
    for precision, spent in times.items():
        for net in fitted:
            net.set_params(n_importance_samples=S, score_precision=precision)
        start = time.perf_counter()
        rows[precision] = fitted[0].score_folds(fitted, X)
        spent.append(time.perf_counter() - start)
    gap = np.abs(rows["bfloat16"] - rows["float32"]).max()
    print(
        f"S={S:4d}: scoring {K} models x {len(X)} rows took "
        f"{times['float32'][-1]:.2f} s (bfloat16: {times['bfloat16'][-1]:.2f} s, "
        f"largest change {gap:.4f} nats)"
    )

fig, ax = plt.subplots(figsize=(4.5, 3.5))
for precision, spent in times.items():
    ax.plot(S_GRID, spent, "o-", label=precision)
ax.legend(title="score_precision")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("importance samples S")
ax.set_ylabel("seconds to score all models")
fig.tight_layout()
plt.show()
