"""Sweeps: grid files, a two-run sweep of a tiny training notebook end to end, resume, refusals, commands."""

import json
import os
import shlex
import time

import nbformat
import pandas as pd
import pytest

from brats_lib import cli
from brats_lib import sweep as sw
from brats_lib.io import BratsInputError
from brats_lib.labels import REGION_ORDER
from conftest import write_tiny_case

TRAIN_CELL = """
from brats_lib.train import TrainConfig, train
train(TrainConfig(data_dir=data_dir, cache_dir=cache_dir, run_dir=run_dir, device="cpu", workers=0,
                  model={"name": model_name, "features_per_stage": [4, 8, 16], **model_options},
                  patch_size=16, batch_size=2, epochs=epochs, iterations_per_epoch=2, val_patches=2, lr=lr,
                  grad_norm_every=1, preprocess={"downsample": 1, "margin": 2}), progress=False)
"""


def _notebook(path, parameters: str, body: str):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    for i in range(4):
        write_tiny_case(root / "raw", i)
    notebook = _notebook(root / "train_tiny.ipynb",
                         f'data_dir = "{root / "raw"}"\ncache_dir = "{root / "cache"}"\nrun_dir = "runs/x"\n'
                         'model_name = "unet3d"\nmodel_options = {"norm": "instance"}\nepochs = 1\nlr = 0.01',
                         TRAIN_CELL)
    return root, notebook


def _grid(path, text):
    path.write_text(text)
    return path


def test_grid_forms_expand_to_named_runs():
    runs, evaluate = sw.parse_grid({"fixed": {"epochs": 2}, "grid": {"lr": [0.1, 0.01], "model_name": ["a", "b"]}})
    assert [r.name for r in runs] == ["lr=0.1__model_name=a", "lr=0.1__model_name=b", "lr=0.01__model_name=a",
                                      "lr=0.01__model_name=b"]
    assert runs[3].parameters == {"epochs": 2, "lr": 0.01, "model_name": "b"} and evaluate is None
    runs, _ = sw.parse_grid([{"name": "student", "loss": "ce"}, {"features_per_stage": [8, 16]}])
    assert [r.name for r in runs] == ["student", "features_per_stage=8-16"]
    runs, evaluate = sw.parse_grid({"runs": [{"name": "s"}, {"name": "p"}], "grid": {"seed": [0, 1]},
                                    "evaluate": {"split": "test"}})
    assert [r.name for r in runs] == ["s__seed=0", "s__seed=1", "p__seed=0", "p__seed=1"]
    assert evaluate["split"] == "test" and evaluate["tta"] is False


@pytest.mark.parametrize("data, message", [
    ({"grid": {"lr": 0.1}}, r"grid\.lr: expected a non-empty list"),
    ({"grid": {"lr": []}}, r"grid\.lr: expected a non-empty list"),
    ({"gird": {"lr": [1]}}, "unknown key 'gird'"),
    ({"fixed": {"lr": 1}}, "neither 'grid' nor 'runs'"),
    ("lr: 0.1", "expected a list of parameter mappings"),
    ([{"lr": 1}, 3], "run 2: expected a mapping"),
    ([{"name": "a/b"}], "name 'a/b' must be"),
    ([{"name": "a"}, {"name": "a"}], "two runs are named 'a'"),
    ({"grid": {"lr": [1]}, "evaluate": {"split": "holdout"}}, "evaluate.split must be"),
])
def test_malformed_grids_are_named(data, message):
    with pytest.raises(BratsInputError, match=message):
        sw.parse_grid(data, "g.yml")


def test_dotted_keys_merge_into_the_notebook_default_dict(tiny, tmp_path):
    _, notebook = tiny
    sweep = sw.load_sweep(notebook, _grid(tmp_path / "g.yml", "grid:\n  model_options.kernel_size: [5]\n"))
    params = sw.papermill_parameters(sweep, sweep.runs[0], tmp_path / "out")
    assert params["model_options"] == {"norm": "instance", "kernel_size": 5}
    assert params["run_dir"] == str((tmp_path / "out" / "model_options.kernel_size=5").resolve())


def _cli(capsys, *args):
    code = cli.main(["sweep", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("grid, message", [
    ("- {learning_rate: 0.1}\n", "unknown parameter 'learning_rate': train_tiny.ipynb defines data_dir, "),
    ("- {run_dir: elsewhere}\n", "'run_dir' is set by the sweep"),
    ("- {lr.x: 1}\n", "sets a key of 'lr', whose default in train_tiny.ipynb is not a dict"),
    ("grid: {lr: 0.1}\n", "grid.lr: expected a non-empty list"),
    ("grid: [lr, 0.1\n", "not valid YAML at line"),
])
def test_bad_grids_are_refused_with_one_line_and_exit_2(tiny, tmp_path, capsys, grid, message):
    _, notebook = tiny
    out = tmp_path / "out"
    code, stdout, err = _cli(capsys, "--notebook", notebook, "--grid", _grid(tmp_path / "g.yml", grid),
                             "--out", out)
    assert code == 2 and stdout == ""
    assert err.count("\n") == 1 and err.startswith("brats sweep: error: ") and message in err
    assert str(tmp_path / "g.yml") in err or "YAML" in err
    assert not out.exists()  # nothing written


def test_a_notebook_without_parameters_cell_is_refused(tmp_path, capsys):
    notebook = tmp_path / "plain.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, notebook)
    code, _, err = _cli(capsys, "--notebook", notebook, "--grid", _grid(tmp_path / "g.yml", "- {x: 2}\n"),
                        "--out", tmp_path / "out")
    assert code == 2 and "no cell tagged 'parameters'" in err


def test_two_run_sweep_end_to_end_with_resume(tiny, tmp_path, capsys):
    root, notebook = tiny
    grid = _grid(tmp_path / "g.yml", "fixed: {epochs: 1}\ngrid:\n  model_name: [unet3d, resunet3d]\n")
    out = tmp_path / "out"
    sweep = sw.load_sweep(notebook, grid)
    first, second = [r.name for r in sweep.runs]
    assert (first, second) == ("model_name=unet3d", "model_name=resunet3d")

    table = sw.run_sweep(sweep, out, only=[first], log=None)
    assert list(table["status"]) == ["finished", "pending"]
    folder = out / first
    assert {"train_tiny.ipynb", "config.json", "metrics.csv", "last.pt", "best.pt", "sweep_run.json"} <= {
        p.name for p in folder.iterdir()}
    executed = nbformat.read(folder / "train_tiny.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert json.loads((folder / "config.json").read_text())["run_dir"] == str(folder.resolve())
    stamp = (folder / "train_tiny.ipynb").stat().st_mtime_ns

    (out / second).mkdir()  # an interrupted run: its folder exists, without the finished marker
    (out / second / "left_by_the_first_attempt").write_text("x")
    time.sleep(0.01)
    code, stdout, _ = _cli(capsys, "--notebook", notebook, "--grid", grid, "--out", out, "--jobs", "2")
    assert code == 0
    assert f"{first}: finished earlier, skipped" in stdout and f"{second}: to resume" in stdout
    assert (folder / "train_tiny.ipynb").stat().st_mtime_ns == stamp  # the finished run was not executed again
    assert (out / second / "left_by_the_first_attempt").exists() and (out / second / "last.pt").exists()

    table = pd.read_csv(out / "sweep.csv")
    assert list(table["name"]) == [first, second] and list(table["status"]) == ["finished", "finished"]
    assert list(table["model_name"]) == ["unet3d", "resunet3d"] and list(table["epochs"]) == [1, 1]
    for region in REGION_ORDER:
        assert table[f"best_val_dice_{region}"].between(0, 1).all() or table[f"best_val_dice_{region}"].isna().all()
    assert (table["train_seconds"] > 0).all() and (table["notebook_seconds"] > 0).all()
    assert (table["grad_norm_first_stage"] > 0).all()
    # model size from the run's own config: the residual U-Net of the same widths has more parameters
    assert table["parameters_M"].iloc[1] > table["parameters_M"].iloc[0] > 0
    assert (table["forward_GFLOPs"] > 0).all()
    metrics = pd.read_csv(out / first / "metrics.csv")
    assert {"grad_norm_stage1", "grad_norm_stage2", "grad_norm_stage3"} <= set(metrics.columns)

    # a different grid into the same folder is refused, naming the difference
    other = _grid(tmp_path / "other.yml", "grid:\n  model_name: [unet3d, fcnn]\n")
    code, _, err = _cli(capsys, "--notebook", notebook, "--grid", other, "--out", out)
    assert code == 2 and "holds a sweep of a different grid" in err and "model_name=fcnn" in err
    # so is a folder that is not a sweep folder
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "something").write_text("")
    code, _, err = _cli(capsys, "--notebook", notebook, "--grid", grid, "--out", tmp_path / "busy")
    assert code == 2 and "not a sweep folder" in err


def test_print_commands_one_per_run_for_a_job_array(tiny, tmp_path, capsys):
    _, notebook = tiny
    grid = _grid(tmp_path / "g.yml", "- {name: a, lr: 0.1}\n- {name: b, lr: 0.2}\n- {name: c}\n")
    code, stdout, _ = _cli(capsys, "--notebook", notebook, "--grid", grid, "--out", tmp_path / "out",
                           "--print-commands")
    lines = stdout.splitlines()
    assert code == 0 and len(lines) == 3 and not (tmp_path / "out").exists()
    for line, name in zip(lines, "abc"):
        args = shlex.split(line)
        assert args[:2] == ["brats", "sweep"] and args[-2:] == ["--only", name]
        assert args[args.index("--out") + 1] == str((tmp_path / "out").resolve())


def test_parallel_jobs_and_a_failing_run(tmp_path, capsys):
    notebook = _notebook(tmp_path / "nb.ipynb", 'run_dir = "x"\nvalue = 1',
                         "import os, pathlib, time\npathlib.Path(run_dir).mkdir(parents=True, exist_ok=True)\n"
                         "assert value != 3, 'three is refused'\n"
                         "(pathlib.Path(run_dir) / 'pid').write_text(str(os.getpid()))")
    grid = _grid(tmp_path / "g.yml", "grid: {value: [1, 2, 3]}\n")
    code, stdout, err = _cli(capsys, "--notebook", notebook, "--grid", grid, "--out", tmp_path / "out",
                             "--jobs", "3")
    assert code == 1 and "1 run(s) failed: value=3" in err
    table = pd.read_csv(tmp_path / "out" / "sweep.csv")
    assert list(table["status"]) == ["finished", "finished", "failed"]
    pids = {(tmp_path / "out" / f"value={v}" / "pid").read_text() for v in (1, 2)}
    assert len(pids) == 2 and str(os.getpid()) not in pids  # each run in its own kernel
    marker = json.loads((tmp_path / "out" / "value=3" / "sweep_run.json").read_text())
    assert "three is refused" in marker["error"]
    assert (tmp_path / "out" / "value=3" / "nb.ipynb").exists()  # the failed notebook, to see the cell


def test_ablation_table_reads_row_by_row():
    table = pd.DataFrame({"name": ["student", "+skips", "+dice"], "test_dice_WT": [0.5, 0.7, 0.8],
                          "test_dice_TC": [0.1, 0.3, 0.2], "test_dice_ET": [0.0, 0.2, 0.5],
                          "parameters_M": [1.0, 1.2, 1.2]})
    out = sw.ablation_table(table)
    assert list(out.index) == ["student", "+skips", "+dice"]
    assert out["mean"].round(3).tolist() == [0.2, 0.4, 0.5]
    assert out["Δ previous"].round(3).tolist()[1:] == [0.2, 0.1] and pd.isna(out["Δ previous"].iloc[0])
    assert out["Δ first"].round(3).tolist() == [0.0, 0.2, 0.3]
    with pytest.raises(KeyError, match="no best_val_dice_<region> column"):
        sw.ablation_table(table, score="best_val_dice")


def test_restrict_selects_runs_and_layers_overrides(tiny, tmp_path):
    _, notebook = tiny
    sweep = sw.load_sweep(notebook, _grid(tmp_path / "g.yml", "- {name: a, lr: 0.1}\n- {name: b, epochs: 3}\n"))
    small = sw.restrict(sweep, ["b"], {"epochs": 1})
    assert [r.name for r in small.runs] == ["b"] and small.runs[0].parameters == {"epochs": 1}
    assert sw.restrict(sweep).identity() == sweep.identity()  # nothing restricted: the same sweep folder fits
    assert sw.restrict(sweep, evaluate=False).evaluate is None
    with pytest.raises(BratsInputError, match="no run named 'c'"):
        sw.restrict(sweep, ["c"])
    with pytest.raises(BratsInputError, match="unknown parameter 'epoch'"):
        sw.restrict(sweep, None, {"epoch": 1})


def test_environment_variables_in_grids(tiny, tmp_path, monkeypatch):
    _, notebook = tiny
    grid = _grid(tmp_path / "g.yml", "fixed: {data_dir: \"${SWEEP_TEST_DATA}/raw\"}\ngrid: {lr: [0.1]}\n")
    monkeypatch.setenv("SWEEP_TEST_DATA", "/data/brats")
    assert sw.load_sweep(notebook, grid).runs[0].parameters["data_dir"] == "/data/brats/raw"
    monkeypatch.delenv("SWEEP_TEST_DATA")
    with pytest.raises(BratsInputError, match="environment variable SWEEP_TEST_DATA is not set"):
        sw.load_sweep(notebook, grid)
