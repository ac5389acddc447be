"""What passes between the pipeline's stages, and what the stage callback sees.

``enhance`` is three parts, so that many photos can share the network (issue 14):

* **prepare** (no network): decode → detect → select → crop, giving a :class:`PreparedPhoto`;
* **restore**: the crops of any number of prepared photos through the network in memory-bounded
  batches (and, for families that can, cropped again from their own landmarks), giving one
  :class:`RestoredPhoto` per photo;
* **finish**: each restored face made to agree with its input (back-projection) and given its
  paste mask, the faces in the caller's type and, if asked, pasted into the upscaled photo, giving
  the :class:`~dicsr.pipeline.EnhanceResult`.

Every stage reports a :class:`StageEvent` to the resolver's ``on_stage`` callback when it is done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from dicsr.face.crop import FaceCrop
from dicsr.face.detect import DetectedFace
from dicsr.image import LoadedImage
from dicsr.pipeline._results import SkippedFace

__all__ = [
    "NetworkFace",
    "PreparedFace",
    "PreparedPhoto",
    "RestoredPhoto",
    "StageCallback",
    "StageEvent",
    "StageName",
]

#: The stages, in the order one ``enhance`` call runs them. ``recrop`` (and a second ``restore``
#: for the faces it moved) runs only with ``refine_crop``; ``backproject`` only with the paste
#: options' ``back_projection`` (the default); ``mask`` always (the faces returned carry their
#: masks); ``paste`` only with ``paste_back``. Names with a dot are parts of the stage before the
#: dot, and their time is part of its time.
StageName = Literal[
    "decode",
    "detect",
    "select",
    "crop",
    "restore",
    "recrop",
    "backproject",
    "mask",
    "paste.background",
    "paste.blend",
    "paste.output",
    "paste",
]


@dataclass(frozen=True)
class StageEvent:
    """One finished stage, as the resolver's ``on_stage`` callback receives it.

    Attributes:
        stage: which stage (:data:`StageName`).
        seconds: its wall-clock time.
        faces: the faces it handled: detected (``detect``), kept (``select``), cropped (``crop``),
            through the network (``restore``), cropped again (``recrop``), back-projected
            (``backproject``), given their masks (``mask``), pasted (``paste``); 0 for ``decode``.
    """

    stage: StageName
    seconds: float
    faces: int

    @property
    def part_of(self) -> str | None:
        """The stage this one is a part of (``"paste"`` for ``"paste.blend"``), or ``None``."""
        parent, dot, _ = self.stage.partition(".")
        return parent if dot else None


#: The ``on_stage`` callback: called in the thread that runs the stage, after the stage.
StageCallback = Callable[[StageEvent], None]


@dataclass(frozen=True, eq=False)
class PreparedFace:
    """One face cut out of its photo, ready for the network.

    Attributes:
        crop: the network input and the geometry to put the face back.
        detection: what the detector found, or ``None`` for an ``aligned`` input (no detection).
    """

    crop: FaceCrop
    detection: DetectedFace | None


@dataclass(frozen=True, eq=False)
class PreparedPhoto:
    """A photo after the stages before the network (decode, detect, select, crop).

    Attributes:
        photo: the decoded photo.
        faces: its faces to restore, highest detector score first.
        scale: the restored photo's scale (its size is :func:`dicsr.image.upscaled_size`).
        skipped: the detections the selection left alone, with their reasons.
    """

    photo: LoadedImage
    faces: tuple[PreparedFace, ...]
    scale: float
    skipped: tuple[SkippedFace, ...] = ()


@dataclass(frozen=True, eq=False)
class NetworkFace:
    """One face as the network restored it, moved off the device.

    Attributes:
        image: ``hr_size × hr_size × 3`` float32 RGB in ``[0, 1]``.
        landmarks: ``K×2`` float32 sub-pixel landmarks in face coordinates, decoded once by the
            family; ``None`` for networks without landmarks.
        landmarks_official: the official ``K×2`` int64 decoding, or ``None``.
        steps: every recurrent step's image (float32 ``hr×hr×3``) when asked for, else ``()``.
    """

    image: np.ndarray
    landmarks: np.ndarray | None
    landmarks_official: np.ndarray | None
    steps: tuple[np.ndarray, ...]


@dataclass(frozen=True, eq=False)
class RestoredPhoto:
    """A photo whose faces went through the network: what :meth:`FaceSuperResolver.finish` takes.

    Attributes:
        photo: the decoded photo.
        faces: its faces, with the crops the network saw last (a face cropped again from its own
            landmarks has its new crop).
        outputs: the network's output for each face, in the order of ``faces``.
        scale: the restored photo's scale.
        skipped: the detections the selection left alone (from the :class:`PreparedPhoto`).
    """

    photo: LoadedImage
    faces: tuple[PreparedFace, ...]
    outputs: tuple[NetworkFace, ...]
    scale: float
    skipped: tuple[SkippedFace, ...] = ()
