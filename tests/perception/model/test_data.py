"""The data path: a synchronized frame -> training frame -> network inputs through the pipeline's ops;
the lookup-table conversion against the gather op; augmentation consistency for the cameras; the
training loop's log, checkpoint and exact resume; evaluation with sensors removed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from calib import se3
from calib.rig import load_rig
from perception.classes import NUSCENES_CLASSES
from perception.model.augment import AugmentConfig, augment_extrinsics, augment_matrix, transform_points
from perception.model.branches import CameraToBEV
from perception.model.data import DropoutConfig, frame_inputs, lut_to_grid, make_batch, to_train_frame
from perception.model.spec import input_specs
from perception.types import CameraImage, Detections, PointCloud, RadarScan, SyncedFrame
from tests.perception.model.helpers import micro_config

REPO = Path(__file__).resolve().parents[3]
torch.set_num_threads(2)


@pytest.fixture(scope="module")
def rig():
    return load_rig(REPO / "data" / "rigs" / "nuscenes_like.yaml")


def synced_frame(rig, seed: int = 0, image_hw=(450, 800)) -> SyncedFrame:
    rng = np.random.default_rng(seed)
    n = 4000
    pts = np.column_stack([rng.uniform(-50, 50, n), rng.uniform(-50, 50, n), rng.uniform(-1, 3, n),
                           rng.uniform(0, 1, n), rng.uniform(0, 0.4, n)]).astype(np.float32)
    lidar = PointCloud(1_000, "ego", pts, ("x", "y", "z", "intensity", "time_lag"))
    r = 60
    radar = RadarScan(1_000, "ego", rng.uniform(-40, 40, (r, 3)).astype(np.float32), rng.normal(5, 5, r).astype(np.float32),
                      rng.normal(0, 3, r).astype(np.float32), np.full((r, 2), np.nan, np.float32),
                      rng.normal(0, 3, (r, 2)).astype(np.float32), -rng.integers(0, 200_000_000, r))
    images = {c.name: CameraImage(1_000, c.name, c.frame, rng.integers(0, 256, (*image_hw, 3), dtype=np.uint8))
              for c in rig.cameras}
    k = 3
    gt = Detections(1_000, "ego", NUSCENES_CLASSES, center=np.array([[12.0, 3.0, 0.9], [-7.5, -20.0, 0.9], [5.0, 5.0, 0.5]]),
                    size=np.array([[4.6, 1.9, 1.7], [0.7, 0.7, 1.8], [0.4, 0.4, 1.0]]), yaw=np.array([0.2, 1.0, 0.0]),
                    velocity=np.array([[4.0, 0.5], [1.0, 0.0], [0.0, 0.0]]), score=np.ones(k, np.float32),
                    label=np.array([0, 8, 9]), attribute=np.array(["vehicle.moving", "pedestrian.moving", ""], dtype=object),
                    num_lidar_pts=np.array([30, 5, 2]))
    return SyncedFrame(1_000, images, lidar, radar, np.eye(4), ground_truth=gt)


@pytest.fixture(scope="module")
def frames(rig):
    cfg = micro_config()
    return cfg, [to_train_frame(synced_frame(rig, s), rig, cfg, NUSCENES_CLASSES, f"synthetic#{s}") for s in range(2)]


def test_frame_to_inputs_through_the_ops(frames):
    cfg, tf = frames
    f = tf[0]
    assert f.images.shape == (2, 48, 96, 3) and f.images.dtype == np.uint8 and f.camera_ok.all()
    assert f.cameras[0].width == 12 and f.cameras[0].height == 6  # feature maps at 1/8
    assert f.points.shape[1] == 5 and f.radar.time_lag.min() >= 0
    x = frame_inputs(f, cfg)
    for name, spec in input_specs(cfg).items():
        spec.check(x[name])
    assert x["pillar_num_points"].sum() > 0 and x["lidar_mask"][0] == 1 and x["radar_mask"][0] == 1
    assert x["radar_bev"][0, 0].sum() > 0  # occupancy
    assert x["cam_valid"].sum() > 0 and (np.abs(x["cam_lut"][x["cam_valid"] > 0]) <= 1).all()


def test_lut_conversion_samples_what_the_gather_op_samples(frames):
    from perception.ops.camera_bev_gather import gather_camera_bev
    from perception.ops.camera_bev_lut import build_camera_bev_lut

    cfg, tf = frames
    f = tf[0]
    lut = build_camera_bev_lut(f.ego_T_cam, f.cameras, cfg.grid, cfg.model.camera.heights_m, bev_stride=cfg.model.fuse_stride)
    feats = np.random.default_rng(1).normal(size=(2, 5, *lut.feature_hw)).astype(np.float32)
    want = gather_camera_bev(feats, lut)  # (C, Z, ny, nx)
    uv, valid = lut_to_grid(lut)
    got, seen = CameraToBEV.sample(torch.from_numpy(feats), torch.from_numpy(uv)[None], torch.from_numpy(valid)[None],
                                   torch.ones(1, 2))
    assert valid.sum() > 100
    np.testing.assert_allclose(got[0].numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(seen[0].numpy() > 0, np.asarray(lut.inv_count).reshape(lut.shape) > 0)


@pytest.mark.parametrize("seed", range(3))
def test_augmented_cameras_see_augmented_points_at_the_same_pixels(frames, seed):
    _, tf = frames
    f = tf[0]
    rng = np.random.default_rng(seed)
    A, *_ = augment_matrix(rng, AugmentConfig(flip_y=1.0 if seed else 0.0))
    pts = np.array([[15.0, 1.0, 0.5], [20.0, -3.0, 1.5]])
    cam = f.cameras[0]
    uv, ok = cam.project(se3.transform_points(se3.invert(f.ego_T_cam[0]), pts))
    uv2, ok2 = cam.project(se3.transform_points(se3.invert(augment_extrinsics(A, f.ego_T_cam)[0]), transform_points(A, pts)))
    assert ok.all() and ok2.all()
    np.testing.assert_allclose(uv2, uv, atol=1e-6)


def test_make_batch_with_augmentation_and_dropout(frames):
    cfg, tf = frames
    rng = np.random.default_rng(0)
    x, t = make_batch(tf, cfg, rng, AugmentConfig(), DropoutConfig(lidar=0.5, camera=0.5, radar=0.5, single_camera=0.3))
    for name, spec in input_specs(cfg, batch=2).items():
        spec.check(x[name])
    assert t["heatmap"].shape == (2, 10, 64, 64) and t["mask"].sum() > 0
    for b in range(2):
        assert x["lidar_mask"][b] or x["camera_mask"][b].any() or x["radar_mask"][b]
        if not x["lidar_mask"][b]:
            assert x["pillar_num_points"][b].sum() == 0
        for c in range(2):
            if not x["camera_mask"][b, c]:
                assert not x["images"][b, c].any() and not x["cam_valid"][b, c].any()


def test_training_logs_checkpoints_and_resumes_exactly(frames, tmp_path):
    from perception.model.checkpoint import load_checkpoint
    from perception.model.train import TrainOptions, train

    cfg, tf = frames
    opts = TrainOptions(steps=4, batch_size=2, checkpoint_every=2, log_every=1, threads=1, lr=1e-3)
    straight = train(cfg, tf, tmp_path / "a.pt", opts, progress=False)
    records = [json.loads(line) for line in (tmp_path / "a.pt.log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4] and all(np.isfinite(r["loss"]) for r in records)
    assert (tmp_path / "a.pt.png").stat().st_size > 0
    # killed after step 2 (its checkpoint written), resumed: the same weights as 4 steps straight
    def stop_at_2(step: int, record: dict) -> None:
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tf, tmp_path / "b.pt", opts, progress=False, on_step=stop_at_2)
    a, meta = load_checkpoint(straight)
    assert meta["steps"] == 4 and meta["frames"] == 2
    b, _ = load_checkpoint(train(cfg, tf, tmp_path / "b.pt", opts, resume=True, progress=False))
    for (ka, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(va, vb, rtol=0, atol=0, msg=ka)


def test_evaluation_with_sensors_removed(frames):
    from perception.model.backends import make_backend
    from perception.model.evaluate import evaluate_frames
    from tests.perception.model.helpers import randomized_net

    cfg, tf = frames
    backend = make_backend("torch", net=randomized_net(cfg))
    for drop in ("all", "no-camera", "no-lidar"):
        r = evaluate_frames(backend, tf, cfg, drop)
        assert 0.0 <= r.mean_ap <= 1.0 and 0.0 <= r.nd_score <= 1.0


def test_onnxruntime_equals_torch_on_inputs_from_the_ops(frames, tmp_path):
    from perception.model.backends import make_backend
    from perception.model.export import export_onnx
    from perception.model.spec import OUTPUT_NAMES
    from tests.perception.model.helpers import max_rel_err, randomized_net

    cfg, tf = frames
    net = randomized_net(cfg, seed=4)
    onnx_path = export_onnx(net, tmp_path / "m.onnx")
    x = frame_inputs(tf[1], cfg, drop=(False, False, False))
    a = make_backend("onnxruntime", onnx=onnx_path)(x)
    b = make_backend("torch", net=net)(x)
    for name in OUTPUT_NAMES:
        assert max_rel_err(a[name], b[name]) < 1e-4, name


def test_boxes_without_returns_are_no_targets(frames):
    cfg, tf = frames
    f = tf[0]
    counts = f.boxes.num_points.copy()
    counts[1] = 0
    unseen = replace(f, boxes=replace(f.boxes, num_points=counts))
    _, t = make_batch([f, unseen], cfg, np.random.default_rng(0), None, None)
    assert t["mask"][0].sum() == 3 and t["mask"][1].sum() == 2
    assert t["heatmap"][1, 8].max() < 1.0 and t["heatmap"][0, 8].max() == 1.0  # the pedestrian's peak is gone


def test_unseen_samples_keep_the_input_contract(frames):
    """spec.OUTSIDE_LUT wherever cam_valid is 0: with cameras, with one dropped, with every one dropped."""
    from perception.model.spec import OUTSIDE_LUT

    cfg, tf = frames
    one = np.zeros(len(tf[0].camera_ok), bool)
    one[0] = True
    for drop, camera_drop in (((False, False, False), None), ((False, False, False), one), ((False, True, False), None)):
        x = frame_inputs(tf[0], cfg, drop=drop, camera_drop=camera_drop)
        unseen = x["cam_valid"] == 0
        assert unseen.any()
        assert np.all(x["cam_lut"][unseen] == OUTSIDE_LUT)
        if drop[1]:
            assert unseen.all() and not x["camera_mask"].any()
