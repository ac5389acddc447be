"""Resampling and quantisation kernels: the pixel arithmetic the rest of dicsr builds on.

Pillow's resize per channel in float (:func:`resize_float`) or exactly as its 8-bit resize
(:func:`resize_8bit`), quantisation to 8/16 bits with round-half-to-even, BT.601 luma, and the size
of an upscaled photo. :mod:`dicsr.face` imports these and nothing else from :mod:`dicsr.image`.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from dicsr.errors import InvalidInputError

__all__ = [
    "check_scale",
    "quantise",
    "resize_8bit",
    "resize_float",
    "to_luma",
    "to_uint8",
    "upscaled_points",
    "upscaled_size",
    "upscaled_to_photo_affine",
]

#: Output size from which :func:`resize_float` and :func:`resize_8bit` resample the channels in
#: parallel threads.
_PARALLEL_RESIZE_PIXELS = 1_000_000

#: Samples per block when quantising (a float32 scratch block of 256 KB stays in the CPU cache).
_QUANTISE_BLOCK_SAMPLES = 1 << 16

# BT.601 luma, as Pillow's RGB -> L conversion.
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def to_luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of float RGB ``…×3`` (Pillow's ``convert("L")`` weights), clipped to ``[0, 1]``.

    The conversion of results back to gray for grayscale sources.
    """
    return np.clip(rgb @ _LUMA_WEIGHTS, 0.0, 1.0).astype(np.float32)


def quantise(values: np.ndarray, bit_depth: int) -> np.ndarray:
    """Clip to ``[0, 1]`` and quantise to ``bit_depth`` (8/16; round half to even), or float32.

    Samples that already have the target integer dtype are final and returned as they are.
    """
    if bit_depth not in (8, 16):
        return np.clip(values, 0.0, 1.0).astype(np.float32, copy=False)
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    if values.dtype == dtype:
        return values
    top = np.float32(255.0 if bit_depth == 8 else 65535.0)
    out = np.empty(values.shape, dtype=dtype)
    # Scale, round and clip block by block in one cache-sized scratch array: one pass over a
    # restored photo of tens of megapixels instead of three full-size float temporaries.
    rows = max(1, _QUANTISE_BLOCK_SAMPLES // max(1, values[:1].size))
    scratch = np.empty((rows, *values.shape[1:]), dtype=np.float32)
    for start in range(0, values.shape[0], rows):
        block = values[start : start + rows]
        work = scratch[: block.shape[0]]
        np.multiply(block, top, out=work, dtype=np.float32)
        np.rint(work, out=work)
        np.clip(work, 0.0, top, out=work)
        out[start : start + rows] = work
    return out


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Float ``[0, 1]`` samples to uint8 (clipped, round half to even)."""
    return quantise(np.asarray(rgb, dtype=np.float32), 8)



def resize_float(
    image: np.ndarray,
    size: tuple[int, int],
    *,
    box: tuple[float, float, float, float] | None = None,
    resample: Image.Resampling = Image.Resampling.BICUBIC,
) -> np.ndarray:
    """Resize an ``H×W`` or ``H×W×C`` float image with Pillow, per channel in mode ``F``.

    Pillow's float path uses the same kernels as its 8-bit path (bicubic a = −0.5, antialiased
    when shrinking), so this is "PIL bicubic" without the 8-bit quantisation — 16-bit sources keep
    their precision. Values are not clipped (bicubic overshoots slightly at edges).

    Args:
        image: float samples.
        size: output ``(width, height)``.
        box: optional source region ``(x0, y0, x1, y1)`` in Pillow's pixel-*edge* coordinates
            (pixel ``i`` spans ``[i, i+1)``); may extend past the image (edge pixels are reused).
        resample: Pillow filter.
    """
    return _resize_per_channel(image, size, np.float32, resample, box)


def resize_8bit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an ``H×W`` or ``H×W×C`` uint8 image exactly as Pillow's 8-bit bicubic resize does.

    The result is ``Image.resize(size, Image.BICUBIC)`` of the 8-bit image, i.e. what a Pillow
    user gets. Pillow resamples 8-bit images in fixed point and rounds and clips to 8 bits after
    its horizontal pass, so near strong edges this differs from :func:`resize_float` followed by
    quantisation (by up to ~11 levels; a 500×332 photo upscaled 8×: 17% of samples by ≥ 1 level),
    for a ≈ 4× faster resize. Pillow resamples the bands of an image independently with the same
    weights, so each channel is resized as its own ``L`` plane (in parallel threads for big
    outputs): bit-identical to resizing the RGB image in one call.

    Args:
        image: uint8 samples.
        size: output ``(width, height)``.

    Returns:
        A new, writable uint8 array of the output size with the channels of ``image``.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise InvalidInputError(
            f"resize_8bit takes an H×W or H×W×C uint8 array, got "
            f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}"
        )
    return _resize_per_channel(image, size, np.uint8, Image.Resampling.BICUBIC, None)


def _resize_per_channel(
    image: np.ndarray,
    size: tuple[int, int],
    dtype: type[np.generic],
    resample: Image.Resampling,
    box: tuple[float, float, float, float] | None,
) -> np.ndarray:
    """Pillow-resize each channel of an ``H×W`` or ``H×W×C`` image to ``size`` = (width, height)
    as its own ``dtype`` plane (float32: mode ``F``; uint8: mode ``L``)."""
    width, height = size
    if width <= 0 or height <= 0:
        raise InvalidInputError(f"resize target must be positive, got {size}")
    planes = image[..., None] if image.ndim == 2 else image
    out = np.empty((height, width, planes.shape[2]), dtype=dtype)

    def resize_channel(channel: int) -> None:
        plane = Image.fromarray(np.ascontiguousarray(planes[..., channel], dtype=dtype))
        out[..., channel] = np.asarray(plane.resize((width, height), resample, box=box))

    if planes.shape[2] > 1 and width * height >= _PARALLEL_RESIZE_PIXELS:
        # Pillow releases the GIL while resampling: big planes (an 8x background) resize in parallel.
        with ThreadPoolExecutor(max_workers=min(planes.shape[2], os.cpu_count() or 1)) as pool:
            list(pool.map(resize_channel, range(planes.shape[2])))
    else:
        for channel in range(planes.shape[2]):
            resize_channel(channel)
    return out[..., 0] if image.ndim == 2 else out


def upscaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """``(height, width)`` of a photo upscaled by ``scale`` (rounded to the nearest pixel, ≥ 1)."""
    return max(1, round(height * scale)), max(1, round(width * scale))


# A photo upscaled by ``s`` is the same picture scaled about pixel *edges* (what Pillow's resize
# does): with integers at pixel centres, edge ``-0.5`` stays at ``-0.5`` and edge ``W - 0.5`` goes to
# ``W·s - 0.5``. Points, boxes and the paste-back geometry all use this one map.


def upscaled_points(points: np.ndarray | Sequence[float], scale: float) -> np.ndarray:
    """Photo coordinates moved into the photo upscaled by ``scale``: ``(p + 0.5) · scale − 0.5``.

    Integers are pixel centres in both photos (docs/face-crops.md). The map acts on every value
    alike, so ``points`` may be ``N×2`` points, a flat ``(x0, y0, x1, y1)`` box or any array of
    coordinates.

    Returns:
        float64 coordinates of the same shape.
    """
    return (np.asarray(points, dtype=np.float64) + 0.5) * scale - 0.5


def upscaled_to_photo_affine(scale: float) -> np.ndarray:
    """The 2×3 affine from coordinates in the photo upscaled by ``scale`` back to the photo's:
    ``x = (x' + 0.5) / scale − 0.5`` (the inverse of :func:`upscaled_points`)."""
    offset = 0.5 / scale - 0.5
    return np.array([[1.0 / scale, 0.0, offset], [0.0, 1.0 / scale, offset]])


def check_scale(scale: float) -> None:
    """Refuse an upscale factor that is not a positive finite number (``bool`` included).

    Raises:
        InvalidInputError: naming the factor.
    """
    if (
        isinstance(scale, bool)
        or not isinstance(scale, numbers.Real)
        or not (math.isfinite(scale) and scale > 0)
    ):
        raise InvalidInputError(f"upscale factor must be a positive finite number, got {scale!r}")
