"""dicsr.image.Background: one strategy per photo, each path bit-identical to its definition.

The pipeline's paste stage is ``Background.for_photo`` → ``paste_faces(background.pixels, ...)`` →
``background.result()``. Each strategy is checked here against the same result built straight from
Pillow and numpy, the way the paste stage built it before the strategies existed: Pillow's own
8-bit resize of the 8-bit samples and the final 8-bit samples for 8-bit photos (a gray photo as one
plane), Pillow's float resize and one quantisation at the end for 16-bit and float photos, and a
user upsampler's output quantised the same way. Only ``paste_faces`` itself (tested in
test_face_crop_paste.py) is shared by both sides.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _support import shared_path
from PIL import Image

from dicsr.errors import InvalidInputError
from dicsr.face.crop import box_affine
from dicsr.face.paste import paste_faces
from dicsr.image import Background, load_image, to_luma

GROUP = ("dlib", "examples", "faces", "2008_002470.jpg")
SCALE = 2.5


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """The group photo at half size (250×166), RGB."""
    image = Image.open(shared_path("faces", *GROUP)).convert("RGB")
    return image.resize((image.width // 2, image.height // 2), Image.Resampling.BICUBIC)


@pytest.fixture(scope="module")
def faces() -> list[tuple[np.ndarray, np.ndarray]]:
    """Three noisy "restored" faces, two of them overlapping, one partly outside the photo."""
    rng = np.random.default_rng(3)
    boxes = [(40.0, 30.0, 90.0, 80.0), (70.0, 40.0, 120.0, 90.0), (220.0, 120.0, 280.0, 180.0)]
    return [(rng.random((128, 128, 3), dtype=np.float32), box_affine(box, 128)) for box in boxes]


def _pasted(image: object, faces, upsampler=None, **load_options) -> object:
    """What the pipeline's paste stage returns for ``image``."""
    background = Background.for_photo(load_image(image, **load_options), SCALE, upsampler)
    assert paste_faces(background.pixels, faces, upscale=SCALE, in_place=True) is background.pixels
    return background.result()


def _size(image: Image.Image) -> tuple[int, int]:
    return round(image.width * SCALE), round(image.height * SCALE)


def _pillow_8bit_resize(image: Image.Image) -> np.ndarray:
    """What a Pillow user gets: ``Image.resize(size, BICUBIC)`` of the 8-bit image."""
    return np.asarray(image.resize(_size(image), Image.Resampling.BICUBIC))


def _pillow_float_resize(planes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pillow bicubic per channel in mode F, clipped: the float background."""
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(plane)).resize(size, Image.Resampling.BICUBIC))
        for plane in np.moveaxis(planes, 2, 0)
    ]
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0)


def _alpha_8bit(alpha_u8: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The alpha of every path: resized bicubic in float, quantised to 8 bits."""
    resized = _pillow_float_resize((alpha_u8 / np.float32(255.0)).astype(np.float32)[..., None], size)
    return np.rint(resized[..., 0] * np.float32(255.0)).astype(np.uint8)


def test_8bit_rgb_photo_is_pillows_8bit_resize_with_faces_blended(photo, faces):
    out = _pasted(photo, faces)
    expected = paste_faces(_pillow_8bit_resize(photo), faces, upscale=SCALE)
    assert isinstance(out, Image.Image) and out.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(out), expected)


def test_8bit_gray_photo_stays_one_8bit_plane(photo, faces):
    gray = photo.convert("L")
    background = Background.for_photo(load_image(gray), SCALE)
    assert background.pixels.dtype == np.uint8 and background.pixels.shape == (*_size(gray)[::-1], 1)
    out = _pasted(gray, faces)
    expected = paste_faces(_pillow_8bit_resize(gray)[..., None], faces, upscale=SCALE)[..., 0]
    assert out.mode == "L"
    np.testing.assert_array_equal(np.asarray(out), expected)


def test_8bit_bgra_array_keeps_its_order_and_resizes_alpha_in_float(photo, faces):
    rgba = np.asarray(photo.convert("RGBA")).copy()
    rgba[..., 3] = np.linspace(0, 255, photo.width).astype(np.uint8)[None, :]
    bgra = np.ascontiguousarray(rgba[..., [2, 1, 0, 3]])
    out = _pasted(bgra, faces, channel_order="bgr")
    colour = paste_faces(_pillow_8bit_resize(photo), faces, upscale=SCALE)
    assert out.dtype == np.uint8 and out.shape == (*_size(photo)[::-1], 4)
    np.testing.assert_array_equal(out[..., :3], colour[..., ::-1])
    np.testing.assert_array_equal(out[..., 3], _alpha_8bit(rgba[..., 3], _size(photo)))


def test_16bit_photo_is_the_float_resize_quantised_once(photo, faces):
    rgb16 = np.asarray(photo).astype(np.uint16) * 257 + np.random.default_rng(4).integers(
        0, 257, size=(photo.height, photo.width, 3), dtype=np.uint16
    )
    out = _pasted(rgb16, faces)
    background = _pillow_float_resize((rgb16 / np.float32(65535.0)).astype(np.float32), _size(photo))
    blended = paste_faces(background, faces, upscale=SCALE)
    expected = np.rint(np.clip(blended, 0, 1) * np.float32(65535.0)).astype(np.uint16)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, expected)


def test_float_gray_photo_blends_in_rgb_and_comes_back_as_luma(photo, faces):
    gray = (np.asarray(photo.convert("L")) / np.float32(255.0)).astype(np.float32)[..., None]
    out = _pasted(gray, faces)
    background = _pillow_float_resize(np.repeat(gray, 3, axis=2), _size(photo))
    expected = to_luma(np.clip(paste_faces(background, faces, upscale=SCALE), 0, 1))[..., None]
    assert out.dtype == np.float32 and out.shape == (*_size(photo)[::-1], 1)
    np.testing.assert_array_equal(out, expected)


def test_user_upsampler_output_is_the_background_of_any_photo(photo, faces):
    calls = []

    def flipped_bicubic(rgb: np.ndarray, scale: float) -> np.ndarray:
        calls.append(rgb.shape)
        size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
        return _pillow_float_resize(rgb, size)[::-1, ::-1].copy()  # visibly not Pillow's bicubic

    tensor = torch.from_numpy(np.array(photo)).permute(2, 0, 1)[None].contiguous()
    out = _pasted(tensor, faces, flipped_bicubic)
    rgb = (np.asarray(photo) / np.float32(255.0)).astype(np.float32)
    blended = paste_faces(flipped_bicubic(rgb, SCALE), faces, upscale=SCALE)
    expected = np.rint(np.clip(blended, 0, 1) * np.float32(255.0)).astype(np.uint8)
    assert calls[0] == (photo.height, photo.width, 3)
    assert out.dtype == torch.uint8 and out.shape == (1, 3, *_size(photo)[::-1])
    np.testing.assert_array_equal(out[0].permute(1, 2, 0).numpy(), expected)


def test_a_bad_scale_or_upsampler_output_is_refused(photo):
    loaded = load_image(photo)
    with pytest.raises(InvalidInputError, match="upscale factor"):
        Background.for_photo(loaded, 0.0)
    with pytest.raises(InvalidInputError, match="shape"):
        Background.for_photo(loaded, 2.0, lambda rgb, scale: rgb)
