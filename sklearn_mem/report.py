"""Outputs of a memorization study: per-sample CSV, JSON summary, figures, report.

Everything here works from saved results (``scores.csv``, ``summary.json``)
and, for image grids, the data itself, never from a fitted scorer, so a
finished run can be re-rendered without refitting (``sklearn-mem report
DIR``). Every file is written atomically: to a temporary file in the same
folder, then moved into place with :func:`os.replace`, so an interrupted
run never leaves a half-written output behind.
"""

import base64
import csv
import io
import json
import logging
import math
import os
import uuid
from pathlib import Path

import numpy as np

from .metrics import _quantile

__all__ = [
    "atomic_write",
    "format_scores",
    "parse_scores",
    "parse_summary",
    "read_scores",
    "read_summary",
    "render_files",
    "render_report",
    "summarize_scores",
    "top_indices",
    "write_scores",
]

logger = logging.getLogger("sklearn_mem")

SCORES_FILE = "scores.csv"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"
HISTOGRAM_FILE = "histogram.png"
SAMPLES_FILE = "memorized_samples.png"
SCATTER_FILE = "memorization_vs_loglik.png"
RATIO_FILE = "memorization_vs_ratio.png"

#: Columns of ``scores.csv`` in order; ``stderr`` and ``rho`` only when defined.
SCORE_COLUMNS = (
    "id",
    "in_loglik",
    "out_loglik",
    "memorization",
    "stderr",
    "n_in",
    "n_out",
    "rho",
)
_INT_COLUMNS = ("n_in", "n_out")
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def atomic_write(path, data):
    """Write ``data`` to ``path`` atomically.

    The content goes to a temporary file in the same folder, is flushed to
    disk, and replaces ``path`` with :func:`os.replace`: readers see either
    the old file or the complete new one, never a partial write.

    Parameters
    ----------
    path : str or path-like
        Destination file; its folder must exist.
    data : str or bytes
        Content; ``str`` is encoded as UTF-8.

    Returns
    -------
    path : pathlib.Path
        The written file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sklearn_mem.report import atomic_write
    >>> folder = tempfile.mkdtemp()
    >>> atomic_write(pathlib.Path(folder) / "a.txt", "hello").read_text()
    'hello'
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    # a unique name in the same folder (os.replace is atomic only within a
    # file system); opened with "x" so it respects the umask, unlike mkstemp
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _format_float(value):
    # repr of a Python float round-trips exactly: the CSV holds the scores bit
    # for bit, and "inf", "-inf", "nan" are kept as such
    return repr(float(value))


def write_scores(path, ids, columns):
    """Write the per-sample scores as CSV, atomically.

    Parameters
    ----------
    path : str or path-like
        Destination, usually ``<run dir>/scores.csv``.
    ids : sequence of str or int, length n_samples
        The identifier of each sample (row number or the user's id column).
    columns : dict of str -> array of shape (n_samples,)
        Score columns by name, among :data:`SCORE_COLUMNS`; missing ones
        (e.g. ``stderr`` without repeats, ``rho`` when not computed) are
        left out. Floats are written with full precision (``repr``), so
        reading the file back gives the same numbers bit for bit; ``inf``,
        ``-inf`` and ``nan`` are written as such.

    Returns
    -------
    path : pathlib.Path

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sklearn_mem.report import read_scores, write_scores
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "scores.csv"
    >>> _ = write_scores(path, ["a", "b"], {"memorization": [0.5, float("inf")]})
    >>> read_scores(path)["memorization"]
    array([0.5, inf])
    """
    return atomic_write(path, format_scores(ids, columns))


#: Columns the report needs.
REPORT_COLUMNS = ("memorization", "in_loglik", "out_loglik", "n_in", "n_out")


def format_scores(ids, columns):
    """The text of a ``scores.csv`` (see :func:`write_scores`).

    Parameters
    ----------
    ids : sequence of str or int, length n_samples
        The identifier of each sample.
    columns : dict of str -> array of shape (n_samples,)
        Score columns by name, among :data:`SCORE_COLUMNS`.

    Returns
    -------
    text : str

    Examples
    --------
    >>> from sklearn_mem.report import format_scores
    >>> print(format_scores(["a"], {"memorization": [0.5], "n_in": [3]}), end="")
    id,memorization,n_in
    a,0.5,3
    """
    names = [c for c in SCORE_COLUMNS if c != "id" and c in columns]
    unknown = sorted(set(columns) - set(SCORE_COLUMNS))
    if unknown:
        raise ValueError(f"Unknown score columns {unknown}; expected {SCORE_COLUMNS}.")
    arrays = [np.asarray(columns[c]) for c in names]
    for name, arr in zip(names, arrays):
        if arr.shape != (len(ids),):
            raise ValueError(
                f"Column {name!r} has shape {arr.shape}; expected ({len(ids)},)."
            )
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", *names])
    for i, sample_id in enumerate(ids):
        row = [sample_id]
        for name, arr in zip(names, arrays):
            if name in _INT_COLUMNS:
                row.append(int(arr[i]))
            else:
                row.append(_format_float(arr[i]))
        writer.writerow(row)
    return buf.getvalue()


def read_scores(path, required=()):
    """Read a ``scores.csv`` written by :func:`write_scores`.

    Parameters
    ----------
    path : str or path-like
        The CSV file.
    required : sequence of str, default=()
        Columns that must be present.

    Returns
    -------
    scores : dict
        ``"id"``: list of str; every other column an ndarray (float64, or
        int64 for ``n_in`` and ``n_out``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sklearn_mem.report import read_scores, write_scores
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "scores.csv"
    >>> _ = write_scores(path, [0, 1], {"memorization": [0.25, -1.0], "n_in": [9, 9]})
    >>> sorted(read_scores(path))
    ['id', 'memorization', 'n_in']
    """
    with open(path, encoding="utf-8", newline="") as fh:
        text = fh.read()
    return parse_scores(text, required=required, name=str(path))


def parse_scores(text, *, required=(), name="scores.csv"):
    """Parse the text of a ``scores.csv``; a ValueError says what is wrong.

    Parameters
    ----------
    text : str
        The file's content.
    required : sequence of str, default=()
        Columns that must be present.
    name : str, default="scores.csv"
        The file's name, for messages.

    Returns
    -------
    scores : dict
        As :func:`read_scores`.

    Examples
    --------
    >>> from sklearn_mem.report import parse_scores
    >>> parse_scores("id,memorization\\na,0.5\\n")["memorization"]
    array([0.5])
    """
    path = name
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        rows = list(reader)
    except csv.Error as exc:
        raise ValueError(f"{path} is not a scores file: {exc}.") from None
    if not header or header[0] != "id":
        raise ValueError(f"{path} is not a scores file: its first column is not 'id'.")
    unknown = [name for name in header[1:] if name not in SCORE_COLUMNS]
    if unknown or len(set(header)) != len(header):
        raise ValueError(
            f"{path} has unexpected or repeated columns {unknown or header}; "
            f"expected some of {', '.join(SCORE_COLUMNS)}."
        )
    missing = [name for name in required if name not in header]
    if missing:
        raise ValueError(
            f"{path} lacks the column(s) {', '.join(missing)} (renamed or "
            "removed?); rerun the study to write it again."
        )
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ValueError(
                f"{path}, line {line}: {len(row)} fields, but the header has "
                f"{len(header)} (a truncated or edited file?); rerun the study "
                "to write it again."
            )
    out = {"id": [r[0] for r in rows]}
    for j, name in enumerate(header[1:], start=1):
        dtype = np.int64 if name in _INT_COLUMNS else np.float64
        try:
            values = np.array([r[j] for r in rows], dtype=np.float64)
        except ValueError as exc:
            raise ValueError(
                f"{path}, column {name!r}: {exc}; rerun the study to write it again."
            ) from None
        out[name] = values.astype(dtype)
    return out


def _json_number(value):
    """A float for JSON: finite numbers as numbers, others as strings."""
    value = float(value)
    return value if math.isfinite(value) else repr(value)


def summarize_scores(memorization, ids, *, n_top=20, quantiles=QUANTILES):
    """Summary statistics of memorization scores, JSON-ready.

    Parameters
    ----------
    memorization : array-like of shape (n_samples,)
        Memorization scores M (may hold NaN and +-inf).
    ids : sequence, length n_samples
        Sample identifiers.
    n_top : int, default=20
        Number of most memorized samples listed.
    quantiles : sequence of float, default=QUANTILES
        Quantiles of M reported, computed on the non-NaN scores.

    Returns
    -------
    summary : dict
        ``n_samples``, ``n_finite``, ``n_nan``, ``n_posinf``, ``n_neginf``,
        ``mean`` (finite scores), ``quantiles`` (str(q) -> value, of the
        non-NaN scores with infinities included, as the histogram marks
        them: see :func:`sklearn_mem.metrics.make_memorization_scorer`), and
        ``top_memorized``: a list of ``{"id", "memorization"}``, highest
        first (``+inf`` first, NaN never). Non-finite numbers are written as
        the strings ``"inf"``, ``"-inf"``, ``"nan"``.

    Examples
    --------
    >>> from sklearn_mem.report import summarize_scores
    >>> s = summarize_scores([0.1, 2.0, float("nan")], ["a", "b", "c"], n_top=1)
    >>> s["n_nan"], s["top_memorized"]
    (1, [{'id': 'b', 'memorization': 2.0}])
    """
    M = np.asarray(memorization, dtype=np.float64)
    finite = np.isfinite(M)
    summary = {
        "n_samples": int(M.size),
        "n_finite": int(finite.sum()),
        "n_nan": int(np.isnan(M).sum()),
        "n_posinf": int(np.isposinf(M).sum()),
        "n_neginf": int(np.isneginf(M).sum()),
    }
    summary["mean"] = float(M[finite].mean()) if finite.any() else None
    # the quantile the histogram marks: of the non-NaN scores, infinities
    # included (so a share of +inf scores shows as an infinite quantile)
    defined = M[~np.isnan(M)]
    summary["quantiles"] = {
        str(q): _json_number(_quantile(defined, q)) if defined.size else None
        for q in quantiles
    }
    order = top_indices(M, n_top)
    summary["top_memorized"] = [
        {"id": _plain(ids[i]), "memorization": _json_number(M[i])} for i in order
    ]
    return summary


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def top_indices(memorization, n):
    """Indices of the ``n`` highest scores, highest first, NaN excluded.

    Ties keep the data order (a stable sort), so the result is reproducible.

    Parameters
    ----------
    memorization : array-like of shape (n_samples,)
        Scores.
    n : int
        How many.

    Returns
    -------
    indices : ndarray of int

    Examples
    --------
    >>> from sklearn_mem.report import top_indices
    >>> top_indices([0.5, float("nan"), 3.0, float("inf")], 2)
    array([3, 2])
    """
    M = np.asarray(memorization, dtype=np.float64)
    valid = np.flatnonzero(~np.isnan(M))
    order = valid[np.argsort(-M[valid], kind="stable")]
    return order[:n]


# ---------------------------------------------------------------------------
# figures and the HTML page
# ---------------------------------------------------------------------------


def _figure_png(fig):
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _thumbnail_png(image, vmin, vmax):
    import matplotlib.image

    buf = io.BytesIO()
    matplotlib.image.imsave(
        buf, image, cmap="gray_r", vmin=vmin, vmax=vmax, format="png"
    )
    return buf.getvalue()


def _data_uri(png):
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _histogram(M, quantile):
    from .plotting import MemorizationHistogramDisplay

    # about two bins per square root of the sample size, 10 to 50: a small
    # run gets bars of several samples, not 50 bars of zero or one
    n_finite = int(np.isfinite(M).sum())
    bins = int(np.clip(round(2 * math.sqrt(n_finite)), 10, 50))
    disp = MemorizationHistogramDisplay.from_predictions(
        M, quantile=quantile, bins=bins
    )
    return _figure_png(disp.figure_), float(disp.quantile_value_)


def _samples_grid(M, X, image_shape):
    from .plotting import MemorizedSamplesDisplay

    n_defined = int((~np.isnan(M)).sum())
    disp = MemorizedSamplesDisplay.from_predictions(
        M, X, image_shape=tuple(image_shape), n_samples=max(1, min(8, n_defined))
    )
    return _figure_png(disp.figure_)


def _loglik_scatter(M, in_loglik):
    from .plotting import MemorizationVsLoglikDisplay

    disp = MemorizationVsLoglikDisplay.from_predictions(M, in_loglik)
    return _figure_png(disp.figure_)


def _ratio_scatter(M, rho):
    from .plotting import MemorizationVsRatioDisplay

    disp = MemorizationVsRatioDisplay.from_predictions(M, rho)
    return _figure_png(disp.figure_)


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 1.5em auto;
       color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
table { border-collapse: collapse; font-size: 0.9em; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; }
td.l, th.l { text-align: left; }
.row { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
.note { color: #555; font-size: 0.9em; }
td .note { display: block; max-width: 46em; }
tr.paper th, tr.paper td { background: #fff4e0; font-weight: bold; }
.explain { background: #f7f7f7; border-left: 3px solid #bbb; padding: 0.3em 1em;
           font-size: 0.92em; }
.explain dt { font-weight: bold; margin-top: 0.4em; }
.explain dd { margin-left: 1.2em; }
.outliers { background: #fff4e0; border-left: 3px solid #e8a33c;
            padding: 0.3em 1em; }
img.fig { max-width: 100%; }
img.thumb { width: 32px; height: 32px; image-rendering: pixelated; }
"""


def _ratio_text(m, unit="x"):
    """exp(m), the likelihood ratio of a score, readable at any size."""
    if m is None or isinstance(m, str):
        return "n/a"
    m = float(m)
    if math.isnan(m):
        return "n/a"
    if math.isinf(m):
        return f"inf{unit}" if m > 0 else f"0{unit}"
    if abs(m) < 7:  # up to about 1000 times
        return f"{math.exp(m):.3g}{unit}"
    return f"10^{m / math.log(10):.0f}{unit}"


_AGGREGATES = {
    "logmeanexp": (
        "U and V are the log of the mean likelihood over the fits (the "
        "log-mean-exp of their log-likelihoods), the paper's estimator"
    ),
    "mean": "U and V are the mean log-likelihood over the fits",
}


def _seed_note(settings, summary):
    """What the run's seed is, and how the splitter's random_state relates.

    None when the summary names no seed (a study rendered from Python).
    """
    if "seed" not in settings:
        return None
    seed = settings["seed"]
    cv_text = str(settings.get("cv", ""))
    marker = "random_state="
    cv_seed = None
    if marker in cv_text:
        tail = cv_text.split(marker, 1)[1]
        digits = tail[: len(tail) - len(tail.lstrip("0123456789"))]
        cv_seed = digits or None
    note = "the run's --seed: it fixes the splits and the fits"
    if cv_seed is not None and cv_seed != str(seed):
        note += (
            f". The random_state={cv_seed} shown in the splits is not another "
            "setting: it is drawn from this seed (the splitter needs its own)"
        )
    elif cv_seed is not None:
        note += ", given to the splitter as its random_state"
    if isinstance(summary.get("seeds"), list):
        note += "; each fit's own seed, drawn from it, is in summary.json (seeds)"
    return note + "."


def _fit_rows(summary, timings, fits):
    """Rows for the number of fits and the fitting times, one consistent story.

    After a resume some fits come from the run folder's cache: this run's
    wall-clock time covers the fits computed now (and the reading of the
    others); the time the cached ones took when computed is a separate sum.
    """
    n_fits = summary.get("n_fits", "?")
    method = fits.get("method")
    rows = [("fits", n_fits, f"method: {method}" if method else None)]
    computed, cached = fits.get("computed"), fits.get("from_cache")
    counted = isinstance(computed, int) and isinstance(cached, int)
    if "fit_s" in timings:
        value = f"{_fmt(timings['fit_s'], 1)} s (wall clock)"
        if counted and cached:
            value += (
                f" for {_plural_fits(computed)} computed in this run and "
                f"{_plural_fits(cached)} read from the cache"
            )
        elif counted:
            value += f" for {_plural_fits(computed)}, all computed in this run"
        rows.append(("fitting time, this run", value, None))
    elif counted:
        rows.append(("fits computed / from cache", f"{computed} / {cached}", None))
    if counted and cached:
        rows.append(
            (
                "fitting time of the cached fits, when computed",
                f"{_fmt(timings.get('cached_fit_s'), 1)} s for the "
                f"{_plural_fits(cached)} read from the cache (sum over fits, "
                "computed in an earlier run)",
                None,
            )
        )
    return rows


def _plural_fits(n):
    return f"{n} fit" if n == 1 else f"{n} fits"


def _outlier_note(M, ids, q_value):
    """Sentence on the scores drawn on the edge of the figures, or None."""
    from .plotting import _robust_limits

    M = np.asarray(M, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(M))
    limits = _robust_limits(M[finite], include=(q_value,))
    if limits is None:
        return None
    beyond = finite[(M[finite] < limits[0]) | (M[finite] > limits[1])]
    if not beyond.size:
        return None
    beyond = beyond[np.argsort(-np.abs(M[beyond]), kind="stable")]
    named = ", ".join(f"id {ids[i]}: {_fmt(M[i])} nats" for i in beyond[:5])
    more = f" and {beyond.size - 5} more" if beyond.size > 5 else ""
    n_rest = finite.size - beyond.size
    return (
        f"{beyond.size} {'score lies' if beyond.size == 1 else 'scores lie'} "
        f"far from the others ({named}{more}). The figures keep their axes on "
        f"the other {n_rest} scores ({_fmt(limits[0])} to {_fmt(limits[1])} "
        "nats) and draw the far ones as arrowheads on the edge, counted in "
        "the legend; scores.csv has every value."
    )


def _fmt(value, digits=3):
    """A number for the page: fixed digits; None, strings and non-finite as text."""
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(value):
        return repr(value)
    return f"{value:.{digits}f}"


def _template():
    try:
        import jinja2
    except ImportError as exc:  # pragma: no cover - jinja2 comes with the cli extra
        raise ImportError(
            "the report needs Jinja2: pip install 'sklearn_mem[cli]'"
        ) from exc
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("sklearn_mem", "templates"),
        autoescape=True,  # every value from a file is data, never markup
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("report.html.j2")


def render_files(summary, scores, *, X=None, image_shape=None, n_top=20, quantile=0.95):
    """The figures and the HTML page of a run, as file contents.

    Parameters
    ----------
    summary : dict
        The run's summary (as in ``summary.json``).
    scores : dict
        The per-sample scores, as :func:`read_scores` returns them.
    X : ndarray of shape (n_samples, n_features) or None, default=None
        The data, for the image grid and thumbnails (with ``image_shape``).
    image_shape : tuple of int or None, default=None
        Shape of one image.
    n_top : int, default=20
        Rows of the table of most memorized samples.
    quantile : float, default=0.95
        Quantile of M marked on the histogram.

    Returns
    -------
    files : dict of str -> bytes
        ``histogram.png``, ``memorization_vs_loglik.png``, and where they
        apply ``memorization_vs_ratio.png`` and ``memorized_samples.png``;
        ``report.html`` (figures embedded as data URIs). The page is
        rendered from a template with autoescaping: every value read from
        a file is shown as text, never interpreted as markup.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mem.report import render_files
    >>> M = np.random.RandomState(0).normal(size=30)
    >>> scores = {"id": [str(i) for i in range(30)], "memorization": M,
    ...           "in_loglik": M, "out_loglik": 0 * M,
    ...           "n_in": np.full(30, 2), "n_out": np.ones(30, int)}
    >>> files = render_files({"settings": {"model": "<b>kde</b>"}}, scores)
    >>> b"&lt;b&gt;kde&lt;/b&gt;" in files["report.html"]
    True
    """
    M = np.asarray(scores["memorization"], dtype=np.float64)
    ids = scores["id"]
    if X is not None and len(X) != len(ids):
        raise ValueError(
            f"X has {len(X)} rows but the scores have {len(ids)}: pass the data "
            "of this run."
        )
    images = X is not None and image_shape is not None
    figures = {}
    png, q_value = _histogram(M, quantile)
    figures[HISTOGRAM_FILE] = png
    figures[SCATTER_FILE] = _loglik_scatter(M, scores["in_loglik"])
    if "rho" in scores:
        # rho is defined for the training rows of one split only
        defined = ~np.isnan(scores["rho"])
        figures[RATIO_FILE] = _ratio_scatter(M[defined], scores["rho"][defined])
    if images:
        figures[SAMPLES_FILE] = _samples_grid(M, X, image_shape)
    page = _html_page(
        summary,
        scores,
        figures,
        q_value,
        quantile,
        n_top,
        X if images else None,
        image_shape,
    )
    return {**figures, REPORT_FILE: page.encode("utf-8")}


def render_report(run_dir, *, X=None, image_shape=None, n_top=20, quantile=0.95):
    """Render the figures and ``report.html`` of a finished run.

    Reads ``scores.csv`` and ``summary.json`` from ``run_dir`` (no fitted
    scorer is needed) and writes, each atomically, ``histogram.png``,
    ``memorization_vs_loglik.png``, ``memorized_samples.png`` (image data
    only) and a one-page ``report.html`` with the figures embedded as
    base64 data URIs, so the page opens in a browser without a server and
    survives being moved. (The ``sklearn-mem`` command writes the same
    files as one output set with :func:`render_files`.)

    Parameters
    ----------
    run_dir : str or path-like
        Folder holding ``scores.csv`` and ``summary.json``.
    X : ndarray of shape (n_samples, n_features) or None, default=None
        The data the scores belong to, in the order of ``scores.csv``;
        needed for the image grid and thumbnails. None leaves them out.
    image_shape : tuple of int or None, default=None
        Shape of one image, e.g. ``(8, 8)`` for digits. None means the data
        are not images (no grid, no thumbnails).
    n_top : int, default=20
        Rows of the table of most memorized samples.
    quantile : float, default=0.95
        Quantile of M marked on the histogram.

    Returns
    -------
    path : pathlib.Path
        The written ``report.html``.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> import numpy as np
    >>> from sklearn_mem.report import render_report, write_scores
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> M = np.random.RandomState(0).normal(size=50)
    >>> _ = write_scores(run / "scores.csv", list(range(50)),
    ...                  {"in_loglik": M, "out_loglik": np.zeros(50),
    ...                   "memorization": M, "n_in": np.full(50, 2),
    ...                   "n_out": np.ones(50, int)})
    >>> _ = (run / "summary.json").write_text(json.dumps({"settings": {}}))
    >>> render_report(run).name  # doctest: +SKIP
    'report.html'
    """
    run_dir = Path(run_dir)
    scores = read_scores(run_dir / SCORES_FILE)
    summary = read_summary(run_dir / SUMMARY_FILE)
    files = render_files(
        summary, scores, X=X, image_shape=image_shape, n_top=n_top, quantile=quantile
    )
    for name, data in files.items():
        atomic_write(run_dir / name, data)
    for name in (SAMPLES_FILE, RATIO_FILE):
        if name not in files:  # left from an earlier rendering of this run
            (run_dir / name).unlink(missing_ok=True)
    path = run_dir / REPORT_FILE
    logger.info("report written to %s", path)
    return path


def parse_summary(text, *, name="summary.json"):
    """Parse the text of a ``summary.json``: a JSON object, or a ValueError.

    Parameters
    ----------
    text : str
    name : str, default="summary.json"
        The file's name, for messages.

    Returns
    -------
    summary : dict

    Examples
    --------
    >>> from sklearn_mem.report import parse_summary
    >>> parse_summary('{"n_fits": 3}')
    {'n_fits': 3}
    """
    try:
        summary = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{name} is not valid JSON ({exc}).") from None
    if not isinstance(summary, dict):
        raise ValueError(f"{name} does not hold a JSON object.")
    return summary


def read_summary(path):
    """Read a ``summary.json``: a JSON object, or a ValueError saying why not.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    summary : dict

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sklearn_mem.report import read_summary
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "summary.json"
    >>> _ = path.write_text('{"n_fits": 3}')
    >>> read_summary(path)
    {'n_fits': 3}
    """
    with open(path, encoding="utf-8") as fh:
        return parse_summary(fh.read(), name=str(path))


def _html_page(summary, scores, figures, q_value, quantile, n_top, X, image_shape):
    from markupsafe import Markup

    images = X is not None

    def section(name):
        value = summary.get(name)
        return value if isinstance(value, dict) else {}

    settings, data, stats = section("settings"), section("data"), section("scores")
    timings, fits, versions = section("timings"), section("fits"), section("versions")
    ids = scores["id"]
    M = scores["memorization"]

    aggregate = settings.get("aggregate", "?")
    config = [
        ("data", data.get("description", data.get("name", "?")), None),
        (
            "samples x features",
            f"{data.get('n_samples', len(ids))} x {data.get('n_features', '?')}",
            None,
        ),
        ("model", settings.get("estimator", settings.get("model", "?")), None),
        ("splits", settings.get("cv", "?"), None),
        *_fit_rows(summary, timings, fits),
        ("aggregate", aggregate, _AGGREGATES.get(aggregate)),
        ("seed", settings.get("seed", "?"), _seed_note(settings, summary)),
    ]
    if versions:
        config.append(
            ("versions", ", ".join(f"{k} {v}" for k, v in versions.items()), None)
        )

    qs = stats.get("quantiles")
    quantiles = [
        (k, _fmt(v), _ratio_text(v), k == str(quantile))
        for k, v in (qs.items() if isinstance(qs, dict) else ())
    ]
    notes = []
    for key, what in (
        (
            "n_nan",
            "undefined (NaN) scores: no 'in' or no 'out' fit, or zero "
            "density under both",
        ),
        ("n_posinf", "+inf scores: zero density under the 'out' fits only"),
        ("n_neginf", "-inf scores: zero density under the 'in' fits only"),
    ):
        if stats.get(key):
            notes.append((stats[key], what))

    has_stderr = "stderr" in scores
    has_rho = "rho" in scores
    head = ["rank", "id"]
    if images:
        head.append("image")
    head += ["M", "in (U)", "out (V)"]
    if has_stderr:
        head.append("stderr")
    head += ["n_in", "n_out"]
    if has_rho:
        head.append("rho")
    rows = []
    if images:
        finite_X = X[np.isfinite(X)]
        vmin, vmax = float(finite_X.min()), float(finite_X.max())
    for rank, i in enumerate(top_indices(M, n_top), start=1):
        cells = [str(rank), str(ids[i])]
        if images:
            thumb = _thumbnail_png(X[i].reshape(image_shape), vmin, vmax)
            cells.append({"image": _data_uri(thumb)})
        cells += [
            _fmt(M[i]),
            _fmt(scores["in_loglik"][i]),
            _fmt(scores["out_loglik"][i]),
        ]
        if has_stderr:
            cells.append(_fmt(scores["stderr"][i]))
        cells += [str(scores["n_in"][i]), str(scores["n_out"][i])]
        if has_rho:
            rho = scores["rho"][i]  # NaN: not a training row of the rho split
            cells.append("n/a" if np.isnan(rho) else _fmt(rho))
        rows.append(cells)

    rho_info = summary.get("rho")
    rho_split = (
        rho_info.get("split", "one split")
        if isinstance(rho_info, dict)
        else ("one split")
    )
    keys = {
        HISTOGRAM_FILE: "histogram",
        SAMPLES_FILE: "samples",
        SCATTER_FILE: "scatter",
        RATIO_FILE: "ratio",
    }
    top = top_indices(M, 1)
    top_m = float(M[top[0]]) if top.size else None
    return _template().render(
        title=(
            f"Memorization study: {data.get('name', 'data')}, "
            f"{settings.get('model', '')}"
        ),
        css=Markup(_CSS),
        config=config,
        quantiles=quantiles,
        n_finite=stats.get("n_finite", "?"),
        n_samples=stats.get("n_samples", len(ids)),
        notes=notes,
        quantile=f"{quantile:g}",
        quantile_value=_fmt(q_value),
        quantile_ratio=_ratio_text(q_value),
        share_above=f"{100 * (1 - quantile):.3g}%",
        top_id=str(ids[top[0]]) if top.size else None,
        top_value=_fmt(top_m),
        top_ratio=_ratio_text(top_m, unit=" times"),
        outliers=_outlier_note(M, ids, q_value),
        has_stderr=has_stderr,
        has_rho=has_rho,
        aggregate=aggregate,
        figures={
            key: _data_uri(figures[name]) if name in figures else None
            for name, key in keys.items()
        },
        head=head,
        rows=rows,
        rho_split=rho_split,
    )
