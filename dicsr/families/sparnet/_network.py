"""SPARNet, SPARNet-Light and SPARNetHD (Chen et al., "Learning Spatial Attention for Face
Super-Resolution", IEEE TIP 2021), written from docs/specs/sparnet.md,
the specification of the official code, cited by section.

The four released generators are one class with different settings (docs/specs/sparnet.md §1);
:data:`SPARNET_PRESETS` holds them. The network works in the official value space: input and output
are RGB in [-1, 1] (the output is not clamped, docs/specs/sparnet.md §7.13). Resizing, normalisation
and quantisation belong to the adapter.

Module names deliberately repeat the official ones (``encoder``, ``res_layers``, ``decoder``,
``out_conv``, ``shortcut_func``, ``preact_func``, ``conv1``/``conv2``, ``conv2d``, ``norm.norm``,
``att_func``, ``b1_4``, ``b2_plus_1``, ``out_block`` ...): the state dict then *is* the official
checkpoint layout (docs/specs/sparnet.md §4) and official files load with ``strict=True`` without a renaming
table. The one exception is SPARNetHD's spectral norm, which is folded into plain ``conv2d.weight``
tensors by :func:`fold_spectral_norm` before loading (docs/specs/sparnet.md §3 "Spectral norm").

Attention maps are returned, never stored on a module (the official code keeps the last map in
``att_map``, which races when one network serves several threads): use
:meth:`SPARNet.forward_with_attention`, or a forward hook on any ``<block>.att_func`` submodule,
whose output is that block's map.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SPARNET_PRESETS", "SPARNet", "SPARNetConfig", "fold_spectral_norm"]

AttentionKind = Literal["2d", "3d"]
NormKind = Literal["bn", "in"]
_Scale = Literal["none", "down", "up"]

#: Width of every attention hourglass, also inside the 512-channel SPARNetHD blocks (docs/specs/sparnet.md §2,
#: docs/specs/sparnet.md §7.7).
_HOURGLASS_CHANNELS = 64
#: Negative slope of every LeakyReLU in the generator (docs/specs/sparnet.md §7.10).
_LEAKY_SLOPE = 0.2
_STAGES = ("encoder", "res_layers", "decoder")
_POSITIVE_FIELDS = ("min_channels", "max_channels", "in_size", "out_size", "min_feat_size", "bottleneck_size")


@dataclass(frozen=True)
class SPARNetConfig:
    """Hyper-parameters of the SPARNet generator (the official ``SPARNet(...)`` arguments,
    docs/specs/sparnet.md §1, §3).

    Attributes:
        min_channels: lower clip of every block width.
        max_channels: upper clip of every block width (128 SPARNet, 512 SPARNetHD).
        in_size: side of the input the architecture is laid out for; with ``min_feat_size`` it
            fixes the number of down-sampling blocks. The network is fully convolutional and
            also runs at other sizes (see :attr:`input_size_multiple`, :attr:`min_input_size`).
        out_size: side of the output at ``in_size`` input (number of up-sampling blocks).
        min_feat_size: side of the body's feature maps at ``in_size`` input.
        res_depth: the official ``--res_depth``; the body has ``res_depth + 3 - down_steps``
            blocks, not ``res_depth`` (docs/specs/sparnet.md §3).
        attention: ``"2d"`` one-channel spatial map (official ``spar``) or ``"3d"`` one map per
            channel (``spar3d``).
        norm: ``"bn"`` BatchNorm (SPARNet) or ``"in"`` affine InstanceNorm (SPARNetHD).
        bottleneck_size: the official ``--bottleneck_size``; it only sets the depth of the first
            hourglass, ``log2(64 / bottleneck_size)`` (docs/specs/sparnet.md §3).

    Raises:
        ValueError: a value of the wrong type or range, or a layout the network cannot run at
            (an hourglass that would reach less than 2 px, docs/specs/sparnet.md §7.16).
    """

    min_channels: int = 32
    max_channels: int = 128
    in_size: int = 128
    out_size: int = 128
    min_feat_size: int = 16
    res_depth: int = 10
    attention: AttentionKind = "2d"
    norm: NormKind = "bn"
    bottleneck_size: int = 4

    def __post_init__(self) -> None:
        for name in _POSITIVE_FIELDS:
            _require_int(name, getattr(self, name), minimum=1)
        _require_int("res_depth", self.res_depth, minimum=0)
        if self.min_channels > self.max_channels:
            raise ValueError(
                f"SPARNetConfig: min_channels ({self.min_channels}) exceeds "
                f"max_channels ({self.max_channels})"
            )
        if self.attention not in ("2d", "3d"):
            raise ValueError(f"SPARNetConfig: attention must be '2d' or '3d', got {self.attention!r}")
        if self.norm not in ("bn", "in"):
            raise ValueError(f"SPARNetConfig: norm must be 'bn' or 'in', got {self.norm!r}")
        for name in ("in_size", "out_size"):
            size = getattr(self, name)
            if size % self.min_feat_size or not _is_power_of_two(size // self.min_feat_size):
                raise ValueError(
                    f"SPARNetConfig: {name} ({size}) must be min_feat_size ({self.min_feat_size}) "
                    f"times a power of two"
                )
        if self.bottleneck_size > _HOURGLASS_CHANNELS or not _is_power_of_two(self.bottleneck_size):
            raise ValueError(
                f"SPARNetConfig: bottleneck_size must be a power of two up to {_HOURGLASS_CHANNELS}, "
                f"got {self.bottleneck_size}"
            )
        shallowest = min(block.hourglass_depth for block in _plan_blocks(self))
        if shallowest < 1:
            # The official hourglass degenerates to an identity at depth 0 (docs/specs/sparnet.md §2); no
            # released network does that, so such a layout is refused instead of silently dropping attention.
            raise ValueError(
                f"SPARNetConfig: {self.down_steps} down-sampling steps leave no attention hourglass "
                f"for bottleneck_size {self.bottleneck_size}; use a larger min_feat_size or a smaller "
                f"bottleneck_size"
            )
        if self.in_size % self.input_size_multiple or self.in_size < self.min_input_size:
            raise ValueError(
                f"SPARNetConfig: in_size {self.in_size} cannot run; this layout needs a multiple of "
                f"{self.input_size_multiple} of at least {self.min_input_size} px "
                f"(docs/specs/sparnet.md §7.16)"
            )

    @property
    def down_steps(self) -> int:
        """Number of stride-2 blocks in the encoder, ``log2(in_size / min_feat_size)``."""
        return (self.in_size // self.min_feat_size).bit_length() - 1

    @property
    def up_steps(self) -> int:
        """Number of nearest-x2 blocks in the decoder, ``log2(out_size / min_feat_size)``."""
        return (self.out_size // self.min_feat_size).bit_length() - 1

    @property
    def input_size_multiple(self) -> int:
        """Input height and width must be multiples of this (every stride-2 conv halves exactly)."""
        return 2 ** max(block.deepest_stride_log2 for block in _plan_blocks(self))

    @property
    def min_input_size(self) -> int:
        """Smallest input side: every hourglass bottleneck must keep 2 px for reflection padding
        (docs/specs/sparnet.md §7.16)."""
        return 2 * self.input_size_multiple


@dataclass(frozen=True)
class _BlockSpec:
    """One feature-attention unit of the layout (docs/specs/sparnet.md §3 tables)."""

    stage: str
    c_in: int
    c_out: int
    scale: _Scale
    hourglass_depth: int
    #: log2 of (input side / this block's output side); negative once the decoder passes in_size.
    stride_log2: int

    @property
    def deepest_stride_log2(self) -> int:
        """log2 of (input side / side of this block's hourglass bottleneck)."""
        return self.stride_log2 + self.hourglass_depth


def _plan_blocks(config: SPARNetConfig) -> tuple[_BlockSpec, ...]:
    """Widths, scales and hourglass depths of every block, as the official constructor derives them
    (docs/specs/sparnet.md §3)."""

    def clip(channels: int) -> int:
        return max(config.min_channels, min(channels, config.max_channels))

    down, up = config.down_steps, config.up_steps
    # docs/specs/sparnet.md §3, §7.9: the base width is max // (down_steps + 1): 32 for
    # SPARNet but 512 // 5 = 102 for HD.
    channels = clip(config.max_channels // (down + 1))
    depth = int(math.log2(_HOURGLASS_CHANNELS // config.bottleneck_size))
    blocks: list[_BlockSpec] = []
    for i in range(down):
        # The running width is doubled unclipped and only clipped when used (HD: 816, 1632 -> 512).
        blocks.append(_BlockSpec("encoder", clip(channels), clip(2 * channels), "down", depth, i + 1))
        channels *= 2
        depth -= 1
    depth += 1
    # docs/specs/sparnet.md §3: body depth is res_depth + 3 - down_steps: 10 for SPARNet, 1 for Light, 9
    # for HD.
    for _ in range(config.res_depth + 3 - down):
        blocks.append(_BlockSpec("res_layers", clip(channels), clip(channels), "none", depth, down))
    for j in range(up):
        depth += 1
        blocks.append(_BlockSpec("decoder", clip(channels), clip(channels // 2), "up", depth, down - j - 1))
        channels //= 2
    return tuple(blocks)


def _stem_channels(config: SPARNetConfig) -> tuple[int, int]:
    """Widths after the first conv and before the last conv (``n_ch`` at both ends,
    docs/specs/sparnet.md §3)."""
    # Never empty: there are down_steps encoder blocks, or res_depth + 3 body blocks when down_steps is 0.
    blocks = _plan_blocks(config)
    return blocks[0].c_in, blocks[-1].c_out


def _require_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"SPARNetConfig: {name} must be an integer >= {minimum}, got {value!r}")


def _is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


#: The released generators (docs/specs/sparnet.md §1), by dicsr preset name.
SPARNET_PRESETS: dict[str, SPARNetConfig] = {
    # SPARNet (Released) = SPARNet_S16_V4_Attn2D: all class/option defaults.
    "sparnet": SPARNetConfig(),
    # SPARNetLight_Attn3D: --res_depth 1 --att_name spar3d.
    "sparnet-light": SPARNetConfig(res_depth=1, attention="3d"),
    # SPARNetHD_V4_Attn2D / _Attn3D: 512 in/out, 32 px body, InstanceNorm (spectral norm folded away).
    "sparnethd-2d": SPARNetConfig(max_channels=512, in_size=512, out_size=512, min_feat_size=32, norm="in"),
    "sparnethd-3d": SPARNetConfig(
        max_channels=512, in_size=512, out_size=512, min_feat_size=32, norm="in", attention="3d"
    ),
}


# --- building blocks (docs/specs/sparnet.md §2)
# ---------------------------------------------------------------------


class _NormLayer(nn.Module):
    """The official ``NormLayer``: a wrapper whose child is called ``norm`` (keys ``<p>.norm.*``)."""

    def __init__(self, channels: int, kind: NormKind) -> None:
        super().__init__()
        # IN is affine without running statistics: it normalises each sample even in eval
        # (docs/specs/sparnet.md §2, §7.11).
        self.norm = nn.BatchNorm2d(channels) if kind == "bn" else nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x)


class _ConvLayer(nn.Module):
    """The official ``ConvLayer``: [nearest x2] -> reflection pad 1 -> 3x3 conv -> [norm] -> [LeakyReLU].

    Padding is reflection before every conv, stride-2 ones and after up-sampling included
    (docs/specs/sparnet.md §7.1); ``padding_mode="reflect"`` computes exactly ``ReflectionPad2d(1)`` followed
    by an unpadded conv. The conv has a bias only when no norm follows (docs/specs/sparnet.md §7.3).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        *,
        scale: _Scale = "none",
        norm: NormKind | None = None,
        activate: bool = False,
    ) -> None:
        super().__init__()
        self.upsample = scale == "up"
        self.conv2d = nn.Conv2d(
            c_in,
            c_out,
            kernel_size=3,
            stride=2 if scale == "down" else 1,
            padding=1,
            padding_mode="reflect",
            bias=norm is None,
        )
        # Registered conv2d -> relu -> norm like the official module (state-dict order); applied
        # conv -> norm -> act. In-place is safe: it always follows a conv or norm output.
        self.relu: nn.Module = nn.LeakyReLU(_LEAKY_SLOPE, inplace=True) if activate else nn.Identity()
        self.norm: nn.Module = _NormLayer(c_out, norm) if norm is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.relu(self.norm(self.conv2d(x)))


class _AttentionHourglass(nn.Module):
    """The official ``HourGlassBlock`` (docs/specs/sparnet.md §2), returning the sigmoid attention map itself.

    The official block returns ``h * map``; this one returns ``map`` and the enclosing unit does the
    product, so the map is an ordinary return value (and what a forward hook on ``att_func`` sees).
    Each level adds a full conv skip branch (``b1_L``) to the up-sampled lower level (``b3_L``).
    """

    def __init__(self, depth: int, c_in: int, c_map: int, norm: NormKind) -> None:
        super().__init__()
        self.depth = depth
        mid = _HOURGLASS_CHANNELS
        # Registered b1_D, b2_D, ..., b1_1, b2_1, b2_plus_1, b3_1, ..., b3_D, out_block: the official order.
        for level in range(depth, 0, -1):
            c_level = c_in if level == depth else mid
            self.add_module(f"b1_{level}", _ConvLayer(c_level, mid, norm=norm, activate=True))
            self.add_module(f"b2_{level}", _ConvLayer(c_level, mid, scale="down", norm=norm, activate=True))
        self.b2_plus_1 = _ConvLayer(mid, mid, norm=norm, activate=True)
        for level in range(1, depth + 1):
            self.add_module(f"b3_{level}", _ConvLayer(mid, mid, scale="up", norm=norm, activate=True))
        # Only the final conv has a bias (no norm after it); sigmoid, not softmax
        # (docs/specs/sparnet.md §7.6).
        self.out_block = nn.Sequential(_ConvLayer(mid, c_map), nn.Sigmoid())

    def forward(self, h: Tensor) -> Tensor:
        skips: list[Tensor] = []
        x = h
        for level in range(self.depth, 0, -1):
            skips.append(getattr(self, f"b1_{level}")(x))
            x = getattr(self, f"b2_{level}")(x)
        x = self.b2_plus_1(x)
        for level in range(1, self.depth + 1):
            x = getattr(self, f"b3_{level}")(x)
            skip = skips.pop()
            if x.shape[-2:] != skip.shape[-2:]:
                # Official fallback for odd sizes (nearest); never taken at valid sizes
                # (docs/specs/sparnet.md §2).
                x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = skip + x
        return self.out_block(x)


class _FeatureAttentionUnit(nn.Module):
    """The official ``ResidualBlock`` (FAU, docs/specs/sparnet.md §2): ``shortcut(x) + h * A(h)``.

    Pre-activation: ``h = conv2(conv1(LeakyReLU(norm(x))))``; down blocks stride in ``conv2``, up blocks
    up-sample at the start of ``conv1`` (docs/specs/sparnet.md §7.4); ``conv2`` has a norm but no
    activation and nothing follows the sum (docs/specs/sparnet.md §7.5). The shortcut is a plain conv
    whenever the block rescales, even at equal widths.
    """

    def __init__(self, spec: _BlockSpec, *, attention: AttentionKind, norm: NormKind) -> None:
        super().__init__()
        if spec.scale == "none" and spec.c_in == spec.c_out:
            self.shortcut_func: nn.Module = nn.Identity()
        else:
            self.shortcut_func = _ConvLayer(spec.c_in, spec.c_out, scale=spec.scale)
        # In-place LeakyReLU is safe here only because BN/IN return a new tensor
        # (docs/specs/sparnet.md §7.17).
        self.preact_func = nn.Sequential(
            _NormLayer(spec.c_in, norm), nn.LeakyReLU(_LEAKY_SLOPE, inplace=True)
        )
        conv1_scale: _Scale = "up" if spec.scale == "up" else "none"
        conv2_scale: _Scale = "down" if spec.scale == "down" else "none"
        self.conv1 = _ConvLayer(spec.c_in, spec.c_out, scale=conv1_scale, norm=norm, activate=True)
        self.conv2 = _ConvLayer(spec.c_out, spec.c_out, scale=conv2_scale, norm=norm)
        c_map = 1 if attention == "2d" else spec.c_out
        self.att_func = _AttentionHourglass(spec.hourglass_depth, spec.c_out, c_map, norm)

    def forward_with_attention(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The block output and its attention map (B x 1 or B x C_out, at the output size)."""
        identity = self.shortcut_func(x)
        h = self.conv2(self.conv1(self.preact_func(x)))
        attention = self.att_func(h)
        # The map weights the conv2 output, not the identity or the sum (docs/specs/sparnet.md §7.6).
        return identity + h * attention, attention

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_attention(x)[0]


# --- the generator (docs/specs/sparnet.md §3)
# -------------------------------------------------------------------------


class SPARNet(nn.Module):
    """The SPARNet generator: conv -> encoder FAUs -> body FAUs -> decoder FAUs -> conv
    (docs/specs/sparnet.md §3).

    Input and output are NCHW RGB in [-1, 1]; the output is neither clamped nor tanh'ed and no
    global skip adds the input (docs/specs/sparnet.md §7.13, §7.14). SPARNet expects the
    16 px face PIL-bicubic up-sampled to 128 px, SPARNetHD a 512 px FFHQ-aligned face
    (docs/specs/sparnet.md §5).

    Args:
        config: the layout; see :data:`SPARNET_PRESETS` for the released ones.
    """

    def __init__(self, config: SPARNetConfig = SPARNetConfig()) -> None:
        super().__init__()
        self.config = config
        first, last = _stem_channels(config)
        blocks = _plan_blocks(config)
        units = {stage: [] for stage in _STAGES}
        for spec in blocks:
            units[spec.stage].append(
                _FeatureAttentionUnit(spec, attention=config.attention, norm=config.norm)
            )
        # docs/specs/sparnet.md §7.2: the official ConvLayer(3, n_ch, 3, 1) passes 1 as `scale`: a
        # plain conv with bias.
        self.encoder = nn.Sequential(_ConvLayer(3, first), *units["encoder"])
        self.res_layers = nn.Sequential(*units["res_layers"])
        self.decoder = nn.Sequential(*units["decoder"])
        self.out_conv = _ConvLayer(last, 3)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Re-initialise like the official ``init_weights`` (docs/specs/sparnet.md §8).

        Conv weights N(0, 0.02), conv biases 0, BatchNorm weights N(1, 0.02) and biases 0; InstanceNorm
        keeps torch's (1, 0). Loading a checkpoint overwrites all of it.
        """
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def named_attention_units(self) -> Iterator[tuple[str, nn.Module]]:
        """Every feature-attention unit in forward order, with its official path (``"encoder.1"``...)."""
        for stage in _STAGES:
            for index, module in getattr(self, stage).named_children():
                if isinstance(module, _FeatureAttentionUnit):
                    yield f"{stage}.{index}", module

    def forward(self, x: Tensor) -> Tensor:
        """Restore a batch: B x 3 x H x W in [-1, 1] -> B x 3 x H' x W' (H' = H at the released layouts)."""
        self._check_input(x)
        return self.out_conv(self.decoder(self.res_layers(self.encoder(x))))

    def forward_with_attention(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Like :meth:`forward`, also returning every attention map.

        Returns:
            The output and a dict keyed by the official module path of each attention branch
            (``"encoder.1.att_func"``, ..., ``"decoder.2.att_func"``), in forward order; each map
            is B x 1 x h x w (``"2d"``) or B x C x h x w (``"3d"``) in [0, 1] at its block's size.
        """
        self._check_input(x)
        maps: dict[str, Tensor] = {}
        h = self.encoder[0](x)
        for path, unit in self.named_attention_units():
            h, maps[f"{path}.att_func"] = unit.forward_with_attention(h)
        return self.out_conv(h), maps

    def _check_input(self, x: Tensor) -> None:
        if torch.jit.is_tracing() or torch.jit.is_scripting():
            return
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"SPARNet expects a B x 3 x H x W batch, got shape {tuple(x.shape)}")
        multiple, smallest = self.config.input_size_multiple, self.config.min_input_size
        height, width = x.shape[-2:]
        if height % multiple or width % multiple or min(height, width) < smallest:
            raise ValueError(
                f"SPARNet input is {height}x{width}; this layout needs sides that are multiples of "
                f"{multiple} and at least {smallest} px (feed the up-sampled face, e.g. "
                f"{self.config.in_size}x{self.config.in_size}, not the low-resolution crop; "
                f"docs/specs/sparnet.md §7.16)"
            )


# --- checkpoint helper (docs/specs/sparnet.md §3 "Spectral norm")
# ----------------------------------------------------


def fold_spectral_norm(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Fold ``torch.nn.utils.spectral_norm`` re-parametrisations into plain weights.

    Every triplet ``<p>.<name>_orig`` / ``<p>.<name>_u`` / ``<p>.<name>_v`` becomes one tensor
    ``<p>.<name> = W_orig / sigma`` with ``sigma = u · (W_orig.reshape(out, -1) @ v)`` computed from
    the stored ``u``, ``v`` exactly as spectral norm does in eval mode (no power iteration, no SVD;
    ``dim=0`` as for every ``Conv2d``). Other entries are passed through in their order; the input is
    not modified.

    Raises:
        ValueError: an ``_orig`` tensor without its ``_u``/``_v`` buffers, or mis-shaped buffers.
    """
    folded: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key.endswith("_orig"):
            stem = key[: -len("_orig")]
            u, v = state_dict.get(stem + "_u"), state_dict.get(stem + "_v")
            if u is None or v is None:
                raise ValueError(f"spectral norm of {stem!r}: found {key!r} but not {stem}_u and {stem}_v")
            folded[stem] = _fold_one(stem, value, u, v)
        elif key.endswith(("_u", "_v")) and key[:-2] + "_orig" in state_dict:
            continue
        else:
            folded[key] = value
    return folded


def _fold_one(stem: str, weight_orig: Tensor, u: Tensor, v: Tensor) -> Tensor:
    weight_mat = weight_orig.reshape(weight_orig.shape[0], -1)
    if u.shape != weight_mat.shape[:1] or v.shape != weight_mat.shape[1:]:
        raise ValueError(
            f"spectral norm of {stem!r}: u {tuple(u.shape)} / v {tuple(v.shape)} do not fit a weight of "
            f"shape {tuple(weight_orig.shape)}"
        )
    # Same ops as torch's eval-mode spectral norm, so the folded weight is bit-identical to its W / sigma.
    sigma = torch.dot(u, torch.mv(weight_mat, v))
    return weight_orig / sigma
