"""The splits of a memorization study, held in O(n) memory per round.

A splitter such as KFold or LeaveOneOut trains fit ``k`` on "every row except
the held-out block ``test_k``". Storing each training part (and an
``(n_fits, n_samples)`` membership matrix) costs ``n_fits x n_samples``: 3.2 GB
of indices for LeaveOneOut at n = 20,000. :class:`Splits` keeps only the
held-out block of such *complement* splits and rebuilds the training part, or
any column range of the membership matrix, when asked. Other splits
(ShuffleSplit, bootstrap-like splitters, unsorted training parts) keep their
training indices as given.
"""

from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import LeaveOneOut


class Splits(Sequence):
    """A sequence of ``(train, test)`` index pairs stored compactly.

    ``splits[k]`` gives the pair exactly as the splitter gave it (the training
    part of a complement split is rebuilt, sorted, as scikit-learn's splitters
    give it).

    Parameters
    ----------
    n_samples : int
        Number of rows the indices refer to.
    """

    def __init__(self, n_samples):
        self.n_samples = int(n_samples)
        self._tests = []
        self._trains = []  # None for a complement split
        self._held = None  # (rows, fits) of complement splits, sorted by row

    @classmethod
    def from_pairs(cls, pairs, n_samples):
        """Build from ``(train, test)`` pairs of valid, disjoint indices."""
        splits = cls(n_samples)
        marked = np.zeros(n_samples, dtype=bool)
        for train, test in pairs:
            splits.append(
                np.asarray(train, dtype=np.intp),
                np.asarray(test, dtype=np.intp),
                marked,
            )
        return splits

    @classmethod
    def leave_one_out(cls, n_samples):
        """The splits of :class:`~sklearn.model_selection.LeaveOneOut`, in O(n)."""
        splits = cls(n_samples)
        splits._tests = list(np.arange(n_samples, dtype=np.intp).reshape(-1, 1))
        splits._trains = [None] * n_samples
        return splits

    def append(self, train, test, marked=None):
        """Add one split (``train`` and ``test`` as non-negative intp arrays).

        ``marked`` is an optional all-False boolean work array of length
        ``n_samples`` (reused across calls; left all False).
        """
        n = self.n_samples
        complement = (
            len(test) > 0
            and len(train) + len(test) == n
            and bool(np.all(train[1:] > train[:-1]))  # sorted, so no repeat
        )
        if complement:
            if marked is None:
                marked = np.zeros(n, dtype=bool)
            marked[train] = True
            complement = not marked[test].any()
            marked[train] = False
        self._tests.append(test)
        self._trains.append(None if complement else train)
        self._held = None

    def __len__(self):
        return len(self._tests)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        test = self._tests[k]
        return self.train(k), test

    def is_complement(self, k):
        """Whether fit ``k`` trains on every row outside its held-out block."""
        return self._trains[k] is None

    def test(self, k):
        """The held-out indices of fit ``k``."""
        return self._tests[k]

    def train(self, k):
        """The training indices of fit ``k``."""
        train = self._trains[k]
        if train is not None:
            return train
        keep = np.ones(self.n_samples, dtype=bool)
        keep[self._tests[k]] = False
        return np.flatnonzero(keep)

    def train_sizes(self):
        """Number of training indices (with repeats) of every fit."""
        n = self.n_samples
        return np.array(
            [
                n - len(t) if tr is None else len(tr)
                for t, tr in zip(self._tests, self._trains)
            ],
            dtype=np.float64,
        )

    def _held_index(self):
        if self._held is None:
            fits = [k for k in range(len(self)) if self._trains[k] is None]
            if fits:
                rows = np.concatenate([self._tests[k] for k in fits])
                owner = np.repeat(
                    np.asarray(fits, dtype=np.intp),
                    [len(self._tests[k]) for k in fits],
                )
            else:
                rows = owner = np.empty(0, dtype=np.intp)
            order = np.argsort(rows, kind="stable")
            explicit = {
                k: np.unique(tr) for k, tr in enumerate(self._trains) if tr is not None
            }
            self._held = (rows[order], owner[order], explicit)
        return self._held

    def in_mask(self, start=0, stop=None):
        """Training membership of rows ``start:stop``, shape (n_fits, stop - start).

        ``in_mask[k, j]`` is True where row ``start + j`` is in fit ``k``'s
        training part. Memory is O(n_fits x (stop - start)).
        """
        stop = self.n_samples if stop is None else stop
        rows, owner, explicit = self._held_index()
        mask = np.ones((len(self), stop - start), dtype=bool)
        lo, hi = np.searchsorted(rows, [start, stop])
        mask[owner[lo:hi], rows[lo:hi] - start] = False
        for k, train in explicit.items():
            a, b = np.searchsorted(train, [start, stop])
            mask[k] = False
            mask[k, train[a:b] - start] = True
        return mask

    def rounds(self):
        """Group consecutive fits into rounds with disjoint "out" parts.

        Equal to :func:`~sklearn_mem._aggregate.split_rounds` of the full
        membership matrix, without building it.
        """
        rounds = np.zeros(len(self), dtype=np.intp)
        used = np.zeros(self.n_samples, dtype=bool)
        current = 0
        for k in range(len(self)):
            if self._trains[k] is None:
                out = self._tests[k]
            else:
                out = np.ones(self.n_samples, dtype=bool)
                out[self._trains[k]] = False
            if used[out].any():
                current += 1
                used[:] = False
            used[out] = True
            rounds[k] = current
        return rounds


def check_split(cv, k, train, test, n_samples, marked):
    """Check split ``k`` of ``cv``; return its parts as non-negative intp arrays.

    ``marked`` is an all-False boolean work array of length ``n_samples``
    (left all False).
    """
    n = n_samples
    train = np.asarray(train)
    test = np.asarray(test)
    for name, idx in (("training", train), ("held-out", test)):
        if idx.dtype == bool:
            raise ValueError(
                f"Split {k} of {cv!r} gives a boolean mask as its {name} "
                "part; splitters must yield integer indices."
            )
        if idx.size and idx.dtype.kind not in "iu":
            raise ValueError(
                f"Split {k} of {cv!r} gives {idx.dtype} values as its {name} "
                "part; splitters must yield integer indices (they are not "
                "rounded or truncated)."
            )
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise ValueError(
                f"Split {k} of {cv!r} has {name} indices outside "
                f"[0, {n}) for X with {n} samples."
            )
    train = np.mod(train.astype(np.intp), n)
    test = np.mod(test.astype(np.intp), n)
    if train.size == 0:
        raise ValueError(
            f"Split {k} of {cv!r} has an empty training part; every fit "
            "needs training rows."
        )
    marked[train] = True
    overlap = test[marked[test]]
    marked[train] = False
    if overlap.size:
        raise ValueError(
            f"Split {k} of {cv!r} puts {np.unique(overlap).size} samples "
            f"(e.g. index {overlap[0]}) in both its training and held-out "
            "parts; a memorization score needs the two parts disjoint. Use "
            "a splitter whose parts do not overlap (KFold, ShuffleSplit, "
            "GroupKFold, LeaveOneOut, ...)."
        )
    return train, test


def compact_splits(cv, X, y=None, **split_params):
    """Run the splitter once, check its splits and store them compactly.

    Every split is checked by :func:`check_split`; LeaveOneOut is built
    directly (its splits are known, and generating them costs O(n^2)).

    Returns
    -------
    splits : Splits
    """
    n = X.shape[0]
    if type(cv) is LeaveOneOut and not split_params:
        if n < 2:
            # let scikit-learn raise its own message
            list(cv.split(X, y))
        return Splits.leave_one_out(n)
    splits = Splits(n)
    marked = np.zeros(n, dtype=bool)
    for k, (train, test) in enumerate(cv.split(X, y, **split_params)):
        train, test = check_split(cv, k, train, test, n, marked)
        splits.append(train, test, marked)
    if not len(splits):
        raise ValueError(f"The splitter {cv!r} produced no splits.")
    return splits
