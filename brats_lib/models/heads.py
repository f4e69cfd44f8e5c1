"""Output modes and their decoding to BraTS 2024 label maps.

* ``softmax``: 5 channels, logits of labels 0–4 (background, NETC, SNFH, ET, RC); label = argmax.
* ``regions``: 4 channels, independent sigmoid logits of the overlapping regions WT, TC, ET and RC (the
  region-based training BraTS winners use). Decoding nests them: WT → SNFH, TC within WT → NETC,
  ET within TC → ET; RC outside WT → RC.
"""

from __future__ import annotations

import torch

from ..labels import ET, NETC, RC, REGIONS, SNFH

OUTPUT_MODES = ("softmax", "regions")

#: Channel order of the ``regions`` output mode.
REGION_CHANNELS: tuple[str, ...] = ("WT", "TC", "ET", "RC")


def num_outputs(mode: str) -> int:
    """Output channels of ``mode``: 5 for ``softmax``, 4 for ``regions``."""
    if mode == "softmax":
        return 5
    if mode == "regions":
        return len(REGION_CHANNELS)
    raise ValueError(f"unknown output mode {mode!r}; expected one of {OUTPUT_MODES}")


def region_targets(label: torch.Tensor) -> torch.Tensor:
    """(B, X, Y, Z) integer labels → (B, 4, X, Y, Z) float {0, 1} targets for WT, TC, ET, RC."""
    channels = []
    for name in REGION_CHANNELS:
        mask = torch.zeros_like(label, dtype=torch.bool)
        for value in REGIONS[name]:
            mask |= label == value
        channels.append(mask)
    return torch.stack(channels, dim=1).float()


def _channel_argmax(scores: torch.Tensor) -> torch.Tensor:
    """(B, C, ...) → (B, ...) uint8 index of the largest channel, the first one on ties (as ``argmax``).

    ``max(dim=1).indices`` gives the same indices as ``argmax(dim=1)`` but on CPU about 15 times faster for
    a reduction over the channels of a (B, 5, X, Y, Z) tensor (argmax walks the strided channel axis).
    """
    return scores.max(dim=1).indices.to(torch.uint8)


def probabilities(logits: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, C, ...) logits → probabilities: softmax over channels or per-channel sigmoid."""
    num_outputs(mode)
    return torch.softmax(logits.float(), dim=1) if mode == "softmax" else torch.sigmoid(logits.float())


def decode_probabilities(probs: torch.Tensor, mode: str, threshold: float = 0.5) -> torch.Tensor:
    """(B, C, X, Y, Z) probabilities → (B, X, Y, Z) uint8 labels in the 2024 convention."""
    if probs.shape[1] != num_outputs(mode):
        raise ValueError(f"{mode} expects {num_outputs(mode)} channels, got {probs.shape[1]}")
    if mode == "softmax":
        return _channel_argmax(probs)
    wt, tc, et, rc = (probs[:, i] > threshold for i in range(4))
    label = torch.zeros(wt.shape, dtype=torch.uint8, device=probs.device)
    label[rc & ~wt] = RC
    label[wt] = SNFH
    label[wt & tc] = NETC
    label[wt & tc & et] = ET
    return label


def decode_logits(logits: torch.Tensor, mode: str, threshold: float = 0.5) -> torch.Tensor:
    """(B, C, X, Y, Z) logits → (B, X, Y, Z) uint8 labels (see :func:`decode_probabilities`)."""
    if mode == "softmax":
        num_outputs(mode)
        return _channel_argmax(logits)
    return decode_probabilities(probabilities(logits, mode), mode, threshold)
