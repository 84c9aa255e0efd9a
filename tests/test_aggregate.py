"""The one aggregation: U, V, M from per-fit log-likelihoods and masks."""

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
