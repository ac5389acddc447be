"""Results in the caller's type: what :func:`load_image` was given comes back in the same type family.

A file or PIL input gives a PIL image, a numpy input an array of its dtype, layout and channel
order, a tensor input a tensor of its layout, dtype and device (see :func:`to_output`).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from PIL import Image

from dicsr.errors import InvalidInputError
from dicsr.image._decode import LoadedImage, swap_red_blue
from dicsr.image._resample import quantise, resize_float, to_luma

__all__ = ["ImageOutput", "pil_from_planes", "to_output", "to_output_8bit"]

logger = logging.getLogger(__name__)

#: What :func:`to_output` returns: a PIL image, a numpy array or a torch tensor, the type of the input.
ImageOutput = Image.Image | np.ndarray | torch.Tensor


def to_output(
    rgb: np.ndarray, like: LoadedImage, *, alpha: np.ndarray | None = None
) -> ImageOutput:
    """Rebuild a result in the type family of the input ``like`` was loaded from.

    The result is, for

    * a file or PIL input: a ``PIL.Image``, ``RGB``/``RGBA`` for colour sources, ``L``/``LA`` for
      8-bit (and 1-bit) gray, ``I;16`` for 16-bit gray, ``F`` for float gray; the input's ICC
      profile is attached as ``info["icc_profile"]``;
    * a numpy input: an array of the same dtype, layout (``H×W``/``H×W×1``/``H×W×3``/``H×W×4``)
      and channel order;
    * a tensor input: a tensor of the same layout, dtype and device.

    Args:
        rgb: ``H'×W'×3`` float RGB result in ``[0, 1]`` (any size; values are clipped).
        like: the :class:`LoadedImage` of the original input.
        alpha: ``H'×W'`` alpha for the output. Defaults to the input's alpha resized (bicubic)
            to ``H'×W'``; only allowed when the input had alpha.
    """
    rgb = _checked_output_rgb(rgb)
    out_alpha = _output_alpha(rgb.shape[:2], like, alpha)
    # Colour planes are clipped where they are converted (quantisation, float output), not in a
    # full-size copy here: restored photos are tens of megapixels.
    planes = to_luma(np.clip(rgb, 0.0, 1.0))[..., None] if like.was_grayscale else rgb
    if out_alpha is not None:
        planes = np.concatenate([planes, out_alpha[..., None]], axis=2)
    return _assemble(planes, like)


def to_output_8bit(
    samples: np.ndarray, like: LoadedImage, *, alpha: np.ndarray | None = None
) -> ImageOutput:
    """:func:`to_output` for final 8-bit samples of an 8-bit source (no float round trip).

    The output path of 8-bit photos: the samples are taken as they are, so no full-size float
    copy of the result is made. A numpy result may share memory with ``samples``.

    Args:
        samples: ``H'×W'×3`` uint8 RGB, or ``H'×W'×1`` uint8 gray (already converted, e.g. with
            :func:`to_luma`) when the source was grayscale.
        like: the :class:`LoadedImage` of the original input; its ``bit_depth`` must be 8.
        alpha: as for :func:`to_output` (float in ``[0, 1]``; default: the input's alpha resized
            bicubic in float).

    Raises:
        InvalidInputError: the source is not 8-bit, or ``samples`` is not uint8 with the source's
            number of colour planes.
    """
    if like.bit_depth != 8:
        raise InvalidInputError(
            f"to_output_8bit takes the samples of an 8-bit source; this source has {like.bit_depth} bits "
            f"per sample (use to_output with float values)"
        )
    channels = 1 if like.was_grayscale else 3
    if (
        not isinstance(samples, np.ndarray)
        or samples.dtype != np.uint8
        or samples.ndim != 3
        or samples.shape[2] != channels
        or min(samples.shape[:2]) == 0
    ):
        raise InvalidInputError(
            f"samples must be a non-empty H×W×{channels} uint8 array for this "
            f"{'gray' if like.was_grayscale else 'colour'} source, got "
            f"{getattr(samples, 'dtype', type(samples).__name__)} {getattr(samples, 'shape', '')}"
        )
    out_alpha = _output_alpha(samples.shape[:2], like, alpha)
    planes = samples
    if out_alpha is not None:
        planes = np.concatenate([samples, quantise(out_alpha, 8)[..., None]], axis=2)
    return _assemble(planes, like)


def _assemble(planes: np.ndarray, like: LoadedImage) -> ImageOutput:
    """Output planes (colour or gray, then alpha) in the type family of ``like``."""
    if like.kind in ("path", "bytes", "pil"):
        return pil_from_planes(planes, bit_depth=like.bit_depth, icc_profile=like.icc_profile)
    if like.channel_order == "bgr" and planes.shape[2] >= 3:
        planes = swap_red_blue(planes)
    if like.kind == "numpy":
        return _to_numpy(planes, like)
    return _to_tensor(planes, like)


def _checked_output_rgb(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) == 0:
        shape = getattr(rgb, "shape", None)
        raise InvalidInputError(f"output rgb must be a non-empty H×W×3 numpy array, got shape {shape}")
    return rgb.astype(np.float32, copy=False)


def _output_alpha(
    shape: tuple[int, ...], like: LoadedImage, alpha: np.ndarray | None
) -> np.ndarray | None:
    height, width = shape
    if alpha is not None:
        if like.alpha is None:
            raise InvalidInputError("alpha given for an input without alpha; its type family has none")
        if alpha.shape != (height, width):
            raise InvalidInputError(f"alpha must have shape {(height, width)}, got {alpha.shape}")
        return np.clip(alpha.astype(np.float32, copy=False), 0.0, 1.0)
    if like.alpha is None:
        return None
    if like.alpha.shape == (height, width):
        return like.alpha
    return np.clip(resize_float(like.alpha, (width, height)), 0.0, 1.0)


def pil_from_planes(planes: np.ndarray, *, bit_depth: int, icc_profile: bytes | None = None) -> Image.Image:
    """A PIL image of float or final integer planes: gray or RGB, then alpha (``H×W×1…4``).

    Args:
        planes: ``H×W×C`` samples, C = 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA); float in
            ``[0, 1]`` (clipped) or already quantised uint8 (8-bit) / uint16 (16-bit).
        bit_depth: depth to keep: 8; 16 (gray → ``I;16``); 32 (gray → float ``F``). Pillow has
            no 16-bit or float mode with colour or alpha, so those are quantised to 8 bits with a
            logged warning.
        icc_profile: attached as ``info["icc_profile"]``.
    """
    channels = planes.shape[2]
    if channels == 1 and bit_depth in (16, 32):
        # 16-bit gray → I;16 (Pillow's 16-bit PNG/TIFF mode); float gray stays F.
        image = Image.fromarray(quantise(planes[..., 0], bit_depth))
    else:
        modes = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
        if bit_depth != 8:
            # Pillow has no 16-bit colour or 16-bit gray+alpha mode (it decodes such files to 8 bits).
            logger.warning("Pillow has no %d-bit %s mode: quantising to 8 bits", bit_depth, modes[channels])
        image = Image.fromarray(quantise(planes, 8) if channels > 1 else quantise(planes[..., 0], 8))
        if image.mode != modes[channels]:
            image = image.convert(modes[channels])
    if icc_profile:
        image.info["icc_profile"] = icc_profile
    return image


def _to_numpy(planes: np.ndarray, like: LoadedImage) -> np.ndarray:
    dtype = np.dtype(like.dtype)
    if like.bit_depth == 32:
        out = np.clip(planes, 0.0, 1.0).astype(dtype, copy=False)
    else:
        out = quantise(planes, like.bit_depth).astype(dtype, copy=False)
    return out[..., 0] if like.layout == "HW" else out


def _to_tensor(planes: np.ndarray, like: LoadedImage) -> torch.Tensor:
    dtype = getattr(torch, like.dtype)
    values = quantise(planes, 8) if dtype == torch.uint8 else np.clip(planes, 0.0, 1.0)
    chw = torch.from_numpy(np.ascontiguousarray(values.transpose(2, 0, 1)))
    chw = chw.to(device=like.device or "cpu", dtype=dtype)
    return chw.unsqueeze(0) if like.layout == "1CHW" else chw
