"""Every numbered notebook runs without error under nbval, with the parameters of the demo profile.

nbval does not apply papermill parameters, so the notebooks are first copied with the demo profile's
parameters injected (``scripts/run_notebooks.py --prepare-only``), then run in order by ``pytest --nbval-lax``
in a subprocess (outputs are not compared, errors fail). nbval starts the kernel in the notebook's folder, so
the copies go to a temporary hidden folder inside the repository (``book/executed/.nbval-*``, git-ignored and
excluded from the book): notebooks that resolve relative paths (``data/synthetic``) against the folder
holding ``pyproject.toml`` find the demo data shared with ``make data``/``make demo``.
"""

import os
import shutil
import subprocess
import tempfile
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CELL_TIMEOUT_S = 1200


@pytest.fixture(scope="module")
def prepared():
    parent = ROOT / "book" / "executed"
    parent.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix=".nbval-", dir=parent))
    try:
        result = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "run_notebooks.py"), "--profile", "demo,smoke", "--prepare-only",
             "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        yield out
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_notebooks_found():
    assert NOTEBOOKS[:2] == ["00_dataset.ipynb", "01_eda.ipynb"]


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_under_nbval(prepared: Path, name: str):
    notebook = prepared / name
    assert notebook.is_file()
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONWARNINGS="ignore::DeprecationWarning")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
         f"--nbval-cell-timeout={CELL_TIMEOUT_S}", "-p", "no:cacheprovider", "-q", "--rootdir", str(prepared),
         str(notebook)],
        cwd=prepared, capture_output=True, text=True, env=env)
    assert result.returncode == 0, f"{name} failed under nbval:\n{result.stdout[-8000:]}\n{result.stderr[-2000:]}"
