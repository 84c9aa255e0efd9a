"""Tests that pin what the mutation run of ``_scorer`` and ``_kde`` left open.

Each test checks a value computed independently of the code under test (a
loop over fits and samples, numpy's own statistics, scikit-learn's own
kernels and bandwidths, an exact message) for the influence matrix and its
ranking, the subsampling standard error, the lookup of training rows in
``transform``, the delegation check of ``score``/``score_samples``, the
output feature name, what ``fit`` makes of its arguments (response, labels,
splitter, fold batching, closed form, tags, defaults), memorization at
every checkpoint, and the kernels and bandwidth checks of the closed-form
KDE. docs/contributing.rst ("Mutation score") lists the runs and the
mutants found equivalent.
"""

import collections
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import norm
from sklearn.base import BaseEstimator
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neighbors import KernelDensity

from sklearn_mem import MemorizationScorer, MemorizationWarning
from sklearn_mem._kde import check_bandwidths, kde_bandwidth
from sklearn_mem._scorer import (
    _estimator_has,
    _influence_side,
    _normal_interval,
    _side_variance,
    subsample_standard_error,
)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn_mem.MemorizationWarning")


# ---------------------------------------------------------------------------
# references computed by hand
# ---------------------------------------------------------------------------


def _logmeanexp(v):
    """log(mean(exp(v))) of a 1-d array, shifted by its own maximum."""
    v = np.asarray(v, dtype=np.float64)
    if v.size == 0:
        return np.nan
    if np.isneginf(v).all():
        return -np.inf
    top = v.max()
    return top + np.log(np.mean(np.exp(v - top)))


def _side(v, aggregate):
    if v.size == 0:
        return np.nan
    if aggregate == "mean":
        return -np.inf if np.isneginf(v).any() else float(np.mean(v))
    return _logmeanexp(v)


def _difference(a, b):
    """a - b with NaN for a missing side or for -inf - -inf (no warning)."""
    if np.isnan(a) or np.isnan(b) or (np.isinf(a) and a == b):
        return np.nan
    return a - b


def _influence_loop(values, in_mask, aggregate):
    """infl[i, z] by a double loop over training samples and rows."""
    out = np.empty((in_mask.shape[1], values.shape[1]))
    for i in range(in_mask.shape[1]):
        for z in range(values.shape[1]):
            inside = _side(values[in_mask[:, i], z], aggregate)
            outside = _side(values[~in_mask[:, i], z], aggregate)
            out[i, z] = _difference(inside, outside)
    return out


def _assert_same(got, expected):
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(expected))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------
# data: a grid of exact floats, splits with a sample in every and in no fit
# ---------------------------------------------------------------------------


def _grid(n=12, seed=0):
    """Rows of multiples of 0.25 in [0, 4] (exact in float32), no duplicates."""
    rng = np.random.RandomState(seed)
    rows = set()
    while len(rows) < n:
        rows.add(tuple(rng.randint(0, 17, size=2) * 0.25))
    return np.array(sorted(rows, key=lambda r: rng.rand()))


def _splits(n, n_splits=8):
    """Random halves; sample 0 is in every training part, sample 1 in none."""
    rng = np.random.RandomState(1)
    splits = []
    for _ in range(n_splits):
        train = rng.permutation(n)[: n // 2]
        train = np.union1d(np.setdiff1d(train, [1]), [0])
        splits.append((train, np.setdiff1d(np.arange(n), train)))
    return splits


def _tophat_scorer(aggregate="logmeanexp"):
    X = _grid()
    # a mean is -inf as soon as one fit is: a wider kernel leaves fewer
    bandwidth = 1.0 if aggregate == "logmeanexp" else 1.5
    mem = MemorizationScorer(
        KernelDensity(kernel="tophat", bandwidth=bandwidth),
        cv=_splits(len(X)),
        aggregate=aggregate,
        keep_estimators=True,
    ).fit(X)
    return mem, X


# rows with the density of some fits and not others, and one far from all
_QUERY = np.array([[0.5, 0.5], [2.1, 2.1], [100.0, 100.0], [0.0, 3.9], [3.0, 1.0]])


def _loglik_rows(mem, X):
    return np.vstack([est.score_samples(X) for est in mem.estimators_])


# ---------------------------------------------------------------------------
# influence
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("aggregate", ["logmeanexp", "mean"])
@pytest.mark.parametrize("chunk_size", [2, 1024])
def test_influence_equals_a_loop_with_zero_densities(aggregate, chunk_size):
    mem, X = _tophat_scorer(aggregate)
    values = _loglik_rows(mem, _QUERY)
    expected = _influence_loop(values, mem.in_mask_, aggregate)
    # the data exercise every case: -inf on one side, on both, no fit
    assert np.isnan(expected).any() and np.isposinf(expected).any()
    assert np.isneginf(expected).any() and np.isfinite(expected).sum() > 10
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no 0/0, log(0), inf - inf
        got = mem.influence(_QUERY, chunk_size=chunk_size)
    assert got.shape == (len(X), len(_QUERY))
    _assert_same(got, expected)
    # y is ignored for a density estimator
    _assert_same(mem.influence(_QUERY, y="ignored", chunk_size=chunk_size), expected)


def test_influence_of_the_training_rows_has_the_scores_on_its_diagonal():
    mem, X = _tophat_scorer()
    diag = np.diag(mem.influence(X, chunk_size=5))
    _assert_same(diag, mem.memorization_scores_)
    assert np.isnan(diag[[0, 1]]).all()  # no "out" fit, no "in" fit


def test_influence_of_a_classifier_on_its_labels():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(30, 2))
    y = np.arange(30) % 3
    X += y[:, None]
    mem = MemorizationScorer(
        LogisticRegression(),
        cv=[
            (np.setdiff1d(np.arange(30), f), f)
            for f in np.array_split(np.arange(30), 4)
        ],
        keep_estimators=True,
    ).fit(X, y)
    X_new, y_new = X[::4] + 0.3, y[::4]
    proba = [
        est.predict_proba(X_new)[np.arange(len(y_new)), y_new]
        for est in mem.estimators_
    ]
    expected = _influence_loop(np.log(np.vstack(proba)), mem.in_mask_, "logmeanexp")
    _assert_same(mem.influence(X_new, list(y_new), chunk_size=3), expected)

    correct = mem.set_params(response="correct", aggregate="mean").fit(X, y)
    hits = np.vstack([est.predict(X_new) == y_new for est in correct.estimators_])
    expected = _influence_loop(hits.astype(float), correct.in_mask_, "mean")
    _assert_same(correct.influence(X_new, y_new, chunk_size=3), expected)
    top = correct.top_influences(X_new, y_new, k=3, chunk_size=2)
    for z in range(len(X_new)):
        np.testing.assert_array_equal(top.influence[z], expected[top.indices[z], z])
        assert list(top.indices[z]) == _ranking(expected[:, z])[:3]


def test_influence_errors_are_exact():
    mem, X = _tophat_scorer()
    plain = MemorizationScorer(KernelDensity(), cv=3).fit(X)
    with pytest.raises(AttributeError) as info:
        plain.influence(X)
    assert str(info.value) == (
        "influence needs the fitted split estimators: fit the scorer with "
        "keep_estimators=True."
    )
    with pytest.raises(ValueError) as info:
        mem.influence(np.ones((4, 3)))
    assert "X has 3 features, but MemorizationScorer is expecting 2 features" in str(
        info.value
    )
    assert mem.n_features_in_ == 2
    with pytest.raises(TypeError, match="dense data is required"):
        mem.influence(sp.csr_matrix(_QUERY))
    with pytest.raises(ValueError) as info:
        mem.top_influences(np.ones((4, 3)))
    assert "X has 3 features, but MemorizationScorer is expecting 2 features" in str(
        info.value
    )
    assert mem.n_features_in_ == 2
    with pytest.raises(TypeError, match="dense data is required"):
        mem.top_influences(sp.csr_matrix(_QUERY))

    rng = np.random.RandomState(0)
    Xc = rng.normal(size=(20, 2))
    yc = (Xc[:, 0] > 0).astype(int)
    clf = MemorizationScorer(
        LogisticRegression(), cv=4, keep_estimators=True, random_state=0
    )
    clf.fit(Xc, yc)
    with pytest.raises(ValueError) as info:
        clf.influence(Xc[:5])
    assert str(info.value) == (
        "influence needs y for response='log_proba': the true labels of the rows of X."
    )
    with pytest.raises(ValueError) as info:
        clf.influence(Xc[:5], yc[:4])
    assert str(info.value) == "y has shape (4,); expected (5,), one label per row of X."
    # the fits could score sparse rows; influence refuses them all the same
    with pytest.raises(TypeError, match="dense data is required"):
        clf.influence(sp.csr_matrix(Xc[:5]), yc[:5])


class _NaNFarAway(BaseEstimator):
    """A Gaussian of unit variance around the training mean; NaN beyond |x| > 50."""

    def fit(self, X, y=None):
        self.center_ = np.asarray(X).mean(axis=0)
        return self

    def score_samples(self, X):
        X = np.asarray(X)
        out = -0.5 * ((X - self.center_) ** 2).sum(axis=1)
        out[np.abs(X).max(axis=1) > 50] = np.nan
        return out


def test_influence_names_the_fit_that_returned_nan():
    X = _grid()
    mem = MemorizationScorer(_NaNFarAway(), cv=3, keep_estimators=True, random_state=0)
    mem.fit(X)
    with pytest.raises(ValueError) as info:
        mem.influence(_QUERY, chunk_size=3)
    assert str(info.value).startswith(
        "score_samples of fit 0 (_NaNFarAway()) returned NaN for 1 of 3 samples;"
    )

    def nan_far_away(est, X, y):
        return np.where(np.abs(X).max(axis=1) > 50, np.nan, est.predict(X))

    reg = MemorizationScorer(
        LinearRegression(),
        cv=3,
        response=nan_far_away,
        aggregate="mean",
        keep_estimators=True,
        random_state=0,
    ).fit(X, X.sum(axis=1))
    with pytest.raises(ValueError) as info:
        reg.influence(_QUERY, chunk_size=3)
    assert str(info.value).startswith(
        "The response=test_influence_names_the_fit_that_returned_nan.<locals>."
        "nan_far_away of fit 0 (LinearRegression) returned NaN for 1 of 3 samples;"
    )


def test_influence_passes_a_callable_the_labels_of_each_chunk():
    X = _grid()
    target = X @ np.array([1.0, -2.0])
    seen = []

    def squared_error(est, X, y):
        seen.append(None if y is None else (type(y), np.array(y)))
        return -((est.predict(X) - (0.0 if y is None else y)) ** 2)

    mem = MemorizationScorer(
        LinearRegression(),
        cv=_splits(len(X), 5),
        response=squared_error,
        aggregate="mean",
        keep_estimators=True,
    ).fit(X, target)
    y_new = [0.5, -1.0, 2.0, 3.0, -4.0]
    errors = np.vstack(
        [-((est.predict(_QUERY) - np.array(y_new)) ** 2) for est in mem.estimators_]
    )
    seen.clear()
    got = mem.influence(_QUERY, y_new, chunk_size=2)
    _assert_same(got, _influence_loop(errors, mem.in_mask_, "mean"))
    assert all(kind is np.ndarray for kind, _ in seen)
    labels = [labels for _, labels in seen]
    assert [len(v) for v in labels] == [2] * 5 + [2] * 5 + [1] * 5
    np.testing.assert_array_equal(np.concatenate(labels[::5]), y_new)

    seen.clear()
    squares = np.vstack([-(est.predict(_QUERY) ** 2) for est in mem.estimators_])
    got = mem.influence(_QUERY, chunk_size=2)
    assert seen == [None] * 15
    _assert_same(got, _influence_loop(squares, mem.in_mask_, "mean"))


_SIZES = []


class _Recorder(BaseEstimator):
    """A density estimator that records how many rows each score_samples gets."""

    def fit(self, X, y=None):
        self.center_ = np.asarray(X).mean(axis=0)
        return self

    def score_samples(self, X):
        _SIZES.append(len(X))
        return -0.5 * ((np.asarray(X) - self.center_) ** 2).sum(axis=1)


def _recorded(call):
    _SIZES.clear()
    call()
    return collections.Counter(_SIZES)


def test_influence_and_top_influences_score_chunk_size_rows_at_a_time():
    X = _grid()
    mem = MemorizationScorer(_Recorder(), cv=3, keep_estimators=True, random_state=0)
    mem.fit(X)
    many = np.repeat(_QUERY, 220, axis=0)[:1025]
    assert _recorded(lambda: mem.influence(_QUERY, chunk_size=2)) == {2: 6, 1: 3}
    assert _recorded(lambda: mem.influence(_QUERY, chunk_size=0)) == {1: 15}
    assert _recorded(lambda: mem.influence(_QUERY, chunk_size=1)) == {1: 15}
    assert _recorded(lambda: mem.influence(many)) == {1024: 3, 1: 3}
    assert _recorded(lambda: mem.top_influences(_QUERY, chunk_size=2)) == {2: 6, 1: 3}
    assert _recorded(lambda: mem.top_influences(_QUERY, chunk_size=0)) == {1: 15}
    assert _recorded(lambda: mem.top_influences(_QUERY, chunk_size=1)) == {1: 15}
    assert _recorded(lambda: mem.top_influences(many)) == {1024: 3, 1: 3}
    more = np.repeat(_QUERY, 220, axis=0)
    assert _recorded(lambda: mem.top_influences(more, chunk_size=2000)) == {1100: 3}


# ---------------------------------------------------------------------------
# top_influences
# ---------------------------------------------------------------------------


def _ranking(column):
    """Training rows by decreasing influence, NaN last, ties in row order."""
    return sorted(
        range(len(column)),
        key=lambda i: (
            np.isnan(column[i]),
            0.0 if np.isnan(column[i]) else -column[i],
            i,
        ),
    )


def test_top_influences_rank_infinities_and_nan():
    mem, X = _tophat_scorer()
    infl = _influence_loop(_loglik_rows(mem, _QUERY), mem.in_mask_, "logmeanexp")
    top = mem.top_influences(_QUERY, chunk_size=2)  # k=5 by default
    assert top.indices.shape == top.influence.shape == (len(_QUERY), 5)
    assert top.indices.dtype == np.intp
    for z in range(len(_QUERY)):
        order = _ranking(infl[:, z])
        np.testing.assert_array_equal(top.indices[z], order[:5])
        _assert_same(top.influence[z], infl[order[:5], z])
    assert np.isposinf(top.influence).any() and np.isnan(top.influence).any()
    for k, width in [(1, 1), (0, 1), (-3, 1), (100, len(X))]:
        top = mem.top_influences(_QUERY, k=k, chunk_size=3)
        assert top.indices.shape == (len(_QUERY), width)
        for z in range(len(_QUERY)):
            np.testing.assert_array_equal(top.indices[z], _ranking(infl[:, z])[:width])


# ---------------------------------------------------------------------------
# _influence_side: aggregation over the fits of each training sample
# ---------------------------------------------------------------------------


def _side_loop(values, mask, aggregate):
    out = np.empty((mask.shape[1], values.shape[1]))
    for i in range(mask.shape[1]):
        for z in range(values.shape[1]):
            out[i, z] = _side(values[mask[:, i], z], aggregate)
    return out


def _side_case():
    """6 fits, 4 training samples, 5 rows of values of very different scales."""
    values = np.array(
        [
            [0.0, -740.0, 800.0, -3.0, 1.0],
            [-1.0, -740.5, -np.inf, -2.0, -2000.0],
            [-2.0, -741.0, 801.0, -np.inf, -2001.0],
            [-np.inf, -742.0, 799.0, -1.0, -2002.5],
            [0.5, -739.0, -np.inf, -np.inf, 3.0],
            [1.5, -738.0, 802.0, -np.inf, -2003.0],
        ]
    )
    mask = np.zeros((6, 4), dtype=bool)
    mask[[0, 1, 2], 0] = True
    mask[[1], 1] = True  # one fit only
    mask[[1, 2, 3, 5], 2] = True
    # sample 3: in no fit
    return values, mask


@pytest.mark.parametrize("aggregate", ["logmeanexp", "mean"])
def test_influence_side_equals_a_loop(aggregate):
    values, mask = _side_case()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        got = _influence_side(values, mask, aggregate)
        got_out = _influence_side(values, ~mask, aggregate)
    assert got.shape == (4, 5)
    _assert_same(got, _side_loop(values, mask, aggregate))
    _assert_same(got_out, _side_loop(values, ~mask, aggregate))
    assert np.isnan(got[3]).all()


def test_influence_side_recomputes_sides_far_below_their_column():
    # column 1: every value ~2000 below the column's top; the sides of
    # samples 0 (three fits) and 1 (one fit) underflow against that top
    values = np.array(
        [
            [0.0, 0.0, -np.inf],
            [0.0, -2000.0, -np.inf],
            [0.0, -2001.0, -np.inf],
            [0.0, -2002.0, 5.0],
        ]
    )
    mask = np.array(
        [
            [True, False, True],
            [True, True, True],
            [True, False, True],
            [False, False, True],
        ]
    )
    got = _influence_side(values, mask, "logmeanexp")
    _assert_same(got, _side_loop(values, mask, "logmeanexp"))
    assert got[1, 1] == -2000.0 and np.isneginf(got[0, 2])


def test_influence_side_shifts_each_row_by_its_own_top():
    # row 1's values lie ~740 below row 0's: shifted by row 0's maximum
    # their probabilities would be subnormal numbers, short of precision
    values = np.array([[0.0, -740.0], [-1.0, -740.5], [-2.0, -741.0]])
    mask = np.ones((3, 2), dtype=bool)
    mask[2, 1] = False
    got = _influence_side(values, mask, "logmeanexp")
    _assert_same(got, _side_loop(values, mask, "logmeanexp"))


# ---------------------------------------------------------------------------
# subsample standard error (ShuffleSplit designs) and its interval
# ---------------------------------------------------------------------------


def _stderr_loop(loglik, in_mask, aggregate):
    loglik = np.asarray(loglik, dtype=np.float64)
    in_mask = np.asarray(in_mask, dtype=bool)
    out = np.empty(loglik.shape[1])
    for i in range(loglik.shape[1]):
        var, M = 0.0, []
        for side in (in_mask[:, i], ~in_mask[:, i]):
            v = loglik[side, i]
            M.append(_side(v, aggregate))
            if v.size < 2:
                var = np.nan
                continue
            if aggregate == "mean":
                var += np.var(v, ddof=1) / v.size
            else:
                p = np.exp(v - v.max())
                var += np.var(p, ddof=1) / (v.size * np.mean(p) ** 2)
        with np.errstate(over="ignore", invalid="ignore"):
            se = np.sqrt(var)
        finite = np.isfinite(_difference(*M)) and np.isfinite(se)
        out[i] = se if finite else np.nan
    return out


def _stderr_case():
    """7 fits, 5 samples: sides of 0 to 7 fits, scales 0, -400 and -1000."""
    rng = np.random.RandomState(0)
    loglik = rng.normal(size=(7, 5))
    loglik[:, 1] -= 400.0
    loglik[:, 2] = loglik[:, 2] * 0.1 - 1000.0
    loglik[:3, 3] += 1000.0  # the "out" side lies far above the "in" side
    in_mask = np.zeros((7, 5), dtype=bool)
    in_mask[:2, 0] = True  # two fits "in", five "out"
    in_mask[:4, 1] = True
    in_mask[::2, 2] = True
    in_mask[3:, 3] = True
    in_mask[:6, 4] = True  # one fit "out": NaN
    return loglik, in_mask


@pytest.mark.parametrize("aggregate", ["logmeanexp", "mean"])
def test_subsample_standard_error_equals_a_loop(aggregate):
    loglik, in_mask = _stderr_case()
    expected = _stderr_loop(loglik, in_mask, aggregate)
    assert np.isfinite(expected[:4]).all() and np.isnan(expected[4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning, no MemorizationWarning
        got = subsample_standard_error(loglik, in_mask, aggregate=aggregate)
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    # a 0/1 mask and float32 values are read as bool and float64
    loglik32 = loglik.astype(np.float32)
    got = subsample_standard_error(loglik32, in_mask.astype(int), aggregate=aggregate)
    np.testing.assert_allclose(
        got, _stderr_loop(loglik32.astype(np.float64), in_mask, aggregate), rtol=1e-9
    )


def test_subsample_standard_error_default_and_its_nan():
    loglik, in_mask = _stderr_case()
    np.testing.assert_allclose(
        subsample_standard_error(loglik, in_mask),
        _stderr_loop(loglik, in_mask, "logmeanexp"),
        rtol=1e-9,
    )
    # a side of only zero densities (M infinite) and a variance that overflows
    loglik[:, 0] = [-np.inf] * 2 + [0.0, 1.0, 2.0, 3.0, 4.0]
    loglik[:, 1] = [1e200, -1e200, 1.0, 2.0, 3.0, 4.0, 5.0]
    in_mask[:, 1] = [True, True, False, False, False, False, False]
    in_mask[:, 4] = True  # no "out" fit: M is NaN
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the scorer warns, not the standard error
        got = subsample_standard_error(loglik, in_mask, aggregate="mean")
    assert np.isnan(got[[0, 1, 4]]).all() and np.isfinite(got[2:4]).all()


def test_side_variance_of_a_side_of_two_fits_and_of_a_smaller_one():
    loglik = np.log(np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 5.0], [9.0, 4.0, 1.0]]))
    mask = np.array([[True, True, True], [True, False, True], [False, False, True]])
    got = _side_variance(loglik, mask, "logmeanexp")
    p = np.array([1.0, 3.0])
    assert got[0] == pytest.approx(np.var(p, ddof=1) / (2 * p.mean() ** 2), rel=1e-12)
    assert np.isnan(got[1])
    p = np.array([3.0, 5.0, 1.0])
    assert got[2] == pytest.approx(np.var(p, ddof=1) / (3 * p.mean() ** 2), rel=1e-12)
    got = _side_variance(loglik, mask, "mean")
    assert got[0] == pytest.approx(np.var(np.log([1.0, 3.0]), ddof=1) / 2, rel=1e-12)


def test_normal_interval_uses_the_normal_quantile():
    M = np.array([0.5, -1.0, np.nan, 2.0])
    se = np.array([0.1, 2.0, 0.3, np.nan])
    z95 = 1.959963984540054
    expected = np.column_stack([M - z95 * se, M + z95 * se])
    np.testing.assert_allclose(_normal_interval(M, se), expected, rtol=1e-12)
    z90 = 1.6448536269514722
    np.testing.assert_allclose(
        _normal_interval(M, se, level=0.9),
        np.column_stack([M - z90 * se, M + z90 * se]),
        rtol=1e-12,
    )
    assert norm.ppf(0.975) == pytest.approx(z95, rel=1e-15)


# ---------------------------------------------------------------------------
# transform: looking rows up among the training rows
# ---------------------------------------------------------------------------


def _lookup_scorer():
    X = _grid()
    return MemorizationScorer(KernelDensity(bandwidth=0.7), cv=4, random_state=0).fit(
        X
    ), X


def test_transform_looks_up_permuted_float32_and_negative_zero_rows():
    mem, X = _lookup_scorer()
    scores = mem.memorization_scores_
    assert len(np.unique(scores)) == len(X)
    np.testing.assert_array_equal(mem.transform(X)[:, 0], scores)
    perm = np.random.RandomState(3).permutation(len(X))
    np.testing.assert_array_equal(mem.transform(X[perm])[:, 0], scores[perm])
    np.testing.assert_array_equal(mem.transform(X[perm[:5]])[:, 0], scores[perm[:5]])
    np.testing.assert_array_equal(
        mem.transform(X[perm].astype(np.float32))[:, 0], scores[perm]
    )
    negzero = X[perm].copy()
    assert (negzero == 0).any()
    negzero[negzero == 0] = -0.0
    np.testing.assert_array_equal(mem.transform(negzero)[:, 0], scores[perm])


def test_transform_errors_are_exact():
    mem, X = _lookup_scorer()
    new = np.array([X[2], [0.3, 0.3], [10.0, 0.0]])
    with pytest.raises(ValueError) as info:
        mem.transform(new)
    assert str(info.value) == (
        "2 of 3 rows of X (e.g. row 1) are not rows of the training data: a "
        "memorization score exists only for the samples the scorer was fitted "
        "on. Use score_samples for the log-likelihood of new data."
    )
    # a row that sorts after every training row
    with pytest.raises(ValueError, match=r"^1 of 1 rows of X \(e\.g\. row 0\) are not"):
        mem.transform([[np.finfo(np.float64).max, 0.0]])
    with pytest.raises(ValueError) as info:
        mem.transform(np.ones((2, 3)))
    assert "X has 3 features, but MemorizationScorer is expecting 2 features" in str(
        info.value
    )
    assert mem.n_features_in_ == 2
    with pytest.raises(TypeError, match="dense data is required"):
        mem.transform(sp.csr_matrix(X))


def _duplicates_scorer():
    """Rows 0 and 1 equal (NaN and finite scores), rows 2 and 3 equal (both NaN)."""
    X = np.array(
        [[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0], [2.0, 0.0], [0.0, 2.0]]
    )
    cv = [
        ([0, 1, 2, 3, 4], [5]),
        ([0, 2, 3, 5], [1, 4]),
        ([0, 1, 2, 3, 5], [4]),
        ([0, 2, 3, 4], [1, 5]),
    ]
    return MemorizationScorer(KernelDensity(bandwidth=1.0), cv=cv).fit(X), X


def test_transform_of_duplicate_rows():
    mem, X = _duplicates_scorer()
    scores = mem.memorization_scores_
    assert np.isnan(scores[[0, 2, 3]]).all() and np.isfinite(scores[[1, 4, 5]]).all()
    # the training data itself: by position, whatever the duplicates
    np.testing.assert_array_equal(mem.transform(X)[:, 0], scores)
    # duplicates whose scores are both NaN are one row
    np.testing.assert_array_equal(mem.transform(X[[3, 5, 2]])[:, 0], scores[[3, 5, 2]])
    with pytest.raises(ValueError) as info:
        mem.transform(X[[4, 0]])
    assert str(info.value) == (
        "Row 1 of X occurs several times in the training data with different "
        "memorization scores, so it cannot be looked up; index "
        "memorization_scores_ by position instead."
    )


def test_transform_tells_rows_apart_in_their_last_bits():
    X = np.array(
        [[1e-20, 0.0], [2e-20, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]]
    )
    cv = [([0, 2, 3], [1, 4, 5]), ([1, 4, 5], [0, 2, 3])]
    mem = MemorizationScorer(KernelDensity(bandwidth=1.0), cv=cv).fit(X)
    scores = mem.memorization_scores_
    assert scores[0] != scores[1]
    np.testing.assert_array_equal(mem.transform(X[[1, 0, 5]])[:, 0], scores[[1, 0, 5]])


# ---------------------------------------------------------------------------
# delegation check of score / score_samples, output feature name
# ---------------------------------------------------------------------------


def test_estimator_has_checks_the_refit_estimator_or_the_unfitted_one():
    X = _grid()
    unfitted = MemorizationScorer(KernelDensity(bandwidth=0.5), cv=3, random_state=0)
    assert _estimator_has("score_samples")(unfitted) is True
    with pytest.raises(AttributeError):
        _estimator_has("bandwidth_")(unfitted)  # set by KernelDensity.fit
    fitted = unfitted.fit(X)
    assert _estimator_has("bandwidth_")(fitted) is True
    assert _estimator_has("score")(fitted) is True
    with pytest.raises(AttributeError):
        _estimator_has("predict_proba")(fitted)
    no_refit = MemorizationScorer(KernelDensity(), refit=False)
    with pytest.raises(AttributeError) as info:
        _estimator_has("score_samples")(no_refit)
    assert str(info.value) == (
        "'MemorizationScorer' has no attribute 'score_samples' when refit=False: "
        "set refit=True to delegate it to the estimator refit on all of X."
    )


def test_get_feature_names_out_checks_the_input_features():
    mem, X = _lookup_scorer()
    names = mem.get_feature_names_out()
    assert names.dtype == object and list(names) == ["memorization_score"]
    assert list(mem.get_feature_names_out(["x0", "x1"])) == ["memorization_score"]
    with pytest.raises(ValueError, match=r"number of features \(2\), got 3"):
        mem.get_feature_names_out(["a", "b", "c"])
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=["a", "b"])
    mem.fit(frame)
    with pytest.raises(
        ValueError, match="input_features is not equal to feature_names_in_"
    ):
        mem.get_feature_names_out(["a", "c"])


# ---------------------------------------------------------------------------
# _kde: bandwidths
# ---------------------------------------------------------------------------


def _bandwidth_message(h, scale):
    return (
        f"bandwidth={h:g} is out of the range the closed form evaluates in float64: "
        "squared distances over the squared bandwidth must be finite (here |X| "
        f"reaches {scale:g}; roughly 1e-150 < bandwidth < 1e150 and |X| / bandwidth "
        "< 1e150). Scikit-learn's own KernelDensity gives -inf or constant "
        "densities there. Choose a bandwidth in that range, or rescale X."
    )


# 1 / h**2 just below the largest float64 (and 2 / h**2 above it)
_EDGE = 1.0 / np.sqrt(1.2e308)


@pytest.mark.parametrize("h", [1.0, 0.5, 1e-100, 1e-110, 1e120, _EDGE, "2.5"])
def test_check_bandwidths_accepts_bandwidths_with_finite_squares(h):
    X = np.array([[1.0, -0.5], [0.25, 0.0]])  # |X| reaches 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_bandwidths([h], X)
        check_bandwidths([h], np.empty((0, 2)))


@pytest.mark.parametrize(
    "h, scale",
    [
        (0.0, 1.0),
        (-1.0, 1.0),
        (np.nan, 1.0),
        (np.inf, 1.0),
        (1e160, 1.0),  # h**2 overflows
        (1e-155, 1.0),  # 1 / h**2 overflows
        (1e-170, 1.0),  # h**2 underflows to 0
        (1e-145, 1e10),  # (|X| / h)**2 overflows
    ],
)
def test_check_bandwidths_message_is_exact(h, scale):
    X = np.array([[scale, 0.0], [0.0, -0.5]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warnings on the way
        with pytest.raises(ValueError) as info:
            check_bandwidths([1.0, h], X)
    assert str(info.value) == _bandwidth_message(float(h), scale)


def test_check_bandwidths_of_empty_data_names_scale_zero():
    with pytest.raises(ValueError) as info:
        check_bandwidths([1e-155], np.empty((0, 3)))
    assert str(info.value) == _bandwidth_message(1e-155, 0.0)


@pytest.mark.parametrize("n, d", [(50, 3), (7, 1), (200, 10)])
def test_kde_bandwidth_equals_scikit_learns(n, d):
    X = np.random.RandomState(0).normal(size=(n, d))
    for rule in ("scott", "silverman"):
        expected = KernelDensity(bandwidth=rule).fit(X).bandwidth_
        assert kde_bandwidth(rule, n, d) == pytest.approx(expected, rel=1e-12)
    assert kde_bandwidth(0.25, n, d) == 0.25
    assert kde_bandwidth("0.5", n, d) == 0.5


# ---------------------------------------------------------------------------
# fit_transform's arguments, metadata routing, repeats vs subsampling
# ---------------------------------------------------------------------------


def test_fit_transform_passes_labels_groups_and_fit_parameters():
    from sklearn.model_selection import GroupKFold

    X = _grid()
    weights = np.linspace(0.5, 3.0, len(X))
    kde = MemorizationScorer(KernelDensity(bandwidth=0.8), cv=3, random_state=0)
    weighted = kde.fit_transform(X, sample_weight=weights)[:, 0]
    np.testing.assert_array_equal(
        weighted, kde.fit(X, sample_weight=weights).memorization_scores_
    )
    assert not np.allclose(weighted, kde.fit(X).memorization_scores_)

    groups = np.arange(len(X)) % 4
    grouped = MemorizationScorer(KernelDensity(bandwidth=0.8), cv=GroupKFold(4))
    M = grouped.fit_transform(X, groups=groups)[:, 0]
    for row in grouped.in_mask_:  # a group is in or out of a fit as a whole
        assert all(len(set(row[groups == g])) == 1 for g in range(4))
    np.testing.assert_array_equal(M, grouped.fit(X, groups=groups).memorization_scores_)

    y = (X[:, 0] > 2).astype(int)
    clf = MemorizationScorer(LogisticRegression(), cv=3, random_state=0)
    M = clf.fit_transform(X, y)[:, 0]
    np.testing.assert_array_equal(M, clf.fit(X, y).memorization_scores_)


def test_metadata_routing_reaches_the_estimator_and_names_the_scorer():
    import sklearn
    from sklearn.model_selection import GroupKFold

    X = _grid()
    groups = np.arange(len(X)) % 4
    weights = np.linspace(0.5, 3.0, len(X))
    plain = MemorizationScorer(KernelDensity(bandwidth=0.8), cv=GroupKFold(4))
    expected = plain.fit(X, groups=groups, sample_weight=weights).memorization_scores_
    assert not np.allclose(expected, plain.fit(X, groups=groups).memorization_scores_)
    with sklearn.config_context(enable_metadata_routing=True):
        kde = KernelDensity(bandwidth=0.8).set_fit_request(sample_weight=True)
        mem = MemorizationScorer(kde, cv=GroupKFold(4))
        got = mem.fit(X, groups=groups, sample_weight=weights).memorization_scores_
        np.testing.assert_allclose(got, expected, rtol=1e-12)
        unset = MemorizationScorer(KernelDensity(bandwidth=0.8), cv=GroupKFold(4))
        with pytest.raises(Exception, match=r"used within MemorizationScorer\.fit"):
            unset.fit(X, groups=groups, sample_weight=weights)


def test_supervised_standard_error_of_subsamples_and_of_repeats():
    from sklearn.model_selection import RepeatedKFold, ShuffleSplit

    from sklearn_mem._aggregate import repeat_standard_error

    rng = np.random.RandomState(0)
    X = rng.normal(size=(24, 2))
    y = (X[:, 0] + 0.5 * rng.normal(size=24) > 0).astype(int)
    sub = MemorizationScorer(
        LogisticRegression(),
        cv=ShuffleSplit(10, train_size=0.6, random_state=0),
        response="correct",
        aggregate="mean",
        random_state=0,
    ).fit(X, y)
    se = _stderr_loop(sub.loglik_, sub.in_mask_, "mean")
    np.testing.assert_allclose(sub.memorization_stderr_, se, rtol=1e-9)
    M, z95 = sub.memorization_scores_, 1.959963984540054
    np.testing.assert_allclose(
        sub.memorization_interval_,
        np.column_stack([M - z95 * se, M + z95 * se]),
        rtol=1e-9,
    )
    rep = MemorizationScorer(
        LogisticRegression(),
        cv=RepeatedKFold(n_splits=3, n_repeats=3, random_state=0),
        response="correct",
        aggregate="mean",
    ).fit(X, y)
    rounds = np.repeat([0, 1, 2], 3)
    se, _ = repeat_standard_error(rep.loglik_, rep.in_mask_, rounds, aggregate="mean")
    np.testing.assert_allclose(rep.memorization_stderr_, se, rtol=1e-12)
    assert np.isfinite(se).sum() > 5


# ---------------------------------------------------------------------------
# memorization at every checkpoint
# ---------------------------------------------------------------------------


class _TwoCheckpoints(BaseEstimator):
    """Log-likelihoods at epochs 1 and 2 that depend on the training rows."""

    def fit(self, X, y=None):
        self.center_ = np.asarray(X).mean(axis=0)
        self.checkpoints_ = [1, 2]
        return self

    def _at(self, X, epoch):
        return -((np.asarray(X) - self.center_) ** 2).sum(axis=1) / epoch

    def score_samples(self, X):
        return self._at(X, 3)

    def score_samples_checkpoints(self, X):
        return [1, 2], [self._at(X, epoch) for epoch in (1, 2)]


@pytest.mark.parametrize("aggregate", ["logmeanexp", "mean"])
def test_memorization_at_every_checkpoint(aggregate):
    from sklearn.model_selection import ShuffleSplit

    X = _grid()
    cv = ShuffleSplit(5, train_size=0.5, random_state=0)
    mem = MemorizationScorer(_TwoCheckpoints(), cv=cv, aggregate=aggregate)
    mem.fit(X)
    np.testing.assert_array_equal(mem.epochs_, [1, 2])
    for e, epoch in enumerate((1, 2)):
        rows = np.vstack(
            [
                -((X - X[train].mean(axis=0)) ** 2).sum(axis=1) / epoch
                for train, _ in cv.split(X)
            ]
        )
        np.testing.assert_allclose(mem.epoch_loglik_[e], rows, rtol=1e-12)
        expected = [
            _difference(
                _side(rows[mem.in_mask_[:, i], i], aggregate),
                _side(rows[~mem.in_mask_[:, i], i], aggregate),
            )
            for i in range(len(X))
        ]
        _assert_same(mem.epoch_memorization_scores_[e], np.array(expected))


def test_one_fit_with_checkpoints_warns_once():
    from sklearn.model_selection import ShuffleSplit

    X = _grid()
    mem = MemorizationScorer(
        _TwoCheckpoints(), cv=ShuffleSplit(1, train_size=0.5, random_state=0)
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mem.fit(X)
    assert [w.category for w in caught] == [MemorizationWarning]
    assert np.isnan(mem.epoch_memorization_scores_).all()
    assert mem.epoch_memorization_scores_.shape == (2, len(X))


# ---------------------------------------------------------------------------
# the choice of fold batching
# ---------------------------------------------------------------------------


class _AlwaysBatchable(BaseEstimator):
    """Offers fit_folds, and says nothing about when it cannot batch."""

    def __init__(self, random_state=None):
        self.random_state = random_state

    def fit(self, X, y=None):
        return self

    def score_samples(self, X):
        return np.zeros(len(X))

    def fit_folds(self, estimators, X, trains):
        raise AssertionError("not called here")


class _Batchable(_AlwaysBatchable):
    """Batches only with an integer random_state."""

    def fold_batching_unavailable_reason(self):
        if isinstance(self.random_state, int):
            return None
        return "batching needs an integer random_state"


class _NeverBatchable(_AlwaysBatchable):
    def fold_batching_unavailable_reason(self):
        return "never"


def test_fold_batching_auto_asks_a_seeded_clone():
    weights = {"sample_weight": np.ones(3)}
    for est, auto in [
        (_Batchable(), True),  # the clone carries a seed
        (_AlwaysBatchable(), True),
        (_NeverBatchable(), False),
        (KernelDensity(), False),
    ]:
        mem = MemorizationScorer(est)
        assert mem._use_fold_batching({}) is auto
        assert mem._use_fold_batching(weights) is False
        assert mem._use_fold_batching({}, per_split=True) is False
        assert mem.set_params(fold_batching=False)._use_fold_batching({}) is False
    assert not hasattr(_AlwaysBatchable(), "fold_batching_unavailable_reason")
    mem = MemorizationScorer(_NeverBatchable(), fold_batching=True)
    assert mem._use_fold_batching({}) is True


def test_fold_batching_true_messages_are_exact():
    mem = MemorizationScorer(KernelDensity(), fold_batching=True)
    with pytest.raises(ValueError) as info:
        mem._use_fold_batching({})
    assert str(info.value) == (
        "fold_batching=True needs an estimator with a fit_folds method; "
        "KernelDensity has none. Use fold_batching='auto' or False to fit one "
        "clone per split."
    )
    mem = MemorizationScorer(_Batchable(), fold_batching=True)
    with pytest.raises(ValueError) as info:
        mem._use_fold_batching({"sample_weight": 1, "a": 2})
    assert str(info.value) == (
        "fold_batching=True cannot pass fit parameters ['a', 'sample_weight']; "
        "use fold_batching=False."
    )
    for params, what in [
        ({"keep_estimators": True}, "keep the split estimators (keep_estimators=True)"),
        ({"response": "log_proba"}, "compute response='log_proba'"),
    ]:
        mem = MemorizationScorer(_Batchable(), fold_batching=True, **params)
        with pytest.raises(ValueError) as info:
            mem._use_fold_batching({}, per_split=True)
        assert str(info.value) == (
            "fold_batching=True trains density nets through fit_folds and scores "
            f"them with score_samples; it cannot {what}. Use fold_batching='auto' "
            "or False."
        )


# ---------------------------------------------------------------------------
# the splitter of an int cv
# ---------------------------------------------------------------------------


def test_int_cv_is_a_seeded_shuffled_kfold_stratified_for_classifiers():
    from sklearn.model_selection import KFold, ShuffleSplit, StratifiedKFold

    mem = MemorizationScorer(KernelDensity(), cv=3)
    binary, multiclass = np.arange(12) % 2, np.arange(12) % 3
    cases = [
        ((), KFold),
        ((binary,), KFold),  # labels alone do not stratify
        ((binary, True), StratifiedKFold),
        ((multiclass, True), StratifiedKFold),
        ((np.linspace(0, 1, 12), True), KFold),  # continuous target
        ((None, True), KFold),
    ]
    for args, kind in cases:
        cv = mem._check_cv(np.random.RandomState(0), *args)
        assert type(cv) is kind and cv.n_splits == 3 and cv.shuffle is True
        assert isinstance(cv.random_state, int)
        again = mem._check_cv(np.random.RandomState(0), *args)
        other = mem._check_cv(np.random.RandomState(1), *args)
        assert again.random_state == cv.random_state != other.random_state
    splitter = ShuffleSplit(4, random_state=0)
    assert mem.set_params(cv=splitter)._check_cv(np.random.RandomState(0)) is splitter


# ---------------------------------------------------------------------------
# when the closed form applies, tags, refitting resets what a fit set
# ---------------------------------------------------------------------------


class _KDEOwnScores(KernelDensity):
    def score_samples(self, X):
        return super().score_samples(X)


class _KDEOwnFit(KernelDensity):
    def fit(self, X, y=None, sample_weight=None):
        return super().fit(X, y, sample_weight=sample_weight)


class _KDEOnlyRenamed(KernelDensity):
    """A subclass that overrides neither fit nor score_samples."""


def test_exact_unavailable_reasons_are_exact():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sklearn_mem._scorer import _exact_unavailable_reason

    assert _exact_unavailable_reason(KernelDensity(), {}) is None
    assert _exact_unavailable_reason(_KDEOnlyRenamed(), {}) is None
    for est, name in [
        (_KDEOwnScores(), "_KDEOwnScores"),
        (_KDEOwnFit(), "_KDEOwnFit"),
        (make_pipeline(StandardScaler(), KernelDensity()), "Pipeline"),
        (LogisticRegression(), "LogisticRegression"),
    ]:
        assert _exact_unavailable_reason(est, {}) == (
            f"the estimator is {name}, not a sklearn.neighbors.KernelDensity (a "
            "Pipeline or a subclass that overrides fit/score_samples is refitted)"
        )
    assert _exact_unavailable_reason(KernelDensity(metric="manhattan"), {}) == (
        "KernelDensity(metric='manhattan') is not Euclidean"
    )
    assert _exact_unavailable_reason(KernelDensity(kernel="box"), {}) == (
        "kernel 'box' is not one of ('gaussian', 'tophat', 'epanechnikov', "
        "'exponential', 'linear', 'cosine')"
    )
    params = {"sample_weight": np.ones(3), "a": 1}
    assert _exact_unavailable_reason(KernelDensity(), params) == (
        "fit parameters ['a', 'sample_weight'] are passed to the estimator"
    )


class _Random(BaseEstimator):
    """A density estimator whose tags say it is not deterministic."""

    def fit(self, X, y=None):
        return self

    def score_samples(self, X):
        return np.zeros(len(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True
        return tags


def test_tags_of_the_scorer():
    from sklearn.utils import get_tags

    for est, random, required in [
        (KernelDensity(), False, False),
        (_Random(), True, False),
        (LogisticRegression(), False, True),
    ]:
        tags = get_tags(MemorizationScorer(est))
        assert tags.input_tags.allow_nan is False
        assert tags.input_tags.sparse is False
        assert tags.non_deterministic is random
        assert tags.target_tags.required is required
        assert tags.transformer_tags.preserves_dtype == ["float64"]
    tags = get_tags(MemorizationScorer(LinearRegression(), response="correct"))
    assert tags.target_tags.required is True


def test_refitting_removes_what_the_last_fit_set():
    X = _grid()
    mem = MemorizationScorer(
        KernelDensity(kernel="tophat", bandwidth=1.0),
        cv=3,
        keep_estimators=True,
        random_state=0,
    ).fit(X)
    assert hasattr(mem, "estimators_") and hasattr(mem, "full_loglik_")
    mem.set_params(keep_estimators=False, refit=False).fit(X)
    assert not hasattr(mem, "estimators_") and not hasattr(mem, "full_loglik_")
    assert not hasattr(mem, "estimator_") and mem.method_ == "exact"
    assert mem.get_params()["estimator"].kernel == "tophat"


# ---------------------------------------------------------------------------
# _check_response: the response, X and y a fit works with
# ---------------------------------------------------------------------------


def _predict(est, X, y):
    return est.predict(X)


def test_check_response_resolves_and_validates():
    X = _grid()
    labels = (X[:, 0] > 2).astype(int)
    target = X.sum(axis=1)
    kde = MemorizationScorer(KernelDensity())
    response, Xv, yv = kde._check_response(X.tolist(), labels)  # y ignored
    assert response == "score_samples" and yv is None
    assert isinstance(Xv, np.ndarray) and np.array_equal(Xv, X)
    assert kde._check_response(X[:2], None)[1].shape == (2, 2)

    clf = MemorizationScorer(LogisticRegression())
    response, Xv, yv = clf._check_response(X, labels.tolist())
    assert response == "log_proba" and isinstance(yv, np.ndarray)
    np.testing.assert_array_equal(yv, labels)
    assert clf._check_response(X[:2], labels[:2])[1].shape == (2, 2)
    feldman = MemorizationScorer(
        LogisticRegression(), response="correct", aggregate="mean"
    )
    assert feldman._check_response(X, labels)[0] == "correct"

    reg = MemorizationScorer(LinearRegression(), response=_predict, aggregate="mean")
    response, Xv, yv = reg._check_response(X, target)
    assert response is _predict
    np.testing.assert_array_equal(yv, target)
    response, Xv, yv = reg._check_response(X[:2], None)  # a callable needs no y
    assert response is _predict and yv is None and Xv.shape == (2, 2)
    two = np.column_stack([target, -target])  # a callable takes several targets
    assert reg._check_response(X, two)[2].shape == (len(X), 2)
    assert reg._check_response(X[:2], two[:2])[2].shape == (2, 2)


def test_check_response_refuses_one_sample_and_sparse_input():
    X = _grid()
    labels = (X[:, 0] > 2).astype(int)
    reg = MemorizationScorer(LinearRegression(), response=_predict, aggregate="mean")
    clf = MemorizationScorer(LogisticRegression())
    for mem, y in [
        (MemorizationScorer(KernelDensity()), None),
        (reg, None),
        (reg, X[:, 0]),
        (clf, labels),
    ]:
        with pytest.raises(ValueError, match=r"minimum of 2 is required"):
            mem._check_response(X[:1], None if y is None else y[:1])
        with pytest.raises(TypeError, match="dense data is required"):
            mem._check_response(sp.csr_matrix(X), y)


def test_check_response_messages_are_exact():
    from sklearn.svm import LinearSVC

    X = _grid()
    labels = (X[:, 0] > 2).astype(int)
    cases = [
        (
            MemorizationScorer(LinearRegression()),
            None,
            "The 'estimator' parameter of MemorizationScorer must be an object "
            "implementing 'fit' and 'score_samples' (a density estimator) for "
            "response='auto'; got LinearRegression, which is not a classifier. "
            "For a regressor or any other model pass a callable response(estimator, "
            "X, y) -> array of shape (n_samples,).",
        ),
        (
            MemorizationScorer(LogisticRegression(), method="exact"),
            labels,
            "method='exact' computes KernelDensity log-likelihoods in closed form "
            "and cannot compute response='log_proba'. Use method='refit' (or "
            "'auto') to refit the estimator on every split.",
        ),
        (
            MemorizationScorer(LogisticRegression(), response="correct"),
            labels,
            "response='correct' gives 0/1 correctness, not a log-likelihood, so "
            "aggregate='logmeanexp' does not apply; use aggregate='mean' "
            "(Feldman's estimator: mean correctness over the fits trained on a "
            "sample minus over the others).",
        ),
        (
            MemorizationScorer(LogisticRegression()),
            None,
            "LogisticRegression is fitted on labels: MemorizationScorer.fit(X, y) "
            "needs y for response='log_proba' (every fit scores each training row "
            "by its true label). Pass y, or use a density estimator to score X "
            "alone.",
        ),
        (
            MemorizationScorer(LogisticRegression(), response=_predict),
            None,
            "LogisticRegression is fitted on labels: MemorizationScorer.fit(X, y) "
            "needs y for response=_predict (every fit scores each training row by "
            "its true label). Pass y, or use a density estimator to score X alone.",
        ),
        (
            MemorizationScorer(
                LinearRegression(), response="correct", aggregate="mean"
            ),
            None,
            "LinearRegression is fitted on labels: MemorizationScorer.fit(X, y) "
            "needs y for response='correct' (every fit scores each training row by "
            "its true label). Pass y, or use a density estimator to score X alone.",
        ),
    ]
    for mem, y, message in cases:
        with pytest.raises(ValueError) as info:
            mem._check_response(X, y)
        assert str(info.value) == message
    with pytest.raises(
        ValueError, match=r"^response='log_proba' scores log predict_pr"
    ):
        MemorizationScorer(LinearSVC())._check_response(X, labels)
    # labels must be classes for a classifier, and for the correctness
    for mem in [
        MemorizationScorer(LogisticRegression(), response=_predict),
        MemorizationScorer(LinearRegression(), response="correct", aggregate="mean"),
    ]:
        with pytest.raises(ValueError, match="Unknown label type"):
            mem._check_response(X, X[:, 0] + 0.1)
    with pytest.raises(ValueError, match="y should be a 1d array"):
        MemorizationScorer(LogisticRegression())._check_response(
            X, np.column_stack([labels, labels])
        )


# ---------------------------------------------------------------------------
# _kde: one kernel against scikit-learn's, at and beyond its support
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kernel", ["gaussian", "tophat", "epanechnikov", "exponential", "linear", "cosine"]
)
def test_log_kernel_equals_scikit_learns_at_and_beyond_the_support(kernel):
    from sklearn_mem._kde import log_kernel, log_kernel_norm

    h = 1.5
    dist = np.array([0.0, 0.3, 1.2, h, 2.0, 7.0])  # h itself is outside
    expected = KernelDensity(kernel=kernel, bandwidth=h).fit([[0.0]])
    expected = expected.score_samples(dist[:, None])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no log(0) or log of a negative number
        squared = kernel in ("gaussian", "epanechnikov")
        got = log_kernel(dist**2 if squared else dist, h, kernel)
    got = got + log_kernel_norm(h, 1, kernel)
    _assert_same(got, expected)
    assert np.isneginf(got[3:]).all() == (kernel not in ("gaussian", "exponential"))


def test_default_parameters_and_those_passed():
    defaults = {
        "cv": 10,
        "aggregate": "logmeanexp",
        "response": "auto",
        "method": "auto",
        "refit": True,
        "keep_estimators": False,
        "fold_batching": "auto",
        "n_jobs": None,
        "memory": None,
        "random_state": None,
        "verbose": 0,
    }
    params = MemorizationScorer(KernelDensity()).get_params(deep=False)
    assert {k: params[k] for k in defaults} == defaults
    passed = {
        "cv": 3,
        "aggregate": "mean",
        "response": "correct",
        "method": "refit",
        "refit": False,
        "keep_estimators": True,
        "fold_batching": False,
        "n_jobs": 2,
        "memory": "cache-dir",
        "random_state": 7,
        "verbose": 2,
    }
    params = MemorizationScorer(LogisticRegression(), **passed).get_params(deep=False)
    assert {k: params[k] for k in passed} == passed


def test_unknown_kernel_messages_are_exact():
    from sklearn_mem._kde import log_kernel, log_kernel_norm

    message = (
        "kernel must be one of ('gaussian', 'tophat', 'epanechnikov', "
        "'exponential', 'linear', 'cosine'), got 'box'."
    )
    with pytest.raises(ValueError) as info:
        log_kernel(np.ones(2), 1.0, "box")
    assert str(info.value) == message
    with pytest.raises(ValueError) as info:
        log_kernel_norm(1.0, 2, "box")
    assert str(info.value) == message


def test_influence_top_influences_and_transform_refuse_sparse_input():
    X = _grid()
    mem = MemorizationScorer(
        KernelDensity(bandwidth=0.5), cv=3, keep_estimators=True, random_state=0
    ).fit(X)
    for method in (mem.influence, mem.top_influences, mem.transform):
        with pytest.raises(TypeError, match="dense data is required"):
            method(sp.csr_matrix(X))
