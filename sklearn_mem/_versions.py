"""Versions of the code that computes: for the cache key and the run's summary."""

import platform
import sys
from functools import lru_cache

import numpy as np


def environment_versions():
    """Versions of Python and the libraries a study used, for its summary.

    Returns
    -------
    versions : dict of str -> str
        Python, sklearn_mem, NumPy, SciPy, scikit-learn and joblib, and
        matplotlib, tqdm, torch and skorch when they are imported.
    """
    import joblib
    import scipy
    import sklearn

    from . import __version__

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


def code_versions(estimator):
    """Versions of sklearn_mem, scikit-learn and the estimator's package."""
    import sklearn

    from . import __version__

    versions = {"sklearn_mem": __version__, "sklearn": sklearn.__version__}
    for name in ("torch", "skorch"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", "?")
    top = type(estimator).__module__.split(".")[0]
    module = sys.modules.get(top)
    if module is not None:
        versions[top] = getattr(module, "__version__", "?")
    versions["source"] = estimator_source_hash(estimator)
    return versions


def estimator_source_hash(estimator):
    """SHA-256 of the source of every class in the estimator (nested too).

    Part of the cache key, so that editing a user-defined estimator's
    ``fit`` or ``score_samples`` invalidates its cached fits. Covers the
    source files of the classes of the estimator and of every estimator
    among its parameters (a Pipeline's steps, say), with their bases; a
    class whose source cannot be found (defined in an interactive session
    without one) contributes its qualified name only.
    """
    import hashlib

    objects = [estimator]
    if hasattr(estimator, "get_params"):
        objects += [
            v for v in estimator.get_params(deep=True).values() if hasattr(v, "fit")
        ]
    classes = {}
    for obj in objects:
        for cls in type(obj).__mro__:
            if cls.__module__ != "builtins":
                classes[f"{cls.__module__}.{cls.__qualname__}"] = cls
    h = hashlib.sha256()
    for name in sorted(classes):
        h.update(name.encode())
        h.update(_class_source_digest(classes[name]).encode())
    return h.hexdigest()


def _class_source_digest(cls):
    import hashlib
    import inspect
    import os

    try:
        path = inspect.getsourcefile(cls)
    except (TypeError, OSError):
        path = None
    if path and os.path.isfile(path):
        stat = os.stat(path)
        return _file_digest(path, stat.st_mtime_ns, stat.st_size)
    try:
        return hashlib.sha256(inspect.getsource(cls).encode()).hexdigest()
    except (TypeError, OSError):
        return "no source"


@lru_cache(maxsize=256)
def _file_digest(path, mtime_ns, size):
    import hashlib

    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()
