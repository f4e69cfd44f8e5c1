"""GAN training runs: a config, the loop, checkpoints, exact resume and per-epoch metrics.

The run directory has the shape of a segmentation run (:mod:`brats_lib.train`, whose helpers this module
uses: config files, ``--set`` overrides, resume checks, RNG state, atomic checkpoints, metrics files)::

    config.json    the GanConfig
    metrics.csv    one row per epoch: epoch, d_loss, g_loss, g_adv, l1 (masked L1 of the training crops),
                   l1_weight (at the epoch's last step), val_l1 and val_mean_fill_l1 (masked L1 of the fixed
                   validation crops: the generator's, and the mean-fill baseline's), lr, seconds,
                   peak_rss_mib (peak resident memory of the process so far), peak_gpu_mib (peak CUDA
                   memory allocated during the epoch's steps; empty on the CPU), seconds_per_step
    metrics.json   the same rows as JSON
    last.pt        generator, discriminator, both optimisers, epoch, RNG states, config, history
    best.pt        the epoch with the lowest validation masked L1

Every file is written atomically and ``last.pt`` last; a run resumes from it and ends bit-identical to an
uninterrupted one (all randomness of an epoch derives from ``(seed, epoch)``). Resuming under a config that
changes what is trained is refused unless ``override``.

Crops come from the segmentation preprocessing cache (:func:`brats_lib.train.prepare_data`: the same
z-scoring, resolution and patient split); the GAN sees the training split only.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import resource
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import torch

from .._atomic import write_text_atomic
from ..config_checks import ConfigChecks, is_number
from ..device import resolve_device
from ..errors import BratsConfigError, BratsUserError
from ..preprocess import PreprocessConfig
from ..progress import tqdm
from ..progress import write as log_line
from ..train import (_rng_state, _set_rng_state, _write_metrics, apply_overrides, config_changes, epoch_generator,
                     load_checkpoint, prepare_data, read_config_file, read_run_checkpoint, save_checkpoint)
from .crops import TumourCrops, composite, generator_input, inpaint_mask, label_channels
from .losses import hinge_discriminator, hinge_generator, l1_weight, masked_l1
from .models import build_discriminator, build_generator

log = logging.getLogger(__name__)

#: ``kind`` of every GAN checkpoint: what tells a GAN run from a segmentation run.
RUN_KIND = "gan_inpainting"


@dataclass
class GanConfig:
    """Everything a GAN run needs; papermill parameters and ``brats gan-train --config`` fill it.

    ``crop_size`` and ``dilation`` are in voxels of the preprocessed grid (``preprocess.downsample`` 2: 2 mm).
    """

    data_dir: str = "data/synthetic"
    cache_dir: str = "data/cache/demo"
    run_dir: str = "runs/demo/gan"
    splits_file: str | None = None  # default: <cache_dir>/splits.json
    preprocess: dict = field(default_factory=lambda: {"downsample": 2})
    crop_size: int = 32
    crop_jitter: int = 4  # voxels the crop centre moves off the tumour's centre
    dilation: int = 2  # voxels the tumour is dilated by to make the inpainting mask
    generator: dict = field(default_factory=lambda: {"features_per_stage": [16, 32, 64, 128]})
    discriminator: dict = field(default_factory=lambda: {"features": [32, 64, 128]})
    batch_size: int = 2
    epochs: int = 10
    iterations_per_epoch: int = 20
    val_crops: int = 8
    lr: float = 1e-4
    betas: list = field(default_factory=lambda: [0.5, 0.999])
    weight_decay: float = 1e-2  # AdamW's default
    l1_weight_start: float = 1.0
    l1_weight_end: float = 100.0
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CUDA; ignored on the CPU
    checkpointing: bool = False  # gradient checkpointing of the generator's stages
    workers: int = 2  # preprocessing processes
    time_limit_minutes: float | None = None  # stop after the epoch that crosses it

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "GanConfig":
        if not isinstance(values, Mapping):
            raise BratsConfigError(f"a GAN config is a JSON object of GanConfig fields, got {type(values).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise BratsConfigError(f"unknown GAN config keys {unknown}; known: {sorted(known)}")
        return cls(**dict(values))

    @classmethod
    def load(cls, path: str | Path) -> "GanConfig":
        return cls.from_dict(read_config_file(path))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> "GanConfig":
        """Check every value a user can get wrong; returns ``self``. Raises BratsConfigError naming the key."""
        check = ConfigChecks(self)
        bad = check.bad
        check.positive_ints("crop_size", "batch_size", "epochs", "iterations_per_epoch", "val_crops")
        check.non_negative_ints("seed", "workers", "dilation", "crop_jitter")
        check.positive_numbers("lr", "l1_weight_start", "l1_weight_end")
        if not is_number(self.weight_decay) or self.weight_decay < 0:
            raise bad("weight_decay", "a non-negative number")
        if (not isinstance(self.betas, (list, tuple)) or len(self.betas) != 2
                or not all(is_number(b) and 0 <= b < 1 for b in self.betas)):
            raise bad("betas", "two numbers in [0, 1)")
        if self.time_limit_minutes is not None and (not is_number(self.time_limit_minutes)
                                                    or self.time_limit_minutes < 0):
            raise bad("time_limit_minutes", "null or a non-negative number")
        if not isinstance(self.preprocess, Mapping) or set(self.preprocess) - {f.name for f in fields(PreprocessConfig)}:
            raise bad("preprocess", "an object of PreprocessConfig fields")
        PreprocessConfig(**self.preprocess)
        for key, build in (("generator", build_generator), ("discriminator", build_discriminator)):
            if not isinstance(getattr(self, key), Mapping):
                raise bad(key, "an object of the network's arguments")
            try:
                with torch.device("meta"):
                    network = build(getattr(self, key))
            except (TypeError, ValueError) as exc:
                raise BratsConfigError(f"config {key} {dict(getattr(self, key))}: {exc}") from None
        if self.crop_size % network_divisor(self.generator):
            raise BratsConfigError(f"config crop_size {self.crop_size} must be a multiple of "
                                   f"{network_divisor(self.generator)} for the generator's stages")
        del network
        return self


def network_divisor(generator: Mapping[str, Any]) -> int:
    """Every crop side must be a multiple of this for the generator ``generator``."""
    return 2 ** (len(generator.get("features_per_stage", (16, 32, 64, 128))) - 1)


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (``getrusage``; KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


class GanTrainer:
    """Runs one GanConfig; ``run()`` trains (or resumes) to ``config.epochs``.

    ``amp`` (bf16 autocast) applies on CUDA; tests may set ``trainer.amp = True`` to run that path on the CPU.
    """

    def __init__(self, config: GanConfig, progress: bool = True, override: bool = False):
        self.config = config.validate()
        self.override = override
        self.device = resolve_device(config.device)
        self.progress = progress
        self.run_dir = Path(config.run_dir)
        self.amp = config.amp and self.device.type == "cuda"

    def _build(self, splits: Mapping[str, list[str]]) -> None:
        c = self.config
        torch.manual_seed(c.seed)
        self.generator = build_generator({**c.generator, "checkpointing": c.checkpointing}).to(self.device)
        self.discriminator = build_discriminator(c.discriminator).to(self.device)
        betas = tuple(float(b) for b in c.betas)
        self.opt_g = torch.optim.AdamW(self.generator.parameters(), lr=c.lr, betas=betas, weight_decay=c.weight_decay)
        self.opt_d = torch.optim.AdamW(self.discriminator.parameters(), lr=c.lr, betas=betas,
                                       weight_decay=c.weight_decay)
        train_ids = list(splits.get("train") or [])
        if not train_ids:
            raise BratsConfigError(f"{c.cache_dir}: the split has no training case")
        self.crops = TumourCrops(c.cache_dir, train_ids, c.crop_size, c.crop_jitter, c.seed)
        val_ids = list(splits.get("val") or train_ids[:1])
        self.val_crops = TumourCrops(c.cache_dir, val_ids, c.crop_size, 0, c.seed + 1)

    @property
    def total_steps(self) -> int:
        return self.config.epochs * self.config.iterations_per_epoch

    def step(self, image: torch.Tensor, label: torch.Tensor, noise: torch.Tensor, weight: float
             ) -> dict[str, torch.Tensor]:
        """One discriminator and one generator update on a batch; the losses, detached, on the device."""
        mask = inpaint_mask(label, self.config.dilation)
        labels = label_channels(label)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            fake = composite(image, self.generator(generator_input(image, label, mask, noise)).float(), mask)
            d_loss = hinge_discriminator(self.discriminator(image, labels), self.discriminator(fake.detach(), labels))
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            adv = hinge_generator(self.discriminator(fake, labels))
        l1 = masked_l1(fake, image, mask)
        g_loss = weight * l1 + adv / weight
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "g_adv": adv.detach(), "l1": l1.detach()}

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        c = self.config
        self.generator.train()
        self.discriminator.train()
        generator = epoch_generator(c.seed, epoch)  # the noise of the epoch, drawn on the CPU
        sums: dict[str, torch.Tensor] = {}
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        bar = tqdm(range(c.iterations_per_epoch), desc=f"GAN epoch {epoch + 1}/{c.epochs}",
                   disable=not self.progress, leave=False)
        weight = c.l1_weight_start
        t0 = time.perf_counter()
        for iteration in bar:
            image, label = self.crops.batch(epoch, iteration, c.batch_size)
            noise = torch.randn(image.shape, generator=generator)
            image, label, noise = (t.to(self.device, non_blocking=True) for t in (image, label, noise))
            weight = l1_weight(epoch * c.iterations_per_epoch + iteration, self.total_steps,
                               c.l1_weight_start, c.l1_weight_end)
            losses = self.step(image, label, noise, weight)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0) + v
        seconds = time.perf_counter() - t0
        row = {k: float(v) / c.iterations_per_epoch for k, v in sums.items()}
        if not all(math.isfinite(v) for v in row.values()):
            raise RuntimeError(f"non-finite GAN loss at epoch {epoch + 1} ({row}); the last good checkpoint is "
                               f"{self.run_dir / 'last.pt'}")
        row["l1_weight"] = weight
        row["seconds_per_step"] = seconds / c.iterations_per_epoch
        row["peak_rss_mib"] = peak_rss_mib()
        row["peak_gpu_mib"] = (torch.cuda.max_memory_allocated(self.device) / 2**20
                               if self.device.type == "cuda" else float("nan"))
        return row

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Masked L1 on the fixed validation crops: the generator's, and mean-fill's (each contrast's mean of
        the crop's brain voxels outside the mask: the baseline that needs no training)."""
        c = self.config
        self.generator.eval()
        image, label = self.val_crops.fixed(c.val_crops)
        noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(c.seed + 1))
        image, label, noise = image.to(self.device), label.to(self.device), noise.to(self.device)
        mask = inpaint_mask(label, c.dilation)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            fake = composite(image, self.generator(generator_input(image, label, mask, noise)).float(), mask)
        return {"val_l1": float(masked_l1(fake, image, mask)),
                "val_mean_fill_l1": float(masked_l1(mean_fill(image, mask), image, mask))}

    def _payload(self, epoch: int, history: list, best: float) -> dict[str, Any]:
        return {"kind": RUN_KIND, "generator": self.generator.state_dict(),
                "discriminator": self.discriminator.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "epoch": epoch, "rng": _rng_state(),
                "config": self.config.to_dict(), "history": history, "best_score": best}

    def _check_resume(self) -> None:
        last = self.run_dir / "last.pt"
        if not last.exists():
            return
        stored_file = self.run_dir / "config.json"
        stored = read_config_file(stored_file) if stored_file.exists() else load_checkpoint(last)["config"]
        changes = config_changes(stored, self.config.to_dict())
        if not changes:
            return
        listed = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changes.items())
        if not self.override:
            raise BratsConfigError(f"{self.run_dir}: resuming with a config that differs from the run's "
                                   f"config.json ({listed}); use a new run_dir, or --override")
        log.warning("%s: resuming under a changed config (--override): %s", self.run_dir, listed)

    def _resume(self) -> tuple[int, list, float]:
        last = self.run_dir / "last.pt"
        if not last.exists():
            return 0, [], math.inf
        state = load_checkpoint(last, self.device)
        if not isinstance(state, dict) or state.get("kind") != RUN_KIND:
            raise BratsConfigError(f"{last}: not a GAN checkpoint; use a new run_dir")
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        _set_rng_state(state["rng"])
        history = list(state["history"])
        _write_metrics(self.run_dir, history)
        return state["epoch"] + 1, history, float(state["best_score"])

    def run(self) -> list[dict[str, Any]]:
        """Train from scratch or from ``last.pt`` to ``config.epochs``; returns the metrics history."""
        c = self.config
        self._check_resume()
        splits = prepare_data(c, progress=self.progress)  # the segmentation cache and split (duck-typed)
        self._build(splits)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.run_dir / "config.json", json.dumps(c.to_dict(), indent=1))
        start_epoch, history, best = self._resume()
        started = time.perf_counter()
        for epoch in range(start_epoch, c.epochs):
            t0 = time.perf_counter()
            row = {"epoch": epoch + 1, **self._train_epoch(epoch), **self.validate(),
                   "lr": self.opt_g.param_groups[0]["lr"]}
            row["seconds"] = time.perf_counter() - t0
            history.append(row)
            improved = row["val_l1"] < best
            best = row["val_l1"] if improved else best
            payload = self._payload(epoch, history, best)
            if improved:
                save_checkpoint(self.run_dir / "best.pt", payload)
            _write_metrics(self.run_dir, history)
            save_checkpoint(self.run_dir / "last.pt", payload)
            if self.progress:
                log_line(f"GAN epoch {epoch + 1}: D {row['d_loss']:.3f} G {row['g_loss']:.3f} "
                         f"L1 {row['l1']:.3f} val L1 {row['val_l1']:.3f} (mean fill {row['val_mean_fill_l1']:.3f}) "
                         f"peak RSS {row['peak_rss_mib']:.0f} MiB")
            if c.time_limit_minutes is not None and time.perf_counter() - started > 60 * c.time_limit_minutes:
                break
        return history


def mean_fill(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean-fill baseline: each crop's and contrast's mean over its brain voxels (non-zero in some
    contrast) outside the mask, written into the mask."""
    m = mask.bool()
    context = (~m) & (image != 0).any(dim=1, keepdim=True)
    counts = context.sum(dim=(2, 3, 4), keepdim=True).clamp_min(1)
    means = (image * context).sum(dim=(2, 3, 4), keepdim=True) / counts
    return torch.where(m, means.expand_as(image), image)


def train_gan(config: GanConfig | Mapping[str, Any], progress: bool = True, override: bool = False
              ) -> list[dict[str, Any]]:
    """Run (or resume) a GAN configuration; see :class:`GanTrainer`."""
    if not isinstance(config, GanConfig):
        config = GanConfig.from_dict(config)
    return GanTrainer(config, progress, override).run()


def load_gan_run(run_dir: str | Path, checkpoint: str = "best.pt", device: str | torch.device = "cpu"):
    """(generator in eval mode, GanConfig) of a GAN run directory (``checkpoint``, else ``last.pt``).

    Raises:
        BratsConfigError: no such directory, no checkpoint, an unreadable one, or one that is not a GAN's.
    """
    path, state = read_run_checkpoint(run_dir, checkpoint, device, train_hint="train the GAN first")
    if not isinstance(state, dict) or state.get("kind") != RUN_KIND:
        raise BratsConfigError(f"{path}: not a GAN run (a segmentation or other checkpoint); "
                               "give a run of `brats gan-train`")
    config = GanConfig.from_dict(state["config"])
    generator = build_generator(config.generator).to(device)
    generator.load_state_dict(state["generator"])
    return generator.eval(), config


def run_from_args(args: argparse.Namespace) -> int:
    """``brats gan-train``."""
    values = apply_overrides(read_config_file(args.config), args.set)
    train_gan(GanConfig.from_dict(values), override=args.override)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m brats_lib.gan.train")
    parser.add_argument("--config", required=True)
    parser.add_argument("--set", nargs="*", default=[])
    parser.add_argument("--override", action="store_true")
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except BratsUserError as exc:
        print(f"brats gan-train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
