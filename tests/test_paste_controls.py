"""How a restored face goes back: strength, per-face masks, luminance only, and the oracle check.

``paste_faces`` with its controls, on real photos and real landmarks. The oracle network returns
the photo's own pixels (the crop's HR face, which its LR is made from): whatever the options, the
pasted photo must then still be the plain upscale.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from _support import shared_path

from dicsr.errors import InvalidInputError
from dicsr.face.consistency import back_project
from dicsr.face.crop import apply_affine, box_affine, crop_face, landmark_square_from_points68
from dicsr.face.mask import landmark_mask, mask_for_face
from dicsr.face.paste import PasteOptions, face_to_paste, paste_faces
from dicsr.image import Background, load_image, to_luma, to_uint8
from dicsr.image._background import upscale_background, upscale_background_8bit

GROUP = "dlib/examples/faces/2008_002470.jpg"  # six annotated faces of ~50 px
SCALE = 2.0
STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return load_image(shared_path("faces", *GROUP.split("/"))).rgb


@pytest.fixture(scope="module")
def annotated() -> list[np.ndarray]:
    faces = json.loads(shared_path("faces", "landmarks68.json").read_text())[GROUP]
    return [np.asarray(points, dtype=np.float64) for points in faces]


@pytest.fixture(scope="module")
def scene(photo, annotated) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(restored face, affine, landmarks in face coordinates)`` per face: the DIC training crop
    with noise and a colour cast, i.e. a face that differs from the photo everywhere."""
    rng = np.random.default_rng(5)
    scene = []
    for points in annotated:
        box = landmark_square_from_points68(points)
        crop = crop_face(photo, box, convention="landmark_square", lr_size=16, hr_size=128)
        face = np.clip(crop.hr * [1.1, 0.9, 0.8] + 0.2 * (rng.random(crop.hr.shape) - 0.5), 0, 1)
        scene.append((face.astype(np.float32), crop.affine, apply_affine(crop.affine, points)))
    return scene


def _faces(scene) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(face, affine) for face, affine, _ in scene]


# --- strength -------------------------------------------------------------------------------------


def test_strength_zero_is_the_plain_upscale_bit_for_bit(photo, scene) -> None:
    masks = [landmark_mask(points, 128) for _, _, points in scene]
    for background in (upscale_background_8bit(to_uint8(photo), SCALE), upscale_background(photo, SCALE)):
        for options in ({}, {"masks": masks, "luminance_only": True}):
            out = paste_faces(background, _faces(scene), upscale=SCALE, strength=0.0, **options)
            assert out.dtype == background.dtype
            np.testing.assert_array_equal(out, background)


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_strength_zero_photo_result_is_the_plain_upscale(photo, scene, bit_depth: int) -> None:
    # Through the pipeline's paste stage: Background → paste_faces → result, 8- and 16-bit photos.
    samples = to_uint8(photo) if bit_depth == 8 else np.rint(photo * 65535).astype(np.uint16)
    plain = Background.for_photo(load_image(samples), SCALE).result()
    background = Background.for_photo(load_image(samples), SCALE)
    paste_faces(background.pixels, _faces(scene), upscale=SCALE, strength=0.0, in_place=True)
    pasted = background.result()
    assert pasted.dtype == samples.dtype
    np.testing.assert_array_equal(pasted, plain)
    # and at full strength the faces are there
    full = Background.for_photo(load_image(samples), SCALE)
    paste_faces(full.pixels, _faces(scene), upscale=SCALE, in_place=True)
    assert np.any(full.result() != plain, axis=-1).mean() > 0.02


def test_strength_one_is_the_default_paste(photo, scene) -> None:
    background = upscale_background_8bit(to_uint8(photo), SCALE)
    np.testing.assert_array_equal(
        paste_faces(background, _faces(scene), upscale=SCALE, strength=1.0),
        paste_faces(background, _faces(scene), upscale=SCALE),
    )


@pytest.mark.parametrize("kind", ["uint8", "float32"])
def test_the_pasted_difference_grows_with_strength(photo, scene, kind: str) -> None:
    if kind == "uint8":
        background = upscale_background_8bit(to_uint8(photo), SCALE).astype(np.float64)
        as_input = background.astype(np.uint8)
    else:
        as_input = upscale_background(photo, SCALE)
        background = as_input.astype(np.float64)
    masks = [mask_for_face(128, points) for _, _, points in scene]
    differences = [
        np.abs(paste_faces(as_input, _faces(scene), upscale=SCALE, strength=s, masks=masks) - background)
        for s in STRENGTHS
    ]
    rounding = 0 if kind == "uint8" else 1e-6  # float32 arithmetic of the blend
    for weaker, stronger in itertools.pairwise(differences):
        assert np.all(stronger >= weaker - rounding)  # at every sample, overlapping faces included
        assert stronger.sum() > weaker.sum()
    # the opacity is strength × mask (white faces on black, one face at a time)
    for (face, affine), mask in zip(_faces(scene), masks, strict=True):
        white = [(np.ones_like(face), affine)]
        black = np.zeros((*background.shape[:2], 3), np.float32)
        full = paste_faces(black, white, upscale=SCALE, masks=[mask])
        for strength in STRENGTHS:
            weakened = paste_faces(black, white, upscale=SCALE, masks=[mask], strength=strength)
            np.testing.assert_allclose(weakened, strength * full, atol=1e-6)


# --- masks ------------------------------------------------------------------------------------------


def test_a_mask_array_is_warped_with_its_face(photo, scene) -> None:
    background = upscale_background(photo, SCALE)
    faces = _faces(scene)
    # the rounded square sampled at face pixel centres pastes like the analytic default
    squares = [mask_for_face(128)] * len(faces)
    analytic = paste_faces(background, faces, upscale=SCALE)
    sampled = paste_faces(background, faces, upscale=SCALE, masks=squares)
    assert np.abs(sampled - analytic).max() < 2e-3
    # an empty mask pastes nothing; outside the landmark masks the photo is untouched
    empty = [np.zeros((128, 128), np.float32)] * len(faces)
    nothing = paste_faces(background, faces, upscale=SCALE, masks=empty)
    np.testing.assert_array_equal(nothing, background)
    shaped = paste_faces(background, faces, upscale=SCALE, masks=[landmark_mask(p, 128) for _, _, p in scene])
    white = [(np.ones_like(face), affine) for face, affine in faces]
    opacity = paste_faces(np.zeros_like(background), white, upscale=SCALE,
                          masks=[landmark_mask(p, 128) for _, _, p in scene])[..., 0]
    np.testing.assert_array_equal(shaped[opacity == 0], background[opacity == 0])
    assert (opacity == 1).mean() > 0.02 and np.any(shaped[opacity > 0] != background[opacity > 0])
    # the face-shaped masks cover less than the squares
    square_opacity = paste_faces(np.zeros_like(background), white, upscale=SCALE)[..., 0]
    assert opacity.sum() < 0.95 * square_opacity.sum()


def test_bad_masks_and_strengths_are_refused(photo, scene) -> None:
    background = upscale_background(photo, SCALE)
    faces = _faces(scene)[:1]
    with pytest.raises(InvalidInputError, match="strength"):
        paste_faces(background, faces, upscale=SCALE, strength=1.5)
    with pytest.raises(InvalidInputError, match="strength"):
        paste_faces(background, faces, upscale=SCALE, strength=True)
    with pytest.raises(InvalidInputError, match="2 masks for 1 faces"):
        paste_faces(background, faces, upscale=SCALE, masks=[None, None])
    with pytest.raises(InvalidInputError, match="128×128"):
        paste_faces(background, faces, upscale=SCALE, masks=[np.ones((64, 64), np.float32)])
    with pytest.raises(InvalidInputError, match="finite"):
        paste_faces(background, faces, upscale=SCALE, masks=[np.full((128, 128), np.nan, np.float32)])


# --- luminance only ---------------------------------------------------------------------------------


def _chroma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 colour differences B − Y and R − Y (Cb and Cr up to their scale factors)."""
    luma = rgb.astype(np.float64) @ [0.299, 0.587, 0.114]
    return np.stack([rgb[..., 2] - luma, rgb[..., 0] - luma], axis=-1)


def test_luminance_only_keeps_the_photos_colour_and_takes_the_faces_luma(photo, scene) -> None:
    # A sepia-toned photo: a colour network would replace its tint with its own colours.
    sepia = np.clip(to_luma(photo)[..., None] * [1.07, 0.74, 0.43] + [0.1, 0.1, 0.1], 0, 1).astype(np.float32)
    background = upscale_background(sepia, SCALE)
    faces = _faces(scene)
    colour = paste_faces(background, faces, upscale=SCALE)
    luma_only = paste_faces(background, faces, upscale=SCALE, luminance_only=True)
    pasted = np.any(colour != background, axis=-1)
    unclipped = pasted & (luma_only.min(-1) > 0) & (luma_only.max(-1) < 1)
    unclipped &= (colour.min(-1) > 0) & (colour.max(-1) < 1)
    assert unclipped.mean() > 0.05
    # the photo's chroma, the colour paste's luma
    np.testing.assert_allclose(_chroma(luma_only)[unclipped], _chroma(background)[unclipped], atol=2e-5)
    # (except the rare pixel where the bicubic warp rings the face's luma below 0: it is clipped)
    luma_error = np.abs(to_luma(luma_only) - to_luma(colour))[unclipped]
    assert np.mean(luma_error > 2e-5) < 1e-4 and luma_error.max() < 2e-3
    # whereas the colour paste brings the face's colours
    assert np.abs(_chroma(colour) - _chroma(background))[pasted].mean() > 0.02
    np.testing.assert_array_equal(luma_only[~pasted], background[~pasted])


def test_luminance_only_on_a_gray_photo_is_the_gray_paste(photo, scene) -> None:
    gray = upscale_background_8bit(to_uint8(to_luma(photo))[..., None], SCALE)
    np.testing.assert_array_equal(
        paste_faces(gray, _faces(scene), upscale=SCALE, luminance_only=True),
        paste_faces(gray, _faces(scene), upscale=SCALE),
    )


# --- the oracle: a network that returns the photo's own pixels ----------------------------------


@pytest.fixture(scope="module")
def oracle_boxes(photo, annotated) -> list[tuple[tuple[float, float, float, float], np.ndarray]]:
    """Each face's box, 64 px on pixel edges around its DIC box, and its landmarks in face
    coordinates: at ×2 the 128-px face frame is the output grid itself, so the paste adds no
    resampling of its own."""
    boxes = []
    for points in annotated:
        x0, y0, x1, y1 = landmark_square_from_points68(points)
        left, top = round((x0 + x1) / 2 - 32), round((y0 + y1) / 2 - 32)
        box = (left - 0.5, top - 0.5, left + 63.5, top + 63.5)
        boxes.append((box, apply_affine(box_affine(box, 128), points)))
    return boxes


OPTIONS = [
    {"strength": 1.0},
    {"strength": 0.5},
    {"back_project": True},
    {"landmark_mask": True},
    {"luminance_only": True},
    {"back_project": True, "landmark_mask": True, "luminance_only": True, "strength": 0.7},
]


@pytest.mark.parametrize("bit_depth", [8, 16])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "+".join(f"{k}={v}" for k, v in o.items()))
def test_an_oracle_network_gives_back_the_plain_upscale_with_every_option(
    photo, oracle_boxes, bit_depth: int, options: dict
) -> None:
    """The oracle restores each face as the plain upscale's own pixels (Pillow's 8-bit resize for
    an 8-bit photo, the float resize for a 16-bit one) in the face frame; the network input is
    the crop the pipeline cuts from the photo, as always."""
    samples = to_uint8(photo) if bit_depth == 8 else np.rint(photo * 65535).astype(np.uint16)
    loaded = load_image(samples)
    plain = Background.for_photo(loaded, SCALE)
    top = 255.0 if bit_depth == 8 else 1.0  # the 8-bit background holds samples, the float one [0, 1]
    faces, masks = [], []
    for box, landmarks in oracle_boxes:
        crop = crop_face(loaded.rgb, box, convention="landmark_square", lr_size=16, hr_size=128)
        left, upper = round((box[0] + 0.5) * SCALE), round((box[1] + 0.5) * SCALE)
        restored = (plain.pixels[upper : upper + 128, left : left + 128] / top).astype(np.float32)
        if options.get("back_project"):
            restored = back_project(restored, crop.lr)
        faces.append((restored, crop.affine))
        masks.append(mask_for_face(128, landmarks) if options.get("landmark_mask") else None)
    expected = plain.result().astype(np.int64)
    background = Background.for_photo(loaded, SCALE)
    paste_faces(background.pixels, faces, upscale=SCALE, masks=masks, in_place=True,
                strength=options.get("strength", 1.0), luminance_only=options.get("luminance_only", False))
    assert np.abs(background.result().astype(np.int64) - expected).max() <= 1
    # the faces were pasted: opaque over a good part of the photo
    white = [(np.ones_like(face), affine) for face, affine in faces]
    opacity = paste_faces(np.zeros((*expected.shape[:2], 3), np.float32), white, upscale=SCALE, masks=masks)
    assert (opacity == 1).mean() > 0.05


# --- the options and the per-face preparation the pipeline uses -----------------------------------


def test_paste_options_are_checked_and_overridden_per_call() -> None:
    options = PasteOptions()
    assert (options.strength, options.back_projection, options.landmark_mask, options.luminance_only) == (
        1.0, True, True, False,
    )
    call = options.overridden(strength=0.3, luminance_only=True)
    assert (call.strength, call.back_projection, call.landmark_mask, call.luminance_only) == (
        0.3, True, True, True,
    )
    assert options.overridden() == options
    assert options.overridden(back_projection=False).back_projection is False
    with pytest.raises(InvalidInputError, match="strength"):
        PasteOptions(strength=-0.1)
    with pytest.raises(InvalidInputError, match="strength"):
        options.overridden(strength=float("nan"))
    with pytest.raises(InvalidInputError, match="luminance_only"):
        PasteOptions(luminance_only="yes")  # type: ignore[arg-type]


def test_face_to_paste_back_projects_and_picks_the_mask_by_the_landmarks(scene, photo, annotated) -> None:
    face, _, landmarks = scene[0]
    box = landmark_square_from_points68(annotated[0])
    crop = crop_face(photo, box, convention="landmark_square", lr_size=16, hr_size=128)
    shaped = face_to_paste(face, crop.lr, landmarks, PasteOptions())
    np.testing.assert_array_equal(shaped.image, back_project(face, crop.lr))
    np.testing.assert_array_equal(shaped.mask, landmark_mask(landmarks, 128))
    assert shaped.paste_mask is shaped.mask
    # no landmarks, another landmark count, or the option off: the rounded square, pasted analytically
    for points, options in ((None, PasteOptions()), (landmarks[:5], PasteOptions()),
                            (landmarks, PasteOptions(landmark_mask=False, back_projection=False))):
        square = face_to_paste(face, crop.lr, points, options)
        np.testing.assert_array_equal(square.mask, mask_for_face(128))
        assert square.paste_mask is None
    np.testing.assert_array_equal(square.image, face)  # back_projection=False: the network's face
