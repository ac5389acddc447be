"""Other engines for a loaded model: ``torch.compile`` and ONNX (export, ONNX Runtime).

Each engine returns an adapter with the same contract as the one it was given (NCHW RGB in
[0, 1] in, :class:`~dicsr.families.NetworkOutput` out), so the pipeline runs it without knowing the
engine: ``FaceSuperResolver.from_pretrained(model, engine="onnxruntime")`` (CLI ``dicsr enhance
--backend onnxruntime``). Measured speed and parity per engine: docs/performance.md ("Engines").
"""

from __future__ import annotations

import importlib.util
from typing import Any

from dicsr.engines._compiled import compiled_adapter
from dicsr.engines._onnx import DEFAULT_OPSET, OnnxRuntimeNetwork, export_onnx, onnxruntime_adapter
from dicsr.errors import InvalidInputError
from dicsr.families import NetworkAdapter

__all__ = [
    "DEFAULT_OPSET",
    "ENGINES",
    "OnnxRuntimeNetwork",
    "check_engine",
    "compiled_adapter",
    "export_onnx",
    "onnxruntime_adapter",
    "with_engine",
]

#: Engine names :func:`with_engine` (and ``FaceSuperResolver.from_pretrained(engine=...)``) accept.
ENGINES = ("torch", "compile", "onnxruntime")

#: The packages an engine needs beyond torch, and how to get them.
_NEEDS = {"onnxruntime": (("onnx", "onnxruntime"), "pip install 'dicsr[onnx]'")}


def with_engine(adapter: NetworkAdapter, engine: str, **options: Any) -> NetworkAdapter:
    """``adapter`` itself (``"torch"``) or a copy whose network runs on another engine.

    Args:
        adapter: a loaded model.
        engine: one of :data:`ENGINES`.
        options: passed to :func:`compiled_adapter` or :func:`onnxruntime_adapter`.

    Raises:
        InvalidInputError: an unknown engine, or ONNX Runtime is not installed.
    """
    check_engine(engine)
    if engine == "compile":
        return compiled_adapter(adapter, **options)
    if engine == "onnxruntime":
        return onnxruntime_adapter(adapter, **options)
    return adapter


def check_engine(engine: object, name: str = "engine") -> str:
    """``engine`` if it is one of :data:`ENGINES` and its packages are installed, else
    :class:`InvalidInputError` naming ``name``: checks an engine before any model is loaded.
    """
    if not isinstance(engine, str) or engine not in ENGINES:
        raise InvalidInputError(f"unknown {name} {engine!r}; choose one of {', '.join(ENGINES)}")
    packages, how = _NEEDS.get(engine, ((), ""))
    missing = [package for package in packages if importlib.util.find_spec(package) is None]
    if missing:
        raise InvalidInputError(f"{name} {engine!r} needs the {' and '.join(missing)} package(s): {how}")
    return engine
