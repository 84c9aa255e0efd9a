"""Property-based tests (hypothesis) of the aggregation and the closed form."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import logsumexp
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    LeaveOneOut,
    RepeatedKFold,
    ShuffleSplit,
)

from sklearn_mem._aggregate import aggregate_loglik
from sklearn_mem._kde import KERNELS, kde_loglik, log_kernel_norm

SETTINGS = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,  # the same examples on every run: no flaky CI
    database=None,  # and nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow],
)

# log-likelihoods: finite values over a wide range, and zero densities
# (far beyond exp's range both ways, so the shift by the maximum must work)
_VALUES = st.one_of(
    st.floats(-5000.0, 1000.0, allow_nan=False, allow_infinity=False),
    st.just(-np.inf),
)


@st.composite
def fits(draw):
    n_fits = draw(st.integers(1, 6))
    n = draw(st.integers(1, 6))
    loglik = draw(arrays(np.float64, (n_fits, n), elements=_VALUES))
    mask = draw(arrays(np.bool_, (n_fits, n)))
    return loglik, mask


def _same(a, b, rtol=1e-12, atol=1e-9):
    """Equal, NaN where NaN, the same infinities; close where finite."""
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_array_equal(np.isposinf(a), np.isposinf(b))
    np.testing.assert_array_equal(np.isneginf(a), np.isneginf(b))
    finite = np.isfinite(a)
    np.testing.assert_allclose(a[finite], b[finite], rtol=rtol, atol=atol)


# ----------------------------------------------------------------------
# the aggregation
# ----------------------------------------------------------------------
@pytest.mark.parametrize("aggregate", ["logmeanexp", "mean"])
@SETTINGS
@given(data=fits(), seed=st.integers(0, 2**16))
def test_scores_do_not_depend_on_the_order_of_the_fits(aggregate, data, seed):
    loglik, mask = data
    order = np.random.RandomState(seed).permutation(loglik.shape[0])
    a = aggregate_loglik(loglik, mask, aggregate=aggregate, warn=False)
    b = aggregate_loglik(loglik[order], mask[order], aggregate=aggregate, warn=False)
    for name in ("in_loglik", "out_loglik", "memorization"):
        _same(a[name], b[name])
    np.testing.assert_array_equal(a.n_in, b.n_in)
    np.testing.assert_array_equal(a.n_out, b.n_out)


@SETTINGS
@given(data=fits())
def test_logmeanexp_lies_between_min_and_max(data):
    loglik, mask = data
    r = aggregate_loglik(loglik, mask, warn=False)
    for side, selected in ((r.in_loglik, mask), (r.out_loglik, ~mask)):
        for i in range(loglik.shape[1]):
            values = loglik[selected[:, i], i]
            if values.size == 0:
                assert np.isnan(side[i])
                continue
            lo, hi = values.min(), values.max()
            if np.isneginf(hi):  # zero density under every fit
                assert np.isneginf(side[i])
                continue
            # up to rounding: log(k) is added and subtracted again
            tol = 1e-12 * (1 + abs(hi))
            assert lo - tol <= side[i] <= hi + tol
            # and it is the log of the mean probability
            expected = logsumexp(values) - math.log(values.size)
            assert side[i] == pytest.approx(expected, rel=1e-12, abs=1e-9)
    np.testing.assert_array_equal(r.n_in, mask.sum(0))
    np.testing.assert_array_equal(r.n_out, (~mask).sum(0))


@pytest.mark.parametrize("aggregate", ["logmeanexp", "mean"])
@SETTINGS
@given(
    row=arrays(
        np.float64,
        st.integers(1, 6),
        elements=st.floats(-700.0, 50.0, allow_nan=False),
    ),
    n_fits=st.integers(2, 6),
    seed=st.integers(0, 2**16),
)
def test_identical_in_and_out_models_give_zero(aggregate, row, n_fits, seed):
    # every fit gives every sample the same log-likelihood: in and out
    # models are the same model, so M = 0 wherever both sides exist
    loglik = np.tile(row, (n_fits, 1))
    mask = np.random.RandomState(seed).rand(n_fits, row.size) < 0.5
    mask[0], mask[1] = True, False  # every sample has an in and an out fit
    r = aggregate_loglik(loglik, mask, aggregate=aggregate, warn=False)
    np.testing.assert_allclose(r.in_loglik, row, rtol=1e-14, atol=1e-12)
    np.testing.assert_allclose(r.out_loglik, row, rtol=1e-14, atol=1e-12)
    np.testing.assert_allclose(r.memorization, 0.0, atol=1e-12)


# ----------------------------------------------------------------------
# the closed form against a brute-force kernel sum
# ----------------------------------------------------------------------
def _kernel(u, kernel):
    """KernelDensity's unnormalised kernels of u = distance / bandwidth."""
    inside = u < 1
    with np.errstate(divide="ignore"):
        if kernel == "gaussian":
            return -0.5 * u**2
        if kernel == "exponential":
            return -u
        if kernel == "tophat":
            return np.where(inside, 0.0, -np.inf)
        if kernel == "epanechnikov":
            return np.where(inside, np.log(np.maximum(1 - u**2, 0)), -np.inf)
        if kernel == "linear":
            return np.where(inside, np.log(np.maximum(1 - u, 0)), -np.inf)
        return np.where(inside, np.log(np.cos(0.5 * np.pi * np.minimum(u, 1))), -np.inf)


def _brute_force(X, train, h, kernel):
    """log( sum_{j in train} k_h(x - x_j) / |train| ) for every row, one by one."""
    d = X.shape[1]
    out = np.empty(len(X))
    for i, x in enumerate(X):
        u = np.array([math.dist(x, X[j]) / h for j in train])
        with np.errstate(divide="ignore"):
            out[i] = logsumexp(_kernel(u, kernel)) if len(u) else -np.inf
    return out - math.log(len(train)) + log_kernel_norm(h, d, kernel)


@st.composite
def splitters(draw, n):
    kind = draw(
        st.sampled_from(
            ["loo", "kfold", "repeated", "group", "shuffle", "bootstrap", "holdout"]
        )
    )
    seed = draw(st.integers(0, 1000))
    X = np.zeros((n, 1))
    if kind == "loo":
        return list(LeaveOneOut().split(X))
    if kind == "kfold":
        k = draw(st.integers(2, n))
        shuffle = draw(st.booleans())
        cv = KFold(k, shuffle=shuffle, random_state=seed if shuffle else None)
        return list(cv.split(X))
    if kind == "repeated":
        k = draw(st.integers(2, n))
        return list(RepeatedKFold(n_splits=k, n_repeats=2, random_state=seed).split(X))
    if kind == "group":
        groups = draw(arrays(np.int64, n, elements=st.integers(0, 3)))
        k = len(np.unique(groups))
        assume(k >= 2)
        return list(GroupKFold(k).split(X, groups=groups))
    if kind == "shuffle":
        return list(
            ShuffleSplit(3, train_size=0.5, test_size=0.25, random_state=seed).split(X)
        )
    rng = np.random.RandomState(seed)
    if kind == "bootstrap":  # repeated training indices count as weights
        trains = [rng.randint(n, size=n) for _ in range(3)]
        return [(t, np.setdiff1d(np.arange(n), t)) for t in trains]
    # a lone split whose training part is not "all rows but one block"
    train = rng.permutation(n)[: max(1, n // 2)]
    return [(train, np.setdiff1d(np.arange(n), train)[:1])]


@SETTINGS
@given(
    data=st.data(),
    n=st.integers(3, 10),
    d=st.integers(1, 3),
    kernel=st.sampled_from(KERNELS),
    log_h=st.floats(math.log(0.005), math.log(5.0)),
)
def test_closed_form_equals_brute_force(data, n, d, kernel, log_h):
    # points on a coarse grid (ties and duplicates happen) or spread out
    scale = data.draw(st.sampled_from([0.25, 1.0, 3.0]))
    X = data.draw(arrays(np.float64, (n, d), elements=st.integers(-4, 4))) * scale
    h = math.exp(log_h)
    # no distance on the edge of a compact kernel's support, where rounding
    # (of centred coordinates) may fall either way
    dist = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    assume(np.all(np.abs(dist - h) > 1e-6 * h))
    splits = data.draw(splitters(n))
    chunk = data.draw(st.sampled_from([None, 1, 2, 5]))
    loglik, full = kde_loglik(
        X, splits, bandwidth=h, kernel=kernel, full=True, chunk_size=chunk
    )
    expected = np.array([_brute_force(X, train, h, kernel) for train, _ in splits])
    _same(loglik, expected, rtol=1e-10, atol=1e-9)
    _same(full, _brute_force(X, np.arange(n), h, kernel), rtol=1e-10, atol=1e-9)
