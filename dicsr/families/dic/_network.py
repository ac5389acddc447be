"""DIC / DICGAN generator (Ma et al., "Deep Face Super-Resolution with Iterative Collaboration
between Attentive Recovery and Landmark Estimation", CVPR 2020), exact to the official code.

Every fact below comes from docs/specs/dic.md, the specification of the official
``Maclory/Deep-Iterative-Collaboration`` code, cited by section ("docs/specs/dic.md §2.1"). The network works
in the official value space: RGB in [0, 1] minus the CelebA mean, no std division (docs/specs/dic.md §3); the
adapter in :mod:`dicsr.families.dic` owns that normalisation.

Module and attribute names (``conv_in``, ``first_block``, ``block``, ``upBlocks``, ``fusion_block``,
``HG``, ``hg``, ``res4_1``, ...) deliberately repeat the official ones, including their non-PEP-8
spelling and ``nn.Sequential`` indices: the state-dict keys must equal the official keys and shapes
(docs/specs/dic.md §4, 296 tensors), so official checkpoints load with ``strict=True`` and no renaming
table.

Differences from the official code that do not change any number:

* no recurrent state on the module: the official ``block.last_hidden`` attribute (docs/specs/dic.md §2)
  becomes an explicit argument, so one module can serve several threads at once;
* the channel concatenations inside the projection units are written once into a preallocated
  stack instead of re-concatenating all previous groups in every group (docs/specs/dic.md §2.1), and the
  projection units run image by image reusing one 256x256 stack per forward, so the largest
  temporaries are neither reallocated nor multiplied by the batch;
* residual sums, ReLUs and (at CPU inference) PReLUs run in place on freshly computed tensors (never
  on a tensor that is returned or read again);
* with ``all_steps=False`` the earlier steps' outputs are not kept.

One difference changes float32 rounding only: the 1x1 convolutions at 256x256 run as matrix
products on a channels-last stack read in place (:func:`_pointwise_conv_prelu`). They sum the same
products in another order than oneDNN's convolution: 1.7e-6 max abs difference on the golden SR
images (tests/test_dic_arch.py). The convolution path copied each strided prefix first, and those
copies (up to 75 MB, faulted in afresh on every call) cost more than the products themselves
(docs/performance.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DIC", "DIC_PRESETS", "DICConfig", "DICOutput", "merge_heatmaps"]


@dataclass(frozen=True)
class DICConfig:
    """Hyper-parameters of the DIC generator (the ``networks`` block of the official options).

    The same in all released configurations (docs/specs/dic.md §1).

    Attributes:
        in_channels: image channels in (RGB).
        out_channels: image channels out (RGB).
        num_features: width C of the super-resolution branch.
        num_steps: recurrent steps T.
        num_groups: projection groups G in each feedback block.
        hg_num_features: width F of the recurrent hourglass (its hidden state).
        num_keypoints: landmarks K (only the 68-point iBUG layout is implemented, docs/specs/dic.md §2.3).
        num_fusion_blocks: residual blocks in the attentive fusion module.
        scale: upscaling factor (only 8 is implemented, as in the official code).
    """

    in_channels: int = 3
    out_channels: int = 3
    num_features: int = 48
    num_steps: int = 4
    num_groups: int = 6
    hg_num_features: int = 256
    num_keypoints: int = 68
    num_fusion_blocks: int = 7
    scale: int = 8

    def __post_init__(self) -> None:
        for name in (
            "in_channels",
            "out_channels",
            "num_features",
            "num_steps",
            "num_groups",
            "hg_num_features",
            "num_fusion_blocks",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"DICConfig.{name} must be a positive integer, got {value!r}")
        if self.scale != 8:
            # The official DIC raises NotImplementedError for any other scale (docs/specs/dic.md §1).
            raise ValueError(f"DIC only supports scale 8 (as the official code), got {self.scale!r}")
        if self.num_keypoints != 68:
            # The attention groups are defined for the 68-point layout only; the official 194-point
            # branch is dead code for every released configuration (docs/specs/dic.md §2.3).
            raise ValueError(f"DIC only supports 68 keypoints, got {self.num_keypoints!r}")
        if self.hg_num_features % 2:
            raise ValueError(f"DICConfig.hg_num_features must be even, got {self.hg_num_features}")


#: Released configurations. DIC and DICGAN, trained on CelebA or Helen, all build this identical
#: generator (the ``networks`` block is the same in all eight official option files, docs/specs/dic.md §1), so
#: one preset serves the four official checkpoints.
DIC_PRESETS: dict[str, DICConfig] = {"dic": DICConfig()}


class DICOutput(NamedTuple):
    """Result of :meth:`DIC.forward`.

    Attributes:
        sr: super-resolved images of each kept step, B x 3 x 8h x 8w, in the official mean-subtracted
            space (not clamped); the last entry is the final result.
        heatmaps: landmark heatmaps of each kept step, B x 68 x 2h x 2w (1/4 of the SR side); the
            heatmaps of step t are computed on ``sr[t]``.
    """

    sr: tuple[Tensor, ...]
    heatmaps: tuple[Tensor, ...]


# --- small building blocks --------------------------------------------------------------------


def _prelu() -> nn.PReLU:
    # One learnable slope per layer, initialised to 0.2 (docs/specs/dic.md §2, "Notation").
    return nn.PReLU(num_parameters=1, init=0.2)


class _ConvPReLU(nn.Sequential):
    """Official ``ConvBlock`` / ``DeconvBlock`` with PReLU: keys ``0.weight``, ``0.bias``, ``1.weight``."""

    def forward(self, x: Tensor) -> Tensor:
        return self.activate_(self[0](x))

    def activate_(self, y: Tensor) -> Tensor:
        """The PReLU on a freshly computed ``y``, in place where that changes no number.

        At inference on CPU it runs as an in-place leaky ReLU with the learned slope (the same
        ``x > 0 ? x : slope * x`` per element, bitwise equal): most of these outputs are 256x256
        maps of 12 MB, and a second such tensor per layer is memory the allocator faults in again
        on every call. Where the slope needs a gradient, or off CPU (reading the slope would
        synchronise a GPU), it is the plain PReLU.
        """
        slope = self[1].weight
        wants_gradient = torch.is_grad_enabled() and slope.requires_grad
        # Under torch.compile the slope read would break the graph (the compiler fuses the PReLU);
        # under tracing (ONNX export) it would bake the slope into the graph as a constant.
        if y.device.type == "cpu" and slope.numel() == 1 and not wants_gradient and not _graph_capture():
            return F.leaky_relu_(y, slope.item())
        return self[1](y)


def _compiling() -> bool:
    is_compiling = getattr(torch.compiler, "is_compiling", None)  # torch >= 2.3
    return bool(is_compiling is not None and is_compiling())


def _graph_capture() -> bool:
    """Whether the forward is being captured as a graph (torch.compile, or tracing for ONNX export)."""
    return _compiling() or torch.jit.is_tracing()


def _needs_concatenating_path(features: Tensor) -> bool:
    """Whether the projections take the official concatenating formulation instead of the stack.

    Autograd cannot differentiate through the stack, which later groups overwrite in place; a
    tracer (ONNX export) would record the stack's in-place writes as hundreds of MB of constants
    and scatter copies, while the concatenations export as plain ``Concat`` nodes.
    """
    return features.requires_grad or torch.jit.is_tracing()


def _pointwise_conv_prelu(block: _ConvPReLU, x: Tensor) -> Tensor:
    """A 1x1 ``block`` on a 1 x C x H x W channels-last view as one matrix product, without a copy.

    ``x`` is a channel prefix of a wider channels-last stack: its pixels are rows of a matrix whose
    row stride is the stack's width, which BLAS reads in place. A convolution would first copy the
    strided view (up to 75 MB at 256x256, faulted in afresh on every call). Same sums as the
    convolution, accumulated in another order: float32 rounding differences only.
    """
    conv = block[0]
    _, channels, height, width = x.shape
    pixels = x.permute(0, 2, 3, 1).view(height * width, channels)
    weight = conv.weight.reshape(conv.out_channels, channels)
    out = torch.addmm(conv.bias, pixels, weight.t())  # every official ConvBlock has a bias
    return block.activate_(out.view(1, height, width, -1).permute(0, 3, 1, 2))


def _conv_prelu(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0
) -> _ConvPReLU:
    """Official ``ConvBlock`` with PReLU."""
    return _ConvPReLU(nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding), _prelu())


def _deconv_prelu(
    in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int
) -> _ConvPReLU:
    """Official ``DeconvBlock`` with PReLU; output side (H - 1)·s − 2p + k (docs/specs/dic.md §6.1)."""
    return _ConvPReLU(nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding), _prelu())


def _memory_format_of(tensor: Tensor) -> torch.memory_format:
    if (
        tensor.dim() == 4
        and not tensor.is_contiguous()
        and tensor.is_contiguous(memory_format=torch.channels_last)
    ):
        return torch.channels_last
    return torch.contiguous_format


def _empty_stack(like: Tensor, channels: int, height: int, width: int) -> Tensor:
    """Uninitialised B x channels x height x width tensor with ``like``'s dtype, device and layout."""
    return torch.empty(
        (like.shape[0], channels, height, width),
        dtype=like.dtype,
        device=like.device,
        memory_format=_memory_format_of(like),
    )


# --- attentive fusion (docs/specs/dic.md §2.2)
# ---------------------------------------------------------------


class _GroupedResBlock(nn.Module):
    """``u + conv(lrelu(conv(u)))`` with grouped 3x3 convolutions, residual scale 1
    (docs/specs/dic.md §2.2)."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.res = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, groups=groups),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, groups=groups),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.res(x).add_(x)


class FeatureHeatmapFusion(nn.Module):
    """Attentive fusion: one private feature branch per facial component, mixed by a per-pixel
    softmax over the components (official ``FeatureHeatmapFusingBlock``, docs/specs/dic.md §2.2)."""

    def __init__(self, num_features: int, num_components: int, num_blocks: int) -> None:
        super().__init__()
        self.num_components = num_components
        width = num_features * num_components
        self.conv_in = nn.Sequential(nn.Conv2d(num_features, width, 1), nn.LeakyReLU(0.2, inplace=True))
        # groups = num_components: channel block p is a private branch of component p
        # (docs/specs/dic.md §2.2).
        self.resnet = nn.Sequential(*(_GroupedResBlock(width, num_components) for _ in range(num_blocks)))

    def forward(self, features: Tensor, component_maps: Tensor) -> Tensor:
        """Fuse B x C x h x w ``features`` under B x P x h x w ``component_maps`` (pre-softmax)."""
        branches = self.resnet(self.conv_in(features))
        b, _, h, w = branches.shape
        # Softmax over the P components per pixel, no temperature (docs/specs/dic.md §2.2). Done in float32 so
        # half-precision runs get an accurate attention; a no-op for float32.
        attention = torch.softmax(component_maps.float(), dim=1).to(branches.dtype)
        branches = branches.view(b, self.num_components, -1, h, w)
        return (branches * attention.unsqueeze(2)).sum(dim=1)


# Heatmap channel ranges of the five facial components of the 68-point iBUG layout, 0-based and
# end-exclusive, in the official order (docs/specs/dic.md §2.3). "Silhouette" includes both eyebrows (17-26).
_COMPONENTS_68 = (
    (36, 42),  # "left eye" (image-left, the subject's right eye)
    (42, 48),  # "right eye"
    (27, 36),  # nose: bridge and base
    (48, 68),  # mouth: outer and inner lips
    (0, 27),  # jaw 0-16 plus eyebrows 17-26
)
# Per-channel maxima below this are replaced by it before normalising (a clamp, not an epsilon:
# negative maxima also become 0.05, docs/specs/dic.md §2.3 and §6.6).
_HEATMAP_MIN_PEAK = 0.05


def merge_heatmaps(heatmaps: Tensor) -> Tensor:
    """B x 68 x h x w heatmaps -> B x 5 x h x w component maps (official ``merge_heatmap_5``).

    Each channel is divided by its spatial maximum clamped to at least 0.05, then the channels of
    each facial component are summed (docs/specs/dic.md §2.3). Computed in float32.
    """
    heatmaps = heatmaps.float()
    peaks = heatmaps.flatten(2).amax(dim=2).clamp_min(_HEATMAP_MIN_PEAK)
    normalised = heatmaps / peaks[:, :, None, None]
    return torch.stack([normalised[:, lo:hi].sum(dim=1) for lo, hi in _COMPONENTS_68], dim=1)


# --- recurrent SR block (docs/specs/dic.md §2.1)
# -------------------------------------------------------------


class FeedbackBlock(nn.Module):
    """SRFBN projection feedback block at scale 8 (docs/specs/dic.md §2.1).

    ``first_block`` (step 0) compresses the features alone; ``block`` (steps >= 1) compresses
    ``cat[features, hidden]`` and passes the result through the attentive fusion, whose output
    *replaces* L0 (no skip around it, docs/specs/dic.md §6.5).
    """

    def __init__(
        self,
        num_features: int,
        num_groups: int,
        *,
        recurrent: bool,
        num_fusion_blocks: int | None = None,
        num_components: int = 5,
    ) -> None:
        super().__init__()
        c = num_features
        self.num_features = num_features
        self.num_groups = num_groups
        # Scale 8 -> projection kernel 12, stride 8, padding 2: 32x32 <-> 256x256 (docs/specs/dic.md §2.1).
        self.projection = kernel, stride, padding = 12, 8, 2
        self.compress_in = _conv_prelu(2 * c if recurrent else c, c, 1)
        self.upBlocks = nn.ModuleList(_deconv_prelu(c, c, kernel, stride, padding) for _ in range(num_groups))
        self.downBlocks = nn.ModuleList(_conv_prelu(c, c, kernel, stride, padding) for _ in range(num_groups))
        self.uptranBlocks = nn.ModuleList(_conv_prelu(c * (g + 1), c, 1) for g in range(1, num_groups))
        self.downtranBlocks = nn.ModuleList(_conv_prelu(c * (g + 1), c, 1) for g in range(1, num_groups))
        self.compress_out = _conv_prelu(num_groups * c, c, 1)
        # Registered last to keep the official state-dict order (docs/specs/dic.md §4).
        self.fusion_block = (
            FeatureHeatmapFusion(c, num_components, num_fusion_blocks)
            if num_fusion_blocks is not None
            else None
        )
        if recurrent != (self.fusion_block is not None):
            raise ValueError("the recurrent feedback block has a fusion module and the first one has not")

    def forward(
        self,
        features: Tensor,
        hidden: Tensor | None = None,
        component_maps: Tensor | None = None,
        *,
        scratch: Tensor | None = None,
    ) -> Tensor:
        """One step: B x C x h x w features (+ previous hidden and component maps) -> new hidden.

        ``scratch`` is a stack from :meth:`new_scratch` to reuse (its contents are overwritten);
        without it the block allocates one.
        """
        if self.fusion_block is None:
            first = self.compress_in(features)
        else:
            if hidden is None or component_maps is None:
                raise ValueError("the recurrent feedback block needs the hidden state and component maps")
            # cat order: features first, hidden second (docs/specs/dic.md §2.1, §6.4).
            first = self.fusion_block(self.compress_in(torch.cat([features, hidden], dim=1)), component_maps)

        # The projection units run one image at a time: the 256x256 maps give the cores enough
        # work without batching, and one high-resolution stack serves every image, so the
        # activation peak does not grow with the batch.
        if _needs_concatenating_path(first):
            return self._project_concatenating(first)
        if scratch is None:
            scratch = self.new_scratch(first)
        return torch.cat([self._project(image, scratch) for image in first.split(1)], dim=0)

    def new_scratch(self, features: Tensor) -> Tensor:
        """Zero-filled 1 x G·C x 8h x 8w channels-last stack for the projections of ``features``.

        Channels-last because every 256x256 operation is fastest there (oneDNN's transposed
        convolution writes NHWC without reordering, and a channel prefix of the stack is a strided
        matrix the 1x1 projections read in place). One stack can serve every call of a forward.
        """
        _, _, h, w = features.shape
        kernel, stride, padding = self.projection
        high_side = ((h - 1) * stride - 2 * padding + kernel, (w - 1) * stride - 2 * padding + kernel)
        # Zeros, not uninitialised memory: BLAS kernels may read a prefix's rows a little past its
        # last column (multiplying by zero padding), so stale NaN bit patterns there would poison
        # the products. Seen with bfloat16; afterwards the stack only ever holds activations.
        stack = torch.empty(
            (1, self.num_features * self.num_groups, *high_side),
            dtype=features.dtype,
            device=features.device,
            memory_format=torch.channels_last,
        )
        return stack.zero_()

    def _project(self, first: Tensor, high: Tensor) -> Tensor:
        """Up/down projection groups for one image (1 x C x h x w L0); ``high`` is scratch space."""
        c, groups = self.num_features, self.num_groups
        # ``low[:, :c*(g+1)]`` is cat(L0..Lg) and ``high[:, :c*(g+1)]`` is cat(H0..Hg), oldest
        # first (docs/specs/dic.md §2.1): each map is written once instead of re-concatenated in every group.
        low = _empty_stack(first, c * (groups + 1), *first.shape[-2:])
        low[:, :c].copy_(first)
        for g in range(groups):
            up_in = low[:, : c * (g + 1)]
            if g > 0:
                up_in = self.uptranBlocks[g - 1](up_in)
            # A channels-last input makes the transposed convolution write channels-last (its
            # fast path; the 32x32 input is cheap to convert).
            up = self.upBlocks[g](up_in.contiguous(memory_format=torch.channels_last))
            high[:, c * g : c * (g + 1)].copy_(up)
            down_in = high[:, : c * (g + 1)]
            if g > 0:
                # The 1x1 convolution at 256x256 over cat(H0..Hg) (docs/specs/dic.md §2.1).
                down_in = _pointwise_conv_prelu(self.downtranBlocks[g - 1], down_in)
            low[:, c * (g + 1) : c * (g + 2)].copy_(self.downBlocks[g](down_in))
        # compress_out sees L1..LG: L0 is excluded (docs/specs/dic.md §2.1, §6.4).
        return self.compress_out(low[:, c:])

    def _project_concatenating(self, first: Tensor) -> Tensor:
        """The projection groups as the official code writes them, for training and export
        (docs/specs/dic.md §2.1).

        Every group concatenates its predecessors afresh (see :func:`_needs_concatenating_path`).
        """
        lows, highs = [first], []
        for g in range(self.num_groups):
            up_in = torch.cat(lows, dim=1)
            highs.append(self.upBlocks[g](up_in if g == 0 else self.uptranBlocks[g - 1](up_in)))
            down_in = torch.cat(highs, dim=1)
            lows.append(self.downBlocks[g](down_in if g == 0 else self.downtranBlocks[g - 1](down_in)))
        return self.compress_out(torch.cat(lows[1:], dim=1))


# --- recurrent hourglass alignment branch (docs/specs/dic.md §2.4) ------------------------------------------


class ResidualBlock(nn.Module):
    """Hourglass residual block without BN: ``skip(x) + 1x1(3x3(relu(1x1(x))))`` (docs/specs/dic.md §2.4).

    There is no ReLU after the 3x3 convolution nor after the sum (docs/specs/dic.md §6.7).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = out_channels // 2
        self.conv_block = nn.Sequential(
            nn.Conv2d(in_channels, mid, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1),
            nn.Conv2d(mid, out_channels, 1),
        )
        self.skip_layer = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: Tensor) -> Tensor:
        skip = x if self.skip_layer is None else self.skip_layer(x)
        return self.conv_block(x).add_(skip)


class Lin(nn.Module):
    """``relu(conv1x1(x))`` (official ``Lin``, docs/specs/dic.md §2.4)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_block(x)


class HourGlass(nn.Module):
    """Single hourglass of ``depth`` levels with flat official names ``res{n}_{1,2,3}``/``res_center``.

    ``level(n, x) = res{n}_1(x) + up2(res{n}_3(inner(res{n}_2(maxpool2(x)))))`` where ``inner`` is
    level n-1 or, at n = 1, ``res_center``; ``up2`` is bilinear with ``align_corners=True``
    (docs/specs/dic.md §2.4, §6.3).
    """

    def __init__(self, depth: int, num_features: int) -> None:
        super().__init__()
        self.depth = depth
        # Registration order = official state-dict order: n_1, n_2 going down, then the centre,
        # then the n_3 blocks coming back up (docs/specs/dic.md §4).
        for n in range(depth, 0, -1):
            self.add_module(f"res{n}_1", ResidualBlock(num_features, num_features))
            self.add_module(f"res{n}_2", ResidualBlock(num_features, num_features))
        self.res_center = ResidualBlock(num_features, num_features)
        for n in range(1, depth + 1):
            self.add_module(f"res{n}_3", ResidualBlock(num_features, num_features))

    def _level(self, n: int, x: Tensor) -> Tensor:
        upper = getattr(self, f"res{n}_1")(x)
        lower = getattr(self, f"res{n}_2")(F.max_pool2d(x, 2))
        lower = self._level(n - 1, lower) if n > 1 else self.res_center(lower)
        lower = getattr(self, f"res{n}_3")(lower)
        return upper.add_(F.interpolate(lower, scale_factor=2, mode="bilinear", align_corners=True))

    def forward(self, x: Tensor) -> Tensor:
        return self._level(self.depth, x)


class FeedbackHourGlass(nn.Module):
    """Recurrent landmark estimator on the SR image (official ``FeedbackHourGlass``,
    docs/specs/dic.md §2.4)."""

    def __init__(self, num_features: int, num_keypoints: int, in_channels: int = 3) -> None:
        super().__init__()
        self.num_features = num_features
        f = num_features
        self.pre_conv_block = nn.Sequential(
            nn.Conv2d(in_channels, f // 4, 7, stride=2, padding=3),
            nn.ReLU(inplace=True),
            ResidualBlock(f // 4, f // 2),
            nn.MaxPool2d(2),
            ResidualBlock(f // 2, f // 2),
            ResidualBlock(f // 2, f),
        )
        # No activation after compress_in (docs/specs/dic.md §6.7).
        self.compress_in = nn.Conv2d(2 * f, 2 * f, 1)
        self.hg = HourGlass(4, 2 * f)
        self.hg_conv_out = nn.Sequential(ResidualBlock(f, f), Lin(f, f), nn.Conv2d(f, num_keypoints, 1))

    def forward(self, image: Tensor, hidden: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mean-subtracted B x 3 x H x W image (+ previous hidden) -> (heatmaps, new hidden)."""
        features = self.pre_conv_block(image)
        # cat order [image features, hidden]; at the first step the features stand in for the
        # missing hidden state (docs/specs/dic.md §2.4, §6.4).
        previous = features if hidden is None else hidden
        joint = self.hg(self.compress_in(torch.cat([features, previous], dim=1)))
        # First half -> heatmaps, second half -> hidden state (docs/specs/dic.md §2.4).
        heatmaps = self.hg_conv_out(joint[:, : self.num_features])
        return heatmaps, joint[:, self.num_features :]


# --- the generator --------------------------------------------------------------------------------


class DIC(nn.Module):
    """DIC / DICGAN generator: recurrent SR branch and recurrent hourglass that exchange attention
    (docs/specs/dic.md §2). Stateless between calls, so safe to call from several threads at once."""

    def __init__(self, config: DICConfig = DICConfig()) -> None:  # a frozen dataclass: safe default
        super().__init__()
        self.config = config
        c = config.num_features
        # G1: 3x3 conv to 4C then pixel-shuffle x2: features live on a 2xLR grid
        # (docs/specs/dic.md §2, §6.1–§6.2).
        self.conv_in = _conv_prelu(config.in_channels, 4 * c, 3, padding=1)
        self.feat_in = nn.PixelShuffle(2)
        # first_block (step 0) and block (steps >= 1) are different weights (docs/specs/dic.md §6.4).
        self.first_block = FeedbackBlock(c, config.num_groups, recurrent=False)
        self.block = FeedbackBlock(
            c, config.num_groups, recurrent=True, num_fusion_blocks=config.num_fusion_blocks
        )
        # G2: deconv(8, 4, 2) x4 with PReLU, then a 3x3 conv without activation (docs/specs/dic.md §2, §6.7).
        self.out = _deconv_prelu(c, c, 8, 4, 2)
        self.conv_out = nn.Sequential(nn.Conv2d(c, config.out_channels, 3, padding=1))
        self.HG = FeedbackHourGlass(config.hg_num_features, config.num_keypoints, config.out_channels)

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"DIC expects a B x {self.config.in_channels} x H x W batch, got shape {tuple(x.shape)}"
            )
        # The hourglass halves the 8x image six times (stride-2 conv, max-pool, 4 levels): the SR
        # side must be divisible by 64, i.e. the LR side by 8 (docs/specs/dic.md §2.4).
        if x.shape[-2] % 8 or x.shape[-1] % 8:
            raise ValueError(f"DIC needs LR height and width divisible by 8, got {tuple(x.shape[-2:])}")

    def forward(self, x: Tensor, *, all_steps: bool = True) -> DICOutput:
        """Super-resolve ``x`` 8x and estimate 68 landmark heatmaps.

        Args:
            x: B x 3 x h x w LR images in the official space (RGB in [0, 1] minus the CelebA mean,
                docs/specs/dic.md §3); h and w divisible by 8 (native 16).
            all_steps: keep every recurrent step's outputs; with ``False`` only the final step is
                returned (1-tuples) and earlier ones are freed as soon as possible.

        Returns:
            :class:`DICOutput` with the SR images (B x 3 x 8h x 8w, mean-subtracted, unclamped) and
            the heatmaps (B x 68 x 2h x 2w) of the kept steps.
        """
        self._check_input(x)
        # Global residual: bilinear x8, half-pixel (align_corners=False), computed once
        # (docs/specs/dic.md §2, §6.3).
        upsampled = F.interpolate(x, scale_factor=self.config.scale, mode="bilinear", align_corners=False)
        features = self.feat_in(self.conv_in(x))

        # One projection stack for all steps of both feedback blocks (same shape): allocated once
        # per forward instead of once per step. Training takes the stack-free path instead.
        scratch = None if _needs_concatenating_path(features) else self.first_block.new_scratch(features)
        sr_steps: list[Tensor] = []
        heatmap_steps: list[Tensor] = []
        sr_hidden: Tensor | None = None
        hg_hidden: Tensor | None = None
        heatmaps: Tensor | None = None
        for step in range(self.config.num_steps):
            if step == 0:
                sr_hidden = self.first_block(features, scratch=scratch)
            else:
                # Attention from the previous step's heatmaps, not detached (docs/specs/dic.md §2.3, §6.12).
                sr_hidden = self.block(features, sr_hidden, merge_heatmaps(heatmaps), scratch=scratch)
            sr = self.conv_out(self.out(sr_hidden)).add_(upsampled)
            # The hourglass sees the raw, unclamped mean-subtracted SR image (docs/specs/dic.md §6.9).
            heatmaps, hg_hidden = self.HG(sr, hg_hidden)
            if all_steps or step == self.config.num_steps - 1:
                sr_steps.append(sr)
                heatmap_steps.append(heatmaps)
        return DICOutput(sr=tuple(sr_steps), heatmaps=tuple(heatmap_steps))
