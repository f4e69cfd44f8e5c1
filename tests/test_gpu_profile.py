"""benchmarks/gpu_profile.py, the one-shot GPU check: what it keeps when a part is stopped, and its refusal
to start without CUDA. (The whole script runs on the CPU with --dry-run; see its docstring.)"""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_profile as gp  # noqa: E402


def test_a_part_past_its_limit_is_killed_with_its_children_and_its_results_so_far_kept(tmp_path):
    recorder = gp.Recorder(tmp_path / "out")
    child = ("import subprocess, sys, time, json\n"
             "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
             "print('@@ ' + json.dumps({'part': 'x', 'child': p.pid}), flush=True)\n"
             "time.sleep(60)\n")
    start = time.perf_counter()
    rc, seconds = gp.run_child(recorder, [sys.executable, "-c", child], limit=3.0)
    assert rc is None and seconds < 30 and time.perf_counter() - start < 30
    lines = [json.loads(line) for line in (tmp_path / "out" / "gpu_profile.jsonl").read_text().splitlines()]
    assert lines[0]["part"] == "x"
    grandchild = lines[0]["child"]
    time.sleep(0.5)
    assert not Path(f"/proc/{grandchild}").exists() or "Z" in Path(f"/proc/{grandchild}/stat").read_text().split()[2]


def test_a_stopped_training_part_keeps_its_finished_epochs_and_the_summary_shows_them(tmp_path):
    recorder = gp.Recorder(tmp_path / "out")
    run = tmp_path / "work" / "runs" / "unet3d_ours"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps([{"epoch": 1, "busy_share": 0.25, "samples_per_s": 10.0,
                                                    "data_wait_seconds": 3.0, "train_loop_seconds": 4.0}]))
    gp.record_partial_training(recorder, tmp_path / "work", "train:unet3d:ours")
    recorder.record({"part": "train:unet3d:ours", "status": "timeout", "seconds": 150.0})
    recorder.record({"part": "step:fcnn:compile", "status": "skipped", "why": "10 s of the budget left"})
    text = gp.summary_markdown(recorder.records)
    assert "busy 25.0 %" in text and "data wait 3.00 s (loader start — s) of 4.0 s" in text and "stopped" in text
    assert "step:fcnn:compile skipped (10 s of the budget left)" in text
    assert "train:unet3d:ours timeout 150 s" in text


@pytest.mark.slow
def test_without_cuda_the_check_stops_at_once_with_one_clear_line(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_profile.py"), "--out", str(tmp_path / "out"),
                           "--work", str(tmp_path / "work")], capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 2
    log = (tmp_path / "out" / "gpu_profile.log").read_text()
    assert "sees no CUDA device" in log and "nothing else is run" in log
    parts = [json.loads(line)["part"] for line in (tmp_path / "out" / "gpu_profile.jsonl").read_text().splitlines()]
    assert "synth" not in parts
