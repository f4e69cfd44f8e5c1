"""Notebook 12 (real scans the model never saw) on tiny folds: the chapter of the `real` profile runs end to end
on a finished cross-validation directory and a compared arm, with its numbers glued and no stderr; the demo's runs
leave it out (its cross-validation takes about an hour), the `real` profile and ``--only`` run it.

The folds are trained on tiny synthetic cases (``conftest.write_tiny_case``) for two iterations, so what is
checked is the path and the page, not the scores; the real cross-validation's figures are in
``benchmarks/RESULTS.md``.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from brats_lib import crossval
from conftest import tiny_train_config, write_tiny_case

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "12_real_data.ipynb"


def _runner():
    spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "scripts" / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chapter_runs_under_the_real_profile_only():
    run = _runner()
    assert run.profiles_of(NOTEBOOK) == ["real"]
    assert run.runs_under(NOTEBOOK, "real") and not run.runs_under(NOTEBOOK, "demo")
    assert not run.runs_under(NOTEBOOK, "demo,smoke")
    assert run.runs_under(ROOT / "notebooks" / "09_error_analysis.ipynb", "demo,smoke")
    profile = run.load_profile("real")
    assert set(profile) == {"12_real_data.ipynb"}
    assert set(profile["12_real_data.ipynb"]) <= set(run.notebook_parameters(NOTEBOOK, {}, book=False)) | {
        "data_dir", "cv_dir", "baseline_name", "compare", "variant", "workers"}


@pytest.fixture(scope="module")
def tiny_cv(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny_cv")
    for i in range(6):
        write_tiny_case(root / "raw", i)
    for i in (20, 21):
        write_tiny_case(root / "extra", i)
    config = tiny_train_config(root, iterations=2)
    for name, extra in (("cv", None), ("cv_extra", root / "extra")):
        crossval.run_folds(root / "raw", root / name, 3, config, log=lambda line: None, extra_train=extra)
        crossval.score_folds(root / name, root / "raw", log=lambda line: None)
    return root


@pytest.mark.slow
def test_chapter_executes_on_a_finished_cross_validation(tiny_cv: Path):
    profile = tiny_cv / "profile.yml"
    profile.write_text(json.dumps({"12_real_data.ipynb": {
        "data_dir": str(tiny_cv / "raw"), "cv_dir": str(tiny_cv / "cv"), "compare": {"+2 extra": str(tiny_cv / "cv_extra")},
        "workers": 1}}))
    out = tiny_cv / "executed"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_notebooks.py"), "--profile", str(profile),
                           "--only", "12", "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    nb = json.loads((out / "12_real_data.ipynb").read_text())
    assert not nb["metadata"]["papermill"].get("exception")
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert not [o for o in outputs if o["output_type"] == "stream" and o["name"] == "stderr"]
    glued = {o["metadata"]["scrapbook"]["name"] for o in outputs if "scrapbook" in o.get("metadata", {})}
    assert {"n_patients", "n_cases", "k", "WT_dice", "TC_dice", "ET_dice", "wt_bias_ml"} <= glued
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 5
    findings = [o["data"]["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})]
    text = "".join(findings[0]) if findings else ""
    assert "Over 6 patients (6 cases)" in text and "+2 extra against real cases only" in text
    # the scored out-of-fold maps were written beside the folds, one per validation case
    assert len(list((tiny_cv / "cv" / "oof" / "rules").glob("*.nii.gz"))) == 6
