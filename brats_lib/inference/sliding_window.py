"""Gaussian-weighted sliding-window prediction over a whole preprocessed volume.

Windows of ``patch_size`` voxels are placed nnU-Net style: per axis the fewest windows whose step is at most
``patch · (1 − overlap)``, spread evenly from the first to the last voxel (so the placement is symmetric
under a flip of the axis, and mirroring at the window level equals mirroring the volume). Each window's
prediction is weighted by a Gaussian importance map (σ = patch / 8 per axis) that trusts window centres
more than borders, and the blend is the weighted mean.

What is blended: **probabilities**, not logits. nnU-Net sums Gaussian-weighted logits and applies the
softmax once at the end; we apply the softmax (or the region sigmoid) per window and blend probabilities.
The extra cost is one softmax per window (negligible next to the network), and in exchange

* the blend is a convex combination of bounded values, so one over-confident window border (a logit of
  ±50) cannot dominate a voxel it barely reaches;
* windows, mirrored copies (:mod:`.tta`) and ensemble members are all averaged in the same space, the
  probabilities that :func:`brats_lib.models.decode_probabilities` thresholds;
* sigmoid region outputs, whose logits are not shift-invariant like softmax logits, blend meaningfully.

Memory: besides the input (and a zero-padded copy only if the volume is smaller than the patch), exactly
one (C, X, Y, Z) float32 accumulator and one (X, Y, Z) float32 weight sum live on the device; the weighted
sum is normalised in place.
"""

from __future__ import annotations

import itertools
import math
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..device import resolve_device
from ..models import probabilities

#: Gaussian σ as a fraction of the patch edge (nnU-Net's and MONAI's default 1/8).
SIGMA_SCALE = 0.125

#: Smallest importance weight relative to the centre, so that a voxel reached only by window corners
#: is never divided by (almost) zero.
MIN_WEIGHT = 1e-3

Predictor = Callable[[torch.Tensor], torch.Tensor]


def as_triple(size: int | Sequence[int]) -> tuple[int, int, int]:
    """``64`` or ``(64, 64, 48)`` → a 3-tuple of positive ints (voxels)."""
    sizes = (int(size),) * 3 if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)
    if len(sizes) != 3 or min(sizes) < 1:
        raise ValueError(f"patch_size must be a positive int or three of them, got {size!r}")
    return sizes  # type: ignore[return-value]


def gaussian_importance_map(patch_size: int | Sequence[int], sigma_scale: float = SIGMA_SCALE,
                            min_weight: float = MIN_WEIGHT, device: torch.device | str | None = None
                            ) -> torch.Tensor:
    """Separable Gaussian window weights.

    Args:
        patch_size: window size (voxels), an int or three.
        sigma_scale: σ per axis as a fraction of that axis's patch size.
        min_weight: weights are clamped to at least this (the centre weight is 1).
        device: where to create it.
    Returns:
        (px, py, pz) float32, centred on the window centre ((p − 1) / 2 per axis, so symmetric under every
        flip), maximum 1, minimum ``min_weight``.
    """
    patch = as_triple(patch_size)
    weights = None
    for axis, p in enumerate(patch):
        x = torch.arange(p, dtype=torch.float64, device=device) - (p - 1) / 2
        g = torch.exp(-0.5 * (x / (sigma_scale * p)) ** 2)
        shape = [1, 1, 1]
        shape[axis] = p
        g = g.reshape(shape)
        weights = g if weights is None else weights * g
    weights = weights / weights.max()
    return weights.clamp_(min=min_weight).to(torch.float32)


def window_starts(size: int, patch: int, overlap: float) -> list[int]:
    """First voxel of each window along one axis of ``size`` voxels (``size >= patch``).

    The fewest windows whose spacing does not exceed ``patch · (1 − overlap)``, spread evenly so that the
    first starts at 0 and the last ends at ``size`` (nnU-Net's placement).
    """
    if size < patch:
        raise ValueError(f"axis of {size} voxels is smaller than the patch ({patch}); pad it first")
    if size == patch:
        return [0]
    max_step = max(1.0, patch * (1.0 - overlap))
    n = math.ceil((size - patch) / max_step) + 1
    step = (size - patch) / (n - 1)
    return [int(round(i * step)) for i in range(n)]


def window_slices(shape: Sequence[int], patch_size: int | Sequence[int], overlap: float
                  ) -> list[tuple[slice, slice, slice]]:
    """Every window of a (X, Y, Z) volume as a tuple of three slices, in C order of the start positions."""
    patch = as_triple(patch_size)
    starts = [window_starts(int(s), p, overlap) for s, p in zip(shape, patch)]
    return [tuple(slice(s, s + p) for s, p in zip(corner, patch))
            for corner in itertools.product(*starts)]  # type: ignore[misc]


def _symmetric_padding(shape: Sequence[int], patch: Sequence[int]) -> tuple[list[int], tuple[slice, ...]]:
    """(``F.pad`` argument that grows each axis to at least the patch, slices that crop the padding off)."""
    pad, crop = [], []
    for s, p in zip(shape, patch):
        total = max(p - s, 0)
        before = total // 2
        pad.append((before, total - before))
        crop.append(slice(before, before + s))
    flat = [v for pair in reversed(pad) for v in pair]  # F.pad lists the last axis first
    return flat, tuple(crop)


def _first_output(output) -> torch.Tensor:
    """A network's output tensor; deep-supervision lists give their full-resolution head."""
    return output[0] if isinstance(output, (list, tuple)) else output


@torch.inference_mode()
def _sliding_window_one(predictor: Predictor, image: torch.Tensor, patch: tuple[int, int, int], overlap: float,
                        batch_size: int, mode: str | None, device: torch.device, amp: bool,
                        channels_last: bool, gaussian: torch.Tensor) -> torch.Tensor:
    """One (C_in, X, Y, Z) volume → (C_out, X, Y, Z) float32 blended probabilities on ``device``."""
    image = image.to(device=device, dtype=torch.float32)
    shape = tuple(image.shape[1:])
    pad, crop = _symmetric_padding(shape, patch)
    padded = any(pad)
    if padded:
        image = F.pad(image, pad)
    slices = window_slices(image.shape[1:], patch, overlap)
    cuda = device.type == "cuda"
    accumulator: torch.Tensor | None = None
    weight = torch.zeros(image.shape[1:], dtype=torch.float32, device=device)
    for first in range(0, len(slices), batch_size):
        batch_slices = slices[first:first + batch_size]
        windows = torch.stack([image[(slice(None),) + sl] for sl in batch_slices])
        if cuda and channels_last:
            windows = windows.contiguous(memory_format=torch.channels_last_3d)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and cuda):
            output = _first_output(predictor(windows))
            output = probabilities(output, mode) if mode is not None else output.float()
        if accumulator is None:
            accumulator = torch.zeros((output.shape[1],) + tuple(image.shape[1:]), dtype=torch.float32,
                                      device=device)
        for window_output, sl in zip(output, batch_slices):
            accumulator[(slice(None),) + sl].addcmul_(window_output, gaussian)
            weight[sl] += gaussian
    if accumulator is None:  # there is always at least one window: an internal invariant
        raise RuntimeError("sliding window produced no window")
    accumulator.div_(weight)
    if padded:
        accumulator = accumulator[(slice(None),) + crop].contiguous()
    return accumulator


def sliding_window(model: nn.Module | Predictor, image: torch.Tensor | np.ndarray,
                   patch_size: int | Sequence[int], overlap: float = 0.5, batch_size: int = 2,
                   mode: str | None = "softmax", device: torch.device | str | None = None, amp: bool = True,
                   channels_last: bool = False, output_device: torch.device | str | None = None,
                   sigma_scale: float = SIGMA_SCALE) -> torch.Tensor:
    """Predict a whole volume by Gaussian-weighted sliding windows.

    Args:
        model: a network (put in eval mode and moved to ``device``) or any callable mapping a
            (B, C_in, px, py, pz) float32 batch of windows to (B, C_out, px, py, pz) logits.
        image: (C_in, X, Y, Z) or (B, C_in, X, Y, Z) preprocessed image (float; numpy or tensor, any device).
        patch_size: window size (voxels), an int or three; each must suit the network (e.g. a multiple of
            its ``divisor``). An axis shorter than the patch is zero-padded symmetrically and cropped back.
        overlap: fraction (0 ≤ overlap < 1) of a window shared with its neighbour along each axis.
        batch_size: windows per forward pass.
        mode: ``"softmax"`` or ``"regions"`` turns each window's logits into probabilities before blending;
            ``None`` blends the model's outputs as they are (e.g. probabilities from :mod:`.tta`).
        device: where the network runs and the blend accumulates (default: the image's device; ``"auto"``
            picks CUDA when available).
        amp: bf16 autocast for the forward pass, on CUDA only (CPU runs float32).
        channels_last: feed ``channels_last_3d`` windows (and convert the model) on CUDA.
        output_device: where the result goes (default: ``device``).
        sigma_scale: Gaussian σ as a fraction of the patch size.
    Returns:
        (C_out, X, Y, Z) float32 probabilities (or blended outputs for ``mode=None``); (B, C_out, X, Y, Z)
        for a batched input (volumes processed one at a time).
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    image = torch.as_tensor(image)
    if image.ndim not in (4, 5):
        raise ValueError(f"expected a (C, X, Y, Z) or (B, C, X, Y, Z) image, got shape {tuple(image.shape)}")
    device = resolve_device(device, image.device)
    output_device = resolve_device(output_device, device)
    patch = as_triple(patch_size)
    if isinstance(model, nn.Module):
        model.to(device).eval()
        if device.type == "cuda" and channels_last:
            model.to(memory_format=torch.channels_last_3d)
    gaussian = gaussian_importance_map(patch, sigma_scale, device=device)
    volumes = image if image.ndim == 5 else image[None]
    outputs = [_sliding_window_one(model, v, patch, overlap, batch_size, mode, device, amp, channels_last,
                                   gaussian).to(output_device) for v in volumes]
    return torch.stack(outputs) if image.ndim == 5 else outputs[0]
