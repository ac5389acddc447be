"""How large a restored photo may be, and the scale used when none is asked for.

The restored photo is the one allocation that grows with the square of the scale (a 6000×4000
photo at ×8 is 1.5 gigapixels, 4.6 GB as 8-bit RGB and several times that on the way), so its size
is checked against ``max_output_pixels`` before any of it is allocated:

* an explicit ``upscale`` whose photo would exceed the limit is refused;
* without one, the model's scale is lowered until the photo fits, but never below 1: dicsr does not
  shrink photos, so a photo that is itself larger than the limit is refused too.

``max_output_pixels=None`` lifts the limit. Sizes round as the background upscale does
(``max(1, round(side * scale))``, :func:`dicsr.image.upscaled_size`).
"""

from __future__ import annotations

import math

from dicsr.errors import ImageTooLargeError

__all__ = ["check_output_size", "default_output_scale", "output_pixels"]


def output_pixels(width: int, height: int, scale: float) -> float:
    """Pixels of a ``width × height`` photo upscaled by ``scale`` (``inf`` past float range)."""
    sides = [float(side) * scale for side in (width, height)]
    if not all(math.isfinite(side) for side in sides):
        return math.inf
    return float(max(1, round(sides[0])) * max(1, round(sides[1])))


def default_output_scale(width: int, height: int, model_scale: float, max_output_pixels: int | None) -> float:
    """The model's scale, lowered in steps of 0.01 until the photo fits the limit; never below 1."""
    if max_output_pixels is None or output_pixels(width, height, model_scale) <= max_output_pixels:
        return float(model_scale)
    scale = math.floor(math.sqrt(max_output_pixels / (width * height)) * 100) / 100
    while scale > 1 and output_pixels(width, height, scale) > max_output_pixels:
        scale = round(scale - 0.01, 2)  # rounding the sides may overshoot by a row or column
    return max(1.0, min(scale, float(model_scale)))


def check_output_size(
    width: int, height: int, scale: float, max_output_pixels: int | None, *, requested: bool
) -> None:
    """Raise :class:`ImageTooLargeError` when the restored photo would exceed ``max_output_pixels``.

    ``requested`` says whether the scale was asked for (the message then says to lower it) or is
    the default (then the photo itself is too large).
    """
    if max_output_pixels is None:
        return
    pixels = output_pixels(width, height, scale)
    if pixels <= max_output_pixels:
        return
    if requested:
        size = "an astronomical size" if math.isinf(pixels) else _size(width * scale, height * scale)
        raise ImageTooLargeError(
            f"the restored photo would be {size} ({width}×{height} at upscale {scale:g}), more than "
            f"max_output_pixels = {max_output_pixels:,}; pass a smaller upscale, or a larger "
            f"max_output_pixels if the memory is there (command line: --upscale, --max-output-pixels)"
        )
    raise ImageTooLargeError(
        f"the photo is {_size(width, height)}, already more than max_output_pixels = "
        f"{max_output_pixels:,}, and dicsr does not shrink photos; pass upscale=1 and a max_output_pixels "
        f"of at least {width * height:,} (command line: --upscale 1 --max-output-pixels N)"
    )


def _size(width: float, height: float) -> str:
    columns, rows = max(1, round(width)), max(1, round(height))
    return f"{columns}×{rows} = {columns * rows:,} pixels"
