"""The three sensor branches, each ending on a BEV map: LiDAR pillars, cameras lifted by a lookup
table, and the radar raster.

Every step that a CUDA-BEVFusion-style deployment runs as a separate kernel (the pillar scatter,
the camera-to-BEV gather) is written here with standard operators (ScatterElements, GridSample)
so that training back-propagates through it and the export is one graph (docs/MODEL.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from perception.model.layers import conv_bn_relu

__all__ = ["CameraBackbone", "CameraToBEV", "PillarFeatureNet", "PillarScatter", "RadarStem"]


class PillarFeatureNet(nn.Module):
    """PointPillars' pillar feature net: a shared linear layer + BN + ReLU per point, max over the
    points of a pillar. Written as a 1x1 convolution so batch norm folds into it at export."""

    def __init__(self, point_features: int, channels: int) -> None:
        super().__init__()
        self.point_net = conv_bn_relu(point_features, channels, kernel=1)

    def forward(self, features: torch.Tensor, num_points: torch.Tensor) -> torch.Tensor:
        """features: (B, P, M, F) float; num_points: (B, P) int -> (B, C, P) pillar features."""
        m = features.shape[2]
        x = self.point_net(features.permute(0, 3, 1, 2))  # (B, C, P, M)
        # Padding points would contribute ReLU(BN shift) to the max: zero them (ReLU output >= 0,
        # so a zero never beats a real point's value, and an empty pillar becomes all zeros).
        slots = torch.arange(m, device=features.device, dtype=torch.int32)
        point_ok = (slots[None, None, :] < num_points[:, :, None]).to(x.dtype)  # (B, P, M)
        x = x * point_ok[:, None]
        # max with indices, not amax: its backward scatters to the arg-max instead of comparing the
        # whole (B, C, P, M) tensor against the result (3x faster on the CPU in training).
        return x.max(dim=3).values


class PillarScatter(nn.Module):
    """Write each pillar's features into its grid cell: (B, C, P) -> (B, C, ny, nx).

    Padding pillars (no points) and pillars whose cell lies outside the grid go to one extra "dump"
    cell that is cut off afterwards, so the graph stays static and never indexes out of range.
    """

    def __init__(self, ny: int, nx: int) -> None:
        super().__init__()
        self.ny, self.nx = ny, nx

    def forward(self, pillars: torch.Tensor, coords: torch.Tensor, num_points: torch.Tensor) -> torch.Tensor:
        """pillars: (B, C, P); coords: (B, P, 2) int (iy, ix); num_points: (B, P) int -> (B, C, ny, nx)."""
        b, c, p = pillars.shape
        cells = self.ny * self.nx
        iy, ix = coords[..., 0].long(), coords[..., 1].long()
        valid = (num_points > 0) & (iy >= 0) & (iy < self.ny) & (ix >= 0) & (ix < self.nx)
        flat = torch.where(valid, iy * self.nx + ix, torch.full_like(iy, cells))  # (B, P)
        pillars = pillars * valid[:, None, :].to(pillars.dtype)
        # Zeros made from an integer input, not a constant: a constant canvas would be folded into
        # a (B, C, ny*nx) initializer of the exported graph (tens of MB of zeros in the file), and
        # an integer cannot be NaN, so a bad point never spreads through 0 * NaN to every cell.
        zero = (num_points[:, :1] * 0).to(pillars.dtype)  # (B, 1)
        canvas = zero[:, None, :].expand(b, c, cells + 1)
        canvas = canvas.scatter(2, flat[:, None, :].expand(b, c, p), pillars)
        return canvas[:, :, :cells].reshape(b, c, self.ny, self.nx)


class CameraBackbone(nn.Module):
    """A small CNN shared by all cameras: three stride-2 stages (1/8 resolution), then a 1x1 neck."""

    def __init__(self, channels: tuple[int, int, int], out_channels: int) -> None:
        super().__init__()
        c0, c1, c2 = channels
        self.stages = nn.Sequential(
            conv_bn_relu(3, c0, 3, 2),
            conv_bn_relu(c0, c1, 3, 2),
            conv_bn_relu(c1, c1),
            conv_bn_relu(c1, c2, 3, 2),
            conv_bn_relu(c2, c2),
        )
        self.neck = conv_bn_relu(c2, out_channels, kernel=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, N, 3, H, W) -> (B * N, C, H/8, W/8)."""
        b, n, _, h, w = images.shape
        return self.neck(self.stages(images.reshape(b * n, 3, h, w)))


class CameraToBEV(nn.Module):
    """Simple-BEV / Fast-BEV lifting: sample every camera's features where each BEV cell, at each of
    Z heights, projects (the lookup table), average over the cameras that see it, and fold the
    heights into channels (1x1 convolution), keeping the vertical layout Fast-BEV found useful."""

    def __init__(self, channels: int, heights: int, out_channels: int) -> None:
        super().__init__()
        self.reduce = conv_bn_relu(channels * heights, out_channels, kernel=1)

    def forward(
        self, features: torch.Tensor, lut: torch.Tensor, valid: torch.Tensor, camera_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """features: (B * N, C, Hf, Wf); lut: (B, N, Z, Yf, Xf, 2) normalized (u, v); valid: (B, N, Z, Yf, Xf);
        camera_mask: (B, N) -> (bev (B, C_out, Yf, Xf), coverage (B, 1, Yf, Xf) in [0, 1])."""
        mean, seen = self.sample(features, lut, valid, camera_mask)
        b, c, z, yf, xf = mean.shape
        coverage = (seen > 0).to(mean.dtype).mean(dim=1, keepdim=True)
        return self.reduce(mean.reshape(b, c * z, yf, xf)), coverage

    @staticmethod
    def sample(
        features: torch.Tensor, lut: torch.Tensor, valid: torch.Tensor, camera_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The lookup itself -> (mean over seeing cameras (B, C, Z, Yf, Xf), cameras seeing each point (B, Z, Yf, Xf))."""
        b, n, z, yf, xf, _ = lut.shape
        c = features.shape[1]
        feats = features.reshape(b, n, c, features.shape[2], features.shape[3])
        weight = valid * camera_mask[:, :, None, None, None]  # (B, N, Z, Yf, Xf)
        if _sparse_ok(features):
            total = _sample_seen(feats, lut, weight)
            seen = weight.sum(dim=1)
            return total / seen.clamp(min=1.0)[:, None], seen
        total = None
        # A masked camera's features are zeroed before sampling (a small map), and a sample a camera
        # does not see reads zeros by the input contract (cam_lut = OUTSIDE_LUT there, spec.py): no
        # per-camera multiply of the large sampled tensor by its validity (13% of ONNX Runtime's CPU
        # time). The same sum as weighting each sample by valid * mask, exactly (0/1 weights).
        feats = feats * camera_mask[:, :, None, None, None]
        # One GridSample per camera (unrolled, N is static) rather than one over all: the
        # per-camera sample of a base-size grid is ~70 MB; all six at once would be 400 MB.
        for i in range(n):
            grid = lut[:, i].reshape(b, z * yf, xf, 2)
            sampled = F.grid_sample(feats[:, i], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            term = sampled.reshape(b, c, z, yf, xf)
            total = term if total is None else total + term
        assert total is not None
        seen = weight.sum(dim=1)
        return total / seen.clamp(min=1.0)[:, None], seen


def _sparse_ok(features: torch.Tensor) -> bool:
    """The sampled-only path: eager CPU tensors (a data-dependent number of samples cannot be traced,
    exported or captured in a CUDA graph, and on the GPU the count would cost a host sync)."""
    return features.device.type == "cpu" and not torch.jit.is_tracing() and not torch.jit.is_scripting() \
        and not torch.onnx.is_in_onnx_export()


def _sample_seen(feats: torch.Tensor, lut: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """sum_i weight_i * GridSample(camera i) over the samples each camera sees only.

    Each camera sees a sixth or so of the samples; GridSample over all of them is most of the
    camera-to-BEV time on a CPU. A sample a camera does not see has weight 0 and adds an exact 0
    in the dense form, so this sums the same terms in the same camera order: the same result.
    """
    b, n, z, yf, xf, _ = lut.shape
    c = feats.shape[2]
    total = feats.new_zeros(b, c, z * yf * xf)
    w = weight.reshape(b, n, -1)
    for bi in range(b):
        for i in range(n):
            idx = torch.nonzero(w[bi, i]).squeeze(1)
            if idx.numel() == 0:
                continue
            grid = lut[bi, i].reshape(-1, 2)[idx].reshape(1, 1, -1, 2)
            sampled = F.grid_sample(feats[bi:bi + 1, i], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            total[bi].index_add_(1, idx, sampled[0, :, 0] * w[bi, i, idx])
    return total.reshape(b, c, z, yf, xf)


class RadarStem(nn.Module):
    """Two convolutions over the radar raster, the first strided down to the fused grid."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(conv_bn_relu(in_channels, channels, 3, stride), conv_bn_relu(channels, channels))

    def forward(self, raster: torch.Tensor) -> torch.Tensor:
        """raster: (B, R, ny, nx) -> (B, C, ny / stride, nx / stride)."""
        return self.convs(raster)
