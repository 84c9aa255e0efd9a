"""The run folder of ``sklearn-mem``: a small database of one study.

Layout of a run folder ``OUT``::

    OUT/run.json                 the run's description (data and fit settings)
    OUT/cache/<function>/<key>/  one stored fit result: arrays.npz + entry.json
    OUT/scores.csv, ...          links to the current output set
    OUT/.sklearn-mem/manifest.json   what sklearn-mem wrote; the set's generation
    OUT/.sklearn-mem/lock            held by the one process writing the folder
    OUT/.sklearn-mem/sets/<gen>/     complete output sets
    OUT/.sklearn-mem/current         link to the current set

Guarantees:

- nothing is ever unpickled: fit results are stored as plain arrays
  (``np.load(allow_pickle=False)``) with a JSON description and a SHA-256
  checksum; a corrupt or edited entry is reported and recomputed;
- one process writes a folder at a time (:mod:`filelock`); a second one is
  refused with a message;
- the output set is replaced as a whole: the new set is written into a
  staging folder, then the ``current`` link is switched atomically, so a
  reader sees the complete old set or the complete new one, never a mix;
- nothing that sklearn-mem did not write is deleted: a folder without a
  manifest is refused unless it is empty, and only the entries and links
  sklearn-mem made are ever removed.
"""

import hashlib
import io
import json
import logging
import os
import shutil
import signal
import time
import uuid
from pathlib import Path

import numpy as np

from ._errors import CLIError

logger = logging.getLogger("sklearn_mem")

STATE_DIR = ".sklearn-mem"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = "lock"
SETS_DIR = "sets"
CURRENT = "current"
RUN_FILE = "run.json"
CACHE_DIR = "cache"
ENTRY_FILE = "entry.json"
ARRAYS_FILE = "arrays.npz"
FOLDER_FORMAT = 1
ENTRY_FORMAT = 1

#: Environment variable naming a step of the output phase at which the process
#: kills itself with SIGKILL (tests of crash consistency).
KILL_AT_ENV = "SKLEARN_MEM_KILL_AT"
PUBLISH_STEPS = ("staged-file", "staged", "linked", "switched", "committed")


def _kill_point(step):
    if os.environ.get(KILL_AT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not supported on every platform
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_file(path, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(path, "xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _atomic_write(path, data):
    path = Path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        _write_file(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------
# the fit store: plain arrays, checksums, no pickle
# ---------------------------------------------------------------------------


class CorruptEntryError(Exception):
    """A stored fit result that cannot be trusted (unreadable or edited)."""


def _encode(obj, arrays):
    """A JSON description of ``obj``; its arrays go into ``arrays``."""
    if obj is None:
        return None
    if isinstance(obj, np.ndarray | np.generic):
        arr = np.asarray(obj)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"cannot store an array of dtype {arr.dtype}")
        name = f"a{len(arrays)}"
        arrays[name] = arr
        return {"array": name}
    if isinstance(obj, bool | int | float | str):
        return {"value": obj}
    if isinstance(obj, tuple | list):
        kind = "tuple" if isinstance(obj, tuple) else "list"
        return {kind: [_encode(item, arrays) for item in obj]}
    raise TypeError(f"cannot store a {type(obj).__name__}")


def _decode(spec, arrays):
    if spec is None:
        return None
    if not isinstance(spec, dict) or len(spec) != 1:
        raise CorruptEntryError(f"unexpected structure {spec!r:.80}")
    ((kind, value),) = spec.items()
    if kind == "array":
        if value not in arrays:
            raise CorruptEntryError(f"missing array {value!r}")
        return arrays[value]
    if kind == "value":
        if not isinstance(value, bool | int | float | str):
            raise CorruptEntryError(f"unexpected value {value!r:.80}")
        return value
    if kind in ("tuple", "list") and isinstance(value, list):
        items = [_decode(item, arrays) for item in value]
        return tuple(items) if kind == "tuple" else items
    raise CorruptEntryError(f"unexpected structure {spec!r:.80}")


def _function_name(func):
    return f"{func.__module__}.{func.__qualname__}"


class FitStore:
    """A cache of fit results as plain arrays, with the joblib.Memory interface.

    ``FitStore(location).cache(func, ignore=[...])`` returns a callable that
    looks its result up by the same fingerprint joblib.Memory uses (a hash of
    the function's name and its arguments, ``ignore`` left out) and computes
    and stores it when missing. Results are trees of tuples, lists, None,
    numbers, strings and numeric arrays. Each entry is a folder holding
    ``arrays.npz`` (read with ``allow_pickle=False``: nothing is ever
    unpickled) and ``entry.json`` (the structure, the SHA-256 of the arrays
    file, and the seconds the computation took). An entry that cannot be
    read, or whose checksum does not match, is reported, removed and
    recomputed. The checksum detects corruption and edits of the arrays
    file; it is not a signature (whoever can write the folder can rewrite
    both files), but nothing in an entry can run code.

    Parameters
    ----------
    location : str or path-like
        The folder of the store (created when the first entry is written).

    Attributes
    ----------
    cached_seconds : list of float
        For every entry found valid by ``check_call_in_cache`` in this
        process: the seconds its computation took when it was first run.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from sklearn_mem.cli import FitStore
    >>> store = FitStore(tempfile.mkdtemp())
    >>> square = store.cache(np.square)
    >>> square.check_call_in_cache(np.arange(3))
    False
    >>> square(np.arange(3))
    array([0, 1, 4])
    >>> square.check_call_in_cache(np.arange(3))
    True
    """

    def __init__(self, location):
        self.location = Path(location)
        self.cached_seconds = []

    def cache(self, func, ignore=None):
        """Wrap ``func`` so that its results are stored; see the class doc."""
        return StoredFunction(self, func, tuple(ignore or ()))

    def entries(self):
        """Folders of the valid-looking entries (an ``entry.json`` of ours)."""
        if not self.location.is_dir():
            return []
        found = []
        for func_dir in sorted(self.location.iterdir()):
            if not func_dir.is_dir() or func_dir.is_symlink():
                continue
            for entry in sorted(func_dir.iterdir()):
                if _is_entry(entry):
                    found.append(entry)
        return found

    def clear(self):
        """Remove the entries this store wrote (nothing else); return how many."""
        removed = 0
        for entry in self.entries():
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
        self.tidy()
        return removed

    def tidy(self):
        """Remove unfinished entries (temporary folders of a killed process).

        Only safe while no other process writes the store (the run folder's
        lock guarantees it for the command).
        """
        if not self.location.is_dir():
            return
        for func_dir in self.location.iterdir():
            if not func_dir.is_dir() or func_dir.is_symlink():
                continue
            for tmp in func_dir.glob(".*.tmp"):
                if tmp.is_dir() and not tmp.is_symlink():
                    shutil.rmtree(tmp, ignore_errors=True)
            try:
                func_dir.rmdir()  # only when empty
            except OSError:
                pass


def _is_entry(path):
    return (
        path.is_dir()
        and not path.is_symlink()
        and not path.name.startswith(".")
        and (path / ENTRY_FILE).is_file()
    )


class StoredFunction:
    """``func`` with its results kept in a :class:`FitStore`."""

    def __init__(self, store, func, ignore):
        self.store = store
        self.func = func
        self.ignore = ignore

    def _path(self, args, kwargs):
        import joblib
        from joblib.func_inspect import filter_args

        filtered = filter_args(self.func, list(self.ignore), args, kwargs)
        key = joblib.hash((_function_name(self.func), filtered))
        return self.store.location / self.func.__name__ / key

    def _load(self, path):
        try:
            meta = json.loads((path / ENTRY_FILE).read_text(encoding="utf-8"))
            raw = (path / ARRAYS_FILE).read_bytes()
        except FileNotFoundError:
            if path.exists():
                raise CorruptEntryError("a file of the entry is missing") from None
            raise
        except (OSError, ValueError) as exc:
            raise CorruptEntryError(f"unreadable ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != ENTRY_FORMAT:
            raise CorruptEntryError("unknown entry format")
        if meta.get("key") != path.name or meta.get("function") != _function_name(
            self.func
        ):
            raise CorruptEntryError("the entry describes another computation")
        if hashlib.sha256(raw).hexdigest() != meta.get("sha256"):
            raise CorruptEntryError("its checksum does not match its arrays")
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except Exception as exc:  # noqa: BLE001 - any unreadable archive
            raise CorruptEntryError(f"unreadable arrays ({exc})") from None
        return _decode(meta.get("structure"), arrays), meta

    def _discard(self, path, exc):
        logger.warning(
            "cache entry %s is corrupt (%s): it is removed and recomputed", path, exc
        )
        shutil.rmtree(path, ignore_errors=True)

    def check_call_in_cache(self, *args, **kwargs):
        """Whether a valid result for these arguments is stored.

        A corrupt entry is reported and removed (so it is recomputed).
        """
        path = self._path(args, kwargs)
        try:
            _, meta = self._load(path)
        except FileNotFoundError:
            return False
        except CorruptEntryError as exc:
            self._discard(path, exc)
            return False
        self.store.cached_seconds.append(float(meta.get("seconds", 0.0)))
        return True

    def __call__(self, *args, **kwargs):
        path = self._path(args, kwargs)
        try:
            return self._load(path)[0]
        except FileNotFoundError:
            pass
        except CorruptEntryError as exc:
            self._discard(path, exc)
        start = time.perf_counter()
        result = self.func(*args, **kwargs)
        self._store(path, result, time.perf_counter() - start)
        return result

    def _store(self, path, result, seconds):
        arrays = {}
        structure = _encode(result, arrays)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        raw = buf.getvalue()
        meta = {
            "format": ENTRY_FORMAT,
            "function": _function_name(self.func),
            "key": path.name,
            "sha256": hashlib.sha256(raw).hexdigest(),
            "seconds": round(seconds, 6),
            "structure": structure,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        tmp.mkdir()
        try:
            _write_file(tmp / ARRAYS_FILE, raw)
            _write_file(tmp / ENTRY_FILE, json.dumps(meta))
            try:
                os.rename(tmp, path)
            except OSError:
                if not _is_entry(path):
                    raise
                shutil.rmtree(tmp, ignore_errors=True)  # stored meanwhile
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


# ---------------------------------------------------------------------------
# the run folder
# ---------------------------------------------------------------------------


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as fh:
            value = json.load(fh)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


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


def _os_error(out, exc):
    what = exc.strerror or str(exc)
    where = exc.filename or out
    if exc.errno is not None and exc.errno == getattr(os, "ENOSPC", None):
        return CLIError(
            f"no space left on the device of {str(out)!r} (writing {where}); the "
            "previous results are intact. Free some space and rerun the same "
            "command: finished fits are cached."
        )
    return CLIError(f"cannot write the run folder {str(out)!r}: {what} ({where}).")


class RunFolder:
    """The folder of one study: its lock, manifest, fit store and output set.

    Use it as a context manager: entering creates the folder if needed and
    takes its lock (a folder that is not empty and was not written by
    sklearn-mem is refused, whatever the options; so is a folder another
    process holds); leaving releases the lock. Nothing is written before
    the lock is held.

    Parameters
    ----------
    path : str or path-like
        The run folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sklearn_mem.cli import RunFolder
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> with RunFolder(out) as folder:
    ...     folder.publish({"hello.txt": b"hi"}).name
    '1'
    >>> (out / "hello.txt").read_text()
    'hi'
    """

    def __init__(self, path):
        self.path = Path(path)
        self.state = self.path / STATE_DIR
        self._lock = None

    # -- claiming -----------------------------------------------------------

    def check(self):
        """Refuse a path that cannot hold a run, without writing anything."""
        out = self.path
        if out.exists() and not out.is_dir():
            raise CLIError(f"--out {str(out)!r} is a file, not a folder.")
        for parent in out.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise CLIError(
                        f"--out {str(out)!r} is under {str(parent)!r}, which is a "
                        "file, not a folder."
                    )
                break
        if out.is_dir() and not self.state.is_dir():
            if any(out.iterdir()):
                if (out / RUN_FILE).is_file():
                    raise CLIError(
                        f"the output folder {str(out)!r} holds a run written by an "
                        "earlier sklearn-mem without a manifest, so its files "
                        "cannot be told from yours; choose another --out (or "
                        "remove that folder yourself)."
                    )
                raise CLIError(
                    f"the output folder {str(out)!r} is not empty and holds no "
                    "sklearn-mem run; sklearn-mem writes only into an empty or "
                    "new folder, or one it wrote itself: choose another --out."
                )

    def __enter__(self):
        from filelock import FileLock, Timeout

        self.check()
        try:
            self.state.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(self.state / LOCK_FILE), timeout=0)
            lock.acquire()
        except Timeout:
            raise CLIError(
                f"another sklearn-mem process is writing {str(self.path)!r} (its "
                "lock is held); wait for it to finish, or choose another --out."
            ) from None
        except OSError as exc:
            raise _os_error(self.path, exc) from None
        self._lock = lock
        try:
            self.recover()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info):
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # -- manifest -------------------------------------------------------------

    def manifest(self):
        """The manifest (a dict; empty for a new folder)."""
        return _read_json(self.state / MANIFEST_FILE) or {}

    def _write_manifest(self, **changes):
        manifest = {
            "sklearn_mem_run_folder": FOLDER_FORMAT,
            "generation": 0,
            "outputs": [],
            **self.manifest(),
            **changes,
        }
        manifest["written"] = sorted(
            {RUN_FILE, CACHE_DIR, STATE_DIR, *manifest["outputs"]}
        )
        _atomic_write(self.state / MANIFEST_FILE, json.dumps(manifest, indent=2))

    def run_description(self):
        """The run's ``run.json`` (a dict), or None."""
        return _read_json(self.path / RUN_FILE)

    def claim(self, description, *, overwrite=False):
        """Make the folder hold the run ``description`` (with a fingerprint).

        Returns
        -------
        resumed : bool
            Whether the folder already held this run (its cache is reused).
        """
        old = self.run_description()
        old_fp = (old or {}).get("fingerprint")
        resumed = old_fp is not None and old_fp == description["fingerprint"]
        if old is not None and not resumed:
            if not overwrite:
                changes = _diff(
                    {
                        "data": old.get("data_fingerprint"),
                        **old.get("fit_settings", {}),
                    },
                    {
                        "data": description.get("data_fingerprint"),
                        **description.get("fit_settings", {}),
                    },
                )
                raise CLIError(
                    f"the output folder {str(self.path)!r} holds a different run ("
                    + ("; ".join(changes) or "other settings")
                    + "). Choose another --out, or pass --overwrite to replace it."
                )
            removed = self.store().clear()
            logger.warning(
                "--overwrite: replacing the run in %s (%d cached results of the "
                "previous run removed; its outputs stay until the new ones are "
                "complete)",
                self.path,
                removed,
            )
        try:
            if not (self.state / MANIFEST_FILE).exists():
                self._write_manifest()
            _atomic_write(
                self.path / RUN_FILE, json.dumps(description, indent=2) + "\n"
            )
        except OSError as exc:
            raise _os_error(self.path, exc) from None
        return resumed

    def store(self):
        """The folder's :class:`FitStore`."""
        return FitStore(self.path / CACHE_DIR)

    # -- the output set -------------------------------------------------------

    def current_set(self):
        """Folder of the current output set, or None when there is none."""
        link = self.state / CURRENT
        try:
            target = os.readlink(link)
        except OSError:
            return None
        path = (self.state / target).resolve()
        sets = (self.state / SETS_DIR).resolve()
        if path.parent != sets or not path.is_dir():
            return None
        return path

    def recover(self):
        """Finish or undo what a killed process left: staging folders, stale
        sets, links and the manifest's generation follow the ``current`` link."""
        for tmp in self.state.glob("staging-*"):
            shutil.rmtree(tmp, ignore_errors=True)
        for tmp in self.state.glob(".current-*"):
            tmp.unlink(missing_ok=True)
        current = self.current_set()
        sets = self.state / SETS_DIR
        if sets.is_dir():
            for old in sets.iterdir():
                if current is None or old.resolve() != current:
                    shutil.rmtree(old, ignore_errors=True)
        names = [] if current is None else sorted(p.name for p in current.iterdir())
        for entry in self.path.iterdir():
            if entry.name not in names:
                self._unlink_outputs([entry.name], keep=())
        self._link_outputs(names)
        manifest = self.manifest()
        generation = 0 if current is None else int(current.name)
        if (self.state / MANIFEST_FILE).exists() and (
            manifest.get("generation") != generation or manifest.get("outputs") != names
        ):
            self._write_manifest(generation=generation, outputs=names)
        self.store().tidy()

    def _link_target(self, name):
        return f"{STATE_DIR}/{CURRENT}/{name}"

    def _link_outputs(self, names):
        for name in names:
            link = self.path / name
            if link.is_symlink() and os.readlink(link) == self._link_target(name):
                continue
            if os.path.lexists(link):
                logger.warning(
                    "%s is not sklearn-mem's and is left alone; the new %s is in %s",
                    link,
                    name,
                    self.state / CURRENT,
                )
                continue
            os.symlink(self._link_target(name), link)

    def _unlink_outputs(self, names, keep):
        for name in names:
            link = self.path / name
            if (
                name not in keep
                and link.is_symlink()
                and os.readlink(link) == self._link_target(name)
            ):
                link.unlink()

    def publish(self, files):
        """Replace the output set by ``files`` (name -> bytes or str), as a whole.

        The files are written and flushed into a staging folder, which
        becomes the next generation; the ``current`` link is then switched
        in one atomic step. A failure (a full disk, say) leaves the previous
        set as it was and no temporary files.

        Returns
        -------
        path : pathlib.Path
            The folder of the new set (``.sklearn-mem/sets/<generation>``).
        """
        if self._lock is None:
            raise RuntimeError("publish needs the folder's lock: use `with`.")
        manifest = self.manifest()
        previous = manifest.get("outputs", [])
        generation = int(manifest.get("generation", 0)) + 1
        sets = self.state / SETS_DIR
        staging = self.state / f"staging-{generation}-{uuid.uuid4().hex[:8]}"
        target = sets / str(generation)
        try:
            sets.mkdir(exist_ok=True)
            if target.exists():
                shutil.rmtree(target)
            staging.mkdir()
            for name, data in files.items():
                _write_file(staging / name, data)
                _kill_point("staged-file")
            _fsync_dir(staging)
            os.rename(staging, target)
            _fsync_dir(sets)
            _kill_point("staged")
            names = sorted(files)
            self._link_outputs(names)
            _kill_point("linked")
            tmp = self.state / f".current-{uuid.uuid4().hex[:8]}"
            os.symlink(f"{SETS_DIR}/{generation}", tmp)
            os.replace(tmp, self.state / CURRENT)
            _fsync_dir(self.state)
            _kill_point("switched")
            self._write_manifest(generation=generation, outputs=names)
            _kill_point("committed")
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if self.current_set() != target.resolve():
                shutil.rmtree(target, ignore_errors=True)
            for tmp in self.state.glob(".current-*"):
                tmp.unlink(missing_ok=True)
            if self.current_set() is None or self.current_set() != target.resolve():
                self._unlink_outputs([n for n in files if n not in previous], keep=())
            if isinstance(exc, OSError):
                raise _os_error(self.path, exc) from None
            raise
        self._unlink_outputs(previous, keep=names)
        for old in sets.iterdir():
            if old.name != str(generation):
                shutil.rmtree(old, ignore_errors=True)
        return target
