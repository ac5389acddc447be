"""Result types returned by :meth:`dicsr.FaceSuperResolver.enhance`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dicsr.face.select import SkipReason
from dicsr.image import ImageOutput

__all__ = ["EnhanceResult", "RestoredFace", "SkippedFace"]


@dataclass(frozen=True)
class RestoredFace:
    """One super-resolved face and everything needed to place it.

    Coordinates are continuous ``(x, y)`` pixel coordinates in which integers are pixel centres:
    the top-left pixel's centre is ``(0, 0)`` and a W-pixel-wide image spans ``[-0.5, W - 0.5]``
    (docs/face-crops.md). A photo point ``p`` is at ``(p + 0.5) * upscale - 0.5`` in the
    restored photo.

    Attributes:
        image: the restored face, ``hr_size`` square, in the type family of the input photo
            (PIL in -> PIL out, uint8/uint16 arrays stay uint8/uint16, tensors stay tensors), as it
            is pasted: made to agree with ``lr`` (back-projection) unless the call's
            :class:`~dicsr.face.paste.PasteOptions` turn ``back_projection`` off.
        lr: the low-resolution crop fed to the network (float32 HWC RGB in [0, 1]).
        affine: 2x3 float64 matrix mapping input-photo coordinates to face coordinates.
        box: square crop box in input-photo coordinates ``(x0, y0, x1, y1)``; ``None`` for the
            ``ffhq`` similarity warp (use ``affine``).
        detection_box: the detector's face box in input-photo coordinates (``None`` for
            ``aligned=True`` inputs, which skip detection).
        score: detector confidence (1.0 for aligned inputs).
        points5: detector's five points in input-photo coordinates, shape (5, 2), or ``None``.
        landmarks: sub-pixel 68-point landmarks in face coordinates, shape (68, 2); ``None`` for
            networks that predict no landmarks (SPARNet).
        landmarks_official: the official decoding (first argmax of the 32x32 heatmap, x4), int.
        landmarks_in_output: ``landmarks`` in the coordinates of the restored photo.
        mask: the face's paste mask, ``hr_size × hr_size`` float32 in [0, 1] in face coordinates
            (sampled at the face's pixel centres): face-shaped from the 68 landmarks the network
            predicts (with ``landmark_mask``), else the rounded square; composite ``image``
            through it to paste the face yourself (docs/integration.md).
        step_images: each recurrent step's restored face (float32 HWC [0, 1]) when requested: the
            network's raw output, not back-projected.
    """

    image: ImageOutput
    lr: np.ndarray
    affine: np.ndarray
    box: tuple[float, float, float, float] | None
    detection_box: tuple[float, float, float, float] | None
    score: float
    points5: np.ndarray | None
    landmarks: np.ndarray | None
    landmarks_official: np.ndarray | None
    landmarks_in_output: np.ndarray | None
    mask: np.ndarray
    step_images: tuple[np.ndarray, ...] = field(default=())


@dataclass(frozen=True)
class SkippedFace:
    """A detected face that was not restored, and why (docs/face-crops.md, "Face selection").

    Where it is, the restored photo shows the photo's own pixels, upscaled.

    Attributes:
        box: the detector's face box ``(x0, y0, x1, y1)`` in input-photo coordinates.
        score: detector confidence.
        points5: the detector's five points in input-photo coordinates, shape (5, 2).
        reason: which rule left it alone (:data:`dicsr.face.select.SkipReason`):
            ``"larger than the model's useful size"``, ``"duplicate"``, ``"implausible landmarks"``,
            ``"smaller than min_face_size"``, ``"not the centre face"``, ``"beyond max_faces"``, or
            ``"below score threshold"`` when the selection policy reports those.
        detail: the numbers behind the reason, for people (``"crop 77.0 px > 32 px (2 × the
            model's 16-px input)"``).
    """

    box: tuple[float, float, float, float]
    score: float
    points5: np.ndarray
    reason: SkipReason
    detail: str


@dataclass(frozen=True)
class EnhanceResult:
    """The outcome of :meth:`dicsr.FaceSuperResolver.enhance`.

    Attributes:
        image: the whole restored photo, upscaled by ``upscale``, in the type family of the input
            (alpha and 16-bit depth carried through); ``None`` when ``paste_back=False``.
        faces: the restored faces only, in detection order (highest score first).
        upscale: factor between the input photo and ``image``.
        input_size: ``(width, height)`` of the input photo after EXIF orientation.
        skipped_faces: every other detection, with the reason it was left alone (highest score
            first); ``()`` for ``aligned`` inputs.
    """

    image: ImageOutput | None
    faces: tuple[RestoredFace, ...]
    upscale: float
    input_size: tuple[int, int]
    skipped_faces: tuple[SkippedFace, ...] = ()

    @property
    def num_faces(self) -> int:
        """Number of faces restored (``len(faces)``; the skipped ones are not counted)."""
        return len(self.faces)
