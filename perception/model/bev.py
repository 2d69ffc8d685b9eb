"""The BEV half of the network: fuser, backbone with FPN, CenterPoint head."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from perception.model.layers import conv_bn_relu
from perception.model.spec import REGRESSION_CHANNELS

__all__ = ["BEVBackbone", "CenterHead", "Fuser"]

# Initial heatmap bias: sigmoid(-2.19) = 0.1, CenterNet's prior that keeps the focal loss of the
# first steps from being swamped by the (overwhelmingly negative) background cells.
HEATMAP_PRIOR = 0.1


class Fuser(nn.Module):
    """Concatenate the branch maps and the modality planes, mix with one convolution (3x3 lets it
    absorb a small camera/LiDAR misalignment, BEVFusion's reason; 1x1 when compute is short)."""

    def __init__(self, in_channels: int, channels: int, kernel: int = 3) -> None:
        super().__init__()
        self.conv = conv_bn_relu(in_channels, channels, kernel)

    def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """maps: each (B, C_i, Yf, Xf) -> (B, channels, Yf, Xf)."""
        return self.conv(torch.cat(maps, dim=1))


class BEVBackbone(nn.Module):
    """SECOND-style stages (stride 1, 2, 4, ...) and a top-down FPN back to stride 1."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], layers: tuple[int, ...], fpn_channels: int) -> None:
        super().__init__()
        stages = []
        cin = in_channels
        for i, (cout, n) in enumerate(zip(channels, layers)):
            convs = [conv_bn_relu(cin, cout, 3, 1 if i == 0 else 2)] + [conv_bn_relu(cout, cout) for _ in range(n - 1)]
            stages.append(nn.Sequential(*convs))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.lateral = nn.ModuleList(conv_bn_relu(c, fpn_channels, kernel=1) for c in channels)
        self.out = conv_bn_relu(fpn_channels, fpn_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C_in, Yf, Xf) -> (B, fpn_channels, Yf, Xf)."""
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        top = self.lateral[-1](feats[-1])
        for i in range(len(feats) - 2, -1, -1):
            # Nearest 2x upsampling: an exact inverse of the stride-2 stages (ONNX Resize, nearest).
            top = self.lateral[i](feats[i]) + F.interpolate(top, scale_factor=2.0, mode="nearest")
        return self.out(top)


class CenterHead(nn.Module):
    """CenterPoint head: a shared 3x3 convolution (a 1x1 channel match without ``shared_conv``), then
    a heatmap branch and a regression trunk with one 1x1 output per quantity (offset, height, log
    size, sin/cos yaw, velocity)."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, shared_conv: bool = True) -> None:
        super().__init__()
        self.shared = conv_bn_relu(in_channels, channels) if shared_conv else conv_bn_relu(in_channels, channels, kernel=1)
        self.heatmap = nn.Sequential(conv_bn_relu(channels, channels), nn.Conv2d(channels, num_classes, 1))
        self.trunk = conv_bn_relu(channels, channels)
        self.regress = nn.ModuleDict({name: nn.Conv2d(channels, c, 1) for name, c in REGRESSION_CHANNELS.items()})
        nn.init.constant_(self.heatmap[-1].bias, math.log(HEATMAP_PRIOR / (1 - HEATMAP_PRIOR)))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (B, C, Yf, Xf) -> {'heatmap': (B, K, Yf, Xf) logits, 'offset': (B, 2, ...), 'height': (B, 1, ...),
        'size': (B, 3, ...), 'rot': (B, 2, ...), 'velocity': (B, 2, ...)}."""
        x = self.shared(x)
        out = {"heatmap": self.heatmap(x)}
        trunk = self.trunk(x)
        out.update({name: conv(trunk) for name, conv in self.regress.items()})
        return out
