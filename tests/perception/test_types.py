"""The data model checks shapes, dtypes and stamps where data enters, naming the argument."""

import numpy as np
import pytest

from perception.errors import ShapeError
from perception.types import (
    CameraImage,
    Detections,
    EgoPose,
    GnssFix,
    ImuSample,
    PointCloud,
    RadarScan,
    SensorMessage,
    SyncedFrame,
)


def test_point_cloud_fields_and_time_offsets():
    pts = np.zeros((5, 5), np.float32)
    pc = PointCloud(10, "lidar", pts, ("x", "y", "z", "intensity", "ring"), np.arange(5, dtype=np.int64))
    assert len(pc) == 5
    assert pc.field("ring").shape == (5,)
    with pytest.raises(KeyError, match="'t'"):
        pc.field("t")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"points": np.zeros((5, 4), np.float64)}, "points: expected dtype float32"),
        ({"points": np.zeros((5, 3), np.float32)}, "3 columns but 4 fields"),
        ({"fields": ("a", "b", "c", "d")}, "first three"),
        ({"time_offset_ns": np.zeros(4, np.int64)}, "time_offset_ns: expected 5 offsets"),
        ({"time_offset_ns": np.zeros(5, np.float32)}, "time_offset_ns: expected dtype int64"),
        ({"stamp_ns": 1.5}, "stamp_ns: expected int nanoseconds"),
    ],
)
def test_point_cloud_rejects_bad_input(kwargs, match):
    base = {"stamp_ns": 0, "frame_id": "l", "points": np.zeros((5, 4), np.float32)}
    with pytest.raises(ShapeError, match=match):
        PointCloud(**{**base, **kwargs})


def test_camera_image_needs_rgb_uint8():
    CameraImage(0, "CAM_FRONT", "cam_front", np.zeros((9, 16, 3), np.uint8))
    with pytest.raises(ShapeError, match="image"):
        CameraImage(0, "CAM_FRONT", "cam_front", np.zeros((9, 16), np.uint8))
    with pytest.raises(ShapeError, match="image: expected dtype uint8"):
        CameraImage(0, "CAM_FRONT", "cam_front", np.zeros((9, 16, 3), np.float32))


def test_radar_scan_arrays_agree_in_length():
    n = 3
    f = np.float32
    RadarScan(0, "radar", np.zeros((n, 3), f), np.zeros(n, f), np.zeros(n, f), np.zeros((n, 2), f), np.zeros((n, 2), f))
    with pytest.raises(ShapeError, match="velocity_comp"):
        RadarScan(0, "radar", np.zeros((n, 3), f), np.zeros(n, f), np.zeros(n, f), np.zeros((n, 2), f), np.zeros((n - 1, 2), f))


def test_detections_select_and_label_range():
    d = Detections(5, "ego", ("car", "pedestrian"), np.zeros((3, 3)), np.ones((3, 3)), np.zeros(3), np.zeros((3, 2)),
                   np.array([0.9, 0.1, 0.5], np.float32), np.array([0, 1, 1]), track_id=np.array(["a", "b", "c"], object))
    sub = d.select(d.score > 0.3)
    assert len(sub) == 2 and sub.labels_as_names == ["car", "pedestrian"] and list(sub.track_id) == ["a", "c"]
    with pytest.raises(ShapeError, match="label"):
        Detections(5, "ego", ("car",), np.zeros((1, 3)), np.ones((1, 3)), np.zeros(1), np.zeros((1, 2)), np.ones(1, np.float32), np.array([3]))
    assert len(Detections.empty(0, "ego", ("car",))) == 0


def test_other_payloads_and_message():
    fix = GnssFix(1, "gnss", 1.3, 103.8, 10.0)
    imu = ImuSample(2, "imu", np.zeros(3), np.array([0, 0, 9.81]))
    pose = EgoPose(3, "world", np.eye(4))
    msg = SensorMessage(1, "GNSS", "/fix", fix)
    assert msg.log_time_ns == 1
    assert SensorMessage(1, "IMU", "/imu", imu, log_time_ns=7).log_time_ns == 7
    with pytest.raises(ShapeError, match="world_T_ego"):
        EgoPose(3, "world", np.eye(3))
    frame = SyncedFrame(3, {}, None, None, pose.world_T_ego, missing={"CAM_FRONT"})
    assert frame.degraded and frame.missing == frozenset({"CAM_FRONT"})
