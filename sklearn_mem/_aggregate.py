"""The one aggregation: per-fit log-likelihoods and masks -> U, V, M.

Every producer of log-likelihoods (the closed-form kernel sums, the refits,
cached results) ends here, so the "in"/"out" split, the NaN and infinity
rules and the warnings are defined once.
"""

import warnings

import numpy as np
from sklearn.utils import Bunch

AGGREGATES = ("logmeanexp", "mean")


class MemorizationWarning(UserWarning):
    """Warning about memorization scores that are undefined or infinite.

    Raised when some samples have no "in" or no "out" fit (their score is
    NaN), or when some log-likelihoods are ``-inf`` (zero density), which
    makes the affected scores infinite or undefined.
    """


def _masked_aggregate(loglik, mask, aggregate):
    """Aggregate the entries of ``loglik`` selected by ``mask`` column-wise.

    Columns without a selected entry give NaN.
    """
    count = mask.sum(axis=0)
    has_any = count > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        if aggregate == "logmeanexp":
            # -inf (zero density) is exact here: a column of only -inf gives
            # -inf, the right log of a zero mean density
            values = np.where(mask, loglik, -np.inf)
            top = values.max(axis=0)
            top = np.where(np.isfinite(top), top, 0.0)
            values -= top
            np.exp(values, out=values)
            out = np.log(values.sum(axis=0)) + top - np.log(np.maximum(count, 1))
        else:
            values = np.where(mask, loglik, 0.0)
            out = values.sum(axis=0) / np.maximum(count, 1)
    out = np.asarray(out, dtype=np.float64)
    out[~has_any] = np.nan
    return out, count


def aggregate_loglik(loglik, in_mask, *, aggregate="logmeanexp", warn=True):
    """Turn per-fit log-likelihoods into memorization scores.

    Parameters
    ----------
    loglik : ndarray of shape (n_fits, n_samples)
        ``log p_k(x_i)`` for every fit ``k`` and sample ``i``; ``-inf`` is a
        valid value (zero density), NaN is not.
    in_mask : ndarray of bool, shape (n_fits, n_samples)
        True where sample ``i`` was in fit ``k``'s training part. Every other
        fit is an "out" fit for that sample.
    aggregate : {"logmeanexp", "mean"}
        ``"logmeanexp"`` averages probabilities (the paper's estimator of
        ``log E[p(x)]``); ``"mean"`` averages log-likelihoods.
    warn : bool, default=True
        Whether to emit a :class:`MemorizationWarning` for undefined or
        infinite scores.

    Returns
    -------
    result : Bunch
        ``in_loglik`` (U), ``out_loglik`` (V), ``memorization`` (M = U - V),
        ``n_in`` and ``n_out``. ``M`` is NaN where a sample has no "in" or no
        "out" fit, or where both U and V are ``-inf``; ``+inf`` where only V is
        ``-inf``; ``-inf`` where only U is ``-inf``.
    """
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}.")
    loglik = np.asarray(loglik, dtype=np.float64)
    in_mask = np.asarray(in_mask, dtype=bool)
    if loglik.ndim != 2 or loglik.shape != in_mask.shape:
        raise ValueError(
            "loglik and in_mask must be 2-D arrays of the same shape "
            f"(n_fits, n_samples); got {loglik.shape} and {in_mask.shape}."
        )
    if np.isnan(loglik).any():
        raise ValueError(
            "loglik contains NaN; every fit must give a log-likelihood "
            "(possibly -inf) for every sample."
        )
    U, n_in = _masked_aggregate(loglik, in_mask, aggregate)
    V, n_out = _masked_aggregate(loglik, ~in_mask, aggregate)
    with np.errstate(invalid="ignore"):
        M = U - V  # inf - inf and anything with NaN give NaN
    if warn:
        _warn_undefined(n_in, n_out, U, V)
    return Bunch(in_loglik=U, out_loglik=V, memorization=M, n_in=n_in, n_out=n_out)


def _warn_undefined(n_in, n_out, U, V):
    n = n_in.shape[0]
    no_in = int(np.sum(n_in == 0))
    no_out = int(np.sum(n_out == 0))
    if no_out or no_in:
        warnings.warn(
            f"{no_out} of {n} samples have no 'out' fit and {no_in} have no "
            "'in' fit (no fit left them out / trained on them), so their "
            "memorization score is undefined and set to NaN. Use a splitter "
            "whose held-out parts cover every sample (e.g. KFold) or more "
            "splits.",
            MemorizationWarning,
            stacklevel=3,
        )
    both = (n_in > 0) & (n_out > 0)
    v_inf = both & np.isneginf(V)
    u_inf = both & np.isneginf(U)
    if v_inf.any() or u_inf.any():
        n_pos = int(np.sum(v_inf & ~u_inf))
        n_neg = int(np.sum(u_inf & ~v_inf))
        n_nan = int(np.sum(u_inf & v_inf))
        warnings.warn(
            f"Zero density (log-likelihood -inf) for {int(np.sum(v_inf | u_inf))} "
            f"of {n} samples: M = +inf for {n_pos} (zero density only when "
            f"left out), M = -inf for {n_neg} (zero density only when "
            f"trained on), M = NaN for {n_nan} (zero density both ways). "
            "The -inf values are kept in loglik_, in_loglik_ and out_loglik_; "
            "a wider bandwidth or a kernel with unbounded support (gaussian, "
            "exponential) avoids them.",
            MemorizationWarning,
            stacklevel=3,
        )


def repeat_standard_error(loglik, in_mask, repeats, *, aggregate="logmeanexp"):
    """Standard error of M across repeats of a splitter.

    Each repeat ``r`` (e.g. one round of a RepeatedKFold) gives its own score
    ``M_i^(r)`` from its fits alone; the standard error is the sample standard
    deviation of the finite ``M_i^(r)`` divided by the square root of their
    number. Samples with fewer than two finite per-repeat scores get NaN.

    Parameters
    ----------
    loglik, in_mask : ndarray of shape (n_fits, n_samples)
        As for :func:`aggregate_loglik`.
    repeats : ndarray of int, shape (n_fits,)
        The repeat each fit belongs to.
    aggregate : {"logmeanexp", "mean"}
        Aggregation inside each repeat.

    Returns
    -------
    stderr : ndarray of shape (n_samples,)
    per_repeat : ndarray of shape (n_repeats, n_samples)
        ``M_i^(r)``.
    """
    repeats = np.asarray(repeats)
    labels = np.unique(repeats)
    per_repeat = np.vstack(
        [
            aggregate_loglik(
                loglik[repeats == r],
                in_mask[repeats == r],
                aggregate=aggregate,
                warn=False,
            ).memorization
            for r in labels
        ]
    )
    finite = np.isfinite(per_repeat)
    count = finite.sum(axis=0)
    values = np.where(finite, per_repeat, np.nan)
    stderr = np.full(per_repeat.shape[1], np.nan)
    ok = count >= 2
    if ok.any():
        stderr[ok] = np.nanstd(values[:, ok], axis=0, ddof=1) / np.sqrt(count[ok])
    return stderr, per_repeat


def split_rounds(in_mask):
    """Group consecutive fits into repeats: rounds with disjoint "out" parts.

    The fits of one KFold form one round; each repeat of RepeatedKFold is a
    round; with ShuffleSplit every fit is usually a round of its own.

    Returns
    -------
    rounds : ndarray of int, shape (n_fits,)
    """
    rounds = np.zeros(in_mask.shape[0], dtype=np.intp)
    used = np.zeros(in_mask.shape[1], dtype=bool)
    current = 0
    for k, row in enumerate(in_mask):
        out = ~row
        if (used & out).any():
            current += 1
            used[:] = False
        used |= out
        rounds[k] = current
    return rounds


def repeat_interval(memorization, stderr, per_repeat, level=0.95):
    """Student-t interval around M from the spread of the per-repeat scores.

    Parameters
    ----------
    memorization : ndarray of shape (n_samples,)
        M.
    stderr : ndarray of shape (n_samples,)
        Its standard error across repeats (:func:`repeat_standard_error`).
    per_repeat : ndarray of shape (n_repeats, n_samples)
        The per-repeat scores; the degrees of freedom of each sample are its
        finite per-repeat scores minus one.
    level : float, default=0.95

    Returns
    -------
    interval : ndarray of shape (n_samples, 2)
        NaN where the standard error is undefined.
    """
    from scipy.stats import t as t_dist

    dof = np.isfinite(per_repeat).sum(axis=0) - 1
    with np.errstate(invalid="ignore"):
        half = t_dist.ppf(0.5 + level / 2, np.maximum(dof, 1)) * stderr
    return np.column_stack([memorization - half, memorization + half])
