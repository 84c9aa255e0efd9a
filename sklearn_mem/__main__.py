"""``python -m sklearn_mem``: the same as the ``sklearn-mem`` command."""

import sys

from .cli import main

sys.exit(main())
