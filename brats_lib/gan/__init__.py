"""A tumour-inpainting GAN (GliGAN-style, Ferreira et al.) that makes new training cases.

A package by kind:

* :mod:`~brats_lib.gan.crops` — tumour-centred crops from the preprocessing cache, the inpainting mask, noise
  masking, the generator's input and compositing;
* :mod:`~brats_lib.gan.models` — the generator (a 3D U-Net of the project's blocks) and the spectral-normalised
  3D PatchGAN discriminator;
* :mod:`~brats_lib.gan.losses` — hinge adversarial loss, masked L1 and its 1 → 100 weight ramp;
* :mod:`~brats_lib.gan.train` — GanConfig, the loop, checkpoints and exact resume (``brats gan-train``);
* :mod:`~brats_lib.gan.synth` — new cases: a donor's tumour label inserted into a source case and inpainted
  (``brats gan-synth``).
"""

from .crops import TumourCrops, composite, generator_input, inpaint_mask, label_channels
from .losses import hinge_discriminator, hinge_generator, l1_weight, masked_l1
from .models import InpaintGenerator, PatchDiscriminator
from .train import GanConfig, GanTrainer, load_gan_run, mean_fill, train_gan

__all__ = ["GanConfig", "GanTrainer", "InpaintGenerator", "PatchDiscriminator", "TumourCrops", "composite",
           "generator_input", "hinge_discriminator", "hinge_generator", "inpaint_mask", "l1_weight",
           "label_channels", "load_gan_run", "masked_l1", "mean_fill", "train_gan"]
