"""Tests for sklearn_mem.neighbors: every function against a direct computation."""

import re

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KernelDensity
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from sklearn_mem.neighbors import (
    data_copying_test,
    distance_to_closest_record,
    loglik_gap,
    nearest_neighbor_ratio,
)


def _brute_min_dist(A, B, metric="euclidean"):
    """For each row of A, the distance to its nearest row of B (double loop)."""
    out = np.empty(len(A))
    for i, a in enumerate(A):
        best = np.inf
        for b in B:
            if metric == "euclidean":
                d = np.sqrt(np.sum((a - b) ** 2))
            else:  # manhattan
                d = np.sum(np.abs(a - b))
            best = min(best, d)
        out[i] = best
    return out


@pytest.fixture
def three_sets():
    rng = np.random.RandomState(0)
    return (
        rng.normal(size=(23, 4)),
        rng.normal(size=(17, 4)),
        rng.normal(size=(19, 4)),
    )


# ---------------------------------------------------------------------------
# nearest_neighbor_ratio
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [None, 1, 5, 100])
@pytest.mark.parametrize("metric", ["euclidean", "manhattan"])
def test_nearest_neighbor_ratio_matches_brute_force(three_sets, chunk_size, metric):
    X_train, X_heldout, X_generated = three_sets
    rho = nearest_neighbor_ratio(
        X_train, X_heldout, X_generated, metric=metric, chunk_size=chunk_size
    )
    expected = _brute_min_dist(X_train, X_heldout, metric) / _brute_min_dist(
        X_train, X_generated, metric
    )
    assert rho.shape == (X_train.shape[0],)
    np.testing.assert_allclose(rho, expected, rtol=1e-12)


def test_nearest_neighbor_ratio_uses_each_rows_own_minimum():
    # The nearest generated sample differs per training row; a row-0-of-batch
    # shortcut would give every row the same denominator.
    X_train = np.array([[0.0], [10.0], [20.0]])
    X_heldout = np.array([[3.0], [14.0], [25.0]])
    X_generated = np.array([[1.0], [12.0], [24.0]])
    rho = nearest_neighbor_ratio(X_train, X_heldout, X_generated, chunk_size=2)
    np.testing.assert_allclose(rho, [3 / 1, 4 / 2, 5 / 4])


def test_nearest_neighbor_ratio_return_distances(three_sets):
    X_train, X_heldout, X_generated = three_sets
    res = nearest_neighbor_ratio(X_train, X_heldout, X_generated, return_distances=True)
    np.testing.assert_allclose(
        res.heldout_distance, _brute_min_dist(X_train, X_heldout)
    )
    np.testing.assert_allclose(
        res.generated_distance, _brute_min_dist(X_train, X_generated)
    )
    np.testing.assert_allclose(res.ratio, res.heldout_distance / res.generated_distance)


def test_nearest_neighbor_ratio_unfitted_feature_map_is_fitted_on_train(three_sets):
    X_train, X_heldout, X_generated = three_sets
    pca = PCA(n_components=2)
    rho = nearest_neighbor_ratio(X_train, X_heldout, X_generated, feature_map=pca)
    assert not hasattr(pca, "components_")  # the user's object is not touched
    fitted = PCA(n_components=2).fit(X_train)
    Z = [fitted.transform(X) for X in three_sets]
    expected = _brute_min_dist(Z[0], Z[1]) / _brute_min_dist(Z[0], Z[2])
    np.testing.assert_allclose(rho, expected, rtol=1e-10)


def test_nearest_neighbor_ratio_fitted_feature_map_is_used_as_is(three_sets):
    X_train, X_heldout, X_generated = three_sets
    other = np.random.RandomState(1).normal(size=(50, 4)) * [1, 5, 1, 3]
    pca = PCA(n_components=2).fit(other)
    components = pca.components_.copy()
    rho = nearest_neighbor_ratio(X_train, X_heldout, X_generated, feature_map=pca)
    np.testing.assert_array_equal(pca.components_, components)
    Z = [pca.transform(X) for X in three_sets]
    expected = _brute_min_dist(Z[0], Z[1]) / _brute_min_dist(Z[0], Z[2])
    np.testing.assert_allclose(rho, expected, rtol=1e-10)


@pytest.mark.parametrize(
    "feature_map",
    [lambda X: X[:, ::2], FunctionTransformer(lambda X: X[:, ::2])],
    ids=["callable", "FunctionTransformer"],
)
def test_nearest_neighbor_ratio_downsampling_feature_map(three_sets, feature_map):
    X_train, X_heldout, X_generated = three_sets
    rho = nearest_neighbor_ratio(
        X_train, X_heldout, X_generated, feature_map=feature_map
    )
    Z = [X[:, ::2] for X in three_sets]
    expected = _brute_min_dist(Z[0], Z[1]) / _brute_min_dist(Z[0], Z[2])
    np.testing.assert_allclose(rho, expected, rtol=1e-12)


def test_nearest_neighbor_ratio_copies_give_inf_and_nan():
    X_train = np.array([[0.0], [10.0], [20.0]])
    X_heldout = np.array([[1.0], [20.0]])  # row 2 duplicated in held-out
    X_generated = np.array([[0.0], [20.0], [13.0]])  # copies of rows 0 and 2
    with pytest.warns(UserWarning, match="1 of 3 training samples coincide"):
        rho = nearest_neighbor_ratio(X_train, X_heldout, X_generated)
    assert rho[0] == np.inf
    np.testing.assert_allclose(rho[1], 9.0 / 3.0)
    assert np.isnan(rho[2])


def test_nearest_neighbor_ratio_bad_input(three_sets):
    X_train, X_heldout, X_generated = three_sets
    with pytest.raises(
        ValueError, match="X_generated has 3 features but X_train has 4"
    ):
        nearest_neighbor_ratio(X_train, X_heldout, X_generated[:, :3])
    with pytest.raises(ValueError, match="X_generated is empty.*Draw samples"):
        nearest_neighbor_ratio(X_train, X_heldout, np.empty((0, 4)))
    with pytest.raises(ValueError, match="NaN"):
        nearest_neighbor_ratio(X_train, X_heldout, np.full((2, 4), np.nan))
    with pytest.raises(ValueError, match="chunk_size"):
        nearest_neighbor_ratio(X_train, X_heldout, X_generated, chunk_size=0)


# ---------------------------------------------------------------------------
# distance_to_closest_record
# ---------------------------------------------------------------------------


def test_distance_to_closest_record_matches_brute_force(three_sets):
    X_train, X_heldout, X_generated = three_sets
    X_generated = X_generated.copy()
    X_generated[:3] = X_train[[4, 5, 6]]  # three exact copies
    res = distance_to_closest_record(X_train, X_generated, X_heldout, chunk_size=4)
    gen = _brute_min_dist(X_generated, X_train)
    held = _brute_min_dist(X_heldout, X_train)
    np.testing.assert_allclose(res.generated_dcr, gen, atol=1e-12)
    np.testing.assert_allclose(res.heldout_dcr, held, atol=1e-12)
    assert res.generated_median == pytest.approx(np.median(gen))
    assert res.heldout_median == pytest.approx(np.median(held))
    assert res.n_exact_copies == 3
    # brute-force pair count: generated closer than held-out, ties count 1/2
    closer = sum((g < h) + 0.5 * (g == h) for g in gen for h in held)
    assert res.prob_generated_closer == pytest.approx(closer / (gen.size * held.size))


@pytest.mark.parametrize(
    "feature_map",
    ["unfitted", "fitted", "callable"],
)
def test_distance_to_closest_record_feature_map_matches_brute_force(
    three_sets, feature_map
):
    X_train, X_heldout, X_generated = three_sets
    if feature_map == "unfitted":
        fmap = PCA(n_components=2)
        # fitted on the training rows alone
        Z = [PCA(n_components=2).fit(X_train).transform(X) for X in three_sets]
    elif feature_map == "fitted":
        other = np.random.RandomState(1).normal(size=(50, 4)) * [1, 5, 1, 3]
        fmap = PCA(n_components=2).fit(other)
        Z = [fmap.transform(X) for X in three_sets]
    else:
        W = np.random.RandomState(2).normal(size=(4, 3))

        def fmap(X):
            return np.tanh(X @ W)

        Z = [np.tanh(X @ W) for X in three_sets]
    res = distance_to_closest_record(
        X_train, X_generated, X_heldout, feature_map=fmap, chunk_size=5
    )
    gen = _brute_min_dist(Z[2], Z[0])
    held = _brute_min_dist(Z[1], Z[0])
    np.testing.assert_allclose(res.generated_dcr, gen, rtol=1e-10)
    np.testing.assert_allclose(res.heldout_dcr, held, rtol=1e-10)
    # and not the distances of the raw features
    assert not np.allclose(res.generated_dcr, _brute_min_dist(X_generated, X_train))
    closer = sum((g < h) + 0.5 * (g == h) for g in gen for h in held)
    assert res.prob_generated_closer == pytest.approx(closer / (gen.size * held.size))


def test_distance_to_closest_record_ties_count_half():
    X_train = np.array([[0.0]])
    res = distance_to_closest_record(
        X_train, np.array([[1.0], [3.0]]), np.array([[-1.0], [2.0]])
    )
    # pairs (gen, held): (1,1) tie, (1,2) closer, (3,1) no, (3,2) no
    assert res.prob_generated_closer == pytest.approx(1.5 / 4)


def test_distance_to_closest_record_without_heldout(three_sets):
    X_train, _, X_generated = three_sets
    res = distance_to_closest_record(X_train, X_generated)
    np.testing.assert_allclose(res.generated_dcr, _brute_min_dist(X_generated, X_train))
    assert res.heldout_dcr is None
    assert res.heldout_median is None
    assert res.prob_generated_closer is None


def test_distance_to_closest_record_bad_input(three_sets):
    X_train, X_heldout, X_generated = three_sets
    with pytest.raises(ValueError, match="X_heldout has 2 features but X_train has 4"):
        distance_to_closest_record(X_train, X_generated, X_heldout[:, :2])
    with pytest.raises(ValueError, match="X_generated is empty"):
        distance_to_closest_record(X_train, np.empty((0, 4)), X_heldout)


# ---------------------------------------------------------------------------
# data_copying_test
# ---------------------------------------------------------------------------


def _two_cell_case():
    """Two well-separated groups, so k-means with 2 cells finds them exactly.

    Cell near 0: training {0, 1}; test distances {0.5, 2}; generated
    distances {0.1, 0.1, 1}. Cell near 100: training {100, 101}; test
    distances {0.25, 0.5, 1, 3}; generated distances {0.5, 2}.
    """
    X_train = np.array([0.0, 1.0, 100.0, 101.0])[:, None]
    X_test = np.array([0.5, 3.0, 100.25, 100.5, 102.0, 104.0])[:, None]
    X_gen = np.array([0.1, 0.9, 2.0, 100.5, 103.0])[:, None]
    return X_train, X_test, X_gen


def test_data_copying_test_hand_computed():
    X_train, X_test, X_gen = _two_cell_case()
    res = data_copying_test(
        X_train, X_test, X_gen, n_cells=2, min_generated_per_cell=1, random_state=0
    )
    low = int(res.kmeans.predict([[0.0]])[0])
    high = 1 - low
    # Cell near 0: generated {.1, .1, 1} vs test {.5, 2}. Pairs with the
    # generated distance larger: only (1, .5) -> U = 1; m = 3, n = 2.
    z_low = (1 - 3 * 2 / 2) / np.sqrt(3 * 2 * (3 + 2 + 1) / 12)
    # Cell near 100: generated {.5, 2} vs test {.25, .5, 1, 3}.
    # .5 > .25 (1), .5 = .5 (1/2); 2 > .25, .5, 1 (3) -> U = 4.5; m = 2, n = 4.
    z_high = (4.5 - 2 * 4 / 2) / np.sqrt(2 * 4 * (2 + 4 + 1) / 12)
    np.testing.assert_allclose(res.u_statistics[[low, high]], [1.0, 4.5])
    np.testing.assert_allclose(res.z_scores[[low, high]], [z_low, z_high])
    np.testing.assert_allclose(res.test_fraction[[low, high]], [2 / 6, 4 / 6])
    np.testing.assert_allclose(res.generated_fraction[[low, high]], [3 / 5, 2 / 5])
    np.testing.assert_array_equal(res.n_train[[low, high]], [2, 2])
    np.testing.assert_array_equal(res.n_test[[low, high]], [2, 4])
    np.testing.assert_array_equal(res.n_generated[[low, high]], [3, 2])
    assert res.kept.all()
    expected = (2 / 6 * z_low + 4 / 6 * z_high) / (2 / 6 + 4 / 6)
    assert res.statistic == pytest.approx(expected)


def test_data_copying_test_drops_cells_with_few_generated_samples():
    X_train, X_test, X_gen = _two_cell_case()
    res = data_copying_test(
        X_train, X_test, X_gen, n_cells=2, min_generated_per_cell=3, random_state=0
    )
    low = int(res.kmeans.predict([[0.0]])[0])
    assert res.kept[low] and not res.kept[1 - low]
    # the dropped cell still reports its z-score, but C_T is the kept one's
    assert np.isfinite(res.z_scores[1 - low])
    assert res.statistic == pytest.approx(res.z_scores[low])


def test_data_copying_test_matches_brute_force_on_random_data():
    rng = np.random.RandomState(3)
    X_train = rng.normal(size=(60, 2))
    X_test = rng.normal(size=(50, 2))
    X_gen = rng.normal(scale=0.8, size=(70, 2))
    res = data_copying_test(
        X_train, X_test, X_gen, n_cells=4, min_generated_per_cell=15, random_state=0
    )
    c_train = res.kmeans.labels_
    c_test, c_gen = res.kmeans.predict(X_test), res.kmeans.predict(X_gen)
    z, weights, kept, differs = np.full(4, np.nan), np.zeros(4), [], False
    for cell in range(4):
        T = X_train[c_train == cell]
        d_test = _brute_min_dist(X_test[c_test == cell], T)
        d_gen = _brute_min_dist(X_gen[c_gen == cell], T)
        # distances to the training points *of the cell*, not all of them
        differs |= np.any(d_gen > _brute_min_dist(X_gen[c_gen == cell], X_train))
        m, n = d_gen.size, d_test.size
        u = sum((g > t) + 0.5 * (g == t) for g in d_gen for t in d_test)
        z[cell] = (u - m * n / 2) / np.sqrt(m * n * (m + n + 1) / 12)
        weights[cell] = n / X_test.shape[0]
        if m >= 15 and n > 0:
            kept.append(cell)
    assert differs  # the case tells within-cell from global distances apart
    np.testing.assert_allclose(res.z_scores, z)
    np.testing.assert_allclose(res.test_fraction, weights)
    np.testing.assert_array_equal(np.flatnonzero(res.kept), kept)
    assert 0 < len(kept) < 4  # some cell is dropped for too few samples
    expected = np.sum(weights[kept] * z[kept]) / np.sum(weights[kept])
    assert res.statistic == pytest.approx(expected)


def test_data_copying_test_sign_convention():
    rng = np.random.RandomState(0)
    X_train = rng.normal(size=(300, 2))
    X_test = rng.normal(size=(300, 2))
    copies = X_train[rng.randint(300, size=300)] + rng.normal(scale=1e-3, size=(300, 2))
    far = rng.normal(scale=3.0, size=(300, 2))
    kw = dict(n_cells=4, random_state=0)
    assert data_copying_test(X_train, X_test, copies, **kw).statistic < -5
    assert data_copying_test(X_train, X_test, far, **kw).statistic > 5


def test_data_copying_test_feature_map_and_reproducibility():
    rng = np.random.RandomState(0)
    X_train, X_test, X_gen = (rng.normal(size=(80, 5)) for _ in range(3))
    kw = dict(n_cells=3, min_generated_per_cell=5, random_state=0)
    a = data_copying_test(X_train, X_test, X_gen, feature_map=PCA(2), **kw)
    b = data_copying_test(X_train, X_test, X_gen, feature_map=PCA(2), **kw)
    assert a.statistic == b.statistic
    assert a.kmeans.cluster_centers_.shape == (3, 2)
    # the test runs on the features: cells and distances of PCA(2) of the
    # data, with the PCA fitted on the training rows
    pca = PCA(2).fit(X_train)
    Z_train, Z_test, Z_gen = (pca.transform(X) for X in (X_train, X_test, X_gen))
    c_train = a.kmeans.labels_
    c_test, c_gen = a.kmeans.predict(Z_test), a.kmeans.predict(Z_gen)
    z = np.full(3, np.nan)
    for cell in range(3):
        T = Z_train[c_train == cell]
        d_test = _brute_min_dist(Z_test[c_test == cell], T)
        d_gen = _brute_min_dist(Z_gen[c_gen == cell], T)
        m, n = d_gen.size, d_test.size
        u = sum((g > t) + 0.5 * (g == t) for g in d_gen for t in d_test)
        z[cell] = (u - m * n / 2) / np.sqrt(m * n * (m + n + 1) / 12)
    np.testing.assert_allclose(a.z_scores, z)
    np.testing.assert_array_equal(a.n_train, np.bincount(c_train, minlength=3))
    # the cells are k-means cells of the training features
    for cell in range(3):
        np.testing.assert_allclose(
            a.kmeans.cluster_centers_[cell], Z_train[c_train == cell].mean(0), atol=1e-8
        )


def test_data_copying_test_errors():
    X_train, X_test, X_gen = _two_cell_case()
    msg = re.escape("Generated samples per cell: ")
    with pytest.raises(ValueError, match="No cell has at least.*" + msg):
        data_copying_test(
            X_train,
            X_test,
            X_gen,
            n_cells=2,
            min_generated_per_cell=20,
            random_state=0,
        )
    with pytest.raises(ValueError, match="n_cells=5 cells need at least"):
        data_copying_test(X_train, X_test, X_gen, n_cells=5)
    with pytest.raises(ValueError, match="X_generated is empty"):
        data_copying_test(X_train, X_test, np.empty((0, 1)))
    with pytest.raises(ValueError, match="X_test has 2 features"):
        data_copying_test(X_train, np.zeros((3, 2)), X_gen)


def test_data_copying_test_cell_without_test_samples_is_not_kept():
    X_train = np.array([0.0, 1.0, 100.0, 101.0])[:, None]
    X_test = np.array([0.5, 2.0])[:, None]  # nothing near 100
    X_gen = np.array([0.2, 0.7, 100.5, 100.7])[:, None]
    res = data_copying_test(
        X_train, X_test, X_gen, n_cells=2, min_generated_per_cell=1, random_state=0
    )
    high = int(res.kmeans.predict([[100.0]])[0])
    assert not res.kept[high]
    assert np.isnan(res.z_scores[high])
    assert res.statistic == pytest.approx(res.z_scores[1 - high])


# ---------------------------------------------------------------------------
# loglik_gap
# ---------------------------------------------------------------------------


def test_loglik_gap_matches_direct_computation():
    rng = np.random.RandomState(0)
    X_train, X_test = rng.normal(size=(40, 2)), rng.normal(size=(30, 2))
    for est in (KernelDensity(bandwidth=0.3), GaussianMixture(2, random_state=0)):
        est.fit(X_train)
        expected = est.score_samples(X_train).mean() - est.score_samples(X_test).mean()
        assert loglik_gap(est, X_train, X_test) == pytest.approx(expected)
        res = loglik_gap(est, X_train, X_test, return_means=True)
        assert res.gap == pytest.approx(expected)
        assert res.train_mean == pytest.approx(est.score_samples(X_train).mean())


def test_loglik_gap_zero_density():
    X_train = np.array([[0.0], [1.0]])
    kde = KernelDensity(kernel="tophat", bandwidth=0.5).fit(X_train)
    assert loglik_gap(kde, X_train, np.array([[0.0], [5.0]])) == np.inf
    with pytest.warns(UserWarning, match="undefined"):
        gap = loglik_gap(kde, np.array([[0.0], [5.0]]), np.array([[7.0]]))
    assert np.isnan(gap)


def test_loglik_gap_errors():
    X = np.zeros((3, 2))
    with pytest.raises(NotFittedError, match="Call fit"):
        loglik_gap(KernelDensity(), X, X)
    with pytest.raises(ValueError, match="score_samples"):
        loglik_gap(StandardScaler().fit(X), X, X)
    kde = KernelDensity().fit(X)
    with pytest.raises(ValueError, match="X_test has 3 features but X_train has 2"):
        loglik_gap(kde, X, np.zeros((2, 3)))
