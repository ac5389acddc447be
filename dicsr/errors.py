"""Typed errors raised by dicsr.

Every failure a user can cause (bad image, wrong checkpoint, missing weights, unsupported
device) surfaces as a subclass of :class:`DicsrError`, so callers can catch one type and
show its message. Messages say what went wrong *and* what to do about it.

The classes also derive from the closest built-in exception (``ValueError``,
``FileNotFoundError``, ...) so code written against the standard library keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ArchitectureMismatchError",
    "CheckpointError",
    "CorruptCheckpointError",
    "DestinationExistsError",
    "DicsrError",
    "ImageTooLargeError",
    "IntegrityError",
    "InvalidImageError",
    "InvalidInputError",
    "InvalidWeightsError",
    "ModelNotFoundError",
    "NonFiniteValuesError",
    "UnknownArchitectureError",
    "UnsupportedDeviceError",
    "UnsupportedDtypeError",
    "WeightsUnavailableError",
]


class DicsrError(Exception):
    """Base class of every error dicsr raises on purpose."""


# --- images ---------------------------------------------------------------------------------


class InvalidImageError(DicsrError, ValueError):
    """The input is not a decodable image, or has a layout dicsr cannot interpret.

    Raised for unreadable, zero-byte, truncated or non-image files, arrays of the wrong rank or
    dtype, and images with zero or absurd dimensions.
    """


class ImageTooLargeError(InvalidImageError):
    """The image has more pixels than the configured limit (decompression-bomb guard)."""


class InvalidInputError(DicsrError, ValueError):
    """A tensor or option passed to dicsr is invalid (NaN/inf values, wrong shape, bad option)."""


class NonFiniteValuesError(InvalidImageError, InvalidInputError):
    """An image array or tensor holds NaN or infinite samples.

    Both an :class:`InvalidImageError` (the image is unusable) and an :class:`InvalidInputError`
    (the tensor passed in is invalid), so either ``except`` clause catches it.
    """


# --- checkpoints and weights -----------------------------------------------------------------


class CheckpointError(DicsrError, ValueError):
    """Base class for problems with a weights file."""


class CorruptCheckpointError(CheckpointError):
    """The weights file cannot be parsed (truncated, zero bytes, not a checkpoint at all)."""


class InvalidWeightsError(CorruptCheckpointError):
    """A weights tensor is unusable: a non-floating-point dtype where the network holds floating
    point values (e.g. int64 weights), or NaN/infinite values (e.g. a flipped bit).

    ``tensor`` names the offending state-dict key.
    """

    def __init__(self, message: str, *, tensor: str) -> None:
        self.tensor = tensor
        super().__init__(message)


class UnknownArchitectureError(CheckpointError):
    """The checkpoint's keys match none of the architectures dicsr knows."""


class ArchitectureMismatchError(CheckpointError):
    """The checkpoint does not fit the architecture it is being loaded into.

    ``missing``, ``unexpected`` and ``mismatched`` list the offending state-dict keys
    (``mismatched`` holds ``(key, expected_shape, found_shape)``).
    """

    def __init__(
        self,
        message: str,
        *,
        missing: Sequence[str] = (),
        unexpected: Sequence[str] = (),
        mismatched: Sequence[tuple[str, tuple[int, ...], tuple[int, ...]]] = (),
    ) -> None:
        self.missing = tuple(missing)
        self.unexpected = tuple(unexpected)
        self.mismatched = tuple(mismatched)
        details = []
        if self.missing:
            details.append(f"missing keys ({len(self.missing)}): {_preview(self.missing)}")
        if self.unexpected:
            details.append(f"unexpected keys ({len(self.unexpected)}): {_preview(self.unexpected)}")
        if self.mismatched:
            shown = [f"{k} expected {tuple(e)} found {tuple(f)}" for k, e, f in self.mismatched]
            details.append(f"mis-shaped keys ({len(shown)}): {_preview(shown)}")
        super().__init__("; ".join([message, *details]))


class ModelNotFoundError(DicsrError, FileNotFoundError):
    """A model reference names no registry entry, folder or file."""


class WeightsUnavailableError(DicsrError, OSError):
    """Weights could not be obtained: offline without a cached copy, download failed, server down.

    The message explains how to obtain the weights by hand.
    """


class DestinationExistsError(DicsrError, FileExistsError):
    """An output path already exists and overwriting was not requested."""


class IntegrityError(DicsrError, OSError):
    """A downloaded or cached file does not match its published size or sha256."""


# --- devices ----------------------------------------------------------------------------------


class UnsupportedDeviceError(DicsrError, ValueError):
    """The requested device does not exist or is not available on this machine."""


class UnsupportedDtypeError(DicsrError, ValueError):
    """The requested dtype is not supported by this network on this device."""


def _preview(items: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... (+{len(items) - limit} more)" if len(items) > limit else "")
