"""Parameter containers, random sampling and the transform base class.

Every random transform works in two steps, as in TorchIO:

* ``sample(batch_size, generator, num_channels)`` draws the parameters of each sample on the CPU from a
  :class:`torch.Generator` and returns a small :class:`Params` dataclass of CPU tensors whose first dimension
  is the batch. The same seed therefore gives the same parameters whatever device the images live on.
* ``apply(image, label, params)`` is deterministic: it moves the (tiny) parameter tensors to the image's
  device and transforms the batch. Replaying the same parameters gives the same output.

Tensor conventions used throughout the package:

* image: (B, C, X, Y, Z) float32/float64 (float16/bfloat16 accepted: computed in float32, returned in the
  input dtype);
* label: (B, X, Y, Z) or (B, 1, X, Y, Z) integer (uint8/int64…), values 0..4, dtype and layout kept;
* spatial axes are numbered 0, 1, 2 for X, Y, Z; sizes are in voxels, angles in degrees.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import torch
from torch import Tensor

HALF_DTYPES = (torch.float16, torch.bfloat16)


@dataclasses.dataclass
class Params:
    """Base of the per-transform parameter dataclasses.

    Tensor fields hold one row per sample (first dimension = batch) and live on the CPU unless moved with
    :meth:`to`; transforms accept them on any device.
    """

    def to(self, device: torch.device | str) -> "Params":
        """A copy with every tensor field (and nested :class:`Params`) on ``device``."""
        changes = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (Tensor, Params)):
                changes[f.name] = value.to(device)
        return dataclasses.replace(self, **changes)

    @property
    def batch_size(self) -> int:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor) and value.dim() > 0:
                return int(value.shape[0])
        raise ValueError(f"{type(self).__name__} holds no batched tensor")

    def describe(self, index: int = 0) -> str:
        """One line naming the parameters of sample ``index`` (for plot titles)."""
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                row = value[index].detach().cpu()
                if row.numel() <= 4:
                    parts.append(f"{f.name}={_fmt(row)}")
        return f"{type(self).__name__}({', '.join(parts)})"


def _fmt(row: Tensor) -> str:
    if row.dtype == torch.bool:
        values = [str(bool(v)) for v in row.reshape(-1)]
    elif row.is_floating_point():
        values = [f"{float(v):.3g}" for v in row.reshape(-1)]
    else:
        values = [str(int(v)) for v in row.reshape(-1)]
    return values[0] if len(values) == 1 else "(" + ", ".join(values) + ")"


# ----------------------------------------------------------------------------------------------- sampling


def uniform(low: float, high: float, shape: Sequence[int], generator: torch.Generator | None) -> Tensor:
    """CPU float32 tensor of ``shape`` drawn uniformly from [low, high)."""
    return torch.rand(tuple(shape), generator=generator, dtype=torch.float32) * (high - low) + low


def bernoulli(p: float, shape: Sequence[int], generator: torch.Generator | None) -> Tensor:
    """CPU bool tensor of ``shape``, each entry True with probability ``p``.

    Always consumes the same amount of randomness, so later draws do not depend on ``p``.
    """
    return torch.rand(tuple(shape), generator=generator) < p


def seeds(shape: Sequence[int], generator: torch.Generator | None) -> Tensor:
    """CPU int64 seeds in [0, 2**62) for device-side random fields (noise)."""
    return torch.randint(0, 2**62, tuple(shape), generator=generator, dtype=torch.int64)


def on(t: Tensor, device: torch.device, dtype: torch.dtype | None = None) -> Tensor:
    """``t`` on ``device`` (and in ``dtype``); a no-op when it is already there."""
    return t.to(device=device, dtype=dtype if dtype is not None else t.dtype, non_blocking=True)


# ----------------------------------------------------------------------------------------------- transforms


class Transform:
    """A random augmentation: :meth:`sample` parameters, then :meth:`apply` them.

    Subclasses implement :meth:`sample` and :meth:`_apply`; :meth:`apply` handles the label layout,
    half precision and autocast once for every transform.
    """

    def sample(self, batch_size: int, generator: torch.Generator | None = None, num_channels: int = 4) -> Params:
        raise NotImplementedError

    def _apply(self, image: Tensor, label: Tensor | None, params: Params, inplace: bool) -> tuple[Tensor, Tensor | None]:
        """Work on image (B, C, X, Y, Z) float32/64 and label (B, 1, X, Y, Z) or None.

        With ``inplace`` the transform may overwrite ``image`` (the caller owns it); otherwise it must not.
        """
        raise NotImplementedError

    def apply(self, image: Tensor, label: Tensor | None = None, params: Params | None = None):
        """Apply ``params`` to a batch; returns ``(image, label)`` with the input dtypes and layouts."""
        if params is None:
            raise ValueError("apply needs params; use the transform as a callable to sample them")
        return run_steps([(self, params)], image, label)

    def __call__(self, image: Tensor, label: Tensor | None = None, generator: torch.Generator | None = None):
        """Sample parameters for this batch (from ``generator``, else torch's global CPU RNG) and apply them."""
        params = self.sample(image.shape[0], generator, num_channels=image.shape[1])
        return self.apply(image, label, params)

    def __repr__(self) -> str:
        if dataclasses.is_dataclass(self):
            fields = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self))
            return f"{type(self).__name__}({fields})"
        return super().__repr__()


def check_batch(image: Tensor, label: Tensor | None) -> None:
    if image.dim() != 5 or not image.is_floating_point():
        raise ValueError(f"image must be a float (B, C, X, Y, Z) tensor, got {tuple(image.shape)} {image.dtype}")
    if label is None:
        return
    if label.is_floating_point() or label.dtype == torch.bool:
        raise ValueError(f"label must be an integer tensor, got {label.dtype}")
    spatial = tuple(label.shape[-3:])
    layout_ok = label.dim() == 4 or (label.dim() == 5 and label.shape[1] == 1)
    if not layout_ok or label.shape[0] != image.shape[0] or spatial != tuple(image.shape[2:]):
        raise ValueError(f"label {tuple(label.shape)} does not match image {tuple(image.shape)}: "
                         "expected (B, X, Y, Z) or (B, 1, X, Y, Z)")
    if label.device != image.device:
        raise ValueError(f"label on {label.device}, image on {image.device}")


def run_steps(steps: Sequence[tuple[Transform, Any]], image: Tensor, label: Tensor | None):
    """Apply ``(transform, params)`` steps in order, owning intermediate tensors so later steps work in place.

    The input tensors are never modified. Autocast is switched off inside: resampling coordinates need
    float32, and the output dtype must not depend on the caller's autocast context.
    """
    check_batch(image, label)
    out_dtype = image.dtype
    work_dtype = torch.float32 if out_dtype in HALF_DTYPES else out_dtype
    owned = out_dtype != work_dtype or not image.is_contiguous()
    image = image.to(work_dtype, memory_format=torch.contiguous_format)
    squeeze = label is not None and label.dim() == 4
    if squeeze:
        label = label.unsqueeze(1)
    with torch.autocast(device_type=image.device.type, enabled=False):
        for transform, params in steps:
            new_image, label = transform._apply(image, label, params, owned)
            owned = owned or new_image is not image
            image = new_image
    if squeeze:
        label = label.squeeze(1)
    return image.to(out_dtype), label
