"""The ``sklearn-mem`` command (first version: a study of digits)."""

import argparse
import sys

import numpy as np


def main(argv=None):
    """Run a memorization study of scikit-learn's digits and print a summary."""
    from sklearn.datasets import load_digits
    from sklearn.mixture import GaussianMixture

    from . import MemorizationScorer

    parser = argparse.ArgumentParser(prog="sklearn-mem", description=main.__doc__)
    parser.add_argument("command", nargs="?", default="run", choices=["run"])
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    X = load_digits().data / 16.0
    mem = MemorizationScorer(
        GaussianMixture(10, reg_covar=1e-2),
        cv=args.folds,
        n_jobs=args.jobs,
        random_state=args.seed,
        verbose=1,
    ).fit(X)
    M = mem.memorization_scores_
    q = np.quantile(M, [0.5, 0.95, 0.99])
    print(f"digits: {X.shape[0]} samples, GaussianMixture(10), {args.folds} folds")
    print(f"memorization (nats): median {q[0]:.3f}, q95 {q[1]:.3f}, q99 {q[2]:.3f}")
    print("most memorized samples:", np.argsort(M)[::-1][:10].tolist())
    return 0


if __name__ == "__main__":
    sys.exit(main())
