"""The background: the photo upscaled once, that restored faces are blended into, and the result
built from it.

One :class:`Background` strategy is chosen per photo by :meth:`Background.for_photo`; it owns the
upscale, the grayscale handling and the final quantisation, so the caller only blends faces into
:attr:`Background.pixels` and asks for :meth:`Background.result`:

* **8-bit photos** (the default): Pillow's own 8-bit bicubic resize of the 8-bit samples, what a
  Pillow user gets and ≈ 4× faster than the float resize, without a full-size float array. A gray
  photo stays one uint8 plane (faces are blended into it in RGB and converted back to luma, see
  :func:`dicsr.face.paste.paste_faces`). The result is rebuilt from the final 8-bit samples
  (:func:`to_output_8bit`).
* **16-bit and float photos**: a float bicubic resize of the RGB photo, rounded only once, when the
  result is quantised to the source's depth (a gray photo's RGB turns into luma there,
  :func:`to_output`).
* **a user background upsampler** (e.g. a Real-ESRGAN wrapper): its checked float RGB output, then
  as for 16-bit and float photos.

The photo's alpha is never upscaled by a user upsampler (which may be an RGB-only network): the
result resizes it bicubic in float, on every path.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

from dicsr.errors import InvalidInputError
from dicsr.image._decode import LoadedImage
from dicsr.image._output import ImageOutput, to_output, to_output_8bit
from dicsr.image._resample import check_scale, resize_8bit, resize_float, to_uint8, upscaled_size

__all__ = [
    "Background",
    "BackgroundUpsampler",
    "upscale_background",
    "upscale_background_8bit",
    "upscale_with",
]

#: A background upsampler: ``(rgb, scale) -> upscaled rgb``, float32 ``H×W×3`` RGB in ``[0, 1]`` in
#: and out; the output must be :func:`upscaled_size` ``(H, W, scale)`` × 3.
BackgroundUpsampler = Callable[[np.ndarray, float], np.ndarray]


class Background(ABC):
    """The photo upscaled once, to blend restored faces into; it gives back the final result.

    Build one with :meth:`for_photo`; blend faces into :attr:`pixels` in place (e.g.
    ``paste_faces(background.pixels, faces, upscale=scale, in_place=True)``), then call
    :meth:`result`.

    Attributes:
        pixels: the upscaled photo, to blend faces into in place: ``H'×W'×3`` float32 RGB in
            ``[0, 1]``, or uint8 samples (``H'×W'×3`` RGB, ``H'×W'×1`` for a gray 8-bit photo).
    """

    def __init__(self, photo: LoadedImage, scale: float) -> None:
        self._photo = photo
        self.pixels = self._upscale(photo, scale)

    @classmethod
    def for_photo(
        cls, photo: LoadedImage, scale: float, upsampler: BackgroundUpsampler | None = None
    ) -> Background:
        """The background strategy for ``photo``: a user ``upsampler`` if given, else Pillow's
        8-bit resize for 8-bit photos and the float resize for 16-bit and float photos.

        Args:
            photo: the loaded input photo.
            scale: upscale factor; the pixels are :func:`upscaled_size` ``(H, W, scale)``.
            upsampler: a :data:`BackgroundUpsampler`, or ``None`` for Pillow bicubic.

        Raises:
            InvalidInputError: ``scale`` is not a positive finite number, or the upsampler's output
                is not a finite float array of the upscaled size.
        """
        if upsampler is not None:
            return _UpsamplerBackground(photo, scale, upsampler)
        if photo.bit_depth == 8:
            return _PillowBackground(photo, scale)
        return _FloatBackground(photo, scale)

    @abstractmethod
    def _upscale(self, photo: LoadedImage, scale: float) -> np.ndarray:
        """The photo's pixels upscaled by ``scale``."""

    @abstractmethod
    def result(self) -> ImageOutput:
        """:attr:`pixels` in the type of the input photo (see :func:`dicsr.image.to_output`):
        quantised once to the photo's depth, gray again for a gray photo, with the photo's alpha
        resized bicubic in float."""


class _PillowBackground(Background):
    """8-bit photos: Pillow's own 8-bit resize; the result keeps the final 8-bit samples."""

    def _upscale(self, photo: LoadedImage, scale: float) -> np.ndarray:
        samples = to_uint8(photo.rgb[..., :1]) if photo.was_grayscale else photo.to_uint8()
        return upscale_background_8bit(samples, scale)

    def result(self) -> ImageOutput:
        return to_output_8bit(self.pixels, self._photo)


class _FloatBackground(Background):
    """16-bit and float photos: the float resize; the result is quantised once, at the end."""

    def _upscale(self, photo: LoadedImage, scale: float) -> np.ndarray:
        return upscale_background(photo.rgb, scale)

    def result(self) -> ImageOutput:
        return to_output(self.pixels, self._photo)


class _UpsamplerBackground(_FloatBackground):
    """A user upsampler's float RGB, checked; the result as for float photos."""

    def __init__(self, photo: LoadedImage, scale: float, upsampler: BackgroundUpsampler) -> None:
        self._upsampler = upsampler
        super().__init__(photo, scale)

    def _upscale(self, photo: LoadedImage, scale: float) -> np.ndarray:
        return upscale_with(self._upsampler, photo.rgb, scale)


def upscale_background(rgb: np.ndarray, scale: float) -> np.ndarray:
    """Upscale the whole photo with Pillow bicubic, per channel in float (no quantisation)."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) == 0:
        raise InvalidInputError(
            f"background photo must be a non-empty H×W×3 float array, got {getattr(rgb, 'shape', rgb)}"
        )
    check_scale(scale)
    height, width = upscaled_size(rgb.shape[0], rgb.shape[1], scale)
    return np.clip(resize_float(rgb, (width, height)), 0.0, 1.0)


def upscale_background_8bit(samples: np.ndarray, scale: float) -> np.ndarray:
    """Upscale an 8-bit photo exactly as Pillow does: ``Image.resize(size, Image.BICUBIC)``.

    The background of 8-bit photos: what a Pillow user gets, ≈ 4× faster than the float resize and
    without a full-size float array. Pillow rounds to 8 bits between its two passes, so at strong
    edges this differs from :func:`upscale_background` (see :func:`dicsr.image.resize_8bit`).

    Args:
        samples: the photo, ``H×W×3`` RGB or ``H×W×1`` gray, uint8.
        scale: upscale factor; the output is :func:`upscaled_size` ``(H, W, scale)``.

    Returns:
        A new uint8 array with the channels of ``samples``.
    """
    if (
        not isinstance(samples, np.ndarray)
        or samples.dtype != np.uint8
        or samples.ndim != 3
        or samples.shape[2] not in (1, 3)
        or min(samples.shape[:2]) == 0
    ):
        raise InvalidInputError(
            f"upscale_background_8bit takes a non-empty H×W×3 (RGB) or H×W×1 (gray) uint8 array, got "
            f"{getattr(samples, 'dtype', type(samples).__name__)} {getattr(samples, 'shape', '')}"
        )
    check_scale(scale)
    height, width = upscaled_size(samples.shape[0], samples.shape[1], scale)
    return resize_8bit(samples, (width, height))


def upscale_with(bg_upsampler: BackgroundUpsampler | None, rgb: np.ndarray, scale: float) -> np.ndarray:
    """Run a user background upsampler (``None``: :func:`upscale_background`) and check its output.

    Raises:
        InvalidInputError: the upsampler returned something other than a finite float
            ``upscaled_size(H, W, scale) × 3`` array.
    """
    if bg_upsampler is None:
        return upscale_background(rgb, scale)
    check_scale(scale)
    result = bg_upsampler(rgb, scale)
    expected = (*upscaled_size(rgb.shape[0], rgb.shape[1], scale), 3)
    if not isinstance(result, np.ndarray) or result.shape != expected:
        got = getattr(result, "shape", type(result).__name__)
        raise InvalidInputError(
            f"bg_upsampler returned {got}, expected a float32 array of shape {expected} "
            f"(H×W×3 RGB in [0, 1], upscaled by {scale})"
        )
    if not np.issubdtype(result.dtype, np.floating) or not np.isfinite(result).all():
        raise InvalidInputError(f"bg_upsampler must return finite float values in [0, 1], got {result.dtype}")
    return np.clip(result.astype(np.float32, copy=False), 0.0, 1.0)
