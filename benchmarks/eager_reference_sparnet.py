"""A straightforward eager fp32 SPARNet generator: the baseline of the SPARNet latency target (issue 16).

The same architecture as :class:`dicsr.families.sparnet.SPARNet` (docs/specs/sparnet.md §2–§3),
written plainly the way the official ``models/blocks.py`` and ``models/sparnet.py`` are structured,
with none of dicsr's choices:

* ``nn.ReflectionPad2d`` as its own module before every convolution (dicsr uses the convolution's
  ``padding_mode="reflect"``);
* norm and activation wrappers with the official child names (``norm.norm``, ``relu.func``);
* the attention hourglass built and run recursively, returning ``h * map`` like the official block;
* the official constructor arithmetic (``ch_clip``, running ``hg_depth``).

Module names mirror the official ones, so a dicsr / official SPARNet state dict loads with
``strict=True`` (SPARNetHD after dicsr's spectral-norm fold). Benchmark-only code: not part of the
installed package.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["EagerReferenceSPARNet", "load_reference"]


class NormLayer(nn.Module):
    def __init__(self, channels: int, norm_type: str) -> None:
        super().__init__()
        if norm_type == "bn":
            self.norm: nn.Module = nn.BatchNorm2d(channels)
        elif norm_type == "in":
            self.norm = nn.InstanceNorm2d(channels, affine=True)
        else:
            self.norm = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x)


class ReluLayer(nn.Module):
    def __init__(self, relu_type: str) -> None:
        super().__init__()
        self.func: nn.Module = nn.LeakyReLU(0.2, inplace=True) if relu_type == "leakyrelu" else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.func(x)


class ConvLayer(nn.Module):
    def __init__(
        self, cin: int, cout: int, scale: str = "none", norm_type: str = "none", relu_type: str = "none"
    ) -> None:
        super().__init__()
        self.scale = scale
        self.reflection_pad = nn.ReflectionPad2d(1)
        stride = 2 if scale == "down" else 1
        self.conv2d = nn.Conv2d(cin, cout, 3, stride, bias=norm_type in ("pixel", "none"))
        self.relu = ReluLayer(relu_type)
        self.norm = NormLayer(cout, norm_type)

    def forward(self, x: Tensor) -> Tensor:
        if self.scale == "up":
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        out = self.conv2d(self.reflection_pad(x))
        return self.relu(self.norm(out))


class HourGlassBlock(nn.Module):
    def __init__(self, depth: int, c_in: int, c_out: int, norm_type: str, c_mid: int = 64) -> None:
        super().__init__()
        self.depth, self.c_in, self.c_mid, self.norm_type = depth, c_in, c_mid, norm_type
        self._generate_network(depth)
        self.out_block = nn.Sequential(ConvLayer(c_mid, c_out), nn.Sigmoid())

    def _generate_network(self, level: int) -> None:
        c1 = self.c_in if level == self.depth else self.c_mid
        c2 = self.c_mid
        self.add_module(f"b1_{level}", ConvLayer(c1, c2, norm_type=self.norm_type, relu_type="leakyrelu"))
        self.add_module(
            f"b2_{level}", ConvLayer(c1, c2, scale="down", norm_type=self.norm_type, relu_type="leakyrelu")
        )
        if level > 1:
            self._generate_network(level - 1)
        else:
            self.add_module(
                f"b2_plus_{level}", ConvLayer(c2, c2, norm_type=self.norm_type, relu_type="leakyrelu")
            )
        self.add_module(
            f"b3_{level}", ConvLayer(c2, c2, scale="up", norm_type=self.norm_type, relu_type="leakyrelu")
        )

    def _forward(self, level: int, x: Tensor) -> Tensor:
        up1 = self._modules[f"b1_{level}"](x)
        low1 = self._modules[f"b2_{level}"](x)
        low2 = self._forward(level - 1, low1) if level > 1 else self._modules[f"b2_plus_{level}"](low1)
        up2 = self._modules[f"b3_{level}"](low2)
        if up1.shape[2:] != up2.shape[2:]:
            up2 = F.interpolate(up2, up1.shape[2:])
        return up1 + up2

    def forward(self, x: Tensor) -> Tensor:
        attention = self.out_block(self._forward(self.depth, x))
        return x * attention


class ResidualBlock(nn.Module):
    def __init__(
        self, c_in: int, c_out: int, norm_type: str, scale: str, hg_depth: int, att_name: str
    ) -> None:
        super().__init__()
        if scale == "none" and c_in == c_out:
            self.shortcut_func: nn.Module = nn.Identity()
        else:
            self.shortcut_func = ConvLayer(c_in, c_out, scale)
        scale_config = {"down": ("none", "down"), "up": ("up", "none"), "none": ("none", "none")}[scale]
        self.preact_func = nn.Sequential(NormLayer(c_in, norm_type), ReluLayer("leakyrelu"))
        self.conv1 = ConvLayer(c_in, c_out, scale_config[0], norm_type, "leakyrelu")
        self.conv2 = ConvLayer(c_out, c_out, scale_config[1], norm_type, "none")
        c_attn = 1 if att_name == "spar" else c_out
        self.att_func = HourGlassBlock(hg_depth, c_out, c_attn, norm_type)

    def forward(self, x: Tensor) -> Tensor:
        identity = self.shortcut_func(x)
        out = self.conv2(self.conv1(self.preact_func(x)))
        return identity + self.att_func(out)


class EagerReferenceSPARNet(nn.Module):
    """The official ``SPARNet`` generator structure; arguments as in ``models/sparnet.py``."""

    def __init__(
        self,
        min_ch: int = 32,
        max_ch: int = 128,
        in_size: int = 128,
        out_size: int = 128,
        min_feat_size: int = 16,
        res_depth: int = 10,
        norm_type: str = "bn",
        att_name: str = "spar",
        bottleneck_size: int = 4,
    ) -> None:
        super().__init__()

        def ch_clip(x: int) -> int:
            return max(min_ch, min(x, max_ch))

        down_steps = int(math.log2(in_size // min_feat_size))
        up_steps = int(math.log2(out_size // min_feat_size))
        n_ch = ch_clip(max_ch // (down_steps + 1))
        hg_depth = int(math.log2(64 / bottleneck_size))
        encoder: list[nn.Module] = [ConvLayer(3, n_ch, "none")]
        for _ in range(down_steps):
            cin, cout = ch_clip(n_ch), ch_clip(n_ch * 2)
            encoder.append(ResidualBlock(cin, cout, norm_type, "down", hg_depth, att_name))
            n_ch *= 2
            hg_depth -= 1
        hg_depth += 1
        self.encoder = nn.Sequential(*encoder)
        res_layers = [
            ResidualBlock(ch_clip(n_ch), ch_clip(n_ch), norm_type, "none", hg_depth, att_name)
            for _ in range(res_depth + 3 - down_steps)
        ]
        self.res_layers = nn.Sequential(*res_layers)
        decoder: list[nn.Module] = []
        for _ in range(up_steps):
            hg_depth += 1
            cin, cout = ch_clip(n_ch), ch_clip(n_ch // 2)
            decoder.append(ResidualBlock(cin, cout, norm_type, "up", hg_depth, att_name))
            n_ch //= 2
        self.decoder = nn.Sequential(*decoder)
        self.out_conv = ConvLayer(ch_clip(n_ch), 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.out_conv(self.decoder(self.res_layers(self.encoder(x))))


def load_reference(state_dict: dict[str, Tensor], **kwargs: object) -> EagerReferenceSPARNet:
    """An :class:`EagerReferenceSPARNet` (official constructor ``kwargs``) in eval mode, loaded strictly."""
    model = EagerReferenceSPARNet(**kwargs)  # type: ignore[arg-type]
    model.load_state_dict(state_dict, strict=True)
    return model.eval()
