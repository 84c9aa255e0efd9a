"""Tests that pin what the mutation run of the streaming aggregation left open.

``_set_scores`` aggregates ``(rows, loglik, full_loglik)`` chunks: the refit
path cuts its matrix into ``working_memory``-sized column blocks
(``_column_chunks``), and consecutive chunks are joined until they hold
``_GROUP_BYTES`` of log-likelihoods (8 bytes per fit and row) before they are
aggregated (``_grouped_chunks``, ``_join_chunks``). Every score depends on its
own column only, so the streamed scores must equal, bit for bit, the
aggregation of the whole matrix at once (``aggregate_loglik`` and
``repeat_standard_error``). numpy sums a one-column block pairwise but the
columns of a wider block one fit after the other, so a group of one column
shows in the last bits: the sizes below put a group boundary where a wrong
width or threshold leaves the last column alone, and the last column is made
so that its two sums differ. A whole-matrix group shows in the memory peak.
docs/contributing.rst ("Mutation score") lists the runs and the mutants found
equivalent.
"""

import tracemalloc
import warnings

import numpy as np
import pytest
from sklearn import config_context
from sklearn.base import BaseEstimator
from sklearn.model_selection import KFold, RepeatedKFold
from sklearn.neighbors import KernelDensity
from sklearn.utils import Bunch

from sklearn_mem import MemorizationScorer
from sklearn_mem._aggregate import (
    aggregate_loglik,
    repeat_interval,
    repeat_standard_error,
    split_rounds,
)
from sklearn_mem._scorer import _GROUP_BYTES, _column_chunks, _rounds_partition
from sklearn_mem._splits import Splits

pytestmark = pytest.mark.filterwarnings("ignore::sklearn_mem.MemorizationWarning")

SCORES = (
    "in_loglik_",
    "out_loglik_",
    "memorization_scores_",
    "n_in_",
    "n_out_",
    "memorization_stderr_",
    "memorization_interval_",
)


def _complement_splits(n, n_fits):
    """``n_fits`` complement splits: two rounds of KFold, or one when odd."""
    X = np.empty((n, 1))
    if n_fits % 2:
        cv = KFold(n_fits)
    else:
        cv = RepeatedKFold(n_splits=n_fits // 2, n_repeats=2, random_state=0)
    return Splits.from_pairs(cv.split(X), n)


def _loglik(splits, seed=0):
    """Log-likelihoods whose last column sums differently alone and in a block.

    The last sample's "in" side: one fit at log-density 0, the others at
    log(1.1e-16). Added one at a time to 1, each 1.1e-16 rounds away; summed
    pairwise they first add up among themselves and then move the total. Its
    "out" side is -2, so that M is small and keeps the difference.
    """
    n_fits, n = len(splits), splits.n_samples
    loglik = np.random.RandomState(seed).standard_normal((n_fits, n)) - 3.0
    inside = splits.in_mask(n - 1, n)[:, 0]
    loglik[:, -1] = np.where(inside, np.log(1.1e-16), -2.0)
    loglik[np.flatnonzero(inside)[0], -1] = 0.0
    return loglik


def _reference(loglik, splits):
    """The scores of the whole matrix, aggregated at once."""
    in_mask = splits.in_mask()
    rounds = split_rounds(in_mask)
    ref = aggregate_loglik(loglik, in_mask, warn=False)
    stderr, per_repeat = repeat_standard_error(loglik, in_mask, rounds)
    # the premise: the last column aggregated alone differs in its last bits
    alone = aggregate_loglik(loglik[:, -1:], in_mask[:, -1:], warn=False)
    assert alone.memorization[0] != ref.memorization[-1]
    return {
        "in_loglik_": ref.in_loglik,
        "out_loglik_": ref.out_loglik,
        "memorization_scores_": ref.memorization,
        "n_in_": ref.n_in,
        "n_out_": ref.n_out,
        "memorization_stderr_": stderr,
        "memorization_interval_": repeat_interval(ref.memorization, stderr, per_repeat),
    }


def _streamed(chunks, splits, aggregate="logmeanexp"):
    mem = MemorizationScorer(KernelDensity(), aggregate=aggregate)
    mem._set_scores(chunks, splits, store=False)
    return mem


def _assert_scores(mem, expected):
    for name, value in expected.items():
        got = getattr(mem, name)
        assert got.shape == value.shape, name
        np.testing.assert_array_equal(got, value, err_msg=name)


def _chunks(loglik, widths, full=None):
    """Fresh ``(rows, loglik, full_loglik)`` chunks of the given widths."""
    start = 0
    for width in widths:
        rows = slice(start, start + width)
        yield rows, loglik[:, rows].copy(), None if full is None else full[rows].copy()
        start += width


# ---------------------------------------------------------------------------
# _grouped_chunks / _join_chunks: where a group closes, what a join keeps
# ---------------------------------------------------------------------------


def test_a_group_closes_when_it_reaches_the_group_bytes_exactly():
    n_fits = 16
    half = _GROUP_BYTES // (2 * 8 * n_fits)  # two such chunks: _GROUP_BYTES
    widths = [half, half, 1, 1]  # groups: [half, half] (joined), [1, 1] (joined)
    splits = _complement_splits(sum(widths), n_fits)
    loglik = _loglik(splits)
    full = np.random.RandomState(1).standard_normal(splits.n_samples) - 2.0
    mem = _streamed(_chunks(loglik, widths, full), splits)
    expected = _reference(loglik, splits)
    _assert_scores(mem, expected)
    assert mem.n_splits_ == n_fits and mem.n_repeats_ == 2
    assert mem.store_loglik_ is False and "loglik_" not in vars(mem)
    # the refit's column is joined and stored as given, and M_full = full - V
    np.testing.assert_array_equal(mem.full_loglik_, full)
    np.testing.assert_array_equal(
        mem.full_memorization_scores_, full - expected["out_loglik_"]
    )


def test_chunks_below_the_group_bytes_are_joined_into_one_group():
    n_fits = 16
    # 8 bytes a value: 30,000 rows stay below _GROUP_BYTES (9 bytes would not)
    wide = 30000
    assert 8 * n_fits * wide < _GROUP_BYTES <= 9 * n_fits * wide
    widths = [wide, 1]
    splits = _complement_splits(sum(widths), n_fits)
    loglik = _loglik(splits)
    mem = _streamed(_chunks(loglik, widths), splits)
    _assert_scores(mem, _reference(loglik, splits))
    assert not hasattr(mem, "full_loglik_")
    assert not hasattr(mem, "full_memorization_scores_")


def test_joined_aggregates_of_leave_one_out_and_both_sides_at_zero_density():
    # the closed-form LeaveOneOut yields per-row aggregates (a Bunch) in place
    # of the log-likelihoods; joined, M = U - V row by row, NaN (without a
    # RuntimeWarning) where both sides have zero density
    n = 40
    splits = Splits.leave_one_out(n)
    rng = np.random.RandomState(0)
    U = rng.standard_normal(n) - 1.0
    V = rng.standard_normal(n) - 2.0
    U[13] = V[13] = -np.inf
    V[20] = -np.inf
    full = rng.standard_normal(n)

    def chunks():
        for start in range(0, n, 8):
            rows = slice(start, start + 8)
            part = Bunch(
                in_loglik=U[rows].copy(),
                out_loglik=V[rows].copy(),
                n_in=np.full(8, n - 1),
                n_out=np.ones(8, dtype=int),
            )
            yield rows, part, full[rows].copy()

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        mem = _streamed(chunks(), splits)
    np.testing.assert_array_equal(mem.in_loglik_, U)
    np.testing.assert_array_equal(mem.out_loglik_, V)
    expected = np.array(
        [u - v if not (u == v == -np.inf) else np.nan for u, v in zip(U, V)]
    )
    np.testing.assert_array_equal(mem.memorization_scores_, expected)
    assert np.isnan(mem.memorization_scores_[13])
    assert mem.memorization_scores_[20] == np.inf
    np.testing.assert_array_equal(mem.n_in_, np.full(n, n - 1))
    np.testing.assert_array_equal(mem.n_out_, np.ones(n))
    # one round: no spread, no interval
    assert np.isnan(mem.memorization_stderr_).all()
    assert mem.memorization_interval_.shape == (n, 2)
    assert np.isnan(mem.memorization_interval_).all()
    assert mem.n_repeats_ == 1 and mem.n_splits_ == n
    np.testing.assert_array_equal(mem.full_loglik_, full)
    np.testing.assert_array_equal(mem.full_memorization_scores_, full - V)


def test_streaming_memory_stays_at_the_group_size_not_the_matrix():
    # 128 fits x 32,768 rows = 32 MiB, streamed as 512 fresh 64-row chunks
    # (as the closed form yields them): groups of 4 MiB are aggregated and
    # dropped, so the whole matrix is never held, let alone joined
    n_fits, n, width = 128, 32768, 64
    splits = Splits.from_pairs(KFold(n_fits).split(np.empty((n, 1))), n)
    splits.in_mask(0, 1)  # its index, built once, is not the aggregation's

    def chunks():
        rng = np.random.RandomState(0)
        for start in range(0, n, width):
            yield (
                slice(start, start + width),
                rng.standard_normal((n_fits, width)),
                None,
            )

    tracemalloc.start()
    try:
        mem = _streamed(chunks(), splits, aggregate="mean")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * n_fits * n, peak
    # the same scores as the matrix aggregated at once
    rng = np.random.RandomState(0)
    loglik = np.hstack(
        [rng.standard_normal((n_fits, width)) for _ in range(n // width)]
    )
    ref = aggregate_loglik(loglik, splits.in_mask(), aggregate="mean", warn=False)
    np.testing.assert_array_equal(mem.memorization_scores_, ref.memorization)
    np.testing.assert_array_equal(mem.n_in_, np.full(n, n_fits - 1))


# ---------------------------------------------------------------------------
# _column_chunks: blocks of working_memory / (8 temporaries x 8 bytes x n_fits)
# ---------------------------------------------------------------------------

# (n_fits, rows per block, n_samples): the groups of blocks of exactly this
# width leave at least two columns in the last group, while blocks of another
# width (one row, two rows, 8/9 of it, 3.3 times it, n_fits or 64 times it,
# n_fits squared times it) close a group one column before the end
COLUMN_CASES = [
    (192, 1000, 2732),
    (240, 500, 2221),
    (240, 1, 2187),
    (25, 333, 21313),
    (8, 1044, 66817),
    (158, 1, 3326),
]


@pytest.mark.parametrize("n_fits, width, n", COLUMN_CASES)
def test_column_blocks_of_working_memory_are_bit_identical_to_the_matrix(
    n_fits, width, n
):
    splits = _complement_splits(n, n_fits)
    loglik = _loglik(splits)
    expected = _reference(loglik, splits)
    working_memory = width * 8 * 8 * n_fits / 2**20  # in MiB, exact
    with config_context(working_memory=working_memory):
        blocks = list(_column_chunks(loglik, None))
        mem = _streamed(_column_chunks(loglik, None), splits)
    # the blocks: this width, the last one shorter, no refit column
    starts = [rows.start for rows, _, _ in blocks]
    assert starts == list(range(0, n, width))
    assert blocks[-1][0].stop == n
    for rows, part, full in blocks:
        assert full is None
        assert part.shape == (n_fits, rows.stop - rows.start)
    np.testing.assert_array_equal(np.hstack([b[1] for b in blocks]), loglik)
    _assert_scores(mem, expected)
    assert not hasattr(mem, "full_loglik_")


# ---------------------------------------------------------------------------
# _rounds_partition and the choice of standard error
# ---------------------------------------------------------------------------


def _folds(n, k):
    everything = np.arange(n)
    return [(np.setdiff1d(everything, t), t) for t in np.array_split(everything, k)]


def test_rounds_partition_counts_how_often_each_round_holds_a_sample_out():
    n = 12
    folds = _folds(n, 3)
    unsorted = [(train[::-1], test) for train, test in folds]
    # complement splits (held-out blocks), explicit ones, and both mixed
    for pairs, complement in [
        (folds, [True] * 3),
        (unsorted, [False] * 3),
        ([folds[0], unsorted[1], unsorted[2]], [True, False, False]),
        ([unsorted[0], folds[1], unsorted[2]], [False, True, False]),
    ]:
        splits = Splits.from_pairs(pairs, n)
        assert [splits.is_complement(k) for k in range(3)] == complement
        assert _rounds_partition(splits, splits.rounds()) is True
    # two rounds, each a partition
    twice = Splits.from_pairs(folds + unsorted[::-1], n)
    np.testing.assert_array_equal(twice.rounds(), [0, 0, 0, 1, 1, 1])
    assert _rounds_partition(twice, twice.rounds()) is True
    # read as one round, every sample is held out twice
    assert _rounds_partition(twice, np.zeros(6, dtype=np.intp)) is False
    assert _rounds_partition(Splits.from_pairs(folds * 2, n), np.zeros(6)) is False
    # a round that never holds out the last fold's samples
    for pairs in (folds[:2], unsorted[:2]):
        splits = Splits.from_pairs(pairs, n)
        assert _rounds_partition(splits, splits.rounds()) is False
    # explicit training parts held out twice in one round
    assert _rounds_partition(Splits.from_pairs(unsorted * 2, n), np.zeros(6)) is False


class _ShiftedGaussian(BaseEstimator):
    """A unit Gaussian at the training mean; zero density beyond ``cut``."""

    def __init__(self, cut=5.0):
        self.cut = cut

    def fit(self, X, y=None):
        self.mean_ = np.asarray(X).mean(axis=0)
        return self

    def score_samples(self, X):
        X = np.asarray(X)
        d = X.shape[1]
        out = -0.5 * ((X - self.mean_) ** 2).sum(axis=1) - 0.5 * d * np.log(2 * np.pi)
        out[X[:, 0] > self.cut] = -np.inf
        return out


def _data(n=60, d=2, seed=0):
    X = np.random.RandomState(seed).standard_normal((n, d))
    X[-1] = 8.0  # beyond the cut: zero density in every fit
    return X


def test_full_memorization_is_nan_without_warning_where_both_densities_are_zero():
    X = _data()
    est = _ShiftedGaussian()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        mem = MemorizationScorer(
            est, cv=KFold(5), store_loglik=True, random_state=0
        ).fit(X)
    full = est.fit(X).score_samples(X)
    np.testing.assert_array_equal(mem.full_loglik_, full)
    ref = aggregate_loglik(mem.loglik_, mem.in_mask_, warn=False)
    np.testing.assert_array_equal(mem.memorization_scores_, ref.memorization)
    expected = full[:-1] - ref.out_loglik[:-1]
    expected = np.append(expected, np.nan)  # -inf - -inf
    np.testing.assert_array_equal(mem.full_memorization_scores_, expected)
    assert np.isfinite(mem.full_memorization_scores_[:-1]).all()
    assert mem.n_repeats_ == 1


def test_refit_path_without_the_full_fit_streams_blocks_without_its_column():
    X = _data(70)[:-1]
    common = dict(cv=RepeatedKFold(n_splits=3, n_repeats=3, random_state=0))
    stored = MemorizationScorer(
        _ShiftedGaussian(), refit=False, store_loglik=True, **common
    ).fit(X)
    # 9 fits: 3 columns a block
    with config_context(working_memory=3 * 8 * 8 * 9 / 2**20):
        streamed = MemorizationScorer(
            _ShiftedGaussian(), refit=False, store_loglik=False, **common
        ).fit(X)
    rounds = split_rounds(stored.in_mask_)
    ref = aggregate_loglik(stored.loglik_, stored.in_mask_, warn=False)
    stderr, per_repeat = repeat_standard_error(stored.loglik_, stored.in_mask_, rounds)
    for mem in (stored, streamed):
        assert not hasattr(mem, "full_loglik_") and not hasattr(mem, "estimator_")
        np.testing.assert_array_equal(mem.memorization_scores_, ref.memorization)
        np.testing.assert_array_equal(mem.memorization_stderr_, stderr)
        np.testing.assert_array_equal(
            mem.memorization_interval_,
            repeat_interval(ref.memorization, stderr, per_repeat),
        )
        assert mem.n_repeats_ == 3 and mem.n_splits_ == 9
    assert np.isfinite(stderr).all()


def test_unsupervised_rounds_that_are_no_partition_keep_the_repeat_spread():
    # three rounds of two disjoint held-out parts that leave ten rows out of
    # each round: not a partition, yet a density's standard error is the
    # spread of the per-round scores (the subsampling one is for responses)
    n = 60
    X = np.random.RandomState(1).standard_normal((n, 2))
    rng = np.random.RandomState(0)
    pairs = []
    for _ in range(3):
        p = rng.permutation(n)
        for out in (np.sort(p[:25]), np.sort(p[25:50])):
            pairs.append((np.setdiff1d(np.arange(n), out), out))
    kde = KernelDensity(bandwidth=0.7)
    for store in (True, False):
        mem = MemorizationScorer(
            kde, cv=pairs, method="exact", store_loglik=store, random_state=0
        ).fit(X)
        if store:
            loglik, in_mask = mem.loglik_, mem.in_mask_
        rounds = split_rounds(in_mask)
        np.testing.assert_array_equal(rounds, [0, 0, 1, 1, 2, 2])
        assert mem.n_repeats_ == 3
        ref = aggregate_loglik(loglik, in_mask, warn=False)
        stderr, per_repeat = repeat_standard_error(loglik, in_mask, rounds)
        assert 0 < np.isfinite(stderr).sum() < n
        np.testing.assert_array_equal(mem.memorization_scores_, ref.memorization)
        np.testing.assert_array_equal(mem.memorization_stderr_, stderr)
        np.testing.assert_array_equal(
            mem.memorization_interval_,
            repeat_interval(ref.memorization, stderr, per_repeat),
        )
