"""dicsr: face super-resolution with DIC/DICGAN and SPARNet/SPARNetHD.

>>> from dicsr import FaceSuperResolver
>>> sr = FaceSuperResolver.from_pretrained("dic-celeba")   # doctest: +SKIP
>>> result = sr.enhance("photo.jpg")              # doctest: +SKIP

Heavy dependencies (facexlib, torchvision, huggingface_hub) are imported lazily, so
``import dicsr`` costs little beyond importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dicsr import errors
from dicsr._version import __version__

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from dicsr.pipeline import EnhanceFailure, EnhanceResult, FaceSuperResolver, RestoredFace, SkippedFace
    from dicsr.weights import convert_checkpoint, download_model, list_models, load_model

# public name -> module that defines it; resolved on first attribute access (PEP 562)
_LAZY_EXPORTS = {
    "FaceSuperResolver": "dicsr.pipeline",
    "EnhanceResult": "dicsr.pipeline",
    "EnhanceFailure": "dicsr.pipeline",
    "RestoredFace": "dicsr.pipeline",
    "SkippedFace": "dicsr.pipeline",
    "list_models": "dicsr.weights",
    "load_model": "dicsr.weights",
    "convert_checkpoint": "dicsr.weights",
    "download_model": "dicsr.weights",
}

__all__ = [
    "EnhanceFailure",
    "EnhanceResult",
    "FaceSuperResolver",
    "RestoredFace",
    "SkippedFace",
    "__version__",
    "convert_checkpoint",
    "download_model",
    "errors",
    "list_models",
    "load_model",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY_EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'dicsr' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_EXPORTS))
