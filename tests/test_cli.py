"""The ``brats`` command line: every user fault ends in one line naming it and exit status 2, nothing written;
an internal error is not disguised as one."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from brats_lib import cli
from brats_lib import train as tr
from brats_lib.errors import BratsConfigError, BratsInputError, BratsUserError

REPO = Path(__file__).resolve().parents[1]
TINY_MODEL = {"name": "unet3d", "features_per_stage": [4, 8]}


def _fails(capsys, argv, *fragments):
    """Run ``brats argv``: exit status 2 and one stderr line ``brats <cmd>: error: …`` holding ``fragments``."""
    assert cli.main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith(f"brats {argv[0]}: error: "), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


@pytest.fixture
def config_file(tmp_path):
    """A valid training config whose data folder does not exist: any fault must be found before data."""
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"data_dir": str(tmp_path / "data"), "cache_dir": str(tmp_path / "cache"),
                                "run_dir": str(tmp_path / "run"), "model": TINY_MODEL, "device": "cpu",
                                "patch_size": 16}))
    return path


def test_error_types():
    assert issubclass(BratsInputError, BratsUserError) and issubclass(BratsConfigError, BratsUserError)
    assert issubclass(BratsConfigError, ValueError)  # library callers catching ValueError keep working
    assert not issubclass(ValueError, BratsUserError)


# ------------------------------------------------------------------------------------------------ train


def test_missing_config_file(capsys, tmp_path):
    _fails(capsys, ["train", "--config", tmp_path / "nope.json"], "nope.json", "does not exist")


@pytest.mark.parametrize("text,fault", [("{\"epochs\": 2,", "not valid JSON"), ("[1, 2]", "JSON object")])
def test_malformed_config_file(capsys, tmp_path, text, fault):
    path = tmp_path / "bad.json"
    path.write_text(text)
    _fails(capsys, ["train", "--config", path], "bad.json", fault)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("item", ["epochs", "epochs=", "=3"])
def test_set_without_a_value(capsys, config_file, item):
    _fails(capsys, ["train", "--config", config_file, "--set", item], f"--set {item!r}", "KEY=VALUE")


def test_unknown_config_key(capsys, config_file, tmp_path):
    _fails(capsys, ["train", "--config", config_file, "--set", "epoch=3"], "unknown training config keys",
           "'epoch'")
    values = json.loads(config_file.read_text())
    config_file.write_text(json.dumps(dict(values, learning_rate=0.1)))
    _fails(capsys, ["train", "--config", config_file], "'learning_rate'")
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("item,fragment", [
    ("seed=-1", "config seed must be a non-negative integer, got -1"),
    ("epochs=0", "config epochs must be a positive integer, got 0"),
    ("batch_size=-2", "config batch_size must be a positive integer"),
    ("lr=0", "config lr must be a positive number"),
    ("loss=focal", "config loss must be one of"),
    ("patch_size=17", "patch_size 17 must be a multiple of 2"),
    ('model={"name": "vnet"}', "unknown model 'vnet'"),
    ('preprocess={"downsample": 0.5}', "downsample must be >= 1"),
    ('preprocess={"factor": 2}', "config preprocess: unknown keys ['factor']"),
    ('augment="wild"', "config augment must be true, false or one of ['default', 'strong']"),
])
def test_bad_config_values(capsys, config_file, tmp_path, item, fragment):
    _fails(capsys, ["train", "--config", config_file, "--set", item], fragment)
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_cuda_asked_for_and_absent(capsys, config_file, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _fails(capsys, ["train", "--config", config_file, "--set", "device=cuda"], "'cuda'", "CUDA is not available")
    _fails(capsys, ["train", "--config", config_file, "--set", "device=gpu"], "'gpu'", "not a device name")
    _fails(capsys, ["predict", "--run", tmp_path, "--in", tmp_path, "--out", tmp_path / "out", "--device",
                    "cuda:1"], "'cuda:1'", "CUDA is not available")
    assert not (tmp_path / "run").exists() and not (tmp_path / "out").exists()


def test_resume_with_a_changed_config_is_refused(capsys, config_file, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    stored = tr.TrainConfig.from_dict(json.loads(config_file.read_text()))
    (run / "config.json").write_text(json.dumps(stored.to_dict()))
    (run / "last.pt").write_bytes(b"a checkpoint")  # only its presence matters before the refusal
    before = sorted(p.name for p in run.iterdir())
    _fails(capsys, ["train", "--config", config_file, "--set", "epochs=20", "lr=0.1"],
           "differs from the run's config.json", "epochs: 10 -> 20", "lr: 0.003 -> 0.1", "--override")
    assert sorted(p.name for p in run.iterdir()) == before and (run / "last.pt").read_bytes() == b"a checkpoint"
    # keys that say where and how a run runs, not what it trains, may change
    assert tr.config_changes(stored.to_dict(), dict(stored.to_dict(), workers=8, device="cuda",
                                                    time_limit_minutes=3.0)) == {}


# ---------------------------------------------------------------------------------------------- predict


def _run_dir(root: Path, model_in_config: dict, model_in_checkpoint: dict | None) -> Path:
    """A run directory with ``config.json`` and, unless ``model_in_checkpoint`` is None, an untrained best.pt."""
    root.mkdir(parents=True)
    config = tr.TrainConfig(model=model_in_config, patch_size=16, device="cpu")
    (root / "config.json").write_text(json.dumps(config.to_dict()))
    if model_in_checkpoint is not None:
        saved = tr.TrainConfig(model=model_in_checkpoint, patch_size=16, device="cpu")
        tr.save_checkpoint(root / "best.pt", {"model": tr.build_model(saved.model_config()).state_dict(),
                                              "config": saved.to_dict()})
    return root


def test_run_directory_without_a_checkpoint(capsys, tmp_path):
    run = _run_dir(tmp_path / "run", TINY_MODEL, None)
    _fails(capsys, ["predict", "--run", run, "--in", tmp_path, "--out", tmp_path / "out", "--device", "cpu"],
           str(run), "no checkpoint (best.pt or last.pt)")
    _fails(capsys, ["predict", "--run", tmp_path / "missing", "--in", tmp_path, "--out", tmp_path / "out"],
           "missing", "not a run directory")
    assert not (tmp_path / "out").exists()


def test_checkpoint_of_another_architecture(capsys, tmp_path):
    other = {"name": "resunet3d", "features_per_stage": [4, 8]}
    run = _run_dir(tmp_path / "run", TINY_MODEL, other)
    _fails(capsys, ["predict", "--run", run, "--in", tmp_path, "--out", tmp_path / "out", "--device", "cpu"],
           "best.pt", "another architecture", "resunet3d")
    (run / "best.pt").write_bytes(b"not a checkpoint")
    _fails(capsys, ["predict", "--run", run, "--in", tmp_path, "--out", tmp_path / "out", "--device", "cpu"],
           "best.pt", "not a readable checkpoint")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ synth


@pytest.mark.parametrize("argv,fragment", [
    (["--n", "0"], "n_cases must be an integer >= 1, got 0"),
    (["--n", "-3"], "n_cases must be an integer >= 1, got -3"),
    (["--n", "2", "--seed", "-1"], "seed must be an integer >= 0, got -1"),
    (["--n", "2", "--workers", "0"], "workers must be a positive integer, got 0"),
    (["--n", "2", "--variants", "untreated,bogus"], "variants: unknown variant(s) ['bogus']"),
])
def test_synth_bad_numbers(capsys, tmp_path, argv, fragment):
    _fails(capsys, ["synth", "--out", tmp_path / "data", *argv], fragment)
    assert not (tmp_path / "data").exists()


# --------------------------------------------------------------------------------------- internal errors


def test_internal_errors_keep_their_traceback(monkeypatch, tmp_path):
    """A ValueError from a bug is not a user fault: the CLI lets it through (a traceback, exit status 1)."""
    import brats_lib.synthetic as synthetic

    def buggy(*args, **kwargs):
        raise ValueError("an internal bug")

    monkeypatch.setattr(synthetic, "generate_dataset", buggy)
    with pytest.raises(ValueError, match="an internal bug"):
        cli.main(["synth", "--out", str(tmp_path / "data"), "--n", "1"])


def test_a_real_process_prints_one_line_and_exits_2(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "brats_lib.cli", "synth", "--out", str(tmp_path / "d"), "--n",
                           "0"], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "brats synth: error: n_cases must be an integer >= 1, got 0\n"
