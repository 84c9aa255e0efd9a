"""The ``sklearn-mem`` command: a whole memorization study from the shell.

``sklearn-mem run`` loads data (scikit-learn's digits by default, or a
``.npy``, ``.npz`` or ``.csv`` file), computes the cross-validated
memorization score of every sample with
:class:`~sklearn_mem.MemorizationScorer` and writes, into its run folder,
``scores.csv``, ``summary.json``, PNG figures and a one-page
``report.html``. Every fit's log-likelihood row is cached in
``<run folder>/cache``: an interrupted run resumes with the missing fits
only, and rerunning with another ``--aggregate`` refits nothing.
``sklearn-mem report DIR`` re-renders the report of a finished run.

Also available as ``python -m sklearn_mem``.
"""

import argparse
import hashlib
import importlib.util
import inspect
import json
import logging
import math
import platform
import shutil
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from . import __version__
from . import report as _report

logger = logging.getLogger("sklearn_mem")

MODELS = ("kde", "gmm", "vae", "flow")
DATA_FORMATS = (".npy", ".npz", ".csv")
RUN_FILE = "run.json"
CACHE_DIR = "cache"
_OUTPUTS = (
    RUN_FILE,
    _report.SCORES_FILE,
    _report.SUMMARY_FILE,
    _report.REPORT_FILE,
    _report.HISTOGRAM_FILE,
    _report.SAMPLES_FILE,
    _report.SCATTER_FILE,
    _report.RATIO_FILE,
)
TORCH_EXTRA = "pip install 'sklearn_mem[torch]'"

# Per-model options and their defaults. The VAE defaults are sized so that
# the default study (digits, 10 folds) takes about a minute on two CPU cores.
MODEL_OPTIONS = {
    "kde": {"bandwidth": 0.5, "kernel": "gaussian"},
    "gmm": {
        "components": 10,
        "covariance_type": "full",
        "reg_covar": 1e-2,
        "max_iter": 100,
    },
    "vae": {
        "epochs": 200,
        "latent_dim": 8,
        "hidden_dims": (256, 128),
        "likelihood": "auto",
        "importance_samples": 256,
        "score_precision": "float32",
        "architecture": "mlp",
        "batch_size": 128,
        "lr": 1e-3,
    },
    "flow": {
        "epochs": 50,
        "layers": 6,
        "hidden_dims": (64, 64),
        "batch_size": 128,
        "lr": 1e-3,
    },
}
_ALL_MODEL_OPTIONS = sorted({k for opts in MODEL_OPTIONS.values() for k in opts})


class CLIError(Exception):
    """A problem with the user's input: reported on stderr, exit status 2."""


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------


def _parse_shape(text):
    try:
        shape = tuple(int(s) for s in text.lower().replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if not shape or any(s < 1 for s in shape):
        raise CLIError(
            f"--image-shape {text!r} is not a shape: expected e.g. 8x8, 28x28 or "
            "32x32x3."
        )
    return shape


def _load_npy(path):
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise CLIError(
                f"{path} holds Python objects, which would have to be unpickled; "
                "sklearn-mem never unpickles user files. Save a numeric array "
                "(np.save(path, X.astype(float)))."
            ) from None
        raise CLIError(f"cannot read {path} as a .npy file: {exc}") from None
    except OSError as exc:
        raise CLIError(f"cannot read {path} as a .npy file: {exc}") from None


def _load_npz(path, key):
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot read {path} as a .npz file: {exc}") from None
    with archive:
        keys = list(archive.files)
        if key is None:
            if len(keys) != 1:
                raise CLIError(
                    f"{path} holds {len(keys)} arrays ({', '.join(keys) or 'none'}): "
                    "choose one with --key NAME."
                )
            key = keys[0]
        elif key not in keys:
            raise CLIError(
                f"{path} has no array named {key!r}; it holds: {', '.join(keys)}."
            )
        try:
            return archive[key], key
        except ValueError as exc:
            if "allow_pickle" in str(exc):
                raise CLIError(
                    f"array {key!r} of {path} holds Python objects, which would "
                    "have to be unpickled; sklearn-mem never unpickles user "
                    "files. Save numeric arrays."
                ) from None
            raise CLIError(f"cannot read array {key!r} of {path}: {exc}") from None


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


_MISSING = {"", "na", "nan", "n/a", "null", "none"}


def _load_csv(path, id_column):
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = [row for row in csv.reader(fh) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CLIError(f"cannot read {path} as a .csv file: {exc}") from None
    if not rows:
        raise CLIError(f"{path} is empty: expected a header and one row per sample.")
    first = [c.strip() for c in rows[0]]
    has_header = not all(_is_number(c) or c.lower() in _MISSING for c in first)
    header = first if has_header else [str(j) for j in range(len(first))]
    body = rows[1:] if has_header else rows
    line0 = 2 if has_header else 1
    for i, row in enumerate(body):
        if len(row) != len(header):
            raise CLIError(
                f"{path}, line {line0 + i}: {len(row)} fields, but the "
                f"{'header has' if has_header else 'first line has'} {len(header)}."
            )
    if not body:
        raise CLIError(f"{path} has a header but no rows.")
    id_index = None
    if id_column is not None:
        if id_column in header:
            id_index = header.index(id_column)
        else:
            raise CLIError(
                f"--id-column {id_column!r} is not a column of {path}; its "
                f"columns are: {', '.join(header)}"
                + ("" if has_header else " (no header: columns are numbered)")
                + "."
            )
    columns, bad = [], []
    for j, name in enumerate(header):
        if j == id_index:
            continue
        values = []
        for i, row in enumerate(body):
            cell = row[j].strip()
            if cell.lower() in _MISSING:
                values.append(np.nan)
            elif _is_number(cell):
                values.append(float(cell))
            else:
                bad.append(f"{name!r} (line {line0 + i}: {cell!r})")
                break
        else:
            columns.append(values)
    if bad:
        raise CLIError(
            f"{path} has non-numeric columns: {', '.join(bad[:10])}"
            + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
            + ". Remove them, or name the identifier column with --id-column."
        )
    if not columns:
        raise CLIError(f"{path} has no numeric feature columns.")
    X = np.array(columns, dtype=np.float64).T
    if id_index is None:
        ids = list(range(len(body)))
    else:
        ids = [row[id_index].strip() for row in body]
    return X, ids


def load_data(path=None, *, key=None, id_column=None, dropna=False, image_shape=None):
    """Load the data of a study.

    Parameters
    ----------
    path : str, path-like or None, default=None
        A ``.npy`` file (one numeric array), a ``.npz`` file (one array, or
        the one named by ``key``) or a ``.csv`` file (numeric columns, an
        optional header). None loads scikit-learn's digits scaled to [0, 1]
        (8x8 images). Files are read with ``allow_pickle=False``: nothing is
        ever unpickled. Arrays of images ``(n, H, W)`` are flattened and
        remember their image shape.
    key : str or None, default=None
        Array to use from a ``.npz`` file holding several.
    id_column : str or None, default=None
        Column of a ``.csv`` file holding sample identifiers (kept in the
        output, not used as a feature).
    dropna : bool, default=False
        Drop rows with NaN or infinite values instead of refusing them.
    image_shape : tuple of int or None, default=None
        Shape of one sample as an image (e.g. ``(28, 28)``), for the image
        grid of the report.

    Returns
    -------
    data : Bunch
        ``X`` (float64, ``(n_samples, n_features)``), ``ids`` (list, one per
        row: the row number in the file or the ``id_column`` value),
        ``image_shape`` (tuple or None), ``name``, ``description``,
        ``source`` (a JSON-ready description of where the data came from,
        from which :func:`load_data` can reload it) and ``dropped`` (ids of
        the rows dropped by ``dropna``).

    Raises
    ------
    CLIError
        When the file is missing, of an unknown format, not numeric, has
        rows with NaN/inf (without ``dropna``) or too few rows.

    Examples
    --------
    >>> from sklearn_mem.cli import load_data
    >>> data = load_data()
    >>> data.X.shape, data.image_shape, data.name
    ((1797, 64), (8, 8), 'digits')
    """
    source = {
        "path": None if path is None else str(Path(path).resolve()),
        "key": key,
        "id_column": id_column,
        "dropna": bool(dropna),
        "image_shape": None if image_shape is None else list(image_shape),
    }
    if path is None:
        if key is not None or id_column is not None:
            raise CLIError(
                "--key and --id-column apply to a --data file; the default "
                "data (digits) takes neither."
            )
        from sklearn.datasets import load_digits

        X = load_digits().data / 16.0
        ids = list(range(X.shape[0]))
        shape = (8, 8)
        name = "digits"
        description = "scikit-learn digits (8x8 images, scaled to [0, 1])"
    else:
        path = Path(path)
        suffix = path.suffix.lower()
        if not path.exists():
            raise CLIError(f"data file {str(path)!r} does not exist.")
        if path.is_dir():
            raise CLIError(f"{str(path)!r} is a folder; --data needs a file.")
        if suffix not in DATA_FORMATS:
            raise CLIError(
                f"unknown data format {suffix or '(no extension)'!r} of {str(path)!r}: "
                f"expected one of {', '.join(DATA_FORMATS)}."
            )
        if key is not None and suffix != ".npz":
            raise CLIError("--key applies to .npz files only.")
        if id_column is not None and suffix != ".csv":
            raise CLIError("--id-column applies to .csv files only.")
        name = path.stem
        shape = None
        if suffix == ".csv":
            X, ids = _load_csv(path, id_column)
            description = f"{path.name}"
        else:
            if suffix == ".npy":
                arr = _load_npy(path)
                description = path.name
            else:
                arr, used = _load_npz(path, key)
                description = f"{path.name}[{used}]"
            if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or (
                np.issubdtype(arr.dtype, np.complexfloating)
            ):
                raise CLIError(
                    f"{description} has dtype {arr.dtype}; expected a real "
                    "numeric array (float, int or bool)."
                )
            if arr.ndim == 0 or arr.size == 0:
                raise CLIError(
                    f"{description} has shape {arr.shape}; expected "
                    "(n_samples, n_features)."
                )
            if arr.ndim == 1:
                arr = arr[:, None]
            elif arr.ndim >= 3:
                shape = tuple(int(s) for s in arr.shape[1:])
                arr = arr.reshape(arr.shape[0], -1)
            X = arr.astype(np.float64)
            ids = list(range(X.shape[0]))
    if image_shape is not None:
        shape = tuple(int(s) for s in image_shape)
        if math.prod(shape) != X.shape[1]:
            raise CLIError(
                f"--image-shape {'x'.join(map(str, shape))} holds "
                f"{math.prod(shape)} values, but the data have {X.shape[1]} "
                "features per row."
            )

    bad = ~np.isfinite(X).all(axis=1)
    dropped = []
    if bad.any():
        bad_ids = [ids[i] for i in np.flatnonzero(bad)]
        shown = ", ".join(map(str, bad_ids[:10])) + (
            " ..." if len(bad_ids) > 10 else ""
        )
        if not dropna:
            raise CLIError(
                f"{len(bad_ids)} of {X.shape[0]} rows of {description} hold NaN "
                f"or infinite values (ids: {shown}). Pass --dropna to drop them, "
                "or fix the data."
            )
        logger.warning(
            "dropping %d rows with NaN or infinite values (--dropna): ids %s",
            len(bad_ids),
            shown,
        )
        X = X[~bad]
        ids = [i for i, b in zip(ids, bad) if not b]
        dropped = bad_ids
    return Bunch(
        X=np.ascontiguousarray(X, dtype=np.float64),
        ids=ids,
        image_shape=shape,
        name=name,
        description=description,
        source=source,
        dropped=dropped,
    )


def data_fingerprint(X, ids):
    """SHA-256 of the data and its sample ids.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The data, as fitted (float64).
    ids : sequence
        The sample identifiers.

    Returns
    -------
    digest : str
        Hex digest; equal for equal data, shape and ids.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mem.cli import data_fingerprint
    >>> data_fingerprint(np.zeros((2, 2)), [0, 1]) == data_fingerprint(
    ...     np.zeros((2, 2)), [0, 1])
    True
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    h = hashlib.sha256()
    h.update(repr(X.shape).encode())
    h.update(X.tobytes())
    h.update("\x1f".join(map(str, ids)).encode("utf-8"))
    return h.hexdigest()


def _settings_fingerprint(fit_settings):
    text = json.dumps(fit_settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------


def _torch_available():
    try:
        return all(importlib.util.find_spec(m) is not None for m in ("torch", "skorch"))
    except (
        ImportError,
        ValueError,
        AttributeError,
    ):  # e.g. a None entry in sys.modules
        return False


def _import_models(model):
    try:
        import sklearn_mem.models as models
    except ImportError as exc:
        raise CLIError(
            f"the {model} model needs the torch extra: {TORCH_EXTRA} "
            f"({exc.__class__.__name__}: {exc})"
        ) from None
    return models


def default_model():
    """The model of a study when none is chosen: ``"vae"`` with torch, else ``"gmm"``.

    Returns
    -------
    model : str
        ``"vae"`` when torch and skorch are installed and
        :mod:`sklearn_mem.models` imports, otherwise ``"gmm"``.
    reason : str
        Why, in words, for the log.

    Examples
    --------
    >>> from sklearn_mem.cli import default_model
    >>> default_model()[0] in ("vae", "gmm")
    True
    """
    if not _torch_available():
        return "gmm", (
            "torch is not installed, so the study uses a GaussianMixture; "
            f"for the paper's VAE: {TORCH_EXTRA}"
        )
    try:
        import sklearn_mem.models  # noqa: F401
    except ImportError as exc:
        return "gmm", (
            f"sklearn_mem.models does not import ({exc}), so the study uses a "
            "GaussianMixture"
        )
    return "vae", "torch is installed, so the study uses the paper's VAE"


def build_estimator(model, options, X, image_shape=None):
    """The density estimator of a study.

    Parameters
    ----------
    model : {"kde", "gmm", "vae", "flow"}
        ``KernelDensity``, ``GaussianMixture``,
        :class:`~sklearn_mem.models.VAEDensity` or
        :class:`~sklearn_mem.models.FlowDensity` (the last two need the
        ``torch`` extra and are imported only here).
    options : dict
        The model's options (see ``MODEL_OPTIONS``); missing ones take their
        defaults.
    X : ndarray of shape (n_samples, n_features)
        The data (to choose the VAE likelihood when ``likelihood="auto"``).
    image_shape : tuple of int or None, default=None
        Shape of one image, for the convolutional VAE.

    Returns
    -------
    estimator : estimator object
        Unfitted.
    params : dict
        The options used, defaults filled in (JSON-ready).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mem.cli import build_estimator
    >>> est, params = build_estimator("gmm", {"components": 3}, np.zeros((5, 2)))
    >>> est.n_components, params["reg_covar"]
    (3, 0.01)
    """
    if model not in MODEL_OPTIONS:
        raise CLIError(f"unknown model {model!r}: expected one of {', '.join(MODELS)}.")
    params = dict(MODEL_OPTIONS[model])
    params.update({k: v for k, v in options.items() if v is not None})
    if "hidden_dims" in params:
        params["hidden_dims"] = tuple(int(h) for h in params["hidden_dims"])
    for name in (
        "epochs",
        "components",
        "latent_dim",
        "importance_samples",
        "layers",
        "batch_size",
        "max_iter",
    ):
        if name in params and params[name] < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be at least 1.")
    for name in ("bandwidth", "lr"):
        if name in params and not params[name] > 0:
            raise CLIError(f"--{name.replace('_', '-')} must be positive.")
    if model == "gmm" and params["reg_covar"] < 0:
        raise CLIError("--reg-covar must be non-negative.")

    if model == "kde":
        from sklearn.neighbors import KernelDensity

        est = KernelDensity(bandwidth=params["bandwidth"], kernel=params["kernel"])
    elif model == "gmm":
        from sklearn.mixture import GaussianMixture

        if params["components"] > X.shape[0]:
            raise CLIError(
                f"--components {params['components']} exceeds the {X.shape[0]} "
                "rows of the data."
            )
        est = GaussianMixture(
            n_components=params["components"],
            covariance_type=params["covariance_type"],
            reg_covar=params["reg_covar"],
            max_iter=params["max_iter"],
        )
    elif model == "vae":
        models = _import_models(model)
        likelihood = params["likelihood"]
        if likelihood == "auto":
            in_unit = bool(X.min() >= 0.0 and X.max() <= 1.0)
            likelihood = "bernoulli" if in_unit else "gaussian"
            logger.info(
                "VAE likelihood: %s (the data are %s [0, 1]; choose with --likelihood)",
                likelihood,
                "in" if in_unit else "not in",
            )
            params["likelihood"] = likelihood
        elif likelihood == "bernoulli" and (X.min() < 0.0 or X.max() > 1.0):
            raise CLIError(
                "--likelihood bernoulli needs data in [0, 1]; these range over "
                f"[{X.min():g}, {X.max():g}]. Rescale them or use --likelihood "
                "gaussian."
            )
        kwargs = {}
        if params["architecture"] == "conv":
            if image_shape is None:
                raise CLIError(
                    "--architecture conv needs images: pass --image-shape HxW."
                )
            shape = tuple(image_shape)
            kwargs["input_shape"] = (
                (1, *shape) if len(shape) == 2 else (shape[-1], *shape[:-1])
            )
        est = models.VAEDensity(
            latent_dim=params["latent_dim"],
            architecture=params["architecture"],
            hidden_dims=params["hidden_dims"],
            likelihood=likelihood,
            n_importance_samples=params["importance_samples"],
            score_precision=params["score_precision"],
            max_epochs=params["epochs"],
            batch_size=params["batch_size"],
            lr=params["lr"],
            **kwargs,
        )
    else:
        models = _import_models(model)
        est = models.FlowDensity(
            n_layers=params["layers"],
            hidden_dims=params["hidden_dims"],
            max_epochs=params["epochs"],
            batch_size=params["batch_size"],
            lr=params["lr"],
        )
    params = {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
    return est, params


# ---------------------------------------------------------------------------
# the run folder
# ---------------------------------------------------------------------------


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _diff(old, new, prefix=""):
    keys = sorted(set(old) | set(new))
    out = []
    for k in keys:
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, prefix=f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return out


def prepare_run_dir(out, manifest, *, overwrite=False):
    """Check, clear if asked, and create a run folder; write its manifest.

    A folder that holds a run with another fingerprint (other data or fit
    settings), or that is not empty and holds no run, is refused unless
    ``overwrite``. With ``overwrite`` the previous run's outputs and cache
    are removed (other files are left alone).

    Parameters
    ----------
    out : path-like
        The run folder.
    manifest : dict
        The run's description, with a ``"fingerprint"`` entry; written to
        ``run.json``.
    overwrite : bool, default=False
        Replace a different run.

    Returns
    -------
    resumed : bool
        Whether the folder already held this run (its cache is reused).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {str(out)!r} is a file, not a folder.")
    resumed = False
    if out.is_dir() and any(out.iterdir()):
        old = _read_json(out / RUN_FILE) or _read_json(out / _report.SUMMARY_FILE)
        old_fp = (old or {}).get("fingerprint")
        if old_fp == manifest["fingerprint"]:
            resumed = True
        elif not overwrite:
            if old_fp is None:
                raise CLIError(
                    f"the output folder {str(out)!r} is not empty and holds no "
                    "sklearn-mem run; choose another --out, or pass --overwrite "
                    "to write into it."
                )
            changes = _diff(
                {"data": old.get("data_fingerprint"), **old.get("fit_settings", {})},
                {
                    "data": manifest.get("data_fingerprint"),
                    **manifest.get("fit_settings", {}),
                },
            )
            raise CLIError(
                f"the output folder {str(out)!r} holds a different run ("
                + ("; ".join(changes) or "other settings")
                + "). Choose another --out, or pass --overwrite to replace it."
            )
        else:
            logger.warning("--overwrite: replacing the run in %s", out)
            shutil.rmtree(out / CACHE_DIR, ignore_errors=True)
            for name in _OUTPUTS:
                (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    _report.atomic_write(out / RUN_FILE, json.dumps(manifest, indent=2) + "\n")
    return resumed


def _count_cached_results(cache):
    """Results in the fit cache (one per fit, or one per batch of folds)."""
    cache = Path(cache)
    if not cache.is_dir():
        return 0
    return sum(1 for _ in cache.rglob("output.pkl"))


def _versions():
    import joblib
    import scipy
    import sklearn

    versions = {
        "python": platform.python_version(),
        "sklearn_mem": __version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "joblib": joblib.__version__,
    }
    for name in ("matplotlib", "tqdm", "torch", "skorch"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", "?")
    return versions


# ---------------------------------------------------------------------------
# nearest-neighbour ratio
# ---------------------------------------------------------------------------


def _fit_and_sample(estimator, X, train, seed, n_samples):
    """Fit a clone on ``X[train]`` with ``seed`` and draw ``n_samples``."""
    from sklearn.base import clone

    from ._folds import limit_threads, set_random_states

    est = set_random_states(clone(estimator), int(seed))
    with limit_threads(1):
        est.fit(X[train])
        if "random_state" in inspect.signature(est.sample).parameters:
            draws = est.sample(n_samples, random_state=int(seed))
        else:
            draws = est.sample(n_samples)
    if isinstance(draws, tuple):  # GaussianMixture returns (X, labels)
        draws = draws[0]
    return np.asarray(draws, dtype=np.float64).reshape(n_samples, -1)


def _nearest_neighbor_ratio(scorer, estimator, X, seed, cache):
    """rho for the training rows of the first split (NaN elsewhere)."""
    from joblib import Memory

    from .neighbors import nearest_neighbor_ratio

    if not hasattr(estimator, "sample"):
        raise CLIError(
            f"--rho needs a model that can sample; {type(estimator).__name__} cannot."
        )
    train, test = next(iter(scorer.cv_.split(X)))
    fit_seed = seed if scorer.seeds_ is None else int(scorer.seeds_[0])
    sample = Memory(str(cache), verbose=0).cache(_fit_and_sample)
    try:
        generated = sample(estimator, X, train, fit_seed, len(test))
    except (NotImplementedError, ValueError) as exc:
        raise CLIError(f"--rho: the model cannot sample: {exc}") from None
    rho = np.full(X.shape[0], np.nan)
    rho[train] = nearest_neighbor_ratio(X[train], X[test], generated)
    return rho, {
        "split": "split 0",
        "n_train": int(len(train)),
        "n_heldout": int(len(test)),
        "n_generated": int(len(test)),
        "seed": int(fit_seed),
    }


# ---------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------


def _model_options(args):
    return {k: getattr(args, k) for k in _ALL_MODEL_OPTIONS}


def _check_model_options(model, args):
    given = [k for k in _ALL_MODEL_OPTIONS if getattr(args, k) is not None]
    wrong = [k for k in given if k not in MODEL_OPTIONS[model]]
    if wrong:
        flags = ", ".join("--" + k.replace("_", "-") for k in wrong)
        raise CLIError(
            f"{flags} {'does' if len(wrong) == 1 else 'do'} not apply to the "
            f"{model} model; its options are: "
            + ", ".join("--" + k.replace("_", "-") for k in MODEL_OPTIONS[model])
            + "."
        )


_NET_PARAMS = {
    "vae": ("latent_dim", "architecture", "hidden_dims", "likelihood",
            "n_importance_samples", "score_precision", "max_epochs",
            "batch_size", "lr"),
    "flow": ("n_layers", "hidden_dims", "max_epochs", "batch_size", "lr"),
}  # fmt: skip


def _estimator_text(estimator, model):
    """A one-line description (skorch's repr of an unfitted net says little)."""
    if model in _NET_PARAMS:
        params = estimator.get_params(deep=False)
        inner = ", ".join(f"{k}={params[k]!r}" for k in _NET_PARAMS[model])
        return f"{type(estimator).__name__}({inner})"
    return repr(estimator).replace("\n", " ")


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _run(args, argv):
    t_start = time.perf_counter()
    started = _now()
    if args.folds < 2:
        raise CLIError(f"--folds {args.folds}: need at least 2 folds.")
    if args.repeats < 1:
        raise CLIError(f"--repeats {args.repeats}: need at least 1.")
    if args.jobs == 0:
        raise CLIError("--jobs 0 is not a number of jobs: use 1, 2, ... or -1.")
    if args.top < 1:
        raise CLIError("--top must be at least 1.")
    if importlib.util.find_spec("matplotlib") is None:
        raise CLIError(
            "the report needs matplotlib, which is not installed: "
            "pip install 'sklearn_mem[cli]'"
        )
    image_shape = None if args.image_shape is None else _parse_shape(args.image_shape)
    data = load_data(
        args.data,
        key=args.key,
        id_column=args.id_column,
        dropna=args.dropna,
        image_shape=image_shape,
    )
    X, ids = data.X, data.ids
    n_samples = X.shape[0]
    if n_samples < args.folds:
        raise CLIError(
            f"{data.description} has {n_samples} rows (after dropping NaN rows) "
            f"but --folds {args.folds} needs at least {args.folds}: use fewer "
            "folds or more data."
        )
    if args.model is None:
        model, reason = default_model()
        logger.info("model: %s: %s. Choose the model with --model.", model, reason)
    else:
        model = args.model
    _check_model_options(model, args)
    estimator, model_params = build_estimator(
        model, _model_options(args), X, data.image_shape
    )
    if args.rho and not hasattr(estimator, "sample"):
        raise CLIError(f"--rho needs a model that can sample; {model} cannot.")
    if args.rho and model_params.get("kernel", "gaussian") not in (
        "gaussian",
        "tophat",
    ):
        raise CLIError(
            "--rho needs samples from the model, and KernelDensity samples only "
            "with the gaussian or tophat kernel."
        )
    t_loaded = time.perf_counter()

    fit_settings = {
        "model": model,
        "model_params": model_params,
        "folds": args.folds,
        "repeats": args.repeats,
        "seed": args.seed,
    }
    data_fp = data_fingerprint(X, ids)
    fingerprint = _settings_fingerprint({"data": data_fp, **fit_settings})
    out = Path(args.out or f"sklearn-mem-{data.name}-{model}")
    data_info = {
        "name": data.name,
        "description": data.description,
        "source": data.source,
        "n_samples": int(n_samples),
        "n_features": int(X.shape[1]),
        "image_shape": None if data.image_shape is None else list(data.image_shape),
        "dropped_ids": data.dropped,
        "sha256": data_fp,
    }
    manifest = {
        "sklearn_mem_run": 1,
        "fingerprint": fingerprint,
        "data_fingerprint": data_fp,
        "fit_settings": fit_settings,
        "data": data_info,
        "command": ["sklearn-mem", *argv],
        "started": started,
    }
    resumed = prepare_run_dir(out, manifest, overwrite=args.overwrite)
    cache = out / CACHE_DIR
    cached_before = _count_cached_results(cache)
    if resumed and cached_before:
        logger.info("resuming the run in %s: %d cached results", out, cached_before)

    from sklearn.model_selection import RepeatedKFold

    from . import MemorizationScorer

    cv = (
        args.folds
        if args.repeats == 1
        else RepeatedKFold(
            n_splits=args.folds, n_repeats=args.repeats, random_state=args.seed
        )
    )
    scorer = MemorizationScorer(
        estimator,
        cv=cv,
        aggregate=args.aggregate,
        refit=False,
        n_jobs=args.jobs,
        memory=str(cache),
        random_state=args.seed,
        verbose=0 if args.quiet else 1,
    )
    logger.info(
        "%s: %d x %d, %s, %d fits, results in %s",
        data.description,
        n_samples,
        X.shape[1],
        type(estimator).__name__,
        args.folds * args.repeats,
        out,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scorer.fit(X)
    for w in caught:
        if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning)):
            logger.warning("%s: %s", w.category.__name__, w.message)
    t_fitted = time.perf_counter()
    n_fits = int(scorer.loglik_.shape[0])
    methods = {
        "exact": "exact (closed-form kernel sums)",
        "refit": "refit",
        "batched": "batched (all folds trained as one model)",
    }
    fits = {
        "method": methods[scorer.method_],
        "computed": n_fits - scorer.n_fits_from_cache_,
        "from_cache": scorer.n_fits_from_cache_,
    }

    columns = {
        "in_loglik": scorer.in_loglik_,
        "out_loglik": scorer.out_loglik_,
        "memorization": scorer.memorization_scores_,
        "n_in": scorer.n_in_,
        "n_out": scorer.n_out_,
    }
    if scorer.n_repeats_ > 1:
        columns["stderr"] = scorer.memorization_stderr_
    rho_info = None
    if args.rho:
        rho, rho_info = _nearest_neighbor_ratio(scorer, estimator, X, args.seed, cache)
        columns["rho"] = rho
    t_rho = time.perf_counter()

    _report.write_scores(out / _report.SCORES_FILE, ids, columns)
    summary = {
        **manifest,
        "settings": {
            **fit_settings,
            "aggregate": args.aggregate,
            "jobs": args.jobs,
            "estimator": _estimator_text(estimator, model),
            "cv": repr(scorer.cv_),
            "rho": bool(args.rho),
        },
        "seeds": None if scorer.seeds_ is None else [int(s) for s in scorer.seeds_],
        "n_fits": n_fits,
        "n_repeats": int(scorer.n_repeats_),
        "fits": fits,
        "rho": rho_info,
        "scores": _report.summarize_scores(
            scorer.memorization_scores_, ids, n_top=args.top
        ),
        "versions": _versions(),
        "timings": {
            "load_s": round(t_loaded - t_start, 3),
            "fit_s": round(t_fitted - t_loaded, 3),
            "rho_s": round(t_rho - t_fitted, 3),
        },
    }
    _report.atomic_write(out / _report.SUMMARY_FILE, json.dumps(summary, indent=2))
    _report.render_report(out, X=X, image_shape=data.image_shape, n_top=args.top)
    t_end = time.perf_counter()
    summary["timings"]["report_s"] = round(t_end - t_rho, 3)
    summary["timings"]["total_s"] = round(t_end - t_start, 3)
    summary["finished"] = _now()
    _report.atomic_write(out / _report.SUMMARY_FILE, json.dumps(summary, indent=2))
    _print_summary(summary, out)
    return 0


def _print_summary(summary, out):
    data, stats, fits = summary["data"], summary["scores"], summary["fits"]
    q = stats["quantiles"]

    def f(v):
        return "n/a" if v is None else f"{v:.3f}"

    top = ", ".join(str(t["id"]) for t in stats["top_memorized"][:10])
    print(
        f"{data['description']}: {data['n_samples']} samples x {data['n_features']} "
        f"features, {summary['settings']['model']}, {summary['settings']['cv']}\n"
        f"{summary['n_fits']} fits ({fits['computed']} computed, "
        f"{fits['from_cache']} from cache) in {summary['timings']['fit_s']:.1f} s; "
        f"total {summary['timings']['total_s']:.1f} s\n"
        f"memorization M (nats): median {f(q.get('0.5'))}, "
        f"q95 {f(q.get('0.95'))}, q99 {f(q.get('0.99'))}; "
        f"{stats['n_nan']} NaN, {stats['n_posinf'] + stats['n_neginf']} infinite\n"
        f"most memorized ids: {top}\n"
        f"results: {out / _report.SCORES_FILE}, {out / _report.SUMMARY_FILE}, "
        f"{out / _report.REPORT_FILE}"
    )


def _report_command(args):
    out = Path(args.dir)
    if not out.is_dir():
        raise CLIError(f"{str(out)!r} is not a folder.")
    summary = _read_json(out / _report.SUMMARY_FILE)
    if summary is None or not (out / _report.SCORES_FILE).exists():
        manifest = _read_json(out / RUN_FILE)
        if manifest is not None:
            raise CLIError(
                f"{str(out)!r} holds an unfinished run; rerun "
                f"`{' '.join(manifest.get('command', ['sklearn-mem', 'run']))}` "
                "to finish it (cached fits are reused)."
            )
        raise CLIError(f"{str(out)!r} holds no sklearn-mem run (no summary.json).")
    info = summary.get("data", {})
    src = info.get("source", {})
    X, shape = None, None
    try:
        data = load_data(
            src.get("path"),
            key=src.get("key"),
            id_column=src.get("id_column"),
            dropna=src.get("dropna", False),
            image_shape=src.get("image_shape"),
        )
    except CLIError as exc:
        logger.warning("cannot reload the data (%s): no image grid in the report", exc)
    else:
        if data_fingerprint(data.X, data.ids) != info.get("sha256"):
            logger.warning(
                "the data at %s changed since the run: no image grid in the report",
                src.get("path") or "digits",
            )
        else:
            X, shape = data.X, data.image_shape
    path = _report.render_report(out, X=X, image_shape=shape, n_top=args.top)
    print(f"report: {path}")
    return 0


# ---------------------------------------------------------------------------
# argument parsing
# ---------------------------------------------------------------------------


def _hidden_dims(text):
    try:
        dims = tuple(int(h) for h in text.split(","))
    except ValueError:
        dims = ()
    if not dims or any(h < 1 for h in dims):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected positive integers separated by commas, e.g. 256,128"
        )
    return dims


def build_parser():
    """The argument parser of ``sklearn-mem``.

    Returns
    -------
    parser : argparse.ArgumentParser

    Examples
    --------
    >>> from sklearn_mem.cli import build_parser
    >>> args = build_parser().parse_args(["run", "--model", "gmm", "--folds", "5"])
    >>> args.model, args.folds
    ('gmm', 5)
    """
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="sklearn-mem",
        formatter_class=fmt,
        description=(
            "Measure how much a density estimator memorizes each training sample:\n"
            "M_i = log P(x_i | D) - log P(x_i | D without x_i), in nats, estimated\n"
            "by K-fold cross-validation (van den Burg & Williams, NeurIPS 2021)."
        ),
        epilog=(
            "examples:\n"
            "  sklearn-mem run                      the paper's study on digits\n"
            "  sklearn-mem run --model gmm --components 20 --folds 10\n"
            "  sklearn-mem run --data X.npy --model kde --bandwidth 0.3 --out kde1\n"
            "  sklearn-mem run --data table.csv --id-column name --dropna\n"
            "  sklearn-mem report kde1              re-render a finished run's report\n"
            "\nsklearn-mem with no command runs the default study."
        ),
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        formatter_class=fmt,
        help="run a memorization study and write its report",
        description=(
            "Run a memorization study: fit the model on every cross-validation\n"
            "split, score every sample, and write scores.csv, summary.json,\n"
            "figures and report.html into the output folder. Each fit is cached\n"
            "in OUT/cache: rerunning the same command after an interruption\n"
            "computes only the missing fits, and rerunning with another\n"
            "--aggregate refits nothing. Without options: scikit-learn's digits\n"
            "with a VAE when torch is installed, else a GaussianMixture."
        ),
    )
    g = run.add_argument_group("data")
    g.add_argument(
        "--data",
        metavar="FILE",
        help="a .npy file (one numeric array), a .npz file (one array, or --key) "
        "or a .csv file (numeric columns, optional header); default: "
        "scikit-learn's digits scaled to [0, 1]. Arrays of images (n, H, W) are "
        "flattened. Files are never unpickled.",
    )
    g.add_argument("--key", help="the array to use from a .npz file holding several")
    g.add_argument(
        "--id-column",
        metavar="NAME",
        help="a .csv column of sample identifiers, kept in scores.csv and not "
        "used as a feature (default: ids are row numbers, from 0)",
    )
    g.add_argument(
        "--dropna",
        action="store_true",
        help="drop rows with NaN or infinite values (default: refuse them and "
        "name them)",
    )
    g.add_argument(
        "--image-shape",
        metavar="HxW",
        help="shape of one sample as an image (e.g. 28x28 or 32x32x3), for the "
        "report's image grid and the convolutional VAE; inferred for digits and "
        "(n, H, W) arrays",
    )

    g = run.add_argument_group("model")
    g.add_argument(
        "--model",
        choices=MODELS,
        help="kde: KernelDensity (closed form, no refits); gmm: GaussianMixture; "
        "vae: variational auto-encoder; flow: RealNVP normalizing flow (vae and "
        "flow need the torch extra). Default: vae with torch, else gmm",
    )
    g.add_argument(
        "--bandwidth", type=float, metavar="X", help="kde: kernel bandwidth (0.5)"
    )
    g.add_argument(
        "--kernel",
        choices=[
            "gaussian",
            "tophat",
            "epanechnikov",
            "exponential",
            "linear",
            "cosine",
        ],
        help="kde: kernel (gaussian)",
    )
    g.add_argument(
        "--components", type=int, metavar="N", help="gmm: mixture components (10)"
    )
    g.add_argument(
        "--covariance-type",
        choices=["full", "tied", "diag", "spherical"],
        help="gmm: covariance type (full)",
    )
    g.add_argument(
        "--reg-covar",
        type=float,
        metavar="X",
        help="gmm: added to the covariance diagonals (1e-2, suited to data in "
        "[0, 1] with constant pixels; scikit-learn's default is 1e-6)",
    )
    g.add_argument("--max-iter", type=int, metavar="N", help="gmm: EM iterations (100)")
    g.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help="vae, flow: training epochs (vae 200, flow 50)",
    )
    g.add_argument(
        "--latent-dim", type=int, metavar="N", help="vae: size of the latent code (8)"
    )
    g.add_argument(
        "--hidden-dims",
        type=_hidden_dims,
        metavar="H1,H2",
        help="vae, flow: hidden layer sizes (vae 256,128; flow 64,64)",
    )
    g.add_argument(
        "--likelihood",
        choices=["auto", "bernoulli", "gaussian", "gaussian_scalar"],
        help="vae: observation model; auto is bernoulli for data in [0, 1], "
        "else gaussian (auto)",
    )
    g.add_argument(
        "--importance-samples",
        type=int,
        metavar="N",
        help="vae: importance samples per row for the log-likelihood estimate "
        "(256, the paper's choice on MNIST)",
    )
    g.add_argument(
        "--score-precision",
        choices=["float32", "bfloat16"],
        help="vae: precision of the scoring matrix products; bfloat16 is faster "
        "on CPUs with AMX/AVX512-BF16 and on GPUs, off by a few thousandths "
        "of a nat (float32)",
    )
    g.add_argument(
        "--architecture",
        choices=["mlp", "conv"],
        help="vae: MLP or convolutional encoder/decoder (mlp; conv needs images)",
    )
    g.add_argument("--layers", type=int, metavar="N", help="flow: coupling layers (6)")
    g.add_argument(
        "--batch-size", type=int, metavar="N", help="vae, flow: batch size (128)"
    )
    g.add_argument(
        "--lr", type=float, metavar="X", help="vae, flow: Adam learning rate (1e-3)"
    )

    g = run.add_argument_group("study")
    g.add_argument(
        "--folds",
        type=int,
        metavar="N",
        default=10,
        help="K of K-fold cross-validation (10)",
    )
    g.add_argument(
        "--repeats",
        type=int,
        metavar="N",
        default=1,
        help="L repeats of the K folds (RepeatedKFold when > 1; gives a "
        "standard error per sample; the paper uses 10) (1)",
    )
    g.add_argument(
        "--aggregate",
        choices=["logmeanexp", "mean"],
        default="logmeanexp",
        help="how the fits' log-likelihoods are combined: log of the mean "
        "probability (the paper) or mean log-likelihood; changing it on a "
        "finished run refits nothing (logmeanexp)",
    )
    g.add_argument(
        "--rho",
        action="store_true",
        help="also compute the paper's nearest-neighbour ratio rho (one extra "
        "fit on the first split; defined for that split's training rows only; "
        "needs a model that can sample)",
    )
    g.add_argument(
        "--seed",
        type=int,
        metavar="N",
        default=0,
        help="random seed of splits and fits (0)",
    )
    g.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        default=-1,
        help="fits run in parallel; -1 uses all cores; scores do not depend on it (-1)",
    )

    g = run.add_argument_group("output")
    g.add_argument(
        "--out",
        metavar="DIR",
        help="run folder (default: ./sklearn-mem-<data>-<model>); a folder "
        "holding the same run is resumed",
    )
    g.add_argument(
        "--overwrite",
        "--force",
        action="store_true",
        help="replace a different run (other data or settings) in the output "
        "folder instead of refusing",
    )
    g.add_argument(
        "--top",
        type=int,
        metavar="N",
        default=20,
        help="most memorized samples listed (20)",
    )
    g.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="no progress bar or log messages; only the final summary and errors",
    )

    rep = sub.add_parser(
        "report",
        help="re-render the report of a finished run (no refitting)",
        description=(
            "Re-render the figures and report.html of a finished run from its "
            "scores.csv and summary.json (the data are reloaded for the image "
            "grid). Nothing is refitted."
        ),
    )
    rep.add_argument("dir", metavar="DIR", help="the run folder")
    rep.add_argument(
        "--top",
        type=int,
        metavar="N",
        default=20,
        help="most memorized samples listed (20)",
    )
    rep.add_argument("--quiet", "-q", action="store_true", help="no log messages")
    return parser


def main(argv=None):
    """Entry point of the ``sklearn-mem`` command.

    Parameters
    ----------
    argv : list of str or None, default=None
        Arguments (default: ``sys.argv[1:]``). No command runs the default
        study (``run``).

    Returns
    -------
    status : int
        0 on success; 2 for bad input (the message is on stderr); 1 when a
        fit fails; 130 when interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (
        argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")
    ):
        argv = ["run", *argv]
    parser = build_parser()
    args = parser.parse_args(argv)

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("sklearn-mem: %(message)s"))
    previous = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if args.quiet else logging.INFO)
    logger.propagate = False
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        pass
    try:
        if args.command == "report":
            return _report_command(args)
        return _run(args, argv[1:])
    except CLIError as exc:
        print(f"sklearn-mem: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(
            f"sklearn-mem: error: {exc}. Install the command's dependencies with: "
            "pip install 'sklearn_mem[cli]'",
            file=sys.stderr,
        )
        return 2
    except ValueError as exc:
        print(f"sklearn-mem: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "sklearn-mem: interrupted; rerun the same command to resume (finished "
            "fits are cached in the run folder).",
            file=sys.stderr,
        )
        return 130
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous[0])
        logger.propagate = previous[1]


if __name__ == "__main__":
    sys.exit(main())
