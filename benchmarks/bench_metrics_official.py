"""`brats evaluate` against the official BraTS 2024 scorer, end to end per case, one core, same run.

Usage::

    python benchmarks/bench_metrics_official.py [--pairs NAME ...] [--repeat N] [--venv DIR]

For each reference pair of ``../shared/reference/brats2024-metrics/pairs`` named (default: the slowest, the
fastest and two others), in the same run and on the same input files:

* **official**: ``get_LesionWiseResults`` of ``official-code/metrics_GLI.py`` (commit 9a0ab9c), run from
  that folder (never copied) in its own virtual environment — Python 3.10 and the scorer's pins of
  ``official-code/requirements.txt``, created on first use in ``--venv`` — from a scratch working directory
  (it writes temporary NIfTI files there). Timed: load + score + write of the region table (its ``output=``)
  and of the lesion table.
* **ours**: ``brats evaluate --pred DIR --gt DIR --out FILE.csv --lesions FILE.csv --workers 1`` on a
  one-case folder pair (symlinks to the same files), through :func:`brats_lib.cli.main`. Timed: the whole
  command (discovery, load, checks, score, both CSVs written); the median of ``--repeat`` fresh processes.

Each measurement runs in its own process pinned to one CPU with ``OMP/MKL/OPENBLAS_NUM_THREADS=1``; the
interpreter start and module imports are not timed on either side. Both wall and CPU seconds are printed;
the ratio is official / ours per case, summarised by its minimum and median. Every case also checks that the
two region tables are bit-identical (``==`` on every official column).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = ROOT.parent / "shared" / "reference" / "brats2024-metrics"
DEFAULT_PAIRS = ("synth-00004", "synth-00003", "real2021-01543", "aniso-00014")
DEFAULT_PYTHON = "/root/.pyenv/versions/3.10.13/bin/python3.10"
DEFAULT_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "brats-lab" / "official-metrics-venv"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")

OFFICIAL_CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import metrics_GLI  # imports (numpy, nibabel, cc3d, pandas, surface_distance) are not timed
pred, gt, out_results, out_lesions = sys.argv[2:6]
wall, cpu = time.perf_counter(), time.process_time()
results, lesions = metrics_GLI.get_LesionWiseResults(pred, gt, "BraTS-GLI", output=out_results)
lesions.to_csv(out_lesions, index=False)
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}))
"""

OURS_CHILD = r"""
import contextlib, io, json, sys, time
from brats_lib import cli
import brats_lib.metrics  # imported by the command lazily; not timed, like the official imports
pred_dir, gt_dir, out_results, out_lesions = sys.argv[1:5]
argv = ["evaluate", "--pred", pred_dir, "--gt", gt_dir, "--out", out_results, "--lesions", out_lesions,
        "--workers", "1"]
wall, cpu = time.perf_counter(), time.process_time()
with contextlib.redirect_stdout(io.StringIO()):
    status = cli.main(argv)
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "status": status}))
"""


def one_core_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({var: "1" for var in THREAD_VARS})
    return env


def pin_to_one_cpu() -> None:
    """preexec_fn: run the child on one CPU (the last one this process may use)."""
    if hasattr(os, "sched_getaffinity"):
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})


def ensure_official_venv(venv: Path, python: str, requirements: Path) -> Path:
    """A Python 3.10 venv with the scorer's pins, created once (keyed by the requirements' hash)."""
    stamp = venv / ".installed"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    interpreter = venv / "bin" / "python"
    if stamp.is_file() and stamp.read_text() == digest and interpreter.exists():
        return interpreter
    print(f"creating {venv} with {python} and {requirements} …", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(interpreter), "-m", "pip", "install", "--quiet", "-r", str(requirements)], check=True)
    stamp.write_text(digest)
    return interpreter


def run_child(cmd: list[str], cwd: Path, env: dict[str, str]) -> dict:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, preexec_fn=pin_to_one_cpu)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} … failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def time_official(interpreter: Path, code_dir: Path, pred: Path, gt: Path, scratch: Path) -> tuple[dict, Path]:
    work = scratch / "official"
    work.mkdir()
    out = work / "results.csv"
    timing = run_child([str(interpreter), "-c", OFFICIAL_CHILD, str(code_dir), str(pred), str(gt), str(out),
                        str(work / "lesions.csv")], work, one_core_env())
    return timing, out


def time_ours(name: str, pred: Path, gt: Path, scratch: Path, repeat: int) -> tuple[dict, Path]:
    pred_dir, gt_dir = scratch / "pred", scratch / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    (pred_dir / f"{name}.nii.gz").symlink_to(pred)
    (gt_dir / f"{name}-seg.nii.gz").symlink_to(gt)
    env = one_core_env()
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    runs = []
    for i in range(repeat):
        out = scratch / f"ours-{i}.csv"
        runs.append(run_child([sys.executable, "-c", OURS_CHILD, str(pred_dir), str(gt_dir), str(out),
                               str(scratch / f"ours-lesions-{i}.csv")], ROOT, env))
        if runs[-1]["status"] != 0:
            raise RuntimeError(f"brats evaluate exited {runs[-1]['status']} on {name}")
    return {k: float(np.median([r[k] for r in runs])) for k in ("wall", "cpu")}, out


def identical(ours_csv: Path, official_csv: Path) -> bool:
    ours, official = pd.read_csv(ours_csv), pd.read_csv(official_csv)
    if list(ours["region"]) != list(official["Labels"]):
        return False
    return all(np.array_equal(ours[c].to_numpy(float), official[c].to_numpy(float))
               for c in official.columns if c != "Labels")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--pairs", nargs="+", default=list(DEFAULT_PAIRS))
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes of ours per case (median)")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="the official code's environment")
    parser.add_argument("--python", default=DEFAULT_PYTHON, help="Python 3.10 for that environment")
    args = parser.parse_args(argv)
    code_dir = args.reference / "official-code"
    if not (code_dir / "metrics_GLI.py").is_file():
        print(f"official code not found at {code_dir}", file=sys.stderr)
        return 1
    interpreter = ensure_official_venv(args.venv, args.python, code_dir / "requirements.txt")
    header = f"{'case':<16}{'official s':>11}{'ours s':>9}{'ratio':>8}{'off. cpu s':>12}{'ours cpu s':>11}{'ratio':>8}  same"
    print(header, flush=True)
    wall_ratios, cpu_ratios = [], []
    for name in args.pairs:
        pred = args.reference / "pairs" / "pred" / f"{name}.nii.gz"
        gt = args.reference / "pairs" / "gt" / f"{name}.nii.gz"
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
            scratch = Path(tmp)
            official, official_csv = time_official(interpreter, code_dir, pred, gt, scratch)
            ours, ours_csv = time_ours(name, pred, gt, scratch, args.repeat)
            same = identical(ours_csv, official_csv)
        wall_ratios.append(official["wall"] / ours["wall"])
        cpu_ratios.append(official["cpu"] / ours["cpu"])
        print(f"{name:<16}{official['wall']:11.2f}{ours['wall']:9.3f}{wall_ratios[-1]:7.0f}×"
              f"{official['cpu']:12.2f}{ours['cpu']:11.3f}{cpu_ratios[-1]:7.0f}×  {'yes' if same else 'NO'}",
              flush=True)
    print(f"wall ratio: min {min(wall_ratios):.0f}×, median {np.median(wall_ratios):.0f}×; "
          f"CPU ratio: min {min(cpu_ratios):.0f}×, median {np.median(cpu_ratios):.0f}× "
          f"over {len(wall_ratios)} cases (one core each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
