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

import math

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from scipy.spatial.distance import cdist
from sklearn import get_config
from sklearn.utils import gen_batches

from ._folds import limit_threads

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
        self.order = np.argsort(labels, kind="stable")
        self.identity = bool(np.all(self.order == np.arange(n_samples)))
        sizes = np.bincount(labels, minlength=len(blocks) + 1)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.starts = starts[sizes > 0]
        self.sizes = sizes[sizes > 0]
        self.singletons = bool(np.all(self.sizes == 1))  # LeaveOneOut
        # position of each fit's excluded block among the non-empty blocks
        position = np.cumsum(sizes > 0) - 1
        self.fit_block = position[: len(blocks)]

    def sums(self, log_k):
        """Log kernel sums over each fit's training part, and over all rows.

        Returns ``(excluded, total)``: ``excluded[:, f]`` is
        ``log sum_{j in train_f} exp(log_k[:, j])`` for the round's fits,
        ``total`` the same over every row.
        """
        a = log_k if self.identity else log_k[:, self.order]
        if self.singletons:
            block = a
        else:
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

    Returns the rounds, the direct fits with the log-multiplicity of every
    row in their training part, and the training-part size of every fit.
    """
    rounds, direct, log_counts, n_train = [], [], {}, []
    current_fits, current_blocks = [], []
    used = np.zeros(n_samples, dtype=bool)
    marked = np.zeros(n_samples, dtype=bool)
    for k, (train, test) in enumerate(splits):
        n_train.append(len(train))
        marked[:] = False
        marked[train] = True
        # a fit on every row with nothing held out is a direct fit: a
        # complement fit needs a held-out block to leave out
        is_complement = (
            len(test) > 0
            and len(train) + len(test) == n_samples
            and np.count_nonzero(marked) == len(train)  # no repeated index
            and not marked[test].any()
        )
        if not is_complement:
            direct.append(k)
            with np.errstate(divide="ignore"):
                count = np.bincount(train, minlength=n_samples).astype(np.float64)
                log_counts[k] = np.log(count)
            continue
        if used[test].any():
            rounds.append(_Round(n_samples, current_fits, current_blocks))
            current_fits, current_blocks = [], []
            used[:] = False
        used[test] = True
        current_fits.append(k)
        current_blocks.append(test)
    if current_fits:
        rounds.append(_Round(n_samples, current_fits, current_blocks))
    return rounds, direct, log_counts, np.asarray(n_train, dtype=np.float64)


# Largest error (nats) a Gaussian kernel term may take from computing squared
# distances as |x|^2 + |y|^2 - 2 x.y with BLAS instead of exactly.
_GEMM_TOLERANCE = 1e-10


def _distances(X, sq_norms, rows, kernel, h_min):
    """Distances (squared for _SQUARED kernels) from ``X[rows]`` to ``X``.

    The Gaussian kernel takes the BLAS expansion on centred data when its
    rounding error, about 8 eps max|x|^2 / (2 h^2) nats per term, is below
    ``_GEMM_TOLERANCE``; everything else (and tiny bandwidths) uses exact
    pairwise differences, so compact kernels see their support boundary
    exactly as KernelDensity does.
    """
    if kernel == "gaussian" and sq_norms is not None:
        bound = 8 * np.finfo(np.float64).eps * sq_norms.max() / (2 * h_min**2)
        if bound < _GEMM_TOLERANCE:
            d = X[rows] @ X.T
            d *= -2.0
            d += sq_norms[rows, None]
            d += sq_norms[None, :]
            np.maximum(d, 0.0, out=d)
            return d
    metric = "sqeuclidean" if kernel in _SQUARED else "euclidean"
    return cdist(X[rows], X, metric=metric)


def _chunk_sums(X, sq_norms, rows, plan, kernel):
    """Log kernel sums of every fit (and of the full fit) for query ``rows``."""
    bandwidths, rounds, direct, log_counts, full_h = plan
    distinct = set(bandwidths.tolist())
    if full_h is not None:
        distinct.add(full_h)
    dist = _distances(X, sq_norms, rows, kernel, min(distinct))
    out = np.empty((len(bandwidths), dist.shape[0]))
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
                out[k] = _lse_rows(log_k + log_counts[k][None, :])
        if full_h == h and full is None:
            full = _lse_rows(log_k)
    return out, full


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
    n, d = X.shape
    rounds, direct, log_counts, n_train = _plan(splits, n)
    bandwidths = np.array([kde_bandwidth(bandwidth, m, d) for m in n_train])
    full_h = kde_bandwidth(bandwidth, n, d) if full else None
    check_bandwidths(bandwidths if full_h is None else [*bandwidths, full_h], X)

    n_threads = effective_n_jobs(n_jobs)
    if chunk_size is None:
        # a handful of (chunk, n) float64 work arrays per distinct bandwidth
        working = get_config()["working_memory"] * 2**20
        chunk_size = int(max(1, min(n, working // (8 * 6 * n))))
        # fixed by n alone (never by n_jobs), so results are bit-identical
        # whatever the number of threads; small enough to share out
        chunk_size = min(chunk_size, max(64, -(-n // 16)))
    Xc = X - X.mean(axis=0)  # distances are translation invariant
    sq_norms = np.einsum("ij,ij->i", Xc, Xc) if kernel == "gaussian" else None
    plan = (bandwidths, rounds, direct, log_counts, full_h)
    batches = list(gen_batches(n, chunk_size))
    # threads over chunks; BLAS single-threaded inside them (also keeps
    # results independent of the thread count)
    with limit_threads(1):
        results = Parallel(n_jobs=n_threads, backend="threading")(
            delayed(_chunk_sums)(Xc, sq_norms, rows, plan, kernel) for rows in batches
        )
    sums = np.hstack([r[0] for r in results])
    norms = np.array([log_kernel_norm(h, d, kernel) for h in bandwidths])
    loglik = sums - np.log(n_train)[:, None] + norms[:, None]
    full_loglik = None
    if full:
        full_loglik = np.concatenate([r[1] for r in results])
        full_loglik += log_kernel_norm(full_h, d, kernel) - math.log(n)
    return loglik, full_loglik
