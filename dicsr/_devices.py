"""Device and dtype selection shared by the pipeline and the CLI."""

from __future__ import annotations

import torch

from dicsr.errors import UnsupportedDeviceError, UnsupportedDtypeError

__all__ = ["resolve_device", "resolve_dtype"]

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"`` or a device spec into an available ``torch.device``.

    ``"auto"`` picks CUDA, then Apple MPS, then the CPU.

    Raises:
        UnsupportedDeviceError: the device string is malformed or the device is not available.
    """
    if isinstance(device, str) and device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise UnsupportedDeviceError(f"invalid device {device!r}: {exc}") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise UnsupportedDeviceError(
                f"device {device!r} requested but CUDA is not available on this machine "
                "(CPU-only torch build or no GPU); use device='cpu' or 'auto'"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise UnsupportedDeviceError(
                f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    elif resolved.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UnsupportedDeviceError(f"device {device!r} requested but Apple MPS is not available")
    elif resolved.type != "cpu":
        raise UnsupportedDeviceError(f"unsupported device type {resolved.type!r}; use cpu, cuda or mps")
    return resolved


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """Accept ``torch.float16`` or a name (``"fp16"``, ``"bfloat16"``, ...); ``None`` means float32.

    Raises:
        UnsupportedDtypeError: not a floating dtype dicsr can run networks in.
    """
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype in _DTYPES.values():
            return dtype
        raise UnsupportedDtypeError(f"unsupported dtype {dtype}; use float32, float16 or bfloat16")
    try:
        return _DTYPES[str(dtype).lower().replace("torch.", "")]
    except KeyError:
        raise UnsupportedDtypeError(
            f"unsupported dtype {dtype!r}; use one of: {', '.join(sorted(_DTYPES))}"
        ) from None
