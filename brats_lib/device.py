"""One device resolver for training and inference: ``auto``, ``cpu``, ``cuda``, ``cuda:1`` … checked."""

from __future__ import annotations

import os

import torch

from .errors import BratsConfigError


def resolve_device(device: torch.device | str | None, fallback: torch.device | None = None) -> torch.device:
    """The ``torch.device`` a user's device name asks for.

    ``None`` → ``fallback`` (or CPU); ``"auto"`` → CUDA when available, else CPU; a CUDA device without an
    index gets this rank's GPU (``LOCAL_RANK`` under torchrun, else 0).

    Raises:
        BratsConfigError: an unknown device name, or CUDA (or a CUDA index) that this machine does not have.
    """
    if device is None:
        return fallback if fallback is not None else torch.device("cpu")
    if isinstance(device, str) and device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:  # torch's own message for a name it cannot parse
        raise BratsConfigError(f"device {device!r} is not a device name ({exc}); use auto, cpu, cuda or "
                               "cuda:N") from None
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise BratsConfigError(f"device {str(device)!r} asked for, but CUDA is not available on this machine; "
                               "use device cpu (or auto)")
    if device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if device.index >= torch.cuda.device_count():
        raise BratsConfigError(f"device {str(device)!r} asked for, but this machine has "
                               f"{torch.cuda.device_count()} CUDA device(s)")
    return device


__all__ = ["resolve_device"]
