"""PoseTrajectory: SE(3) interpolation between timed poses, bounded extrapolation."""

import numpy as np
import pytest

from calib import se3
from perception.errors import PoseError, ShapeError
from perception.sync.trajectory import PoseTrajectory


def circle_track() -> PoseTrajectory:
    # ego drives a circle of radius 10 m at 1 rad/s, sampled every 100 ms
    t = np.arange(0, 11) * 100_000_000
    poses = [se3.from_rotation_translation(se3.rotation_z(a + np.pi / 2), [10 * np.cos(a), 10 * np.sin(a), 0]) for a in t / 1e9]
    return PoseTrajectory(t, np.stack(poses), max_extrapolation_ns=50_000_000)


def test_samples_are_reproduced():
    tr = circle_track()
    np.testing.assert_allclose(tr.world_T_ego(300_000_000), tr.poses[3], atol=1e-12)


def test_between_samples_heading_is_slerped():
    tr = circle_track()
    T = tr.world_T_ego(350_000_000)
    assert se3.yaw_of(T) == pytest.approx(0.35 + np.pi / 2, abs=1e-9)
    # translation is linear between the samples: the chord midpoint, 12.5 mm inside the circle
    assert np.hypot(*T[:2, 3]) == pytest.approx(10 * np.cos(0.05), abs=1e-9)


def test_many_stamps_and_extrapolation_bound():
    tr = circle_track()
    out = tr.world_T_ego_many(np.array([-40_000_000, 0, 1_040_000_000]))
    assert out.shape == (3, 4, 4)
    with pytest.raises(PoseError, match="covered span"):
        tr.world_T_ego(1_100_000_000)


def test_unsorted_input_is_sorted_and_bad_shapes_rejected():
    tr = PoseTrajectory(np.array([10, 0]), np.stack([np.eye(4), np.eye(4)]))
    assert tr.span_ns == (0, 10)
    with pytest.raises(ShapeError, match="world_T_ego"):
        PoseTrajectory(np.array([0, 1]), np.eye(4))
    with pytest.raises(ShapeError, match="stamps_ns"):
        PoseTrajectory(np.array([0.5, 1.0]), np.stack([np.eye(4)] * 2))
