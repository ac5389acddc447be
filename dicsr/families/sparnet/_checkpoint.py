"""Recognising official SPARNet / SPARNet-Light / SPARNetHD checkpoints, reading their layout, and
folding SPARNetHD's spectral norm (docs/specs/sparnet.md §3, §4).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from dicsr.errors import ArchitectureMismatchError
from dicsr.families._family import child_indices
from dicsr.families.sparnet._network import fold_spectral_norm

__all__ = ["candidate_configs", "convert_state_dict", "converted_shapes", "recognises"]

_SPECTRAL_SUFFIXES = ("_orig", "_u", "_v")


def recognises(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether the keys are a SPARNet generator's (a stem ``encoder.0`` and an ``out_conv``)."""
    return all(_weight(state_dict, stem) is not None for stem in ("encoder.0.conv2d", "out_conv.conv2d"))


def _weight(state_dict: Mapping[str, torch.Tensor], stem: str) -> torch.Tensor | None:
    """A conv weight, plain or as the spectral-norm ``weight_orig`` (same shape, docs/specs/sparnet.md §3)."""
    return state_dict.get(f"{stem}.weight", state_dict.get(f"{stem}.weight_orig"))


def _hourglass_depth(state_dict: Mapping[str, torch.Tensor], block: str) -> int:
    """Levels of a block's attention hourglass: one ``b1_<level>`` skip conv per level
    (docs/specs/sparnet.md §2)."""
    return len(child_indices(state_dict, f"{block}.att_func.b1_"))


def candidate_configs(state_dict: Mapping[str, torch.Tensor]) -> list[dict[str, Any]]:
    """SPARNet layouts consistent with the checkpoint's block counts, widths and norms
    (docs/specs/sparnet.md §3).

    The layout is read from the checkpoint: number of encoder, body and decoder blocks, 1-channel
    vs per-channel attention maps, BatchNorm running stats vs InstanceNorm, widths, hourglass
    depth. Sizes are not stored in weights (the network is fully convolutional): a custom layout
    is described with a 16 px body unless that cannot be built.
    """
    down_steps = len(child_indices(state_dict, "encoder.")) - 1  # encoder.0 is the stem conv
    up_steps = len(child_indices(state_dict, "decoder."))
    body = len(child_indices(state_dict, "res_layers."))
    blocks = [f"encoder.{i}" for i in range(1, down_steps + 1)] + [f"res_layers.{i}" for i in range(body)]
    blocks += [f"decoder.{i}" for i in range(up_steps)]
    if not blocks:
        return []
    out_block = _weight(state_dict, f"{blocks[0]}.att_func.out_block.0.conv2d")
    attention = "2d" if out_block is not None and out_block.shape[0] == 1 else "3d"
    norm = "bn" if any(k.endswith(".running_mean") for k in state_dict) else "in"
    # The first block's hourglass has log2(64 / bottleneck) levels; body blocks one more than the
    # last encoder block (docs/specs/sparnet.md §3 pseudo-code).
    first_depth = _hourglass_depth(state_dict, blocks[0])
    initial_depth = first_depth if down_steps else first_depth - 1
    widths = [int(w.shape[0]) for b in blocks if (w := _weight(state_dict, f"{b}.conv1.conv2d")) is not None]
    stem = _weight(state_dict, "encoder.0.conv2d")
    last = _weight(state_dict, "out_conv.conv2d")
    assert stem is not None and last is not None  # guaranteed by recognises()
    all_widths = [int(stem.shape[0]), int(last.shape[1]), *widths]
    candidates = []
    for min_channels in sorted({min(all_widths), int(stem.shape[0]), 32}):
        for min_feat_size in (16, 32, 8, 64, 4):
            candidates.append(
                {
                    "min_channels": min_channels,
                    "max_channels": max(all_widths),
                    "in_size": min_feat_size * 2**down_steps,
                    "out_size": min_feat_size * 2**up_steps,
                    "min_feat_size": min_feat_size,
                    "res_depth": body - 3 + down_steps,
                    "attention": attention,
                    "norm": norm,
                    "bottleneck_size": max(1, 64 >> max(initial_depth, 0)),
                }
            )
    return candidates


def converted_shapes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """Keys and shapes as the folded network holds them: ``weight_orig`` counts as ``weight``."""
    shapes = {}
    for key, value in state_dict.items():
        stem, _, suffix = key.rpartition("_")
        if f"_{suffix}" in _SPECTRAL_SUFFIXES and f"{stem}_orig" in state_dict:
            if suffix == "orig":
                shapes[stem] = tuple(value.shape)
            continue
        shapes[key] = tuple(value.shape)
    return shapes


def convert_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fold SPARNetHD's spectral norm (``weight_orig``/``_u``/``_v`` -> ``weight = weight_orig / sigma``,
    as torch does in eval mode, docs/specs/sparnet.md §3); other keys are the official ones and
    pass unchanged.

    Raises:
        ArchitectureMismatchError: spectral-norm buffers that do not fit their weight.
    """
    converted = dict(state_dict)
    if any(k.endswith("_orig") for k in converted):
        try:
            converted = fold_spectral_norm(converted)
        except ValueError as exc:
            raise ArchitectureMismatchError(f"cannot fold spectral norm: {exc}") from None
    return converted
