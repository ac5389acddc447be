"""Paste masks in face coordinates: where a restored face replaces the plain upscale.

Every mask is 1 over the face, falls to 0 with a raised cosine (continuous value and slope, so no
visible edge) and is 0 near the border of the crop, where bicubic warping reads beyond it:

* :func:`rounded_square_mask` — for every network: a rounded square (super-ellipse, p = 4) over the
  crop, defined analytically so that paste-back evaluates it at every output pixel.
* :func:`landmark_mask` — face-shaped, for networks that predict 68 landmarks in the iBUG layout
  (jaw 0–16, brows 17–26, nose 27–35, eyes 36–47, mouth 48–67; docs/specs/dic.md §2.3): the convex hull of
  the landmarks with the brows raised a little (the forehead), feathered outwards, so the restored
  area follows the face instead of the crop square.

:func:`mask_for_face` picks between them; the pipeline returns its choice as ``RestoredFace.mask``.

Coordinates follow :mod:`dicsr.face.crop`: integer = pixel centre; a ``size``-px face frame spans
``[-0.5, size - 0.5]`` and its half-side is ``size / 2``. Radii below are fractions of the half-side.
"""

from __future__ import annotations

import logging
from types import ModuleType

import numpy as np

from dicsr.errors import InvalidInputError

__all__ = [
    "FEATHER_INNER",
    "FEATHER_OUTER",
    "LANDMARK_BROW_RAISE",
    "LANDMARK_FEATHER",
    "LANDMARK_LIMIT",
    "LANDMARK_MIN_AREA",
    "landmark_mask",
    "mask_for_face",
    "rounded_square_mask",
    "rounded_square_mask_on_grid",
]

logger = logging.getLogger(__name__)


def _cv2() -> ModuleType:
    """OpenCV, imported on first use: `import dicsr` must stay light (tests/test_package.py)."""
    import cv2

    return cv2

#: Rounded-square mask radii, as a fraction of the half-side, measured with a super-ellipse norm
#: (p = 4). The DIC crop is the landmark box enlarged 1.3× (docs/specs/dic.md §1), so the face itself reaches
#: ≈ 0.77: the mask is fully opaque to 0.72 and fades out by 0.96, keeping clear of the last face
#: pixels, where bicubic warping reads beyond the crop.
FEATHER_INNER = 0.72
#: Where the rounded-square mask has faded out to 0 (see :data:`FEATHER_INNER`).
FEATHER_OUTER = 0.96
_SUPERELLIPSE_POWER = 4.0

#: The brows are raised by this fraction of the chin-to-brows distance before taking the hull, so
#: the lower forehead is restored too (the forehead is about half that distance; the crop leaves
#: room for about 0.15 above the brows).
LANDMARK_BROW_RAISE = 0.15
#: The hull is clipped to the centred square of this half-side fraction (in max-norm) ...
LANDMARK_LIMIT = 0.80
#: ... and feathered outwards over this fraction of the half-side (10 px in a 128-px face), so the
#: mask is 0 beyond LANDMARK_LIMIT + LANDMARK_FEATHER = 0.96, as the rounded square.
LANDMARK_FEATHER = 0.16
#: Below this fraction of the crop's area the clipped hull is no face (landmarks collapsed onto a
#: few points, or mostly outside the crop): :func:`mask_for_face` falls back to the rounded square.
LANDMARK_MIN_AREA = 0.10

# iBUG 68 layout (docs/specs/dic.md §2.3): jaw 0–16 (8 is the chin), brows 17–26.
_CHIN = 8
_BROWS = slice(17, 27)


def rounded_square_mask(u: np.ndarray, v: np.ndarray, size: int) -> np.ndarray:
    """Rounded-square mask value at face coordinates ``(u, v)`` of a ``size``-px face frame.

    1 inside :data:`FEATHER_INNER`, 0 outside :data:`FEATHER_OUTER` (super-ellipse norm, p = 4),
    raised cosine between (continuous with continuous slope, hence no visible edge). Float32.
    """
    return _feather_superellipse(_axis_power(u, size) + _axis_power(v, size))


def rounded_square_mask_on_grid(us: np.ndarray, vs: np.ndarray, size: int) -> np.ndarray:
    """:func:`rounded_square_mask` on the grid of face coordinates ``us`` (columns) × ``vs`` (rows).

    The same values as on the full ``len(vs)×len(us)`` coordinate arrays, for an axis-aligned
    footprint (the square crop conventions): the power is computed once per row and per column.
    """
    return _feather_superellipse(_axis_power(vs, size)[:, None] + _axis_power(us, size)[None, :])


def _axis_power(coord: np.ndarray, size: int) -> np.ndarray:
    """``|t|^p`` of the face-frame coordinate along one axis (t = ±1 at the frame's outer edges)."""
    half = size / 2.0
    center = (size - 1) / 2.0
    return (np.abs(coord - center) / half) ** _SUPERELLIPSE_POWER


def _feather_superellipse(radius_power: np.ndarray) -> np.ndarray:
    """The rounded-square mask from ``|tu|^p + |tv|^p`` (the super-ellipse radius to the power 4)."""
    # In place on one scratch array (a face region at 8x has ~0.25 MP): radius → ramp → mask.
    work = np.sqrt(radius_power)
    np.sqrt(work, out=work)  # the fourth root (_SUPERELLIPSE_POWER = 4)
    work -= FEATHER_INNER
    work /= FEATHER_OUTER - FEATHER_INNER
    return _raised_cosine(work)


def landmark_mask(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Face-shaped mask of a ``size``-px face frame from 68 landmarks in face coordinates.

    The convex hull of the 68 points and of the brows (17–26) raised by
    :data:`LANDMARK_BROW_RAISE` of the chin-to-brows distance (along the chin → brows direction,
    so a tilted face gets a tilted mask), clipped to the centred square of half-side
    :data:`LANDMARK_LIMIT`; 1 inside, falling to 0 with a raised cosine over
    :data:`LANDMARK_FEATHER` of the half-side outside. The mask is therefore 1 on every landmark
    inside the limit square, 0 beyond 0.96 of the half-side, and changes by at most
    ``π / (2 · LANDMARK_FEATHER · size / 2)`` per pixel.

    Args:
        landmarks: ``68×2`` finite ``(x, y)`` in face pixels (e.g. ``RestoredFace.landmarks``).
        size: side of the face frame (the network's ``hr_size``).

    Returns:
        ``size×size`` float32 in ``[0, 1]``, indexed ``[v, u]``.

    Raises:
        InvalidInputError: ``landmarks`` is not a finite 68×2 array, or ``size`` is not positive.
    """
    region = _landmark_region(landmarks, size)
    if region is None:
        return np.zeros((size, size), dtype=np.float32)
    coords = np.arange(size, dtype=np.float64)
    u, v = np.meshgrid(coords, coords)
    distance = _distance_to_convex_polygon(region, u, v)
    return _raised_cosine(distance / (LANDMARK_FEATHER * size / 2.0))


def mask_for_face(size: int, landmarks: np.ndarray | None = None) -> np.ndarray:
    """The paste mask of a ``size``-px face, sampled at its pixel centres.

    :func:`landmark_mask` when 68 landmarks are given and their clipped hull covers at least
    :data:`LANDMARK_MIN_AREA` of the crop; otherwise (no landmarks, or landmarks that describe no
    face) :func:`rounded_square_mask`.

    Returns:
        ``size×size`` float32 in ``[0, 1]``, indexed ``[v, u]``.
    """
    _check_size(size)
    if landmarks is not None:
        region = _landmark_region(landmarks, size)
        area = 0.0 if region is None else abs(_cv2().contourArea(region.astype(np.float32)))
        if area >= LANDMARK_MIN_AREA * size * size:
            return landmark_mask(landmarks, size)
        logger.info(
            "landmark hull covers %.0f%% of the crop (< %.0f%%): pasting with the rounded square",
            100 * area / (size * size), 100 * LANDMARK_MIN_AREA,
        )
    coords = np.arange(size, dtype=np.float64)
    return rounded_square_mask_on_grid(coords, coords, size)


# --- geometry ------------------------------------------------------------------------------------


def _landmark_region(landmarks: np.ndarray, size: int) -> np.ndarray | None:
    """The clipped, brow-raised hull (``K×2`` convex polygon), or ``None`` when it is empty."""
    _check_size(size)
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (68, 2) or not np.isfinite(points).all():
        raise InvalidInputError(
            f"landmark_mask needs 68×2 finite (x, y) landmarks in the iBUG 68 layout, got shape "
            f"{points.shape}"
        )
    brows = points[_BROWS]
    up = brows.mean(axis=0) - points[_CHIN]
    raised = brows + LANDMARK_BROW_RAISE * up  # up is the chin-to-brows vector itself
    hull = _cv2().convexHull(np.concatenate([points, raised]).astype(np.float32))
    center, half = (size - 1) / 2.0, LANDMARK_LIMIT * size / 2.0
    limit = np.array(
        [[center - half, center - half], [center + half, center - half],
         [center + half, center + half], [center - half, center + half]],
        dtype=np.float32,
    )
    area, clipped = _cv2().intersectConvexConvex(hull, limit)
    if clipped is None or len(clipped) < 3 or area <= 0:
        return None
    return clipped.reshape(-1, 2).astype(np.float64)


def _distance_to_convex_polygon(polygon: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Euclidean distance from each point ``(u, v)`` to a convex polygon (0 inside)."""
    starts, ends = polygon, np.roll(polygon, -1, axis=0)
    # The polygon's orientation: inside is on the same side of every edge as the area's sign says.
    orientation = np.sign(
        np.sum(starts[:, 0] * ends[:, 1] - ends[:, 0] * starts[:, 1])
    )
    nearest = np.full(u.shape, np.inf)
    inside = np.ones(u.shape, dtype=bool)
    for (x0, y0), (x1, y1) in zip(starts, ends, strict=True):
        ex, ey = x1 - x0, y1 - y0
        rx, ry = u - x0, v - y0
        inside &= orientation * (ex * ry - ey * rx) >= 0
        length2 = ex * ex + ey * ey
        t = np.clip((rx * ex + ry * ey) / length2, 0.0, 1.0) if length2 > 0 else np.zeros(u.shape)
        np.minimum(nearest, (rx - t * ex) ** 2 + (ry - t * ey) ** 2, out=nearest)
    return np.where(inside, 0.0, np.sqrt(nearest))


def _raised_cosine(ramp: np.ndarray) -> np.ndarray:
    """1 at ``ramp ≤ 0``, 0 at ``ramp ≥ 1``, ``(1 + cos(π·ramp)) / 2`` between (in place), float32."""
    np.clip(ramp, 0.0, 1.0, out=ramp)
    ramp *= np.pi
    np.cos(ramp, out=ramp)
    ramp *= 0.5
    ramp += 0.5
    return ramp.astype(np.float32)


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
        raise InvalidInputError(f"face size must be a positive integer, got {size!r}")
