"""Network families: one folder per family (``dic``, ``sparnet``), one registry, one adapter contract.

>>> from dicsr.families import get_family, list_families
>>> [family.name for family in list_families()]
['dic', 'sparnet']
>>> get_family("sparnet").presets["sparnethd-2d"].hr_size
512

A family (:class:`Family`) owns its networks, presets, checkpoint recognition and key conversion,
adapter (:class:`NetworkAdapter`: normalisation, dtypes), zoo entries and the capabilities the
pipeline asks about. Adding one is a folder with a ``FAMILY`` plus one line in the registry, or
:func:`register_family` at run time. The family packages are imported on first use.
"""

from __future__ import annotations

from dicsr.families._adapter import NetworkAdapter, NetworkOutput
from dicsr.families._config import CONFIG_FORMAT_VERSION, MAX_CONFIG_BYTES, MAX_FACE_SIZE, ModelConfig
from dicsr.families._family import (
    CUSTOM_PRESET,
    GITHUB_RELEASE,
    GOOGLE_DRIVE,
    RECROP_TOLERANCE,
    Family,
    Fingerprint,
    Origin,
    Preset,
    ZooEntry,
)
from dicsr.families._registry import get_family, list_families, register_family, unregister_family

__all__ = [
    "CONFIG_FORMAT_VERSION",
    "CUSTOM_PRESET",
    "GITHUB_RELEASE",
    "GOOGLE_DRIVE",
    "MAX_CONFIG_BYTES",
    "MAX_FACE_SIZE",
    "RECROP_TOLERANCE",
    "Family",
    "Fingerprint",
    "ModelConfig",
    "NetworkAdapter",
    "NetworkOutput",
    "Origin",
    "Preset",
    "ZooEntry",
    "get_family",
    "list_families",
    "register_family",
    "unregister_family",
]
