"""``python -m sklearn_mem``: the same as the ``sklearn-mem`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
