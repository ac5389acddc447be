"""Other engines for a loaded model: ``torch.compile`` and ONNX (export, ONNX Runtime).

Each engine returns an adapter with the same contract as the one it was given (NCHW RGB in
[0, 1] in, :class:`~dicsr.families.NetworkOutput` out), so the pipeline runs it without knowing the
engine: ``FaceSuperResolver(model, engine="onnxruntime")``. Measured speed and parity per engine:
docs/performance.md ("Engines").
"""

from __future__ import annotations

from typing import Any

from dicsr.engines._compiled import compiled_adapter
from dicsr.engines._onnx import DEFAULT_OPSET, OnnxRuntimeNetwork, export_onnx, onnxruntime_adapter
from dicsr.errors import InvalidInputError
from dicsr.families import NetworkAdapter

__all__ = [
    "DEFAULT_OPSET",
    "ENGINES",
    "OnnxRuntimeNetwork",
    "compiled_adapter",
    "export_onnx",
    "onnxruntime_adapter",
    "with_engine",
]

#: Engine names :func:`with_engine` (and ``FaceSuperResolver(engine=...)``) accept.
ENGINES = ("torch", "compile", "onnxruntime")


def with_engine(adapter: NetworkAdapter, engine: str, **options: Any) -> NetworkAdapter:
    """``adapter`` itself (``"torch"``) or a copy whose network runs on another engine.

    Args:
        adapter: a loaded model.
        engine: one of :data:`ENGINES`.
        options: passed to :func:`compiled_adapter` or :func:`onnxruntime_adapter`.

    Raises:
        InvalidInputError: an unknown engine, or ONNX Runtime is not installed.
    """
    if engine == "torch":
        return adapter
    if engine == "compile":
        return compiled_adapter(adapter, **options)
    if engine == "onnxruntime":
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError:
            raise InvalidInputError(
                "engine 'onnxruntime' needs the onnx and onnxruntime packages: pip install 'dicsr[onnx]'"
            ) from None
        return onnxruntime_adapter(adapter, **options)
    raise InvalidInputError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
