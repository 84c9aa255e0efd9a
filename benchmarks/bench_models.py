"""Benchmarks for sklearn_mem.models, printed as markdown tables.

Three measurements on scikit-learn's digits (1797 x 64, scaled to [0, 1]):

1. ``overhead``: wall time of ``DensityNet`` training (VAEDensity and
   FlowDensity) against a plain PyTorch loop on the same module, data, batch
   size, epochs, optimizer and initialisation. Target: ratio <= 1.3.
2. ``crn``: how much common random numbers (one ``score_seed`` shared by all
   fits) shrink the spread of memorization scores caused by importance
   sampling, against independent scoring noise per fit. The fits are trained
   once; only the scoring is repeated.
3. ``epochs``: quantiles of the memorization score M for VAEs trained for
   more and more epochs (K-fold, logmeanexp aggregation), via
   ``MemorizationScorer``.
4. ``micro``: the small costs that shaped the code of ``sklearn_mem.models``
   (they used to be quoted in its docstrings): seeding torch's global RNG
   with ``torch.manual_seed`` against ``_random._seed_global_rng`` (scoring
   seeds once per chunk), a recursive ``module.train()`` per batch against
   the training step of a small VAE (``DensityNet.train_step_single`` skips
   it), and a silent skorch ``PrintLog`` per epoch (a fold-batched fit tells
   it about the first epoch only).

Measured on the two-core development VM (torch CPU, one thread), for the
record; re-measure with this script:

- ``crn``: randomised QMC (``qmc=True``) cut the seed-to-seed spread of
  log p on digits 2-2.7x at S=128 and S=1024 (as much as a ~7x larger S).
- ``micro``: ``torch.manual_seed`` about 0.1 ms per call, a recursive
  ``train()`` about 7% of a small VAE's step, a silent ``PrintLog`` about
  1 ms per epoch (10% of a fold-batched step).
- ``score_precision="bfloat16"`` (``benchmarks/run.py``): the scoring
  products about three times faster on CPUs with AMX/AVX512-BF16 and on
  GPUs, a few thousandths of a nat per row at S=1000 on digits.

Usage::

    python benchmarks/bench_models.py                 # all three
    python benchmarks/bench_models.py overhead --epochs 20 --repeats 3
    python benchmarks/bench_models.py crn --samples 128 1000 --rescore 5
    python benchmarks/bench_models.py epochs --epoch-grid 10 50 200 --n-jobs 2
    python benchmarks/bench_models.py micro

Run it with one thread per process (``OMP_NUM_THREADS=1``) for stable numbers;
``--threads`` sets torch's intra-op threads for the timed sections.
"""

import argparse
import contextlib
import os
import sys
import time

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import KFold  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sklearn_mem import MemorizationScorer  # noqa: E402
from sklearn_mem._aggregate import aggregate_loglik  # noqa: E402
from sklearn_mem.models import FlowDensity, RealNVP, VAEDensity, VAEModule  # noqa: E402
from sklearn_mem.models._random import _derive_seed, _seed_global_rng  # noqa: E402


@contextlib.contextmanager
def torch_threads(n):
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def digits():
    return load_digits().data / 16.0


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------
# 1. overhead of DensityNet over a plain loop
# ----------------------------------------------------------------------
def plain_loop(module, X, *, epochs, batch_size, lr, seed):
    """The reference: tensors once, randperm batches, Adam, -mean log p."""
    Xt = torch.as_tensor(X, dtype=torch.float32)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    takes_gen = isinstance(module, VAEModule)
    module.train()
    n = len(Xt)
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            xb = Xt[order[start : start + batch_size]]
            opt.zero_grad()
            out = module(xb, generator=gen) if takes_gen else module(xb)
            loss = -out.mean()
            loss.backward()
            opt.step()
    return module


def bench_overhead(X, *, epochs, repeats, batch_size=128):
    cases = [
        (
            "VAEDensity (MLP 64-256-128-8, Bernoulli)",
            lambda: VAEDensity(
                max_epochs=epochs, batch_size=batch_size, random_state=0
            ),
            lambda: VAEModule(64, latent_dim=8, hidden_dims=(256, 128)),
        ),
        (
            "FlowDensity (RealNVP, 6 x 64-64)",
            lambda: FlowDensity(
                max_epochs=epochs, batch_size=batch_size, random_state=0
            ),
            lambda: RealNVP(64, n_layers=6, hidden_dims=(64, 64)),
        ),
        (
            "VAEDensity (MLP 64-32-4, small: overhead-bound)",
            lambda: VAEDensity(
                latent_dim=4,
                hidden_dims=(32,),
                max_epochs=epochs,
                batch_size=batch_size,
                random_state=0,
            ),
            lambda: VAEModule(64, latent_dim=4, hidden_dims=(32,)),
        ),
    ]
    rows = []
    for name, make_net, make_module in cases:
        t_net, t_plain = [], []
        for r in range(repeats):
            torch.manual_seed(r)
            module = make_module()
            t0 = time.perf_counter()
            plain_loop(module, X, epochs=epochs, batch_size=batch_size, lr=1e-3, seed=r)
            t_plain.append(time.perf_counter() - t0)
            net = make_net()
            t0 = time.perf_counter()
            net.fit(X)
            t_net.append(time.perf_counter() - t0)
        # best of the repeats: the least disturbed run of each (shared machines)
        a, b = np.min(t_net), np.min(t_plain)
        rows.append((name, epochs, batch_size, f"{b:.2f}", f"{a:.2f}", f"{a / b:.2f}x"))
    header = (
        "model",
        "epochs",
        "batch",
        "plain loop s (best)",
        "DensityNet s (best)",
        "ratio",
    )
    return table(header, rows)


# ----------------------------------------------------------------------
# 2. common random numbers
# ----------------------------------------------------------------------
def aggregate(loglik, in_mask):
    return aggregate_loglik(loglik, in_mask, warn=False).memorization


def kfold_fits(make, X, *, n_splits, seed):
    splits = list(KFold(n_splits, shuffle=True, random_state=seed).split(X))
    in_mask = np.zeros((n_splits, len(X)), dtype=bool)
    fits = []
    for k, (train, _) in enumerate(splits):
        in_mask[k, train] = True
        est = clone(make()).set_params(
            random_state=_derive_seed(seed, "train", k) % 2**31
        )
        fits.append(est.fit(X[train]))
    return fits, in_mask


def bench_crn(X, *, samples, rescore, epochs, n_splits=5):
    """Spread of M_i over rescorings of the same K fits.

    "common (CRN)": every fit scores with score_seed=r in rescoring r (what
    MemorizationScorer does: the seed is not reset per fit). "independent":
    fit k uses its own seed. Both with i.i.d. (qmc=False) and randomised
    quasi-Monte Carlo (qmc=True) importance samples. Also the spread of one
    fit's log p_k(x_i) for reference.
    """
    fits, in_mask = kfold_fits(
        lambda: VAEDensity(max_epochs=epochs), X, n_splits=n_splits, seed=0
    )
    rows = []
    for S in samples:
        for qmc in (False, True):
            M = {"common (CRN)": [], "independent": []}
            logp0 = []
            for r in range(rescore):
                for mode in M:
                    loglik = np.vstack(
                        [
                            fit.set_params(
                                n_importance_samples=S,
                                qmc=qmc,
                                score_seed=(
                                    r if mode == "common (CRN)" else 1000 * (r + 1) + k
                                ),
                            ).score_samples(X)
                            for k, fit in enumerate(fits)
                        ]
                    )
                    M[mode].append(aggregate(loglik, in_mask))
                    if mode == "common (CRN)":
                        logp0.append(loglik[0])
            sd = {m: np.std(np.array(v), axis=0, ddof=1) for m, v in M.items()}
            sd_logp = np.median(np.std(np.array(logp0), axis=0, ddof=1))
            median_abs_m = np.median(np.abs(np.mean(M["common (CRN)"], axis=0)))
            ratio = np.median(sd["independent"]) / np.median(sd["common (CRN)"])
            rows.append(
                (
                    S,
                    "QMC" if qmc else "i.i.d.",
                    f"{sd_logp:.4f}",
                    f"{np.median(sd['independent']):.4f}",
                    f"{np.median(sd['common (CRN)']):.4f}",
                    f"{ratio:.2f}x",
                    f"{median_abs_m:.3f}",
                )
            )
    header = (
        "S",
        "samples",
        "median sd log p_k(x_i)",
        "median sd M_i, independent",
        "median sd M_i, CRN",
        "CRN reduction",
        "median abs(M_i)",
    )
    note = (
        f"K={n_splits} folds, VAEDensity(max_epochs={epochs}) on {len(X)} digits; "
        f"sd over {rescore} rescorings of the same fitted models (training "
        "noise excluded)."
    )
    return note + "\n\n" + table(header, rows)


# ----------------------------------------------------------------------
# 3. epochs vs memorization
# ----------------------------------------------------------------------
def memorization_scores(est, X, *, n_splits, n_jobs, seed):
    mem = MemorizationScorer(
        est, cv=n_splits, refit=False, n_jobs=n_jobs, random_state=seed
    ).fit(X)
    return mem.memorization_scores_, "MemorizationScorer"


def bench_epochs(X, *, epoch_grid, n_splits, n_jobs, samples):
    rows, how = [], ""
    qs = (50, 90, 95, 99)
    for epochs in epoch_grid:
        est = VAEDensity(max_epochs=epochs, n_importance_samples=samples)
        t0 = time.perf_counter()
        M, how = memorization_scores(est, X, n_splits=n_splits, n_jobs=n_jobs, seed=0)
        dt = time.perf_counter() - t0
        q = np.percentile(M, qs)
        rows.append((epochs, *(f"{v:.3f}" for v in q), f"{M.max():.2f}", f"{dt:.0f}"))
    header = ("epochs", *(f"q{q}(M)" for q in qs), "max M", "time s")
    note = (
        f"K={n_splits} folds ({how}), VAEDensity(latent_dim=8, MLP 256-128, "
        f"Bernoulli), S={samples}, logmeanexp, {len(X)} digits."
    )
    return note + "\n\n" + table(header, rows)


# ----------------------------------------------------------------------
# 4. small costs behind choices in sklearn_mem.models
# ----------------------------------------------------------------------
def _per_call(fn, repeats):
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def bench_micro(X, *, repeats=200):
    from skorch.callbacks import PrintLog

    rows = []
    state = torch.get_rng_state()
    try:
        seeding = _per_call(lambda: torch.manual_seed(0), repeats)
        ours = _per_call(lambda: _seed_global_rng("cpu", 0), repeats)
    finally:
        torch.set_rng_state(state)
    rows.append(("torch.manual_seed", f"{1e3 * seeding:.4f}", ""))
    rows.append(("_random._seed_global_rng", f"{1e3 * ours:.4f}", ""))

    net = VAEDensity(
        latent_dim=4, hidden_dims=(32,), max_epochs=1, batch_size=128, random_state=0
    ).fit(X)
    batch = torch.as_tensor(X[:128], dtype=torch.float32)

    def step():
        net.train_step_single((batch, None))
        net.module_.zero_grad()

    t_step = _per_call(step, repeats)
    t_train = _per_call(lambda: net.module_.train(), repeats)
    rows.append(("training step, small VAE (batch 128)", f"{1e3 * t_step:.4f}", ""))
    rows.append(
        (
            "recursive module.train()",
            f"{1e3 * t_train:.4f}",
            f"{100 * t_train / t_step:.0f}% of the step",
        )
    )

    log = PrintLog().initialize()
    net.set_params(verbose=0)
    t_log = _per_call(lambda: log.on_epoch_end(net), repeats)
    rows.append(("silent PrintLog.on_epoch_end", f"{1e3 * t_log:.4f}", "per epoch"))
    return table(("operation", "ms per call", "note"), rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "which",
        nargs="*",
        default=["overhead", "crn", "epochs"],
        choices=["overhead", "crn", "epochs", "micro"],
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=20, help="overhead epochs")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--samples", type=int, nargs="+", default=[128, 1000])
    parser.add_argument("--rescore", type=int, default=4)
    parser.add_argument("--crn-epochs", type=int, default=30)
    parser.add_argument("--epoch-grid", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--n-rows", type=int, default=None)
    args = parser.parse_args(argv)

    X = digits()
    if args.n_rows:
        X = X[: args.n_rows]
    print(f"torch {torch.__version__}, {args.threads} thread(s), X {X.shape}\n")
    with torch_threads(args.threads):
        if "overhead" in args.which:
            print("## DensityNet training overhead over a plain PyTorch loop\n")
            print(bench_overhead(X, epochs=args.epochs, repeats=args.repeats))
            print(flush=True)
        if "crn" in args.which:
            print("## Common random numbers: scoring-noise spread of M\n")
            print(
                bench_crn(
                    X,
                    samples=args.samples,
                    rescore=args.rescore,
                    epochs=args.crn_epochs,
                )
            )
            print(flush=True)
        if "micro" in args.which:
            print("## Small costs behind choices in sklearn_mem.models\n")
            print(bench_micro(X))
            print(flush=True)
        if "epochs" in args.which:
            print("## Epochs vs memorization\n")
            print(
                bench_epochs(
                    X,
                    epoch_grid=args.epoch_grid,
                    n_splits=5,
                    n_jobs=args.n_jobs,
                    samples=max(args.samples),
                )
            )
            print(flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
