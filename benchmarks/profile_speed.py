"""Where the time of the deep-model path goes: torch profiler tables.

    python benchmarks/profile_speed.py train            # fold-batched training
    python benchmarks/profile_speed.py score --rows 200 # score_folds at S=1000
    python benchmarks/profile_speed.py score --precision bfloat16
    python benchmarks/profile_speed.py train --threads 1 --epochs 10

Prints the operators by self CPU time, grouped by input shape, for the
fold-batched training of K=10 VAEs on digits (``VAEDensity.fit_folds``) or
for scoring them all (``VAEDensity.score_folds``). The profiler adds its own
overhead per operator and attributes memory stalls to whichever operator
meets them, so read the table for proportions, and confirm any change with
``benchmarks/run.py`` (A/B, interleaved).
"""

import argparse
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import bench_speed as bs  # noqa: E402


def profile_training(epochs, threads):
    X = bs.digits()
    trains = bs.folds(X)
    bs.train_batched(X, trains, epochs=1, n_threads=threads)  # warm up
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        bs.train_batched(X, trains, epochs=epochs, n_threads=threads)
    return prof


def profile_scoring(rows, samples, threads, precision="float32"):
    X = bs.digits()
    nets = bs.trained(X, bs.folds(X), samples)
    nets = [bs.clone_fitted(net, score_precision=precision) for net in nets]
    bs.score_folds(nets, X[:8], n_threads=threads)  # warm up
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        bs.score_folds(nets, X[:rows], n_threads=threads)
    return prof


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["train", "score"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--precision",
        choices=["float32", "bfloat16"],
        default="float32",
        help="score: the score_precision of the models",
    )
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.what == "train":
        prof = profile_training(args.epochs, args.threads)
    else:
        prof = profile_scoring(args.rows, args.samples, args.threads, args.precision)
    table = prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total",
        row_limit=args.top,
        max_name_column_width=32,
        max_shapes_column_width=60,
    )
    print(table)


if __name__ == "__main__":
    main()
