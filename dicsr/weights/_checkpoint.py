"""Official checkpoints: read safely, recognise by asking each registered family, convert keys.

Reading never executes code (``torch.load(weights_only=True)``, :mod:`dicsr._checkpoint_io`).
Loading is always strict: a permissive loader (``strict=False``) silently loads nothing from a
``module.``-prefixed file; here every key must be consumed and every shape must match, or
:class:`~dicsr.errors.ArchitectureMismatchError` names the offending keys. Nothing here knows a
family: each registered family recognises its own checkpoints and converts its own keys.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from dicsr._checkpoint_io import StateDict, UnwrappedCheckpoint, read_torch_checkpoint
from dicsr.errors import UnknownArchitectureError
from dicsr.families import CUSTOM_PRESET, Family, get_family, list_families

__all__ = [
    "DetectedArchitecture",
    "convert_state_dict",
    "detect_architecture",
    "read_checkpoint",
    "read_official_checkpoint",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectedArchitecture:
    """What :func:`detect_architecture` recognised; unpacks as ``(arch, preset, arch_config)``.

    Attributes:
        arch: the network family's name.
        preset: the released configuration, or ``"custom"`` for another consistent layout.
        arch_config: keyword arguments of the family's config dataclass.
    """

    arch: str
    preset: str
    arch_config: Mapping[str, Any]

    def __iter__(self) -> Iterator[Any]:
        return iter((self.arch, self.preset, self.arch_config))


# --- reading ----------------------------------------------------------------------------------


def read_official_checkpoint(path: str | os.PathLike[str]) -> StateDict:
    """The generator state dict stored in an official checkpoint file.

    Accepts a solver's layout (``state_dict``), a GAN trainer's (``netG``; ``netD`` and the
    optimizers are ignored), a ``model`` wrapper, bare state dicts (including spectral-norm
    ``weight_orig/_u/_v`` tensors) and ``module.``-prefixed keys.

    Raises:
        ModelNotFoundError: ``path`` does not exist.
        CorruptCheckpointError: zero bytes, truncated, not a PyTorch checkpoint, a pickle that
            needs arbitrary globals (refused, never executed), or no state dict inside.
    """
    return read_checkpoint(path).state_dict


def read_checkpoint(path: str | os.PathLike[str]) -> UnwrappedCheckpoint:
    """Like :func:`read_official_checkpoint`, also saying which layout the file used."""
    return read_torch_checkpoint(path)


# --- recognising -------------------------------------------------------------------------------


def detect_architecture(state_dict: Mapping[str, torch.Tensor]) -> DetectedArchitecture:
    """Recognise the family and preset of a generator state dict from key names and shapes.

    Each registered family is asked whether it recognises the keys
    (:meth:`~dicsr.families.Family.recognises`). The layout is then named after the family's
    released preset whose keys and shapes it reproduces exactly, else ``"custom"`` when one of the
    family's candidate layouts does; a checkpoint of a known family that no layout reproduces (a
    damaged or edited file) is reported as the closest preset: loading it strictly then names every
    missing, unexpected and mis-shaped key.

    Raises:
        UnknownArchitectureError: no family recognises the keys (the message lists what was seen).
    """
    families = list_families()
    for family in families:
        if family.recognises(state_dict):
            return _best_layout(family, state_dict)
    known = ", ".join(family.display_name for family in families)
    raise UnknownArchitectureError(
        f"the checkpoint matches no architecture dicsr knows ({known}): "
        f"{len(state_dict)} tensors; {_describe(state_dict)}"
    )


def _describe(state_dict: Mapping[str, torch.Tensor]) -> str:
    prefixes = sorted({k.split(".", 1)[0] for k in state_dict})
    sample = [f"{k} {tuple(v.shape)}" for k, v in list(state_dict.items())[:5]]
    shown = ", ".join(prefixes[:12]) + (", ..." if len(prefixes) > 12 else "")
    return f"top-level names: {shown}; first keys: {'; '.join(sample) or 'none'}"


def _best_layout(family: Family, state_dict: Mapping[str, torch.Tensor]) -> DetectedArchitecture:
    """The released preset reproducing the checkpoint's keys and shapes exactly, else a custom
    candidate that does, else the closest preset - whose strict load then names every difference."""
    signature = family.converted_shapes(state_dict)
    for name, preset in family.presets.items():
        if signature == _preset_signature(family, name):
            return DetectedArchitecture(family.name, name, family.arch_config_dict(preset.arch_config))
    for config in family.candidate_configs(state_dict):
        if signature == _config_signature(family, config):
            return DetectedArchitecture(family.name, CUSTOM_PRESET, config)
    closest = min(family.presets, key=lambda name: _difference(signature, _preset_signature(family, name)))
    logger.info("checkpoint matches no %s layout exactly; closest preset: %s", family.name, closest)
    return DetectedArchitecture(
        family.name, closest, family.arch_config_dict(family.presets[closest].arch_config)
    )


def _difference(actual: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]] | None) -> int:
    if expected is None:
        return len(actual)
    return len(set(actual) ^ set(expected)) + sum(
        1 for k in actual if k in expected and actual[k] != expected[k]
    )


def _preset_signature(family: Family, preset: str) -> dict[str, tuple[int, ...]] | None:
    return _config_signature(family, family.presets[preset].arch_config)


def _config_signature(family: Family, arch_config: Any) -> dict[str, tuple[int, ...]] | None:
    try:
        return {key: spec.shape for key, spec in family.expected_tensors(arch_config).items()}
    except (TypeError, ValueError):
        return None  # a candidate layout the family refuses to build


# --- converting ---------------------------------------------------------------------------------


def convert_state_dict(state_dict: Mapping[str, torch.Tensor], arch: str) -> StateDict:
    """Map an official generator state dict onto dicsr's key layout for the family ``arch``.

    Key names are the official ones, so a family converts only what its official code stores
    differently (e.g. a spectral-norm reparametrisation folded into ``weight = weight_orig / sigma``,
    as torch does in eval mode). Nothing is dropped: every remaining key must be consumed by the strict
    load that follows.

    Raises:
        UnknownArchitectureError: ``arch`` names no family.
        ArchitectureMismatchError: tensors the family cannot convert.
    """
    return get_family(arch).convert_state_dict(state_dict)
