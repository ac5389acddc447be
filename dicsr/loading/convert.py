"""Official checkpoint -> dicsr model folder (what ``dicsr convert`` runs).

read (weights-only) -> recognise -> convert keys -> strict load into the built network -> save
``model.safetensors`` + ``config.json`` + model card recording the source file's sha256.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from dicsr._files import sha256_of_file
from dicsr._version import __version__
from dicsr.adapters import NetworkAdapter, build_adapter
from dicsr.config import ModelConfig
from dicsr.errors import (
    ArchitectureMismatchError,
    DestinationExistsError,
    InvalidInputError,
    UnknownArchitectureError,
)
from dicsr.loading.card import ConversionRecord, render_model_card
from dicsr.loading.checkpoint import (
    DetectedArchitecture,
    check_state_dict,
    convert_state_dict,
    detect_architecture,
    expected_shapes,
    load_state_dict_strictly,
    read_checkpoint,
)
from dicsr.loading.model_folder import save_model_folder
from dicsr.loading.presets import arch_presets, model_config_for
from dicsr.loading.registry import get_model_entry

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
        src: the official ``.pth`` file (any layout :func:`~dicsr.loading.read_official_checkpoint` accepts).
        name: zoo entry the weights are (sets provenance, and the expected arch/preset).
        arch: expected architecture; a checkpoint of another architecture is refused.
        preset: expected preset; a checkpoint of another layout is refused.

    Raises:
        CorruptCheckpointError: unreadable file.
        UnknownArchitectureError: no architecture recognised and none requested.
        ArchitectureMismatchError: the weights do not fit the (requested or detected) network.
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
    state_dict = convert_state_dict(checkpoint.state_dict, detected.arch, detected.arch_config)

    if entry is not None:
        config = entry.model_config()
    else:
        config = model_config_for(detected.arch, detected.preset, detected.arch_config)
    adapter = build_adapter(config)
    load_state_dict_strictly(
        adapter.network, state_dict, what=f"{src.name} does not fit {config.arch} preset {config.preset!r}"
    )
    record = ConversionRecord(
        source_filename=src.name,
        source_sha256=sha256_of_file(src),
        source_size=src.stat().st_size,
        layout=checkpoint.layout,
        ignored=checkpoint.ignored,
        spectral_norm_folded=len(state_dict) != len(checkpoint.state_dict),
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
    if arch is None and preset is not None:
        arch = _arch_of_preset(preset)
    if arch is not None and preset is not None and preset not in arch_presets(arch):
        raise InvalidInputError(f"unknown {arch} preset {preset!r}; known: {', '.join(arch_presets(arch))}")
    try:
        detected: DetectedArchitecture | None = detect_architecture(state_dict)
    except UnknownArchitectureError:
        if arch is None:
            raise
        detected = None
    if detected is not None and arch in (None, detected.arch) and preset in (None, detected.preset):
        return detected
    assert arch is not None  # detection succeeded whenever nothing was requested
    # The user asked for a layout this checkpoint is not (e.g. SPARNet weights with arch="dic"):
    # report the key differences against what they asked for.
    wanted = preset or next(iter(arch_presets(arch)))
    what = f"{src.name} is not a {arch} checkpoint of preset {wanted!r}"
    if detected is not None:
        what += f" (it looks like {detected.arch} preset {detected.preset!r})"
    expected = expected_shapes(arch, dataclasses.asdict(arch_presets(arch)[wanted]))
    check_state_dict(expected, convert_state_dict(state_dict, arch, {}), what=what)
    # Identical keys and shapes although detection disagreed: impossible for the released presets
    # (their layouts differ), but never load silently if it happens.
    raise ArchitectureMismatchError(what)


def _arch_of_preset(preset: str) -> str:
    for arch in ("dic", "sparnet"):
        if preset in arch_presets(arch):
            return arch
    raise InvalidInputError(f"unknown preset {preset!r}; known: {', '.join(_all_presets())}")


def _all_presets() -> list[str]:
    return [name for arch in ("dic", "sparnet") for name in arch_presets(arch)]


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
    :func:`~dicsr.loading.load_model_folder`.

    Args:
        src: the official checkpoint.
        dst_folder: destination folder (created).
        name: zoo entry these weights are (provenance in config and card; checks arch/preset).
        arch: expected architecture (``"dic"``/``"sparnet"``); refuses other checkpoints.
        preset: expected preset; refuses other layouts.
        overwrite: replace an existing non-empty destination.

    Raises:
        DestinationExistsError: ``dst_folder`` exists and is not empty, and ``overwrite`` is false.
        plus everything :func:`convert_official_checkpoint` raises.
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
