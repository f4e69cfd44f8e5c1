"""Parameter sweeps: one notebook executed by papermill once per parameter set, each into its own folder.

A grid file (YAML) is either a **list** of parameter mappings, each one run (an optional ``name`` names it)::

    - {name: student, model_name: student_encdec, loss: ce}
    - {name: project, model_name: resunet3d}

or a **mapping** with a ``grid`` expanded as a product, optionally ``runs`` (a list as above, crossed with the
grid), ``fixed`` (parameters of every run) and ``evaluate`` (score every finished run on a split with the
official lesion-wise metric)::

    fixed: {epochs: 8, iterations_per_epoch: 30, seed: 0}
    grid:
      features_per_stage: [[32, 64, 128, 256], [32, 64, 128, 256, 320]]
      model_options.kernel_size: [3, 5]        # "a.b": key b of the dict parameter a
    evaluate: {split: test, tta: false}

Every parameter must be defined by the notebook's ``parameters`` cell (papermill would inject an unknown one
silently); ``run_dir`` is set by the sweep to ``<out>/<name>``. Run names not given are made of the values
that vary (``features_per_stage=32-64-128-256__model_options.kernel_size=5``).

The output folder::

    <out>/sweep.json               the sweep's identity (notebook, runs, evaluation): a folder holds one sweep
    <out>/sweep.csv                one row per run: status, parameters, best validation Dice per region,
                                   seconds, model parameters and forward GFLOPs, gradient norms, test scores
    <out>/<name>/<notebook>.ipynb  the executed notebook, beside the run directory's files:
    <out>/<name>/config.json, metrics.csv, last.pt, best.pt        (written by the notebook's training run)
    <out>/<name>/<split>_scores.csv                                 (with ``evaluate``: one row per case, region)
    <out>/<name>/sweep_run.json    written when the run finished (or failed): its parameters and seconds

A run with a ``finished`` marker is skipped; any other is executed again, and the training inside resumes from
its ``last.pt``. Runs execute ``jobs`` at a time (threads, each driving its own kernel process).
:func:`commands` gives one shell command per run instead, for a cluster scheduler (a SLURM job array).
"""

from __future__ import annotations

import ast
import itertools
import json
import math
import os
import re
import shlex
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ._atomic import write_text_atomic
from .io import BratsInputError
from .labels import REGION_ORDER

SWEEP_FILE = "sweep.json"
SUMMARY_FILE = "sweep.csv"
MARKER_FILE = "sweep_run.json"
#: Parameters the sweep sets itself.
RESERVED = ("run_dir",)
#: Keys of a grid file's mapping form.
GRID_KEYS = ("fixed", "grid", "runs", "evaluate")
#: Keys of ``evaluate`` and their defaults.
EVALUATE_DEFAULTS: Mapping[str, Any] = {"split": "test", "tta": False, "tta_axes": [0, 1, 2], "device": "auto",
                                        "checkpoint": "best.pt", "workers": 1}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")
_SELECTION = ("WT", "TC", "ET")  # as brats_lib.train.SELECTION_REGIONS


@dataclass(frozen=True)
class Run:
    """One parameter set of a sweep: its folder name and the parameters as written (``a.b`` keys kept)."""

    name: str
    parameters: dict[str, Any]


@dataclass
class Sweep:
    """A notebook, its runs and the optional evaluation of each finished run."""

    notebook: Path
    runs: list[Run]
    evaluate: dict[str, Any] | None = None
    grid_file: Path | None = None
    notebook_defaults: dict[str, str] = field(default_factory=dict, repr=False)

    def identity(self) -> dict[str, Any]:
        """What makes two sweeps the same (stored in ``sweep.json``)."""
        return {"notebook": self.notebook.name, "evaluate": self.evaluate,
                "runs": [{"name": r.name, "parameters": r.parameters} for r in self.runs]}

    def run(self, name: str) -> Run:
        for run in self.runs:
            if run.name == name:
                return run
        raise BratsInputError(f"{self.grid_file}: no run named {name!r} (runs: {', '.join(r.name for r in self.runs)})")


# ------------------------------------------------------------------------------------------------ grid files


def notebook_parameters(notebook: str | Path) -> dict[str, str]:
    """``{name: default as source text}`` of the notebook's ``parameters`` cell.

    Raises:
        BratsInputError: the notebook is missing, unreadable or has no ``parameters`` cell.
    """
    import papermill

    notebook = Path(notebook)
    if not notebook.is_file():
        raise BratsInputError(f"{notebook}: notebook does not exist")
    try:
        found = papermill.inspect_notebook(str(notebook))
    except Exception as exc:  # nbformat's read errors have many types
        raise BratsInputError(f"{notebook}: not a readable notebook ({type(exc).__name__}: {exc})") from exc
    if not found:
        raise BratsInputError(f"{notebook}: no cell tagged 'parameters' (papermill needs one to inject parameters)")
    return {name: info["default"] for name, info in found.items()}


def _jsonable(value: Any, where: str) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise BratsInputError(f"{where}: value {value!r} is not plain YAML data ({exc})") from exc


def _format_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "-".join(_format_value(v) for v in value)
    if isinstance(value, dict):
        return "-".join(f"{k}-{_format_value(v)}" for k, v in value.items())
    if isinstance(value, float):
        return repr(value)
    return str(value)


def run_name(parameters: Mapping[str, Any], keys: Sequence[str]) -> str:
    """A folder name from the values of ``keys``: ``key=value`` joined by ``__``, unsafe characters as ``_``.

    Names longer than 120 characters are cut and end in a hash of the whole, so they stay unique.
    """
    if not keys:
        return "defaults"
    name = "__".join(f"{k}={_format_value(parameters[k])}" for k in keys)
    name = re.sub(r"[^A-Za-z0-9._+=-]", "_", name)
    if len(name) > 120:
        import hashlib

        name = name[:111] + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return name


def _check_mapping(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise BratsInputError(f"{where}: expected a mapping of parameter: value, got {type(value).__name__}")
    bad = [k for k in value if not isinstance(k, str) or not k]
    if bad:
        raise BratsInputError(f"{where}: parameter names must be non-empty strings, got {bad[0]!r}")
    return value


def parse_grid(data: Any, source: str = "grid") -> tuple[list[Run], dict[str, Any] | None]:
    """Runs (and the evaluation settings) of a parsed grid file; see the module docstring for the forms.

    Raises:
        BratsInputError: a malformed grid (named: which key or item, and what is wrong).
    """
    if isinstance(data, list):
        data = {"runs": data}
    elif not isinstance(data, dict):
        raise BratsInputError(f"{source}: expected a list of parameter mappings or a mapping with 'grid' "
                              f"(and optionally {', '.join(k for k in GRID_KEYS if k != 'grid')}), "
                              f"got {type(data).__name__}")
    unknown = [k for k in data if k not in GRID_KEYS]
    if unknown:
        raise BratsInputError(f"{source}: unknown key {unknown[0]!r} (a mapping holds {', '.join(GRID_KEYS)}; "
                              "parameters go under 'fixed', 'grid' or 'runs')")
    if "grid" not in data and "runs" not in data:
        raise BratsInputError(f"{source}: neither 'grid' nor 'runs': nothing to run")
    fixed = _check_mapping(data.get("fixed") or {}, f"{source}: fixed")
    grid = _check_mapping(data.get("grid") or {}, f"{source}: grid")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise BratsInputError(f"{source}: grid.{key}: expected a non-empty list of values, got {values!r}")
    items = data.get("runs", [{}])
    if not isinstance(items, list) or not items:
        raise BratsInputError(f"{source}: runs: expected a non-empty list of parameter mappings")
    listed = []
    for i, item in enumerate(items, 1):
        item = dict(_check_mapping(item if item is not None else {}, f"{source}: run {i}"))
        name = item.pop("name", None)
        if name is not None and (not isinstance(name, str) or not _NAME.match(name)):
            raise BratsInputError(f"{source}: run {i}: name {name!r} must be letters, digits, '.', '_', '+', '=' "
                                  "or '-' (it names a folder)")
        listed.append((name, item))
    runs = []
    grid_keys = list(grid)
    for name, item in listed:
        overlap = sorted(set(item) & set(grid_keys))
        if overlap:
            raise BratsInputError(f"{source}: {overlap[0]!r} is both in 'grid' and in a run of 'runs'")
        for values in itertools.product(*(grid[k] for k in grid_keys)):
            combo = dict(zip(grid_keys, values))
            parameters = _jsonable({**fixed, **item, **combo}, source)
            if name is None:
                label = run_name(parameters, list(item) + grid_keys)
            else:
                label = name if not grid_keys else f"{name}__{run_name(parameters, grid_keys)}"
            runs.append(Run(label, parameters))
    names = [r.name for r in runs]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise BratsInputError(f"{source}: two runs are named {duplicate!r} (names must be unique)")
    evaluate = data.get("evaluate")
    if evaluate is not None:
        evaluate = _check_mapping(evaluate, f"{source}: evaluate")
        unknown = [k for k in evaluate if k not in EVALUATE_DEFAULTS]
        if unknown:
            raise BratsInputError(f"{source}: evaluate: unknown key {unknown[0]!r} "
                                  f"(known: {', '.join(EVALUATE_DEFAULTS)})")
        evaluate = _jsonable({**EVALUATE_DEFAULTS, **evaluate}, source)
        if evaluate["split"] not in ("train", "val", "test"):
            raise BratsInputError(f"{source}: evaluate.split must be train, val or test, got {evaluate['split']!r}")
    return runs, evaluate


def check_parameters(runs: Sequence[Run], defaults: Mapping[str, str], notebook: Path, source: str) -> None:
    """Every parameter (the part before a ``.``) must be in the notebook's parameters cell, and not reserved;
    an ``a.b`` key needs ``a`` to default to a dict.

    Raises:
        BratsInputError: the first offending name, with the notebook's parameters listed.
    """
    for run in runs:
        for key in run.parameters:
            base, dot, _ = key.partition(".")
            if base in RESERVED:
                raise BratsInputError(f"{source}: run {run.name}: {base!r} is set by the sweep (<out>/<name>); "
                                      "remove it from the grid")
            if base not in defaults:
                raise BratsInputError(f"{source}: run {run.name}: unknown parameter {base!r}: {notebook.name} "
                                      f"defines {', '.join(defaults)}")
            if dot and not isinstance(_literal(defaults[base]), dict):
                raise BratsInputError(f"{source}: run {run.name}: {key!r} sets a key of {base!r}, whose default "
                                      f"in {notebook.name} is not a dict ({defaults[base]})")


def _expand(value: Any, where: str) -> Any:
    """``$VAR`` / ``${VAR}`` in strings replaced from the environment (as the notebook profiles do)."""
    if isinstance(value, str):
        expanded = os.path.expandvars(value)
        unset = re.findall(r"\$\{?(\w+)", expanded)
        if unset:
            raise BratsInputError(f"{where}: environment variable {unset[0]} is not set (used in {value!r})")
        return expanded
    if isinstance(value, list):
        return [_expand(v, where) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, where) for k, v in value.items()}
    return value


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None


def load_sweep(notebook: str | Path, grid_file: str | Path) -> Sweep:
    """Read and check a grid file against a notebook's parameters cell.

    Raises:
        BratsInputError: a missing or malformed grid file, a notebook without parameters cell, an unknown
            or reserved parameter name.
    """
    import yaml

    grid_file, notebook = Path(grid_file), Path(notebook)
    try:
        data = yaml.safe_load(grid_file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BratsInputError(f"{grid_file}: grid file does not exist") from exc
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise BratsInputError(f"{grid_file}: not valid YAML{line} ({getattr(exc, 'problem', exc)})") from exc
    runs, evaluate = parse_grid(_expand(data, str(grid_file)), str(grid_file))
    defaults = notebook_parameters(notebook)
    check_parameters(runs, defaults, notebook, str(grid_file))
    return Sweep(notebook, runs, evaluate, grid_file, defaults)


def restrict(sweep: Sweep, only: Sequence[str] | None = None, overrides: Mapping[str, Any] | None = None,
             evaluate: bool = True) -> Sweep:
    """A sweep of some of the runs (``only``, by name, in the sweep's order), with ``overrides`` layered over
    every run's parameters (a quick profile shrinks training this way), without the grid's evaluation when
    ``evaluate`` is False. Names are kept; the identity changes, so the result belongs in its own output folder.

    Raises:
        BratsInputError: an unknown run name or parameter.
    """
    names = [sweep.run(name).name for name in only] if only else [r.name for r in sweep.runs]
    overrides = _jsonable(dict(overrides or {}), "overrides")
    runs = [Run(r.name, {**r.parameters, **overrides}) for r in sweep.runs if r.name in names]
    check_parameters(runs, sweep.notebook_defaults, sweep.notebook, "overrides")
    return Sweep(sweep.notebook, runs, sweep.evaluate if evaluate else None, sweep.grid_file, sweep.notebook_defaults)


def papermill_parameters(sweep: Sweep, run: Run, out: Path) -> dict[str, Any]:
    """The parameters papermill injects for ``run``: ``a.b`` keys merged into the notebook's default dict
    ``a`` (or the run's own ``a``), and ``run_dir`` = ``<out>/<name>`` (absolute)."""
    plain = {k: v for k, v in run.parameters.items() if "." not in k}
    for key, value in run.parameters.items():
        if "." in key:
            base, _, sub = key.partition(".")
            if base not in plain:
                plain[base] = dict(_literal(sweep.notebook_defaults.get(base, "{}")) or {})
            plain[base][sub] = value
    plain["run_dir"] = str((out / run.name).resolve())
    return plain


# ------------------------------------------------------------------------------------------------ the folder


def _describe_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    if old.get("notebook") != new["notebook"]:
        return f"notebook {old.get('notebook')} there, {new['notebook']} now"
    old_runs = {r["name"]: r["parameters"] for r in old.get("runs", [])}
    new_runs = {r["name"]: r["parameters"] for r in new["runs"]}
    if set(old_runs) != set(new_runs):
        gone, added = sorted(set(old_runs) - set(new_runs)), sorted(set(new_runs) - set(old_runs))
        return "runs " + "; ".join(part for part in (f"not in this grid: {', '.join(gone[:3])}" if gone else "",
                                                      f"new: {', '.join(added[:3])}" if added else "") if part)
    for name, parameters in new_runs.items():
        if old_runs[name] != parameters:
            return f"run {name} has other parameters"
    return "evaluation settings differ"


def prepare_folder(sweep: Sweep, out: str | Path, write: bool = True) -> Path:
    """Check that ``out`` is new, empty or holds this very sweep; write ``sweep.json`` (with ``write``).

    Raises:
        BratsInputError: ``out`` is a file, a folder of something else, or of a different sweep.
    """
    out = Path(out)
    identity = json.loads(json.dumps(sweep.identity()))
    marker = out / SWEEP_FILE
    if out.exists() and not out.is_dir():
        raise BratsInputError(f"{out}: exists and is not a folder")
    if marker.is_file():
        try:
            old = json.loads(marker.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise BratsInputError(f"{marker}: not valid JSON ({exc})") from exc
        if old != identity:
            raise BratsInputError(f"{out}: holds a sweep of a different grid ({_describe_difference(old, identity)}); "
                                  "choose another --out or delete that folder")
    elif out.is_dir() and any(out.iterdir()):
        raise BratsInputError(f"{out}: folder exists and holds no {SWEEP_FILE} (not a sweep folder); "
                              "choose another --out")
    if write:
        out.mkdir(parents=True, exist_ok=True)
        if not marker.is_file():
            write_text_atomic(marker, json.dumps(identity, indent=1))
    return out


def run_state(out: str | Path, name: str) -> str:
    """``finished``, ``failed``, ``unfinished`` (folder without a marker: interrupted or running) or ``pending``."""
    folder = Path(out) / name
    marker = folder / MARKER_FILE
    if marker.is_file():
        try:
            return json.loads(marker.read_text(encoding="utf-8")).get("status", "unfinished")
        except json.JSONDecodeError:
            return "unfinished"
    return "unfinished" if folder.is_dir() else "pending"


# ------------------------------------------------------------------------------------------------ execution


def execute_run(sweep: Sweep, run: Run, out: str | Path, timeout: int | None = None) -> dict[str, Any]:
    """Execute the notebook for ``run`` into ``<out>/<name>/``; evaluate it if the sweep asks; write its marker.

    Returns:
        the marker: ``{"name", "status": "finished" | "failed", "notebook_seconds", "error"?}``.
    """
    import papermill

    from .paths import project_root
    from .progress import children_to_terminal

    out = Path(out)
    folder = out / run.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER_FILE).unlink(missing_ok=True)
    target = folder / sweep.notebook.name
    tmp = folder / f".{sweep.notebook.stem}.tmp.ipynb"
    marker: dict[str, Any] = {"name": run.name, "parameters": run.parameters}
    start = time.perf_counter()
    try:
        with children_to_terminal():  # the run's kernel logs to the terminal, not into a calling notebook
            papermill.execute_notebook(
                str(sweep.notebook), str(tmp), parameters=papermill_parameters(sweep, run, out),
                kernel_name="python3", cwd=str(project_root()), progress_bar=False, log_output=False,
                execution_timeout=timeout)
        marker["notebook_seconds"] = time.perf_counter() - start
        if sweep.evaluate:
            t0 = time.perf_counter()
            evaluate_run(folder, **sweep.evaluate)
            marker["evaluate_seconds"] = time.perf_counter() - t0
        marker["status"] = "finished"
    except Exception as exc:  # a failing run must not stop the others; its notebook shows the cell
        marker.update(status="failed", notebook_seconds=time.perf_counter() - start,
                      error=f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}")
    finally:
        if tmp.exists():
            os.replace(tmp, target)
    write_text_atomic(folder / MARKER_FILE, json.dumps(marker, indent=1))
    return marker


def evaluate_run(run_dir: str | Path, split: str = "test", tta: bool = False, tta_axes: Sequence[int] = (0, 1, 2),
                 device: str = "auto", checkpoint: str = "best.pt", workers: int = 1) -> pd.DataFrame:
    """Predict the ``split`` cases of a run's own split file and score them with the official lesion-wise
    metric (:func:`brats_lib.analysis.predict_cases`, :func:`brats_lib.analysis.evaluate_cases`); the table is
    written to ``<run_dir>/<split>_scores.csv`` and returned (one row per case and region)."""
    from .analysis import evaluate_cases, predict_cases
    from .data import load_splits
    from .train import TrainConfig

    run_dir = Path(run_dir)
    config = TrainConfig.load(run_dir / "config.json")
    splits = load_splits(Path(config.splits_file or Path(config.cache_dir) / "splits.json"))
    case_ids = splits.get(split) or []
    if not case_ids:
        raise ValueError(f"{run_dir}: the split file has no {split} case to evaluate")
    pred_dir = run_dir / "predictions" / split
    predict_cases(run_dir, config.data_dir, case_ids, pred_dir, device=device, tta=tta, tta_axes=tta_axes,
                  checkpoint=checkpoint)
    table = evaluate_cases(pred_dir, config.data_dir, case_ids, workers=workers)
    write_text_atomic(run_dir / f"{split}_scores.csv", table.to_csv(index=False))
    return table


def _thread_env(jobs: int) -> dict[str, str | None]:
    """With several jobs, split the cores between the kernels (unless the caller set thread counts)."""
    saved: dict[str, str | None] = {}
    if jobs > 1:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            if var not in os.environ:
                saved[var] = None
                os.environ[var] = str(max(1, cores // jobs))
    return saved


def run_sweep(sweep: Sweep, out: str | Path, jobs: int = 1, only: Sequence[str] | None = None,
              timeout: int | None = None, log: Callable[[str], None] | None = print) -> pd.DataFrame:
    """Execute every run not yet finished (or those named in ``only``), ``jobs`` at a time; write and return
    ``sweep.csv`` (every run of the sweep, finished or not)."""
    if jobs < 1:
        raise BratsInputError(f"--jobs must be ≥ 1, got {jobs}")
    out = prepare_folder(sweep, out)
    selected = [sweep.run(name) for name in only] if only else list(sweep.runs)
    todo = []
    for run in selected:
        state = run_state(out, run.name)
        if state == "finished":
            log and log(f"{run.name}: finished earlier, skipped")
        else:
            todo.append(run)
            log and log(f"{run.name}: " + ("to resume (an earlier attempt left its folder)"
                                           if state in ("unfinished", "failed") else "to run"))
    lock = threading.Lock()
    done = [0]

    def one(run: Run) -> dict[str, Any]:
        if run_state(out, run.name) == "finished":  # finished meanwhile by another process (a job array)
            log and log(f"{run.name}: finished by another process meanwhile, skipped")
            return {"name": run.name, "status": "finished"}
        marker = execute_run(sweep, run, out, timeout)
        with lock:
            done[0] += 1
            if log:
                detail = (f"in {marker['notebook_seconds']:.0f} s" if marker["status"] == "finished"
                          else f"after {marker['notebook_seconds']:.0f} s: {marker.get('error', '')} "
                               f"(see {out / run.name / sweep.notebook.name})")
                log(f"[{done[0]}/{len(todo)}] {run.name}: {marker['status']} {detail}")
        return marker

    saved = _thread_env(jobs)
    try:
        if jobs == 1 or len(todo) <= 1:
            for run in todo:
                one(run)
        else:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                list(pool.map(one, todo))
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
    table = summarise(sweep, out)
    write_text_atomic(out / SUMMARY_FILE, table.to_csv(index=False))
    return table


def commands(sweep: Sweep, out: str | Path, program: Sequence[str] = ("brats",)) -> list[str]:
    """One shell command per run (``brats sweep … --only NAME``), for a scheduler: line *i* is array task *i*."""
    base = [*program, "sweep", "--notebook", str(Path(sweep.notebook).resolve()),
            "--grid", str(Path(sweep.grid_file).resolve()), "--out", str(Path(out).resolve())]
    return [shlex.join([*base, "--only", run.name]) for run in sweep.runs]


# ------------------------------------------------------------------------------------------------ summaries


def _flat(parameters: Mapping[str, Any]) -> dict[str, Any]:
    return {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in parameters.items()}


def run_summary(run_dir: str | Path) -> dict[str, Any]:
    """Figures of one run folder: best validation Dice per region, epochs and seconds (``metrics.csv``), model
    parameters and forward GFLOPs at its patch size (``config.json``), mean gradient norm of the first and last
    encoder stage, and the mean lesion-wise Dice and HD95 per region of any ``<split>_scores.csv``."""
    from .models import build_model, describe
    from .train import TrainConfig

    run_dir = Path(run_dir)
    row: dict[str, Any] = {}
    metrics = run_dir / "metrics.csv"
    if metrics.is_file():
        history = pd.read_csv(metrics)
        for region in REGION_ORDER:
            column = f"val_dice_{region}"
            row[f"best_val_dice_{region}"] = history[column].max() if column in history else math.nan
        selection = history[[f"val_dice_{r}" for r in _SELECTION if f"val_dice_{r}" in history]].mean(axis=1)
        row["best_val_dice_mean_WT_TC_ET"] = selection.max()
        row["best_epoch"] = int(history["epoch"][selection.idxmax()]) if selection.notna().any() else math.nan
        row["epochs"] = int(history["epoch"].max())
        row["train_seconds"] = float(history["seconds"].sum())
        stages = sorted((c for c in history if c.startswith("grad_norm_stage")),
                        key=lambda c: int(c.removeprefix("grad_norm_stage")))
        if stages:
            row["grad_norm_first_stage"] = float(history[stages[0]].mean())
            row["grad_norm_last_stage"] = float(history[stages[-1]].mean())
    config_file = run_dir / "config.json"
    if config_file.is_file():
        config = TrainConfig.load(config_file)
        size = describe(build_model(config.model_config()), (config.patch_size,) * 3)
        row["parameters_M"] = size["parameters_M"]
        row["forward_GFLOPs"] = size["forward_GFLOPs"]
        row["patch_size"] = config.patch_size
    for scores in sorted(run_dir.glob("*_scores.csv")):
        split = scores.name.removesuffix("_scores.csv")
        table = pd.read_csv(scores)
        means = table.groupby("region")[["LesionWise_Score_Dice", "LesionWise_Score_HD95"]].mean()
        row[f"{split}_cases"] = table["case"].nunique()
        for region in REGION_ORDER:
            if region in means.index:
                row[f"{split}_dice_{region}"] = means.loc[region, "LesionWise_Score_Dice"]
                row[f"{split}_hd95_{region}"] = means.loc[region, "LesionWise_Score_HD95"]
    return row


def summarise(sweep: Sweep, out: str | Path) -> pd.DataFrame:
    """One row per run of ``sweep`` (in grid order): ``name``, ``status``, its parameters, :func:`run_summary`
    and the notebook's seconds."""
    out = Path(out)
    rows = []
    for run in sweep.runs:
        folder = out / run.name
        row: dict[str, Any] = {"name": run.name, "status": run_state(out, run.name), **_flat(run.parameters)}
        marker = folder / MARKER_FILE
        if marker.is_file():
            try:
                row["notebook_seconds"] = json.loads(marker.read_text(encoding="utf-8")).get("notebook_seconds")
            except json.JSONDecodeError:
                pass
        if folder.is_dir():
            row.update(run_summary(folder))
        row["run_dir"] = str(folder.resolve())
        rows.append(row)
    return pd.DataFrame(rows)


def read_sweep(out: str | Path) -> pd.DataFrame:
    """``<out>/sweep.csv`` as a DataFrame.

    Raises:
        FileNotFoundError: no sweep.csv (has the sweep run?).
    """
    path = Path(out) / SUMMARY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no sweep summary (run `brats sweep … --out {out}` first)")
    return pd.read_csv(path)


def ablation_table(table: pd.DataFrame, score: str = "test_dice", regions: Sequence[str] = ("WT", "TC", "ET"),
                   label: str = "name") -> pd.DataFrame:
    """An ablation read row by row: each arm's ``<score>_<region>`` and their mean, with the change from the
    arm before (``Δ previous``) and from the first arm (``Δ first``), parameters in millions and GFLOPs.

    ``score`` is ``test_dice`` (lesion-wise, when the sweep evaluated the test split) or ``best_val_dice``
    (patches); missing regions are skipped. Rows keep the sweep's order, which for an ablation is the path
    from the first configuration to the last, one change at a time.
    """
    columns = [f"{score}_{r}" for r in regions if f"{score}_{r}" in table]
    if not columns:
        raise KeyError(f"no {score}_<region> column in the sweep table (columns: {', '.join(table.columns)})")
    out = table.set_index(label)[columns].astype(float).rename(columns=lambda c: c.removeprefix(f"{score}_"))
    out["mean"] = out.mean(axis=1)
    out["Δ previous"] = out["mean"].diff()
    out["Δ first"] = out["mean"] - out["mean"].iloc[0]
    for extra in ("parameters_M", "forward_GFLOPs", "train_seconds"):
        if extra in table:
            out[extra] = table.set_index(label)[extra].to_numpy()
    return out


def stage_gradients(table: pd.DataFrame, names: Sequence[str] | None = None) -> pd.DataFrame:
    """Gradient norms per encoder stage of the runs of a sweep table (``run_dir`` column), tidy: one row per
    run, epoch and stage (``name``, ``epoch``, ``stage``, ``grad_norm``)."""
    rows = []
    for _, run in table.iterrows():
        if names is not None and run["name"] not in names:
            continue
        metrics = Path(run["run_dir"]) / "metrics.csv"
        if not metrics.is_file():
            continue
        history = pd.read_csv(metrics)
        for column in (c for c in history if c.startswith("grad_norm_stage")):
            stage = int(column.removeprefix("grad_norm_stage"))
            rows.extend({"name": run["name"], "epoch": int(e), "stage": stage, "grad_norm": float(v)}
                        for e, v in zip(history["epoch"], history[column]) if np.isfinite(v))
    return pd.DataFrame(rows, columns=["name", "epoch", "stage", "grad_norm"])


__all__ = [
    "Run", "Sweep", "ablation_table", "check_parameters", "commands", "evaluate_run", "execute_run", "load_sweep",
    "notebook_parameters", "papermill_parameters", "parse_grid", "prepare_folder", "read_sweep", "restrict", "run_name",
    "run_state", "run_summary", "run_sweep", "stage_gradients", "summarise",
]
