"""Image input normalisation and output reconstruction.

Everything inside dicsr works on one representation: an ``H×W×3`` float32 RGB array in ``[0, 1]``
(plus an optional ``H×W`` float32 alpha plane). :func:`load_image` turns whatever the user passed
(a path, a PIL image, a numpy array, a torch tensor) into that, and remembers in a
:class:`LoadedImage` how to give the result back "in the same type family" with :func:`to_output`.

Decisions (documented here once, referred to elsewhere):

* **Precision.** Samples are converted to float32 without quantisation: 16-bit inputs keep their
  16-bit precision (``/ 65535``), float inputs are taken as they are. Outputs are quantised only at
  the very end, to the source's own depth, with round-half-to-even (numpy ``rint``). The one
  exception is deliberate: 8-bit photos may be upscaled by Pillow's own 8-bit resize
  (:func:`resize_8bit`, what the pipeline's default background does) and rebuilt from those 8-bit
  samples with :func:`to_output_8bit`.
* **Grayscale in, grayscale out.** A grayscale source (PIL ``1``/``L``/``LA``/``I;16``/``I``/``F``,
  numpy ``H×W`` or ``H×W×1``, tensor ``1×H×W``) is replicated to RGB for processing; the output
  is converted back with the ITU-R BT.601 luma weights (0.299, 0.587, 0.114), the same weights
  Pillow uses for ``convert("L")``. A 1-bit source comes back as 8-bit ``L``.
* **Palette and CMYK.** ``P``/``PA`` images are expanded to RGB(A) and come back as RGB(A) (no
  re-palettisation). CMYK/YCbCr/LAB/HSV are converted to RGB with Pillow's conversion (no colour
  management) and come back as RGB; their ICC profile is dropped because it no longer applies.
* **EXIF orientation** is applied on load (``ImageOps.exif_transpose``), so pixels are upright and
  the output needs no orientation tag.
* **Alpha** is carried through untouched by the face pipeline; :func:`to_output` resizes it to the
  output size (bicubic in float) unless an explicit alpha is given.
* **Tensors** are ``C×H×W`` or ``1×C×H×W`` (C = 1, 3 or 4), float in ``[0, 1]`` or uint8, on any
  device; the output has the input's shape layout, dtype and device.
* **Pixel limit.** Files are checked against ``max_pixels`` from their header, *before* decoding
  (decompression-bomb guard); arrays and tensors are checked as well, because every later stage
  allocates several float copies of the image.
* **16-bit colour files.** Pillow decodes 48/64-bit colour PNGs to 8 bits per channel, so a 16-bit
  *colour* file loaded by path arrives as 8-bit (Pillow limitation). Pass a ``uint16`` array to
  keep the precision; :func:`save_image` writes ``uint16`` RGB(A) arrays as true 16-bit PNGs.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import stat
import struct
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from dicsr._files import temporary_sibling
from dicsr.errors import ImageTooLargeError, InvalidImageError, InvalidInputError, NonFiniteValuesError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageInput",
    "ImageKind",
    "LoadedImage",
    "load_image",
    "resize_8bit",
    "resize_float",
    "save_image",
    "to_luma",
    "to_output",
    "to_output_8bit",
    "to_uint8",
]

logger = logging.getLogger(__name__)

#: Default pixel limit of :func:`load_image`: Pillow's own ``MAX_IMAGE_PIXELS`` (≈ 89.5 MP, where
#: Pillow starts warning about decompression bombs). A float32 RGB copy of such an image is ~1 GB.
DEFAULT_MAX_PIXELS = 89_478_485

#: Output size from which :func:`resize_float` and :func:`resize_8bit` resample the channels in
#: parallel threads.
_PARALLEL_RESIZE_PIXELS = 1_000_000

#: Samples per block when quantising (a float32 scratch block of 256 KB stays in the CPU cache).
_QUANTISE_BLOCK_SAMPLES = 1 << 16

ImageKind = Literal["path", "bytes", "pil", "numpy", "tensor"]
ChannelOrder = Literal["rgb", "bgr"]
ImageInput = Union[str, "os.PathLike[str]", bytes, BinaryIO, Image.Image, np.ndarray, torch.Tensor]

# BT.601 luma, as Pillow's RGB -> L conversion.
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)

_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_SIXTEEN_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}
_FLOAT_DTYPES = (np.float16, np.float32, np.float64)
_TORCH_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """An input image in dicsr's working representation, plus what is needed to rebuild its type.

    Attributes:
        rgb: ``H×W×3`` float32 RGB in ``[0, 1]``, EXIF orientation applied.
        alpha: ``H×W`` float32 alpha in ``[0, 1]``, or ``None`` when the source has none.
        bit_depth: bits per sample of the source: 8, 16, or 32 for float sources.
        kind: what the user passed: ``"path"``, ``"pil"``, ``"numpy"`` or ``"tensor"``.
        channel_order: channel order of a numpy/tensor source (``"rgb"`` or ``"bgr"``); always
            ``"rgb"`` for files and PIL images.
        was_grayscale: the source stored one colour channel (output is converted back to gray).
        layout: shape layout of the source: ``"pil"`` for files and PIL images, ``"HW"``,
            ``"HW1"``, ``"HW3"``, ``"HW4"`` for numpy, ``"CHW"`` or ``"1CHW"`` for tensors.
        dtype: dtype name of the source samples (``"uint8"``, ``"uint16"``, ``"float32"``, ...).
        mode: Pillow mode of a file/PIL source after orientation (``None`` otherwise).
        device: device of a tensor source (``None`` otherwise).
        icc_profile: ICC profile of an RGB/gray file/PIL source, re-attached to PIL outputs.
        source_path: the file the image was read from, if any.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    bit_depth: int
    kind: ImageKind
    channel_order: ChannelOrder
    was_grayscale: bool
    layout: str
    dtype: str
    mode: str | None = None
    device: str | None = None
    icc_profile: bytes | None = None
    source_path: Path | None = None

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.rgb.shape[1])

    def to_uint8(self) -> np.ndarray:
        """The RGB pixels as ``H×W×3`` uint8 (what face detectors take)."""
        return to_uint8(self.rgb)


# --- loading ------------------------------------------------------------------------------------


def load_image(
    image: ImageInput,
    *,
    channel_order: ChannelOrder = "rgb",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> LoadedImage:
    """Normalise a path, encoded bytes, PIL image, numpy array or tensor to a :class:`LoadedImage`.

    Args:
        image: a file path (``str``/``PathLike``), encoded file contents (``bytes`` or a binary
            file object, e.g. an upload; results come back as PIL images like files do), a
            ``PIL.Image.Image``, a numpy array (uint8,
            uint16 or float in ``[0, 1]``; ``H×W``, ``H×W×1``, ``H×W×3`` or ``H×W×4``) or a torch
            tensor (``C×H×W`` or ``1×C×H×W``, C in {1, 3, 4}; uint8 or float in ``[0, 1]``).
        channel_order: ``"bgr"`` for OpenCV-style arrays/tensors (BGR/BGRA); ignored for files
            and PIL images, which are always RGB.
        max_pixels: refuse images with more pixels than this (``None`` disables the check). For
            files it is checked from the header, before any pixel is decoded. Pillow's own
            decompression-bomb limit (2 × ``PIL.Image.MAX_IMAGE_PIXELS``) still applies to files.

    Raises:
        InvalidImageError: missing, empty, truncated or undecodable file; wrong rank, channel
            count, dtype or value range; zero-sized image; NaN/inf samples.
        ImageTooLargeError: more than ``max_pixels`` pixels.
        InvalidInputError: unknown ``channel_order``.
    """
    if channel_order not in ("rgb", "bgr"):
        raise InvalidInputError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    if isinstance(image, (str, os.PathLike)):
        return _load_path(Path(image), max_pixels)
    if isinstance(image, (bytes, bytearray, memoryview)) or callable(getattr(image, "read", None)):
        # Encoded file contents (an upload in a web service, a blob from storage): decoded with the
        # same header-first size check and error mapping as a file on disk.
        data = bytes(image) if isinstance(image, (bytes, bytearray, memoryview)) else image.read()
        if not isinstance(data, bytes):
            raise InvalidImageError("file object must be opened in binary mode ('rb')")
        if not data:
            raise InvalidImageError("image data is empty (0 bytes)")
        return _decode_encoded(io.BytesIO(data), label="image data", kind="bytes", path=None,
                               max_pixels=max_pixels)
    if isinstance(image, Image.Image):
        _check_size(image.width, image.height, max_pixels, what="PIL image")
        return _from_pil(image, kind="pil", source_path=None)
    if isinstance(image, np.ndarray):
        return _from_numpy(image, channel_order, max_pixels)
    if isinstance(image, torch.Tensor):
        return _from_tensor(image, channel_order, max_pixels)
    raise InvalidImageError(
        f"unsupported image type {type(image).__name__}; pass a file path, a PIL image, "
        f"a numpy array (HWC) or a torch tensor (CHW)"
    )


def _check_size(width: int, height: int, max_pixels: int | None, *, what: str) -> None:
    if width <= 0 or height <= 0:
        raise InvalidImageError(f"{what} has zero size ({width}×{height}); nothing to process")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f"{what} is {width}×{height} = {width * height:,} pixels, more than the limit of "
            f"{max_pixels:,} (decompression-bomb guard); pass a larger max_pixels if you trust it"
        )


def _load_path(path: Path, max_pixels: int | None) -> LoadedImage:
    try:
        info = path.stat()
    except OSError as exc:
        # A link loop or an over-long name is not "not found": say which it is.
        reason = {errno.ELOOP: "symbolic link loop", errno.ENAMETOOLONG: "file name too long"}.get(
            exc.errno or 0, "broken symbolic link" if path.is_symlink() else "not found")
        raise InvalidImageError(f"image file {reason}: {path}") from None
    if not stat.S_ISREG(info.st_mode):
        raise InvalidImageError(f"not a file: {path}")
    if info.st_size == 0:
        raise InvalidImageError(f"image file is empty (0 bytes): {path}")
    return _decode_encoded(path, label=f"image {path.name}", kind="path", path=path, max_pixels=max_pixels)


def _decode_encoded(
    source: Path | BinaryIO, *, label: str, kind: ImageKind, path: Path | None, max_pixels: int | None
) -> LoadedImage:
    where = path if path is not None else label
    try:
        with Image.open(source) as opened:
            # Header only so far: check the size before a single pixel is decoded.
            _check_size(opened.width, opened.height, max_pixels, what=label)
            if getattr(opened, "is_animated", False):
                logger.warning("%s has %d frames (animated or multi-page); only the first is restored",
                               where, getattr(opened, "n_frames", 0))
            opened.load()
            return _from_pil(opened, kind=kind, source_path=path)
    except Image.DecompressionBombError as exc:
        # Pillow refuses > 2 x MAX_IMAGE_PIXELS in open(), before dicsr's own check: say how to lift both.
        raise ImageTooLargeError(
            f"{where}: {exc} If you trust the file, raise PIL.Image.MAX_IMAGE_PIXELS and pass a larger "
            f"max_pixels (or max_pixels=None)"
        ) from exc
    except UnidentifiedImageError as exc:
        raise InvalidImageError(f"not an image file Pillow can decode: {where}") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, MemoryError) as exc:
        if isinstance(exc, InvalidImageError):
            # The checks on decoded samples (range, NaN, 32-bit values) know no file: name it here.
            if path is None or path.name in str(exc):
                raise
            raise type(exc)(f"{path}: {exc}") from exc.__cause__
        # Pillow reports truncated data, bad chunks and broken headers through these types.
        raise InvalidImageError(f"cannot decode image {where}: {exc}") from exc


def _from_pil(image: Image.Image, *, kind: ImageKind, source_path: Path | None) -> LoadedImage:
    try:
        upright = ImageOps.exif_transpose(image)
        samples, alpha, bit_depth, was_grayscale, icc = _pil_samples(upright)
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        if isinstance(exc, InvalidImageError):
            raise
        raise InvalidImageError(f"cannot decode image (mode {image.mode}): {exc}") from exc
    rgb = _gray_to_rgb(samples) if was_grayscale else samples
    return LoadedImage(
        rgb=_checked_unit_range(rgb, "image"),
        alpha=alpha,
        bit_depth=bit_depth,
        kind=kind,
        channel_order="rgb",
        was_grayscale=was_grayscale,
        layout="pil",
        dtype={8: "uint8", 16: "uint16", 32: "float32"}[bit_depth],
        mode=upright.mode,
        icc_profile=icc,
        source_path=source_path,
    )


def _pil_samples(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None, int, bool, bytes | None]:
    """(float samples H×W or H×W×3, alpha, bit depth, grayscale?, ICC profile) of a PIL image."""
    mode = image.mode
    icc = image.info.get("icc_profile")
    if mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.int64)
        if values.min() < 0 or values.max() > 65535:
            raise InvalidImageError(
                f"32-bit integer image (mode {mode}) with values outside the 16-bit range "
                f"[{values.min()}, {values.max()}]; only 16-bit sample values are supported"
            )
        return (values / 65535.0).astype(np.float32), None, 16, True, icc
    if mode == "F":
        return np.asarray(image, dtype=np.float32), None, 32, True, icc
    if mode in ("1", "L"):
        return _unit(np.asarray(image.convert("L"))), None, 8, True, icc
    if mode in ("LA", "La"):
        la = np.asarray(image.convert("LA"))
        return _unit(la[..., 0]), _unit(la[..., 1]), 8, True, icc
    if mode in ("RGB", "RGBX"):
        return _unit(np.asarray(image.convert("RGB"))), None, 8, False, icc
    if mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"))
        return _unit(rgba[..., :3]), _unit(rgba[..., 3]), 8, False, icc
    # P without transparency, CMYK, YCbCr, LAB, HSV: Pillow's conversion; the profile (if any)
    # described the old colour space, so it is dropped.
    try:
        converted = image.convert("RGB")
    except ValueError as exc:
        raise InvalidImageError(f"unsupported image mode {mode!r}") from exc
    return _unit(np.asarray(converted)), None, 8, False, (icc if mode == "P" else None)


def _from_numpy(array: np.ndarray, channel_order: ChannelOrder, max_pixels: int | None) -> LoadedImage:
    if array.ndim == 2:
        layout, channels = "HW", 1
    elif array.ndim == 3 and array.shape[2] in (1, 3, 4):
        layout, channels = f"HW{array.shape[2]}", array.shape[2]
    else:
        hint = (
            " (looks channel-first: numpy arrays must be H×W×C; transpose it or pass a torch tensor)"
            if array.ndim == 3 and array.shape[0] in (1, 3, 4)
            else ""
        )
        raise InvalidImageError(
            f"numpy image must have shape H×W, H×W×1, H×W×3 or H×W×4, got {array.shape}{hint}"
        )
    _check_size(array.shape[1], array.shape[0], max_pixels, what="numpy image")
    samples, bit_depth = _numpy_to_unit(array)
    hwc = samples.reshape(array.shape[0], array.shape[1], channels)
    if channel_order == "bgr" and channels >= 3:
        hwc = _swap_red_blue(hwc)
    return _from_hwc(
        hwc,
        bit_depth=bit_depth,
        kind="numpy",
        channel_order=channel_order,
        layout=layout,
        dtype=str(array.dtype),
    )


def _from_tensor(tensor: torch.Tensor, channel_order: ChannelOrder, max_pixels: int | None) -> LoadedImage:
    if tensor.ndim == 4 and tensor.shape[0] == 1:
        layout, chw = "1CHW", tensor[0]
    elif tensor.ndim == 3:
        layout, chw = "CHW", tensor
    else:
        raise InvalidImageError(
            f"tensor image must be C×H×W or 1×C×H×W (one image), got shape {tuple(tensor.shape)}"
        )
    if chw.shape[0] not in (1, 3, 4):
        raise InvalidImageError(
            f"tensor image must have 1, 3 or 4 channels first (C×H×W), got shape {tuple(tensor.shape)}"
        )
    _check_size(int(chw.shape[2]), int(chw.shape[1]), max_pixels, what="tensor image")
    if tensor.dtype == torch.uint8:
        array = chw.detach().cpu().numpy()
    elif tensor.dtype in _TORCH_FLOAT_DTYPES:
        array = chw.detach().to("cpu", torch.float32).numpy()
    else:
        raise InvalidImageError(f"tensor image must be uint8 or floating point, got {tensor.dtype}")
    samples, bit_depth = _numpy_to_unit(array)
    hwc = np.ascontiguousarray(samples.transpose(1, 2, 0))
    if channel_order == "bgr" and hwc.shape[2] >= 3:
        hwc = _swap_red_blue(hwc)
    return _from_hwc(
        hwc,
        bit_depth=bit_depth,
        kind="tensor",
        channel_order=channel_order,
        layout=layout,
        dtype=str(tensor.dtype).removeprefix("torch."),
        device=str(tensor.device),
    )


def _swap_red_blue(planes: np.ndarray) -> np.ndarray:
    """RGB(A) <-> BGR(A): reverse the first three channels, keep alpha where it is."""
    return np.concatenate([planes[..., 2::-1], planes[..., 3:]], axis=2)


def _from_hwc(hwc: np.ndarray, **fields: object) -> LoadedImage:
    channels = hwc.shape[2]
    was_grayscale = channels == 1
    rgb = _gray_to_rgb(hwc[..., 0]) if was_grayscale else hwc[..., :3]
    alpha = hwc[..., 3] if channels == 4 else None
    return LoadedImage(
        rgb=np.ascontiguousarray(rgb, dtype=np.float32),
        alpha=None if alpha is None else np.ascontiguousarray(alpha, dtype=np.float32),
        was_grayscale=was_grayscale,
        **fields,  # type: ignore[arg-type]
    )


def _numpy_to_unit(array: np.ndarray) -> tuple[np.ndarray, int]:
    """Samples as float32 in [0, 1] and the source bit depth; validates dtype and range."""
    if array.dtype == np.uint8:
        return _unit(array), 8
    if array.dtype == np.uint16:
        return (array / np.float32(65535.0)).astype(np.float32), 16
    if array.dtype.type in _FLOAT_DTYPES:
        return _checked_unit_range(array.astype(np.float32), "float image"), 32
    raise InvalidImageError(
        f"unsupported image dtype {array.dtype}; expected uint8, uint16 or float in [0, 1]"
    )


def _checked_unit_range(values: np.ndarray, what: str) -> np.ndarray:
    if not np.isfinite(values).all():
        raise NonFiniteValuesError(f"{what} contains NaN or infinite values")
    low, high = float(values.min()), float(values.max())
    if low < 0.0 or high > 1.0:
        raise InvalidImageError(
            f"{what} values must lie in [0, 1], found [{low:.4g}, {high:.4g}]; "
            f"scale it (e.g. uint8 / 255) before passing it"
        )
    return values


def _unit(values: np.ndarray) -> np.ndarray:
    return (values / np.float32(255.0)).astype(np.float32)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2).astype(np.float32, copy=False)


# --- output -------------------------------------------------------------------------------------


def to_output(
    rgb: np.ndarray, like: LoadedImage, *, alpha: np.ndarray | None = None
) -> Image.Image | np.ndarray | torch.Tensor:
    """Rebuild a result in the type family of the input ``like`` was loaded from.

    Args:
        rgb: ``H'×W'×3`` float RGB result in ``[0, 1]`` (any size; values are clipped).
        like: the :class:`LoadedImage` of the original input.
        alpha: ``H'×W'`` alpha for the output. Defaults to the input's alpha resized (bicubic)
            to ``H'×W'``; only allowed when the input had alpha.

    Returns:
        * file/PIL input → ``PIL.Image``: ``RGB``/``RGBA`` for colour sources, ``L``/``LA`` for
          8-bit (and 1-bit) gray, ``I;16`` for 16-bit gray, ``F`` for float gray; the input's
          ICC profile is attached as ``info["icc_profile"]``;
        * numpy input → array of the same dtype, layout (``H×W``/``H×W×1``/``H×W×3``/``H×W×4``)
          and channel order;
        * tensor input → tensor of the same layout, dtype and device.
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
) -> Image.Image | np.ndarray | torch.Tensor:
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
        planes = np.concatenate([samples, _quantise(out_alpha, 8)[..., None]], axis=2)
    return _assemble(planes, like)


def _assemble(planes: np.ndarray, like: LoadedImage) -> Image.Image | np.ndarray | torch.Tensor:
    """Output planes (colour or gray, then alpha) in the type family of ``like``."""
    if like.kind in ("path", "bytes", "pil"):
        return _to_pil(planes, like)
    if like.channel_order == "bgr" and planes.shape[2] >= 3:
        planes = _swap_red_blue(planes)
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


def to_luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of float RGB ``…×3`` (Pillow's ``convert("L")`` weights), clipped to ``[0, 1]``.

    The conversion of results back to gray for grayscale sources.
    """
    return np.clip(rgb @ _LUMA_WEIGHTS, 0.0, 1.0).astype(np.float32)


def _quantise(values: np.ndarray, bit_depth: int) -> np.ndarray:
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
    return _quantise(np.asarray(rgb, dtype=np.float32), 8)


def _to_pil(planes: np.ndarray, like: LoadedImage) -> Image.Image:
    channels = planes.shape[2]
    if like.was_grayscale and channels == 1 and like.bit_depth in (16, 32):
        # 16-bit gray → I;16 (Pillow's 16-bit PNG/TIFF mode); float gray stays F.
        image = Image.fromarray(_quantise(planes[..., 0], like.bit_depth))
    else:
        modes = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
        if like.bit_depth != 8:
            # Pillow has no 16-bit colour or 16-bit gray+alpha mode (it decodes such files to 8 bits).
            logger.warning(
                "Pillow has no %d-bit %s mode: quantising to 8 bits", like.bit_depth, modes[channels]
            )
        image = Image.fromarray(_quantise(planes, 8) if channels > 1 else _quantise(planes[..., 0], 8))
        if image.mode != modes[channels]:
            image = image.convert(modes[channels])
    if like.icc_profile:
        image.info["icc_profile"] = like.icc_profile
    return image


def _to_numpy(planes: np.ndarray, like: LoadedImage) -> np.ndarray:
    dtype = np.dtype(like.dtype)
    if like.bit_depth == 32:
        out = np.clip(planes, 0.0, 1.0).astype(dtype, copy=False)
    else:
        out = _quantise(planes, like.bit_depth).astype(dtype, copy=False)
    return out[..., 0] if like.layout == "HW" else out


def _to_tensor(planes: np.ndarray, like: LoadedImage) -> torch.Tensor:
    dtype = getattr(torch, like.dtype)
    values = _quantise(planes, 8) if dtype == torch.uint8 else np.clip(planes, 0.0, 1.0)
    chw = torch.from_numpy(np.ascontiguousarray(values.transpose(2, 0, 1)))
    chw = chw.to(device=like.device or "cpu", dtype=dtype)
    return chw.unsqueeze(0) if like.layout == "1CHW" else chw


# --- resampling ---------------------------------------------------------------------------------


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


# --- saving -------------------------------------------------------------------------------------


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

    The file is written atomically: to a temporary file beside ``path`` (a hidden
    ``.NAME.PID.XXXX.tmp``), then renamed, so ``path`` is either the old file or the complete new
    one, never a partial write.

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
            _write_atomically(path, "RGB(A) 16-bit", lambda partial: _write_png16(partial, loaded))
            return path
        pil = _to_pil(_planes_of(loaded), _with_depth(loaded, 16 if loaded.bit_depth != 8 else 8))
    pil = _pil_for_format(pil, suffix)
    options: dict[str, object] = {}
    if suffix in (".jpg", ".jpeg", ".webp"):
        options["quality"] = quality
    if pil.info.get("icc_profile"):
        options["icc_profile"] = pil.info["icc_profile"]
    # The temporary file's name says nothing about the format: name it from the target's suffix.
    image_format = Image.registered_extensions().get(suffix)
    if image_format is None:
        raise InvalidImageError(f"cannot write {path}: unknown image file extension {path.suffix!r}")
    _write_atomically(path, f"{pil.mode} image", lambda partial: pil.save(partial, image_format, **options))
    return path


def _write_atomically(path: Path, what: str, write: Callable[[Path], object]) -> None:
    """Run ``write`` on a temporary file beside ``path``, then rename it to ``path``.

    Readers (and a later run deciding what is done) never see a half-written file under ``path``:
    an interrupted or failed write leaves ``path`` as it was.
    """
    try:
        with temporary_sibling(path) as partial:
            write(partial)
            os.replace(partial, path)
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidImageError(f"cannot write {path} ({what}): {exc}") from exc


def _planes_of(loaded: LoadedImage) -> np.ndarray:
    planes = loaded.rgb[..., :1] if loaded.was_grayscale else loaded.rgb
    if loaded.alpha is not None:
        planes = np.concatenate([planes, loaded.alpha[..., None]], axis=2)
    return planes


def _with_depth(loaded: LoadedImage, bit_depth: int) -> LoadedImage:
    return LoadedImage(
        rgb=loaded.rgb,
        alpha=loaded.alpha,
        bit_depth=bit_depth,
        kind="pil",
        channel_order="rgb",
        was_grayscale=loaded.was_grayscale,
        layout="pil",
        dtype="uint8",
    )


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
    samples = _quantise(planes, 16).astype(">u2")
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
