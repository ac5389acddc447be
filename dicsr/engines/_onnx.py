"""ONNX export of a dicsr network and an adapter whose network runs in ONNX Runtime.

The export is the network only, in its official value space (DIC: RGB in [0, 1] minus the CelebA
mean; SPARNet: [-1, 1] at the layout's ``in_size``); the adapter's pre- and post-processing stay
in Python, or are re-implemented by the deploying application (docs/performance.md, "Engines").
The graph is traced with the TorchScript exporter: DIC then exports its official concatenating
formulation (``dicsr.families.dic._network._needs_concatenating_path``) and its recurrent loop
unrolls into one graph.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dicsr._files import atomic_write_bytes
from dicsr.engines._graph import EngineNetwork, OutputLayout, layout_of, network_input_example
from dicsr.errors import InvalidInputError, UnsupportedDtypeError
from dicsr.families import NetworkAdapter

#: Opset of the exported graphs: every operator DIC and SPARNet use exists there, and ONNX Runtime
#: releases since 1.14 (2023) run it.
DEFAULT_OPSET = 17
#: Oldest opset with exporter support for every operator of DIC and SPARNet.
MIN_OPSET = 14

_INPUT_NAME = "input"


class _FlatGraph(nn.Module):
    """The network as a graph with one input and a flat tuple of outputs (every step for DIC)."""

    def __init__(self, network: nn.Module, layout: OutputLayout) -> None:
        super().__init__()
        self.network, self.layout = network, layout

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        if self.layout.takes_all_steps:
            return self.layout.flatten(self.network(x, all_steps=True))
        return self.layout.flatten(self.network(x))


def export_onnx_bytes(
    adapter: NetworkAdapter, *, opset: int = DEFAULT_OPSET, dynamic_batch: bool = True
) -> bytes:
    """The serialised ONNX model of ``adapter``'s network (see :func:`export_onnx`)."""
    network = copy.deepcopy(adapter.network).to(device="cpu", dtype=torch.float32).eval()
    network = network.to(memory_format=torch.contiguous_format)
    example = network_input_example(adapter)
    layout, _ = layout_of(network, example)
    graph = _FlatGraph(network, layout).eval()
    names = layout.output_names()
    dynamic_axes = {name: {0: "batch"} for name in [_INPUT_NAME, *names]} if dynamic_batch else None
    with (
        tempfile.TemporaryDirectory(prefix="dicsr-onnx-") as folder,
        torch.no_grad(),
        warnings.catch_warnings(),
    ):
        # The tracer warns about every Python-level shape check it records as a constant; the
        # checks are input validation that holds for every batch size.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*ONNX.*", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(
            graph,
            (example,),
            str(Path(folder) / "model.onnx"),
            dynamo=False,
            opset_version=opset,
            input_names=[_INPUT_NAME],
            output_names=names,
            dynamic_axes=dynamic_axes,
        )
        model_bytes = (Path(folder) / "model.onnx").read_bytes()
    return _with_metadata(model_bytes, adapter, layout, example)


def _with_metadata(
    model_bytes: bytes, adapter: NetworkAdapter, layout: OutputLayout, example: Tensor
) -> bytes:
    import onnx

    model = onnx.load_from_string(model_bytes)
    metadata = {
        **layout.to_metadata(),
        "dicsr.input_shape": json.dumps(list(example.shape[1:])),
        "dicsr.model_config": adapter.config.to_json(),
    }
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return bytes(model.SerializeToString())


def export_onnx(
    adapter: NetworkAdapter,
    path: str | os.PathLike[str],
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
) -> Path:
    """Export ``adapter``'s network to an ONNX file (written atomically) and return its path.

    The graph takes the network-space input (B x 3 x H x W float32: DIC 16 x 16 RGB minus the
    CelebA mean; SPARNet 128 x 128 in [-1, 1]) and returns the network's raw outputs: SPARNet one
    tensor ``output``; DIC every recurrent step, ``sr.0`` ... ``sr.3`` (unclamped, mean-subtracted)
    and ``heatmaps.0`` ... ``heatmaps.3``. The model's metadata names them (``dicsr.*`` keys).

    Args:
        adapter: a loaded model (:func:`dicsr.load_model`); it is exported in float32 whatever its dtype.
        path: the ``.onnx`` file to write.
        opset: ONNX opset (default 17).
        dynamic_batch: leave the batch axis free (otherwise the graph is fixed at batch 1).

    Raises:
        InvalidInputError: ``opset`` is below ``MIN_OPSET`` (14) (the exporter lacks DIC's operators
            there) or above the newest opset this torch's exporter writes.
    """
    check_opset(opset)
    path = Path(path)
    atomic_write_bytes(path, export_onnx_bytes(adapter, opset=opset, dynamic_batch=dynamic_batch))
    return path


def check_opset(opset: object, name: str = "opset") -> int:
    """``opset`` if the exporter can write it for dicsr's networks, else :class:`InvalidInputError`
    naming ``name`` (the CLI passes ``--opset``)."""
    from torch.onnx import _constants  # the exporter's own bound (torch 2.x: 20)

    newest = getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", DEFAULT_OPSET)
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise InvalidInputError(
            f"{name} {opset!r} cannot be exported: use an ONNX opset from {MIN_OPSET} (the oldest with "
            f"every operator of dicsr's networks) to {newest} (the newest this torch writes)"
        )
    return opset


class OnnxRuntimeNetwork(EngineNetwork):
    """Stand-in network that runs an exported graph in an ONNX Runtime CPU session."""

    engine = "onnxruntime"

    def __init__(self, model: bytes | str | os.PathLike[str], *, threads: int | None = None) -> None:
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        source: Any = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.layout = OutputLayout.from_metadata(metadata)
        self._output_names = [output.name for output in self.session.get_outputs()]

    def forward(self, x: Tensor, *, all_steps: bool = False) -> Any:
        """Run the session on a batch in the network's own value space; outputs as the network's."""
        feed = {_INPUT_NAME: x.detach().to(device="cpu", dtype=torch.float32).contiguous().numpy()}
        flat = [torch.from_numpy(array) for array in self.session.run(self._output_names, feed)]
        return self.layout.unflatten(flat, all_steps=all_steps)


def onnxruntime_adapter(
    adapter: NetworkAdapter,
    model: str | os.PathLike[str] | None = None,
    *,
    threads: int | None = None,
) -> NetworkAdapter:
    """A copy of ``adapter`` whose network runs in ONNX Runtime (CPU, float32).

    Args:
        adapter: the loaded model; its pre/post-processing is kept.
        model: an ``.onnx`` file exported from this model by :func:`export_onnx`; without it the
            network is exported in memory first (tens of seconds for DIC).
        threads: ONNX Runtime intra-op threads (default: ``torch.get_num_threads()``).

    Raises:
        UnsupportedDtypeError: ``adapter`` is set to another dtype or device than float32 on the CPU.
    """
    if adapter.device.type != "cpu" or adapter.dtype != torch.float32:
        raise UnsupportedDtypeError(
            f"the onnxruntime engine runs the float32 graph on the CPU; the model is set to "
            f"{str(adapter.dtype).replace('torch.', '')} on {adapter.device} (use dtype float32, device cpu)"
        )
    source: bytes | str | os.PathLike[str] = model if model is not None else export_onnx_bytes(adapter)
    network = OnnxRuntimeNetwork(source, threads=threads)
    engine_adapter = copy.copy(adapter)
    engine_adapter.network = network
    engine_adapter.dtype = torch.float32
    engine_adapter.device = torch.device("cpu")
    engine_adapter.channels_last = False
    return engine_adapter
