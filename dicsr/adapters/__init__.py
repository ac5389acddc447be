"""Adapters: each network wrapped with its own normalisation, sizes and dtype support."""

from __future__ import annotations

import importlib

from torch import nn

from dicsr.adapters.base import NetworkAdapter, NetworkOutput
from dicsr.config import ModelConfig
from dicsr.errors import UnknownArchitectureError

__all__ = ["NetworkAdapter", "NetworkOutput", "adapter_class", "build_adapter"]

# arch name in config.json -> "module:Class" of its adapter (imported on first use)
_ADAPTERS = {
    "dic": "dicsr.adapters.dic:DICAdapter",
    "sparnet": "dicsr.adapters.sparnet:SPARNetAdapter",
}


def adapter_class(arch: str) -> type[NetworkAdapter]:
    """The adapter class for an architecture family named in ``config.json``."""
    try:
        target = _ADAPTERS[arch]
    except KeyError:
        known = ", ".join(sorted(_ADAPTERS))
        raise UnknownArchitectureError(f"unknown architecture {arch!r}; known: {known}") from None
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def build_adapter(config: ModelConfig, network: nn.Module | None = None) -> NetworkAdapter:
    """Wrap ``network`` (or a freshly built one) in the adapter ``config.arch`` names."""
    cls = adapter_class(config.arch)
    return cls(network if network is not None else cls.build_network(config), config)
