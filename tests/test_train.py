"""The training loop: run directory, resume equivalence, the NaN guard, DDP on gloo, the CLI."""

import csv
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from brats_lib import train as tr
from brats_lib.labels import REGION_ORDER
from conftest import write_tiny_case

REPO = Path(__file__).resolve().parents[1]

@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_data")
    for i in range(4):
        write_tiny_case(root / "raw", i)
    return root


def _config(dataset, run_dir, **overrides):
    values = dict(data_dir=str(dataset / "raw"), cache_dir=str(dataset / "cache"), run_dir=str(run_dir),
                  model={"name": "unet3d", "features_per_stage": [4, 8, 16]}, patch_size=16, batch_size=2,
                  epochs=2, iterations_per_epoch=3, val_patches=2, workers=0, lr=1e-2,
                  preprocess={"downsample": 1, "margin": 2}, device="cpu")
    values.update(overrides)
    return tr.TrainConfig(**values)


def _weights(run_dir, name="last.pt"):
    return tr.load_checkpoint(run_dir / name)["model"]


def test_run_directory_is_self_describing(dataset, tmp_path):
    history = tr.train(_config(dataset, tmp_path / "run"), progress=False)
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} == {"config.json", "metrics.csv", "metrics.json", "last.pt", "best.pt"}
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and len(history) == 2
    for column in ["train_loss", "val_loss"] + [f"val_dice_{r}" for r in REGION_ORDER]:
        assert column in rows[0]
    assert all(np.isfinite(float(r["train_loss"])) for r in rows)
    for r in rows:  # where the loop's time went (CPU: no bf16 peak, so no share of it)
        assert 0.0 <= float(r["busy_share"]) <= 1.0
        assert 0.0 <= float(r["data_wait_seconds"]) <= float(r["train_loop_seconds"]) <= float(r["seconds"])
        assert float(r["samples_per_s"]) == pytest.approx(3 * 2 / float(r["train_loop_seconds"]), rel=1e-6)
        assert float(r["tflops"]) > 0 and "tflops_peak_share" not in r
    config = tr.TrainConfig.load(run / "config.json")
    assert config.patch_size == 16 and config.model["name"] == "unet3d"
    state = tr.load_checkpoint(run / "last.pt")
    assert state["epoch"] == 1 and set(state) >= {"model", "optimizer", "scheduler", "rng", "config", "history"}
    model, cfg = tr.load_run_model(run)
    assert not model.training and cfg.output_mode == "softmax"
    written = json.loads((run / "metrics.json").read_text())
    expected = [{k: (float(v) if k != "epoch" else int(v)) for k, v in r.items()} for r in rows]
    assert [list(w) for w in written] == [list(e) for e in expected]
    for w, e in zip(written, expected):  # NaN = a region absent from both prediction and truth
        np.testing.assert_array_equal(np.array(list(w.values()), float), np.array(list(e.values()), float))
    assert tr.load_checkpoint(run / "best.pt")["epoch"] in (0, 1) and not list(run.glob(".*tmp*"))


def test_resume_continues_as_if_never_stopped(dataset, tmp_path):
    full = tmp_path / "full"
    tr.train(_config(dataset, full, epochs=3), progress=False)
    stopped = tmp_path / "stopped"
    tr.train(_config(dataset, stopped, epochs=3, time_limit_minutes=0.0), progress=False)  # stops after epoch 1
    assert tr.load_checkpoint(stopped / "last.pt")["epoch"] == 0
    tr.train(_config(dataset, stopped, epochs=3), progress=False)
    a, b = _weights(full), _weights(stopped)
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows_a = list(csv.DictReader(open(full / "metrics.csv")))
    rows_b = list(csv.DictReader(open(stopped / "metrics.csv")))
    assert [r["train_loss"] for r in rows_a] == [r["train_loss"] for r in rows_b]


@pytest.mark.slow
def test_persistent_loader_workers_train_exactly_as_the_main_process(dataset, tmp_path):
    # workers started once per run (EpochSampler carries the epoch): the same patches, so the same weights, as
    # loading in the main process; and the workers are stopped when the run ends
    import multiprocessing

    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    tr.train(_config(dataset, serial, epochs=3), progress=False)
    trainer = tr.Trainer(_config(dataset, parallel, epochs=3, workers=2), progress=False)
    trainer.run()
    a, b = _weights(serial), _weights(parallel)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert trainer._loaders == {}
    assert not multiprocessing.active_children()


def test_nan_guard_stops_and_keeps_the_last_good_checkpoint(dataset, tmp_path, monkeypatch):
    run = tmp_path / "run"
    tr.train(_config(dataset, run, epochs=2, time_limit_minutes=0.0), progress=False)  # stops after epoch 1
    good = _weights(run)
    original = tr.Trainer._train_epoch

    def poisoned(self, epoch):
        real = self.loss_fn
        self.loss_fn = lambda output, label: real(output, label) * float("nan")
        return original(self, epoch)

    monkeypatch.setattr(tr.Trainer, "_train_epoch", poisoned)
    with pytest.raises(tr.TrainingDiverged, match=r"non-finite loss .* epoch 2, iteration 1.*last\.pt"):
        tr.train(_config(dataset, run, epochs=2), progress=False)
    kept = _weights(run)
    assert all(torch.equal(good[k], kept[k]) for k in good)
    assert len(list(csv.DictReader(open(run / "metrics.csv")))) == 1


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, config_dict):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    tr.train(tr.TrainConfig(**config_dict), progress=False)
    torch.distributed.destroy_process_group()


@pytest.mark.parametrize("loss", ["ce", "dice_ce"])
def test_ddp_two_gloo_processes_match_one_process_with_the_combined_batch(dataset, tmp_path, loss):
    # SGD: the update is linear in the gradient, so float rounding of the all-reduce stays tiny (Adam amplifies it).
    # dice_ce: the batch-Dice statistics are all-reduced, so the Dice term is the combined batch's too.
    common = dict(loss=loss, augment=False, epochs=1, iterations_per_epoch=2, optimizer="sgd", model={
        "name": "unet3d", "features_per_stage": [4, 8, 16], "norm": "instance"})
    single = _config(dataset, tmp_path / "single", batch_size=2, **common)
    tr.train(single, progress=False)
    ddp = _config(dataset, tmp_path / "ddp", batch_size=1, **common)
    mp.start_processes(_ddp_worker, args=(2, _free_port(), ddp.to_dict()), nprocs=2, start_method="spawn")
    a, b = _weights(tmp_path / "single"), _weights(tmp_path / "ddp")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    torch.manual_seed(single.seed)
    initial = tr.build_model(single.model_config()).state_dict()
    assert any(not torch.equal(a[k], initial[k]) for k in a)  # the comparison is not between two untrained models


def test_unknown_config_keys_and_cli_overrides(dataset, tmp_path):
    with pytest.raises(ValueError, match="unknown training config keys"):
        tr.TrainConfig.from_dict({"epoch": 3})
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(_config(dataset, tmp_path / "cli", epochs=5).to_dict()))
    assert tr.main(["--config", str(path), "--set", "epochs=1", "augment=false"]) == 0
    assert tr.TrainConfig.load(tmp_path / "cli" / "config.json").epochs == 1


def _learning_rates(config: tr.TrainConfig, steps: int) -> list[float]:
    """The learning rate of each of ``steps`` iterations, then the one after the last."""
    opt = tr.build_optimizer(torch.nn.Linear(1, 1), config)
    sched = tr.build_scheduler(opt, config)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs + [opt.param_groups[0]["lr"]]


@pytest.mark.parametrize("schedule", ["poly", "cosine"])
def test_schedules_decay_to_zero(schedule):
    *lrs, after = _learning_rates(tr.TrainConfig(epochs=2, iterations_per_epoch=5, lr=1.0, schedule=schedule), 10)
    assert lrs[0] == 1.0 and all(x > y for x, y in zip(lrs, lrs[1:]))
    assert after == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("schedule", ["poly", "cosine"])
def test_warmup_rises_linearly_then_follows_the_schedule(schedule):
    def rates(warmup):
        return _learning_rates(tr.TrainConfig(epochs=2, iterations_per_epoch=10, lr=1.0, schedule=schedule,
                                              warmup_iterations=warmup), 20)[:20]

    plain, warm = rates(0), rates(4)
    assert warm[:4] == pytest.approx([plain[i] * (i + 1) / 4 for i in range(4)])
    assert warm[4:] == pytest.approx(plain[4:])  # after the warm-up, the schedule itself
    with pytest.raises(tr.BratsConfigError, match="warmup_iterations"):
        tr.TrainConfig(warmup_iterations=-1).validate()


def test_region_dice_counts():
    target = torch.tensor([[0, 1, 2, 3, 4, 3]])
    pred = torch.tensor([[0, 1, 2, 2, 4, 3]])
    dice = tr.dice_from_counts(tr.region_dice_counts(pred, target))
    assert dice["WT"] == 1.0 and dice["RC"] == 1.0 and dice["NETC"] == 1.0
    assert dice["ET"] == pytest.approx(2 * 1 / (1 + 2))
    assert dice["SNFH"] == pytest.approx(2 * 1 / (2 + 1))
    assert np.isnan(tr.dice_from_counts(tr.region_dice_counts(torch.zeros(1, 3), torch.zeros(1, 3)))["ET"])


def test_report_figures_from_a_run(dataset, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from brats_lib import report

    run = tmp_path / "run"
    tr.train(_config(dataset, run), progress=False)
    history = report.read_history(run)
    fig = report.plot_learning_curves(history, title="tiny")
    loss_ax, dice_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["train", "validation"]
    assert loss_ax.get_xlabel() == "epoch" and "Dice" in dice_ax.get_ylabel()
    assert list(report.final_scores(history).columns) == ["last", "best"]
    samples = report.validation_predictions(run, n_patches=2)
    assert len(samples) == 2
    image, label, pred = samples[0]
    assert image.shape == (4, 16, 16, 16) and label.shape == pred.shape == (16, 16, 16)
    assert label.any()  # tumour-centred
    fig = report.plot_validation_predictions(samples)
    assert len(fig.axes) == 6
    with pytest.raises(FileNotFoundError, match="no metrics yet"):
        report.read_history(tmp_path / "nothing")


def test_encoder_grad_norms_are_per_stage_l2_norms():
    model = tr.build_model({"name": "unet3d", "features_per_stage": [4, 8, 16]})
    assert tr.encoder_grad_norms(model) is None  # no backward pass yet
    for p in model.parameters():
        p.grad = torch.full_like(p, 2.0)
    norms = tr.encoder_grad_norms(model)
    sizes = [sum(p.numel() for p in stage.parameters()) for stage in model.encoder]
    assert norms.shape == (3,)
    torch.testing.assert_close(norms, 2.0 * torch.tensor(sizes, dtype=torch.float32).sqrt())
    assert tr.encoder_grad_norms(torch.nn.Linear(2, 2)) is None


def test_gradient_norms_and_training_dice_appear_in_metrics_csv(dataset, tmp_path, monkeypatch):
    calls = []
    real = tr.encoder_grad_norms

    def recorded(model):
        calls.append(real(model))
        return torch.tensor([1.0, 2.0, 3.0]) * len(calls)  # samples 1, 2 → their mean is 1.5 × (1, 2, 3)

    monkeypatch.setattr(tr, "encoder_grad_norms", recorded)
    run = tmp_path / "run"
    tr.train(_config(dataset, run, epochs=1, iterations_per_epoch=3, grad_norm_every=2), progress=False)
    assert len(calls) == 2 and all(c.shape == (3,) and (c > 0).all() for c in calls)  # iterations 1 and 3
    row = next(csv.DictReader(open(run / "metrics.csv")))
    assert [k for k in row if k.startswith("grad_norm_")] == ["grad_norm_stage1", "grad_norm_stage2",
                                                              "grad_norm_stage3"]
    assert [float(row[f"grad_norm_stage{i}"]) for i in (1, 2, 3)] == [1.5, 3.0, 4.5]
    for region in REGION_ORDER:
        value = float(row[f"train_dice_{region}"])
        assert np.isnan(value) or 0.0 <= value <= 1.0
    assert 0.0 < float(row["train_dice_WT"])  # every training patch of the tiny cases holds tumour

    monkeypatch.setattr(tr, "encoder_grad_norms", real)
    tr.train(_config(dataset, tmp_path / "off", epochs=1, iterations_per_epoch=2, grad_norm_every=0), progress=False)
    assert not [k for k in next(csv.DictReader(open(tmp_path / "off" / "metrics.csv"))) if k.startswith("grad_norm")]


def test_dice_and_gradient_curves():
    import matplotlib
    import pandas as pd

    matplotlib.use("Agg")
    from brats_lib import report

    history = pd.DataFrame({"epoch": [1, 2], "train_dice_WT": [0.2, 0.6], "val_dice_WT": [0.1, 0.4],
                            "grad_norm_stage10": [0.5, 0.4], "grad_norm_stage2": [2.0, 1.0],
                            "grad_norm_stage1": [4.0, 3.0]})
    assert report.grad_norm_columns(history) == ["grad_norm_stage1", "grad_norm_stage2", "grad_norm_stage10"]
    fig = report.plot_dice_and_gradients(history, regions=("WT", "ET"))
    dice_ax, grad_ax = fig.axes
    assert [line.get_label() for line in dice_ax.lines] == ["WT train", "WT val."]  # ET has no columns
    assert [line.get_linestyle() for line in dice_ax.lines] == ["--", "-"]
    assert [line.get_label() for line in grad_ax.lines] == ["stage 1", "stage 2", "stage 10"]
    assert list(grad_ax.lines[0].get_ydata()) == [4.0, 3.0] and grad_ax.get_yscale() == "log"
    assert fig.get_size_inches()[0] <= 7


def test_resume_under_a_changed_config_needs_override_and_warns(dataset, tmp_path, caplog):
    run = tmp_path / "run"
    tr.train(_config(dataset, run, epochs=2, time_limit_minutes=0.0), progress=False)  # stops after epoch 1
    with pytest.raises(tr.BratsConfigError, match=r"differs from the run's config\.json \(lr: 0\.01 -> 0\.002\)"):
        tr.train(_config(dataset, run, epochs=2, lr=2e-3), progress=False)
    assert tr.load_checkpoint(run / "last.pt")["epoch"] == 0  # untouched
    with caplog.at_level(logging.WARNING, logger="brats_lib.train"):
        history = tr.train(_config(dataset, run, epochs=2, lr=2e-3), progress=False, override=True)
    assert len(history) == 2 and "--override" in caplog.text and "lr: 0.01 -> 0.002" in caplog.text
    assert tr.TrainConfig.load(run / "config.json").lr == 2e-3


class _Probe(tr.Trainer):
    """A Trainer that records, for each training forward, the output dtype and the input's memory format."""

    def _build(self, splits):
        super()._build(splits)
        self.seen = []
        self.model.register_forward_hook(lambda module, args, out: self.seen.append(
            (out.dtype, args[0].is_contiguous(memory_format=torch.channels_last_3d))) if module.training else None)


def test_bf16_autocast_and_channels_last_3d_paths_run_on_cpu(dataset, tmp_path):
    """The CUDA-only settings (bf16 autocast, channels_last_3d) switched on for CPU, which supports both."""
    trainer = _Probe(_config(dataset, tmp_path / "run", epochs=1), progress=False)
    trainer.amp = trainer.channels_last = True
    history = trainer.run()
    assert trainer.seen and all(s == (torch.bfloat16, True) for s in trainer.seen)
    conv = next(p for p in trainer.model.parameters() if p.dim() == 5)
    assert conv.is_contiguous(memory_format=torch.channels_last_3d)
    assert np.isfinite(history[0]["train_loss"]) and np.isfinite(history[0]["val_loss"])
    torch.manual_seed(trainer.config.seed)
    initial = tr.build_model(trainer.config.model_config()).state_dict()
    trained = _weights(tmp_path / "run")
    assert any(not torch.equal(trained[k], initial[k]) for k in trained)


def test_torch_compile_smoke(dataset, tmp_path):
    """``compile=True`` wraps the network in torch.compile (inductor: needs a C++ compiler); the compiled tiny
    network computes what the eager one does (forward only, to keep the compilation short)."""
    import shutil

    if shutil.which(os.environ.get("CXX", "g++")) is None and shutil.which("c++") is None:
        pytest.skip("no C++ compiler on PATH: torch.compile's inductor backend cannot build CPU kernels")
    config = _config(dataset, tmp_path / "run", compile=True, model={"name": "unet3d", "features_per_stage": [2, 4]},
                     patch_size=8)
    trainer = tr.Trainer(config, progress=False)
    trainer._build(tr.prepare_data(config, progress=False))
    assert type(trainer.forward_model).__name__ == "OptimizedModule"
    trainer.model.eval()
    image = torch.randn(1, 4, 8, 8, 8)
    with torch.no_grad():
        compiled, eager = trainer.forward_model(image), trainer.model(image)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)


def test_a_slow_loader_lowers_the_logged_busy_share(dataset, tmp_path, monkeypatch):
    """Each patch takes 0.1 s to load (in the main process): the epoch waits at least 6 × 0.1 s for data,
    and the busy share cannot exceed what is left of the loop's wall time."""
    original = tr.PatchDataset.__getitem__

    def slow(self, index):
        time.sleep(0.1)
        return original(self, index)

    monkeypatch.setattr(tr.PatchDataset, "__getitem__", slow)
    history = tr.train(_config(dataset, tmp_path / "run", epochs=1), progress=False)
    row = history[0]
    assert row["data_wait_seconds"] >= 3 * 2 * 0.1
    assert 0.0 <= row["busy_share"] <= 1.0 - row["data_wait_seconds"] / row["train_loop_seconds"] + 1e-9


def test_compile_auto_means_cuda_only_and_bad_values_are_refused(dataset, tmp_path):
    config = _config(dataset, tmp_path / "run")
    assert config.compile == "auto"
    trainer = tr.Trainer(config, progress=False)
    trainer._build(tr.prepare_data(config, progress=False))
    assert trainer.forward_model is trainer.model  # CPU: not compiled
    with pytest.raises(tr.BratsConfigError, match="compile"):
        _config(dataset, tmp_path / "run", compile="yes").validate()
    with pytest.raises(tr.BratsConfigError, match="compile"):
        _config(dataset, tmp_path / "run", compile=1).validate()


@pytest.fixture(scope="module")
def eager_run(dataset, tmp_path_factory):
    """One epoch, never compiled."""
    run = tmp_path_factory.mktemp("eager") / "run"
    tr.train(_config(dataset, run, epochs=1, compile=False), progress=False)
    return run


@pytest.mark.parametrize("where", ["first_call", "wrap"])
def test_a_failing_compilation_falls_back_to_the_eager_network(dataset, eager_run, tmp_path, monkeypatch, capsys,
                                                               where):
    """torch.compile failing when it wraps the network, or (as inductor does) at the first call: one line
    on stderr, and training goes on uncompiled, to the same weights as a run that never compiled."""
    calls = []

    def broken_compile(module, *args, **kwargs):
        if where == "wrap":
            raise RuntimeError("no backend\nsecond line")

        def forward(*a, **k):
            calls.append(1)
            raise RuntimeError("inductor: C++ compile error\nsecond line")
        return forward

    monkeypatch.setattr(tr.torch, "compile", broken_compile)
    capsys.readouterr()
    tr.train(_config(dataset, tmp_path / "fallback", epochs=1, compile=True), progress=False)
    err = [line for line in capsys.readouterr().err.splitlines() if "torch.compile failed" in line]
    message = "no backend" if where == "wrap" else "inductor: C++ compile error"
    assert err == [f"torch.compile failed (RuntimeError: {message}); training without compilation "
                   "(set compile: false to skip the attempt)"]
    assert calls == ([] if where == "wrap" else [1])  # tried once, then never again
    a, b = _weights(eager_run), _weights(tmp_path / "fallback")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_fault_after_the_first_compiled_step_is_not_swallowed(dataset, tmp_path, monkeypatch):
    def flaky_compile(module, *args, **kwargs):
        calls = []

        def forward(*a, **k):
            calls.append(1)
            if len(calls) > 1:
                raise RuntimeError("a real fault in step 2")
            return module(*a, **k)
        return forward

    monkeypatch.setattr(tr.torch, "compile", flaky_compile)
    with pytest.raises(RuntimeError, match="a real fault in step 2"):
        tr.train(_config(dataset, tmp_path / "run", epochs=1, compile=True), progress=False)


# ------------------------------------------------------------------------------------- SIGKILL and resume


def _read_run(run: Path) -> dict:
    """Everything a reader of a run directory relies on, checked readable and consistent; raises otherwise."""
    out = {}
    if (run / "config.json").exists():
        tr.TrainConfig.load(run / "config.json")
    last = tr.load_checkpoint(run / "last.pt") if (run / "last.pt").exists() else None
    rows = list(csv.DictReader(open(run / "metrics.csv"))) if (run / "metrics.csv").exists() else []
    assert [int(r["epoch"]) for r in rows] == list(range(1, len(rows) + 1))
    assert json.loads((run / "metrics.json").read_text())[-1]["epoch"] == len(rows) if rows else True
    done = 0 if last is None else last["epoch"] + 1
    assert done == (0 if last is None else len(last["history"]))
    assert len(rows) in (done, done + 1), (len(rows), done)  # metrics at most the epoch being committed ahead
    for row, kept in zip(rows, last["history"] if last else []):
        assert float(row["train_loss"]) == kept["train_loss"]
    if (run / "best.pt").exists():
        assert tr.load_checkpoint(run / "best.pt")["epoch"] < max(len(rows), 1)
    out["epochs_done"] = done
    return out


@pytest.mark.slow
def test_sigkill_at_a_random_moment_then_resume_equals_an_uninterrupted_run(dataset, tmp_path):
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")

    def command(name):
        config = _config(dataset, tmp_path / name, epochs=3, cache_dir=str(tmp_path / f"{name}_cache"))
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(config.to_dict()))
        return [sys.executable, "-m", "brats_lib.cli", "train", "--config", str(path)]

    started = time.perf_counter()
    subprocess.run(command("full"), env=env, cwd=REPO, check=True, capture_output=True, timeout=900)
    duration = time.perf_counter() - started
    killed_at = []
    for _ in range(2):
        process = subprocess.Popen(command("killed"), env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        delay = rng.uniform(0.25, 1.0) * duration
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            killed_at.append(round(delay, 1))
        state = _read_run(tmp_path / "killed")
        killed_at.append(f"{state['epochs_done']} epoch(s) committed")
    done = subprocess.run(command("killed"), env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    note = f"random seed {seed}, uninterrupted run {duration:.1f} s, kills after (s): {killed_at}"
    assert done.returncode == 0, f"{note}\n{done.stderr[-2000:]}"
    full, resumed = tmp_path / "full", tmp_path / "killed"
    assert _read_run(resumed)["epochs_done"] == 3, note
    for name in ("last.pt", "best.pt"):
        a, b = _weights(full, name), _weights(resumed, name)
        assert all(torch.equal(a[k], b[k]) for k in a), f"{name} differs; {note}"
    rows_a = list(csv.DictReader(open(full / "metrics.csv")))
    rows_b = list(csv.DictReader(open(resumed / "metrics.csv")))
    for a, b in zip(rows_a, rows_b, strict=True):
        assert ({k: v for k, v in a.items() if k not in tr.TIMING_COLUMNS}
                == {k: v for k, v in b.items() if k not in tr.TIMING_COLUMNS}), note
def test_default_split_follows_a_grown_dataset(tmp_path):
    """The automatic split is remade when cases are added; a given split file is kept as it is."""
    raw = tmp_path / "raw"
    for i in range(3):
        write_tiny_case(raw, i)
    config = tr.TrainConfig(data_dir=str(raw), cache_dir=str(tmp_path / "cache"), workers=0,
                            preprocess={"downsample": 1, "margin": 2})
    first = tr.prepare_data(config, progress=False)
    assert sorted(c for ids in first.values() for c in ids) == [f"BraTS-GLI-{i:05d}-000" for i in range(3)]
    assert tr.prepare_data(config, progress=False) == first  # unchanged dataset: same split, read back
    given = tmp_path / "given.json"
    given.write_text(json.dumps(first))
    for i in range(3, 8):
        write_tiny_case(raw, i)
    grown = tr.prepare_data(config, progress=False)
    assert sorted(c for ids in grown.values() for c in ids) == [f"BraTS-GLI-{i:05d}-000" for i in range(8)]
    assert json.loads((tmp_path / "cache" / "splits.json").read_text())["test"] == grown["test"]
    kept = tr.prepare_data(tr.TrainConfig(**{**config.to_dict(), "splits_file": str(given)}), progress=False)
    assert kept == first
