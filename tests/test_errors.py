"""Bad input gets a clear error naming the problem and the fix."""

import re

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import KFold
from sklearn.neighbors import KernelDensity
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_mem import MemorizationScorer


class BadDensity(DensityMixin, BaseEstimator):
    """A density estimator whose score_samples misbehaves on request."""

    def __init__(self, output="nan"):
        self.output = output

    def fit(self, X, y=None):
        self.n_ = len(X)
        return self

    def score_samples(self, X):
        out = np.zeros(len(X))
        if self.output == "nan":
            out[:3] = np.nan
        elif self.output == "posinf":
            out[0] = np.inf
        elif self.output == "shape":
            out = np.zeros((len(X), 2))
        elif self.output == "strings":
            out = np.array(["-1.0"] * len(X))
        elif self.output == "complex":
            out = out + 1j
        return out


KDE = KernelDensity(bandwidth=0.5)


@pytest.fixture
def X():
    return np.random.RandomState(0).randn(30, 3)


@pytest.mark.parametrize(
    "make_X, match",
    [
        (
            lambda X: np.where(np.arange(X.size).reshape(X.shape) == 4, np.nan, X),
            "Input X contains NaN",
        ),
        (
            lambda X: np.where(np.arange(X.size).reshape(X.shape) == 4, np.inf, X),
            "Input X contains infinity",
        ),
        (lambda X: X[:, 0], "Expected 2D array, got 1D array"),
        (lambda X: X[:0], "0 sample"),
        (lambda X: X[:1], r"1 sample\(s\).*minimum of 2"),
    ],
    ids=["nan", "inf", "1d", "empty", "one-sample"],
)
def test_bad_X(X, make_X, match):
    with pytest.raises(ValueError, match=match):
        MemorizationScorer(KDE).fit(make_X(X))


def test_sparse_X(X):
    with pytest.raises(TypeError, match="dense data is required"):
        MemorizationScorer(KDE).fit(sp.csr_matrix(X))


def test_fewer_samples_than_folds(X):
    with pytest.raises(
        ValueError, match=r"cv=10 folds need at least 10 samples, got n_samples=5"
    ):
        MemorizationScorer(KDE, cv=10).fit(X[:5])


@pytest.mark.parametrize(
    "params, match",
    [
        ({"cv": "ten"}, "'cv' parameter"),
        ({"aggregate": "median"}, "'aggregate' parameter"),
        ({"method": "fast"}, "'method' parameter"),
        ({"n_jobs": 1.5}, "'n_jobs' parameter"),
        ({"memory": 3}, "'memory' parameter"),
    ],
)
def test_bad_parameters(X, params, match):
    with pytest.raises(InvalidParameterError, match=match):
        MemorizationScorer(KDE, **params).fit(X)


@pytest.mark.parametrize("estimator", [LinearRegression(), "kde"])
def test_estimator_without_score_samples(X, estimator):
    with pytest.raises(
        InvalidParameterError, match="implementing 'fit' and 'score_samples'"
    ):
        MemorizationScorer(estimator).fit(X)


@pytest.mark.parametrize(
    "estimator, match",
    [
        (
            GaussianMixture(),
            "the estimator is GaussianMixture, not a sklearn.neighbors.KernelDensity",
        ),
        (KernelDensity(metric="manhattan"), "metric='manhattan'.*not Euclidean"),
    ],
)
def test_exact_path_says_why_it_cannot(X, estimator, match):
    with pytest.raises(ValueError, match=match):
        MemorizationScorer(estimator, method="exact").fit(X)


def test_exact_path_with_fit_params(X):
    with pytest.raises(ValueError, match=r"fit parameters \['sample_weight'\]"):
        MemorizationScorer(KDE, method="exact").fit(X, sample_weight=np.ones(len(X)))


def test_overlapping_splitter(X):
    cv = [(np.arange(20), np.arange(15, 30))]
    with pytest.raises(ValueError, match="in both its training and held-out parts"):
        MemorizationScorer(KDE, cv=cv).fit(X)
    with pytest.raises(ValueError, match="in both its training and held-out parts"):
        MemorizationScorer(KDE, cv=cv, method="refit").fit(X)


def test_empty_training_part(X):
    cv = [(np.array([], dtype=int), np.arange(30))]
    with pytest.raises(ValueError, match="empty training part"):
        MemorizationScorer(KDE, cv=cv).fit(X)


def test_out_of_range_split_indices(X):
    with pytest.raises(ValueError, match="indices outside"):
        MemorizationScorer(KDE, cv=[(np.arange(40), np.array([0]))]).fit(X)


@pytest.mark.parametrize(
    "output, match",
    [
        ("nan", r"fit 0 \(BadDensity\(\)\) returned NaN for 3 of 30 samples"),
        ("posinf", r"returned \+inf for 1 samples.*Regularise"),
        ("shape", r"returned shape \(30, 2\); expected \(30,\)"),
    ],
)
def test_bad_score_samples_output(X, output, match):
    with pytest.raises(ValueError, match=match):
        MemorizationScorer(BadDensity(output), cv=KFold(3)).fit(X)


def test_transform_errors(X):
    mem = MemorizationScorer(KDE, cv=3, random_state=0)
    with pytest.raises(NotFittedError):
        mem.transform(X)
    mem.fit(X)
    with pytest.raises(
        ValueError, match="X has 2 features, but MemorizationScorer is expecting 3"
    ):
        mem.transform(X[:, :2])
    new = X[:4] + 100.0
    with pytest.raises(
        ValueError, match="4 of 4 rows of X .* are not rows of the training data"
    ):
        mem.transform(new)


@pytest.mark.filterwarnings("ignore::sklearn_mem.MemorizationWarning")
def test_duplicate_rows_with_different_scores_are_ambiguous():
    X = np.vstack([np.zeros((2, 1)), np.random.RandomState(0).randn(8, 1)])
    # rows 0 and 1 are equal but fall in different folds with different partners
    cv = [
        (np.arange(1, 10), np.array([0])),
        (np.array([0, 2, 3]), np.array([1, 4, 5, 6, 7, 8, 9])),
    ]
    mem = MemorizationScorer(KDE, cv=cv, refit=False).fit(X)
    assert mem.memorization_scores_[0] != mem.memorization_scores_[1]
    with pytest.raises(ValueError, match="occurs several times in the training data"):
        mem.transform(X[:1])


@pytest.mark.parametrize("output", ["strings", "complex"])
def test_score_samples_of_the_wrong_kind_names_the_fit(output):
    X = np.random.RandomState(0).rand(12, 2)
    with pytest.raises(ValueError, match=r"score_samples of fit 0 .* dtype"):
        MemorizationScorer(BadDensity(output), cv=3, refit=False).fit(X)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_fit_errors_name_their_split(n_jobs):
    X = np.random.RandomState(0).rand(40, 2)
    scorer = MemorizationScorer(
        GaussianMixture(25), cv=2, n_jobs=n_jobs, random_state=0, refit=False
    )
    with pytest.raises(ValueError, match="n_components = 25") as info:
        scorer.fit(X)
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert re.search(r"raised by fit [01]: GaussianMixture", notes)
    assert "fitted on 20 of 40 rows" in notes


class FailsOnAllRows(BadDensity):
    def fit(self, X, y=None):
        if len(X) == 40:
            raise ValueError("too many rows")
        return super().fit(X)


def test_refit_errors_say_so():
    X = np.random.RandomState(0).rand(40, 2)
    with pytest.raises(ValueError, match="too many rows") as info:
        MemorizationScorer(FailsOnAllRows("none"), cv=2).fit(X)
    assert "refit on all of X" in " ".join(info.value.__notes__)


def test_float_split_indices_are_refused():
    X = np.random.RandomState(0).rand(10, 2)
    splits = [(np.arange(5) + 0.5, np.arange(5, 10))]
    with pytest.raises(ValueError, match="float64 values .* integer indices"):
        MemorizationScorer(KDE, cv=splits).fit(X)


def test_each_fit_sets_or_removes_every_fitted_attribute():
    rng = np.random.RandomState(0)
    X40, X30 = rng.rand(40, 2), rng.rand(30, 2) + 3
    scorer = MemorizationScorer(GaussianMixture(2), cv=2, random_state=0).fit(X40)
    assert scorer.full_memorization_scores_.shape == (40,)
    scorer.set_params(refit=False).fit(X30)
    for name in ("estimator_", "full_loglik_", "full_memorization_scores_"):
        assert not hasattr(scorer, name), name
    assert scorer.memorization_scores_.shape == (30,)
    with pytest.raises(AttributeError, match="score_samples"):
        scorer.score_samples(X30)
    np.testing.assert_array_equal(
        scorer.transform(X30)[:, 0], scorer.memorization_scores_
    )
