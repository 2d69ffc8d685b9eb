"""Deskew and multi-sweep accumulation against the known world of a synthetic drive at 15 m/s."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from calib import se3
from perception.errors import PoseError
from perception.sync import (
    PoseTrajectory,
    RadarInput,
    SweepInput,
    Synchronizer,
    accumulate_radar,
    accumulate_sweeps,
    deskew_cloud,
    deskew_points,
)
from perception.types import PointCloud, RadarScan
from tests.perception.sync.synthetic import radar_msg

scipy_spatial = pytest.importorskip("scipy.spatial")


def truth_trajectory(scene, step_ns: int = 20_000_000) -> PoseTrajectory:
    m = scene.motion
    t = m.t0_ns + np.arange(0, int(m.duration_s * 1e9), step_ns, dtype=np.int64)
    return PoseTrajectory(t, m.world_T_ego_many(t))


def world_error(points_ego: np.ndarray, world_T_ego: np.ndarray, world: np.ndarray) -> np.ndarray:
    """Distance (N,) of each point, put in the world through the pose, to the nearest world point."""
    tree = scipy_spatial.cKDTree(world)
    d, _ = tree.query(se3.transform_points(world_T_ego, points_ego[:, :3].astype(np.float64)))
    return d


class TestDeskew:
    def test_static_points_land_on_the_world_and_not_without(self, scene):
        traj = truth_trajectory(scene)
        msg = scene.sweeps[20]
        cloud: PointCloud = msg.payload
        ego_T_lidar = scene.rig["LIDAR_TOP"].ego_T_sensor
        W = scene.motion.world_T_ego(cloud.stamp_ns)
        fixed = deskew_cloud(cloud, traj, ego_T_lidar)
        d_fixed = world_error(fixed.points, W, scene.world.points)
        raw = se3.transform_points(ego_T_lidar, cloud.points[:, :3].astype(np.float64))
        d_raw = world_error(raw, W, scene.world.points)
        # the figures: at 15 m/s a 50 ms sweep smears points by up to 0.75 m; deskewed they sit
        # on the world within float32 and interpolation error
        assert np.percentile(d_fixed, 99) < 0.005
        assert np.median(d_raw) > 0.2 and np.percentile(d_raw, 99) > 0.6
        assert fixed.frame_id == "ego" and fixed.time_offset_ns is None
        np.testing.assert_array_equal(fixed.points[:, 3], cloud.points[:, 3])

    def test_node_blend_matches_per_point_interpolation(self, scene):
        """The numba kernel blends 3x4 transforms between 1 ms nodes; the oracle slerps each point."""
        traj = truth_trajectory(scene, step_ns=7_000_000)
        cloud: PointCloud = scene.sweeps[5].payload
        ego_T_lidar = scene.rig["LIDAR_TOP"].ego_T_sensor
        got = deskew_points(cloud.points[:, :3], cloud.time_offset_ns, cloud.stamp_ns, traj, ego_T_lidar)
        rel = traj.relative(cloud.stamp_ns, cloud.stamp_ns + cloud.time_offset_ns) @ ego_T_lidar  # (N, 4, 4)
        want = np.einsum("nij,nj->ni", rel[:, :3, :3], cloud.points[:, :3].astype(np.float64)) + rel[:, :3, 3]
        assert np.abs(got - want).max() < 1e-4

    def test_edges(self, scene):
        traj = truth_trajectory(scene)
        T = scene.rig["LIDAR_TOP"].ego_T_sensor
        empty = deskew_points(np.zeros((0, 3), np.float32), np.zeros(0, np.int64), scene.motion.t0_ns, traj, T)
        assert empty.shape == (0, 3)
        cloud: PointCloud = scene.sweeps[3].payload
        untimed = PointCloud(cloud.stamp_ns, cloud.frame_id, cloud.points, cloud.fields, None)
        out = deskew_cloud(untimed, traj, T)
        np.testing.assert_allclose(out.points[:, :3], se3.transform_points(T, cloud.points[:, :3]), atol=1e-5)
        far = PointCloud(cloud.stamp_ns + 10 * 10**9, cloud.frame_id, cloud.points, cloud.fields, cloud.time_offset_ns)
        with pytest.raises(PoseError, match="no pose for stamp"):
            deskew_cloud(far, traj, T)

    def test_synchronizer_without_deskew_is_off(self, scene, scene_config):
        """Through the synchronizer: the key sweep of each frame against the world, both ways."""
        errs = {}
        for on in (True, False):
            sync = Synchronizer(scene.rig, replace(scene_config, deskew=on, lidar_sweeps=1))
            frames = [f for m in scene.messages for f in sync.push(m)] + sync.flush()
            f = frames[8]
            errs[on] = world_error(f.lidar.points, f.world_T_ego, scene.world.points)
        assert np.percentile(errs[True], 99) < 0.01
        assert np.percentile(errs[False], 99) > 0.5


class TestAccumulate:
    def test_accumulated_static_points_align(self, scene, scene_config):
        sync = Synchronizer(scene.rig, scene_config)
        frames = [f for m in scene.messages for f in sync.push(m)] + sync.flush()
        f = frames[-1]
        lag = f.lidar.field("time_lag")
        assert len(np.unique(lag)) == 10
        d = world_error(f.lidar.points, f.world_T_ego, scene.world.points)
        for value in np.unique(lag):  # every sweep, the oldest 0.45 s (6.75 m) back, on the world
            assert np.percentile(d[lag == value], 99) < 0.01

    def test_sweeps_and_time_lag(self):
        ref_T = se3.from_rotation_translation(se3.rotation_z(0.1), [2.0, 0.0, 0.0])
        pts = np.array([[1, 0, 0, 5], [0, 1, 0, 6]], np.float32)
        out = accumulate_sweeps(1_000_000_000, [SweepInput(1_000_000_000, pts, np.eye(4)),
                                                SweepInput(900_000_000, pts, ref_T)], ("x", "y", "z", "intensity"))
        assert out.points.shape == (4, 5) and out.fields[-1] == "time_lag"
        np.testing.assert_allclose(out.points[:2, :4], pts)
        np.testing.assert_allclose(out.points[2:, :3], se3.transform_points(ref_T, pts[:, :3]), atol=1e-6)
        np.testing.assert_allclose(out.field("time_lag"), [0, 0, 0.1, 0.1], atol=1e-7)

    def test_radar_velocities_into_the_reference_frame(self):
        R = se3.from_rotation_translation(se3.rotation_z(np.pi / 2), [1.0, 0.0, 0.0])
        scan = RadarScan(0, "radar", np.array([[10, 0, 0]], np.float32), np.ones(1, np.float32), np.zeros(1, np.float32),
                         np.array([[3.0, 0.0]], np.float32), np.array([[2.0, 1.0]], np.float32),
                         extra={"dyn_prop": np.array([1])})
        out = accumulate_radar(50_000_000, [RadarInput(scan, R)])
        np.testing.assert_allclose(out.points, [[1, 10, 0]], atol=1e-5)
        np.testing.assert_allclose(out.velocity_comp, [[-1.0, 2.0]], atol=1e-6)
        np.testing.assert_allclose(out.velocity, [[0.0, 3.0]], atol=1e-6)
        np.testing.assert_allclose(out.extra["time_lag"], [0.05])
        assert out.extra["dyn_prop"].tolist() == [1]

    def test_radar_compensation_from_doppler(self, scene, scene_config):
        """Static returns of a moving radar that reports no compensated velocity come out at rest."""
        sync = Synchronizer(scene.rig, scene_config)
        frames = [f for m in scene.messages for f in sync.push(m)] + sync.flush()
        f = frames[10]
        assert np.isnan(scene.radars[0].payload.velocity_comp).all()
        speed = np.linalg.norm(f.radar.velocity_comp, axis=1)
        assert len(speed) > 50 and np.percentile(speed, 95) < 0.05
        # while the raw Doppler speeds are the ego's 15 m/s seen along each line of sight
        assert np.abs(f.radar.radial_velocity).max() > 5.0

    def test_radar_scan_placed_at_its_own_time(self, scene):
        traj = truth_trajectory(scene)
        msg = radar_msg(scene.motion, scene.world, scene.rig, "RADAR_0", scene.motion.t0_ns + 1_230_000_000)
        T_ref = scene.motion.t0_ns + 1_300_000_000
        ref_T = traj.relative(T_ref, [msg.stamp_ns])[0] @ scene.rig["RADAR_0"].ego_T_sensor
        out = accumulate_radar(T_ref, [RadarInput(msg.payload, ref_T)])
        d = world_error(out.points, scene.motion.world_T_ego(T_ref), scene.world.points)
        assert d.max() < 1e-3
