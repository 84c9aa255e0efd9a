"""Plots of memorization scores as scikit-learn Display objects.

Each Display follows the pattern of
:class:`sklearn.metrics.RocCurveDisplay`: the class methods
``from_estimator`` (reads the fitted attributes of a
:class:`~sklearn_mem.MemorizationScorer`, never refits) and
``from_predictions`` (plain arrays) build the display and call its
:meth:`plot` method, which draws into a given Matplotlib axes (or a new
figure) and keeps the figure objects as attributes (``ax_``, ``figure_`` and
the artists).

- :class:`MemorizationHistogramDisplay`: histogram of the scores with their
  0.95-quantile, the summary the paper reports;
- :class:`MemorizedSamplesDisplay`: the most, median and least memorized
  samples as an image grid;
- :class:`MemorizationVsLoglikDisplay`: scores against the in-sample
  log-likelihood, the highly memorized samples coloured (and their share
  per log-likelihood bin computed);
- :class:`MemorizationVsRatioDisplay`: scores against the nearest-neighbour
  ratio of :func:`sklearn_mem.neighbors.nearest_neighbor_ratio`, with
  Spearman's rank correlation;
- :class:`MemorizationOverEpochsDisplay`: quantiles of the scores over
  training epochs (the paper's learning-dynamics figure);
- :class:`InfluentialPairsDisplay`: test images next to the training images
  with the highest influence on them (Feldman and Zhang's high-influence
  pairs, from :meth:`sklearn_mem.MemorizationScorer.influence`).

Scores that are undefined (NaN) or infinite cannot be placed on an axis; every
display counts them and says so in its legend, never dropping them silently.
A few finite scores far from all others (one planted or duplicated sample can
score hundreds of nats where the rest stay below ten) would squeeze the
others into one bar or one flat line: the histogram and the scatters keep
their axes on the bulk and draw those points on the edge of the axes,
counted in the legend with their extreme value (``clip_outliers=True``, the
default).

This is the only module of the package that imports Matplotlib (install the
``plot`` extra: ``pip install sklearn_mem[plot]``).
"""

from numbers import Integral, Real

import numpy as np

try:
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes
    from matplotlib.lines import Line2D
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "sklearn_mem.plotting needs Matplotlib, which is not installed. Install "
        "the plot extra (pip install 'sklearn_mem[plot]') or matplotlib itself."
    ) from exc

from scipy.stats import spearmanr
from sklearn.utils import check_array
from sklearn.utils._plotting import _validate_style_kwargs

from .metrics import _quantile, _unwrap_memorization_scorer
from .neighbors import nearest_neighbor_ratio

__all__ = [
    "InfluentialPairsDisplay",
    "MemorizationHistogramDisplay",
    "MemorizationOverEpochsDisplay",
    "MemorizationVsLoglikDisplay",
    "MemorizationVsRatioDisplay",
    "MemorizedSamplesDisplay",
]

_M_LABEL = "memorization score M (nats)"
_WHICH = ("most", "median", "least")


# ---------------------------------------------------------------------------
# shared checks and helpers
# ---------------------------------------------------------------------------


def _check_scores(values, name):
    """Validate a per-sample array: numeric, 1-D (or one column), not empty.

    NaN and infinities are allowed: they are counted by the displays.
    """
    try:
        arr = check_array(
            values,
            ensure_2d=False,
            ensure_all_finite=False,
            ensure_min_samples=0,
            dtype=np.float64,
            input_name=name,
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of real numbers: {exc}") from exc
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D array of shape (n_samples,) (or one column "
            f"of shape (n_samples, 1), as fit_transform returns); got shape "
            f"{arr.shape}."
        )
    if arr.size == 0:
        raise ValueError(
            f"{name} is empty; at least one sample is needed. Pass the scores "
            "of a fitted MemorizationScorer (memorization_scores_)."
        )
    return arr


def _check_same_length(a, name_a, b, name_b):
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{name_a} and {name_b} must have one entry per training sample, in "
            f"the same order; got {a.shape[0]} and {b.shape[0]} samples."
        )


def _check_fraction(value, name):
    if not isinstance(value, Real) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}.")
    return float(value)


def _check_positive_int(value, name):
    if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _check_ax(ax, caller):
    """Return ``(ax, figure)``, creating a figure when ``ax`` is None."""
    if ax is None:
        _, ax = plt.subplots()
    elif not isinstance(ax, Axes):
        raise TypeError(
            f"{caller}: ax must be a Matplotlib Axes or None, got "
            f"{type(ax).__name__}. Create one with fig, ax = plt.subplots()."
        )
    return ax, ax.figure


def _count_nonfinite(values):
    """Numbers of NaN, +inf and -inf entries."""
    return (
        int(np.isnan(values).sum()),
        int(np.isposinf(values).sum()),
        int(np.isneginf(values).sum()),
    )


def _nonfinite_note(values, what="M"):
    """Legend text naming the entries that cannot be drawn, or None."""
    n_nan, n_pos, n_neg = _count_nonfinite(values)
    parts = []
    if n_nan:
        parts.append(f"{n_nan} NaN (undefined)")
    if n_pos:
        parts.append(f"{n_pos} +inf")
    if n_neg:
        parts.append(f"{n_neg} -inf")
    if not parts:
        return None
    return f"not shown: {', '.join(parts)} {what}"


def _legend(ax, notes, *, extra_axes=()):
    """Legend of ``ax`` (and ``extra_axes``) with text-only entries appended."""
    handles, labels = ax.get_legend_handles_labels()
    for other in extra_axes:
        h, l_ = other.get_legend_handles_labels()
        handles += h
        labels += l_
    for note in notes:
        if note:
            handles.append(Line2D([], [], linestyle="none"))
            labels.append(note)
    target = extra_axes[-1] if extra_axes else ax
    return target.legend(handles, labels, fontsize="small")


#: Tukey's "far out" fences: quartiles -+ this many inter-quartile ranges.
_FENCE = 3.0
#: Values beyond the fences stay on the axis up to this many times the range
#: within them, away from it: only true outliers are drawn at the edge.
_REACH = 2.0


def _robust_limits(values, include=()):
    """Axis limits ``(lo, hi)`` that keep the bulk of ``values`` readable.

    The range of the values within Tukey's far-out fences (the quartiles
    -+ 3 inter-quartile ranges; ``include``, e.g. a marked quantile, always
    inside) is widened by twice its width on each side; the limits are the
    extreme values within that. So a value is cut off only when reaching it
    would more than triple the axis range; the caller draws those at the
    edge. None when nothing is finite.
    """
    v = values[np.isfinite(values)]
    if v.size == 0:
        return None
    vmin, vmax = float(v.min()), float(v.max())
    q1, q3 = np.quantile(v, [0.25, 0.75])
    spread = q3 - q1
    if not spread > 0:  # heavy ties: the central 90% instead
        q05, q95 = np.quantile(v, [0.05, 0.95])
        spread = q95 - q05
    if not spread > 0:
        return vmin, vmax
    inside = v[(v >= q1 - _FENCE * spread) & (v <= q3 + _FENCE * spread)]
    in_lo, in_hi = float(inside.min()), float(inside.max())
    for x in include:
        if x is not None and np.isfinite(x):
            in_lo, in_hi = min(in_lo, float(x)), max(in_hi, float(x))
    # a side is cut only where reaching its values would more than triple
    # the range: values up to two more range widths away stay on the axis
    width = _REACH * max(in_hi - in_lo, spread)
    kept = v[(v >= in_lo - width) & (v <= in_hi + width)]
    return float(kept.min()), float(kept.max())


def _padded(limits, fraction=0.05):
    """Limits widened by ``fraction`` of their range on each side."""
    lo, hi = limits
    pad = fraction * (hi - lo) if hi > lo else max(abs(lo) * fraction, 0.5)
    return lo - pad, hi + pad


def _plural(n, word):
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _beyond_text(values, limits, name):
    """'M up to 243' / 'M down to -80' for the values beyond ``limits``."""
    lo, hi = limits
    parts = []
    below, above = values[values < lo], values[values > hi]
    if above.size:
        parts.append(f"{name} up to {above.max():.3g}")
    if below.size:
        parts.append(f"{name} down to {below.min():.3g}")
    return parts


def _edge_points(ax, x, y, xlim, ylim, colors, size):
    """Draw the points beyond the axis limits as arrows at the edge.

    ``xlim`` / ``ylim`` are the data limits (or None: not clipped); each
    point beyond them is placed on the padded axis limit, with a marker
    pointing the way it lies (^, v, >, <). Returns the list of
    PathCollections drawn and the boolean mask of the points beyond.
    """
    dx = np.zeros(x.shape, dtype=int)
    dy = np.zeros(x.shape, dtype=int)
    px, py = x.copy(), y.copy()
    for coord, lim, d, pos in ((x, xlim, dx, px), (y, ylim, dy, py)):
        if lim is None:
            continue
        edge_lo, edge_hi = _padded(lim)
        d[coord < lim[0]], d[coord > lim[1]] = -1, 1
        pos[coord < lim[0]], pos[coord > lim[1]] = edge_lo, edge_hi
    beyond = (dx != 0) | (dy != 0)
    artists = []
    for marker, mask in (
        ("^", dy > 0),
        ("v", dy < 0),
        (">", (dy == 0) & (dx > 0)),
        ("<", (dy == 0) & (dx < 0)),
    ):
        if mask.any():
            artists.append(
                ax.scatter(
                    px[mask],
                    py[mask],
                    marker=marker,
                    s=size,
                    c=colors[mask] if colors is not None else "C0",
                    edgecolors="k",
                    linewidths=0.6,
                    clip_on=False,
                    zorder=3,
                )
            )
    return artists, beyond


# ---------------------------------------------------------------------------
# 1. histogram with the 0.95-quantile
# ---------------------------------------------------------------------------


class MemorizationHistogramDisplay:
    """Histogram of memorization scores with a line at their quantile.

    The paper summarises a model's memorization by the 0.95-quantile of the
    scores; this display draws the histogram of the finite scores (in nats)
    with a vertical line at that quantile, labelled with its value. NaN
    (undefined) and infinite scores cannot be binned: their numbers are
    given in the legend. A few scores far from the others (one sample the
    model fits far better when it has seen it) would squeeze every other
    score into one bar; by default they are drawn as a marker at the edge
    of the axis instead, and counted in the legend (``clip_outliers``).

    It is recommended to create the display with :meth:`from_estimator` or
    :meth:`from_predictions`; they compute the quantile and plot.

    Parameters
    ----------
    memorization : array-like of shape (n_samples,)
        Memorization scores ``M``; NaN and infinite values allowed.
    quantile_value : float or None
        The ``quantile``-quantile of the non-NaN scores. None computes it in
        :meth:`plot` (infinities included, as in :mod:`sklearn_mem.metrics`).
    quantile : float in [0, 1], default=0.95
        The quantile level marked by the line.

    Attributes
    ----------
    quantile_value_ : float
        The marked quantile of the non-NaN scores (``+inf`` when more than a
        ``1 - quantile`` share of the scores is ``+inf``).
    line_ : matplotlib Line2D or None
        The vertical line at ``quantile_value_``; None when that value is not
        finite (it cannot be drawn; the legend says so).
    counts_ : ndarray of shape (n_bins,)
        Number of finite scores in each bin (the scores off the axis, see
        ``n_above_``, are not binned).
    bin_edges_ : ndarray of shape (n_bins + 1,)
        Edges of the bins.
    limits_ : tuple of float or None
        ``(low, high)``: the range of the finite scores binned (None when
        no score is finite).
    n_below_, n_above_ : int
        Numbers of finite scores below and above ``limits_``, drawn as a
        marker at the edge of the axis (see ``clip_outliers`` in
        :meth:`plot`) and counted in the legend.
    outlier_markers_ : list of matplotlib Line2D
        Those markers (empty when no score is off the axis).
    patches_ : matplotlib BarContainer
        The bars of the histogram.
    n_nan_, n_posinf_, n_neginf_ : int
        Numbers of NaN, ``+inf`` and ``-inf`` scores (not in the histogram).
    legend_ : matplotlib Legend
        The legend, with the quantile and the scores not shown.
    ax_ : matplotlib Axes
        Axes with the histogram.
    figure_ : matplotlib Figure
        Figure containing the histogram.

    See Also
    --------
    sklearn_mem.metrics.make_memorization_scorer : The same quantile as a
        model-selection scorer.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.neighbors import KernelDensity
    >>> from sklearn_mem import MemorizationScorer
    >>> from sklearn_mem.plotting import MemorizationHistogramDisplay
    >>> X = load_digits().data[:200] / 16
    >>> mem = MemorizationScorer(KernelDensity(bandwidth=0.5), cv=5, random_state=0)
    >>> mem = mem.fit(X)
    >>> disp = MemorizationHistogramDisplay.from_estimator(mem, bins=20)
    >>> round(disp.quantile_value_, 2)
    4.6...
    >>> int(disp.counts_.sum())
    200

    One far outlier does not squeeze the others into one bar: it is drawn
    as a marker at the edge of the axis and counted in the legend.

    >>> import numpy as np
    >>> M = np.append(np.random.RandomState(0).exponential(size=99), 327.0)
    >>> disp = MemorizationHistogramDisplay.from_predictions(M)
    >>> disp.n_above_, bool(disp.limits_[1] < 10)
    (1, True)
    """

    def __init__(self, memorization, *, quantile_value, quantile=0.95):
        self.memorization = memorization
        self.quantile_value = quantile_value
        self.quantile = quantile

    def plot(self, ax=None, *, bins=50, clip_outliers=True, **kwargs):
        """Draw the histogram and the quantile line.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw into; None creates a new figure.
        bins : int, sequence or str, default=50
            Bins of the histogram, as for :func:`numpy.histogram`. Given as
            a sequence of edges, they decide what is binned: finite scores
            outside them are counted in the legend.
        clip_outliers : bool, default=True
            Keep the bulk of the scores readable when a few lie far from all
            others. Take the range of the scores within Tukey's far-out
            fences (the quartiles -+ 3 inter-quartile ranges; the marked
            quantile included): scores more than twice that range beyond it
            are not binned but drawn as one marker per side at the edge of
            the axis (its height: how many) and counted in the legend with
            their extreme value. A merely long tail stays on the axis.
            False bins every finite score.
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.hist`.

        Returns
        -------
        display : MemorizationHistogramDisplay
            The display, with the figure objects as attributes.
        """
        M = _check_scores(self.memorization, "memorization")
        q = _check_fraction(self.quantile, "quantile")
        defined = M[~np.isnan(M)]
        if self.quantile_value is not None:
            value = float(self.quantile_value)
        elif defined.size:
            value = _quantile(defined, q)
        else:
            value = float("nan")
        ax, fig = _check_ax(ax, "MemorizationHistogramDisplay.plot")

        finite = M[np.isfinite(M)]
        explicit = not isinstance(bins, (Integral, str))
        if explicit:  # the given edges decide what is binned
            edges_in = np.asarray(bins, dtype=np.float64)
            limits = (float(edges_in[0]), float(edges_in[-1]))
        elif not finite.size:
            limits = None
        elif clip_outliers:
            limits = _robust_limits(finite, include=(value,))
        else:
            limits = (float(finite.min()), float(finite.max()))
        if limits is None:
            inside = finite
        else:
            inside = finite[(finite >= limits[0]) & (finite <= limits[1])]
        n_below = 0 if limits is None else int((finite < limits[0]).sum())
        n_above = 0 if limits is None else int((finite > limits[1]).sum())
        shown = (
            f"{finite.size} finite scores"
            if inside.size == finite.size
            else f"{inside.size} of {finite.size} finite scores"
        )
        hist_kwargs = _validate_style_kwargs(
            {"color": "C0", "alpha": 0.8, "label": shown}, kwargs
        )
        if not explicit and limits is not None:
            hist_kwargs.setdefault("range", limits)
        counts, edges, patches = ax.hist(inside, bins=bins, **hist_kwargs)
        label = f"{q:g}-quantile = {value:.3g} nats"
        line = None
        if np.isfinite(value):
            line = ax.axvline(value, color="C3", linestyle="--", label=label)
        notes = [None if line is not None else f"{label} (not drawn)"]
        markers = []
        if n_below or n_above:
            if explicit:
                notes.append(
                    f"not binned: {n_below + n_above} finite scores outside "
                    f"the given bins ({', '.join(_beyond_text(finite, limits, 'M'))})"
                )
            else:
                edge_lo, edge_hi = _padded(limits)
                ax.set_xlim(edge_lo, edge_hi)
                for n, x, marker, sign, limit, extreme, which in (
                    (n_above, edge_hi, ">", ">", limits[1], finite.max(), "max"),
                    (n_below, edge_lo, "<", "<", limits[0], finite.min(), "min"),
                ):
                    if not n:
                        continue
                    (mark,) = ax.plot(
                        [x],
                        [n],
                        marker=marker,
                        markersize=9,
                        linestyle="none",
                        color="C1",
                        markeredgecolor="k",
                        clip_on=False,
                        zorder=3,
                        label=(
                            f"{_plural(n, 'score')} {sign} {limit:.3g}, off the "
                            f"axis ({which} {extreme:.3g})"
                        ),
                    )
                    markers.append(mark)
        notes.append(_nonfinite_note(M))

        ax.set_xlabel(_M_LABEL)
        ax.set_ylabel("number of samples")
        ax.set_title(f"Memorization scores of {M.size} samples")
        self.n_nan_, self.n_posinf_, self.n_neginf_ = _count_nonfinite(M)
        self.quantile_value_ = value
        self.counts_ = np.asarray(counts)
        self.bin_edges_ = np.asarray(edges)
        self.patches_ = patches
        self.line_ = line
        self.limits_ = limits
        self.n_below_, self.n_above_ = n_below, n_above
        self.outlier_markers_ = markers
        self.legend_ = _legend(ax, notes)
        self.ax_ = ax
        self.figure_ = fig
        return self

    @classmethod
    def from_estimator(
        cls, scorer, *, quantile=0.95, bins=50, clip_outliers=True, ax=None
    ):
        """Plot the histogram of a fitted MemorizationScorer's scores.

        Parameters
        ----------
        scorer : MemorizationScorer or Pipeline
            A fitted MemorizationScorer (or a Pipeline ending in one); its
            ``memorization_scores_`` are plotted.
        quantile : float in [0, 1], default=0.95
            The quantile level marked by the line.
        bins : int, sequence or str, default=50
            Bins of the histogram, as for :func:`numpy.histogram`.
        clip_outliers : bool, default=True
            Draw far outliers as a marker at the edge of the axis, counted
            in the legend, so the bulk stays readable (see :meth:`plot`).
        ax : matplotlib Axes, default=None
            Axes to draw into; None creates a new figure.

        Returns
        -------
        display : MemorizationHistogramDisplay
        """
        est = _unwrap_memorization_scorer(
            scorer,
            ("memorization_scores_",),
            "MemorizationHistogramDisplay.from_estimator",
        )
        return cls.from_predictions(
            est.memorization_scores_,
            quantile=quantile,
            bins=bins,
            clip_outliers=clip_outliers,
            ax=ax,
        )

    @classmethod
    def from_predictions(
        cls, memorization, *, quantile=0.95, bins=50, clip_outliers=True, ax=None
    ):
        """Plot the histogram of an array of memorization scores.

        Parameters
        ----------
        memorization : array-like of shape (n_samples,)
            Memorization scores; NaN and infinite values allowed (counted in
            the legend).
        quantile : float in [0, 1], default=0.95
            The quantile level marked by the line.
        bins : int, sequence or str, default=50
            Bins of the histogram, as for :func:`numpy.histogram`.
        clip_outliers : bool, default=True
            Draw far outliers as a marker at the edge of the axis, counted
            in the legend, so the bulk stays readable (see :meth:`plot`).
        ax : matplotlib Axes, default=None
            Axes to draw into; None creates a new figure.

        Returns
        -------
        display : MemorizationHistogramDisplay
        """
        M = _check_scores(memorization, "memorization")
        q = _check_fraction(quantile, "quantile")
        defined = M[~np.isnan(M)]
        value = _quantile(defined, q) if defined.size else float("nan")
        disp = cls(M, quantile_value=value, quantile=q)
        return disp.plot(ax=ax, bins=bins, clip_outliers=clip_outliers)


# ---------------------------------------------------------------------------
# 2. most / median / least memorized samples
# ---------------------------------------------------------------------------


def _check_which(which):
    if isinstance(which, str):
        which = (which,)
    which = tuple(which)
    if (
        not which
        or any(w not in _WHICH for w in which)
        or len(set(which)) != len(which)
    ):
        raise ValueError(
            f"which must be a non-empty sequence of distinct values among "
            f"{_WHICH}, got {which!r}."
        )
    return which


def _select_samples(M, which, n_samples):
    """Row indices of the most / median / least memorized samples.

    NaN scores are left out; ``+inf`` ranks first. Ties keep the row order.
    """
    defined = np.flatnonzero(~np.isnan(M))
    if n_samples > defined.size:
        raise ValueError(
            f"n_samples={n_samples} but only {defined.size} of {M.size} samples "
            "have a defined (non-NaN) memorization score; pass "
            f"n_samples <= {defined.size}."
        )
    ascending = defined[np.argsort(M[defined], kind="stable")]
    descending = defined[np.argsort(-M[defined], kind="stable")]
    start = (defined.size - n_samples) // 2
    choice = {
        "most": descending[:n_samples],
        "median": ascending[start : start + n_samples],
        "least": ascending[:n_samples],
    }
    return {w: choice[w] for w in which}


def _check_image_shape(image_shape, n_features):
    if image_shape is None:
        side = int(round(np.sqrt(n_features)))
        if side * side != n_features:
            raise ValueError(
                f"Cannot infer the image shape: n_features={n_features} is not a "
                "perfect square. Pass image_shape, e.g. image_shape=(H, W) for "
                "grayscale or (H, W, 3) for RGB rows."
            )
        return (side, side)
    shape = tuple(int(s) for s in image_shape)
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in (3, 4)):
        raise ValueError(
            f"image_shape must be (H, W) for grayscale or (H, W, 3) / (H, W, 4) "
            f"for RGB(A) images, got {image_shape!r}."
        )
    if int(np.prod(shape)) != n_features:
        raise ValueError(
            f"image_shape={shape} holds {int(np.prod(shape))} values but the rows "
            f"of X have n_features={n_features}. Pass the shape of one image "
            "(e.g. (8, 8) for digits, (28, 28) for MNIST, (32, 32, 3) for CIFAR)."
        )
    return shape


def _grid_axes(ax, n_rows, n_cols):
    """Axes for the grid: a new figure, a subdivided Axes, or given axes."""
    if ax is None:
        fig, axes = plt.subplots(
            n_rows,
            n_cols,
            figsize=(1.2 * n_cols + 0.8, 1.4 * n_rows + 0.4),
            squeeze=False,
            layout="constrained",
        )
        return fig, axes, None
    if isinstance(ax, Axes):
        spec = ax.get_subplotspec()
        if spec is None:
            raise ValueError(
                "ax must be an Axes created on a grid (plt.subplots or "
                "fig.add_subplot), which the display divides into the image "
                "grid, or an array of Axes of shape (len(which), n_samples)."
            )
        fig = ax.figure
        ax.set_axis_off()
        gs = spec.subgridspec(n_rows, n_cols, wspace=0.1, hspace=0.4)
        axes = np.empty((n_rows, n_cols), dtype=object)
        for r in range(n_rows):
            for c in range(n_cols):
                axes[r, c] = fig.add_subplot(gs[r, c])
        return fig, axes, ax
    axes = np.asarray(ax, dtype=object)
    if axes.size != n_rows * n_cols or not all(isinstance(a, Axes) for a in axes.flat):
        raise ValueError(
            f"ax must be None, a Matplotlib Axes or an array of {n_rows} x "
            f"{n_cols} Axes (len(which) x n_samples); got {type(ax).__name__} "
            f"of size {axes.size}."
        )
    axes = axes.reshape(n_rows, n_cols)
    return axes[0, 0].figure, axes, None


def _image_style(lo, hi, shape, cmap, kwargs):
    """``imshow`` keywords and the value scale of RGB images in ``[lo, hi]``.

    Grayscale images share ``vmin``/``vmax`` and ``cmap``; RGB images are
    mapped to [0, 1] from [0, 1], [0, 255] or their own range (``scale``).
    """
    if len(shape) == 2:
        default = {"cmap": cmap, "vmin": lo, "vmax": hi}
        scale = None
    else:
        default = {}
        if lo >= 0 and hi <= 1:
            scale = (0.0, 1.0)
        elif lo >= 0 and hi <= 255:
            scale = (0.0, 255.0)
        else:
            scale = (lo, hi if hi > lo else lo + 1.0)
    default["interpolation"] = "nearest"
    return _validate_style_kwargs(default, kwargs), scale


def _draw_image(cell, row, shape, scale, imshow_kwargs, title):
    """One flattened image in a bare grid cell, with its title."""
    cell.set_xticks([])
    cell.set_yticks([])
    img = row.reshape(shape)
    if scale is not None:
        img = (img - scale[0]) / (scale[1] - scale[0])
    cell.set_title(title, fontsize="small")
    return cell.imshow(img, **imshow_kwargs)


class MemorizedSamplesDisplay:
    """The most, median and least memorized samples as an image grid.

    One row per entry of ``which`` (the samples with the highest scores, the
    ones around the median, the lowest), ``n_samples`` columns, each cell
    titled with the sample's score in nats. Samples with an undefined (NaN)
    score are not ranked; ``+inf`` counts as the highest score. Grayscale
    images share one colour scale (the range of ``X``) so cells are
    comparable.

    It is recommended to create the display with :meth:`from_estimator` or
    :meth:`from_predictions`; they select the samples and plot.

    Parameters
    ----------
    memorization : array-like of shape (n_samples,)
        Memorization scores of the rows of ``X``.
    X : array-like of shape (n_samples, n_features)
        The training rows, each a flattened image.
    indices : dict of str to array of int
        For each row of the grid (``"most"``, ``"median"``, ``"least"``), the
        row indices of ``X`` to show, from left to right.
    image_shape : tuple of int
        Shape of one image: ``(H, W)`` or ``(H, W, 3)``.

    Attributes
    ----------
    axes_ : ndarray of matplotlib Axes, shape (len(which), n_samples)
        One Axes per image.
    images_ : ndarray of matplotlib AxesImage, shape (len(which), n_samples)
        The images drawn.
    indices_ : dict of str to ndarray of int
        For each row of the grid, the row indices of ``X`` shown.
    bounding_ax_ : matplotlib Axes or None
        The Axes given as ``ax`` that the grid subdivides (turned off).
    figure_ : matplotlib Figure
        Figure containing the grid.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.neighbors import KernelDensity
    >>> from sklearn_mem import MemorizationScorer
    >>> from sklearn_mem.plotting import MemorizedSamplesDisplay
    >>> X = load_digits().data[:200] / 16
    >>> mem = MemorizationScorer(KernelDensity(bandwidth=0.5), cv=5, random_state=0)
    >>> mem = mem.fit(X)
    >>> disp = MemorizedSamplesDisplay.from_estimator(mem, X, n_samples=4)
    >>> disp.axes_.shape
    (3, 4)
    >>> bool(disp.indices_["most"][0] == mem.memorization_scores_.argmax())
    True
    """

    def __init__(self, memorization, X, *, indices, image_shape):
        self.memorization = memorization
        self.X = X
        self.indices = indices
        self.image_shape = image_shape

    def plot(self, ax=None, *, cmap="gray_r", **kwargs):
        """Draw the image grid.

        Parameters
        ----------
        ax : matplotlib Axes or array of Axes, default=None
            None creates a new figure; an Axes is divided into the grid; an
            array of ``len(which) x n_samples`` Axes is used as it is.
        cmap : str or Colormap, default="gray_r"
            Colour map of grayscale images (ignored for RGB).
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.imshow`.

        Returns
        -------
        display : MemorizedSamplesDisplay
        """
        M = _check_scores(self.memorization, "memorization")
        X = check_array(self.X, input_name="X", dtype=np.float64)
        _check_same_length(M, "memorization", X, "X")
        shape = _check_image_shape(self.image_shape, X.shape[1])
        indices = {w: np.asarray(i, dtype=np.intp) for w, i in self.indices.items()}
        if not indices:
            raise ValueError("indices is empty: give at least one row of samples.")
        n_rows = len(indices)
        n_cols = max(i.size for i in indices.values())
        if n_cols == 0:
            raise ValueError("indices holds no sample to show.")
        fig, axes, bounding = _grid_axes(ax, n_rows, n_cols)
        imshow_kwargs, scale = _image_style(X.min(), X.max(), shape, cmap, kwargs)

        images = np.empty((n_rows, n_cols), dtype=object)
        for r, (which, idx) in enumerate(indices.items()):
            for c in range(n_cols):
                cell = axes[r, c]
                if c >= idx.size:
                    cell.set_xticks([])
                    cell.set_yticks([])
                    cell.set_axis_off()
                    continue
                images[r, c] = _draw_image(
                    cell,
                    X[idx[c]],
                    shape,
                    scale,
                    imshow_kwargs,
                    f"M = {M[idx[c]]:.2f}",
                )
            axes[r, 0].set_ylabel(f"{which}\nmemorized", fontsize="small")
        if ax is None:
            fig.suptitle("Memorized samples (M in nats)")
        self.axes_ = axes
        self.images_ = images
        self.indices_ = indices
        self.bounding_ax_ = bounding
        self.figure_ = fig
        return self

    @classmethod
    def from_estimator(
        cls,
        scorer,
        X,
        *,
        image_shape=None,
        n_samples=8,
        which=_WHICH,
        cmap="gray_r",
        ax=None,
    ):
        """Show the most / median / least memorized rows of the training data.

        Parameters
        ----------
        scorer : MemorizationScorer or Pipeline
            A fitted MemorizationScorer (or a Pipeline ending in one).
        X : array-like of shape (n_samples, n_features)
            The training data the scorer was fitted on, in the same order
            (its ``memorization_scores_`` are matched to the rows by position;
            for a Pipeline, the raw rows before its transformers).
        image_shape : tuple of int, default=None
            Shape of one image, e.g. ``(8, 8)`` for digits, ``(28, 28)`` or
            ``(H, W, 3)``. None infers a square grayscale image when
            ``n_features`` is a perfect square.
        n_samples : int, default=8
            Number of images per row.
        which : sequence of {"most", "median", "least"}, \
                default=("most", "median", "least")
            The rows of the grid, from top to bottom.
        cmap : str or Colormap, default="gray_r"
            Colour map of grayscale images.
        ax : matplotlib Axes or array of Axes, default=None
            Where to draw (see :meth:`plot`).

        Returns
        -------
        display : MemorizedSamplesDisplay
        """
        est = _unwrap_memorization_scorer(
            scorer, ("memorization_scores_",), "MemorizedSamplesDisplay.from_estimator"
        )
        return cls.from_predictions(
            est.memorization_scores_,
            X,
            image_shape=image_shape,
            n_samples=n_samples,
            which=which,
            cmap=cmap,
            ax=ax,
        )

    @classmethod
    def from_predictions(
        cls,
        memorization,
        X,
        *,
        image_shape=None,
        n_samples=8,
        which=_WHICH,
        cmap="gray_r",
        ax=None,
    ):
        """Show the most / median / least memorized rows of ``X``.

        Parameters
        ----------
        memorization : array-like of shape (n_samples,)
            Memorization score of each row of ``X``.
        X : array-like of shape (n_samples, n_features)
            The training rows, each a flattened image.
        image_shape : tuple of int, default=None
            Shape of one image (see :meth:`from_estimator`).
        n_samples : int, default=8
            Number of images per row.
        which : sequence of {"most", "median", "least"}, \
                default=("most", "median", "least")
            The rows of the grid, from top to bottom.
        cmap : str or Colormap, default="gray_r"
            Colour map of grayscale images.
        ax : matplotlib Axes or array of Axes, default=None
            Where to draw (see :meth:`plot`).

        Returns
        -------
        display : MemorizedSamplesDisplay
        """
        M = _check_scores(memorization, "memorization")
        X = check_array(X, input_name="X", dtype=np.float64)
        _check_same_length(M, "memorization", X, "X")
        shape = _check_image_shape(image_shape, X.shape[1])
        n_samples = _check_positive_int(n_samples, "n_samples")
        indices = _select_samples(M, _check_which(which), n_samples)
        disp = cls(M, X, indices=indices, image_shape=shape)
        return disp.plot(ax=ax, cmap=cmap)


# ---------------------------------------------------------------------------
# 3. memorization against in-sample log-likelihood
# ---------------------------------------------------------------------------


class MemorizationVsLoglikDisplay:
    """Memorization scores against the in-sample log-likelihood.

    A scatter of ``M`` against ``U`` (``in_loglik_``, the log-likelihood of
    each sample under the fits that trained on it), the highly memorized
    samples (``M > threshold``) in another colour, so the paper's
    observation that memorized samples are the unusual, low-likelihood ones
    shows as coloured points gathered on the left. The display also gives
    the share of highly memorized samples in each log-likelihood bin
    (``share_``; drawn on a twin axis with ``show_share=True``). The bins
    are quantile bins of ``U`` (about equally many samples each).

    Samples with a NaN score or a non-finite ``U`` are left out of the bins;
    ``+inf`` scores count as above the threshold. Points that cannot be drawn
    are counted in the legend. A few points far from the others are drawn
    on the edge of the axes so the bulk stays readable, and counted in the
    legend (``clip_outliers`` in :meth:`plot`).

    It is recommended to create the display with :meth:`from_estimator` or
    :meth:`from_predictions`.

    Parameters
    ----------
    memorization : array-like of shape (n_samples,)
        Memorization scores ``M``.
    loglik : array-like of shape (n_samples,)
        In-sample log-likelihoods ``U``.
    threshold : float, default=None
        Scores above it are "highly memorized". None takes the
        0.95-quantile of the non-NaN scores.
    n_bins : int, default=10
        Number of quantile bins of the log-likelihood (fewer when ties make
        some edges coincide).

    Attributes
    ----------
    threshold_ : float
        The threshold used.
    bin_edges_ : ndarray of shape (n_bins + 1,)
        Edges of the log-likelihood bins; each bin holds ``[lo, hi)``, the
        last one ``[lo, hi]``.
    share_ : ndarray of shape (n_bins,)
        Fraction of the binned samples of each bin with ``M > threshold_``
        (NaN for an empty bin).
    counts_ : ndarray of int, shape (n_bins,)
        Number of samples in each bin.
    scatter_ : matplotlib PathCollection
        The points with finite ``M`` and ``U`` inside the axis limits.
    outliers_ : list of matplotlib PathCollection
        The points beyond the axis limits, drawn on the edge as arrowheads
        pointing their way (empty when there are none).
    n_beyond_ : int
        Number of those points.
    limits_ : tuple of float or None
        ``(low, high)`` of the finite ``M`` drawn inside the axes (None
        with ``clip_outliers=False``).
    loglik_limits_ : tuple of float or None
        The same for ``U``.
    stairs_ : matplotlib StepPatch or None
        The binned share, on ``ax_share_`` (None unless ``show_share``).
    threshold_line_ : matplotlib Line2D or None
        Horizontal line at the threshold (None when it is not finite).
    ax_share_ : matplotlib Axes or None
        Twin axis of ``ax_`` holding the share (None unless
        ``show_share``).
    legend_ : matplotlib Legend
        The legend.
    ax_ : matplotlib Axes
        Axes with the scatter.
    figure_ : matplotlib Figure
        Figure containing the plot.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.neighbors import KernelDensity
    >>> from sklearn_mem import MemorizationScorer
    >>> from sklearn_mem.plotting import MemorizationVsLoglikDisplay
    >>> X = load_digits().data[:200] / 16
    >>> mem = MemorizationScorer(KernelDensity(bandwidth=0.5), cv=5, random_state=0)
    >>> mem = mem.fit(X)
    >>> disp = MemorizationVsLoglikDisplay.from_estimator(mem, n_bins=5)
    >>> disp.share_.shape
    (5,)
    >>> int(disp.counts_.sum())
    200
    >>> disp.n_beyond_
    0
    """

    def __init__(self, memorization, loglik, *, threshold=None, n_bins=10):
        self.memorization = memorization
        self.loglik = loglik
        self.threshold = threshold
        self.n_bins = n_bins

    def _binned_share(self, M, U):
        """Threshold, quantile bin edges, counts and share of M > threshold."""
        n_bins = _check_positive_int(self.n_bins, "n_bins")
        defined = ~np.isnan(M)
        if not defined.any():
            raise ValueError(
                "Every memorization score is NaN (undefined); there is nothing "
                "to plot. Check the splitter gives every sample in and out fits."
            )
        if self.threshold is None:
            threshold = _quantile(M[defined], 0.95)
        else:
            if not isinstance(self.threshold, Real) or np.isnan(self.threshold):
                raise ValueError(
                    f"threshold must be a number or None, got {self.threshold!r}."
                )
            threshold = float(self.threshold)
        usable = defined & np.isfinite(U)
        if not usable.any():
            raise ValueError(
                "No sample has both a defined memorization score and a finite "
                "log-likelihood, so no log-likelihood bin can be formed."
            )
        u = U[usable]
        edges = np.unique(np.quantile(u, np.linspace(0, 1, n_bins + 1)))
        if edges.size < 2:
            edges = np.array([edges[0], edges[0]])
        nb = edges.size - 1
        idx = np.clip(np.searchsorted(edges, u, side="right") - 1, 0, nb - 1)
        counts = np.bincount(idx, minlength=nb)
        high = np.bincount(idx, weights=M[usable] > threshold, minlength=nb)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(counts > 0, high / np.maximum(counts, 1), np.nan)
        return threshold, edges, counts, share

    def plot(self, ax=None, *, clip_outliers=True, show_share=False, **kwargs):
        """Draw the scatter, and on request the binned share.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes for the scatter (the share goes on its twin axis); None
            creates a new figure.
        clip_outliers : bool, default=True
            Keep the bulk of the points readable when a few lie far from all
            others. On each axis, take the range of the values within
            Tukey's far-out fences (the quartiles -+ 3 inter-quartile
            ranges; the threshold included on the M axis): points more than
            twice that range beyond it are drawn on the edge of the axes as
            arrowheads pointing their way (^ v > <) and counted in the
            legend with their extreme value. A merely long tail stays on
            the axes. False draws every finite point on the full range.
        show_share : bool, default=False
            Also draw ``share_`` (the share of samples with
            ``M > threshold_`` in each log-likelihood bin) as steps on a
            twin y axis. Off by default: the points above the threshold
            are coloured, which shows where they lie at a glance.
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.scatter`.

        Returns
        -------
        display : MemorizationVsLoglikDisplay
        """
        M = _check_scores(self.memorization, "memorization")
        U = _check_scores(self.loglik, "loglik")
        _check_same_length(M, "memorization", U, "loglik")
        threshold, edges, counts, share = self._binned_share(M, U)
        ax, fig = _check_ax(ax, "MemorizationVsLoglikDisplay.plot")

        finite = np.isfinite(M) & np.isfinite(U)
        u, m = U[finite], M[finite]
        if clip_outliers and u.size:
            m_limits = _robust_limits(m, include=(threshold,))
            u_limits = _robust_limits(u)
        else:
            m_limits = u_limits = None
        colors = np.where(m > threshold, "C1", "C0")
        edge_artists, beyond = _edge_points(
            ax, u, m, u_limits, m_limits, colors, size=40
        )
        scatter_kwargs = _validate_style_kwargs(
            {"color": colors[~beyond], "s": 12, "alpha": 0.7, "linewidths": 0},
            kwargs,
        )
        scatter = ax.scatter(u[~beyond], m[~beyond], **scatter_kwargs)
        n_high = int((M[~np.isnan(M)] > threshold).sum())
        n_defined = int((~np.isnan(M)).sum())
        ax.scatter(
            [],
            [],
            color="C1",
            s=12,
            label=f"M > threshold: {n_high} of {n_defined} samples",
        )
        line = None
        if np.isfinite(threshold):
            source = "" if self.threshold is not None else " (0.95-quantile)"
            line = ax.axhline(
                threshold,
                color="C1",
                linestyle="--",
                label=f"threshold = {threshold:.3g} nats{source}",
            )
        if beyond.any():
            parts = _beyond_text(m, m_limits, "M") if m_limits else []
            parts += _beyond_text(u, u_limits, "U") if u_limits else []
            edge_artists[0].set_label(
                f"{_plural(int(beyond.sum()), 'point')} off the axes, drawn "
                f"on the edge ({', '.join(parts)})"
            )
            ax.set_xlim(*_padded(u_limits) if u_limits else ax.get_xlim())
            ax.set_ylim(*_padded(m_limits) if m_limits else ax.get_ylim())
        ax.set_xlabel("in-sample log-likelihood U (nats)")
        ax.set_ylabel(_M_LABEL)
        ax.set_title("Memorization against log-likelihood")

        ax_share = stairs = None
        if show_share:
            ax_share = ax.twinx()
            stairs = ax_share.stairs(
                share,
                edges,
                color="C3",
                linewidth=2,
                baseline=None,
                label="share with M > threshold (per bin)",
            )
            top = np.nanmax(share) if np.isfinite(share).any() else 1.0
            ax_share.set_ylim(0, max(top * 1.15, 0.05))
            ax_share.set_ylabel(f"share of samples with M > {threshold:.3g}")

        notes = [_nonfinite_note(M)]
        n_bad_u = int((~np.isfinite(U)).sum())
        if n_bad_u:
            notes.append(f"not shown: {n_bad_u} non-finite U")
        self.threshold_ = threshold
        self.bin_edges_ = edges
        self.counts_ = counts
        self.share_ = share
        self.scatter_ = scatter
        self.outliers_ = edge_artists
        self.n_beyond_ = int(beyond.sum())
        self.limits_ = m_limits
        self.loglik_limits_ = u_limits
        self.stairs_ = stairs
        self.threshold_line_ = line
        self.ax_share_ = ax_share
        self.legend_ = _legend(
            ax, notes, extra_axes=(ax_share,) if ax_share is not None else ()
        )
        self.ax_ = ax
        self.figure_ = fig
        return self

    @classmethod
    def from_estimator(
        cls,
        scorer,
        *,
        threshold=None,
        n_bins=10,
        clip_outliers=True,
        show_share=False,
        ax=None,
    ):
        """Plot a fitted MemorizationScorer's scores against ``in_loglik_``.

        Parameters
        ----------
        scorer : MemorizationScorer or Pipeline
            A fitted MemorizationScorer (or a Pipeline ending in one).
        threshold : float, default=None
            Scores above it are "highly memorized"; None takes the
            0.95-quantile of the scores.
        n_bins : int, default=10
            Number of quantile bins of the log-likelihood.
        clip_outliers : bool, default=True
            Draw far outliers on the edge of the axes, counted in the
            legend, so the bulk stays readable (see :meth:`plot`).
        show_share : bool, default=False
            Also draw the share of samples above the threshold per bin on a
            twin axis (see :meth:`plot`).
        ax : matplotlib Axes, default=None
            Axes to draw into; None creates a new figure.

        Returns
        -------
        display : MemorizationVsLoglikDisplay
        """
        est = _unwrap_memorization_scorer(
            scorer,
            ("memorization_scores_", "in_loglik_"),
            "MemorizationVsLoglikDisplay.from_estimator",
        )
        return cls.from_predictions(
            est.memorization_scores_,
            est.in_loglik_,
            threshold=threshold,
            n_bins=n_bins,
            clip_outliers=clip_outliers,
            show_share=show_share,
            ax=ax,
        )

    @classmethod
    def from_predictions(
        cls,
        memorization,
        loglik,
        *,
        threshold=None,
        n_bins=10,
        clip_outliers=True,
        show_share=False,
        ax=None,
    ):
        """Plot memorization scores against log-likelihoods.

        Parameters
        ----------
        memorization : array-like of shape (n_samples,)
            Memorization scores ``M``.
        loglik : array-like of shape (n_samples,)
            In-sample log-likelihoods ``U`` of the same samples.
        threshold : float, default=None
            Scores above it are "highly memorized"; None takes the
            0.95-quantile of the scores.
        n_bins : int, default=10
            Number of quantile bins of the log-likelihood.
        clip_outliers : bool, default=True
            Draw far outliers on the edge of the axes, counted in the
            legend, so the bulk stays readable (see :meth:`plot`).
        show_share : bool, default=False
            Also draw the share of samples above the threshold per bin on a
            twin axis (see :meth:`plot`).
        ax : matplotlib Axes, default=None
            Axes to draw into; None creates a new figure.

        Returns
        -------
        display : MemorizationVsLoglikDisplay
        """
        M = _check_scores(memorization, "memorization")
        U = _check_scores(loglik, "loglik")
        _check_same_length(M, "memorization", U, "loglik")
        disp = cls(M, U, threshold=threshold, n_bins=n_bins)
        return disp.plot(ax=ax, clip_outliers=clip_outliers, show_share=show_share)


# ---------------------------------------------------------------------------
# 4. memorization against the nearest-neighbour ratio
# ---------------------------------------------------------------------------


class MemorizationVsRatioDisplay:
    """Memorization scores against the nearest-neighbour ratio.

    A scatter of ``M`` against the paper's ratio ``rho_i`` (distance from
    ``x_i`` to the nearest held-out real sample over the distance to the
    nearest generated sample, see
    :func:`sklearn_mem.neighbors.nearest_neighbor_ratio`) on a log-scaled
    x axis, with a dotted line at ``rho = 1`` and Spearman's rank
    correlation in the title. The correlation uses every sample where both
    values are defined (not NaN), infinities included (they rank at the
    ends); only finite scores and finite positive ratios can be drawn, the
    others are counted in the legend. A few scores far from the others are
    drawn on the edge of the axes so the bulk stays readable, and counted
    in the legend (``clip_outliers`` in :meth:`plot`).

    It is recommended to create the display with :meth:`from_estimator` or
    :meth:`from_predictions`.

    Parameters
    ----------
    memorization : array-like of shape (n_samples,)
        Memorization scores ``M``.
    ratio : array-like of shape (n_samples,)
        Nearest-neighbour ratios of the same samples.

    Attributes
    ----------
    spearman_ : float
        Spearman's rank correlation of ``M`` and ``ratio``
        (:func:`scipy.stats.spearmanr`).
    spearman_pvalue_ : float
        Its two-sided p-value.
    n_used_ : int
        Number of samples in the correlation.
    scatter_ : matplotlib PathCollection
        The points drawn inside the axis limits.
    outliers_ : list of matplotlib PathCollection
        The points with a score beyond the limits of the M axis, drawn on
        its edge as arrowheads (empty when there are none).
    n_beyond_ : int
        Number of those points.
    limits_ : tuple of float or None
        ``(low, high)`` of the scores drawn inside the axes (None with
        ``clip_outliers=False`` or when no point can be drawn).
    legend_ : matplotlib Legend or None
        The legend.
    ax_ : matplotlib Axes
        Axes with the scatter.
    figure_ : matplotlib Figure
        Figure containing the scatter.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.neighbors import KernelDensity
    >>> from sklearn_mem import MemorizationScorer
    >>> from sklearn_mem.plotting import MemorizationVsRatioDisplay
    >>> X = load_digits().data / 16
    >>> X_train, X_heldout = X[:200], X[200:400]
    >>> mem = MemorizationScorer(KernelDensity(bandwidth=0.5), cv=5, random_state=0)
    >>> mem = mem.fit(X_train)
    >>> X_generated = mem.estimator_.sample(200, random_state=0)
    >>> disp = MemorizationVsRatioDisplay.from_estimator(
    ...     mem, X_train, X_heldout, X_generated)
    >>> -1 <= disp.spearman_ <= 1
    True
    """

    def __init__(self, memorization, ratio):
        self.memorization = memorization
        self.ratio = ratio

    def plot(self, ax=None, *, clip_outliers=True, **kwargs):
        """Draw the scatter.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw into; None creates a new figure.
        clip_outliers : bool, default=True
            Keep the bulk of the points readable when a few scores lie far
            from all others. Take the range of the scores within Tukey's
            far-out fences (the quartiles -+ 3 inter-quartile ranges):
            points scoring more than twice that range beyond it are drawn
            on the edge of the M axis as arrowheads (^ or v) and counted in
            the legend with their extreme score. A merely long tail stays on
            the axis; the ratio is on a log scale already. False draws every
            point on the full range.
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.scatter`.

        Returns
        -------
        display : MemorizationVsRatioDisplay
        """
        M = _check_scores(self.memorization, "memorization")
        rho = _check_scores(self.ratio, "ratio")
        _check_same_length(M, "memorization", rho, "ratio")
        if (rho < 0).any():
            raise ValueError(
                "ratio holds negative values; a nearest-neighbour ratio is a "
                "ratio of distances (>= 0). Pass the output of "
                "sklearn_mem.neighbors.nearest_neighbor_ratio."
            )
        used = ~np.isnan(M) & ~np.isnan(rho)
        n_used = int(used.sum())
        if n_used >= 2:
            result = spearmanr(M[used], rho[used])
            stat, pvalue = float(result.statistic), float(result.pvalue)
        else:
            stat = pvalue = float("nan")
        ax, fig = _check_ax(ax, "MemorizationVsRatioDisplay.plot")

        shown = np.isfinite(M) & np.isfinite(rho) & (rho > 0)
        r, m = rho[shown], M[shown]
        m_limits = _robust_limits(m) if clip_outliers and m.size else None
        ax.set_xscale("log")
        edge_artists, beyond = _edge_points(
            ax, r, m, None, m_limits, np.full(m.shape, "C0"), size=40
        )
        scatter_kwargs = _validate_style_kwargs(
            {"color": "C0", "s": 12, "alpha": 0.7, "linewidths": 0}, kwargs
        )
        scatter = ax.scatter(r[~beyond], m[~beyond], **scatter_kwargs)
        if beyond.any():
            edge_artists[0].set_label(
                f"{_plural(int(beyond.sum()), 'point')} off the axis, drawn on "
                f"the edge ({', '.join(_beyond_text(m, m_limits, 'M'))})"
            )
            ax.set_ylim(*_padded(m_limits))
        ax.axvline(1.0, color="0.5", linestyle=":", label="rho = 1")
        ax.set_xlabel("nearest-neighbour ratio rho (log scale)")
        ax.set_ylabel(_M_LABEL)
        ax.set_title(f"Spearman rank correlation = {stat:.3f} (n = {n_used})")
        notes = [_nonfinite_note(M)]
        n_nan, n_pos, n_neg = _count_nonfinite(rho)
        n_zero = int((rho == 0).sum())
        bad = [
            f"{n} {what}"
            for n, what in ((n_nan, "NaN"), (n_pos, "+inf"), (n_zero, "zero"))
            if n
        ]
        if bad:
            notes.append(f"not shown: {', '.join(bad)} rho")
        self.spearman_ = stat
        self.spearman_pvalue_ = pvalue
        self.n_used_ = n_used
        self.scatter_ = scatter
        self.outliers_ = edge_artists
        self.n_beyond_ = int(beyond.sum())
        self.limits_ = m_limits
        self.legend_ = _legend(ax, notes)
        self.ax_ = ax
        self.figure_ = fig
        return self

    @classmethod
    def from_estimator(
        cls,
        scorer,
        X,
        X_heldout,
        X_generated,
        *,
        feature_map=None,
        clip_outliers=True,
        ax=None,
    ):
        """Compute the nearest-neighbour ratio of the training rows and plot.

        Parameters
        ----------
        scorer : MemorizationScorer or Pipeline
            A fitted MemorizationScorer (or a Pipeline ending in one).
        X : array-like of shape (n_samples, n_features)
            The training data the scorer was fitted on, in the same order.
        X_heldout : array-like of shape (n_heldout, n_features)
            Real samples the model was not trained on.
        X_generated : array-like of shape (n_generated, n_features)
            Samples drawn from the model (e.g. ``scorer.estimator_.sample``).
        feature_map : transformer, callable or None, default=None
            Representation in which distances are measured, as for
            :func:`~sklearn_mem.neighbors.nearest_neighbor_ratio`.
        clip_outliers : bool, default=True
            Draw far outlying scores on the edge of the axes, counted in the
            legend, so the bulk stays readable (see :meth:`plot`).
        ax : matplotlib Axes, default=None
            Axes to draw into; None creates a new figure.

        Returns
        -------
        display : MemorizationVsRatioDisplay
        """
        est = _unwrap_memorization_scorer(
            scorer,
            ("memorization_scores_",),
            "MemorizationVsRatioDisplay.from_estimator",
        )
        M = est.memorization_scores_
        n_rows = len(X) if hasattr(X, "__len__") else np.asarray(X).shape[0]
        if n_rows != M.shape[0]:
            raise ValueError(
                f"X has {n_rows} rows but the scorer was fitted on {M.shape[0]}; "
                "pass the training data the scorer was fitted on, in the same "
                "order."
            )
        ratio = nearest_neighbor_ratio(
            X, X_heldout, X_generated, feature_map=feature_map
        )
        return cls.from_predictions(M, ratio, clip_outliers=clip_outliers, ax=ax)

    @classmethod
    def from_predictions(cls, memorization, ratio, *, clip_outliers=True, ax=None):
        """Plot memorization scores against nearest-neighbour ratios.

        Parameters
        ----------
        memorization : array-like of shape (n_samples,)
            Memorization scores ``M``.
        ratio : array-like of shape (n_samples,)
            Nearest-neighbour ratios of the same samples, from
            :func:`~sklearn_mem.neighbors.nearest_neighbor_ratio`.
        clip_outliers : bool, default=True
            Draw far outlying scores on the edge of the axes, counted in the
            legend, so the bulk stays readable (see :meth:`plot`).
        ax : matplotlib Axes, default=None
            Axes to draw into; None creates a new figure.

        Returns
        -------
        display : MemorizationVsRatioDisplay
        """
        M = _check_scores(memorization, "memorization")
        rho = _check_scores(ratio, "ratio")
        _check_same_length(M, "memorization", rho, "ratio")
        return cls(M, rho).plot(ax=ax, clip_outliers=clip_outliers)


# ---------------------------------------------------------------------------
# 5. quantiles of memorization over epochs
# ---------------------------------------------------------------------------


class MemorizationOverEpochsDisplay:
    """Quantiles of the memorization scores over training epochs.

    The paper's learning-dynamics figure: for each checkpoint (epoch) the
    scores of all samples are summarised by a few quantiles, one line per
    quantile. Quantiles are taken over the non-NaN scores of each checkpoint,
    infinities included (as in :mod:`sklearn_mem.metrics`); a quantile that is
    infinite cannot be drawn and is counted in the legend.

    It is recommended to create the display with :meth:`from_predictions`
    (or :meth:`from_estimator` for a scorer that recorded per-epoch scores).

    Parameters
    ----------
    epochs : array-like of shape (n_checkpoints,)
        Epoch of each checkpoint, strictly increasing.
    memorization : array-like of shape (n_checkpoints, n_samples)
        Memorization scores of every sample at every checkpoint.
    quantiles : sequence of float in [0, 1], default=(0.5, 0.9, 0.95, 0.99)
        Quantile levels, one line each.

    Attributes
    ----------
    quantiles_ : ndarray of shape (n_checkpoints, n_quantiles)
        The quantiles of each checkpoint's scores (NaN where every score of
        the checkpoint is NaN).
    lines_ : list of matplotlib Line2D
        One line per quantile level.
    legend_ : matplotlib Legend
        The legend.
    ax_ : matplotlib Axes
        Axes with the lines.
    figure_ : matplotlib Figure
        Figure containing the lines.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mem.plotting import MemorizationOverEpochsDisplay
    >>> rng = np.random.RandomState(0)
    >>> epochs = [1, 5, 10, 20]
    >>> M = rng.exponential(scale=[[0.1], [0.5], [1.0], [2.0]], size=(4, 200))
    >>> disp = MemorizationOverEpochsDisplay.from_predictions(epochs, M)
    >>> disp.quantiles_.shape
    (4, 4)
    >>> len(disp.lines_)
    4
    """

    def __init__(self, epochs, memorization, *, quantiles=(0.5, 0.9, 0.95, 0.99)):
        self.epochs = epochs
        self.memorization = memorization
        self.quantiles = quantiles

    @staticmethod
    def _check(epochs, memorization, quantiles):
        M = check_array(
            memorization,
            ensure_all_finite=False,
            dtype=np.float64,
            input_name="memorization",
        )
        t = _check_scores(epochs, "epochs")
        if not np.isfinite(t).all():
            raise ValueError("epochs must be finite numbers.")
        if t.shape[0] != M.shape[0]:
            raise ValueError(
                f"memorization must have shape (n_checkpoints, n_samples) with one "
                f"row per epoch; got {M.shape[0]} rows for {t.shape[0]} epochs."
            )
        if (np.diff(t) <= 0).any():
            raise ValueError(
                "epochs must be strictly increasing (one checkpoint per epoch); "
                "sort the checkpoints, and the rows of memorization with them."
            )
        q = np.atleast_1d(np.asarray(quantiles, dtype=np.float64))
        if q.ndim != 1 or q.size == 0 or np.isnan(q).any() or (q < 0).any():
            raise ValueError(f"quantiles must be numbers in [0, 1], got {quantiles!r}.")
        if (q > 1).any():
            raise ValueError(f"quantiles must be numbers in [0, 1], got {quantiles!r}.")
        return t, M, q

    def plot(self, ax=None, **kwargs):
        """Draw one line per quantile over the epochs.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw into; None creates a new figure.
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.plot` for every line.

        Returns
        -------
        display : MemorizationOverEpochsDisplay
        """
        t, M, q = self._check(self.epochs, self.memorization, self.quantiles)
        values = np.full((M.shape[0], q.size), np.nan)
        for c, row in enumerate(M):
            defined = row[~np.isnan(row)]
            if defined.size:
                values[c] = [_quantile(defined, level) for level in q]
        ax, fig = _check_ax(ax, "MemorizationOverEpochsDisplay.plot")
        lines = []
        for j, level in enumerate(q):
            line_kwargs = _validate_style_kwargs(
                {"marker": "o", "markersize": 3, "label": f"{level:g}-quantile"},
                kwargs,
            )
            (line,) = ax.plot(t, values[:, j], **line_kwargs)
            lines.append(line)
        ax.set_xlabel("epoch")
        ax.set_ylabel(_M_LABEL)
        ax.set_title("Quantiles of memorization over training")
        notes = []
        n_nan = int(np.isnan(M).sum())
        if n_nan:
            notes.append(f"{n_nan} NaN (undefined) scores left out")
        nonfinite = _nonfinite_note(values, what="quantile values")
        if nonfinite:
            notes.append(nonfinite)
        self.quantiles_ = values
        self.lines_ = lines
        self.legend_ = _legend(ax, notes)
        self.ax_ = ax
        self.figure_ = fig
        return self

    @classmethod
    def from_estimator(cls, scorer, *, quantiles=(0.5, 0.9, 0.95, 0.99), ax=None):
        """Plot the per-epoch scores a MemorizationScorer recorded.

        Parameters
        ----------
        scorer : MemorizationScorer or Pipeline
            A fitted MemorizationScorer (or a Pipeline ending in one) with
            the attributes ``epoch_memorization_scores_`` (n_checkpoints,
            n_samples) and ``epochs_`` (n_checkpoints,).
        quantiles : sequence of float in [0, 1], \
                default=(0.5, 0.9, 0.95, 0.99)
            Quantile levels, one line each.
        ax : matplotlib Axes, default=None
            Axes to draw into; None creates a new figure.

        Returns
        -------
        display : MemorizationOverEpochsDisplay

        Raises
        ------
        AttributeError
            If the scorer did not record scores per epoch.
        """
        est = _unwrap_memorization_scorer(
            scorer,
            ("memorization_scores_",),
            "MemorizationOverEpochsDisplay.from_estimator",
        )
        missing = [
            a for a in ("epoch_memorization_scores_", "epochs_") if not hasattr(est, a)
        ]
        if missing:
            raise AttributeError(
                "Memorization over epochs needs a scorer fitted with per-epoch "
                f"recording; this {type(est).__name__} has no "
                f"{' or '.join(missing)}. Record the log-likelihoods at chosen "
                "epochs while training, compute the scores of every checkpoint "
                "and use MemorizationOverEpochsDisplay.from_predictions(epochs, "
                "memorization)."
            )
        return cls.from_predictions(
            est.epochs_, est.epoch_memorization_scores_, quantiles=quantiles, ax=ax
        )

    @classmethod
    def from_predictions(
        cls, epochs, memorization, *, quantiles=(0.5, 0.9, 0.95, 0.99), ax=None
    ):
        """Plot quantiles of per-checkpoint memorization scores over epochs.

        Parameters
        ----------
        epochs : array-like of shape (n_checkpoints,)
            Epoch of each checkpoint, strictly increasing.
        memorization : array-like of shape (n_checkpoints, n_samples)
            Memorization scores of every sample at every checkpoint.
        quantiles : sequence of float in [0, 1], \
                default=(0.5, 0.9, 0.95, 0.99)
            Quantile levels, one line each.
        ax : matplotlib Axes, default=None
            Axes to draw into; None creates a new figure.

        Returns
        -------
        display : MemorizationOverEpochsDisplay
        """
        t, M, q = cls._check(epochs, memorization, quantiles)
        return cls(t, M, quantiles=tuple(q)).plot(ax=ax)


# ---------------------------------------------------------------------------
# 6. high-influence train/test pairs
# ---------------------------------------------------------------------------


def _check_influence(influence):
    """Validate an influence matrix: 2-D, numeric, NaN and infinities allowed."""
    try:
        arr = check_array(
            influence,
            ensure_all_finite=False,
            ensure_min_samples=1,
            ensure_min_features=1,
            dtype=np.float64,
            input_name="influence",
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(
            "influence must be a 2-D array of real numbers of shape "
            f"(n_train, n_test), as MemorizationScorer.influence returns: {exc}"
        ) from exc
    return arr


def _rank_influencers(influence):
    """Training rows of each test column, most influential first.

    Returns ``order`` of shape (n_test, n_train): ``order[z]`` sorts the
    training rows by decreasing ``influence[:, z]``, NaN last, ``+inf``
    first, ties in row order (so ``order[z, 0]`` is ``nanargmax``).
    """
    values = influence.T
    return np.lexsort((-values, np.isnan(values)), axis=-1)


def _select_pairs(influence, n_pairs, n_influencers, test_indices):
    """Test columns to show and their most influential training rows."""
    n_train, n_test = influence.shape
    if n_influencers > n_train:
        raise ValueError(
            f"n_influencers={n_influencers} but there are only {n_train} "
            "training samples (rows of influence)."
        )
    n_defined = (~np.isnan(influence)).sum(axis=0)
    order = _rank_influencers(influence)
    if test_indices is None:
        eligible = np.flatnonzero(n_defined >= n_influencers)
        if n_pairs > eligible.size:
            raise ValueError(
                f"n_pairs={n_pairs} but only {eligible.size} of {n_test} test "
                f"samples have {n_influencers} training sample(s) with a "
                "defined (non-NaN) influence on them; pass n_pairs <= "
                f"{eligible.size}."
            )
        top = influence[order[eligible, 0], eligible]
        test = eligible[np.argsort(-top, kind="stable")[:n_pairs]]
    else:
        test = np.asarray(test_indices)
        if (
            test.ndim != 1
            or test.size == 0
            or not np.issubdtype(test.dtype, np.integer)
            or (test < -n_test).any()
            or (test >= n_test).any()
        ):
            raise ValueError(
                "test_indices must be a non-empty 1-D sequence of integer "
                f"positions of rows of X_test (0 to {n_test - 1}); got "
                f"{test_indices!r}."
            )
        test = test % n_test
        short = test[n_defined[test] < n_influencers]
        if short.size:
            raise ValueError(
                f"Test sample {int(short[0])} has fewer than {n_influencers} "
                "training samples with a defined (non-NaN) influence on it."
            )
    train = order[test, :n_influencers]
    return test.astype(np.intp), train.astype(np.intp)


def _check_labels(labels, n, name):
    if labels is None:
        return None
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(
            f"{name} must hold one label per row ({n}); got shape {labels.shape}."
        )
    return labels


class InfluentialPairsDisplay:
    """Test samples next to the training samples that influence them most.

    Feldman and Zhang's high-influence pairs: for a test sample ``z`` the
    training sample ``i`` with the highest influence ``infl[i, z]`` (see
    :meth:`sklearn_mem.MemorizationScorer.influence`) is the one whose
    presence in the training data most changes the model's response on ``z``
    (with ``response="correct"``, the probability that ``z`` is classified
    correctly). The grid has one column per pair, the test image on top and
    below it its ``n_influencers`` most influential training images, each
    titled with its row number and influence (and label, when given).
    Influences that are undefined (NaN) are not ranked; ``+inf`` ranks
    first. Ties keep the row order, so the top influencer of a test sample is
    ``np.nanargmax`` of its column. Grayscale images share one colour scale
    (the range of both ``X_train`` and ``X_test``).

    It is recommended to create the display with :meth:`from_estimator` or
    :meth:`from_predictions`; they select the pairs and plot.

    Parameters
    ----------
    influence : array-like of shape (n_train, n_test)
        Influence of every training sample on every test sample.
    X_train : array-like of shape (n_train, n_features)
        The training rows, each a flattened image.
    X_test : array-like of shape (n_test, n_features)
        The test rows, each a flattened image.
    test_indices : array-like of int, shape (n_pairs,)
        The rows of ``X_test`` to show, from left to right.
    train_indices : array-like of int, shape (n_pairs, n_influencers)
        For each of them, the rows of ``X_train`` to show below it, from top
        to bottom.
    image_shape : tuple of int
        Shape of one image: ``(H, W)`` or ``(H, W, 3)``.
    y_train, y_test : array-like of shape (n_train,) / (n_test,), default=None
        Labels written in the titles (optional).

    Attributes
    ----------
    axes_ : ndarray of matplotlib Axes, shape (1 + n_influencers, n_pairs)
        One Axes per image: row 0 the test images, row ``r`` their ``r``-th
        most influential training images.
    images_ : ndarray of matplotlib AxesImage, shape (1 + n_influencers, n_pairs)
        The images drawn.
    test_indices_ : ndarray of int, shape (n_pairs,)
        The rows of ``X_test`` shown.
    train_indices_ : ndarray of int, shape (n_pairs, n_influencers)
        ``train_indices_[p, r]``: the row of ``X_train`` with the
        ``r + 1``-th highest influence on test row ``test_indices_[p]``.
    influence_values_ : ndarray of shape (n_pairs, n_influencers)
        Their influences.
    bounding_ax_ : matplotlib Axes or None
        The Axes given as ``ax`` that the grid subdivides (turned off).
    figure_ : matplotlib Figure
        Figure containing the grid.

    See Also
    --------
    MemorizedSamplesDisplay : The most, median and least memorized samples.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.model_selection import ShuffleSplit
    >>> from sklearn.svm import SVC
    >>> from sklearn_mem import MemorizationScorer
    >>> from sklearn_mem.plotting import InfluentialPairsDisplay
    >>> X, y = load_digits(return_X_y=True)
    >>> X = X / 16
    >>> X_train, y_train, X_test, y_test = X[:300], y[:300], X[300:340], y[300:340]
    >>> mem = MemorizationScorer(
    ...     SVC(),
    ...     cv=ShuffleSplit(n_splits=30, train_size=0.7, random_state=0),
    ...     response="correct",
    ...     aggregate="mean",
    ...     keep_estimators=True,
    ...     random_state=0,
    ... ).fit(X_train, y_train)
    >>> disp = InfluentialPairsDisplay.from_estimator(
    ...     mem, X_train, X_test, y_test, image_shape=(8, 8), n_pairs=4
    ... )
    >>> disp.axes_.shape
    (2, 4)
    >>> infl = mem.influence(X_test, y_test)
    >>> top = np.nanargmax(infl[:, disp.test_indices_], axis=0)
    >>> bool((disp.train_indices_[:, 0] == top).all())
    True
    """

    def __init__(
        self,
        influence,
        X_train,
        X_test,
        *,
        test_indices,
        train_indices,
        image_shape,
        y_train=None,
        y_test=None,
    ):
        self.influence = influence
        self.X_train = X_train
        self.X_test = X_test
        self.test_indices = test_indices
        self.train_indices = train_indices
        self.image_shape = image_shape
        self.y_train = y_train
        self.y_test = y_test

    def plot(self, ax=None, *, cmap="gray_r", **kwargs):
        """Draw the pairs.

        Parameters
        ----------
        ax : matplotlib Axes or array of Axes, default=None
            None creates a new figure; an Axes is divided into the grid; an
            array of ``(1 + n_influencers) x n_pairs`` Axes is used as it is.
        cmap : str or Colormap, default="gray_r"
            Colour map of grayscale images (ignored for RGB).
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.imshow`.

        Returns
        -------
        display : InfluentialPairsDisplay
        """
        infl = _check_influence(self.influence)
        X_train = check_array(self.X_train, input_name="X_train", dtype=np.float64)
        X_test = check_array(self.X_test, input_name="X_test", dtype=np.float64)
        if infl.shape != (X_train.shape[0], X_test.shape[0]):
            raise ValueError(
                f"influence has shape {infl.shape}; expected (n_train, n_test) = "
                f"({X_train.shape[0]}, {X_test.shape[0]}), one row per row of "
                "X_train and one column per row of X_test."
            )
        if X_train.shape[1] != X_test.shape[1]:
            raise ValueError(
                f"X_train has {X_train.shape[1]} features and X_test "
                f"{X_test.shape[1]}; both must be flattened images of one shape."
            )
        shape = _check_image_shape(self.image_shape, X_train.shape[1])
        y_train = _check_labels(self.y_train, X_train.shape[0], "y_train")
        y_test = _check_labels(self.y_test, X_test.shape[0], "y_test")
        test = np.asarray(self.test_indices, dtype=np.intp).reshape(-1)
        train = np.asarray(self.train_indices, dtype=np.intp)
        if train.ndim == 1:
            train = train[:, None]
        if test.size == 0 or train.ndim != 2 or train.shape[0] != test.size:
            raise ValueError(
                "train_indices must have one row per entry of test_indices, of "
                f"shape (n_pairs, n_influencers); got {train.shape} for "
                f"{test.size} test indices."
            )
        n_pairs, n_influencers = train.shape
        n_rows = 1 + n_influencers
        if ax is not None and not isinstance(ax, Axes):
            given = np.asarray(ax, dtype=object)
            if given.size != n_rows * n_pairs or (
                given.ndim == 2 and given.shape != (n_rows, n_pairs)
            ):
                raise ValueError(
                    f"ax must be None, a Matplotlib Axes or an array of "
                    f"{n_rows} x {n_pairs} Axes ((1 + n_influencers) x "
                    f"n_pairs); got an array of shape {given.shape}."
                )
        fig, axes, bounding = _grid_axes(ax, n_rows, n_pairs)

        lo = min(X_train.min(), X_test.min())
        hi = max(X_train.max(), X_test.max())
        imshow_kwargs, scale = _image_style(lo, hi, shape, cmap, kwargs)

        def draw(cell, row, title):
            return _draw_image(cell, row, shape, scale, imshow_kwargs, title)

        values = infl[train, test[:, None]]
        images = np.empty((n_rows, n_pairs), dtype=object)
        for p, z in enumerate(test):
            title = f"test {z}" + ("" if y_test is None else f"\ny = {y_test[z]}")
            images[0, p] = draw(axes[0, p], X_test[z], title)
            for r in range(n_influencers):
                i = train[p, r]
                title = f"infl {values[p, r]:.2f}\ntrain {i}"
                if y_train is not None:
                    title += f", y = {y_train[i]}"
                images[1 + r, p] = draw(axes[1 + r, p], X_train[i], title)
        axes[0, 0].set_ylabel("test", fontsize="small")
        for r in range(n_influencers):
            label = "most\ninfluential" if r == 0 else f"influence\nrank {r + 1}"
            axes[1 + r, 0].set_ylabel(label, fontsize="small")
        if ax is None:
            fig.suptitle("Test samples and their most influential training samples")
        self.axes_ = axes
        self.images_ = images
        self.test_indices_ = test
        self.train_indices_ = train
        self.influence_values_ = values
        self.bounding_ax_ = bounding
        self.figure_ = fig
        return self

    @classmethod
    def from_estimator(
        cls,
        scorer,
        X_train,
        X_test,
        y_test=None,
        *,
        y_train=None,
        image_shape=None,
        n_pairs=8,
        n_influencers=1,
        test_indices=None,
        chunk_size=1024,
        cmap="gray_r",
        ax=None,
    ):
        """Show test samples with the training samples most influential on them.

        Computes ``scorer.influence(X_test, y_test)`` and calls
        :meth:`from_predictions`.

        Parameters
        ----------
        scorer : MemorizationScorer or Pipeline
            A MemorizationScorer fitted with ``keep_estimators=True`` (or a
            Pipeline ending in one: ``X_test`` is passed through its
            transformers first).
        X_train : array-like of shape (n_train, n_features)
            The training data the scorer was fitted on, in the same order
            (for a Pipeline, the raw rows before its transformers); only
            drawn.
        X_test : array-like of shape (n_test, n_features)
            The rows whose influences are computed and drawn.
        y_test : array-like of shape (n_test,), default=None
            Their true labels: needed for the responses ``"log_proba"`` and
            ``"correct"``, and written in the titles.
        y_train : array-like of shape (n_train,), default=None
            Training labels, written in the titles.
        image_shape : tuple of int, default=None
            Shape of one image, e.g. ``(8, 8)`` for digits. None infers a
            square grayscale image when ``n_features`` is a perfect square.
        n_pairs : int, default=8
            Number of test samples shown: those whose most influential
            training sample has the highest influence. Ignored when
            ``test_indices`` is given.
        n_influencers : int, default=1
            Number of training samples shown below each test sample.
        test_indices : array-like of int, default=None
            The rows of ``X_test`` to show, instead of the ``n_pairs`` with
            the highest influences.
        chunk_size : int, default=1024
            Passed to :meth:`~sklearn_mem.MemorizationScorer.influence`.
        cmap : str or Colormap, default="gray_r"
            Colour map of grayscale images.
        ax : matplotlib Axes or array of Axes, default=None
            Where to draw (see :meth:`plot`).

        Returns
        -------
        display : InfluentialPairsDisplay
        """
        est = _unwrap_memorization_scorer(
            scorer, ("in_mask_",), "InfluentialPairsDisplay.from_estimator"
        )
        X_scored = X_test
        if est is not scorer and len(scorer.steps) > 1:
            X_scored = scorer[:-1].transform(X_test)
        influence = est.influence(X_scored, y_test, chunk_size=chunk_size)
        return cls.from_predictions(
            influence,
            X_train,
            X_test,
            y_train=y_train,
            y_test=y_test,
            image_shape=image_shape,
            n_pairs=n_pairs,
            n_influencers=n_influencers,
            test_indices=test_indices,
            cmap=cmap,
            ax=ax,
        )

    @classmethod
    def from_predictions(
        cls,
        influence,
        X_train,
        X_test,
        *,
        y_train=None,
        y_test=None,
        image_shape=None,
        n_pairs=8,
        n_influencers=1,
        test_indices=None,
        cmap="gray_r",
        ax=None,
    ):
        """Show test samples with the training samples most influential on them.

        Parameters
        ----------
        influence : array-like of shape (n_train, n_test)
            Influence of every training sample on every test sample, e.g.
            from :meth:`sklearn_mem.MemorizationScorer.influence`.
        X_train : array-like of shape (n_train, n_features)
            The training rows, each a flattened image.
        X_test : array-like of shape (n_test, n_features)
            The test rows, each a flattened image.
        y_train, y_test : array-like, default=None
            Labels written in the titles.
        image_shape : tuple of int, default=None
            Shape of one image (see :meth:`from_estimator`).
        n_pairs : int, default=8
            Number of test samples shown: those whose most influential
            training sample has the highest influence (ties in row order).
            Ignored when ``test_indices`` is given.
        n_influencers : int, default=1
            Number of training samples shown below each test sample.
        test_indices : array-like of int, default=None
            The rows of ``X_test`` to show, instead of the ``n_pairs`` with
            the highest influences.
        cmap : str or Colormap, default="gray_r"
            Colour map of grayscale images.
        ax : matplotlib Axes or array of Axes, default=None
            Where to draw (see :meth:`plot`).

        Returns
        -------
        display : InfluentialPairsDisplay
        """
        infl = _check_influence(influence)
        X_train = check_array(X_train, input_name="X_train", dtype=np.float64)
        X_test = check_array(X_test, input_name="X_test", dtype=np.float64)
        if infl.shape != (X_train.shape[0], X_test.shape[0]):
            raise ValueError(
                f"influence has shape {infl.shape}; expected (n_train, n_test) = "
                f"({X_train.shape[0]}, {X_test.shape[0]}), one row per row of "
                "X_train and one column per row of X_test."
            )
        shape = _check_image_shape(image_shape, X_train.shape[1])
        n_pairs = _check_positive_int(n_pairs, "n_pairs")
        n_influencers = _check_positive_int(n_influencers, "n_influencers")
        test, train = _select_pairs(infl, n_pairs, n_influencers, test_indices)
        disp = cls(
            infl,
            X_train,
            X_test,
            test_indices=test,
            train_indices=train,
            image_shape=shape,
            y_train=y_train,
            y_test=y_test,
        )
        return disp.plot(ax=ax, cmap=cmap)
