"""Which detected faces to restore, and why the others are left alone.

A face super-resolution tool writes a face into the photo, so each detection passes four rules,
in this order, before anything is restored (docs/face-crops.md, "Face selection", gives the
geometry behind each rule and its margin on the annotated faces):

1. **Score**: detections under the score threshold are dropped (or reported, when asked). The
   detector has its own threshold (:data:`DEFAULT_SCORE_THRESHOLD` for the one a
   :class:`~dicsr.pipeline.FaceSuperResolver` builds); this one, when set, is a stricter second look.
2. **Plausible landmarks**: the five points must be where a face's eyes, nose and mouth can be:
   inside the box, eyes above nose above mouth in the face's own (rolled) frame, a roll a photo of
   an upright person can have, and an eye distance that fits the box. Gross non-faces (a pair of
   dice, a dog lying on its side) fail one of them; a real face's points pass with a margin.
3. **Once per face**: a detection lying mostly inside a higher-scored one (intersection over the
   *smaller* box), or whose five points coincide with a higher-scored one's, is a duplicate; it
   would otherwise be restored twice and blended into ghosted features. Both detection passes
   (native and tiny-face) go through this together.
4. **Size**: a face is restored only where the model adds detail: its crop covers at most about
   twice the model's input side in the photo (``2 × lr_size``). A larger face is cut down to the
   model's input before restoring, discarding more than half its own resolution, and its
   restoration would replace detail the photo already had with a guess.

Last, what the caller asked for: only the face nearest the photo's centre, at most ``max_faces``
of the rest (highest score first). Faces dropped there are reported too.

Everything here is pure: detections in, a :class:`FaceSelection` out.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from dicsr.errors import InvalidInputError
from dicsr.face.crop import crop_region_side, face_roll
from dicsr.face.detect import DetectedFace, nearest_to_center

__all__ = [
    "DEFAULT_SCORE_THRESHOLD",
    "DUPLICATE_OVERLAP",
    "DUPLICATE_POINT_DISTANCE",
    "EYE_DISTANCE_PER_BOX_SIDE",
    "MAX_ROLL_DEGREES",
    "USEFUL_CROP_PER_INPUT",
    "FaceSelection",
    "LandmarkGeometry",
    "SelectionPolicy",
    "SkipReason",
    "SkippedDetection",
    "duplicate_of",
    "implausible_landmarks",
    "landmark_geometry",
    "overlap_of_smaller",
    "select_faces",
    "useful_face_size",
]

#: Why a detection is not restored.
SkipReason = Literal[
    "below score threshold",
    "implausible landmarks",
    "duplicate",
    "larger than the model's useful size",
    "smaller than min_face_size",
    "not the centre face",
    "beyond max_faces",
]

#: Default minimum detector score (calibrated on the annotated photos: docs/face-crops.md).
DEFAULT_SCORE_THRESHOLD = 0.7

#: A detection whose box lies this much inside a higher-scored one's (intersection over the
#: smaller box) is a duplicate.
DUPLICATE_OVERLAP = 0.5
#: A detection whose five points lie this close to a higher-scored one's (mean distance over
#: that face's size: the larger of eye distance and eye–mouth distance) is a duplicate.
DUPLICATE_POINT_DISTANCE = 0.5

#: The smallest and largest eye distance, as a fraction of the box's longer side, a face can have.
EYE_DISTANCE_PER_BOX_SIDE = (0.1, 0.7)
#: The largest roll (angle of the eye line from horizontal) accepted, in degrees.
MAX_ROLL_DEGREES = 60.0

#: A face is worth restoring while its crop covers at most this many times the model's input side.
USEFUL_CROP_PER_INPUT = 2.0


def useful_face_size(lr_size: int) -> float:
    """The largest crop side (source pixels) at which a model with ``lr_size`` inputs adds detail."""
    return USEFUL_CROP_PER_INPUT * lr_size


@dataclass(frozen=True)
class SelectionPolicy:
    """Which detected faces to restore (the defaults are the calibrated rules of docs/face-crops.md).

    Attributes:
        score_threshold: minimum detector score, on top of the detector's own threshold
            (``None``: keep what the detector returned; the detector a
            :class:`~dicsr.pipeline.FaceSuperResolver` builds uses :data:`DEFAULT_SCORE_THRESHOLD`).
        report_below_threshold: report detections under ``score_threshold`` as skipped ("below
            score threshold") instead of dropping them silently.
        check_landmarks: skip detections whose five points cannot be a face's.
        max_face_size: largest crop side in source pixels; ``None``: the model's useful size,
            :func:`useful_face_size` (twice its input side).
        min_face_size: smallest crop side in source pixels (0: no minimum).
        all_sizes: restore faces of every size (``max_face_size`` and ``min_face_size`` ignored;
            duplicates and implausible detections are still skipped). The CLI's ``--all-faces``.
        only_center_face: restore only the face whose box centre is nearest the photo's centre.
        max_faces: restore at most this many faces, the highest-scored (``None``: all).

    Raises:
        InvalidInputError: an attribute of the wrong type or out of range (the message names it).
    """

    score_threshold: float | None = None
    report_below_threshold: bool = False
    check_landmarks: bool = True
    max_face_size: float | None = None
    min_face_size: float = 0.0
    all_sizes: bool = False
    only_center_face: bool = False
    max_faces: int | None = None

    def __post_init__(self) -> None:
        threshold = self.score_threshold
        if threshold is not None and not 0.0 <= _number("score_threshold", threshold) <= 1.0:
            raise InvalidInputError(f"score_threshold must be in [0, 1] or None, got {threshold!r}")
        if self.max_face_size is not None and not _number("max_face_size", self.max_face_size) > 0:
            raise InvalidInputError(f"max_face_size must be > 0 or None, got {self.max_face_size!r}")
        if not _number("min_face_size", self.min_face_size) >= 0:
            raise InvalidInputError(f"min_face_size must be >= 0, got {self.min_face_size!r}")
        if self.max_face_size is not None and self.min_face_size > self.max_face_size:
            raise InvalidInputError(
                f"min_face_size ({self.min_face_size}) is larger than max_face_size ({self.max_face_size})"
            )
        for name in ("report_below_threshold", "check_landmarks", "all_sizes", "only_center_face"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInputError(f"{name} must be True or False, got {getattr(self, name)!r}")
        count = self.max_faces
        whole = isinstance(count, numbers.Integral) and not isinstance(count, bool)
        if count is not None and not (whole and count >= 1):
            raise InvalidInputError(f"max_faces must be an integer >= 1 or None, got {count!r}")

    def size_range(self, lr_size: int) -> tuple[float, float]:
        """``(smallest, largest)`` crop side restored for a model with ``lr_size`` inputs."""
        if self.all_sizes:
            return 0.0, math.inf
        largest = useful_face_size(lr_size) if self.max_face_size is None else self.max_face_size
        return self.min_face_size, largest


def _number(name: str, value: object) -> float:
    """``value`` as a finite float, or :class:`InvalidInputError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InvalidInputError(f"{name} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class SkippedDetection:
    """A detection that is not restored.

    Attributes:
        face: the detection.
        reason: which rule left it alone.
        detail: the numbers behind the reason, for people (``"crop 96 px > 32 px"``).
    """

    face: DetectedFace
    reason: SkipReason
    detail: str


@dataclass(frozen=True)
class FaceSelection:
    """The outcome of :func:`select_faces`.

    Attributes:
        kept: the faces to restore, highest score first.
        skipped: every other detection (below-threshold ones only when reported), highest score first.
    """

    kept: tuple[DetectedFace, ...]
    skipped: tuple[SkippedDetection, ...]


def select_faces(
    detections: Sequence[DetectedFace],
    *,
    convention: str,
    lr_size: int,
    policy: SelectionPolicy | None = None,
    photo_size: tuple[int, int] | None = None,
) -> FaceSelection:
    """Split detections into the faces to restore and the ones to leave alone, each with its reason.

    Args:
        detections: the detector's faces, in any order (all passes together).
        convention: the model's crop convention (it sets the crop whose size is judged).
        lr_size: side of the model's input face.
        policy: the rules' settings (default :class:`SelectionPolicy`).
        photo_size: ``(width, height)`` of the photo; needed for ``policy.only_center_face``.

    Raises:
        InvalidInputError: ``lr_size`` is not positive, the convention is unknown, or
            ``only_center_face`` is asked without ``photo_size``.
    """
    policy = policy or SelectionPolicy()
    if lr_size <= 0:
        raise InvalidInputError(f"lr_size must be positive, got {lr_size}")
    if policy.only_center_face and photo_size is None:
        raise InvalidInputError("only_center_face needs the photo's size: pass photo_size=(width, height)")
    ordered = sorted(detections, key=lambda f: (-f.score, -(f.width * f.height)))
    skipped: list[SkippedDetection] = []
    unique: list[DetectedFace] = []
    threshold = policy.score_threshold
    for face in ordered:
        if threshold is not None and face.score < threshold:
            if policy.report_below_threshold:
                detail = f"score {face.score:.3f} < {threshold:g}"
                skipped.append(SkippedDetection(face, "below score threshold", detail))
            continue
        problem = implausible_landmarks(face) if policy.check_landmarks else None
        if problem is not None:
            skipped.append(SkippedDetection(face, "implausible landmarks", problem))
            continue
        repeated = next(((other, why) for other in unique if (why := duplicate_of(face, other))), None)
        if repeated is not None:
            other, why = repeated
            box = ", ".join(f"{v:.0f}" for v in other.box)
            detail = f"{why} of the face at ({box}) scored {other.score:.3f}"
            skipped.append(SkippedDetection(face, "duplicate", detail))
            continue
        unique.append(face)

    smallest, largest = policy.size_range(lr_size)
    kept = []
    for face in unique:
        side = crop_region_side(face, convention)
        if side > largest:
            detail = f"crop {side:.1f} px > {largest:g} px" + (
                f" ({USEFUL_CROP_PER_INPUT:g} × the model's {lr_size}-px input)"
                if policy.max_face_size is None
                else ""
            )
            skipped.append(SkippedDetection(face, "larger than the model's useful size", detail))
        elif side < smallest:
            skipped.append(
                SkippedDetection(face, "smaller than min_face_size", f"crop {side:.1f} px < {smallest:g} px")
            )
        else:
            kept.append(face)

    if policy.only_center_face and kept and photo_size is not None:  # (photo_size checked above)
        center = nearest_to_center(kept, *photo_size)
        skipped += [SkippedDetection(face, "not the centre face", "only_center_face") for face in kept
                    if face is not center]
        kept = [center]
    if policy.max_faces is not None and len(kept) > policy.max_faces:
        detail = f"{len(kept)} faces to restore, max_faces={policy.max_faces}"
        skipped += [SkippedDetection(face, "beyond max_faces", detail) for face in kept[policy.max_faces:]]
        kept = kept[: policy.max_faces]
    skipped.sort(key=lambda s: (-s.face.score, -(s.face.width * s.face.height)))
    return FaceSelection(kept=tuple(kept), skipped=tuple(skipped))


# --- duplicates -----------------------------------------------------------------------------------


def overlap_of_smaller(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection of two ``(x0, y0, x1, y1)`` boxes over the area of the smaller one (0 to 1)."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(width * height / smaller) if smaller > 0 else 0.0


def duplicate_of(face: DetectedFace, other: DetectedFace) -> str | None:
    """Why ``face`` repeats ``other`` (a higher-scored detection), or ``None`` when it does not."""
    overlap = overlap_of_smaller(face.box, other.box)
    if overlap > DUPLICATE_OVERLAP:
        return f"box {overlap:.0%} inside the smaller box"
    distance = float(np.linalg.norm(face.points5 - other.points5, axis=1).mean()) / _face_size(other)
    if distance < DUPLICATE_POINT_DISTANCE:
        return f"five points {distance:.2f} face sizes away"
    return None


def _face_size(face: DetectedFace) -> float:
    """The larger of eye distance and eye–mouth distance: a face's scale that survives a turned head."""
    g = landmark_geometry(face)
    return max(g.eye_distance, g.eye_mouth_distance, 1e-6)


# --- plausible landmarks --------------------------------------------------------------------------


@dataclass(frozen=True)
class LandmarkGeometry:
    """A detection's five points measured in the face's own frame.

    The frame: origin at the eye midpoint, x along the eye line (image-left eye → image-right eye),
    y perpendicular to it, pointing down the face.

    Attributes:
        eye_distance: distance between the eye points (source pixels).
        eye_mouth_distance: distance from the eye midpoint to the mouth midpoint.
        roll_degrees: angle of the eye line from horizontal (:func:`~dicsr.face.crop.face_roll`:
            positive when the image-right eye is lower).
        nose_depth: how far down the nose tip is, as a fraction of the mouth's depth (0 at the eye
            line, 1 at the mouth); ``nan`` when the mouth is not below the eye line.
        mouth_depth: depth of the mouth midpoint below the eye line, in eye distances.
        eye_distance_per_box_side: eye distance over the box's longer side.
        inside_margin: smallest distance from a point to the nearest box edge, over the box's
            longer side (negative: a point lies outside the box).
    """

    eye_distance: float
    eye_mouth_distance: float
    roll_degrees: float
    nose_depth: float
    mouth_depth: float
    eye_distance_per_box_side: float
    inside_margin: float


def landmark_geometry(face: DetectedFace) -> LandmarkGeometry:
    """Measure a detection's five points (see :class:`LandmarkGeometry`)."""
    points = np.asarray(face.points5, dtype=np.float64)
    left_eye, right_eye, nose, mouth_left, mouth_right = points
    eye_vector = right_eye - left_eye
    eye_distance = float(np.hypot(*eye_vector))
    eyes, mouth = (left_eye + right_eye) / 2, (mouth_left + mouth_right) / 2
    along = eye_vector / max(eye_distance, 1e-12)
    down = np.array([-along[1], along[0]])  # the eye line turned by +90° (y points down)
    mouth_down = float((mouth - eyes) @ down)
    nose_down = float((nose - eyes) @ down)
    x0, y0, x1, y1 = face.box
    side = max(x1 - x0, y1 - y0, 1e-12)
    margins = np.minimum.reduce([points[:, 0] - x0, x1 - points[:, 0], points[:, 1] - y0, y1 - points[:, 1]])
    return LandmarkGeometry(
        eye_distance=eye_distance,
        eye_mouth_distance=float(np.hypot(*(mouth - eyes))),
        roll_degrees=face_roll(points),
        nose_depth=nose_down / mouth_down if mouth_down > 0 else math.nan,
        mouth_depth=mouth_down / max(eye_distance, 1e-12),
        eye_distance_per_box_side=eye_distance / side,
        inside_margin=float(margins.min()) / side,
    )


def implausible_landmarks(face: DetectedFace) -> str | None:
    """What about a detection's five points cannot be a face's, or ``None`` when they can."""
    g = landmark_geometry(face)
    if g.inside_margin < 0:
        return f"a point lies {-g.inside_margin:.0%} of the box outside it"
    if abs(g.roll_degrees) > MAX_ROLL_DEGREES:
        return f"roll {g.roll_degrees:.0f}° beyond ±{MAX_ROLL_DEGREES:g}°"
    if not g.mouth_depth > 0:
        return "the mouth is not below the eyes"
    if not 0 < g.nose_depth < 1:
        return f"the nose is not between the eyes and the mouth (at {g.nose_depth:.2f} of the way)"
    low, high = EYE_DISTANCE_PER_BOX_SIDE
    if not low <= g.eye_distance_per_box_side <= high:
        return f"eye distance {g.eye_distance_per_box_side:.2f} of the box side, outside [{low:g}, {high:g}]"
    return None
