"""The model zoo: one :class:`ModelEntry` per published set of weights, gathered from the families.

Each family lists its own weights (:class:`dicsr.families.ZooEntry`: what they are, the official
checkpoint, where dicsr downloads it (:class:`~dicsr.families.Origin`) and what is published about
it (:class:`~dicsr.families.Fingerprint`), training data, licence); this module adds where dicsr
downloads the converted folder (a Hugging Face Hub repository at a pinned revision, with the sha256
of ``model.safetensors`` once published). Sizes and crop are the family preset's.

Publication status: the converted weights are not published yet. Every entry points at the
placeholder repository ``dicsr/<name>`` at tag ``v1`` with ``sha256=None``; publishing (see
docs/model-zoo.md) means uploading the folder, tagging the commit ``v1``, then replacing the tag
with the 40-hex commit and filling ``sha256``/``size`` in the family's zoo entry. Until then a zoo
name is fetched from a mirror or its official origin and converted into the dicsr cache
(:mod:`dicsr.weights._origins`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from dicsr.errors import ModelNotFoundError
from dicsr.face.crop import CropConvention
from dicsr.families import (
    Family,
    Fingerprint,
    ModelConfig,
    Origin,
    Preset,
    ZooEntry,
    get_family,
    list_families,
)

__all__ = ["HUB_ORGANISATION", "PLACEHOLDER_REVISION", "ModelEntry", "get_model_entry", "list_models"]

#: Hub organisation the converted weights are published under (placeholder until publication).
HUB_ORGANISATION = "dicsr"
#: Tag every entry is pinned to until real commits exist; replace by the 40-hex commit when publishing.
PLACEHOLDER_REVISION = "v1"
#: The weights file of every published model folder.
_WEIGHTS_FILENAME = "model.safetensors"


@dataclass(frozen=True)
class ModelEntry:
    """One published model: what it is, where dicsr gets it, and where it originally comes from.

    Attributes:
        name: zoo name users type (lower case, ``-`` between words).
        arch: network family (``dicsr.families.get_family(arch)``).
        preset: released configuration of that family.
        hub_repo: Hugging Face Hub repository holding ``config.json`` + ``model.safetensors``.
        revision: pinned revision (a 40-hex commit once published; the tag ``v1`` until then).
        filename: weights file in the repository.
        sha256: hex sha256 of the weights file, verified after every download; ``None`` if unknown.
        size: byte size of the weights file, or ``None`` if unknown.
        license: licence of the official weights.
        training_data: data set the official weights were trained on.
        official_source: where the official checkpoint is downloaded from.
        official_filename: the official checkpoint's file name (to pass to ``dicsr convert``).
        description: one-line summary.
        official_mirrors: other official download locations.
        origin: where dicsr itself downloads the official checkpoint (``None``: by hand only).
        official_fingerprint: what is published about the official checkpoint (checked after
            every download of it).
        license_notice: logged whenever the weights are downloaded (terms a user must know before
            using them), or ``None``.
    """

    name: str
    arch: str
    preset: str
    hub_repo: str
    revision: str
    filename: str
    sha256: str | None
    size: int | None
    license: str
    training_data: str
    official_source: str
    official_filename: str
    description: str
    official_mirrors: tuple[str, ...] = ()
    origin: Origin | None = None
    official_fingerprint: Fingerprint = field(default_factory=Fingerprint)
    license_notice: str | None = None

    @classmethod
    def from_family(cls, family: Family, entry: ZooEntry) -> ModelEntry:
        """The zoo's view of a family's entry, with the hub defaults filled in."""
        return cls(
            name=entry.name,
            arch=family.name,
            preset=entry.preset,
            hub_repo=entry.hub_repo or f"{HUB_ORGANISATION}/{entry.name}",
            revision=entry.revision or PLACEHOLDER_REVISION,
            filename=_WEIGHTS_FILENAME,
            sha256=entry.sha256,
            size=entry.size,
            license=entry.license,
            training_data=entry.training_data,
            official_source=entry.official_source,
            official_filename=entry.official_filename,
            description=entry.description,
            official_mirrors=entry.official_mirrors,
            origin=entry.origin,
            official_fingerprint=entry.official_fingerprint,
            license_notice=entry.license_notice,
        )

    @property
    def family(self) -> Family:
        """The network family of these weights."""
        return get_family(self.arch)

    @property
    def _preset(self) -> Preset:
        return self.family.presets[self.preset]

    @property
    def lr_size(self) -> int:
        """Side of the low-resolution face the model takes (the preset's)."""
        return self._preset.lr_size

    @property
    def hr_size(self) -> int:
        """Side of the restored face (the preset's)."""
        return self._preset.hr_size

    @property
    def crop(self) -> CropConvention:
        """Face-crop convention (the preset's)."""
        return self._preset.crop

    @property
    def hub_reference(self) -> str:
        """The pinned ``hf-hub:org/repo@revision`` reference of these weights."""
        return f"hf-hub:{self.hub_repo}@{self.revision}"

    def model_config(self) -> ModelConfig:
        """The ``config.json`` published beside these weights."""
        return self.family.model_config(
            self.preset,
            name=self.name,
            description=self.description,
            training_data=self.training_data,
            license=self.license,
            source=self.official_source,
        )

    def how_to_obtain(self) -> str:
        """Instructions for getting these weights without the hub (used in error messages)."""
        return (
            f"download the official checkpoint {self.official_filename} from {self.official_source}, "
            f"convert it with `dicsr convert {self.official_filename} ./{self.name} --name {self.name}` "
            f"and load the folder ('./{self.name}'), or pass any local model folder"
        )


def list_models() -> list[ModelEntry]:
    """Every model in the zoo, family by family in registry order."""
    return [ModelEntry.from_family(family, entry) for family in list_families() for entry in family.zoo]


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def get_model_entry(name: str) -> ModelEntry:
    """The zoo entry called ``name`` (case and ``_``/``-`` are ignored: ``My_Model`` finds ``my-model``).

    Raises:
        ModelNotFoundError: no such entry; the message suggests close names.
    """
    by_name = {entry.name: entry for entry in list_models()}
    entry = by_name.get(_normalise(name))
    if entry is not None:
        return entry
    suggestions = difflib.get_close_matches(_normalise(name), list(by_name), n=3, cutoff=0.5)
    hint = f" (did you mean {' or '.join(repr(s) for s in suggestions)}?)" if suggestions else ""
    raise ModelNotFoundError(
        f"no model named {name!r} in the dicsr zoo{hint}; known models: {', '.join(by_name)}"
    )
