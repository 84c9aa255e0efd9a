"""MemorizationScorer: API, aggregation, splitters, composition, caching."""

import warnings
from contextlib import nullcontext

import joblib
import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.mixture import BayesianGaussianMixture, GaussianMixture
from sklearn.model_selection import (
    GridSearchCV,
    GroupKFold,
    KFold,
    LeaveOneOut,
    RepeatedKFold,
    ShuffleSplit,
)
from sklearn.neighbors import KernelDensity
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_mem import MemorizationScorer, MemorizationWarning


def _by_hand(estimator, X, splits, seeds=None):
    """The fold loop written out: fit, score every row, logmeanexp."""
    rows = []
    for k, (train, _) in enumerate(splits):
        est = clone(estimator)
        if seeds is not None:
            from sklearn_mem._folds import set_random_states

            set_random_states(est, int(seeds[k]))
        rows.append(est.fit(X[train]).score_samples(X))
    loglik = np.array(rows)
    mask = np.zeros_like(loglik, dtype=bool)
    for k, (train, _) in enumerate(splits):
        mask[k, train] = True
    U = np.array(
        [
            logsumexp(loglik[mask[:, i], i]) - np.log(mask[:, i].sum())
            for i in range(X.shape[0])
        ]
    )
    V = np.array(
        [
            logsumexp(loglik[~mask[:, i], i]) - np.log((~mask[:, i]).sum())
            for i in range(X.shape[0])
        ]
    )
    return loglik, mask, U, V


def test_seeded_gmm_depends_on_its_seed(overlapping, seeded_gmm):
    # the premise of the seeding tests: another seed, another answer
    rows = [
        seeded_gmm(random_state=s).fit(overlapping[:30]).score_samples(overlapping)
        for s in range(4)
    ]
    for a in range(4):
        for b in range(a):
            assert np.abs(rows[a] - rows[b]).max() > 0.05


def test_fitted_attributes_match_a_hand_written_loop(overlapping, seeded_gmm):
    # a seed-dependent fit: every split must get its own seed, seeds_[k]
    X = overlapping
    gm = seeded_gmm()
    mem = MemorizationScorer(gm, cv=KFold(5), random_state=0).fit(X)
    assert len(set(mem.seeds_.tolist())) == 5
    splits = list(KFold(5).split(X))
    loglik, mask, U, V = _by_hand(gm, X, splits, mem.seeds_)
    np.testing.assert_allclose(mem.loglik_, loglik, rtol=1e-12)
    np.testing.assert_array_equal(mem.in_mask_, mask)
    np.testing.assert_allclose(mem.in_loglik_, U, rtol=1e-12)
    np.testing.assert_allclose(mem.out_loglik_, V, rtol=1e-12)
    np.testing.assert_allclose(mem.memorization_scores_, U - V, rtol=1e-10, atol=1e-12)
    assert mem.loglik_.shape == (5, len(X))
    np.testing.assert_array_equal(mem.n_in_, 4)
    np.testing.assert_array_equal(mem.n_out_, 1)
    assert mem.method_ == "refit"
    assert mem.n_features_in_ == 2
    assert isinstance(mem.estimator_, GaussianMixture)
    np.testing.assert_allclose(mem.score_samples(X), mem.estimator_.score_samples(X))
    assert mem.score(X) == pytest.approx(mem.estimator_.score(X))
    # the seeds are the ones of this random_state: a rerun gives the same
    # scores, another random_state other seeds and other scores
    again = MemorizationScorer(gm, cv=KFold(5), random_state=0).fit(X)
    np.testing.assert_array_equal(again.loglik_, mem.loglik_)
    np.testing.assert_array_equal(again.full_loglik_, mem.full_loglik_)
    other = MemorizationScorer(gm, cv=KFold(5), random_state=1).fit(X)
    assert np.abs(other.loglik_ - mem.loglik_).max() > 0.05


def test_a_fixed_estimator_seed_is_replaced_per_fit(overlapping, seeded_gmm):
    # a user's random_state=0 on the estimator must not give every fit seed 0
    X = overlapping
    gm = seeded_gmm(random_state=0)
    mem = MemorizationScorer(gm, cv=KFold(4), random_state=3, refit=False).fit(X)
    splits = list(KFold(4).split(X))
    loglik, *_ = _by_hand(gm, X, splits, mem.seeds_)
    np.testing.assert_allclose(mem.loglik_, loglik, rtol=1e-12)
    unseeded, *_ = _by_hand(gm, X, splits)
    assert np.abs(mem.loglik_ - unseeded).max() > 0.05


def test_nested_random_states_get_distinct_derived_seeds():
    from sklearn_mem._folds import set_random_states

    pipe = make_pipeline(
        PCA(2, svd_solver="randomized"), GaussianMixture(2, random_state=5)
    )
    names = ("pca__random_state", "gaussianmixture__random_state")
    seeded = set_random_states(clone(pipe), 7).get_params()
    values = [seeded[name] for name in names]
    assert all(isinstance(v, int) for v in values)
    # derived from the seed: not the seed itself, not one value for all
    assert len(set(values)) == 2 and 7 not in values
    # a function of the seed alone
    assert [set_random_states(clone(pipe), 7).get_params()[n] for n in names] == values
    other = [set_random_states(clone(pipe), 8).get_params()[n] for n in names]
    assert set(other).isdisjoint(values)
    # a lone estimator gets a derived seed too
    assert set_random_states(GaussianMixture(2), 7).random_state not in (None, 7)


def test_nested_seeds_reach_every_fit_of_a_pipeline(overlapping, seeded_gmm):
    # every step of every fit is seeded from that fit's seed
    from sklearn_mem._folds import set_random_states

    X = overlapping
    pipe = make_pipeline(PCA(2, svd_solver="randomized"), seeded_gmm())
    mem = MemorizationScorer(pipe, cv=KFold(4), random_state=0, refit=False).fit(X)
    splits = list(KFold(4).split(X))
    expected = [
        set_random_states(clone(pipe), int(seed)).fit(X[train]).score_samples(X)
        for seed, (train, _) in zip(mem.seeds_, splits)
    ]
    np.testing.assert_allclose(mem.loglik_, expected, rtol=1e-12)


def test_mean_aggregate(blobs):
    mem = MemorizationScorer(
        KernelDensity(bandwidth=0.7), cv=LeaveOneOut(), aggregate="mean"
    ).fit(blobs)
    mask = mem.in_mask_
    U = np.array([mem.loglik_[mask[:, i], i].mean() for i in range(len(blobs))])
    V = np.array([mem.loglik_[~mask[:, i], i].mean() for i in range(len(blobs))])
    np.testing.assert_allclose(mem.memorization_scores_, U - V, atol=1e-12)


def test_int_cv_is_shuffled_kfold_seeded_by_random_state(blobs):
    kde = KernelDensity(bandwidth=0.5)
    a = MemorizationScorer(kde, cv=4, random_state=1).fit(blobs)
    b = MemorizationScorer(kde, cv=4, random_state=1).fit(blobs)
    c = MemorizationScorer(kde, cv=4, random_state=2).fit(blobs)
    assert isinstance(a.cv_, KFold) and a.cv_.shuffle
    np.testing.assert_array_equal(a.in_mask_, b.in_mask_)
    assert not np.array_equal(a.in_mask_, c.in_mask_)
    # shuffled: the first held-out part is not the first rows
    assert np.flatnonzero(~a.in_mask_[0]).tolist() != list(range(10))


def test_seeds_are_pushed_into_every_nested_random_state(blobs):
    pipe = make_pipeline(PCA(2, svd_solver="randomized"), GaussianMixture(2))
    mem = MemorizationScorer(pipe, cv=3, random_state=0).fit(blobs)
    assert len(set(mem.seeds_.tolist())) == 3
    params = mem.estimator_.get_params()
    assert isinstance(params["pca__random_state"], int)
    assert isinstance(params["gaussianmixture__random_state"], int)


def test_pipeline_inside_scorer(digits):
    X = digits[:200]
    pipe = make_pipeline(
        StandardScaler(), PCA(10, random_state=0), GaussianMixture(3, reg_covar=1e-3)
    )
    mem = MemorizationScorer(pipe, cv=4, random_state=0).fit(X)
    assert mem.method_ == "refit"
    assert np.isfinite(mem.memorization_scores_).all()
    assert np.median(mem.memorization_scores_) > 0  # in-sample likelihood is higher


class RecordingScaler(StandardScaler):
    """A StandardScaler that records the rows it is fitted on."""

    seen = []

    def fit(self, X, y=None, sample_weight=None):
        self.seen.append(np.array(X, copy=True))
        return super().fit(X, y, sample_weight)


def test_pipeline_scaler_never_sees_held_out_rows(overlapping):
    X = overlapping * [1.0, 10.0] + [0.0, 5.0]
    RecordingScaler.seen.clear()
    pipe = make_pipeline(RecordingScaler(), GaussianMixture(2))
    cv = KFold(4, shuffle=True, random_state=0)
    mem = MemorizationScorer(pipe, cv=cv, random_state=0).fit(X)
    splits = list(cv.split(X))
    # the refit on all of X is dispatched first, then the four split fits
    assert len(RecordingScaler.seen) == 5
    np.testing.assert_array_equal(RecordingScaler.seen[0], X)
    for (train, test), rows in zip(splits, RecordingScaler.seen[1:]):
        np.testing.assert_array_equal(rows, X[train])
        assert not (rows[:, None, :] == X[test][None]).all(-1).any()
    # the scores are those of pipelines fitted on the training part alone
    from sklearn_mem._folds import set_random_states

    for k, (train, _) in enumerate(splits):
        expected = set_random_states(clone(pipe), int(mem.seeds_[k]))
        expected = expected.fit(X[train]).score_samples(X)
        np.testing.assert_allclose(mem.loglik_[k], expected, rtol=1e-12)


def test_bayesian_gaussian_mixture(overlapping):
    X = overlapping
    bgm = BayesianGaussianMixture(n_components=2, max_iter=500)
    mem = MemorizationScorer(bgm, cv=KFold(4), random_state=0).fit(X)
    splits = list(KFold(4).split(X))
    loglik, mask, U, V = _by_hand(bgm, X, splits, mem.seeds_)
    np.testing.assert_allclose(mem.loglik_, loglik, rtol=1e-12)
    np.testing.assert_allclose(mem.memorization_scores_, U - V, atol=1e-10)
    # a mixture fits its own training rows better on average
    assert np.mean(mem.memorization_scores_) > 0


class SubclassedKDE(KernelDensity):
    """A KernelDensity subclass that overrides neither fit nor score_samples."""


class OverridingKDE(KernelDensity):
    def score_samples(self, X):
        return super().score_samples(X)


def test_kernel_density_subclass_takes_the_closed_form(blobs):
    exact = MemorizationScorer(SubclassedKDE(bandwidth=0.5), cv=KFold(4)).fit(blobs)
    assert exact.method_ == "exact" and exact.seeds_ is None
    refit = MemorizationScorer(
        SubclassedKDE(bandwidth=0.5), cv=KFold(4), method="refit"
    ).fit(blobs)
    np.testing.assert_allclose(exact.loglik_, refit.loglik_, atol=1e-10)
    # a subclass that overrides score_samples is refitted
    other = MemorizationScorer(OverridingKDE(bandwidth=0.5), cv=4).fit(blobs)
    assert other.method_ == "refit"
    with pytest.raises(ValueError, match="cannot be used here.*overrides"):
        MemorizationScorer(OverridingKDE(), cv=4, method="exact").fit(blobs)


def test_gridsearch_over_bandwidth_and_reg_covar(blobs):
    # GridSearchCV ranks by score(): the held-out log-likelihood of the
    # estimator refit on each training part
    search = GridSearchCV(
        MemorizationScorer(KernelDensity(), cv=4, random_state=0),
        {"estimator__bandwidth": [0.05, 1.0]},
        cv=KFold(3),
    ).fit(blobs)
    for i, bandwidth in enumerate((0.05, 1.0)):
        for k, (train, test) in enumerate(KFold(3).split(blobs)):
            kde = KernelDensity(bandwidth=bandwidth).fit(blobs[train])
            assert search.cv_results_[f"split{k}_test_score"][i] == pytest.approx(
                kde.score(blobs[test])
            )
    assert search.best_params_ == {"estimator__bandwidth": 1.0}
    search = GridSearchCV(
        MemorizationScorer(GaussianMixture(2), cv=3, random_state=0),
        {"estimator__reg_covar": [1e-6, 10.0]},
        cv=KFold(3, shuffle=True, random_state=0),
    ).fit(blobs)
    # a huge covariance floor blurs the two blobs: a worse held-out fit
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all() and scores[0] > scores[1] + 0.5


def test_fit_transform_equals_fit_then_transform(blobs):
    mem = MemorizationScorer(KernelDensity(bandwidth=0.5), cv=5, random_state=0)
    np.testing.assert_array_equal(
        mem.fit_transform(blobs), mem.fit(blobs).transform(blobs)
    )


def test_transform_looks_rows_up_in_any_order(blobs):
    mem = MemorizationScorer(KernelDensity(bandwidth=0.5), cv=5, random_state=0).fit(
        blobs
    )
    order = np.random.RandomState(0).permutation(len(blobs))[:17]
    np.testing.assert_array_equal(
        mem.transform(blobs[order]).ravel(), mem.memorization_scores_[order]
    )


def test_transform_finds_float32_copies_and_negative_zeros():
    # values exact in float32, with zeros that a copy may hold as -0.0
    rng = np.random.RandomState(0)
    X = np.round(rng.randn(30, 3) * 4) / 4
    X[::3, 1] = 0.0
    mem = MemorizationScorer(KernelDensity(bandwidth=0.5), cv=5, random_state=0).fit(X)
    order = rng.permutation(len(X))[:20]
    expected = mem.memorization_scores_[order]
    copy32 = X[order].astype(np.float32)
    assert copy32.dtype == np.float32
    np.testing.assert_array_equal(mem.transform(copy32).ravel(), expected)
    negzero = X[order].copy()
    negzero[negzero == 0] = -0.0
    assert np.signbit(negzero[negzero == 0]).all() and (negzero == 0).any()
    np.testing.assert_array_equal(mem.transform(negzero).ravel(), expected)
    # also as the whole training set, in training order
    whole = X.copy()
    whole[whole == 0] = -0.0
    np.testing.assert_array_equal(
        mem.transform(whole).ravel(), mem.memorization_scores_
    )
    with pytest.raises(ValueError, match="not rows of the training data"):
        mem.transform(X[:2] + 0.125)


def test_transform_of_duplicate_training_rows():
    X = np.array(
        [[0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [3.0, 2.0], [5.0, 1.0], [2.0, 2.0]]
    )
    mem = MemorizationScorer(KernelDensity(bandwidth=1.0), cv=LeaveOneOut()).fit(X)
    # rows 0 and 2 are identical and get identical leave-one-out scores
    np.testing.assert_allclose(
        mem.transform(X[[2]]).ravel(), mem.memorization_scores_[[2]]
    )


def test_set_output_pandas(blobs):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(
        blobs, columns=["a", "b"], index=[f"r{i}" for i in range(len(blobs))]
    )
    mem = MemorizationScorer(
        KernelDensity(bandwidth=0.5), cv=5, random_state=0
    ).set_output(transform="pandas")
    out = mem.fit_transform(df)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["memorization_score"]
    assert list(out.index) == list(df.index)
    np.testing.assert_array_equal(
        out["memorization_score"].to_numpy(), mem.memorization_scores_
    )
    out2 = mem.transform(df.iloc[::-1])
    assert list(out2.index) == list(df.index[::-1])
    np.testing.assert_array_equal(mem.feature_names_in_, ["a", "b"])


def test_groups_reach_the_splitter(blobs):
    groups = np.repeat(np.arange(8), 5)
    mem = MemorizationScorer(KernelDensity(bandwidth=0.5), cv=GroupKFold(4)).fit(
        blobs, groups=groups
    )
    for row in mem.in_mask_:
        # a group is in or out of a fit as a whole
        for g in range(8):
            assert len(set(row[groups == g])) == 1


def test_groups_through_metadata_routing(blobs):
    import sklearn

    groups = np.repeat(np.arange(8), 5)
    with sklearn.config_context(enable_metadata_routing=True):
        mem = MemorizationScorer(
            KernelDensity(bandwidth=0.5), cv=GroupKFold(4), method="refit"
        ).fit(blobs, groups=groups)
        for row in mem.in_mask_:
            for g in range(8):
                assert len(set(row[groups == g])) == 1
        routing = mem.get_metadata_routing()
        assert "splitter" in str(routing)


def test_fit_params_are_sliced_per_split(blobs):
    weights = np.linspace(0.5, 2.0, len(blobs))
    kde = KernelDensity(bandwidth=0.6)
    mem = MemorizationScorer(kde, cv=KFold(4)).fit(blobs, sample_weight=weights)
    assert mem.method_ == "refit"  # weights are not part of the closed form
    train = np.flatnonzero(mem.in_mask_[0])
    expected = (
        clone(kde).fit(blobs[train], sample_weight=weights[train]).score_samples(blobs)
    )
    np.testing.assert_allclose(mem.loglik_[0], expected)


def test_repeated_kfold_standard_error(blobs):
    mem = MemorizationScorer(
        KernelDensity(bandwidth=0.5),
        cv=RepeatedKFold(n_splits=4, n_repeats=3, random_state=0),
    ).fit(blobs)
    assert mem.n_repeats_ == 3
    per_repeat = []
    for r in range(3):
        sub = MemorizationScorer(
            KernelDensity(bandwidth=0.5),
            cv=[
                (np.flatnonzero(m), np.flatnonzero(~m))
                for m in mem.in_mask_[4 * r : 4 * r + 4]
            ],
        ).fit(blobs)
        per_repeat.append(sub.memorization_scores_)
    expected = np.std(per_repeat, axis=0, ddof=1) / np.sqrt(3)
    np.testing.assert_allclose(mem.memorization_stderr_, expected, rtol=1e-10)
    from scipy.stats import t

    half = t.ppf(0.975, 2) * expected
    np.testing.assert_allclose(
        mem.memorization_interval_,
        np.column_stack(
            [mem.memorization_scores_ - half, mem.memorization_scores_ + half]
        ),
    )
    single = MemorizationScorer(KernelDensity(bandwidth=0.5), cv=4).fit(blobs)
    assert single.n_repeats_ == 1 and np.isnan(single.memorization_stderr_).all()
    assert np.isnan(single.memorization_interval_).all()


@pytest.mark.parametrize("method", ["exact", "refit"])
def test_shufflesplit_rows_outside_both_parts_count_as_out(blobs, method):
    # train 50%, test 20%: 30% of the rows are in neither part of a split
    cv = ShuffleSplit(6, train_size=0.5, test_size=0.2, random_state=0)
    splits = list(cv.split(blobs))
    neither = [np.setdiff1d(np.arange(len(blobs)), np.concatenate(s)) for s in splits]
    assert all(len(rows) == 12 for rows in neither)
    mem = MemorizationScorer(KernelDensity(bandwidth=0.5), cv=cv, method=method).fit(
        blobs
    )
    for k, (train, _) in enumerate(splits):
        np.testing.assert_array_equal(np.flatnonzero(mem.in_mask_[k]), np.sort(train))
        assert not mem.in_mask_[k, neither[k]].any()
    loglik, mask, U, V = _by_hand(KernelDensity(bandwidth=0.5), blobs, splits)
    np.testing.assert_array_equal(mem.in_mask_, mask)
    np.testing.assert_array_equal(mem.n_in_, mask.sum(0))
    np.testing.assert_array_equal(mem.n_out_, (~mask).sum(0))
    assert (mem.n_in_ > 0).all() and (mem.n_out_ > 0).all()
    np.testing.assert_allclose(mem.loglik_, loglik, atol=1e-8)
    np.testing.assert_allclose(mem.memorization_scores_, U - V, atol=1e-8)
    # ShuffleSplit fits do not form rounds: no standard error
    assert mem.n_repeats_ == 6
    assert np.isnan(mem.memorization_stderr_).all()
    assert np.isnan(mem.memorization_interval_).all()


def test_samples_without_out_fit_are_nan_and_warned(blobs):
    # one split only: its training rows have no "out" fit and vice versa
    train, test = np.arange(30), np.arange(30, 40)
    with pytest.warns(
        MemorizationWarning, match="30 of 40 samples have no 'out' fit and 10"
    ):
        mem = MemorizationScorer(KernelDensity(bandwidth=0.5), cv=[(train, test)]).fit(
            blobs
        )
    assert np.isnan(mem.memorization_scores_).all()
    assert (
        np.isnan(mem.out_loglik_[train]).all()
        and np.isfinite(mem.in_loglik_[train]).all()
    )


def test_zero_density_is_kept_and_warned():
    # an isolated point under a compact kernel: zero density when left out
    X = np.array([[0.0], [0.1], [0.2], [0.3], [10.0], [0.15]])
    with pytest.warns(MemorizationWarning, match=r"M = \+inf for 1"):
        mem = MemorizationScorer(
            KernelDensity(bandwidth=0.5, kernel="tophat"), cv=LeaveOneOut()
        ).fit(X)
    assert np.isposinf(mem.memorization_scores_[4])
    assert np.isneginf(mem.out_loglik_[4])
    assert np.isneginf(mem.loglik_[4, 4]) and np.isfinite(mem.in_loglik_[4])
    assert np.isfinite(np.delete(mem.memorization_scores_, 4)).all()


def test_refit_false(blobs):
    mem = MemorizationScorer(KernelDensity(bandwidth=0.5), cv=4, refit=False).fit(blobs)
    assert not hasattr(mem, "estimator_") and not hasattr(mem, "full_loglik_")
    assert not hasattr(mem, "score_samples")
    with pytest.raises(AttributeError, match="has no attribute 'score'"):
        mem.score(blobs)


@pytest.mark.parametrize("n_jobs,backend", [(1, None), (2, "loky"), (2, "threading")])
def test_same_scores_whatever_n_jobs_and_backend(
    overlapping, seeded_gmm, n_jobs, backend
):
    # a seed-dependent estimator without its own random_state: only the
    # seeds drawn in the parent make the runs agree
    gm = seeded_gmm()
    X = overlapping
    ref = MemorizationScorer(gm, cv=4, random_state=0).fit(X)
    context = joblib.parallel_config(backend=backend) if backend else nullcontext()
    with context:
        mem = MemorizationScorer(gm, cv=4, random_state=0, n_jobs=n_jobs).fit(X)
    np.testing.assert_array_equal(mem.seeds_, ref.seeds_)
    np.testing.assert_array_equal(mem.loglik_, ref.loglik_)
    np.testing.assert_array_equal(mem.memorization_scores_, ref.memorization_scores_)
    np.testing.assert_array_equal(mem.full_loglik_, ref.full_loglik_)


def _fit_in_worker_from_two_threads(X):
    """Run in a loky worker: raise BLAS and torch to 2 threads, then fit.

    Returns the (BLAS, torch) thread counts seen by every fit (the split fits
    and the refit), and those before and after the scorer's fit.
    """
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    def counts():
        blas = max((p["num_threads"] for p in threadpool_info()), default=0)
        return blas, torch.get_num_threads()

    seen = []

    class Probe(GaussianMixture):
        def fit(self, X, y=None):
            seen.append(counts())
            return super().fit(X)

    threadpool_limits(limits=2)
    torch.set_num_threads(2)
    before = counts()
    MemorizationScorer(Probe(1), cv=3, random_state=0).fit(X)
    return before, seen, counts()


def test_threads_are_limited_inside_fits_and_restored(blobs):
    pytest.importorskip("torch")
    # conftest pins every process to one thread; the worker raises its own
    # limits first, so a fit that is not limited sees 2 threads
    with joblib.parallel_config(backend="loky"):
        ((before, seen, after),) = joblib.Parallel(n_jobs=2)(
            [joblib.delayed(_fit_in_worker_from_two_threads)(blobs)]
        )
    assert before == (2, 2)
    assert seen == [(1, 1)] * 4  # three split fits and the refit
    assert after == (2, 2)  # restored


def test_inner_thread_limit_follows_parallel_config():
    from sklearn_mem._folds import inner_thread_limit

    assert inner_thread_limit() == 1
    with joblib.parallel_config(backend="loky", inner_max_num_threads=2):
        assert inner_thread_limit() == 2


class Counting(GaussianMixture):
    """A GaussianMixture that counts its fits (module level: picklable)."""

    calls = []

    def fit(self, X, y=None):
        self.calls.append(len(X))
        return super().fit(X)


def test_memory_caches_fits_and_allows_reaggregation(tmp_path, blobs):
    calls = Counting.calls
    calls.clear()
    kwargs = dict(cv=4, random_state=0, memory=str(tmp_path), refit=False)
    first = MemorizationScorer(Counting(2), **kwargs).fit(blobs)
    assert len(calls) == 4
    again = MemorizationScorer(Counting(2), **kwargs).fit(blobs)
    assert len(calls) == 4  # every fit came from the cache
    np.testing.assert_array_equal(first.loglik_, again.loglik_)
    mean = MemorizationScorer(Counting(2), aggregate="mean", **kwargs).fit(blobs)
    assert len(calls) == 4
    assert not np.allclose(mean.memorization_scores_, first.memorization_scores_)
    # another parameter is another cache entry
    MemorizationScorer(Counting(2, reg_covar=1e-3), **kwargs).fit(blobs)
    assert len(calls) == 8
    mem_obj = joblib.Memory(str(tmp_path), verbose=0)
    MemorizationScorer(
        Counting(2), cv=4, random_state=0, memory=mem_obj, refit=False
    ).fit(blobs)
    assert len(calls) == 8


def test_cache_key_includes_the_seed(tmp_path, overlapping, seeded_gmm):
    # same estimator, data and splits, other seeds: nothing may come from
    # the cache, and the scores are those of an uncached run
    X, gm = overlapping, seeded_gmm()
    kwargs = dict(cv=KFold(4), refit=False)
    first = MemorizationScorer(gm, random_state=0, memory=str(tmp_path), **kwargs)
    first.fit(X)
    cached = MemorizationScorer(gm, random_state=1, memory=str(tmp_path), **kwargs)
    cached.fit(X)
    plain = MemorizationScorer(gm, random_state=1, **kwargs).fit(X)
    assert not set(first.seeds_.tolist()) & set(cached.seeds_.tolist())
    assert cached.n_fits_from_cache_ == 0
    np.testing.assert_array_equal(cached.loglik_, plain.loglik_)
    assert np.abs(cached.loglik_ - first.loglik_).max() > 0.05


@pytest.mark.parametrize("n_jobs,backend", [(2, "loky"), (2, "threading")])
def test_cache_does_not_depend_on_n_jobs_or_backend(
    tmp_path, overlapping, seeded_gmm, n_jobs, backend
):
    X, gm = overlapping, seeded_gmm()
    kwargs = dict(cv=4, random_state=0, memory=str(tmp_path), refit=False)
    first = MemorizationScorer(gm, n_jobs=1, **kwargs).fit(X)
    assert first.n_fits_from_cache_ == 0
    with joblib.parallel_config(backend=backend):
        again = MemorizationScorer(gm, n_jobs=n_jobs, **kwargs).fit(X)
    assert again.n_fits_from_cache_ == 4
    np.testing.assert_array_equal(again.loglik_, first.loglik_)
    # and the other way round: filled in parallel, read sequentially
    other = dict(kwargs, random_state=1)
    with joblib.parallel_config(backend=backend):
        MemorizationScorer(gm, n_jobs=n_jobs, **other).fit(X)
    assert MemorizationScorer(gm, n_jobs=1, **other).fit(X).n_fits_from_cache_ == 4


def test_only_the_split_fits_are_cached_not_the_refit(tmp_path, overlapping):
    X = overlapping
    calls = Counting.calls
    calls.clear()
    kwargs = dict(cv=4, random_state=0, memory=str(tmp_path))
    first = MemorizationScorer(Counting(2), **kwargs).fit(X)
    assert sorted(calls) == [30, 30, 30, 30, 40]  # four split fits, one refit
    calls.clear()
    again = MemorizationScorer(Counting(2), **kwargs).fit(X)
    assert calls == [40]  # only the refit on all of X runs again
    assert again.n_fits_from_cache_ == 4
    np.testing.assert_array_equal(again.full_loglik_, first.full_loglik_)
    # the cache holds one entry per split fit, none for the refit
    entries = [p for p in tmp_path.rglob("output.pkl")]
    assert len(entries) == 4


def test_scores_are_positive_on_average_for_a_flexible_model(digits):
    mem = MemorizationScorer(KernelDensity(bandwidth=0.4), cv=10, random_state=0).fit(
        digits
    )
    assert mem.method_ == "exact"
    M = mem.memorization_scores_
    assert np.isfinite(M).all() and np.median(M) > 0
    assert np.quantile(M, 0.95) > np.quantile(M, 0.5)


def test_no_warning_on_ordinary_fit(blobs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MemorizationScorer(KernelDensity(bandwidth=0.5), cv=5, random_state=0).fit(
            blobs
        )


class FoldBatchedGMM(GaussianMixture):
    """A GaussianMixture that offers the fold-batching protocol (sequentially)."""

    batches = []

    def fit_folds(self, estimators, X, trains):
        self.batches.append(len(estimators))
        return [est.fit(X[train]) for est, train in zip(estimators, trains)]


def test_fold_batching_protocol_equals_per_split_fits(blobs):
    FoldBatchedGMM.batches.clear()
    gm = FoldBatchedGMM(2, max_iter=20)
    batched = MemorizationScorer(gm, cv=4, random_state=0).fit(blobs)
    assert batched.method_ == "batched" and FoldBatchedGMM.batches == [4]
    single = MemorizationScorer(gm, cv=4, random_state=0, fold_batching=False).fit(
        blobs
    )
    assert single.method_ == "refit" and FoldBatchedGMM.batches == [4]
    np.testing.assert_array_equal(batched.loglik_, single.loglik_)
    # fit parameters are not batched: "auto" falls back to per-split fits
    weights = {"sample_weight": np.ones(len(blobs))}
    kde = MemorizationScorer(KernelDensity(), cv=3, method="refit").fit(
        blobs, **weights
    )
    assert kde.method_ == "refit"


def test_fold_batching_true_needs_the_protocol(blobs):
    with pytest.raises(ValueError, match="fold_batching=True needs an estimator with"):
        MemorizationScorer(GaussianMixture(2), cv=3, fold_batching=True).fit(blobs)


def test_fold_batching_is_cached(tmp_path, blobs):
    FoldBatchedGMM.batches.clear()
    kwargs = dict(cv=3, random_state=0, memory=str(tmp_path), refit=False)
    first = MemorizationScorer(FoldBatchedGMM(2), **kwargs).fit(blobs)
    again = MemorizationScorer(FoldBatchedGMM(2), **kwargs).fit(blobs)
    assert FoldBatchedGMM.batches == [3]
    np.testing.assert_array_equal(first.loglik_, again.loglik_)


def test_n_fits_from_cache(tmp_path, blobs):
    kwargs = dict(cv=3, random_state=0, memory=str(tmp_path), refit=False)
    first = MemorizationScorer(GaussianMixture(2), **kwargs).fit(blobs)
    assert first.n_fits_from_cache_ == 0
    again = MemorizationScorer(GaussianMixture(2), **kwargs).fit(blobs)
    assert again.n_fits_from_cache_ == 3
    assert MemorizationScorer(KernelDensity(), cv=3).fit(blobs).n_fits_from_cache_ == 0
