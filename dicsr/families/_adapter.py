"""The adapter contract between a family's pure network and the rest of dicsr.

A family's network takes and returns tensors in its *official* value space (for example RGB minus
a dataset mean, or [-1, 1]). Nothing outside the family's adapter knows those constants: the
pipeline hands every adapter NCHW float RGB in [0, 1] and gets [0, 1] back. That boundary is the
one convention every family shares, so that the pipeline, the engines and the tests never need to
know a family's value space.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from dicsr._devices import resolve_device, resolve_dtype
from dicsr.errors import InvalidInputError, UnsupportedDtypeError
from dicsr.families._config import ModelConfig

__all__ = ["NetworkAdapter", "NetworkOutput"]


@dataclass(frozen=True)
class NetworkOutput:
    """What one forward pass of an adapter returns.

    Attributes:
        images: B x 3 x hr x hr restored faces, float32 RGB clamped to [0, 1].
        heatmaps: B x K x h x w landmark heatmaps of the final step (DIC), ``None`` for networks
            that predict no landmarks.
        step_images: every recurrent step's restored faces (same space as ``images``), only when
            requested with ``all_steps=True``; empty otherwise.
        step_heatmaps: every step's heatmaps, likewise.
    """

    images: torch.Tensor
    heatmaps: torch.Tensor | None = None
    step_images: tuple[torch.Tensor, ...] = ()
    step_heatmaps: tuple[torch.Tensor, ...] = ()


class NetworkAdapter(ABC):
    """Owns one network together with its normalisation, native sizes and dtype support."""

    #: dtypes the network computes correctly in, per device type ("cpu", "cuda", "mps").
    supported_dtypes: ClassVar[dict[str, frozenset[torch.dtype]]] = {
        "cpu": frozenset({torch.float32, torch.bfloat16}),
        "cuda": frozenset({torch.float32, torch.float16, torch.bfloat16}),
        "mps": frozenset({torch.float32, torch.float16}),
    }

    def __init__(self, network: nn.Module, config: ModelConfig) -> None:
        self.network = network.eval().requires_grad_(False)
        self.config = config
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.channels_last = False

    # -- description ---------------------------------------------------------------------------

    @property
    def lr_size(self) -> int:
        """Side of the face crop the network expects."""
        return self.config.lr_size

    @property
    def hr_size(self) -> int:
        """Side of the restored face."""
        return self.config.hr_size

    @property
    def num_landmarks(self) -> int:
        """Landmarks predicted per face (0 when the network predicts none)."""
        return self.config.num_landmarks

    @staticmethod
    @abstractmethod
    def normalisation() -> dict[str, Any]:
        """Description of the input normalisation, written into ``config.json``."""

    # -- device / dtype ------------------------------------------------------------------------

    def to(
        self,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str | None = None,
        *,
        channels_last: bool | None = None,
    ) -> NetworkAdapter:
        """Move the network like ``nn.Module.to``; returns ``self``.

        ``device`` may be ``"auto"`` or a name (``"cuda:1"``), ``dtype`` a name (``"bf16"``), as in
        :class:`dicsr.FaceSuperResolver`. Like ``device`` and ``dtype``, ``channels_last`` keeps its
        current value unless given: moving a channels-last adapter to another device keeps it
        channels-last.

        Raises:
            UnsupportedDeviceError: the device is not available.
            UnsupportedDtypeError: the network cannot run in ``dtype`` on ``device``.
        """
        device = resolve_device(device) if device is not None else self.device
        dtype = resolve_dtype(dtype) if dtype is not None else self.dtype
        allowed = self.supported_dtypes.get(device.type, frozenset({torch.float32}))
        if dtype not in allowed:
            names = ", ".join(sorted(str(d).replace("torch.", "") for d in allowed))
            raise UnsupportedDtypeError(
                f"{type(self).__name__} does not support {str(dtype).replace('torch.', '')} on "
                f"{device.type}; supported there: {names}"
            )
        if channels_last is None:
            channels_last = self.channels_last
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # nn.Module.to accepts memory_format with device and dtype; torch's stubs list it alone.
        self.network.to(device=device, dtype=dtype, memory_format=memory_format)  # type: ignore[call-overload]
        self.device, self.dtype, self.channels_last = device, dtype, channels_last
        return self

    # -- inference -----------------------------------------------------------------------------

    def __call__(self, lr: torch.Tensor, *, all_steps: bool = False) -> NetworkOutput:
        """Restore a batch of faces.

        Args:
            lr: B x 3 x lr_size x lr_size float RGB in [0, 1] (any device/dtype; moved as needed).
            all_steps: also return every recurrent step (DIC); costs memory.
        """
        expected = (3, self.lr_size, self.lr_size)
        if lr.ndim != 4 or tuple(lr.shape[1:]) != expected:
            raise InvalidInputError(
                f"expected a B x {expected[0]} x {expected[1]} x {expected[2]} batch, "
                f"got shape {tuple(lr.shape)}"
            )
        if not torch.isfinite(lr).all():
            raise InvalidInputError("input batch contains NaN or infinite values")
        with torch.inference_mode():
            return self.forward(lr, all_steps=all_steps)

    @abstractmethod
    def forward(self, lr: torch.Tensor, *, all_steps: bool = False) -> NetworkOutput:
        """Run the network on a validated batch (called under ``torch.inference_mode``)."""
