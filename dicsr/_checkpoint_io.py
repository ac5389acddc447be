"""PyTorch checkpoint files read safely, state dicts checked strictly: shared by every loader.

The face detector (:mod:`dicsr.face.detect`) and the model weights (:mod:`dicsr.weights`) read
``.pth`` files and load state dicts the same way, so the rules live here, below both:

* **Reading never executes code**: ``torch.load(weights_only=True)`` only, which refuses any pickle
  that asks for an arbitrary global; every failure becomes a
  :class:`~dicsr.errors.CorruptCheckpointError` with a one-line reason.
* **Unwrapping** takes the state dict out of a training checkpoint (under ``state_dict``, ``netG``
  or ``model``) and strips a ``module.`` prefix that ``DataParallel`` puts on every key.
* **Loading is strict**: every key consumed, every shape equal (or
  :class:`~dicsr.errors.ArchitectureMismatchError` naming the keys), every tensor floating point
  where the network holds floating point, and every value finite (or
  :class:`~dicsr.errors.InvalidWeightsError` naming the tensor). A permissive load would turn int64
  or NaN weights into NaN faces without a word.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dicsr.errors import (
    ArchitectureMismatchError,
    CorruptCheckpointError,
    InvalidWeightsError,
    ModelNotFoundError,
)

__all__ = [
    "StateDict",
    "TensorSpec",
    "UnwrappedCheckpoint",
    "check_state_dict",
    "check_weight_values",
    "load_state_dict_strictly",
    "read_torch_checkpoint",
    "tensor_specs",
]

logger = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]

# Wrappers around a network's state dict in training checkpoints, in the order they are tried: a
# solver's ``state_dict`` entry, a GAN trainer's generator (``netG``; its discriminator and the
# optimizers are ignored), and the generic ``model`` key.
_WRAPPER_KEYS = ("state_dict", "netG", "model")
_DATA_PARALLEL_PREFIX = "module."


@dataclass(frozen=True)
class TensorSpec:
    """What a strict load checks of one tensor before reading its values.

    Attributes:
        shape: the tensor's shape.
        dtype: its dtype's name (``"float32"``, ``"int64"``, ...).
        floating: whether that dtype is floating point (weights) rather than an integer or bool
            (counters such as BatchNorm's ``num_batches_tracked``).
    """

    shape: tuple[int, ...]
    dtype: str
    floating: bool

    @classmethod
    def of(cls, tensor: torch.Tensor) -> TensorSpec:
        """The spec of ``tensor`` (also of a tensor on the meta device)."""
        dtype = tensor.dtype
        return cls(tuple(tensor.shape), str(dtype).removeprefix("torch."), dtype.is_floating_point)


@dataclass(frozen=True)
class UnwrappedCheckpoint:
    """A checkpoint file after unwrapping.

    Attributes:
        state_dict: the network's tensors, ``module.`` prefixes removed.
        layout: how the file stored them (for logs and model cards).
        ignored: top-level entries that are not the network (optimizers, discriminator, ...).
    """

    state_dict: StateDict
    layout: str
    ignored: tuple[str, ...] = ()


# --- reading ----------------------------------------------------------------------------------


def read_torch_checkpoint(path: str | os.PathLike[str]) -> UnwrappedCheckpoint:
    """The state dict stored in a PyTorch checkpoint file, unwrapped, read without running code.

    Raises:
        ModelNotFoundError: ``path`` does not exist.
        CorruptCheckpointError: zero bytes, truncated, not a PyTorch checkpoint, a pickle that
            needs arbitrary globals (refused, never executed), or no state dict inside.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CorruptCheckpointError(f"{path} is empty (0 bytes); download or copy it again")
    return _unwrap(_torch_load_safely(path), path)


def _torch_load_safely(path: Path) -> Any:
    try:
        with warnings.catch_warnings():
            # Old checkpoints use pickle protocols torch does not write; it warns but reads them fine.
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CorruptCheckpointError(f"{path}: {_weights_only_reason(str(exc))}") from None
    except Exception as exc:
        # Truncated zip archives raise RuntimeError, truncated legacy files EOFError/RuntimeError,
        # text and other non-pickles KeyError/ValueError, damaged legacy storage tables
        # AssertionError (found by tests/test_fuzz.py): all mean "not a readable checkpoint".
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CorruptCheckpointError(
            f"{path} is not a readable PyTorch checkpoint (truncated or not a checkpoint: {reason})"
        ) from None


def _weights_only_reason(message: str) -> str:
    """Turn torch's long weights_only refusal into one actionable sentence."""
    # Wording varies across torch versions: "unsupported GLOBAL x", "Unsupported global: GLOBAL x was".
    blocked = re.search(r"unsupported (?:global: )?GLOBAL (\S+)", message, flags=re.IGNORECASE)
    if blocked:
        return (
            f"refused to load: the file asks to import {blocked.group(1)}, which a weights-only load "
            "never executes (torch.load(weights_only=True)); a genuine checkpoint holds only tensors. "
            "If you trust the file, re-save its state dict with torch.save(model.state_dict(), ...)"
        )
    return "not a PyTorch checkpoint (the weights-only unpickler cannot read it; truncated or another format)"


def _unwrap(obj: Any, path: Path) -> UnwrappedCheckpoint:
    if not isinstance(obj, Mapping):
        raise CorruptCheckpointError(
            f"{path} holds a {type(obj).__name__}, not a checkpoint (expected a dict of tensors)"
        )
    layout = "bare state dict"
    ignored: tuple[str, ...] = ()
    for key in _WRAPPER_KEYS:
        if isinstance(obj.get(key), Mapping):
            ignored = tuple(sorted(str(k) for k in obj if k != key))
            layout = f"'{key}' entry of a training checkpoint"
            if ignored:
                logger.info("%s: using %r, ignoring %s", path, key, ", ".join(ignored))
            obj = obj[key]
            break
    non_tensors = sorted(str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor))
    if non_tensors or not obj:
        found = ", ".join(non_tensors[:8]) or "nothing"
        raise CorruptCheckpointError(
            f"{path}: no state dict found (expected a dict of tensors, or one under "
            f"{' / '.join(_WRAPPER_KEYS)}; found non-tensor entries: {found})"
        )
    state_dict = {str(k): v for k, v in obj.items()}
    # DataParallel wraps every key; a permissive (strict=False) loader would silently load nothing.
    while state_dict and all(k.startswith(_DATA_PARALLEL_PREFIX) for k in state_dict):
        state_dict = {k[len(_DATA_PARALLEL_PREFIX) :]: v for k, v in state_dict.items()}
        layout += ", 'module.' prefix removed"
    return UnwrappedCheckpoint(state_dict=state_dict, layout=layout, ignored=ignored)


# --- checking ---------------------------------------------------------------------------------


def tensor_specs(state_dict: Mapping[str, torch.Tensor]) -> dict[str, TensorSpec]:
    """The :class:`TensorSpec` of every tensor of ``state_dict`` (a network's, or a file's)."""
    return {key: TensorSpec.of(value) for key, value in state_dict.items()}


def check_state_dict(
    expected: Mapping[str, TensorSpec], found: Mapping[str, TensorSpec], *, what: str, source: str
) -> None:
    """Refuse ``found`` unless it has exactly the ``expected`` keys, shapes and kinds of dtype.

    Works on specs, so a file can be checked from its header before any tensor is read.

    Args:
        what: start of the mismatch message (``"x.pth does not fit dic preset 'dic'"``).
        source: the file, named by the dtype message.

    Raises:
        ArchitectureMismatchError: missing, unexpected or mis-shaped keys (all of them listed).
        InvalidWeightsError: a non-floating-point tensor where the network holds floating point
            values (or a floating-point one where it holds integers).
    """
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    mismatched = [
        (k, expected[k].shape, spec.shape)
        for k, spec in found.items()
        if k in expected and spec.shape != expected[k].shape
    ]
    if missing or unexpected or mismatched:
        raise ArchitectureMismatchError(what, missing=missing, unexpected=unexpected, mismatched=mismatched)
    for key, spec in found.items():
        if spec.floating != expected[key].floating:
            kind = "floating-point" if expected[key].floating else "integer"
            raise InvalidWeightsError(
                f"{source}: tensor {key!r} is {spec.dtype}, but the network holds {kind} values there; "
                "the file is damaged or was not written for this network",
                tensor=key,
            )


def check_weight_values(state_dict: Mapping[str, torch.Tensor], *, source: str) -> None:
    """Refuse NaN or infinite values in any floating-point tensor of ``state_dict``.

    Raises:
        InvalidWeightsError: names the first such tensor and how many of its values are bad.
    """
    for key, value in state_dict.items():
        if value.dtype.is_floating_point and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise InvalidWeightsError(
                f"{source}: tensor {key!r} holds {bad:,} NaN or infinite value(s) of {value.numel():,}; "
                "the weights are damaged (download or convert them again)",
                tensor=key,
            )


def load_state_dict_strictly(
    network: nn.Module, state_dict: Mapping[str, torch.Tensor], *, what: str, source: str
) -> None:
    """Load every tensor of ``state_dict`` into ``network``, or raise naming what does not fit.

    Args:
        what: start of the mismatch message (e.g. ``"DIC_CelebA.pth does not fit dic preset 'dic'"``).
        source: the file the tensors came from, named by the value messages.

    Raises:
        ArchitectureMismatchError: missing, unexpected or mis-shaped keys.
        InvalidWeightsError: a tensor of the wrong kind of dtype, or NaN/infinite values.
    """
    check_state_dict(tensor_specs(network.state_dict()), tensor_specs(state_dict), what=what, source=source)
    check_weight_values(state_dict, source=source)
    network.load_state_dict(state_dict, strict=True)
