"""Smooth random fields, the building block of deformations, bias fields, lesion shapes and textures.

Everything here draws from a caller's :class:`numpy.random.Generator` in a fixed order, so the output is
a pure function of the generator state (same seed, same array).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def _cosine_basis(n: int, k: int) -> np.ndarray:
    """(n, k) DCT-II style basis: column ``f`` is cos(pi f (x + 1/2) / n)."""
    x = (np.arange(n, dtype=np.float64) + 0.5) / n
    return np.cos(np.pi * np.outer(x, np.arange(k, dtype=np.float64)))


def cosine_field(rng: np.random.Generator, shape, n_freq: int = 3, decay: float = 1.0,
                 include_dc: bool = False) -> np.ndarray:
    """A very smooth random field over ``shape``: a random low-frequency 3D cosine series.

    Costs three small tensor products (no filtering of a full-size noise volume), so it is cheap even on a
    whole-brain grid. The variance is normalised analytically to about 1.

    Args:
        rng: random generator (``n_freq**3`` normals are drawn).
        shape: (X, Y, Z).
        n_freq: number of frequencies per axis (0…n_freq-1 half-periods across the box).
        decay: spectral decay; coefficients fall as ``(1 + |f|^2) ** (-decay / 2)``.
        include_dc: keep the constant term (a random offset).
    Returns:
        float32 array of ``shape``.
    """
    k = int(n_freq)
    fa, fb, fc = np.meshgrid(np.arange(k), np.arange(k), np.arange(k), indexing="ij")
    coeff = rng.standard_normal((k, k, k)) / (1.0 + fa**2 + fb**2 + fc**2) ** (decay / 2.0)
    if not include_dc:
        coeff[0, 0, 0] = 0.0
    # mean of cos^2 over the grid is 1/2 for each non-constant axis
    weight = 0.5 ** ((fa > 0).astype(int) + (fb > 0) + (fc > 0))
    norm = np.sqrt(np.sum(coeff**2 * weight))
    coeff /= max(norm, 1e-12)
    bx, by, bz = (_cosine_basis(n, k) for n in shape)
    f = np.tensordot(bx, coeff, axes=(1, 0))  # (X, b, c)
    f = np.tensordot(f, by, axes=(1, 1))  # (X, c, Y)
    return np.tensordot(f.astype(np.float32), bz.astype(np.float32), axes=(1, 1))  # (X, Y, Z)


def noise_field(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise over ``shape`` (voxels), rescaled to zero mean and unit std, float32."""
    g = rng.standard_normal(tuple(int(s) for s in shape), dtype=np.float32)
    ndi.gaussian_filter(g, sigma, output=g, mode="reflect", truncate=3.0)
    g -= g.mean()
    std = float(g.std())
    if std > 0:
        g /= std
    return g


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3x3 rotation matrix."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def random_unit_vector(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(3)
    return v / np.linalg.norm(v)
