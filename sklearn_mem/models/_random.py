"""Seeds and generators of the torch models: one integer, several streams.

skorch has no ``random_state``; :class:`~sklearn_mem.models.DensityNet`
derives every random stream it needs (initialisation, training, sampling,
scoring) from one integer with :class:`numpy.random.SeedSequence`, so the
streams are independent of each other and reproducible one by one.

torch's global RNG is shared by everything in the process, including fits
running in threads. It is only seeded inside :func:`_forked_global_rng`,
which restores its state afterwards, under one lock
(:data:`_GLOBAL_RNG_LOCK`).
"""

import contextlib
import numbers
import threading

import numpy as np
import torch
from sklearn.utils import check_random_state

# the named streams of one random_state; their numbers key the SeedSequence
_STREAMS = {"init": 1, "train": 2, "sample": 3, "score": 4}


def _derive_seed(random_state, stream, *keys):
    """Return a 63-bit integer seed for one named random stream.

    An integer ``random_state`` gives the same seed for the same ``stream`` and
    ``keys`` every time; ``None`` or a :class:`numpy.random.RandomState` draws
    a fresh seed from it (scikit-learn semantics).

    Examples
    --------
    >>> from sklearn_mem.models._random import _derive_seed
    >>> _derive_seed(0, "train", 1) == _derive_seed(0, "train", 1)
    True
    >>> _derive_seed(0, "train", 1) == _derive_seed(0, "train", 2)
    False
    """
    if random_state is None or isinstance(random_state, np.random.RandomState):
        rng = check_random_state(random_state)
        return int(rng.randint(0, np.iinfo(np.int64).max, dtype=np.int64))
    if isinstance(random_state, numbers.Integral) and not isinstance(
        random_state, bool
    ):
        if random_state < 0:
            raise ValueError(
                f"random_state={random_state} is negative; expected None, a "
                "non-negative integer or a numpy RandomState. Pass e.g. "
                "random_state=0."
            )
        seq = np.random.SeedSequence([int(random_state), _STREAMS[stream], *keys])
        return int(seq.generate_state(1, np.uint64)[0] >> np.uint64(1))
    raise ValueError(
        f"random_state={random_state!r} is not valid; expected None, a "
        "non-negative integer or a numpy RandomState instance."
    )


def _torch_generator(seed, device="cpu"):
    """A :class:`torch.Generator` on ``device`` seeded with ``seed``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen


def _seed_global_rng(device, seed):
    """Seed torch's global RNG on the CPU and on ``device``.

    Like :func:`torch.manual_seed` for the devices the net uses, without its
    lazy seeding of every other accelerator backend, which records a stack
    trace per call (scoring seeds once per chunk; ``python
    benchmarks/bench_models.py micro`` measures both).
    """
    torch.default_generator.manual_seed(int(seed))
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.manual_seed_all(int(seed))


# Guards torch's global RNG state: seeding + restoring is atomic, and module
# construction (which draws from the global RNG) holds it throughout, so fits
# running in threads (joblib's threading backend) initialise reproducibly.
_GLOBAL_RNG_LOCK = threading.RLock()


@contextlib.contextmanager
def _forked_global_rng(device, seed, hold=False):
    """Seed torch's global RNG inside a block and restore it afterwards.

    With ``hold=True`` the lock is held for the whole block (short blocks
    that draw from the global RNG: module construction, sampling); otherwise
    only while seeding and restoring (training, scoring: our modules draw
    from explicit generators there).
    """
    device = torch.device(device)
    devices = []
    if device.type == "cuda" and torch.cuda.is_available():
        devices = [device.index if device.index is not None else 0]
    lock = _GLOBAL_RNG_LOCK
    lock.acquire()
    try:
        cpu_state = torch.get_rng_state()
        cuda_states = [torch.cuda.get_rng_state(d) for d in devices]
        _seed_global_rng(device, seed)
        if not hold:
            lock.release()
        try:
            yield
        finally:
            if not hold:
                lock.acquire()
            torch.set_rng_state(cpu_state)
            for d, state in zip(devices, cuda_states):
                torch.cuda.set_rng_state(state, d)
    finally:
        lock.release()
