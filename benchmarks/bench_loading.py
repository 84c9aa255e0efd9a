"""Peak memory of the command's data loader against the naive way.

Each loader runs in a fresh interpreter, and its peak resident memory
(``ru_maxrss``) above the interpreter's baseline is compared with the size
of the array it returns. The naive way reads every CSV row into Python
lists of strings, then converts them, which is what the loader did before
it streamed. Also shown: the peak memory of loading a ``.npz`` of zeros
(a few MB on disk for a GiB of data), and how long a ``.npy`` header that
claims 7 TiB takes to be refused. Run::

    python benchmarks/bench_loading.py [--rows 1000000] [--cols 10] [--npz-gib 1]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import zipfile

import numpy as np

_MEASURE = r"""
import resource, sys, time
import numpy as np
from sklearn_mem.cli import load_data  # imported before the baseline, for both
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kind, path = sys.argv[1], sys.argv[2]
start = time.perf_counter()
if kind == "naive":
    import csv
    with open(path, newline="") as fh:
        rows = [row for row in csv.reader(fh) if row]
    X = np.array([[float(c) for c in row] for row in rows[1:]])
    del rows
else:
    X = load_data(path, **({"header": "yes"} if path.endswith(".csv") else {})).X
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((peak - base) * 1024, X.nbytes, seconds)
"""


def _measure(kind, path):
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, kind, str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[0]), int(out[1]), float(out[2])


def _refusal_seconds(path):
    from sklearn_mem.cli import CLIError, load_data

    start = time.perf_counter()
    try:
        load_data(path)
    except CLIError as exc:
        return time.perf_counter() - start, str(exc)
    raise AssertionError(f"{path} was loaded")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cols", type=int, default=10)
    parser.add_argument("--npz-gib", type=float, default=1.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = os.path.join(tmp, "data.csv")
        rng = np.random.RandomState(0)
        X = rng.rand(args.rows, args.cols)
        header = ",".join(f"f{j}" for j in range(args.cols))
        np.savetxt(csv_path, X, delimiter=",", header=header, comments="", fmt="%.6f")
        del X
        size = os.path.getsize(csv_path) / 2**20
        print(f"CSV of {args.rows} x {args.cols} ({size:.0f} MiB)")
        print("| loader | peak RSS above baseline | array | ratio | seconds |")
        print("|---|---|---|---|---|")
        for kind in ("naive", "load_data"):
            peak, nbytes, seconds = _measure(kind, csv_path)
            print(
                f"| {kind} | {peak / 2**20:.0f} MiB | {nbytes / 2**20:.0f} MiB | "
                f"{peak / nbytes:.2f}x | {seconds:.1f} |"
            )

        bomb = os.path.join(tmp, "zeros.npz")
        n_bytes = int(args.npz_gib * 2**30) // 8 * 8
        with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            with zf.open("X.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array_header_1_0(
                    fh,
                    {"descr": "<f8", "fortran_order": False, "shape": (n_bytes // 8,)},
                )
                chunk = bytes(2**24)
                for start in range(0, n_bytes, len(chunk)):
                    fh.write(chunk[: n_bytes - start])
        peak, nbytes, seconds = _measure("load_data", bomb)
        print(
            f"\n.npz holding {args.npz_gib:g} GiB of zeros "
            f"({os.path.getsize(bomb) / 2**20:.1f} MiB on disk): loaded with a peak "
            f"of {peak / 2**30:.2f} GiB above baseline ({peak / nbytes:.2f}x the "
            f"array) in {seconds:.1f} s; refused before reading when its declared "
            "size exceeds the available memory"
        )
        huge = os.path.join(tmp, "huge.npy")
        with open(huge, "wb") as fh:
            np.lib.format.write_array_header_1_0(
                fh, {"descr": "<f8", "fortran_order": False, "shape": (7 * 2**40 // 8,)}
            )
            fh.write(bytes(1024))
        seconds, message = _refusal_seconds(huge)
        print(
            f".npy header claiming 7 TiB: refused in {seconds * 1000:.1f} ms: {message}"
        )


if __name__ == "__main__":
    main()
