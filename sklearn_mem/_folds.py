"""Splits, seeds, the fit-and-score worker, parallel dispatch and its cache.

The refit path of :class:`~sklearn_mem.MemorizationScorer` is
``cross_val_predict``-shaped: splits are materialised once, one seed per fit
is drawn in the parent, and each worker fits one clone on its training part
and returns the clone's log-likelihood of every row (not the model).

The fold-batched path (estimators with ``fit_folds``) trains units of folds
instead: one unit per repeat of a repeated splitter, all the fits otherwise
(:func:`fold_units`). Units are jobs of the same ``Parallel`` dispatch,
each cached on its own; while a unit trains, its training state is saved
next to the cache (:class:`TrainingStateStore`, plain arrays, never a
pickle) so that a killed run resumes mid-training with the same result.
"""

import hashlib
import inspect
import itertools
import json
import logging
import os
import shutil
import signal
import uuid
import warnings
from contextlib import nullcontext
from pathlib import Path

import numpy as np
from joblib import Memory, effective_n_jobs
from sklearn.base import clone
from sklearn.utils import check_random_state
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import _check_method_params

from ._progress import StageBars, progress, reporting
from ._response import compute_response, response_key
from ._threads import inner_thread_limit, limit_threads, watch_parent
from ._versions import code_versions

MAX_SEED = np.iinfo(np.int32).max

logger = logging.getLogger("sklearn_mem")


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


def _describe(estimator):
    text = repr(estimator).replace("\n", " ")
    return text if len(text) <= 80 else text[:77] + "..."


def fit_seeded_clone(estimator, X, train, fit_params, seed, n_threads, where, y=None):
    """Clone ``estimator``, push ``seed`` into it and fit it with bounded threads.

    The one way every fit is made: the split fits, the refit on all of
    ``X`` and the command's sampling fit.

    Parameters
    ----------
    estimator : estimator object
        Cloned, never modified.
    X : ndarray of shape (n_samples, n_features)
    train : ndarray of int or None
        Rows to fit on (sample-aligned ``fit_params`` are sliced alike);
        None fits on all of ``X``.
    fit_params : dict
    seed : int or None
        Pushed into every ``random_state`` of the clone (derived per
        parameter); None leaves them.
    n_threads : int
        BLAS/OpenMP/torch threads while fitting.
    where : str
        What this fit is, attached as a note to an exception it raises.
    y : ndarray of shape (n_samples,) or None, default=None
        Targets, passed to ``fit`` (sliced like ``X``) when not None;
        density estimators are fitted without.

    Returns
    -------
    estimator : estimator object
        The fitted clone.
    """
    estimator = clone(estimator)
    if seed is not None:
        set_random_states(estimator, int(seed))
    if train is None:
        rows, params, targets = X, fit_params, y
    else:
        rows = X[train]
        params = _check_method_params(X, params=fit_params, indices=train)
        targets = None if y is None else y[train]
    args = (rows,) if targets is None else (rows, targets)
    watch_parent()
    with limit_threads(n_threads):
        try:
            estimator.fit(*args, **params)
        except Exception as exc:
            _add_note(exc, f"(raised by {where})")
            raise
    return estimator


def fit_and_score(estimator, X, train, fit_params, seed, n_threads, index):
    """Fit one clone on ``X[train]`` and score every row of ``X`` with it.

    Returns what :func:`score_fitted` returns; ``-inf`` log-likelihoods are
    kept, NaN, ``+inf`` or a wrong shape raise a ValueError naming the fit.
    """
    where = (
        f"fit {index}: {_describe(estimator)} fitted on {len(train)} of "
        f"{X.shape[0]} rows"
    )
    fitted = fit_seeded_clone(estimator, X, train, fit_params, seed, n_threads, where)
    with limit_threads(n_threads):
        return score_fitted(fitted, X, index)


def fit_and_respond(
    estimator, X, y, train, fit_params, seed, n_threads, index, response
):
    """Fit one clone on ``X[train]`` (and ``y[train]``) and take its response.

    The supervised twin of :func:`fit_and_score`: ``response`` is
    ``"log_proba"``, ``"correct"`` or a callable (see
    :mod:`sklearn_mem._response`), evaluated on every row of ``X``.

    Returns
    -------
    values : ndarray of shape (n_samples,)
    checkpoints : None
    """
    where = (
        f"fit {index}: {_describe(estimator)} fitted on {len(train)} of "
        f"{X.shape[0]} rows"
    )
    fitted = fit_seeded_clone(
        estimator, X, train, fit_params, seed, n_threads, where, y=y
    )
    with limit_threads(n_threads):
        return (
            compute_response(
                fitted, X, y, response, f"fit {index} ({_describe(fitted)})"
            ),
            None,
        )


def fit_score_and_keep(
    estimator, X, y, train, fit_params, seed, n_threads, index, response
):
    """:func:`fit_and_score` or :func:`fit_and_respond`, keeping the model.

    Returns
    -------
    values : ndarray of shape (n_samples,)
    checkpoints : tuple or None
    estimator : estimator object
        The fitted clone (for ``keep_estimators=True``).
    """
    where = (
        f"fit {index}: {_describe(estimator)} fitted on {len(train)} of "
        f"{X.shape[0]} rows"
    )
    supervised = response != "score_samples"
    fitted = fit_seeded_clone(
        estimator,
        X,
        train,
        fit_params,
        seed,
        n_threads,
        where,
        y=y if supervised else None,
    )
    with limit_threads(n_threads):
        if supervised:
            values = compute_response(
                fitted, X, y, response, f"fit {index} ({_describe(fitted)})"
            )
            return values, None, fitted
        values, checkpoints = score_fitted(fitted, X, index)
        return values, checkpoints, fitted


REFIT = "the refit on all of X, refit=True"


def refit_and_score(
    estimator, X, fit_params, seed, n_threads, y=None, response="score_samples"
):
    """The refit on all of ``X`` and its log-likelihood (response) of every row.

    Returns
    -------
    estimator : estimator object
        The fitted clone (``estimator_``).
    loglik : ndarray of shape (n_samples,)
    """
    if response == "score_samples":
        fitted = fit_seeded_clone(
            estimator, X, None, fit_params, seed, n_threads, REFIT
        )
        with limit_threads(n_threads):
            loglik = check_loglik(
                fitted.score_samples(X), X.shape[0], fitted, "on all of X"
            )
        return fitted, loglik
    fitted = fit_seeded_clone(
        estimator, X, None, fit_params, seed, n_threads, REFIT, y=y
    )
    with limit_threads(n_threads):
        values = compute_response(
            fitted, X, y, response, f"the refit on all of X ({_describe(fitted)})"
        )
    return fitted, values


def _refit_job(estimator, X, fit_params, seed, n_threads, y=None, response=None):
    """:func:`refit_and_score`, its exception returned instead of raised."""
    try:
        if response is None:
            result = refit_and_score(estimator, X, fit_params, seed, n_threads)
        else:
            result = refit_and_score(
                estimator, X, fit_params, seed, n_threads, y=y, response=response
            )
        return result, None
    except Exception as exc:  # noqa: BLE001 - raised by the caller
        return None, exc


def _add_note(exc, note):
    """Attach ``note`` to ``exc`` (shown under its traceback and by the CLI)."""
    if hasattr(exc, "add_note"):  # Python >= 3.11
        exc.add_note(note)
    else:  # pragma: no cover - Python 3.10
        exc.__notes__ = [*getattr(exc, "__notes__", []), note]


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
    return check_loglik_row(loglik, n_samples, f"fit {index} ({_describe(estimator)})")


def check_loglik_row(loglik, n_samples, where, *, allow_posinf=False):
    """Validate log-likelihoods returned by ``score_samples`` of ``where``.

    One float64 value per sample; ``-inf`` (zero density) is kept; a wrong
    shape, a non-real dtype, NaN or (unless allowed) ``+inf`` raise a
    ValueError naming ``where``.
    """
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
    if n_posinf and not allow_posinf:
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


def _cached_fit_and_respond(
    estimator,
    X,
    y,
    train,
    fit_params,
    seed,
    n_threads,
    index,
    response,
    response_key,
    versions,
):
    # the cache key of a supervised fit: that of _cached_fit_and_score, plus
    # the targets and the response (by response_key: a callable is keyed by
    # its code, not by the object, which need not pickle)
    return fit_and_respond(
        estimator, X, y, train, fit_params, seed, n_threads, index, response
    )


def fit_batched_and_score(
    estimator, X, trains, seeds, n_threads, verbose=0, checkpoint=None
):
    """Fit all folds at once with ``estimator.fit_folds`` and score them.

    ``fit_folds(estimators, X, trains)`` trains one clone per training part
    (each already carrying its own seeds) simultaneously and returns them
    fitted, as ordinary estimators; ``score_folds(estimators, X)``, when the
    estimator has it, scores them all at once. ``checkpoint`` (a
    :class:`TrainingStateStore`), when given, is passed on as
    ``fit_folds(..., checkpoint=checkpoint)`` to an estimator whose
    ``fit_folds`` accepts it, which saves its training state there and
    resumes from it.
    """
    clones = [set_random_states(clone(estimator), int(seed)) for seed in seeds]
    extra = {}
    if checkpoint is not None and _accepts_checkpoint(estimator.fit_folds):
        extra["checkpoint"] = checkpoint
    bars = StageBars() if verbose > 0 else None
    with bars or nullcontext(), reporting(bars), limit_threads(n_threads):
        try:
            fitted = estimator.fit_folds(clones, X, trains, **extra)
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


def _accepts_checkpoint(fit_folds):
    try:
        params = inspect.signature(fit_folds).parameters
    except (TypeError, ValueError):
        return False
    return "checkpoint" in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )


def _cached_fit_batched_and_score(
    estimator, X, trains, seeds, n_threads, versions, verbose=0, checkpoint=None
):
    # the cache key of a unit of folds: estimator, data, training parts,
    # seeds and code versions (not the threads, the display or where the
    # training state is saved)
    return fit_batched_and_score(
        estimator, X, trains, seeds, n_threads, verbose, checkpoint
    )


#: Folder, under the location of ``memory``, of the saved training states.
STATE_DIR = "sklearn_mem_checkpoints"
#: Environment variable: ``training-state:N`` makes the process kill itself
#: with SIGKILL right after its N-th save of a training state, counted over
#: every unit the process trains (crash tests; ``_rundir`` reads the same
#: variable for the steps of its output phase).
KILL_AT_ENV = "SKLEARN_MEM_KILL_AT"
_SAVES = itertools.count(1)  # saves of this process, for KILL_AT_ENV
_STATE_FILE = "state.npz"
_MARKER_FILE = "entry.json"


class TrainingStateStore:
    """The saved training state of one unit of fold-batched fits.

    One file of plain arrays, ``<location>/sklearn_mem_checkpoints/<key>/
    state.npz``, next to the cache of ``memory``: the arrays of the state,
    its description as JSON text (stored as bytes) and a SHA-256 of both.
    It is read with ``allow_pickle=False``, so nothing in it can run code,
    whatever ``memory`` is (a path, a joblib.Memory or the command line's
    run folder). Each save writes a new file and renames it over the old
    one, so a process killed while saving leaves the previous state. A
    state that cannot be read or whose checksum does not match is reported
    and ignored (training starts afresh). The folder is removed once the
    unit's result is in the cache.

    Parameters
    ----------
    location : str or path-like
        The location of ``memory``.
    key : str
        What identifies the unit (the hash of its cache key).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from sklearn_mem._folds import TrainingStateStore
    >>> store = TrainingStateStore(tempfile.mkdtemp(), "unit")
    >>> store.load() is None
    True
    >>> store.save({"w": np.arange(3.0)}, {"epoch": 2})
    >>> arrays, meta = store.load()
    >>> arrays["w"], meta["epoch"]
    (array([0., 1., 2.]), 2)
    >>> store.clear()
    >>> store.load() is None
    True
    """

    def __init__(self, location, key):
        self.folder = Path(location) / STATE_DIR / str(key)
        self.key = str(key)
        self.n_saved = 0

    @property
    def path(self):
        """The state's file."""
        return self.folder / _STATE_FILE

    def load(self):
        """The saved ``(arrays, meta)``, or None when there is none to use."""
        try:
            with np.load(self.path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
            digest = bytes(arrays.pop("sha256")).decode("ascii")
            if digest != _state_digest(arrays):
                raise ValueError("its checksum does not match its arrays")
            meta = json.loads(bytes(arrays.pop("meta")).decode("utf-8"))
            if not isinstance(meta, dict):
                raise ValueError("its description is not a JSON object")
        except FileNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001 - any unreadable file
            warnings.warn(
                f"The saved training state {self.path} cannot be used ({exc}); "
                "it is removed and the training of its folds starts afresh.",
                RuntimeWarning,
                stacklevel=2,
            )
            try:
                self.path.unlink(missing_ok=True)
            except OSError:  # e.g. a folder of that name: not ours to remove
                pass
            return None
        return arrays, meta

    def save(self, arrays, meta):
        """Replace the saved state by ``arrays`` (numpy) and ``meta`` (JSON-able)."""
        payload = {name: np.ascontiguousarray(value) for name, value in arrays.items()}
        for reserved in ("meta", "sha256"):
            if reserved in payload:
                raise ValueError(f"{reserved!r} is a reserved name in a saved state")
        payload["meta"] = np.frombuffer(
            json.dumps(meta, default=_json_scalar).encode("utf-8"), dtype=np.uint8
        )
        digest = _state_digest(payload)
        payload["sha256"] = np.frombuffer(digest.encode("ascii"), dtype=np.uint8)
        self.folder.mkdir(parents=True, exist_ok=True)
        marker = self.folder / _MARKER_FILE
        if not marker.exists():
            # what wrote the folder (a run folder's cache lists and clears
            # folders holding an entry.json, so a stale state goes with it)
            marker.write_text(
                json.dumps({"format": 1, "function": "training state", "key": self.key})
            )
        tmp = self.folder / f".state.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with open(tmp, "xb") as fh:
                np.savez(fh, **payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.n_saved += 1
        if os.environ.get(KILL_AT_ENV) == f"training-state:{next(_SAVES)}":
            os.kill(os.getpid(), signal.SIGKILL)

    def clear(self):
        """Remove the saved state (its folder)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def _json_scalar(value):
    """numpy scalars (e.g. in a skorch history) as Python numbers."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot save a {type(value).__name__} in a training state")


def _state_digest(arrays):
    sha = hashlib.sha256()
    for name in sorted(arrays):
        value = np.ascontiguousarray(arrays[name])
        sha.update(f"{name}|{value.dtype.str}|{value.shape}|".encode())
        sha.update(value.tobytes())
    return sha.hexdigest()


def _state_location(memory):
    """The folder under which training states are saved, or None."""
    location = getattr(memory, "location", None)
    return None if location is None else os.fspath(location)


def fold_units(splits, n_samples):
    """Group the splits of a fold-batched run into units trained together.

    The fits are cut into rounds of consecutive splits whose held-out parts
    are disjoint (each repeat of ``RepeatedKFold`` is a round); when there
    are several rounds of at least two fits each, every round is a unit,
    otherwise (one ``KFold``, ``ShuffleSplit``'s overlapping held-out parts)
    all the fits form one unit.

    Returns
    -------
    units : list of list of int
        Split indices, in order; their concatenation is ``range(len(splits))``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import RepeatedKFold
    >>> from sklearn_mem._folds import fold_units
    >>> X = np.zeros((6, 1))
    >>> fold_units(list(RepeatedKFold(n_splits=3, n_repeats=2).split(X)), 6)
    [[0, 1, 2], [3, 4, 5]]
    """
    rounds, current = [], []
    used = np.zeros(n_samples, dtype=bool)
    for k, (_, test) in enumerate(splits):
        if used[test].any():
            rounds.append(current)
            current = []
            used[:] = False
        used[test] = True
        current.append(k)
    rounds.append(current)
    if len(rounds) > 1 and all(len(r) >= 2 for r in rounds):
        return rounds
    return [[k for r in rounds for k in r]]


def _fit_unit(worker, estimator, X, trains, seeds, n_threads, versions, verbose, state):
    """Fit and score one unit of folds; its saved state goes once it is cached.

    ``worker`` is the cached :func:`_cached_fit_batched_and_score` (or None:
    no cache); ``state`` is ``(location, key)`` of its
    :class:`TrainingStateStore`, or None.
    """
    watch_parent()  # a unit in a loky worker stops when the run is killed
    checkpoint = None if state is None else TrainingStateStore(*state)
    if worker is None:
        return fit_batched_and_score(
            estimator, X, trains, seeds, n_threads, verbose, checkpoint
        )
    result = worker(
        estimator,
        X,
        trains,
        seeds,
        n_threads,
        versions,
        verbose=verbose,
        checkpoint=checkpoint,
    )
    if checkpoint is not None:
        checkpoint.clear()  # the result is cached: the state has served
    return result


def run_batched_units(
    estimator, X, splits, seeds, *, n_jobs, memory, verbose, n_from_cache=0
):
    """Fit and score every split as fold-batched units (see :func:`fold_units`).

    One unit is trained in this process with the threads ``n_jobs`` asks
    for. Several units (the repeats of ``RepeatedKFold``) are jobs of one
    ``Parallel`` dispatch, so a Dask or Ray cluster runs them on separate
    workers; each then runs with :func:`inner_thread_limit` threads, as a
    single split fit would. With ``memory``, each unit is cached on its own
    (by its estimator, data, training parts, seeds and code versions) and,
    when ``memory`` has a location on disk, its training state is saved
    there while it trains (``fit_folds(..., checkpoint=)``), so a killed
    run resumes mid-training.

    Returns
    -------
    results : list of (loglik, checkpoints), one per split
    n_from_cache : int
        Fits whose results were read from ``memory``.
    """
    import joblib

    units = fold_units(splits, X.shape[0])
    several = len(units) > 1
    n_threads = inner_thread_limit() if several else max(1, effective_n_jobs(n_jobs))
    seeds = np.asarray(seeds)
    trains = [train for train, _ in splits]
    versions = code_versions(estimator)
    worker, location = None, None
    if memory is not None:
        memory = check_memory(memory)
        worker = memory.cache(
            _cached_fit_batched_and_score, ignore=["n_threads", "verbose", "checkpoint"]
        )
        location = _state_location(memory)
    calls = []
    data_key = joblib.hash(X) if location is not None else None
    for unit in units:
        unit_trains = [trains[k] for k in unit]
        unit_seeds = seeds if not several else seeds[unit]
        state = None
        if location is not None:
            key = joblib.hash(
                (
                    "training state",
                    estimator,
                    data_key,
                    unit_trains,
                    unit_seeds,
                    versions,
                )
            )
            state = (location, key)
        if worker is not None and worker.check_call_in_cache(
            estimator, X, unit_trains, unit_seeds, n_threads, versions
        ):
            n_from_cache += len(unit)
        calls.append(
            (
                worker,
                estimator,
                X,
                unit_trains,
                unit_seeds,
                n_threads,
                versions,
                0 if several else verbose,
                state,
            )
        )
    if n_from_cache < len(trains):
        # long work: say so once, even when silent (verbose=0)
        logger.info(
            "training the %d fits of %s as %s on %d thread(s)%s; this can take "
            "minutes (verbose=1 shows progress bars)",
            len(trains),
            type(estimator).__name__,
            "one fold-batched model"
            if not several
            else f"{len(units)} fold-batched units of {len(units[0])}",
            n_threads,
            "" if not several else " each",
        )
    if not several:
        per_unit = [_fit_unit(*calls[0])]
    else:
        done = dispatch(
            [delayed(_fit_unit)(*call) for call in calls],
            n_jobs=n_jobs,
            verbose=verbose,
        )
        per_unit = list(
            progress(done, total=len(calls), enabled=verbose > 0, desc="units of fits")
        )
    results = [result for unit_results in per_unit for result in unit_results]
    return results, n_from_cache


def dispatch(jobs, *, n_jobs, verbose=0):
    """Run ``jobs`` through ``Parallel``, yielding their results in order.

    Results come as they finish where the backend can return a generator
    (loky, threading, dask, sequential); other backends (multiprocessing,
    Ray's) get the jobs in rounds of a few per worker, so that a progress bar
    still moves -- with ``n_jobs=1`` too, since joblib refuses a generator
    from them whatever ``n_jobs``. The results, and their order, are the
    same either way.
    """
    from joblib.parallel import get_active_backend

    joblib_verbose = verbose if verbose > 1 else 0
    backend, _ = get_active_backend()
    if getattr(backend, "supports_return_generator", True):
        yield from Parallel(
            n_jobs=n_jobs, verbose=joblib_verbose, return_as="generator"
        )(jobs)
        return
    size = 2 * max(1, effective_n_jobs(n_jobs))
    parallel = Parallel(n_jobs=n_jobs, verbose=joblib_verbose)
    with parallel:  # one pool of workers for every round
        for start in range(0, len(jobs), size):
            yield from parallel(jobs[start : start + size])


def run_fits(
    estimator,
    X,
    splits,
    fit_params,
    seeds,
    *,
    n_jobs,
    memory,
    verbose,
    batched=False,
    refit_seed=None,
    y=None,
    response="score_samples",
    kept=None,
):
    """Fit and score every split (in parallel, or all folds as one batch).

    With ``response`` other than ``"score_samples"`` (a classifier's
    ``"log_proba"`` or ``"correct"``, or a callable), each fit is given
    ``y`` and records that response instead of its log-likelihood; it is
    part of the cache key. (Never batched.)

    With ``kept`` (a list), every fitted split estimator is appended to it,
    in split order; those fits bypass ``memory`` (a cached row has no model).

    With ``refit_seed`` (not None), the refit on all of ``X`` is one more
    job of the same dispatch: it starts first, being the largest fit, and
    runs alongside the split fits instead of alone after them. It is never
    cached. (A fold-batched run trains its units of folds first, see
    :func:`run_batched_units`; its refit follows them.)

    Returns
    -------
    loglik : ndarray of shape (n_fits, n_samples)
    checkpoints : list of (epochs, ndarray) or None, one per fit
    n_from_cache : int
        Fits whose results were read from ``memory`` instead of computed.
    refit : tuple (estimator, loglik) or None
        What :func:`refit_and_score` returns, when ``refit_seed`` is given.
    """
    n_from_cache = 0
    refit = None
    if batched:
        results, n_from_cache = run_batched_units(
            estimator, X, splits, seeds, n_jobs=n_jobs, memory=memory, verbose=verbose
        )
        if refit_seed is not None:
            refit = refit_and_score(
                estimator, X, fit_params, refit_seed, inner_thread_limit()
            )
    else:
        n_threads = inner_thread_limit()

        def split_calls(with_y, trailing):
            lead = (estimator, X, y) if with_y else (estimator, X)
            return [
                (
                    *lead,
                    train,
                    fit_params,
                    None if seeds is None else int(seeds[k]),
                    n_threads,
                    k,
                    *trailing,
                )
                for k, (train, _) in enumerate(splits)
            ]

        if kept is not None:
            worker, refit_extra = fit_score_and_keep, (y, response)
            calls = split_calls(True, (response,))
            memory = None
        elif response == "score_samples":
            worker, extra = fit_and_score, ()
            if memory is not None:
                worker = check_memory(memory).cache(
                    _cached_fit_and_score, ignore=["n_threads", "index"]
                )
                extra = (code_versions(estimator),)
            calls = split_calls(False, extra)
            refit_extra = ()
        else:
            worker, extra = fit_and_respond, ()
            if memory is not None:
                worker = check_memory(memory).cache(
                    _cached_fit_and_respond,
                    ignore=["n_threads", "index", "response"],
                )
                extra = (response_key(response), code_versions(estimator))
            calls = split_calls(True, (response, *extra))
            refit_extra = (y, response)
        if memory is not None:
            n_from_cache = sum(bool(worker.check_call_in_cache(*c)) for c in calls)
        jobs = [delayed(worker)(*call) for call in calls]
        if refit_seed is not None:
            jobs.insert(
                0,
                delayed(_refit_job)(
                    estimator, X, fit_params, int(refit_seed), n_threads, *refit_extra
                ),
            )
        done = dispatch(jobs, n_jobs=n_jobs, verbose=verbose)
        results = list(progress(done, total=len(jobs), enabled=verbose > 0))
        if refit_seed is not None:
            refit, error = results.pop(0)
            if error is not None:
                # raised once every split fit has succeeded, as when it ran last
                raise error

    if kept is not None:
        kept.extend(result[2] for result in results)
    loglik = np.vstack([result[0] for result in results])
    return loglik, [result[1] for result in results], n_from_cache, refit
