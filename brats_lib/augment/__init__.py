"""Batched data augmentation on the batch's device (CPU or CUDA), reproducible from a seed.

Each random transform samples small per-sample parameters on the CPU (:mod:`.params`) and applies them
deterministically to image (B, C, X, Y, Z) float and label (B, X, Y, Z) integer batches. Spatial transforms
(:mod:`.spatial`) are fused into one ``grid_sample`` per batch; intensity transforms (:mod:`.intensity`) act
per channel; :mod:`.compose` chains them and builds the default nnU-Net-like pipeline.

Example::

    pipeline = default_pipeline(patch_size=(128, 128, 128))
    g = torch.Generator().manual_seed(0)
    image, label = pipeline(image, label, generator=g)          # sample + apply
    params = pipeline.sample(image.shape[0], g)                 # or separately, e.g. to replay
    image2, label2 = pipeline.apply(image, label, params)
"""

from .compose import PIPELINES, Compose, ComposeParams, default_pipeline, strong_intensity_pipeline
from .intensity import (BlurParams, FactorParams, GammaParams, NoiseParams, RandomBrightness, RandomContrast,
                        RandomGamma, RandomGaussianBlur, RandomGaussianNoise, RandomLowResolution, ZoomParams,
                        add_noise, brightness, contrast, gamma_transform, gaussian_blur, low_resolution)
from .params import Params, Transform
from .spatial import (FlipParams, RandomFlip, RandomSpatial, SpatialParams, identity_crop, resample,
                      rotation_matrices)

__all__ = [
    "Compose", "ComposeParams", "PIPELINES", "default_pipeline", "strong_intensity_pipeline", "Params", "Transform",
    "RandomSpatial", "SpatialParams", "RandomFlip", "FlipParams", "identity_crop", "resample", "rotation_matrices",
    "RandomGaussianNoise", "NoiseParams", "add_noise", "RandomGaussianBlur", "BlurParams", "gaussian_blur",
    "RandomBrightness", "RandomContrast", "FactorParams", "brightness", "contrast",
    "RandomLowResolution", "ZoomParams", "low_resolution", "RandomGamma", "GammaParams", "gamma_transform",
]
