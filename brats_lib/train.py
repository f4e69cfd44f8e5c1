"""Training runs: a config, the loop, checkpoints, resume, DDP, and a self-describing run directory.

A run directory holds::

    config.json    the TrainConfig (model, output mode, patch size, preprocessing settings, …)
    metrics.csv    one row per epoch: epoch, train_loss, val_loss, train_dice_<region> (the augmented training
                   patches, as predicted during the epoch), val_dice_<WT|TC|ET|NETC|SNFH|RC>, lr, seconds, and
                   grad_norm_stage<1…n>: the L2 norm of the gradient of each encoder stage's parameters (before
                   clipping), the mean of the samples taken every ``grad_norm_every`` iterations; and where the
                   training loop's time went (:mod:`brats_lib.profiling`): busy_share (the share of the loop's
                   wall time the accelerator was busy with the steps, in [0, 1]), data_wait_seconds (waiting
                   for the loader; loader_start_seconds of it for the first batch, while the workers start),
                   train_loop_seconds, samples_per_s, tflops (the network's forward and
                   backward FLOPs per wall second) and, on a GPU of known bf16 peak, tflops_peak_share
    metrics.json   the same rows as JSON
    last.pt        the latest epoch: model, optimiser, scheduler, epoch, RNG states, config, history
    best.pt        the epoch with the best mean validation Dice over WT, TC and ET

Every file is written atomically. A run whose ``last.pt`` exists resumes from it and continues as if it
had never stopped: all randomness of an epoch derives from ``(seed, epoch)``.

Multi-GPU (or multi-process CPU, gloo) training uses PyTorch DDP launched by torchrun::

    torchrun --nproc_per_node=N -m brats_lib.train --config run.json

Each rank takes every N-th patch index of the epoch, so N processes with batch b see the same patches as
one process with batch N·b. The batch-Dice statistics are all-reduced across ranks (with gradient), so with
instance (or group) norm the updates equal one process's with the combined batch, for CE and Dice + CE.

Resuming with a config that differs from the run's ``config.json`` in what is trained (anything but
:data:`RESUME_FREE_KEYS`) is refused unless ``override`` (``brats train --override``) is given, which logs
a warning. User faults (config file, keys, values, device, run directory) raise
:class:`~brats_lib.errors.BratsConfigError`.
"""

from __future__ import annotations

import argparse
import csv
import gc
import io as _io
import json
import logging
import math
import os
import pickle
import random
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ._atomic import atomic_path, write_text_atomic
from .augment import PIPELINES
from .config_checks import ConfigChecks, is_number
from .data import EpochSampler, PatchDataset, load_splits, make_loader, make_splits, save_splits
from .device import resolve_device
from .errors import BratsConfigError, BratsUserError
from .io import discover_cases
from .labels import REGION_ORDER, REGIONS
from .losses import LOSSES, build_loss, set_dice_reduction
from .models import OUTPUT_MODES, build_model, decode_logits
from .preprocess import PreprocessConfig, preprocess_dataset
from .profiling import EpochClock, bf16_peak_tflops, train_step_flops
from .progress import tqdm
from .progress import write as log_line

log = logging.getLogger(__name__)

#: Regions whose mean validation Dice selects ``best.pt``.
SELECTION_REGIONS = ("WT", "TC", "ET")

#: Config keys a resumed run may change freely: where things are and how they run, not what is trained.
RESUME_FREE_KEYS = frozenset({"data_dir", "cache_dir", "run_dir", "device", "workers", "time_limit_minutes",
                              "compile"})

#: metrics.csv columns that time the run (they differ between two otherwise identical runs).
TIMING_COLUMNS = ("seconds", "busy_share", "data_wait_seconds", "loader_start_seconds", "train_loop_seconds",
                  "samples_per_s", "tflops", "tflops_peak_share")

#: The training loss is checked for NaN/inf every this many iterations (and at each epoch's end), so that
#: the loop does not wait for the device on every iteration.
FINITE_CHECK_EVERY = 10


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainConfig:
    """Everything a run needs; papermill parameters and ``brats train --config`` fill it.

    Sizes are in voxels of the preprocessed grid; times in minutes.
    """

    data_dir: str = "data/synthetic"
    cache_dir: str = "data/cache/demo"
    run_dir: str = "runs/demo/unet3d"
    splits_file: str | None = None  # default: <cache_dir>/splits.json
    model: dict = field(default_factory=lambda: {"name": "unet3d", "features_per_stage": [16, 32, 64, 128]})
    output_mode: str = "softmax"  # or "regions" (sigmoid WT, TC, ET, RC)
    loss: str = "dice_ce"  # "ce", "dice", "dice_ce"
    deep_supervision: bool = False
    patch_size: int = 64
    batch_size: int = 2
    epochs: int = 10
    iterations_per_epoch: int = 50
    val_patches: int = 16
    oversample_foreground: float = 0.33
    optimizer: str = "adamw"  # or "sgd" (Nesterov, momentum 0.99, nnU-Net's)
    lr: float = 3e-3
    weight_decay: float = 3e-5
    schedule: str = "poly"  # or "cosine"
    warmup_iterations: int = 0  # linear warm-up: the rate rises from lr/k to lr over the first k iterations
    grad_clip: float = 12.0
    augment: bool | str = True  # True = "default", False = none, or a name of brats_lib.augment.PIPELINES
    seed: int = 0
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1"
    amp: bool = True  # bf16 autocast on CUDA; ignored on CPU (float32)
    channels_last: bool = True  # channels_last_3d on CUDA
    compile: bool | str = "auto"  # torch.compile: "auto" = on CUDA (about 2.5x faster steps there), true, false
    workers: int = 2
    time_limit_minutes: float | None = None  # stop after the epoch that crosses it
    grad_norm_every: int = 10  # sample the encoder stages' gradient norms every k iterations (0: never)
    preprocess: dict = field(default_factory=lambda: {"downsample": 2})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        if not isinstance(values, Mapping):
            raise BratsConfigError(f"a training config is a JSON object of TrainConfig fields, got "
                                   f"{type(values).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise BratsConfigError(f"unknown training config keys {unknown}; known: {sorted(known)}")
        return cls(**dict(values))

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        return cls.from_dict(read_config_file(path))

    def validate(self) -> "TrainConfig":
        """Check every value a user can get wrong; returns ``self``.

        Raises:
            BratsConfigError: naming the key and the fault.
        """
        check = ConfigChecks(self)
        bad = check.bad
        check.positive_ints("patch_size", "batch_size", "epochs", "iterations_per_epoch", "val_patches")
        check.non_negative_ints("seed", "workers", "warmup_iterations")
        check.positive_numbers("lr")
        for key in ("weight_decay", "grad_clip"):
            if not is_number(getattr(self, key)) or getattr(self, key) < 0:
                raise bad(key, "a non-negative number")
        if not is_number(self.oversample_foreground) or not 0 <= self.oversample_foreground <= 1:
            raise bad("oversample_foreground", "a number in [0, 1]")
        if not (isinstance(self.compile, bool) or self.compile == "auto"):
            raise bad("compile", 'true, false or "auto" (compile on CUDA only)')
        if self.time_limit_minutes is not None and (not is_number(self.time_limit_minutes)
                                                    or self.time_limit_minutes < 0):
            raise bad("time_limit_minutes", "null or a non-negative number")
        if not isinstance(self.augment, bool) and self.augment not in PIPELINES:
            raise bad("augment", f"true, false or one of {sorted(PIPELINES)}")
        for key, choices in (("output_mode", OUTPUT_MODES), ("loss", tuple(LOSSES)),
                             ("optimizer", ("adamw", "sgd")), ("schedule", ("poly", "cosine"))):
            if getattr(self, key) not in choices:
                raise bad(key, f"one of {list(choices)}")
        if self.loss == "ce" and self.output_mode != "softmax":
            raise BratsConfigError("config loss 'ce' needs output_mode 'softmax'; use 'dice_ce' for regions")
        if not isinstance(self.preprocess, Mapping):
            raise bad("preprocess", "an object of PreprocessConfig fields")
        known = {f.name for f in fields(PreprocessConfig)}
        if set(self.preprocess) - known:
            raise BratsConfigError(f"config preprocess: unknown keys {sorted(set(self.preprocess) - known)}; "
                                   f"known: {sorted(known)}")
        PreprocessConfig(**self.preprocess)  # raises BratsConfigError on a bad value
        if not isinstance(self.model, Mapping) or "name" not in self.model:
            raise bad("model", 'an object with a "name" (and the network\'s arguments)')
        try:  # the model's own argument checks, on the meta device (nothing allocated)
            with torch.device("meta"):
                network = build_model(self.model_config())
        except (TypeError, ValueError) as exc:
            raise BratsConfigError(f"config model {dict(self.model)}: {exc}") from None
        divisor = int(getattr(network, "divisor", 1))
        if self.patch_size % divisor:
            raise BratsConfigError(f"config patch_size {self.patch_size} must be a multiple of {divisor} for "
                                   f"model {self.model['name']!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def model_config(self) -> dict[str, Any]:
        cfg = dict(self.model)
        cfg.setdefault("output_mode", self.output_mode)
        cfg.setdefault("deep_supervision", self.deep_supervision)
        return cfg


# ------------------------------------------------------------------------------------------------ helpers


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The JSON object in a config file.

    Raises:
        BratsConfigError: the file is missing, unreadable, not JSON, or not a JSON object.
    """
    path = Path(path)
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise BratsConfigError(f"{path}: config file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BratsConfigError(f"{path}: cannot read the config file ({exc})") from None
    except json.JSONDecodeError as exc:
        raise BratsConfigError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(values, dict):
        raise BratsConfigError(f"{path}: expected a JSON object of TrainConfig fields, got {type(values).__name__}")
    return values


def apply_overrides(values: Mapping[str, Any], items: list[str]) -> dict[str, Any]:
    """``values`` with ``KEY=JSON`` items applied (``brats train --set``); a bare word is taken as a string.

    Raises:
        BratsConfigError: an item without ``=`` or with an empty key or value.
    """
    out = dict(values)
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip() or not raw.strip():
            raise BratsConfigError(f"--set {item!r}: expected KEY=VALUE (JSON value), e.g. epochs=2")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw  # device=cpu rather than device='"cpu"'
    return out


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """key → (old, new) for the keys outside :data:`RESUME_FREE_KEYS` whose JSON values differ."""
    old, new = json.loads(json.dumps(dict(old))), json.loads(json.dumps(dict(new)))
    keys = sorted((set(old) | set(new)) - RESUME_FREE_KEYS)
    return {k: (old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)}


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.99, nesterov=True,
                               weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; expected 'adamw' or 'sgd'")


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-iteration learning-rate schedule over the whole run: poly (exponent 0.9) or cosine, times a linear
    warm-up ``min(1, (it + 1) / warmup_iterations)`` when ``warmup_iterations`` > 0."""
    total = max(1, config.epochs * config.iterations_per_epoch)
    if config.schedule == "poly":
        def decay(it: int) -> float:
            return (1 - min(it, total) / total) ** 0.9
    elif config.schedule == "cosine":
        def decay(it: int) -> float:
            return 0.5 * (1 + math.cos(math.pi * min(it, total) / total))
    else:
        raise ValueError(f"unknown schedule {config.schedule!r}; expected 'poly' or 'cosine'")
    warmup = int(config.warmup_iterations)
    if warmup <= 0:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, decay)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: decay(it) * min(1.0, (it + 1) / warmup))


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator for an epoch's augmentation parameters."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, payload: Mapping[str, Any]) -> None:
    """``torch.save`` atomically."""
    with atomic_path(path) as tmp:
        torch.save(dict(payload), tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    return torch.load(path, map_location=map_location, weights_only=False)


def _write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    if not history:
        return
    buffer = _io.StringIO()
    columns = list(dict.fromkeys(k for row in history for k in row))  # rows of an older run may lack some
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(history)
    write_text_atomic(run_dir / "metrics.csv", buffer.getvalue())
    write_text_atomic(run_dir / "metrics.json", json.dumps(history, indent=1))


# ------------------------------------------------------------------------------------------------- data


def prepare_data(config: TrainConfig, progress: bool = True) -> dict[str, list[str]]:
    """Preprocess ``data_dir`` into ``cache_dir`` (skipping current cases) and load or make the split.

    A given ``splits_file`` is used as it is. The default ``<cache_dir>/splits.json`` is made on first use and
    made again when the dataset's labelled cases are no longer the ones it splits (e.g. the demo dataset grew).
    """
    preprocess_dataset(config.data_dir, config.cache_dir, PreprocessConfig(**config.preprocess),
                       workers=config.workers, progress=progress)
    splits_file = Path(config.splits_file or Path(config.cache_dir) / "splits.json")
    if config.splits_file and splits_file.exists():
        return load_splits(splits_file)
    cases = [c for c in discover_cases(config.data_dir, require_images=False) if c.has_images and c.has_label]
    if splits_file.exists():
        splits = load_splits(splits_file)
        if {cid for ids in splits.values() for cid in ids} == {c.case_id for c in cases}:
            return splits
        print(f"{splits_file}: the dataset's labelled cases changed; making a new split", file=sys.stderr)
    splits = make_splits(cases, seed=config.seed)
    save_splits(splits, splits_file, data_dir=str(config.data_dir), seed=config.seed)
    return splits


# ------------------------------------------------------------------------------------------------- steps


class _Dist:
    """This process's place in a DDP group (a group of one without torchrun)."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        self.rank = int(os.environ.get("RANK", 0))
        self.enabled = self.world > 1
        if self.enabled and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mean(self, value: float) -> float:
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item()) / self.world

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(t)
        return t


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose gradient is the sum of the ranks' gradients (the adjoint of a sum-all-reduce)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        tensor = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return _AllReduceSum.apply(grad)


def region_dice_counts(pred: torch.Tensor, target: torch.Tensor, on_device: bool = False) -> torch.Tensor:
    """(3, 6) float64 counts [intersection, |pred|, |target|] per region of REGION_ORDER.

    ``pred`` and ``target`` are (B, X, Y, Z) label maps in the 2024 convention, on any device; the counts
    come back on the CPU, or on the inputs' device with ``on_device`` (no host synchronisation).
    """
    rows = []
    for region in REGION_ORDER:
        p = torch.zeros_like(pred, dtype=torch.bool)
        g = torch.zeros_like(target, dtype=torch.bool)
        for value in REGIONS[region]:
            p |= pred == value
            g |= target == value
        rows.append(torch.stack([(p & g).sum(), p.sum(), g.sum()]))
    counts = torch.stack(rows, dim=1).double()
    return counts if on_device else counts.cpu()


def encoder_grad_norms(model: nn.Module) -> torch.Tensor | None:
    """L2 norm of the gradient of each encoder stage's parameters, a (n_stages,) tensor on the model's device
    (no host synchronisation); ``None`` for a model without an ``encoder`` ModuleList or without gradients."""
    stages = getattr(model, "encoder", None)
    if not isinstance(stages, nn.ModuleList):
        return None
    norms = []
    for stage in stages:
        grads = [p.grad for p in stage.parameters() if p.grad is not None]
        if not grads:
            return None
        norms.append(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)).float()))
    return torch.stack(norms)


def dice_from_counts(counts: torch.Tensor) -> dict[str, float]:
    """Region → Dice from :func:`region_dice_counts` sums; NaN where both sides are empty."""
    inter, psum, gsum = counts
    out = {}
    for k, region in enumerate(REGION_ORDER):
        denom = float(psum[k] + gsum[k])
        out[region] = 2 * float(inter[k]) / denom if denom > 0 else float("nan")
    return out


class Trainer:
    """Runs one training configuration; ``run()`` trains (or resumes) to ``config.epochs``.

    ``override`` lets a resumed run change what :func:`config_changes` reports (logged as a warning).
    ``amp`` (bf16 autocast) and ``channels_last`` (channels_last_3d) apply on CUDA only; the tests switch
    them on for CPU to run those code paths.
    """

    def __init__(self, config: TrainConfig, progress: bool = True, override: bool = False):
        self.config = config.validate()
        self.override = override
        self.device = resolve_device(config.device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = True  # fixed patch shapes: cuDNN times its algorithms once, keeps the best
        self.dist = _Dist(self.device)
        self.progress = progress and self.dist.main
        self.run_dir = Path(config.run_dir)
        self.cuda = self.device.type == "cuda"
        self.amp = config.amp and self.cuda
        self.channels_last = config.channels_last and self.cuda
        self._loaders: dict[int, tuple] = {}  # id(dataset) -> (DataLoader, EpochSampler), see _loader

    # -------------------------------------------------------------------------------------- set-up
    def _build(self, splits: Mapping[str, list[str]]) -> None:
        c = self.config
        torch.manual_seed(c.seed)
        self.model = build_model(c.model_config()).to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last_3d)
        self.optimizer = build_optimizer(self.model, c)
        self.scheduler = build_scheduler(self.optimizer, c)
        self.loss_fn = build_loss(c.loss, c.output_mode, c.deep_supervision)
        self.val_loss_fn = build_loss(c.loss, c.output_mode, c.deep_supervision)  # per rank: no collectives
        if self.dist.enabled:
            set_dice_reduction(self.loss_fn, _AllReduceSum.apply)
        self.forward_model: nn.Module = self.model
        if self.dist.enabled:
            self.forward_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.cuda else None)
        self.eager_forward_model = self.forward_model
        self.compile_pending = False  # compiled, and no step has run through the compiled model yet
        if c.compile is True or (c.compile == "auto" and self.cuda):
            try:
                self.forward_model = torch.compile(self.forward_model)
                self.compile_pending = True
            except Exception as exc:  # noqa: BLE001 - any compiler fault: train uncompiled, said in one line
                self._compile_failed(exc)
        patch = (c.patch_size,) * 3
        try:  # a measurement beside the training: its failure must not stop the run
            self.flops_per_sample: float | None = train_step_flops(self.model, patch, in_channels=4)
        except Exception as exc:  # noqa: BLE001
            self.flops_per_sample = None
            print(f"FLOPs of model {c.model} not counted ({type(exc).__name__}: {exc}); metrics.csv gets no tflops",
                  file=sys.stderr)
        self.peak_tflops = None
        if self.cuda and self.amp:
            name = torch.cuda.get_device_name(self.device)
            self.peak_tflops = bf16_peak_tflops(name)
            if self.peak_tflops is None and self.dist.main:
                print(f"bf16 peak of {name!r} unknown (brats_lib.profiling.BF16_DENSE_PEAK_TFLOPS): metrics.csv "
                      "gets tflops but no tflops_peak_share", file=sys.stderr)
        if not splits.get("train"):
            raise ValueError("the split has no training case")
        val_ids = splits.get("val") or splits["train"][:1]
        self.train_set = PatchDataset(c.cache_dir, splits["train"], c.patch_size, c.oversample_foreground,
                                      samples_per_epoch=c.iterations_per_epoch * c.batch_size * self.dist.world,
                                      seed=c.seed)
        self.val_set = PatchDataset(c.cache_dir, val_ids, c.patch_size, oversample_foreground=0.5,
                                    samples_per_epoch=c.val_patches, seed=c.seed + 1)
        name = "default" if c.augment is True else c.augment
        self.augment = PIPELINES[name]((c.patch_size,) * 3) if name else None

    def _compile_failed(self, exc: BaseException) -> None:
        """Go on with the uncompiled network, saying so in one line."""
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        print(f"torch.compile failed ({type(exc).__name__}: {first}); training without compilation "
              "(set compile: false to skip the attempt)", file=sys.stderr)
        self.forward_model = self.eager_forward_model
        self.compile_pending = False

    def _forward_backward(self, image: torch.Tensor, label: torch.Tensor):
        """(output, loss) of the network on a batch, with the gradients accumulated; the first call through a
        compiled network that fails (compilation happens there) falls back to the uncompiled one."""
        try:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                output = self.forward_model(image)
            loss = self.loss_fn(output, label)
            loss.backward()
        except Exception as exc:  # noqa: BLE001 - only the compiler's first run is retried; the rest re-raise
            if not self.compile_pending:
                raise
            self._compile_failed(exc)
            self.optimizer.zero_grad(set_to_none=True)
            return self._forward_backward(image, label)
        self.compile_pending = False
        return output, loss

    def _loader(self, dataset: PatchDataset, batch_size: int, epoch: int):
        """The dataset's loader for ``epoch``: made once per run, its workers persistent (their start-up is paid
        once, not every epoch); this rank's share of the indices under DDP."""
        key = id(dataset)
        if key not in self._loaders:
            # Collect dead loader iterators before new workers fork: a worker that inherits one in an
            # uncollected reference cycle runs its __del__ and prints "can only test a child process" noise
            # (seen in notebooks, where tqdm's widgets keep such cycles alive).
            gc.collect()
            sampler = EpochSampler(range(self.dist.rank, len(dataset), self.dist.world) if self.dist.enabled
                                   else range(len(dataset)))
            self._loaders[key] = (make_loader(dataset, batch_size, workers=self.config.workers, sampler=sampler),
                                  sampler)
        loader, sampler = self._loaders[key]
        sampler.set_epoch(epoch)
        return loader

    def close_loaders(self) -> None:
        """Stop the persistent loader workers (done at the end of :meth:`run`)."""
        self._loaders.clear()
        gc.collect()

    # -------------------------------------------------------------------------------------- epochs
    def _train_epoch(self, epoch: int) -> tuple[float, dict[str, float]]:
        """Mean training loss, and the epoch's training Dice per region and encoder gradient norms."""
        c = self.config
        self.model.train()
        self.train_set.set_epoch(epoch)
        generator = epoch_generator(c.seed, epoch)
        dice_counts = torch.zeros(3, len(REGION_ORDER), dtype=torch.float64, device=self.device)
        grad_sum, grad_samples = None, 0
        losses: list[torch.Tensor] = []  # on the device: no host synchronisation per iteration
        clock = EpochClock(self.device)
        clock.start()  # before the loader starts its workers: their start-up is data wait too
        bar = tqdm(self._loader(self.train_set, c.batch_size, epoch), total=c.iterations_per_epoch,
                   desc=f"epoch {epoch + 1}/{c.epochs}", disable=not self.progress, leave=False)
        for iteration, (image, label) in enumerate(bar):
            clock.batch_arrived()
            samples = image.shape[0]
            image = image.to(self.device, non_blocking=True)
            label = label.to(self.device, non_blocking=True)
            if self.augment is not None:
                image, label = self.augment(image, label, generator=generator)
            if self.channels_last:
                image = image.contiguous(memory_format=torch.channels_last_3d)
            self.optimizer.zero_grad(set_to_none=True)
            output, loss = self._forward_backward(image, label)
            with torch.no_grad():
                logits = output[0] if isinstance(output, (list, tuple)) else output
                dice_counts += region_dice_counts(decode_logits(logits.detach(), c.output_mode), label, True)
                sample = c.grad_norm_every and iteration % c.grad_norm_every == 0
                norms = encoder_grad_norms(self.model) if sample else None
                if norms is not None:
                    grad_sum = norms if grad_sum is None else grad_sum + norms
                    grad_samples += 1
            if c.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            losses.append(loss.detach())
            if (iteration + 1) % FINITE_CHECK_EVERY == 0:
                self._check_finite(losses, epoch)
                bar.set_postfix(loss=f"{float(losses[-1]):.3f}")
            clock.step_done(samples)
        timing = clock.finish(self.flops_per_sample, self.peak_tflops)
        self._check_finite(losses, epoch)
        dice = dice_from_counts(self.dist.sum_(dice_counts).cpu())
        extra = {f"train_dice_{r}": dice[r] for r in REGION_ORDER}
        # shares and seconds: the mean over ranks; rates: the sum
        extra.update({k: self.dist.mean(v) * (self.dist.world if k in ("samples_per_s", "tflops") else 1)
                      for k, v in timing.items()})
        if grad_sum is not None:  # identical on every rank: DDP averages the gradients before this point
            extra.update({f"grad_norm_stage{i + 1}": v for i, v in enumerate((grad_sum / grad_samples).tolist())})
        mean_loss = float(torch.stack(losses).sum()) / len(losses) if losses else 0.0
        return self.dist.mean(mean_loss), extra

    def _check_finite(self, losses: list[torch.Tensor], epoch: int) -> None:
        """Raise :class:`TrainingDiverged` (on every rank) if a loss of the epoch so far is NaN or inf; the
        weights in memory are then spoilt, but nothing of this epoch has been saved."""
        finite = torch.isfinite(torch.stack(losses)) if losses else torch.ones(0, dtype=torch.bool)
        bad = (~finite).sum().to(torch.float32).reshape(1)
        if float(self.dist.sum_(bad)) == 0:
            return
        first = int((~finite).nonzero()[0, 0]) if not finite.all() else None
        where = (f"({float(losses[first])}) at epoch {epoch + 1}, iteration {first + 1}" if first is not None
                 else f"on another rank at epoch {epoch + 1}")
        raise TrainingDiverged(f"non-finite loss {where}; stopped. The last good checkpoint is "
                               f"{self.run_dir / 'last.pt'}")

    @torch.no_grad()
    def validate(self) -> tuple[float, dict[str, float]]:
        """Loss and Dice per region on the fixed validation patches."""
        c = self.config
        self.model.eval()
        self.val_set.set_epoch(0)
        counts = torch.zeros(3, len(REGION_ORDER), dtype=torch.float64)
        total, n = 0.0, 0
        for image, label in self._loader(self.val_set, c.batch_size, 0):
            image = image.to(self.device)
            label = label.to(self.device)
            if self.channels_last:
                image = image.contiguous(memory_format=torch.channels_last_3d)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                logits = self.model(image)
            logits = logits.float()
            total += float(self.val_loss_fn(logits, label)) * image.shape[0]
            n += image.shape[0]
            counts += region_dice_counts(decode_logits(logits, c.output_mode), label)
        counts = self.dist.sum_(counts)
        loss = self.dist.mean(total / max(n, 1))
        return loss, dice_from_counts(counts)

    # -------------------------------------------------------------------------------------- state
    def _payload(self, epoch: int, history: list, best: float) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": None,  # bf16 autocast needs no gradient scaler
            "epoch": epoch,
            "rng": _rng_state(),
            "config": self.config.to_dict(),
            "history": history,
            "best_score": best,
        }

    def _check_resume(self) -> None:
        """Before anything is written: refuse to resume ``last.pt`` under a config that changes what is
        trained, unless ``override`` (then log a warning)."""
        last = self.run_dir / "last.pt"
        if not last.exists():
            return
        stored_file = self.run_dir / "config.json"
        stored = (read_config_file(stored_file) if stored_file.exists()
                  else load_checkpoint(last)["config"])
        changes = config_changes(stored, self.config.to_dict())
        if not changes:
            return
        listed = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changes.items())
        if not self.override:
            raise BratsConfigError(f"{self.run_dir}: resuming with a config that differs from the run's "
                                   f"config.json ({listed}); use a new run_dir, or --override to continue "
                                   "under the new config")
        log.warning("%s: resuming under a changed config (--override): %s", self.run_dir, listed)

    def _resume(self) -> tuple[int, list, float]:
        last = self.run_dir / "last.pt"
        if not last.exists():
            return 0, [], -math.inf
        state = load_checkpoint(last, self.device)
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise BratsConfigError(f"{last}: holds a model of another architecture than config model "
                                   f"{self.config.model} ({str(exc).splitlines()[0]}); use a new run_dir"
                                   ) from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        history = list(state["history"])
        if self.dist.main:  # a kill between the epoch's files may have left metrics one epoch ahead
            _write_metrics(self.run_dir, history)
        return state["epoch"] + 1, history, float(state["best_score"])

    # -------------------------------------------------------------------------------------- run
    def run(self) -> list[dict[str, Any]]:
        """Train from scratch or from ``last.pt`` to ``config.epochs``; returns the metrics history."""
        c = self.config
        self._check_resume()
        splits = prepare_data(c, progress=self.progress) if self.dist.main else None
        if self.dist.enabled:
            box = [splits]
            dist.broadcast_object_list(box, src=0)
            splits = box[0]
        self._build(splits)
        if self.dist.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.run_dir / "config.json", json.dumps(c.to_dict(), indent=1))
        start_epoch, history, best = self._resume()
        try:
            return self._epochs(start_epoch, history, best)
        finally:
            self.close_loaders()

    def _epochs(self, start_epoch: int, history: list, best: float) -> list[dict[str, Any]]:
        c = self.config
        started = time.perf_counter()
        for epoch in range(start_epoch, c.epochs):
            t0 = time.perf_counter()
            train_loss, train_extra = self._train_epoch(epoch)
            val_loss, dice = self.validate()
            grad_norms = {k: v for k, v in train_extra.items() if k.startswith("grad_norm_")}
            timing = {k: train_extra[k] for k in TIMING_COLUMNS if k in train_extra}
            row = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss,
                   **{f"train_dice_{r}": train_extra[f"train_dice_{r}"] for r in REGION_ORDER},
                   **{f"val_dice_{r}": dice[r] for r in REGION_ORDER},
                   "lr": self.optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - t0, **grad_norms,
                   **timing}
            history.append(row)
            score = float(np.nanmean([dice[r] for r in SELECTION_REGIONS]))
            improved = math.isfinite(score) and score > best
            best = score if improved else best
            if self.dist.main:  # last.pt last: it commits the epoch (a kill before it re-runs the epoch)
                payload = self._payload(epoch, history, best)
                if improved:
                    save_checkpoint(self.run_dir / "best.pt", payload)
                _write_metrics(self.run_dir, history)
                save_checkpoint(self.run_dir / "last.pt", payload)
                if self.progress:
                    log_line(f"epoch {epoch + 1}: train {train_loss:.4f} val {val_loss:.4f} " +
                             " ".join(f"{r} {dice[r]:.3f}" for r in REGION_ORDER) +
                             f" | busy {timing['busy_share']:.0%}, {timing['samples_per_s']:.1f} samples/s")
            if c.time_limit_minutes is not None and time.perf_counter() - started > 60 * c.time_limit_minutes:
                break
        return history


def train(config: TrainConfig | Mapping[str, Any], progress: bool = True, override: bool = False
          ) -> list[dict[str, Any]]:
    """Run (or resume) a training configuration; see :class:`Trainer` (``override``: resume under a changed
    config)."""
    if not isinstance(config, TrainConfig):
        config = TrainConfig.from_dict(config)
    return Trainer(config, progress, override).run()


def read_run_checkpoint(run_dir: str | Path, checkpoint: str = "best.pt", device: str | torch.device = "cpu",
                        train_hint: str = "train the run first") -> tuple[Path, Any]:
    """(path, loaded state) of a run directory's ``checkpoint``, else its ``last.pt``.

    Raises:
        BratsConfigError: no such directory, no checkpoint in it (``train_hint`` says what to do), or an
            unreadable checkpoint (naming the file).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise BratsConfigError(f"{run_dir}: run directory does not exist")
    path = run_dir / checkpoint
    if not path.exists():
        path = run_dir / "last.pt"
    if not path.exists():
        raise BratsConfigError(f"{run_dir}: no checkpoint ({checkpoint} or last.pt); {train_hint}")
    try:
        return path, load_checkpoint(path, device)
    except (OSError, EOFError, RuntimeError, pickle.UnpicklingError) as exc:
        raise BratsConfigError(f"{path}: not a readable checkpoint ({str(exc).splitlines()[0]})") from None


def load_run_model(run_dir: str | Path, checkpoint: str = "best.pt", device: str | torch.device = "cpu"):
    """(model in eval mode, TrainConfig) from a run directory's checkpoint (falls back to ``last.pt``).

    Raises:
        BratsConfigError: no such directory, no checkpoint in it, an unreadable checkpoint, or one whose
            model is of another architecture than the run's ``config.json``.
    """
    run_dir = Path(run_dir)
    path, state = read_run_checkpoint(run_dir, checkpoint, device)
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise BratsConfigError(f"{path}: not a brats training checkpoint (no model and config)")
    config = TrainConfig.from_dict(state["config"])
    described = run_dir / "config.json"
    if described.exists():
        model_cfg = TrainConfig.from_dict(read_config_file(described)).model_config()
        if json.loads(json.dumps(model_cfg)) != json.loads(json.dumps(config.model_config())):
            raise BratsConfigError(f"{path}: checkpoint of another architecture ({config.model_config()}) than "
                                   f"{described} ({model_cfg})")
    model = build_model(config.model_config()).to(device)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise BratsConfigError(f"{path}: weights do not fit the model {config.model} of its own config "
                               f"({str(exc).splitlines()[0]})") from None
    return model.eval(), config


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``python -m brats_lib.train`` arguments (``brats train`` declares the same in the CLI)."""
    parser.add_argument("--config", required=True, help="JSON file of TrainConfig fields")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON",
                        help="override fields, e.g. epochs=2 device=cpu model='{\"name\": \"unet3d\"}'")
    parser.add_argument("--override", action="store_true",
                        help="resume a run even though the config differs from its config.json (logged)")
    return parser


def run_from_args(args: argparse.Namespace) -> int:
    values = apply_overrides(read_config_file(args.config), args.set)
    train(TrainConfig.from_dict(values), override=args.override)
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m brats_lib.train`` (the torchrun entry): user faults end in one line and exit status 2."""
    parser = add_arguments(argparse.ArgumentParser(prog="brats train",
                                                   description="train a model from a JSON config"))
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except BratsUserError as exc:
        print(f"brats train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
