"""The pipeline: :class:`FaceSuperResolver` composes a network adapter and a face detector into
stages (decode -> detect -> select -> crop -> restore -> paste) and returns the result types.

>>> from dicsr.pipeline import FaceSuperResolver, SelectionPolicy
>>> sr = FaceSuperResolver.from_pretrained("dic-celeba", device="cpu",      # doctest: +SKIP
...                                        selection=SelectionPolicy(max_faces=4))
>>> result = sr.enhance("group.jpg")                                        # doctest: +SKIP

``enhance`` is ``finish(restore([prepare(image)])[0])``: :meth:`FaceSuperResolver.prepare` (no
network), :meth:`FaceSuperResolver.restore` (faces of any number of photos through the network) and
:meth:`FaceSuperResolver.finish` (the result). The modules are private; the names below are the
public ones (:class:`SelectionPolicy` is :class:`dicsr.face.select.SelectionPolicy` and
:class:`PasteOptions` is :class:`dicsr.face.paste.PasteOptions`, re-exported).

Many photos: :meth:`FaceSuperResolver.enhance_many` overlaps the three parts across photos and
yields an :class:`EnhanceResult` or an :class:`EnhanceFailure` per input, in order;
:meth:`FaceSuperResolver.enhance_batch` returns a list.
"""

from __future__ import annotations

from dicsr.face.paste import PasteOptions
from dicsr.face.select import SelectionPolicy
from dicsr.image import BackgroundUpsampler
from dicsr.pipeline._detector import DetectorSpec
from dicsr.pipeline._many import EnhanceFailure, EnhanceOutcome
from dicsr.pipeline._options import DEFAULT_MAX_OUTPUT_PIXELS, PipelineOptions
from dicsr.pipeline._resolver import FaceSuperResolver
from dicsr.pipeline._results import EnhanceResult, RestoredFace, SkippedFace
from dicsr.pipeline._stages import (
    NetworkFace,
    PreparedFace,
    PreparedPhoto,
    RestoredPhoto,
    StageCallback,
    StageEvent,
    StageName,
)

__all__ = [
    "DEFAULT_MAX_OUTPUT_PIXELS",
    "BackgroundUpsampler",
    "DetectorSpec",
    "EnhanceFailure",
    "EnhanceOutcome",
    "EnhanceResult",
    "FaceSuperResolver",
    "NetworkFace",
    "PasteOptions",
    "PipelineOptions",
    "PreparedFace",
    "PreparedPhoto",
    "RestoredFace",
    "RestoredPhoto",
    "SelectionPolicy",
    "SkippedFace",
    "StageCallback",
    "StageEvent",
    "StageName",
]
