"""What engines need to know about a network without naming its family.

An adapter calls its network in one of two ways: ``network(x)`` returning one tensor (SPARNet), or
``network(x, all_steps=...)`` returning a named tuple whose fields are per-step tuples of tensors
(DIC's ``sr`` and ``heatmaps``). An engine replaces the network by a stand-in that answers the same
call with the same structure, so the adapter (normalisation, clamping, dtypes) runs unchanged.
"""

from __future__ import annotations

import collections
import copy
import inspect
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from dicsr.families import NetworkAdapter


@dataclass(frozen=True)
class OutputLayout:
    """How a network's flat graph outputs map back onto what its adapter expects.

    Attributes:
        fields: names of the per-step fields (``("sr", "heatmaps")``); empty for a plain tensor.
        steps: steps per field in the flat outputs (1 for a plain tensor).
    """

    fields: tuple[str, ...] = ()
    steps: int = 1

    @property
    def takes_all_steps(self) -> bool:
        """Whether the network is called as ``network(x, all_steps=...)``."""
        return bool(self.fields)

    def output_names(self) -> list[str]:
        """Names of the flat graph outputs, in order (``sr.0`` ... ``heatmaps.3``, or ``output``)."""
        if not self.fields:
            return ["output"]
        return [f"{name}.{step}" for name in self.fields for step in range(self.steps)]

    def flatten(self, output: Any) -> tuple[Tensor, ...]:
        """A network's output as the flat tuple of graph outputs."""
        if isinstance(output, Tensor):
            return (output,)
        return tuple(tensor for name in self.fields for tensor in getattr(output, name))

    def unflatten(self, flat: list[Tensor], *, all_steps: bool) -> Any:
        """The flat outputs as the structure the adapter reads (final step only unless ``all_steps``)."""
        if not self.fields:
            return flat[0]
        per_field = {
            name: tuple(flat[i * self.steps : (i + 1) * self.steps]) for i, name in enumerate(self.fields)
        }
        if not all_steps:
            per_field = {name: steps[-1:] for name, steps in per_field.items()}
        return _step_outputs(self.fields)(**per_field)

    def to_metadata(self) -> dict[str, str]:
        return {"dicsr.output_fields": ",".join(self.fields), "dicsr.output_steps": str(self.steps)}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str]) -> OutputLayout:
        fields = tuple(name for name in metadata.get("dicsr.output_fields", "").split(",") if name)
        return cls(fields=fields, steps=int(metadata.get("dicsr.output_steps", "1")))


_STEP_OUTPUT_TYPES: dict[tuple[str, ...], Any] = {}


def _step_outputs(fields: tuple[str, ...]) -> Any:
    # One named-tuple type per field set, so repeated calls return instances of the same type.
    if fields not in _STEP_OUTPUT_TYPES:
        _STEP_OUTPUT_TYPES[fields] = collections.namedtuple("StepOutputs", fields)
    return _STEP_OUTPUT_TYPES[fields]


def takes_all_steps(network: nn.Module) -> bool:
    """Whether ``network.forward`` has an ``all_steps`` keyword (recurrent networks such as DIC)."""
    return "all_steps" in inspect.signature(network.forward).parameters


def layout_of(network: nn.Module, example: Tensor) -> tuple[OutputLayout, tuple[Tensor, ...]]:
    """The output layout of ``network`` on ``example`` (every step kept) and its flat outputs."""
    with torch.inference_mode():
        output = network(example, all_steps=True) if takes_all_steps(network) else network(example)
    if isinstance(output, Tensor):
        return OutputLayout(), (output,)
    fields = tuple(getattr(output, "_fields", ()))
    if not fields or not all(isinstance(getattr(output, name), tuple) for name in fields):
        raise TypeError(f"{type(network).__name__} returns {type(output).__name__}, which no engine can map")
    layout = OutputLayout(fields=fields, steps=len(getattr(output, fields[0])))
    return layout, layout.flatten(output)


class _InputCaptured(Exception):
    def __init__(self, x: Tensor) -> None:
        super().__init__("network input captured")
        self.x = x


class _CaptureInput(nn.Module):
    def forward(self, x: Tensor, **_: Any) -> Tensor:
        raise _InputCaptured(x)


def network_input_example(adapter: NetworkAdapter, batch: int = 1) -> Tensor:
    """The float32 tensor ``adapter`` would hand its network for a batch of mid-grey faces.

    Runs the adapter's own pre-processing (normalisation, SPARNet's PIL resize) on a stand-in
    network that records its input, so the example has the network's real shape and value space.
    """
    probe = copy.copy(adapter)
    probe.network = _CaptureInput()
    probe.dtype = torch.float32
    probe.channels_last = False
    faces = torch.full((batch, 3, adapter.lr_size, adapter.lr_size), 0.5)
    try:
        probe(faces)
    except _InputCaptured as captured:
        return captured.x.detach().float().cpu().contiguous()
    raise RuntimeError(f"{type(adapter).__name__} never called its network")


class EngineNetwork(nn.Module):
    """Base of the stand-ins: answers the adapter's call; only CPU float32 (the graph's dtype)."""

    engine = "engine"

    def to(self, *args: Any, **kwargs: Any) -> EngineNetwork:
        from dicsr.errors import UnsupportedDeviceError, UnsupportedDtypeError

        device, dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
        if device is not None and torch.device(device).type != "cpu":
            raise UnsupportedDeviceError(f"the {self.engine} engine runs on the CPU only, not {device}")
        if dtype is not None and dtype != torch.float32:
            raise UnsupportedDtypeError(
                f"the {self.engine} engine runs the exported float32 graph; "
                f"{str(dtype).replace('torch.', '')} is not available there"
            )
        return self
