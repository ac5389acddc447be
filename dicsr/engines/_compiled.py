"""An adapter whose network runs as a ``torch.compile`` (inductor) graph on the CPU."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from dicsr.families import NetworkAdapter


def compiled_adapter(
    adapter: NetworkAdapter, *, freezing: bool = True, mode: str | None = None
) -> NetworkAdapter:
    """A copy of ``adapter`` whose network is compiled with inductor on first use.

    ``freezing`` folds the (inference-only) weights into the graph as constants, which lets
    inductor pre-pack them for oneDNN and fuse each convolution with its activation
    (``torch._inductor.config.freezing``, passed per compilation, not set process-wide). The first
    call per input shape compiles (tens of seconds to minutes for DIC); later calls reuse the graph.
    Moving the adapter to another dtype or memory format afterwards recompiles.
    """
    options: dict[str, Any] = {"freezing": freezing}
    engine_adapter = copy.copy(adapter)
    network: nn.Module = adapter.network
    engine_adapter.network = torch.compile(network, backend="inductor", mode=mode, options=options)  # type: ignore[assignment]
    return engine_adapter
