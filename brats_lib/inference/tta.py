"""Test-time augmentation by mirroring, and ensembles of networks, averaged in probability space.

Both happen **per window** inside the sliding window (as nnU-Net does): each batch of windows is mirrored
along every chosen subset of axes, passed through every network, turned into probabilities, mirrored back
and averaged. The volume is therefore never copied per flip or per model, and the blend still holds one
accumulator. Because window placement and the Gaussian are symmetric (:mod:`.sliding_window`), this equals
mirroring the whole volume.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..models import probabilities
from .sliding_window import Predictor, _first_output, resolve_device, sliding_window

#: All three spatial axes: 2³ = 8 mirrored copies.
ALL_AXES: tuple[int, ...] = (0, 1, 2)


def flip_combinations(tta_axes: Sequence[int] | None) -> list[tuple[int, ...]]:
    """Every subset of ``tta_axes`` (spatial axes 0, 1, 2), the empty one (no flip) first.

    ``(0, 1, 2)`` → 8 subsets; ``(0,)`` → ``[(), (0,)]``; ``None`` or ``()`` → ``[()]``.
    """
    axes = sorted(set(int(a) for a in (tta_axes or ())))
    if any(a not in ALL_AXES for a in axes):
        raise ValueError(f"tta_axes must be spatial axes among {ALL_AXES}, got {tta_axes!r}")
    return [combo for r in range(len(axes) + 1) for combo in itertools.combinations(axes, r)]


def ensemble_predictor(models: nn.Module | Sequence[nn.Module | Predictor], mode: str,
                       tta_axes: Sequence[int] | None = None) -> Predictor:
    """A window predictor averaging the probabilities of every model on every mirrored copy.

    Args:
        models: one network or several (ensemble members; each maps (B, C_in, px, py, pz) → logits).
        mode: ``"softmax"`` or ``"regions"``: how each member's logits become probabilities.
        tta_axes: spatial axes to mirror (all subsets are used); ``None`` for no TTA.
    Returns:
        callable (B, C_in, px, py, pz) → (B, C_out, px, py, pz) float32 mean probabilities, to be used with
        ``sliding_window(..., mode=None)``.
    """
    members = list(models) if isinstance(models, (list, tuple)) else [models]
    if not members:
        raise ValueError("an ensemble needs at least one model")
    flips = [tuple(a + 2 for a in combo) for combo in flip_combinations(tta_axes)]  # spatial → tensor dims

    def predict(windows: torch.Tensor) -> torch.Tensor:
        total = None
        for member in members:
            for dims in flips:
                x = windows.flip(dims) if dims else windows
                p = probabilities(_first_output(member(x)), mode)
                if dims:
                    p = p.flip(dims)
                total = p if total is None else total.add_(p)
        return total.div_(len(members) * len(flips))

    return predict


def predict_probabilities(models: nn.Module | Sequence[nn.Module], image: torch.Tensor | np.ndarray,
                          patch_size: int | Sequence[int], mode: str = "softmax",
                          tta_axes: Sequence[int] | None = ALL_AXES, overlap: float = 0.5, batch_size: int = 2,
                          device: torch.device | str | None = None, amp: bool = True,
                          channels_last: bool = False, output_device: torch.device | str | None = None
                          ) -> torch.Tensor:
    """Sliding-window probabilities of an ensemble with mirroring TTA.

    Args:
        models: one network or several sharing ``mode`` and input channels (each is put in eval mode and
            moved to ``device``).
        image: (C_in, X, Y, Z) preprocessed image.
        patch_size, overlap, batch_size, device, amp, channels_last, output_device: as
            :func:`.sliding_window.sliding_window`.
        mode: ``"softmax"`` or ``"regions"``.
        tta_axes: spatial axes to mirror (``(0, 1, 2)``: 8 copies); ``None`` or ``()`` for none.
    Returns:
        (C_out, X, Y, Z) float32 mean probabilities over models, mirrored copies and windows.
    """
    members = list(models) if isinstance(models, (list, tuple)) else [models]
    image = torch.as_tensor(image)
    device = resolve_device(device, image.device)
    for member in members:
        if isinstance(member, nn.Module):
            member.to(device).eval()
            if device.type == "cuda" and channels_last:
                member.to(memory_format=torch.channels_last_3d)
    predictor = ensemble_predictor(members, mode, tta_axes)
    return sliding_window(predictor, image, patch_size, overlap=overlap, batch_size=batch_size, mode=None,
                          device=device, amp=amp, channels_last=channels_last, output_device=output_device)
