"""Official checkpoint -> dicsr model folder (what ``dicsr convert`` runs).

read (weights-only) -> recognise -> convert keys -> strict load into the built network -> save
``model.safetensors`` + ``config.json`` + model card recording the source file's sha256.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from dicsr._checkpoint_io import check_state_dict, load_state_dict_strictly, tensor_specs
from dicsr._files import sha256_of_file
from dicsr._version import __version__
from dicsr.errors import (
    ArchitectureMismatchError,
    DestinationExistsError,
    InvalidInputError,
    UnknownArchitectureError,
)
from dicsr.families import Family, ModelConfig, NetworkAdapter, get_family, list_families
from dicsr.weights._card import ConversionRecord, render_model_card
from dicsr.weights._checkpoint import DetectedArchitecture, detect_architecture, read_checkpoint
from dicsr.weights._folder import save_model_folder
from dicsr.weights._zoo import get_model_entry

__all__ = ["ConvertedModel", "convert_checkpoint", "convert_official_checkpoint"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConvertedModel:
    """An official checkpoint loaded into its dicsr adapter.

    Attributes:
        adapter: the network with the checkpoint's weights, on the CPU in float32.
        record: how the conversion was done (for the model card).
    """

    adapter: NetworkAdapter
    record: ConversionRecord


def convert_official_checkpoint(
    src: str | os.PathLike[str],
    *,
    name: str | None = None,
    arch: str | None = None,
    preset: str | None = None,
) -> ConvertedModel:
    """Load an official checkpoint into a dicsr adapter, in memory.

    Args:
        src: the official ``.pth`` file (any layout :func:`~dicsr.weights.read_official_checkpoint` accepts).
        name: zoo entry the weights are (sets provenance, and the expected arch/preset).
        arch: expected network family; a checkpoint of another family is refused.
        preset: expected preset; a checkpoint of another layout is refused.

    Raises:
        CorruptCheckpointError: unreadable file.
        UnknownArchitectureError: no family recognised and none requested.
        ArchitectureMismatchError: the weights do not fit the (requested or detected) network.
        InvalidWeightsError: a tensor is not floating point where the network's is, or holds NaN
            or infinite values.
        ModelNotFoundError: ``src`` or the zoo entry ``name`` does not exist.
    """
    src = Path(src)
    entry = get_model_entry(name) if name is not None else None
    if entry is not None:
        for label, wanted, listed in (("arch", arch, entry.arch), ("preset", preset, entry.preset)):
            if wanted is not None and wanted != listed:
                raise InvalidInputError(
                    f"{label}={wanted!r} contradicts zoo entry {entry.name!r} ({label} {listed!r})"
                )
        arch, preset = entry.arch, entry.preset

    checkpoint = read_checkpoint(src)
    detected = _detect_or_explain(checkpoint.state_dict, src, arch, preset)
    family = get_family(detected.arch)
    state_dict = family.convert_state_dict(checkpoint.state_dict)

    if entry is not None:
        config = entry.model_config()
    else:
        config = family.model_config(detected.preset, detected.arch_config)
    adapter = family.build_adapter(config)
    load_state_dict_strictly(
        adapter.network,
        state_dict,
        what=f"{src.name} does not fit {config.arch} preset {config.preset!r}",
        source=str(src),
    )
    record = ConversionRecord(
        source_filename=src.name,
        source_sha256=sha256_of_file(src),
        source_size=src.stat().st_size,
        layout=checkpoint.layout,
        ignored=checkpoint.ignored,
        keys_converted=state_dict.keys() != checkpoint.state_dict.keys(),
        num_tensors=len(state_dict),
        num_parameters=sum(p.numel() for p in adapter.network.parameters()),
        dicsr_version=__version__,
    )
    logger.info("converted %s: %s preset %s (%s)", src, config.arch, config.preset, checkpoint.layout)
    return ConvertedModel(adapter=adapter, record=record)


def _detect_or_explain(
    state_dict: dict[str, torch.Tensor], src: Path, arch: str | None, preset: str | None
) -> DetectedArchitecture:
    """Detect the layout; if the caller named one, refuse a checkpoint that is something else."""
    family = get_family(arch) if arch is not None else None
    if family is None and preset is not None:
        family = _family_of_preset(preset)
    if family is not None and preset is not None and preset not in family.presets:
        raise InvalidInputError(
            f"unknown {family.name} preset {preset!r}; known: {', '.join(family.presets)}"
        )
    try:
        detected: DetectedArchitecture | None = detect_architecture(state_dict)
    except UnknownArchitectureError:
        if family is None:
            raise
        detected = None
    wanted_arch = family.name if family is not None else None
    if detected is not None and wanted_arch in (None, detected.arch) and preset in (None, detected.preset):
        return detected
    assert family is not None  # detection succeeded whenever nothing was requested
    # The user asked for a layout this checkpoint is not (e.g. one family's weights with another's
    # arch): report the key differences against what they asked for.
    wanted = preset or next(iter(family.presets))
    what = f"{src.name} is not a {family.name} checkpoint of preset {wanted!r}"
    if detected is not None:
        what += f" (it looks like {detected.arch} preset {detected.preset!r})"
    expected = family.expected_tensors(family.presets[wanted].arch_config)
    found = tensor_specs(family.convert_state_dict(state_dict))
    check_state_dict(expected, found, what=what, source=str(src))
    # Identical keys and shapes although detection disagreed: impossible for the released presets
    # (their layouts differ), but never load silently if it happens.
    raise ArchitectureMismatchError(what)


def _family_of_preset(preset: str) -> Family:
    families = list_families()
    for family in families:
        if preset in family.presets:
            return family
    known = ", ".join(name for family in families for name in family.presets)
    raise InvalidInputError(f"unknown preset {preset!r}; known: {known}")


def convert_checkpoint(
    src: str | os.PathLike[str],
    dst_folder: str | os.PathLike[str],
    *,
    name: str | None = None,
    arch: str | None = None,
    preset: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert an official checkpoint into a model folder and return the folder.

    The folder holds ``model.safetensors``, ``config.json`` and a ``README.md`` card recording the
    source file's name and sha256. It loads back bit-identically with
    :func:`~dicsr.weights.load_model_folder`.

    Args:
        src: the official checkpoint.
        dst_folder: destination folder (created).
        name: zoo entry these weights are (provenance in config and card; checks arch/preset).
        arch: expected network family (``dicsr.families.list_families()``); refuses other checkpoints.
        preset: expected preset; refuses other layouts.
        overwrite: replace an existing non-empty destination.

    Raises:
        DestinationExistsError: ``dst_folder`` exists and is not empty, and ``overwrite`` is false.
        DicsrError: everything :func:`convert_official_checkpoint` raises.
    """
    dst = Path(dst_folder)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())) and not overwrite:
        raise DestinationExistsError(
            f"{dst} already exists and is not empty; pass overwrite=True (--overwrite)"
        )
    converted = convert_official_checkpoint(src, name=name, arch=arch, preset=preset)
    config: ModelConfig = converted.adapter.config
    return save_model_folder(
        converted.adapter, dst, card=render_model_card(config, conversion=converted.record)
    )
