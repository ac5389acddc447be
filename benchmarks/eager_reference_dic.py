"""A straightforward eager fp32 DIC generator: the baseline of the DIC latency target (issue 5).

This is the same architecture as :class:`dicsr.families.dic.DIC` (docs/specs/dic.md §2), written
plainly the way the official code is structured, with none of dicsr's optimisations:

* every projection group re-concatenates all previous groups (``torch.cat`` per group,
  docs/specs/dic.md §2.1);
* the 256x256 projection stage runs on the whole batch at once;
* no buffer reuse, no in-place residual sums or activations;
* the recurrent SR state is a local variable instead of the official ``block.last_hidden``
  attribute (that changes no number);
* all four steps' outputs are kept, as the official ``forward`` returns them.

Module names mirror the official ones, so the dicsr / official state dict loads with
``strict=True``. Benchmark-only code: not part of the installed package.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["EagerReferenceDIC"]

C = 48  # num_features
GROUPS = 6  # num_groups
STEPS = 4  # num_steps
HG_FEATURES = 256
KEYPOINTS = 68
FUSION_BLOCKS = 7
COMPONENTS = 5


def conv_block(cin: int, cout: int, k: int, s: int = 1, p: int = 0) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, p), nn.PReLU(1, 0.2))


def deconv_block(cin: int, cout: int, k: int, s: int, p: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, k, s, p), nn.PReLU(1, 0.2))


class ResBlock(nn.Module):
    def __init__(self, ch: int, groups: int) -> None:
        super().__init__()
        self.res = nn.Sequential(
            nn.Conv2d(ch, ch, 3, 1, 1, groups=groups),
            nn.LeakyReLU(0.2),
            nn.Conv2d(ch, ch, 3, 1, 1, groups=groups),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.res(x)


class FusionBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv_in = nn.Sequential(nn.Conv2d(C, C * COMPONENTS, 1), nn.LeakyReLU(0.2))
        self.resnet = nn.Sequential(*[ResBlock(C * COMPONENTS, COMPONENTS) for _ in range(FUSION_BLOCKS)])

    def forward(self, x: Tensor, heatmap: Tensor) -> Tensor:
        feature = self.resnet(self.conv_in(x))
        b, _, h, w = feature.shape
        attention = F.softmax(heatmap, dim=1)
        feature = feature.view(b, COMPONENTS, -1, h, w) * attention.unsqueeze(2)
        return feature.sum(1)


class ProjectionBlock(nn.Module):
    """SRFBN feedback block at scale 8 (kernel 12, stride 8, padding 2)."""

    def __init__(self, recurrent: bool) -> None:
        super().__init__()
        self.compress_in = conv_block(2 * C if recurrent else C, C, 1)
        self.upBlocks = nn.ModuleList([deconv_block(C, C, 12, 8, 2) for _ in range(GROUPS)])
        self.downBlocks = nn.ModuleList([conv_block(C, C, 12, 8, 2) for _ in range(GROUPS)])
        self.uptranBlocks = nn.ModuleList([conv_block(C * (g + 1), C, 1) for g in range(1, GROUPS)])
        self.downtranBlocks = nn.ModuleList([conv_block(C * (g + 1), C, 1) for g in range(1, GROUPS)])
        self.compress_out = conv_block(GROUPS * C, C, 1)
        self.fusion_block = FusionBlock() if recurrent else None

    def forward(self, x: Tensor, hidden: Tensor | None = None, heatmap: Tensor | None = None) -> Tensor:
        if self.fusion_block is None:
            x = self.compress_in(x)
        else:
            x = self.compress_in(torch.cat((x, hidden), dim=1))
            x = self.fusion_block(x, heatmap)
        lr_features = [x]
        hr_features = []
        for g in range(GROUPS):
            ld_l = torch.cat(lr_features, 1)
            if g > 0:
                ld_l = self.uptranBlocks[g - 1](ld_l)
            ld_h = self.upBlocks[g](ld_l)
            hr_features.append(ld_h)
            ld_h = torch.cat(hr_features, 1)
            if g > 0:
                ld_h = self.downtranBlocks[g - 1](ld_h)
            lr_features.append(self.downBlocks[g](ld_h))
        return self.compress_out(torch.cat(lr_features[1:], 1))


class Residual(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.Conv2d(cin, cout // 2, 1),
            nn.ReLU(),
            nn.Conv2d(cout // 2, cout // 2, 3, 1, 1),
            nn.Conv2d(cout // 2, cout, 1),
        )
        self.skip_layer = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: Tensor) -> Tensor:
        skip = x if self.skip_layer is None else self.skip_layer(x)
        return self.conv_block(x) + skip


class Lin(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, 1), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_block(x)


class HourGlass(nn.Module):
    def __init__(self, depth: int, ch: int) -> None:
        super().__init__()
        self.depth = depth
        for n in range(depth, 0, -1):
            self.add_module(f"res{n}_1", Residual(ch, ch))
            self.add_module(f"res{n}_2", Residual(ch, ch))
        self.res_center = Residual(ch, ch)
        for n in range(1, depth + 1):
            self.add_module(f"res{n}_3", Residual(ch, ch))

    def level(self, n: int, x: Tensor) -> Tensor:
        up1 = getattr(self, f"res{n}_1")(x)
        low = getattr(self, f"res{n}_2")(F.max_pool2d(x, 2, 2))
        low = self.level(n - 1, low) if n > 1 else self.res_center(low)
        low = getattr(self, f"res{n}_3")(low)
        return up1 + F.interpolate(low, scale_factor=2, mode="bilinear", align_corners=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.level(self.depth, x)


class FeedbackHourGlass(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        f = HG_FEATURES
        self.pre_conv_block = nn.Sequential(
            nn.Conv2d(3, f // 4, 7, 2, 3),
            nn.ReLU(),
            Residual(f // 4, f // 2),
            nn.MaxPool2d(2, 2),
            Residual(f // 2, f // 2),
            Residual(f // 2, f),
        )
        self.compress_in = nn.Conv2d(2 * f, 2 * f, 1)
        self.hg = HourGlass(4, 2 * f)
        self.hg_conv_out = nn.Sequential(Residual(f, f), Lin(f, f), nn.Conv2d(f, KEYPOINTS, 1))

    def forward(self, x: Tensor, last_hidden: Tensor | None) -> tuple[Tensor, Tensor]:
        feature = self.pre_conv_block(x)
        if last_hidden is None:
            feature = self.compress_in(torch.cat((feature, feature), dim=1))
        else:
            feature = self.compress_in(torch.cat((feature, last_hidden), dim=1))
        feature = self.hg(feature)
        heatmap = self.hg_conv_out(feature[:, :HG_FEATURES])
        return heatmap, feature[:, HG_FEATURES:]


def merge_heatmap_5(heatmap: Tensor) -> Tensor:
    heatmap = heatmap.clone()
    peak = heatmap.view(heatmap.size(0), heatmap.size(1), -1).max(dim=2)[0]
    heatmap = heatmap / peak.clamp(min=0.05).view(heatmap.size(0), heatmap.size(1), 1, 1)
    return torch.stack(
        [
            heatmap[:, 36:42].sum(1),
            heatmap[:, 42:48].sum(1),
            heatmap[:, 27:36].sum(1),
            heatmap[:, 48:68].sum(1),
            heatmap[:, 0:27].sum(1),
        ],
        dim=1,
    )


class EagerReferenceDIC(nn.Module):
    """DIC generator, eager fp32, official structure. ``forward(x) -> (sr_list, heatmap_list)``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_in = conv_block(3, 4 * C, 3, 1, 1)
        self.feat_in = nn.PixelShuffle(2)
        self.first_block = ProjectionBlock(recurrent=False)
        self.block = ProjectionBlock(recurrent=True)
        self.out = deconv_block(C, C, 8, 4, 2)
        self.conv_out = nn.Sequential(nn.Conv2d(C, 3, 3, 1, 1))
        self.HG = FeedbackHourGlass()

    def forward(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        inter_res = F.interpolate(x, scale_factor=8, mode="bilinear", align_corners=False)
        x = self.feat_in(self.conv_in(x))
        sr_outs: list[Tensor] = []
        heatmap_outs: list[Tensor] = []
        hidden: Tensor | None = None
        hg_hidden: Tensor | None = None
        heatmap: Tensor | None = None
        for step in range(STEPS):
            # step 0: first_block on the features alone; later steps: block with the hidden
            # state and the attention from the previous step's heatmaps
            hidden = self.first_block(x) if step == 0 else self.block(x, hidden, merge_heatmap_5(heatmap))
            sr = torch.add(inter_res, self.conv_out(self.out(hidden)))
            heatmap, hg_hidden = self.HG(sr, hg_hidden)
            sr_outs.append(sr)
            heatmap_outs.append(heatmap)
        return sr_outs, heatmap_outs


def load_reference(state_dict: dict[str, Tensor]) -> EagerReferenceDIC:
    """An :class:`EagerReferenceDIC` in eval mode with ``state_dict`` loaded strictly."""
    model = EagerReferenceDIC()
    model.load_state_dict(state_dict, strict=True)
    return model.eval()
