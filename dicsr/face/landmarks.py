"""Decoding landmark heatmaps into coordinates.

Coordinate convention (the official one, docs/specs/dic.md §1 and §3): heatmap pixel index ``i`` corresponds
to coordinate ``stride * i`` in the SR image (DIC: 32x32 heatmaps for 128x128 images, stride 4),
because the training targets are Gaussians centred at ``landmark / 4`` on the integer heatmap
grid. No half-pixel offset is applied. Points are ``(x, y)``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["DIC_HEATMAP_STRIDE", "official_argmax_landmarks", "subpixel_landmarks"]

#: SR-image pixels per heatmap pixel for DIC (128 / 32).
DIC_HEATMAP_STRIDE = 4


def _as_heatmap_batch(heatmaps: Tensor | np.ndarray) -> Tensor:
    heatmaps = torch.as_tensor(heatmaps)
    if heatmaps.dim() != 4:
        raise ValueError(f"expected B x K x h x w heatmaps, got shape {tuple(heatmaps.shape)}")
    return heatmaps


def _peak_indices(heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """Row and column of each channel's first maximum in row-major order."""
    width = heatmaps.shape[-1]
    # torch.argmax returns the first maximal index, as ``np.where(h == h.max())[0]`` does
    # (docs/specs/dic.md §3).
    flat_index = heatmaps.flatten(2).argmax(dim=2)
    return flat_index // width, flat_index % width


def official_argmax_landmarks(heatmaps: Tensor | np.ndarray, *, stride: int = DIC_HEATMAP_STRIDE) -> Tensor:
    """Landmarks exactly as the official ``get_peak_points(H) * 4`` (docs/specs/dic.md §3).

    Args:
        heatmaps: B x K x h x w heatmaps (tensor or array, any float dtype).
        stride: SR pixels per heatmap pixel (4 for DIC).

    Returns:
        B x K x 2 int64 ``(x, y)`` = ``stride`` x the grid index of each channel's first maximum in
        row-major order; no sub-pixel refinement, no centre offset. (A NaN counts as the maximum,
        where the official code would fail.)
    """
    rows, cols = _peak_indices(_as_heatmap_batch(heatmaps))
    return torch.stack([cols, rows], dim=-1).to(torch.int64) * stride


def _parabola_vertex(before: Tensor, centre: Tensor, after: Tensor) -> Tensor:
    """Offset of the vertex of the parabola through (-1, before), (0, centre), (1, after).

    Zero where the three points do not bend downwards (flat or not a maximum).
    """
    curvature = before - 2 * centre + after
    offset = 0.5 * (before - after) / curvature.where(curvature < 0, torch.ones_like(curvature))
    return offset.where(curvature < 0, torch.zeros_like(offset))


def _axis_offset(before: Tensor, centre: Tensor, after: Tensor, valid: Tensor) -> Tensor:
    # A Gaussian is a parabola in log space, so where the three samples are positive the log-space
    # vertex is its exact centre (for any sigma); elsewhere fall back to the raw values.
    positive = (before > 0) & (centre > 0) & (after > 0)
    tiny = torch.finfo(centre.dtype).tiny
    log_offset = _parabola_vertex(*(v.clamp_min(tiny).log() for v in (before, centre, after)))
    offset = log_offset.where(positive, _parabola_vertex(before, centre, after))
    # The maximum sample is the one nearest to the centre of a unimodal peak: stay within half a
    # pixel, and do not extrapolate at the border where a neighbour is missing.
    return offset.clamp(-0.5, 0.5).where(valid, torch.zeros_like(offset))


def subpixel_landmarks(heatmaps: Tensor | np.ndarray, *, stride: int = DIC_HEATMAP_STRIDE) -> Tensor:
    """Landmarks refined to sub-pixel precision around the official argmax.

    Along x and along y independently, fits a parabola to the log of the peak and its two
    neighbours (exact for Gaussian heatmaps such as DIC's training targets, docs/specs/dic.md §1), falling
    back to the raw values where a sample is not positive; the refinement is limited to ±0.5 heatmap
    pixels, so the result stays within half a heatmap pixel of :func:`official_argmax_landmarks`.

    Args:
        heatmaps: B x K x h x w heatmaps (tensor or array, any float dtype).
        stride: SR pixels per heatmap pixel (4 for DIC).

    Returns:
        B x K x 2 float32 ``(x, y)`` in the official convention: heatmap index ``i`` maps to
        ``stride * i``.
    """
    heatmaps = _as_heatmap_batch(heatmaps).float()
    height, width = heatmaps.shape[-2:]
    rows, cols = _peak_indices(heatmaps)

    def sample(dy: int, dx: int) -> Tensor:
        r = (rows + dy).clamp(0, height - 1)
        c = (cols + dx).clamp(0, width - 1)
        return heatmaps.flatten(2).gather(2, (r * width + c).unsqueeze(-1)).squeeze(-1)

    centre = sample(0, 0)
    dx = _axis_offset(sample(0, -1), centre, sample(0, 1), (cols > 0) & (cols < width - 1))
    dy = _axis_offset(sample(-1, 0), centre, sample(1, 0), (rows > 0) & (rows < height - 1))
    return torch.stack([cols + dx, rows + dy], dim=-1).float() * stride
