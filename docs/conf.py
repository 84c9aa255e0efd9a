"""Sphinx configuration of the sklearn_mem documentation.

Build with ``make -C docs html`` (warnings are errors). Environment variables:

``SKLEARN_MEM_GALLERY_RUN``
    ``1`` (default) executes the gallery examples; ``0`` renders them without
    running them (CI runs the example scripts in ``tests/test_docs.py``).
``SKLEARN_MEM_INTERSPHINX``
    ``1`` links to the Python, NumPy, SciPy, scikit-learn, joblib, matplotlib,
    PyTorch, skorch and Dask documentation through intersphinx. Off by
    default: the inventories are downloaded, and an offline build with ``-W``
    must not fail because they cannot be reached.
"""

import os
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if (ROOT / "sklearn_mem" / "__init__.py").exists():
    # document the working tree, not an older installed copy
    sys.path.insert(0, str(ROOT))

import sklearn_mem  # noqa: E402


def _env_flag(name, default):
    value = os.environ.get(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{name}={value!r}; expected 1 or 0.")


RUN_GALLERY = _env_flag("SKLEARN_MEM_GALLERY_RUN", "1")
USE_INTERSPHINX = _env_flag("SKLEARN_MEM_INTERSPHINX", "0")

# -- project ------------------------------------------------------------------
project = "sklearn_mem"
author = "the sklearn_mem developers"
copyright = "the sklearn_mem developers, BSD-3-Clause"
release = sklearn_mem.__version__
version = ".".join(release.split(".")[:2])

# -- extensions ---------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
if USE_INTERSPHINX:
    extensions.append("sphinx.ext.intersphinx")

templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "Thumbs.db",
    ".DS_Store",
    # gallery sources are rendered into auto_examples by sphinx-gallery
    "examples/*.rst",
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "auto_examples/*.zip",
    "auto_examples/*.codeobj.json",
    "auto_examples/*.md5",
]
root_doc = "index"
default_role = "literal"
pygments_style = "sphinx"

# -- autodoc / autosummary / numpydoc ----------------------------------------
autosummary_generate = True  # stubs go to docs/generated (git-ignored)
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"
numpydoc_show_class_members = False  # the class template lists the methods
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

# sklearn_mem.models needs torch and skorch (the ``torch`` extra). Without
# them the API pages of the deep models are still built, from mocked imports.
try:
    import skorch  # noqa: F401
    import torch  # noqa: F401
except ImportError:
    autodoc_mock_imports = ["torch", "skorch"]

# -- intersphinx (opt-in, see the module docstring) ----------------------------
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "scipy": ("https://docs.scipy.org/doc/scipy", None),
    "sklearn": ("https://scikit-learn.org/stable", None),
    "joblib": ("https://joblib.readthedocs.io/en/stable", None),
    "matplotlib": ("https://matplotlib.org/stable", None),
    "torch": ("https://pytorch.org/docs/stable", None),
    "skorch": ("https://skorch.readthedocs.io/en/stable", None),
    "distributed": ("https://distributed.dask.org/en/stable", None),
}
intersphinx_timeout = 10


# -- sphinx-gallery -----------------------------------------------------------
def _missing(*modules):
    import importlib.util

    return any(importlib.util.find_spec(m) is None for m in modules)


# Examples whose optional dependencies are missing are shown, not executed.
_NOT_RUN = []
if _missing("torch", "skorch"):
    _NOT_RUN.append("plot_03_vae_digits")
if _missing("distributed"):
    _NOT_RUN.append("plot_06_dask")
_RUN_PATTERN = r"/plot_"
if _NOT_RUN:
    _RUN_PATTERN = r"/(?!(?:" + "|".join(_NOT_RUN) + r")\.py$)plot_"

sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": _RUN_PATTERN,
    "within_subsection_order": "FileNameSortKey",
    "plot_gallery": RUN_GALLERY,
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "min_reported_time": 1,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
}
# Headless matplotlib for executed examples; quiet the matplotlib backend
# warning sphinx-gallery would otherwise turn into an error under -W.
os.environ.setdefault("MPLBACKEND", "Agg")
warnings.filterwarnings(
    "ignore",
    category=UserWarning,
    message="Matplotlib is currently using agg",
)

# -- HTML ---------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sklearn_mem {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
html_theme_options = {
    "navbar_align": "left",
    "navbar_end": ["theme-switcher", "navbar-icon-links"],
    "show_prev_next": True,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_context = {"default_mode": "light"}
html_sidebars = {"index": [], "api": []}


# -- docstring fixes applied at build time -----------------------------------
import re  # noqa: E402

# "ndarray of shape (n_features_in_,)": reST reads a bare ``name_`` as a link
# to a target called "name". Quote such names inside shape descriptions.
_SHAPE_NAME = re.compile(r"(?<![`\w])([A-Za-z][A-Za-z0-9_]*_)(?=\s*[,)])")
# Roles that point into scikit-learn's own documentation (its glossary and
# user guide), found in the docstrings scikit-learn generates for every
# estimator (``set_fit_request`` and friends).
_FOREIGN_ROLE = re.compile(r":(?:term|ref):`([^`<]*?)\s*(?:<[^`>]*>)?`")


def _fix_docstring(app, what, name, obj, options, lines):
    module = getattr(obj, "__module__", "") or ""
    foreign = module.startswith("sklearn.") and not USE_INTERSPHINX
    for i, line in enumerate(lines):
        if "shape (" in line:
            head, _, tail = line.partition("shape (")
            line = head + "shape (" + _SHAPE_NAME.sub(r"``\1``", tail)
        if foreign:
            line = _FOREIGN_ROLE.sub(r"*\1*", line)
        lines[i] = line


def setup(app):
    # before numpydoc (priority 500) reformats the docstring
    app.connect("autodoc-process-docstring", _fix_docstring, priority=100)
