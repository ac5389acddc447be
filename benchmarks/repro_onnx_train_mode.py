"""Minimal reproduction of the "wrong SPARNet ONNX results at batch 16" of issue 16.

The ONNX graph was right; the *PyTorch* reference it was compared with was not. The TorchScript
exporter (``torch.onnx.export(..., dynamo=False)``) puts the module it exports into eval mode for the
export and afterwards restores the **outer** module's mode recursively with ``train(mode)``. The
benchmark exported a small wrapper that had never been put in eval mode (a fresh ``nn.Module`` is in
training mode), so the export switched the wrapped, evaluated SPARNet into training mode: every later
PyTorch forward in that process normalised with batch statistics (and updated the running ones).
Whichever paths ran after the export were wrong; at batch 1 the export happened after the reference
output had been computed, at batch 16 before.

Run: ``python benchmarks/repro_onnx_train_mode.py`` (prints the modes and output changes; no model
files needed). dicsr's own exporter (:func:`dicsr.engines.export_onnx`) exports a deep copy in eval
mode, so it never changes the caller's network.
"""

from __future__ import annotations

import io

import torch
from torch import nn


class Wrapper(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


def main() -> None:
    torch.manual_seed(0)
    inner = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.LeakyReLU(0.2)).eval()
    with torch.no_grad():
        inner[1].running_mean.uniform_(-1, 1)
        inner[1].running_var.uniform_(0.5, 2)
    x = torch.randn(16, 3, 8, 8)
    with torch.no_grad():
        before = inner(x)
    wrapper = Wrapper(inner)  # a fresh module: training mode
    print(f"before export: wrapper.training={wrapper.training}, inner BN training={inner[1].training}")
    torch.onnx.export(wrapper, (x[:1],), io.BytesIO(), dynamo=False, opset_version=17)
    print(f"after export:  wrapper.training={wrapper.training}, inner BN training={inner[1].training}")
    with torch.no_grad():
        after = inner(x)
    print(f"max abs change of the PyTorch output after the export: {(after - before).abs().max().item():.3g}")
    print(f"torch {torch.__version__}")


if __name__ == "__main__":
    main()
