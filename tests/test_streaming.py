"""Streaming aggregation and compact splits: equal to the stored-matrix results.

``store_loglik=False`` (or "auto" above the memory budget) aggregates the
log-likelihoods chunk by chunk without ever holding the (n_fits, n_samples)
matrices; :class:`~sklearn_mem._splits.Splits` holds complement splits as
their held-out blocks. Both are checked against the materialised matrices and
an independent aggregation of them.
"""

import tracemalloc

import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn import config_context
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    LeaveOneOut,
    RepeatedKFold,
    ShuffleSplit,
)
from sklearn.neighbors import KernelDensity

from sklearn_mem import MemorizationScorer
from sklearn_mem._aggregate import (
    aggregate_loglik,
    repeat_interval,
    repeat_standard_error,
    split_rounds,
)
from sklearn_mem._kde import kde_loglik
from sklearn_mem._splits import Splits, compact_splits
from sklearn_mem.metrics import membership_auc

SCORES = (
    "memorization_scores_",
    "in_loglik_",
    "out_loglik_",
    "n_in_",
    "n_out_",
    "memorization_stderr_",
    "memorization_interval_",
    "full_loglik_",
    "full_memorization_scores_",
)


def _data(n=90, d=3, seed=0):
    rng = np.random.RandomState(seed)
    # overlapping clusters and a far outlier: finite and large scores
    X = np.vstack([rng.randn(n - 1, d), np.full((1, d), 6.0)])
    return X


class _Unsorted:
    """A splitter whose training parts are complements given out of order."""

    def split(self, X, y=None, groups=None):
        n = len(X)
        rng = np.random.RandomState(3)
        for test in np.array_split(rng.permutation(n), 4):
            train = np.setdiff1d(np.arange(n), test)[::-1]
            yield train, test

    def get_n_splits(self, X=None, y=None, groups=None):
        return 4


SPLITTERS = [
    KFold(5, shuffle=True, random_state=0),
    RepeatedKFold(n_splits=4, n_repeats=3, random_state=0),
    LeaveOneOut(),
    KFold(90, shuffle=True, random_state=1),  # singletons in shuffled order
    ShuffleSplit(6, test_size=0.3, random_state=0),
    GroupKFold(70),  # more groups than the one-hot product takes
    _Unsorted(),
]


@pytest.mark.parametrize("cv", SPLITTERS, ids=lambda cv: type(cv).__name__)
def test_compact_splits_equal_the_materialised_ones(cv):
    X = _data()
    groups = np.arange(len(X)) % 80
    params = {"groups": groups} if isinstance(cv, GroupKFold) else {}
    pairs = list(cv.split(X, **params))
    in_mask = np.zeros((len(pairs), len(X)), dtype=bool)
    for k, (train, _) in enumerate(pairs):
        in_mask[k, train] = True
    splits = compact_splits(cv, X, **params)
    assert len(splits) == len(pairs)
    for k, (train, test) in enumerate(pairs):
        np.testing.assert_array_equal(splits[k][0], train)
        np.testing.assert_array_equal(splits[k][1], test)
    np.testing.assert_array_equal(splits.in_mask(), in_mask)
    for start, stop in [(0, 1), (7, 40), (89, 90), (30, 30)]:
        np.testing.assert_array_equal(
            splits.in_mask(start, stop), in_mask[:, start:stop]
        )
    np.testing.assert_array_equal(splits.rounds(), split_rounds(in_mask))
    np.testing.assert_array_equal(splits.train_sizes(), in_mask.sum(axis=1))


def test_unsorted_and_repeated_training_parts_are_kept_as_given():
    n = 6
    pairs = [
        (np.array([5, 4, 3, 2, 1]), np.array([0])),  # complement, unsorted
        (np.array([1, 1, 2, 3]), np.array([0])),  # a bootstrap-like repeat
        (np.array([0, 1, 2, 3, 4, 5]), np.array([], dtype=np.intp)),  # no test
        (np.array([1, 2, 3, 4, 5]), np.array([0])),  # complement, sorted
    ]
    splits = Splits.from_pairs(pairs, n)
    assert [splits.is_complement(k) for k in range(4)] == [False, False, False, True]
    for k, (train, test) in enumerate(pairs):
        np.testing.assert_array_equal(splits[k][0], train)
        np.testing.assert_array_equal(splits[k][1], test)
    np.testing.assert_array_equal(splits.train_sizes(), [5, 4, 6, 5])


@pytest.mark.parametrize("cv", SPLITTERS, ids=lambda cv: type(cv).__name__)
def test_streaming_scores_equal_the_stored_matrix(cv):
    X = _data()
    params = {"groups": np.arange(len(X)) % 80} if isinstance(cv, GroupKFold) else {}
    common = dict(cv=cv, method="exact", random_state=0)
    kde = KernelDensity(bandwidth=0.7)
    stored = MemorizationScorer(kde, store_loglik=True, **common).fit(X, **params)
    # a tiny working memory: many chunks of a few rows each
    with config_context(working_memory=1):
        streamed = MemorizationScorer(kde, store_loglik=False, **common).fit(
            X, **params
        )
    assert stored.store_loglik_ is True and streamed.store_loglik_ is False
    assert not hasattr(streamed, "loglik_") and not hasattr(streamed, "in_mask_")
    for name in SCORES:
        np.testing.assert_allclose(
            getattr(streamed, name), getattr(stored, name), rtol=1e-12, atol=0
        )
    assert streamed.n_repeats_ == stored.n_repeats_
    assert streamed.n_splits_ == stored.n_splits_ == len(stored.loglik_)

    # the stored matrices, aggregated independently, give the same scores
    ref = aggregate_loglik(stored.loglik_, stored.in_mask_, warn=False)
    np.testing.assert_array_equal(stored.memorization_scores_, ref.memorization)
    rounds = split_rounds(stored.in_mask_)
    stderr, per_repeat = repeat_standard_error(stored.loglik_, stored.in_mask_, rounds)
    if not isinstance(cv, ShuffleSplit):
        np.testing.assert_array_equal(stored.memorization_stderr_, stderr)
        np.testing.assert_array_equal(
            stored.memorization_interval_,
            repeat_interval(ref.memorization, stderr, per_repeat),
        )


def test_streaming_refit_path_equals_the_stored_matrix():
    X = _data(60)
    common = dict(
        cv=RepeatedKFold(n_splits=3, n_repeats=2, random_state=0), random_state=0
    )
    gmm = GaussianMixture(2, reg_covar=1e-2, init_params="random_from_data")
    stored = MemorizationScorer(gmm, store_loglik=True, **common).fit(X)
    with config_context(working_memory=1):
        streamed = MemorizationScorer(gmm, store_loglik=False, **common).fit(X)
    for name in SCORES:
        np.testing.assert_array_equal(getattr(streamed, name), getattr(stored, name))


def test_auto_keeps_the_matrix_below_working_memory_only():
    X = _data(300)
    kde = KernelDensity(bandwidth=0.7)
    kept = MemorizationScorer(kde, cv=LeaveOneOut()).fit(X)  # 0.8 MB
    assert kept.store_loglik_ is True
    assert kept.loglik_.shape == kept.in_mask_.shape == (300, 300)
    with config_context(working_memory=0.5):
        dropped = MemorizationScorer(kde, cv=LeaveOneOut()).fit(X)
    assert dropped.store_loglik_ is False
    np.testing.assert_allclose(
        dropped.memorization_scores_, kept.memorization_scores_, rtol=1e-12
    )
    with pytest.raises(AttributeError, match="loglik_ was not kept") as info:
        dropped.loglik_
    msg = str(info.value)
    assert "300 x 300" in msg and "store_loglik=True" in msg
    assert "working_memory" in msg
    with pytest.raises(AttributeError, match="in_mask_ was not kept"):
        dropped.in_mask_
    with pytest.raises(AttributeError, match="store_loglik=True"):
        membership_auc(dropped)
    # other missing attributes keep the ordinary message
    with pytest.raises(AttributeError, match="has no attribute 'estimator_x'"):
        dropped.estimator_x
    # a later fit that keeps them sets them again
    dropped.set_params(store_loglik=True).fit(X)
    np.testing.assert_array_equal(dropped.loglik_, kept.loglik_)


def test_store_loglik_false_keeps_epoch_free_attributes_consistent():
    X = _data(40)
    mem = MemorizationScorer(
        KernelDensity(bandwidth=0.7), cv=5, store_loglik=False, random_state=0
    ).fit(X)
    assert mem.n_splits_ == 5
    assert (mem.n_in_ + mem.n_out_ == 5).all()


def _brute_loo(X, h):
    """Leave-one-out log-densities of a Gaussian KDE by direct log-sum-exp."""
    n, d = X.shape
    sq = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    log_k = -sq / (2 * h * h) - 0.5 * d * np.log(2 * np.pi) - d * np.log(h)
    loglik = np.empty((n, n))
    for f in range(n):
        keep = np.arange(n) != f
        loglik[f] = logsumexp(log_k[:, keep], axis=1) - np.log(n - 1)
    return loglik


def test_isolated_rows_are_summed_again_with_their_own_shift():
    # row 3 is 60 bandwidths from every other row: its leave-one-out sum is
    # about exp(-1800), far below the smallest float64, in the product form
    X = np.array([[0.0, 0.0], [0.3, 0.1], [0.1, 0.4], [60.0, 0.0], [0.2, 0.2]])
    loglik, _ = kde_loglik(X, list(LeaveOneOut().split(X)), bandwidth=1.0)
    np.testing.assert_allclose(loglik, _brute_loo(X, 1.0), rtol=1e-12)
    assert np.isfinite(loglik).all() and loglik[3, 3] < -1700


def test_shuffled_singleton_folds_equal_leave_one_out():
    X = _data(40)
    loo, _ = kde_loglik(X, list(LeaveOneOut().split(X)), bandwidth=0.6)
    pairs = list(KFold(40, shuffle=True, random_state=5).split(X))
    shuffled, _ = kde_loglik(X, pairs, bandwidth=0.6)
    order = [test[0] for _, test in pairs]  # fit k leaves out row order[k]
    np.testing.assert_allclose(shuffled, loo[order], rtol=1e-13)
    np.testing.assert_allclose(loo, _brute_loo(X, 0.6), rtol=1e-12)


def test_leave_one_out_memory_grows_with_the_chunk_not_n_squared():
    n = 2000
    X = np.random.RandomState(0).randn(n, 4)
    kde = KernelDensity(bandwidth=0.5)
    tracemalloc.start()
    try:
        MemorizationScorer(kde, cv=LeaveOneOut(), store_loglik=False).fit(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    n_squared = n * n * 8  # one float64 (n, n) matrix: 32 MB
    assert peak < n_squared / 2, peak


@pytest.mark.parametrize("aggregate", ["logmeanexp", "mean"])
@pytest.mark.parametrize("bandwidth", [1.0, "scott"])
def test_streamed_leave_one_out_with_isolated_rows_equals_the_stored_matrix(
    aggregate, bandwidth
):
    # logmeanexp at a fixed bandwidth takes the closed-form aggregation; rows
    # 40 and 41 sit 60 bandwidths from the rest, so their sums underflow in
    # product form and are aggregated from their per-fit log-likelihoods
    X = np.vstack([_data(40, 2), [[60.0, 0.0], [60.0, 0.5]]])
    kde = KernelDensity(bandwidth=bandwidth)
    common = dict(cv=LeaveOneOut(), aggregate=aggregate, method="exact")
    stored = MemorizationScorer(kde, store_loglik=True, **common).fit(X)
    streamed = MemorizationScorer(kde, store_loglik=False, **common).fit(X)
    for name in SCORES:
        np.testing.assert_allclose(
            getattr(streamed, name), getattr(stored, name), rtol=1e-12, atol=0
        )
    assert np.isfinite(streamed.memorization_scores_).all()
    if bandwidth == 1.0 and aggregate == "logmeanexp":
        # the isolated pair, by hand (the 40 far rows add below exp(-1700)):
        # of the 41 "in" fits, the 40 that leave out a far row see the own
        # term 1 and the partner's k, the one that leaves out the partner
        # sees 1; the "out" fit sees k alone
        k = np.exp(-(0.5**2) / 2)
        expected = np.log((40 * (1 + k) + 1) / 41 / k)
        np.testing.assert_allclose(
            streamed.memorization_scores_[40:], expected, rtol=1e-12
        )
    ref = aggregate_loglik(stored.loglik_, stored.in_mask_, aggregate=aggregate)
    np.testing.assert_allclose(
        streamed.memorization_scores_, ref.memorization, rtol=1e-12
    )


def test_metadata_routing_with_a_splitter_that_takes_no_groups():
    from sklearn import config_context as sk_config

    X = _data(40)
    with sk_config(enable_metadata_routing=True):
        for cv in (5, KFold(4), ShuffleSplit(3, random_state=0)):
            mem = MemorizationScorer(
                KernelDensity(bandwidth=0.7), cv=cv, random_state=0
            ).fit(X)
            assert mem.memorization_scores_.shape == (40,)
    # the same scores as without routing
    plain = MemorizationScorer(KernelDensity(bandwidth=0.7), cv=KFold(4)).fit(X)
    with sk_config(enable_metadata_routing=True):
        routed = MemorizationScorer(KernelDensity(bandwidth=0.7), cv=KFold(4)).fit(X)
    np.testing.assert_array_equal(
        routed.memorization_scores_, plain.memorization_scores_
    )


def test_influence_side_recomputes_subnormal_sums():
    from sklearn_mem._scorer import _influence_side

    # the first side lies 744 nats below its column's top: exp underflows to
    # subnormals; the exact logmeanexp of (-744, -744.5) is recomputed
    values = np.array([[0.0, -744.0], [0.0, -744.5], [0.0, 0.0]])
    mask = np.array([[True], [True], [False]])
    out = _influence_side(values, mask, "logmeanexp")
    expected = logsumexp([-744.0, -744.5]) - np.log(2)
    np.testing.assert_allclose(out[0, 1], expected, rtol=1e-13)
    np.testing.assert_allclose(out[0, 0], 0.0, atol=0)


def test_auto_keeps_the_matrices_up_to_the_budget_exactly():
    # 10 fits x 1000 samples x 9 bytes (float64 + bool) = 90,000 bytes
    X = _data(1000, 2)
    kde = KernelDensity(bandwidth=0.7)
    for budget, kept in [(90000, True), (90000 - 1, False)]:
        with config_context(working_memory=budget / 2**20):
            mem = MemorizationScorer(kde, cv=10, random_state=0).fit(X)
        assert mem.store_loglik_ is kept
    with pytest.raises(AttributeError) as info:
        mem.loglik_
    assert str(info.value) == (
        "loglik_ was not kept: store_loglik='auto' and the 10 x 1000 matrices "
        "would take 0.00 GiB, above scikit-learn's working_memory (0.00 GiB). "
        "The scores were aggregated in a streaming pass. Fit with "
        "store_loglik=True to keep loglik_ and in_mask_ (they take n_fits x "
        "n_samples x 9 bytes), or raise working_memory with sklearn.set_config."
    )
    off = MemorizationScorer(kde, cv=10, store_loglik=False, random_state=0).fit(X)
    with pytest.raises(
        AttributeError, match=r"^in_mask_ was not kept: store_loglik=False\. "
    ):
        off.in_mask_
    on = MemorizationScorer(kde, cv=10, store_loglik=True, random_state=0)
    with config_context(working_memory=1e-6):
        assert on.fit(X).store_loglik_ is True
    # an unfitted scorer has neither, with the ordinary message
    with pytest.raises(
        AttributeError, match="^'MemorizationScorer' object has no attribute 'loglik_'$"
    ):
        MemorizationScorer(kde).loglik_
    # the sizes in GiB: LeaveOneOut on 3000 rows, 81 MB, above 64 MiB
    big = _data(3000, 2)
    with config_context(working_memory=64):
        loo = MemorizationScorer(kde, cv=LeaveOneOut()).fit(big)
    with pytest.raises(AttributeError) as info:
        loo.loglik_
    assert (
        "the 3000 x 3000 matrices would take 0.08 GiB, above scikit-learn's "
        "working_memory (0.06 GiB)"
    ) in str(info.value)
