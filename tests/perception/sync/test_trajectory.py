"""PoseTrajectory (interpolation, bounded extrapolation) and its streaming form PoseBuffer, and the
batched SE(3) helpers they rely on."""

from __future__ import annotations

import numpy as np
import pytest

from calib import se3
from perception.errors import PoseError, ShapeError
from perception.sync import EgoPoseSource, PoseBuffer, PoseTrajectory
from perception.types import EgoPose, SensorMessage

MS = 1_000_000


def turning(t_s: np.ndarray, v: float = 10.0, w: float = 0.2) -> np.ndarray:
    """Exact poses (K, 4, 4) of a car on a circle: speed v, yaw rate w, starting at the origin."""
    yaw = w * t_s
    out = np.zeros((len(t_s), 4, 4))
    out[:, :3, :3] = [se3.rotation_z(y) for y in yaw]
    out[:, 0, 3], out[:, 1, 3] = v / w * np.sin(yaw), v / w * (1 - np.cos(yaw))
    out[:, 3, 3] = 1.0
    return out


class TestPoseTrajectory:
    def test_interpolation_between_samples(self):
        t = np.arange(0, 1000, 100, dtype=np.int64) * MS
        traj = PoseTrajectory(t, turning(t * 1e-9))
        q = np.array([50, 333, 901], np.int64) * MS
        got = traj.world_T_ego_many(q)
        want = turning(q * 1e-9)
        # linear in translation across a 1 m chord of a 50 m circle: the sagitta is 2.5 mm
        np.testing.assert_allclose(got[:, :3, 3], want[:, :3, 3], atol=3e-3)
        # slerp is exact at constant yaw rate (to 1e-7: nearly parallel quaternions are blended linearly)
        np.testing.assert_allclose(got[:, :3, :3], want[:, :3, :3], atol=1e-7)
        np.testing.assert_allclose(traj.world_T_ego(int(t[3])), traj.poses[3], atol=1e-12)

    def test_bounded_extrapolation(self):
        t = np.arange(0, 1000, 100, dtype=np.int64) * MS
        traj = PoseTrajectory(t, turning(t * 1e-9), max_extrapolation_ns=100 * MS, name="odom")
        ahead = traj.world_T_ego(950 * MS)
        np.testing.assert_allclose(ahead[:3, 3], turning(np.array([0.95]))[0, :3, 3], atol=0.01)
        assert traj.covers(1000 * MS) and not traj.covers(1001 * MS) and not traj.covers(1000 * MS, extrapolate=False)
        with pytest.raises(PoseError, match=r"odom: no pose for stamp 1001000000 ns: covered span is \[0, 900000000\]"):
            traj.world_T_ego(1001 * MS)
        with pytest.raises(PoseError):
            traj.world_T_ego_many([500 * MS, -101 * MS])

    def test_extrapolation_over_nanosecond_gaps(self):
        """AV2's pose table has samples 5 ns apart: extrapolation must not divide by them."""
        t = np.array([0, 50 * MS, 100 * MS, 100 * MS + 5], np.int64)
        traj = PoseTrajectory(t, turning(t * 1e-9))
        ahead = traj.world_T_ego(150 * MS)
        np.testing.assert_allclose(ahead[:3, 3], turning(np.array([0.15]))[0, :3, 3], atol=0.02)

    def test_relative_and_sorting(self):
        t = np.array([300, 100, 200, 200], np.int64) * MS
        poses = turning(t * 1e-9)
        poses[3] = np.eye(4)  # a duplicate stamp: the first one wins
        traj = PoseTrajectory(t, poses)
        assert traj.stamps_ns.tolist() == [100 * MS, 200 * MS, 300 * MS]
        rel = traj.relative(300 * MS, [100 * MS])[0]
        np.testing.assert_allclose(rel, se3.invert(traj.poses[2]) @ traj.poses[0], atol=1e-12)

    def test_batched_se3_agrees_with_single(self):
        rng = np.random.default_rng(0)
        q = rng.normal(size=(50, 4))
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        R = se3.quat_to_matrix(q)
        batch = se3.matrix_to_quat(R)
        for i in range(50):
            np.testing.assert_allclose(batch[i], se3.matrix_to_quat(R[i]), atol=1e-12)
        a = rng.uniform(0, 1, 50)
        s = se3.slerp(batch[:25], batch[25:], a[:25])
        for i in range(25):
            np.testing.assert_allclose(s[i], se3.slerp(batch[i], batch[25 + i], a[i]), atol=1e-12)

    def test_compiled_interpolation_is_se3_interpolate(self):
        rng = np.random.default_rng(5)
        t = np.arange(40, dtype=np.int64) * 10 * MS
        q = rng.normal(size=(40, 4))
        poses = np.stack([se3.from_rotation_translation(se3.quat_to_matrix(qi / np.linalg.norm(qi)), rng.normal(size=3))
                          for qi in q])
        traj = PoseTrajectory(t, poses)
        stamps = rng.integers(-50 * MS, 440 * MS, 300)
        i0, i1, alpha = traj._segments(stamps)
        np.testing.assert_allclose(traj.world_T_ego_many(stamps), se3.interpolate(traj.poses[i0], traj.poses[i1], alpha),
                                   atol=1e-12)

    def test_rejects_bad_input(self):
        with pytest.raises(Exception, match="stamps_ns"):
            PoseTrajectory(np.array([0.5]), np.eye(4)[None])
        with pytest.raises(Exception, match="NaN"):
            PoseTrajectory(np.array([0]), np.full((1, 4, 4), np.nan))


class TestPoseBuffer:
    def test_append_replace_truncate_prune(self):
        buf = PoseBuffer(history_ns=500 * MS, max_extrapolation_ns=50 * MS, name="buf")
        with pytest.raises(PoseError, match="buf: no pose received yet"):
            buf.trajectory()
        t = np.arange(0, 1000, 100, dtype=np.int64) * MS
        for ti, P in zip(t, turning(t * 1e-9)):
            buf.append(int(ti), P)
        assert buf.span_ns == (400 * MS, 900 * MS)  # older than 500 ms behind the newest: gone
        snap = buf.trajectory()
        assert buf.trajectory() is snap  # cached until the next change
        buf.append(int(t[-1]), np.eye(4))  # same stamp: replaced
        np.testing.assert_array_equal(buf.trajectory().poses[-1], np.eye(4))
        buf.append(450 * MS, np.eye(4))  # out of order: inserted
        assert 450 * MS in buf.trajectory().stamps_ns
        buf.truncate_after(600 * MS)
        assert buf.span_ns == (400 * MS, 600 * MS)

    def test_ego_pose_source(self):
        src = EgoPoseSource()
        t = np.arange(0, 1000, 20, dtype=np.int64) * MS
        for ti, P in zip(t, turning(t * 1e-9)):
            assert src.add(SensorMessage(int(ti), "ego_pose", "/p", EgoPose(int(ti), "world", P))) == "used"
        assert src.ready_ns == 980 * MS and src.frame_id == "world"
        bad = EgoPose(1000 * MS, "world", np.full((4, 4), np.nan))
        assert src.add(SensorMessage(1000 * MS, "ego_pose", "/p", bad)) == "invalid"
        ancient = EgoPose(-10**10, "world", np.eye(4))
        assert src.add(SensorMessage(-10**10, "ego_pose", "/p", ancient)) == "late"
        # a second pose stream (another origin) is not mixed in
        other = SensorMessage(990 * MS, "odom", "/odom", EgoPose(990 * MS, "odom", np.eye(4)))
        assert not src.accepts(other) and src.add(other) == "ignored"
        src.reset()
        assert src.accepts(other)


# the foundation's first tests of PoseTrajectory, kept as they were
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
