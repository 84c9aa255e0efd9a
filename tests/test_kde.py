"""The closed-form KernelDensity path against scikit-learn and brute force."""

import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import logsumexp
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    LeaveOneOut,
    RepeatedKFold,
    ShuffleSplit,
)
from sklearn.neighbors import KernelDensity

from sklearn_mem import MemorizationScorer
from sklearn_mem._kde import KERNELS, kde_loglik, log_kernel, log_kernel_norm

SPLITTERS = [
    LeaveOneOut(),
    KFold(7, shuffle=True, random_state=0),
    RepeatedKFold(n_splits=3, n_repeats=2, random_state=0),
    ShuffleSplit(5, test_size=0.3, train_size=0.5, random_state=0),
]


def _sklearn_cosine_is_right(d):
    # scikit-learn's cosine normalisation is only right for odd d
    return d % 2 == 1


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("d", [1, 2, 3, 5, 8])
def test_kernel_norm_matches_scikit_learn(kernel, d):
    from sklearn.neighbors._kd_tree import kernel_norm

    if kernel == "cosine" and not _sklearn_cosine_is_right(d):
        pytest.skip("scikit-learn's cosine normalisation is wrong for even d")
    expected = kernel_norm(0.7, d, kernel, return_log=True)
    assert log_kernel_norm(0.7, d, kernel) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("d", [1, 2, 3, 4, 10, 64])
def test_kernel_integrates_to_one(kernel, d):
    # radial integral of the normalised kernel over R^d, by quadrature
    h = 0.8
    log_surface = math.log(2) + 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d)
    squared = kernel in ("gaussian", "epanechnikov")
    upper = (d + 60) * h if kernel in ("gaussian", "exponential") else h

    def integrand(r):
        dist = r * r if squared else r
        return math.exp(
            float(log_kernel(np.array(dist), h, kernel))
            + log_kernel_norm(h, d, kernel)
            + log_surface
            + (d - 1) * math.log(r)
        )

    points = [h * (1 - min(1.0, 20 / d))] if d > 20 else None
    total = quad(integrand, 1e-300, upper, limit=400, points=points)[0]
    assert total == pytest.approx(1.0, rel=1e-7)


@pytest.mark.parametrize("cv", SPLITTERS, ids=lambda cv: type(cv).__name__)
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("bandwidth", [1.3, "scott", "silverman"])
def test_closed_form_equals_refits(cv, kernel, bandwidth):
    rng = np.random.RandomState(0)
    X = rng.randn(45, 3)
    splits = list(cv.split(X))
    loglik, full = kde_loglik(
        X, splits, bandwidth=bandwidth, kernel=kernel, full=True, chunk_size=11
    )
    kde = KernelDensity(bandwidth=bandwidth, kernel=kernel)
    expected = np.array([kde.fit(X[tr]).score_samples(X) for tr, _ in splits])
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(np.isfinite(loglik), finite)
    np.testing.assert_array_equal(loglik[~finite], expected[~finite])
    np.testing.assert_allclose(loglik[finite], expected[finite], rtol=0, atol=1e-8)
    np.testing.assert_allclose(full, kde.fit(X).score_samples(X), rtol=0, atol=1e-8)


@pytest.mark.parametrize("cv", [LeaveOneOut(), KFold(10)], ids=["loo", "kfold"])
def test_scorer_exact_equals_refit_on_digits(digits, cv):
    X = digits[:300]
    kde = KernelDensity(bandwidth=0.6)
    exact = MemorizationScorer(kde, cv=cv, method="exact").fit(X)
    refit = MemorizationScorer(kde, cv=cv, method="refit").fit(X)
    assert exact.method_ == "exact" and refit.method_ == "refit"
    np.testing.assert_array_equal(exact.in_mask_, refit.in_mask_)
    np.testing.assert_allclose(exact.loglik_, refit.loglik_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(
        exact.memorization_scores_, refit.memorization_scores_, rtol=0, atol=1e-8
    )
    np.testing.assert_allclose(exact.full_loglik_, refit.full_loglik_, atol=1e-8)


def _brute_force_loglik(X, train, h):
    d = X.shape[1]
    sq = ((X[:, None, :] - X[None, train, :]) ** 2).sum(-1)
    return (
        logsumexp(-0.5 * sq / h**2, axis=1)
        - math.log(len(train))
        - 0.5 * d * math.log(2 * math.pi)
        - d * math.log(h)
    )


def test_small_bandwidth_matches_brute_force(digits):
    # scikit-learn's tree KDE is off by ~100 nats here; the closed form is not
    X = digits
    splits = list(KFold(10, shuffle=True, random_state=0).split(X))
    loglik, _ = kde_loglik(X, splits[:2], bandwidth=0.1)
    for k in range(2):
        expected = _brute_force_loglik(X, splits[k][0], 0.1)
        np.testing.assert_allclose(loglik[k], expected, rtol=1e-12, atol=1e-9)


def test_leave_one_out_formula(blobs):
    # M_i = log((k(0) + S_i) / n) - log(S_i / (n - 1)) with the definition's
    # in-model, and the estimator's own in-side from the n-1 other fits
    X, h = blobs, 0.7
    n, d = X.shape
    mem = MemorizationScorer(KernelDensity(bandwidth=h), cv=LeaveOneOut()).fit(X)
    log_c = -0.5 * d * math.log(2 * math.pi) - d * math.log(h)
    sq = ((X[:, None] - X[None]) ** 2).sum(-1)
    K = np.exp(-0.5 * sq / h**2)
    S = K.sum(1) - 1.0
    definitional = np.log((1.0 + S) / n) - np.log(S / (n - 1))
    np.testing.assert_allclose(mem.full_memorization_scores_, definitional, atol=1e-12)
    np.testing.assert_allclose(mem.out_loglik_, np.log(S / (n - 1)) + log_c, atol=1e-12)
    # "in" fits of x_i: the n-1 fits leaving out some j != i, each on n-1 rows
    in_density = np.array(
        [
            np.mean([(K[i].sum() - K[i, j]) / (n - 1) for j in range(n) if j != i])
            for i in range(n)
        ]
    )
    np.testing.assert_allclose(mem.in_loglik_, np.log(in_density) + log_c, atol=1e-12)


@pytest.mark.parametrize("kernel", ["gaussian", "tophat"])
def test_chunking_and_threads_do_not_change_results(blobs, kernel):
    splits = list(KFold(4).split(blobs))
    base, _ = kde_loglik(blobs, splits, bandwidth=0.5, kernel=kernel)
    for n_jobs in (2, -1):
        same, _ = kde_loglik(blobs, splits, bandwidth=0.5, kernel=kernel, n_jobs=n_jobs)
        np.testing.assert_array_equal(base, same)  # bit for bit
    for chunk in (1, 7, 13):
        other, _ = kde_loglik(
            blobs, splits, bandwidth=0.5, kernel=kernel, chunk_size=chunk
        )
        np.testing.assert_allclose(base, other, rtol=1e-13)


def test_scorer_exact_path_is_bit_identical_across_n_jobs(digits):
    kde = KernelDensity(bandwidth=0.5)
    one = MemorizationScorer(kde, cv=10, random_state=0, n_jobs=1).fit(digits)
    two = MemorizationScorer(kde, cv=10, random_state=0, n_jobs=2).fit(digits)
    np.testing.assert_array_equal(one.loglik_, two.loglik_)
    np.testing.assert_array_equal(one.memorization_scores_, two.memorization_scores_)


@pytest.mark.filterwarnings("ignore::sklearn_mem.MemorizationWarning")
def test_group_kfold_closed_form(blobs):
    groups = np.arange(len(blobs)) // 4
    kde = KernelDensity(bandwidth=0.9, kernel="epanechnikov")
    exact = MemorizationScorer(kde, cv=GroupKFold(5)).fit(blobs, groups=groups)
    refit = MemorizationScorer(kde, cv=GroupKFold(5), method="refit").fit(
        blobs, groups=groups
    )
    np.testing.assert_allclose(exact.loglik_, refit.loglik_, atol=1e-8)


def test_repeated_training_indices_are_weighted(blobs):
    # a bootstrap-like split (repeated indices) counts each repeat
    train = np.array([0, 0, 1, 2, 3, 3, 3])
    splits = [(train, np.arange(4, len(blobs)))]
    loglik, _ = kde_loglik(blobs, splits, bandwidth=0.8)
    expected = KernelDensity(bandwidth=0.8).fit(blobs[train]).score_samples(blobs)
    np.testing.assert_allclose(loglik[0], expected, atol=1e-10)


# ----------------------------------------------------------------------
# far-apart terms: sums that must not underflow
# ----------------------------------------------------------------------
def _brute_force_kde(X, train, h, kernel="gaussian"):
    """log p_train(x) for every row of X, from exact pairwise distances."""
    d = X.shape[1]
    dist = np.sqrt(((X[:, None, :] - X[None, train, :]) ** 2).sum(-1))
    if kernel in ("gaussian", "epanechnikov"):
        dist = dist**2
    return (
        logsumexp(log_kernel(dist, h, kernel), axis=1)
        - math.log(len(train))
        + log_kernel_norm(h, d, kernel)
    )


def test_leave_one_out_without_the_dominant_self_term():
    # at h = 0.02 a point's own kernel (log 1) dwarfs its neighbour's
    # (log k = -1250): the fit that leaves the point out must still see the
    # neighbour, about -1248 nats, not zero density
    X = np.array([[0.0], [1.0], [2.5], [4.0]])
    splits = list(LeaveOneOut().split(X))
    loglik, _ = kde_loglik(X, splits, bandwidth=0.02)
    expected = np.array([_brute_force_kde(X, tr, 0.02) for tr, _ in splits])
    assert np.isfinite(loglik).all()
    assert loglik[0, 0] == pytest.approx(-1248.1, abs=0.1)
    np.testing.assert_allclose(loglik, expected, rtol=1e-12)


@pytest.mark.parametrize("cv", [KFold(3), KFold(2)], ids=["kfold3", "kfold2"])
def test_blocks_far_below_the_row_maximum_keep_their_own_shift(cv):
    # pairs of close points, the pairs 1 apart: at h = 0.02 a query's own
    # block sums to about 1 while the other blocks are about exp(-1250) and
    # exp(-5000), far below what one shared shift keeps as a normal float
    X = np.array([[0.0], [0.01], [1.0], [1.01], [2.0], [2.01]])
    splits = list(cv.split(X))
    for kernel in ("gaussian", "exponential"):
        h = 0.02 if kernel == "gaussian" else 0.0004
        loglik, full = kde_loglik(X, splits, bandwidth=h, kernel=kernel, full=True)
        expected = np.array([_brute_force_kde(X, tr, h, kernel) for tr, _ in splits])
        assert np.isfinite(loglik).all() and (loglik < -1000).any()
        np.testing.assert_allclose(loglik, expected, rtol=1e-12)
        np.testing.assert_allclose(
            full, _brute_force_kde(X, np.arange(len(X)), h, kernel), rtol=1e-12
        )


# ----------------------------------------------------------------------
# memory: chunks of query rows, never an n x n matrix
# ----------------------------------------------------------------------
def _peak_bytes(func):
    import tracemalloc

    tracemalloc.start()
    try:
        func()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kernel", ["gaussian", "tophat"])
def test_memory_grows_with_the_chunk_not_n_squared(kernel):
    n = 4000
    X = np.random.RandomState(0).randn(n, 3)
    splits = list(KFold(5).split(X))
    output = 2 * len(splits) * n * 8  # loglik and its per-chunk pieces
    peaks = {}
    for chunk in (32, 128):
        peaks[chunk] = _peak_bytes(
            lambda chunk=chunk: kde_loglik(
                X, splits, bandwidth=0.5, kernel=kernel, chunk_size=chunk
            )
        )
        # a few (chunk, n) float64 work arrays, nothing of size n x n
        assert peaks[chunk] < 5 * chunk * n * 8 + output + 2**20
        assert peaks[chunk] < n * n * 8 / 10
    if kernel == "gaussian":
        # summed in (chunk, 1024) column blocks: the chunk adds a few blocks,
        # not (chunk, n) arrays
        assert peaks[128] - peaks[32] < 3 * (128 - 32) * 1024 * 8
    else:
        assert peaks[128] > 2 * peaks[32]  # it is the chunk that costs memory


def test_default_chunk_follows_working_memory():
    import sklearn

    n = 4000
    X = np.random.RandomState(0).randn(n, 3)
    splits = list(KFold(5).split(X))
    with sklearn.config_context(working_memory=4):  # MiB
        peak = _peak_bytes(lambda: kde_loglik(X, splits, bandwidth=0.5))
    assert peak < 4 * 2**20 + 2 * len(splits) * n * 8 + 2**20


# ----------------------------------------------------------------------
# the cosine kernel in even dimensions
# ----------------------------------------------------------------------
@pytest.mark.parametrize("d", [2, 4, 6, 8])
def test_cosine_in_even_dimensions(d):
    from sklearn.neighbors._kd_tree import kernel_norm

    # scikit-learn's constant: wrong (d = 2, 6) or NaN (d = 4, 8) ...
    theirs = kernel_norm(1.0, d, "cosine", return_log=True)
    ours = log_kernel_norm(1.0, d, "cosine")  # both: h-dependence is -d log h
    assert np.isnan(theirs) if d % 4 == 0 else abs(theirs - ours) > 1.0
    # ... ours integrates to one (test_kernel_integrates_to_one) and the
    # closed form matches a brute-force sum with it
    X = np.random.RandomState(0).randn(30, d)
    cv, h = KFold(3), 2.0 * math.sqrt(d)  # support wide enough for every pair
    kde = KernelDensity(kernel="cosine", bandwidth=h)
    exact = MemorizationScorer(kde, cv=cv).fit(X)
    assert exact.method_ == "exact" and np.isfinite(exact.loglik_).all()
    expected = [_brute_force_kde(X, tr, h, "cosine") for tr, _ in cv.split(X)]
    np.testing.assert_allclose(exact.loglik_, expected, rtol=1e-12)
    if d % 4 == 0:
        # the refit path reports scikit-learn's NaN as an error
        with pytest.raises(ValueError, match="returned NaN for 30 of 30"):
            MemorizationScorer(kde, cv=cv, method="refit").fit(X)
        return
    # a refit differs by scikit-learn's constant error alone: the
    # memorization scores, differences of log-likelihoods, are the same
    refit = MemorizationScorer(kde, cv=cv, method="refit").fit(X)
    np.testing.assert_allclose(exact.loglik_ - refit.loglik_, ours - theirs, atol=1e-9)
    np.testing.assert_allclose(
        exact.memorization_scores_, refit.memorization_scores_, atol=1e-9
    )
    if d == 2:
        assert ours - theirs == pytest.approx(1.0123, abs=1e-4)  # as documented


# A split whose training part is every row and whose held-out part is empty
# is a plain fit on all rows (once taken for a complement fit of an empty block).
@pytest.mark.parametrize(
    "splits",
    [
        [(np.array([2, 0, 1, 3]), np.array([], dtype=int))],
        [
            (np.array([1, 2, 3]), np.array([0])),
            (np.array([0, 1, 2, 3]), np.array([], dtype=int)),
            (np.array([0, 1, 2]), np.array([3])),
        ],
    ],
    ids=["alone", "among-blocks"],
)
def test_split_without_held_out_rows_trains_on_all_rows(splits):
    X = np.array([[0.0], [0.5], [1.5], [3.0]])
    loglik, _ = kde_loglik(X, splits, bandwidth=1.0)
    expected = [
        KernelDensity(bandwidth=1.0).fit(X[train]).score_samples(X)
        for train, _ in splits
    ]
    np.testing.assert_allclose(loglik, expected, atol=1e-10)


def test_blocks_of_unequal_sizes_including_single_rows():
    # one round of "all rows but one block" fits whose blocks have 1, 3, 2 and
    # 1 rows (plus a remainder every fit trains on): the sums per block must
    # follow the block boundaries
    X = np.random.RandomState(0).randn(9, 2)
    blocks = [[4], [0, 7, 2], [5, 1], [8]]  # rows 3 and 6: the remainder
    splits = [(np.setdiff1d(np.arange(9), b), np.array(b)) for b in blocks]
    for h in (0.05, 0.7):
        loglik, full = kde_loglik(X, splits, bandwidth=h, full=True)
        expected = [_brute_force_kde(X, train, h) for train, _ in splits]
        np.testing.assert_allclose(loglik, expected, rtol=1e-12)
        np.testing.assert_allclose(full, _brute_force_kde(X, np.arange(9), h))


def test_zero_densities_raise_no_floating_point_warnings():
    # compact kernels: empty kernel sums are log(0) = -inf, silently
    import warnings

    X = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [10.0]])
    for cv in (LeaveOneOut(), KFold(3), ShuffleSplit(3, random_state=0)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loglik, full = kde_loglik(
                X, list(cv.split(X)), bandwidth=0.5, kernel="tophat", full=True
            )
        assert np.isneginf(loglik).any() and np.isfinite(full).all()
