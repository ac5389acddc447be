"""Paste restored faces back into the upscaled photo, with seamless feathered masks.

The official SPARNetHD script pastes with a hard, binary mask (sparnet.md §5, step 5), which leaves
a visible square seam. Here each face gets a smooth mask defined in its own face frame — a rounded
square (super-ellipse) that is 1 over the face and falls to 0 with a raised-cosine ramp whose width
is a fixed fraction of the face size — evaluated analytically at every output pixel, so it has no
interpolation ringing and no straight edges.

Faces whose footprints overlap are composited together: the face colour is the mask-weighted mean
of the overlapping faces and the opacity is ``1 − Π(1 − mᵢ)``; both are smooth, so neither face
leaves a seam on the other. Pixels where every mask is 0 are returned bit-for-bit unchanged.

Faces are blended in place, region by region, into a float32 background or into an 8-bit one
(uint8 samples: each face region is blended in float and quantised on its own), so pasting never
copies the whole photo. The background itself, the upscaled photo, comes from
:class:`dicsr.image.Background`, which also turns it into the final result.

Coordinates follow :mod:`dicsr.face.crop` (integer = pixel centre). The output photo is the source
scaled by ``upscale`` about pixel edges: ``x_out = (x_src + 0.5) · upscale − 0.5``
(:func:`dicsr.image.upscaled_points`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dicsr.errors import InvalidInputError
from dicsr.face.crop import apply_affine, invert_affine, warp_affine
from dicsr.image._resample import check_scale, resize_float, to_luma, upscaled_to_photo_affine

__all__ = ["FEATHER_INNER", "FEATHER_OUTER", "face_mask", "paste_faces"]

#: Feathered mask radii in the face frame, as a fraction of the half-side of the crop, measured
#: with a super-ellipse norm (p = 4, a rounded square). The DIC crop is the landmark box enlarged
#: 1.3×, so the face itself reaches ≈ 0.77: the mask is fully opaque to 0.72 and fades out by 0.96,
#: keeping clear of the last face pixels, where bicubic warping reads beyond the crop.
FEATHER_INNER = 0.72
FEATHER_OUTER = 0.96
_SUPERELLIPSE_POWER = 4.0

# Shrinking a face by more than this in the warp aliases (Pillow's affine transform does not
# antialias), so such faces are first resized with antialiasing.
_MAX_WARP_SHRINK = 0.75


def face_mask(u: np.ndarray, v: np.ndarray, size: int) -> np.ndarray:
    """Feathered mask value at face-frame coordinates ``(u, v)`` of a ``size``-px face frame.

    1 inside :data:`FEATHER_INNER`, 0 outside :data:`FEATHER_OUTER`, raised cosine between
    (continuous with continuous slope, hence no visible edge).
    """
    return _feather(_axis_power(u, size) + _axis_power(v, size))


def _axis_power(coord: np.ndarray, size: int) -> np.ndarray:
    """``|t|^p`` of the face-frame coordinate along one axis (t = ±1 at the frame's outer edges)."""
    half = size / 2.0
    center = (size - 1) / 2.0
    return (np.abs(coord - center) / half) ** _SUPERELLIPSE_POWER


def _feather(radius_power: np.ndarray) -> np.ndarray:
    """The mask from ``|tu|^p + |tv|^p`` (the super-ellipse radius to the power p = 4)."""
    # In place on one scratch array (a face region at 8x has ~0.25 MP): radius → ramp → mask.
    work = np.sqrt(radius_power)
    np.sqrt(work, out=work)  # the fourth root (_SUPERELLIPSE_POWER = 4)
    work -= FEATHER_INNER
    work /= FEATHER_OUTER - FEATHER_INNER
    np.clip(work, 0.0, 1.0, out=work)
    work *= np.pi
    np.cos(work, out=work)
    work *= 0.5
    work += 0.5
    return work.astype(np.float32)


@dataclass(frozen=True)
class _Placement:
    """A face's footprint in the output: region ``[x0, x1) × [y0, y1)`` and output → face map."""

    face: np.ndarray
    output_to_face: np.ndarray
    x0: int
    y0: int
    x1: int
    y1: int


def paste_faces(
    background: np.ndarray,
    faces: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    upscale: float,
    in_place: bool = False,
) -> np.ndarray:
    """Blend restored faces into the upscaled photo.

    Args:
        background: the photo already upscaled by ``upscale`` (e.g.
            :attr:`dicsr.image.Background.pixels`): ``H'×W'×3`` float in ``[0, 1]`` or uint8 RGB,
            or ``H'×W'×1`` (gray) — faces are then blended in RGB against the grey and
            converted with :func:`dicsr.image.to_luma`, as :func:`dicsr.image.to_output` converts a
            result for a grayscale source.
        faces: ``(restored face hr×hr×3 float32, affine source → face frame 2×3)`` pairs, e.g.
            the network output and ``FaceCrop.affine``.
        upscale: factor between the source photo (the affines' domain) and ``background``.
        in_place: blend into ``background`` itself (float32 or uint8) instead of a copy.

    Returns:
        ``H'×W'×C`` float32, or uint8 for a uint8 background (each face region is blended in float
        and quantised with round-half-to-even, as :func:`dicsr.image.to_uint8`). Faces partly
        outside the photo are clipped; pixels outside every face mask are exactly the
        background's. Without ``in_place``, ``background`` is not modified.
    """
    _check_planes(background, "background")
    check_scale(upscale)
    if in_place:
        if background.dtype not in (np.float32, np.uint8):
            raise InvalidInputError(
                f"in_place paste needs a float32 or uint8 background, got {background.dtype}"
            )
        out = background
    elif background.dtype == np.uint8:
        out = background.copy()
    else:
        out = background.astype(np.float32, copy=True)
    placements = [p for p in (_place(face, affine, upscale, out.shape) for face, affine in faces) if p]
    for group in _overlapping_groups(placements):
        _composite(out, group)
    return out


def _place(face: np.ndarray, affine: np.ndarray, upscale: float, shape: tuple[int, ...]) -> _Placement | None:
    if (
        not isinstance(face, np.ndarray)
        or face.ndim != 3
        or face.shape[2] != 3
        or face.shape[0] != face.shape[1]
    ):
        raise InvalidInputError(
            f"restored face must be a square hr×hr×3 array, got {getattr(face, 'shape', face)}"
        )
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (2, 3) or not np.isfinite(affine).all():
        raise InvalidInputError(f"face affine must be a finite 2×3 matrix, got shape {affine.shape}")
    size = face.shape[0]
    # output → source (x_src = (x_out + 0.5) / upscale − 0.5), then source → face.
    output_to_face = _compose(affine, upscaled_to_photo_affine(upscale))
    face_to_output = invert_affine(output_to_face)
    edges = np.array([[-0.5, -0.5], [size - 0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, size - 0.5]])
    corners = apply_affine(face_to_output, edges)
    height, width = shape[:2]
    x0, y0 = max(0, math.floor(corners[:, 0].min())), max(0, math.floor(corners[:, 1].min()))
    x1, y1 = min(width, math.ceil(corners[:, 0].max()) + 1), min(height, math.ceil(corners[:, 1].max()) + 1)
    if x1 <= x0 or y1 <= y0:
        return None  # entirely outside the photo
    return _Placement(np.asarray(face, dtype=np.float32), output_to_face, x0, y0, x1, y1)


def _overlapping_groups(placements: list[_Placement]) -> list[list[_Placement]]:
    """Partition faces into groups whose regions overlap (transitively), to composite jointly."""
    parent = list(range(len(placements)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(placements):
        for j in range(i + 1, len(placements)):
            b = placements[j]
            if a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1:
                parent[root(i)] = root(j)
    groups: dict[int, list[_Placement]] = {}
    for i, placement in enumerate(placements):
        groups.setdefault(root(i), []).append(placement)
    return list(groups.values())


def _composite(out: np.ndarray, group: list[_Placement]) -> None:
    """Composite a group of overlapping faces into ``out`` over the union of their regions.

    Whole-region arithmetic (no gathers): where no mask reaches, the opacity is 0 and the
    pixel is left as it was.
    """
    x0, y0 = min(p.x0 for p in group), min(p.y0 for p in group)
    x1, y1 = max(p.x1 for p in group), max(p.y1 for p in group)
    if len(group) == 1:
        face_colour, mask = _render(group[0])
        opacity: np.ndarray = 1.0 - (1.0 - mask)  # as 1 − Π(1 − mᵢ) below: the same float rounding
        covered = mask > 0
    else:
        colour_sum = np.zeros((y1 - y0, x1 - x0, 3), dtype=np.float32)
        weight_sum = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
        transparency = np.ones((y1 - y0, x1 - x0), dtype=np.float32)  # Π(1 − mᵢ)
        for p in group:
            colour, mask = _render(p)
            window = (slice(p.y0 - y0, p.y1 - y0), slice(p.x0 - x0, p.x1 - x0))
            colour_sum[window] += mask[..., None] * colour
            weight_sum[window] += mask
            transparency[window] *= 1.0 - mask
        covered = weight_sum > 0
        opacity = 1.0 - transparency
        face_colour = colour_sum / np.where(covered, weight_sum, 1.0)[..., None]
    region = out[y0:y1, x0:x1]
    # background·(1 − o) + colour·o, in place where possible. An 8-bit background is blended in
    # float exactly as its float version (samples / 255) would be, then quantised like to_uint8.
    below = region / np.float32(255.0) if region.dtype == np.uint8 else region
    blended = below * (1.0 - opacity)[..., None]
    face_colour *= opacity[..., None]
    # A grey background (H×W×1) broadcasts: the blend is in RGB, then converted to luma.
    blended = blended + face_colour if blended.shape[2] == 1 else np.add(blended, face_colour, out=blended)
    np.clip(blended, 0.0, 1.0, out=blended)
    if out.shape[2] == 1:
        blended = to_luma(blended)[..., None]
    if region.dtype == np.uint8:
        blended *= np.float32(255.0)
        np.rint(blended, out=blended)
    np.copyto(region, blended, where=covered[..., None], casting="unsafe")


def _render(p: _Placement) -> tuple[np.ndarray, np.ndarray]:
    """The face warped into its output region, and its feathered mask there."""
    size = p.face.shape[0]
    width, height = p.x1 - p.x0, p.y1 - p.y0
    # Region pixel (i, j) is output pixel (p.x0 + j, p.y0 + i).
    region_to_output = np.array([[1.0, 0.0, p.x0], [0.0, 1.0, p.y0]])
    region_to_face = _compose(p.output_to_face, region_to_output)
    xs, ys = np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64)
    if region_to_face[0, 1] == 0.0 and region_to_face[1, 0] == 0.0:
        # Axis-aligned (the square crop conventions): u depends on x only and v on y only, so the
        # per-axis powers are 1-D; the same values as face_mask on the full grid.
        u = region_to_face[0, 0] * xs + region_to_face[0, 2]
        v = region_to_face[1, 1] * ys + region_to_face[1, 2]
        mask = _feather(_axis_power(v, size)[:, None] + _axis_power(u, size)[None, :])
    else:
        gx, gy = np.meshgrid(xs, ys)
        u = region_to_face[0, 0] * gx + region_to_face[0, 1] * gy + region_to_face[0, 2]
        v = region_to_face[1, 0] * gx + region_to_face[1, 1] * gy + region_to_face[1, 2]
        mask = face_mask(u, v, size)

    face, face_to_region = p.face, invert_affine(region_to_face)
    shrink = math.sqrt(abs(np.linalg.det(face_to_region[:, :2])))
    if shrink < _MAX_WARP_SHRINK:
        # Antialiased pre-shrink, then the (now ≤ 1/0.75) warp: u_small = (u + 0.5)·k − 0.5.
        small = max(4, round(size * shrink))
        k = small / size
        face = resize_float(face, (small, small))
        small_to_face = np.array([[1.0 / k, 0.0, 0.5 / k - 0.5], [0.0, 1.0 / k, 0.5 / k - 0.5]])
        face_to_region = _compose(face_to_region, small_to_face)
    colour = warp_affine(face, face_to_region, (width, height))
    return colour, mask


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2×3 affine ``outer ∘ inner``."""
    full = np.vstack([outer, [0.0, 0.0, 1.0]]) @ np.vstack([inner, [0.0, 0.0, 1.0]])
    return full[:2]


def _check_planes(planes: np.ndarray, what: str) -> None:
    if (
        not isinstance(planes, np.ndarray)
        or planes.ndim != 3
        or planes.shape[2] not in (1, 3)
        or min(planes.shape[:2]) == 0
        or not (planes.dtype == np.uint8 or np.issubdtype(planes.dtype, np.floating))
    ):
        raise InvalidInputError(
            f"{what} must be a non-empty H×W×3 (RGB) or H×W×1 (gray) float or uint8 array, got "
            f"{getattr(planes, 'dtype', type(planes).__name__)} {getattr(planes, 'shape', '')}"
        )

