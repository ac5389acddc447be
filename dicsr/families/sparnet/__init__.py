"""SPARNet, SPARNet-Light and SPARNetHD (Chen et al., IEEE TIP 2021): face attention units.

``FAMILY`` is what the rest of dicsr uses; the network (:class:`SPARNet`), its hyper-parameters
(:class:`SPARNetConfig`), the adapter (:class:`SPARNetAdapter`) and the spectral-norm fold used on
SPARNetHD checkpoints (:func:`fold_spectral_norm`) are exported for direct use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from dicsr.errors import CheckpointError
from dicsr.families._config import ModelConfig
from dicsr.families._family import Family, Preset
from dicsr.families.sparnet import _checkpoint
from dicsr.families.sparnet._adapter import SPARNetAdapter
from dicsr.families.sparnet._network import SPARNET_PRESETS, SPARNet, SPARNetConfig, fold_spectral_norm
from dicsr.families.sparnet._zoo import ZOO

__all__ = ["FAMILY", "SPARNet", "SPARNetAdapter", "SPARNetConfig", "fold_spectral_norm"]

# Peak activation memory of one face in float32, measured on the CPU: small at 128 px, about
# 1.5 GB for SPARNetHD at 512 px.
_BYTES_PER_FACE_128 = 60e6
_BYTES_PER_FACE_HD = 1.6e9

# SPARNet and Light: 16 -> 128 on CelebA face squares (the adapter up-samples the 16 px face to the
# layout's 128 px in_size like the official loader); SPARNetHD: 512 -> 512 FFHQ-aligned
# (docs/specs/sparnet.md §1, §5).
_PRESETS = {
    name: Preset(SPARNET_PRESETS[name], 16, 128, "landmark_square", bytes_per_face=_BYTES_PER_FACE_128)
    for name in ("sparnet", "sparnet-light")
} | {
    name: Preset(SPARNET_PRESETS[name], 512, 512, "ffhq", bytes_per_face=_BYTES_PER_FACE_HD)
    for name in ("sparnethd-2d", "sparnethd-3d")
}


class SPARNetFamily(Family):
    """SPARNet's recognition, layout inference, spectral-norm fold and custom layouts."""

    def recognises(self, state_dict: Mapping[str, torch.Tensor]) -> bool:
        """Whether the keys are a SPARNet generator's (a stem ``encoder.0`` and an ``out_conv``)."""
        return _checkpoint.recognises(state_dict)

    def candidate_configs(self, state_dict: Mapping[str, torch.Tensor]) -> list[dict[str, Any]]:
        """Layouts consistent with the checkpoint's blocks, widths and norms (docs/specs/sparnet.md §3)."""
        return _checkpoint.candidate_configs(state_dict)

    def converted_shapes(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
        """Keys and shapes after the spectral-norm fold (``weight_orig`` counts as ``weight``)."""
        return _checkpoint.converted_shapes(state_dict)

    def convert_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Fold SPARNetHD's spectral norm; every other key is already the network's
        (docs/specs/sparnet.md §3)."""
        return _checkpoint.convert_state_dict(state_dict)

    def custom_preset(self, arch_config: Mapping[str, Any]) -> Preset:
        """A custom layout keeps its configured ``in_size``/``out_size`` as native sizes (there is no
        official 16 px convention to reproduce); HD-like layouts (InstanceNorm) get the FFHQ crop.
        Memory is the released preset's of the same norm, scaled by the output area."""
        config = self.parse_arch_config(arch_config)
        if config.norm == "in":
            return Preset(config, config.in_size, config.out_size, "ffhq",
                          bytes_per_face=_BYTES_PER_FACE_HD * (config.out_size / 512) ** 2)
        return Preset(config, config.in_size, config.out_size, "landmark_square",
                      bytes_per_face=_BYTES_PER_FACE_128 * (config.out_size / 128) ** 2)

    def check_sizes(self, config: ModelConfig, arch_config: Any) -> None:
        """The network always sees ``in_size`` (the face is resized to it when ``lr_size`` differs),
        so it restores ``out_size``."""
        if config.hr_size != arch_config.out_size:
            raise CheckpointError(
                f"hr_size is {config.hr_size}; this SPARNet layout restores out_size {arch_config.out_size}"
            )


FAMILY = SPARNetFamily(
    name="sparnet",
    display_name="SPARNet / SPARNetHD",
    config_type=SPARNetConfig,
    network_type=SPARNet,
    adapter_class=SPARNetAdapter,
    presets=_PRESETS,
    zoo=ZOO,
    # Bounds a config.json is held to before anything is built (the released values: channels 32 to
    # 512, sizes 128 or 512, body 16 or 32 px, res_depth 10 or 1, bottleneck 4): generous for
    # retrained variants, small enough that no value hangs a run or allocates without end.
    limits={
        "min_channels": (1, 1024),
        "max_channels": (1, 1024),
        "in_size": (4, 1024),
        "out_size": (4, 1024),
        "min_feat_size": (1, 256),
        "res_depth": (0, 64),
        "bottleneck_size": (1, 64),
    },
    crop_notes={
        "landmark_square": "axis-aligned square face box resized to 16 px (as SPARNet's CelebA crops); the "
        "adapter up-samples it to 128 px with PIL bicubic like the official test script",
        "ffhq": "FFHQ 5-point similarity warp to a 512 px face (as SPARNetHD's training data)",
    },
    key_conversion="spectral norm folded for SPARNetHD",
)
