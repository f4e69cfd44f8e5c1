"""The augmentation preview: the data pipeline's transforms (:mod:`brats_lib.augment`) applied to the uploaded
case with parameters set by hand (sliders) instead of drawn at random.

The case is preprocessed as for training (:func:`brats_lib.preprocess.preprocess_case`: brain crop, z-score)
and a window of at most :data:`PREVIEW_SIZE`³ voxels around the tumour (or the brain centre) is augmented, so
that each slider move takes a fraction of a second on a CPU.
"""

from __future__ import annotations

import io as _io
from dataclasses import dataclass

import numpy as np
import torch

from .. import augment as aug
from ..io import MODALITIES, LoadedCase
from ..preprocess import PreprocessConfig, preprocess_case

#: Edge of the previewed window (voxels).
PREVIEW_SIZE = 96

#: The transforms, in the default pipeline's order.
PIPELINE = aug.Compose([
    aug.RandomSpatial(), aug.RandomGaussianNoise(), aug.RandomGaussianBlur(), aug.RandomBrightness(),
    aug.RandomContrast(), aug.RandomLowResolution(), aug.RandomGamma(), aug.RandomFlip(),
])


@dataclass
class PreviewSettings:
    """Hand-set parameters; the defaults change nothing.

    Attributes:
        rotation: degrees about the z axis (turns the axial slice).
        zoom: isotropic scale factor.
        elastic: elastic displacement magnitude (voxels), along a fixed random field.
        noise: Gaussian noise standard deviation (z-score units).
        blur: Gaussian blur σ (voxels).
        brightness, contrast: multiplicative factors.
        low_resolution: fraction of the resolution kept (1 = none).
        gamma: exponent (1 = none).
        flip_x, flip_y, flip_z: mirror along each axis.
    """

    rotation: float = 0.0
    zoom: float = 1.0
    elastic: float = 0.0
    noise: float = 0.0
    blur: float = 0.0
    brightness: float = 1.0
    contrast: float = 1.0
    low_resolution: float = 1.0
    gamma: float = 1.0
    flip_x: bool = False
    flip_y: bool = False
    flip_z: bool = False


def preview_window(loaded: LoadedCase, label: np.ndarray | None = None, size: int = PREVIEW_SIZE
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(image (1, 4, s, s, s) float32, label (1, s, s, s) uint8): the preprocessed case around the tumour.

    Args:
        loaded: the case (its ground truth is used for the label and the centre when present).
        label: a label map on the input grid to show instead (e.g. the prediction).
        size: window edge (voxels); smaller axes are kept whole.
    """
    import dataclasses

    shown = label if label is not None else loaded.label
    pre = preprocess_case(dataclasses.replace(loaded, label=shown), PreprocessConfig(downsample=1))
    image = pre.image.astype(np.float32)
    lab = pre.label if pre.label is not None else np.zeros(image.shape[1:], np.uint8)
    where = np.argwhere(lab > 0)
    centre = where.mean(0) if len(where) else np.array(image.shape[1:]) / 2
    box = []
    for c, n in zip(centre, image.shape[1:]):
        s = min(size, n)
        start = int(np.clip(round(c - s / 2), 0, n - s))
        box.append(slice(start, start + s))
    window = (slice(None), *box)
    return (torch.from_numpy(np.ascontiguousarray(image[window]))[None],
            torch.from_numpy(np.ascontiguousarray(lab[tuple(box)]))[None])


def _fixed_elastic_field(seed: int = 0) -> torch.Tensor:
    return aug.RandomSpatial().sample(1, torch.Generator().manual_seed(seed)).elastic_field


_FIELD = _fixed_elastic_field()


def settings_params(settings: PreviewSettings, channels: int = len(MODALITIES)) -> aug.ComposeParams:
    """The :data:`PIPELINE` parameters that ``settings`` describe (one sample)."""
    s = settings
    spatial = aug.SpatialParams.identity(1)
    spatial.rotation[0, 2] = float(s.rotation)
    spatial.scale[:] = float(s.zoom)
    spatial.elastic_field = _FIELD.clone()
    spatial.elastic_magnitude[:] = float(s.elastic)
    per_channel = lambda v: torch.full((1, channels), float(v))  # noqa: E731
    return aug.ComposeParams([
        spatial,
        aug.NoiseParams(torch.tensor([float(s.noise)]), torch.tensor([0])),
        aug.BlurParams(torch.full((1, channels, 3), float(s.blur))),
        aug.FactorParams(per_channel(s.brightness)),
        aug.FactorParams(per_channel(s.contrast)),
        aug.ZoomParams(per_channel(s.low_resolution)),
        aug.GammaParams(per_channel(s.gamma), torch.zeros(1, channels, dtype=torch.bool)),
        aug.FlipParams(torch.tensor([[bool(s.flip_x), bool(s.flip_y), bool(s.flip_z)]])),
    ])


def apply_settings(image: torch.Tensor, label: torch.Tensor, settings: PreviewSettings
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The window augmented with ``settings`` (same shapes as the input)."""
    return PIPELINE.apply(image, label, settings_params(settings, image.shape[1]))


def preview_png(image: torch.Tensor, label: torch.Tensor, augmented: torch.Tensor, augmented_label: torch.Tensor,
                modalities: tuple[str, ...] = ("t1c", "t2f"), alpha: float = 0.4, scale: int = 3) -> bytes:
    """PNG: one row per modality, original | augmented, middle axial slice, labels in the house colours."""
    from PIL import Image

    from ..viz import display_slice, intensity_window, overlay_rgba

    z = image.shape[-1] // 2
    rows = []
    for m in modalities:
        c = MODALITIES.index(m)
        window = intensity_window(image[0, c].numpy())
        pair = []
        for img, lab in ((image, label), (augmented, augmented_label)):
            img2d = display_slice(img[0, c].numpy(), "axial", z)
            lab2d = display_slice(lab[0].numpy(), "axial", z)
            pair.append(overlay_rgba(img2d, lab2d, alpha, window)[..., :3])
        gap = np.ones((pair[0].shape[0], 4, 3))
        rows.append(np.concatenate([pair[0], gap, pair[1]], axis=1))
    gap = np.ones((4, rows[0].shape[1], 3))
    grid = np.concatenate(sum(([r, gap] for r in rows), [])[:-1], axis=0)
    pil = Image.fromarray((np.clip(grid, 0, 1) * 255 + 0.5).astype(np.uint8), mode="RGB")
    pil = pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)
    buffer = _io.BytesIO()
    pil.save(buffer, format="PNG")
    return buffer.getvalue()
