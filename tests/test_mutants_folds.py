"""Tests that pin what the mutation run of ``sklearn_mem._folds`` left open.

Every way a split is fitted -- plain, through ``memory``, keeping the
estimators (``keep_estimators=True``), for a density or a classifier's
response -- pushes its own seed into the fit, names the fit in the note of
an exception it raises and in the message of a bad log-likelihood; a saved
training state refuses its reserved names and what JSON cannot hold; and
the helpers that choose where states go and whether ``fit_folds`` takes a
checkpoint answer exactly. Each check compares with an independent
computation (the same study without the path under test, a hand-written
fit, an exact message). docs/contributing.rst ("Mutation score") lists the
run and the mutants found equivalent.
"""

import errno
import importlib
import json
import logging
import operator
import os
import pathlib
import re
import sys
import threading
import uuid

import numpy as np
import pytest
from joblib import Memory, parallel_config, register_parallel_backend
from joblib._parallel_backends import ThreadingBackend
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import KFold, RepeatedKFold
from sklearn.utils.parallel import delayed

import sklearn_mem._scorer as scorer_module
from sklearn_mem import MemorizationScorer, _folds
from sklearn_mem._folds import (
    MAX_SEED,
    TrainingStateStore,
    _accepts_checkpoint,
    _state_location,
    set_random_states,
)
from sklearn_mem._progress import StageBars

pytestmark = pytest.mark.filterwarnings("ignore::sklearn_mem.MemorizationWarning")

X40 = np.random.RandomState(0).rand(40, 2)
Y40 = np.arange(40) % 2


class _Refuses(BaseEstimator):
    """A density estimator that raises in ``fit``."""

    def fit(self, X, y=None):
        raise ValueError("refused")

    def score_samples(self, X):  # pragma: no cover - never fitted
        return np.zeros(len(X))


class _RefusesLabels(ClassifierMixin, _Refuses):
    """A classifier that raises in ``fit``."""

    def predict_proba(self, X):  # pragma: no cover - never fitted
        return np.full((len(X), 2), 0.5)


class _NaNOut(BaseEstimator):
    """A density estimator whose log-likelihoods are all NaN."""

    def fit(self, X, y=None):
        return self

    def score_samples(self, X):
        return np.full(len(X), np.nan)


class _NaNOutLabels(ClassifierMixin, _NaNOut):
    """A classifier whose probabilities are all NaN."""

    def fit(self, X, y=None):
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):
        return np.full((len(X), 2), np.nan)


def _scorer(estimator, *, supervised, keep, memory):
    return MemorizationScorer(
        estimator,
        cv=KFold(4),
        refit=False,
        n_jobs=1,
        random_state=0,
        keep_estimators=keep,
        memory=memory,
        **({"response": "log_proba"} if supervised else {}),
    )


PATHS = [
    pytest.param(supervised, keep, cached, id=f"{kind}-{how}")
    for supervised, kind in ((False, "density"), (True, "classifier"))
    for keep, cached, how in (
        (False, False, "plain"),
        (False, True, "memory"),
        (True, False, "kept"),
    )
]


def test_a_long_estimator_is_described_on_one_line_of_80_characters():
    from sklearn.mixture import GaussianMixture

    gm = GaussianMixture(
        3, covariance_type="diag", reg_covar=1e-3, max_iter=7, tol=1e-2
    )
    assert "\n" in repr(gm)[:77]  # the premise: scikit-learn wraps it
    flat = repr(gm).replace("\n", " ")
    assert len(flat) > 80
    assert _folds._describe(gm) == flat[:77] + "..."
    assert _folds._describe(_Refuses()) == "_Refuses()"

    class _Repr:
        def __init__(self, n):
            self.n = n

        def __repr__(self):
            return "a" * self.n

    assert _folds._describe(_Repr(80)) == "a" * 80  # 80 characters: kept whole
    assert _folds._describe(_Repr(81)) == "a" * 77 + "..."


def _fit_error(estimator, supervised, keep, cached, tmp_path):
    """The exception a study of ``estimator`` on one of the PATHS raises."""
    scorer = _scorer(
        estimator,
        supervised=supervised,
        keep=keep,
        memory=str(tmp_path) if cached else None,
    )
    with pytest.raises(ValueError) as info:
        scorer.fit(X40, Y40 if supervised else None)
    return info.value


@pytest.mark.parametrize("supervised, keep, cached", PATHS)
def test_a_failing_split_fit_is_named_in_the_note_of_its_exception(
    supervised, keep, cached, tmp_path
):
    estimator = _RefusesLabels() if supervised else _Refuses()
    error = _fit_error(estimator, supervised, keep, cached, tmp_path)
    assert str(error) == "refused"
    assert error.__notes__ == [
        f"(raised by fit 0: {estimator!r} fitted on 30 of 40 rows)"
    ]


@pytest.mark.parametrize("supervised, keep, cached", PATHS)
def test_a_nan_of_a_split_fit_names_the_fit(supervised, keep, cached, tmp_path):
    estimator = _NaNOutLabels() if supervised else _NaNOut()
    error = _fit_error(estimator, supervised, keep, cached, tmp_path)
    what = "predict_proba" if supervised else "score_samples"
    assert str(error).startswith(f"{what} of fit 0 ({estimator!r}) returned ")
    assert "NaN" in str(error)


def test_kept_split_estimators_are_fitted_with_their_own_seeds(overlapping, seeded_gmm):
    gm = seeded_gmm()
    plain = _scorer(gm, supervised=False, keep=False, memory=None).fit(overlapping)
    kept = _scorer(gm, supervised=False, keep=True, memory=None).fit(overlapping)
    np.testing.assert_array_equal(kept.seeds_, plain.seeds_)
    np.testing.assert_array_equal(kept.loglik_, plain.loglik_)
    for k, (train, _) in enumerate(KFold(4).split(overlapping)):
        by_hand = set_random_states(clone(gm), int(kept.seeds_[k])).fit(
            overlapping[train]
        )
        np.testing.assert_array_equal(
            kept.estimators_[k].score_samples(overlapping),
            by_hand.score_samples(overlapping),
        )
    # the premise: another seed gives another answer
    other = _scorer(gm, supervised=False, keep=True, memory=None)
    assert not np.array_equal(
        other.set_params(random_state=1).fit(overlapping).loglik_, kept.loglik_
    )


@pytest.mark.parametrize("keep, cached", [(False, True), (True, False)])
def test_classifier_fits_get_their_seeds_through_memory_and_when_kept(
    keep, cached, tmp_path
):
    X, y = load_iris(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=3, max_depth=2)

    def fit(random_state, **params):
        return MemorizationScorer(
            forest,
            cv=KFold(4, shuffle=True, random_state=0),
            refit=False,
            random_state=random_state,
            **params,
        ).fit(X, y)

    plain = fit(0)
    assert not np.array_equal(fit(1).loglik_, plain.loglik_)  # seed-dependent
    other = fit(0, keep_estimators=keep, memory=str(tmp_path) if cached else None)
    np.testing.assert_array_equal(other.loglik_, plain.loglik_)


class _FitsOnXOnly(BaseEstimator):
    """A density estimator whose ``fit`` takes no ``y`` at all."""

    def fit(self, X):
        self.mean_ = X.mean(axis=0)
        return self

    def score_samples(self, X):
        return -((X - self.mean_) ** 2).sum(axis=1)


def test_a_density_fit_that_takes_no_y_is_called_without_one():
    mem = MemorizationScorer(_FitsOnXOnly(), cv=KFold(4), refit=True).fit(X40)
    for k, (train, _) in enumerate(KFold(4).split(X40)):
        expected = -((X40 - X40[train].mean(axis=0)) ** 2).sum(axis=1)
        np.testing.assert_allclose(mem.loglik_[k], expected, rtol=1e-15)
    np.testing.assert_allclose(mem.estimator_.mean_, X40.mean(axis=0), rtol=1e-15)


class _RefusesAllRows(_RefusesLabels):
    """A classifier that fits on a part, and raises on all 40 rows."""

    def fit(self, X, y=None):
        if len(X) == 40:
            raise ValueError("refused")
        self.classes_ = np.unique(y)
        return self


class _NaNOnAllRows(_RefusesLabels):
    """A classifier whose probabilities are NaN only when fitted on all rows."""

    def fit(self, X, y=None):
        self.n_fit_, self.classes_ = len(X), np.unique(y)
        return self

    def predict_proba(self, X):
        return np.full((len(X), 2), np.nan if self.n_fit_ == 40 else 0.5)


def test_a_failing_classifier_refit_says_so():
    scorer = MemorizationScorer(_RefusesAllRows(), cv=KFold(4), response="log_proba")
    with pytest.raises(ValueError) as info:
        scorer.fit(X40, Y40)
    assert str(info.value) == "refused"
    assert info.value.__notes__ == ["(raised by the refit on all of X, refit=True)"]


def test_a_nan_of_the_classifier_refit_names_it():
    scorer = MemorizationScorer(_NaNOnAllRows(), cv=KFold(4), response="log_proba")
    with pytest.raises(ValueError) as info:
        scorer.fit(X40, Y40)
    assert str(info.value).startswith(
        "predict_proba of the refit on all of X (_NaNOnAllRows()) returned 40 "
    )


# ---------------------------------------------------------------------------
# fold-batched fits (fit_folds / score_folds)
# ---------------------------------------------------------------------------


class _Folded(BaseEstimator):
    """A fold-batched density: log p(x) = -|x - mean|^2 - 100 * threads.

    ``fit_folds`` fits each clone on its part, recording the BLAS threads it
    ran with (added to the log-likelihoods, so that a unit trained in another
    process still shows them) and the progress reporter it was given.
    ``fail`` raises, ``short`` returns one estimator too few, ``nan_fold``
    gives that fold NaN log-likelihoods at epoch ``nan_epoch`` (3: the final
    model; 1 or 2: a checkpoint).
    """

    reporters = []

    def __init__(self, fail=False, short=False, nan_fold=None, nan_epoch=3):
        self.fail = fail
        self.short = short
        self.nan_fold = nan_fold
        self.nan_epoch = nan_epoch

    def fit(self, X, y=None):
        self.mean_ = X.mean(axis=0)
        self.threads_ = 0
        return self

    def fit_folds(self, estimators, X, trains):
        from threadpoolctl import threadpool_info

        from sklearn_mem._progress import _reporter

        if self.fail:
            raise ValueError("refused")
        type(self).reporters.append(_reporter.get())
        threads = max(pool["num_threads"] for pool in threadpool_info())
        for k, (est, train) in enumerate(zip(estimators, trains)):
            est.fit(X[train])
            est.threads_, est.fold_ = threads, k
            est.checkpoints_ = [1, 2]
        return estimators[:-1] if self.short else estimators

    def _at(self, X, epoch):
        row = -((X - self.mean_) ** 2).sum(axis=1) - 100 * self.threads_ - epoch
        nan = (
            self.nan_fold is not None and getattr(self, "fold_", None) == self.nan_fold
        )
        if nan and epoch == self.nan_epoch:
            row[:] = np.nan
        return row

    def score_samples(self, X):
        return self._at(X, 3)

    def score_samples_checkpoints(self, X):
        return [1, 2], [self._at(X, 1), self._at(X, 2)]


class _FoldedScored(_Folded):
    """:class:`_Folded` that also scores all its folds in one call."""

    def score_folds(self, estimators, X):
        return [est.score_samples(X) for est in estimators]


def _batched(estimator, cv=None, **params):
    return MemorizationScorer(
        estimator,
        cv=cv or KFold(4),
        refit=False,
        fold_batching=True,
        random_state=0,
        **params,
    )


def _expected(X, cv, threads, epoch=3):
    return np.array(
        [
            -((X - X[train].mean(axis=0)) ** 2).sum(axis=1) - 100 * threads - epoch
            for train, _ in cv.split(X)
        ]
    )


@pytest.mark.parametrize("cls", [_Folded, _FoldedScored])
def test_batched_fits_and_their_checkpoints_are_scored_fit_by_fit(cls):
    mem = _batched(cls()).fit(X40)
    np.testing.assert_allclose(mem.loglik_, _expected(X40, KFold(4), 1), rtol=1e-15)
    np.testing.assert_array_equal(mem.epochs_, [1, 2])
    for e, epoch in enumerate((1, 2)):
        np.testing.assert_allclose(
            mem.epoch_loglik_[e], _expected(X40, KFold(4), 1, epoch), rtol=1e-15
        )


@pytest.mark.parametrize("cls", [_Folded, _FoldedScored])
@pytest.mark.parametrize("epoch, at", [(3, ""), (2, " at epoch 2")])
def test_a_nan_of_a_batched_fit_names_the_fit(cls, epoch, at):
    estimator = cls(nan_fold=1, nan_epoch=epoch)
    with pytest.raises(ValueError) as info:
        _batched(estimator).fit(X40)
    assert str(info.value).startswith(
        f"score_samples of fit 1{at} ({estimator!r}) returned NaN for 40 of 40"
    )


def test_a_failing_batched_fit_is_named_in_the_note_of_its_exception():
    with pytest.raises(ValueError) as info:
        _batched(_Folded(fail=True)).fit(X40)
    assert str(info.value) == "refused"
    assert info.value.__notes__ == [
        "(raised by the batched fit of 4 splits of _Folded(fail=True), on 30, 30, "
        "30, 30 of 40 rows)"
    ]


def test_a_batched_fit_must_return_one_estimator_per_part():
    with pytest.raises(ValueError) as info:
        _batched(_Folded(short=True)).fit(X40)
    assert str(info.value) == (
        "_Folded.fit_folds returned 3 estimators for 4 training parts."
    )


@pytest.mark.parametrize(
    "cv, n_jobs, threads",
    [
        (KFold(4), 1, 1),  # one unit: the threads n_jobs asks for
        (KFold(4), 2, 2),
        # two units (the repeats) on two workers: one thread each
        (RepeatedKFold(n_splits=4, n_repeats=2, random_state=0), 2, 1),
    ],
)
def test_batched_units_run_with_the_threads_n_jobs_leaves_them(cv, n_jobs, threads):
    with parallel_config(backend="threading"):
        mem = _batched(_Folded(), cv=cv, n_jobs=n_jobs).fit(X40)
    np.testing.assert_allclose(mem.loglik_, _expected(X40, cv, threads), rtol=1e-15)


@pytest.mark.parametrize("verbose", [0, 1])
@pytest.mark.parametrize("cached", [False, True])
def test_a_batched_unit_reports_its_progress_when_verbose(verbose, cached, tmp_path):
    _Folded.reporters.clear()
    memory = str(tmp_path) if cached else None
    _batched(_Folded(), verbose=verbose, memory=memory).fit(X40)
    (reporter,) = _Folded.reporters
    assert isinstance(reporter, StageBars) if verbose else reporter is None


REPEATED = RepeatedKFold(n_splits=4, n_repeats=2, random_state=0)


def test_units_of_two_folds_are_units():
    X = np.zeros((8, 1))
    cv = RepeatedKFold(n_splits=2, n_repeats=2, random_state=0)
    assert _folds.fold_units(list(cv.split(X)), 8) == [[0, 1], [2, 3]]
    # a round of one fit among rounds of two: one unit of every fit
    pairs = list(cv.split(X))
    assert _folds.fold_units(pairs[:3] + pairs[:1], 8) == [[0, 1, 2, 3]]


class _Threads(_Folded):
    """:class:`_Folded` recording the thread each ``fit_folds`` runs in."""

    threads = []

    def fit_folds(self, estimators, X, trains):
        type(self).threads.append(threading.current_thread())
        return super().fit_folds(estimators, X, trains)


def test_units_of_a_repeated_splitter_run_as_parallel_jobs_without_inner_bars():
    _Threads.threads.clear()
    _Folded.reporters.clear()
    with parallel_config(backend="threading"):
        mem = _batched(_Threads(), cv=REPEATED, n_jobs=2, verbose=1).fit(X40)
    np.testing.assert_allclose(mem.loglik_, _expected(X40, REPEATED, 1), rtol=1e-15)
    assert len(_Threads.threads) == 2
    assert threading.main_thread() not in _Threads.threads
    assert _Folded.reporters == [None, None]  # one bar over the units instead


@pytest.mark.parametrize("cv", [KFold(4), REPEATED], ids=["one unit", "two units"])
def test_every_cached_unit_counts_its_fits(cv, tmp_path, caplog):
    def run():
        with caplog.at_level(logging.INFO, logger="sklearn_mem"):
            caplog.clear()
            return _batched(_Folded(), cv=cv, memory=str(tmp_path)).fit(X40)

    assert run().n_fits_from_cache_ == 0
    training = [r.getMessage() for r in caplog.records if "training the" in r.message]
    if cv is REPEATED:
        expected = (
            "training the 8 fits of _Folded as 2 fold-batched units of 4 on 1 "
            "thread(s) each; this can take minutes (verbose=1 shows progress bars)"
        )
    else:
        expected = (
            "training the 4 fits of _Folded as one fold-batched model on 1 "
            "thread(s); this can take minutes (verbose=1 shows progress bars)"
        )
    assert training == [expected]
    assert run().n_fits_from_cache_ == cv.get_n_splits()
    # everything from the cache: nothing to announce
    assert not [r for r in caplog.records if "training the" in r.message]


@pytest.mark.parametrize("verbose", [0, 1, 2])
def test_the_bar_over_units_and_joblib_s_own_report(verbose, capsys):
    with parallel_config(backend="threading"):
        _batched(_Folded(), cv=REPEATED, n_jobs=2, verbose=verbose).fit(X40)
    err = capsys.readouterr().err
    if verbose:
        assert re.search(r"(^|\r)units of fits: 100%.* 2/2 ", err, re.M)
    else:
        assert "units of fits" not in err
    assert ("Parallel(n_jobs=2)" in err) == (verbose > 1)


def test_a_loglik_of_the_wrong_dtype_is_named_exactly():
    with pytest.raises(ValueError) as info:
        _folds.check_loglik_row(np.array(["a", "b"]), 2, "fit 3 (X())")
    assert str(info.value) == (
        "score_samples of fit 3 (X()) returned values of dtype <U1; expected "
        "real numbers (float), one log-likelihood per row of X."
    )


@pytest.mark.parametrize(
    "loglik, text",
    [
        (
            np.array([0.0, np.nan, np.nan]),
            "returned NaN for 2 of 3 samples; a density estimator must give a "
            "log-likelihood (possibly -inf) for every sample. Check the fit for "
            "divergence (regularise it, rescale X).",
        ),
        (
            np.array([np.inf, 0.0, -np.inf]),
            "returned +inf for 1 samples: the fitted density is degenerate (e.g. "
            "a singular covariance). Regularise the estimator (e.g. reg_covar for "
            "GaussianMixture).",
        ),
    ],
)
def test_nan_and_plus_infinity_messages_are_exact(loglik, text):
    with pytest.raises(ValueError) as info:
        _folds.check_loglik_row(loglik, 3, "fit 3 (X())")
    assert str(info.value) == f"score_samples of fit 3 (X()) {text}"
    kept = _folds.check_loglik_row(
        np.array([np.inf, -np.inf]), 2, "x", allow_posinf=True
    )
    np.testing.assert_array_equal(kept, [np.inf, -np.inf])


class _NoGenerator(ThreadingBackend):
    """A backend that cannot return a generator (as Ray's)."""

    supports_retrieve_callback = False


register_parallel_backend("sklearn_mem_no_generator", _NoGenerator)


def _record_parallel(monkeypatch):
    """Record each Parallel's arguments and the number of jobs of each call."""
    made, calls = [], []

    class Recorded(_folds.Parallel):
        def __init__(self, **kwargs):
            made.append(kwargs)
            super().__init__(**kwargs)

        def __call__(self, iterable):
            jobs = list(iterable)
            calls.append(len(jobs))
            return super().__call__(jobs)

    monkeypatch.setattr(_folds, "Parallel", Recorded)
    return made, calls


@pytest.mark.parametrize(
    "backend, n_jobs, made, calls",
    [
        # results as they finish: one generator over every job
        ("threading", 2, {"return_as": "generator"}, [10]),
        ("sklearn_mem_no_generator", 1, {}, [2, 2, 2, 2, 2]),
        # no generator: rounds of two jobs per worker in one pool
        ("sklearn_mem_no_generator", 2, {}, [4, 4, 2]),
    ],
)
@pytest.mark.parametrize("verbose, joblib_verbose", [(0, 0), (1, 0), (2, 2), (3, 3)])
def test_dispatch_streams_results_or_runs_rounds(
    backend, n_jobs, made, calls, verbose, joblib_verbose, monkeypatch
):
    recorded_made, recorded_calls = _record_parallel(monkeypatch)
    jobs = [delayed(operator.mul)(k, k) for k in range(10)]
    with parallel_config(backend=backend):
        results = list(_folds.dispatch(jobs, n_jobs=n_jobs, verbose=verbose))
    assert results == [k * k for k in range(10)]
    assert recorded_made == [{"n_jobs": n_jobs, "verbose": joblib_verbose, **made}]
    assert recorded_calls == calls


@pytest.mark.parametrize("backend", ["sklearn_mem_no_generator", "multiprocessing"])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_backends_without_generators_give_the_same_scores(
    backend, n_jobs, overlapping, seeded_gmm
):
    # joblib refuses return_as="generator" from them, even with n_jobs=1
    reference = MemorizationScorer(seeded_gmm(), cv=4, random_state=0).fit(overlapping)
    with parallel_config(backend=backend):
        mem = MemorizationScorer(seeded_gmm(), cv=4, random_state=0, n_jobs=n_jobs).fit(
            overlapping
        )
    np.testing.assert_array_equal(mem.loglik_, reference.loglik_)
    np.testing.assert_array_equal(mem.full_loglik_, reference.full_loglik_)


class _SeededFolded(_Folded):
    """:class:`_Folded` whose mean moves by a draw of its ``random_state``."""

    def __init__(self, random_state=None):
        super().__init__()
        self.random_state = random_state

    def fit(self, X, y=None):
        super().fit(X)
        self.mean_ = self.mean_ + np.random.RandomState(self.random_state).rand(2)
        return self


def test_the_refit_of_a_batched_run_gets_its_own_seed():
    mem = _batched(_SeededFolded()).set_params(refit=True).fit(X40)
    rng = np.random.RandomState(0)
    seeds = rng.randint(MAX_SEED, size=4)
    refit_seed = rng.randint(MAX_SEED)
    np.testing.assert_array_equal(mem.seeds_, seeds)
    by_hand = set_random_states(_SeededFolded(), refit_seed).fit(X40)
    assert mem.estimator_.random_state == by_hand.random_state
    np.testing.assert_array_equal(mem.full_loglik_, by_hand.score_samples(X40))
    # the split fits too
    for k, (train, _) in enumerate(KFold(4).split(X40)):
        fit = set_random_states(_SeededFolded(), seeds[k]).fit(X40[train])
        np.testing.assert_allclose(
            mem.loglik_[k], fit.score_samples(X40) - 100, rtol=1e-15
        )


class _Reversed:
    """The splits of a splitter, in the reverse order."""

    def __init__(self, cv):
        self.cv = cv

    def split(self, X, y=None, groups=None):
        return reversed(list(self.cv.split(X)))

    def get_n_splits(self, X=None, y=None, groups=None):
        return self.cv.get_n_splits()


def test_cached_split_fits_do_not_depend_on_threads_or_position(
    tmp_path, overlapping, seeded_gmm, monkeypatch
):
    # the same (training part, seed) pairs, the last time in reverse order
    seeds = np.array([11, 22, 33, 44])
    drawn = iter([seeds, seeds, seeds[::-1]])
    monkeypatch.setattr(
        scorer_module, "draw_seeds", lambda random_state, n: next(drawn).copy()
    )

    def run(cv, **params):
        return MemorizationScorer(
            seeded_gmm(), cv=cv, refit=False, memory=str(tmp_path), **params
        ).fit(overlapping)

    first = run(KFold(4))
    assert first.n_fits_from_cache_ == 0
    with parallel_config(backend="loky", inner_max_num_threads=2):
        threads = run(KFold(4), n_jobs=2)
    assert threads.n_fits_from_cache_ == 4
    np.testing.assert_array_equal(threads.loglik_, first.loglik_)
    reverse = run(_Reversed(KFold(4)))
    assert reverse.n_fits_from_cache_ == 4
    np.testing.assert_array_equal(reverse.loglik_, first.loglik_[::-1])


class _ThreadOfFit(BaseEstimator):
    """A density recording the thread each fit runs in."""

    threads = []

    def fit(self, X, y=None):
        type(self).threads.append(threading.current_thread())
        self.mean_ = X.mean(axis=0)
        return self

    def score_samples(self, X):
        return -((X - self.mean_) ** 2).sum(axis=1)


@pytest.mark.parametrize("verbose", [0, 1, 2])
def test_split_fits_run_as_parallel_jobs_with_a_bar_when_verbose(verbose, capsys):
    _ThreadOfFit.threads.clear()
    with parallel_config(backend="threading"):
        MemorizationScorer(
            _ThreadOfFit(), cv=KFold(4), refit=False, n_jobs=2, verbose=verbose
        ).fit(X40)
    assert len(_ThreadOfFit.threads) == 4
    assert threading.main_thread() not in _ThreadOfFit.threads
    err = capsys.readouterr().err
    assert ("4/4" in err) == (verbose > 0)
    assert ("Parallel(n_jobs=2)" in err) == (verbose > 1)


EDITED = """
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class EditedDensity(BaseEstimator):
    def fit(self, X, y=None):
        self.mean_ = X.mean(axis=0)
        return self

    def score_samples(self, X):
        return -((X - self.mean_) ** 2).sum(axis=1)

    def fit_folds(self, estimators, X, trains):
        return [est.fit(X[train]) for est, train in zip(estimators, trains)]


class EditedClassifier(ClassifierMixin, BaseEstimator):
    def fit(self, X, y):
        self.classes_, counts = np.unique(y, return_counts=True)
        self.prior_ = counts / counts.sum()
        return self

    def predict_proba(self, X):
        return np.tile(self.prior_, (len(X), 1))

    def predict(self, X):
        return self.classes_[np.full(len(X), np.argmax(self.prior_))]
"""


@pytest.mark.parametrize(
    "kind, fold_batching",
    [("Density", False), ("Density", True), ("Classifier", False)],
)
def test_editing_the_estimator_source_invalidates_its_cached_fits(
    kind, fold_batching, tmp_path, monkeypatch
):
    # a module of its own, forgotten afterwards: a process that runs the test
    # again (mutmut forks one per mutant) must import this file, not the last
    name = f"edited_{kind}_{fold_batching}_{uuid.uuid4().hex}"
    source = tmp_path / f"{name}.py"
    source.write_text(EDITED)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, name, None)  # removed again at teardown
    del sys.modules[name]
    estimator = getattr(importlib.import_module(name), f"Edited{kind}")()
    y = Y40 if kind == "Classifier" else None

    def run():
        return MemorizationScorer(
            estimator,
            cv=KFold(4),
            refit=False,
            fold_batching=fold_batching,
            memory=str(tmp_path / "cache"),
            random_state=0,
        ).fit(X40, y)

    first = run()
    assert first.method_ == ("batched" if fold_batching else "refit")
    assert first.n_fits_from_cache_ == 0
    assert run().n_fits_from_cache_ == 4
    source.write_text(EDITED + "# edited\n")
    again = run()
    assert again.n_fits_from_cache_ == 0
    np.testing.assert_array_equal(again.loglik_, first.loglik_)


def test_saved_states_are_keyed_by_the_data(tmp_path, monkeypatch):
    keys = []

    class _Recorded(TrainingStateStore):
        def __init__(self, location, key):
            super().__init__(location, key)
            keys.append(key)

    monkeypatch.setattr(_folds, "TrainingStateStore", _Recorded)
    for X in (X40, X40 + 1.0, X40):
        _batched(_Folded(), memory=str(tmp_path)).fit(X)
    assert len(keys) == 3
    assert keys[0] == keys[2] and keys[0] != keys[1]


# ---------------------------------------------------------------------------
# saved training states
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["meta", "sha256"])
def test_a_saved_state_refuses_its_reserved_names(name, tmp_path):
    store = TrainingStateStore(tmp_path, "unit")
    with pytest.raises(ValueError) as info:
        store.save({name: np.zeros(2)}, {})
    assert str(info.value) == f"{name!r} is a reserved name in a saved state"
    assert store.load() is None


def test_a_saved_state_keeps_numpy_scalars_as_numbers_and_refuses_others(tmp_path):
    store = TrainingStateStore(tmp_path, "unit")
    meta = {"loss": np.float32(0.5), "epoch": np.int64(3), "tags": ["a", 1]}
    store.save({"w": np.arange(3.0)}, meta)
    arrays, loaded = store.load()
    assert loaded == {"loss": 0.5, "epoch": 3, "tags": ["a", 1]}
    assert type(loaded["epoch"]) is int
    np.testing.assert_array_equal(arrays["w"], np.arange(3.0))
    with pytest.raises(TypeError) as info:
        store.save({"w": np.zeros(1)}, {"bad": {1, 2}})
    assert str(info.value) == "cannot save a set in a training state"
    # the state saved before is untouched
    np.testing.assert_array_equal(store.load()[0]["w"], np.arange(3.0))


def test_a_saved_state_folder_says_what_wrote_it(tmp_path):
    store = TrainingStateStore(tmp_path, "unit")
    store.save({"w": np.zeros(1)}, {})
    marker = store.folder / "entry.json"
    assert json.loads(marker.read_text()) == {
        "format": 1,
        "function": "training state",
        "key": "unit",
    }
    assert sorted(p.name for p in store.folder.iterdir()) == ["entry.json", "state.npz"]


def test_a_save_that_fails_before_its_file_exists_raises_its_own_error(
    tmp_path, monkeypatch
):
    store = TrainingStateStore(tmp_path, "unit")
    store.save({"w": np.arange(2.0)}, {"epoch": 1})

    def full_disk(path, mode):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_folds, "open", full_disk, raising=False)
    with pytest.raises(OSError) as info:
        store.save({"w": np.zeros(2)}, {"epoch": 2})
    assert info.value.errno == errno.ENOSPC  # not the missing temporary file's
    monkeypatch.undo()
    assert sorted(p.name for p in store.folder.iterdir()) == ["entry.json", "state.npz"]
    arrays, meta = store.load()
    np.testing.assert_array_equal(arrays["w"], np.arange(2.0))
    assert meta == {"epoch": 1} and store.n_saved == 1


def _unusable(store):
    with pytest.warns(RuntimeWarning) as record:
        assert store.load() is None
    assert len(record) == 1
    return str(record[0].message)


def _afresh(store, reason):
    return (
        f"The saved training state {store.path} cannot be used ({reason}); "
        "it is removed and the training of its folds starts afresh."
    )


def test_an_edited_state_is_reported_exactly_and_removed(tmp_path):
    store = TrainingStateStore(tmp_path, "unit")
    store.save({"w": np.arange(3.0)}, {"epoch": 1})
    with np.load(store.path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["w"] = np.arange(3.0) + 1  # the checksum is the old arrays'
    np.savez(store.path, **arrays)
    assert _unusable(store) == _afresh(store, "its checksum does not match its arrays")
    assert not store.path.exists()


def test_a_state_whose_description_is_no_json_object_is_reported(tmp_path):
    store = TrainingStateStore(tmp_path, "unit")
    store.save({"w": np.zeros(1)}, {})
    with np.load(store.path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    payload = {"w": arrays["w"], "meta": np.frombuffer(b"[1, 2]", dtype=np.uint8)}
    payload["sha256"] = np.frombuffer(
        _folds._state_digest(payload).encode("ascii"), dtype=np.uint8
    )
    np.savez(store.path, **payload)
    assert _unusable(store) == _afresh(store, "its description is not a JSON object")


class _Payload:
    """Pickled, it creates a file when loaded: proof that the pickle ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_a_pickled_payload_in_a_saved_state_never_runs(tmp_path):
    marker = tmp_path / "the payload ran"
    store = TrainingStateStore(tmp_path, "unit")
    store.folder.mkdir(parents=True)
    payload = np.empty(1, dtype=object)
    payload[0] = _Payload(marker)
    np.savez(store.path, w=payload, meta=np.frombuffer(b"{}", dtype=np.uint8))
    message = _unusable(store)
    assert message.startswith(f"The saved training state {store.path} cannot be used (")
    assert "allow_pickle=False" in message
    assert not marker.exists()
    assert not store.path.exists()


def test_a_folder_in_place_of_the_state_is_reported_and_left(tmp_path):
    store = TrainingStateStore(tmp_path, "unit")
    (store.path / "someone's file").mkdir(parents=True)
    message = _unusable(store)
    assert message.startswith(f"The saved training state {store.path} cannot be used (")
    assert (store.path / "someone's file").is_dir()  # not ours: not removed


class _CacheOnly:
    """A Memory-like object: a ``cache`` method and no location."""

    def cache(self, func, **kwargs):
        return func


def test_state_location_follows_the_location_of_memory(tmp_path):
    assert _state_location(Memory(None, verbose=0)) is None
    assert _state_location(_CacheOnly()) is None
    folder = str(tmp_path / "cache")
    assert _state_location(Memory(folder, verbose=0)) == folder


def test_state_location_of_a_path_like_location():
    class _At:
        location = pathlib.Path("a") / "b"

    assert _state_location(_At()) == os.path.join("a", "b")


def test_accepts_checkpoint_reads_the_signature_of_fit_folds():
    def named(estimators, X, trains, checkpoint=None):
        pass

    def open_ended(estimators, X, trains, **kwargs):
        pass

    def closed(estimators, X, trains):
        pass

    assert _accepts_checkpoint(named) is True
    assert _accepts_checkpoint(open_ended) is True
    assert _accepts_checkpoint(closed) is False
    # a callable without a readable signature is not given one
    with pytest.raises(ValueError):
        __import__("inspect").signature(type)
    assert _accepts_checkpoint(type) is False
