"""detections.json / ground_truth.json / metrics.json of a replay, in the nuScenes submission format."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from calib import se3
from perception.eval import load_gt_file, load_pred_file
from perception.replay.submission import SubmissionWriter, sample_token
from tests.perception.replay import frames as F


def _writer(rig, shift_m: float = 0.0) -> SubmissionWriter:
    w = SubmissionWriter()
    for k in range(3):
        frame = F.frame(rig, k, posed=k != 2)
        det = F.boxes(frame.stamp_ns)
        w.add("log", frame, replace(det, center=det.center + np.array([shift_m, 0.0, 0.0])))
    return w


def test_boxes_go_to_the_world_with_ego_translation(tmp_path: Path) -> None:
    rig = F.rig()
    _writer(rig).write(tmp_path)
    data = json.loads((tmp_path / "detections.json").read_text())
    assert set(data["meta"]) >= {"use_camera", "use_lidar", "use_radar", "use_map", "use_external"}
    token = sample_token("log", F.T0 + F.PERIOD)
    car = data["results"][token][0]
    world = se3.transform_points(F.pose(1), np.array([[12.0, 0.0, 0.8]]))[0]
    assert car["translation"] == pytest.approx(world.tolist())
    assert car["ego_translation"] == pytest.approx((world - F.pose(1)[:3, 3]).tolist())
    assert car["size"] == pytest.approx([1.9, 4.5, 1.6])  # nuScenes: width length height
    # heading 0 in the ego frame is the ego's 30 degrees in the world
    w, x, y, z = car["rotation"]
    assert 2 * np.arctan2(z, w) == pytest.approx(np.pi / 6)
    assert car["velocity"] == pytest.approx([5.0 * np.cos(np.pi / 6), 5.0 * np.sin(np.pi / 6)])
    assert car["attribute_name"] == "vehicle.moving" and car["detection_name"] == "car"
    # the frame without a pose stays in the ego frame
    unposed = data["results"][sample_token("log", F.T0 + 2 * F.PERIOD)][0]
    assert unposed["translation"] == pytest.approx([12.0, 0.0, 0.8])
    # the files read back through the evaluation's own loaders
    assert len(load_pred_file(tmp_path / "detections.json")) == 6
    assert len(load_gt_file(tmp_path / "ground_truth.json")) == 6


def test_metrics_perfect_and_shifted(tmp_path: Path) -> None:
    rig = F.rig()
    (tmp_path / "a").mkdir()
    perfect = _writer(rig).write(tmp_path / "a")
    assert perfect is not None
    assert perfect.classes["car"].mean_ap == pytest.approx(1.0)
    assert perfect.classes["pedestrian"].mean_ap == pytest.approx(1.0)
    assert perfect.mean_ap == pytest.approx(0.2)  # two of ten classes present, as the devkit averages
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert {"mAP", "NDS", "mATE", "mASE", "mAOE", "mAVE", "mAAE", "per_class"} <= set(metrics)
    (tmp_path / "b").mkdir()
    shifted = _writer(rig, shift_m=1.5).write(tmp_path / "b")
    # 1.5 m off: matched at 2 and 4 m, missed at 0.5 and 1 m, ATE 1.5
    assert shifted.classes["car"].ap[0.5] == 0.0 and shifted.classes["car"].ap[4.0] == pytest.approx(1.0)
    assert shifted.classes["car"].tp_errors["trans_err"] == pytest.approx(1.5)


def test_same_input_same_bytes_and_unknown_classes(tmp_path: Path) -> None:
    rig = F.rig()
    (tmp_path / "1").mkdir()
    (tmp_path / "2").mkdir()
    _writer(rig).write(tmp_path / "1")
    _writer(rig).write(tmp_path / "2")
    assert (tmp_path / "1" / "detections.json").read_bytes() == (tmp_path / "2" / "detections.json").read_bytes()

    w = SubmissionWriter()
    frame = F.frame(rig, 0, with_gt=False)
    det = F.boxes(frame.stamp_ns)
    odd = replace(det, class_names=("car", "pedestrian", "tram"), label=np.array([2, 1], np.int64))
    w.add("log", frame, odd)
    assert w.dropped_classes == {"tram": 1}
    assert w.write(tmp_path) is None  # no ground truth: no metrics
    assert (tmp_path / "detections.json").exists() and not (tmp_path / "metrics.json").exists()
