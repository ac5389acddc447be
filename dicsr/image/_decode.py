"""Decoding: any input (path, encoded bytes, file object, PIL image, numpy array, tensor) to a
:class:`LoadedImage`, with EXIF orientation applied and the pixel-count guard checked first.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from dicsr.errors import ImageTooLargeError, InvalidImageError, InvalidInputError, NonFiniteValuesError
from dicsr.image._resample import to_uint8

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ChannelOrder",
    "ImageInput",
    "ImageKind",
    "LoadedImage",
    "load_image",
    "swap_red_blue",
]

# Named after the public package: users configure "dicsr.image", not its private modules.
logger = logging.getLogger("dicsr.image")

#: Default pixel limit of :func:`load_image`: Pillow's own ``MAX_IMAGE_PIXELS`` (≈ 89.5 MP, where
#: Pillow starts warning about decompression bombs). A float32 RGB copy of such an image is ~1 GB.
DEFAULT_MAX_PIXELS = 89_478_485

ImageKind = Literal["path", "bytes", "pil", "numpy", "tensor"]
ChannelOrder = Literal["rgb", "bgr"]
ImageInput = Union[str, "os.PathLike[str]", bytes, BinaryIO, Image.Image, np.ndarray, torch.Tensor]

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
        kind: what the user passed: ``"path"``, ``"bytes"``, ``"pil"``, ``"numpy"`` or ``"tensor"``.
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
    # Encoded file contents (an upload in a web service, a blob from storage): decoded with the
    # same header-first size check and error mapping as a file on disk.
    if isinstance(image, (bytes, bytearray, memoryview)):
        return _load_encoded(bytes(image), max_pixels)
    read = getattr(image, "read", None)
    if callable(read):
        return _load_encoded(_read_file_object(image, read), max_pixels)
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


def _read_file_object(file: object, read: Callable[[], object]) -> object:
    """The contents of a file object, or a typed error for one that cannot be read (closed, a pipe
    that broke, a socket that timed out)."""
    if getattr(file, "closed", False):
        raise InvalidImageError(f"the file object {_file_name(file)} is closed; pass an open one (mode 'rb')")
    try:
        return read()
    except (OSError, ValueError) as exc:  # io raises ValueError for operations on closed files
        raise InvalidImageError(f"cannot read the file object {_file_name(file)}: {exc}") from exc


def _file_name(file: object) -> str:
    name = getattr(file, "name", None)
    return repr(name) if isinstance(name, (str, bytes, os.PathLike)) else type(file).__name__


def _load_encoded(data: object, max_pixels: int | None) -> LoadedImage:
    if not isinstance(data, bytes):
        raise InvalidImageError("file object must be opened in binary mode ('rb')")
    if not data:
        raise InvalidImageError("image data is empty (0 bytes)")
    return _decode_encoded(
        io.BytesIO(data), label="image data", kind="bytes", path=None, max_pixels=max_pixels
    )


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
    return _from_hwc(hwc, channel_order, bit_depth, kind="numpy", layout=layout, dtype=str(array.dtype))


def _from_tensor(tensor: torch.Tensor, channel_order: ChannelOrder, max_pixels: int | None) -> LoadedImage:
    if tensor.ndim == 4 and tensor.shape[0] == 1:
        layout, chw = "1CHW", tensor[0]
    elif tensor.ndim == 3:
        layout, chw = "CHW", tensor
    else:
        raise InvalidImageError(
            f"tensor image must be C×H×W or 1×C×H×W (one image), got shape {tuple(tensor.shape)}"
        )
    if tensor.is_meta:
        raise InvalidImageError(
            f"tensor image is on the meta device (a shape without values), shape {tuple(tensor.shape)}; "
            f"pass a tensor that holds pixels"
        )
    if tensor.layout != torch.strided:
        raise InvalidImageError(
            f"tensor image must be dense, got layout {tensor.layout}; convert it with .to_dense()"
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
    return _from_hwc(
        hwc, channel_order, bit_depth, kind="tensor", layout=layout,
        dtype=str(tensor.dtype).removeprefix("torch."), device=str(tensor.device),
    )


def swap_red_blue(planes: np.ndarray) -> np.ndarray:
    """RGB(A) <-> BGR(A): reverse the first three channels, keep alpha where it is."""
    return np.concatenate([planes[..., 2::-1], planes[..., 3:]], axis=2)


def _from_hwc(
    hwc: np.ndarray,
    channel_order: ChannelOrder,
    bit_depth: int,
    *,
    kind: ImageKind,
    layout: str,
    dtype: str,
    device: str | None = None,
) -> LoadedImage:
    """The LoadedImage of ``H×W×C`` unit-range samples of an array or tensor (C = 1, 3 or 4)."""
    channels = hwc.shape[2]
    if channel_order == "bgr" and channels >= 3:
        hwc = swap_red_blue(hwc)
    was_grayscale = channels == 1
    rgb = _gray_to_rgb(hwc[..., 0]) if was_grayscale else hwc[..., :3]
    alpha = hwc[..., 3] if channels == 4 else None
    return LoadedImage(
        rgb=np.ascontiguousarray(rgb, dtype=np.float32),
        alpha=None if alpha is None else np.ascontiguousarray(alpha, dtype=np.float32),
        bit_depth=bit_depth,
        kind=kind,
        channel_order=channel_order,
        was_grayscale=was_grayscale,
        layout=layout,
        dtype=dtype,
        device=device,
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
