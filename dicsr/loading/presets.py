"""What each released configuration needs beyond its layer hyper-parameters.

The architecture presets (``dicsr.archs.dic.DIC_PRESETS``, ``dicsr.archs.sparnet.SPARNET_PRESETS``)
describe layers only. To feed a network, ``config.json`` also records the face-crop convention and
the native sizes the official weights were trained with; this module is the one place that maps a
preset to those facts, so converted folders and registry entries cannot disagree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dicsr.config import ModelConfig
from dicsr.errors import UnknownArchitectureError

__all__ = ["CUSTOM_PRESET", "PresetSpec", "arch_presets", "model_config_for", "preset_spec"]


@dataclass(frozen=True)
class PresetSpec:
    """Native sizes and crop convention of one released configuration.

    Attributes:
        lr_size: side of the low-resolution face (SPARNet: the 16 px face its adapter up-samples
            to 128 px, dic.md §3 / sparnet.md §5).
        hr_size: side of the restored face.
        crop: face-crop convention of the training data (``dicsr.face.crop.CropConvention``).
        num_landmarks: landmarks the network predicts.
    """

    lr_size: int
    hr_size: int
    crop: str
    num_landmarks: int = 0


# (arch, preset) -> spec. DIC: 16 -> 128 on 1.3x landmark squares (dic.md §1, §3); SPARNet and
# Light: 16 -> 128 on CelebA face squares; SPARNetHD: 512 -> 512 FFHQ-aligned (sparnet.md §1, §5).
_SPECS: dict[tuple[str, str], PresetSpec] = {
    ("dic", "dic"): PresetSpec(16, 128, "landmark_square", num_landmarks=68),
    ("sparnet", "sparnet"): PresetSpec(16, 128, "landmark_square"),
    ("sparnet", "sparnet-light"): PresetSpec(16, 128, "landmark_square"),
    ("sparnet", "sparnethd-2d"): PresetSpec(512, 512, "ffhq"),
    ("sparnet", "sparnethd-3d"): PresetSpec(512, 512, "ffhq"),
}

#: Preset name used for a layout that matches no released configuration.
CUSTOM_PRESET = "custom"


def arch_presets(arch: str) -> Mapping[str, Any]:
    """The architecture's preset table (name -> config dataclass), imported on first use."""
    if arch == "dic":
        from dicsr.archs.dic import DIC_PRESETS

        return DIC_PRESETS
    if arch == "sparnet":
        from dicsr.archs.sparnet import SPARNET_PRESETS

        return SPARNET_PRESETS
    raise UnknownArchitectureError(f"unknown architecture {arch!r}; known: dic, sparnet")


def preset_spec(arch: str, preset: str, arch_config: Mapping[str, Any] | None = None) -> PresetSpec:
    """Native sizes and crop of ``preset``; for a custom layout, derived from its config.

    A custom SPARNet layout keeps its configured ``in_size``/``out_size`` as native sizes (there is
    no official 16 px convention to reproduce); HD-like layouts (InstanceNorm) get the FFHQ crop.
    """
    spec = _SPECS.get((arch, preset))
    if spec is not None:
        return spec
    if arch == "sparnet" and arch_config is not None:
        crop = "ffhq" if arch_config.get("norm") == "in" else "landmark_square"
        return PresetSpec(int(arch_config["in_size"]), int(arch_config["out_size"]), crop)
    if arch == "dic":
        return _SPECS[("dic", "dic")]
    raise UnknownArchitectureError(f"no released configuration {preset!r} for architecture {arch!r}")


def model_config_for(
    arch: str,
    preset: str,
    arch_config: Mapping[str, Any] | None = None,
    **provenance: str,
) -> ModelConfig:
    """The ``config.json`` content for a network of ``arch``/``preset``.

    Args:
        arch: ``"dic"`` or ``"sparnet"``.
        preset: a released preset name, or ``"custom"`` together with ``arch_config``.
        arch_config: layer hyper-parameters; defaults to the preset's.
        provenance: ``name``, ``description``, ``training_data``, ``license``, ``source``.
    """
    from dicsr.adapters import adapter_class

    if arch_config is None:
        presets = arch_presets(arch)
        if preset not in presets:
            known = ", ".join(sorted(presets))
            raise UnknownArchitectureError(f"unknown {arch} preset {preset!r}; known: {known}")
        arch_config = dataclasses.asdict(presets[preset])
    spec = preset_spec(arch, preset, arch_config)
    return ModelConfig(
        arch=arch,
        preset=preset,
        arch_config=dict(arch_config),
        lr_size=spec.lr_size,
        hr_size=spec.hr_size,
        crop=spec.crop,
        num_landmarks=spec.num_landmarks,
        normalisation=adapter_class(arch).normalisation(),
        **provenance,
    )
