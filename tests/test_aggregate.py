"""The one aggregation: U, V, M from per-fit log-likelihoods and masks."""

import warnings

import numpy as np
import pytest

from sklearn_mem import MemorizationWarning
from sklearn_mem._aggregate import aggregate_loglik, repeat_standard_error


def test_logmeanexp_and_mean_by_hand():
    loglik = np.log(np.array([[0.2, 0.5], [0.4, 0.1], [0.6, 0.3]]))
    mask = np.array([[True, False], [True, True], [False, True]])
    r = aggregate_loglik(loglik, mask)
    np.testing.assert_allclose(r.in_loglik, np.log([0.3, 0.2]))
    np.testing.assert_allclose(r.out_loglik, np.log([0.6, 0.5]))
    np.testing.assert_allclose(r.memorization, np.log([0.5, 0.4]))
    np.testing.assert_array_equal(r.n_in, [2, 2])
    np.testing.assert_array_equal(r.n_out, [1, 1])
    r = aggregate_loglik(loglik, mask, aggregate="mean")
    np.testing.assert_allclose(
        r.in_loglik, [np.log(0.2 * 0.4) / 2, np.log(0.1 * 0.3) / 2]
    )


def test_infinities_follow_the_rules():
    ninf = -np.inf
    loglik = np.array([[0.0, ninf, ninf, 0.0], [ninf, 0.0, ninf, -1.0]])
    mask = np.array([[True, True, True, True], [False, False, False, False]])
    with pytest.warns(MemorizationWarning) as record:
        r = aggregate_loglik(loglik, mask)
    assert np.isposinf(r.memorization[0])  # out zero density
    assert np.isneginf(r.memorization[1])  # in zero density
    assert np.isnan(r.memorization[2])  # both
    assert r.memorization[3] == pytest.approx(1.0)
    message = str(record[0].message)
    assert "M = +inf for 1" in message and "M = -inf for 1" in message
    assert "M = NaN for 1" in message


def test_logmeanexp_keeps_partial_zero_density():
    loglik = np.array([[np.log(0.5)], [-np.inf], [0.0]])
    mask = np.array([[True], [True], [False]])
    r = aggregate_loglik(loglik, mask)
    assert r.in_loglik[0] == pytest.approx(np.log(0.25))
    r = aggregate_loglik(loglik, mask, aggregate="mean", warn=False)
    assert np.isneginf(r.in_loglik[0])


def test_bad_arguments():
    with pytest.raises(ValueError, match="aggregate must be one of"):
        aggregate_loglik(np.zeros((2, 2)), np.eye(2, dtype=bool), aggregate="median")
    with pytest.raises(ValueError, match="same shape"):
        aggregate_loglik(np.zeros((2, 3)), np.eye(2, dtype=bool))
    with pytest.raises(ValueError, match="NaN"):
        aggregate_loglik(np.full((2, 2), np.nan), np.eye(2, dtype=bool))


def test_repeat_standard_error_by_hand():
    rng = np.random.RandomState(0)
    loglik = rng.randn(4, 3)
    mask = np.array([[1, 0, 1], [0, 1, 0], [0, 1, 1], [1, 0, 0]], dtype=bool)
    se, per = repeat_standard_error(loglik, mask, np.array([0, 0, 1, 1]))
    m0 = aggregate_loglik(loglik[:2], mask[:2], warn=False).memorization
    m1 = aggregate_loglik(loglik[2:], mask[2:], warn=False).memorization
    np.testing.assert_allclose(per, [m0, m1])
    np.testing.assert_allclose(se, np.abs(m0 - m1) / 2)


def test_values_beyond_exp_range_keep_their_scale():
    # exp(-1000) underflows and exp(1000) overflows: the maximum is factored out
    loglik = np.array([[-1000.0, 1000.0], [-1001.0, 999.0], [-1000.5, 1001.0]])
    mask = np.array([[True, True], [True, False], [False, False]])
    r = aggregate_loglik(loglik, mask)
    np.testing.assert_allclose(
        r.in_loglik, [np.logaddexp(-1000.0, -1001.0) - np.log(2), 1000.0]
    )
    np.testing.assert_allclose(
        r.out_loglik, [-1000.5, np.logaddexp(999.0, 1001.0) - np.log(2)]
    )


def test_input_types_are_converted_first():
    # float32 log-likelihoods are aggregated in float64, integer masks are masks
    rng = np.random.RandomState(0)
    loglik = (rng.randn(5, 7) * 30).astype(np.float32)
    mask = rng.rand(5, 7) < 0.5
    mask[0], mask[1] = True, False
    ref = aggregate_loglik(loglik.astype(np.float64), mask)
    for ll, m in ((loglik, mask), (loglik.astype(np.float64), mask.astype(int))):
        r = aggregate_loglik(ll, m)
        for name in ("in_loglik", "out_loglik", "memorization"):
            np.testing.assert_array_equal(r[name], ref[name])
            assert r[name].dtype == np.float64
        np.testing.assert_array_equal(r.n_out, ref.n_out)


def test_no_floating_point_warnings():
    # zero densities, and a +inf next to a -inf in the mean, stay silent: the
    # NaN/inf rules are the MemorizationWarning's business
    loglik = np.array([[-np.inf, 0.0, np.inf], [-np.inf, -np.inf, -np.inf]])
    mask = np.array([[True, True, True], [True, False, True]])
    for aggregate in ("logmeanexp", "mean"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            aggregate_loglik(loglik, mask, aggregate=aggregate, warn=False)


def test_warning_texts():
    ninf = -np.inf
    # sample 0 has no "out" fit, sample 1 no "in" fit; all have the other side
    loglik = np.array([[0.0, -1.0, -2.0], [-0.5, -1.5, -2.5]])
    mask = np.array([[True, False, True], [True, False, False]])
    with pytest.warns(MemorizationWarning) as record:
        aggregate_loglik(loglik, mask)
    assert len(record) == 1
    assert str(record[0].message) == (
        "1 of 3 samples have no 'out' fit and 1 have no 'in' fit (no fit left "
        "them out / trained on them), so their memorization score is undefined "
        "and set to NaN. Use a splitter whose held-out parts cover every sample "
        "(e.g. KFold) or more splits."
    )
    # only samples without an "out" fit: still a warning
    with pytest.warns(MemorizationWarning, match="1 of 2 samples have no 'out'"):
        aggregate_loglik(np.zeros((2, 2)), np.array([[True, True], [True, False]]))
    # zero densities: two M = +inf, one M = -inf, two NaN
    loglik = np.array(
        [[0.0, 0.0, ninf, ninf, ninf, 0.0], [ninf, ninf, 0.0, ninf, ninf, 0.0]]
    )
    mask = np.array([[True] * 6, [False] * 6])
    with pytest.warns(MemorizationWarning) as record:
        aggregate_loglik(loglik, mask)
    assert len(record) == 1
    assert str(record[0].message) == (
        "Zero density (log-likelihood -inf) for 5 of 6 samples: M = +inf for 2 "
        "(zero density only when left out), M = -inf for 1 (zero density only "
        "when trained on), M = NaN for 2 (zero density both ways). The -inf "
        "values are kept in loglik_, in_loglik_ and out_loglik_; a wider "
        "bandwidth or a kernel with unbounded support (gaussian, exponential) "
        "avoids them."
    )


def test_error_texts():
    import re

    with pytest.raises(ValueError) as info:
        aggregate_loglik(np.zeros((2, 3)), np.eye(2, dtype=bool))
    assert str(info.value) == (
        "loglik and in_mask must be 2-D arrays of the same shape (n_fits, "
        "n_samples); got (2, 3) and (2, 2)."
    )
    with pytest.raises(ValueError) as info:
        aggregate_loglik(np.full((2, 2), np.nan), np.eye(2, dtype=bool))
    assert str(info.value) == (
        "loglik contains NaN; every fit must give a log-likelihood (possibly "
        "-inf) for every sample."
    )
    with pytest.raises(ValueError, match=re.escape("('logmeanexp', 'mean')")):
        aggregate_loglik(np.zeros((2, 2)), np.eye(2, dtype=bool), aggregate="max")


def test_zero_density_warning_counts_only_samples_with_both_sides():
    ninf = -np.inf
    # sample 0: no "out" fit, U = -inf; sample 1: no "in" fit, V = -inf;
    # neither has a score, so neither is a zero-density case
    loglik = np.array([[ninf, ninf, 0.0], [ninf, ninf, -1.0]])
    mask = np.array([[True, False, True], [True, False, False]])
    with pytest.warns(MemorizationWarning) as record:
        aggregate_loglik(loglik, mask)
    assert len(record) == 1 and "no 'out' fit" in str(record[0].message)


def test_repeat_standard_error_is_silent_and_uses_the_aggregate():
    rng = np.random.RandomState(1)
    loglik = rng.randn(6, 3)
    # two "in" fits per sample and repeat (so logmeanexp and mean differ);
    # sample 0 has no "out" fit in repeat 1
    mask = np.array(
        [[1, 0, 1], [1, 1, 0], [0, 1, 1], [1, 1, 1], [1, 0, 1], [1, 1, 0]],
        dtype=bool,
    )
    repeats = np.array([0, 0, 0, 1, 1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        se, per = repeat_standard_error(loglik, mask, repeats, aggregate="mean")
    m0 = aggregate_loglik(loglik[:3], mask[:3], aggregate="mean", warn=False)
    m1 = aggregate_loglik(loglik[3:], mask[3:], aggregate="mean", warn=False)
    np.testing.assert_allclose(per, [m0.memorization, m1.memorization])
    assert np.isnan(se[0])
    np.testing.assert_allclose(
        se[1:], np.abs(m0.memorization - m1.memorization)[1:] / 2
    )
