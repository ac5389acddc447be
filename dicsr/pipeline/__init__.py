"""The pipeline: :class:`FaceSuperResolver` composes detection, crops, a network and paste-back.

Private modules hold the parts; their public names are listed here.
"""

from __future__ import annotations

from dicsr.pipeline._resolver import DEFAULT_MAX_OUTPUT_PIXELS, BackgroundUpsampler, FaceSuperResolver
from dicsr.pipeline._results import EnhanceResult, RestoredFace

__all__ = [
    "DEFAULT_MAX_OUTPUT_PIXELS",
    "BackgroundUpsampler",
    "EnhanceResult",
    "FaceSuperResolver",
    "RestoredFace",
]
