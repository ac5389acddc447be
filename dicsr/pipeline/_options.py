"""The pipeline's options, each checked when the resolver is built.

A wrong option is a :class:`~dicsr.errors.InvalidInputError` naming it, raised by the constructor
(or by :meth:`~dicsr.pipeline.FaceSuperResolver.from_pretrained` before anything is downloaded), never
a raw ``TypeError`` from deep inside the first ``enhance``. Pixel limits read the same in the API and
the CLI: ``None`` or ``0`` means "no limit" (the CLI's ``--max-pixels 0``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict

from dicsr.errors import InvalidInputError
from dicsr.face.paste import PasteOptions
from dicsr.face.select import SelectionPolicy
from dicsr.image import DEFAULT_MAX_PIXELS, BackgroundUpsampler
from dicsr.pipeline._stages import StageCallback

__all__ = [
    "DEFAULT_MAX_OUTPUT_PIXELS",
    "PipelineOptions",
    "checked_flag",
    "checked_paste",
    "checked_pixel_limit",
    "checked_scale",
]

#: Default cap on the restored photo's size when ``upscale`` is left to the model's scale:
#: an 8x upscale of a 12 MP photo would need ~9 GB of float32 pixels.
DEFAULT_MAX_OUTPUT_PIXELS = 64_000_000


class PipelineOptions(TypedDict, total=False):
    """The keyword options of :class:`~dicsr.pipeline.FaceSuperResolver` (what
    :meth:`~dicsr.pipeline.FaceSuperResolver.from_pretrained` passes on); see the class for each."""

    upscale: float | None
    selection: SelectionPolicy | None
    paste: PasteOptions | None
    refine_crop: bool
    batch_size: int | None
    bg_upsampler: BackgroundUpsampler | None
    max_pixels: int | None
    max_output_pixels: int | None
    on_stage: StageCallback | None


@dataclass(frozen=True)
class CheckedOptions:
    """The pipeline options after their checks (pixel limits as ``int | None``)."""

    upscale: float | None = None
    selection: SelectionPolicy | None = None
    paste: PasteOptions | None = None
    refine_crop: bool = False
    batch_size: int | None = None
    bg_upsampler: BackgroundUpsampler | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    max_output_pixels: int | None = DEFAULT_MAX_OUTPUT_PIXELS
    on_stage: StageCallback | None = None

    def __post_init__(self) -> None:
        if self.upscale is not None:
            self._set("upscale", checked_scale("upscale", self.upscale))
        if self.selection is None:
            self._set("selection", SelectionPolicy())
        elif not isinstance(self.selection, SelectionPolicy):
            raise InvalidInputError(
                f"selection must be a SelectionPolicy (dicsr.pipeline), got {type(self.selection).__name__}"
            )
        self._set("paste", checked_paste(self.paste) or PasteOptions())
        checked_flag("refine_crop", self.refine_crop)
        if self.batch_size is not None:
            self._set("batch_size", checked_count("batch_size", self.batch_size))
        _check_callable("bg_upsampler", self.bg_upsampler)
        self._set("max_pixels", checked_pixel_limit("max_pixels", self.max_pixels))
        self._set("max_output_pixels", checked_pixel_limit("max_output_pixels", self.max_output_pixels))
        _check_callable("on_stage", self.on_stage)

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)


def checked_scale(name: str, value: object) -> float:
    """``value`` as a positive finite float, or :class:`InvalidInputError` naming ``name``."""
    number = float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else math.nan
    if not (math.isfinite(number) and number > 0):
        raise InvalidInputError(f"{name} must be a positive finite number or None, got {value!r}")
    return number


def checked_count(name: str, value: object) -> int:
    """``value`` as an integer >= 1, or :class:`InvalidInputError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InvalidInputError(f"{name} must be an integer >= 1 or None, got {value!r}")
    return int(value)


def checked_pixel_limit(name: str, value: object) -> int | None:
    """A pixel limit: a positive integer, or ``None``/``0`` for no limit (as the CLI's
    ``--max-pixels 0``); anything else is :class:`InvalidInputError` naming ``name``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise InvalidInputError(f"{name} must be an integer >= 0 (0 or None: no limit), got {value!r}")
    return int(value) or None


def checked_paste(value: object) -> PasteOptions | None:
    """``value`` if it is a :class:`~dicsr.face.paste.PasteOptions` or ``None``, else
    :class:`InvalidInputError` naming the option ``paste``."""
    if value is not None and not isinstance(value, PasteOptions):
        raise InvalidInputError(
            f"paste must be a PasteOptions (dicsr.pipeline) or None, got {type(value).__name__}"
        )
    return value


def checked_flag(name: str, value: object) -> bool:
    """``value`` if it is a ``bool``, else :class:`InvalidInputError` naming ``name``."""
    if not isinstance(value, bool):
        raise InvalidInputError(f"{name} must be True or False, got {value!r}")
    return value


def _check_callable(name: str, value: Callable[..., object] | None) -> None:
    if value is not None and not callable(value):
        raise InvalidInputError(f"{name} must be a callable or None, got {type(value).__name__}")
