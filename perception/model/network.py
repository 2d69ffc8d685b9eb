"""The BEV fusion network, top to bottom: LiDAR pillars, cameras and radar to BEV, fused, backbone,
CenterPoint head. Inputs and outputs are the named tensors of ``perception.model.spec``.

``BEVFusionNet`` returns heatmap logits (what the focal loss wants); ``DeployModel`` wraps it with
positional inputs in ``INPUT_NAMES`` order and the heatmap through a sigmoid: that wrapper is what
is exported to ONNX and what every backend runs, so all backends compute the same function.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from perception.config import PipelineConfig
from perception.model.bev import BEVBackbone, CenterHead, Fuser
from perception.model.branches import CameraBackbone, CameraToBEV, PillarFeatureNet, PillarScatter, RadarStem
from perception.model.layers import conv_bn_relu
from perception.model.spec import INPUT_NAMES, OUTPUT_NAMES

__all__ = ["BEVFusionNet", "DeployModel", "build_model"]

# The fuser also sees three "which sensors are here" planes: LiDAR mask, radar mask, camera coverage.
MODALITY_PLANES = 3


class BEVFusionNet(nn.Module):
    """Camera + LiDAR + radar BEV fusion with a CenterPoint head, configured by ``PipelineConfig``."""

    def __init__(self, cfg: PipelineConfig) -> None:
        super().__init__()
        self.cfg = cfg
        m, g = cfg.model, cfg.grid
        self.pillar_net = PillarFeatureNet(m.lidar.point_features, m.lidar.channels)
        self.scatter = PillarScatter(g.ny, g.nx)
        # Brings the pillar map to the fused grid; at fuse_stride 1 it is a plain 3x3 layer.
        self.lidar_stem = conv_bn_relu(m.lidar.channels, m.lidar.channels, 3, m.fuse_stride)
        self.camera_backbone = CameraBackbone(m.camera.backbone_channels, m.camera.channels)
        self.camera_to_bev = CameraToBEV(m.camera.channels, len(m.camera.heights_m), m.camera.channels)
        self.radar_stem = RadarStem(m.radar.input_channels, m.radar.channels, m.fuse_stride)
        fused_in = m.lidar.channels + m.camera.channels + m.radar.channels + MODALITY_PLANES
        self.fuser = Fuser(fused_in, m.backbone.fuser_channels, m.backbone.fuser_kernel)
        self.backbone = BEVBackbone(m.backbone.fuser_channels, m.backbone.channels, m.backbone.layers, m.backbone.fpn_channels)
        self.head = CenterHead(m.backbone.fpn_channels, m.head.channels, m.num_classes, m.head.shared_conv)

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """inputs: the named tensors of ``spec.input_specs`` ->
        {'heatmap': (B, K, Yf, Xf) logits, 'offset', 'height', 'size', 'rot', 'velocity': (B, c, Yf, Xf)}."""
        lidar_mask = inputs["lidar_mask"][:, None, None, None]  # (B, 1, 1, 1)
        radar_mask = inputs["radar_mask"][:, None, None, None]

        pillars = self.pillar_net(inputs["pillar_features"], inputs["pillar_num_points"])  # (B, Cl, P)
        lidar = self.scatter(pillars, inputs["pillar_coords"], inputs["pillar_num_points"])  # (B, Cl, ny, nx)
        lidar = self.lidar_stem(lidar) * lidar_mask  # (B, Cl, Yf, Xf)

        cam_feats = self.camera_backbone(inputs["images"])  # (B*N, Cc, H/8, W/8)
        camera, coverage = self.camera_to_bev(cam_feats, inputs["cam_lut"], inputs["cam_valid"], inputs["camera_mask"])

        radar = self.radar_stem(inputs["radar_bev"]) * radar_mask  # (B, Cr, Yf, Xf)

        planes = [lidar_mask.expand_as(coverage), radar_mask.expand_as(coverage), coverage]
        fused = self.fuser([lidar, camera, radar, *planes])  # (B, Cf, Yf, Xf)
        return self.head(self.backbone(fused))


class DeployModel(nn.Module):
    """``BEVFusionNet`` with positional inputs (``INPUT_NAMES`` order), outputs as a tuple in
    ``OUTPUT_NAMES`` order, and heatmap probabilities instead of logits: the exported function."""

    def __init__(self, net: BEVFusionNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net(dict(zip(INPUT_NAMES, args)))
        out["heatmap"] = torch.sigmoid(out["heatmap"])
        return tuple(out[name] for name in OUTPUT_NAMES)


def build_model(cfg: PipelineConfig) -> BEVFusionNet:
    """A freshly initialised network for ``cfg`` (in training mode)."""
    return BEVFusionNet(cfg)
