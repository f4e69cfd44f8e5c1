"""Training runs: a config, the loop, checkpoints, resume, DDP, and a self-describing run directory.

A run directory holds::

    config.json    the TrainConfig (model, output mode, patch size, preprocessing settings, …)
    metrics.csv    one row per epoch: epoch, train_loss, val_loss, train_dice_<region> (the augmented training
                   patches, as predicted during the epoch), val_dice_<WT|TC|ET|NETC|SNFH|RC>, lr, seconds, and
                   grad_norm_stage<1…n>: the L2 norm of the gradient of each encoder stage's parameters (before
                   clipping), the mean of the samples taken every ``grad_norm_every`` iterations
    metrics.json   the same rows as JSON
    last.pt        the latest epoch: model, optimiser, scheduler, epoch, RNG states, config, history
    best.pt        the epoch with the best mean validation Dice over WT, TC and ET

Every file is written atomically. A run whose ``last.pt`` exists resumes from it and continues as if it
had never stopped: all randomness of an epoch derives from ``(seed, epoch)``.

Multi-GPU (or multi-process CPU, gloo) training uses PyTorch DDP launched by torchrun::

    torchrun --nproc_per_node=N -m brats_lib.train --config run.json

Each rank takes every N-th patch index of the epoch, so N processes with batch b see the same patches as
one process with batch N·b. With cross-entropy and instance (or group) norm the updates are identical; a
batch-Dice term is computed per rank, as nnU-Net does without its all-gather, so it differs slightly.
"""

from __future__ import annotations

import argparse
import csv
import gc
import io as _io
import json
import math
import os
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
from tqdm.auto import tqdm

from ._atomic import atomic_path, write_text_atomic
from .augment import default_pipeline
from .data import PatchDataset, load_splits, make_loader, make_splits, save_splits
from .io import discover_cases
from .labels import REGION_ORDER, REGIONS
from .losses import build_loss
from .models import build_model, decode_logits
from .preprocess import PreprocessConfig, preprocess_dataset

#: Regions whose mean validation Dice selects ``best.pt``.
SELECTION_REGIONS = ("WT", "TC", "ET")


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
    grad_clip: float = 12.0
    augment: bool = True
    seed: int = 0
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1"
    amp: bool = True  # bf16 autocast on CUDA; ignored on CPU (float32)
    channels_last: bool = True  # channels_last_3d on CUDA
    compile: bool = False
    workers: int = 2
    time_limit_minutes: float | None = None  # stop after the epoch that crosses it
    grad_norm_every: int = 10  # sample the encoder stages' gradient norms every k iterations (0: never)
    preprocess: dict = field(default_factory=lambda: {"downsample": 2})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training config keys {unknown}; known: {sorted(known)}")
        return cls(**dict(values))

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def model_config(self) -> dict[str, Any]:
        cfg = dict(self.model)
        cfg.setdefault("output_mode", self.output_mode)
        cfg.setdefault("deep_supervision", self.deep_supervision)
        return cfg


# ------------------------------------------------------------------------------------------------ helpers


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; a CUDA device without an index gets this rank's GPU
    (``LOCAL_RANK`` under torchrun, else 0)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return device


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.99, nesterov=True,
                               weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; expected 'adamw' or 'sgd'")


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-iteration learning-rate schedule over the whole run: poly (exponent 0.9) or cosine."""
    total = max(1, config.epochs * config.iterations_per_epoch)
    if config.schedule == "poly":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: (1 - min(it, total) / total) ** 0.9)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda it: 0.5 * (1 + math.cos(math.pi * min(it, total) / total)))
    raise ValueError(f"unknown schedule {config.schedule!r}; expected 'poly' or 'cosine'")


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
    """Preprocess ``data_dir`` into ``cache_dir`` (skipping current cases) and load or make the split."""
    preprocess_dataset(config.data_dir, config.cache_dir, PreprocessConfig(**config.preprocess),
                       workers=config.workers, progress=progress)
    splits_file = Path(config.splits_file or Path(config.cache_dir) / "splits.json")
    if splits_file.exists():
        return load_splits(splits_file)
    cases = [c for c in discover_cases(config.data_dir, require_images=False) if c.has_images and c.has_label]
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
    """Runs one training configuration; ``run()`` trains (or resumes) to ``config.epochs``."""

    def __init__(self, config: TrainConfig, progress: bool = True):
        self.config = config
        self.device = resolve_device(config.device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.dist = _Dist(self.device)
        self.progress = progress and self.dist.main
        self.run_dir = Path(config.run_dir)
        self.cuda = self.device.type == "cuda"
        self.amp = config.amp and self.cuda

    # -------------------------------------------------------------------------------------- set-up
    def _build(self, splits: Mapping[str, list[str]]) -> None:
        c = self.config
        torch.manual_seed(c.seed)
        self.model = build_model(c.model_config()).to(self.device)
        if self.cuda and c.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last_3d)
        self.optimizer = build_optimizer(self.model, c)
        self.scheduler = build_scheduler(self.optimizer, c)
        self.loss_fn = build_loss(c.loss, c.output_mode, c.deep_supervision)
        self.forward_model: nn.Module = self.model
        if self.dist.enabled:
            self.forward_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.cuda else None)
        if c.compile:
            self.forward_model = torch.compile(self.forward_model)
        if not splits.get("train"):
            raise ValueError("the split has no training case")
        val_ids = splits.get("val") or splits["train"][:1]
        self.train_set = PatchDataset(c.cache_dir, splits["train"], c.patch_size, c.oversample_foreground,
                                      samples_per_epoch=c.iterations_per_epoch * c.batch_size * self.dist.world,
                                      seed=c.seed)
        self.val_set = PatchDataset(c.cache_dir, val_ids, c.patch_size, oversample_foreground=0.5,
                                    samples_per_epoch=c.val_patches, seed=c.seed + 1)
        self.augment = default_pipeline((c.patch_size,) * 3) if c.augment else None

    def _loader(self, dataset: PatchDataset, batch_size: int):
        # Collect dead loader iterators before new workers fork: a worker that inherits one in an
        # uncollected reference cycle runs its __del__ and prints "can only test a child process" noise
        # (seen in notebooks, where tqdm's widgets keep such cycles alive).
        gc.collect()
        if not self.dist.enabled:
            return make_loader(dataset, batch_size, workers=self.config.workers)
        indices = list(range(self.dist.rank, len(dataset), self.dist.world))
        return make_loader(torch.utils.data.Subset(dataset, indices), batch_size, workers=self.config.workers)

    # -------------------------------------------------------------------------------------- epochs
    def _train_epoch(self, epoch: int) -> tuple[float, dict[str, float]]:
        """Mean training loss, and the epoch's training Dice per region and encoder gradient norms."""
        c = self.config
        self.model.train()
        self.train_set.set_epoch(epoch)
        generator = epoch_generator(c.seed, epoch)
        total, count = 0.0, 0
        dice_counts = torch.zeros(3, len(REGION_ORDER), dtype=torch.float64, device=self.device)
        grad_sum, grad_samples = None, 0
        bar = tqdm(self._loader(self.train_set, c.batch_size), total=c.iterations_per_epoch,
                   desc=f"epoch {epoch + 1}/{c.epochs}", disable=not self.progress, leave=False)
        for iteration, (image, label) in enumerate(bar):
            image = image.to(self.device, non_blocking=True)
            label = label.to(self.device, non_blocking=True)
            if self.augment is not None:
                image, label = self.augment(image, label, generator=generator)
            if self.cuda and c.channels_last:
                image = image.contiguous(memory_format=torch.channels_last_3d)
            self.optimizer.zero_grad(set_to_none=True)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                output = self.forward_model(image)
            loss = self.loss_fn(output, label)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"non-finite loss ({loss.item()}) at epoch {epoch + 1}, iteration {iteration + 1}; "
                    f"stopped. The last good checkpoint is {self.run_dir / 'last.pt'}")
            loss.backward()
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
            total += loss.item()
            count += 1
            bar.set_postfix(loss=f"{loss.item():.3f}")
        dice = dice_from_counts(self.dist.sum_(dice_counts).cpu())
        extra = {f"train_dice_{r}": dice[r] for r in REGION_ORDER}
        if grad_sum is not None:  # identical on every rank: DDP averages the gradients before this point
            extra.update({f"grad_norm_stage{i + 1}": v for i, v in enumerate((grad_sum / grad_samples).tolist())})
        return self.dist.mean(total / max(count, 1)), extra

    @torch.no_grad()
    def validate(self) -> tuple[float, dict[str, float]]:
        """Loss and Dice per region on the fixed validation patches."""
        c = self.config
        self.model.eval()
        self.val_set.set_epoch(0)
        counts = torch.zeros(3, len(REGION_ORDER), dtype=torch.float64)
        total, n = 0.0, 0
        for image, label in self._loader(self.val_set, c.batch_size):
            image = image.to(self.device)
            label = label.to(self.device)
            if self.cuda and c.channels_last:
                image = image.contiguous(memory_format=torch.channels_last_3d)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                logits = self.model(image)
            logits = logits.float()
            total += float(self.loss_fn(logits, label)) * image.shape[0]
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

    def _resume(self) -> tuple[int, list, float]:
        last = self.run_dir / "last.pt"
        if not last.exists():
            return 0, [], -math.inf
        state = load_checkpoint(last, self.device)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        return state["epoch"] + 1, list(state["history"]), float(state["best_score"])

    # -------------------------------------------------------------------------------------- run
    def run(self) -> list[dict[str, Any]]:
        """Train from scratch or from ``last.pt`` to ``config.epochs``; returns the metrics history."""
        c = self.config
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
        started = time.perf_counter()
        for epoch in range(start_epoch, c.epochs):
            t0 = time.perf_counter()
            train_loss, train_extra = self._train_epoch(epoch)
            val_loss, dice = self.validate()
            grad_norms = {k: v for k, v in train_extra.items() if k.startswith("grad_norm_")}
            row = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss,
                   **{f"train_dice_{r}": train_extra[f"train_dice_{r}"] for r in REGION_ORDER},
                   **{f"val_dice_{r}": dice[r] for r in REGION_ORDER},
                   "lr": self.optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - t0, **grad_norms}
            history.append(row)
            score = float(np.nanmean([dice[r] for r in SELECTION_REGIONS]))
            improved = math.isfinite(score) and score > best
            best = score if improved else best
            if self.dist.main:
                payload = self._payload(epoch, history, best)
                save_checkpoint(self.run_dir / "last.pt", payload)
                if improved:
                    save_checkpoint(self.run_dir / "best.pt", payload)
                _write_metrics(self.run_dir, history)
                if self.progress:
                    tqdm.write(f"epoch {epoch + 1}: train {train_loss:.4f} val {val_loss:.4f} " +
                               " ".join(f"{r} {dice[r]:.3f}" for r in REGION_ORDER))
            if c.time_limit_minutes is not None and time.perf_counter() - started > 60 * c.time_limit_minutes:
                break
        return history


def train(config: TrainConfig | Mapping[str, Any], progress: bool = True) -> list[dict[str, Any]]:
    """Run (or resume) a training configuration; see :class:`Trainer`."""
    if not isinstance(config, TrainConfig):
        config = TrainConfig.from_dict(config)
    return Trainer(config, progress).run()


def load_run_model(run_dir: str | Path, checkpoint: str = "best.pt", device: str | torch.device = "cpu"):
    """(model in eval mode, TrainConfig) from a run directory's checkpoint (falls back to ``last.pt``)."""
    run_dir = Path(run_dir)
    path = run_dir / checkpoint
    if not path.exists():
        path = run_dir / "last.pt"
    state = load_checkpoint(path, device)
    config = TrainConfig.from_dict(state["config"])
    model = build_model(config.model_config()).to(device)
    model.load_state_dict(state["model"])
    return model.eval(), config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="brats train", description="train a model from a JSON config")
    parser.add_argument("--config", required=True, help="JSON file of TrainConfig fields")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON",
                        help="override fields, e.g. epochs=2 device='\"cpu\"'")
    args = parser.parse_args(argv)
    values = json.loads(Path(args.config).read_text())
    for item in args.set:
        key, _, raw = item.partition("=")
        values[key] = json.loads(raw)
    train(TrainConfig.from_dict(values))
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
