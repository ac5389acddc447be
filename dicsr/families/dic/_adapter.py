"""Adapter for DIC / DICGAN: the CelebA-mean normalisation, official quantisation, and dtype support.

The network (:class:`dicsr.families.dic.DIC`) works on RGB in [0, 1] minus the CelebA mean, without
std division (docs/specs/dic.md §3); this adapter is the only place that knows that constant.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from dicsr.families._adapter import NetworkAdapter, NetworkOutput

__all__ = ["CELEBA_MEAN", "DICAdapter", "official_uint8"]

#: Per-channel RGB mean subtracted by every official DIC dataset (``transforms.Normalize`` with
#: std 1, rgb_range 1; docs/specs/dic.md §1, §3).
CELEBA_MEAN: tuple[float, float, float] = (0.509, 0.424, 0.378)

# How far (in 8-bit steps) ``255 * x`` may be from an integer for ``x`` to count as an 8-bit level;
# float32 ``k / 255`` is within 2e-5 steps of ``k``, a resampled value is almost never this close.
_LEVEL_TOLERANCE = 1e-4


class DICAdapter(NetworkAdapter):
    """DIC / DICGAN behind the [0, 1]-RGB network boundary.

    ``forward`` moves the input to the adapter's device, subtracts the mean in float32, casts to the
    adapter's dtype (and channels-last layout if requested), runs the network and returns
    **float32, contiguous NCHW tensors on the adapter's device**: the final SR image plus the mean,
    clamped to [0, 1], and the final step's 68 x 32 x 32 heatmaps (their raw values, not normalised).

    Precision: float32 reproduces the official network to ≲1e-5 (golden tests). bfloat16 on CPU is
    tested against float32 (tests/test_dic_arch.py states the tolerance). float16/bfloat16 on CUDA
    are allowed: the only precision-sensitive step, the landmark attention (max-normalisation and
    softmax), always runs in float32; they are not exercised by the CPU-only test suite. float16
    on CPU is not offered (slow and untested); on MPS only float32 is offered (untested there).
    """

    supported_dtypes: ClassVar[dict[str, frozenset[torch.dtype]]] = {
        "cpu": frozenset({torch.float32, torch.bfloat16}),
        "cuda": frozenset({torch.float32, torch.float16, torch.bfloat16}),
        "mps": frozenset({torch.float32}),
    }

    # -- description ---------------------------------------------------------------------------

    @staticmethod
    def normalisation() -> dict[str, Any]:
        """RGB in [0, 1] minus the CelebA mean, std 1 (docs/specs/dic.md §3)."""
        return {"space": "rgb01_minus_mean", "mean": list(CELEBA_MEAN), "std": [1.0, 1.0, 1.0]}

    # -- value spaces --------------------------------------------------------------------------

    @staticmethod
    def _mean(like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(CELEBA_MEAN, dtype=torch.float32, device=like.device).view(1, 3, 1, 1)

    @classmethod
    def to_network_space(cls, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB -> the network's input space, in float32.

        The official loader scales uint8 pixels by multiplying with ``rgb_range / 255`` in float32
        and then subtracts the float32 mean (``Normalize(mean, 1)``, docs/specs/dic.md §3). ``k * (1/255)``
        and the more common ``k / 255`` differ by one float32 ulp for about half of the 256 levels, so
        values that are 8-bit levels (``k/255`` up to float rounding) are mapped to the official
        ``k * (1/255)`` first: decoded images then reproduce the official input bit for bit, and
        any other value (a resampled crop) passes unchanged.
        """
        images = images.float()
        levels = (images * 255.0).round()
        is_level = (images * 255.0 - levels).abs() <= _LEVEL_TOLERANCE
        images = torch.where(is_level, levels * (1.0 / 255.0), images)
        return images - cls._mean(images)

    @classmethod
    def from_network_space(cls, sr: torch.Tensor) -> torch.Tensor:
        """Network output -> [0, 1] RGB in float32: add the mean back, then clamp (docs/specs/dic.md §3).

        The official code quantises without clamping first; clamping to [0, 1] before
        :func:`official_uint8` gives the identical uint8 image.
        """
        sr = sr.float()
        return (sr + cls._mean(sr)).clamp_(0.0, 1.0).contiguous()

    # -- inference -----------------------------------------------------------------------------

    def forward(self, lr: torch.Tensor, *, all_steps: bool = False) -> NetworkOutput:
        """Restore a validated B x 3 x 16 x 16 batch in [0, 1] (see the class docstring)."""
        # An explicit layout: a permuted HWC decode would otherwise run the network channels-last.
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        x = self.to_network_space(lr.to(self.device)).to(self.dtype).contiguous(memory_format=layout)
        out = self.network(x, all_steps=all_steps)
        images = tuple(self.from_network_space(sr) for sr in out.sr)
        heatmaps = tuple(h.float().contiguous() for h in out.heatmaps)
        return NetworkOutput(
            images=images[-1],
            heatmaps=heatmaps[-1],
            step_images=images if all_steps else (),
            step_heatmaps=heatmaps if all_steps else (),
        )


def official_uint8(images: torch.Tensor) -> torch.Tensor:
    """``(images * 255).clamp(0, 255).round()`` as uint8, the official ``quantize`` (docs/specs/dic.md §3).

    ``torch.round`` rounds half to even, as the official code does. The golden tests compare
    outputs with the official uint8 images through this; the pipeline quantises its own way.
    """
    return (images.float() * 255.0).clamp(0, 255).round().to(torch.uint8)
