"""Segmentation losses on logits: cross-entropy, soft Dice, CE + Dice, and region-based BCE + Dice.

Shapes: ``logits`` (B, C, X, Y, Z) raw network outputs (never softmax-ed before the loss);
``target`` (B, X, Y, Z) integer labels 0–4 in the 2024 convention. ``mode`` is the output mode of
:mod:`brats_lib.models.heads`: ``softmax`` (C = 5) or ``regions`` (C = 4 sigmoid channels WT, TC, ET, RC).
All losses are scalar means; nothing is ignored: a target value outside the model's classes raises.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .models.heads import num_outputs, region_targets


def _check(logits: torch.Tensor, target: torch.Tensor, mode: str) -> None:
    expected = num_outputs(mode)
    if logits.shape[1] != expected:
        raise ValueError(f"{mode} loss expects {expected} channels, got logits of shape {tuple(logits.shape)}")
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(f"target shape {tuple(target.shape)} does not match logits {tuple(logits.shape)}")
    # the value range is checked on CPU tensors only: on an accelerator it would stall every step on a host
    # synchronisation, and training labels were already validated when read (brats_lib.io)
    if target.device.type == "cpu" and target.numel():
        low, high = (int(v) for v in torch.aminmax(target))
        if low < 0 or high > 4:
            raise ValueError(f"target holds labels outside 0–4 (min {low}, max {high})")


def _probs_and_onehot(logits: torch.Tensor, target: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    if mode == "softmax":
        probs = torch.softmax(logits.float(), dim=1)
        onehot = F.one_hot(target.long(), num_classes=5).movedim(-1, 1).float()
        return probs, onehot
    return torch.sigmoid(logits.float()), region_targets(target)


#: Sums a (2, C) stack of batch-Dice statistics [Σpg, Σp + Σg] over a group (e.g. DDP ranks), with gradient.
StatsReduce = Callable[[torch.Tensor], torch.Tensor]


def soft_dice_per_channel(probs: torch.Tensor, onehot: torch.Tensor, batch_dice: bool = True,
                          smooth: float = 1e-5, reduce: StatsReduce | None = None) -> torch.Tensor:
    """Soft Dice (2·Σpg + s) / (Σp + Σg + s) per channel.

    Args:
        probs, onehot: (B, C, X, Y, Z) probabilities and {0, 1} targets.
        batch_dice: sum over the whole batch (nnU-Net's batch Dice; stable for empty patches) rather than
            per sample.
        reduce: batch Dice only: sums the statistics over a group of processes, so that each holds the
            Dice of the group's combined batch (see :func:`set_dice_reduction`).
    Returns:
        (C,) if ``batch_dice`` else (B, C).
    """
    dims = (0, 2, 3, 4) if batch_dice else (2, 3, 4)
    intersection = (probs * onehot).sum(dims)
    denominator = probs.sum(dims) + onehot.sum(dims)
    if reduce is not None:
        if not batch_dice:
            raise ValueError("a Dice reduction across processes needs the batch Dice")
        intersection, denominator = reduce(torch.stack([intersection, denominator]))
    return (2 * intersection + smooth) / (denominator + smooth)


class CrossEntropyLoss(nn.Module):
    """Multi-class cross-entropy from logits (softmax mode) — the student project's loss, done right."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check(logits, target, "softmax")
        return F.cross_entropy(logits.float(), target.long())


class SoftDiceLoss(nn.Module):
    """1 − mean soft Dice over the foreground channels (labels 1–4, or all four regions)."""

    def __init__(self, mode: str = "softmax", batch_dice: bool = True, smooth: float = 1e-5):
        super().__init__()
        num_outputs(mode)
        self.mode, self.batch_dice, self.smooth = mode, batch_dice, smooth
        self.reduce: StatsReduce | None = None  # see set_dice_reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check(logits, target, self.mode)
        probs, onehot = _probs_and_onehot(logits, target, self.mode)
        if self.mode == "softmax":
            probs, onehot = probs[:, 1:], onehot[:, 1:]
        return 1 - soft_dice_per_channel(probs, onehot, self.batch_dice, self.smooth, self.reduce).mean()


class DiceCELoss(nn.Module):
    """Cross-entropy + soft Dice (softmax mode), or BCE-with-logits + soft Dice (regions mode)."""

    def __init__(self, mode: str = "softmax", weight_ce: float = 1.0, weight_dice: float = 1.0,
                 batch_dice: bool = True):
        super().__init__()
        self.mode, self.weight_ce, self.weight_dice = mode, weight_ce, weight_dice
        self.dice = SoftDiceLoss(mode, batch_dice)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check(logits, target, self.mode)
        if self.mode == "softmax":
            ce = F.cross_entropy(logits.float(), target.long())
        else:
            ce = F.binary_cross_entropy_with_logits(logits.float(), region_targets(target))
        return self.weight_ce * ce + self.weight_dice * self.dice(logits, target)


class DeepSupervisionLoss(nn.Module):
    """Weighted sum of ``loss`` over deep-supervision outputs (full resolution first).

    Weights halve with each coarser output and are normalised to sum to 1 (nnU-Net's scheme); targets are
    downsampled by nearest neighbour to each output's size.
    """

    def __init__(self, loss: nn.Module, weights: Sequence[float] | None = None):
        super().__init__()
        self.loss, self.weights = loss, weights

    def forward(self, outputs: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        if isinstance(outputs, torch.Tensor):
            return self.loss(outputs, target)
        weights = list(self.weights) if self.weights is not None else [0.5 ** i for i in range(len(outputs))]
        if len(weights) != len(outputs):
            raise ValueError(f"{len(weights)} weights for {len(outputs)} outputs")
        total = sum(weights)
        result = outputs[0].new_zeros((), dtype=torch.float32)
        for w, out in zip(weights, outputs):
            t = target
            if out.shape[2:] != target.shape[1:]:
                t = F.interpolate(target[:, None].float(), size=out.shape[2:], mode="nearest")[:, 0].long()
            result = result + (w / total) * self.loss(out, t)
        return result


def set_dice_reduction(loss: nn.Module, reduce: StatsReduce | None) -> nn.Module:
    """Make every batch soft-Dice term inside ``loss`` sum its statistics with ``reduce`` (``None``: local).

    Under DDP, ``reduce`` is a differentiable all-reduce: each rank then computes the Dice of the combined
    batch, and DDP's gradient averaging gives exactly the gradient of one process with that batch.
    Returns ``loss``.
    """
    for module in loss.modules():
        if isinstance(module, SoftDiceLoss):
            module.reduce = reduce if module.batch_dice else None
    return loss


LOSSES = {"ce": CrossEntropyLoss, "dice": SoftDiceLoss, "dice_ce": DiceCELoss}


def build_loss(name: str, mode: str = "softmax", deep_supervision: bool = False) -> nn.Module:
    """``ce`` (softmax only), ``dice`` or ``dice_ce`` (CE + Dice, or BCE + Dice in regions mode)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {list(LOSSES)}")
    if name == "ce":
        if mode != "softmax":
            raise ValueError("cross-entropy needs the softmax output mode; use 'dice_ce' for regions")
        loss: nn.Module = CrossEntropyLoss()
    else:
        loss = LOSSES[name](mode)
    return DeepSupervisionLoss(loss) if deep_supervision else loss
