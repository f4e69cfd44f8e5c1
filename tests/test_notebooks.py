"""Every numbered notebook runs without error with the parameters of the demo profile (``demo,smoke`` here).

Each notebook is executed once per test session:

* the chapters of the book by papermill, in ``executed_notebooks`` (``conftest.py``): the book test builds and reads
  the very same executed copies, so the suite does not pay for every notebook twice. Here each is checked as a
  run: papermill recorded no exception, every code cell ran, in order, and none left an error output;
* the notebooks outside the book (the Voilà app) by nbval (``pytest --nbval-lax``: outputs are not compared, errors
  fail). nbval does not apply papermill parameters, so the notebook is first copied with the profile's parameters
  injected (``scripts/run_notebooks.py --prepare-only``) into a hidden folder inside the repository
  (``book/executed/.nbval-*``, git-ignored and excluded from the book): nbval starts the kernel in the notebook's
  folder, and relative paths (``data/synthetic``) resolve against the folder holding ``pyproject.toml``.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from executed import BOOK_NOTEBOOKS, EXECUTE_PROFILE, NOTEBOOKS, ROOT, in_book

OUTSIDE_BOOK = tuple(name for name in NOTEBOOKS if not in_book(ROOT / "notebooks" / name))
CELL_TIMEOUT_S = 1200


def test_notebooks_found():
    assert NOTEBOOKS[:2] == ("00_dataset.ipynb", "01_eda.ipynb")
    assert OUTSIDE_BOOK == ("10_segment_app.ipynb",)


@pytest.mark.slow
@pytest.mark.parametrize("name", BOOK_NOTEBOOKS)
def test_book_notebook_ran_every_cell_without_error(executed_notebooks: Path, name: str):
    nb = json.loads((executed_notebooks / name).read_text(encoding="utf-8"))
    assert not nb["metadata"]["papermill"].get("exception"), f"{name}: papermill recorded an exception"
    code = [cell for cell in nb["cells"] if cell["cell_type"] == "code" and "".join(cell["source"]).strip()]
    counts = [cell.get("execution_count") for cell in code]
    assert None not in counts, f"{name}: cells {[i for i, c in enumerate(counts) if c is None]} did not run"
    assert counts == sorted(counts), f"{name}: cells ran out of order: {counts}"
    errors = [(index, output.get("ename"), output.get("evalue")) for index, cell in enumerate(code)
              for output in cell.get("outputs", []) if output["output_type"] == "error"]
    assert not errors, f"{name}: error outputs {errors}"


@pytest.fixture(scope="module")
def prepared():
    parent = ROOT / "book" / "executed"
    parent.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix=".nbval-", dir=parent))
    try:
        result = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "run_notebooks.py"), "--profile", EXECUTE_PROFILE,
             "--prepare-only", "--out", str(out)] + [a for name in OUTSIDE_BOOK for a in ("--only", name[:-6])],
            cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        yield out
    finally:
        shutil.rmtree(out, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", OUTSIDE_BOOK)
def test_notebook_outside_the_book_runs_under_nbval(prepared: Path, name: str):
    notebook = prepared / name
    assert notebook.is_file()
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONWARNINGS="ignore::DeprecationWarning")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
         f"--nbval-cell-timeout={CELL_TIMEOUT_S}", "-p", "no:cacheprovider", "-q", "--rootdir", str(prepared),
         str(notebook)],
        cwd=prepared, capture_output=True, text=True, env=env)
    assert result.returncode == 0, f"{name} failed under nbval:\n{result.stdout[-8000:]}\n{result.stderr[-2000:]}"
