"""Closed-form log-likelihoods of KernelDensity fits, without refitting.

A kernel density estimate fitted on rows ``T`` scores ``x`` as::

    log p_T(x) = log( sum_{j in T} k_h(x - x_j) ) - log|T| + log C(h, d)

so the log-likelihood of every fit of every splitter comes from pairwise
kernel sums. The work is done on chunks of query rows (never an n x n matrix
held whole for large n), in float64, with log-sum-exp everywhere:

* fits whose training part is "all rows but one block" (KFold, GroupKFold,
  LeaveOneOut, each round of RepeatedKFold) take the log-sum-exp of each block
  once and then exclude one block at a time with prefix/suffix log-add-exp
  accumulations: no cancellation, O(n) per query row whatever the number of
  fits (LeaveOneOut costs the same as KFold);
* any other fit (ShuffleSplit, bootstrap-like splitters with repeated
  indices) is a weighted log-sum-exp over its training rows.

The kernels and their normalisations are those of
:class:`sklearn.neighbors.KernelDensity` (Euclidean metric).
"""

import itertools
import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from joblib import effective_n_jobs
from scipy.spatial.distance import cdist
from sklearn import get_config
from sklearn.utils import Bunch, gen_batches

from ._aggregate import aggregate_loglik
from ._splits import Splits
from ._threads import limit_threads

KERNELS = ("gaussian", "tophat", "epanechnikov", "exponential", "linear", "cosine")

# kernels evaluated on squared distances (no square root needed)
_SQUARED = ("gaussian", "epanechnikov")


def _log_unit_ball_volume(d):
    return 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1)


def _log_sphere_surface(d):
    # surface of the unit d-sphere in R^(d+1)
    return math.log(2 * math.pi) + _log_unit_ball_volume(d - 1)


def _log_cosine_radial_integral(d):
    """log of the integral of cos(pi r / 2) r^(d-1) over [0, 1].

    With t = 1 - r and n = d - 1 this is the integral of sin(a t) (1 - t)^n,
    a = pi / 2, whose Taylor series in a has the terms
    (-1)^k a^(2k+1) n! / (2k+n+2)!: positive-ratio-bounded, alternating and
    quickly convergent for every d, so it is evaluated in log space without
    cancellation. (scikit-learn's KernelDensity uses a recurrence that is
    wrong for even d: off by a constant in d = 2, 6, 10, ... and NaN in
    d = 4, 8, 12, ...)
    """
    n = d - 1
    a2 = (math.pi / 2) ** 2
    total, term, k = 1.0, 1.0, 0
    while abs(term) > 1e-17 * total:
        term *= -a2 / ((2 * k + n + 3) * (2 * k + n + 4))
        total += term
        k += 1
    return (
        math.log(math.pi / 2)
        + math.lgamma(n + 1)
        - math.lgamma(n + 3)
        + math.log(total)
    )


def log_kernel_norm(h, d, kernel):
    """Log of the normalisation constant of a KernelDensity kernel.

    The density of one kernel centred at ``x_j`` is
    ``exp(log_kernel(|x - x_j|, h) + log_kernel_norm(h, d))``.

    Parameters
    ----------
    h : float
        Bandwidth.
    d : int
        Number of features.
    kernel : str
        One of :data:`KERNELS`.

    Returns
    -------
    log_norm : float
    """
    if kernel == "gaussian":
        factor = 0.5 * d * math.log(2 * math.pi)
    elif kernel == "tophat":
        factor = _log_unit_ball_volume(d)
    elif kernel == "epanechnikov":
        factor = _log_unit_ball_volume(d) + math.log(2.0 / (d + 2.0))
    elif kernel == "exponential":
        factor = _log_sphere_surface(d - 1) + math.lgamma(d)
    elif kernel == "linear":
        factor = _log_unit_ball_volume(d) - math.log(d + 1.0)
    elif kernel == "cosine":
        factor = _log_cosine_radial_integral(d) + _log_sphere_surface(d - 1)
    else:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}.")
    return -factor - d * math.log(h)


def log_kernel(dist, h, kernel):
    """Unnormalised log-kernel of KernelDensity.

    Parameters
    ----------
    dist : ndarray
        Distances, or squared distances for the kernels in ``_SQUARED``
        ("gaussian", "epanechnikov").
    h : float
        Bandwidth.
    kernel : str
        One of :data:`KERNELS`.

    Returns
    -------
    log_k : ndarray
        ``-inf`` outside the support of compact kernels.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        if kernel == "gaussian":
            return dist * (-0.5 / (h * h))
        if kernel == "exponential":
            return dist * (-1.0 / h)
        if kernel == "tophat":
            inside = dist < h
            return np.where(inside, 0.0, -np.inf)
        if kernel == "epanechnikov":
            inside = dist < h * h
            return np.where(inside, np.log1p(-dist / (h * h)), -np.inf)
        if kernel == "linear":
            inside = dist < h
            return np.where(inside, np.log1p(-dist / h), -np.inf)
        if kernel == "cosine":
            inside = dist < h
            return np.where(inside, np.log(np.cos((0.5 * np.pi / h) * dist)), -np.inf)
    raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}.")


def kde_bandwidth(bandwidth, n_samples, n_features):
    """The bandwidth KernelDensity uses when fitted on ``n_samples`` rows."""
    if bandwidth == "scott":
        return n_samples ** (-1 / (n_features + 4))
    if bandwidth == "silverman":
        return (n_samples * (n_features + 2) / 4) ** (-1 / (n_features + 4))
    return float(bandwidth)


def check_bandwidths(bandwidths, X):
    """Refuse bandwidths whose squares (or inverse squares) leave float64."""
    scale = float(np.abs(X).max()) if X.size else 0.0
    for h in bandwidths:
        h = float(h)
        with np.errstate(over="ignore", under="ignore", divide="ignore"):
            ok = (
                np.isfinite(h)
                and h > 0
                and np.isfinite(np.float64(h) ** 2)
                and np.float64(h) ** 2 > 0
                and np.isfinite(1.0 / np.float64(h) ** 2)
                and np.isfinite((scale / np.float64(h)) ** 2)
            )
        if not ok:
            raise ValueError(
                f"bandwidth={h:g} is out of the range the closed form evaluates "
                "in float64: squared distances over the squared bandwidth must be "
                f"finite (here |X| reaches {scale:g}; roughly 1e-150 < bandwidth "
                "< 1e150 and |X| / bandwidth < 1e150). Scikit-learn's own "
                "KernelDensity gives -inf or constant densities there. Choose a "
                "bandwidth in that range, or rescale X."
            )


def _lse_rows(a, axis=1):
    """log-sum-exp that keeps all -inf rows at -inf without warnings."""
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        s = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return np.squeeze(s, axis=axis)


# exp(-600) is far above the smallest normal float64 (about exp(-708))
_SHARED_SHIFT = 600.0


class _Round:
    """Fits whose training parts are 'all rows except one block each'.

    The blocks of one round are disjoint; the rows in no block form an extra
    remainder block that every fit of the round trains on.
    """

    def __init__(self, n_samples, fits, blocks):
        labels = np.full(n_samples, len(blocks), dtype=np.intp)
        for b, rows in enumerate(blocks):
            labels[rows] = b
        self.fits = np.asarray(fits, dtype=np.intp)
        sizes = np.bincount(labels, minlength=len(blocks) + 1)
        self.singletons = bool(np.all(sizes[sizes > 0] == 1))  # LeaveOneOut
        # position of each fit's excluded block among the non-empty blocks
        position = np.cumsum(sizes > 0) - 1
        self.fit_block = position[: len(blocks)]
        self.n_blocks = int(np.count_nonzero(sizes))
        if self.singletons:
            # the blocks are the rows themselves: each fit leaves out one row
            self.fit_row = np.array([rows[0] for rows in blocks], dtype=np.intp)
            return
        self.labels = position[labels]  # block of every row
        self.order = np.argsort(labels, kind="stable")
        self.identity = bool(np.all(self.order == np.arange(n_samples)))
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.starts = starts[sizes > 0]
        self.sizes = sizes[sizes > 0]

    def sums(self, log_k):
        """Log kernel sums over each fit's training part, and over all rows.

        Returns ``(excluded, total)``: ``excluded[:, f]`` is
        ``log sum_{j in train_f} exp(log_k[:, j])`` for the round's fits,
        ``total`` the same over every row.
        """
        if self.singletons:
            excluded, total = _exclude_each(log_k)
            return excluded[:, self.fit_row], total
        else:
            a = log_k if self.identity else log_k[:, self.order]
            m = np.maximum.reduceat(a, self.starts, axis=1)
            top = m.max(axis=1, keepdims=True)
            top = np.where(np.isfinite(top), top, 0.0)
            if np.all((top - m)[np.isfinite(m)] < _SHARED_SHIFT):
                # every block's largest term stays a normal float when all are
                # scaled by the row maximum: one broadcast shift suffices
                e = a - top
                shift = top
            else:
                shift = np.where(np.isfinite(m), m, 0.0)
                e = a - np.repeat(shift, self.sizes, axis=1)
            np.exp(e, out=e)
            with np.errstate(divide="ignore"):
                block = np.log(np.add.reduceat(e, self.starts, axis=1)) + shift
        excluded, total = _exclude_each(block)
        return excluded[:, self.fit_block], total


def _exclude_each(block):
    """log of sum_{g != f} exp(block[:, g]) for every column f, and the total.

    No subtraction, so no cancellation: the terms are scaled by the row
    maximum and summed by prefix and suffix sums; the column holding the
    maximum is summed again scaled by the second largest value, so the sum
    that leaves out a dominant term (a LeaveOneOut self-term at a tiny
    bandwidth) does not underflow.
    """
    rows = np.arange(block.shape[0])
    top = block.argmax(axis=1)
    m1 = block[rows, top]
    m1_safe = np.where(np.isfinite(m1), m1, 0.0)
    e = np.exp(block - m1_safe[:, None])
    forward = np.cumsum(e, axis=1)
    backward = np.cumsum(e[:, ::-1], axis=1)[:, ::-1]
    others = np.zeros_like(e)
    others[:, 1:] += forward[:, :-1]
    others[:, :-1] += backward[:, 1:]
    with np.errstate(divide="ignore"):
        excluded = np.log(others) + m1_safe[:, None]
        total = np.log(forward[:, -1]) + m1_safe
        rest = block.copy()
        rest[rows, top] = -np.inf
        excluded[rows, top] = _lse_rows(rest)
    return excluded, total


def _plan(splits, n_samples):
    """Sort fits into rounds of complement fits and direct (weighted) fits.

    Returns the rounds, the direct fits with the multiplicity of every row in
    their training part, and the training-part size of every fit.
    """
    if not isinstance(splits, Splits):
        splits = Splits.from_pairs(splits, n_samples)
    rounds, direct, counts = [], [], {}
    current_fits, current_blocks = [], []
    used = np.zeros(n_samples, dtype=bool)
    for k in range(len(splits)):
        if not splits.is_complement(k):
            # includes a fit on every row with nothing held out: a complement
            # fit needs a held-out block to leave out
            direct.append(k)
            counts[k] = np.bincount(splits.train(k), minlength=n_samples).astype(
                np.float64
            )
            continue
        test = splits.test(k)
        if used[test].any():
            rounds.append(_Round(n_samples, current_fits, current_blocks))
            current_fits, current_blocks = [], []
            used[:] = False
        used[test] = True
        current_fits.append(k)
        current_blocks.append(test)
    if current_fits:
        rounds.append(_Round(n_samples, current_fits, current_blocks))
    return rounds, direct, counts, splits.train_sizes()


# Largest error (nats) a Gaussian kernel term may take from computing squared
# distances as |x|^2 + |y|^2 - 2 x.y with BLAS instead of exactly.
_GEMM_TOLERANCE = 1e-10

# A kernel sum below exp(-600) (the largest term, the row's own, being 1) may
# hold terms below the smallest normal float64: such rows are summed again with
# a shift of their own.
_SMALLEST_FAST_SUM = math.exp(-_SHARED_SHIFT)

# Rounds with more blocks than this (GroupKFold over many groups) are summed
# by runs of sorted columns rather than through a one-hot matrix product.
_MAX_ONEHOT_BLOCKS = 64


def _gemm_is_exact(sq_norms, h_min):
    bound = 8 * np.finfo(np.float64).eps * sq_norms.max() / (2 * h_min**2)
    return bool(bound < _GEMM_TOLERANCE)


def _distances(X, sq_norms, rows, kernel, h_min):
    """Distances (squared for _SQUARED kernels) from ``X[rows]`` to ``X``.

    The Gaussian kernel takes the BLAS expansion on centred data when its
    rounding error, about 8 eps max|x|^2 / (2 h^2) nats per term, is below
    ``_GEMM_TOLERANCE``; everything else (and tiny bandwidths) uses exact
    pairwise differences, so compact kernels see their support boundary
    exactly as KernelDensity does.
    """
    if kernel == "gaussian" and sq_norms is not None:
        if _gemm_is_exact(sq_norms, h_min):
            d = X[rows] @ X.T
            d *= -2.0
            d += sq_norms[rows, None]
            d += sq_norms[None, :]
            np.maximum(d, 0.0, out=d)
            return d
    metric = "sqeuclidean" if kernel in _SQUARED else "euclidean"
    return cdist(X[rows], X, metric=metric)


# Columns per block of _blocked_sums: a (chunk, block) float64 block of
# kernel values stays in a core's cache (512 KiB for 64 rows), so the
# exp and the second product do not stream through memory, and threads scale.
_CACHE_COLUMNS = 1024


def _blocked_sums(Q, Yt, W):
    """``exp(Q @ Yt) @ W``, one block of columns at a time."""
    n = Yt.shape[1]
    S = np.zeros((len(Q), W.shape[1]))
    work = np.empty((len(Q), min(n, _CACHE_COLUMNS)))
    for start in range(0, n, _CACHE_COLUMNS):
        stop = min(n, start + _CACHE_COLUMNS)
        e = work if stop - start == work.shape[1] else work[:, : stop - start]
        np.matmul(Q, Yt[:, start:stop], out=e)
        np.exp(e, out=e)
        S += e @ W[start:stop]
    return S


class _GaussianGemm:
    """Gaussian kernel sums of one bandwidth as two matrix products.

    With the queries being rows of the data, ``exp(-|x_i - x_j|^2 / (2 h^2))``
    is at most 1 (the row's own term) and comes from one product of augmented
    matrices, ``[x / h^2, -|x|^2 / (2 h^2), 1] @ [x, 1, -|x|^2 / (2 h^2)].T``,
    followed by one ``exp``: no shift, no pass over the (chunk, n) block to
    find a maximum. The sums over the blocks of every round, the weighted
    rows of direct fits and all rows come from a second product with a
    membership matrix ``W``. LeaveOneOut rounds exclude each row from the row
    total instead.
    """

    def __init__(self, Xc, sq_norms, h, rounds, direct, counts, want_full):
        n = Xc.shape[0]
        scale = 1.0 / (h * h)
        half = -0.5 * scale * sq_norms
        self.Q = np.column_stack([Xc * scale, half, np.ones(n)])
        self.Yt = np.ascontiguousarray(np.column_stack([Xc, np.ones(n), half]).T)
        columns, self.blocks, self.direct, self.reduced = [], [], [], []
        width = 0
        self.want_full = want_full
        self.loo = [rnd for rnd in rounds if rnd.singletons]
        for rnd in rounds:
            if rnd.singletons:
                continue
            if rnd.n_blocks > _MAX_ONEHOT_BLOCKS:
                # many groups: sum the sorted columns by runs instead
                self.reduced.append(rnd)
                continue
            onehot = np.zeros((n, rnd.n_blocks))
            onehot[np.arange(n), rnd.labels] = 1.0
            columns.append(onehot)
            self.blocks.append((rnd, slice(width, width + rnd.n_blocks)))
            width += rnd.n_blocks
        for k in direct:
            columns.append(counts[k][:, None])
            self.direct.append((k, width))
            width += 1
        self.full_column = None
        if want_full and not self.blocks and not self.loo and not self.reduced:
            columns.append(np.ones((n, 1)))
            self.full_column = width
            width += 1
        self.W = np.hstack(columns) if columns else None

    def sums(self, rows, out, fits_of_h):
        """Fill ``out[k]`` for this bandwidth's fits; return the full sum.

        Returns ``(full, bad)``: the log kernel sum over all rows (or None) and
        a boolean mask of the query rows whose sums may have underflowed.
        """
        Q = self.Q[rows]
        if self.loo or self.reduced or self.W is None:
            E = Q @ self.Yt  # these need every kernel value of the rows
            np.exp(E, out=E)
            S = None if self.W is None else E @ self.W
        else:
            # only the products with W: column blocks that stay in cache
            E = None
            S = _blocked_sums(Q, self.Yt, self.W)
        bad = np.zeros(len(Q), dtype=bool)
        full = None
        with np.errstate(divide="ignore"):
            if S is not None:
                bad |= (S < _SMALLEST_FAST_SUM).any(axis=1)
                logS = np.log(S)
                for rnd, cols in self.blocks:
                    full = self._exclude(logS[:, cols], rnd, out, fits_of_h)
                for k, col in self.direct:
                    out[k] = logS[:, col]
                if self.full_column is not None:
                    full = logS[:, self.full_column]
            for rnd in self.reduced:
                S = np.add.reduceat(
                    E if rnd.identity else E[:, rnd.order], rnd.starts, axis=1
                )
                bad |= (S < _SMALLEST_FAST_SUM).any(axis=1)
                full = self._exclude(np.log(S), rnd, out, fits_of_h)
            for i, rnd in enumerate(self.loo):
                # the last LeaveOneOut round may overwrite E
                work = E if i == len(self.loo) - 1 else E.copy()
                full, b = _leave_one_out_sums(work, rows, rnd, out, fits_of_h)
                bad |= b
        return (full if self.want_full else None), bad

    @staticmethod
    def _exclude(log_blocks, rnd, out, fits_of_h):
        excluded, total = _exclude_each(log_blocks)
        sel = fits_of_h[rnd.fits]
        out[rnd.fits[sel]] = excluded[:, rnd.fit_block[sel]].T
        return total


def _leave_one_out_sums(E, rows, rnd, out, fits_of_h):
    """Kernel sums of LeaveOneOut fits from the kernel values ``E`` (overwritten).

    The sum without column ``j`` is ``total - E[:, j]``: for every column but
    the row's own, the remainder holds the own term (the largest, 1), so the
    subtraction loses nothing. The own column is subtracted too where the
    other terms hold at least half the total (duplicated rows then get
    bit-identical scores), and summed anew otherwise.
    """
    r = np.arange(len(E))
    own = np.arange(rows.start, rows.stop)
    e_own = E[r, own]
    total = E.sum(axis=1)
    rest = total - e_own
    alone = np.flatnonzero(rest < e_own)  # the own term dominates
    if alone.size:
        E[alone, own[alone]] = 0.0
        rest[alone] = E[alone].sum(axis=1)
    bad = rest < _SMALLEST_FAST_SUM
    excluded = np.subtract(total[:, None], E, out=E)
    excluded[r, own] = rest
    with np.errstate(divide="ignore"):
        np.log(excluded, out=excluded)
    sel = fits_of_h[rnd.fits]
    out[rnd.fits[sel]] = excluded[:, rnd.fit_row[sel]].T
    return np.log(total), bad


def _slow_sums(X, sq_norms, rows, plan, kernel, out):
    """Log kernel sums of every fit via distances and per-row shifts."""
    bandwidths, rounds, direct, counts, full_h = plan
    distinct = set(bandwidths.tolist())
    if full_h is not None:
        distinct.add(full_h)
    dist = _distances(X, sq_norms, rows, kernel, min(distinct))
    full = None
    for h in sorted(distinct):
        log_k = log_kernel(dist, h, kernel)
        for rnd in rounds:
            sel = bandwidths[rnd.fits] == h
            if sel.any() or (full is None and full_h == h):
                excluded, total = rnd.sums(log_k)
                out[rnd.fits[sel]] = excluded[:, sel].T
                if full_h == h:
                    full = total
        for k in direct:
            if bandwidths[k] == h:
                with np.errstate(divide="ignore"):
                    out[k] = _lse_rows(log_k + np.log(counts[k])[None, :])
        if full_h == h and full is None:
            full = _lse_rows(log_k)
    return full


class _KDEPlan:
    """Everything the chunks share: the rounds, bandwidths and constants."""

    def __init__(self, X, splits, bandwidth, kernel, full):
        n, d = X.shape
        self.n_samples = n
        self.kernel = kernel
        rounds, direct, counts, n_train = _plan(splits, n)
        self.n_fits = len(n_train)
        bandwidths = np.array([kde_bandwidth(bandwidth, m, d) for m in n_train])
        full_h = kde_bandwidth(bandwidth, n, d) if full else None
        check_bandwidths(bandwidths if full_h is None else [*bandwidths, full_h], X)
        self.Xc = X - X.mean(axis=0)  # distances are translation invariant
        self.sq_norms = (
            np.einsum("ij,ij->i", self.Xc, self.Xc) if kernel == "gaussian" else None
        )
        self.slow = (bandwidths, rounds, direct, counts, full_h)
        norms = np.array([log_kernel_norm(h, d, kernel) for h in bandwidths])
        self.offset = (norms - np.log(n_train))[:, None]
        self.full_offset = (
            log_kernel_norm(full_h, d, kernel) - math.log(n) if full else None
        )
        distinct = sorted(set(bandwidths.tolist()) | ({full_h} - {None}))
        self.gemm = []
        if kernel == "gaussian" and _gemm_is_exact(self.sq_norms, distinct[0]):
            for h in distinct:
                fits_of_h = bandwidths == h
                self.gemm.append(
                    (
                        _GaussianGemm(
                            self.Xc,
                            self.sq_norms,
                            h,
                            [
                                r
                                for r in rounds
                                if fits_of_h[r.fits].any() or h == full_h
                            ],
                            [k for k in direct if fits_of_h[k]],
                            counts,
                            h == full_h,
                        ),
                        fits_of_h,
                    )
                )

    def blocked(self):
        """Whether every kernel sum comes from cache-sized column blocks."""
        return bool(self.gemm) and not any(
            g.loo or g.reduced or g.W is None for g, _ in self.gemm
        )

    def leave_one_out_only(self):
        """Whether the fits are LeaveOneOut's at one bandwidth, in product form."""
        bandwidths, rounds, direct, _, _ = self.slow
        return (
            len(self.gemm) == 1
            and len(rounds) == 1
            and rounds[0].singletons
            and not direct
            and len(rounds[0].fits) == self.n_samples
        )

    def leave_one_out_chunk(self, rows):
        """U and V (logmeanexp) of LeaveOneOut fits for query ``rows``.

        Sample ``i``'s "in" fits are all but one, and their kernel sums add
        up to ``(n - 2) * total_i + e_ii`` (``total_i`` the sum over every row,
        ``e_ii`` its own term): U needs no log-likelihood of any single fit.
        V is the one fit that leaves ``i`` out. Rows whose sums may have
        underflowed are aggregated from their per-fit log-likelihoods.
        """
        n = self.n_samples
        gemm, _ = self.gemm[0]
        rnd = self.slow[1][0]
        E = gemm.Q[rows] @ gemm.Yt
        np.exp(E, out=E)
        r = np.arange(len(E))
        own = np.arange(rows.start, rows.stop)
        e_own = E[r, own]
        total = E.sum(axis=1)
        rest = total - e_own
        alone = np.flatnonzero(rest < e_own)
        if alone.size:
            E[alone, own[alone]] = 0.0
            rest[alone] = E[alone].sum(axis=1)
        leaves_out = np.empty(n, dtype=np.intp)
        leaves_out[rnd.fit_row] = np.arange(n)  # the fit that leaves out row i
        offset = self.offset[leaves_out[own], 0]
        with np.errstate(divide="ignore"):
            V = np.log(rest) + offset
            U = np.log((n - 2) * total + e_own) - math.log(n - 1) + offset
            full = None
            if self.full_offset is not None:
                full = np.log(total) + self.full_offset
        bad = np.flatnonzero(rest < _SMALLEST_FAST_SUM)
        if bad.size:
            part = np.empty((self.n_fits, bad.size))
            f = _slow_sums(
                self.Xc, self.sq_norms, own[bad], self.slow, self.kernel, part
            )
            part += self.offset
            in_mask = np.ones_like(part, dtype=bool)
            in_mask[leaves_out[own[bad]], np.arange(bad.size)] = False
            redone = aggregate_loglik(part, in_mask, warn=False)
            U[bad], V[bad] = redone.in_loglik, redone.out_loglik
            if full is not None:
                full[bad] = f + self.full_offset
        counts = np.full(len(own), n - 1)
        aggregated = Bunch(
            in_loglik=U, out_loglik=V, n_in=counts, n_out=np.ones_like(counts)
        )
        return aggregated, full

    def chunk(self, rows):
        """``(loglik, full)`` of query ``rows``: (n_fits, n_rows) and (n_rows,)."""
        out = np.empty((self.n_fits, rows.stop - rows.start))
        if self.gemm:
            full, bad = None, np.zeros(out.shape[1], dtype=bool)
            for gemm, fits_of_h in self.gemm:
                f, b = gemm.sums(rows, out, fits_of_h)
                bad |= b
                full = f if f is not None else full
            if bad.any():
                # terms that may have underflowed: shift these rows one by one
                redo = np.flatnonzero(bad)
                part = np.empty((self.n_fits, len(redo)))
                f = _slow_sums(
                    self.Xc,
                    self.sq_norms,
                    redo + rows.start,
                    self.slow,
                    self.kernel,
                    part,
                )
                out[:, redo] = part
                if f is not None:
                    full[redo] = f
        else:
            full = _slow_sums(self.Xc, self.sq_norms, rows, self.slow, self.kernel, out)
        out += self.offset
        if self.full_offset is not None:
            full = full + self.full_offset
        return out, full


def default_chunk_size(n_samples, n_fits, blocked=False):
    """Query rows per chunk, fixed by the problem's size alone.

    Never by ``n_jobs``, so results are bit-identical whatever the number of
    threads. Chunks whose kernel values are summed in cache-sized column
    blocks (``blocked``) take 256 rows; the others about 8 MiB per (chunk, n)
    work array, and 64 rows or more unless scikit-learn's ``working_memory``
    is too small to hold that many (it caps a chunk's work arrays). Smaller
    chunks spend their time in
    per-chunk calls that hold the GIL, and threads stop scaling (at
    n = 20,000 on two threads: 16-row chunks 1.2x, 64 rows 1.75x, blocked
    256-row chunks 1.95x).
    """
    if blocked:
        return int(min(n_samples, 256))
    width = max(n_samples, n_fits)
    working = get_config()["working_memory"] * 2**20
    cap = max(1, working // (8 * 8 * width))  # a handful of work arrays
    return int(max(1, min(n_samples, cap, max(64, 2**20 // width))))


def kde_loglik_chunks(
    X,
    splits,
    *,
    bandwidth=1.0,
    kernel="gaussian",
    full=False,
    chunk_size=None,
    n_jobs=None,
    aggregated=False,
):
    """Closed-form log-likelihoods of every fit, one chunk of rows at a time.

    Parameters are those of :func:`kde_loglik`; with ``aggregated=True``,
    LeaveOneOut fits of the Gaussian kernel yield, in place of ``loglik``, a
    Bunch of their logmeanexp aggregates (``in_loglik``, ``out_loglik``,
    ``n_in``, ``n_out``) computed from the kernel sums directly (the same
    values, to rounding, at the cost of the kernel sums alone).

    Yields
    ------
    rows : slice
        The rows of this chunk, in order.
    loglik : ndarray of shape (n_fits, n_rows)
    full_loglik : ndarray of shape (n_rows,) or None
    """
    n = X.shape[0]
    plan = _KDEPlan(X, splits, bandwidth, kernel, full)
    if chunk_size is None:
        chunk_size = default_chunk_size(n, plan.n_fits, plan.blocked())
    batches = list(gen_batches(n, chunk_size))
    work = plan.chunk
    if aggregated and plan.leave_one_out_only():
        work = plan.leave_one_out_chunk
    n_threads = min(effective_n_jobs(n_jobs), len(batches))
    # threads over chunks; BLAS single-threaded inside them (also keeps
    # results independent of the thread count)
    with limit_threads(1):
        if n_threads == 1:
            for rows in batches:
                yield (rows, *work(rows))
            return
        # in order, at most two chunks per thread ahead of the consumer, so
        # memory stays O(n_threads x chunk) however slow the consumer
        with ThreadPoolExecutor(n_threads) as pool:
            ahead = deque()
            todo = iter(batches)
            for rows in itertools.islice(todo, 2 * n_threads):
                ahead.append((rows, pool.submit(work, rows)))
            while ahead:
                rows, future = ahead.popleft()
                following = next(todo, None)
                if following is not None:
                    ahead.append((following, pool.submit(work, following)))
                yield (rows, *future.result())


def kde_loglik(
    X,
    splits,
    *,
    bandwidth=1.0,
    kernel="gaussian",
    full=False,
    chunk_size=None,
    n_jobs=None,
):
    """Log-likelihoods of every KernelDensity fit of a splitter, in closed form.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The data, float64.
    splits : list of (train, test) index arrays
        The splits; fit ``k`` is trained on ``X[train_k]``.
    bandwidth : float or {"scott", "silverman"}
        KernelDensity's ``bandwidth``; rule-of-thumb bandwidths are computed
        per fit from its number of training rows, as KernelDensity does.
    kernel : str
        One of :data:`KERNELS`.
    full : bool, default=False
        Also return the log-likelihood under the fit on all rows.
    chunk_size : int, default=None
        Query rows per chunk; by default sized from ``n_samples`` and
        scikit-learn's ``working_memory`` (never from ``n_jobs``, so the
        results are bit-identical for any number of threads).
    n_jobs : int, default=None
        Threads over chunks.

    Returns
    -------
    loglik : ndarray of shape (n_fits, n_samples)
        ``log p_k(x_i)``; ``-inf`` where the density is zero.
    full_loglik : ndarray of shape (n_samples,) or None
        Only when ``full=True``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import LeaveOneOut
    >>> from sklearn_mem._kde import kde_loglik
    >>> X = np.array([[0.0], [1.0], [3.0]])
    >>> loglik, _ = kde_loglik(X, list(LeaveOneOut().split(X)), bandwidth=0.5)
    >>> loglik.shape
    (3, 3)
    """
    n = X.shape[0]
    chunks = kde_loglik_chunks(
        X,
        splits,
        bandwidth=bandwidth,
        kernel=kernel,
        full=full,
        chunk_size=chunk_size,
        n_jobs=n_jobs,
    )
    loglik, full_loglik = None, np.empty(n) if full else None
    for rows, part, full_part in chunks:
        if loglik is None:
            loglik = np.empty((part.shape[0], n))
        loglik[:, rows] = part
        if full:
            full_loglik[rows] = full_part
    return loglik, full_loglik
