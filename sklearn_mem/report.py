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
import html
import io
import json
import logging
import math
import os
import uuid
from pathlib import Path

import numpy as np

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
    return atomic_write(path, buf.getvalue())


def read_scores(path):
    """Read a ``scores.csv`` written by :func:`write_scores`.

    Parameters
    ----------
    path : str or path-like
        The CSV file.

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
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        rows = list(reader)
    if not header or header[0] != "id":
        raise ValueError(f"{path} is not a scores file: its first column is not 'id'.")
    out = {"id": [r[0] for r in rows]}
    for j, name in enumerate(header[1:], start=1):
        dtype = np.int64 if name in _INT_COLUMNS else np.float64
        out[name] = np.array([r[j] for r in rows], dtype=np.float64).astype(dtype)
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
        Quantiles of M reported, computed on the finite scores.

    Returns
    -------
    summary : dict
        ``n_samples``, ``n_finite``, ``n_nan``, ``n_posinf``, ``n_neginf``,
        ``mean`` (finite scores), ``quantiles`` (str(q) -> value), and
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
    if finite.any():
        summary["mean"] = float(M[finite].mean())
        values = np.quantile(M[finite], quantiles)
        summary["quantiles"] = {str(q): float(v) for q, v in zip(quantiles, values)}
    else:
        summary["mean"] = None
        summary["quantiles"] = {str(q): None for q in quantiles}
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

    disp = MemorizationHistogramDisplay.from_predictions(M, quantile=quantile, bins=50)
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
img.fig { max-width: 100%; }
img.thumb { width: 32px; height: 32px; image-rendering: pixelated; }
"""


def _fmt(value, digits=3):
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return html.escape(value)
    value = float(value)
    if not math.isfinite(value):
        return repr(value)
    return f"{value:.{digits}f}"


def _kv_table(pairs):
    rows = "".join(
        f'<tr><th class="l">{html.escape(str(k))}</th>'
        f'<td class="l">{html.escape(str(v))}</td></tr>'
        for k, v in pairs
    )
    return f"<table>{rows}</table>"


def render_report(run_dir, *, X=None, image_shape=None, n_top=20, quantile=0.95):
    """Render the figures and ``report.html`` of a finished run.

    Reads ``scores.csv`` and ``summary.json`` from ``run_dir`` (no fitted
    scorer is needed) and writes, each atomically, ``histogram.png``,
    ``memorization_vs_loglik.png``, ``memorized_samples.png`` (image data
    only) and a one-page ``report.html`` with the figures embedded as
    base64 data URIs, so the page opens in a browser without a server and
    survives being moved.

    Parameters
    ----------
    run_dir : str or path-like
        Folder of a run holding ``scores.csv`` and ``summary.json``.
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
    ...                   "memorization": M})
    >>> _ = (run / "summary.json").write_text(json.dumps({"settings": {}}))
    >>> render_report(run).name  # doctest: +SKIP
    'report.html'
    """
    run_dir = Path(run_dir)
    scores = read_scores(run_dir / SCORES_FILE)
    with open(run_dir / SUMMARY_FILE, encoding="utf-8") as fh:
        summary = json.load(fh)
    ids = scores["id"]
    M = scores["memorization"]
    if X is not None and len(X) != len(ids):
        raise ValueError(
            f"X has {len(X)} rows but {run_dir / SCORES_FILE} has {len(ids)}: "
            "pass the data of this run."
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
    for name, data in figures.items():
        atomic_write(run_dir / name, data)
    for name in (SAMPLES_FILE, RATIO_FILE):
        if name not in figures:  # left from an earlier rendering of this run
            (run_dir / name).unlink(missing_ok=True)

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
    path = atomic_write(run_dir / REPORT_FILE, page)
    logger.info("report written to %s", path)
    return path


def _html_page(summary, scores, figures, q_value, quantile, n_top, X, image_shape):
    images = X is not None
    settings = summary.get("settings", {})
    data = summary.get("data", {})
    stats = summary.get("scores", {})
    timings = summary.get("timings", {})
    ids = scores["id"]
    M = scores["memorization"]

    config = [
        ("data", data.get("description", data.get("name", "?"))),
        (
            "samples x features",
            f"{data.get('n_samples', len(ids))} x {data.get('n_features', '?')}",
        ),
        ("model", settings.get("estimator", settings.get("model", "?"))),
        ("splits", settings.get("cv", "?")),
        ("fits", summary.get("n_fits", "?")),
        ("aggregate", settings.get("aggregate", "?")),
        ("seed", settings.get("seed", "?")),
    ]
    if "fit_s" in timings:
        config.append(("fitting time", f"{timings['fit_s']:.1f} s"))
    fits = summary.get("fits", {})
    if fits:
        config.append(
            (
                "fits computed / from cache",
                f"{fits.get('computed')} / {fits.get('from_cache')}",
            )
        )
    versions = summary.get("versions", {})
    if versions:
        config.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items())))

    qs = stats.get("quantiles", {})
    q_rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in qs.items()
    )
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
            notes.append(f"<li>{stats[key]} {html.escape(what)}</li>")
    notes_html = f"<ul>{''.join(notes)}</ul>" if notes else ""

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
        cells = [str(rank), html.escape(str(ids[i]))]
        if images:
            thumb = _thumbnail_png(X[i].reshape(image_shape), vmin, vmax)
            cells.append(f'<img class="thumb" src="{_data_uri(thumb)}" alt="">')
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
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    table = (
        "<table><tr>"
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr>"
        + "".join(rows)
        + "</table>"
    )

    def img(name, alt):
        if name not in figures:
            return ""
        return f'<img class="fig" src="{_data_uri(figures[name])}" alt="{alt}">'

    grid = ""
    if SAMPLES_FILE in figures:
        grid = "<h2>Most, median and least memorized samples</h2>" + img(
            SAMPLES_FILE, "image grid of memorized samples"
        )
    ratio = ""
    if RATIO_FILE in figures:
        ratio = (
            "<h2>Memorization against the nearest-neighbour ratio</h2>"
            '<p class="note">rho = distance to the nearest held-out real sample / '
            "distance to the nearest model sample, for the training rows of "
            f"{html.escape(str(summary.get('rho', {}).get('split', 'one split')))}."
            "</p>" + img(RATIO_FILE, "memorization against nearest-neighbour ratio")
        )
    title = (
        f"Memorization study: {data.get('name', 'data')}, {settings.get('model', '')}"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="note">Memorization score M<sub>i</sub> = log P(x<sub>i</sub> | D)
&minus; log P(x<sub>i</sub> | D \\ x<sub>i</sub>) in nats (van den Burg &amp;
Williams, NeurIPS 2021), estimated by cross-validation: U = "in"
log-likelihood (fits trained on x<sub>i</sub>), V = "out" log-likelihood.
A high M means the model assigns x<sub>i</sub> much more probability when it
has seen it.</p>
<div class="row">
<div><h2>Settings</h2>{_kv_table(config)}</div>
<div><h2>Quantiles of M</h2><table>{q_rows}</table>
<p>{stats.get("n_finite", "?")} finite of {stats.get("n_samples", len(ids))}
scores.</p>{notes_html}</div>
</div>
<h2>Distribution of M</h2>
<p class="note">Marked on the histogram: the {quantile:g} quantile,
{_fmt(q_value)} nats.</p>
{img(HISTOGRAM_FILE, "histogram of memorization scores")}
{grid}
<h2>Most memorized samples</h2>
{table}
<h2>Memorization against in-sample log-likelihood</h2>
{img(SCATTER_FILE, "memorization against in log-likelihood")}
{ratio}
<p class="note">Files: scores.csv (one row per sample), summary.json,
the PNG figures next to this page.</p>
</body></html>
"""
