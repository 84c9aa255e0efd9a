"""Speed of the deep-model fold fits: sequential, joblib, fold-batched; IWAE.

The task of the paper on scikit-learn's digits (1797 x 64, scaled to [0, 1]):
K=10 Bernoulli MLP VAEs (``VAEDensity`` defaults: latent 8, hidden
(256, 128), batch 128, Adam 1e-3), 50 epochs each, then IWAE scores of every
row under every fit.

- training: the K fits one after another (one thread, as
  ``MemorizationScorer(fold_batching=False)`` runs them), in 2 joblib
  processes (``n_jobs=2``, one thread each) and fold-batched
  (``VAEDensity.fit_folds``, 2 threads, as ``MemorizationScorer`` gives it
  with ``n_jobs=2``);
- scoring: a loop of ``score_samples`` over the K models against
  ``VAEDensity.score_folds`` (identical numbers), at S=128 and S=1000.

asv-compatible classes (``time_*``/``peakmem_*``); ``benchmarks/run.py``
runs every variant in its own subprocess (peak RSS per variant) and prints
the table. One variant by hand::

    python benchmarks/bench_speed.py --variant batched --epochs 50
"""

import argparse
import copy
import json
import os
import resource
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import KFold  # noqa: E402
from sklearn.utils.parallel import Parallel, delayed  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sklearn_mem._folds import draw_seeds, limit_threads, set_random_states  # noqa: E402
from sklearn_mem.models import VAEDensity  # noqa: E402

K = 10
EPOCHS = 50


def digits():
    return load_digits().data / 16.0


# "cuda" on a GPU machine (``--device cuda``); every variant then trains
# and scores there, and peak GPU memory is reported beside the peak RSS
DEVICE = os.environ.get("SKLEARN_MEM_BENCH_DEVICE", "cpu")


def vae(epochs=EPOCHS, n_importance_samples=1000):
    return VAEDensity(
        max_epochs=epochs, n_importance_samples=n_importance_samples, device=DEVICE
    )


def _sync():
    if DEVICE != "cpu":
        torch.cuda.synchronize()


def folds(X):
    return [train for train, _ in KFold(K, shuffle=True, random_state=0).split(X)]


def clones(est, n=K, random_state=0):
    return [set_random_states(clone(est), int(s)) for s in draw_seeds(random_state, n)]


def _fit_one(est, X, train):
    with limit_threads(1):
        return est.fit(X[train])


def train_sequential(X, trains, epochs=EPOCHS):
    return [_fit_one(est, X, t) for est, t in zip(clones(vae(epochs)), trains)]


def train_joblib(X, trains, epochs=EPOCHS, n_jobs=2):
    return Parallel(n_jobs=n_jobs)(
        delayed(_fit_one)(est, X, t) for est, t in zip(clones(vae(epochs)), trains)
    )


def train_batched(X, trains, epochs=EPOCHS, n_threads=2):
    est = vae(epochs)
    with limit_threads(n_threads):
        return est.fit_folds(clones(est, len(trains)), X, trains)


def train_one_fold(X, trains, epochs=EPOCHS):
    return [_fit_one(clones(vae(epochs), 1)[0], X, trains[0])]


def score_loop(nets, X, n_threads=2):
    with limit_threads(n_threads):
        return np.vstack([net.score_samples(X) for net in nets])


def score_folds(nets, X, n_threads=2):
    with limit_threads(n_threads):
        return nets[0].score_folds(nets, X)


def score_folds_bf16(nets, X, n_threads=2):
    """``score_folds`` with ``score_precision="bfloat16"``."""
    lowered = [clone_fitted(net, score_precision="bfloat16") for net in nets]
    return score_folds(lowered, X, n_threads)


def clone_fitted(net, **params):
    """A copy of the fitted ``net`` with ``params`` set (the fit is kept)."""
    return copy.copy(net).set_params(**params)


def precision_gap(X, trains, epochs=EPOCHS, S=1000):
    """What ``score_precision="bfloat16"`` changes, against the MC noise.

    Trains the K fold models (fold-batched), scores every row under every
    model in float32, in bfloat16, and in float32 with another
    ``score_seed``, and compares the log-likelihoods and the memorization
    scores: the bfloat16 gap against the seed-to-seed gap.
    """
    from sklearn_mem._aggregate import aggregate_loglik

    nets = train_batched(X, trains, epochs)
    nets = [clone_fitted(net, n_importance_samples=S) for net in nets]
    full = score_folds(nets, X)
    lowered = score_folds(
        [clone_fitted(n, score_precision="bfloat16") for n in nets], X
    )
    reseeded = score_folds([clone_fitted(n, score_seed=1) for n in nets], X)
    in_mask = np.zeros(full.shape, dtype=bool)
    for k, train in enumerate(trains):
        in_mask[k, train] = True

    def memorization(rows):  # NaN where a row has no "in" or no "out" fit
        return aggregate_loglik(rows, in_mask, warn=False).memorization

    out = {}
    for name, other in (("bf16", lowered), ("seed", reseeded)):
        d_log = np.abs(other - full)
        d_mem = np.abs(memorization(other) - memorization(full))
        out[name] = {
            "loglik_median": float(np.median(d_log)),
            "loglik_max": float(d_log.max()),
            "mem_median": float(np.nanmedian(d_mem)),
            "mem_max": float(np.nanmax(d_mem)),
        }
    return out


class _LogWeights(torch.nn.Module):
    """``module.log_weights`` as a forward, for ``torch.func.functional_call``."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x, eps, u):
        return self.module.log_weights(x, eps, u)


def _chunk(nets, X):
    """The rows and noise of the first scoring chunk, as ``score_folds`` has them."""
    net = nets[0]
    S = net._n_importance()
    rows = net._score_batch_size(len(X))
    x = net._to_tensor(net._validate_X(X[:rows], reset=False))
    return x, net._crn_noise(0, len(x), S)


CHUNK_REPS = 20


def score_chunk_loop(nets, X, reps=CHUNK_REPS, n_threads=2):
    """One chunk's importance log-weights under every model: a loop over them.

    What ``score_folds`` does per chunk (with its reused activation buffers).
    """
    from sklearn_mem.models._vae import _Workspace

    x, (eps, u) = _chunk(nets, X)
    modules = [net.module_.eval() for net in nets]
    workspace = _Workspace()
    with limit_threads(n_threads), torch.no_grad():
        for _ in range(reps):
            out = torch.stack(
                [m.log_weights(x, eps, u, workspace=workspace) for m in modules]
            )
    return out


def score_chunk_vmap(nets, X, reps=CHUNK_REPS, n_threads=2):
    """The same log-weights with ``torch.func.vmap`` over the stacked models."""
    from torch.func import functional_call, stack_module_state, vmap

    x, (eps, u) = _chunk(nets, X)
    modules = [net.module_.eval() for net in nets]
    params, buffers = stack_module_state(modules)
    params = {f"module.{k}": v for k, v in params.items()}
    buffers = {f"module.{k}": v for k, v in buffers.items()}
    base = _LogWeights(copy.deepcopy(modules[0])).to("meta")

    def log_weights(p, b):
        return functional_call(base, (p, b), (x, eps, u))

    batched = vmap(log_weights)
    with limit_threads(n_threads), torch.no_grad():
        for _ in range(reps):
            out = batched(params, buffers)
    return out


def trained(X, trains, S, epochs=2):
    nets = train_batched(X, trains, epochs=epochs)
    for net in nets:
        net.set_params(n_importance_samples=S)
    return nets


class VAETrainingSuite:
    """K=10 VAEs on digits, 50 epochs: sequential, joblib, fold-batched."""

    timeout = 600

    def setup(self):
        self.X = digits()
        self.trains = folds(self.X)

    def time_sequential(self):
        train_sequential(self.X, self.trains)

    def time_joblib_n_jobs_2(self):
        train_joblib(self.X, self.trains)

    def time_fold_batched(self):
        train_batched(self.X, self.trains)

    def peakmem_fold_batched(self):
        train_batched(self.X, self.trains)

    def peakmem_one_fold(self):
        train_one_fold(self.X, self.trains)


class IWAEScoringSuite:
    """IWAE log p(x) of all 1797 rows under each of the K=10 VAEs."""

    params = [128, 1000]
    param_names = ["n_importance_samples"]
    timeout = 600

    def setup(self, S):
        self.X = digits()
        self.nets = trained(self.X, folds(self.X), S)

    def time_loop(self, S):
        score_loop(self.nets, self.X)

    def time_score_folds(self, S):
        score_folds(self.nets, self.X)

    def time_score_folds_bf16(self, S):
        score_folds_bf16(self.nets, self.X)

    def time_chunk_loop(self, S):
        score_chunk_loop(self.nets, self.X)

    def time_chunk_vmap(self, S):
        score_chunk_vmap(self.nets, self.X)


VARIANTS = {
    "sequential": lambda X, tr, a: train_sequential(X, tr, a.epochs),
    "joblib": lambda X, tr, a: train_joblib(X, tr, a.epochs),
    "batched": lambda X, tr, a: train_batched(X, tr, a.epochs),
    "one_fold": lambda X, tr, a: train_one_fold(X, tr, a.epochs),
    "score_loop": lambda X, tr, a: score_loop(a.nets, X),
    "score_folds": lambda X, tr, a: score_folds(a.nets, X),
    "score_folds_bf16": lambda X, tr, a: score_folds_bf16(a.nets, X),
    "precision_gap": lambda X, tr, a: precision_gap(X, tr, a.epochs, a.samples),
    "score_chunk_loop": lambda X, tr, a: score_chunk_loop(a.nets, X),
    "score_chunk_vmap": lambda X, tr, a: score_chunk_vmap(a.nets, X),
}


def _peak_rss_mib():
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return own / 1024, workers / 1024


def run_variant(name, epochs=EPOCHS, samples=1000, profile=None):
    """Run one variant in this process; return its time and peak memory."""
    X = digits()
    trains = folds(X)
    args = argparse.Namespace(epochs=epochs, nets=None, samples=samples)
    if name == "precision_gap":  # not a timing: the gaps it measures
        return {"variant": name, **precision_gap(X, trains, epochs, samples)}
    if name.startswith("score"):
        args.nets = trained(X, trains, samples)
    func = VARIANTS[name]
    # warm up (first-call costs, joblib's worker pool) on a small version
    warm = argparse.Namespace(epochs=1, nets=args.nets)
    func(X[:200] if args.nets else X, trains, warm)
    _sync()
    if DEVICE != "cpu":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    if profile:
        import cProfile

        cProfile.runctx("func(X, trains, args)", globals(), locals(), profile)
    else:
        func(X, trains, args)
    _sync()
    seconds = time.perf_counter() - start
    if name == "joblib":
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)  # reap the workers
    own, workers = _peak_rss_mib()
    result = {
        "variant": name,
        "seconds": seconds,
        "peak_rss_mib": own,
        "workers_peak_rss_mib": workers,
    }
    if DEVICE != "cpu" and name != "joblib":  # workers' GPU memory is not ours
        result["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--device", default=None, help="cpu (default) or cuda")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--profile", default=None, help="write a cProfile file")
    args = parser.parse_args(argv)
    global DEVICE
    DEVICE = args.device or DEVICE
    torch.set_num_threads(1)
    print(
        json.dumps(run_variant(args.variant, args.epochs, args.samples, args.profile))
    )


if __name__ == "__main__":
    main()
