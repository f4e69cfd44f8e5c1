"""Spatial transforms: rotation, scaling, elastic deformation and random crop in ONE resampling; flips.

:class:`RandomSpatial` composes, per sample, the sampling position of every output voxel ``o`` (voxel
coordinates relative to the output centre) in the input volume::

    input_position(o) = crop_centre + S⁻¹ Rᵀ o + d(o)

with ``R`` the content rotation, ``S`` the zoom, ``d`` the elastic displacement (a coarse random grid of
control points, smoothed, upsampled trilinearly) and ``crop_centre`` the centre of a patch-sized window.
A single :func:`torch.nn.functional.grid_sample` then resamples the image (trilinear) and the label
(nearest) with zero padding, so the output has the patch size and the crop costs nothing extra. Samples
with no rotation, zoom or deformation are cropped by slicing, which is exact.

Conventions: rotation about axis ``a`` turns the plane of axes (a+1, a+2) mod 3 from the first towards the
second, so +90° about axis 0 equals ``torch.rot90(volume, 1, dims=(Y, Z))``; the three rotations are
applied about axis 0, then 1, then 2. A zoom factor above 1 enlarges the content (samples a smaller region).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .params import Params, Transform, bernoulli, on, uniform

Size3 = tuple[int, int, int]


@dataclass
class SpatialParams(Params):
    """Per-sample spatial parameters (CPU tensors unless moved).

    Attributes:
        rotation: (B, 3) float32, degrees about axes 0, 1, 2; 0 = none.
        scale: (B, 3) float32, zoom factor per axis; 1 = none.
        elastic_field: (B, 3, G, G, G) float32 in [-1, 1], smoothed displacement at G³ control points
            spread over the output patch, channel k = displacement along axis k per voxel of magnitude.
        elastic_magnitude: (B,) float32, voxels; the displacement is at most this large; 0 = none.
        crop: (B, 3) float32 in [0, 1], position of the patch inside the free range along each axis
            (0 = start, 1 = end); ignored where the input is not larger than the patch (centred).
    """

    rotation: Tensor
    scale: Tensor
    elastic_field: Tensor
    elastic_magnitude: Tensor
    crop: Tensor

    @classmethod
    def identity(cls, batch_size: int, control_points: int = 7, crop: float = 0.5) -> "SpatialParams":
        """No rotation, zoom or deformation; a centred crop (``crop=0.5``)."""
        g = control_points
        return cls(
            rotation=torch.zeros(batch_size, 3),
            scale=torch.ones(batch_size, 3),
            elastic_field=torch.zeros(batch_size, 3, g, g, g),
            elastic_magnitude=torch.zeros(batch_size),
            crop=torch.full((batch_size, 3), float(crop)),
        )

    def resampled(self) -> Tensor:
        """(B,) bool CPU: which samples need interpolation (any rotation, zoom or deformation)."""
        rotation, scale, magnitude = (t.detach().cpu() for t in (self.rotation, self.scale, self.elastic_magnitude))
        return (rotation != 0).any(1) | (scale != 1).any(1) | (magnitude > 0)

    def describe(self, index: int = 0) -> str:
        r = self.rotation[index].tolist()
        s = self.scale[index].tolist()
        scale = f"{s[0]:.2f}" if len(set(s)) == 1 else "(" + ", ".join(f"{v:.2f}" for v in s) + ")"
        return (f"rot=({r[0]:.1f}°, {r[1]:.1f}°, {r[2]:.1f}°) zoom={scale} "
                f"elastic≤{float(self.elastic_magnitude[index]):.1f} vox")


def smooth_control_points(field: Tensor) -> Tensor:
    """Smooth (B, K, G, G, G) with a [1, 2, 1]/4 kernel along each grid axis (edges replicated).

    The kernel sums to 1, so values in [-1, 1] stay in [-1, 1].
    """
    for dim in (2, 3, 4):
        if field.shape[dim] < 2:
            continue
        padded = torch.cat([field.narrow(dim, 0, 1), field, field.narrow(dim, -1, 1)], dim)
        n = field.shape[dim]
        field = 0.25 * padded.narrow(dim, 0, n) + 0.5 * padded.narrow(dim, 1, n) + 0.25 * padded.narrow(dim, 2, n)
    return field


@dataclass(repr=False)
class RandomSpatial(Transform):
    """Random rotation, zoom, elastic deformation and crop, resampled once per sample.

    Args:
        patch_size: output (X, Y, Z) in voxels, or None to keep the input size.
        p: probability that a sample is transformed at all (then each part has its own probability);
            the crop to ``patch_size`` always happens.
        rotation: range of each of the three angles, degrees.
        p_rotation: probability that a sample is rotated (all three angles are then drawn).
        scale: range of the zoom factor (>1 enlarges the content).
        p_scale: probability that a sample is zoomed.
        isotropic_scale: one zoom factor for all axes (nnU-Net's default) or one per axis.
        elastic_magnitude: range of the largest displacement, voxels.
        p_elastic: probability that a sample is deformed.
        control_points: G, control points per axis of the coarse displacement grid.
        random_crop: random patch position (else centred).
    """

    patch_size: Size3 | None = None
    p: float = 1.0
    rotation: tuple[float, float] = (-30.0, 30.0)
    p_rotation: float = 0.2
    scale: tuple[float, float] = (0.7, 1.4)
    p_scale: float = 0.2
    isotropic_scale: bool = True
    elastic_magnitude: tuple[float, float] = (0.0, 8.0)
    p_elastic: float = 0.2
    control_points: int = 7
    random_crop: bool = True

    def sample(self, batch_size: int, generator: torch.Generator | None = None, num_channels: int = 4) -> SpatialParams:
        b, g = batch_size, self.control_points
        active = bernoulli(self.p, (b, 1), generator)
        rotation = uniform(*self.rotation, (b, 3), generator) * (bernoulli(self.p_rotation, (b, 1), generator) & active)
        zoom = uniform(*self.scale, (b, 1 if self.isotropic_scale else 3), generator).expand(b, 3).clone()
        scale = torch.where(bernoulli(self.p_scale, (b, 1), generator) & active, zoom, torch.ones(b, 3))
        field = smooth_control_points(uniform(-1.0, 1.0, (b, 3, g, g, g), generator))
        deform = bernoulli(self.p_elastic, (b,), generator) & active[:, 0]
        magnitude = uniform(*self.elastic_magnitude, (b,), generator) * deform
        crop = uniform(0.0, 1.0, (b, 3), generator) if self.random_crop else torch.full((b, 3), 0.5)
        return SpatialParams(rotation, scale, field, magnitude, crop)

    def _apply(self, image, label, params: SpatialParams, inplace):
        return resample(image, label, params, self.patch_size)


# ----------------------------------------------------------------------------------------------- geometry


def rotation_matrices(degrees: Tensor) -> Tensor:
    """(N, 3) angles in degrees → (N, 3, 3) float64 content rotations R = R₂ R₁ R₀ (see module doc)."""
    theta = torch.deg2rad(degrees.to(torch.float64))
    c, s = torch.cos(theta), torch.sin(theta)
    n = degrees.shape[0]
    result = torch.eye(3, dtype=torch.float64, device=degrees.device).expand(n, 3, 3)
    for axis in range(3):
        i, j = (axis + 1) % 3, (axis + 2) % 3
        r = torch.eye(3, dtype=torch.float64, device=degrees.device).repeat(n, 1, 1)
        r[:, i, i], r[:, i, j] = c[:, axis], -s[:, axis]
        r[:, j, i], r[:, j, j] = s[:, axis], c[:, axis]
        result = r @ result
    return result


def crop_offsets(crop: Tensor, in_size: Size3, out_size: Size3) -> Tensor:
    """(B, 3) int64 CPU index in the input of the patch's first voxel (negative: the patch overhangs)."""
    free = torch.tensor(in_size, dtype=torch.int64) - torch.tensor(out_size, dtype=torch.int64)
    random = torch.floor(crop.detach().cpu().to(torch.float64) * (free + 1)).to(torch.int64)
    random = torch.minimum(random.clamp_min(0), free.clamp_min(0))
    centred = torch.div(free, 2, rounding_mode="floor")
    return torch.where(free >= 0, random, centred.expand_as(random))


def _interpolation(size: int, nodes: int) -> tuple[list[int], list[float]]:
    """For each of ``size`` output positions: index of the node on its left and weight of the right node.

    ``nodes`` control points span the output from its first to its last voxel (``align_corners=True``).
    """
    step = (nodes - 1) / (size - 1) if size > 1 else 0.0
    left, weight = [], []
    for i in range(size):
        s = i * step
        c = min(int(s), nodes - 2)
        left.append(c)
        weight.append(s - c)
    return left, weight


def _upsample_axis(values: Tensor, dim: int, size: int) -> Tensor:
    """Linear interpolation of ``values`` along ``dim`` from its node count to ``size`` positions."""
    left, weight = _interpolation(size, values.shape[dim])
    index = torch.tensor(left, device=values.device)
    shape = [1] * values.dim()
    shape[dim] = size
    w = torch.tensor(weight, dtype=values.dtype, device=values.device).view(shape)
    return torch.lerp(values.index_select(dim, index), values.index_select(dim, index + 1), w)


def sampling_grid(params: SpatialParams, offsets: Tensor, in_size: Size3, out_size: Size3,
                  device: torch.device, dtype: torch.dtype) -> Tensor:
    """Normalised grid (N, X, Y, Z, 3) for ``grid_sample(align_corners=True)``, last dim in (z, y, x) order.

    ``params`` and ``offsets`` (N, 3) hold only the samples to resample. The sampling position is
    computed exactly (float64) at the G³ control points, affine part included, and interpolated linearly
    in between: linear interpolation reproduces the affine part, so this equals evaluating the affine map
    at every voxel plus the trilinearly upsampled displacement, at a fraction of the cost.
    """
    nodes = params.elastic_field.shape[-1]
    if nodes < 2:
        raise ValueError("the elastic grid needs at least 2 control points per axis")
    f64 = dict(dtype=torch.float64, device=device)
    out_t = torch.tensor(out_size, **f64)
    centre = on(offsets, device, torch.float64) + (out_t - 1) / 2
    linear = rotation_matrices(on(params.rotation, device)).transpose(1, 2) / on(params.scale, device, torch.float64)[:, :, None]
    positions = [torch.linspace(0, float(s - 1), nodes, **f64) - (s - 1) / 2 for s in out_size]
    nodes_at = (centre[:, None, None, None, :]
                + positions[0][None, :, None, None, None] * linear[:, None, None, None, :, 0]
                + positions[1][None, None, :, None, None] * linear[:, None, None, None, :, 1]
                + positions[2][None, None, None, :, None] * linear[:, None, None, None, :, 2])
    magnitude = on(params.elastic_magnitude, device, torch.float64)[:, None, None, None, None]
    nodes_at = nodes_at + magnitude * on(params.elastic_field, device, torch.float64).permute(0, 2, 3, 4, 1)
    norm = 2.0 / (torch.tensor(in_size, **f64) - 1).clamp_min(1)
    coarse = (nodes_at * norm - 1).flip(-1).to(dtype)
    coarse = _upsample_axis(_upsample_axis(coarse, 1, out_size[0]), 2, out_size[1])
    return upsample_z(coarse, out_size[2], use_matmul=device.type == "cpu")


def upsample_z(coarse: Tensor, size: int, use_matmul: bool) -> Tensor:
    """Linear upsampling of (N, X, Y, G, 3) along G to (N, X, Y, size, 3), written in grid layout.

    ``use_matmul``: one small matmul (fastest on CPU; on CUDA it could silently run in TF32), else one
    ``lerp`` per control-point interval.
    """
    n, x, y, nodes, _ = coarse.shape
    left, weight = _interpolation(size, nodes)
    if use_matmul:
        matrix = torch.zeros(size, nodes, dtype=coarse.dtype)
        rows, columns, w = torch.arange(size), torch.tensor(left), torch.tensor(weight, dtype=coarse.dtype)
        matrix[rows, columns], matrix[rows, columns + 1] = 1 - w, w
        return torch.matmul(on(matrix, coarse.device), coarse)
    grid = torch.empty((n, x, y, size, 3), dtype=coarse.dtype, device=coarse.device)
    w = torch.tensor(weight, dtype=coarse.dtype, device=coarse.device)
    start = 0
    while start < size:
        c, stop = left[start], start
        while stop < size and left[stop] == c:
            stop += 1
        torch.lerp(coarse[:, :, :, c:c + 1], coarse[:, :, :, c + 1:c + 2], w[start:stop, None],
                   out=grid[:, :, :, start:stop])
        start = stop
    return grid


def _crop_by_slicing(volume: Tensor, offsets: Tensor, out_size: Size3) -> Tensor:
    """(N, C, *in) → (N, C, *out): exact patch at integer ``offsets`` (N, 3), zero where it overhangs."""
    out = volume.new_zeros((volume.shape[0], volume.shape[1], *out_size))
    in_size = volume.shape[2:]
    for i, offset in enumerate(offsets.tolist()):
        src, dst = [slice(None), slice(None)], [slice(None), slice(None)]
        for o, n_in, n_out in zip(offset, in_size, out_size):
            s0, d0 = max(o, 0), max(-o, 0)
            length = min(n_in - s0, n_out - d0)
            if length <= 0:
                break
            src.append(slice(s0, s0 + length))
            dst.append(slice(d0, d0 + length))
        else:
            out[i][tuple(dst[1:])] = volume[i][tuple(src[1:])]
    return out


def resample(image: Tensor, label: Tensor | None, params: SpatialParams, patch_size: Sequence[int] | None):
    """Apply :class:`SpatialParams`: image (B, C, *in) float, label (B, 1, *in) integer or None.

    Returns the image (B, C, *patch) in the image dtype (trilinear) and the label (B, 1, *patch) in its
    dtype (nearest), both zero outside the input.
    """
    batch, channels = image.shape[:2]
    in_size = tuple(image.shape[2:])
    out_size = tuple(int(n) for n in patch_size) if patch_size is not None else in_size
    offsets = crop_offsets(params.crop, in_size, out_size)
    interpolate = params.resampled()
    idx = torch.nonzero(interpolate).flatten()
    plain = torch.nonzero(~interpolate).flatten()
    if plain.numel() == batch and out_size == in_size and bool((offsets == 0).all()):
        return image, label
    if idx.numel() == batch:
        out_image, out_label = None, None
    else:
        out_image = image.new_empty((batch, channels, *out_size))
        out_label = None if label is None else label.new_empty((batch, 1, *out_size))
    if plain.numel():
        dev_plain = on(plain, image.device)
        cropped = _crop_by_slicing(image.index_select(0, dev_plain), offsets[plain], out_size)
        out_image.index_copy_(0, dev_plain, cropped)
        if label is not None:
            out_label.index_copy_(0, dev_plain, _crop_by_slicing(label.index_select(0, dev_plain), offsets[plain], out_size))
    if idx.numel():
        dev_idx = on(idx, image.device)
        sub = params if idx.numel() == batch else _select(params, idx)
        grid = sampling_grid(sub, offsets[idx], in_size, out_size, image.device, image.dtype)
        src = image if idx.numel() == batch else image.index_select(0, dev_idx)
        warped = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        warped_label = None
        if label is not None:
            src_label = label if idx.numel() == batch else label.index_select(0, dev_idx)
            warped_label = F.grid_sample(src_label.to(grid.dtype), grid, mode="nearest", padding_mode="zeros",
                                         align_corners=True).to(label.dtype)
        if out_image is None:
            return warped, warped_label
        out_image.index_copy_(0, dev_idx, warped)
        if label is not None:
            out_label.index_copy_(0, dev_idx, warped_label)
    return out_image, out_label


def _select(params: Params, idx: Tensor) -> Params:
    """The rows ``idx`` (CPU int64) of every batched tensor field."""
    changes = {f.name: getattr(params, f.name)[on(idx, getattr(params, f.name).device)]
               for f in dataclasses.fields(params) if isinstance(getattr(params, f.name), Tensor)}
    return dataclasses.replace(params, **changes)


# ----------------------------------------------------------------------------------------------- flips


@dataclass
class FlipParams(Params):
    """flip: (B, 3) bool, mirror along spatial axes 0, 1, 2."""

    flip: Tensor

    def describe(self, index: int = 0) -> str:
        axes = [str(a) for a in range(3) if bool(self.flip[index, a])]
        return "flip axes " + (", ".join(axes) if axes else "none")


@dataclass(repr=False)
class RandomFlip(Transform):
    """Mirror each of ``axes`` independently with probability ``p`` (exact, via :func:`torch.flip`)."""

    axes: tuple[int, ...] = (0, 1, 2)
    p: float = 0.5

    def sample(self, batch_size: int, generator: torch.Generator | None = None, num_channels: int = 4) -> FlipParams:
        draw = bernoulli(self.p, (batch_size, 3), generator)
        allowed = torch.tensor([a in self.axes for a in range(3)])
        return FlipParams(draw & allowed)

    def _apply(self, image, label, params: FlipParams, inplace):
        flips = params.flip.detach().cpu().tolist()
        if not any(any(row) for row in flips):
            return image, label
        if not inplace:
            image = image.clone()
        if label is not None:
            label = label.clone()
        for b, row in enumerate(flips):
            dims = [a + 1 for a in range(3) if row[a]]  # dims of one sample (C, X, Y, Z)
            if dims:
                image[b] = image[b].flip(dims)
                if label is not None:
                    label[b] = label[b].flip(dims)
        return image, label


def identity_crop(patch_size: Sequence[int] | None = None) -> RandomSpatial:
    """A :class:`RandomSpatial` that only crops (randomly) to ``patch_size``: no rotation, zoom or deformation."""
    return RandomSpatial(patch_size=None if patch_size is None else tuple(patch_size), p_rotation=0.0,
                         p_scale=0.0, p_elastic=0.0)


__all__ = ["SpatialParams", "RandomSpatial", "FlipParams", "RandomFlip", "rotation_matrices", "crop_offsets",
           "sampling_grid", "resample", "smooth_control_points", "identity_crop"]
