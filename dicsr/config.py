"""The model-folder configuration (``config.json``): what a set of weights is and how to feed it.

A model folder is ``model.safetensors`` + ``config.json``. The config names the architecture and
its hyper-parameters, the native sizes, and the face-crop convention the weights were trained
with, so a folder is self-describing: :func:`dicsr.loading.load_model` needs nothing else.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dicsr.errors import CheckpointError, InvalidInputError
from dicsr.face.crop import crop_convention

__all__ = ["CONFIG_FORMAT_VERSION", "ModelConfig"]

CONFIG_FORMAT_VERSION = 1

_ARCHS = ("dic", "sparnet")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild and feed a network, stored as ``config.json``.

    Attributes:
        arch: architecture family, ``"dic"`` or ``"sparnet"``.
        preset: name of the released configuration (``dicsr.archs`` presets).
        arch_config: keyword arguments of the architecture's config dataclass.
        lr_size: side of the low-resolution face the network is fed (16 for DIC and SPARNet,
            512 for SPARNetHD, whose input is an upsampled low-quality face).
        hr_size: side of the restored face.
        crop: face-crop convention the weights were trained with (a
            :data:`~dicsr.face.crop.CropConvention`; the legacy names ``dic_square`` and
            ``sparnet_square`` are read as ``landmark_square``).
        num_landmarks: landmarks the network predicts (68 for DIC, 0 otherwise).
        name: model-zoo name, if the folder was made for a registry entry.
        description, training_data, license, source: provenance shown in model cards.
        normalisation: informational copy of the adapter's input normalisation.
    """

    arch: str
    preset: str
    arch_config: Mapping[str, Any]
    lr_size: int
    hr_size: int
    crop: str
    num_landmarks: int = 0
    name: str = ""
    description: str = ""
    training_data: str = ""
    license: str = ""
    source: str = ""
    normalisation: Mapping[str, Any] = field(default_factory=dict)
    format_version: int = CONFIG_FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.arch not in _ARCHS:
            raise CheckpointError(f"config.json: unknown arch {self.arch!r}; expected one of {_ARCHS}")
        try:
            # frozen dataclass: a legacy name is replaced by the convention it means
            object.__setattr__(self, "crop", crop_convention(self.crop))
        except InvalidInputError as exc:
            raise CheckpointError(f"config.json: {exc}") from None
        if self.format_version > CONFIG_FORMAT_VERSION:
            raise CheckpointError(
                f"config.json has format_version {self.format_version}, newer than this dicsr "
                f"understands ({CONFIG_FORMAT_VERSION}); upgrade dicsr"
            )
        for attr in ("lr_size", "hr_size"):
            value = getattr(self, attr)
            if not isinstance(value, int) or value <= 0:
                raise CheckpointError(f"config.json: {attr} must be a positive integer, got {value!r}")

    @property
    def scale(self) -> int:
        """Upscaling factor of the network (``hr_size / lr_size``; 1 for SPARNetHD)."""
        return self.hr_size // self.lr_size

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON representation (what ``config.json`` holds)."""
        data = dataclasses.asdict(self)
        data["arch_config"] = dict(self.arch_config)
        data["normalisation"] = dict(self.normalisation)
        data["scale"] = self.scale  # derived; written for readers of the file, ignored on load
        return data

    def to_json(self) -> str:
        """Serialise to the text of ``config.json`` (stable key order)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Build from a parsed ``config.json``; unknown keys are ignored for forward compatibility."""
        if not isinstance(data, Mapping):
            raise CheckpointError("config.json must hold a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        required = {"arch", "preset", "arch_config", "lr_size", "hr_size", "crop"}
        missing = sorted(required - set(data))
        if missing:
            raise CheckpointError(f"config.json is missing required keys: {', '.join(missing)}")
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        """Parse the text of ``config.json``."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"config.json is not valid JSON: {exc}") from None
        return cls.from_dict(data)
