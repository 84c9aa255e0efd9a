"""data_copying_test: the default convention and Meehan et al.'s own."""

import numpy as np
import pytest
from scipy.stats import mannwhitneyu
from sklearn.neighbors import NearestNeighbors

from sklearn_mem.neighbors import data_copying_test


def _authors_c_t(Pn, Pn_cells, Qm, Qm_cells, T, T_cells, tau, k):
    """C_T as the authors' published code computes it, written out here."""
    m, n = len(Qm), len(Pn)
    z = np.zeros(k)
    for i in range(k):
        P, Q, Tc = Pn[Pn_cells == i], Qm[Qm_cells == i], T[T_cells == i]
        if len(Q) == 0:
            continue
        nn = NearestNeighbors(n_neighbors=1).fit(Tc)
        LQ = nn.kneighbors(Q)[0].ravel()
        LP = nn.kneighbors(P)[0].ravel()
        u = mannwhitneyu(LQ, LP, alternative="less").statistic
        mi, ni = len(Q), len(P)
        z[i] = (u - (ni * mi / 2 - 0.5)) / np.sqrt(ni * mi * (ni + mi + 1) / 12)
    q_share = np.bincount(Qm_cells, minlength=k) / m
    p_share = np.bincount(Pn_cells, minlength=k) / n
    keep = q_share > tau
    return p_share[keep] @ z[keep] / p_share[keep].sum()


@pytest.fixture
def samples():
    rng = np.random.RandomState(0)
    X_train = rng.normal(size=(300, 2))
    X_test = rng.normal(size=(200, 2))
    # half fresh samples, half near-copies of training rows
    X_gen = np.vstack(
        [rng.normal(size=(100, 2)), X_train[rng.randint(300, size=100)] + 0.01]
    )
    return X_train, X_test, X_gen


@pytest.mark.parametrize("tau", [None, 0.02, 0.1])
def test_authors_convention_reproduces_their_statistic(samples, tau):
    X_train, X_test, X_gen = samples
    res = data_copying_test(
        X_train, X_test, X_gen, n_cells=5, random_state=0, convention="authors", tau=tau
    )
    km = res.kmeans
    expected = _authors_c_t(
        X_test,
        km.predict(X_test),
        X_gen,
        km.predict(X_gen),
        X_train,
        km.labels_,
        20 / len(X_gen) if tau is None else tau,
        5,
    )
    assert res.statistic == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_the_conventions_differ_by_the_continuity_correction(samples):
    X_train, X_test, X_gen = samples
    ours = data_copying_test(X_train, X_test, X_gen, n_cells=5, random_state=0)
    theirs = data_copying_test(
        X_train, X_test, X_gen, n_cells=5, random_state=0, convention="authors"
    )
    m, n = ours.n_generated, ours.n_test
    sd = np.sqrt(m * n * (m + n + 1) / 12)
    defined = ~np.isnan(ours.z_scores)
    np.testing.assert_allclose(
        theirs.z_scores[defined] - ours.z_scores[defined], 0.5 / sd[defined], rtol=1e-12
    )


def test_cells_with_exactly_the_minimum_are_kept_by_default_only():
    # one cell of generated samples holds exactly min_generated_per_cell
    rng = np.random.RandomState(1)
    X_train = np.vstack([rng.normal(size=(50, 1)), rng.normal(size=(50, 1)) + 20])
    X_test = np.vstack([rng.normal(size=(30, 1)), rng.normal(size=(30, 1)) + 20])
    X_gen = np.vstack([rng.normal(size=(20, 1)), rng.normal(size=(40, 1)) + 20])
    ours = data_copying_test(
        X_train, X_test, X_gen, n_cells=2, min_generated_per_cell=20, random_state=0
    )
    theirs = data_copying_test(
        X_train,
        X_test,
        X_gen,
        n_cells=2,
        min_generated_per_cell=20,
        random_state=0,
        convention="authors",
    )
    small = int(np.argmin(ours.n_generated))
    assert ours.n_generated[small] == 20
    assert ours.kept[small] and not theirs.kept[small]
    assert ours.kept.sum() == 2 and theirs.kept.sum() == 1


def test_tau_needs_the_authors_convention(samples):
    with pytest.raises(ValueError, match="convention='authors'"):
        data_copying_test(*samples, n_cells=3, tau=0.1)
    with pytest.raises(ValueError, match="share of generated samples above"):
        data_copying_test(*samples, n_cells=3, convention="authors", tau=0.99)
