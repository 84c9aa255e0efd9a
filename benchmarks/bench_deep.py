"""Deep-model units: the conv VAE fold-batched, and what saving the state costs.

Measured in one run, on scikit-learn's digits (1797 x 64, scaled to [0, 1]),
K=10 folds, one torch thread, ratios taken between variants of the same run:

1. ``conv``: the convolutional VAE (``input_shape=(1, 8, 8)``, and on
   the same digits as 28 x 28 binary images: MNIST's size; default
   channels (32, 64), latent 8, batch 128) trained as 10 sequential fits
   against one fold-batched model, with its stacked convolutions run per
   fold (the default on the CPU) and as one grouped convolution (the
   default on a GPU; ``--device cuda`` trains these variants there):
   seconds per epoch, and how far the batched fits are from the sequential
   ones (largest relative difference of the log-likelihoods of 200 rows,
   largest absolute difference of a weight).
2. ``convlayer``: the convolutions alone (the encoder's two stride-2
   layers, forward and backward, 10 folds x 128 images): one convolution
   per fold, one grouped convolution, and ``torch.func.vmap`` over the
   folds -- the measurement behind the per-fold form on the CPU.
3. ``resume``: a fold-batched run's training state saved into the cache
   (``TrainingStateStore``, what ``MemorizationScorer(memory=...)`` uses):
   seconds per epoch of the default MLP VAE without saving and with a save
   after every epoch, the state's size on disk, and the time to read it
   back and restore it (the start of a resumed run). The default schedule
   (``save_state_seconds=60``) costs one save per minute of training.
4. ``killed``: the whole story, in separate processes. A
   ``MemorizationScorer(memory=...)`` study (default MLP VAE, KFold(5),
   a state saved every 2 epochs) is run once uninterrupted; then it is
   started again, killed with SIGKILL half-way through its training (half
   an interval between saves after the middle epoch), and run a third
   time, which resumes. Reported: the uninterrupted fit's
   seconds, the seconds until the kill, the rerun's seconds, and the resume
   overhead ``(until kill + rerun) / uninterrupted`` (1.0 would lose
   nothing; without saved states the rerun starts from scratch), and
   whether the rerun's scores equal the uninterrupted ones bit for bit.

Usage::

    python benchmarks/bench_deep.py            # everything, 3 interleaved runs
    python benchmarks/bench_deep.py --quick    # 1 run, fewer epochs
    python benchmarks/bench_deep.py --device cuda   # the conv variants on a GPU

``benchmarks/run.py`` calls :func:`run` and prints :func:`table`.
asv: :class:`ConvBatchedSuite` and :class:`ResumeSuite`.
"""

import argparse
import os
import platform
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import KFold  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sklearn_mem._folds import STATE_DIR, TrainingStateStore  # noqa: E402
from sklearn_mem.models import VAEDensity, _batched  # noqa: E402

K = 10


def digits():
    return load_digits().data / 16.0


def folds(X, k=K):
    return [train for train, _ in KFold(k, shuffle=True, random_state=0).split(X)]


def mnist_size():
    """Digits as 28 x 28 binary images (pixels tripled, a 2-pixel border)."""
    images = load_digits().data.reshape(-1, 8, 8) / 16.0
    big = np.pad(np.kron(images, np.ones((3, 3))), ((0, 0), (2, 2), (2, 2)))
    return (big > 0.5).astype(float).reshape(len(big), -1)


def conv_vae(epochs, device="cpu", size=8):
    return VAEDensity(
        architecture="conv",
        input_shape=(1, size, size),
        max_epochs=epochs,
        n_importance_samples=16,
        device=device,
    )


def mlp_vae(epochs, **params):
    return VAEDensity(max_epochs=epochs, n_importance_samples=16, **params)


def clones(est, n=K):
    return [clone(est).set_params(random_state=s) for s in range(n)]


class _grouped_convs:
    """Stacked convolutions grouped (``on``) or per fold, on every device."""

    def __init__(self, on=True):
        self.on = on

    def __enter__(self):
        self.saved = _batched._GROUPED_CONV_DEVICES
        _batched._GROUPED_CONV_DEVICES = ("cuda", "cpu") if self.on else ()

    def __exit__(self, *exc):
        _batched._GROUPED_CONV_DEVICES = self.saved


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _agreement(sequential, batched, X):
    rel = max(
        float(np.max(np.abs(b.score_samples(X) / s.score_samples(X) - 1.0)))
        for s, b in zip(sequential, batched)
    )
    weight = max(
        float((p - q).detach().abs().max())
        for s, b in zip(sequential, batched)
        for p, q in zip(s.module_.parameters(), b.module_.parameters())
    )
    return rel, weight


def conv_rows(epochs=2, repeats=3, device="cpu", size=8):
    """Seconds per epoch of the conv VAE: sequential vs fold-batched (2 forms).

    ``size`` 8: digits; 28: digits as MNIST-size images (:func:`mnist_size`).
    The form used by default on ``device`` is marked "(default here)".
    """
    X = digits() if size == 8 else mnist_size()
    trains = folds(X)
    est = conv_vae(epochs, device, size)
    grouped_here = device.split(":")[0] in _batched._GROUPED_CONV_DEVICES

    def sequential():
        return [c.fit(X[t]) for c, t in zip(clones(est), trains)]

    def batched(grouped):
        with _grouped_convs(grouped):
            return est.fit_folds(clones(est), X, trains)

    variants = {
        "sequential": sequential,
        "batched, per-fold convolutions"
        + ("" if grouped_here else " (default here)"): lambda: batched(False),
        "batched, one grouped convolution"
        + (" (default here)" if grouped_here else ""): lambda: batched(True),
    }
    times = {name: [] for name in variants}
    fitted = {}
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for _ in range(repeats):  # interleaved: the machine's load hits all
        for name, fn in variants.items():
            sync()
            seconds, fitted[name] = _timed(lambda fn=fn: (fn(), sync())[0])
            times[name].append(seconds / epochs)
    rows = {name: float(np.median(t)) for name, t in times.items()}
    agreement = {
        name: _agreement(fitted["sequential"], fitted[name], X[:200])
        for name in variants
        if name != "sequential"
    }
    return rows, agreement


def convlayer_rows(repeats=20, B=128, size=8):
    """One stack of the encoder's convolutions: per fold, grouped, vmap."""
    F = torch.nn.functional
    gen = torch.Generator().manual_seed(0)
    chans = [1, 32, 64]
    x = torch.randn(K, B, 1, size, size, generator=gen)
    weights = [
        torch.randn(K, chans[i + 1], chans[i], 3, 3, generator=gen).requires_grad_()
        for i in range(2)
    ]
    biases = [
        torch.randn(K, chans[i + 1], generator=gen).requires_grad_() for i in range(2)
    ]

    def per_fold():
        outs = []
        for k in range(K):
            h = x[k]
            for w, b in zip(weights, biases):
                h = F.conv2d(h, w[k], b[k], stride=2, padding=1).relu()
            outs.append(h)
        torch.stack(outs).sum().backward()

    def grouped():
        h = x.transpose(0, 1).reshape(B, K, size, size)
        for w, b in zip(weights, biases):
            h = F.conv2d(
                h, w.flatten(0, 1), b.flatten(), stride=2, padding=1, groups=K
            ).relu()
        h.sum().backward()

    def one(xk, w0, b0, w1, b1):
        h = F.conv2d(xk, w0, b0, stride=2, padding=1).relu()
        return F.conv2d(h, w1, b1, stride=2, padding=1).relu()

    vmapped_fn = torch.func.vmap(one)

    def vmapped():
        vmapped_fn(x, weights[0], biases[0], weights[1], biases[1]).sum().backward()

    variants = {"per fold": per_fold, "grouped": grouped, "vmap": vmapped}
    times = {name: [] for name in variants}
    for fn in variants.values():
        fn()  # warm-up
    for _ in range(repeats):
        for name, fn in variants.items():
            times[name].append(_timed(fn)[0])
    return {name: float(np.median(t)) for name, t in times.items()}


def _state_size(path):
    return os.path.getsize(path) / 2**20


def resume_rows(epochs=4, repeats=3):
    """What saving the training state costs, for the default (MLP) VAE.

    Returns seconds per epoch without saving and with a save after every
    epoch, the state's size (MiB), the seconds to read a state back and
    restore it (a resumed fit whose state is after the last epoch: no
    training, only setup and restore), and the same for the conv VAE's
    state size.
    """
    X = digits()
    trains = folds(X)
    plain = mlp_vae(epochs, save_state_every=None, save_state_seconds=None)
    saving = mlp_vae(epochs, save_state_every=1)
    times = {"no saving": [], "a save every epoch": [], "restore": []}
    size = None
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            times["no saving"].append(
                _timed(lambda: plain.fit_folds(clones(plain), X, trains))[0] / epochs
            )
            store = TrainingStateStore(tmp, f"unit{r}")
            seconds, _ = _timed(
                lambda store=store: saving.fit_folds(
                    clones(saving), X, trains, checkpoint=store
                )
            )
            times["a save every epoch"].append(seconds / epochs)
            size = _state_size(store.path)
            # the state is after the last epoch: a rerun only restores it
            restore, _ = _timed(
                lambda store=store: saving.fit_folds(
                    clones(saving), X, trains, checkpoint=store
                )
            )
            times["restore"].append(restore)
        conv_store = TrainingStateStore(tmp, "conv")
        conv = conv_vae(1).set_params(save_state_every=1)
        conv.fit_folds(clones(conv), X, trains, checkpoint=conv_store)
        conv_size = _state_size(conv_store.path)
    rows = {name: float(np.median(t)) for name, t in times.items()}
    rows["state MiB"] = size
    rows["conv state MiB"] = conv_size
    return rows


KILLED_STUDY = """
import sys, time
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import KFold
from sklearn_mem import MemorizationScorer
from sklearn_mem.models import VAEDensity

X = load_digits().data / 16.0
vae = VAEDensity(max_epochs=int(sys.argv[2]), n_importance_samples=100,
                 save_state_every=2)
mem = MemorizationScorer(vae, cv=KFold(5, shuffle=True, random_state=0),
                         memory=sys.argv[1], random_state=0, refit=False)
print("start", flush=True)
start = time.perf_counter()
mem.fit(X)
print("seconds", time.perf_counter() - start, flush=True)
np.save(sys.argv[3], mem.memorization_scores_)
"""


def _study_process(memory, epochs, out):
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, "-c", KILLED_STUDY, str(memory), str(epochs), str(out)],
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path},
        stdout=subprocess.PIPE,
        text=True,
    )


def _fit_seconds(proc):
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"the study failed:\n{out}")
    return float(out.split("seconds")[1].split()[0])


def _saved_epoch(memory, last):
    """The epoch of the state saved under ``memory``; ``last`` when unchanged.

    ``last`` is ``(stamp, epoch)`` of the previous look; a state is read
    only when its file changed (reading it takes CPU from the study).
    """
    from pathlib import Path

    for path in Path(memory, STATE_DIR).glob("*/state.npz"):
        try:
            stamp = path.stat().st_mtime_ns
        except FileNotFoundError:
            continue
        if stamp == last[0]:
            return last
        loaded = TrainingStateStore(memory, path.parent.name).load()
        if loaded is not None:
            return stamp, int(loaded[1]["epoch"])
    return last


def killed_rows(epochs=20):
    """A study killed with SIGKILL half-way, then resumed (separate processes).

    The kill lands half-way between two saves after the middle epoch (the
    time between the two saves before it is measured), so the rerun loses
    about one epoch of work, as an unlucky kill at a random time would.
    """
    import signal

    with tempfile.TemporaryDirectory() as tmp:
        ref_out, out = os.path.join(tmp, "ref.npy"), os.path.join(tmp, "out.npy")
        uninterrupted = _fit_seconds(
            _study_process(os.path.join(tmp, "ref"), epochs, ref_out)
        )
        memory = os.path.join(tmp, "cache")
        proc = _study_process(memory, epochs, out)
        assert proc.stdout.readline().startswith("start")
        start = time.perf_counter()
        seen, interval, last = {}, None, (None, 0)
        while proc.poll() is None:
            last = _saved_epoch(memory, last)
            epoch = last[1]
            if epoch not in seen:
                seen[epoch] = time.perf_counter()
                if epoch >= epochs // 2 and len(seen) >= 3:
                    times = sorted(seen.values())
                    interval = times[-1] - times[-2]
                    break
            time.sleep(0.02)
        if interval is None:
            raise RuntimeError("the study ended before it could be killed")
        time.sleep(interval / 2)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        until_kill = time.perf_counter() - start
        rerun = _fit_seconds(_study_process(memory, epochs, out))
        identical = bool(np.array_equal(np.load(ref_out), np.load(out)))
    return {
        "uninterrupted": uninterrupted,
        "until kill": until_kill,
        "rerun": rerun,
        "overhead": (until_kill + rerun) / uninterrupted,
        "identical": identical,
        "epochs": epochs,
    }


def run(quick=False, repeats=None, device="cpu"):
    """Every measurement of this script; pass the result to :func:`table`.

    ``device`` is where the conv VAE variants train (the other
    measurements are on the CPU).
    """
    repeats = repeats or (1 if quick else 3)
    torch.set_num_threads(1)
    conv, agreement = conv_rows(
        epochs=1 if quick else 2, repeats=repeats, device=device
    )
    mnist, mnist_agreement = conv_rows(
        epochs=1, repeats=repeats, device=device, size=28
    )
    return {
        "conv": conv,
        "mnist": mnist,
        "mnist agreement": mnist_agreement,
        "agreement": agreement,
        "convlayer": convlayer_rows(repeats=5 if quick else 20),
        "resume": resume_rows(epochs=2 if quick else 4, repeats=repeats),
        "killed": killed_rows(epochs=8 if quick else 40),
        "repeats": repeats,
        "device": device,
    }


def _conv_table(title, conv, agreement):
    seq = conv["sequential"]
    lines = [
        title,
        "",
        "| variant | s/epoch | speed-up vs sequential | max rel. diff. log p "
        "| max abs. diff. weight |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, seconds in conv.items():
        diff = "- | -"
        if name in agreement:
            diff = "{:.1e} | {:.1e}".format(*agreement[name])
        lines.append(f"| {name} | {seconds:.3f} | {seq / seconds:.2f}x | {diff} |")
    return lines


def table(results):
    """Markdown tables of :func:`run`'s results, with the ratios."""
    where = f"K={K}, {results.get('device', 'cpu')}, one thread"
    runs = f"median of {results['repeats']} interleaved runs"
    lines = _conv_table(
        f"Conv VAE on digits (8 x 8), {where}: seconds per epoch ({runs})",
        results["conv"],
        results["agreement"],
    )
    lines += [""] + _conv_table(
        f"Conv VAE on digits as 28 x 28 binary images (MNIST size, 1797 rows), "
        f"{where}: seconds per epoch ({runs}; 1 epoch)",
        results["mnist"],
        results["mnist agreement"],
    )
    layer = results["convlayer"]
    lines += [
        "",
        "The encoder's convolutions alone (10 folds x 128 images, forward and "
        "backward), ms:",
        "",
        "| per fold | grouped | vmap |",
        "|---:|---:|---:|",
        "| "
        + " | ".join(f"{layer[n] * 1e3:.1f}" for n in ("per fold", "grouped", "vmap"))
        + " |",
    ]
    res = results["resume"]
    plain, saving = res["no saving"], res["a save every epoch"]
    per_save = saving - plain
    lines += [
        "",
        "Saving the training state (default MLP VAE, digits, K=10, one thread):",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| s/epoch without saving | {plain:.3f} |",
        f"| s/epoch with a save every epoch | {saving:.3f} |",
        f"| overhead of a save every epoch | {saving / plain:.3f}x |",
        f"| seconds per save (difference) | {per_save:.3f} |",
        f"| overhead at the default (one save per 60 s) | "
        f"{100 * max(per_save, 0.0) / 60:.2f} % |",
        f"| state size, MLP VAE (MiB) | {res['state MiB']:.1f} |",
        f"| state size, conv VAE (MiB) | {res['conv state MiB']:.1f} |",
        f"| start of a resumed run: read + restore (s) | {res['restore']:.3f} |",
    ]
    killed = results["killed"]
    lines += [
        "",
        f"A study killed half-way (MLP VAE, digits, KFold(5), {killed['epochs']} "
        "epochs, a state every 2 epochs, separate processes):",
        "",
        "| uninterrupted (s) | until the kill (s) | rerun (s) | lost (s) "
        "| resume overhead | scores bit-identical |",
        "|---:|---:|---:|---:|---:|---|",
        f"| {killed['uninterrupted']:.1f} | {killed['until kill']:.1f} | "
        f"{killed['rerun']:.1f} | "
        f"{killed['until kill'] + killed['rerun'] - killed['uninterrupted']:.1f} | "
        f"{killed['overhead']:.2f}x | {'yes' if killed['identical'] else 'NO'} |",
        "",
        "(lost: the work done twice -- the epochs since the last save -- and "
        "the second process's start-up: reading the data, building the "
        "models, torch's first calls, restoring the state)",
    ]
    return "\n".join(lines)


class ConvBatchedSuite:
    """asv: the conv VAE, 10 sequential fits vs one fold-batched model."""

    timeout = 600

    def setup(self):
        torch.set_num_threads(1)
        self.X = digits()
        self.trains = folds(self.X)
        self.est = conv_vae(1)

    def time_sequential(self):
        for c, t in zip(clones(self.est), self.trains):
            c.fit(self.X[t])

    def time_batched(self):
        self.est.fit_folds(clones(self.est), self.X, self.trains)


class ResumeSuite:
    """asv: a fold-batched epoch with and without saving the state."""

    timeout = 600

    def setup(self):
        torch.set_num_threads(1)
        self.X = digits()
        self.trains = folds(self.X)
        self.tmp = tempfile.TemporaryDirectory()

    def teardown(self):
        self.tmp.cleanup()

    def time_epoch_no_saving(self):
        est = mlp_vae(1, save_state_seconds=None)
        est.fit_folds(clones(est), self.X, self.trains)

    def time_epoch_with_save(self):
        est = mlp_vae(1, save_state_every=1)
        store = TrainingStateStore(self.tmp.name, "unit")
        est.fit_folds(clones(est), self.X, self.trains, checkpoint=store)
        store.clear()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 run, fewer epochs")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument(
        "--device", default="cpu", help="where the conv VAE variants train (cuda)"
    )
    args = parser.parse_args(argv)
    print(
        f"machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}"
    )
    print()
    print(table(run(quick=args.quick, repeats=args.repeats, device=args.device)))


if __name__ == "__main__":
    main()
