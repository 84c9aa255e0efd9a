"""Tests that kill the mutants of the O(n)-memory splits and the GEMM KDE path.

``sklearn_mem._splits`` and the chunked Gaussian-kernel pipeline of
``sklearn_mem._kde`` (``_Round``, ``_plan``, ``_blocked_sums``,
``_GaussianGemm``, ``_leave_one_out_sums``, ``_KDEPlan``,
``default_chunk_size``, ``kde_loglik_chunks``, ``kde_loglik``) were rewritten
after the last mutation run; docs/contributing.rst ("Mutation score") lists
the run and the mutants found equivalent. Every expected value is computed
independently: brute-force membership masks and loops over the pairs, scipy
log-sum-exp over exact pairwise distances, KernelDensity(rtol=0, atol=0)
refits, exact messages and hand-computed chunk sizes.
"""

import math
import re

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.special import logsumexp
from sklearn import config_context
from sklearn.model_selection import GroupKFold, KFold, LeaveOneOut, ShuffleSplit
from sklearn.neighbors import KernelDensity

from sklearn_mem._kde import (
    _blocked_sums,
    default_chunk_size,
    kde_loglik,
    kde_loglik_chunks,
)
from sklearn_mem._splits import Splits, check_split, compact_splits

# ---------------------------------------------------------------------------
# independent references


def _mask_of(pairs, n):
    mask = np.zeros((len(pairs), n), dtype=bool)
    for k, (train, _) in enumerate(pairs):
        for j in train:
            mask[k, j] = True
    return mask


def _rounds_of(mask):
    """Rounds by a plain loop: a fit starts a new round when its "out" rows
    (rows outside its training part) meet those of the current round."""
    rounds, seen, current = [], set(), 0
    for row in mask:
        out = {j for j in range(len(row)) if not row[j]}
        if seen & out:
            current += 1
            seen = set()
        seen |= out
        rounds.append(current)
    return rounds


def _gauss_brute(X, pairs, h, full=False):
    """Gaussian log-likelihoods from exact distances and scipy's logsumexp."""
    n, d = X.shape
    log_k = -cdist(X, X, "sqeuclidean") / (2 * h * h)
    norm = -0.5 * d * math.log(2 * math.pi * h * h)
    out = np.empty((len(pairs), n))
    for k, (train, _) in enumerate(pairs):
        out[k] = logsumexp(log_k[:, train], axis=1) - math.log(len(train)) + norm
    if not full:
        return out, None
    return out, logsumexp(log_k, axis=1) - math.log(n) + norm


def _refits(X, pairs, bandwidth, kernel, full=False):
    out = np.array(
        [
            KernelDensity(bandwidth=bandwidth, kernel=kernel, rtol=0, atol=0)
            .fit(X[train])
            .score_samples(X)
            for train, _ in pairs
        ]
    )
    f = None
    if full:
        f = (
            KernelDensity(bandwidth=bandwidth, kernel=kernel, rtol=0, atol=0)
            .fit(X)
            .score_samples(X)
        )
    return out, f


def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def _blobs(n=40, d=2, seed=0):
    return np.random.RandomState(seed).randn(n, d)


def _far_clusters(per=4, gap=40.0, seed=0):
    """Clusters so far apart (at h=1) that kernel sums across them fall below
    exp(-600): the rows that need a shift of their own."""
    rng = np.random.RandomState(seed)
    return np.vstack([rng.randn(per, 1) * 0.3 + c * gap for c in range(3)])


# ---------------------------------------------------------------------------
# _splits: Splits


def _splits_cases(n=12):
    rng = np.random.RandomState(0)
    perm = rng.permutation(n)
    pairs = []
    # complement blocks (KFold-like) in shuffled order
    for block in np.array_split(perm, 3):
        pairs.append((np.setdiff1d(np.arange(n), block), np.sort(block)[::-1]))
    # explicit: unsorted complement, repeats, subset, full training part
    pairs.append((np.setdiff1d(np.arange(n), [2, 5])[::-1], np.array([2, 5])))
    pairs.append((np.array([0, 0, 1, 3, 4, 6, 7, 8, 9, 10]), np.array([2, 5])))
    pairs.append((np.array([1, 4, 9]), np.array([0, 2])))
    pairs.append((np.arange(n), np.array([], dtype=np.intp)))
    # LeaveOneOut-like singletons
    for i in (3, 7):
        pairs.append((np.setdiff1d(np.arange(n), [i]), np.array([i])))
    return [(np.asarray(a, np.intp), np.asarray(b, np.intp)) for a, b in pairs]


def test_splits_give_back_the_pairs_and_flag_only_true_complements():
    n = 12
    pairs = _splits_cases(n)
    splits = Splits.from_pairs(pairs, n)
    assert len(splits) == len(pairs)
    for k, (train, test) in enumerate(pairs):
        tr, te = splits[k]
        np.testing.assert_array_equal(tr, train)
        np.testing.assert_array_equal(te, test)
        np.testing.assert_array_equal(splits.train(k), train)
        np.testing.assert_array_equal(splits.test(k), test)
        assert splits.train(k).dtype == np.intp
    flags = [splits.is_complement(k) for k in range(len(pairs))]
    assert flags == [True, True, True, False, False, False, False, True, True]
    # negative index and slices with a step
    np.testing.assert_array_equal(splits[-1][1], pairs[-1][1])
    sliced = splits[1:8:3]
    assert len(sliced) == 3
    for (tr, te), k in zip(sliced, (1, 4, 7)):
        np.testing.assert_array_equal(tr, pairs[k][0])
        np.testing.assert_array_equal(te, pairs[k][1])
    assert splits[5:2] == []
    np.testing.assert_array_equal(splits.train_sizes(), [len(tr) for tr, _ in pairs])
    assert splits.train_sizes().dtype == np.float64


def test_overlapping_or_repeated_sorted_parts_are_not_complements():
    n = 5
    splits = Splits(n)
    # sizes add up to n and train is sorted, but the parts overlap
    splits.append(np.array([0, 1, 2, 3], np.intp), np.array([3], np.intp))
    # sorted with a repeat: not strictly increasing
    splits.append(np.array([0, 0, 2, 4], np.intp), np.array([1], np.intp))
    # sizes do not add up
    splits.append(np.array([0, 1, 2], np.intp), np.array([4], np.intp))
    assert not splits.is_complement(0)
    assert not splits.is_complement(1)
    assert not splits.is_complement(2)
    np.testing.assert_array_equal(splits.train(0), [0, 1, 2, 3])
    np.testing.assert_array_equal(splits.train(1), [0, 0, 2, 4])
    np.testing.assert_array_equal(splits.train(2), [0, 1, 2])
    np.testing.assert_array_equal(splits.train_sizes(), [4, 4, 3])


def test_append_leaves_the_work_array_all_false():
    n = 6
    marked = np.zeros(n, dtype=bool)
    splits = Splits(n)
    splits.append(np.array([0, 1, 2, 4, 5], np.intp), np.array([3], np.intp), marked)
    splits.append(np.array([0, 1, 2, 3], np.intp), np.array([3, 5], np.intp), marked)
    assert not marked.any()
    assert splits.is_complement(0) and not splits.is_complement(1)


def test_leave_one_out_splits_equal_scikit_learns():
    n = 7
    X = np.zeros((n, 1))
    splits = Splits.leave_one_out(n)
    expected = list(LeaveOneOut().split(X))
    assert len(splits) == n
    for k, (train, test) in enumerate(expected):
        assert splits.is_complement(k)
        np.testing.assert_array_equal(splits.train(k), train)
        np.testing.assert_array_equal(splits.test(k), test)
        assert splits.test(k).dtype == np.intp
    np.testing.assert_array_equal(splits.in_mask(), _mask_of(expected, n))
    np.testing.assert_array_equal(splits.train_sizes(), np.full(n, n - 1.0))
    np.testing.assert_array_equal(splits.rounds(), np.zeros(n))


@pytest.mark.parametrize(
    "start, stop", [(0, None), (0, 12), (0, 5), (3, 9), (7, 12), (4, 4)]
)
def test_in_mask_equals_the_brute_force_membership(start, stop):
    n = 12
    pairs = _splits_cases(n)
    splits = Splits.from_pairs(pairs, n)
    expected = _mask_of(pairs, n)[:, start:stop]
    got = splits.in_mask(start) if stop is None else splits.in_mask(start, stop)
    assert got.dtype == bool
    np.testing.assert_array_equal(got, expected)


def test_in_mask_default_start_and_index_refreshed_after_append():
    n = 12
    pairs = _splits_cases(n)
    splits = Splits.from_pairs(pairs[:3], n)
    np.testing.assert_array_equal(splits.in_mask(), _mask_of(pairs[:3], n))
    np.testing.assert_array_equal(splits.in_mask(stop=6), _mask_of(pairs[:3], n)[:, :6])
    for train, test in pairs[3:]:
        splits.append(train, test)
    np.testing.assert_array_equal(splits.in_mask(), _mask_of(pairs, n))
    # only explicit fits
    only = Splits.from_pairs(pairs[4:7], n)
    np.testing.assert_array_equal(only.in_mask(2, 10), _mask_of(pairs[4:7], n)[:, 2:10])


def test_rounds_equal_a_loop_over_the_membership():
    n = 12
    pairs = _splits_cases(n)
    splits = Splits.from_pairs(pairs, n)
    got = splits.rounds()
    assert got.dtype == np.intp
    np.testing.assert_array_equal(got, _rounds_of(_mask_of(pairs, n)))
    # two KFold repeats: two rounds; ShuffleSplit: mostly one round each
    X = np.zeros((n, 1))
    kf = list(KFold(3).split(X)) + list(KFold(4, shuffle=True, random_state=0).split(X))
    kf += list(ShuffleSplit(3, test_size=0.25, random_state=0).split(X))
    s = Splits.from_pairs(kf, n)
    np.testing.assert_array_equal(s.rounds(), _rounds_of(_mask_of(kf, n)))


# ---------------------------------------------------------------------------
# _splits: check_split and compact_splits


class _Given:
    def __init__(self, pairs):
        self.pairs = pairs

    def split(self, X, y=None, groups=None):
        yield from self.pairs

    def __repr__(self):
        return "_Given()"


def _msg(cv, k, rest):
    return re.escape(f"Split {k} of {cv!r} {rest}")


def test_check_split_messages():
    n = 5
    cv = _Given([])
    marked = np.zeros(n, dtype=bool)
    mask = np.ones(n, dtype=bool)
    with pytest.raises(
        ValueError,
        match=_msg(
            cv,
            2,
            "gives a boolean mask as its training part; "
            "splitters must yield integer indices.",
        ),
    ):
        check_split(cv, 2, mask, [0], n, marked)
    with pytest.raises(
        ValueError,
        match=_msg(
            cv,
            3,
            "gives a boolean mask as its held-out part; "
            "splitters must yield integer indices.",
        ),
    ):
        check_split(cv, 3, [0, 1], mask, n, marked)
    with pytest.raises(
        ValueError,
        match=_msg(
            cv,
            1,
            "gives float64 values as its training part; splitters must yield "
            "integer indices (they are not rounded or truncated).",
        ),
    ):
        check_split(cv, 1, np.array([0.0, 1.0]), [2], n, marked)
    with pytest.raises(
        ValueError, match=_msg(cv, 1, "gives float32 values as its held-out part;")
    ):
        check_split(cv, 1, [0, 1], np.array([2.0], np.float32), n, marked)
    for bad in ([5], [-6], [0, 9]):
        with pytest.raises(
            ValueError,
            match=_msg(
                cv, 4, "has training indices outside [0, 5) for X with 5 samples."
            ),
        ):
            check_split(cv, 4, bad, [1], n, marked)
    with pytest.raises(
        ValueError,
        match=_msg(cv, 4, "has held-out indices outside [0, 5) for X with 5 samples."),
    ):
        check_split(cv, 4, [0], [-7], n, marked)
    with pytest.raises(
        ValueError,
        match=_msg(cv, 0, "has an empty training part; every fit needs training rows."),
    ):
        check_split(cv, 0, np.array([], dtype=np.int64), [1], n, marked)
    with pytest.raises(
        ValueError,
        match=_msg(
            cv,
            6,
            "puts 2 samples (e.g. index 3) in both its training and held-out "
            "parts; a memorization score needs the two parts disjoint. Use a "
            "splitter whose parts do not overlap (KFold, ShuffleSplit, "
            "GroupKFold, LeaveOneOut, ...).",
        ),
    ):
        check_split(cv, 6, [0, 1, 3, 4], [3, 3, 1, 2], n, marked)
    assert not marked.any()


def test_check_split_wraps_negative_indices_and_accepts_empty_float_test():
    n = 5
    marked = np.zeros(n, dtype=bool)
    train, test = check_split(
        _Given([]),
        0,
        np.array([-5, -1, 0], np.int32),
        np.array([], dtype=float),
        n,
        marked,
    )
    np.testing.assert_array_equal(train, [0, 4, 0])
    assert train.dtype == np.intp and test.dtype == np.intp and test.size == 0
    train, test = check_split(
        _Given([]), 0, np.array([1, 2], np.uint8), np.array([-2]), n, marked
    )
    np.testing.assert_array_equal(train, [1, 2])
    np.testing.assert_array_equal(test, [3])
    assert train.dtype == np.intp and test.dtype == np.intp
    assert not marked.any()


def test_compact_splits_checks_every_split_and_stores_them():
    n = 6
    X = np.zeros((n, 2))
    pairs = [([0, 1, 2], [3, 4, 5]), ([3, 4, 5], [0, 1, 2]), ([-1, 0, 0], [1])]
    splits = compact_splits(_Given(pairs), X)
    assert isinstance(splits, Splits) and splits.n_samples == n
    assert len(splits) == 3
    assert [splits.is_complement(k) for k in range(3)] == [True, True, False]
    np.testing.assert_array_equal(splits.train(2), [5, 0, 0])
    np.testing.assert_array_equal(splits.test(1), [0, 1, 2])
    # the k of the message counts the splits
    bad = _Given([([0, 1], [2]), ([0, 1], [1])])
    with pytest.raises(ValueError, match=_msg(bad, 1, "puts 1 samples (e.g. index 1)")):
        compact_splits(bad, X)
    with pytest.raises(
        ValueError, match=re.escape("The splitter _Given() produced no splits.")
    ):
        compact_splits(_Given([]), X)


def test_compact_splits_of_leave_one_out_and_group_params():
    n = 6
    X = np.arange(2 * n, dtype=float).reshape(n, 2)
    loo = compact_splits(LeaveOneOut(), X)
    expected = list(LeaveOneOut().split(X))
    assert len(loo) == n and loo.n_samples == n
    for k, (train, test) in enumerate(expected):
        np.testing.assert_array_equal(loo[k][0], train)
        np.testing.assert_array_equal(loo[k][1], test)
    groups = np.array([0, 0, 1, 1, 2, 2])
    g = compact_splits(GroupKFold(3), X, groups=groups)
    exp = list(GroupKFold(3).split(X, groups=groups))
    assert len(g) == 3
    for k, (train, test) in enumerate(exp):
        np.testing.assert_array_equal(g[k][0], train)
        np.testing.assert_array_equal(g[k][1], test)
    with pytest.raises(ValueError, match="Cannot perform LeaveOneOut with n_samples=1"):
        compact_splits(LeaveOneOut(), X[:1])


# ---------------------------------------------------------------------------
# _kde: kernel sums


@pytest.mark.parametrize("n", [5, 1024, 2500])
def test_blocked_sums_equal_one_product(n):
    rng = np.random.RandomState(n)
    Q = rng.randn(7, 3) * 0.3
    Yt = rng.randn(3, n) * 0.3
    W = rng.rand(n, 4)
    expected = np.exp(Q @ Yt) @ W
    np.testing.assert_allclose(_blocked_sums(Q, Yt, W), expected, rtol=1e-12)


def _kfold(X, k, seed=0):
    return list(KFold(k, shuffle=True, random_state=seed).split(X))


def _loo(X):
    return list(LeaveOneOut().split(X))


def _shuffle(X, k=3):
    return list(ShuffleSplit(k, test_size=0.3, random_state=0).split(X))


def _groups(X, g):
    groups = np.arange(len(X)) % g
    return list(GroupKFold(g).split(X, groups=groups))


@pytest.mark.parametrize(
    "make",
    [
        lambda X: _kfold(X, 4),
        lambda X: _loo(X),
        lambda X: _shuffle(X),
        lambda X: _groups(X, 70),
        lambda X: (
            _kfold(X, 3) + _loo(X)[:7] + _shuffle(X, 2) + _kfold(X, 5, 1) + _loo(X)
        ),
        lambda X: (
            [
                (
                    np.array([0, 0, 3, 5, 5, 5] + list(range(6, len(X)))),
                    np.array([1, 2, 4]),
                )
            ]
            + _kfold(X, 3)
        ),
        lambda X: [(np.arange(len(X)), np.array([], dtype=int))] + _loo(X),
    ],
    ids=["kfold", "loo", "shuffle", "groups70", "mixed", "repeats", "all-rows"],
)
@pytest.mark.parametrize("full", [False, True])
def test_gaussian_gemm_equals_refits(make, full):
    X = _blobs(140, 2)
    pairs = make(X)
    expected, exp_full = _refits(X, pairs, 0.6, "gaussian", full)
    loglik, got_full = kde_loglik(X, pairs, bandwidth=0.6, full=full, chunk_size=50)
    assert loglik.shape == (len(pairs), len(X))
    _close(loglik, expected)
    if full:
        _close(got_full, exp_full)
    else:
        assert got_full is None
    # compact splits give the same numbers
    loglik2, _ = kde_loglik(
        X, Splits.from_pairs(pairs, len(X)), bandwidth=0.6, full=full
    )
    _close(loglik2, expected)


@pytest.mark.parametrize("bandwidth", ["scott", "silverman"])
def test_rule_of_thumb_bandwidths_per_fit_size(bandwidth):
    X = _blobs(60, 2, seed=1)
    pairs = _kfold(X, 3) + _loo(X)[:5] + [(np.arange(0, 60, 2), np.arange(1, 60, 2))]
    expected, exp_full = _refits(X, pairs, bandwidth, "gaussian", True)
    loglik, full = kde_loglik(X, pairs, bandwidth=bandwidth, full=True, chunk_size=17)
    _close(loglik, expected)
    _close(full, exp_full)


@pytest.mark.parametrize(
    "kernel", ["tophat", "epanechnikov", "exponential", "linear", "cosine"]
)
def test_other_kernels_equal_refits(kernel):
    # d = 3: scikit-learn's cosine normalisation is right for odd d only
    X = _blobs(50, 3, seed=2)
    pairs = _kfold(X, 3) + _loo(X)[:4] + _shuffle(X, 2)
    expected, exp_full = _refits(X, pairs, 1.5, kernel, True)
    loglik, full = kde_loglik(
        X, pairs, bandwidth=1.5, kernel=kernel, full=True, chunk_size=20
    )
    _close(loglik, expected)
    _close(full, exp_full)


@pytest.mark.parametrize(
    "make",
    [
        lambda X: _kfold(X, 3),
        lambda X: _loo(X),
        lambda X: _shuffle(X, 2),
        lambda X: _groups(X, 12),
        lambda X: _kfold(X, 4) + _loo(X) + _shuffle(X, 2),
    ],
    ids=["kfold", "loo", "shuffle", "groups", "mixed"],
)
def test_sums_below_exp_minus_600_are_redone_exactly(make):
    X = _far_clusters()
    pairs = make(X)
    expected, exp_full = _gauss_brute(X, pairs, 1.0, full=True)
    loglik, full = kde_loglik(X, pairs, bandwidth=1.0, full=True, chunk_size=5)
    _close(loglik, expected)
    _close(full, exp_full)
    loglik, none = kde_loglik(X, pairs, bandwidth=1.0, chunk_size=5)
    _close(loglik, expected)
    assert none is None


def test_leave_one_out_of_a_dominant_own_term():
    # the own term outweighs all others: the sum without it is summed anew
    X = np.array([[0.0], [3.0], [3.5], [9.0], [9.2], [20.0]])
    pairs = _loo(X)
    expected, exp_full = _gauss_brute(X, pairs, 0.8, full=True)
    loglik, full = kde_loglik(X, pairs, bandwidth=0.8, full=True, chunk_size=4)
    _close(loglik, expected)
    _close(full, exp_full)


def test_duplicate_rows_get_identical_leave_one_out_scores():
    rng = np.random.RandomState(5)
    X = np.vstack([rng.randn(10, 2), rng.randn(1, 2).repeat(3, axis=0)])
    pairs = _loo(X)
    loglik, _ = kde_loglik(X, pairs, bandwidth=0.7)
    expected, _ = _gauss_brute(X, pairs, 0.7)
    _close(loglik, expected)
    # rows 10, 11, 12 are identical: each is scored out of its own fit alike
    assert loglik[10, 10] == loglik[11, 11] == loglik[12, 12]


# ---------------------------------------------------------------------------
# _kde: chunks, aggregation, chunk sizes


def _logmeanexp(a):
    return logsumexp(a) - math.log(len(a))


def _aggregated_reference(loglik):
    n = loglik.shape[1]
    U = np.array([_logmeanexp(np.delete(loglik[:, i], i)) for i in range(n)])
    V = np.diag(loglik).copy()
    return U, V


@pytest.mark.parametrize(
    "X, h", [(_blobs(30, 2, 3), 0.6), (_far_clusters(), 1.0)], ids=["blobs", "far"]
)
@pytest.mark.parametrize("full", [False, True])
def test_aggregated_leave_one_out_chunks(X, h, full):
    n = len(X)
    pairs = _loo(X)
    loglik, exp_full = _gauss_brute(X, pairs, h, full=True)
    U, V = _aggregated_reference(loglik)
    seen = []
    for rows, agg, f in kde_loglik_chunks(
        X, pairs, bandwidth=h, full=full, chunk_size=7, aggregated=True
    ):
        seen.append((rows.start, rows.stop))
        _close(agg.in_loglik, U[rows])
        _close(agg.out_loglik, V[rows])
        np.testing.assert_array_equal(agg.n_in, np.full(rows.stop - rows.start, n - 1))
        np.testing.assert_array_equal(agg.n_out, np.ones(rows.stop - rows.start))
        if full:
            _close(f, exp_full[rows])
        else:
            assert f is None
    assert seen == [(a, min(a + 7, n)) for a in range(0, n, 7)]


def test_aggregated_with_shuffled_leave_one_out_order():
    X = _blobs(20, 2, 4)
    order = np.random.RandomState(0).permutation(20)
    pairs = [(np.setdiff1d(np.arange(20), [i]), np.array([i])) for i in order]
    loglik, _ = _gauss_brute(X, pairs, 0.5)
    V = loglik[np.argsort(order), np.arange(20)]
    U = np.array(
        [
            _logmeanexp(np.delete(loglik[:, i], np.flatnonzero(order == i)))
            for i in range(20)
        ]
    )
    ((rows, agg, _),) = kde_loglik_chunks(X, pairs, bandwidth=0.5, aggregated=True)
    assert (rows.start, rows.stop) == (0, 20)
    _close(agg.in_loglik, U)
    _close(agg.out_loglik, V)


@pytest.mark.parametrize(
    "make, kwargs",
    [
        (lambda X: _kfold(X, 3), {}),
        (lambda X: _loo(X) + _loo(X), {}),
        (lambda X: _loo(X) + _shuffle(X, 1), {}),
        (lambda X: _loo(X)[:-1], {}),
        (lambda X: _loo(X), {"bandwidth": "scott", "full": True}),
        (lambda X: _loo(X), {"kernel": "tophat", "bandwidth": 2.0}),
    ],
    ids=["kfold", "two-rounds", "direct", "short", "two-bandwidths", "tophat"],
)
def test_aggregated_falls_back_to_per_fit_loglik(make, kwargs):
    X = _blobs(15, 2, 6)
    pairs = make(X)
    kwargs = {"bandwidth": 0.8, **kwargs}
    expected, _ = _refits(
        X, pairs, kwargs["bandwidth"], kwargs.get("kernel", "gaussian")
    )
    parts = list(kde_loglik_chunks(X, pairs, aggregated=True, chunk_size=6, **kwargs))
    got = np.hstack([p for _, p, _ in parts])
    _close(got, expected)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_threads_yield_ordered_identical_chunks(n_jobs):
    X = _blobs(70, 2, 7)
    pairs = _kfold(X, 5) + _loo(X)[:3]
    expected, _ = _refits(X, pairs, 0.5, "gaussian")
    chunks = list(
        kde_loglik_chunks(X, pairs, bandwidth=0.5, chunk_size=6, n_jobs=n_jobs)
    )
    assert [(r.start, r.stop) for r, _, _ in chunks] == [
        (a, min(a + 6, 70)) for a in range(0, 70, 6)
    ]
    _close(np.hstack([p for _, p, _ in chunks]), expected)
    serial = list(kde_loglik_chunks(X, pairs, bandwidth=0.5, chunk_size=6))
    for (_, a, _), (_, b, _) in zip(chunks, serial):
        np.testing.assert_array_equal(a, b)


def test_default_chunk_size_values():
    assert default_chunk_size(1000, 5, blocked=True) == 256
    assert default_chunk_size(100, 5, blocked=True) == 100
    assert default_chunk_size(256, 5, True) == 256
    assert isinstance(default_chunk_size(1000, 5, True), int)
    with config_context(working_memory=1024):
        # 2**20 // 1000 = 1048 rows, capped at n
        assert default_chunk_size(1000, 10) == 1000
        assert default_chunk_size(3000, 10) == 349  # 2**20 // 3000
        assert default_chunk_size(100_000, 10) == 64  # at least 64 rows
        assert default_chunk_size(50, 4000) == 50
        assert default_chunk_size(5000, 20_000) == 64  # width from n_fits
        assert default_chunk_size(20_000, 5000) == 64
        assert isinstance(default_chunk_size(1000, 10), int)
    with config_context(working_memory=64):
        # cap = 64 * 2**20 // (64 * 5000) = 209 < max(64, 209)
        assert default_chunk_size(5000, 10) == 209
        # cap = 64 * 2**20 // (64 * 30000) = 34: working memory beats 64 rows
        assert default_chunk_size(30_000, 10) == 34
    with config_context(working_memory=8):
        assert default_chunk_size(30_000, 10) == 4  # cap 8 * 2**20 // (64 * 30000)
        assert default_chunk_size(300_000, 10) == 1  # cap 0, at least 1
    with config_context(working_memory=1):
        assert default_chunk_size(20_000, 70_000) == 1


def test_default_chunk_of_kde_loglik_chunks():
    X = _blobs(300, 2, 8)
    with config_context(working_memory=1024):
        # KFold at one Gaussian bandwidth: cache-sized column blocks, 256 rows
        sizes = [
            r.stop - r.start
            for r, _, _ in kde_loglik_chunks(X, _kfold(X, 4), bandwidth=0.5)
        ]
        assert sizes == [256, 44]
        sizes = [
            r.stop - r.start
            for r, _, _ in kde_loglik_chunks(
                X, _shuffle(X, 2), bandwidth=0.5, full=True
            )
        ]
        assert sizes == [256, 44]
        # LeaveOneOut needs every kernel value: the working-memory size
        sizes = [
            r.stop - r.start for r, _, _ in kde_loglik_chunks(X, _loo(X), bandwidth=0.5)
        ]
        assert sizes == [300]
        sizes = [
            r.stop - r.start
            for r, _, _ in kde_loglik_chunks(X, _groups(X, 70), bandwidth=0.5)
        ]
        assert sizes == [300]
        sizes = [
            r.stop - r.start
            for r, _, _ in kde_loglik_chunks(
                X, _kfold(X, 4), bandwidth=0.5, kernel="tophat"
            )
        ]
        assert sizes == [300]
    with config_context(working_memory=8):
        # 8 * 2**20 // (64 * 300) = 436 rows, more than n; KFold still 256
        sizes = [
            r.stop - r.start
            for r, _, _ in kde_loglik_chunks(X, _kfold(X, 4), bandwidth=0.5)
        ]
        assert sizes == [256, 44]
    with config_context(working_memory=1):
        # 2**20 // (64 * 300) = 54 rows
        sizes = [
            r.stop - r.start for r, _, _ in kde_loglik_chunks(X, _loo(X), bandwidth=0.5)
        ]
        assert sizes == [54] * 5 + [30]


def test_kde_loglik_docstring_example_and_chunk_invariance():
    X = np.array([[0.0], [1.0], [3.0]])
    pairs = _loo(X)
    loglik, full = kde_loglik(X, pairs, bandwidth=0.5)
    expected, _ = _refits(X, pairs, 0.5, "gaussian")
    assert full is None
    _close(loglik, expected)
    X = _blobs(33, 3, 9)
    pairs = _kfold(X, 3) + _shuffle(X, 2)
    expected, exp_full = _refits(X, pairs, 0.9, "gaussian", True)
    for chunk in (1, 4, 33, 100):
        loglik, full = kde_loglik(
            X, pairs, bandwidth=0.9, full=True, chunk_size=chunk, n_jobs=2
        )
        _close(loglik, expected)
        _close(full, exp_full)


# ---------------------------------------------------------------------------
# survivors of the first run: dtypes, the LeaveOneOut shortcut, y


def test_from_pairs_casts_to_intp_and_checks_sortedness_fully():
    n = 6
    pairs = [
        (np.array([0, 1, 2, 3], np.int32), np.array([4, 5], np.int32)),
        (np.array([0, 2, 1, 3, 4], np.int32), np.array([5], np.int32)),
    ]
    splits = Splits.from_pairs(pairs, n)
    for k in range(2):
        assert splits.train(k).dtype == np.intp
        assert splits.test(k).dtype == np.intp
    # [0, 2, 1, 3, 4] is not sorted (though every entry exceeds the first)
    assert splits.is_complement(0) and not splits.is_complement(1)
    np.testing.assert_array_equal(splits.train(1), [0, 2, 1, 3, 4])


def test_leave_one_out_is_built_without_running_the_splitter(monkeypatch):
    def no_split(self, X, y=None, groups=None):
        raise AssertionError("LeaveOneOut.split must not run")

    monkeypatch.setattr(LeaveOneOut, "split", no_split)
    for n in (2, 5):
        splits = compact_splits(LeaveOneOut(), np.zeros((n, 1)))
        assert len(splits) == n
        np.testing.assert_array_equal(splits.in_mask(), ~np.eye(n, dtype=bool))
    # with split parameters the splitter runs (and here fails)
    with pytest.raises(AssertionError, match="must not run"):
        compact_splits(LeaveOneOut(), np.zeros((4, 1)), groups=np.arange(4))


def test_compact_splits_passes_y_to_the_splitter():
    from sklearn.model_selection import StratifiedKFold

    X = np.zeros((8, 1))
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    splits = compact_splits(StratifiedKFold(2), X, y)
    expected = list(StratifiedKFold(2).split(X, y))
    assert len(splits) == 2
    for k, (train, test) in enumerate(expected):
        np.testing.assert_array_equal(splits.train(k), train)
        np.testing.assert_array_equal(splits.test(k), test)


# ---------------------------------------------------------------------------
# survivors of the first run: underflowing sums and the rows redone


def _outlier_data(n=80, pair=False):
    """Blobs and a far outlier (two far rows with ``pair``): at h = 0.6 the
    outlier's kernel terms with the blobs are exactly 0."""
    X = _blobs(n, 2, seed=11)
    far = [[40.0, 0.0]] + ([[40.3, 0.2]] if pair else [])
    return np.vstack([X, far])


def _brute_h(X, pairs, hs):
    """Gaussian log-likelihoods with a bandwidth per fit (exact distances)."""
    n, d = X.shape
    D = cdist(X, X, "sqeuclidean")
    out = np.empty((len(pairs), n))
    for k, ((train, _), h) in enumerate(zip(pairs, hs)):
        out[k] = (
            logsumexp(-D[:, train] / (2 * h * h), axis=1)
            - math.log(len(train))
            - 0.5 * d * math.log(2 * math.pi * h * h)
        )
    return out


@pytest.fixture
def redone(monkeypatch):
    """Record the query rows that the exact fallback (_slow_sums) recomputes."""
    import sklearn_mem._kde as kde_module

    calls = []
    original = kde_module._slow_sums

    def spy(X, sq_norms, rows, plan, kernel, out):
        calls.extend(np.asarray(rows).tolist())
        return original(X, sq_norms, rows, plan, kernel, out)

    monkeypatch.setattr(kde_module, "_slow_sums", spy)
    return calls


def _error_on_warnings():
    import warnings

    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("error")
    return ctx


@pytest.mark.parametrize(
    "make",
    [
        lambda X: _kfold(X, 4),
        lambda X: _loo(X),
        lambda X: _groups(X, 70),
        lambda X: _groups(X, 70) + _shuffle(X, 2),
        lambda X: _kfold(X, 3) + _loo(X),
    ],
    ids=["kfold", "loo", "groups70", "groups70+shuffle", "kfold+loo"],
)
def test_well_conditioned_rows_are_not_redone(make, redone):
    X = _blobs(81, 2, seed=11)
    pairs = make(X)
    expected, exp_full = _gauss_brute(X, pairs, 0.6, full=True)
    loglik, full = kde_loglik(X, pairs, bandwidth=0.6, full=True, chunk_size=81)
    _close(loglik, expected)
    _close(full, exp_full)
    assert redone == []


@pytest.mark.parametrize(
    "make",
    [
        lambda X: _kfold(X, 4),
        lambda X: _loo(X),
        lambda X: _groups(X, 70),  # the outlier (row 80) shares group 10
        lambda X: _groups(X, 70) + [(np.arange(81), np.array([], dtype=int))],
    ],
    ids=["kfold", "loo", "groups70", "groups70+all"],
)
def test_only_the_underflowing_row_is_redone(make, redone):
    X = _outlier_data()
    pairs = make(X)
    expected, exp_full = _gauss_brute(X, pairs, 0.6, full=True)
    ctx = _error_on_warnings()
    try:
        loglik, full = kde_loglik(X, pairs, bandwidth=0.6, full=True, chunk_size=81)
    finally:
        ctx.__exit__(None, None, None)
    _close(loglik, expected)
    _close(full, exp_full)
    assert redone == [80]


@pytest.mark.parametrize("full", [False, True])
def test_aggregated_redoes_only_the_isolated_row(full, redone):
    X = _outlier_data(40)
    n = len(X)
    pairs = _loo(X)
    loglik, exp_full = _gauss_brute(X, pairs, 0.6, full=True)
    U, V = _aggregated_reference(loglik)
    ctx = _error_on_warnings()
    try:
        chunks = list(
            kde_loglik_chunks(
                X, pairs, bandwidth=0.6, full=full, aggregated=True, chunk_size=30
            )
        )
    finally:
        ctx.__exit__(None, None, None)
    assert [(r.start, r.stop) for r, _, _ in chunks] == [(0, 30), (30, 41)]
    for rows, agg, f in chunks:
        _close(agg.in_loglik, U[rows])
        _close(agg.out_loglik, V[rows])
        m = rows.stop - rows.start
        assert agg.n_in.shape == (m,) and agg.n_out.shape == (m,)
        np.testing.assert_array_equal(agg.n_in, np.full(m, n - 1))
        np.testing.assert_array_equal(agg.n_out, np.ones(m))
        if full:
            _close(f, exp_full[rows])
        else:
            assert f is None
    assert redone == [40]


def test_row_underflowing_in_a_block_but_not_in_leave_one_out():
    # rows 80 and 81 are far from the blobs but close to each other: the fit
    # leaving out both sums to exactly 0 at row 80 (redone), LeaveOneOut not
    X = _outlier_data(pair=True)
    n = len(X)
    # LeaveOneOut first (one round of singletons), then the block round
    pairs = _loo(X) + [(np.arange(80), np.array([80, 81]))]
    expected, exp_full = _gauss_brute(X, pairs, 0.6, full=True)
    ctx = _error_on_warnings()
    try:
        loglik, full = kde_loglik(X, pairs, bandwidth=0.6, full=True)
    finally:
        ctx.__exit__(None, None, None)
    assert np.isfinite(expected).all()
    _close(loglik, expected)
    _close(full, exp_full)
    assert loglik.shape == (n + 1, n)


def test_underflow_at_one_bandwidth_of_several():
    # "scott": LeaveOneOut fits (n - 1 rows) and a weighted fit on 12 rows
    # (row 0 twice, and the outlier) have two bandwidths; only the LeaveOneOut
    # one underflows at the outlier, and its bandwidth is processed first
    X = _outlier_data(40)
    n, d = X.shape
    small = np.r_[0, np.arange(10), 40]
    pairs = _loo(X) + [(small, np.setdiff1d(np.arange(n), small))]
    hs = [len(train) ** (-1 / (d + 4)) for train, _ in pairs]
    expected = _brute_h(X, pairs, hs)
    loglik, _ = kde_loglik(X, pairs, bandwidth="scott", chunk_size=41)
    assert np.isfinite(expected).all()
    _close(loglik, expected)


def test_leave_one_out_without_cancellation():
    # neighbours at exp(-23) of the own term: total - own loses ~6 digits
    X = np.array([[0.0], [6.8], [30.0], [36.5], [60.0], [67.1]])
    pairs = _loo(X)
    expected, _ = _gauss_brute(X, pairs, 1.0)
    loglik, _ = kde_loglik(X, pairs, bandwidth=1.0)
    _close(loglik, expected)
    U, V = _aggregated_reference(expected)
    ((rows, agg, _),) = kde_loglik_chunks(X, pairs, bandwidth=1.0, aggregated=True)
    _close(agg.out_loglik, V)
    _close(agg.in_loglik, U)


def test_data_far_from_the_origin():
    rng = np.random.RandomState(12)
    X = rng.randn(50, 2)
    X[:, 0] += 1e9
    pairs = _kfold(X, 4) + _loo(X)
    expected, exp_full = _gauss_brute(X, pairs, 0.5, full=True)
    loglik, full = kde_loglik(X, pairs, bandwidth=0.5, full=True)
    _close(loglik, expected)
    _close(full, exp_full)


def _far_sorted():
    # 3 clusters of 4 rows at 0, 40, 80, sorted: KFold(3) folds are the clusters
    rng = np.random.RandomState(13)
    return np.vstack([rng.rand(4, 1) * 0.02 + c * 40 for c in range(3)])


def test_blocks_far_below_the_row_maximum_exponential_kernel():
    X = _far_sorted()
    n = len(X)
    h = 0.05
    blocks = [np.arange(0, 4), np.arange(4, 8), np.array([8])]  # remainder 9..11
    pairs = [(np.setdiff1d(np.arange(n), b), b) for b in blocks]
    pairs += list(KFold(3).split(X))
    D = cdist(X, X)
    expected = np.array(
        [
            logsumexp(-D[:, tr] / h, axis=1) - math.log(len(tr)) - math.log(2 * h)
            for tr, _ in pairs
        ]
    )
    ctx = _error_on_warnings()
    try:
        loglik, _ = kde_loglik(X, pairs, bandwidth=h, kernel="exponential")
    finally:
        ctx.__exit__(None, None, None)
    assert np.isfinite(expected).all() and expected.min() < -700
    _close(loglik, expected)


def test_blocks_of_zero_density_raise_no_warning():
    X = _far_sorted()
    pairs = list(KFold(3).split(X))
    h = 1.0
    D = cdist(X, X)
    with np.errstate(divide="ignore"):
        expected = np.array(
            [np.log((D[:, tr] < h).sum(axis=1) / (len(tr) * 2 * h)) for tr, _ in pairs]
        )
    ctx = _error_on_warnings()
    try:
        loglik, _ = kde_loglik(X, pairs, bandwidth=h, kernel="tophat")
    finally:
        ctx.__exit__(None, None, None)
    assert np.isneginf(expected).any()
    np.testing.assert_array_equal(np.isneginf(loglik), np.isneginf(expected))
    fin = np.isfinite(expected)
    _close(loglik[fin], expected[fin])


@pytest.mark.parametrize(
    "make",
    [
        lambda X: _loo(X) + _kfold(X, 4),
        lambda X: _groups(X, 70) + _kfold(X, 4),
        lambda X: _groups(X, 70) + _shuffle(X, 2),
        lambda X: _loo(X) + _groups(X, 70) + _loo(X) + _kfold(X, 3),
    ],
    ids=[
        "loo-then-kfold",
        "groups-then-kfold",
        "groups+direct",
        "loo-groups-loo-kfold",
    ],
)
def test_every_round_is_summed_whatever_comes_before(make):
    X = _blobs(80, 2, seed=14)
    pairs = make(X)
    # a first run at another bandwidth leaves other numbers in freed memory
    kde_loglik(X, pairs, bandwidth=0.3, chunk_size=40)
    expected, _ = _refits(X, pairs, 0.6, "gaussian")
    loglik, _ = kde_loglik(X, pairs, bandwidth=0.6, chunk_size=40)
    _close(loglik, expected)


# ---------------------------------------------------------------------------
# survivors of the first run: defaults, chunk sizes, threads


def test_default_bandwidth_is_one_and_full_is_off():
    X = _blobs(30, 2, seed=15)
    pairs = _kfold(X, 3)
    expected, _ = _refits(X, pairs, 1.0, "gaussian")
    loglik, full = kde_loglik(X, pairs)
    assert full is None
    _close(loglik, expected)
    chunks = list(kde_loglik_chunks(X, pairs))
    assert all(f is None for _, _, f in chunks)
    _close(np.hstack([p for _, p, _ in chunks]), expected)
    # full=False gives no full log-likelihood, even where fits share its bandwidth
    for bandwidth in (0.7, "scott"):
        for kernel in ("gaussian", "tophat"):
            chunks = list(
                kde_loglik_chunks(
                    X,
                    pairs + _loo(X)[:2],
                    bandwidth=bandwidth,
                    kernel=kernel,
                    chunk_size=10,
                )
            )
            assert all(f is None for _, _, f in chunks)


def test_default_chunks_of_mixed_rounds():
    X = _blobs(300, 2, seed=16)
    with config_context(working_memory=1024):
        for pairs, sizes in [
            (_groups(X, 64), [256, 44]),  # 64 blocks: still the one-hot product
            (_groups(X, 70) + _shuffle(X, 2), [300]),
            (_loo(X) + _kfold(X, 3), [300]),
            (_loo(X) + _shuffle(X, 1), [300]),
        ]:
            got = [
                r.stop - r.start
                for r, _, _ in kde_loglik_chunks(X, pairs, bandwidth=0.5)
            ]
            assert got == sizes


class _Pool:
    """ThreadPoolExecutor stand-in that records its size and submissions."""

    log = None

    def __init__(self, max_workers=None):
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers)
        type(self).log.append(("workers", max_workers))

    def submit(self, fn, *args):
        type(self).log.append(("submit",))
        return self._pool.submit(fn, *args)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._pool.shutdown()


@pytest.fixture
def pool_log(monkeypatch):
    import sklearn_mem._kde as kde_module

    log = []
    monkeypatch.setattr(_Pool, "log", log)
    monkeypatch.setattr(kde_module, "ThreadPoolExecutor", _Pool)
    return log


def test_threads_run_at_most_two_chunks_each_ahead(pool_log):
    X = _blobs(60, 2, seed=17)
    pairs = _kfold(X, 3)
    expected, _ = _refits(X, pairs, 0.5, "gaussian")
    received = []
    for k, (_, part, _) in enumerate(
        kde_loglik_chunks(X, pairs, bandwidth=0.5, chunk_size=5, n_jobs=2), 1
    ):
        submitted = sum(1 for e in pool_log if e[0] == "submit")
        assert submitted == min(12, 4 + k)
        received.append(part)
    assert pool_log[0] == ("workers", 2)
    _close(np.hstack(received), expected)
    # one thread, or one chunk: no pool
    pool_log.clear()
    list(kde_loglik_chunks(X, pairs, bandwidth=0.5, chunk_size=5, n_jobs=1))
    list(kde_loglik_chunks(X, pairs, bandwidth=0.5, chunk_size=60, n_jobs=2))
    assert pool_log == []
    # three threads
    list(kde_loglik_chunks(X, pairs, bandwidth=0.5, chunk_size=5, n_jobs=3))
    assert pool_log[0] == ("workers", 3)
    # kde_loglik passes n_jobs on
    pool_log.clear()
    loglik, _ = kde_loglik(X, pairs, bandwidth=0.5, chunk_size=5, n_jobs=2)
    assert pool_log[0] == ("workers", 2)
    _close(loglik, expected)


def test_chunks_run_with_one_blas_thread(monkeypatch):
    import sklearn_mem._kde as kde_module

    limits = []
    original = kde_module.limit_threads

    def spy(n):
        limits.append(n)
        return original(n)

    monkeypatch.setattr(kde_module, "limit_threads", spy)
    X = _blobs(20, 2, seed=18)
    list(kde_loglik_chunks(X, _kfold(X, 3), bandwidth=0.5))
    assert limits == [1]


def test_kde_loglik_passes_the_chunk_size_on(monkeypatch):
    import sklearn_mem._kde as kde_module

    sizes = []
    original = kde_module._KDEPlan.chunk

    def spy(self, rows):
        sizes.append(rows.stop - rows.start)
        return original(self, rows)

    monkeypatch.setattr(kde_module._KDEPlan, "chunk", spy)
    X = _blobs(20, 2, seed=19)
    pairs = _kfold(X, 3)
    expected, _ = _refits(X, pairs, 0.5, "gaussian")
    loglik, _ = kde_loglik(X, pairs, bandwidth=0.5, chunk_size=7)
    assert sizes == [7, 7, 6]
    _close(loglik, expected)


def test_rows_flagged_by_blocks_stay_flagged_after_the_reduced_rounds(redone):
    # the block round leaving out rows 80 and 81 sums to exactly 0 at every
    # blob row (the block) and at rows 80, 81 (the remainder): all are redone,
    # though the 70-group round that follows flags rows 80 and 81 only
    X = _outlier_data(pair=True)
    n = len(X)
    pairs = [(np.arange(80), np.array([80, 81]))] + _groups(X, 70)
    expected, _ = _gauss_brute(X, pairs, 0.6)
    loglik, _ = kde_loglik(X, pairs, bandwidth=0.6, chunk_size=n)
    _close(loglik, expected)
    assert redone == list(range(n))
