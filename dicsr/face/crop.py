"""Face crops per model convention, each described by an affine map (see docs/face-crops.md).

Coordinate conventions (shared with :mod:`dicsr.face.detect` and :mod:`dicsr.face.paste`):

* **Source pixels**: integer = pixel centre. Pixel ``(row i, col j)`` is centred on ``(x=j, y=i)``
  and covers ``[j-0.5, j+0.5) × [i-0.5, i+0.5)``; the whole photo spans ``[-0.5, W-0.5]``.
* **Face pixels**: the same convention in the ``hr_size × hr_size`` face frame.
* A crop **box** ``(x0, y0, x1, y1)`` is the continuous source region that becomes the face frame:
  its edges map onto the outer edges of the face frame's border pixels, so
  ``u = (x - x0) · hr_size / (x1 - x0) - 0.5``.
* ``FaceCrop.affine`` is the 2×3 float64 matrix ``A`` with ``[u, v] = A @ [x, y, 1]``
  (source → HR face frame); paste-back uses its inverse.

Resampling keeps float precision (16-bit sources stay 16-bit): square crops use Pillow's
``resize(box=...)`` per channel in mode ``F`` (Pillow bicubic, antialiased when shrinking — the
"PIL bicubic" of the DIC/SPARNet training code, without its 8-bit rounding); the FFHQ warp is a
float Keys-bicubic (a = −0.5) affine warp (:func:`warp_affine`). Outside the photo the crop is
black (zero), as Pillow's ``crop`` (DIC/SPARNet data) and skimage's ``warp`` (SPARNetHD script)
fill it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from dicsr.errors import InvalidInputError
from dicsr.face.detect import DetectedFace
from dicsr.image._resample import resize_float

__all__ = [
    "CROP_CONVENTIONS",
    "CROP_LOOSENESS",
    "DETECTION_CENTER_DOWN",
    "DETECTION_SIDE_PER_BOX",
    "DETECTION_SIDE_PER_SIN_ROLL",
    "FFHQ_TEMPLATE_512",
    "LANDMARK_SQUARE_ENLARGE",
    "LEGACY_CROP_NAMES",
    "Box",
    "CropConvention",
    "FaceCrop",
    "apply_affine",
    "box_affine",
    "crop_aligned",
    "crop_convention",
    "crop_face",
    "crop_region_side",
    "face_roll",
    "ffhq_affine",
    "invert_affine",
    "landmark_square_from_detection",
    "landmark_square_from_points68",
    "similarity_transform",
    "square_box",
    "warp_affine",
]

Box = tuple[float, float, float, float]
CropTarget = DetectedFace | Sequence[float] | np.ndarray

#: How a face is cut out of a photo, named by its geometry (docs/face-crops.md):
#: ``landmark_square``: axis-aligned square around the 68 landmarks' box, side 1.3 × its longer
#: side (estimated from a detection at inference); ``ffhq``: 5-point similarity warp onto the FFHQ
#: template.
CropConvention = Literal["landmark_square", "ffhq"]
CROP_CONVENTIONS: tuple[CropConvention, ...] = ("landmark_square", "ffhq")

#: Names earlier dicsr versions wrote into ``config.json``, read as the convention they meant: both
#: were the same square (the SPARNet crops were framed like DIC's, see docs/face-crops.md).
LEGACY_CROP_NAMES: Mapping[str, CropConvention] = {
    "dic_square": "landmark_square",
    "sparnet_square": "landmark_square",
}

_CONVENTIONS_BY_NAME: Mapping[str, CropConvention] = {
    **{name: name for name in CROP_CONVENTIONS},
    **LEGACY_CROP_NAMES,
}

#: ``landmark_square``: the side is this factor times the longer side of the 68 landmarks' box (the
#: DIC training crops, docs/specs/dic.md §1 "crop face bbox").
LANDMARK_SQUARE_ENLARGE = 1.3

# --- calibrated detection → landmark_square model (benchmarks/calibrate_dic_crop.py) -----------------
# RetinaFace box (x0, y0, x1, y1), w = x1 − x0, h = y1 − y0, and the roll ρ of its eye line:
#   centre = box centre + DETECTION_CENTER_DOWN · h · (−sin ρ, cos ρ)   (down the face's own axis)
#   side   = CROP_LOOSENESS · max(w, h) · (DETECTION_SIDE_PER_BOX + DETECTION_SIDE_PER_SIN_ROLL · |sin ρ|)
# Data, method and residuals per pose group: docs/face-crops.md, "Calibration of the detection →
# crop box".
DETECTION_CENTER_DOWN = 0.1186
DETECTION_SIDE_PER_BOX = 1.0387
DETECTION_SIDE_PER_SIN_ROLL = 0.1582
#: The calibrated side is enlarged by this factor: a slightly loose box shows the model a face a
#: few percent smaller than it was trained on; a tight one cuts the jaw off.
CROP_LOOSENESS = 1.05

#: FFHQ five-point template in the 512×512 aligned frame (eye centres, nose tip, mouth corners in
#: RetinaFace order): the FFHQ 1024 template halved, the figures published with GFPGAN/facexlib for
#: 512-px FFHQ alignment. SPARNetHD's own script aligns dlib's 5 points to ``FFHQ_template.npy``
#: instead (docs/specs/sparnet.md §5, §7.15); with RetinaFace points this is the closest available frame.
FFHQ_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.19360],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ]
)


@dataclass(frozen=True, eq=False)
class FaceCrop:
    """A face cut out of a photo for one model, and the geometry to put it back.

    Attributes:
        lr: ``lr_size × lr_size × 3`` float32 RGB in ``[0, 1]``: the network input.
        hr: ``hr_size × hr_size × 3`` float32: the source face resampled into the HR frame (the
            intermediate the LR is made from; a reference for blending and tests).
        affine: 2×3 float64, source-photo pixels → HR face pixels (integer = pixel centre).
        box: the square crop box in source pixels for the square conventions, else ``None``.
        convention: the crop convention used.
    """

    lr: np.ndarray
    hr: np.ndarray
    affine: np.ndarray
    box: Box | None
    convention: str

    @property
    def inverse_affine(self) -> np.ndarray:
        """2×3 map from HR face pixels back to source-photo pixels."""
        return invert_affine(self.affine)


# --- boxes ----------------------------------------------------------------------------------------


def square_box(center: tuple[float, float], side: float) -> Box:
    """Axis-aligned square ``(x0, y0, x1, y1)`` of the given side centred on ``center``."""
    if not side > 0 or not math.isfinite(side):
        raise InvalidInputError(f"crop box side must be a positive finite number, got {side}")
    cx, cy = center
    half = side / 2.0
    return (cx - half, cy - half, cx + half, cy + half)


def crop_convention(name: str) -> CropConvention:
    """The crop convention called ``name``, reading the legacy names of :data:`LEGACY_CROP_NAMES`.

    Raises:
        InvalidInputError: ``name`` is no convention, old or new.
    """
    convention = _CONVENTIONS_BY_NAME.get(name)
    if convention is not None:
        return convention
    known = ", ".join(CROP_CONVENTIONS)
    raise InvalidInputError(f"unknown crop convention {name!r}; expected one of {known}")


def landmark_square_from_points68(points68: np.ndarray) -> Box:
    """The ``landmark_square`` crop box of a face with 68 annotated landmarks.

    The landmarks' bounding box (min/max of the points), made square with side
    ``1.3 · max(width, height)`` around the bounding box centre, no rotation: how the DIC training
    crops were cut (docs/specs/dic.md §1).
    """
    points = _points(points68, 68, "points68")
    low, high = points.min(axis=0), points.max(axis=0)
    center = (low + high) / 2.0
    side = LANDMARK_SQUARE_ENLARGE * float((high - low).max())
    return square_box((float(center[0]), float(center[1])), side)


def face_roll(points5: np.ndarray) -> float:
    """Roll of a face in degrees: the angle of its eye line (image-left eye → image-right eye).

    0 for an upright face; positive when the image-right eye is lower (the face turned clockwise as
    seen, since y points down).
    """
    points = _points(points5, 5, "points5")
    dx, dy = points[1] - points[0]
    return math.degrees(math.atan2(dy, dx))


def landmark_square_from_detection(face: DetectedFace) -> Box:
    """Estimate the ``landmark_square`` box (:func:`landmark_square_from_points68`) from a detection.

    Calibrated pose-aware box model (see the constants above): the detector box made square around
    its centre moved 11.9 % of its height down the face's own axis (a tilted face's offset tilts
    with it), side 1.039 × its longer side, plus 16 % of it times |sin roll| (the axis-aligned
    training box of a tilted face is larger), all enlarged 5 % (err loose rather than clip a jaw).
    """
    x0, y0, x1, y1 = face.box
    width, height = x1 - x0, y1 - y0
    roll = math.radians(face_roll(face.points5))
    offset = DETECTION_CENTER_DOWN * height
    center = ((x0 + x1) / 2.0 - offset * math.sin(roll), (y0 + y1) / 2.0 + offset * math.cos(roll))
    side = max(width, height) * (DETECTION_SIDE_PER_BOX + DETECTION_SIDE_PER_SIN_ROLL * abs(math.sin(roll)))
    return square_box(center, CROP_LOOSENESS * side)


def crop_region_side(face: DetectedFace, convention: str) -> float:
    """Side, in source pixels, of the photo region a convention's crop of ``face`` covers.

    ``landmark_square``: the side of :func:`landmark_square_from_detection`; ``ffhq``: the side of
    the (turned) square that the similarity warp maps onto the aligned frame.
    """
    if crop_convention(convention) == "ffhq":
        affine = ffhq_affine(face.points5, 512)
        return 512.0 / math.sqrt(abs(float(np.linalg.det(affine[:, :2]))))
    x0, _, x1, _ = landmark_square_from_detection(face)
    return x1 - x0


# --- affine maps ----------------------------------------------------------------------------------


def box_affine(box: Box, size: int) -> np.ndarray:
    """Source → face map of a crop box resized to ``size × size`` (see module conventions)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if not (x1 > x0 and y1 > y0):
        raise InvalidInputError(f"crop box must have x1 > x0 and y1 > y0, got {box}")
    sx, sy = size / (x1 - x0), size / (y1 - y0)
    return np.array([[sx, 0.0, -sx * x0 - 0.5], [0.0, sy, -sy * y0 - 0.5]])


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) ``source → target``.

    Umeyama's closed form (IEEE TPAMI 13(4), 1991): with centred point sets, the rotation comes
    from the SVD of their cross-covariance, the scale from the singular values over the source
    variance. Returns the 2×3 matrix ``A`` with ``target ≈ A @ [x, y, 1]``.
    """
    src, dst = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise InvalidInputError(f"need matching N×2 point sets (N >= 2), got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = (src_c**2).sum() / len(src)
    if src_var <= 1e-12:
        raise InvalidInputError("source points are all identical; no similarity transform exists")
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    # Force a proper rotation: flip the weakest axis if the best orthogonal map is a reflection.
    sign = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(singular) @ sign)) / src_var
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def ffhq_affine(points5: np.ndarray, size: int = 512) -> np.ndarray:
    """Source → FFHQ-aligned frame of ``size`` px: similarity fitted to :data:`FFHQ_TEMPLATE_512`."""
    template = FFHQ_TEMPLATE_512 * (size / 512.0)
    return similarity_transform(_points(points5, 5, "points5"), template)


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """Inverse of a 2×3 affine map."""
    full = np.vstack([np.asarray(affine, dtype=np.float64), [0.0, 0.0, 1.0]])
    try:
        return np.linalg.inv(full)[:2]
    except np.linalg.LinAlgError as exc:
        raise InvalidInputError("affine map is singular (zero-sized face?)") from exc


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map ``N×2`` points ``(x, y)`` through a 2×3 affine matrix."""
    points = np.asarray(points, dtype=np.float64)
    return points @ affine[:, :2].T + affine[:, 2]


# --- resampling -----------------------------------------------------------------------------------


def warp_affine(image: np.ndarray, affine: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resample ``image`` into an output of ``size = (width, height)`` through ``affine``.

    ``affine`` maps *image* pixels to *output* pixels (integer = pixel centre). Interpolation is
    Keys bicubic with a = −0.5 — the kernel of Pillow's bicubic *resize*, which reproduces linear
    ramps exactly (Pillow's affine ``transform`` uses a = −1 and does not) — in float, with taps
    clamped to the image edge. Output pixels whose preimage lies outside the image are 0 (the
    black border of skimage's ``warp``, docs/specs/sparnet.md §5). No antialiasing: shrink first if needed.
    Only the output's pixels are computed, so warping out of a large photo costs O(output).
    """
    width, height = size
    to_image = invert_affine(affine)
    planes = image[..., None] if image.ndim == 2 else image
    if to_image[0, 1] == 0.0 and to_image[1, 0] == 0.0:
        # Axis-aligned (the square crop conventions): the kernel is separable, so the warp is two
        # small matrix products instead of 16 gathers per output pixel (~10x faster pastes).
        out = _warp_axis_aligned(planes, to_image, width, height)
        return out[..., 0] if image.ndim == 2 else out
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    sx = to_image[0, 0] * xs + to_image[0, 1] * ys + to_image[0, 2]
    sy = to_image[1, 0] * xs + to_image[1, 1] * ys + to_image[1, 2]
    src_h, src_w = planes.shape[:2]
    inside = (sx >= -0.5) & (sx <= src_w - 0.5) & (sy >= -0.5) & (sy <= src_h - 0.5)
    left, top = np.floor(sx).astype(np.int64), np.floor(sy).astype(np.int64)
    weights_x, weights_y = _keys_weights(sx - left), _keys_weights(sy - top)
    out = np.zeros((height, width, planes.shape[2]), dtype=np.float32)
    for j in range(4):
        rows = np.clip(top + j - 1, 0, src_h - 1)
        line = np.zeros_like(out)
        for i in range(4):
            cols = np.clip(left + i - 1, 0, src_w - 1)
            line += weights_x[i][..., None] * planes[rows, cols]
        out += weights_y[j][..., None] * line
    out[~inside] = 0.0
    return out[..., 0] if image.ndim == 2 else out


def _warp_axis_aligned(planes: np.ndarray, to_image: np.ndarray, width: int, height: int) -> np.ndarray:
    """:func:`warp_affine` for a scale + translation: the same taps and weights, applied per axis."""
    src_h, src_w = planes.shape[:2]
    sx = to_image[0, 0] * np.arange(width, dtype=np.float64) + to_image[0, 2]
    sy = to_image[1, 1] * np.arange(height, dtype=np.float64) + to_image[1, 2]
    along_x, along_y = _tap_matrix(sx, src_w), _tap_matrix(sy, src_h)
    rows = np.tensordot(along_y, planes.astype(np.float64, copy=False), axes=([1], [0]))  # H x W_src x C
    out = np.tensordot(rows, along_x, axes=([1], [1])).transpose(0, 2, 1)  # H x W x C
    inside_x = (sx >= -0.5) & (sx <= src_w - 0.5)
    inside_y = (sy >= -0.5) & (sy <= src_h - 0.5)
    out[~(inside_y[:, None] & inside_x[None, :])] = 0.0
    return np.ascontiguousarray(out, dtype=np.float32)


def _tap_matrix(coords: np.ndarray, length: int) -> np.ndarray:
    """Dense ``len(coords) × length`` matrix of the 4 Keys taps of each coordinate (edge-clamped)."""
    left = np.floor(coords).astype(np.int64)
    matrix = np.zeros((coords.size, length), dtype=np.float64)
    rows = np.arange(coords.size)
    for tap, weight in enumerate(_keys_weights(coords - left)):
        # add.at: clamped taps at the edge land on the same column and must accumulate
        np.add.at(matrix, (rows, np.clip(left + tap - 1, 0, length - 1)), weight)
    return matrix


def _keys_weights(frac: np.ndarray, a: float = -0.5) -> list[np.ndarray]:
    """Keys cubic-convolution weights of the taps at offsets −1, 0, 1, 2 from ``floor(x)``."""

    def near(t: np.ndarray) -> np.ndarray:  # |t| <= 1
        return ((a + 2) * t - (a + 3)) * t * t + 1

    def far(t: np.ndarray) -> np.ndarray:  # 1 < |t| < 2
        return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a

    return [w.astype(np.float32) for w in (far(1 + frac), near(frac), near(1 - frac), far(2 - frac))]


def _source_region(
    image: np.ndarray, low: np.ndarray, high: np.ndarray, *, margin: int
) -> tuple[np.ndarray, tuple[int, int]]:
    """Rows/cols of ``image`` covering ``[low, high]`` (centre coords) plus ``margin``, zero-padded.

    Returns the region and the source pixel index of its top-left element. Regions outside the
    photo are filled with zeros (the black border of Pillow's ``crop``).
    """
    ix0, iy0 = math.floor(low[0]) - margin, math.floor(low[1]) - margin
    ix1, iy1 = math.ceil(high[0]) + margin + 1, math.ceil(high[1]) + margin + 1
    height, width = image.shape[:2]
    region = np.zeros((iy1 - iy0, ix1 - ix0, *image.shape[2:]), dtype=np.float32)
    sx0, sy0, sx1, sy1 = max(ix0, 0), max(iy0, 0), min(ix1, width), min(iy1, height)
    if sx1 > sx0 and sy1 > sy0:
        region[sy0 - iy0 : sy1 - iy0, sx0 - ix0 : sx1 - ix0] = image[sy0:sy1, sx0:sx1]
    return region, (ix0, iy0)


def _crop_resize(rgb: np.ndarray, box: Box, size: int) -> np.ndarray:
    """Pillow-bicubic crop-and-resize of a (sub-pixel) box to ``size × size``, in float."""
    x0, y0, x1, y1 = box
    # Bicubic reads 2 output pixels either side, i.e. 2·(source px per output px) source pixels.
    margin = math.ceil(2.0 * max(1.0, (x1 - x0) / size, (y1 - y0) / size)) + 1
    region, (ox, oy) = _source_region(rgb, np.array([x0, y0]), np.array([x1, y1]), margin=margin)
    pil_box = (x0 + 0.5 - ox, y0 + 0.5 - oy, x1 + 0.5 - ox, y1 + 0.5 - oy)
    return np.clip(resize_float(region, (size, size), box=pil_box), 0.0, 1.0)


# --- crops ----------------------------------------------------------------------------------------


def crop_face(
    rgb: np.ndarray,
    target: CropTarget,
    *,
    convention: str,
    lr_size: int,
    hr_size: int,
) -> FaceCrop:
    """Cut one face out of a photo the way a model's training data was made.

    Args:
        rgb: ``H×W×3`` float32 RGB photo in ``[0, 1]``.
        target: a :class:`DetectedFace`; or, for the square conventions, a crop box
            ``(x0, y0, x1, y1)`` in source pixels; or, for ``"ffhq"``, ``5×2`` points in
            RetinaFace order.
        convention: ``"landmark_square"`` (the square estimated from the detection → ``hr_size`` →
            ``lr_size``) or ``"ffhq"`` (5-point similarity warp to ``hr_size``; LR is the warped
            face, resized to ``lr_size`` if that differs); the legacy names of
            :data:`LEGACY_CROP_NAMES` are read too.
        lr_size: network input side (``ModelConfig.lr_size``).
        hr_size: network output side (``ModelConfig.hr_size``).
    """
    _check_photo(rgb)
    if lr_size <= 0 or hr_size <= 0:
        raise InvalidInputError(f"lr_size and hr_size must be positive, got {lr_size} and {hr_size}")
    convention = crop_convention(convention)
    if convention == "ffhq":
        points = target.points5 if isinstance(target, DetectedFace) else np.asarray(target, dtype=np.float64)
        if points.shape != (5, 2):
            raise InvalidInputError("the 'ffhq' convention needs a DetectedFace or 5×2 landmark points")
        affine = ffhq_affine(points, hr_size)
        hr = np.clip(warp_affine(rgb, affine, (hr_size, hr_size)), 0.0, 1.0)
        lr = hr if lr_size == hr_size else np.clip(resize_float(hr, (lr_size, lr_size)), 0.0, 1.0)
        return FaceCrop(lr=lr, hr=hr, affine=affine, box=None, convention=convention)
    box = _square_box_for(target, convention)
    hr = _crop_resize(rgb, box, hr_size)
    # Training LR = Pillow bicubic of the HR crop (docs/specs/dic.md §1, docs/specs/sparnet.md §5), here
    # without the intermediate 8-bit rounding.
    lr = hr if lr_size == hr_size else np.clip(resize_float(hr, (lr_size, lr_size)), 0.0, 1.0)
    return FaceCrop(lr=lr, hr=hr, affine=box_affine(box, hr_size), box=box, convention=convention)


def crop_aligned(rgb: np.ndarray, *, lr_size: int, hr_size: int) -> FaceCrop:
    """Crop for an input that already *is* an aligned face (``aligned=True``).

    The whole image is the face: LR = the image resized straight to ``lr_size`` (a no-op when it is
    already that size, the usual case for 16-px DIC/SPARNet inputs), HR = resized to ``hr_size``.
    A non-square image is stretched; the affine records it, so paste-back would undo it.
    """
    _check_photo(rgb)
    height, width = rgb.shape[:2]
    box = (-0.5, -0.5, width - 0.5, height - 0.5)
    lr = np.clip(resize_float(rgb, (lr_size, lr_size)), 0.0, 1.0)
    hr = np.clip(resize_float(rgb, (hr_size, hr_size)), 0.0, 1.0)
    return FaceCrop(lr=lr, hr=hr, affine=box_affine(box, hr_size), box=box, convention="aligned")


def _square_box_for(target: CropTarget, convention: str) -> Box:
    if isinstance(target, DetectedFace):
        return landmark_square_from_detection(target)
    box = np.asarray(target, dtype=np.float64).reshape(-1)
    if box.shape != (4,) or not np.isfinite(box).all():
        raise InvalidInputError(f"{convention} needs a DetectedFace or a finite (x0, y0, x1, y1) box")
    return (float(box[0]), float(box[1]), float(box[2]), float(box[3]))


def _check_photo(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) == 0:
        raise InvalidInputError(f"expected an H×W×3 float RGB photo, got {getattr(rgb, 'shape', type(rgb))}")


def _points(points: np.ndarray, count: int, name: str) -> np.ndarray:
    array = np.asarray(points, dtype=np.float64)
    if array.shape != (count, 2) or not np.isfinite(array).all():
        raise InvalidInputError(f"{name} must be a finite {count}×2 array of (x, y), got shape {array.shape}")
    return array
