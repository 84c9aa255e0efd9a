"""MNIST-size timings: a K=10 VAE memorization study on 60,000 x 784 rows.

Issue 13, item 6. How long the paper's MNIST study (K=10 folds of the
default ``VAEDensity``, then IWAE scores of every row under every fold
model) takes on this machine, measured on a few epochs and a few scored rows
and extrapolated linearly. Runnable as a script that prints markdown tables
(every ratio measured in the same run) and asv-compatible (``time_*`` /
``peakmem_*`` classes at the bottom)::

    python benchmarks/bench_mnist.py            # 60,000 rows, 1 epoch (~10 min)
    python benchmarks/bench_mnist.py --quick    # 2,000 rows, 1 epoch (~1 min)
    python benchmarks/bench_mnist.py --epochs 2 --samples 256,1000 --score-rows 200

The data (no download; :func:`mnist_like`)
------------------------------------------
scikit-learn's ``load_digits`` (1797 images of 8x8, grey levels 0..16),
scaled to [0, 1] and upsampled bilinearly (``scipy.ndimage.zoom``, order 1)
to 20x20, then padded by 4 pixels on every side to 28x28: MNIST's layout, a
20x20 digit box centred in a 28x28 frame, which leaves room for the jitter.
Row ``i`` is image ``i % 1797`` under its own random jitter (one
``numpy.random.default_rng(seed)`` stream, seed 0): a rotation uniform in
+-12 degrees about the centre, a shift uniform in +-2 pixels on each axis,
and an elastic displacement field (a 4x4 grid of N(0, 1) pixel offsets per
axis, upsampled bilinearly to 28x28, so the field is smooth); every output
pixel is read from the source image at its displaced position by bilinear
interpolation (``scipy.ndimage.map_coordinates``, order 1, zero outside),
and binarised at 0.5. The rows are repeated (and re-jittered) to ``rows``
rows (60,000 by default): a float32 array of shape (rows, 784) with values
0 and 1, about 17 % ones (MNIST binarised at 0.5: about 13 %). Generated
once per run in the parent process and handed to the measuring processes
as an ``.npy`` file.

What is measured
----------------
The default ``VAEDensity`` (MLP 784-256-128-(8)-128-256-784, Bernoulli
likelihood, batch 128, Adam 1e-3), K=10 training parts of
``KFold(10, shuffle=True, random_state=0)`` (54,000 rows each at 60,000),
one seed per fold drawn as ``MemorizationScorer`` draws them. Every variant
runs in its own subprocess with ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` /
``OPENBLAS_NUM_THREADS`` and ``torch.set_num_threads`` set explicitly to its
thread count, so its peak RSS (``resource.getrusage(...).ru_maxrss``) is its
own (torch's CPU tensors are invisible to tracemalloc). Each measuring
process loads all ``rows`` rows, as a study holds them, and runs a small
warm-up fit (256 rows) before timing.

Thread counts follow ``MemorizationScorer``: one fold-batched unit trains
(and scores) with ``effective_n_jobs(n_jobs)`` threads, so
``MemorizationScorer(vae, cv=10)`` gives it 1 thread and ``n_jobs=2`` gives
it 2; with ``fold_batching=False`` every fit runs single-threaded in its
worker.

- **fold-batched, 1 and 2 threads**: ``VAEDensity.fit_folds`` on the 10
  training parts (what ``MemorizationScorer(vae, cv=10)`` calls with
  ``fold_batching="auto"``), one stacked model, ``--epochs`` epochs. Seconds
  per epoch are the epochs' own durations (skorch's ``history[:, "dur"]``,
  mean over the measured epochs); the setup (validation, copies, stacking) is
  the rest of the wall time and is counted once in the study.
- **per-fold, n_jobs=1**: ``MemorizationScorer(..., fold_batching=False)``
  fits one clone per fold. Only fold 0 is timed (``--epochs`` epochs, 1
  thread); its epoch time (and setup) **times 10** is the 10 folds'.
- **per-fold, n_jobs=2**: folds 0 and 1 fitted at once in two joblib (loky)
  workers of one thread each, as ``n_jobs=2`` runs them; the pair's epoch
  time (the slower worker's) **times 5** is the 10 folds'. Its peak RSS is
  the parent's plus twice the larger worker's.
- **scoring**: ``VAEDensity.score_folds`` (what the scorer calls after a
  batched fit; the same numbers as a loop of ``score_samples``) of the 10
  fold models at ``n_importance_samples=S`` for each S of ``--samples``, at 1
  and 2 threads, timed on the first ``--score-rows`` rows only (after one
  warm-up chunk) and **extrapolated linearly** to all rows. The 10 models
  are trained for 1 epoch on 1,000 rows only: the cost of scoring does not
  depend on the weights' values. S may be any value ``n_importance_samples``
  accepts (``--samples 1000,auto`` once adaptive sampling exists; its time
  per row then depends on the rows, and the extrapolation assumes the scored
  rows are typical).
- **full study**: setup + ``--study-epochs`` (100) x seconds per epoch, plus
  the scoring of all rows at each S, in hours. The fold-batched plans get
  the scoring time at their own thread count; the per-fold plans (which
  score with ``score_samples`` in their workers) the 1-thread
  ``score_folds`` time, divided for n_jobs=2 by the speed-up that n_jobs=2
  gave the per-fold training in the same run (a measured, not an ideal,
  parallel efficiency). ``score_folds`` draws the scoring noise once for all
  10 models, ``score_samples`` once per model, so the per-fold plans'
  scoring is if anything underestimated.

Timings on a shared machine drift: ``os.getloadavg()`` is printed at the
start and the end, and the 1-minute load after each variant. On a loaded
2-core machine, 2 threads per process can be several times slower than 1
(the threads wait for each other whenever one is descheduled); the tables
show it when it happens.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

K = 10
ROWS = 60_000
QUICK_ROWS = 2_000
EPOCHS = 1
STUDY_EPOCHS = 100
SAMPLES = (1000,)
SCORE_ROWS = 100
QUICK_SCORE_ROWS = 4
THREADS = 2
SCORING_TRAIN_ROWS = 1_000
SIDE = 28


# ----------------------------------------------------------------------------
# the data
# ----------------------------------------------------------------------------
def mnist_like(
    n_rows=ROWS,
    seed=0,
    max_rotation=12.0,
    max_shift=2.0,
    elastic=1.0,
    threshold=0.5,
    chunk=4096,
):
    """A binary MNIST-like set built from scikit-learn's digits (no download).

    See the module docstring for the recipe.

    Returns
    -------
    X : ndarray of shape (n_rows, 784), float32, values 0 and 1
    """
    import numpy as np
    from scipy import ndimage
    from sklearn.datasets import load_digits

    images = load_digits().images / 16.0  # (1797, 8, 8) in [0, 1]
    digits = np.clip(ndimage.zoom(images, (1, 2.5, 2.5), order=1), 0.0, 1.0)
    pad = (SIDE - digits.shape[1]) // 2
    base = np.pad(digits, ((0, 0), (pad, pad), (pad, pad)))  # (1797, 28, 28)
    centre = (SIDE - 1) / 2.0
    r, c = np.mgrid[0:SIDE, 0:SIDE].astype(np.float64) - centre
    rng = np.random.default_rng(seed)
    out = np.empty((n_rows, SIDE * SIDE), dtype=np.float32)
    for start in range(0, n_rows, chunk):
        stop = min(n_rows, start + chunk)
        m = stop - start
        theta = np.deg2rad(rng.uniform(-max_rotation, max_rotation, m))
        shift = rng.uniform(-max_shift, max_shift, (m, 2))
        coarse = rng.normal(0.0, elastic, (m, 2, 4, 4))
        field = ndimage.zoom(coarse, (1, 1, SIDE / 4, SIDE / 4), order=1)
        cos = np.cos(theta)[:, None, None]
        sin = np.sin(theta)[:, None, None]
        src_r = cos * r - sin * c + centre - shift[:, 0, None, None] + field[:, 0]
        src_c = sin * r + cos * c + centre - shift[:, 1, None, None] + field[:, 1]
        image = np.arange(start, stop) % len(base)
        src_i = np.broadcast_to(image[:, None, None], src_r.shape).astype(float)
        values = ndimage.map_coordinates(
            base, [src_i, src_r, src_c], order=1, mode="constant", cval=0.0
        )
        out[start:stop] = (values > threshold).reshape(m, -1)
    return out


def folds(n_rows, k=K):
    """The training rows of each of the K folds."""
    import numpy as np
    from sklearn.model_selection import KFold

    split = KFold(k, shuffle=True, random_state=0).split(np.empty((n_rows, 1)))
    return [train for train, _ in split]


# ----------------------------------------------------------------------------
# the variants (each also callable in-process, as the asv classes do)
# ----------------------------------------------------------------------------
def vae(epochs=EPOCHS, n_importance_samples=1000, device="cpu"):
    """The default VAE (default architecture), ``epochs`` epochs."""
    from sklearn_mem.models import VAEDensity

    return VAEDensity(
        max_epochs=epochs, n_importance_samples=n_importance_samples, device=device
    )


def clones(est, n=K, random_state=0):
    """Seeded clones, one per fold, as ``MemorizationScorer`` seeds them."""
    from sklearn.base import clone

    from sklearn_mem._folds import draw_seeds, set_random_states

    return [set_random_states(clone(est), int(s)) for s in draw_seeds(random_state, n)]


def _limit(n_threads):
    from sklearn_mem._threads import limit_threads

    return limit_threads(n_threads)


def _sync(device):
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _epochs(net):
    return [float(d) for d in net.history[:, "dur"]]


def train_batched(X, trains, epochs=EPOCHS, n_threads=THREADS, device="cpu"):
    """The K folds as one stacked model (``fit_folds``)."""
    est = vae(epochs, device=device)
    reason = est.set_params(random_state=0).fold_batching_unavailable_reason()
    if reason is not None:  # the benchmark would time the fallback loop
        raise RuntimeError(f"VAEDensity does not batch its folds here: {reason}")
    with _limit(n_threads):
        return est.fit_folds(clones(est, len(trains)), X, trains)


def _fit_one(est, X, train, n_threads=1):
    with _limit(n_threads):
        return est.fit(X[train])


def train_one_fold(X, trains, epochs=EPOCHS, n_threads=1, device="cpu"):
    """Fold 0 alone, as one worker of ``fold_batching=False`` fits it."""
    return [_fit_one(clones(vae(epochs, device=device), 1)[0], X, trains[0], n_threads)]


def train_two_folds_jobs2(X, trains, epochs=EPOCHS, device="cpu"):
    """Folds 0 and 1 at once in 2 loky workers of one thread each."""
    from sklearn.utils.parallel import Parallel, delayed

    ests = clones(vae(epochs, device=device), 2)
    return Parallel(n_jobs=2)(
        delayed(_fit_one)(est, X, train, 1) for est, train in zip(ests, trains[:2])
    )


def scoring_models(X, trains, device="cpu", rows=SCORING_TRAIN_ROWS, n_threads=THREADS):
    """K fold models trained briefly (1 epoch on ``rows`` rows) for scoring."""
    import numpy as np

    rows = min(rows, len(X))
    small = [np.asarray(t)[np.asarray(t) < rows] for t in trains]
    return train_batched(X[:rows], small, 1, n_threads, device)


def score_folds(nets, X, S, n_threads=THREADS):
    """Log-likelihood of ``X`` under every model at S importance samples."""
    for net in nets:
        net.set_params(n_importance_samples=S)
    with _limit(n_threads):
        return nets[0].score_folds(nets, X)


# ----------------------------------------------------------------------------
# one variant in this process (the subprocess side)
# ----------------------------------------------------------------------------
def _peak_rss_mib():
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def _parse_samples(text):
    out = []
    for part in str(text).split(","):
        part = part.strip()
        if part:
            out.append(int(part) if part.lstrip("-").isdigit() else part)
    return out


def _warm_up(name, X, n_threads, device):
    """First-call costs (kernels, allocator, loky workers) before timing."""
    small = X[:256]
    trains = folds(len(small))
    if name == "batched":
        train_batched(small, trains, 1, n_threads, device)
    elif name == "per_fold":
        train_one_fold(small, trains, 1, device=device)
    elif name == "per_fold_jobs2":
        train_two_folds_jobs2(small, trains, 1, device)


def run_variant(
    name,
    X,
    epochs=EPOCHS,
    S=1000,
    score_rows=SCORE_ROWS,
    device="cpu",
    n_threads=THREADS,
):
    """Time one variant here; return its figures (a JSON-able dict).

    ``name`` is ``"batched"`` (at ``n_threads``), ``"per_fold"`` (1 thread),
    ``"per_fold_jobs2"`` (2 workers of 1 thread) or ``"score"`` (at
    ``n_threads``, S importance samples).
    """
    import numpy as np
    import torch

    trains = folds(len(X))
    _warm_up(name, X, n_threads, device)
    _sync(device)
    load_before = os.getloadavg()
    result = {"variant": name, "rows": len(X), "device": device}
    if name == "batched":
        start = time.perf_counter()
        nets = train_batched(X, trains, epochs, n_threads, device)
        _sync(device)
        wall = time.perf_counter() - start
        durations = _epochs(nets[0])
        result.update(folds_timed=len(trains), threads=n_threads, scale=1)
    elif name == "per_fold":
        start = time.perf_counter()
        nets = train_one_fold(X, trains, epochs, device=device)
        _sync(device)
        wall = time.perf_counter() - start
        durations = _epochs(nets[0])
        result.update(folds_timed=1, threads=1, scale=len(trains))
    elif name == "per_fold_jobs2":
        from joblib.externals.loky import get_reusable_executor

        start = time.perf_counter()
        nets = train_two_folds_jobs2(X, trains, epochs, device=device)
        wall = time.perf_counter() - start
        get_reusable_executor().shutdown(wait=True)  # reap the workers (RSS)
        per_net = [_epochs(net) for net in nets]
        durations = [max(pair) for pair in zip(*per_net)]  # the slower worker
        result.update(folds_timed=2, threads=1, workers=2, scale=len(trains) / 2)
    elif name == "score":
        nets = scoring_models(X, trains, device=device, n_threads=1)  # untimed
        score_folds(nets, X[:4], S, n_threads)  # warm-up: one chunk
        _sync(device)
        rows = min(score_rows, len(X))
        start = time.perf_counter()
        loglik = score_folds(nets, X[:rows], S, n_threads)
        _sync(device)
        seconds = time.perf_counter() - start
        if not np.all(np.isfinite(loglik)):
            raise RuntimeError("non-finite log-likelihoods in the scoring variant")
        per_row = seconds / rows
        result.update(
            S=S,
            threads=n_threads,
            score_rows=rows,
            seconds=seconds,
            seconds_per_row=per_row,
            seconds_all_rows=per_row * len(X),
            models=len(nets),
        )
    else:
        raise ValueError(f"unknown variant {name!r}")
    if name != "score":
        epoch = float(np.mean(durations))
        result.update(
            epochs=len(durations),
            wall_seconds=wall,
            epoch_seconds=durations,
            seconds_per_epoch_timed=epoch,
            seconds_per_epoch=epoch * result["scale"],  # all K folds
            setup_seconds=max(0.0, wall - float(np.sum(durations))) * result["scale"],
        )
    own, children = _peak_rss_mib()
    result["peak_rss_mib"] = own
    result["workers_peak_rss_mib"] = children
    result["total_peak_rss_mib"] = own + result.get("workers", 0) * children
    if str(device).startswith("cuda"):
        result["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    result["loadavg"] = [list(load_before), list(os.getloadavg())]
    return result


def _child_main(args):
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    X = np.load(args.data)
    S = _parse_samples(args.samples)[0]
    res = run_variant(
        args.child, X, args.epochs, S, args.score_rows, args.device, args.threads
    )
    print(json.dumps(res))


# ----------------------------------------------------------------------------
# the whole run (the parent side)
# ----------------------------------------------------------------------------
def _subprocess(variant, data, epochs, S, score_rows, device, n_threads):
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(n_threads)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", variant]
    cmd += ["--data", data, "--epochs", str(epochs), "--samples", str(S)]
    cmd += ["--score-rows", str(score_rows), "--device", device]
    cmd += ["--threads", str(n_threads)]
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(
            f"variant {variant} (S={S}, {n_threads} threads) failed with exit "
            f"{out.returncode}:\n{out.stderr[-4000:]}"
        )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_seconds"] = seconds  # the whole subprocess, imports included
    return result


def machine():
    """What the timings ran on."""
    import torch

    model = platform.processor() or platform.machine()
    mem = None
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                (
                    ln.split(":", 1)[1].strip()
                    for ln in f
                    if ln.startswith("model name")
                ),
                model,
            )
        with open("/proc/meminfo") as f:
            mem = next(
                (int(ln.split()[1]) / 2**20 for ln in f if ln.startswith("MemTotal")),
                None,
            )
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": mem,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
    }


# the training plans: (key, variant, threads, label); MemorizationScorer
# gives one batched unit effective_n_jobs(n_jobs) threads, and each per-fold
# fit (fold_batching=False) one thread in its worker
PLANS = (
    ("batched_1", "batched", 1, "fold-batched, n_jobs=None (1 thread)"),
    ("batched_2", "batched", 2, "fold-batched, n_jobs=2 (2 threads)"),
    ("per_fold", "per_fold", 1, "per-fold, n_jobs=1 (1 thread)"),
    ("per_fold_jobs2", "per_fold_jobs2", 1, "per-fold, n_jobs=2 (2 x 1 thread)"),
)
HOW = {
    "batched_1": "10 folds timed",
    "batched_2": "10 folds timed",
    "per_fold": "fold 0 timed, x10",
    "per_fold_jobs2": "folds 0+1 timed, x5",
}
# which scoring time each plan gets (the threads of its score_folds run):
# the per-fold plans score with score_samples in their workers; their time is
# taken as the 1-thread score_folds time, for n_jobs=2 divided by the
# speed-up n_jobs=2 gave the per-fold training in the same run
PLAN_SCORING = {"batched_1": 1, "batched_2": 2, "per_fold": 1, "per_fold_jobs2": 1}


def _jobs2_speedup(training):
    """Measured speed-up of per-fold training from n_jobs=1 to n_jobs=2."""
    return (
        training["per_fold"]["seconds_per_epoch"]
        / training["per_fold_jobs2"]["seconds_per_epoch"]
    )


def run(
    quick=False,
    rows=None,
    epochs=None,
    samples=None,
    score_rows=None,
    study_epochs=STUDY_EPOCHS,
    device="cpu",
):
    """Measure every variant, each in its own subprocess; return a dict.

    ``samples`` is a sequence of S (``n_importance_samples`` values: ints,
    or ``"auto"`` once available), one scoring row per S and thread count.
    ``quick`` only changes the defaults (fewer rows, 1 epoch, 4 scored rows).
    """
    import numpy as np

    rows = rows or (QUICK_ROWS if quick else ROWS)
    epochs = epochs or (1 if quick else EPOCHS)
    samples = list(samples or SAMPLES)
    score_rows = score_rows or (QUICK_SCORE_ROWS if quick else SCORE_ROWS)
    result = {
        "machine": machine(),
        "config": {
            "quick": bool(quick),
            "rows": rows,
            "features": SIDE * SIDE,
            "folds": K,
            "epochs": epochs,
            "samples": samples,
            "score_rows": score_rows,
            "study_epochs": study_epochs,
            "device": device,
        },
        "loadavg_start": list(os.getloadavg()),
    }
    start = time.perf_counter()
    X = mnist_like(rows)
    result["data"] = {
        "seconds": time.perf_counter() - start,
        "mib": X.nbytes / 2**20,
        "ones": float(X.mean()),
    }
    training, scoring = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench_mnist_") as tmp:
        path = os.path.join(tmp, "mnist_like.npy")
        np.save(path, X)
        del X
        for key, variant, threads, _ in PLANS:
            training[key] = _subprocess(
                variant, path, epochs, 0, score_rows, device, threads
            )
        for S in samples:
            for threads in (1, 2):
                scoring[f"{S}|{threads}"] = _subprocess(
                    "score", path, 1, S, score_rows, device, threads
                )
    result["training"] = training
    result["scoring"] = scoring
    result["study"] = _study(training, scoring, samples, study_epochs)
    result["loadavg_end"] = list(os.getloadavg())
    result["seconds"] = time.perf_counter() - start
    return result


def _study(training, scoring, samples, study_epochs):
    """Hours of the full study for every training plan and every S."""
    out = {}
    for key, *_ in PLANS:
        t = training[key]
        train_h = (t["setup_seconds"] + study_epochs * t["seconds_per_epoch"]) / 3600
        threads = PLAN_SCORING[key]
        speedup = _jobs2_speedup(training) if key == "per_fold_jobs2" else 1.0
        for S in samples:
            score_h = scoring[f"{S}|{threads}"]["seconds_all_rows"] / speedup / 3600
            out[f"{key}|{S}"] = {
                "plan": key,
                "S": S,
                "training_hours": train_h,
                "scoring_hours": score_h,
                "total_hours": train_h + score_h,
            }
    return out


def _load(load):
    return " / ".join(f"{x:.2f}" for x in load)


def table(result):
    """The figures of :func:`run` as markdown (tables and ratios)."""
    m, cfg, data = result["machine"], result["config"], result["data"]
    tr, sc, st = result["training"], result["scoring"], result["study"]
    rows, samples, study_epochs = cfg["rows"], cfg["samples"], cfg["study_epochs"]
    label = {key: text for key, _, _, text in PLANS}
    mem = f", {m['memory_gib']:.0f} GiB RAM" if m.get("memory_gib") else ""
    lines = [
        f"MNIST-size study: {rows:,} x {cfg['features']} binary rows (digits "
        f"upsampled to 28x28, jittered, binarised, {100 * data['ones']:.0f} % ones; "
        f"{data['mib']:.0f} MiB float32, "
        f"made in {data['seconds']:.1f} s), K={cfg['folds']}, default VAEDensity, "
        f"device {cfg['device']}" + (" -- QUICK: fewer rows" if cfg["quick"] else ""),
        f"machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable)"
        f"{mem}, python {m['python']}, torch {m['torch']}; each variant in its own "
        "process with torch.set_num_threads and OMP/MKL/OPENBLAS_NUM_THREADS set "
        "to its thread count",
        f"load average (1/5/15 min): {_load(result['loadavg_start'])} at the "
        f"start, {_load(result['loadavg_end'])} at the end; the run took "
        f"{result['seconds']:.0f} s",
        "",
        f"| training ({cfg['epochs']} epoch(s) measured) | s/epoch (10 folds) "
        f"| setup s | {study_epochs} epochs (h) | peak RSS (MiB) | 1-min load |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, *_ in PLANS:
        t = tr[key]
        hours = (t["setup_seconds"] + study_epochs * t["seconds_per_epoch"]) / 3600
        lines.append(
            f"| {label[key]}: {HOW[key]} | {t['seconds_per_epoch']:.1f} "
            f"| {t['setup_seconds']:.1f} | {hours:.2f} "
            f"| {t['total_peak_rss_mib']:.0f} | {t['loadavg'][1][0]:.2f} |"
        )
    lines += [
        "",
        "| scoring (10 models, `score_folds`) | threads | rows timed | s timed "
        f"| ms/row | all {rows:,} rows (h) | peak RSS (MiB) | 1-min load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in sc.values():
        lines.append(
            f"| S={s['S']} | {s['threads']} | {s['score_rows']} "
            f"| {s['seconds']:.1f} | {1e3 * s['seconds_per_row']:.0f} "
            f"| {s['seconds_all_rows'] / 3600:.2f} | {s['peak_rss_mib']:.0f} "
            f"| {s['loadavg'][1][0]:.2f} |"
        )
    lines += [
        "",
        f"| full study (extrapolated) | S | training h ({study_epochs} epochs) "
        "| scoring h | total h |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, *_ in PLANS:
        for S in samples:
            s = st[f"{key}|{S}"]
            lines.append(
                f"| {label[key]} | {S} | {s['training_hours']:.2f} "
                f"| {s['scoring_hours']:.2f} | {s['total_hours']:.2f} |"
            )
    lines += ["", "ratios (all from this run):"]
    epoch = {key: tr[key]["seconds_per_epoch"] for key, *_ in PLANS}

    def ratio(text, num, den):
        lines.append(f"- {text}: {num / den:.2f}x")

    ratio(
        "s/epoch per-fold n_jobs=1 / fold-batched 1 thread",
        epoch["per_fold"],
        epoch["batched_1"],
    )
    ratio(
        "s/epoch per-fold n_jobs=2 / fold-batched 2 threads",
        epoch["per_fold_jobs2"],
        epoch["batched_2"],
    )
    ratio(
        "s/epoch fold-batched 1 thread / 2 threads (2.00x ideal)",
        epoch["batched_1"],
        epoch["batched_2"],
    )
    ratio(
        "s/epoch per-fold n_jobs=1 / n_jobs=2 (2.00x ideal)",
        epoch["per_fold"],
        epoch["per_fold_jobs2"],
    )
    best = min(epoch, key=epoch.get)
    for key in epoch:
        if key != best:
            ratio(
                f"s/epoch {label[key]} / fastest ({label[best]})",
                epoch[key],
                epoch[best],
            )
    ratio(
        "peak RSS fold-batched (1 thread) / one per-fold fit",
        tr["batched_1"]["peak_rss_mib"],
        tr["per_fold"]["peak_rss_mib"],
    )
    for S in samples:
        one, two = sc[f"{S}|1"], sc[f"{S}|2"]
        ratio(
            f"scoring S={S}, 1 thread / 2 threads (2.00x ideal)",
            one["seconds_per_row"],
            two["seconds_per_row"],
        )
        for key in ("batched_1", "batched_2"):
            s = st[f"{key}|{S}"]
            lines.append(
                f"- S={S}, {label[key]}: scoring is "
                f"{100 * s['scoring_hours'] / s['total_hours']:.0f} % of the study"
            )
        totals = {key: st[f"{key}|{S}"]["total_hours"] for key, *_ in PLANS}
        fastest = min(totals, key=totals.get)
        ratio(
            f"S={S}: full study per-fold n_jobs=1 / fold-batched 1 thread",
            totals["per_fold"],
            totals["batched_1"],
        )
        lines.append(
            f"- S={S}: fastest study plan here: {label[fastest]}, "
            f"{totals[fastest]:.2f} h"
        )
    for a, b in zip(samples, samples[1:]):
        ratio(
            f"scoring S={b} / S={a} (1 thread)",
            sc[f"{b}|1"]["seconds_per_row"],
            sc[f"{a}|1"]["seconds_per_row"],
        )
    lines += [
        "",
        "How: training epochs are skorch's per-epoch durations (mean over the "
        "measured epochs, after a warm-up fit); per-fold epochs are one fold's "
        "(x10) or one concurrent pair's (x5, the slower worker); setup is the "
        "rest of the fit's wall time, counted once per study (x10 / x5 for the "
        "per-fold plans). Scoring is timed on the first "
        f"{cfg['score_rows']} rows and extrapolated linearly to {rows:,}; the "
        "per-fold plans get the 1-thread `score_folds` time (for n_jobs=2 divided "
        f"by the {_jobs2_speedup(tr):.2f}x that n_jobs=2 gave per-fold training "
        "here). Peak RSS is each measuring process's ru_maxrss (n_jobs=2: "
        "parent + 2 x the larger worker) and includes the whole data set.",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# asv
# ----------------------------------------------------------------------------
class MNISTEpochSuite:
    """One epoch of the K=10 default VAEs on 6,000 MNIST-like rows.

    2 threads unless the name says otherwise.
    """

    rows = 6_000
    timeout = 600

    def setup(self):
        import torch

        torch.set_num_threads(THREADS)
        self.X = mnist_like(self.rows)
        self.trains = folds(self.rows)

    def time_batched_epoch(self):
        train_batched(self.X, self.trains, epochs=1)

    def time_batched_epoch_1_thread(self):
        train_batched(self.X, self.trains, epochs=1, n_threads=1)

    def peakmem_batched_epoch(self):
        train_batched(self.X, self.trains, epochs=1)

    def time_one_fold_epoch(self):
        train_one_fold(self.X, self.trains, epochs=1)


class MNISTScoringSuite:
    """IWAE scores of 16 MNIST-like rows under each of the K=10 VAEs."""

    params = [1000]
    param_names = ["n_importance_samples"]
    rows = 16
    timeout = 600

    def setup(self, S):
        import torch

        torch.set_num_threads(THREADS)
        self.X = mnist_like(SCORING_TRAIN_ROWS)
        self.nets = scoring_models(self.X, folds(len(self.X)))
        score_folds(self.nets, self.X[:4], S)

    def time_score_folds(self, S):
        score_folds(self.nets, self.X[: self.rows], S)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="2,000 rows, 1 epoch (~1 minute)"
    )
    parser.add_argument("--rows", type=int, default=None, help="data rows (60,000)")
    parser.add_argument(
        "--epochs", type=int, default=None, help="epochs measured per variant (1)"
    )
    parser.add_argument(
        "--samples",
        default=None,
        help="comma-separated S for scoring, e.g. 256,1000 or auto (1000)",
    )
    parser.add_argument(
        "--score-rows", type=int, default=None, help="rows scored and extrapolated"
    )
    parser.add_argument("--study-epochs", type=int, default=STUDY_EPOCHS)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--json", default=None, help="also write the dict here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=THREADS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child_main(args)
        return
    result = run(
        quick=args.quick,
        rows=args.rows,
        epochs=args.epochs,
        samples=_parse_samples(args.samples) if args.samples else None,
        score_rows=args.score_rows,
        study_epochs=args.study_epochs,
        device=args.device,
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    print(table(result))


if __name__ == "__main__":
    main()
