"""Build a network by name from a config dict, and report its size and cost.

A config is JSON-friendly, e.g. ``{"name": "unet3d", "features_per_stage": [16, 32, 64, 128],
"output_mode": "softmax", "norm": "instance"}``; every key but ``name`` and ``output_mode`` is a
constructor argument of the named class.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from .heads import num_outputs
from .networks import FCNN, ResidualUNet3D, StudentEncoderDecoder, StudentFCNN, UNet3D

MODELS: Mapping[str, type[nn.Module]] = {
    "fcnn": FCNN, "unet3d": UNet3D, "resunet3d": ResidualUNet3D,
    # the student project's networks, reproduced as baselines (networks.StudentFCNN, StudentEncoderDecoder)
    "student_fcnn": StudentFCNN, "student_encdec": StudentEncoderDecoder,
}


def build_model(config: Mapping[str, Any]) -> nn.Module:
    """Instantiate ``MODELS[config["name"]]`` with the remaining keys as arguments.

    ``output_mode`` (``softmax`` default, or ``regions``) sets ``num_classes`` unless it is given.
    """
    config = dict(config)
    try:
        cls = MODELS[config.pop("name")]
    except KeyError as exc:
        raise ValueError(f"unknown model {exc.args[0]!r}; expected one of {list(MODELS)}") from None
    mode = config.pop("output_mode", "softmax")
    config.setdefault("num_classes", num_outputs(mode))
    config.setdefault("in_channels", 4)
    return cls(**config)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def forward_flops(model: nn.Module, patch_size: Sequence[int], in_channels: int = 4) -> int:
    """Floating-point operations of one forward pass on a (1, in_channels, *patch_size) input.

    Counted by ``torch.utils.flop_counter`` (2 FLOPs per multiply–accumulate), on the meta device so no
    memory is allocated for activations.
    """
    from torch.utils.flop_counter import FlopCounterMode

    meta_model = copy.deepcopy(model).to("meta").eval()
    x = torch.zeros((1, in_channels, *patch_size), device="meta")
    with FlopCounterMode(display=False) as counter:
        meta_model(x)
    return int(counter.get_total_flops())


def describe(model: nn.Module, patch_size: Sequence[int], in_channels: int = 4) -> dict[str, float]:
    """``{"parameters": n, "parameters_M": n / 1e6, "forward_GFLOPs": f / 1e9}`` for a patch size (voxels)."""
    n = count_parameters(model)
    flops = forward_flops(model, patch_size, in_channels)
    return {"parameters": n, "parameters_M": n / 1e6, "forward_GFLOPs": flops / 1e9}
