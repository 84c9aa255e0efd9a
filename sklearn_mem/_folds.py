"""Splits, seeds, the fit-and-score worker, parallel dispatch and its cache.

The refit path of :class:`~sklearn_mem.MemorizationScorer` is
``cross_val_predict``-shaped: splits are materialised once, one seed per fit
is drawn in the parent, and each worker fits one clone on its training part
and returns the clone's log-likelihood of every row (not the model).
"""

import logging
import sys
from contextlib import contextmanager, nullcontext
from functools import lru_cache

import numpy as np
from joblib import Memory, effective_n_jobs
from joblib.parallel import get_active_backend
from sklearn.base import clone
from sklearn.utils import check_random_state
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import _check_method_params
from threadpoolctl import ThreadpoolController

from ._progress import StageBars, reporting

MAX_SEED = np.iinfo(np.int32).max

logger = logging.getLogger("sklearn_mem")


def materialize_splits(cv, X, y=None, **split_params):
    """Run the splitter once and check that its splits are usable.

    Returns
    -------
    splits : list of (train, test) ndarray pairs
    in_mask : ndarray of bool, shape (n_splits, n_samples)
        True where a sample is in the split's training part.
    """
    n = X.shape[0]
    splits = []
    marked = np.zeros(n, dtype=bool)
    for k, (train, test) in enumerate(cv.split(X, y, **split_params)):
        train = np.asarray(train)
        test = np.asarray(test)
        for name, idx in (("training", train), ("held-out", test)):
            if idx.dtype == bool:
                raise ValueError(
                    f"Split {k} of {cv!r} gives a boolean mask as its {name} "
                    "part; splitters must yield integer indices."
                )
            if idx.size and idx.dtype.kind not in "iu":
                raise ValueError(
                    f"Split {k} of {cv!r} gives {idx.dtype} values as its {name} "
                    "part; splitters must yield integer indices (they are not "
                    "rounded or truncated)."
                )
            if idx.size and (idx.min() < -n or idx.max() >= n):
                raise ValueError(
                    f"Split {k} of {cv!r} has {name} indices outside "
                    f"[0, {n}) for X with {n} samples."
                )
        train = np.mod(train.astype(np.intp), n)
        test = np.mod(test.astype(np.intp), n)
        if train.size == 0:
            raise ValueError(
                f"Split {k} of {cv!r} has an empty training part; every fit "
                "needs training rows."
            )
        marked[:] = False
        marked[train] = True
        overlap = test[marked[test]]
        if overlap.size:
            raise ValueError(
                f"Split {k} of {cv!r} puts {np.unique(overlap).size} samples "
                f"(e.g. index {overlap[0]}) in both its training and held-out "
                "parts; a memorization score needs the two parts disjoint. Use "
                "a splitter whose parts do not overlap (KFold, ShuffleSplit, "
                "GroupKFold, LeaveOneOut, ...)."
            )
        splits.append((train, test))
    if not splits:
        raise ValueError(f"The splitter {cv!r} produced no splits.")
    in_mask = np.zeros((len(splits), n), dtype=bool)
    for k, (train, _) in enumerate(splits):
        in_mask[k, train] = True
    return splits, in_mask


def draw_seeds(random_state, n_fits):
    """One integer seed per fit, drawn once in the parent."""
    rng = check_random_state(random_state)
    return rng.randint(MAX_SEED, size=n_fits)


def set_random_states(estimator, seed):
    """Set every ``random_state`` parameter of ``estimator`` (nested too).

    Each nested parameter gets its own seed derived from ``seed``, so that
    the result depends only on ``seed`` and the parameter names.
    """
    rng = np.random.RandomState(seed)
    to_set = {}
    for key in sorted(estimator.get_params(deep=True)):
        if key == "random_state" or key.endswith("__random_state"):
            to_set[key] = int(rng.randint(MAX_SEED))
    if to_set:
        estimator.set_params(**to_set)
    return estimator


def inner_thread_limit():
    """Threads each fit may use inside a worker.

    The fits are the unit of parallelism, so each runs single-threaded by
    default: on small dense problems multi-threaded BLAS is slower than one
    thread even without competition, and n_jobs workers x all-core BLAS
    oversubscribes. ``joblib.parallel_config(inner_max_num_threads=k)``
    raises the limit.
    """
    backend, _ = get_active_backend()
    limit = getattr(backend, "inner_max_num_threads", None)
    return int(limit) if limit else 1


@lru_cache(maxsize=1)
def _threadpool_controller():
    # inspecting the loaded libraries costs ~0.1 s: do it once per process
    return ThreadpoolController()


@contextmanager
def limit_threads(n_threads):
    """Limit BLAS/OpenMP (and torch, if imported) threads; restore after."""
    torch = sys.modules.get("torch")
    previous = torch.get_num_threads() if torch is not None else None
    try:
        with _threadpool_controller().limit(limits=n_threads):
            if torch is not None:
                torch.set_num_threads(n_threads)
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(previous)


def _describe(estimator):
    text = repr(estimator).replace("\n", " ")
    return text if len(text) <= 80 else text[:77] + "..."


def fit_and_score(estimator, X, train, fit_params, seed, n_threads, index):
    """Fit one clone on ``X[train]`` and score every row of ``X`` with it.

    Returns what :func:`score_fitted` returns; ``-inf`` log-likelihoods are
    kept, NaN, ``+inf`` or a wrong shape raise a ValueError naming the fit.
    """
    estimator = clone(estimator)
    if seed is not None:
        set_random_states(estimator, int(seed))
    fit_params = _check_method_params(X, params=fit_params, indices=train)
    _watch_parent()
    with limit_threads(n_threads):
        try:
            estimator.fit(X[train], **fit_params)
        except Exception as exc:
            _add_note(
                exc,
                f"(raised by fit {index}: {_describe(estimator)} fitted on "
                f"{len(train)} of {X.shape[0]} rows)",
            )
            raise
        return score_fitted(estimator, X, index)


def _add_note(exc, note):
    """Attach ``note`` to ``exc`` (shown under its traceback and by the CLI)."""
    if hasattr(exc, "add_note"):  # Python >= 3.11
        exc.add_note(note)
    else:  # pragma: no cover - Python 3.10
        exc.__notes__ = [*getattr(exc, "__notes__", []), note]


_WATCHED_PARENT = None


def _watch_parent(interval=2.0):
    """In a loky worker, exit when the process that started it has died.

    A parent killed with SIGKILL cannot stop its workers; without this they
    would wait for work until loky's idle timeout. Started once per worker
    process; does nothing in the main process or under other backends.
    """
    global _WATCHED_PARENT
    import multiprocessing
    import os
    import threading

    if _WATCHED_PARENT is not None:
        return
    name = multiprocessing.current_process().name
    if not name.startswith("LokyProcess"):
        return
    _WATCHED_PARENT = parent = os.getppid()

    def watch():
        import time

        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="sklearn-mem-parent-watch", daemon=True).start()


def score_fitted(estimator, X, index):
    """Log-likelihood of every row under a fitted estimator (and checkpoints).

    Returns
    -------
    loglik : ndarray of shape (n_samples,)
    checkpoints : tuple (epochs, loglik of shape (n_checkpoints, n_samples))
        or None, for estimators that kept checkpoints during training
        (``checkpoints_`` and ``score_samples_checkpoints``).
    """
    n = X.shape[0]
    loglik = check_loglik(estimator.score_samples(X), n, estimator, index)
    return loglik, score_checkpoints(estimator, X, index)


def score_checkpoints(estimator, X, index):
    """(epochs, log-likelihoods) under the kept checkpoints, or None."""
    if not (
        getattr(estimator, "checkpoints_", None)
        and hasattr(estimator, "score_samples_checkpoints")
    ):
        return None
    epochs, rows = estimator.score_samples_checkpoints(X)
    rows = np.vstack(
        [
            check_loglik(row, X.shape[0], estimator, f"{index} at epoch {epoch}")
            for epoch, row in zip(epochs, rows)
        ]
    )
    return np.asarray(epochs), rows


def check_loglik(loglik, n_samples, estimator, index):
    """Validate one fit's log-likelihood row."""
    where = f"fit {index} ({_describe(estimator)})"
    loglik = np.asarray(loglik)
    if loglik.shape != (n_samples,):
        raise ValueError(
            f"score_samples of {where} returned shape {loglik.shape}; "
            f"expected ({n_samples},), one log-likelihood per row of X."
        )
    if loglik.dtype.kind not in "fiu":
        raise ValueError(
            f"score_samples of {where} returned values of dtype {loglik.dtype}; "
            "expected real numbers (float), one log-likelihood per row of X."
        )
    loglik = loglik.astype(np.float64, copy=False)
    n_nan = int(np.isnan(loglik).sum())
    if n_nan:
        raise ValueError(
            f"score_samples of {where} returned NaN for {n_nan} of "
            f"{n_samples} samples; a density estimator must give a "
            "log-likelihood (possibly -inf) for every sample. Check the fit "
            "for divergence (regularise it, rescale X)."
        )
    n_posinf = int(np.isposinf(loglik).sum())
    if n_posinf:
        raise ValueError(
            f"score_samples of {where} returned +inf for {n_posinf} samples: "
            "the fitted density is degenerate (e.g. a singular covariance). "
            "Regularise the estimator (e.g. reg_covar for GaussianMixture)."
        )
    return loglik


def check_memory(memory):
    """A joblib.Memory from None, a path or a Memory-like object."""
    if memory is None or isinstance(memory, str):
        return Memory(location=memory, verbose=0)
    if not hasattr(memory, "cache"):
        raise ValueError(
            "memory must be None, a path or a joblib.Memory-like object with a "
            f"'cache' method; got {memory!r}."
        )
    return memory


def _cached_fit_and_score(
    estimator, X, train, fit_params, seed, n_threads, index, versions
):
    # the cache key: estimator parameters, data, split, seed and the versions
    # of the code that fits (a new release may fit differently with the same
    # parameters); not the thread count or the fit's position
    return fit_and_score(estimator, X, train, fit_params, seed, n_threads, index)


def fit_batched_and_score(estimator, X, trains, seeds, n_threads, verbose=0):
    """Fit all folds at once with ``estimator.fit_folds`` and score them.

    ``fit_folds(estimators, X, trains)`` trains one clone per training part
    (each already carrying its own seeds) simultaneously and returns them
    fitted, as ordinary estimators; ``score_folds(estimators, X)``, when the
    estimator has it, scores them all at once.
    """
    clones = [set_random_states(clone(estimator), int(seed)) for seed in seeds]
    bars = StageBars() if verbose > 0 else None
    with bars or nullcontext(), reporting(bars), limit_threads(n_threads):
        try:
            fitted = estimator.fit_folds(clones, X, trains)
        except Exception as exc:
            sizes = ", ".join(str(len(t)) for t in trains)
            _add_note(
                exc,
                f"(raised by the batched fit of {len(trains)} splits of "
                f"{_describe(estimator)}, on {sizes} of {X.shape[0]} rows)",
            )
            raise
        if len(fitted) != len(trains):
            raise ValueError(
                f"{type(estimator).__name__}.fit_folds returned {len(fitted)} "
                f"estimators for {len(trains)} training parts."
            )
        if not hasattr(estimator, "score_folds"):
            return [score_fitted(est, X, k) for k, est in enumerate(fitted)]
        # one call scores every fit (sharing work between them, same values)
        rows = estimator.score_folds(fitted, X)
        return [
            (
                check_loglik(rows[k], X.shape[0], est, k),
                score_checkpoints(est, X, k),
            )
            for k, est in enumerate(fitted)
        ]


def _cached_fit_batched_and_score(
    estimator, X, trains, seeds, n_threads, versions, verbose=0
):
    return fit_batched_and_score(estimator, X, trains, seeds, n_threads, verbose)


def _code_versions(estimator):
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


def progress(iterable, *, total, enabled, desc="fits"):
    """A tqdm progress bar over ``iterable`` (log lines without tqdm)."""
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _logged(iterable, total, desc)
    return tqdm(iterable, total=total, desc=desc, unit="fit")


def _logged(iterable, total, desc):
    for k, item in enumerate(iterable, 1):
        logger.info("%s: %d/%d done", desc, k, total)
        yield item


def run_fits(
    estimator, X, splits, fit_params, seeds, *, n_jobs, memory, verbose, batched=False
):
    """Fit and score every split: in parallel, or all folds as one batch.

    Returns
    -------
    loglik : ndarray of shape (n_fits, n_samples)
    checkpoints : list of (epochs, ndarray) or None, one per fit
    n_from_cache : int
        Fits whose results were read from ``memory`` instead of computed.
    """
    n_from_cache = 0
    if batched:
        # one process trains every fold: it gets the cores n_jobs asks for
        n_threads = max(1, effective_n_jobs(n_jobs))
        trains = [train for train, _ in splits]
        if memory is None:
            results = fit_batched_and_score(
                estimator, X, trains, seeds, n_threads, verbose
            )
        else:
            cached = check_memory(memory).cache(
                _cached_fit_batched_and_score, ignore=["n_threads", "verbose"]
            )
            args = (estimator, X, trains, seeds, n_threads, _code_versions(estimator))
            if cached.check_call_in_cache(*args, verbose=verbose):
                n_from_cache = len(splits)
            results = cached(*args, verbose=verbose)
    else:
        n_threads = inner_thread_limit()
        worker, extra = fit_and_score, ()
        if memory is not None:
            worker = check_memory(memory).cache(
                _cached_fit_and_score, ignore=["n_threads", "index"]
            )
            extra = (_code_versions(estimator),)
        calls = [
            (
                estimator,
                X,
                train,
                fit_params,
                None if seeds is None else int(seeds[k]),
                n_threads,
                k,
                *extra,
            )
            for k, (train, _) in enumerate(splits)
        ]
        if memory is not None:
            n_from_cache = sum(bool(worker.check_call_in_cache(*c)) for c in calls)
        jobs = Parallel(
            n_jobs=n_jobs, verbose=verbose if verbose > 1 else 0, return_as="generator"
        )(delayed(worker)(*call) for call in calls)
        results = list(progress(jobs, total=len(splits), enabled=verbose > 0))
    loglik = np.vstack([row for row, _ in results])
    return loglik, [checkpoints for _, checkpoints in results], n_from_cache


def split_rounds(in_mask):
    """Group consecutive fits into repeats: rounds with disjoint "out" parts.

    The fits of one KFold form one round; each repeat of RepeatedKFold is a
    round; with ShuffleSplit every fit is usually a round of its own.

    Returns
    -------
    rounds : ndarray of int, shape (n_fits,)
    """
    rounds = np.zeros(in_mask.shape[0], dtype=np.intp)
    used = np.zeros(in_mask.shape[1], dtype=bool)
    current = 0
    for k, row in enumerate(in_mask):
        out = ~row
        if (used & out).any():
            current += 1
            used[:] = False
        used |= out
        rounds[k] = current
    return rounds
