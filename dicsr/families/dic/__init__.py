"""DIC / DICGAN (Ma et al., CVPR 2020): 8x face super-resolution collaborating with 68 landmarks.

``FAMILY`` is what the rest of dicsr uses; the network (:class:`DIC`), its hyper-parameters
(:class:`DICConfig`) and the adapter (:class:`DICAdapter`) are exported for direct use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from dicsr.errors import CheckpointError
from dicsr.face.crop import Box, landmark_square_from_points68
from dicsr.families._config import ModelConfig
from dicsr.families._family import Family, Preset
from dicsr.families.dic import _checkpoint
from dicsr.families.dic._adapter import CELEBA_MEAN, DICAdapter
from dicsr.families.dic._network import DIC, DIC_PRESETS, DICConfig, DICOutput
from dicsr.families.dic._zoo import ZOO

__all__ = ["CELEBA_MEAN", "DIC", "FAMILY", "DICAdapter", "DICConfig", "DICOutput"]

#: Largest LR side a DIC config may declare: activation memory grows with the square of the side
#: (about 300 MB per face at the native 16 px, so about 5 GB at 64 px).
MAX_LR_SIZE = 64

# 16 -> 128 on 1.3x landmark squares (docs/specs/dic.md §1, §3). Peak activation memory of one face in
# float32, measured on the CPU: ~285 MB (docs/specs/dic.md §5), rounded up.
_PRESET = Preset(DIC_PRESETS["dic"], lr_size=16, hr_size=128, crop="landmark_square", num_landmarks=68,
                 bytes_per_face=300e6)


class DICFamily(Family):
    """DIC's recognition, layout inference, sizes and re-cropping; see :class:`dicsr.families.Family`."""

    def recognises(self, state_dict: Mapping[str, torch.Tensor]) -> bool:
        """Whether the keys are a DIC generator's (``conv_in``, ``conv_out``, the hourglass ``HG``)."""
        return _checkpoint.recognises(state_dict)

    def candidate_configs(self, state_dict: Mapping[str, torch.Tensor]) -> list[dict[str, Any]]:
        """The one layout readable from the checkpoint's shapes (docs/specs/dic.md §4)."""
        return [_checkpoint.infer_config(state_dict)]

    def custom_preset(self, arch_config: Mapping[str, Any]) -> Preset:
        """Another DIC layout is fed like the released one (16 px landmark squares, 68 landmarks)."""
        return Preset(self.parse_arch_config(arch_config), _PRESET.lr_size, _PRESET.hr_size, _PRESET.crop,
                      _PRESET.num_landmarks, _PRESET.bytes_per_face)

    def check_sizes(self, config: ModelConfig, arch_config: Any) -> None:
        """The network is fully convolutional: an LR side divisible by 8 (docs/specs/dic.md §2.4) up to
        ``MAX_LR_SIZE``, and HR = 8 x LR."""
        if config.lr_size % 8 or config.lr_size > MAX_LR_SIZE:
            raise CheckpointError(
                f"lr_size is {config.lr_size}; DIC needs an LR side divisible by 8, at most {MAX_LR_SIZE}"
            )
        if config.hr_size != config.lr_size * arch_config.scale:
            raise CheckpointError(
                f"hr_size is {config.hr_size}; DIC restores {arch_config.scale} x lr_size "
                f"= {config.lr_size * arch_config.scale}"
            )

    def can_recrop(self, config: ModelConfig) -> bool:
        """DIC was trained on boxes made from the 68 landmarks it predicts (axis-aligned crops only)."""
        return config.num_landmarks == 68 and config.crop != "ffhq"

    def recrop_box(self, landmarks: np.ndarray) -> Box:
        """The training box (square around the 68 landmarks, enlarged 1.3x, docs/specs/dic.md §1)."""
        return landmark_square_from_points68(landmarks)


FAMILY = DICFamily(
    name="dic",
    display_name="DIC / DICGAN",
    config_type=DICConfig,
    network_type=DIC,
    adapter_class=DICAdapter,
    presets={"dic": _PRESET},
    zoo=ZOO,
    # Bounds a config.json is held to before anything is built (the official values: 3, 3, 48, 4,
    # 6, 256, 68, 7, 8): generous for retrained variants, small enough that no value hangs a run.
    limits={
        "in_channels": (3, 3),  # the adapter's boundary is RGB
        "out_channels": (3, 3),
        "num_features": (1, 512),
        "num_steps": (1, 16),
        "num_groups": (1, 32),
        "hg_num_features": (2, 1024),
        "num_keypoints": (68, 68),
        "num_fusion_blocks": (1, 32),
        "scale": (8, 8),
    },
    crop_notes={
        "landmark_square": "axis-aligned square around the 68 landmarks, enlarged 1.3x, resized to the input "
        "size (as DIC's CelebA/Helen training crops)",
    },
)
