"""Building blocks for 3D encoder–decoder networks, each built from explicit arguments.

All blocks take and return (B, C, X, Y, Z) tensors; ``stride`` > 1 halves (or divides) the spatial size.
"""

from __future__ import annotations

import torch
from torch import nn

NORMS = ("instance", "batch", "group")
NONLINS = ("leaky_relu", "relu", "gelu")


def make_norm(kind: str, channels: int) -> nn.Module:
    """Normalisation layer over ``channels`` feature maps: ``instance`` (affine), ``batch`` or ``group``.

    Group norm uses up to 8 groups, each of at least 4 channels where possible.
    """
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True, eps=1e-5)
    if kind == "batch":
        return nn.BatchNorm3d(channels, eps=1e-5)
    if kind == "group":
        groups = max(1, min(8, channels // 4))
        while channels % groups:
            groups -= 1
        return nn.GroupNorm(groups, channels, eps=1e-5)
    raise ValueError(f"unknown norm {kind!r}; expected one of {NORMS}")


def make_nonlin(kind: str) -> nn.Module:
    """Nonlinearity: ``leaky_relu`` (slope 0.01, nnU-Net's), ``relu`` or ``gelu``."""
    if kind == "leaky_relu":
        return nn.LeakyReLU(0.01, inplace=True)
    if kind == "relu":
        return nn.ReLU(inplace=True)
    if kind == "gelu":
        return nn.GELU()
    raise ValueError(f"unknown nonlinearity {kind!r}; expected one of {NONLINS}")


def _check_kernel(kernel_size: int) -> int:
    if kernel_size not in (3, 5):
        raise ValueError(f"kernel_size must be 3 or 5, got {kernel_size}")
    return kernel_size


class ConvNormAct(nn.Sequential):
    """Conv3d → norm → nonlinearity. (B, in, X, Y, Z) → (B, out, X/stride, Y/stride, Z/stride)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 norm: str = "instance", nonlin: str = "leaky_relu"):
        k = _check_kernel(kernel_size)
        super().__init__(
            nn.Conv3d(in_channels, out_channels, k, stride=stride, padding=k // 2, bias=False),
            make_norm(norm, out_channels),
            make_nonlin(nonlin),
        )


class StackedConvs(nn.Sequential):
    """``n_convs`` ConvNormAct blocks; the first one carries the stride (nnU-Net's strided downsampling)."""

    def __init__(self, in_channels: int, out_channels: int, n_convs: int, kernel_size: int = 3,
                 stride: int = 1, norm: str = "instance", nonlin: str = "leaky_relu"):
        if n_convs < 1:
            raise ValueError(f"n_convs must be ≥ 1, got {n_convs}")
        layers = [ConvNormAct(in_channels, out_channels, kernel_size, stride, norm, nonlin)]
        layers += [ConvNormAct(out_channels, out_channels, kernel_size, 1, norm, nonlin) for _ in range(n_convs - 1)]
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """Pre-addition residual block (He et al. 2016, 3D): ``n_convs`` convolutions plus a shortcut.

    The shortcut is the identity when shape is kept, else a strided 1×1×1 conv + norm.
    (B, in, X, Y, Z) → (B, out, X/stride, Y/stride, Z/stride).
    """

    def __init__(self, in_channels: int, out_channels: int, n_convs: int = 2, kernel_size: int = 3,
                 stride: int = 1, norm: str = "instance", nonlin: str = "leaky_relu"):
        super().__init__()
        if n_convs < 1:
            raise ValueError(f"n_convs must be ≥ 1, got {n_convs}")
        k = _check_kernel(kernel_size)
        body: list[nn.Module] = []
        for i in range(n_convs):
            last = i == n_convs - 1
            body.append(nn.Conv3d(in_channels if i == 0 else out_channels, out_channels, k,
                                  stride=stride if i == 0 else 1, padding=k // 2, bias=False))
            body.append(make_norm(norm, out_channels))
            if not last:
                body.append(make_nonlin(nonlin))
        self.body = nn.Sequential(*body)
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False), make_norm(norm, out_channels)
            )
        else:
            self.shortcut = nn.Identity()
        self.act = make_nonlin(nonlin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))
