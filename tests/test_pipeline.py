"""FaceSuperResolver end to end: real photos, real RetinaFace weights, networks converted from the
golden (seeded random) official checkpoints.

The golden weights are random, so the restored faces are not meaningful pictures; what is tested is
what a user relies on regardless of the weights: which faces are found, where each face goes, the
sizes, types and channels of every output, that pixels away from faces are untouched, and that the
network output placed in the result is exactly the adapter's (made to agree with its input).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _support import shared_path
from PIL import Image

from dicsr import EnhanceResult, FaceSuperResolver
from dicsr.errors import InvalidInputError, UnsupportedDeviceError, UnsupportedDtypeError
from dicsr.face.crop import apply_affine
from dicsr.image import load_image
from dicsr.image._background import upscale_background
from dicsr.pipeline import DetectorSpec, SelectionPolicy

TWO_PEOPLE = ("face_recognition", "examples", "two_people.jpg")
GROUP_OF_SIX = ("dlib", "examples", "faces", "2008_002470.jpg")
CAT = ("scikit-image", "src", "_skimage2", "data", "chelsea.png")


#: These photos' faces are larger than a 16-px model restores by default (its crop at most 32 px):
#: the tests here exercise restoring them (tests/test_face_selection_pipeline.py checks the default).
EVERY_SIZE = SelectionPolicy(all_sizes=True)


def photo(*parts: str) -> Path:
    return shared_path("faces", *parts)


@pytest.fixture(scope="module")
def sparnet_sr(sparnet_model_dir: Path, detector_weights: Path) -> FaceSuperResolver:
    return FaceSuperResolver.from_pretrained(
        sparnet_model_dir, device="cpu", detector_weights=detector_weights, upscale=2, selection=EVERY_SIZE
    )


@pytest.fixture(scope="module")
def dic_sr(dic_model_dir: Path, detector_weights: Path) -> FaceSuperResolver:
    return FaceSuperResolver.from_pretrained(dic_model_dir, device="cpu", detector_weights=detector_weights,
                                             selection=EVERY_SIZE)


@pytest.fixture(scope="module")
def small_two_people() -> Image.Image:
    """two_people.jpg at a quarter size: faces of ~50 px, as in the photos 8x face SR is for."""
    image = Image.open(photo(*TWO_PEOPLE)).convert("RGB")
    return image.resize((image.width // 4, image.height // 4), Image.BICUBIC)


@pytest.fixture(scope="module")
def dic_result(dic_sr: FaceSuperResolver, small_two_people: Image.Image) -> EnhanceResult:
    return dic_sr.enhance(small_two_people, return_steps=True)


# --- DIC: the flagship path ----------------------------------------------------------------------


def test_dic_restores_both_faces_at_the_models_scale(dic_result: EnhanceResult, small_two_people) -> None:
    assert dic_result.num_faces == 2
    assert dic_result.upscale == 8.0  # default: the model's own scale
    assert dic_result.input_size == small_two_people.size
    assert isinstance(dic_result.image, Image.Image)
    assert dic_result.image.size == (small_two_people.width * 8, small_two_people.height * 8)
    for face in dic_result.faces:
        assert isinstance(face.image, Image.Image) and face.image.size == (128, 128)
        assert face.lr.shape == (16, 16, 3) and face.lr.dtype == np.float32
        assert face.score > 0.9
        assert len(face.step_images) == 4 and face.step_images[-1].shape == (128, 128, 3)


def test_dic_face_is_the_adapters_output_for_its_crop(dic_sr: FaceSuperResolver, dic_result) -> None:
    from dicsr.face.consistency import back_project

    face = dic_result.faces[0]
    direct = dic_sr.adapter(torch.from_numpy(face.lr).permute(2, 0, 1)[None]).images[0]
    # made to agree with the photo at low resolution (back-projection, on by default)
    expected = np.rint(back_project(direct.permute(1, 2, 0).numpy(), face.lr) * 255)
    # batch of two faces in the pipeline vs one here: float32 summation order differs (~1e-6)
    assert np.abs(np.asarray(face.image) - expected).max() <= 1
    # the last recurrent step is the network's face, before back-projection
    assert np.abs(face.step_images[-1] - direct.permute(1, 2, 0).numpy()).max() < 1e-5


def test_dic_faces_carry_the_mask_from_their_landmarks(dic_result: EnhanceResult) -> None:
    from dicsr.face.mask import mask_for_face

    for face in dic_result.faces:
        assert face.mask.shape == (128, 128) and face.mask.dtype == np.float32
        np.testing.assert_array_equal(face.mask, mask_for_face(128, face.landmarks))


def test_dic_landmarks_are_consistent_across_frames(dic_result: EnhanceResult) -> None:
    for face in dic_result.faces:
        assert face.landmarks.shape == (68, 2) and face.landmarks_official.shape == (68, 2)
        # sub-pixel refinement moves each point by at most half a heatmap cell (4 px / 2)
        assert np.abs(face.landmarks - face.landmarks_official).max() <= 2.0 + 1e-4
        assert (face.landmarks >= 0).all() and (face.landmarks <= 127).all()
        # photo coordinates: face frame -> input photo via the inverse affine, then the upscale
        inverse = np.linalg.inv(np.vstack([face.affine, [0, 0, 1]]))[:2]
        in_photo = apply_affine(inverse, face.landmarks)
        expected = (in_photo + 0.5) * dic_result.upscale - 0.5
        assert np.allclose(face.landmarks_in_output, expected)
        # every landmark lies inside the face's crop box, scaled into the output photo
        x0, y0, x1, y1 = ((np.array(face.box) + 0.5) * dic_result.upscale - 0.5).tolist()
        xs, ys = face.landmarks_in_output[:, 0], face.landmarks_in_output[:, 1]
        assert (xs >= x0 - 1).all() and (xs <= x1 + 1).all() and (ys >= y0 - 1).all() and (ys <= y1 + 1).all()


def test_dic_pixels_away_from_faces_are_the_upscaled_background(dic_result, small_two_people) -> None:
    # 8-bit photo: the background is Pillow's own 8-bit bicubic resize (docs/performance.md)
    background = small_two_people.resize(dic_result.image.size, Image.Resampling.BICUBIC)
    restored = np.asarray(dic_result.image).astype(np.int16)
    expected = np.asarray(background).astype(np.int16)
    away = np.ones(restored.shape[:2], dtype=bool)
    for face in dic_result.faces:
        x0, y0, x1, y1 = ((np.array(face.box) + 0.5) * 8 - 0.5).tolist()
        away[max(0, int(y0) - 1) : int(np.ceil(y1)) + 2, max(0, int(x0) - 1) : int(np.ceil(x1)) + 2] = False
    assert away.mean() > 0.5
    assert np.array_equal(restored[away], expected[away])
    # and inside the faces the picture did change
    assert np.abs(restored[~away] - expected[~away]).mean() > 1.0


# --- detection on real photos ----------------------------------------------------------------------


def test_group_photo_finds_every_face(sparnet_sr: FaceSuperResolver) -> None:
    result = sparnet_sr.enhance(photo(*GROUP_OF_SIX), paste_back=False)
    assert result.num_faces == 6
    assert result.image is None
    scores = [f.score for f in result.faces]
    assert scores == sorted(scores, reverse=True)
    for face in result.faces:
        assert face.landmarks is None  # SPARNet predicts no landmarks
        assert face.image.size == (128, 128)
        x0, y0, x1, y1 = face.detection_box
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        # the square crop box contains the detected face centre
        assert face.box[0] < cx < face.box[2] and face.box[1] < cy < face.box[3]


def test_face_selection_options(sparnet_sr: FaceSuperResolver) -> None:
    def selecting(**policy: object) -> FaceSuperResolver:
        # the same network and detector, composed with another selection policy
        return FaceSuperResolver(sparnet_sr.adapter, sparnet_sr.detector, upscale=1,
                                 selection=SelectionPolicy(all_sizes=True, **policy))

    assert selecting(max_faces=2).enhance(photo(*GROUP_OF_SIX)).num_faces == 2
    assert selecting(only_center_face=True).enhance(photo(*GROUP_OF_SIX)).num_faces == 1


def test_photo_without_faces_returns_the_upscaled_photo(sparnet_sr: FaceSuperResolver) -> None:
    result = sparnet_sr.enhance(photo(*CAT))
    source = Image.open(photo(*CAT))
    assert result.num_faces == 0
    assert result.image.size == (source.width * 2, source.height * 2)


def test_aligned_input_skips_detection(sparnet_sr: FaceSuperResolver) -> None:
    face = Image.open(photo("GFPGAN", "inputs", "cropped_faces", "Adele_crop.png")).convert("RGB")
    tiny = face.resize((16, 16), Image.BICUBIC)
    result = sparnet_sr.enhance(np.asarray(tiny), aligned=True, upscale=8)
    assert result.num_faces == 1
    only = result.faces[0]
    assert only.detection_box is None and only.points5 is None and only.score == 1.0
    assert isinstance(only.image, np.ndarray) and only.image.shape == (128, 128, 3)
    assert result.image.shape == (128, 128, 3) and result.image.dtype == np.uint8


def test_batched_chunks_give_the_same_faces(sparnet_model_dir: Path, detector_weights: Path) -> None:
    common = {"device": "cpu", "detector_weights": detector_weights, "upscale": 1, "selection": EVERY_SIZE}
    one = FaceSuperResolver.from_pretrained(sparnet_model_dir, batch_size=1, **common)
    many = FaceSuperResolver.from_pretrained(sparnet_model_dir, batch_size=16, **common)
    one, many = one.enhance(photo(*GROUP_OF_SIX)), many.enhance(photo(*GROUP_OF_SIX))
    assert one.num_faces == many.num_faces == 6
    for a, b in zip(one.faces, many.faces, strict=True):
        assert np.abs(np.asarray(a.image).astype(int) - np.asarray(b.image).astype(int)).max() <= 1


# --- image types ------------------------------------------------------------------------------------


def test_numpy_bgr_in_gives_numpy_bgr_out(sparnet_sr: FaceSuperResolver, small_two_people) -> None:
    rgb = np.asarray(small_two_people)
    from_rgb = sparnet_sr.enhance(rgb)
    from_bgr = sparnet_sr.enhance(np.ascontiguousarray(rgb[..., ::-1]), channel_order="bgr")
    assert from_bgr.image.dtype == np.uint8
    assert from_bgr.image.shape == (rgb.shape[0] * 2, rgb.shape[1] * 2, 3)
    assert np.array_equal(from_bgr.image[..., ::-1], from_rgb.image)


def test_alpha_and_16_bit_survive(sparnet_sr: FaceSuperResolver, small_two_people) -> None:
    rgb16 = (np.asarray(small_two_people).astype(np.uint16) * 257)
    alpha16 = np.full((*rgb16.shape[:2], 1), 40000, dtype=np.uint16)
    alpha16[:, : rgb16.shape[1] // 3] = 65535
    result = sparnet_sr.enhance(np.concatenate([rgb16, alpha16], axis=2))
    out = result.image
    assert out.dtype == np.uint16 and out.shape == (rgb16.shape[0] * 2, rgb16.shape[1] * 2, 4)
    assert result.num_faces == 2
    # 16-bit precision is kept: values that are not multiples of 257 appear
    assert np.count_nonzero(out[..., :3] % 257) > out[..., :3].size // 2
    # alpha is carried through (the flat part stays exactly flat)
    assert np.all(out[:, -10:, 3] == 40000)


def test_grayscale_and_exif_rotated_inputs(sparnet_sr: FaceSuperResolver) -> None:
    rotated = photo("Pillow", "Tests", "images", "hopper_orientation_6.jpg")
    raw = Image.open(rotated)
    result = sparnet_sr.enhance(rotated)
    # EXIF orientation 6 = rotated 90 degrees: width and height swap
    assert result.input_size == (raw.height, raw.width)
    assert result.image.size == (raw.height * 2, raw.width * 2)
    gray = sparnet_sr.enhance(Image.open(photo(*TWO_PEOPLE)).convert("L").resize((281, 165)))
    assert gray.image.mode == "L" and gray.num_faces == 2


def test_tensor_in_tensor_out(sparnet_sr: FaceSuperResolver, small_two_people) -> None:
    tensor = torch.from_numpy(np.array(small_two_people)).permute(2, 0, 1).float() / 255
    result = sparnet_sr.enhance(tensor, paste_back=True)
    assert isinstance(result.image, torch.Tensor)
    assert result.image.shape == (3, tensor.shape[1] * 2, tensor.shape[2] * 2)
    assert isinstance(result.faces[0].image, torch.Tensor)


# --- options and errors --------------------------------------------------------------------------------


def test_upscale_is_capped_for_huge_outputs(sparnet_model_dir: Path, detector_weights: Path) -> None:
    capped = FaceSuperResolver.from_pretrained(
        sparnet_model_dir, device="cpu", detector_weights=detector_weights, max_output_pixels=1_000_000
    )
    result = capped.enhance(photo(*CAT))
    assert result.upscale < 8
    assert result.image.width * result.image.height <= 1_000_000 * 1.01


def test_bad_options_are_typed_errors(sparnet_model_dir: Path) -> None:
    with pytest.raises(InvalidInputError):
        FaceSuperResolver.from_pretrained(sparnet_model_dir, detector=DetectorSpec(score_threshold=2.0))
    with pytest.raises(InvalidInputError):
        FaceSuperResolver.from_pretrained(sparnet_model_dir, device="cpu", batch_size=0)
    with pytest.raises(UnsupportedDtypeError):
        FaceSuperResolver.from_pretrained(sparnet_model_dir, device="cpu", dtype="float16")
    with pytest.raises(UnsupportedDtypeError):
        FaceSuperResolver.from_pretrained(sparnet_model_dir, device="cpu", dtype="int8")
    if not torch.cuda.is_available():
        with pytest.raises(UnsupportedDeviceError, match="CUDA is not available"):
            FaceSuperResolver.from_pretrained(sparnet_model_dir, device="cuda")


def test_bfloat16_on_cpu_is_close_to_float32(sparnet_model_dir: Path, sparnet_sr: FaceSuperResolver) -> None:
    bf16 = FaceSuperResolver.from_pretrained(sparnet_model_dir, device="cpu", dtype="bf16", upscale=1)
    face = np.asarray(Image.open(photo("GFPGAN", "inputs", "cropped_faces", "Adele_crop.png"))
                      .convert("RGB").resize((16, 16), Image.BICUBIC))
    low = np.asarray(bf16.enhance(face, aligned=True).faces[0].image).astype(int)
    full = np.asarray(sparnet_sr.enhance(face, aligned=True).faces[0].image).astype(int)
    assert bf16.dtype == torch.bfloat16
    assert np.abs(low - full).mean() < 3 and np.abs(low - full).max() < 30


def test_to_returns_self_and_moves_the_network(sparnet_model_dir: Path) -> None:
    sr = FaceSuperResolver.from_pretrained(sparnet_model_dir, device="auto")
    assert sr.device.type == ("cuda" if torch.cuda.is_available() else sr.device.type)
    assert sr.to("cpu", "bfloat16") is sr
    assert sr.dtype == torch.bfloat16
    assert next(sr.adapter.network.parameters()).dtype == torch.bfloat16


def test_refine_crop_recrops_from_dics_own_landmarks(dic_model_dir: Path, detector_weights: Path,
                                                      dic_result: EnhanceResult, small_two_people) -> None:
    """refine_crop: the training-style box of the first pass's landmarks becomes the crop."""
    from dicsr.face.crop import invert_affine, landmark_square_from_points68

    refined = FaceSuperResolver.from_pretrained(
        dic_model_dir, device="cpu", detector_weights=detector_weights, refine_crop=True, selection=EVERY_SIZE
    ).enhance(small_two_people)
    assert refined.num_faces == dic_result.num_faces
    moved = 0
    for first, second in zip(dic_result.faces, refined.faces, strict=True):
        assert second.detection_box == first.detection_box
        landmarks_in_photo = apply_affine(invert_affine(first.affine), first.landmarks)
        training_box = np.array(landmark_square_from_points68(landmarks_in_photo))
        side = first.box[2] - first.box[0]
        if np.abs(training_box - np.array(first.box)).max() > 0.1 * side:
            moved += 1
            np.testing.assert_allclose(second.box, training_box, rtol=0, atol=1e-6)
            assert not np.array_equal(np.asarray(second.image), np.asarray(first.image))
        else:
            assert second.box == first.box
    # golden (random) weights put the landmarks far from the calibrated box: the refinement runs
    assert moved >= 1


# --- paste-back of 8-bit photos: Pillow's own background, faces blended region by region -----------


def _opacity_map(result: EnhanceResult, shape: tuple[int, ...], hr_size: int) -> np.ndarray:
    """Combined opacity 1 − Π(1 − mᵢ) of the result's faces at every output pixel (white faces
    pasted on black with the documented geometry: each face's own mask when its network predicts
    landmarks, else the rounded square, evaluated exactly)."""
    from dicsr.face.paste import paste_faces

    white = [(np.ones((hr_size, hr_size, 3), np.float32), face.affine) for face in result.faces]
    masks = [face.mask if face.landmarks is not None else None for face in result.faces]
    black = np.zeros((*shape[:2], 3), np.float32)
    return paste_faces(black, white, upscale=result.upscale, masks=masks)[..., 0]


def test_8bit_photo_background_is_pillows_own_resize(dic_result: EnhanceResult, small_two_people) -> None:
    restored = np.asarray(dic_result.image)
    expected = np.asarray(small_two_people.resize(dic_result.image.size, Image.Resampling.BICUBIC))
    opacity = _opacity_map(dic_result, restored.shape, 128)
    assert (opacity == 0).mean() > 0.5 and (opacity == 1).mean() > 0.01
    np.testing.assert_array_equal(restored[opacity == 0], expected[opacity == 0])
    # and the faces did change the picture
    assert np.abs(restored[opacity == 1].astype(int) - expected[opacity == 1]).mean() > 1.0


def _pillow_background(rgb: np.ndarray, scale: float) -> np.ndarray:
    """Pillow's 8-bit resize of the photo, as floats: a ``bg_upsampler`` for the float path."""
    from dicsr.image import to_uint8
    from dicsr.image._background import upscale_background_8bit

    return upscale_background_8bit(to_uint8(rgb), scale) / np.float32(255.0)


@pytest.fixture(scope="module")
def sparnet_float_path(sparnet_model_dir: Path, detector_weights: Path) -> FaceSuperResolver:
    """The float paste path fed Pillow's 8-bit background through a user ``bg_upsampler``."""
    return FaceSuperResolver.from_pretrained(
        sparnet_model_dir, device="cpu", detector_weights=detector_weights, upscale=2,
        bg_upsampler=_pillow_background, selection=EVERY_SIZE,
    )


@pytest.mark.parametrize("kind", ["rgb", "gray", "bgra"])
def test_8bit_paste_equals_the_float_path_on_the_same_background(
    sparnet_sr: FaceSuperResolver, sparnet_float_path: FaceSuperResolver, small_two_people, kind: str
) -> None:
    # The 8-bit path blends each face region in float and quantises it: the same pixels as the
    # float path given the same background (gray: the luma of a float RGB blend, to 1 level).
    order = "bgr" if kind == "bgra" else "rgb"
    if kind == "rgb":
        image = small_two_people
    elif kind == "gray":
        image = small_two_people.convert("L")
    else:
        rgba = np.asarray(small_two_people.convert("RGBA")).copy()
        rgba[..., 3] = np.linspace(0, 255, rgba.shape[1]).astype(np.uint8)[None, :]
        image = np.ascontiguousarray(rgba[..., [2, 1, 0, 3]])
    fast = sparnet_sr.enhance(image, channel_order=order)
    reference = sparnet_float_path.enhance(image, channel_order=order)
    assert fast.num_faces == reference.num_faces == 2
    assert type(fast.image) is type(reference.image)
    if kind == "gray":
        assert fast.image.mode == reference.image.mode == "L"
    a, b = np.asarray(fast.image).astype(int), np.asarray(reference.image).astype(int)
    assert a.shape == b.shape
    difference = np.abs(a - b)
    assert difference.max() <= 1 and (difference == 0).mean() > 0.999
    if kind == "bgra":  # alpha: resized bicubic in float on both paths, never by the upsampler
        np.testing.assert_array_equal(a[..., 3], b[..., 3])
    # and the faces were pasted (the comparison is not between two unchanged backgrounds)
    opacity = _opacity_map(fast, a.shape, sparnet_sr.config.hr_size)
    background = _pillow_background(load_image(image, channel_order=order).rgb, 2.0)
    if kind != "gray":
        colour = a[..., 2::-1] if kind == "bgra" else a
        assert np.abs(colour[opacity == 1] - np.rint(background[opacity == 1] * 255)).mean() > 1.0


@pytest.mark.parametrize("upscale", [1.0, 1.5])
def test_8bit_background_at_other_scales(
    sparnet_sr: FaceSuperResolver, small_two_people, upscale: float
) -> None:
    result = sparnet_sr.enhance(np.asarray(small_two_people), upscale=upscale)
    out = result.image
    size = (round(small_two_people.width * upscale), round(small_two_people.height * upscale))
    assert out.shape == (size[1], size[0], 3) and out.dtype == np.uint8
    expected = np.asarray(small_two_people.resize(size, Image.Resampling.BICUBIC))
    if upscale == 1.0:
        np.testing.assert_array_equal(expected, np.asarray(small_two_people))  # Pillow: a plain copy
    outside = _opacity_map(result, out.shape, sparnet_sr.config.hr_size) == 0
    assert outside.mean() > 0.5
    np.testing.assert_array_equal(out[outside], expected[outside])


def test_16bit_photo_keeps_the_float_background(sparnet_sr: FaceSuperResolver, small_two_people) -> None:
    rgb8 = np.asarray(small_two_people).astype(np.uint16)
    rgb16 = rgb8 * 256 + np.random.default_rng(10).integers(0, 256, size=rgb8.shape, dtype=np.uint16)
    result = sparnet_sr.enhance(rgb16)
    out = result.image
    assert out.dtype == np.uint16 and result.num_faces == 2
    expected = np.rint(upscale_background(load_image(rgb16).rgb, 2.0) * 65535).astype(np.uint16)
    outside = _opacity_map(result, out.shape, sparnet_sr.config.hr_size) == 0
    assert outside.mean() > 0.5
    np.testing.assert_array_equal(out[outside], expected[outside])
    assert np.count_nonzero(out % 257) > out.size // 2  # 16-bit values, not 8-bit ones scaled up
