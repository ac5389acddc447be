"""Paste restored faces back into the upscaled photo, through feathered masks, with controls.

The official SPARNetHD script pastes with a hard, binary mask (docs/specs/sparnet.md §5, step 5), which leaves
a visible square seam. Here each face gets a smooth mask defined in its own face frame
(:mod:`dicsr.face.mask`): by default the rounded square, evaluated analytically at every output
pixel (no interpolation ringing, no straight edges); or a mask given per face in face
coordinates (e.g. the face-shaped :func:`dicsr.face.mask.landmark_mask`), warped with the face.

Faces whose footprints overlap are composited together: the face colour is the mask-weighted mean
of the overlapping faces and the opacity is ``1 − Π(1 − s·mᵢ)`` for a ``strength`` ``s``; both are
smooth, so neither face leaves a seam on the other. Pixels where every opacity is 0 are returned
bit-for-bit unchanged, and ``strength=0`` returns the background itself, bit for bit.

With ``luminance_only`` a face changes only the luma of the photo: its colour becomes the
background's plus the difference of the BT.601 lumas in every channel, which in YCbCr changes Y
and keeps Cb and Cr (for old, sepia or hand-coloured photos, whose tint a colour network would
replace by its own).

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
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dicsr.errors import InvalidInputError
from dicsr.face.consistency import back_project
from dicsr.face.crop import apply_affine, invert_affine, warp_affine
from dicsr.face.mask import mask_for_face, rounded_square_mask, rounded_square_mask_on_grid
from dicsr.image._resample import check_scale, resize_float, to_luma, upscaled_to_photo_affine

__all__ = ["FaceToPaste", "PasteOptions", "face_to_paste", "paste_faces"]

# Shrinking a face by more than this in the warp aliases (Pillow's affine transform does not
# antialias), so such faces are first resized with antialiasing.
_MAX_WARP_SHRINK = 0.75


@dataclass(frozen=True)
class PasteOptions:
    """How restored faces go back into the photo (docs/face-crops.md).

    Attributes:
        strength: in ``[0, 1]``: each face's opacity is ``strength`` × its mask; 0 gives the plain
            upscale bit for bit, 1 the full paste.
        back_projection: make each face agree with its low-resolution input
            (:func:`dicsr.face.consistency.back_project`) before it is pasted.
        landmark_mask: paste faces whose network predicts 68 landmarks through the face-shaped
            :func:`dicsr.face.mask.landmark_mask`; otherwise (and for networks without landmarks)
            through the rounded square.
        luminance_only: the faces change only the photo's luma (its Cb/Cr are kept).

    Raises:
        InvalidInputError: ``strength`` outside ``[0, 1]`` or a switch that is not a ``bool``.
    """

    strength: float = 1.0
    back_projection: bool = True
    landmark_mask: bool = True
    luminance_only: bool = False

    def __post_init__(self) -> None:
        _check_strength(self.strength)
        for name in ("back_projection", "landmark_mask", "luminance_only"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInputError(f"{name} must be True or False, got {getattr(self, name)!r}")

    def overridden(
        self,
        *,
        strength: float | None = None,
        back_projection: bool | None = None,
        landmark_mask: bool | None = None,
        luminance_only: bool | None = None,
    ) -> PasteOptions:
        """These options with the given ones replaced (``None``: kept), e.g. for one call."""
        return PasteOptions(
            strength=self.strength if strength is None else strength,
            back_projection=self.back_projection if back_projection is None else back_projection,
            landmark_mask=self.landmark_mask if landmark_mask is None else landmark_mask,
            luminance_only=self.luminance_only if luminance_only is None else luminance_only,
        )


@dataclass(frozen=True)
class FaceToPaste:
    """One restored face ready for :func:`paste_faces`.

    Attributes:
        image: the face to paste, ``hr×hr×3`` float32 (back-projected when asked).
        mask: its mask in face coordinates, ``hr×hr`` float32 sampled at the face's pixel centres
            (what an application composites with).
        paste_mask: what :func:`paste_faces` gets for it: ``mask``, or ``None`` for the rounded
            square, which paste-back evaluates exactly at every output pixel.
    """

    image: np.ndarray
    mask: np.ndarray
    paste_mask: np.ndarray | None


def face_to_paste(
    image: np.ndarray, lr: np.ndarray, landmarks: np.ndarray | None, options: PasteOptions
) -> FaceToPaste:
    """Prepare one restored face for pasting: back-project it and choose its mask, per ``options``.

    Args:
        image: the network's restored face, ``hr×hr×3`` float in ``[0, 1]``.
        lr: the network input it was restored from (``FaceCrop.lr``).
        landmarks: the landmarks the network predicted, in face coordinates, or ``None``. A
            ``68×2`` set (the iBUG layout) gives the face-shaped mask; any other count the rounded
            square.
        options: the paste options.
    """
    face = back_project(image, lr) if options.back_projection else np.asarray(image, dtype=np.float32)
    size = face.shape[0]
    if options.landmark_mask and landmarks is not None and np.shape(landmarks) == (68, 2):
        mask = mask_for_face(size, landmarks)
        return FaceToPaste(image=face, mask=mask, paste_mask=mask)
    return FaceToPaste(image=face, mask=mask_for_face(size), paste_mask=None)


@dataclass(frozen=True)
class _Placement:
    """A face's footprint in the output: region ``[x0, x1) × [y0, y1)`` and output → face map.

    ``mask`` is the face's own mask in face coordinates, or ``None`` for the rounded square.
    """

    face: np.ndarray
    mask: np.ndarray | None
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
    masks: Sequence[np.ndarray | None] | None = None,
    strength: float = 1.0,
    luminance_only: bool = False,
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
        masks: one entry per face: an ``hr×hr`` float mask in ``[0, 1]`` in face coordinates
            (e.g. ``RestoredFace.mask``; warped with the face), or ``None`` for the rounded square
            (:func:`dicsr.face.mask.rounded_square_mask`, evaluated at every output pixel).
            ``None``: the rounded square for every face.
        strength: in ``[0, 1]``: the opacity of each face is ``strength`` × its mask; 0 returns
            the background bit for bit, 1 pastes the faces fully.
        luminance_only: change only the luma of the background (its Cb/Cr are kept; module
            docstring). Without effect on a gray background, which keeps only the luma anyway.
        in_place: blend into ``background`` itself (float32 or uint8) instead of a copy.

    Returns:
        ``H'×W'×C`` float32, or uint8 for a uint8 background (each face region is blended in float
        and quantised with round-half-to-even, as :func:`dicsr.image.to_uint8`). Faces partly
        outside the photo are clipped; pixels outside every face mask are exactly the
        background's. Without ``in_place``, ``background`` is not modified.

    Raises:
        InvalidInputError: a malformed background, face, affine or mask, ``masks`` of another
            length than ``faces``, or ``strength`` outside ``[0, 1]``.
    """
    _check_planes(background, "background")
    check_scale(upscale)
    _check_strength(strength)
    if masks is None:
        masks = [None] * len(faces)
    elif len(masks) != len(faces):
        raise InvalidInputError(f"paste_faces got {len(masks)} masks for {len(faces)} faces")
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
    placed = (
        _place(face, affine, mask, upscale, out.shape)
        for (face, affine), mask in zip(faces, masks, strict=True)
    )
    placements = [p for p in placed if p]
    if strength == 0:
        return out  # the plain upscale, bit for bit (the faces were still checked)
    for group in _overlapping_groups(placements):
        _composite(out, group, np.float32(strength), luminance_only)
    return out


def _place(
    face: np.ndarray, affine: np.ndarray, mask: np.ndarray | None, upscale: float, shape: tuple[int, ...]
) -> _Placement | None:
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
    if mask is not None:
        mask = _checked_mask(mask, size)
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
    return _Placement(np.asarray(face, dtype=np.float32), mask, output_to_face, x0, y0, x1, y1)


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


def _composite(out: np.ndarray, group: list[_Placement], strength: np.float32, luminance_only: bool) -> None:
    """Composite a group of overlapping faces into ``out`` over the union of their regions.

    Whole-region arithmetic (no gathers): where no mask reaches, the opacity is 0 and the
    pixel is left as it was.
    """
    x0, y0 = min(p.x0 for p in group), min(p.y0 for p in group)
    x1, y1 = max(p.x1 for p in group), max(p.y1 for p in group)
    if len(group) == 1:
        face_colour, mask = _render(group[0])
        # as 1 − Π(1 − s·mᵢ) below: the same float rounding
        opacity: np.ndarray = 1.0 - (1.0 - (mask if strength == 1 else strength * mask))
    else:
        colour_sum = np.zeros((y1 - y0, x1 - x0, 3), dtype=np.float32)
        weight_sum = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
        transparency = np.ones((y1 - y0, x1 - x0), dtype=np.float32)  # Π(1 − s·mᵢ)
        for p in group:
            colour, mask = _render(p)
            window = (slice(p.y0 - y0, p.y1 - y0), slice(p.x0 - x0, p.x1 - x0))
            colour_sum[window] += mask[..., None] * colour
            weight_sum[window] += mask
            transparency[window] *= 1.0 - (mask if strength == 1 else strength * mask)
        opacity = 1.0 - transparency
        face_colour = colour_sum / np.where(weight_sum > 0, weight_sum, 1.0)[..., None]
    covered = opacity > 0
    region = out[y0:y1, x0:x1]
    # background·(1 − o) + colour·o, in place where possible. An 8-bit background is blended in
    # float exactly as its float version (samples / 255) would be, then quantised like to_uint8.
    below = region / np.float32(255.0) if region.dtype == np.uint8 else region
    if luminance_only and below.shape[2] == 3:
        # The background's colour with the face's luma: equal steps in R, G and B change Y by the
        # step and keep Cb, Cr (BT.601 weights sum to 1). A gray background keeps only Y anyway.
        face_colour = below + (to_luma(face_colour) - to_luma(below))[..., None]
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
    """The face warped into its output region, and its mask there."""
    size = p.face.shape[0]
    width, height = p.x1 - p.x0, p.y1 - p.y0
    # Region pixel (i, j) is output pixel (p.x0 + j, p.y0 + i).
    region_to_output = np.array([[1.0, 0.0, p.x0], [0.0, 1.0, p.y0]])
    region_to_face = _compose(p.output_to_face, region_to_output)
    face, face_to_region = p.face, invert_affine(region_to_face)
    if p.mask is not None:
        face = np.concatenate([face, p.mask[..., None]], axis=2)  # warped together (RGB + mask)
    shrink = math.sqrt(abs(np.linalg.det(face_to_region[:, :2])))
    if shrink < _MAX_WARP_SHRINK:
        # Antialiased pre-shrink, then the (now ≤ 1/0.75) warp: u_small = (u + 0.5)·k − 0.5.
        small = max(4, round(size * shrink))
        k = small / size
        face = resize_float(face, (small, small))
        small_to_face = np.array([[1.0 / k, 0.0, 0.5 / k - 0.5], [0.0, 1.0 / k, 0.5 / k - 0.5]])
        face_to_region = _compose(face_to_region, small_to_face)
    warped = warp_affine(face, face_to_region, (width, height))
    if p.mask is not None:
        # Bicubic overshoots a little at the mask's feather; outside the face frame it is 0.
        return warped[..., :3], np.clip(warped[..., 3], 0.0, 1.0)
    xs, ys = np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64)
    if region_to_face[0, 1] == 0.0 and region_to_face[1, 0] == 0.0:
        # Axis-aligned (the square crop conventions): u depends on x only and v on y only.
        u = region_to_face[0, 0] * xs + region_to_face[0, 2]
        v = region_to_face[1, 1] * ys + region_to_face[1, 2]
        return warped, rounded_square_mask_on_grid(u, v, size)
    gx, gy = np.meshgrid(xs, ys)
    u = region_to_face[0, 0] * gx + region_to_face[0, 1] * gy + region_to_face[0, 2]
    v = region_to_face[1, 0] * gx + region_to_face[1, 1] * gy + region_to_face[1, 2]
    return warped, rounded_square_mask(u, v, size)


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2×3 affine ``outer ∘ inner``."""
    full = np.vstack([outer, [0.0, 0.0, 1.0]]) @ np.vstack([inner, [0.0, 0.0, 1.0]])
    return full[:2]


def _checked_mask(mask: np.ndarray, size: int) -> np.ndarray:
    array = np.asarray(mask)
    if (
        array.shape != (size, size)
        or not np.issubdtype(array.dtype, np.floating)
        or not np.isfinite(array).all()
    ):
        raise InvalidInputError(
            f"a face mask must be a finite {size}×{size} float array (the face's size), got "
            f"{array.dtype} {array.shape}"
        )
    return np.clip(array, 0.0, 1.0).astype(np.float32)


def _check_strength(strength: float) -> None:
    if (
        isinstance(strength, bool)
        or not isinstance(strength, numbers.Real)
        or not 0.0 <= float(strength) <= 1.0
    ):
        raise InvalidInputError(f"strength must be a number in [0, 1], got {strength!r}")


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

