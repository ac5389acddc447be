"""Pixels: reading any input, resampling, the upscaled background, results in the caller's type, files.

Everything inside dicsr works on one representation: an ``H×W×3`` float32 RGB array in ``[0, 1]``
(plus an optional ``H×W`` float32 alpha plane). :func:`load_image` turns whatever the user passed
(a path, encoded bytes, a PIL image, a numpy array, a torch tensor) into that, and remembers in a
:class:`LoadedImage` how to give the result back "in the same type family" with :func:`to_output`.
One job per private module: ``_decode`` (inputs), ``_resample`` (the resize, quantisation and
luma kernels :mod:`dicsr.face` uses), ``_background`` (:class:`Background`, the upscaled photo
faces are pasted into), ``_output`` (results) and ``_save`` (files).

Decisions (documented here once, referred to elsewhere):

* **Precision.** Samples are converted to float32 without quantisation: 16-bit inputs keep their
  16-bit precision (``/ 65535``), float inputs are taken as they are. Outputs are quantised only at
  the very end, to the source's own depth, with round-half-to-even (numpy ``rint``). The one
  exception is deliberate: the :class:`Background` of an 8-bit photo is Pillow's own 8-bit resize
  (:func:`resize_8bit`), and the result is rebuilt from those final 8-bit samples.
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
  *colour* file loaded by path arrives as 8-bit (Pillow limitation), and results for files are PIL
  images, which have no 16-bit colour mode either. Pass a ``uint16`` array to keep the precision;
  :func:`save_image` writes ``uint16`` RGB(A) arrays as true 16-bit PNGs.
"""

from dicsr.image._background import Background, BackgroundUpsampler
from dicsr.image._decode import (
    DEFAULT_MAX_PIXELS,
    ChannelOrder,
    ImageInput,
    ImageKind,
    LoadedImage,
    load_image,
)
from dicsr.image._output import ImageOutput, to_output
from dicsr.image._resample import (
    resize_8bit,
    resize_float,
    to_luma,
    to_uint8,
    upscaled_points,
    upscaled_size,
    upscaled_to_photo_affine,
)
from dicsr.image._save import save_image

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "Background",
    "BackgroundUpsampler",
    "ChannelOrder",
    "ImageInput",
    "ImageKind",
    "ImageOutput",
    "LoadedImage",
    "load_image",
    "resize_8bit",
    "resize_float",
    "save_image",
    "to_luma",
    "to_output",
    "to_uint8",
    "upscaled_points",
    "upscaled_size",
    "upscaled_to_photo_affine",
]
