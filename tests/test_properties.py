"""Property-based tests (hypothesis) of input normalisation and paste-back geometry.

What a user relies on, for *every* size, mode, dtype, layout and channel order, not just the
handful of files the example-based tests use:

* ``load_image`` -> ``to_output`` gives back the same type family, size, dtype and layout; alpha is
  kept; 16-bit samples are not quantised to 8 bits; ``channel_order="bgr"`` is honoured both ways.
* ``paste_faces`` never changes a pixel outside every face's mask, composites overlapping faces with
  opacity ``1 - prod(1 - m_i)``, and the output is always ``upscaled_size``; cropping a face and
  pasting the unmodified crop back reproduces the photo inside the face.
* Points of a face (annotated 68 landmarks, RetinaFace's 5 points) land inside the face frame.
* Through the whole pipeline (real RetinaFace + golden SPARNet weights): output size, alpha and
  pixels away from the faces.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from _support import shared_path
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, ImageOps

from dicsr.face.crop import apply_affine, box_affine, crop_face, landmark_square_from_points68, square_box
from dicsr.face.detect import DetectedFace, FaceDetector
from dicsr.face.mask import rounded_square_mask
from dicsr.face.paste import paste_faces
from dicsr.image import load_image, to_output, to_uint8, upscaled_size
from dicsr.image._background import upscale_background, upscale_background_8bit

# Modest example counts: the whole file runs in well under a minute on two shared cores.
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOWER = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.function_scoped_fixture])

MAX_VALUE = {"uint8": 255, "uint16": 65535}


pytestmark = pytest.mark.usefixtures("one_intra_op_thread")


# --- numpy arrays ---------------------------------------------------------------------------------


@st.composite
def numpy_images(draw):
    dtype = draw(st.sampled_from(["uint8", "uint16", "float32"]))
    layout = draw(st.sampled_from(["HW", "HW1", "HW3", "HW4"]))
    height, width = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    shape = (height, width) if layout == "HW" else (height, width, int(layout[2:]))
    elements = st.floats(0.0, 1.0, width=32) if dtype == "float32" else None
    array = draw(hnp.arrays(np.dtype(dtype), shape, elements=elements))
    return array, layout, draw(st.sampled_from(["rgb", "bgr"]))


def _unit(array: np.ndarray) -> np.ndarray:
    scale = MAX_VALUE.get(str(array.dtype), 1)
    return array.astype(np.float64) / scale


@FAST
@given(numpy_images())
def test_numpy_round_trip_keeps_dtype_layout_alpha_depth_and_channel_order(case):
    array, layout, order = case
    loaded = load_image(array, channel_order=order)
    height, width = array.shape[:2]
    channels = 1 if layout == "HW" else array.shape[2]

    assert (loaded.height, loaded.width) == (height, width)
    assert loaded.rgb.shape == (height, width, 3) and loaded.rgb.dtype == np.float32
    assert loaded.bit_depth == {"uint8": 8, "uint16": 16, "float32": 32}[str(array.dtype)]
    planes = array.reshape(height, width, channels)
    if channels >= 3:
        colour = planes[..., 2::-1] if order == "bgr" else planes[..., :3]
        np.testing.assert_allclose(loaded.rgb, _unit(colour), rtol=0, atol=1e-7)
    else:
        np.testing.assert_allclose(loaded.rgb, np.repeat(_unit(planes), 3, axis=2), rtol=0, atol=1e-7)
    if array.dtype == np.uint16:
        # 16-bit precision is kept: every 16-bit code comes back, not just multiples of 257.
        expected = planes[..., 2::-1] if order == "bgr" and channels >= 3 else planes[..., :3]
        np.testing.assert_array_equal(np.rint(loaded.rgb[..., : expected.shape[2]] * 65535), expected)
    if channels == 4:
        assert loaded.alpha is not None
        np.testing.assert_allclose(loaded.alpha, _unit(planes[..., 3]), rtol=0, atol=1e-7)
    else:
        assert loaded.alpha is None

    out = to_output(loaded.rgb, loaded)
    assert isinstance(out, np.ndarray) and out.dtype == array.dtype and out.shape == array.shape
    if array.dtype == np.float32:
        # gray goes through BT.601 luma of (g, g, g): exact up to float32 rounding of the weights
        np.testing.assert_allclose(out, array, rtol=0, atol=1e-6)
    else:
        np.testing.assert_array_equal(out, array)


@FAST
@given(numpy_images(), st.integers(1, 40), st.integers(1, 40))
def test_numpy_output_at_another_size_keeps_type_and_bgr_order(case, out_h, out_w):
    array, layout, order = case
    loaded = load_image(array, channel_order=order)
    red = np.zeros((out_h, out_w, 3), dtype=np.float32)
    red[..., 0] = 1.0
    out = to_output(red, loaded)
    channels = 1 if layout == "HW" else array.shape[2]
    assert out.dtype == array.dtype
    assert out.shape == ((out_h, out_w) if layout == "HW" else (out_h, out_w, channels))
    top = MAX_VALUE.get(str(array.dtype), 1)
    if channels >= 3:
        red_index = 2 if order == "bgr" else 0
        assert (out[..., red_index] == top).all()
        assert (out[..., 2 - red_index] == 0).all() and (out[..., 1] == 0).all()
    if channels == 4:  # the alpha plane is resized to the new size, never dropped
        assert out.shape[2] == 4


# --- tensors --------------------------------------------------------------------------------------


@st.composite
def tensor_images(draw):
    dtype = draw(st.sampled_from(["uint8", "float32"]))
    channels = draw(st.sampled_from([1, 3, 4]))
    height, width = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    elements = st.floats(0.0, 1.0, width=32) if dtype == "float32" else None
    array = draw(hnp.arrays(np.dtype(dtype), (channels, height, width), elements=elements))
    tensor = torch.from_numpy(array)
    if draw(st.booleans()):
        tensor = tensor.unsqueeze(0)
    return tensor, draw(st.sampled_from(["rgb", "bgr"]))


@FAST
@given(tensor_images())
def test_tensor_round_trip_keeps_layout_dtype_device_and_values(case):
    tensor, order = case
    loaded = load_image(tensor, channel_order=order)
    chw = tensor[0] if tensor.ndim == 4 else tensor
    assert (loaded.height, loaded.width) == tuple(chw.shape[1:])
    assert (loaded.alpha is not None) == (chw.shape[0] == 4)
    if chw.shape[0] >= 3:  # bgr: the first stored channel is blue
        first = chw[2] if order == "bgr" else chw[0]
        scale = 255.0 if tensor.dtype == torch.uint8 else 1.0
        np.testing.assert_allclose(loaded.rgb[..., 0], first.numpy() / scale, rtol=0, atol=1e-7)
    out = to_output(loaded.rgb, loaded)
    assert isinstance(out, torch.Tensor)
    assert out.shape == tensor.shape and out.dtype == tensor.dtype and out.device == tensor.device
    if tensor.dtype == torch.uint8:
        assert torch.equal(out, tensor)
    else:
        torch.testing.assert_close(out, tensor, rtol=0, atol=1e-6)


# --- PIL modes and files --------------------------------------------------------------------------

# mode of the source -> mode of the output (type family: PIL in, PIL out)
OUTPUT_MODE = {"L": "L", "LA": "LA", "P": "RGB", "RGB": "RGB", "RGBA": "RGBA", "I;16": "I;16",
               "CMYK": "RGB", "1": "L"}


@st.composite
def pil_images(draw):
    mode = draw(st.sampled_from(sorted(OUTPUT_MODE)))
    height, width = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    elif mode == "1":
        image = Image.fromarray(rng.integers(0, 2, (height, width)).astype(bool))
    elif mode == "P":
        image = Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8), "P")
        image.putpalette(rng.integers(0, 256, 768, dtype=np.uint8).tobytes())
    else:
        channels = len(mode)
        samples = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
        image = Image.fromarray(samples[..., 0] if channels == 1 else samples, mode)
    assert image.mode == mode
    return image


def _expected_pixels(source: Image.Image) -> np.ndarray:
    if source.mode in ("P", "CMYK"):
        return np.asarray(source.convert("RGB"))
    if source.mode == "1":
        return np.asarray(source.convert("L"))
    return np.asarray(source)


@FAST
@given(pil_images(), st.sampled_from(["object", "file"]))
def test_pil_modes_round_trip_to_the_same_family(tmp_path_factory, image, via):
    if via == "file":
        path = tmp_path_factory.mktemp("modes") / ("image.tif" if image.mode == "CMYK" else "image.png")
        image.save(path)
        with Image.open(path) as reopened:
            source = reopened.copy()
        loaded = load_image(path)
    else:
        source = image
        loaded = load_image(image)
    assert (loaded.width, loaded.height) == image.size
    out = to_output(loaded.rgb, loaded)
    assert isinstance(out, Image.Image)
    assert out.mode == OUTPUT_MODE[image.mode] and out.size == image.size
    np.testing.assert_array_equal(np.asarray(out), _expected_pixels(source))
    if image.mode == "I;16":
        assert loaded.bit_depth == 16
        codes = np.asarray(source).astype(np.int64)
        np.testing.assert_array_equal(np.rint(loaded.rgb[..., 0] * 65535), codes)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 8), st.integers(2, 24), st.integers(2, 24), st.integers(0, 2**32 - 1))
def test_exif_orientation_is_applied_for_every_tag(tmp_path_factory, orientation, width, height, seed):
    samples = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path_factory.mktemp("exif") / "photo.jpg"
    Image.fromarray(samples).save(path, exif=exif, quality=95)
    loaded = load_image(path)
    with Image.open(path) as stored:
        upright = ImageOps.exif_transpose(stored)
    swapped = orientation in (5, 6, 7, 8)
    assert (loaded.width, loaded.height) == ((height, width) if swapped else (width, height))
    np.testing.assert_array_equal(loaded.to_uint8(), np.asarray(upright))
    out = to_output(loaded.rgb, loaded)
    assert out.size == upright.size and "exif" not in out.info  # pixels are upright: no tag needed


# --- paste-back geometry ----------------------------------------------------------------------------


def similarity_affine(center, side: float, angle: float, size: int) -> np.ndarray:
    """Source -> face map putting a ``side``-px square rotated by ``angle`` onto the ``size`` frame."""
    scale = size / side
    rotation = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    middle = (size - 1) / 2.0
    offset = np.array([middle, middle]) - rotation @ np.asarray(center, dtype=np.float64)
    return np.hstack([rotation, offset[:, None]])


def output_masks(shape, faces, upscale: float) -> list[np.ndarray]:
    """Each face's feathered mask at every output pixel, from the documented conventions only:
    ``x_src = (x_out + 0.5) / upscale - 0.5``, then the face's affine, then ``rounded_square_mask``."""
    height, width = shape[:2]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    src = np.stack([(xs + 0.5) / upscale - 0.5, (ys + 0.5) / upscale - 0.5], axis=-1).reshape(-1, 2)
    masks = []
    for face, affine in faces:
        uv = apply_affine(affine, src)
        mask = rounded_square_mask(uv[:, 0], uv[:, 1], face.shape[0])
        masks.append(mask.reshape(height, width).astype(np.float64))
    return masks


@st.composite
def paste_scenes(draw):
    height, width = draw(st.integers(4, 40)), draw(st.integers(4, 40))
    upscale = draw(st.sampled_from([1.0, 2.0, 3.0]) | st.floats(0.5, 4.0))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    photo = rng.random((height, width, 3), dtype=np.float32)
    faces = []
    for _ in range(draw(st.integers(1, 4))):
        size = draw(st.sampled_from([8, 16, 24]))
        # centres up to half a photo outside it: faces partly or wholly outside the photo
        center = (draw(st.floats(-0.5 * width, 1.5 * width)), draw(st.floats(-0.5 * height, 1.5 * height)))
        side = draw(st.floats(2.0, 1.2 * max(height, width)))
        if draw(st.booleans()):
            affine = box_affine(square_box(center, side), size)
        else:
            affine = similarity_affine(center, side, draw(st.floats(-math.pi, math.pi)), size)
        faces.append((rng.random((size, size, 3), dtype=np.float32), affine))
    return photo, faces, upscale


@FAST
@given(paste_scenes())
def test_paste_touches_nothing_outside_the_masks_and_keeps_the_size(scene):
    photo, faces, upscale = scene
    background = upscale_background(photo, upscale)
    assert background.shape == (*upscaled_size(*photo.shape[:2], upscale), 3)
    untouched = background.copy()
    out = paste_faces(background, faces, upscale=upscale)
    assert out.shape == background.shape and out.dtype == np.float32
    np.testing.assert_array_equal(background, untouched)  # the input is not modified
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    outside = ~np.any([m > 0 for m in output_masks(out.shape, faces, upscale)], axis=0)
    np.testing.assert_array_equal(out[outside], background[outside])


@FAST
@given(paste_scenes(), st.floats(0.0, 1.0, width=32))
def test_overlapping_faces_composite_with_combined_opacity(scene, grey):
    # Faces of one flat colour: wherever the masks say "opacity o", the result is exactly
    # background·(1 − o) + colour·o with o = 1 − Π(1 − mᵢ) — no seam where faces overlap, no
    # darkening, and a misplaced face (wrong half-pixel convention) would show as a mismatch.
    photo, faces, upscale = scene
    flat = [(np.full_like(face, grey), affine) for face, affine in faces]
    background = upscale_background(photo, upscale)
    out = paste_faces(background, flat, upscale=upscale)
    transparency = np.prod([1.0 - m for m in output_masks(out.shape, flat, upscale)], axis=0)
    opacity = (1.0 - transparency)[..., None]
    expected = background * (1.0 - opacity) + grey * opacity
    np.testing.assert_allclose(out, expected, rtol=0, atol=2e-5)


@FAST
@given(
    st.integers(8, 40), st.integers(8, 40), st.sampled_from([8, 16, 24]),
    st.integers(-30, 40), st.integers(-30, 40), st.integers(0, 2**32 - 1),
)
def test_pasting_an_unmodified_pixel_aligned_crop_reproduces_the_photo(height, width, size, x0, y0, seed):
    # A box of exactly `size` pixels on pixel edges: crop and paste are pure copies, so the photo
    # must come back everywhere (the part of the face inside the photo included), to float rounding.
    photo = np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)
    box = (x0 - 0.5, y0 - 0.5, x0 - 0.5 + size, y0 - 0.5 + size)
    crop = crop_face(photo, box, convention="landmark_square", lr_size=4, hr_size=size)
    out = paste_faces(photo, [(crop.hr, crop.affine)], upscale=1.0)
    np.testing.assert_allclose(out, photo, rtol=0, atol=1e-6)


@FAST
@given(
    st.integers(40, 96), st.integers(40, 96), st.sampled_from([16, 32, 64]),
    st.sampled_from([1.0, 2.0, 4.0]) | st.floats(1.0, 4.0),
    st.floats(0.0, 1.0), st.floats(0.0, 1.0), st.floats(0.2, 0.8),
    st.lists(st.floats(-1.0, 1.0), min_size=6, max_size=6),
)
def test_crop_then_paste_reproduces_a_smooth_photo_inside_the_face(
    height, width, size, upscale, fx, fy, fside, slopes
):
    # Crop a face, paste the unmodified crop back into the upscaled photo: inside the face (where
    # the mask is fully opaque) the photo must come back. On a linear ramp the Keys-bicubic warp and
    # enlarging resizes are exact; antialiased shrinking (Pillow's stretched kernel, the pre-shrink of
    # paste) is a weighted mean whose centre may sit a few hundredths of a pixel off. Tolerance:
    # 0.05 source pixel of the ramp's gradient — a half-pixel slip in any convention is 10x that.
    gradients = np.asarray(slopes).reshape(3, 2) * np.array([0.4 / width, 0.4 / height])

    def ramp(x: np.ndarray, y: np.ndarray) -> np.ndarray:  # per channel, within [0.1, 0.9]
        return np.stack([0.5 + a * (x - width / 2) + b * (y - height / 2) for a, b in gradients], axis=-1)

    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    photo = ramp(xs, ys).astype(np.float32)
    # keep the crop (and every resampling tap) inside the photo: borders are clamped, not ramps
    margin = 4 + 3 * max(1.0, min(height, width) / size)
    side = fside * (min(height, width) - 2 * margin)
    center = (margin + side / 2 + fx * (width - 2 * margin - side),
              margin + side / 2 + fy * (height - 2 * margin - side))
    # Faces under 8 output pixels are pre-shrunk to a 4-px image whose clamped edge taps reach the
    # opaque core; nothing dicsr produces is that small (8x upscaling of 16-px faces).
    assume(side * upscale >= 8)
    crop = crop_face(photo, square_box(center, side), convention="landmark_square", lr_size=4, hr_size=size)
    out = paste_faces(upscale_background(photo, upscale), [(crop.hr, crop.affine)], upscale=upscale)

    (mask,) = output_masks(out.shape, [(crop.hr, crop.affine)], upscale)
    oy, ox = np.nonzero(mask >= 1.0)
    assert len(oy) > 0
    expected = ramp((ox + 0.5) / upscale - 0.5, (oy + 0.5) / upscale - 0.5)
    tolerance = 0.05 * np.abs(gradients).sum(axis=1) + 2e-6
    assert (np.abs(out[oy, ox] - expected) <= tolerance).all(), np.abs(out[oy, ox] - expected).max(axis=0)


# --- points inside the face frame -----------------------------------------------------------------


def _annotated_faces() -> list[np.ndarray]:
    table = json.loads(shared_path("faces", "landmarks68.json").read_text())
    return [np.asarray(face, dtype=np.float64) for faces in table.values() for face in faces]


@pytest.fixture(scope="module")
def annotated_faces():
    return _annotated_faces()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data(), st.floats(0.05, 3.0), st.floats(-math.pi, math.pi), st.sampled_from([16, 128]))
def test_annotated_landmarks_land_inside_the_dic_crop(annotated_faces, data, scale, angle, size):
    # Every real annotated face, moved by a random similarity: its 68 points map into the face frame
    # of its DIC training crop with the 1.3x enlargement's margin (0.15/1.3 of the side) to spare.
    points = annotated_faces[data.draw(st.integers(0, len(annotated_faces) - 1))]
    shift = np.array([data.draw(st.floats(-300, 300)), data.draw(st.floats(-300, 300))])
    rotation = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    moved = points @ rotation.T + shift
    box = landmark_square_from_points68(moved)
    photo = np.zeros((8, 8, 3), dtype=np.float32)  # the points may lie anywhere, in or out of it
    crop = crop_face(photo, box, convention="landmark_square", lr_size=4, hr_size=size)
    in_face = apply_affine(crop.affine, moved)
    margin = size * 0.15 / 1.3 - 1e-6
    assert (in_face >= -0.5 + margin).all() and (in_face <= size - 0.5 - margin).all()


@pytest.fixture(scope="module")
def real_detections(detector_weights):
    detector = FaceDetector(detector_weights)
    faces = []
    for parts in (("dlib", "examples", "faces", "2008_002470.jpg"), ("facexlib", "assets", "test.jpg"),
                  ("face_recognition", "examples", "obama-240p.jpg")):
        faces += detector.detect(load_image(shared_path("faces", *parts)).to_uint8())
    assert len(faces) >= 8
    return faces


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data(), st.floats(0.25, 4.0), st.floats(-200, 200), st.floats(-200, 200),
       st.sampled_from(["landmark_square", "ffhq"]))
def test_detected_points_land_inside_every_crop_convention(real_detections, data, scale, dx, dy, convention):
    # Real RetinaFace detections, scaled and moved (crops are equivariant to that): the five points
    # (eyes, nose, mouth corners) lie inside the face frame of every crop convention.
    face = real_detections[data.draw(st.integers(0, len(real_detections) - 1))]
    shift = np.array([dx, dy])
    corners = np.asarray(face.box, dtype=np.float64).reshape(2, 2) * scale + shift
    box = (float(corners[0, 0]), float(corners[0, 1]), float(corners[1, 0]), float(corners[1, 1]))
    moved = DetectedFace(box=box, score=face.score, points5=face.points5 * scale + shift)
    photo = np.zeros((8, 8, 3), dtype=np.float32)
    size = 128
    crop = crop_face(photo, moved, convention=convention, lr_size=16, hr_size=size)
    in_face = apply_affine(crop.affine, moved.points5)
    assert (in_face > -0.5).all() and (in_face < size - 0.5).all()


# --- through the pipeline (real detector, golden SPARNet weights) ----------------------------------


@pytest.fixture(scope="module")
def resolver(sparnet_model_dir, detector_weights):
    from dicsr.pipeline import FaceSuperResolver, SelectionPolicy

    # all_sizes: the portrait's face is larger than a 16-px model restores by default; the property
    # is about pasted faces
    return FaceSuperResolver.from_pretrained(
        sparnet_model_dir, device="cpu", detector_weights=detector_weights, progress=False,
        selection=SelectionPolicy(all_sizes=True),
    )


@pytest.fixture(scope="module")
def rgba_portrait():
    with Image.open(shared_path("faces", "face_recognition", "examples", "alex-lacamoire.png")) as image:
        assert image.mode == "RGBA"
        return np.asarray(image).copy()


@SLOWER
@given(st.data(), st.sampled_from([1.0, 1.5, 2.0]) | st.floats(0.5, 2.0))
def test_pipeline_keeps_size_alpha_and_pixels_away_from_faces(resolver, rgba_portrait, data, upscale):
    # A random window of a real RGBA portrait (the face whole, cut, or absent), at a random scale.
    height, width = rgba_portrait.shape[:2]
    win_h, win_w = data.draw(st.integers(1, height)), data.draw(st.integers(1, width))
    top, left = data.draw(st.integers(0, height - win_h)), data.draw(st.integers(0, width - win_w))
    window = np.ascontiguousarray(rgba_portrait[top : top + win_h, left : left + win_w])

    result = resolver.enhance(window, upscale=upscale)
    event(f"{min(result.num_faces, 1)} face(s)")
    out = result.image
    expected_shape = upscaled_size(win_h, win_w, upscale)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == (*expected_shape, 4)

    loaded = load_image(window)
    alpha = upscale_background(np.repeat(loaded.alpha[..., None], 3, axis=2), upscale)[..., 0]
    np.testing.assert_array_equal(out[..., 3], to_uint8(alpha))
    if upscale == 1.0:
        np.testing.assert_array_equal(out[..., 3], window[..., 3])  # alpha untouched at 1x

    background = upscale_background_8bit(loaded.to_uint8(), upscale)  # 8-bit photo: Pillow's resize
    faces = [(np.zeros((resolver.config.hr_size,) * 2 + (3,), np.float32), f.affine) for f in result.faces]
    outside = np.ones(expected_shape, dtype=bool)
    if faces:
        outside = ~np.any([m > 0 for m in output_masks(expected_shape, faces, upscale)], axis=0)
    np.testing.assert_array_equal(out[..., :3][outside], background[outside])
