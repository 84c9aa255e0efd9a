"""The per-fit response: a fitted estimator -> one number per row of X.

A density estimator's response is its log-likelihood (``score_samples``). A
classifier's is the conditional log-likelihood of the true label,
``log p(y_i | x_i)`` (``"log_proba"``), or its correctness
``1[h(x_i) = y_i]`` (``"correct"``, Feldman's memorization estimator with
``aggregate="mean"``). A callable ``response(estimator, X, y)`` gives any
other per-sample score (regressors, say). Whatever the response, it fills
the same (n_fits, n_samples) matrix and goes through the one aggregation.
"""

import hashlib
import inspect
import marshal

import numpy as np
from sklearn.base import is_classifier

RESPONSES = ("auto", "score_samples", "log_proba", "correct")


def resolve_response(estimator, response):
    """The response a fit computes: ``"auto"`` resolved for ``estimator``.

    ``"auto"`` is ``"log_proba"`` for a classifier
    (:func:`sklearn.base.is_classifier`) and ``"score_samples"`` otherwise.
    """
    if isinstance(response, str) and response == "auto":
        return "log_proba" if is_classifier(estimator) else "score_samples"
    return response


def describe_response(response):
    """``response='log_proba'`` or ``response=<callable name>``, for messages."""
    if isinstance(response, str):
        return f"response={response!r}"
    name = getattr(response, "__qualname__", None) or type(response).__name__
    return f"response={name}"


def response_needs_y(response):
    """Whether the response reads the true labels (always, but for callables)."""
    return response in ("log_proba", "correct") if isinstance(response, str) else False


def check_response_method(estimator, response):
    """Raise when ``estimator`` lacks the method ``response`` calls."""
    if not isinstance(response, str):
        return
    method = {
        "log_proba": "predict_proba",
        "correct": "predict",
        "score_samples": "score_samples",
    }[response]
    if hasattr(estimator, method):
        return
    name = type(estimator).__name__
    if response == "log_proba":
        raise ValueError(
            f"response='log_proba' scores log predict_proba(X)[i, y_i], but "
            f"{name} has no predict_proba. Use response='correct' (Feldman's "
            "0/1 correctness, with aggregate='mean'), a classifier that gives "
            "probabilities (e.g. SVC(probability=True) or "
            "CalibratedClassifierCV), or a callable response."
        )
    if response == "correct":
        raise ValueError(
            f"response='correct' scores 1[predict(X)[i] == y_i], but {name} has "
            "no predict. Use a classifier, or a callable response."
        )
    raise ValueError(
        f"response='score_samples' needs an estimator with score_samples; "
        f"{name} has none. For a classifier use response='log_proba' or "
        "'correct'; for anything else a callable response(estimator, X, y)."
    )


def compute_response(estimator, X, y, response, where):
    """The response of a fitted ``estimator`` for every row of ``X``.

    Parameters
    ----------
    estimator : fitted estimator
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,) or None
        True labels (targets); required by ``"log_proba"`` and ``"correct"``.
    response : {"log_proba", "correct"} or callable
        Not ``"score_samples"``, which :func:`sklearn_mem._folds.score_fitted`
        computes (with checkpoints).
    where : str
        The fit, named in errors.

    Returns
    -------
    values : ndarray of float64, shape (n_samples,)
        ``-inf`` is kept (a probability of zero, a label the fit never
        saw); NaN, ``+inf`` or a wrong shape raise a ValueError.
    """
    n = X.shape[0]
    if response == "log_proba":
        return log_proba_of_labels(estimator, X, y, where)
    if response == "correct":
        pred = np.asarray(estimator.predict(X))
        if pred.shape != (n,):
            raise ValueError(
                f"predict of {where} returned shape {pred.shape}; expected "
                f"({n},), one label per row of X (response='correct' supports "
                "single-output classifiers)."
            )
        return (pred == np.asarray(y)).astype(np.float64)
    values = response(estimator, X, y)
    return check_response_row(values, n, where, describe_response(response))


def log_proba_of_labels(estimator, X, y, where):
    """``log predict_proba(X)[i, y_i]``, columns matched through ``classes_``.

    A label the fit never saw (absent from its training part, so without a
    column) gets ``-inf``, as does a probability of zero.
    """
    n = X.shape[0]
    proba = np.asarray(estimator.predict_proba(X))
    classes = np.asarray(estimator.classes_)
    if proba.ndim != 2 or proba.shape != (n, classes.shape[0]):
        raise ValueError(
            f"predict_proba of {where} returned shape {proba.shape}; expected "
            f"({n}, {classes.shape[0]}), one column per class in classes_ "
            "(response='log_proba' supports single-output classifiers)."
        )
    if proba.dtype.kind not in "fiu":
        raise ValueError(
            f"predict_proba of {where} returned values of dtype {proba.dtype}; "
            "expected probabilities (float)."
        )
    y = np.asarray(y)
    order = np.argsort(classes, kind="stable")
    sorted_classes = classes[order]
    pos = np.minimum(np.searchsorted(sorted_classes, y), len(classes) - 1)
    seen = sorted_classes[pos] == y
    picked = np.zeros(n, dtype=np.float64)
    rows = np.flatnonzero(seen)
    picked[rows] = proba[rows, order[pos[rows]]]
    bad = ~np.isfinite(picked) | (picked < 0)
    if bad.any():
        raise ValueError(
            f"predict_proba of {where} returned {int(bad.sum())} probabilities "
            "that are NaN, infinite or negative for the true labels; a "
            "classifier must give probabilities in [0, 1]."
        )
    with np.errstate(divide="ignore"):
        out = np.log(picked)
    out[~seen] = -np.inf
    return out


def check_response_row(values, n_samples, where, what):
    """Validate one fit's response row: float64 of shape (n_samples,), no NaN/+inf."""
    values = np.asarray(values)
    if values.shape != (n_samples,):
        raise ValueError(
            f"The {what} of {where} returned shape {values.shape}; expected "
            f"({n_samples},): response(estimator, X, y) must return one number "
            "per row of X."
        )
    if values.dtype.kind not in "fiub":
        raise ValueError(
            f"The {what} of {where} returned values of dtype {values.dtype}; "
            "expected real numbers (float), one per row of X."
        )
    values = values.astype(np.float64)
    n_nan = int(np.isnan(values).sum())
    if n_nan:
        raise ValueError(
            f"The {what} of {where} returned NaN for {n_nan} of {n_samples} "
            "samples; a response must give a number (possibly -inf) for every "
            "sample."
        )
    n_posinf = int(np.isposinf(values).sum())
    if n_posinf:
        raise ValueError(
            f"The {what} of {where} returned +inf for {n_posinf} samples; "
            "a response may be -inf but not +inf."
        )
    return values


def response_key(response):
    """A string that identifies ``response`` in the cache key.

    A string response is itself. A callable is keyed by its qualified name
    and the SHA-256 of its compiled code, defaults and closure values (for a
    ``functools.partial``, of its function and arguments; for a callable
    object, of its class's source and its pickled state), so editing the
    function invalidates its cached fits. Globals that it reads are not part
    of the key.
    """
    if isinstance(response, str):
        return response
    import functools

    import joblib

    h = hashlib.sha256()

    def feed(obj):
        try:
            h.update(joblib.hash(obj).encode())
        except Exception:  # noqa: BLE001 - unpicklable: its repr
            h.update(repr(obj).encode())

    def feed_function(func):
        if isinstance(func, functools.partial):
            feed_function(func.func)
            feed(func.args)
            feed(dict(func.keywords))
            return
        code = getattr(func, "__code__", None)
        if code is None:  # a callable object (or a builtin)
            h.update(f"{type(func).__module__}.{type(func).__qualname__}".encode())
            try:
                h.update(inspect.getsource(type(func)).encode())
            except (TypeError, OSError):
                pass
            feed(func)
            return
        h.update(f"{func.__module__}.{func.__qualname__}".encode())
        h.update(marshal.dumps(code))
        feed(func.__defaults__)
        feed(func.__kwdefaults__)
        for cell in func.__closure__ or ():
            try:
                feed(cell.cell_contents)
            except ValueError:  # an empty cell
                h.update(b"<empty cell>")

    feed_function(response)
    return f"{describe_response(response)}:{h.hexdigest()}"
