"""Writing image files, atomically, keeping 16-bit depth and alpha where the format allows."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from dicsr._files import atomic_write_bytes, temporary_sibling
from dicsr.errors import InvalidImageError
from dicsr.image._decode import ChannelOrder, LoadedImage, load_image, swap_red_blue
from dicsr.image._output import pil_from_planes
from dicsr.image._resample import quantise

__all__ = ["save_image"]

logger = logging.getLogger(__name__)

_SIXTEEN_BIT_OR_FLOAT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def save_image(
    image: Image.Image | np.ndarray | torch.Tensor,
    path: str | os.PathLike[str],
    *,
    channel_order: ChannelOrder = "rgb",
    quality: int = 95,
) -> Path:
    """Write an image, keeping 16-bit depth and alpha where the format allows.

    * PNG keeps everything: 8/16-bit gray (``L``/``I;16``), gray+alpha, RGB and RGBA. Pillow cannot
      encode 16-bit colour, so ``uint16`` RGB(A) arrays are written by OpenCV's PNG encoder as
      true 48/64-bit PNGs.
    * JPEG holds 8-bit RGB or gray only: alpha raises :class:`InvalidImageError` (use PNG/WebP);
      16-bit data is quantised to 8 bits with a logged warning.
    * WebP holds 8-bit RGB/RGBA; other formats are whatever Pillow supports for the mode.

    The file is written beside ``path`` under a temporary name and renamed into place, so ``path``
    is never left half-written; missing parent folders are created.

    Args:
        image: a PIL image, an ``H×W[×C]`` numpy array (uint8, uint16 or float in ``[0, 1]``,
            which is written as 16-bit to PNG and 8-bit elsewhere) or a ``[1×]C×H×W`` tensor.
        path: output file; the format comes from the extension.
        channel_order: channel order of a numpy/tensor ``image``.
        quality: JPEG/WebP quality.

    Returns:
        The path written.

    Raises:
        InvalidImageError: an extension no encoder knows, alpha for JPEG, or a failed write.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    image_format = _format_of(path)
    if isinstance(image, Image.Image):
        pil = image
    else:
        loaded = load_image(image, channel_order=channel_order, max_pixels=None)
        planes = _planes_of(loaded)
        if loaded.bit_depth != 8 and not loaded.was_grayscale and image_format == "PNG":
            try:
                atomic_write_bytes(path, _encode_png16(planes, path))
            except OSError as exc:
                raise InvalidImageError(f"cannot write {path}: {exc}") from exc
            return path
        # Float samples are kept at 16 bits where Pillow can (gray); 8-bit samples stay 8-bit.
        pil = pil_from_planes(planes, bit_depth=8 if loaded.bit_depth == 8 else 16)
    pil = _pil_for_format(pil, suffix)
    options: dict[str, Any] = {}
    if suffix in (".jpg", ".jpeg", ".webp"):
        options["quality"] = quality
    if pil.info.get("icc_profile"):
        options["icc_profile"] = pil.info["icc_profile"]
    try:
        with temporary_sibling(path) as tmp:
            # The temporary name has no image extension: the format is named explicitly.
            pil.save(tmp, format=image_format, **options)
            os.replace(tmp, path)
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidImageError(f"cannot write {path} ({pil.mode} image): {exc}") from exc
    return path


def _format_of(path: Path) -> str:
    """Pillow's format name for the extension of ``path`` (as ``Image.save`` would choose it)."""
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format is None:
        raise InvalidImageError(
            f"cannot write {path}: unknown image file extension {path.suffix!r} "
            f"(use .png, .jpg, .webp, .tif, ...)"
        )
    return image_format


def _planes_of(loaded: LoadedImage) -> np.ndarray:
    """The source's own planes, gray or RGB, then alpha: ``H×W×1…4`` float32."""
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
        if image.mode in _SIXTEEN_BIT_OR_FLOAT_MODES:
            return _to_8bit_gray(image, "JPEG")
    if suffix == ".webp" and image.mode in _SIXTEEN_BIT_OR_FLOAT_MODES:
        return _to_8bit_gray(image, "WebP")
    return image


def _to_8bit_gray(image: Image.Image, fmt: str) -> Image.Image:
    logger.warning("%s stores 8 bits per sample: quantising a %s image to 8 bits", fmt, image.mode)
    values = np.asarray(image, dtype=np.float64)
    scale = 1.0 if image.mode == "F" else 65535.0
    return Image.fromarray(np.rint(np.clip(values / scale, 0.0, 1.0) * 255.0).astype(np.uint8))


def _encode_png16(planes: np.ndarray, path: Path) -> bytes:
    """A 48-bit RGB or 64-bit RGBA PNG of float RGB(A) planes, encoded by OpenCV.

    Pillow has no 16-bit colour mode; OpenCV's libpng encoder writes 16-bit colour PNGs (with
    libpng's default adaptive row filters, which compress photos better than none).
    """
    import cv2  # here, not at the top: `import dicsr` must not load OpenCV

    # OpenCV takes BGR(A) channel order.
    bgr = swap_red_blue(quantise(planes, 16))
    try:
        ok, encoded = cv2.imencode(".png", bgr)
    except cv2.error as exc:
        raise InvalidImageError(f"cannot write {path} (16-bit {bgr.shape[2]}-channel PNG): {exc}") from exc
    if not ok:
        raise InvalidImageError(f"cannot write {path}: OpenCV's PNG encoder refused the image")
    return encoded.tobytes()

