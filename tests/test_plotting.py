"""Tests for sklearn_mem.plotting: each Display renders and its artists hold
the right data, checked against direct computations."""

import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import KernelDensity
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sklearn_mem import MemorizationScorer  # noqa: E402
from sklearn_mem.neighbors import nearest_neighbor_ratio  # noqa: E402
from sklearn_mem.plotting import (  # noqa: E402
    InfluentialPairsDisplay,
    MemorizationHistogramDisplay,
    MemorizationOverEpochsDisplay,
    MemorizationVsLoglikDisplay,
    MemorizationVsRatioDisplay,
    MemorizedSamplesDisplay,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def fitted(digits):
    X = digits[:200]
    mem = MemorizationScorer(KernelDensity(bandwidth=0.5), cv=5, random_state=0)
    return mem.fit(X), X


class StandIn:
    """Holds fitted attributes, as a MemorizationScorer would."""

    def __init__(self, **attributes):
        for name, value in attributes.items():
            setattr(self, name, value)


def _legend_texts(legend):
    return [t.get_text() for t in legend.get_texts()]


def _scores(n=60, seed=0):
    return np.random.RandomState(seed).exponential(size=n)


def test_plotting_is_the_only_matplotlib_module():
    code = (
        "import sys, sklearn_mem, sklearn_mem.metrics, sklearn_mem.neighbors; "
        "assert 'matplotlib' not in sys.modules, 'matplotlib was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------
# histogram
# ---------------------------------------------------------------------------


def test_histogram_counts_and_quantile_line():
    M = _scores()
    disp = MemorizationHistogramDisplay.from_predictions(M, bins=12)
    counts, edges = np.histogram(M, bins=12)
    np.testing.assert_array_equal(disp.counts_, counts)
    np.testing.assert_allclose(disp.bin_edges_, edges)
    heights = [p.get_height() for p in disp.patches_]
    np.testing.assert_array_equal(heights, counts)
    q = np.quantile(M, 0.95)
    assert disp.quantile_value_ == pytest.approx(q)
    np.testing.assert_allclose(disp.line_.get_xdata(), [q, q])
    assert f"0.95-quantile = {q:.3g} nats" in _legend_texts(disp.legend_)
    assert "nats" in disp.ax_.get_xlabel()
    assert disp.figure_ is disp.ax_.figure
    assert (disp.n_nan_, disp.n_posinf_, disp.n_neginf_) == (0, 0, 0)


def test_histogram_counts_nonfinite_and_uses_inf_aware_quantile():
    M = _scores(40)
    M[[0, 1, 2]] = np.nan
    M[3] = np.inf
    M[4] = -np.inf
    disp = MemorizationHistogramDisplay.from_predictions(M, quantile=0.9, bins=7)
    finite = M[np.isfinite(M)]
    np.testing.assert_array_equal(disp.counts_, np.histogram(finite, bins=7)[0])
    assert (disp.n_nan_, disp.n_posinf_, disp.n_neginf_) == (3, 1, 1)
    texts = " | ".join(_legend_texts(disp.legend_))
    assert "3 NaN" in texts and "1 +inf" in texts and "1 -inf" in texts
    # the quantile is over the non-NaN scores with the infinities in place
    defined = np.sort(M[~np.isnan(M)])
    h = (defined.size - 1) * 0.9
    lo = int(np.floor(h))
    expected = defined[lo] + (defined[lo + 1] - defined[lo]) * (h - lo)
    assert disp.quantile_value_ == pytest.approx(expected)


def test_histogram_infinite_quantile_is_not_drawn():
    M = np.array([0.1, 0.2, np.inf, np.inf, np.inf])
    disp = MemorizationHistogramDisplay.from_predictions(M, quantile=0.95)
    assert disp.quantile_value_ == np.inf
    assert disp.line_ is None
    assert any("not drawn" in t for t in _legend_texts(disp.legend_))


def test_histogram_from_estimator_and_given_ax(fitted):
    mem, _ = fitted
    fig, ax = plt.subplots()
    disp = MemorizationHistogramDisplay.from_estimator(mem, bins=20, ax=ax)
    assert disp.ax_ is ax and disp.figure_ is fig
    np.testing.assert_array_equal(
        disp.counts_, np.histogram(mem.memorization_scores_, bins=20)[0]
    )
    assert disp.quantile_value_ == pytest.approx(
        np.quantile(mem.memorization_scores_, 0.95)
    )
    # a Pipeline ending in a fitted scorer works too
    pipe = make_pipeline(FunctionTransformer(), mem)
    disp = MemorizationHistogramDisplay.from_estimator(pipe, bins=20)
    assert disp.counts_.sum() == 200


def test_histogram_constructor_and_plot_kwargs():
    M = _scores()
    disp = MemorizationHistogramDisplay(M, quantile_value=None, quantile=0.5)
    fig, ax = plt.subplots()
    assert disp.plot(ax=ax, bins=5, color="k") is disp
    assert disp.ax_ is ax
    assert disp.quantile_value_ == pytest.approx(np.median(M))
    assert disp.patches_[0].get_facecolor()[:3] == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    "memorization, match",
    [([], "empty"), (np.ones((3, 2)), "1-D"), (["a", "b"], "real numbers")],
)
def test_histogram_bad_scores(memorization, match):
    with pytest.raises(ValueError, match=match):
        MemorizationHistogramDisplay.from_predictions(memorization)


def test_histogram_bad_quantile_and_ax():
    with pytest.raises(ValueError, match=r"quantile must be a number in \[0, 1\]"):
        MemorizationHistogramDisplay.from_predictions(_scores(), quantile=1.5)
    with pytest.raises(TypeError, match="Axes"):
        MemorizationHistogramDisplay.from_predictions(_scores(), ax="left")


def test_from_estimator_needs_fitted_scorer():
    with pytest.raises(NotFittedError, match="Call fit"):
        MemorizationHistogramDisplay.from_estimator(MemorizationScorer(KernelDensity()))
    kde = KernelDensity().fit(np.zeros((3, 1)))
    with pytest.raises(TypeError, match=r"MemorizationScorer\(KernelDensity"):
        MemorizationHistogramDisplay.from_estimator(kde)
    with pytest.raises(TypeError, match="in_loglik_"):
        MemorizationVsLoglikDisplay.from_estimator(
            StandIn(memorization_scores_=_scores())
        )


def _bulk_and_outlier(n=200, outlier=327.0, seed=0):
    """Exponential scores (q99 about 4.6) and one planted extreme score."""
    bulk = np.random.RandomState(seed).exponential(size=n)
    return bulk, np.append(bulk, outlier)


def _bulk_span(bulk):
    return np.quantile(bulk, 0.99) - np.quantile(bulk, 0.01)


def test_histogram_planted_outlier_keeps_bulk_readable():
    bulk, M = _bulk_and_outlier()
    disp = MemorizationHistogramDisplay.from_predictions(M, bins=30)
    lo, hi = disp.ax_.get_xlim()
    # the axis spans the bulk, not the outlier 327 nats away
    assert hi - lo < 3 * _bulk_span(bulk)
    assert disp.limits_ == (bulk.min(), bulk.max())
    assert (disp.n_below_, disp.n_above_) == (0, 1)
    # the bulk spreads over the bins instead of one bar
    assert disp.counts_.sum() == bulk.size
    assert disp.counts_.max() < 0.5 * bulk.size
    np.testing.assert_array_equal(
        disp.counts_, np.histogram(bulk, bins=30, range=disp.limits_)[0]
    )
    # the outlier is drawn on the right edge, its count as height, and named
    (marker,) = disp.outlier_markers_
    assert marker.get_xdata()[0] == pytest.approx(hi)
    assert marker.get_ydata()[0] == 1
    assert marker.get_marker() == ">"
    texts = _legend_texts(disp.legend_)
    assert f"1 score > {bulk.max():.3g}, off the axis (max 327)" in texts
    assert f"{bulk.size} of {M.size} finite scores" in texts
    # the quantile line is unchanged and inside the axis
    assert disp.quantile_value_ == pytest.approx(np.quantile(M, 0.95))
    assert lo < disp.line_.get_xdata()[0] < hi


def test_histogram_clip_outliers_false_and_low_side():
    bulk, M = _bulk_and_outlier()
    disp = MemorizationHistogramDisplay.from_predictions(M, clip_outliers=False)
    np.testing.assert_array_equal(disp.counts_, np.histogram(M, bins=50)[0])
    assert disp.n_above_ == 0 and disp.outlier_markers_ == []
    assert disp.ax_.get_xlim()[1] > 327
    # an outlier far below the bulk: a "<" marker on the left edge
    M = np.append(bulk, [-500.0, -400.0])
    disp = MemorizationHistogramDisplay.from_predictions(M)
    assert (disp.n_below_, disp.n_above_) == (2, 0)
    (marker,) = disp.outlier_markers_
    assert marker.get_marker() == "<" and marker.get_ydata()[0] == 2
    assert marker.get_xdata()[0] == pytest.approx(disp.ax_.get_xlim()[0])
    assert "2 scores < " in " | ".join(_legend_texts(disp.legend_))
    assert "min -500" in " | ".join(_legend_texts(disp.legend_))


@pytest.mark.parametrize(
    "M",
    [
        np.random.RandomState(1).exponential(size=500),
        np.exp(0.5 * np.random.RandomState(2).randn(300)),
        np.random.RandomState(3).standard_t(3, size=300),
        np.r_[np.zeros(50), 1.0],
    ],
    ids=["exponential", "lognormal", "student-t", "ties"],
)
def test_histogram_long_tail_is_drawn_in_full(M):
    disp = MemorizationHistogramDisplay.from_predictions(M)
    assert disp.limits_ == (M.min(), M.max())
    assert (disp.n_below_, disp.n_above_) == (0, 0)
    assert disp.counts_.sum() == M.size


def test_histogram_explicit_bins_count_scores_outside():
    _, M = _bulk_and_outlier()
    disp = MemorizationHistogramDisplay.from_predictions(M, bins=[0, 1, 2, 5, 10])
    assert disp.limits_ == (0.0, 10.0)
    assert disp.n_above_ == 1 and disp.outlier_markers_ == []
    assert disp.counts_.sum() == M.size - 1
    assert any(
        "1 finite scores outside the given bins (M up to 327)" in t
        for t in _legend_texts(disp.legend_)
    )


def test_loglik_planted_outlier_keeps_bulk_readable():
    rng = np.random.RandomState(0)
    U = rng.randn(200)
    M = np.exp(-U / 2) + 0.1 * rng.rand(200)
    bulk = M.copy()
    M[7] = 327.0  # extreme score
    U[8] = -400.0  # extreme log-likelihood
    disp = MemorizationVsLoglikDisplay.from_predictions(M, U)
    y_lo, y_hi = disp.ax_.get_ylim()
    x_lo, x_hi = disp.ax_.get_xlim()
    assert y_hi - y_lo < 3 * _bulk_span(bulk)
    assert x_hi - x_lo < 3 * _bulk_span(U[U > -400])
    assert disp.n_beyond_ == 2
    # each drawn on the edge it lies beyond (^ on top, < on the left), at its
    # own other coordinate
    above, left = disp.outliers_
    np.testing.assert_allclose(above.get_offsets(), [[U[7], y_hi]])
    np.testing.assert_allclose(left.get_offsets(), [[x_lo, M[8]]])
    assert len(disp.scatter_.get_offsets()) == 198
    texts = " | ".join(_legend_texts(disp.legend_))
    assert "2 points off the axes" in texts
    assert "M up to 327" in texts and "U down to -400" in texts
    # the threshold (the 0.95-quantile of every score) is still drawn
    assert y_lo < disp.threshold_ < y_hi
    # the share is computed from every sample, outliers included
    assert disp.counts_.sum() == 200
    assert disp.ax_share_ is None and disp.stairs_ is None
    full = MemorizationVsLoglikDisplay.from_predictions(M, U, clip_outliers=False)
    assert full.n_beyond_ == 0 and full.ax_.get_ylim()[1] > 327
    np.testing.assert_allclose(full.scatter_.get_offsets(), np.c_[U, M])


def test_loglik_legend_counts_highly_memorized():
    M = np.arange(20.0)
    disp = MemorizationVsLoglikDisplay.from_predictions(M, -M, threshold=16.5)
    texts = _legend_texts(disp.legend_)
    assert "M > threshold: 3 of 20 samples" in texts
    assert "threshold = 16.5 nats" in texts
    disp = MemorizationVsLoglikDisplay.from_predictions(M, -M)
    assert any("(0.95-quantile)" in t for t in _legend_texts(disp.legend_))


def test_ratio_planted_outlier_keeps_bulk_readable():
    rng = np.random.RandomState(0)
    rho = np.exp(rng.randn(100))
    M = rng.exponential(size=100)
    bulk = M.copy()
    M[3] = 327.0
    disp = MemorizationVsRatioDisplay.from_predictions(M, rho)
    y_lo, y_hi = disp.ax_.get_ylim()
    assert y_hi - y_lo < 3 * _bulk_span(np.delete(bulk, 3))
    assert disp.n_beyond_ == 1
    np.testing.assert_allclose(disp.outliers_[0].get_offsets(), [[rho[3], y_hi]])
    assert len(disp.scatter_.get_offsets()) == 99
    texts = " | ".join(_legend_texts(disp.legend_))
    assert "1 point off the axis, drawn on the edge (M up to 327)" in texts
    # the correlation still uses every sample
    assert disp.spearman_ == pytest.approx(spearmanr(M, rho).statistic)
    full = MemorizationVsRatioDisplay.from_predictions(M, rho, clip_outliers=False)
    assert full.n_beyond_ == 0 and full.limits_ is None


# ---------------------------------------------------------------------------
# memorized samples
# ---------------------------------------------------------------------------


def test_samples_grid_shows_argmax_argmin_and_median(fitted):
    mem, X = fitted
    M = mem.memorization_scores_
    disp = MemorizedSamplesDisplay.from_estimator(mem, X, n_samples=5)
    assert disp.axes_.shape == (3, 5)
    order = np.argsort(M)
    np.testing.assert_array_equal(disp.indices_["most"], order[::-1][:5])
    np.testing.assert_array_equal(disp.indices_["least"], order[:5])
    start = (M.size - 5) // 2
    np.testing.assert_array_equal(disp.indices_["median"], order[start : start + 5])
    assert disp.indices_["most"][0] == M.argmax()
    assert disp.indices_["least"][0] == M.argmin()
    for r, which in enumerate(("most", "median", "least")):
        for c, i in enumerate(disp.indices_[which]):
            np.testing.assert_array_equal(
                disp.images_[r, c].get_array(), X[i].reshape(8, 8)
            )
            assert disp.axes_[r, c].get_title() == f"M = {M[i]:.2f}"
        assert which in disp.axes_[r, 0].get_ylabel()
    assert disp.figure_ is disp.axes_[0, 0].figure


def test_samples_excludes_nan_and_ranks_inf_first():
    rng = np.random.RandomState(0)
    X = rng.rand(30, 16)
    M = rng.rand(30)
    M[[5, 7]] = np.nan
    M[9] = np.inf
    disp = MemorizedSamplesDisplay.from_predictions(
        M, X, n_samples=28, which=("most", "least")
    )
    assert set(disp.indices_) == {"most", "least"}
    shown = np.concatenate(list(disp.indices_.values()))
    assert not np.isin([5, 7], shown).any()
    assert disp.indices_["most"][0] == 9
    assert disp.indices_["least"][-1] == 9
    assert disp.axes_.shape == (2, 28)
    with pytest.raises(ValueError, match="only 28 of 30 samples"):
        MemorizedSamplesDisplay.from_predictions(M, X, n_samples=29)


def test_samples_rgb_and_explicit_shape():
    rng = np.random.RandomState(0)
    X = rng.rand(10, 4 * 5 * 3)
    M = rng.rand(10)
    disp = MemorizedSamplesDisplay.from_predictions(
        M, X, image_shape=(4, 5, 3), n_samples=2, which="most"
    )
    i = disp.indices_["most"][0]
    np.testing.assert_allclose(disp.images_[0, 0].get_array(), X[i].reshape(4, 5, 3))
    disp = MemorizedSamplesDisplay.from_predictions(
        M, X[:, :20], image_shape=(4, 5), n_samples=2
    )
    assert disp.images_[0, 0].get_array().shape == (4, 5)


def test_samples_draw_into_given_axes(fitted):
    mem, X = fitted
    fig, ax = plt.subplots(1, 2)
    disp = MemorizedSamplesDisplay.from_estimator(mem, X, n_samples=3, ax=ax[1])
    assert disp.bounding_ax_ is ax[1]
    assert disp.figure_ is fig
    assert all(a.figure is fig for a in disp.axes_.flat)
    fig, axes = plt.subplots(3, 3)
    disp = MemorizedSamplesDisplay.from_estimator(mem, X, n_samples=3, ax=axes)
    assert disp.axes_[1, 2] is axes[1, 2]
    with pytest.raises(ValueError, match="3 x 4"):
        MemorizedSamplesDisplay.from_estimator(mem, X, n_samples=4, ax=axes)


def test_samples_errors():
    rng = np.random.RandomState(0)
    X, M = rng.rand(10, 10), rng.rand(10)
    with pytest.raises(ValueError, match="perfect square. Pass image_shape"):
        MemorizedSamplesDisplay.from_predictions(M, X, n_samples=2)
    with pytest.raises(ValueError, match="holds 9 values"):
        MemorizedSamplesDisplay.from_predictions(M, X, image_shape=(3, 3))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        MemorizedSamplesDisplay.from_predictions(M, X, image_shape=(2, 5, 1))
    with pytest.raises(ValueError, match="same order; got 9 and 10"):
        MemorizedSamplesDisplay.from_predictions(M[:9], X, image_shape=(2, 5))
    with pytest.raises(ValueError, match="which must be"):
        MemorizedSamplesDisplay.from_predictions(
            M, X, image_shape=(2, 5), which=("most", "top")
        )
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        MemorizedSamplesDisplay.from_predictions(M, X, image_shape=(2, 5), n_samples=0)


# ---------------------------------------------------------------------------
# memorization against log-likelihood
# ---------------------------------------------------------------------------


def _direct_share(M, U, threshold, n_bins):
    edges = np.unique(np.quantile(U, np.linspace(0, 1, n_bins + 1)))
    share, counts = [], []
    for k in range(edges.size - 1):
        last = k == edges.size - 2
        upper = U <= edges[k + 1] if last else U < edges[k + 1]
        in_bin = (U >= edges[k]) & upper
        counts.append(in_bin.sum())
        share.append(np.mean(M[in_bin] > threshold))
    return edges, np.array(counts), np.array(share)


def test_loglik_share_matches_direct_computation():
    rng = np.random.RandomState(0)
    U = rng.randn(97)
    M = np.exp(-U) + 0.1 * rng.rand(97)
    disp = MemorizationVsLoglikDisplay.from_predictions(M, U, n_bins=6, show_share=True)
    threshold = np.quantile(M, 0.95)
    assert disp.threshold_ == pytest.approx(threshold)
    edges, counts, share = _direct_share(M, U, threshold, 6)
    np.testing.assert_allclose(disp.bin_edges_, edges)
    np.testing.assert_array_equal(disp.counts_, counts)
    np.testing.assert_allclose(disp.share_, share)
    values, stair_edges = disp.stairs_.get_data()[:2]
    np.testing.assert_allclose(values, share)
    np.testing.assert_allclose(stair_edges, edges)
    np.testing.assert_allclose(disp.scatter_.get_offsets(), np.c_[U, M])
    np.testing.assert_allclose(disp.threshold_line_.get_ydata(), [threshold] * 2)
    assert disp.ax_share_.get_shared_x_axes().joined(disp.ax_, disp.ax_share_)


def test_loglik_threshold_nonfinite_and_ax():
    rng = np.random.RandomState(1)
    U = rng.randn(50)
    M = rng.rand(50)
    M[0] = np.nan
    M[1] = np.inf
    U[2] = -np.inf
    fig, ax = plt.subplots()
    disp = MemorizationVsLoglikDisplay.from_predictions(
        M, U, threshold=0.5, n_bins=4, ax=ax
    )
    assert disp.ax_ is ax and disp.figure_ is fig
    usable = ~np.isnan(M) & np.isfinite(U)
    edges, counts, share = _direct_share(M[usable], U[usable], 0.5, 4)
    np.testing.assert_array_equal(disp.counts_, counts)
    np.testing.assert_allclose(disp.share_, share)
    assert disp.counts_.sum() == 48
    assert len(disp.scatter_.get_offsets()) == 47
    texts = " | ".join(_legend_texts(disp.legend_))
    assert "1 NaN" in texts and "1 +inf" in texts and "1 non-finite U" in texts


def test_loglik_from_estimator(fitted):
    mem, _ = fitted
    disp = MemorizationVsLoglikDisplay.from_estimator(mem, n_bins=5)
    _, _, share = _direct_share(
        mem.memorization_scores_,
        mem.in_loglik_,
        np.quantile(mem.memorization_scores_, 0.95),
        5,
    )
    np.testing.assert_allclose(disp.share_, share)
    assert disp.counts_.sum() == 200


def test_loglik_errors():
    M, U = _scores(10), np.arange(10.0)
    with pytest.raises(ValueError, match="got 10 and 9"):
        MemorizationVsLoglikDisplay.from_predictions(M, U[:9])
    with pytest.raises(ValueError, match="n_bins must be a positive integer"):
        MemorizationVsLoglikDisplay.from_predictions(M, U, n_bins=0)
    with pytest.raises(ValueError, match="Every memorization score is NaN"):
        MemorizationVsLoglikDisplay.from_predictions(np.full(10, np.nan), U)


def test_loglik_constant_loglik_gives_one_bin():
    disp = MemorizationVsLoglikDisplay.from_predictions(
        [0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0], threshold=1.5
    )
    np.testing.assert_array_equal(disp.counts_, [4])
    np.testing.assert_allclose(disp.share_, [0.5])


# ---------------------------------------------------------------------------
# memorization against the nearest-neighbour ratio
# ---------------------------------------------------------------------------


def test_ratio_spearman_and_scatter():
    rng = np.random.RandomState(0)
    rho = np.exp(rng.randn(50))
    M = np.log(rho) + rng.randn(50)
    disp = MemorizationVsRatioDisplay.from_predictions(M, rho)
    expected = spearmanr(M, rho)
    assert disp.spearman_ == pytest.approx(expected.statistic)
    assert disp.spearman_pvalue_ == pytest.approx(expected.pvalue)
    assert disp.ax_.get_xscale() == "log"
    assert f"{expected.statistic:.3f}" in disp.ax_.get_title()
    np.testing.assert_allclose(disp.scatter_.get_offsets(), np.c_[rho, M])


def test_ratio_nonfinite_and_ax():
    rng = np.random.RandomState(0)
    rho = np.exp(rng.randn(30))
    M = rng.randn(30)
    rho[0], rho[1], rho[2] = np.nan, np.inf, 0.0
    M[3] = np.nan
    fig, ax = plt.subplots()
    disp = MemorizationVsRatioDisplay.from_predictions(M, rho, ax=ax)
    assert disp.ax_ is ax and disp.figure_ is fig
    used = ~np.isnan(M) & ~np.isnan(rho)
    assert disp.n_used_ == 28
    assert disp.spearman_ == pytest.approx(spearmanr(M[used], rho[used]).statistic)
    assert len(disp.scatter_.get_offsets()) == 26
    texts = " | ".join(_legend_texts(disp.legend_))
    assert "1 NaN, 1 +inf, 1 zero rho" in texts and "1 NaN (undefined)" in texts


def test_ratio_from_estimator(fitted, digits):
    mem, X = fitted
    X_heldout = digits[200:300]
    X_generated = mem.estimator_.sample(100, random_state=0)
    disp = MemorizationVsRatioDisplay.from_estimator(mem, X, X_heldout, X_generated)
    rho = nearest_neighbor_ratio(X, X_heldout, X_generated)
    assert disp.spearman_ == pytest.approx(
        spearmanr(mem.memorization_scores_, rho).statistic
    )
    with pytest.raises(ValueError, match="fitted on 200"):
        MemorizationVsRatioDisplay.from_estimator(mem, X[:50], X_heldout, X_generated)


def test_ratio_errors():
    with pytest.raises(ValueError, match="negative"):
        MemorizationVsRatioDisplay.from_predictions([1.0, 2.0], [-1.0, 1.0])
    with pytest.raises(ValueError, match="got 2 and 3"):
        MemorizationVsRatioDisplay.from_predictions([1.0, 2.0], [1.0, 1.0, 1.0])


# ---------------------------------------------------------------------------
# memorization over epochs
# ---------------------------------------------------------------------------

QUANTILES = (0.5, 0.9, 0.95, 0.99)


def test_epochs_quantiles_and_lines():
    rng = np.random.RandomState(0)
    epochs = np.array([1, 2, 5, 10])
    M = rng.exponential(size=(4, 80)) * epochs[:, None]
    disp = MemorizationOverEpochsDisplay.from_predictions(epochs, M)
    expected = np.quantile(M, QUANTILES, axis=1).T
    np.testing.assert_allclose(disp.quantiles_, expected)
    assert len(disp.lines_) == 4
    for j, line in enumerate(disp.lines_):
        np.testing.assert_array_equal(line.get_xdata(), epochs)
        np.testing.assert_allclose(line.get_ydata(), expected[:, j])
        assert line.get_label() == f"{QUANTILES[j]:g}-quantile"


def test_epochs_nan_inf_and_ax():
    M = np.array([[0.0, 1.0, np.nan, 3.0], [np.nan] * 4, [1.0, np.inf, np.inf, 2.0]])
    fig, ax = plt.subplots()
    disp = MemorizationOverEpochsDisplay.from_predictions(
        [0, 1, 2], M, quantiles=[0.5, 1.0], ax=ax
    )
    assert disp.ax_ is ax and disp.figure_ is fig
    np.testing.assert_allclose(disp.quantiles_[0], [1.0, 3.0])
    assert np.isnan(disp.quantiles_[1]).all()
    assert np.isposinf(disp.quantiles_[2]).all()
    texts = " | ".join(_legend_texts(disp.legend_))
    assert "5 NaN (undefined) scores left out" in texts
    assert "2 +inf quantile values" in texts


def test_epochs_from_estimator():
    epochs = np.array([1, 3, 5])
    M = np.random.RandomState(0).rand(3, 20)
    scorer = StandIn(
        memorization_scores_=M[-1], epochs_=epochs, epoch_memorization_scores_=M
    )
    disp = MemorizationOverEpochsDisplay.from_estimator(scorer, quantiles=[0.5])
    np.testing.assert_allclose(disp.quantiles_[:, 0], np.median(M, axis=1))


def test_epochs_from_estimator_without_recording(fitted):
    mem, _ = fitted
    with pytest.raises(AttributeError, match="per-epoch recording"):
        MemorizationOverEpochsDisplay.from_estimator(mem)


def test_epochs_errors():
    M = np.zeros((3, 5))
    with pytest.raises(ValueError, match="got 3 rows for 2 epochs"):
        MemorizationOverEpochsDisplay.from_predictions([1, 2], M)
    with pytest.raises(ValueError, match="strictly increasing"):
        MemorizationOverEpochsDisplay.from_predictions([1, 3, 2], M)
    with pytest.raises(ValueError, match=r"quantiles must be numbers in \[0, 1\]"):
        MemorizationOverEpochsDisplay.from_predictions([1, 2, 3], M, quantiles=[2])
    with pytest.raises(ValueError, match="2D array"):
        MemorizationOverEpochsDisplay.from_predictions([1, 2, 3], np.zeros(3))


# ---------------------------------------------------------------------------
# high-influence train/test pairs
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def influence_fitted(digits):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import ShuffleSplit
    from sklearn.svm import SVC

    y = load_digits().target
    X_train, y_train = digits[:150], y[:150]
    X_test, y_test = digits[150:180], y[150:180]
    mem = MemorizationScorer(
        SVC(),
        cv=ShuffleSplit(n_splits=30, train_size=0.7, random_state=0),
        response="correct",
        aggregate="mean",
        keep_estimators=True,
        random_state=0,
    ).fit(X_train, y_train)
    return mem, X_train, y_train, X_test, y_test


def test_pairs_show_argmax_of_influence_per_test_row(influence_fitted):
    mem, X_train, y_train, X_test, y_test = influence_fitted
    infl = mem.influence(X_test, y_test)
    disp = InfluentialPairsDisplay.from_estimator(
        mem, X_train, X_test, y_test, y_train=y_train, n_pairs=5
    )
    assert disp.axes_.shape == (2, 5)
    assert len(disp.figure_.axes) == 10
    # each pair: the training row with the highest influence on the test row
    top = np.nanargmax(infl, axis=0)
    np.testing.assert_array_equal(disp.train_indices_[:, 0], top[disp.test_indices_])
    # the test rows: those whose top influence is highest
    best = np.nanmax(infl, axis=0)
    np.testing.assert_allclose(disp.influence_values_[:, 0], np.sort(best)[::-1][:5])
    np.testing.assert_allclose(disp.influence_values_[:, 0], best[disp.test_indices_])
    for p, (z, i) in enumerate(zip(disp.test_indices_, disp.train_indices_[:, 0])):
        np.testing.assert_array_equal(
            disp.images_[0, p].get_array(), X_test[z].reshape(8, 8)
        )
        np.testing.assert_array_equal(
            disp.images_[1, p].get_array(), X_train[i].reshape(8, 8)
        )
        assert disp.axes_[0, p].get_title() == f"test {z}\ny = {y_test[z]}"
        assert disp.axes_[1, p].get_title() == (
            f"infl {infl[i, z]:.2f}\ntrain {i}, y = {y_train[i]}"
        )


def test_pairs_from_predictions_ranks_several_influencers():
    rng = np.random.RandomState(0)
    X_train, X_test = rng.rand(12, 4), rng.rand(6, 4)
    infl = rng.rand(12, 6)
    infl[3, 2] = np.nan
    infl[7, 4] = np.inf
    infl[:, 5] = np.nan  # no defined influence: never shown
    disp = InfluentialPairsDisplay.from_predictions(
        infl, X_train, X_test, n_pairs=5, n_influencers=3
    )
    assert disp.axes_.shape == (4, 5)
    assert len(disp.figure_.axes) == 20
    assert disp.test_indices_[0] == 4  # +inf ranks first
    assert 5 not in disp.test_indices_
    for p, z in enumerate(disp.test_indices_):
        col = np.where(np.isnan(infl[:, z]), -np.inf, infl[:, z])
        np.testing.assert_array_equal(
            disp.train_indices_[p], np.argsort(-col, kind="stable")[:3]
        )
        np.testing.assert_array_equal(
            disp.influence_values_[p], infl[disp.train_indices_[p], z]
        )
    # explicit test rows, in the given order; one influencer by default
    disp = InfluentialPairsDisplay.from_predictions(
        infl, X_train, X_test, test_indices=[2, 0]
    )
    np.testing.assert_array_equal(disp.test_indices_, [2, 0])
    np.testing.assert_array_equal(
        disp.train_indices_[:, 0], np.nanargmax(infl[:, [2, 0]], axis=0)
    )
    assert disp.axes_.shape == (2, 2)
    assert disp.axes_[0, 0].get_title() == "test 2"


def test_pairs_draw_into_given_axes(influence_fitted):
    mem, X_train, _, X_test, y_test = influence_fitted
    fig, ax = plt.subplots(1, 2)
    disp = InfluentialPairsDisplay.from_estimator(
        mem, X_train, X_test, y_test, n_pairs=3, ax=ax[1]
    )
    assert disp.bounding_ax_ is ax[1]
    assert all(a.figure is fig for a in disp.axes_.flat)
    fig, axes = plt.subplots(3, 2)
    disp = InfluentialPairsDisplay.from_estimator(
        mem, X_train, X_test, y_test, n_pairs=2, n_influencers=2, ax=axes
    )
    assert disp.axes_[2, 1] is axes[2, 1]
    with pytest.raises(ValueError, match="2 x 3 Axes"):
        InfluentialPairsDisplay.from_estimator(
            mem, X_train, X_test, y_test, n_pairs=3, ax=axes
        )


def test_pairs_errors(influence_fitted, fitted):
    rng = np.random.RandomState(0)
    X_train, X_test, infl = rng.rand(5, 4), rng.rand(3, 4), rng.rand(5, 3)
    with pytest.raises(ValueError, match=r"expected \(n_train, n_test\) = \(5, 2\)"):
        InfluentialPairsDisplay.from_predictions(infl, X_train, X_test[:2])
    with pytest.raises(ValueError, match="2-D array"):
        InfluentialPairsDisplay.from_predictions(infl[:, 0], X_train, X_test)
    with pytest.raises(ValueError, match="n_pairs=4 but only 3"):
        InfluentialPairsDisplay.from_predictions(infl, X_train, X_test, n_pairs=4)
    with pytest.raises(ValueError, match="only 5 training samples"):
        InfluentialPairsDisplay.from_predictions(
            infl, X_train, X_test, n_pairs=1, n_influencers=6
        )
    with pytest.raises(ValueError, match="test_indices must be"):
        InfluentialPairsDisplay.from_predictions(
            infl, X_train, X_test, test_indices=[3]
        )
    with pytest.raises(ValueError, match="n_influencers must be a positive"):
        InfluentialPairsDisplay.from_predictions(infl, X_train, X_test, n_influencers=0)
    # a scorer fitted without keep_estimators has no influence
    mem, X = fitted
    with pytest.raises(AttributeError, match="keep_estimators=True"):
        InfluentialPairsDisplay.from_estimator(mem, X, X[:3])
    with pytest.raises(NotFittedError):
        InfluentialPairsDisplay.from_estimator(
            MemorizationScorer(KernelDensity()), X, X[:3]
        )
