"""Trained run directories for the app: which exist, and what each was trained on, in plain words.

A run directory (``brats train``) holds ``config.json`` and ``best.pt``/``last.pt``. The app only reads them:
nothing here writes into a run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..paths import resolve_path

CHECKPOINTS = ("best.pt", "last.pt")


@dataclass(frozen=True)
class RunInfo:
    """What a run was trained on and how, read from its ``config.json`` (and ``metrics.json``).

    Attributes:
        path: the run directory.
        name: its path relative to the runs root (e.g. ``unet3d``).
        model: network name (``unet3d`` …).
        data_dir: the training data folder as configured.
        synthetic: True when that folder is the project's synthetic dataset (its ``dataset.json`` says so, or
            the folder is gone but its path names it), False for other data, None when unknown.
        downsample: preprocessing factor (2 = trained at half resolution, 2 mm voxels for a 1 mm scan).
        patch_size: training patch edge (voxels of the preprocessed grid).
        epochs_planned, iterations_per_epoch: from the config.
        epochs_done: rows of ``metrics.json`` (``None`` if absent).
        output_mode: ``softmax`` or ``regions``.
    """

    path: Path
    name: str
    model: str
    data_dir: str
    synthetic: bool | None
    downsample: float
    patch_size: int | list
    epochs_planned: int
    iterations_per_epoch: int
    epochs_done: int | None
    output_mode: str

    @property
    def iterations(self) -> int:
        """Training iterations done (or planned, when the history is missing)."""
        epochs = self.epochs_done if self.epochs_done is not None else self.epochs_planned
        return int(epochs) * int(self.iterations_per_epoch)

    @property
    def data_kind(self) -> str:
        return {True: "synthetic data", False: "real data", None: "data of unknown kind"}[self.synthetic]

    def summary(self) -> str:
        """One sentence: data, resolution, iterations."""
        patch = self.patch_size if isinstance(self.patch_size, int) else "×".join(map(str, self.patch_size))
        resolution = ("full resolution (1 mm voxels for a 1 mm scan)" if float(self.downsample) == 1 else
                      f"1/{self.downsample:g} resolution ({self.downsample:g} mm voxels for a 1 mm scan)")
        epochs = (f"{self.epochs_done} of {self.epochs_planned} epochs" if self.epochs_done is not None
                  else f"{self.epochs_planned} epochs")
        return (f"{self.name}: {self.model} trained on {self.data_kind} ({self.data_dir}) at {resolution}, "
                f"{patch}³ patches, {self.iterations} iterations ({epochs} × {self.iterations_per_epoch})")


def is_run_dir(path: Path) -> bool:
    return (path / "config.json").is_file() and any((path / c).is_file() for c in CHECKPOINTS)


def find_runs(runs_root: str | Path, max_depth: int = 3) -> list[Path]:
    """Run directories under ``runs_root`` (itself included, at most ``max_depth`` levels down), sorted."""
    root = resolve_path(runs_root)
    if not root.is_dir():
        return []
    found = [root] if is_run_dir(root) else []
    level = [root]
    for _ in range(max_depth):
        level = [c for folder in level for c in sorted(folder.iterdir())
                 if c.is_dir() and not c.name.startswith(".")]
        found += [c for c in level if is_run_dir(c)]
    return sorted(set(found))


def _is_synthetic(data_dir: str) -> bool | None:
    folder = resolve_path(data_dir)
    manifest = folder / "dataset.json"
    if manifest.is_file():
        try:
            return json.loads(manifest.read_text(encoding="utf-8")).get("generator") == "brats_lib.synthetic"
        except (OSError, ValueError, AttributeError):
            return None
    if folder.is_dir():
        return False
    return True if "synthetic" in str(data_dir).lower() else None


def describe_run(run_dir: str | Path, runs_root: str | Path | None = None) -> RunInfo:
    """Read a run's ``config.json`` (and ``metrics.json`` for the epochs actually done).

    Raises:
        FileNotFoundError: not a run directory.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir}: not a run directory (no config.json)")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    done = None
    history = run_dir / "metrics.json"
    if history.is_file():
        try:
            done = len(json.loads(history.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            done = None
    try:
        name = str(run_dir.resolve().relative_to(resolve_path(runs_root).resolve())) if runs_root else run_dir.name
    except ValueError:
        name = run_dir.name
    if name == ".":
        name = run_dir.name
    data_dir = str(config.get("data_dir", "?"))
    return RunInfo(
        path=run_dir, name=name, model=str(config.get("model", {}).get("name", "?")), data_dir=data_dir,
        synthetic=_is_synthetic(data_dir), downsample=float(config.get("preprocess", {}).get("downsample", 1)),
        patch_size=config.get("patch_size", "?"), epochs_planned=int(config.get("epochs", 0)),
        iterations_per_epoch=int(config.get("iterations_per_epoch", 0)), epochs_done=done,
        output_mode=str(config.get("output_mode", "softmax")),
    )
