"""The documentation: API reference coverage, gallery examples, Sphinx build.

- every public name (the ``__all__`` of each public module) is in docs/api.rst;
- every gallery example runs, with the small settings of
  ``SKLEARN_MEM_EXAMPLE_FAST=1``, in a fresh interpreter;
- the site builds with ``sphinx-build -W --keep-going`` (gallery execution
  off), which fails on any broken ``:ref:``/``:doc:`` target or malformed
  reST. Skipped when the ``docs`` extra is not installed.
"""

import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLES = sorted((DOCS / "examples").glob("plot_*.py"))

# public modules and the file that holds their __all__
PUBLIC_MODULES = {
    "sklearn_mem": "sklearn_mem/__init__.py",
    "sklearn_mem.neighbors": "sklearn_mem/neighbors.py",
    "sklearn_mem.metrics": "sklearn_mem/metrics.py",
    "sklearn_mem.plotting": "sklearn_mem/plotting.py",
    "sklearn_mem.models": "sklearn_mem/models/__init__.py",
    "sklearn_mem.cli": "sklearn_mem/cli.py",
    "sklearn_mem.report": "sklearn_mem/report.py",
}

# optional dependencies of each example: skipped here when they are missing
EXAMPLE_NEEDS = {
    "plot_03_vae_digits.py": ("torch", "skorch"),
    "plot_07_speed.py": ("torch", "skorch"),
    "plot_06_dask.py": ("distributed",),
}
# ceiling for one example with the small settings (generous: CI is shared)
EXAMPLE_TIMEOUT = 180


def _public_names(path):
    """The __all__ of a module, read without importing it (no torch needed)."""
    tree = ast.parse((ROOT / path).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return [n for n in ast.literal_eval(node.value) if not n.startswith("__")]
    raise AssertionError(f"{path} defines no __all__")


def _documented(api_text):
    """(module, name) pairs listed under each ``.. currentmodule::`` of api.rst."""
    documented, module = set(), None
    for line in api_text.splitlines():
        m = re.match(r"\.\. currentmodule:: (\S+)", line.strip())
        if m:
            module = m.group(1)
            continue
        name = line.strip()
        if module and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            documented.add((module, name))
    return documented


@pytest.mark.parametrize("module", sorted(PUBLIC_MODULES))
def test_api_reference_lists_every_public_name(module):
    documented = _documented((DOCS / "api.rst").read_text())
    names = _public_names(PUBLIC_MODULES[module])
    assert names, f"{module}.__all__ is empty"
    missing = [n for n in names if (module, n) not in documented]
    assert not missing, (
        f"{module}.__all__ names missing from docs/api.rst: {missing}. Add them "
        f"to the autosummary list under '.. currentmodule:: {module}'."
    )


def test_every_example_has_a_test():
    assert len(EXAMPLES) >= 6
    for path in EXAMPLES:
        text = path.read_text()
        assert "SKLEARN_MEM_EXAMPLE_FAST" in text, (
            f"{path.name} must shrink its settings when SKLEARN_MEM_EXAMPLE_FAST=1"
        )


def _example_env():
    env = dict(os.environ)
    env.update(
        SKLEARN_MEM_EXAMPLE_FAST="1",
        MPLBACKEND="Agg",
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p),
    )
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    return env


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(path, tmp_path):
    for module in EXAMPLE_NEEDS.get(path.name, ()):
        pytest.importorskip(module)
    # runpy from ``-c``: process-based workers (loky, Dask) then do not
    # re-import the example as their __main__
    code = f"import runpy, sys; runpy.run_path({str(path)!r}, run_name='__main__')"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=_example_env(),
        capture_output=True,
        text=True,
        timeout=EXAMPLE_TIMEOUT,
    )
    assert proc.returncode == 0, (
        f"{path.name} failed (exit {proc.returncode}):\n"
        f"--- stdout ---\n{proc.stdout[-3000:]}\n--- stderr ---\n{proc.stderr[-5000:]}"
    )


def _sphinx_available():
    return all(
        importlib.util.find_spec(m) is not None
        for m in ("sphinx", "numpydoc", "sphinx_gallery", "pydata_sphinx_theme")
    )


@pytest.mark.skipif(
    not _sphinx_available(),
    reason="the docs extra is not installed (pip install -e '.[docs]')",
)
def test_sphinx_build_has_no_warnings(tmp_path):
    # build a copy, so generated stubs and gallery pages never touch docs/
    src = tmp_path / "docs"
    shutil.copytree(
        DOCS,
        src,
        ignore=shutil.ignore_patterns(
            "_build", "generated", "auto_examples", "sg_execution_times.rst"
        ),
    )
    env = _example_env()
    env.update(SKLEARN_MEM_GALLERY_RUN="0", SKLEARN_MEM_INTERSPHINX="0")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-d",
            str(tmp_path / "doctrees"),
            str(src),
            str(tmp_path / "html"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (
        "sphinx-build -W failed (broken reference or malformed reST?):\n"
        f"{proc.stderr[-8000:]}"
    )
    assert (tmp_path / "html" / "index.html").exists()
    assert (tmp_path / "html" / "api.html").exists()
