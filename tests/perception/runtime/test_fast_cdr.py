"""The node's fast CDR writers give exactly the bytes of ros_encode + rosbags' serializer."""

from __future__ import annotations

import numpy as np
import pytest

from perception.io.ros_encode import encode_box3d_array, encode_detection3d_array, serialize
from perception.runtime.fast_cdr import box3d_array_cdr, detection3d_array_cdr
from perception.types import Detections

CLASSES = ("car", "truck", "pedestrian", "traffic_cone")


def _detections(n: int, seed: int, *, extras: bool) -> Detections:
    rng = np.random.default_rng(seed)
    kw = {}
    if extras:
        kw = {"attribute": np.array([["", "vehicle.moving", "pedestrian.standing"][i % 3] for i in range(n)], dtype=object),
              "track_id": np.array([f"t{i}" * (i % 4) for i in range(n)], dtype=object),
              "num_lidar_pts": rng.integers(-1, 500, n), "num_radar_pts": rng.integers(-1, 9, n)}
    return Detections(stamp_ns=1_700_000_123_456_789_012 + seed, frame_id="ego" if seed % 2 else "base_link_é",
                      class_names=CLASSES, center=rng.normal(0, 30, (n, 3)), size=rng.uniform(0.3, 12, (n, 3)),
                      yaw=rng.uniform(-4 * np.pi, 4 * np.pi, n), velocity=np.where(rng.uniform(size=(n, 2)) < 0.2, np.nan,
                                                                                    rng.normal(size=(n, 2))),
                      score=rng.uniform(size=n).astype(np.float32), label=rng.integers(0, len(CLASSES), n), **kw)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 300])
@pytest.mark.parametrize("extras", [False, True])
def test_same_bytes_as_the_reference(n: int, extras: bool) -> None:
    for seed in range(3):
        det = _detections(n, seed, extras=extras)
        assert detection3d_array_cdr(det) == serialize(encode_detection3d_array(det), "vision_msgs/msg/Detection3DArray")
        assert box3d_array_cdr(det) == serialize(encode_box3d_array(det), "bevfuse_msgs/msg/Box3DArray")


def test_yaw_at_the_quaternion_branch_points() -> None:
    # 0, +-pi, +-pi/2: where Shepperd's method switches branches
    yaws = np.array([0.0, np.pi, -np.pi, np.pi / 2, -np.pi / 2, 2 * np.pi, 1e-17])
    n = len(yaws)
    det = Detections(stamp_ns=5, frame_id="ego", class_names=CLASSES, center=np.zeros((n, 3)), size=np.ones((n, 3)), yaw=yaws,
                     velocity=np.zeros((n, 2)), score=np.ones(n, np.float32), label=np.zeros(n, np.int64))
    assert detection3d_array_cdr(det) == serialize(encode_detection3d_array(det), "vision_msgs/msg/Detection3DArray")
