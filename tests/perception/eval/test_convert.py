"""Detections <-> nuScenes box dicts: l w h vs w l h, yaw vs quaternion, ego vs global frame."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calib import se3
from perception.classes import NUSCENES_CLASSES
from perception.errors import FormatError
from perception.eval import DETECTION_NAMES, boxes_to_detections, detections_to_boxes, evaluate, lwh_to_wlh
from perception.types import Detections

# The ego vehicle at (100, 50, 2) heading 90 degrees (north, +y of the world).
WORLD_T_EGO = se3.from_rotation_translation(se3.rotation_z(math.pi / 2), [100.0, 50.0, 2.0])


def _dets(frame: str = "ego", names: tuple[str, ...] = NUSCENES_CLASSES) -> Detections:
    return Detections(
        stamp_ns=5, frame_id=frame, class_names=names,
        center=np.array([[10.0, 0.0, 1.0], [0.0, -4.0, 0.5]]),
        size=np.array([[4.5, 1.9, 1.6], [0.7, 0.6, 1.8]]),  # l w h
        yaw=np.array([0.0, 0.5]),
        velocity=np.array([[3.0, 0.0], [math.nan, math.nan]]),
        score=np.array([0.9, 0.4], np.float32),
        label=np.array([names.index("car"), names.index("pedestrian")], np.int64),
        attribute=np.array(["vehicle.moving", ""], dtype=object),
        num_lidar_pts=np.array([40, 3], np.int64), num_radar_pts=np.array([2, 0], np.int64),
    )


def test_ego_detections_to_global_boxes():
    boxes = detections_to_boxes(_dets(), "tok", world_T_ego=WORLD_T_EGO)
    car, ped = boxes
    # 10 m ahead of a north-facing ego at (100, 50): (100, 60); heading north; moving north at 3 m/s.
    assert car["translation"] == pytest.approx([100.0, 60.0, 3.0])
    assert car["ego_translation"] == pytest.approx([0.0, 10.0, 1.0])
    assert car["size"] == [1.9, 4.5, 1.6]  # nuScenes: width first
    w, x, y, z = car["rotation"]
    assert math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)) == pytest.approx(math.pi / 2)
    assert car["velocity"] == pytest.approx([0.0, 3.0], abs=1e-12)
    assert (car["detection_name"], car["detection_score"], car["attribute_name"]) == ("car", pytest.approx(0.9), "vehicle.moving")
    assert "num_pts" not in car  # a submission box does not carry it
    assert ped["translation"] == pytest.approx([104.0, 50.0, 2.5]) and math.isnan(ped["velocity"][0])
    gt = detections_to_boxes(_dets(), "tok", world_T_ego=WORLD_T_EGO, ground_truth=True)
    assert [b["num_pts"] for b in gt] == [42, 3] and gt[0]["detection_score"] == -1.0


def test_round_trip_to_either_frame():
    dets = _dets()
    boxes = detections_to_boxes(dets, "tok", world_T_ego=WORLD_T_EGO, ground_truth=True)
    world = boxes_to_detections(boxes)
    assert world.frame_id == "world" and world.class_names == NUSCENES_CLASSES
    np.testing.assert_allclose(world.size, dets.size)  # back to l w h
    np.testing.assert_allclose(world.yaw, dets.yaw + math.pi / 2)
    ego = boxes_to_detections(boxes, ego_T_world=se3.invert(WORLD_T_EGO), stamp_ns=5)
    assert ego.frame_id == "ego"
    np.testing.assert_allclose(ego.center, dets.center, atol=1e-12)
    np.testing.assert_allclose(ego.yaw, dets.yaw, atol=1e-12)
    np.testing.assert_allclose(ego.velocity, dets.velocity, atol=1e-12)
    np.testing.assert_array_equal(ego.label, dets.label)
    np.testing.assert_array_equal(ego.score, [1.0, 1.0])  # ground truth: score 1
    assert list(ego.attribute) == ["vehicle.moving", ""]
    # The file merges LiDAR and radar counts: they come back as LiDAR points.
    np.testing.assert_array_equal(ego.num_lidar_pts, [42, 3])
    np.testing.assert_array_equal(ego.num_radar_pts, [0, 0])


def test_swapping_length_and_width_is_what_the_scale_error_sees():
    # The same boxes with l and w not swapped would give a scale error: the conversion is not cosmetic.
    dets = _dets()
    gt = {"tok": detections_to_boxes(dets, "tok", world_T_ego=WORLD_T_EGO, ground_truth=True)}
    good = {"tok": detections_to_boxes(dets, "tok", world_T_ego=WORLD_T_EGO)}
    bad = {"tok": [dict(b, size=[b["size"][1], b["size"][0], b["size"][2]]) for b in good["tok"]]}
    assert evaluate(gt, good).classes["car"].tp_errors["scale_err"] == pytest.approx(0.0, abs=1e-12)
    # w 1.9 l 4.5 vs w 4.5 l 1.9: intersection 1.9 * 1.9 * 1.6, union 2 * 1.9 * 4.5 * 1.6 - that.
    iou = 1.9 * 1.9 / (2 * 1.9 * 4.5 - 1.9 * 1.9)
    assert evaluate(gt, bad).classes["car"].tp_errors["scale_err"] == pytest.approx(1 - iou)
    assert lwh_to_wlh(np.array([[4.5, 1.9, 1.6]])).tolist() == [[1.9, 4.5, 1.6]]


def test_empty_sample():
    empty = Detections.empty(0, "ego", NUSCENES_CLASSES)
    assert detections_to_boxes(empty, "tok", world_T_ego=WORLD_T_EGO) == []
    back = boxes_to_detections([], ego_T_world=se3.invert(WORLD_T_EGO))
    assert len(back) == 0 and back.frame_id == "ego" and back.num_lidar_pts is None


def test_without_a_pose_ego_boxes_stay_in_the_ego_frame():
    boxes = detections_to_boxes(_dets(), "tok")
    assert boxes[0]["translation"] == [10.0, 0.0, 1.0] and boxes[0]["ego_translation"] == [10.0, 0.0, 1.0]


def test_world_detections_need_a_pose_for_ego_translation():
    world = _dets(frame="world")
    with pytest.raises(FormatError, match="world_T_ego is needed"):
        detections_to_boxes(world, "tok")
    boxes = detections_to_boxes(world, "tok", world_T_ego=WORLD_T_EGO)
    assert boxes[0]["translation"] == [10.0, 0.0, 1.0]
    assert boxes[0]["ego_translation"] == pytest.approx([-90.0, -50.0, -1.0])


def test_unknown_class_or_attribute_is_refused():
    names = ("car", "pedestrian", "sign")
    dets = Detections(
        stamp_ns=0, frame_id="ego", class_names=names, center=np.zeros((1, 3)), size=np.ones((1, 3)),
        yaw=np.zeros(1), velocity=np.zeros((1, 2)), score=np.ones(1, np.float32), label=np.array([2]),
    )
    with pytest.raises(FormatError, match="'sign' is not a nuScenes detection class"):
        detections_to_boxes(dets, "tok")
    dets = _dets()
    bad = Detections(**{**{f: getattr(dets, f) for f in dets.__dataclass_fields__},
                        "attribute": np.array(["vehicle.flying", ""], dtype=object)})
    with pytest.raises(FormatError, match="'vehicle.flying' is not a nuScenes attribute"):
        detections_to_boxes(bad, "tok")
    boxes = detections_to_boxes(_dets(), "tok")
    with pytest.raises(FormatError, match="detection_name: 'car' is not in class_names"):
        boxes_to_detections(boxes, class_names=("pedestrian",))


def test_project_classes_are_the_ten_detection_classes():
    assert set(NUSCENES_CLASSES) == set(DETECTION_NAMES) and len(NUSCENES_CLASSES) == 10
