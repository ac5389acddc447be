"""What a network family is: its presets, networks, checkpoint knowledge, adapter, zoo and capabilities.

A family (DIC/DICGAN, SPARNet/SPARNetHD, ...) is one :class:`Family` object, defined in its own
folder (``dicsr/families/<name>/``) and listed once in the registry. Everything outside the folder
asks the object instead of testing names: the weights room recognises, converts and builds
networks through it, the pipeline asks it about landmarks, re-cropping and memory.

Why a frozen dataclass with a few abstract methods (rather than a plain table or a pure ABC): most of
a family is data (names, presets, the network and adapter classes, zoo entries, bounds), which a
dataclass states plainly and freezes; the rest is behaviour with sensible defaults (key conversion
is the identity, only released presets exist, no re-cropping) that a family overrides only where it
differs, which is what methods are for. Recognising a checkpoint is the one thing every family must
say, so it is the one abstract method.
"""

from __future__ import annotations

import dataclasses
import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from dicsr._checkpoint_io import TensorSpec, tensor_specs
from dicsr.errors import CheckpointError
from dicsr.face.crop import Box, CropConvention
from dicsr.face.landmarks import official_argmax_landmarks, subpixel_landmarks
from dicsr.families._adapter import NetworkAdapter
from dicsr.families._config import ModelConfig

__all__ = [
    "CUSTOM_PRESET",
    "GITHUB_RELEASE",
    "GOOGLE_DRIVE",
    "RECROP_TOLERANCE",
    "Family",
    "Fingerprint",
    "Origin",
    "Preset",
    "ZooEntry",
    "child_indices",
]

#: Preset name of a layout that matches no released configuration.
CUSTOM_PRESET = "custom"

#: Activation memory per face assumed when a family does not say (about a DIC face).
_DEFAULT_BYTES_PER_FACE = 300e6

#: A face is cropped again from its own landmarks (:meth:`Family.refined_box`) when the new box's
#: centre or side differs from the old one's by more than this fraction of its side.
RECROP_TOLERANCE = 0.1

#: :attr:`Origin.kind` of a GitHub release asset (a plain HTTPS download; GitHub redirects to its CDN).
GITHUB_RELEASE = "github-release"
#: :attr:`Origin.kind` of a file in a shared Google Drive folder (fetched with gdown).
GOOGLE_DRIVE = "google-drive"


@dataclass(frozen=True)
class Preset:
    """One released configuration of a family: its layout and how it is fed.

    Attributes:
        arch_config: the layout, an instance of the family's config dataclass.
        lr_size: side of the low-resolution face the network is fed.
        hr_size: side of the restored face.
        crop: face-crop convention of the training data.
        num_landmarks: landmarks the network predicts (0: none).
        bytes_per_face: peak activation memory of one face in float32 (measured on the CPU); the
            pipeline sizes its batches from it.
    """

    arch_config: Any
    lr_size: int
    hr_size: int
    crop: CropConvention
    num_landmarks: int = 0
    bytes_per_face: float = _DEFAULT_BYTES_PER_FACE


@dataclass(frozen=True)
class Origin:
    """Where an official checkpoint is published, in the form dicsr downloads it from.

    Attributes:
        kind: :data:`GITHUB_RELEASE` (``url`` is the asset's download URL) or :data:`GOOGLE_DRIVE`
            (``url`` is the shared folder, ``path`` the file's path inside it).
        url: see ``kind``.
        path: the file's path inside a Drive folder (``"models/<official file name>"``).
    """

    kind: str
    url: str
    path: str = ""

    def __post_init__(self) -> None:
        if self.kind not in (GITHUB_RELEASE, GOOGLE_DRIVE):
            raise ValueError(f"origin kind must be {GITHUB_RELEASE!r} or {GOOGLE_DRIVE!r}, got {self.kind!r}")
        if self.kind == GOOGLE_DRIVE and not self.path:
            raise ValueError("a Google Drive origin needs the file's path inside the folder")


@dataclass(frozen=True)
class Fingerprint:
    """What is published about an official file, checked after every download of it; ``None`` where
    unknown (any subset may be known).

    Attributes:
        size: size in bytes.
        sha256: hex sha256 of the bytes.
        git_blob_sha1: hex git blob id, the id git and GitHub give a committed file (sha1 of
            ``b"blob <size>\\0"`` followed by the bytes).
    """

    size: int | None = None
    sha256: str | None = None
    git_blob_sha1: str | None = None

    @property
    def known(self) -> bool:
        """Whether anything is published to check against."""
        return any(value is not None for value in (self.size, self.sha256, self.git_blob_sha1))


@dataclass(frozen=True)
class ZooEntry:
    """One published set of weights of a family; sizes and crop come from its preset.

    Attributes:
        name: zoo name users type (``"dic-celeba"``).
        preset: the family preset the weights are.
        official_filename: the official checkpoint's file name (to pass to ``dicsr convert``).
        official_source: where the official checkpoint is downloaded from.
        training_data: data set the official weights were trained on.
        license: licence of the official weights.
        description: one-line summary.
        official_mirrors: other official download locations.
        origin: where dicsr itself downloads the official checkpoint (``None``: it does not, the
            user converts it by hand).
        official_fingerprint: what is published about the official checkpoint (checked after
            every download of it).
        license_notice: terms a user must know before using the weights, logged whenever they are
            downloaded (``None``: nothing to say beyond ``license``).
        hub_repo: Hugging Face Hub repository of the converted folder (``None``: the dicsr
            organisation's repository of the same name).
        revision: pinned hub revision (``None``: the zoo's placeholder until publication).
        sha256: hex sha256 of the published ``model.safetensors``, if known.
        size: its byte size, if known.
    """

    name: str
    preset: str
    official_filename: str
    official_source: str
    training_data: str
    license: str
    description: str
    official_mirrors: tuple[str, ...] = ()
    origin: Origin | None = None
    official_fingerprint: Fingerprint = Fingerprint()
    license_notice: str | None = None
    hub_repo: str | None = None
    revision: str | None = None
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True, eq=False, kw_only=True)
class Family(ABC):
    """Everything dicsr knows about one network family.

    Attributes:
        name: the family's name in ``config.json`` (``arch``) and the registry.
        display_name: how messages and model cards name it (``"DIC / DICGAN"``).
        config_type: the dataclass of the network's hyper-parameters (``arch_config``).
        network_type: builds the network from a ``config_type`` instance (usually the class).
        adapter_class: the :class:`NetworkAdapter` owning the network's normalisation and dtypes.
        presets: the released configurations by name.
        zoo: the family's published weights.
        limits: inclusive ``(min, max)`` bounds of integer ``arch_config`` fields, checked before
            anything is built (a hostile ``config.json`` must not hang or allocate without end).
        crop_notes: one line per crop convention the family uses, for model cards.
        key_conversion: what :meth:`convert_state_dict` changes, for model cards (empty: nothing).
    """

    name: str
    display_name: str
    config_type: type[Any]
    network_type: Callable[[Any], nn.Module]
    adapter_class: type[NetworkAdapter]
    presets: Mapping[str, Preset]
    zoo: tuple[ZooEntry, ...] = ()
    limits: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    crop_notes: Mapping[str, str] = field(default_factory=dict)
    key_conversion: str = ""

    def __post_init__(self) -> None:
        if not self.presets:
            raise ValueError(f"family {self.name!r} has no presets")
        for entry in self.zoo:
            if entry.preset not in self.presets:
                raise ValueError(f"zoo entry {entry.name!r} names unknown preset {entry.preset!r}")

    # -- layouts and networks ----------------------------------------------------------------------

    def parse_arch_config(self, arch_config: Mapping[str, Any] | Any) -> Any:
        """``arch_config`` (a ``config.json`` mapping, or a ``config_type`` instance) checked and built.

        Raises:
            CheckpointError: a field outside :attr:`limits`, of the wrong type, unknown, or refused by
                the config dataclass; the message names the field.
        """
        if isinstance(arch_config, self.config_type):
            return arch_config
        if not isinstance(arch_config, Mapping):
            raise CheckpointError(f"arch_config must be a JSON object, got {type(arch_config).__name__}")
        for key, (low, high) in self.limits.items():
            value = arch_config.get(key)
            if key in arch_config and (
                not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high
            ):
                raise CheckpointError(
                    f"arch_config.{key} must be an integer from {low} to {high} for a {self.display_name} "
                    f"network, got {value!r:.60}"
                )
        try:
            return self.config_type(**arch_config)
        except (TypeError, ValueError) as exc:  # unknown keys, or values the dataclass refuses
            raise CheckpointError(
                f"arch_config does not describe a {self.display_name} network: {exc}"
            ) from None

    def arch_config_dict(self, arch_config: Mapping[str, Any] | Any) -> dict[str, Any]:
        """``arch_config`` as the plain dict ``config.json`` stores."""
        return dataclasses.asdict(self.parse_arch_config(arch_config))

    def build_network(self, arch_config: Mapping[str, Any] | Any) -> nn.Module:
        """A randomly initialised network of this layout (on torch's current default device)."""
        return self.network_type(self.parse_arch_config(arch_config))

    def expected_tensors(self, arch_config: Mapping[str, Any] | Any) -> dict[str, TensorSpec]:
        """Keys, shapes and kinds of dtype of the layout's state dict (built on the meta device: no memory).

        Raises:
            CheckpointError: an invalid layout (see :meth:`parse_arch_config`).
        """
        parsed = self.parse_arch_config(arch_config)
        try:
            hash(parsed)
        except TypeError:  # a mutable config dataclass: not cacheable
            return _meta_tensor_specs(self.network_type, parsed)
        return dict(_cached_tensor_specs(self, parsed))

    def build_adapter(self, config: ModelConfig, network: nn.Module | None = None) -> NetworkAdapter:
        """Wrap ``network`` (or a freshly built one for ``config``) in the family's adapter."""
        return self.adapter_class(
            network if network is not None else self.build_network(config.arch_config), config
        )

    # -- checkpoints -------------------------------------------------------------------------------

    @abstractmethod
    def recognises(self, state_dict: Mapping[str, torch.Tensor]) -> bool:
        """Whether ``state_dict`` (an official checkpoint's, unwrapped) is one of this family's networks.

        Decided from key names only; which layout it is comes from :meth:`candidate_configs`.
        """

    def candidate_configs(self, state_dict: Mapping[str, torch.Tensor]) -> list[dict[str, Any]]:
        """Layouts (``arch_config`` dicts) that may reproduce a recognised checkpoint beyond the presets.

        The default offers none: only released presets are recognised.
        """
        return []

    def converted_shapes(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
        """Keys and shapes ``state_dict`` will have after :meth:`convert_state_dict`, without converting."""
        return {key: tuple(value.shape) for key, value in state_dict.items()}

    def convert_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Map an official state dict onto the network's keys (default: unchanged).

        Raises:
            ArchitectureMismatchError: tensors that cannot be converted.
        """
        return dict(state_dict)

    # -- configs -----------------------------------------------------------------------------------

    def custom_preset(self, arch_config: Mapping[str, Any]) -> Preset:
        """How a layout that is no released preset is fed (sizes, crop, landmarks, memory).

        The default refuses: a family without custom layouts only loads its presets.
        """
        raise CheckpointError(
            f"preset must be one of {', '.join(self.presets)} for a {self.display_name} network"
        )

    def preset_for(self, config: ModelConfig) -> Preset:
        """The preset ``config`` names, or :meth:`custom_preset` for another layout."""
        preset = self.presets.get(config.preset)
        return preset if preset is not None else self.custom_preset(config.arch_config)

    def model_config(
        self,
        preset: str,
        arch_config: Mapping[str, Any] | None = None,
        *,
        name: str = "",
        description: str = "",
        training_data: str = "",
        license: str = "",
        source: str = "",
    ) -> ModelConfig:
        """The ``config.json`` content of a network of this family.

        Args:
            preset: a released preset name, or ``"custom"`` together with ``arch_config``.
            arch_config: the layout; defaults to the preset's.
            name: the model's name (provenance, written to the model card like the next four).
            description: what the model is.
            training_data: what it was trained on.
            license: the weights' licence.
            source: where the weights come from.

        Raises:
            CheckpointError: unknown preset without ``arch_config``, or an invalid layout.
        """
        if arch_config is None:
            if preset not in self.presets:
                raise CheckpointError(
                    f"unknown {self.name} preset {preset!r}; known: {', '.join(sorted(self.presets))}"
                )
            arch_config = self.arch_config_dict(self.presets[preset].arch_config)
        spec = self.presets[preset] if preset in self.presets else self.custom_preset(arch_config)
        return ModelConfig(
            arch=self.name,
            preset=preset,
            arch_config=self.arch_config_dict(arch_config),
            lr_size=spec.lr_size,
            hr_size=spec.hr_size,
            crop=spec.crop,
            num_landmarks=spec.num_landmarks,
            name=name,
            description=description,
            training_data=training_data,
            license=license,
            source=source,
            normalisation=self.adapter_class.normalisation(),
        )

    def check_config(self, config: ModelConfig) -> None:
        """Refuse a ``config.json`` whose layout or sizes this family cannot run.

        Checks the ``arch_config`` (see :meth:`parse_arch_config`), that ``num_landmarks`` is what
        the network predicts, and :meth:`check_sizes`. Called by :class:`ModelConfig` itself.

        Raises:
            CheckpointError: names the field.
        """
        parsed = self.parse_arch_config(config.arch_config)
        expected = self.preset_for(config).num_landmarks
        if config.num_landmarks != expected:
            raise CheckpointError(
                f"num_landmarks is {config.num_landmarks}, but a {self.display_name} network predicts "
                f"{expected}"
            )
        self.check_sizes(config, parsed)

    def check_sizes(self, config: ModelConfig, arch_config: Any) -> None:
        """Refuse ``lr_size``/``hr_size`` the layout cannot produce (default: the preset's sizes only).

        Raises:
            CheckpointError: names the field.
        """
        preset = self.preset_for(config)
        for field_name, wanted in (("lr_size", preset.lr_size), ("hr_size", preset.hr_size)):
            if getattr(config, field_name) != wanted:
                raise CheckpointError(
                    f"{field_name} is {getattr(config, field_name)}, but preset {config.preset!r} of "
                    f"{self.display_name} is {wanted}"
                )

    # -- capabilities the pipeline asks about -----------------------------------------------------

    def predicts_landmarks(self, config: ModelConfig) -> bool:
        """Whether the network returns landmark heatmaps."""
        return config.num_landmarks > 0

    def can_recrop(self, config: ModelConfig) -> bool:
        """Whether a face can be re-cropped from the landmarks the network predicts (default: no)."""
        return False

    def recrop_box(self, landmarks: np.ndarray) -> Box:
        """The training-convention crop box from the network's own landmarks (in photo coordinates).

        Only called when :meth:`can_recrop` is true.
        """
        raise NotImplementedError(f"{self.display_name} cannot re-crop from its own landmarks")

    def refined_box(self, config: ModelConfig, box: Box, landmarks: np.ndarray) -> Box | None:
        """The box to crop a face again from, given the landmarks the network predicted on it.

        Args:
            config: the model's configuration.
            box: the crop box the face was restored from (photo coordinates).
            landmarks: the network's landmarks of that face, in photo coordinates.

        Returns:
            :meth:`recrop_box` of the landmarks when the family :meth:`can_recrop` and that box differs
            from ``box`` in any coordinate by more than :data:`RECROP_TOLERANCE` of its side; else
            ``None``: the face keeps its crop.
        """
        if not self.can_recrop(config):
            return None
        new = self.recrop_box(landmarks)
        side = max(box[2] - box[0], 1e-6)
        moved = max(abs(a - b) for a, b in zip(box, new, strict=True))
        return new if moved > RECROP_TOLERANCE * side else None

    def decode_landmarks(self, config: ModelConfig, heatmaps: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks of a batch of restored faces from the network's heatmaps, in face coordinates.

        Only called when :meth:`predicts_landmarks` is true. The default reads a Gaussian peak per
        heatmap on a grid ``hr_size / w`` times coarser than the face (DIC: 128 / 32 = 4):
        :func:`dicsr.face.landmarks.subpixel_landmarks` and the official
        :func:`dicsr.face.landmarks.official_argmax_landmarks`.

        Args:
            config: the model's configuration.
            heatmaps: ``B×K×h×w`` heatmaps of the final step, on the CPU.

        Returns:
            ``(points, official)``: ``B×K×2`` float32 sub-pixel ``(x, y)`` and the ``B×K×2`` int64
            official decoding.
        """
        stride = config.hr_size // heatmaps.shape[-1]
        return (
            subpixel_landmarks(heatmaps, stride=stride).numpy(),
            official_argmax_landmarks(heatmaps, stride=stride).numpy(),
        )

    def bytes_per_face(self, config: ModelConfig) -> float:
        """Peak float32 activation memory of one face, for batch sizing."""
        return self.preset_for(config).bytes_per_face


def _meta_tensor_specs(network_type: Callable[[Any], nn.Module], arch_config: Any) -> dict[str, TensorSpec]:
    with torch.device("meta"):
        network = network_type(arch_config)
    return tensor_specs(network.state_dict())


@functools.lru_cache(maxsize=64)
def _cached_tensor_specs(family: Family, arch_config: Any) -> dict[str, TensorSpec]:
    # Detection compares a checkpoint with every preset, and building a large layout takes a
    # noticeable fraction of a second even on the meta device.
    return _meta_tensor_specs(family.network_type, arch_config)


def child_indices(state_dict: Mapping[str, torch.Tensor], prefix: str) -> list[int]:
    """The numbered children under ``prefix`` (``"encoder."`` -> ``[0, 1, 2]``), for layout inference."""
    found = {k[len(prefix) :].split(".", 1)[0] for k in state_dict if k.startswith(prefix)}
    return sorted(int(i) for i in found if i.isdigit())
