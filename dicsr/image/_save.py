"""Writing image files, keeping 16-bit depth and alpha where the format allows."""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from dicsr.errors import InvalidImageError
from dicsr.image._decode import ChannelOrder, LoadedImage, load_image
from dicsr.image._output import pil_from_planes
from dicsr.image._resample import quantise

__all__ = ["save_image"]

logger = logging.getLogger(__name__)

def save_image(
    image: Image.Image | np.ndarray | torch.Tensor,
    path: str | os.PathLike[str],
    *,
    channel_order: ChannelOrder = "rgb",
    quality: int = 95,
) -> Path:
    """Write an image, keeping 16-bit depth and alpha where the format allows.

    * PNG keeps everything: 8/16-bit gray (``L``/``I;16``), gray+alpha, RGB and RGBA. Pillow cannot
      encode 16-bit colour, so ``uint16`` RGB(A) arrays are written by a small built-in PNG
      encoder as true 48/64-bit PNGs.
    * JPEG holds 8-bit RGB or gray only: alpha raises :class:`InvalidImageError` (use PNG/WebP);
      16-bit data is quantised to 8 bits with a logged warning.
    * WebP holds 8-bit RGB/RGBA; other formats are whatever Pillow supports for the mode.

    Args:
        image: a PIL image, an ``H×W[×C]`` numpy array (uint8, uint16 or float in ``[0, 1]``,
            which is written as 16-bit to PNG and 8-bit elsewhere) or a ``[1×]C×H×W`` tensor.
        path: output file; the format comes from the extension.
        channel_order: channel order of a numpy/tensor ``image``.
        quality: JPEG/WebP quality.

    Returns:
        The path written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if isinstance(image, Image.Image):
        pil = image
    else:
        loaded = load_image(image, channel_order=channel_order, max_pixels=None)
        if loaded.bit_depth != 8 and not loaded.was_grayscale and suffix == ".png":
            _write_png16(path, loaded)
            return path
        pil = pil_from_planes(_planes_of(loaded), bit_depth=16 if loaded.bit_depth != 8 else 8)
    pil = _pil_for_format(pil, suffix)
    options: dict[str, Any] = {}
    if suffix in (".jpg", ".jpeg", ".webp"):
        options["quality"] = quality
    if pil.info.get("icc_profile"):
        options["icc_profile"] = pil.info["icc_profile"]
    try:
        pil.save(path, **options)
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidImageError(f"cannot write {path} ({pil.mode} image): {exc}") from exc
    return path


def _planes_of(loaded: LoadedImage) -> np.ndarray:
    planes = loaded.rgb[..., :1] if loaded.was_grayscale else loaded.rgb
    if loaded.alpha is not None:
        planes = np.concatenate([planes, loaded.alpha[..., None]], axis=2)
    return planes


def _pil_for_format(image: Image.Image, suffix: str) -> Image.Image:
    if suffix in (".jpg", ".jpeg"):
        if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
            raise InvalidImageError(
                "JPEG cannot store transparency; save as PNG or WebP to keep the alpha channel"
            )
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
            return _to_8bit_gray(image, "JPEG")
    if suffix == ".webp" and image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _to_8bit_gray(image, "WebP")
    return image


def _to_8bit_gray(image: Image.Image, fmt: str) -> Image.Image:
    logger.warning("%s stores 8 bits per sample: quantising a %s image to 8 bits", fmt, image.mode)
    values = np.asarray(image, dtype=np.float64)
    scale = 1.0 if image.mode == "F" else 65535.0
    return Image.fromarray(np.rint(np.clip(values / scale, 0.0, 1.0) * 255.0).astype(np.uint8))


def _write_png16(path: Path, loaded: LoadedImage) -> None:
    """Write a 16-bit RGB/RGBA PNG (Pillow cannot encode 16-bit colour).

    Minimal, standard-conforming encoder: IHDR (bit depth 16, colour type 2 or 6), one zlib
    stream of unfiltered scanlines in IDAT, IEND; samples big-endian as the PNG spec requires.
    """
    planes = _planes_of(loaded)
    samples = quantise(planes, 16).astype(">u2")
    height, width, channels = samples.shape
    colour_type = 6 if channels == 4 else 2
    rows = samples.reshape(height, width * channels).view(np.uint8).reshape(height, -1)
    # Each scanline starts with its filter type byte (0 = None).
    raw = np.concatenate([np.zeros((height, 1), dtype=np.uint8), rows], axis=1).tobytes()
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    with open(path, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n")
        handle.write(_png_chunk(b"IHDR", header))
        handle.write(_png_chunk(b"IDAT", zlib.compress(raw, 6)))
        handle.write(_png_chunk(b"IEND", b""))


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
