"""Networks for BraTS segmentation: FCNN, 3D U-Net, Residual 3D U-Net, a registry and output decoding."""

from .blocks import ConvNormAct, ResidualBlock, StackedConvs, make_nonlin, make_norm
from .heads import (OUTPUT_MODES, REGION_CHANNELS, decode_logits, decode_probabilities, num_outputs,
                    probabilities, region_targets)
from .networks import FCNN, EncoderDecoder3D, ResidualUNet3D, StudentEncoderDecoder, StudentFCNN, UNet3D
from .registry import MODELS, build_model, count_parameters, describe, forward_flops

__all__ = [
    "ConvNormAct", "ResidualBlock", "StackedConvs", "make_nonlin", "make_norm", "OUTPUT_MODES",
    "REGION_CHANNELS", "decode_logits", "decode_probabilities", "num_outputs", "probabilities",
    "region_targets", "FCNN", "EncoderDecoder3D", "ResidualUNet3D", "StudentEncoderDecoder", "StudentFCNN",
    "UNet3D", "MODELS", "build_model",
    "count_parameters", "describe", "forward_flops",
]
