"""The network: shapes, modality masks, the in-graph scatter and lift against hand-made cases and the
kernels' scatter op, gradients through both, the configs, and one base-size frame on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from perception.config import GridConfig, PipelineConfig, from_dict, load_config, to_dict
from perception.errors import ConfigError
from perception.model.branches import CameraToBEV, PillarFeatureNet, PillarScatter
from perception.model.config import ModelConfig, preset, resolve_config
from perception.model.network import build_model
from perception.model.spec import INPUT_NAMES, input_specs, output_specs, random_inputs
from tests.perception.model.helpers import micro_config, randomized_net

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def micro():
    return micro_config()


def _torch(x):
    return {k: torch.from_numpy(v) for k, v in x.items()}


@pytest.mark.parametrize("name", ["tiny", "micro"])
def test_forward_shapes_match_the_output_table(name):
    tiny = preset(name) if name == "tiny" else micro_config()
    net = randomized_net(tiny)
    with torch.no_grad():
        out = net(_torch(random_inputs(tiny)))
    for name, spec in output_specs(tiny).items():
        assert tuple(out[name].shape) == spec.shape, name
        assert torch.isfinite(out[name]).all(), name


def test_random_inputs_follow_the_input_table(micro):
    x = random_inputs(micro, batch=2)
    for name, spec in input_specs(micro, batch=2).items():
        spec.check(x[name])
    assert list(x) == list(INPUT_NAMES)


@pytest.mark.parametrize(("mask", "gated"), [("lidar_mask", ("pillar_features",)), ("radar_mask", ("radar_bev",)),
                                             ("camera_mask", ("images", "cam_lut"))])
def test_a_masked_sensor_has_no_influence(micro, mask, gated):
    # A missing sensor = zeros + mask 0: what its inputs hold must then not matter at all.
    net = randomized_net(micro)
    a = random_inputs(micro, seed=1)
    a[mask][:] = 0.0
    b = {k: v.copy() for k, v in a.items()}
    rng = np.random.default_rng(5)
    for name in gated:
        b[name] = rng.normal(size=b[name].shape).astype(np.float32)
    with torch.no_grad():
        oa, ob = net(_torch(a)), net(_torch(b))
    for name in oa:
        torch.testing.assert_close(oa[name], ob[name], rtol=0, atol=0)


def test_all_sensors_missing_still_gives_finite_maps(micro):
    net = randomized_net(micro)
    x = {k: np.zeros_like(v) for k, v in random_inputs(micro).items()}
    with torch.no_grad():
        out = net(_torch(x))
    assert all(torch.isfinite(v).all() for v in out.values())


def test_pillar_net_ignores_padding_points_and_empty_pillars():
    pfn = PillarFeatureNet(10, 8).eval()
    feats = torch.randn(1, 4, 5, 10)
    counts = torch.tensor([[5, 2, 1, 0]], dtype=torch.int32)
    other = feats.clone()
    other[0, 1, 2:] = 99.0  # beyond the 2 points of pillar 1
    other[0, 3] = -7.0  # an empty pillar
    with torch.no_grad():
        a, b = pfn(feats, counts), pfn(other, counts)
    torch.testing.assert_close(a, b)
    assert (a[0, :, 3] == 0).all()


def test_scatter_matches_the_kernels_scatter_op():
    ops = pytest.importorskip("perception.ops.pillar_scatter")
    grid = GridConfig(x_min=-8.0, x_max=8.0, y_min=-4.0, y_max=4.0, cell_m=1.0)
    rng = np.random.default_rng(0)
    p, c = 40, 6
    cells = rng.choice(grid.nx * grid.ny, size=30, replace=False)
    coords = np.full((p, 2), -1, np.int32)  # padding rows as the pillarization op writes them
    coords[:30, 0], coords[:30, 1] = cells // grid.nx, cells % grid.nx
    counts = np.zeros(p, np.int32)
    counts[:30] = rng.integers(1, 5, size=30)
    feats = rng.normal(size=(p, c)).astype(np.float32)
    feats[30:] = 0.0
    want = ops.scatter_pillars(feats, coords, grid)
    got = PillarScatter(grid.ny, grid.nx)(torch.from_numpy(feats.T[None].copy()), torch.from_numpy(coords[None]),
                                          torch.from_numpy(counts[None]))
    np.testing.assert_array_equal(got[0].numpy(), want)


def test_scatter_sends_out_of_grid_and_padding_pillars_nowhere():
    scatter = PillarScatter(3, 4)
    feats = torch.ones(1, 2, 4)
    coords = torch.tensor([[[0, 0], [2, 3], [3, 0], [-1, -1]]], dtype=torch.int32)  # third: iy past the grid
    counts = torch.tensor([[1, 1, 1, 0]], dtype=torch.int32)
    bev = scatter(feats, coords, counts)
    assert bev.shape == (1, 2, 3, 4)
    assert bev.sum() == 4  # two pillars x two channels
    assert bev[0, :, 0, 0].tolist() == [1, 1] and bev[0, :, 2, 3].tolist() == [1, 1]


def test_camera_lift_averages_over_the_cameras_that_see_a_cell():
    # Two cameras with constant feature maps 1 and 3; four BEV points: seen by both, by camera 0
    # only, by neither (invalid), and by camera 1 only although camera 0 is masked off.
    feats = torch.stack([torch.full((1, 4, 4), 1.0), torch.full((1, 4, 4), 3.0)])  # (N=2, C=1, 4, 4)
    lut = torch.zeros(1, 2, 1, 1, 4, 2)  # every point at the image centre
    valid = torch.tensor([[1.0, 1, 0, 1], [1, 0, 0, 1]]).reshape(1, 2, 1, 1, 4)
    mean, seen = CameraToBEV.sample(feats, lut, valid, torch.tensor([[1.0, 1.0]]))
    assert mean.flatten().tolist() == [2.0, 1.0, 0.0, 2.0]
    assert seen.flatten().tolist() == [2.0, 1.0, 0.0, 2.0]
    mean, _ = CameraToBEV.sample(feats, lut, valid, torch.tensor([[0.0, 1.0]]))
    assert mean.flatten().tolist() == [3.0, 0.0, 0.0, 3.0]


def test_camera_lift_samples_the_pixel_the_table_names():
    # A feature map whose value is its column index: normalized u of column j's centre reads j.
    w = 8
    feats = torch.arange(w, dtype=torch.float32).repeat(4, 1)[None, None]  # (1, 1, 4, 8)
    cols = torch.tensor([0.0, 3.0, 5.5, 7.0])
    u = (2 * cols + 1) / w - 1  # pixel-centre convention of GridSample with align_corners=False
    lut = torch.stack([u, torch.zeros(4)], dim=-1).reshape(1, 1, 1, 1, 4, 2)
    mean, _ = CameraToBEV.sample(feats, lut, torch.ones(1, 1, 1, 1, 4), torch.ones(1, 1))
    torch.testing.assert_close(mean.flatten(), cols)


def test_gradients_reach_every_branch_through_scatter_and_lift(micro):
    net = build_model(micro).train()
    out = net(_torch(random_inputs(micro, seed=2, batch=2)))
    sum(v.float().pow(2).mean() for v in out.values()).backward()
    for part in (net.pillar_net, net.camera_backbone, net.radar_stem, net.head):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads), type(part).__name__


def test_presets_and_yaml_round_trip(tmp_path):
    for name in ("tiny", "base"):
        cfg = preset(name)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(to_dict(cfg)))
        assert load_config(path) == cfg == resolve_config(str(path)) == resolve_config(name)
    assert preset("tiny").grid.nx == 128 and preset("base").grid.nx == 512
    assert PipelineConfig().model == ModelConfig()


@pytest.mark.parametrize(("data", "match"), [
    ({"model": {"fuse_stride": 3}}, r"m.yaml: model.fuse_stride: expected one of \[1, 2, 4\]"),
    ({"model": {"camera": {"image_height": 100}}}, r"model.camera.image_height: expected a multiple of 8"),
    ({"model": {"lidar": {"channels": 0}}}, r"model.lidar.channels: expected >= 1"),
    ({"model": {"backbone": {"layers": [1, 2]}}}, r"model.backbone.layers: expected one entry per stage"),
    ({"model": {"headd": {}}}, r"unknown key model.headd"),
    ({"grid": {"x_min": -48.0, "x_max": 48.0, "cell_m": 6.4}, "model": {"fuse_stride": 4}},
     r"m.yaml: model.fuse_stride/model.backbone.channels: the grid's 15 cells along x are not a multiple of 16"),
])
def test_bad_model_values_name_the_key(tmp_path, data, match):
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ConfigError, match="model preset 'huge'"):
        preset("huge")
    with pytest.raises(ConfigError):
        from_dict(PipelineConfig, {"model": {"classes": []}})


@pytest.mark.slow
def test_base_forward_one_frame_on_cpu():
    cfg = preset("base")
    net = randomized_net(cfg)
    with torch.no_grad():
        out = net(_torch(random_inputs(cfg, pillar_fill=0.3)))
    for name, spec in output_specs(cfg).items():
        assert tuple(out[name].shape) == spec.shape
        assert torch.isfinite(out[name]).all()
