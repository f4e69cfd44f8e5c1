"""Intensity transforms, per sample and per channel: noise, blur, brightness, contrast, low resolution, gamma.

They act on z-scored images (B, C, X, Y, Z) float and leave labels alone. Each has a per-sample probability
``p``; those that nnU-Net applies channel by channel also have ``p_per_channel``. Only the selected
(sample, channel) pairs are computed: they are gathered into one (N, X, Y, Z) tensor, transformed together
and scattered back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .params import Params, Transform, bernoulli, on, seeds, uniform


def _values(row: Tensor) -> str:
    """A (C,) row as "(a, b, …)" with 2 decimals."""
    return "(" + ", ".join(f"{v:.2f}" for v in row.tolist()) + ")"


def _selected(mask: Tensor) -> Tensor:
    """(B, C) bool → CPU int64 indices of the selected pairs in the flattened (B*C) order."""
    return torch.nonzero(mask.detach().cpu().reshape(-1)).flatten()


def map_channels(image: Tensor, mask: Tensor, fn: Callable[[Tensor, Tensor], Tensor], inplace: bool) -> Tensor:
    """Replace the (sample, channel) volumes selected by ``mask`` (B, C) with ``fn(volumes, index)``.

    ``volumes`` is (N, X, Y, Z) (the selected pairs), ``index`` the CPU int64 flat indices b*C + c used to pick
    their parameters; ``fn`` returns a new (N, X, Y, Z) tensor. ``image`` is modified only if ``inplace``.
    """
    b, c = image.shape[:2]
    index = _selected(mask)
    if index.numel() == 0:
        return image
    flat = image.reshape(b * c, *image.shape[2:])
    if index.numel() == b * c:
        return fn(flat, index).view(image.shape)
    dev_index = on(index, image.device)
    result = fn(flat.index_select(0, dev_index), index)
    out = image if inplace else image.clone()
    out.view(b * c, *image.shape[2:]).index_copy_(0, dev_index, result)
    return out


def _pick(values: Tensor, index: Tensor, like: Tensor) -> Tensor:
    """values (B, C) → (N, 1, 1, 1) on ``like``'s device/dtype for the flat ``index``."""
    return on(values.detach().cpu().reshape(-1)[index], like.device, like.dtype).view(-1, 1, 1, 1)


# ----------------------------------------------------------------------------------------------- noise


@dataclass
class NoiseParams(Params):
    """std: (B,) float32, noise standard deviation (image units), 0 = none; seed: (B,) int64.

    The noise field itself is drawn on the image's device from ``seed``: replaying the parameters replays
    the noise on that device, but CPU and CUDA draw different fields (they use different generators).
    """

    std: Tensor
    seed: Tensor

    def describe(self, index: int = 0) -> str:
        return f"noise σ={float(self.std[index]):.3f}"


@dataclass(repr=False)
class RandomGaussianNoise(Transform):
    """Add N(0, σ²) noise to all channels, σ² drawn uniformly from ``variance`` (nnU-Net: (0, 0.1), p 0.1)."""

    variance: tuple[float, float] = (0.0, 0.1)
    p: float = 0.1

    def sample(self, batch_size, generator=None, num_channels=4) -> NoiseParams:
        std = uniform(*self.variance, (batch_size,), generator).sqrt()
        std = std * bernoulli(self.p, (batch_size,), generator)
        return NoiseParams(std, seeds((batch_size,), generator))

    def _apply(self, image, label, params: NoiseParams, inplace):
        return add_noise(image, params, inplace), label


def add_noise(image: Tensor, params: NoiseParams, inplace: bool = False) -> Tensor:
    """image (B, C, X, Y, Z) + per-sample Gaussian noise of std ``params.std`` drawn from ``params.seed``."""
    stds, sample_seeds = params.std.detach().cpu().tolist(), params.seed.detach().cpu().tolist()
    if not any(s > 0 for s in stds):
        return image
    out = image if inplace else image.clone()
    for b, (std, seed) in enumerate(zip(stds, sample_seeds)):
        if std > 0:
            generator = torch.Generator(device=image.device).manual_seed(int(seed))
            noise = torch.randn(image.shape[1:], generator=generator, device=image.device, dtype=image.dtype)
            out[b].add_(noise, alpha=std)
    return out


# ----------------------------------------------------------------------------------------------- blur


@dataclass
class BlurParams(Params):
    """sigma: (B, C, 3) float32, Gaussian σ in voxels along axes 0, 1, 2 per channel; 0 = no blur."""

    sigma: Tensor

    def describe(self, index: int = 0) -> str:
        s = self.sigma[index].amax(0).tolist()
        return "blur σ≤(" + ", ".join(f"{v:.2f}" for v in s) + ") vox"


@dataclass(repr=False)
class RandomGaussianBlur(Transform):
    """Separable Gaussian blur, σ per channel and per axis from ``sigma`` voxels (nnU-Net: (0.5, 1), p 0.2).

    The kernel is truncated at 3σ; voxels outside the volume count as 0 (the background after z-scoring).
    """

    sigma: tuple[float, float] = (0.5, 1.0)
    p: float = 0.2
    p_per_channel: float = 0.5

    def sample(self, batch_size, generator=None, num_channels=4) -> BlurParams:
        sigma = uniform(*self.sigma, (batch_size, num_channels, 3), generator)
        keep = bernoulli(self.p, (batch_size, 1, 1), generator) & bernoulli(self.p_per_channel, (batch_size, num_channels, 1), generator)
        return BlurParams(sigma * keep)

    def _apply(self, image, label, params: BlurParams, inplace):
        return gaussian_blur(image, params, inplace), label


def gaussian_kernels(sigma: Tensor, radius: int) -> Tensor:
    """(N,) σ in voxels → (N, 2·radius+1) normalised Gaussian weights; σ = 0 gives the identity kernel."""
    k = torch.arange(-radius, radius + 1, dtype=sigma.dtype, device=sigma.device)
    weights = torch.exp(-0.5 * (k[None, :] / sigma.clamp_min(1e-6)[:, None]) ** 2)
    return weights / weights.sum(1, keepdim=True)


def _convolve_axis(x: Tensor, weights: Tensor, dim: int) -> Tensor:
    """Correlate (N, X, Y, Z) with per-volume symmetric kernels (N, K) along ``dim`` (1..3), zero padding."""
    n = x.shape[dim]
    radius = weights.shape[1] // 2
    w = weights.view(-1, 1, 1, 1, weights.shape[1])
    out = x * w[..., radius]
    for k in range(weights.shape[1]):
        shift = k - radius
        if shift == 0 or abs(shift) >= n:
            continue
        length = n - abs(shift)
        if shift > 0:
            out.narrow(dim, 0, length).addcmul_(x.narrow(dim, shift, length), w[..., k])
        else:
            out.narrow(dim, -shift, length).addcmul_(x.narrow(dim, 0, length), w[..., k])
    return out


def gaussian_blur(image: Tensor, params: BlurParams, inplace: bool = False) -> Tensor:
    """Blur image (B, C, X, Y, Z) with the per-channel, per-axis σ of ``params`` (voxels)."""
    sigma = params.sigma.detach().cpu()
    radius = int(math.ceil(3 * float(sigma.max()))) if sigma.numel() else 0
    if radius == 0:
        return image
    sigma_flat = sigma.reshape(-1, 3)

    def blur(x: Tensor, index: Tensor) -> Tensor:
        for axis in range(3):
            s = sigma_flat[index, axis]
            if bool((s > 0).any()):
                x = _convolve_axis(x, on(gaussian_kernels(s.double(), radius), x.device, x.dtype), axis + 1)
        return x

    return map_channels(image, (sigma > 0).any(-1), blur, inplace)


# ----------------------------------------------------------------------------------------------- brightness / contrast


@dataclass
class FactorParams(Params):
    """factor: (B, C) float32 per channel; 1 = unchanged."""

    factor: Tensor

    def describe(self, index: int = 0) -> str:
        return "factor=" + _values(self.factor[index])


@dataclass(repr=False)
class RandomBrightness(Transform):
    """Multiply each channel by a factor from ``factor`` (nnU-Net: (0.75, 1.25), p 0.15)."""

    factor: tuple[float, float] = (0.75, 1.25)
    p: float = 0.15
    p_per_channel: float = 1.0

    def sample(self, batch_size, generator=None, num_channels=4) -> FactorParams:
        return FactorParams(_channel_factors(self, batch_size, num_channels, generator))

    def _apply(self, image, label, params: FactorParams, inplace):
        return brightness(image, params, inplace), label


def _channel_factors(t, batch_size, num_channels, generator) -> Tensor:
    factor = uniform(*t.factor, (batch_size, num_channels), generator)
    keep = bernoulli(t.p, (batch_size, 1), generator) & bernoulli(t.p_per_channel, (batch_size, num_channels), generator)
    return torch.where(keep, factor, torch.ones_like(factor))


def brightness(image: Tensor, params: FactorParams, inplace: bool = False) -> Tensor:
    """image (B, C, X, Y, Z) × factor (B, C)."""
    factor = params.factor.detach().cpu()
    if bool((factor == 1).all()):
        return image
    f = on(factor, image.device, image.dtype)[:, :, None, None, None]
    return image.mul_(f) if inplace else image * f


@dataclass(repr=False)
class RandomContrast(Transform):
    """Scale each channel about its mean by ``factor``, clipped to its original range (nnU-Net, p 0.15)."""

    factor: tuple[float, float] = (0.75, 1.25)
    p: float = 0.15
    p_per_channel: float = 1.0
    preserve_range: bool = True

    def sample(self, batch_size, generator=None, num_channels=4) -> FactorParams:
        return FactorParams(_channel_factors(self, batch_size, num_channels, generator))

    def _apply(self, image, label, params: FactorParams, inplace):
        return contrast(image, params, self.preserve_range, inplace), label


def contrast(image: Tensor, params: FactorParams, preserve_range: bool = True, inplace: bool = False) -> Tensor:
    """(x − mean)·factor + mean per channel of image (B, C, X, Y, Z); optionally clipped to [min, max]."""
    factor = params.factor.detach().cpu()

    def fn(x: Tensor, index: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], -1)
        mean = flat.mean(1).view(-1, 1, 1, 1)
        f = _pick(factor, index, x)
        y = x.mul(f).add_(mean * (1 - f))
        if preserve_range:
            y = y.clamp_(flat.amin(1).view(-1, 1, 1, 1), flat.amax(1).view(-1, 1, 1, 1))
        return y

    return map_channels(image, factor != 1, fn, inplace)


# ----------------------------------------------------------------------------------------------- low resolution


@dataclass
class ZoomParams(Params):
    """zoom: (B, C) float32 in (0, 1], resolution kept per channel (0.5 = half the voxels per axis); 1 = none."""

    zoom: Tensor

    def describe(self, index: int = 0) -> str:
        return "zoom=" + _values(self.zoom[index])


@dataclass(repr=False)
class RandomLowResolution(Transform):
    """Simulate a coarser acquisition: downsample (nearest) by ``zoom`` then upsample back (trilinear).

    nnU-Net: zoom (0.5, 1), p 0.25, p_per_channel 0.5, each channel its own zoom.
    """

    zoom: tuple[float, float] = (0.5, 1.0)
    p: float = 0.25
    p_per_channel: float = 0.5
    synchronize_channels: bool = False

    def sample(self, batch_size, generator=None, num_channels=4) -> ZoomParams:
        shape = (batch_size, 1 if self.synchronize_channels else num_channels)
        zoom = uniform(*self.zoom, shape, generator).expand(batch_size, num_channels)
        keep = bernoulli(self.p, (batch_size, 1), generator) & bernoulli(self.p_per_channel, (batch_size, num_channels), generator)
        return ZoomParams(torch.where(keep, zoom, torch.ones_like(zoom)))

    def _apply(self, image, label, params: ZoomParams, inplace):
        return low_resolution(image, params, inplace), label


def low_resolution(image: Tensor, params: ZoomParams, inplace: bool = False) -> Tensor:
    """Per (sample, channel) down- then up-sampling of image (B, C, X, Y, Z) by ``params.zoom``."""
    zoom = params.zoom.detach().cpu()
    if bool((zoom >= 1).all()):
        return image
    out = image if inplace else image.clone()
    size = tuple(image.shape[2:])
    for b, row in enumerate(zoom.tolist()):
        c = 0
        while c < len(row):  # runs of neighbouring channels with the same zoom are sliced together
            end = c + 1
            while end < len(row) and row[end] == row[c]:
                end += 1
            if row[c] < 1:
                small = tuple(max(1, int(round(n * row[c]))) for n in size)
                coarse = F.interpolate(out[b, c:end].unsqueeze(0), size=small, mode="nearest")
                out[b, c:end] = F.interpolate(coarse, size=size, mode="trilinear", align_corners=False)[0]
            c = end
    return out


# ----------------------------------------------------------------------------------------------- gamma


@dataclass
class GammaParams(Params):
    """gamma: (B, C) float32 exponent, 1 = none; invert: (B, C) bool, apply to the negated image."""

    gamma: Tensor
    invert: Tensor

    def describe(self, index: int = 0) -> str:
        inverted = [str(c) for c, v in enumerate(self.invert[index].tolist()) if v]
        return "γ=" + _values(self.gamma[index]) + (f" inverted channels {','.join(inverted)}" if inverted else "")


@dataclass(repr=False)
class RandomGamma(Transform):
    """x ↦ range-normalised x^γ per channel, mean and std restored (nnU-Net's GammaTransform).

    γ is drawn from [low, 1) or [1, high] with equal odds (as nnU-Net), so darkening and brightening are
    equally likely. ``p_invert``: probability of applying it to −x (nnU-Net's first gamma: 1, p 0.1; second: 0, p 0.3).
    """

    gamma: tuple[float, float] = (0.7, 1.5)
    p: float = 0.3
    p_per_channel: float = 1.0
    p_invert: float = 0.0
    retain_stats: bool = True

    def sample(self, batch_size, generator=None, num_channels=4) -> GammaParams:
        low, high = self.gamma
        shape = (batch_size, num_channels)
        below = uniform(low, min(1.0, high), shape, generator)
        above = uniform(max(1.0, low), high, shape, generator)
        gamma = torch.where(bernoulli(0.5, shape, generator), below, above)
        keep = bernoulli(self.p, (batch_size, 1), generator) & bernoulli(self.p_per_channel, shape, generator)
        invert = bernoulli(self.p_invert, shape, generator) & keep
        return GammaParams(torch.where(keep, gamma, torch.ones_like(gamma)), invert)

    def _apply(self, image, label, params: GammaParams, inplace):
        return gamma_transform(image, params, self.retain_stats, inplace), label


def _mean_std(flat: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and population std of each row of (N, M), as (N,) float64.

    ``torch.std_mean`` (a numerically stable reduction): E[x²] − E[x]² in float32 loses the variance of
    low-contrast volumes to cancellation, by as much as half on CPU (seen on a gamma-transformed channel).
    """
    std, mean = torch.std_mean(flat, dim=1, correction=0)
    return mean.double(), std.double()


def gamma_transform(image: Tensor, params: GammaParams, retain_stats: bool = True, inplace: bool = False,
                    eps: float = 1e-7) -> Tensor:
    """Gamma on each selected channel of image (B, C, X, Y, Z).

    Per volume v (negated first where ``invert``): t = (v − min) / (max − min) ∈ [0, 1], u = t^γ, then
    either back to [min, max] or, with ``retain_stats``, to v's mean and std; negated back where inverted.
    """
    gamma, invert = params.gamma.detach().cpu().reshape(-1), params.invert.detach().cpu().reshape(-1)

    def fn(x: Tensor, index: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], -1)
        sign = on(torch.where(invert[index], -1.0, 1.0).double(), x.device)
        low, high = flat.amin(1).double(), flat.amax(1).double()
        low, high = torch.where(sign > 0, low, -high), torch.where(sign > 0, high, -low)
        span = (high - low).clamp_min(eps)
        scale, shift = sign / span, -low / span
        u = x.mul(_column(scale, x)).add_(_column(shift, x)).clamp_(0, 1)
        for i, g in enumerate(gamma[index].tolist()):
            if g != 1:
                u[i].pow_(g)
        if retain_stats:
            mean, std = _mean_std(flat)
            u_mean, u_std = _mean_std(u.reshape(u.shape[0], -1))
            ratio = std / u_std.clamp_min(eps)
            scale, shift = ratio, sign * mean - u_mean * ratio
        else:
            scale, shift = span, low
        return u.mul_(_column(sign * scale, x)).add_(_column(sign * shift, x))

    return map_channels(image, ((gamma != 1) | invert).view(params.gamma.shape), fn, inplace)


def _column(values: Tensor, like: Tensor) -> Tensor:
    """(N,) → (N, 1, 1, 1) in ``like``'s dtype and device."""
    return values.to(like.dtype).view(-1, 1, 1, 1)


__all__ = [
    "NoiseParams", "RandomGaussianNoise", "add_noise",
    "BlurParams", "RandomGaussianBlur", "gaussian_blur", "gaussian_kernels",
    "FactorParams", "RandomBrightness", "brightness", "RandomContrast", "contrast",
    "ZoomParams", "RandomLowResolution", "low_resolution",
    "GammaParams", "RandomGamma", "gamma_transform", "map_channels",
]
