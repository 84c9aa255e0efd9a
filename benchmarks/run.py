"""Run the whole performance suite quickly and print markdown tables.

    python benchmarks/run.py            # full: 50 epochs, S=128 and S=1000
    python benchmarks/run.py --quick    # 5 epochs, S=128 only (a minute)

1. The core table of ``bench_core`` (closed-form KDE vs refits, GMM n_jobs).
2. VAE K=10 on digits: sequential skorch fits vs joblib n_jobs=2 vs
   fold-batched training; IWAE scoring of all K models (loop vs
   ``score_folds``). Every variant runs in its own subprocess, so its peak
   RSS is its own (torch CPU tensors are invisible to tracemalloc).
3. The arithmetic floors: the matmul FLOPs of the batched training and of
   the IWAE scoring, at the GFLOP/s this machine reaches on matrix products
   of the same shapes.
4. Scale (``bench_scale``): the closed-form KDE at n=20,000 against its
   floor loop, at n_jobs 1 and 2, the peak memory of exact LeaveOneOut
   at n=20,000 and n=100,000, and adaptive importance sampling against
   fixed S on digits.
5. Deep-model units (``bench_deep``): the conv VAE fold-batched (per-fold
   and grouped convolutions) vs sequential fits, and the cost of saving
   and restoring a training state (``--skip-deep`` leaves it out).
6. MNIST-size (``bench_mnist``): a K=10 study of the default VAE on a
   synthetic 60,000 x 784 set: seconds per epoch fold-batched vs per fold,
   scoring at S=1000 and adaptive S, peak memory, the extrapolated study
   (about 8 minutes; ``--skip-mnist`` leaves it out).

The VAE variants run ``--repeats`` times (3 by default), interleaved, and
the median is reported with the range of the runs: a shared 2-core VM drifts
by tens of percent over minutes.

All ratios come from this one run.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from benchmarks.bench_core import _table  # noqa: E402
from benchmarks.bench_core import run as run_core  # noqa: E402
from benchmarks.bench_scale import adaptive_sampling, adaptive_table  # noqa: E402
from benchmarks.bench_scale import run as run_scale  # noqa: E402
from benchmarks.bench_scale import table as scale_table  # noqa: E402


def _subprocess(variant, epochs, samples=1000, device="cpu"):
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    env["SKLEARN_MEM_BENCH_DEVICE"] = device
    cmd = [
        sys.executable,
        os.path.join(HERE, "bench_speed.py"),
        "--variant",
        variant,
        "--epochs",
        str(epochs),
        "--samples",
        str(samples),
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median_run(runs):
    """The run of median time, with the spread of all runs' times."""
    runs = sorted(runs, key=lambda r: r["seconds"])
    mid = dict(runs[len(runs) // 2])
    mid["spread"] = (runs[0]["seconds"], runs[-1]["seconds"])
    mid["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs)
    mid["workers_peak_rss_mib"] = max(r["workers_peak_rss_mib"] for r in runs)
    return mid


def vae_rows(epochs, samples_grid, repeats=1, device="cpu"):
    """Every variant ``repeats`` times, interleaved; the median of each.

    A shared 2-core VM drifts by tens of percent over minutes; interleaving
    the variants (round 1 of each, then round 2, ...) exposes them to the
    same drift, and the median drops a disturbed round.
    """
    jobs = [(v, None) for v in ("one_fold", "sequential", "joblib", "batched")]
    scorers = ("score_loop", "score_folds", "score_folds_bf16")
    jobs += [(v, S) for S in samples_grid for v in scorers]
    # one scoring chunk of every model: a loop (score_folds) vs torch.func.vmap
    jobs += [(v, samples_grid[-1]) for v in ("score_chunk_loop", "score_chunk_vmap")]
    runs = {}
    for _ in range(repeats):
        for variant, S in jobs:
            key = variant if S is None else (variant, S)
            res = _subprocess(variant, epochs, S or 1000, device)
            runs.setdefault(key, []).append(res)
    return {key: _median_run(r) for key, r in runs.items()}


def _timer(device):
    """perf_counter that waits for the device's queued work first."""
    import torch

    def now():
        if device != "cpu":
            torch.cuda.synchronize()
        return time.perf_counter()

    return now


def matmul_floor(epochs, n_threads=2, K=10, B=128, device="cpu"):
    """Seconds the batched training's matmuls need at this machine's bmm speed."""
    import torch
    from sklearn.datasets import load_digits

    torch.set_num_threads(n_threads)
    now = _timer(device)
    n = len(load_digits().data)
    layers = [(64, 256), (256, 128), (128, 16), (8, 128), (128, 256), (256, 64)]
    flops_step, seconds_step = 0.0, 0.0
    for i, (a, b) in enumerate(layers):
        x = torch.randn(K, B, a, device=device)
        w = torch.randn(K, a, b, device=device)
        g = torch.randn(K, B, b, device=device)
        calls = [(x, w), (x.transpose(1, 2), g)]  # forward, weight gradient
        if i:  # input gradient, except for the first layer
            calls.append((g, w.transpose(1, 2)))
        for left, right in calls:
            for _ in range(5):
                torch.bmm(left, right)
            reps = 50
            start = now()
            for _ in range(reps):
                torch.bmm(left, right)
            seconds_step += (now() - start) / reps
            flops_step += 2.0 * K * B * a * b
    steps = epochs * -(-int(n * 0.9) // B)
    return flops_step * steps, seconds_step * steps


def scoring_floor(S, n_threads=2, K=10, rows=4096, device="cpu"):
    """Seconds the IWAE decoder matmuls of K models need at this machine's speed.

    The decoder (latent 8 -> 128 -> 256 -> 64) runs on every row x sample
    pair of every model; the encoder (once per row) is negligible.
    """
    import torch
    from sklearn.datasets import load_digits

    torch.set_num_threads(n_threads)
    now = _timer(device)
    n = len(load_digits().data)
    layers = [(8, 128), (128, 256), (256, 64)]
    flops_row, seconds = 0.0, 0.0
    for a, b in layers:
        x, w = torch.randn(rows, a, device=device), torch.randn(a, b, device=device)
        bias, out = torch.randn(b, device=device), torch.empty(rows, b, device=device)
        for _ in range(5):
            torch.addmm(bias, x, w, out=out)
        reps = 50
        start = now()
        for _ in range(reps):
            torch.addmm(bias, x, w, out=out)
        seconds += (now() - start) / reps
        flops_row += 2.0 * a * b
    total_rows = K * n * S
    return flops_row * total_rows, seconds * total_rows / rows


def vae_table(
    r,
    epochs,
    samples_grid,
    floor,
    score_floors=None,
    device="cpu",
    gap=None,
    gap_samples=None,
):
    where = "2 threads" if device == "cpu" else device
    seq = r["sequential"]["seconds"]
    job = r["joblib"]["seconds"]
    bat = r["batched"]["seconds"]
    one = r["one_fold"]
    lines = [
        f"VAE K=10 on digits, {epochs} epochs (Bernoulli MLP, default sizes)",
        "",
        "| variant | time (s) | runs (s) | peak RSS (MiB) | vs sequential "
        "| vs batched |",
        "|---|---:|---:|---:|---:|---:|",
    ]

    def row(name, res, extra=""):
        s = res["seconds"]
        lo, hi = res.get("spread", (s, s))
        rss = max(res["peak_rss_mib"], res["workers_peak_rss_mib"])
        if "gpu_peak_mib" in res:
            extra += f" (GPU {res['gpu_peak_mib']:.0f})"
        lines.append(
            f"| {name} | {s:.2f} | {lo:.2f}–{hi:.2f} | {rss:.0f}{extra} "
            f"| {seq / s:.2f}x | {s / bat:.2f}x |"
        )

    row("one fold's fit (1 thread)", one)
    row("sequential skorch fits (1 thread)", r["sequential"])
    row("joblib n_jobs=2 (1 thread each)", r["joblib"], " per process")
    row("fold-batched fit_folds (2 threads)", r["batched"])
    for S in samples_grid:
        row(f"IWAE S={S}, loop of score_samples", r[("score_loop", S)])
        row(f"IWAE S={S}, score_folds", r[("score_folds", S)])
        if ("score_folds_bf16", S) in r:
            row(f"IWAE S={S}, score_folds, bfloat16", r[("score_folds_bf16", S)])
    flops, floor_s = floor
    mem = max(r["batched"]["peak_rss_mib"], 1) / max(one["peak_rss_mib"], 1)
    lines += [
        "",
        f"- batched vs sequential: {seq / bat:.2f}x (target >= 8x); "
        f"vs joblib n_jobs=2: {job / bat:.2f}x (target >= 2.5x)",
        f"- peak RSS batched / one fold's fit: {mem:.2f} (target <= 1.5)",
    ]
    for S in samples_grid:
        s = r[("score_folds", S)]["seconds"]
        lines.append(
            f"- IWAE S={S} of all K models (score_folds) / batched training: "
            f"{s / bat:.2f}x (target <= 2x at S=1000); loop / score_folds: "
            f"{r[('score_loop', S)]['seconds'] / s:.2f}x"
        )
        if ("score_folds_bf16", S) in r:
            low = r[("score_folds_bf16", S)]["seconds"]
            lines.append(
                f"- the same with score_precision='bfloat16': {low / bat:.2f}x the "
                f"batched training; {s / low:.2f}x faster than float32"
            )
    for S, (flops_s, secs_s) in (score_floors or {}).items():
        s = r[("score_folds", S)]["seconds"]
        lines.append(
            f"- matmul floor of IWAE S={S} for all K models: {flops_s / 1e9:.0f} "
            f"GFLOP in {secs_s:.2f} s ({flops_s / secs_s / 1e9:.0f} GFLOP/s, "
            f"{where}); score_folds {s:.2f} s = {s / secs_s:.1f}x the floor"
        )
    S = samples_grid[-1]
    if ("score_chunk_vmap", S) in r:
        from benchmarks.bench_speed import CHUNK_REPS

        loop = r[("score_chunk_loop", S)]["seconds"] / CHUNK_REPS * 1e3
        vm = r[("score_chunk_vmap", S)]["seconds"] / CHUNK_REPS * 1e3
        lines.append(
            f"- one IWAE chunk (S={S}) under all K models: loop over the models "
            f"{loop:.1f} ms, torch.func.vmap over their stacked parameters "
            f"{vm:.1f} ms ({vm / loop:.2f}x the loop; score_folds loops)"
        )
    lines.append(
        f"- matmul floor of the batched training: {flops / 1e9:.0f} GFLOP in "
        f"{floor_s:.2f} s at this machine's bmm speed ({flops / floor_s / 1e9:.0f} "
        f"GFLOP/s, {where}); measured {bat:.2f} s = {bat / floor_s:.1f}x the floor"
    )
    if gap is not None:
        b16, seed = gap["bf16"], gap["seed"]
        lines.append(
            f"- bfloat16 vs float32 scoring of the {epochs}-epoch models at "
            f"S={gap_samples}: |d log p| median {b16['loglik_median']:.1e}, max "
            f"{b16['loglik_max']:.1e}; |d M| median {b16['mem_median']:.1e}, max "
            f"{b16['mem_max']:.1e} nats. Another score_seed moves them by "
            f"{seed['loglik_median']:.1e} / {seed['loglik_max']:.1e} and "
            f"{seed['mem_median']:.1e} / {seed['mem_max']:.1e} (the Monte Carlo "
            "noise)"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 epochs, S=128 only")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--skip-core", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-deep", action="store_true")
    parser.add_argument("--skip-mnist", action="store_true")
    parser.add_argument(
        "--device",
        default="cpu",
        help="where the VAE variants train and score: cpu (default) or cuda",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="interleaved runs of each VAE variant, median reported "
        "(default 3, or 1 with --quick)",
    )
    args = parser.parse_args(argv)
    epochs = args.epochs or (5 if args.quick else 50)
    samples_grid = [128] if args.quick else [128, 1000]
    print(
        f"machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, python {platform.python_version()}"
    )
    if not args.skip_core:
        print()
        print(_table(run_core(repeat=1 if args.quick else 3)))
    if not args.skip_scale:
        print()
        print(scale_table(*run_scale(quick=args.quick)))
        print()
        print(adaptive_table(adaptive_sampling(epochs=5 if args.quick else 20)))
    print()
    repeats = args.repeats or (1 if args.quick else 3)
    dev = args.device
    results = vae_rows(epochs, samples_grid, repeats, dev)
    score_floors = {S: scoring_floor(S, device=dev) for S in samples_grid}
    floor = matmul_floor(epochs, device=dev)
    S = samples_grid[-1]
    gap = _subprocess("precision_gap", epochs, S, dev)
    print(f"VAE variants on {dev}: median of {repeats} interleaved run(s)")
    print(vae_table(results, epochs, samples_grid, floor, score_floors, dev, gap, S))
    if not args.skip_deep:
        from benchmarks.bench_deep import run as run_deep
        from benchmarks.bench_deep import table as deep_table

        print()
        print(deep_table(run_deep(quick=args.quick, device=dev)))
    if not args.skip_mnist:
        from benchmarks import bench_mnist

        print()
        result = bench_mnist.run(quick=args.quick, samples=[1000, "auto"], device=dev)
        print(bench_mnist.table(result))


if __name__ == "__main__":
    main()
