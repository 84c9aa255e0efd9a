"""The model table of the ``sklearn-mem`` command: options, defaults, estimators."""

import importlib.util
import logging

from ._errors import CLIError

logger = logging.getLogger("sklearn_mem")

TORCH_EXTRA = (
    'pip install -e ".[torch,cli]" in a clone of sklearn_mem (for a CPU-only '
    "torch, first: pip install torch --index-url "
    "https://download.pytorch.org/whl/cpu)"
)

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
        raise CLIError(
            f"unknown model {model!r}: expected one of {', '.join(MODEL_OPTIONS)}."
        )
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

        from ._kde import check_bandwidths

        try:  # the closed form's float64 range, checked before any folder exists
            check_bandwidths([params["bandwidth"]], X)
        except ValueError as exc:
            raise CLIError(f"--bandwidth {params['bandwidth']:g}: {exc}") from None
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
