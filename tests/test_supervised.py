"""Supervised memorization: classifiers (log p(y|x), Feldman's correctness) and
callable responses in MemorizationScorer."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp
from scipy.stats import norm
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    RepeatedKFold,
    ShuffleSplit,
    StratifiedKFold,
)
from sklearn.neighbors import KernelDensity, KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils import get_tags
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_mem import MemorizationScorer, MemorizationWarning
from sklearn_mem.metrics import make_memorization_scorer


@pytest.fixture
def iris():
    X, y = load_iris(return_X_y=True)
    return X, y


@pytest.fixture
def rare(iris):
    """Iris with class 2 cut to 4 rows, kept together so that an unshuffled
    KFold leaves it out of one fit's training part entirely, and two
    mislabelled rows (setosas labelled 1), to which the fits that did not
    train on them give probability 0."""
    X, y = iris
    keep = np.r_[np.arange(0, 100, 2), 100:104]
    X, y = X[keep], y[keep].copy()
    y[[2, 18]] = 1
    return X, y


def _log_proba(fitted, X, y):
    proba = fitted.predict_proba(X)
    out = np.full(len(y), -np.inf)
    for i, label in enumerate(y):
        cols = np.flatnonzero(fitted.classes_ == label)
        if cols.size:
            with np.errstate(divide="ignore"):
                out[i] = np.log(proba[i, cols[0]])
    return out


def _correct(fitted, X, y):
    return (fitted.predict(X) == y).astype(float)


def _hand_loop(estimator, X, y, splits, response, aggregate):
    """The fold loop written out: one fit per split, one response per row."""
    rows, mask = [], np.zeros((len(splits), len(X)), dtype=bool)
    for k, (train, _) in enumerate(splits):
        fitted = clone(estimator).fit(X[train], y[train])
        rows.append(response(fitted, X, y))
        mask[k, train] = True
    values = np.vstack(rows)
    U, V = np.empty(len(X)), np.empty(len(X))
    for i in range(len(X)):
        for out, side in ((U, mask[:, i]), (V, ~mask[:, i])):
            v = values[side, i]
            if aggregate == "mean":
                out[i] = v.mean()
            else:
                out[i] = logsumexp(v) - np.log(len(v))
    with np.errstate(invalid="ignore"):
        return values, mask, U, V, U - V


def _assert_same(actual, expected):
    actual, expected = np.asarray(actual), np.asarray(expected)
    np.testing.assert_array_equal(np.isposinf(actual), np.isposinf(expected))
    np.testing.assert_array_equal(np.isneginf(actual), np.isneginf(expected))
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(actual[finite], expected[finite], rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "response, aggregate, by_hand",
    [
        ("log_proba", "logmeanexp", _log_proba),
        ("log_proba", "mean", _log_proba),
        ("auto", "logmeanexp", _log_proba),
        ("correct", "mean", _correct),
    ],
)
def test_classifier_equals_hand_written_fold_loop(rare, response, aggregate, by_hand):
    X, y = rare
    knn = KNeighborsClassifier(n_neighbors=3)
    cv = KFold(6)  # unshuffled: the last fold holds all of class 2
    splits = list(cv.split(X))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MemorizationWarning)
        mem = MemorizationScorer(
            knn, cv=cv, response=response, aggregate=aggregate
        ).fit(X, y)
    values, mask, U, V, M = _hand_loop(knn, X, y, splits, by_hand, aggregate)
    assert mem.method_ == "refit"
    assert mem.response_ == ("log_proba" if response == "auto" else response)
    np.testing.assert_array_equal(mem.in_mask_, mask)
    _assert_same(mem.loglik_, values)
    _assert_same(mem.in_loglik_, U)
    _assert_same(mem.out_loglik_, V)
    _assert_same(mem.memorization_scores_, M)
    # the fit without class 2 never saw its label: -inf, or incorrect
    last = np.flatnonzero(~mask[-1])
    assert (y[last] == 2).sum() == 4
    unseen = last[y[last] == 2]
    if response == "correct":
        assert (mem.loglik_[-1, unseen] == 0).all()
    else:
        assert np.isneginf(mem.loglik_[-1, unseen]).all()
        # ... and a probability 0 of a seen label is -inf too
        flipped = mem.loglik_[:, [2, 18]]
        assert np.isneginf(flipped[~mem.in_mask_[:, [2, 18]]]).all()
        if aggregate == "logmeanexp":
            assert np.isposinf(mem.memorization_scores_[[2, 18]]).all()
    # the refit on all of X gives the response of every row too
    _assert_same(mem.full_loglik_, by_hand(clone(knn).fit(X, y), X, y))


def test_log_proba_matches_labels_through_classes(iris):
    # string labels, a class absent from one training part: columns are
    # found by label, not by position
    X, y = iris
    keep = np.r_[np.arange(0, 100, 2), 100:104]
    X, y = X[keep], np.array(["setosa", "versicolor", "virginica"])[y[keep]]
    clf = LogisticRegression(max_iter=1000)
    cv = KFold(6)
    with pytest.warns(MemorizationWarning, match="Zero density"):
        mem = MemorizationScorer(clf, cv=cv).fit(X, y)
    values, *_, M = _hand_loop(clf, X, y, list(cv.split(X)), _log_proba, "logmeanexp")
    _assert_same(mem.loglik_, values)
    _assert_same(mem.memorization_scores_, M)
    assert np.isposinf(mem.memorization_scores_[y == "virginica"]).all()


def test_int_cv_is_stratified_for_a_classifier(iris):
    X, y = iris
    mem = MemorizationScorer(LogisticRegression(max_iter=1000), cv=5, random_state=0)
    mem.fit(X, y)
    assert isinstance(mem.cv_, StratifiedKFold)
    for row in mem.in_mask_:
        assert np.array_equal(np.bincount(y[~row]), [10, 10, 10])


@pytest.mark.filterwarnings("ignore::sklearn_mem.MemorizationWarning")
def test_random_classifier_same_scores_for_any_n_jobs(iris):
    X, y = iris
    forest = RandomForestClassifier(n_estimators=5, max_depth=3)
    one = MemorizationScorer(forest, cv=4, random_state=0, n_jobs=1).fit(X, y)
    two = MemorizationScorer(forest, cv=4, random_state=0, n_jobs=2).fit(X, y)
    np.testing.assert_array_equal(one.loglik_, two.loglik_)
    np.testing.assert_array_equal(one.full_loglik_, two.full_loglik_)
    other = MemorizationScorer(forest, cv=4, random_state=1).fit(X, y)
    assert not np.array_equal(one.loglik_, other.loglik_)


def test_callable_response_on_a_regressor(iris):
    X, _ = iris
    target = X[:, 0] * 2 - X[:, 1] + np.random.RandomState(0).randn(len(X))
    X = X[:, 1:]

    def neg_squared_error(estimator, X, y):
        return -((estimator.predict(X) - y) ** 2)

    cv = KFold(5, shuffle=True, random_state=0)
    mem = MemorizationScorer(
        Ridge(alpha=0.1), cv=cv, response=neg_squared_error, aggregate="mean"
    ).fit(X, target)
    values, mask, U, V, M = _hand_loop(
        Ridge(alpha=0.1), X, target, list(cv.split(X)), neg_squared_error, "mean"
    )
    assert mem.response_ is neg_squared_error
    _assert_same(mem.loglik_, values)
    _assert_same(mem.memorization_scores_, M)
    # trained on a row, the fit predicts it better on average
    assert np.mean(mem.memorization_scores_) > 0


def test_callable_response_on_a_density_estimator_refits(iris):
    X, _ = iris

    def loglik(estimator, X, y):
        assert y is None
        return estimator.score_samples(X)

    kde = KernelDensity(bandwidth=0.5)
    mem = MemorizationScorer(kde, cv=KFold(4), response=loglik).fit(X)
    assert mem.method_ == "refit"
    exact = MemorizationScorer(kde, cv=KFold(4)).fit(X)
    assert exact.method_ == "exact"
    np.testing.assert_allclose(mem.loglik_, exact.loglik_, rtol=1e-10)
    with pytest.raises(ValueError, match="method='exact'.*method='refit'"):
        MemorizationScorer(kde, cv=KFold(4), response=loglik, method="exact").fit(X)


@pytest.mark.filterwarnings("ignore::sklearn_mem.MemorizationWarning")
def test_shufflesplit_standard_error_mean(iris):
    X, y = iris
    cv = ShuffleSplit(n_splits=30, train_size=0.7, random_state=0)
    mem = MemorizationScorer(
        LogisticRegression(C=0.1, max_iter=1000),
        cv=cv,
        response="correct",
        aggregate="mean",
        random_state=0,
    ).fit(X, y)
    expected = np.full(len(X), np.nan)
    for i in range(len(X)):
        a = mem.loglik_[mem.in_mask_[:, i], i]
        b = mem.loglik_[~mem.in_mask_[:, i], i]
        if len(a) >= 2 and len(b) >= 2:
            expected[i] = np.sqrt(
                np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b)
            )
    assert np.isfinite(expected).sum() > 0.9 * len(X)
    assert (expected > 0).any()
    np.testing.assert_allclose(
        mem.memorization_stderr_, expected, rtol=1e-12, atol=1e-15
    )
    half = norm.ppf(0.975) * expected
    M = mem.memorization_scores_
    np.testing.assert_allclose(
        mem.memorization_interval_, np.column_stack([M - half, M + half])
    )


@pytest.mark.filterwarnings("ignore::sklearn_mem.MemorizationWarning")
def test_shufflesplit_standard_error_logmeanexp(iris):
    X, y = iris
    cv = ShuffleSplit(n_splits=30, train_size=0.7, random_state=0)
    mem = MemorizationScorer(
        LogisticRegression(C=1.0, max_iter=1000), cv=cv, random_state=0
    ).fit(X, y)
    expected = np.full(len(X), np.nan)
    for i in range(len(X)):
        var = 0.0
        for side in (mem.in_mask_[:, i], ~mem.in_mask_[:, i]):
            p = np.exp(mem.loglik_[side, i])  # finite here: no zero probability
            if len(p) < 2:
                var = np.nan
                break
            var += np.var(p, ddof=1) / (len(p) * np.mean(p) ** 2)
        expected[i] = np.sqrt(var)
    assert np.isfinite(mem.loglik_).all()
    assert np.isfinite(expected).sum() > 0.9 * len(X)
    np.testing.assert_allclose(mem.memorization_stderr_, expected, rtol=1e-9)


def test_repeated_kfold_keeps_the_repeat_standard_error(iris):
    X, y = iris
    cv = RepeatedKFold(n_splits=3, n_repeats=3, random_state=0)
    clf = LogisticRegression(max_iter=1000)
    mem = MemorizationScorer(clf, cv=cv).fit(X, y)
    assert mem.n_repeats_ == 3
    per_repeat = []
    for r in range(3):
        sub = MemorizationScorer(
            clf,
            cv=[
                (np.flatnonzero(m), np.flatnonzero(~m))
                for m in mem.in_mask_[3 * r : 3 * r + 3]
            ],
        ).fit(X, y)
        per_repeat.append(sub.memorization_scores_)
    expected = np.std(per_repeat, axis=0, ddof=1) / np.sqrt(3)
    np.testing.assert_allclose(mem.memorization_stderr_, expected, rtol=1e-10)


@pytest.mark.filterwarnings("ignore::sklearn_mem.MemorizationWarning")
def test_grid_search_over_regularisation(iris):
    X, y = iris
    mem = MemorizationScorer(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        cv=ShuffleSplit(n_splits=15, train_size=0.7, random_state=0),
        random_state=0,
    )
    grid = {"estimator__logisticregression__C": [0.01, 1.0, 100.0]}
    outer = StratifiedKFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(
        mem,
        grid,
        scoring={
            "mem_q95": make_memorization_scorer(q=0.95),
            "accuracy": lambda est, X, y: est.score(X, y),
        },
        refit="mem_q95",
        cv=outer,
    ).fit(X, y)
    scores = search.cv_results_["split0_test_mem_q95"]
    assert np.isfinite(scores).all()
    # less regularisation, more memorization: the search prefers a small C
    assert scores[0] > scores[-1]
    assert search.best_params_ == {"estimator__logisticregression__C": 0.01}
    # y reached every fit: split 0's value, recomputed by hand
    train, test = next(outer.split(X, y))
    direct = clone(mem).set_params(**{"estimator__logisticregression__C": 1.0})
    direct.fit(X[train], y[train])
    assert scores[1] == pytest.approx(
        -np.nanquantile(direct.memorization_scores_, 0.95)
    )
    acc = search.cv_results_["split0_test_accuracy"][1]
    assert acc == pytest.approx(direct.estimator_.score(X[test], y[test]))


def test_cache_key_includes_the_response(iris, tmp_path):
    X, y = iris
    clf = LogisticRegression(max_iter=1000)
    cv = KFold(3, shuffle=True, random_state=0)

    def fit(**params):
        return MemorizationScorer(
            clf, cv=cv, memory=str(tmp_path), random_state=0, **params
        ).fit(X, y)

    log_proba = fit()
    assert log_proba.n_fits_from_cache_ == 0
    correct = fit(response="correct", aggregate="mean")
    assert correct.n_fits_from_cache_ == 0
    assert set(np.unique(correct.loglik_)) <= {0.0, 1.0}
    assert not np.array_equal(correct.loglik_, log_proba.loglik_)
    again = fit(response="correct", aggregate="mean")
    assert again.n_fits_from_cache_ == 3
    np.testing.assert_array_equal(again.loglik_, correct.loglik_)
    # re-aggregating cached log_proba rows: no refits
    mean = fit(aggregate="mean")
    assert mean.n_fits_from_cache_ == 3
    np.testing.assert_array_equal(mean.loglik_, log_proba.loglik_)

    # two callables: different keys, even two lambdas
    first = fit(response=lambda est, X, y: est.predict_proba(X)[:, 0])
    second = fit(response=lambda est, X, y: est.predict_proba(X)[:, 1])
    assert first.n_fits_from_cache_ == 0 and second.n_fits_from_cache_ == 0
    assert not np.array_equal(first.loglik_, second.loglik_)

    def column(k):
        return lambda est, X, y: est.predict_proba(X)[:, k]

    # the same code, different closure values
    assert fit(response=column(0)).n_fits_from_cache_ == 0
    assert fit(response=column(2)).n_fits_from_cache_ == 0
    assert fit(response=column(2)).n_fits_from_cache_ == 3
    # different targets, different key
    assert fit(response="correct", aggregate="mean").n_fits_from_cache_ == 3
    shifted = MemorizationScorer(
        clf,
        cv=cv,
        memory=str(tmp_path),
        random_state=0,
        response="correct",
        aggregate="mean",
    ).fit(X, (y + 1) % 3)
    assert shifted.n_fits_from_cache_ == 0


def test_pandas_output_and_score(iris):
    X, y = iris
    df = pd.DataFrame(X, columns=list("abcd"), index=np.arange(len(X)) + 100)
    mem = MemorizationScorer(LogisticRegression(max_iter=1000), cv=3, random_state=0)
    out = mem.set_output(transform="pandas").fit_transform(df, pd.Series(y))
    assert isinstance(out, pd.DataFrame)
    assert list(out.index) == list(df.index)
    np.testing.assert_array_equal(out["memorization_score"], mem.memorization_scores_)
    assert mem.score(X, y) == pytest.approx(mem.estimator_.score(X, y))
    assert get_tags(mem).target_tags.required
    assert not get_tags(MemorizationScorer(KernelDensity())).target_tags.required


def test_density_estimator_ignores_y(iris):
    X, y = iris
    kde = KernelDensity(bandwidth=0.5)
    with_y = MemorizationScorer(kde, cv=3, random_state=0).fit(X, y)
    without = MemorizationScorer(kde, cv=3, random_state=0).fit(X)
    assert with_y.response_ == "score_samples"
    assert isinstance(with_y.cv_, KFold)
    np.testing.assert_array_equal(with_y.loglik_, without.loglik_)
    np.testing.assert_array_equal(
        with_y.memorization_scores_, without.memorization_scores_
    )


class _NoProba(LinearSVC):
    pass


@pytest.mark.parametrize(
    "estimator, params, fit_y, error, match",
    [
        (
            LogisticRegression(),
            {},
            False,
            ValueError,
            r"fit\(X, y\) needs y for response='log_proba'.*Pass y",
        ),
        (
            LogisticRegression(),
            {"response": "correct", "aggregate": "mean"},
            False,
            ValueError,
            "needs y for response='correct'",
        ),
        (
            LinearSVC(),
            {},
            True,
            ValueError,
            "LinearSVC has no predict_proba. Use response='correct'",
        ),
        (
            KernelDensity(),
            {"response": "log_proba"},
            True,
            ValueError,
            "KernelDensity has no predict_proba",
        ),
        (
            LogisticRegression(),
            {"response": "correct"},
            True,
            ValueError,
            "response='correct' .* use aggregate='mean'",
        ),
        (
            LogisticRegression(),
            {"method": "exact"},
            True,
            ValueError,
            "method='exact' .* cannot compute response='log_proba'",
        ),
        (
            LogisticRegression(),
            {"fold_batching": True},
            True,
            ValueError,
            "fold_batching=True .* fold_batching='auto' or False",
        ),
        (
            Ridge(),
            {},
            True,
            InvalidParameterError,
            "implementing 'fit' and 'score_samples'.*callable response",
        ),
        (
            LogisticRegression(),
            {"response": "proba"},
            True,
            InvalidParameterError,
            "'response' parameter",
        ),
        (
            LogisticRegression(),
            {"response": lambda est, X, y: est.predict_proba(X)},
            True,
            ValueError,
            r"returned shape \(60, 3\); expected \(60,\)",
        ),
        (
            LogisticRegression(),
            {"response": lambda est, X, y: np.full(len(X), np.nan)},
            True,
            ValueError,
            "returned NaN for 60 of 60",
        ),
        (
            Ridge(),
            {"response": lambda est, X, y: est.predict(X).astype(str)},
            True,
            ValueError,
            "dtype <U",
        ),
    ],
)
def test_bad_input(iris, estimator, params, fit_y, error, match):
    X, y = iris
    rows = np.r_[0:20, 50:70, 100:120]
    X, y = X[rows], y[rows]
    mem = MemorizationScorer(estimator, cv=3, random_state=0, **params)
    with pytest.raises(error, match=match):
        mem.fit(X, y) if fit_y else mem.fit(X)


def test_classifier_labels_must_be_classes(iris):
    X, _ = iris
    with pytest.raises(ValueError, match="Unknown label type"):
        MemorizationScorer(LogisticRegression(), cv=3).fit(X, X[:, 0])


def test_wrong_shape_names_the_fit(iris):
    X, y = iris
    with pytest.raises(ValueError, match=r"fit 0 \(LogisticRegression"):
        MemorizationScorer(
            LogisticRegression(max_iter=1000),
            cv=3,
            response=lambda est, X, y: np.zeros(3),
        ).fit(X, y)


# -- influence (kept split estimators) ---------------------------------------


def _influence_by_hand(mem, X, y, response, aggregate):
    """The double loop: every training sample i, every row z."""
    values = np.vstack([response(est, X, y) for est in mem.estimators_])
    mask = mem.in_mask_
    out = np.empty((mask.shape[1], len(X)))
    for i in range(mask.shape[1]):
        for z in range(len(X)):
            sides = []
            for side in (mask[:, i], ~mask[:, i]):
                v = values[side, z]
                if aggregate == "mean":
                    sides.append(v.mean())
                else:
                    sides.append(logsumexp(v) - np.log(len(v)))
            with np.errstate(invalid="ignore"):
                out[i, z] = sides[0] - sides[1]
    return out


def _loglik(est, X, y):
    return est.score_samples(X)


@pytest.mark.filterwarnings("ignore::sklearn_mem.MemorizationWarning")
@pytest.mark.parametrize(
    "estimator, params, by_hand",
    [
        (KNeighborsClassifier(3), {}, _log_proba),
        (KNeighborsClassifier(3), {"aggregate": "mean"}, _log_proba),
        (
            LogisticRegression(max_iter=1000),
            {"response": "correct", "aggregate": "mean"},
            _correct,
        ),
        (KernelDensity(bandwidth=0.3), {}, _loglik),
    ],
)
def test_influence_equals_a_double_loop(rare, estimator, params, by_hand):
    X, y = rare
    train = np.arange(len(X)) % 4 != 2  # the mislabelled rows 2, 18 held out
    cv = ShuffleSplit(n_splits=8, train_size=0.6, random_state=0)
    mem = MemorizationScorer(
        estimator, cv=cv, keep_estimators=True, random_state=0, **params
    ).fit(X[train], y[train])
    assert len(mem.estimators_) == 8 and mem.method_ == "refit"
    aggregate = params.get("aggregate", "logmeanexp")
    expected = _influence_by_hand(mem, X[~train], y[~train], by_hand, aggregate)
    got = mem.influence(X[~train], y[~train], chunk_size=7)
    assert got.shape == (train.sum(), (~train).sum())
    _assert_same(got, expected)
    if by_hand is _log_proba:  # zero probabilities are exercised
        rows = [by_hand(est, X[~train], y[~train]) for est in mem.estimators_]
        assert np.isneginf(np.vstack(rows)).any()
    # on the training rows, the diagonal is the memorization score
    on_train = mem.influence(X[train], y[train])
    _assert_same(np.diag(on_train), mem.memorization_scores_)


def test_keep_estimators_gives_the_same_scores(iris):
    X, y = iris
    clf = LogisticRegression(max_iter=1000)
    plain = MemorizationScorer(clf, cv=3, random_state=0).fit(X, y)
    kept = MemorizationScorer(clf, cv=3, random_state=0, keep_estimators=True)
    kept.fit(X, y)
    np.testing.assert_array_equal(plain.loglik_, kept.loglik_)
    assert not hasattr(plain, "estimators_")
    kde = KernelDensity(bandwidth=0.5)
    exact = MemorizationScorer(kde, cv=3, random_state=0).fit(X)
    refit = MemorizationScorer(kde, cv=3, random_state=0, keep_estimators=True)
    refit.fit(X)
    assert refit.method_ == "refit"
    np.testing.assert_allclose(refit.loglik_, exact.loglik_, rtol=1e-10)


def test_influence_errors(iris, tmp_path):
    X, y = iris
    mem = MemorizationScorer(LogisticRegression(max_iter=1000), cv=3).fit(X, y)
    with pytest.raises(AttributeError, match="keep_estimators=True"):
        mem.influence(X, y)
    mem.set_params(keep_estimators=True, memory=str(tmp_path)).fit(X, y)
    assert mem.n_fits_from_cache_ == 0
    with pytest.raises(ValueError, match="influence needs y"):
        mem.influence(X)
    with pytest.raises(ValueError, match=r"expected \(150,\)"):
        mem.influence(X, y[:10])
    with pytest.raises(ValueError, match="keep_estimators=True keeps"):
        MemorizationScorer(
            KernelDensity(), cv=3, method="exact", keep_estimators=True
        ).fit(X)


def test_influence_side_survives_underflow():
    from sklearn_mem._scorer import _influence_side

    rng = np.random.RandomState(0)
    values = rng.randn(6, 5)
    values[:3] -= 2000.0  # the first three fits: far below the column top
    values[4, 2] = -np.inf
    mask = np.zeros((6, 4), dtype=bool)
    mask[:3, 0] = True  # sample 0: "in" only in the far-below fits
    mask[3:, 1] = True
    mask[[0, 4], 2] = True
    got = _influence_side(values, mask, "logmeanexp")
    for i in range(4):
        for z in range(5):
            v = values[mask[:, i], z]
            expected = logsumexp(v) - np.log(len(v)) if len(v) else np.nan
            np.testing.assert_allclose(got[i, z], expected, rtol=1e-12)
    assert np.isnan(got[3]).all()


def test_top_influences_rank_the_influence_matrix():
    from sklearn.model_selection import ShuffleSplit
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.RandomState(0)
    X = rng.normal(size=(50, 2))
    y = (X[:, 0] + 0.3 * rng.normal(size=50) > 0).astype(int)
    mem = MemorizationScorer(
        KNeighborsClassifier(3),
        cv=ShuffleSplit(15, train_size=0.7, random_state=0),
        response="correct",
        aggregate="mean",
        keep_estimators=True,
        random_state=0,
    ).fit(X, y)
    X_new = rng.normal(size=(7, 2))
    y_new = (X_new[:, 0] > 0).astype(int)
    infl = mem.influence(X_new, y_new)
    top = mem.top_influences(X_new, y_new, k=4, chunk_size=3)
    for z in range(7):
        col = infl[:, z]
        # highest first, NaN last, ties in training-row order
        order = sorted(
            range(len(col)),
            key=lambda i: (np.isnan(col[i]), -col[i] if not np.isnan(col[i]) else 0, i),
        )[:4]
        np.testing.assert_array_equal(top.indices[z], order)
        np.testing.assert_array_equal(top.influence[z], col[order])


def test_planted_label_noise_ranks_first():
    from sklearn.datasets import load_digits
    from sklearn.ensemble import ExtraTreesClassifier
    from sklearn.model_selection import ShuffleSplit

    X, y = load_digits(return_X_y=True)
    X, y = X[:500] / 16.0, y[:500].copy()
    rng = np.random.RandomState(0)
    flipped = rng.choice(len(y), size=25, replace=False)
    y[flipped] = (y[flipped] + rng.randint(1, 10, size=25)) % 10
    mem = MemorizationScorer(
        ExtraTreesClassifier(n_estimators=20, random_state=0),
        cv=ShuffleSplit(20, train_size=0.7, random_state=0),
        response="correct",
        aggregate="mean",
        random_state=0,
        refit=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MemorizationWarning)  # rows never out
        M = mem.fit(X, y).memorization_scores_
    top = np.argsort(-np.nan_to_num(M, nan=-np.inf), kind="stable")[:25]
    precision = np.isin(top, flipped).mean()
    assert precision >= 0.7, precision


def test_fold_batching_true_names_the_resolved_response():
    class BatchableClassifier(LogisticRegression):
        def fit_folds(self, estimators, X, trains):  # pragma: no cover
            raise AssertionError("never called for a classifier")

    X, y = load_iris(return_X_y=True)
    mem = MemorizationScorer(
        BatchableClassifier(max_iter=500), cv=3, fold_batching=True, random_state=0
    )
    # response="auto" resolves to the log-probability of a classifier
    with pytest.raises(ValueError, match=r"cannot compute response='log_proba'\."):
        mem.fit(X, y)
