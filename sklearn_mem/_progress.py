"""Progress of work that runs inside one call: a batched fit and its scoring.

:class:`~sklearn_mem.MemorizationScorer` shows a bar over the fits when they
run one by one. A fold-batched run is a single call (``fit_folds`` then
``score_folds``), so the code inside it reports its own steps here, and the
scorer turns them into bars while ``verbose > 0``:

- ``report_progress(stage, done, total)`` is called by the batched trainer after
  every epoch and by the scoring after every block of rows; it does
  nothing unless a reporter is active in this context;
- ``reporting(callback)`` activates ``callback(stage, done, total)`` inside
  a ``with`` block (a context variable, so threads and nested runs do not
  see each other's reporters).
"""

import contextlib
import contextvars
import logging

logger = logging.getLogger("sklearn_mem")

_reporter = contextvars.ContextVar("sklearn_mem_progress", default=None)


def report_progress(stage, done, total):
    """Tell the active reporter, if any, that ``done`` of ``total`` are done."""
    callback = _reporter.get()
    if callback is not None:
        callback(stage, done, total)


@contextlib.contextmanager
def reporting(callback):
    """Send :func:`report_progress` calls made inside the block to ``callback``."""
    token = _reporter.set(callback)
    try:
        yield
    finally:
        _reporter.reset(token)


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


class StageBars:
    """A progress bar per stage (tqdm, or log lines without it).

    A report of a new stage closes the bar of the previous one. Use as a
    context manager, which closes the last bar.
    """

    def __init__(self):
        self._stage = None
        self._bar = None
        self._done = 0
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        self._tqdm = tqdm

    def __call__(self, stage, done, total):
        if stage != self._stage or done < self._done:  # a new stage or round
            self.close()
            self._stage, self._done = stage, 0
            if self._tqdm is not None:
                self._bar = self._tqdm(total=total, desc=stage)
        if self._bar is not None:
            self._bar.update(done - self._done)
        else:
            logger.info("%s: %d/%d done", stage, done, total)
        self._done = done

    def close(self):
        if self._bar is not None:
            self._bar.close()
        self._bar, self._stage = None, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
