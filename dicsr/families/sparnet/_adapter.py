"""Adapter for SPARNet, SPARNet-Light and SPARNetHD: the official test-script pre/post-processing.

The pipeline hands every adapter RGB in [0, 1] and takes [0, 1] back; this module is the one place
that knows SPARNet's conventions (docs/specs/sparnet.md §5):

* SPARNet / Light (``lr_size`` 16, ``in_size`` 128): the official data loader reads the 16 px face as
  uint8 and up-samples it with **PIL** bicubic to 128 px, re-quantised to uint8, before
  ``ToTensor`` + ``Normalize(.5, .5)``. PIL's bicubic (a = -0.5, 8-bit fixed point) differs from
  torch's, so PIL itself is used.
* SPARNetHD (``lr_size`` = ``in_size`` = 512): the aligned low-quality face goes straight to [-1, 1]
  without re-quantisation, as in the official single-image script (docs/specs/sparnet.md §5, unaligned
  script 3).
* Output: ``(x + 1) / 2`` clamped to [0, 1]; :func:`official_uint8` truncates like the official
  ``tensor_to_img`` (docs/specs/sparnet.md §5.5).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from torch import nn

from dicsr.errors import CheckpointError
from dicsr.families._adapter import NetworkAdapter, NetworkOutput
from dicsr.families._config import ModelConfig
from dicsr.families.sparnet._network import SPARNetConfig

__all__ = [
    "SPARNetAdapter",
    "official_uint8",
    "pil_bicubic_resize_uint8",
    "quantise_uint8",
    "uint8_to_network_space",
]

# torchvision's Normalize((.5, .5, .5), (.5, .5, .5)) after ToTensor (docs/specs/sparnet.md §5.3).
_MEAN = 0.5
_STD = 0.5


def quantise_uint8(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] float -> uint8 (round to nearest), the 8-bit image the official loader reads from disk."""
    return images.detach().float().mul(255.0).round().clamp(0.0, 255.0).to(torch.uint8)


def pil_bicubic_resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a B x 3 x h x w uint8 batch to ``size`` x ``size`` with PIL bicubic, as the official
    ``img.resize((load_size, load_size), Image.BICUBIC)`` does (docs/specs/sparnet.md §5.2); returns
    uint8 on the CPU."""
    resized = []
    for image in images.cpu():
        pil_image = Image.fromarray(image.permute(1, 2, 0).numpy(), mode="RGB")
        pil_image = pil_image.resize((size, size), Image.Resampling.BICUBIC)
        resized.append(torch.from_numpy(np.array(pil_image)).permute(2, 0, 1))
    return torch.stack(resized)


def uint8_to_network_space(images: torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 [-1, 1] with the same float ops as ``ToTensor`` + ``Normalize(.5, .5)``
    (docs/specs/sparnet.md §5.3)."""
    return images.to(torch.float32).div(255.0).sub(_MEAN).div(_STD)


class SPARNetAdapter(NetworkAdapter):
    """Runs a :class:`~dicsr.families.sparnet.SPARNet` on [0, 1] faces, reproducing the official scripts.

    ``config.lr_size`` decides the input path: when it differs from the layout's ``in_size`` (16 vs
    128 for SPARNet/Light) the face is quantised and PIL-bicubic resized like the official loader;
    when it equals ``in_size`` (SPARNetHD, custom layouts) it is only mapped to [-1, 1].

    Reduced precision: torch's BatchNorm/InstanceNorm kernels accumulate in float32 for 16-bit
    inputs, and the output is mapped back to float32 before clamping, so the base contract's
    dtypes are kept. bfloat16 on the CPU is tested against float32 (mean 0.004, max 0.026 in [0, 1]
    with the golden random weights); float16 on CUDA/MPS is untested on this CPU-only project.
    """

    supported_dtypes: ClassVar[dict[str, frozenset[torch.dtype]]] = {
        "cpu": frozenset({torch.float32, torch.bfloat16}),
        "cuda": frozenset({torch.float32, torch.float16, torch.bfloat16}),
        "mps": frozenset({torch.float32, torch.float16}),
    }

    def __init__(self, network: nn.Module, config: ModelConfig) -> None:
        super().__init__(network, config)
        #: The network layout described by ``config.arch_config``.
        self.arch_config = _arch_config(config)
        # The network always sees in_size (lr_size equals it or is resized to it), so it returns out_size.
        if config.hr_size != self.arch_config.out_size:
            raise CheckpointError(
                f"config.json: hr_size {config.hr_size} does not match the SPARNet layout's "
                f"out_size {self.arch_config.out_size}"
            )

    @property
    def resizes_input(self) -> bool:
        """Whether the face is PIL-bicubic resized to the layout's ``in_size`` first (SPARNet/Light)."""
        return self.lr_size != self.arch_config.in_size

    # -- description ---------------------------------------------------------------------------

    @staticmethod
    def normalisation() -> dict[str, Any]:
        """Input space of the network: ``(x - 0.5) / 0.5``, i.e. RGB in [-1, 1]
        (docs/specs/sparnet.md §5.3)."""
        return {
            "space": "rgb",
            "range": [-1.0, 1.0],
            "mean": [_MEAN] * 3,
            "std": [_STD] * 3,
            "resize": "PIL bicubic on uint8 to the layout's in_size when lr_size differs (sparnet.md §5)",
        }

    # -- inference -----------------------------------------------------------------------------

    def preprocess(self, lr: torch.Tensor) -> torch.Tensor:
        """[0, 1] faces -> the network's float32 [-1, 1] input
        (docs/specs/sparnet.md §5.1–§5.3).

        The resized path runs through PIL and returns a CPU tensor; the direct path stays on the
        input's device.
        """
        if self.resizes_input:
            upsampled = pil_bicubic_resize_uint8(quantise_uint8(lr), self.arch_config.in_size)
            return uint8_to_network_space(upsampled)
        # SPARNetHD: the float face is used as is, not re-quantised (official single-image script).
        return lr.detach().to(torch.float32).sub(_MEAN).div(_STD)

    def forward(self, lr: torch.Tensor, *, all_steps: bool = False) -> NetworkOutput:
        """Restore a validated batch; SPARNet has a single step and no landmarks."""
        x = self.preprocess(lr).to(device=self.device, dtype=self.dtype)
        if self.channels_last:  # set by ``to(channels_last=True)``
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.network(x)
        images = out.float().add(1.0).div(2.0).clamp(0.0, 1.0).contiguous()
        return NetworkOutput(images=images, step_images=(images,) if all_steps else ())


def official_uint8(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] outputs -> uint8 like ``tensor_to_img(normal=True)``: ×255, clip, truncate
    (docs/specs/sparnet.md §5.5).

    ``images`` = ``clamp((x + 1) / 2, 0, 1)``, so ``images * 255`` is bit-for-bit the official
    ``clip((x + 1) / 2 * 255, 0, 255)`` (clamping before or after the monotone ×255 agrees).
    The cast truncates towards zero like numpy's ``astype(np.uint8)``; the layout is kept. The
    golden tests compare outputs with the official uint8 images through this.
    """
    return images.float().mul(255.0).clamp(0.0, 255.0).to(torch.uint8)


def _arch_config(config: ModelConfig) -> SPARNetConfig:
    try:
        return SPARNetConfig(**config.arch_config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"config.json: arch_config is not a valid SPARNet layout: {exc}") from None
