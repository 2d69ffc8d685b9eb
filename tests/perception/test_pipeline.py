"""Pipeline: SyncedFrame -> Detections through the model's preprocessing, a backend, decode and NMS."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from calib.rig import Rig
from perception.errors import ConfigError
from perception.model.errors import BackendError
from perception.pipeline import CorruptFrameError, Pipeline, sanitize_frame, world_detections
from perception.types import Modality, PointCloud
from tests.perception.replay import frames as F
from tests.perception.replay.fixtures import tiny_checkpoint  # noqa: F401 - a fixture

RIG = F.rig()


@pytest.fixture(scope="module")
def pipeline(tiny_checkpoint: Path) -> Pipeline:  # noqa: F811
    return Pipeline.from_checkpoint(tiny_checkpoint, rig=RIG)


def _frame(k: int = 0):
    frame = F.frame(RIG, k)
    # a car-shaped cluster of points where the car is, over the ground
    rng = np.random.default_rng(k)
    car = F.boxes(frame.stamp_ns).center[0] + rng.uniform(-0.5, 0.5, (300, 3)) * np.array([4.5, 1.9, 1.6])
    pts = np.vstack([frame.lidar.points, np.column_stack([car, np.full(300, 50.0), np.zeros(300)]).astype(np.float32)])
    return replace(frame, lidar=PointCloud(frame.stamp_ns, "ego", pts, frame.lidar.fields))


def test_step_gives_ego_detections_with_stage_times(pipeline: Pipeline) -> None:
    frame = _frame()
    det = pipeline.step(frame)
    assert det.frame_id == "ego" and det.stamp_ns == frame.stamp_ns
    assert det.class_names == pipeline.class_names == tuple(pipeline.cfg.model.classes)
    assert 0 < len(det) <= pipeline.decode.top_k
    assert np.all(det.score >= pipeline.decode.score_threshold) and np.all(np.diff(det.score) <= 0)
    assert np.all(np.isfinite(det.center)) and np.all(det.size > 0)
    assert set(pipeline.last_stage_ms) == {"preprocess", "inference", "postprocess"}
    assert all(v > 0 for v in pipeline.last_stage_ms.values())
    # deterministic on the CPU: the same frame, the same boxes
    again = pipeline.step(frame)
    np.testing.assert_array_equal(det.center, again.center)
    np.testing.assert_array_equal(det.score, again.score)


def test_same_boxes_as_the_model_evaluation(pipeline: Pipeline) -> None:
    from perception.model.data import to_train_frame
    from perception.model.evaluate import predict

    frame = _frame(1)
    ours = pipeline.step(frame)
    theirs = predict(pipeline.backend, to_train_frame(frame, RIG, pipeline.cfg, pipeline.class_names), pipeline.cfg,
                     score_threshold=pipeline.decode.score_threshold, top_k=pipeline.decode.top_k)
    np.testing.assert_array_equal(ours.label, theirs.label)
    np.testing.assert_allclose(ours.center, theirs.center)
    np.testing.assert_allclose(ours.score, theirs.score)
    assert list(ours.attribute) == list(theirs.attribute)


def test_world_detections(pipeline: Pipeline) -> None:
    frame = _frame()
    det = F.boxes(frame.stamp_ns)
    world = world_detections(det, frame)
    assert world.frame_id == "world"
    np.testing.assert_allclose(world.center[0], F.pose(0)[:3, :3] @ det.center[0] + F.pose(0)[:3, 3])
    assert world.yaw[0] == pytest.approx(np.pi / 6)
    with pytest.raises(ConfigError, match="no pose"):
        world_detections(det, replace(frame, world_T_ego=np.full((4, 4), np.nan)))


def test_nan_points_removed_and_all_nan_is_corrupt(pipeline: Pipeline) -> None:
    frame = _frame()
    pts = frame.lidar.points.copy()
    pts[:10, 0] = np.nan
    pts[10, 3] = np.inf  # a bad intensity poisons a pillar as much as a bad x
    cleaned, notes = sanitize_frame(replace(frame, lidar=PointCloud(frame.stamp_ns, "ego", pts, frame.lidar.fields)))
    assert len(cleaned.lidar) == len(pts) - 11 and notes == ["LiDAR: 11 NaN/inf points removed"]
    assert sanitize_frame(frame) == (frame, [])
    bad = replace(frame, lidar=PointCloud(frame.stamp_ns, "ego", np.full_like(pts, np.nan), frame.lidar.fields))
    with pytest.raises(CorruptFrameError, match="all .* points of the sweep are NaN"):
        pipeline.step(bad)
    det = pipeline.step(replace(frame, lidar=PointCloud(frame.stamp_ns, "ego", pts, frame.lidar.fields)))
    assert np.all(np.isfinite(det.center)) and pipeline.last_notes == ["LIDAR_TOP: 11 NaN/inf points removed"]


def test_a_rig_with_fewer_cameras_runs(tiny_checkpoint: Path) -> None:  # noqa: F811
    lidar_only = Rig(tuple(s for s in RIG.sensors if s.modality is Modality.LIDAR), "lidar-only", "<test>")
    p = Pipeline.from_checkpoint(tiny_checkpoint, rig=lidar_only)
    frame = replace(_frame(), images={}, ego_T_sensor={})
    inputs = p.preprocess(frame)
    assert inputs["camera_mask"].sum() == 0 and inputs["lidar_mask"][0] == 1.0
    assert len(p.step(frame)) > 0


def test_from_checkpoint_refuses_what_cannot_run(tiny_checkpoint: Path) -> None:  # noqa: F811
    with pytest.raises(BackendError, match="expected one of"):
        Pipeline.from_checkpoint(tiny_checkpoint, backend="tflite")
    with pytest.raises(BackendError, match="fp16 runs on CUDA only"):
        Pipeline.from_checkpoint(tiny_checkpoint, precision="fp16")
    p = Pipeline.from_checkpoint(tiny_checkpoint)
    assert p.cfg.sync.lidar_sweeps == 3  # the tiny preset's sync section, as it was trained
    with pytest.raises(ConfigError, match="no rig"):
        p.step(_frame())


@pytest.mark.gpu
def test_cuda_matches_cpu(tiny_checkpoint: Path, pipeline: Pipeline) -> None:  # noqa: F811
    frame = _frame()
    cpu = pipeline.step(frame)
    gpu = Pipeline.from_checkpoint(tiny_checkpoint, rig=RIG, device="cuda")
    det = gpu.step(frame)
    assert set(gpu.last_stage_ms) == {"preprocess", "inference", "postprocess"}
    np.testing.assert_array_equal(det.label[:20], cpu.label[:20])
    np.testing.assert_allclose(det.center[:20], cpu.center[:20], atol=1e-3)


def test_auto_backend_is_onnxruntime_on_a_cpu_where_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from perception.pipeline import resolve_backend

    assert resolve_backend("torch", "cpu") == "torch" and resolve_backend("tensorrt", "cuda") == "tensorrt"
    assert resolve_backend("auto", "cuda:0") == "torch"
    assert resolve_backend("auto", "cpu") == "onnxruntime"  # the test install has the onnx extra
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    assert resolve_backend("auto", "cpu") == "torch"
