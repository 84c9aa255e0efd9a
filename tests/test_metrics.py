"""Tests for sklearn_mem.metrics, against direct computations.

The metrics only read fitted attributes, so most tests use a small stand-in
with ``loglik_``, ``in_mask_`` and ``memorization_scores_``; the last tests
run the same checks on a fitted MemorizationScorer.
"""

import warnings

import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_curve
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.neighbors import KernelDensity
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_mem import MemorizationScorer, MemorizationWarning
from sklearn_mem._aggregate import aggregate_loglik
from sklearn_mem.metrics import (
    heldout_loglik_scorer,
    make_memorization_scorer,
    membership_auc,
)


class StandIn:
    """Holds the fitted attributes the metrics read."""

    def __init__(self, loglik=None, in_mask=None, memorization_scores=None):
        if loglik is not None:
            self.loglik_ = np.asarray(loglik, dtype=float)
            self.in_mask_ = np.asarray(in_mask, dtype=bool)
        if memorization_scores is not None:
            self.memorization_scores_ = np.asarray(memorization_scores, dtype=float)


class LOOKDEMemorization(BaseEstimator):
    """A tiny estimator with memorization_scores_, for search tests.

    Leave-one-out KDE fits give loglik_ / in_mask_; the scores come from the
    project's aggregation. score_samples delegates to a KDE on all of X.
    """

    def __init__(self, bandwidth=1.0):
        self.bandwidth = bandwidth

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=float)
        n = X.shape[0]
        self.in_mask_ = ~np.eye(n, dtype=bool)
        self.loglik_ = np.vstack(
            [
                KernelDensity(bandwidth=self.bandwidth)
                .fit(X[self.in_mask_[k]])
                .score_samples(X)
                for k in range(n)
            ]
        )
        self.memorization_scores_ = aggregate_loglik(
            self.loglik_, self.in_mask_
        ).memorization
        self.estimator_ = KernelDensity(bandwidth=self.bandwidth).fit(X)
        return self

    def score_samples(self, X):
        return self.estimator_.score_samples(X)

    def score(self, X, y=None):
        return self.estimator_.score(X)


def _brute_auc(loglik, in_mask):
    """P(member score > non-member score) + 1/2 P(tie), by counting pairs."""
    s, lab = np.ravel(loglik), np.ravel(in_mask)
    pos, neg = s[lab], s[~lab]
    wins = 0.0
    for p in pos:
        for q in neg:
            wins += 1.0 if p > q else (0.5 if p == q else 0.0)
    return wins / (pos.size * neg.size)


@pytest.fixture
def fits():
    rng = np.random.RandomState(0)
    # rounded so that ties occur, with zero densities and an infinite value
    loglik = np.round(rng.normal(size=(6, 15)), 1)
    in_mask = rng.rand(6, 15) < 0.6
    loglik[in_mask] += 0.3
    loglik[0, :4] = -np.inf
    loglik[1, 3] = np.inf
    return loglik, in_mask


# ---------------------------------------------------------------------------
# membership_auc
# ---------------------------------------------------------------------------


def test_membership_auc_matches_pair_count(fits):
    loglik, in_mask = fits
    expected = _brute_auc(loglik, in_mask)
    assert membership_auc(loglik=loglik, in_mask=in_mask) == pytest.approx(expected)
    assert membership_auc(StandIn(loglik, in_mask)) == pytest.approx(expected)
    assert 0.5 < expected < 1.0


def test_membership_auc_neg_inf_ranks_lowest():
    loglik = np.array([[-np.inf, -100.0, -np.inf, 5.0]])
    in_mask = np.array([[False, True, True, False]])
    # members {-100, -inf}, non-members {-inf, 5}:
    # (-100 > -inf) 1, (-100 vs 5) 0, (-inf = -inf) 1/2, (-inf vs 5) 0
    assert membership_auc(loglik=loglik, in_mask=in_mask) == pytest.approx(1.5 / 4)


def test_membership_auc_curve(fits):
    loglik, in_mask = fits
    res = membership_auc(loglik=loglik, in_mask=in_mask, return_curve=True)
    assert res.auc == pytest.approx(_brute_auc(loglik, in_mask))
    assert (res.n_in, res.n_out) == (in_mask.sum(), (~in_mask).sum())
    # Same curve as roc_curve on an order-preserving finite copy of the scores.
    finite = np.clip(loglik, -1e3, 1e3)
    fpr, tpr, thr = roc_curve(in_mask.ravel(), finite.ravel())
    np.testing.assert_allclose(res.fpr, fpr)
    np.testing.assert_allclose(res.tpr, tpr)
    expected_thr = np.where(thr == 1e3, np.inf, np.where(thr == -1e3, -np.inf, thr))
    np.testing.assert_array_equal(res.thresholds, expected_thr)
    assert res.thresholds[0] == np.inf
    assert res.thresholds[-1] == -np.inf


def test_membership_auc_nan_pairs_are_left_out(fits):
    loglik, in_mask = fits
    with_nan = loglik.copy()
    with_nan[2, 5] = np.nan
    keep = ~np.isnan(with_nan)
    with pytest.warns(MemorizationWarning, match="1 of 90"):
        auc = membership_auc(loglik=with_nan, in_mask=in_mask)
    assert auc == pytest.approx(_brute_auc(loglik[keep], in_mask[keep]))


def test_membership_auc_errors(fits):
    loglik, in_mask = fits
    with pytest.raises(ValueError, match="both member and non-member"):
        membership_auc(loglik=loglik, in_mask=np.ones_like(in_mask))
    with pytest.raises(ValueError, match="same shape"):
        membership_auc(loglik=loglik, in_mask=in_mask[:, :3])
    with pytest.raises(ValueError, match="not both"):
        membership_auc(StandIn(loglik, in_mask), loglik=loglik, in_mask=in_mask)
    with pytest.raises(ValueError, match="both loglik\\s+and in_mask"):
        membership_auc(loglik=loglik)
    with pytest.raises(ValueError, match="boolean"):
        membership_auc(loglik=loglik, in_mask=in_mask * 2.5)
    with pytest.raises(TypeError, match="needs a fitted MemorizationScorer.*Wrap"):
        membership_auc(KernelDensity().fit(np.zeros((3, 2))))


# ---------------------------------------------------------------------------
# make_memorization_scorer
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("q", [0.0, 0.1, 0.5, 0.95, 0.999, 1.0])
def test_quantile_scorer_matches_numpy_on_finite_scores(q):
    M = np.random.RandomState(0).normal(size=37)
    scorer = make_memorization_scorer("quantile", q=q)
    assert scorer(StandIn(memorization_scores=M), None) == pytest.approx(
        -np.quantile(M, q)
    )
    pos = make_memorization_scorer("quantile", q=q, greater_is_better=True)
    assert pos(StandIn(memorization_scores=M), None) == pytest.approx(np.quantile(M, q))


def test_quantile_scorer_with_infinities():
    M = np.array([-np.inf, 0.0, 1.0, 2.0, np.inf, np.inf])
    est = StandIn(memorization_scores=M)

    def qs(q):
        return -make_memorization_scorer(q=q)(est, None)

    # order statistics at (n - 1) q = 5 q: interpolate, taking limits
    assert qs(1.0) == np.inf
    assert qs(0.7) == np.inf  # between 2 and +inf
    assert qs(0.6) == pytest.approx(2.0)  # exactly the 4th order statistic
    assert qs(0.5) == pytest.approx(1.5)
    assert qs(0.1) == -np.inf  # between -inf and 0
    assert qs(0.2) == pytest.approx(0.0)
    assert qs(0.0) == -np.inf


def test_mean_and_fraction_above_scorers():
    M = np.array([0.0, 0.5, 1.0, 3.0, np.inf, np.nan])
    est = StandIn(memorization_scores=M)
    with pytest.warns(MemorizationWarning, match="1 of 6 memorization scores"):
        frac = make_memorization_scorer("fraction_above", threshold=0.5)(est, None)
    assert frac == pytest.approx(-3 / 5)  # strictly above; +inf counts
    with pytest.warns(MemorizationWarning, match="NaN"):
        mean = make_memorization_scorer("mean", greater_is_better=True)(est, None)
    assert mean == np.inf
    finite = StandIn(memorization_scores=[1.0, 2.0, 6.0, np.nan])
    with pytest.warns(MemorizationWarning):
        assert make_memorization_scorer("mean")(finite, None) == pytest.approx(-3.0)


def test_callable_statistic_and_all_nan():
    est = StandIn(memorization_scores=[1.0, np.nan, 4.0])
    with pytest.warns(MemorizationWarning):
        assert make_memorization_scorer(np.max)(est, None) == -4.0
    all_nan = StandIn(memorization_scores=[np.nan, np.nan])
    with pytest.warns(MemorizationWarning, match="all 2 are NaN"):
        assert np.isnan(make_memorization_scorer()(all_nan, None))


def test_scorer_ignores_X_and_reads_the_training_scores():
    est = StandIn(memorization_scores=np.arange(10.0))
    scorer = make_memorization_scorer("quantile", q=0.5)
    assert scorer(est, np.zeros((3, 2))) == scorer(est, None) == -4.5


def test_scorer_unwraps_a_pipeline():
    X = np.random.RandomState(0).normal(size=(12, 2))
    pipe = make_pipeline(StandardScaler(), LOOKDEMemorization(0.5)).fit(X)
    scorer = make_memorization_scorer(q=0.9)
    expected = -np.quantile(pipe[-1].memorization_scores_, 0.9)
    assert scorer(pipe, X) == pytest.approx(expected)
    assert membership_auc(pipe) == membership_auc(
        loglik=pipe[-1].loglik_, in_mask=pipe[-1].in_mask_
    )


def test_scorer_on_wrong_estimator():
    X = np.zeros((4, 2))
    scorer = make_memorization_scorer()
    with pytest.raises(TypeError, match="got a KernelDensity.*MemorizationScorer"):
        scorer(KernelDensity().fit(X), X)
    with pytest.raises(TypeError, match="Pipeline whose last step is a KernelDensity"):
        scorer(make_pipeline(StandardScaler(), KernelDensity()).fit(X), X)
    unfitted = type("MemorizationScorer", (), {})()
    with pytest.raises(NotFittedError, match="not fitted. Call fit"):
        scorer(unfitted, X)


def test_make_memorization_scorer_parameter_errors():
    with pytest.raises(ValueError, match="needs a threshold"):
        make_memorization_scorer("fraction_above")
    with pytest.raises(ValueError, match="only used with statistic='fraction_above'"):
        make_memorization_scorer("quantile", threshold=1.0)
    with pytest.raises(InvalidParameterError, match="q"):
        make_memorization_scorer(q=1.5)
    with pytest.raises(InvalidParameterError, match="statistic"):
        make_memorization_scorer("median")


def test_scorer_repr():
    assert repr(make_memorization_scorer(q=0.9)) == (
        "make_memorization_scorer(quantile(q=0.9))"
    )


def test_multimetric_grid_search_with_stand_in_estimator():
    X = np.random.RandomState(0).normal(size=(30, 2))
    search = GridSearchCV(
        LOOKDEMemorization(),
        {"bandwidth": [0.1, 1.0]},
        scoring={
            "loglik": heldout_loglik_scorer,
            "mem_q90": make_memorization_scorer(q=0.9),
            "frac": make_memorization_scorer("fraction_above", threshold=0.5),
        },
        refit="loglik",
        cv=KFold(3),
    ).fit(X)
    res = search.cv_results_
    # the narrow bandwidth memorizes more: its (negated) quantile is lower
    assert res["mean_test_mem_q90"][0] < res["mean_test_mem_q90"][1]
    # each split's value is the statistic of the model fitted on its training part
    train = next(iter(KFold(3).split(X)))[0]
    fitted = LOOKDEMemorization(0.1).fit(X[train])
    assert res["split0_test_mem_q90"][0] == pytest.approx(
        -np.quantile(fitted.memorization_scores_, 0.9)
    )
    assert search.best_params_ == {"bandwidth": 1.0}


# ---------------------------------------------------------------------------
# heldout_loglik_scorer
# ---------------------------------------------------------------------------


def test_heldout_loglik_scorer():
    rng = np.random.RandomState(0)
    X, X_val = rng.normal(size=(20, 2)), rng.normal(size=(7, 2))
    kde = KernelDensity(bandwidth=0.5).fit(X)
    assert heldout_loglik_scorer(kde, X_val) == pytest.approx(
        kde.score_samples(X_val).mean()
    )
    with pytest.raises(TypeError, match="score_samples"):
        heldout_loglik_scorer(StandardScaler().fit(X), X_val)


# ---------------------------------------------------------------------------
# with the real MemorizationScorer
# ---------------------------------------------------------------------------


@pytest.fixture
def fitted_real():
    X = np.random.RandomState(0).normal(size=(40, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MemorizationWarning)
        return MemorizationScorer(KernelDensity(bandwidth=0.3), cv=5).fit(X), X


def test_real_membership_auc(fitted_real):
    mem, _ = fitted_real
    auc = membership_auc(mem)
    assert auc == pytest.approx(_brute_auc(mem.loglik_, mem.in_mask_))
    assert auc > 0.5  # a narrow KDE tells its members apart
    res = membership_auc(mem, return_curve=True)
    assert res.auc == auc


def test_real_memorization_scorer(fitted_real):
    mem, X = fitted_real
    M = mem.memorization_scores_
    assert make_memorization_scorer(q=0.95)(mem, X) == pytest.approx(
        -np.quantile(M, 0.95)
    )
    assert make_memorization_scorer("fraction_above", threshold=1.0)(
        mem, X
    ) == pytest.approx(-np.mean(M > 1.0))


def test_real_multimetric_search():
    X = np.random.RandomState(0).normal(size=(30, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MemorizationWarning)
        res = cross_validate(
            MemorizationScorer(KernelDensity(bandwidth=0.2), cv=3),
            X,
            cv=KFold(2),
            scoring={
                "loglik": heldout_loglik_scorer,
                "mem_q95": make_memorization_scorer(q=0.95),
            },
        )
        search = GridSearchCV(
            MemorizationScorer(KernelDensity(), cv=3),
            {"estimator__bandwidth": [0.1, 1.0]},
            scoring={
                "loglik": heldout_loglik_scorer,
                "mem_q95": make_memorization_scorer(q=0.95),
            },
            refit="loglik",
            cv=KFold(2),
        ).fit(X)
    assert np.all(np.isfinite(res["test_mem_q95"]))
    q = search.cv_results_["mean_test_mem_q95"]
    assert q[0] < q[1]  # bandwidth 0.1 memorizes more (negated statistic)
    assert search.best_params_ == {"estimator__bandwidth": 1.0}
