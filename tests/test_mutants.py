"""Tests that pin behaviour the other test files left open.

Each test here kills mutants that survived the mutation run of
``sklearn_mem.metrics`` and ``sklearn_mem.neighbors`` (and later of
``_folds`` and ``_scorer``); docs/contributing.rst ("Mutation score") lists
the run and the mutants found equivalent. The tests check public behaviour:
exact messages, the infinite-quantile rule, float32 input, the chunking of
the nearest-neighbour search, the continuity correction.
"""

import functools
import warnings

import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import KernelDensity
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

import sklearn_mem.neighbors as neighbors_module
from sklearn_mem import MemorizationScorer, MemorizationWarning
from sklearn_mem.metrics import (
    heldout_loglik_scorer,
    loglik_gap,
    make_memorization_scorer,
    membership_auc,
)
from sklearn_mem.neighbors import (
    _nn_distance,
    _z_u,
    distance_to_closest_record,
)


class _Scores:
    """Stand-in holding memorization_scores_ (duck-typed by the metrics)."""

    def __init__(self, scores):
        self.memorization_scores_ = scores


# ---------------------------------------------------------------------------
# sklearn_mem.metrics: messages of the unwrapping
# ---------------------------------------------------------------------------


def test_not_fitted_memorization_scorer_message_names_caller_and_attributes():
    unfitted = MemorizationScorer(KernelDensity())
    expected = (
        "membership_auc reads the fitted attributes loglik_, in_mask_ of a "
        "MemorizationScorer, but this one is not fitted. Call fit(X) first "
        "(GridSearchCV and cross_validate do that for you)."
    )
    with pytest.raises(NotFittedError) as info:
        membership_auc(unfitted)
    assert str(info.value) == expected

    with pytest.raises(NotFittedError) as info:
        make_memorization_scorer()(unfitted)
    assert str(info.value).startswith(
        "make_memorization_scorer reads the fitted attributes "
        "memorization_scores_ of a MemorizationScorer"
    )


def test_wrong_estimator_message_is_exact():
    kde = KernelDensity().fit(np.zeros((3, 1)))
    with pytest.raises(TypeError) as info:
        membership_auc(kde)
    assert str(info.value) == (
        "membership_auc needs a fitted MemorizationScorer (or a Pipeline whose "
        "last step is one), got a KernelDensity without the attributes "
        "loglik_, in_mask_. Wrap the density estimator: "
        "MemorizationScorer(KernelDensity(...)).fit(X), and pass that."
    )
    with pytest.raises(TypeError) as info:
        make_memorization_scorer()(kde)
    assert str(info.value).startswith("make_memorization_scorer needs a fitted")


def test_scorer_reads_the_last_step_of_a_longer_pipeline():
    pipe = Pipeline(
        [
            ("a", FunctionTransformer()),
            ("b", FunctionTransformer()),
            ("m", _Scores(np.array([1.0, 2.0, 3.0]))),
        ]
    )
    scorer = make_memorization_scorer("mean", greater_is_better=True)
    assert scorer(pipe) == 2.0


# ---------------------------------------------------------------------------
# sklearn_mem.metrics: statistics
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "q, expected",
    [(0.25, -np.inf), (0.49, -np.inf), (0.5, np.inf), (0.75, np.inf)],
)
def test_quantile_between_minus_and_plus_infinity_takes_the_nearer(q, expected):
    # the interpolation weight g on the upper neighbour: below 1/2 the lower
    # one (-inf), from 1/2 on the upper one (+inf)
    scorer = make_memorization_scorer("quantile", q=q, greater_is_better=True)
    assert scorer(_Scores(np.array([np.inf, -np.inf]))) == expected


def test_float32_scores_are_summed_in_float64():
    # in float32, 2**24 + 1 rounds back to 2**24: the mean would lose the ones
    scores = np.array([2.0**24, 1, 1, 1, 1], dtype=np.float32)
    scorer = make_memorization_scorer("mean", greater_is_better=True)
    assert scorer(_Scores(scores)) == np.mean(scores.astype(np.float64))
    assert scorer(_Scores(scores)) == (2.0**24 + 4) / 5


def test_mean_of_opposite_infinities_is_nan_without_a_runtime_warning():
    scorer = make_memorization_scorer("mean", greater_is_better=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(scorer(_Scores(np.array([np.inf, -np.inf]))))


def test_nan_warning_message_is_exact():
    scorer = make_memorization_scorer("quantile", q=0.5)
    with pytest.warns(MemorizationWarning) as record:
        scorer(_Scores(np.array([1.0, np.nan, 3.0])))
    assert str(record[0].message) == (
        "1 of 3 memorization scores are NaN (undefined) and are left out of "
        "the quantile(q=0.5) statistic."
    )


def _median(M):
    return float(np.median(M))


def test_statistic_descriptions_of_callables():
    partial = functools.partial(np.percentile, q=50)
    for statistic, name in [(_median, "_median"), (partial, repr(partial))]:
        scorer = make_memorization_scorer(statistic)
        with pytest.warns(MemorizationWarning) as record:
            assert scorer(_Scores(np.array([1.0, np.nan, 3.0]))) == -2.0
        assert str(record[0].message).endswith(f"left out of the {name} statistic.")
        assert repr(scorer) == f"make_memorization_scorer({name})"


def test_scorer_reprs():
    assert repr(make_memorization_scorer("mean")) == "make_memorization_scorer(mean)"
    assert (
        repr(make_memorization_scorer("fraction_above", threshold=0.5))
        == "make_memorization_scorer(fraction_above(threshold=0.5))"
    )
    assert (
        repr(make_memorization_scorer("mean", greater_is_better=True))
        == "make_memorization_scorer(mean, greater_is_better=True)"
    )


def test_scorer_hooks_of_the_scoring_machinery():
    scorer = make_memorization_scorer()
    assert scorer._accept_sample_weight() is False
    routing = scorer.get_metadata_routing()
    assert routing.owner is scorer
    assert not routing.score.requests


# ---------------------------------------------------------------------------
# sklearn_mem.metrics: heldout_loglik_scorer and loglik_gap
# ---------------------------------------------------------------------------


def test_heldout_loglik_scorer_message_is_exact():
    with pytest.raises(TypeError) as info:
        heldout_loglik_scorer(FunctionTransformer(), np.zeros((2, 1)))
    assert str(info.value) == (
        "heldout_loglik_scorer needs an estimator with score_samples, got "
        "FunctionTransformer. Use a density estimator (KernelDensity, "
        "GaussianMixture, a MemorizationScorer with refit=True)."
    )


class _FixedLoglik(BaseEstimator):
    """Fitted density stand-in: score_samples gives ``values[:len(X)]``."""

    def __init__(self, train=0.0, test=0.0):
        self.train = train
        self.test = test

    def fit(self, X, y=None):
        self.n_train_ = len(X)
        return self

    def score_samples(self, X):
        value = self.train if len(X) == self.n_train_ else self.test
        return np.full(len(X), value)


def test_loglik_gap_names_the_estimator_and_set_of_a_nan():
    est = _FixedLoglik(train=np.nan).fit(np.zeros((3, 1)))
    with pytest.raises(ValueError) as info:
        loglik_gap(est, np.zeros((3, 1)), np.zeros((2, 1)))
    assert str(info.value).startswith(
        "score_samples of _FixedLoglik on X_train returned NaN for 3 of 3"
    )


def test_loglik_gap_allows_plus_infinity():
    est = _FixedLoglik(train=np.inf, test=-1.0).fit(np.zeros((3, 1)))
    out = loglik_gap(est, np.zeros((3, 1)), np.zeros((2, 1)), return_means=True)
    assert out.gap == np.inf and out.train_mean == np.inf and out.test_mean == -1.0


# ---------------------------------------------------------------------------
# sklearn_mem.neighbors
# ---------------------------------------------------------------------------


def test_feature_map_output_is_named_in_check_errors():
    X = np.random.RandomState(0).normal(size=(6, 2))
    with pytest.raises(ValueError, match="Input feature_map output contains NaN"):
        distance_to_closest_record(
            X, X, feature_map=lambda Z: np.full(Z.shape, np.nan)
        )


def test_feature_map_output_must_be_numeric():
    X = np.random.RandomState(0).normal(size=(6, 2))
    with pytest.raises(ValueError, match="dtype='numeric' is not compatible"):
        distance_to_closest_record(X, X, feature_map=lambda Z: Z.astype(str))


def test_nn_distance_searches_chunk_size_rows_at_a_time(monkeypatch):
    sizes = []

    class Recording(neighbors_module.NearestNeighbors):
        def kneighbors(self, X=None, n_neighbors=None, return_distance=True):
            sizes.append(len(X))
            return super().kneighbors(X, n_neighbors, return_distance)

    monkeypatch.setattr(neighbors_module, "NearestNeighbors", Recording)
    rng = np.random.RandomState(0)
    ref, query = rng.normal(size=(5, 2)), rng.normal(size=(7, 2))
    kw = dict(metric="euclidean", n_jobs=None)
    d = _nn_distance(ref, query, chunk_size=3, **kw)
    assert sizes == [3, 3, 1]
    sizes.clear()
    assert np.array_equal(_nn_distance(ref, query, chunk_size=None, **kw), d)
    assert sizes == [7]
    expected = np.min(np.linalg.norm(query[:, None] - ref[None], axis=2), axis=1)
    np.testing.assert_allclose(d, expected)


def test_z_u_continuity_correction_moves_the_mean_down():
    d_test = np.array([0.1, 0.4, 0.5, 0.9])
    d_gen = np.array([0.2, 0.3, 0.6])
    m, n = 3, 4
    # U counts the (generated, test) pairs with the generated one farther
    u = sum(float(g > t) + 0.5 * float(g == t) for g in d_gen for t in d_test)
    sd = np.sqrt(m * n * (m + n + 1) / 12.0)
    for continuity in (0.0, 0.5):
        got_u, z = _z_u(d_test, d_gen, continuity)
        assert got_u == u
        assert z == pytest.approx((u - (m * n / 2.0 - continuity)) / sd)


def test_loglik_gap_is_still_importable_from_neighbors():
    assert neighbors_module.loglik_gap is loglik_gap
    with pytest.raises(AttributeError) as info:
        neighbors_module.no_such_name  # noqa: B018
    assert str(info.value) == (
        "module 'sklearn_mem.neighbors' has no attribute 'no_such_name'"
    )


# ---------------------------------------------------------------------------
# sklearn_mem._folds
# ---------------------------------------------------------------------------


def test_check_memory_is_silent_and_rejects_other_objects(tmp_path, capfd):
    from sklearn_mem._folds import check_memory

    cached = check_memory(str(tmp_path)).cache(abs)
    assert cached(-1) == 1 and cached(-1) == 1
    assert capfd.readouterr().out == ""
    with pytest.raises(ValueError) as info:
        check_memory(123)
    assert str(info.value) == (
        "memory must be None, a path or a joblib.Memory-like object with a "
        "'cache' method; got 123."
    )


class _Checkpointed(BaseEstimator):
    """Density stand-in keeping two checkpoints: log p_e(x) = -e |x| - n_fit."""

    def __init__(self, nan_epoch=None):
        self.nan_epoch = nan_epoch

    def fit(self, X, y=None):
        self.n_fit_ = len(X)
        self.checkpoints_ = [1, 2]
        return self

    def _at(self, X, epoch):
        row = -epoch * np.abs(X[:, 0]) - self.n_fit_
        return np.full(len(X), np.nan) if epoch == self.nan_epoch else row

    def score_samples(self, X):
        return self._at(np.asarray(X), 3)

    def score_samples_checkpoints(self, X):
        X = np.asarray(X)
        return [1, 2], [self._at(X, e) for e in (1, 2)]


def test_checkpoint_log_likelihoods_of_every_fit():
    from sklearn.model_selection import KFold

    X = np.arange(6.0).reshape(-1, 1)
    cv = KFold(3)
    mem = MemorizationScorer(_Checkpointed(), cv=cv, refit=False).fit(X)
    np.testing.assert_array_equal(mem.epochs_, [1, 2])
    assert mem.epoch_loglik_.shape == (2, 3, 6)
    for k in range(3):
        for e, epoch in enumerate((1, 2)):
            np.testing.assert_array_equal(
                mem.epoch_loglik_[e, k], -epoch * X[:, 0] - 4
            )
        np.testing.assert_array_equal(mem.loglik_[k], -3 * X[:, 0] - 4)


def test_nan_at_a_checkpoint_names_fit_and_epoch():
    from sklearn.model_selection import KFold

    X = np.arange(6.0).reshape(-1, 1)
    with pytest.raises(ValueError) as info:
        MemorizationScorer(_Checkpointed(nan_epoch=2), cv=KFold(3), refit=False).fit(X)
    assert "score_samples of fit 0 at epoch 2 (_Checkpointed(nan_epoch=2))" in str(
        info.value
    )


class _NanOnAllRows(BaseEstimator):
    """Finite log-likelihoods when fitted on a part, NaN when fitted on all."""

    def fit(self, X, y=None):
        self.n_fit_ = len(X)
        return self

    def score_samples(self, X):
        value = np.nan if self.n_fit_ == len(X) else -1.0
        return np.full(len(X), value)


def test_nan_of_the_refit_names_it():
    from sklearn.model_selection import KFold

    X = np.arange(6.0).reshape(-1, 1)
    with pytest.raises(ValueError) as info:
        MemorizationScorer(_NanOnAllRows(), cv=KFold(3), refit=True).fit(X)
    assert str(info.value).startswith(
        "score_samples of fit on all of X (_NanOnAllRows()) returned NaN for 6 of 6"
    )
