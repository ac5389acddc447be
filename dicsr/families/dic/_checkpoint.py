"""Recognising official DIC / DICGAN checkpoints and reading their layout (docs/specs/dic.md §4).

The official key names are dicsr's (the network repeats them), so there is no key conversion.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from dicsr.families._family import child_indices
from dicsr.families.dic._network import DICConfig

__all__ = ["infer_config", "recognises"]

# Present in every DIC generator, absent from every other family's.
_SIGNATURE_KEYS = ("conv_in.0.weight", "conv_out.0.weight", "HG.compress_in.weight")


def recognises(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether the keys are a DIC generator's (``conv_in``, ``conv_out``, the hourglass ``HG``)."""
    return all(key in state_dict for key in _SIGNATURE_KEYS)


def infer_config(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """DIC hyper-parameters readable from shapes (docs/specs/dic.md §4); steps and scale keep their
    defaults."""
    defaults = dataclasses.asdict(DICConfig())
    conv_in = state_dict["conv_in.0.weight"]
    return {
        **defaults,
        "in_channels": int(conv_in.shape[1]),
        "out_channels": int(state_dict["conv_out.0.weight"].shape[0]),
        "num_features": int(conv_in.shape[0]) // 4,  # conv_in feeds PixelShuffle(2): 4C channels
        "num_groups": len(child_indices(state_dict, "first_block.upBlocks.")) or defaults["num_groups"],
        "hg_num_features": int(state_dict["HG.compress_in.weight"].shape[0]) // 2,
        "num_fusion_blocks": len(child_indices(state_dict, "block.fusion_block.resnet."))
        or defaults["num_fusion_blocks"],
    }
