"""Threads inside a fit, and the life of worker processes.

The fits are the unit of parallelism: each runs with a bounded number of
BLAS/OpenMP/torch threads (:func:`limit_threads`, restored afterwards), so
``n_jobs`` workers never oversubscribe the cores. A loky worker also watches
the process that started it and exits when that process has died
(:func:`watch_parent`).
"""

import multiprocessing
import os
import sys
import threading
import time
from contextlib import contextmanager
from functools import lru_cache

from joblib.parallel import get_active_backend
from threadpoolctl import ThreadpoolController


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


_WATCHED_PARENT = None


def watch_parent(interval=2.0):
    """In a loky worker, exit when the process that started it has died.

    A parent killed with SIGKILL cannot stop its workers; without this they
    would wait for work until loky's idle timeout. Started once per worker
    process; does nothing in the main process or under other backends.
    """
    global _WATCHED_PARENT
    if _WATCHED_PARENT is not None:
        return
    name = multiprocessing.current_process().name
    if not name.startswith("LokyProcess"):
        return
    _WATCHED_PARENT = parent = os.getppid()

    def watch():
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="sklearn-mem-parent-watch", daemon=True).start()
