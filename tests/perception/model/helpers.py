"""Shared helpers of the model tests: small networks with non-trivial batch-norm statistics."""

from __future__ import annotations

import torch

from perception.config import PipelineConfig
from perception.model.network import BEVFusionNet, build_model


def randomized_net(cfg: PipelineConfig, seed: int = 0) -> BEVFusionNet:
    """A network in eval mode whose batch norms do something (fresh ones are the identity), so a
    comparison of backends exercises the folding of batch norm into the convolutions."""
    torch.manual_seed(seed)
    net = build_model(cfg)
    gen = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_((torch.rand(c, generator=gen) - 0.5) * 0.4)
    return net.eval()


def max_rel_err(a, b) -> float:
    """max |a - b| / max |b|: the relative error of a whole output map."""
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


def micro_config() -> PipelineConfig:
    """The tiny preset shrunk further (1.6 m cells, two small cameras, 600 pillars): for the tests
    about structure, where the size does not matter and two CPU cores are shared."""
    from dataclasses import replace

    from perception.config import GridConfig
    from perception.model.config import preset

    tiny = preset("tiny").model
    model = replace(
        tiny,
        name="micro",
        lidar=replace(tiny.lidar, max_pillars=600, max_points_per_pillar=8),
        camera=replace(tiny.camera, num_cameras=2, image_height=48, image_width=96, backbone_channels=(8, 8, 16), channels=8),
        backbone=replace(tiny.backbone, fuser_channels=16, channels=(16, 16, 24), layers=(1, 1, 1), fpn_channels=16),
        head=replace(tiny.head, channels=16),
    )
    return PipelineConfig(grid=GridConfig(cell_m=1.6), model=model)
