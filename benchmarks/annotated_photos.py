"""The annotated photos of ../shared/faces as evaluation data for face selection and crops.

Shared by ``calibrate_dic_crop.py`` and ``face_selection.py`` (not a script itself):

* every photo of ``landmarks68.json`` with its 68-point faces (``landmarks68_meta.json`` says which
  are hand-annotated), plus ``face_labels.json`` beside this file: faces in those photos that the
  annotation left out (background people, counted by eye) and regions that are neither (faces on
  posters), so a detection there is not called a false positive;
* photos without a human face (a cat, dogs, a woman seen from behind, a circular saw);
* variants of each photo, scaled and/or rotated, with the annotation moved exactly along: the
  scales make the tiny faces DIC is for (and exercise the tiny-face pass), the rotations make
  tilted faces whose training box is known exactly;
* the real RetinaFace detector run on each variant (cached in a ``.npz`` when ``cache`` is given,
  keyed by variant and detector settings), and the matching of detections to faces.

Coordinates are source pixels with integer = pixel centre, as everywhere in dicsr.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from dicsr.face.crop import warp_affine
from dicsr.face.detect import DetectedFace, FaceDetector
from dicsr.image import load_image, to_uint8

LABELS_FILE = Path(__file__).with_name("face_labels.json")
DETECTOR_FILE = ("weights", "detection_mobilenet0.25_Final.pth")

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Photo:
    """One photo (or a variant of it) with everything known about its faces."""

    name: str  # path relative to ../shared/faces
    rgb: np.ndarray  # H x W x 3 uint8
    faces68: tuple[np.ndarray, ...] = ()  # annotated faces, 68 x 2 each
    manual: tuple[bool, ...] = ()  # per annotated face: hand-annotated (else a model's output)
    extra_faces: tuple[Box, ...] = ()  # real faces the annotation left out
    ignore: tuple[Box, ...] = ()  # neither face nor non-face (printed faces, unclear heads)
    scale: float = 1.0
    angle: float = 0.0  # degrees, counter-clockwise as seen

    @property
    def variant(self) -> str:
        """``name@scale,angle`` (the cache key and the name in reports)."""
        return f"{self.name}@{self.scale:g},{self.angle:g}"


def annotated_photos(shared: Path) -> list[Photo]:
    """Every photo of ``landmarks68.json``, with the labels of ``face_labels.json``."""
    faces_dir = shared / "faces"
    annotations = json.loads((faces_dir / "landmarks68.json").read_text())
    meta = json.loads((faces_dir / "landmarks68_meta.json").read_text())
    labels = json.loads(LABELS_FILE.read_text())["annotated_photos"]
    photos = []
    for name in sorted(annotations):
        extra = labels.get(name, {})
        photos.append(
            Photo(
                name=name,
                rgb=load_image(faces_dir / name).to_uint8(),
                faces68=tuple(np.asarray(points, dtype=np.float64) for points in annotations[name]),
                manual=tuple(face["kind"].startswith("manual") for face in meta[name]),
                extra_faces=tuple(tuple(box) for box in extra.get("faces", ())),
                ignore=tuple(tuple(box) for box in extra.get("ignore", ())),
            )
        )
    return photos


def no_face_photos(shared: Path) -> list[Photo]:
    """The photos of ``face_labels.json`` that show no human face at all."""
    names = json.loads(LABELS_FILE.read_text())["no_face_photos"]
    return [Photo(name=name, rgb=load_image(shared / "faces" / name).to_uint8()) for name in names]


def variant(photo: Photo, *, scale: float = 1.0, angle: float = 0.0) -> Photo:
    """``photo`` shrunk by ``scale`` (Pillow Lanczos) then turned by ``angle`` degrees about its centre.

    The canvas grows to hold the whole turned photo (black corners). Annotations, labels and
    ignore regions move with the pixels (boxes become the bounding box of their turned corners).
    """
    rgb = photo.rgb
    height, width = rgb.shape[:2]
    factors = np.ones(2)
    if scale != 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))
        factors = np.array([size[0] / width, size[1] / height])
    # Resizing maps pixel edges onto pixel edges: x' = (x + 0.5)·f − 0.5.
    affine = np.array([[factors[0], 0.0, 0.5 * factors[0] - 0.5], [0.0, factors[1], 0.5 * factors[1] - 0.5]])
    if angle:
        rgb, turn = _turn(rgb, angle)
        affine = np.vstack([turn, [0, 0, 1]])[:2] @ np.vstack([affine, [0, 0, 1]])

    def move_box(box: Sequence[float]) -> Box:
        x0, y0, x1, y1 = box
        corners = _apply(affine, np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]]))
        low, high = corners.min(axis=0), corners.max(axis=0)
        return (float(low[0]), float(low[1]), float(high[0]), float(high[1]))

    return Photo(
        name=photo.name,
        rgb=rgb,
        faces68=tuple(_apply(affine, points) for points in photo.faces68),
        manual=photo.manual,
        extra_faces=tuple(move_box(box) for box in photo.extra_faces),
        ignore=tuple(move_box(box) for box in photo.ignore),
        scale=scale,
        angle=angle,
    )


def variants(
    photos: Iterable[Photo], scales: Sequence[float], angles: Sequence[float] = (0.0,)
) -> list[Photo]:
    """Every photo at every scale and angle."""
    return [variant(photo, scale=s, angle=a) for photo in photos for s in scales for a in angles]


def _turn(rgb: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """``rgb`` turned counter-clockwise (as seen) by ``angle`` degrees on a canvas that holds it all."""
    height, width = rgb.shape[:2]
    radians = math.radians(angle)
    cos, sin = math.cos(radians), math.sin(radians)
    # y points down, so a counter-clockwise turn as seen is x' = cos·x + sin·y, y' = −sin·x + cos·y.
    rotation = np.array([[cos, sin], [-sin, cos]])
    new_w = math.ceil(abs(cos) * width + abs(sin) * height)
    new_h = math.ceil(abs(sin) * width + abs(cos) * height)
    centre_in = np.array([(width - 1) / 2, (height - 1) / 2])
    centre_out = np.array([(new_w - 1) / 2, (new_h - 1) / 2])
    affine = np.hstack([rotation, (centre_out - rotation @ centre_in)[:, None]])
    turned = warp_affine(rgb.astype(np.float32) / 255.0, affine, (new_w, new_h))
    return to_uint8(np.clip(turned, 0.0, 1.0)), affine


def _apply(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.asarray(points, dtype=np.float64) @ affine[:, :2].T + affine[:, 2]


# --- detection ----------------------------------------------------------------------------------


def load_detector(shared: Path, score_floor: float) -> FaceDetector:
    """The real RetinaFace mobile0.25 detector, reporting every detection scored ``score_floor`` or more."""
    return FaceDetector(shared.joinpath(*DETECTOR_FILE), score_threshold=score_floor)


def detect_all(
    detector: FaceDetector, photos: Sequence[Photo], cache: Path | None = None
) -> list[list[DetectedFace]]:
    """The detector's faces on every photo, from ``cache`` when it holds them (same pixels, same settings)."""
    stored: dict[str, np.ndarray] = {}
    if cache is not None and cache.exists():
        with np.load(cache) as data:
            stored = {key: data[key] for key in data.files}
    results = []
    settings = f"{detector.network},{detector.score_threshold},{detector.nms_threshold}"
    for photo in photos:
        key = hashlib.sha256(
            photo.rgb.tobytes() + str(photo.rgb.shape).encode() + settings.encode()
        ).hexdigest()
        if key not in stored:
            faces = detector.detect(photo.rgb)
            stored[key] = np.array([[*f.box, f.score, *f.points5.ravel()] for f in faces]).reshape(-1, 15)
        rows = stored[key]
        results.append(
            [
                DetectedFace(box=tuple(map(float, r[:4])), score=float(r[4]), points5=r[5:].reshape(5, 2))
                for r in rows
            ]
        )
    if cache is not None:
        np.savez_compressed(cache, **stored)
    return results


# --- matching detections to faces -----------------------------------------------------------------


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def tight_box(points: np.ndarray) -> Box:
    """The bounding box of a face's landmarks."""
    low, high = points.min(axis=0), points.max(axis=0)
    return (float(low[0]), float(low[1]), float(high[0]), float(high[1]))


#: A detection is on a face when its box overlaps the face's landmark box (or labelled box) by this
#: IoU. RetinaFace's box includes the forehead, so a correct detection's IoU with the 68 points'
#: box is 0.5-0.9 on the shared photos; 0.3 tolerates tiny faces' coarse boxes.
MATCH_IOU = 0.3


@dataclass
class Matching:
    """Which detections of one photo are on which faces (indices into the detection list)."""

    annotated: dict[int, int] = field(default_factory=dict)  # annotated face -> detection
    extra: dict[int, int] = field(default_factory=dict)  # labelled extra face -> detection
    duplicates: dict[int, str] = field(default_factory=dict)  # detection -> "a3" / "e0": face it repeats
    ignored: set[int] = field(default_factory=set)  # detections in ignore regions
    false: set[int] = field(default_factory=set)  # detections on no face

    def face_of(self, detection: int) -> str | None:
        """``"a<i>"`` / ``"e<i>"`` for a detection matched to a face (first or duplicate), else None."""
        for index, det in self.annotated.items():
            if det == detection:
                return f"a{index}"
        for index, det in self.extra.items():
            if det == detection:
                return f"e{index}"
        return self.duplicates.get(detection)


def match(photo: Photo, detections: Sequence[DetectedFace]) -> Matching:
    """Greedy one-to-one matching by score: each face takes the best-scored detection on it.

    A further detection on an already matched face is a duplicate; one in an ignore region is
    ignored; anything else is a false positive.
    """
    targets = [("a", i, tight_box(p)) for i, p in enumerate(photo.faces68)]
    targets += [("e", i, box) for i, box in enumerate(photo.extra_faces)]
    result = Matching()
    taken: set[tuple[str, int]] = set()
    for det_index in sorted(range(len(detections)), key=lambda i: -detections[i].score):
        box = detections[det_index].box
        overlaps = sorted(((box_iou(box, t), kind, i) for kind, i, t in targets), reverse=True)
        free = [(iou, kind, i) for iou, kind, i in overlaps if iou >= MATCH_IOU and (kind, i) not in taken]
        if free:
            _, kind, i = free[0]
            taken.add((kind, i))
            (result.annotated if kind == "a" else result.extra)[i] = det_index
        elif overlaps and overlaps[0][0] >= MATCH_IOU:
            result.duplicates[det_index] = f"{overlaps[0][1]}{overlaps[0][2]}"
        elif any(box_iou(box, region) >= MATCH_IOU for region in photo.ignore):
            result.ignored.add(det_index)
        else:
            result.false.add(det_index)
    return result
