"""dicsr.face.mask: the face-shaped mask from 68 landmarks, on real annotated faces.

Every annotated face of ../shared/faces/landmarks68.json is cut with DIC's training box
(``landmark_square_from_points68``, docs/specs/dic.md §1), so its landmarks sit in the 128-px face frame where
a DIC network puts its own.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from _support import shared_path
from scipy.spatial import ConvexHull

from dicsr.errors import InvalidInputError
from dicsr.face.crop import apply_affine, box_affine, landmark_square_from_points68
from dicsr.face.mask import (
    LANDMARK_FEATHER,
    LANDMARK_LIMIT,
    landmark_mask,
    mask_for_face,
    rounded_square_mask,
)

SIZE = 128


@pytest.fixture(scope="module")
def face_landmarks() -> list[np.ndarray]:
    """The 55 annotated faces' landmarks in their DIC training crops (128-px face frame)."""
    annotations = json.loads(shared_path("faces", "landmarks68.json").read_text())
    faces = []
    for points_per_face in annotations.values():
        for points in points_per_face:
            points = np.asarray(points, dtype=np.float64)
            faces.append(apply_affine(box_affine(landmark_square_from_points68(points), SIZE), points))
    assert len(faces) == 55
    return faces


def _pixel_centres() -> np.ndarray:
    v, u = np.mgrid[0:SIZE, 0:SIZE]
    return np.stack([u.ravel(), v.ravel()], axis=1).astype(np.float64)


def _max_norm_radius() -> np.ndarray:
    """``max(|tu|, |tv|)`` of every pixel centre (1 at the crop's outer edges)."""
    t = np.abs(np.arange(SIZE) - (SIZE - 1) / 2) / (SIZE / 2)
    return np.maximum(t[:, None], t[None, :])


def test_landmark_mask_covers_the_landmarks_hull(face_landmarks) -> None:
    centres = _pixel_centres()
    for points in face_landmarks:
        mask = landmark_mask(points, SIZE)
        # scipy's hull facets: inside where every facet's outward normal · point + offset <= 0
        facets = ConvexHull(points).equations
        inside_hull = (centres @ facets[:, :2].T + facets[:, 2] <= 1e-9).all(axis=1).reshape(SIZE, SIZE)
        assert inside_hull.sum() > 0.3 * SIZE * SIZE  # a face, not a sliver
        np.testing.assert_array_equal(mask[inside_hull], 1.0)


def test_landmark_mask_lies_inside_the_crop(face_landmarks) -> None:
    outer = LANDMARK_LIMIT + LANDMARK_FEATHER
    radius = _max_norm_radius()
    for points in face_landmarks:
        mask = landmark_mask(points, SIZE)
        assert mask.dtype == np.float32 and mask.shape == (SIZE, SIZE)
        assert mask.min() == 0.0 and mask.max() == 1.0
        # 0 beyond 0.96 of the half-side: clear of the pixels where the warp reads beyond the crop
        assert outer == pytest.approx(0.96)
        assert not mask[radius > outer].any()
        assert not mask[[0, -1], :].any() and not mask[:, [0, -1]].any()


def test_landmark_mask_has_no_hard_edge(face_landmarks) -> None:
    # A raised cosine over w px of a 1-Lipschitz distance rises by at most π / (2w) per pixel.
    feather_px = LANDMARK_FEATHER * SIZE / 2
    bound = np.pi / (2 * feather_px)
    for points in face_landmarks:
        mask = landmark_mask(points, SIZE).astype(np.float64)
        steepest = max(np.abs(np.diff(mask, axis=0)).max(), np.abs(np.diff(mask, axis=1)).max())
        assert steepest <= bound * (1 + 1e-4)
        assert steepest > 0.9 * bound  # the bound is tight: the feather is as narrow as documented
        # and the feather is really there: a band of partial values around the face
        assert ((mask > 0) & (mask < 1)).mean() > 0.05


def test_landmark_mask_moves_and_turns_with_the_face(face_landmarks) -> None:
    points = face_landmarks[0]
    centre = np.array([(SIZE - 1) / 2, (SIZE - 1) / 2])
    small = (points - centre) * 0.7 + centre  # well inside the limit square
    mask = landmark_mask(small, SIZE)
    # moved by whole pixels: the same mask, moved
    moved = landmark_mask(small + np.array([7.0, -5.0]), SIZE)  # 7 px right, 5 px up
    np.testing.assert_allclose(moved[:-5, 7:], mask[5:, :-7], atol=1e-6)
    # turned about the frame centre: the mask turns with it
    angle = np.deg2rad(25)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    turned = landmark_mask((small - centre) @ rotation.T + centre, SIZE)
    back = (_pixel_centres() - centre) @ rotation + centre  # each pixel, turned back
    nearest = np.clip(np.rint(back), 0, SIZE - 1).astype(int)
    upright_at_back = mask[nearest[:, 1], nearest[:, 0]].reshape(SIZE, SIZE)
    assert np.abs(turned - upright_at_back).mean() < 0.01
    assert np.abs(turned - mask).mean() > 0.05


def test_the_forehead_above_the_brows_is_in_the_mask(face_landmarks) -> None:
    for points in face_landmarks:
        mask = landmark_mask(points, SIZE)
        brows, chin = points[17:27], points[8]
        # a tenth of the chin-to-brows distance above the inner brow points (18–25; above the
        # outer ends the hull's edge runs through the point itself)
        above = brows[1:-1] + 0.1 * (brows.mean(0) - chin)
        pixels = np.rint(above)
        # those at least a pixel inside the limit square (the hull is clipped there)
        pixels = pixels[np.abs(pixels - (SIZE - 1) / 2).max(1) <= LANDMARK_LIMIT * SIZE / 2 - 1]
        columns, rows = pixels.astype(int).T
        assert (mask[rows, columns] == 1.0).all()


def test_mask_for_face_falls_back_to_the_rounded_square(face_landmarks) -> None:
    coords = np.arange(SIZE, dtype=np.float64)
    u, v = np.meshgrid(coords, coords)
    square = rounded_square_mask(u, v, SIZE)
    np.testing.assert_array_equal(mask_for_face(SIZE), square)
    # landmarks that collapsed onto a few points (an untrained network) describe no face
    collapsed = np.tile([[60.0, 60.0], [66.0, 70.0]], (34, 1))
    np.testing.assert_array_equal(mask_for_face(SIZE, collapsed), square)
    # landmarks far outside the crop leave no hull inside it
    np.testing.assert_array_equal(mask_for_face(SIZE, face_landmarks[0] + 500), square)
    real = face_landmarks[0]
    np.testing.assert_array_equal(mask_for_face(SIZE, real), landmark_mask(real, SIZE))


def test_bad_landmarks_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="68×2"):
        landmark_mask(np.zeros((5, 2)), SIZE)
    with pytest.raises(InvalidInputError, match="68×2"):
        mask_for_face(SIZE, np.full((68, 2), np.nan))
    with pytest.raises(InvalidInputError, match="positive integer"):
        mask_for_face(0)
