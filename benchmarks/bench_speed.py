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
        return est.fit_folds(clones(est), X, trains)


def train_one_fold(X, trains, epochs=EPOCHS):
    return [_fit_one(clones(vae(epochs), 1)[0], X, trains[0])]


def score_loop(nets, X, n_threads=2):
    with limit_threads(n_threads):
        return np.vstack([net.score_samples(X) for net in nets])


def score_folds(nets, X, n_threads=2):
    with limit_threads(n_threads):
        return nets[0].score_folds(nets, X)


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


VARIANTS = {
    "sequential": lambda X, tr, a: train_sequential(X, tr, a.epochs),
    "joblib": lambda X, tr, a: train_joblib(X, tr, a.epochs),
    "batched": lambda X, tr, a: train_batched(X, tr, a.epochs),
    "one_fold": lambda X, tr, a: train_one_fold(X, tr, a.epochs),
    "score_loop": lambda X, tr, a: score_loop(a.nets, X),
    "score_folds": lambda X, tr, a: score_folds(a.nets, X),
}


def _peak_rss_mib():
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return own / 1024, workers / 1024


def run_variant(name, epochs=EPOCHS, samples=1000, profile=None):
    """Run one variant in this process; return its time and peak memory."""
    X = digits()
    trains = folds(X)
    args = argparse.Namespace(epochs=epochs, nets=None)
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
    if DEVICE != "cpu":
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
