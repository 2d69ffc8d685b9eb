"""Ground truth placed in the ego frame at the frame stamp (frames_from_log's helper)."""

from __future__ import annotations

import numpy as np

from calib import se3
from perception.sync import ground_truth_in_ego
from perception.types import Detections, SyncedFrame


def boxes(frame_id: str, stamp: int) -> Detections:
    return Detections(stamp_ns=stamp, frame_id=frame_id, class_names=("car",), center=np.array([[10.0, 2.0, 1.0]]),
                      size=np.array([[4.0, 2.0, 1.5]]), yaw=np.array([0.3]), velocity=np.array([[5.0, 0.0]]),
                      score=np.ones(1, np.float32), label=np.zeros(1, np.int64))


def frame(world_T_ego: np.ndarray, stamp: int = 1000) -> SyncedFrame:
    return SyncedFrame(stamp, {}, None, None, world_T_ego)


def test_from_the_world():
    W = se3.from_rotation_translation(se3.rotation_z(np.pi / 2), [100.0, 50.0, 0.0])
    out = ground_truth_in_ego(boxes("world", 1000), frame(W))
    np.testing.assert_allclose(out.center, se3.transform_points(se3.invert(W), np.array([[10.0, 2.0, 1.0]])), atol=1e-9)
    assert out.frame_id == "ego" and out.stamp_ns == 1000
    np.testing.assert_allclose(out.yaw, [0.3 - np.pi / 2], atol=1e-9)
    np.testing.assert_allclose(out.velocity, [[0.0, -5.0]], atol=1e-9)  # re-expressed, not made relative
    nan = frame(np.full((4, 4), np.nan))
    assert ground_truth_in_ego(boxes("world", 1000), nan) is None  # no pose: cannot be placed


def test_from_the_ego_frame_at_another_stamp():
    # the car drove 1.5 m forward between the boxes' stamp and the frame's: they are 1.5 m nearer
    rel = se3.from_rotation_translation(np.eye(3), [-1.5, 0.0, 0.0])  # ego(frame)_T_ego(boxes)
    out = ground_truth_in_ego(boxes("ego", 900), frame(np.eye(4)), relative=rel)
    np.testing.assert_allclose(out.center, [[8.5, 2.0, 1.0]], atol=1e-12)
    assert ground_truth_in_ego(boxes("ego", 900), frame(np.eye(4))) is None  # the motion is unknown
    same = ground_truth_in_ego(boxes("ego", 1000), frame(np.full((4, 4), np.nan)))
    np.testing.assert_allclose(same.center, [[10.0, 2.0, 1.0]])  # same stamp: no pose needed
