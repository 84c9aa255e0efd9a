"""Scale: the closed-form KDE at its arithmetic floor, and bounded memory.

asv-compatible (``time_*`` / ``peakmem_*`` methods with ``setup``) and
runnable as a script that prints a markdown table, every ratio measured in
the same run::

    python benchmarks/bench_scale.py            # n = 20,000 and 100,000
    python benchmarks/bench_scale.py --quick    # n = 5,000 and 20,000

1. **KDE exact path vs its floor.** K=10 folds of n=20,000 rows, d=16,
   Gaussian kernel, one BLAS thread. The floor is a plain float64 numpy loop
   doing only the unavoidable work: chunked Gram products ``X_c @ X.T`` and
   one ``exp`` per pair. The product (``MemorizationScorer(method="exact")``
   with default settings) is timed with ``n_jobs=1`` and ``n_jobs=2``, and
   its log-likelihoods are compared with scikit-learn refits
   (``KernelDensity(rtol=0, atol=0)``, exact tree sums) on 300 rows.
2. **Bounded memory.** Exact LeaveOneOut with default settings
   (``store_loglik="auto"``) at n=20,000 (d=8) and n=100,000 (d=10), each in
   its own process so that its peak RSS is its own.
3. **Adaptive importance sampling** (torch): a VAE fitted on digits scores
   the 1797 rows with ``n_importance_samples="auto", target_se=0.01``,
   against the fixed S=1000 default and against the fixed S that gives every
   row the same precision (the largest S the adaptive run chose); each
   row's standard error is that of :meth:`VAEDensity.importance_sampling_report`.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def _data(n, d, seed=0):
    return np.random.RandomState(seed).randn(n, d)


def floor_loop(X, bandwidth=1.0, chunk=256, rows=None):
    """The unavoidable work: Gram products and one exp per pair, summed."""
    Xt = np.ascontiguousarray(X.T) / (bandwidth * bandwidth)
    out = np.empty(len(X))
    lo, hi = (0, len(X)) if rows is None else rows
    for start in range(lo, hi, chunk):
        G = X[start : min(hi, start + chunk)] @ Xt
        np.exp(G, out=G)
        out[start : min(hi, start + chunk)] = G.sum(axis=1)
    return out


def floor_loop_2_threads(X):
    """The floor loop on two threads, half the rows each: the machine's scaling."""
    from concurrent.futures import ThreadPoolExecutor

    half = len(X) // 2
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda r: floor_loop(X, rows=r), [(0, half), (half, len(X))]))


def _scorer(cv, n_jobs=1, **params):
    from sklearn.neighbors import KernelDensity

    from sklearn_mem import MemorizationScorer

    return MemorizationScorer(
        KernelDensity(bandwidth=1.0),
        cv=cv,
        method="exact",
        n_jobs=n_jobs,
        random_state=0,
        **params,
    )


def _best(func, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        func()
        times.append(time.perf_counter() - t)
    return min(times)


def kde_floor(n=20000, d=16, folds=10, repeat=3, check_rows=300):
    """Seconds of the floor loop and of the product at n_jobs 1 and 2."""
    from sklearn.model_selection import KFold
    from sklearn.neighbors import KernelDensity
    from threadpoolctl import threadpool_limits

    X = _data(n, d)
    cv = KFold(folds, shuffle=True, random_state=0)
    result = {"n": n, "d": d, "folds": folds}
    with threadpool_limits(1):
        # interleaved, best of `repeat`: a shared VM drifts over minutes
        floor, floor2, one, two = [], [], [], []
        for _ in range(repeat):
            floor.append(_best(lambda: floor_loop(X), 1))
            floor2.append(_best(lambda: floor_loop_2_threads(X), 1))
            one.append(_best(lambda: _scorer(cv, 1).fit(X), 1))
            two.append(_best(lambda: _scorer(cv, 2).fit(X), 1))
        result.update(
            floor=min(floor),
            floor_2_threads=min(floor2),
            n_jobs_1=min(one),
            n_jobs_2=min(two),
        )
        # exactness against refits on a subset of rows
        mem = _scorer(cv, 1, store_loglik=True).fit(X)
        rows = np.random.RandomState(1).choice(n, check_rows, replace=False)
        worst = 0.0
        for k, (train, _) in enumerate(cv.split(X)):
            ref = KernelDensity(bandwidth=1.0, rtol=0, atol=0).fit(X[train])
            diff = np.abs(ref.score_samples(X[rows]) - mem.loglik_[k, rows])
            worst = max(worst, float(diff.max()))
        result["max_abs_diff_vs_refits"] = worst
    return result


def _leave_one_out_child(n, d, n_jobs):
    from sklearn.model_selection import LeaveOneOut

    X = _data(n, d)
    t = time.perf_counter()
    mem = _scorer(LeaveOneOut(), n_jobs).fit(X)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "n": n,
        "d": d,
        "n_jobs": n_jobs,
        "seconds": seconds,
        "peak_rss_mib": peak,
        "store_loglik_": bool(mem.store_loglik_),
        "finite": int(np.isfinite(mem.memorization_scores_).sum()),
    }


def leave_one_out_memory(n, d, n_jobs=2):
    """Peak RSS and seconds of exact LeaveOneOut, in a fresh process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--child", str(n), str(d), str(n_jobs)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def adaptive_sampling(epochs=20, target_se=0.01, n_threads=2):
    """Seconds and precision of adaptive vs fixed S on digits (one VAE)."""
    import torch
    from sklearn.datasets import load_digits

    from sklearn_mem.models import VAEDensity

    torch.set_num_threads(n_threads)
    X = load_digits().data / 16.0
    vae = VAEDensity(max_epochs=epochs, random_state=0).fit(X)
    per_row = target_se / np.sqrt(2)  # each log p, for M's target_se

    def measure(S, rows=None):
        # rows < len(X): timed on the first rows, extrapolated linearly
        rows = len(X) if rows is None else rows
        vae.set_params(n_importance_samples=S, target_se=target_se)
        t = time.perf_counter()
        report = vae.importance_sampling_report(X[:rows])
        seconds = (time.perf_counter() - t) * len(X) / rows
        return {
            "S": S,
            "rows_timed": rows,
            "seconds": seconds,
            "met": float(np.mean(report.stderr <= per_row * (1 + 1e-12))),
            "se_max": float(report.stderr.max()),
            "se_median": float(np.median(report.stderr)),
            "S_mean": float(report.n_importance_samples.mean()),
            "S_max": int(report.n_importance_samples.max()),
        }

    auto = measure("auto")
    return {
        "epochs": epochs,
        "target_se": target_se,
        "rows": len(X),
        "auto": auto,
        "fixed_1000": measure(1000),
        "fixed_worst": measure(auto["S_max"], rows=min(len(X), 100)),
    }


def adaptive_table(result):
    r = result
    lines = [
        f"Adaptive importance sampling: one VAE ({r['epochs']} epochs) scoring the "
        f"{r['rows']} digits; target standard error of M {r['target_se']} nats "
        f"(so {r['target_se'] / np.sqrt(2):.4f} per log-likelihood):",
        "",
        "| S | time (s) | rows meeting the target | median se | max se "
        "| mean S | vs auto |",
        "|---|---|---|---|---|---|---|",
    ]
    auto = r["auto"]["seconds"]
    for key, name in (
        ("auto", "auto"),
        ("fixed_1000", "1000 (default)"),
        (
            "fixed_worst",
            f"{r['fixed_worst']['S']} (fixed: the largest auto S; timed on "
            f"{r['fixed_worst']['rows_timed']} rows, scaled)",
        ),
    ):
        m = r[key]
        lines.append(
            f"| {name} | {m['seconds']:.2f} | {100 * m['met']:.1f}% | "
            f"{m['se_median']:.4f} | {m['se_max']:.4f} | {m['S_mean']:.0f} | "
            f"{m['seconds'] / auto:.2f}x |"
        )
    return "\n".join(lines)


def run(quick=False, repeat=3):
    floor = kde_floor(n=5000 if quick else 20000, repeat=1 if quick else repeat)
    sizes = [(5000, 8), (20000, 10)] if quick else [(20000, 8), (100000, 10)]
    memory = [leave_one_out_memory(n, d) for n, d in sizes]
    return floor, memory


def table(floor, memory):
    f = floor
    lines = [
        f"KDE exact path, K={f['folds']} folds, n={f['n']:,}, d={f['d']}, "
        "Gaussian kernel, one BLAS thread per worker:",
        "",
        "| variant | time (s) | x floor | speed-up vs n_jobs=1 |",
        "|---|---|---|---|",
        f"| floor loop (Gram products + one exp per pair) | {f['floor']:.2f} | 1.0 | |",
        f"| floor loop, 2 threads (this machine's own scaling) | "
        f"{f['floor_2_threads']:.2f} | {f['floor_2_threads'] / f['floor']:.2f} | "
        f"{f['floor'] / f['floor_2_threads']:.2f} |",
        f"| MemorizationScorer, n_jobs=1 | {f['n_jobs_1']:.2f} | "
        f"{f['n_jobs_1'] / f['floor']:.2f} | 1.00 |",
        f"| MemorizationScorer, n_jobs=2 | {f['n_jobs_2']:.2f} | "
        f"{f['n_jobs_2'] / f['floor']:.2f} | {f['n_jobs_1'] / f['n_jobs_2']:.2f} |",
        "",
        f"Largest |log p| difference from scikit-learn refits (exact tree sums, "
        f"300 rows x {f['folds']} folds): {f['max_abs_diff_vs_refits']:.1e}",
        "",
        "Exact LeaveOneOut, default settings (store_loglik='auto'), n_jobs=2, "
        "own process:",
        "",
        "| n | d | time (s) | peak RSS (MiB) | loglik_ kept | finite scores |",
        "|---|---|---|---|---|---|",
    ]
    for m in memory:
        lines.append(
            f"| {m['n']:,} | {m['d']} | {m['seconds']:.1f} | {m['peak_rss_mib']:.0f} "
            f"| {m['store_loglik_']} | {m['finite']:,} |"
        )
    return "\n".join(lines)


class KDEFloorSuite:
    """asv: the exact path and its floor loop (n=20,000, d=16, K=10)."""

    timeout = 300

    def setup(self):
        from sklearn.model_selection import KFold

        self.X = _data(20000, 16)
        self.cv = KFold(10, shuffle=True, random_state=0)

    def time_floor_loop(self):
        floor_loop(self.X)

    def time_exact_n_jobs_1(self):
        _scorer(self.cv, 1).fit(self.X)

    def time_exact_n_jobs_2(self):
        _scorer(self.cv, 2).fit(self.X)


class LeaveOneOutMemorySuite:
    """asv: peak memory of exact LeaveOneOut with default settings."""

    timeout = 600

    def setup(self):
        self.X = _data(20000, 8)

    def peakmem_leave_one_out_20000(self):
        from sklearn.model_selection import LeaveOneOut

        _scorer(LeaveOneOut(), 2).fit(self.X)


class AdaptiveSamplingSuite:
    """asv: adaptive vs fixed S=1000 importance sampling of 300 digits."""

    timeout = 600

    def setup(self):
        try:
            from sklearn.datasets import load_digits

            from sklearn_mem.models import VAEDensity
        except ImportError:  # the torch extra
            raise NotImplementedError("needs torch") from None
        self.X = load_digits().data[:300] / 16.0
        self.vae = VAEDensity(max_epochs=5, random_state=0).fit(self.X)

    def time_auto(self):
        self.vae.set_params(n_importance_samples="auto").score_samples(self.X)

    def time_fixed_1000(self):
        self.vae.set_params(n_importance_samples=1000).score_samples(self.X)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_leave_one_out_child(*args.child)))
        return
    print(
        f"machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, python {platform.python_version()}"
    )
    print(table(*run(quick=args.quick)))
    try:
        import torch  # noqa: F401
    except ImportError:
        return
    print()
    print(adaptive_table(adaptive_sampling(epochs=5 if args.quick else 20)))


if __name__ == "__main__":
    main()
