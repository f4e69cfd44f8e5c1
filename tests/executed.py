"""The numbered notebooks executed once per test session, shared by the book test and the notebook test.

Fresh executed copies in ``book/executed`` (``make notebooks``, demo profile, or ``run_notebooks.py --profile
demo,smoke``) are reused when their parameters match and they are newer than the code; the others are executed
with papermill under the ``demo,smoke`` profile (the demo data, training cut to a couple of iterations), in the
environment a user's shell would give them (pytest's own variables removed). ``BRATS_BOOK_REEXECUTE=1`` forces a
run; ``BRATS_BOOK_REUSE=1`` reuses executed copies with matching parameters even if the code is newer, and
``BRATS_BOOK_ONLY=00,02`` keeps only those chapters (quick partial checks while editing).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXECUTE_PROFILE = "demo,smoke"           # what the session runs when no fresh executed copy is there
REUSE_PROFILES = ("demo", "demo,smoke")  # executed copies of these profiles are reused


def in_book(path: Path) -> bool:
    """A chapter of the book (the Voilà app, metadata ``brats.in_book: false``, is served instead)."""
    return json.loads(path.read_text(encoding="utf-8"))["metadata"].get("brats", {}).get("in_book", True)


def _selected(name: str) -> bool:
    only = os.environ.get("BRATS_BOOK_ONLY")
    return not only or name[:2] in only.split(",")


def in_demo(path: Path) -> bool:
    """Run by the demo profile: not a chapter of other profiles only (metadata ``brats.profiles``, e.g. notebook
    12, which reads a real-data cross-validation: ``tests/test_real_data_notebook.py`` runs it on tiny folds)."""
    profiles = json.loads(path.read_text(encoding="utf-8"))["metadata"].get("brats", {}).get("profiles")
    return profiles is None or bool({"demo", "smoke"} & set(profiles))


NOTEBOOKS = tuple(sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")))
BOOK_NOTEBOOKS = tuple(name for name in NOTEBOOKS if in_book(ROOT / "notebooks" / name)
                       and in_demo(ROOT / "notebooks" / name) and _selected(name))


def runner():
    """``scripts/run_notebooks.py`` as a module."""
    spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "scripts" / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _is_fresh(executed: Path, parameters: dict, newer_than: float) -> bool:
    """An executed copy with exactly ``parameters`` (papermill metadata), newer than the code."""
    if not executed.is_file() or executed.stat().st_mtime < newer_than:
        return False
    meta = json.loads(executed.read_text(encoding="utf-8")).get("metadata", {}).get("papermill", {})
    return meta.get("parameters") == parameters and not meta.get("exception")


def execute_book_notebooks(out: Path) -> Path:
    """Every book notebook executed (or a fresh copy reused) into ``out``, with the intro's profile note."""
    run = runner()
    out.mkdir(parents=True, exist_ok=True)
    code = [*ROOT.glob("brats_lib/**/*.py"), *ROOT.glob("notebooks/profiles/*.yml"), ROOT / "scripts" / "run_notebooks.py"]
    newest_code = max(p.stat().st_mtime for p in code) if os.environ.get("BRATS_BOOK_REUSE") != "1" else 0.0
    todo, used = [], set()
    for name in BOOK_NOTEBOOKS:
        source = ROOT / "notebooks" / name
        newest = max(newest_code, source.stat().st_mtime) if newest_code else 0.0
        reuse = ROOT / "book" / "executed" / name
        for profile in REUSE_PROFILES if os.environ.get("BRATS_BOOK_REEXECUTE") != "1" else ():
            parameters = run.notebook_parameters(source, run.load_profile(profile), book=True)
            if _is_fresh(reuse, parameters, newest):
                shutil.copy2(reuse, out / name)
                used.add(profile)
                break
        else:
            todo.append(name.removesuffix(".ipynb"))
    if todo:
        used.add(EXECUTE_PROFILE)
        env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
        command = [sys.executable, str(ROOT / "scripts" / "run_notebooks.py"), "--profile", EXECUTE_PROFILE,
                   "--out", str(out)] + [a for stem in todo for a in ("--only", stem)]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stdout + result.stderr[-5000:]
    run.write_book_info(out, " + ".join(sorted(used)))
    return out
