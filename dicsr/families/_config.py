"""The model-folder configuration (``config.json``): what a set of weights is and how to feed it.

A model folder is ``model.safetensors`` + ``config.json``. The config names the network family and
its hyper-parameters, the native sizes, and the face-crop convention the weights were trained
with, so a folder is self-describing: :func:`dicsr.weights.load_model` needs nothing else.

A model folder is also the format users share, so every field is checked before anything is built:
its JSON type, its bounds, and its consistency with the family's layout (a ``num_steps`` of ten
million would hang, a ``num_features`` of 200,000 would allocate 160 GB, an ``hr_size`` of 1e9 would
fail on every image). Each refusal is a :class:`~dicsr.errors.CheckpointError` naming the field.
"""

from __future__ import annotations

import dataclasses
import json
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dicsr.errors import CheckpointError
from dicsr.face.crop import CROP_CONVENTIONS, LEGACY_CROP_NAMES, CropConvention, crop_convention

__all__ = ["CONFIG_FORMAT_VERSION", "MAX_CONFIG_BYTES", "MAX_FACE_SIZE", "ModelConfig"]

CONFIG_FORMAT_VERSION = 1

#: Largest ``config.json`` read (a real one is about 1 kB): nothing huge is ever parsed.
MAX_CONFIG_BYTES = 1_000_000
#: Largest ``lr_size``/``hr_size`` accepted (the largest released model restores 512 px faces).
MAX_FACE_SIZE = 4096
#: Largest ``num_landmarks`` accepted.
_MAX_LANDMARKS = 1000
#: Longest provenance text accepted (``description``, ``license``, ...).
_MAX_TEXT = 10_000

_CROPS: tuple[str, ...] = CROP_CONVENTIONS
_CROP_NAMES = frozenset(CROP_CONVENTIONS) | frozenset(LEGACY_CROP_NAMES)
_TEXT_FIELDS = ("preset", "name", "description", "training_data", "license", "source")
_REQUIRED = ("arch", "preset", "arch_config", "lr_size", "hr_size", "crop")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild and feed a network, stored as ``config.json``.

    Construction checks every field (type, bounds, and consistency with the family's layout, see
    :meth:`dicsr.families.Family.check_config`).

    Attributes:
        arch: name of the network family (``dicsr.families.list_families()``), e.g. ``"dic"``.
        preset: name of the released configuration (a key of the family's presets), or
            ``"custom"`` for another layout.
        arch_config: keyword arguments of the family's config dataclass.
        lr_size: side of the low-resolution face the network is fed (16 for DIC and SPARNet,
            512 for SPARNetHD, whose input is an upsampled low-quality face).
        hr_size: side of the restored face.
        crop: face-crop convention the weights were trained with (the legacy names ``dic_square``
            and ``sparnet_square`` are read as ``landmark_square``).
        num_landmarks: landmarks the network predicts (68 for DIC, 0 otherwise).
        name: model-zoo name, if the folder was made for a zoo entry.
        description, training_data, license, source: provenance shown in model cards.
        normalisation: informational copy of the adapter's input normalisation.
        format_version: version of the ``config.json`` layout.

    Raises:
        CheckpointError: a field of the wrong type, out of bounds, or inconsistent with the layout.
        UnknownArchitectureError: ``arch`` names no registered family.
    """

    arch: str
    preset: str
    arch_config: Mapping[str, Any]
    lr_size: int
    hr_size: int
    crop: CropConvention
    num_landmarks: int = 0
    name: str = ""
    description: str = ""
    training_data: str = ""
    license: str = ""
    source: str = ""
    normalisation: Mapping[str, Any] = field(default_factory=dict)
    format_version: int = CONFIG_FORMAT_VERSION

    def __post_init__(self) -> None:
        _require_int("format_version", self.format_version, 1, None)
        if self.format_version > CONFIG_FORMAT_VERSION:
            raise CheckpointError(
                f"format_version is {self.format_version}, newer than this dicsr understands "
                f"({CONFIG_FORMAT_VERSION}); upgrade dicsr"
            )
        if not isinstance(self.arch, str):
            raise CheckpointError(f"field 'arch' must be a family name (a string), got {_shown(self.arch)}")
        for name in _TEXT_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) > _MAX_TEXT:
                raise CheckpointError(f"field {name!r} must be a string of at most {_MAX_TEXT:,} characters")
        if not isinstance(self.crop, str) or self.crop not in _CROP_NAMES:
            raise CheckpointError(f"field 'crop' is {_shown(self.crop)}; expected one of {', '.join(_CROPS)}")
        # Frozen dataclass: a legacy name is replaced by the convention it means.
        object.__setattr__(self, "crop", crop_convention(self.crop))
        _require_int("lr_size", self.lr_size, 1, MAX_FACE_SIZE)
        _require_int("hr_size", self.hr_size, 1, MAX_FACE_SIZE)
        _require_int("num_landmarks", self.num_landmarks, 0, _MAX_LANDMARKS)
        for name in ("arch_config", "normalisation"):
            value = getattr(self, name)
            if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
                raise CheckpointError(f"field {name!r} must be a JSON object, got {type(value).__name__}")
        from dicsr.families._registry import get_family

        get_family(self.arch).check_config(self)

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
        """Build from a parsed ``config.json``; unknown keys are ignored for forward compatibility.

        Raises:
            CheckpointError: not an object, a required key missing, or any field invalid.
        """
        if not isinstance(data, Mapping):
            raise CheckpointError(f"a model config must be a JSON object, not a {type(data).__name__}")
        missing = [key for key in _REQUIRED if key not in data]
        if missing:
            raise CheckpointError(f"required keys missing: {', '.join(missing)}")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        """Parse the text of ``config.json`` (at most :data:`MAX_CONFIG_BYTES`).

        Raises:
            CheckpointError: too large, not JSON (or nested too deeply to parse), or invalid.
        """
        if len(text) > MAX_CONFIG_BYTES:
            raise CheckpointError(
                f"{len(text):,} characters is no model config (they are about 1 kB; limit "
                f"{MAX_CONFIG_BYTES:,})"
            )
        try:
            data = json.loads(text)
        except RecursionError:
            raise CheckpointError("nested too deeply to be a model config") from None
        except ValueError as exc:  # JSONDecodeError, and integers too long to convert
            raise CheckpointError(f"not valid JSON: {exc}") from None
        return cls.from_dict(data)


def _require_int(name: str, value: Any, minimum: int, maximum: int | None) -> None:
    """Refuse anything but an int (not a bool, not a float such as JSON's ``1e9``) in range."""
    in_range = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    if not in_range or (maximum is not None and value > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
        raise CheckpointError(f"field {name!r} must be an integer {bounds}, got {_shown(value)}")


def _shown(value: Any) -> str:
    """A short repr for messages (a hostile file may hold megabytes in one field)."""
    return reprlib.repr(value)
