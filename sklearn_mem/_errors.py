"""The error of the ``sklearn-mem`` command: bad input, reported without a traceback."""


class CLIError(Exception):
    """A problem the user can fix: reported on stderr, exit status 2.

    Examples
    --------
    >>> from sklearn_mem.cli import CLIError
    >>> str(CLIError("--seed -5 is negative"))
    '--seed -5 is negative'
    """
