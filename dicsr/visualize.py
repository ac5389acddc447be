"""Small drawing helpers for the CLI and examples (landmark overlays, before/after strips)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

if TYPE_CHECKING:
    from dicsr.image import ImageInput

__all__ = ["draw_landmarks", "side_by_side"]


def _as_pil_rgb(image: ImageInput) -> Image.Image:
    """A displayable 8-bit RGB PIL copy of a path, PIL image, array or tensor."""
    from dicsr.image import load_image

    rgb = load_image(image).rgb
    return Image.fromarray(np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8), "RGB")


def draw_landmarks(
    image: ImageInput, landmark_sets: Sequence[np.ndarray], *, color: tuple[int, int, int] = (0, 255, 0)
) -> Image.Image:
    """Draw each set of (K, 2) landmarks (integer coordinates = pixel centres) as dots; returns RGB PIL."""
    canvas = _as_pil_rgb(image)
    draw = ImageDraw.Draw(canvas)
    radius = max(1, round(min(canvas.size) / 300))
    for points in landmark_sets:
        # Round to the nearest pixel centre so each dot is centred on its landmark's pixel.
        for x, y in np.rint(np.asarray(points, dtype=np.float64)).astype(int):
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=color)
    return canvas


def side_by_side(before: ImageInput, after: ImageInput) -> Image.Image:
    """``before`` (resized to ``after``'s height with nearest neighbour) next to ``after``."""
    left, right = _as_pil_rgb(before), _as_pil_rgb(after)
    height = right.height
    width = max(1, round(left.width * height / left.height))
    left = left.resize((width, height), Image.Resampling.NEAREST)
    strip = Image.new("RGB", (width + right.width, height))
    strip.paste(left, (0, 0))
    strip.paste(right, (width, 0))
    return strip
