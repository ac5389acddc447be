"""dicsr.face.consistency: back-projection of a restored face onto its low-resolution input.

What a user relies on: the face, downsampled the way the network input was made, reproduces that
input (here measured on the golden networks' outputs for real faces); only the low-pass component
changes, the detail is kept; a face that already agrees (the photo's own pixels) is left alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _support import shared_path

from dicsr.errors import InvalidInputError
from dicsr.face.consistency import back_project, downsampling_matrix, lr_disagreement
from dicsr.face.crop import FaceCrop, crop_face, landmark_square_from_points68
from dicsr.image import load_image, resize_float

GROUP = "dlib/examples/faces/2008_002470.jpg"  # six annotated faces


@pytest.fixture(scope="module")
def group_crops() -> list[FaceCrop]:
    """The six faces of the group photo, cut with DIC's training box (16 -> 128)."""
    faces = json.loads(shared_path("faces", "landmarks68.json").read_text())[GROUP]
    rgb = load_image(shared_path("faces", *GROUP.split("/"))).rgb
    return [
        crop_face(rgb, landmark_square_from_points68(np.asarray(points, dtype=np.float64)),
                  convention="landmark_square", lr_size=16, hr_size=128)
        for points in faces
    ]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def test_the_downsampling_matrix_is_pillows_resize() -> None:
    face = np.random.default_rng(0).random((128, 128, 3), dtype=np.float32)
    matrix = downsampling_matrix(128, 16)
    by_matrix = np.einsum("ij,jkc,lk->ilc", matrix, face.astype(np.float64), matrix)
    np.testing.assert_allclose(by_matrix, resize_float(face, (16, 16)), atol=1e-6)
    assert not matrix.flags.writeable


@pytest.mark.parametrize("model", ["dic", "sparnet"])
def test_back_projection_makes_the_golden_networks_agree_with_the_photo(
    request: pytest.FixtureRequest, group_crops: list[FaceCrop], model: str
) -> None:
    from dicsr.weights import load_model

    folder: Path = request.getfixturevalue(f"{model}_model_dir")
    adapter = load_model(folder)
    crops = group_crops[:3]  # a DIC face costs seconds on a CPU
    batch = torch.from_numpy(np.stack([crop.lr for crop in crops])).permute(0, 3, 1, 2)
    restored = adapter(batch).images.permute(0, 2, 3, 1).numpy()
    for face, crop in zip(restored, crops, strict=True):
        consistent = back_project(face, crop.lr)
        before, after = lr_disagreement(face, crop.lr), lr_disagreement(consistent, crop.lr)
        # random weights: the raw outputs disagree with the photo by many 8-bit levels
        assert before * 255 > 3
        assert after * 255 < 0.5 and after < 0.05 * before
        assert consistent.dtype == np.float32 and consistent.min() >= 0 and consistent.max() <= 1
        # the true face agrees with the LR, so the projection can only move closer to it
        assert _psnr(consistent, crop.hr) > _psnr(face, crop.hr)


def _band_energy(image: np.ndarray, low: float, high: float) -> float:
    """Spectral energy of ``image`` between ``low`` and ``high`` cycles/px (max-norm of the
    frequency), summed over channels."""
    frequency = np.abs(np.fft.fftfreq(image.shape[0]))
    band = np.maximum(frequency[:, None], frequency[None, :])
    spectrum = np.abs(np.fft.fft2(image.astype(np.float64), axes=(0, 1))) ** 2
    return float(spectrum[(band >= low) & (band <= high)].sum())


def test_back_projection_corrects_the_low_pass_and_keeps_the_detail(group_crops) -> None:
    lr_nyquist = 0.5 / 8  # cycles per HR pixel: the finest detail a 16-px input can hold
    rng = np.random.default_rng(1)
    ys, xs = np.mgrid[0:128, 0:128] / 127.0
    for crop in group_crops:
        # A restored face with what networks get wrong and right: a smooth colour cast (wrong)
        # and fine detail above twice the LR Nyquist frequency (what super-resolution adds).
        cast = np.stack([0.05 + 0.03 * xs, -0.02 + 0 * xs, -0.04 * ys], axis=-1)
        noise = np.fft.fft2(rng.normal(0.0, 0.03, (128, 128, 3)), axes=(0, 1))
        frequency = np.abs(np.fft.fftfreq(128))
        noise[np.maximum(frequency[:, None], frequency[None, :]) <= 2 * lr_nyquist] = 0
        detail = np.real(np.fft.ifft2(noise, axes=(0, 1)))
        face = np.clip(crop.hr + cast + detail, 0, 1).astype(np.float32)
        consistent = back_project(face, crop.lr)
        # the cast is gone: the mean colour is the photo's again, the LR is reproduced
        assert np.abs((face - crop.hr).mean((0, 1))).max() * 255 > 5
        assert np.abs((consistent - crop.hr).mean((0, 1))).max() * 255 < 0.5
        assert lr_disagreement(consistent, crop.lr) * 255 < 0.05
        # the change lies in the low band; the detail band keeps its energy
        change = consistent - face
        assert _band_energy(change, 0, lr_nyquist) > 0.9 * _band_energy(change, 0, 0.5)
        detail_before, detail_after = (_band_energy(f, 2 * lr_nyquist, 0.5) for f in (face, consistent))
        assert abs(detail_after / detail_before - 1) < 0.01


def test_without_clipping_the_part_the_downsampling_cannot_see_is_kept_exactly(group_crops) -> None:
    crop = group_crops[0]
    # a face with fine noise and a tone shift, mid-grey enough that no step leaves [0, 1]
    noise = np.random.default_rng(2).normal(0.0, 0.03, (128, 128, 3))
    face = (0.3 + 0.4 * crop.hr + noise).astype(np.float32)
    lr = (0.33 + 0.4 * crop.lr).astype(np.float32)
    consistent = back_project(face, lr, iterations=1)
    assert consistent.min() > 0 and consistent.max() < 1  # clipping never acted
    down = downsampling_matrix(128, 16)
    # the null space of the downsampling: I − Rᵀ(RRᵀ)⁻¹R along each axis
    along_axis = np.eye(128) - down.T @ np.linalg.solve(down @ down.T, down)
    unseen = [np.einsum("ij,jkc,lk->ilc", along_axis, f.astype(np.float64), along_axis)
              for f in (face, consistent)]
    np.testing.assert_allclose(unseen[1], unseen[0], atol=1e-5)
    assert lr_disagreement(consistent, lr) < 1e-6


def test_a_face_that_already_agrees_is_left_alone() -> None:
    # The photo's own pixels agree with its LR, also at a crop reaching outside the photo, where
    # the black border makes the clipped LR 0 next to negative bicubic overshoot.
    rgb = load_image(shared_path("faces", *GROUP.split("/"))).rgb
    for box in ((200.0, 40.0, 264.0, 104.0), (-30.0, -20.0, 50.0, 60.0)):
        crop = crop_face(rgb, box, convention="landmark_square", lr_size=16, hr_size=128)
        assert lr_disagreement(crop.hr, crop.lr) < 1e-6
        np.testing.assert_allclose(back_project(crop.hr, crop.lr), crop.hr, atol=1e-4)


def test_same_size_networks_have_nothing_to_agree_with() -> None:
    face = np.random.default_rng(3).random((64, 64, 3), dtype=np.float32)
    lr = np.random.default_rng(4).random((64, 64, 3), dtype=np.float32)
    np.testing.assert_array_equal(back_project(face, lr), face)


def test_bad_inputs_are_refused() -> None:
    face, lr = np.zeros((128, 128, 3), np.float32), np.zeros((16, 16, 3), np.float32)
    with pytest.raises(InvalidInputError, match="face"):
        back_project(np.zeros((128, 64, 3), np.float32), lr)
    with pytest.raises(InvalidInputError, match="channels"):
        back_project(face, np.zeros((16, 16, 1), np.float32))
    with pytest.raises(InvalidInputError, match="lr"):
        lr_disagreement(face, np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(InvalidInputError, match="iterations"):
        back_project(face, lr, iterations=0)
