"""Whole-case prediction: raw case → in-memory preprocessing → ensemble + TTA sliding window → labels →
original grid → small-component post-processing → ``<case-id>.nii.gz`` (the challenge's naming).

A run directory (``brats train``) describes itself: ``config.json`` gives the model, output mode, patch size
and preprocessing; ``best.pt``/``last.pt`` the weights; an optional ``postprocess.json`` the tuned
component thresholds. Several run directories form an ensemble whose probabilities are averaged; they
must share the output mode and the preprocessing grid.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from ..errors import BratsConfigError
from ..io import LoadedCase, discover_cases, load_case, save_label_map
from ..models import decode_probabilities
from ..preprocess import PreprocessConfig, invert_label, preprocess_case
from .postprocess import (RULES_KEY, THRESHOLDS_KEY, apply_rules, check_rules, check_thresholds,
                          load_postprocess_rules, load_postprocessing, remove_small_components)
from .sliding_window import as_triple, resolve_device, window_slices
from .tta import ALL_AXES, flip_combinations, predict_probabilities

#: PreprocessConfig fields that define the grid and intensities a network sees (the others only
#: concern the on-disk cache).
GRID_FIELDS: tuple[str, ...] = ("clip_percentiles", "margin", "downsample")

PathLike = str | Path


@dataclass
class Ensemble:
    """Networks that predict together, and how to feed them.

    Attributes:
        models: networks in eval mode (one or more), each mapping (B, 4, px, py, pz) → logits.
        output_mode: ``"softmax"`` (5 channels) or ``"regions"`` (4 sigmoid channels WT, TC, ET, RC).
        patch_size: sliding-window size (voxels, on the preprocessed grid).
        preprocess: the preprocessing the networks were trained with.
        postprocess: region → minimum component voxels, or ``None`` for none.
        postprocess_rules: the component rules applied after them (:func:`.postprocess.apply_rules`), or
            ``None`` for none.
        sources: where each model came from (run directories), for messages.
    """

    models: list[nn.Module]
    output_mode: str = "softmax"
    patch_size: int | Sequence[int] = 128
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    postprocess: dict[str, int] | None = None
    postprocess_rules: dict[str, Any] | None = None
    sources: list[str] = field(default_factory=list)

    def to(self, device: torch.device | str) -> "Ensemble":
        """Move every model to ``device`` (in place) and return ``self``."""
        for model in self.models:
            model.to(device)
        return self


def _grid_settings(config: PreprocessConfig) -> dict[str, Any]:
    return {name: getattr(config, name) for name in GRID_FIELDS}


def load_ensemble(run_dirs: PathLike | Sequence[PathLike], checkpoint: str = "best.pt",
                  device: torch.device | str = "auto") -> Ensemble:
    """Load the networks of one or more run directories.

    The patch size is the first run's; the post-processing is the first ``postprocess.json`` found in
    run order.

    Raises:
        BratsConfigError: no run given, a folder that is not a run directory or has no readable checkpoint,
            or runs disagreeing on output mode or preprocessing grid.
    """
    from ..train import load_run_model

    dirs = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
    if not dirs:
        raise BratsConfigError("no run directory given")
    device = resolve_device(device)
    models, configs = [], []
    for run_dir in dirs:
        if not (Path(run_dir) / "config.json").is_file() and not list(Path(run_dir).glob("*.pt")):
            raise BratsConfigError(f"{run_dir}: not a run directory (no config.json or checkpoint)")
        model, config = load_run_model(run_dir, checkpoint, device)
        models.append(model)
        configs.append(config)
    first = configs[0]
    preprocess = PreprocessConfig(**first.preprocess)
    for run_dir, config in zip(dirs[1:], configs[1:]):
        if config.output_mode != first.output_mode:
            raise BratsConfigError(f"{run_dir}: output mode {config.output_mode!r} differs from {dirs[0]}'s "
                             f"{first.output_mode!r}; an ensemble averages probabilities of one mode")
        other = PreprocessConfig(**config.preprocess)
        if _grid_settings(other) != _grid_settings(preprocess):
            raise BratsConfigError(f"{run_dir}: preprocessing {_grid_settings(other)} differs from {dirs[0]}'s "
                             f"{_grid_settings(preprocess)}")
    source = next((d for d in dirs if load_postprocessing(d) is not None), None)
    postprocess = None if source is None else load_postprocessing(source)
    rules = None if source is None else load_postprocess_rules(source)
    return Ensemble(models, first.output_mode, first.patch_size, preprocess, postprocess, rules,
                    [str(d) for d in dirs])


def as_ensemble(source: Ensemble | nn.Module | PathLike | Sequence[nn.Module | PathLike],
                checkpoint: str = "best.pt", device: torch.device | str = "auto", **overrides) -> Ensemble:
    """An :class:`Ensemble` from an ensemble, run director(y/ies) or network(s).

    ``overrides`` (``output_mode``, ``patch_size``, ``preprocess``, ``postprocess``) replace the loaded
    settings; bare networks take the :class:`Ensemble` defaults for those not given.
    """
    if isinstance(source, Ensemble):
        ensemble = source
    elif isinstance(source, (str, Path)) or (isinstance(source, (list, tuple)) and source
                                             and all(isinstance(s, (str, Path)) for s in source)):
        ensemble = load_ensemble(source, checkpoint, device)
    else:
        models = [source] if isinstance(source, nn.Module) else list(source)
        ensemble = Ensemble(models)
    if overrides:
        ensemble = dataclasses.replace(ensemble, **overrides)
    return ensemble


#: ``progress(stage, fraction)``: called with ``"preprocess"``, ``"sliding window"`` (fraction 0..1 of the
#: network passes done) and ``"post-process"``; an exception raised by it aborts the prediction (a cancel).
ProgressCallback = Callable[[str, float], None]


class _Reporting(nn.Module):
    """A network that reports each forward pass to a shared counter (progress and cancel during inference)."""

    def __init__(self, model: nn.Module, tick: Callable[[], None]):
        super().__init__()
        self.model = model
        self._tick = tick

    def forward(self, x):
        self._tick()
        return self.model(x)


def _reporting_models(ensemble: Ensemble, shape: Sequence[int], overlap: float, batch_size: int, n_copies: int,
                      progress: ProgressCallback) -> list[nn.Module]:
    """The ensemble's networks wrapped to call ``progress("sliding window", done / total)`` before each pass."""
    patch = as_triple(ensemble.patch_size)
    padded = tuple(max(int(s), p) for s, p in zip(shape, patch))
    n_windows = len(window_slices(padded, patch, overlap))
    total = -(-n_windows // batch_size) * n_copies * len(ensemble.models)
    done = [0]

    def tick() -> None:
        progress("sliding window", min(done[0] / total, 1.0))
        done[0] += 1

    return [_Reporting(model, tick) for model in ensemble.models]


def _postprocess_settings(ensemble: Ensemble, postprocess: bool | Mapping[str, Any]
                          ) -> tuple[dict[str, int], dict[str, Any] | None]:
    """(thresholds, rules or None) that ``postprocess`` asks for."""
    if postprocess is True:
        return ensemble.postprocess or {}, ensemble.postprocess_rules
    if postprocess is False or postprocess is None:
        return {}, None
    if THRESHOLDS_KEY in postprocess or RULES_KEY in postprocess:  # a postprocess.json record
        rules = postprocess.get(RULES_KEY)
        return check_thresholds(postprocess.get(THRESHOLDS_KEY) or {}), None if rules is None else check_rules(rules)
    return check_thresholds(postprocess), None


def predict_case(source: Ensemble | nn.Module | PathLike | Sequence[nn.Module | PathLike], loaded: LoadedCase,
                 device: torch.device | str | None = "auto", tta: bool = True,
                 tta_axes: Sequence[int] = ALL_AXES, overlap: float = 0.5, batch_size: int = 2,
                 amp: bool = True, postprocess: bool | Mapping[str, int] = True, checkpoint: str = "best.pt",
                 return_probabilities: bool = False, progress: ProgressCallback | None = None, **overrides):
    """Predict the label map of one loaded case on its original grid.

    Args:
        source: an :class:`Ensemble`, run director(y/ies), or network(s) (then give ``output_mode``,
            ``patch_size`` and ``preprocess`` as keyword overrides unless the defaults fit).
        loaded: from :func:`brats_lib.io.load_case`; its ground-truth label, if any, is ignored.
        device: where the networks run (``"auto"``: CUDA when available).
        tta: mirror along ``tta_axes`` (``(0, 1, 2)``: 8 copies) and average.
        overlap, batch_size, amp: sliding-window settings (:func:`.sliding_window.sliding_window`).
        postprocess: ``True`` applies the ensemble's thresholds and rules (``postprocess.json``) if any,
            ``False`` none, a mapping those thresholds (:func:`.postprocess.remove_small_components`) or a
            whole ``postprocess.json`` record (thresholds and rules, :func:`.postprocess.postprocess_label`).
        checkpoint: checkpoint file name when loading run directories.
        return_probabilities: also return the probabilities on the preprocessed grid.
        progress: optional ``progress(stage, fraction)`` (:data:`ProgressCallback`); raising from it cancels.
    Returns:
        (X, Y, Z) uint8 labels in the 2024 convention on the input's grid; with ``return_probabilities``
        a tuple ``(labels, probabilities (C, x, y, z) float32 CPU tensor, preprocessing meta)``.
    """
    device = resolve_device(device)
    ensemble = as_ensemble(source, checkpoint, device, **overrides)
    report = progress or (lambda stage, fraction: None)
    report("preprocess", 0.0)
    pre = preprocess_case(dataclasses.replace(loaded, label=None), ensemble.preprocess)
    models = ensemble.models
    if progress is not None:
        n_copies = len(flip_combinations(tta_axes)) if tta else 1
        models = _reporting_models(ensemble, pre.image.shape[1:], overlap, batch_size, n_copies, progress)
    probs = predict_probabilities(models, pre.image, as_triple(ensemble.patch_size),
                                  ensemble.output_mode, tta_axes if tta else None, overlap, batch_size,
                                  device=device, amp=amp, output_device=device)
    report("post-process", 0.0)
    label = decode_probabilities(probs[None], ensemble.output_mode)[0].cpu().numpy()
    label = invert_label(label, pre.meta)
    thresholds, rules = _postprocess_settings(ensemble, postprocess)
    if thresholds:
        label = remove_small_components(label, thresholds)
    if rules:
        label = apply_rules(label, rules, loaded.geometry.spacing)
    if return_probabilities:
        return label, probs.cpu(), pre.meta
    return label


def prediction_path(out_dir: PathLike, case_id: str) -> Path:
    """``out_dir/<case-id>.nii.gz``, the BraTS challenge's prediction file name."""
    return Path(out_dir) / f"{case_id}.nii.gz"


def predict_folder(run_dirs: Ensemble | PathLike | Sequence[PathLike], in_dir: PathLike, out_dir: PathLike,
                   device: torch.device | str = "auto", tta: bool = True, checkpoint: str = "best.pt",
                   progress: bool = True, overlap: float = 0.5, batch_size: int = 2, amp: bool = True,
                   postprocess: bool | Mapping[str, int] = True) -> list[Path]:
    """Predict every case under ``in_dir`` and write ``out_dir/<case-id>.nii.gz`` (uint8, the input's
    affine and header, written atomically).

    Args:
        run_dirs: one run directory, several (an ensemble), or a loaded :class:`Ensemble`.
        in_dir: dataset folder in any layout :func:`brats_lib.io.discover_cases` reads (a label, if present,
            is ignored); predictions are named ``<case-id>.nii.gz`` after its case ids.
        out_dir: output folder (created).
        other arguments: as :func:`predict_case`.
    Returns:
        the written files, in case-id order.
    """
    from ..progress import tqdm

    device = resolve_device(device)
    ensemble = as_ensemble(run_dirs, checkpoint, device)
    cases = discover_cases(in_dir)
    written = []
    for case in tqdm(cases, desc="predict", unit="case", disable=not progress):
        loaded = load_case(dataclasses.replace(case, seg_path=None))  # a label is neither needed nor checked
        label = predict_case(ensemble, loaded, device=device, tta=tta, overlap=overlap, batch_size=batch_size,
                             amp=amp, postprocess=postprocess)
        written.append(save_label_map(label, loaded.geometry, prediction_path(out_dir, case.case_id)))
    return written
