"""Physical consistency of the simulated sensors, checked with independent geometry.

Ego poses come from the exact ``/ego_pose`` messages (50 Hz) interpolated by the project's
``PoseTrajectory``, not from the simulator's internal per-point interpolation; object motion from
the ground-truth velocities; projections from ``calib.camera.PinholeCamera``.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from calib import se3
from perception.boxes import box_corners, points_in_boxes
from perception.sim.camera import RenderedFrame
from perception.sim.lidar import LidarSweep
from perception.sim.radar import RadarReturns
from perception.sim.simulator import EGO_POSE_SENSOR, GROUND_TRUTH_SENSOR, SimMessage, Simulator
from perception.sync.trajectory import PoseTrajectory
from perception.types import Detections, EgoPose

NS = 1_000_000_000


def _by_sensor(messages: list[SimMessage], sensor: str) -> list[SimMessage]:
    return [m for m in messages if m.message.sensor == sensor]


@pytest.fixture(scope="module")
def poses(memlog: tuple[Simulator, list[SimMessage]]) -> PoseTrajectory:
    sim, msgs = memlog
    ego = [m.message.payload for m in _by_sensor(msgs, EGO_POSE_SENSOR)]
    assert all(isinstance(p, EgoPose) for p in ego)
    return PoseTrajectory.from_ego_poses(ego)


def _world_points(sim: Simulator, sweep: LidarSweep, poses: PoseTrajectory) -> np.ndarray:
    """Each point through the ego pose at its own firing time (stamp + time offset)."""
    cloud = sweep.cloud
    ego_T_lidar = sim.rig[sim.reference].ego_T_sensor
    t = cloud.stamp_ns + cloud.time_offset_ns
    world_T_ego = poses.world_T_ego_many(t)
    p = cloud.xyz.astype(np.float64) @ ego_T_lidar[:3, :3].T + ego_T_lidar[:3, 3]
    return np.einsum("nij,nj->ni", world_T_ego[:, :3, :3], p) + world_T_ego[:, :3, 3]


def test_lidar_ground_points_lie_on_the_ground(memlog, poses) -> None:
    sim, msgs = memlog
    sweeps = [m.truth for m in _by_sensor(msgs, "LIDAR_TOP")]
    assert len(sweeps) == 40
    moved = 0.0
    for sweep in sweeps[::8]:
        assert len(sweep.cloud) > 25_000  # ~34.7k firings, minus sky, dropouts and too-near returns
        world = _world_points(sim, sweep, poses)
        ground = sweep.body == -1
        assert ground.mean() > 0.2
        z = world[ground, 2]
        assert np.abs(z).max() < 0.07, "ground point off z = 0 by more than the range noise allows"
        assert np.std(z) < 0.015
        # the ego moves during the sweep: the same points placed with one pose would not lie flat
        one = poses.world_T_ego(sweep.cloud.stamp_ns)
        moved = max(moved, float(np.linalg.norm(one[:3, 3] - poses.world_T_ego(sweep.cloud.stamp_ns - 50_000_000)[:3, 3])))
    assert moved > 0.2, "the ego should move during a sweep in this log"


def test_points_in_each_box_match_its_lidar_count(memlog, poses) -> None:
    sim, msgs = memlog
    sweeps = {m.message.stamp_ns: m.truth for m in _by_sensor(msgs, "LIDAR_TOP")}
    gts = [m.message.payload for m in _by_sensor(msgs, GROUND_TRUTH_SENSOR)]
    checked = total = off = 0
    for gt in gts[5::10]:
        assert isinstance(gt, Detections)
        sweep = sweeps[gt.stamp_ns]
        world = _world_points(sim, sweep, poses)
        ego_T_world = se3.invert(poses.world_T_ego(gt.stamp_ns))
        p = world @ ego_T_world[:3, :3].T + ego_T_world[:3, 3]
        dt = -(sweep.cloud.time_offset_ns / NS)  # stamp minus firing time, >= 0
        keep_z = sweep.body != -1  # leave out the ground returns (the simulator's truth says which)
        corners = box_corners(gt.center, gt.size, gt.yaw)
        for i in range(len(gt)):
            n = int(gt.num_lidar_pts[i])
            # skip boxes that nearly touch another one: a point near both would count twice
            others = np.delete(np.arange(len(gt)), i)
            gap = np.linalg.norm(gt.center[others, :2] - gt.center[i, :2], axis=1)
            reach = (np.linalg.norm(gt.size[others, :2], axis=1) + np.linalg.norm(gt.size[i, :2])) / 2 + 0.3
            if np.any(gap < reach) or n < 5:
                continue
            # move each point with the object from its firing time to the stamp
            q = p[keep_z].copy()
            q[:, :2] += gt.velocity[i] * dt[keep_z, None]
            grown = gt.size[i:i + 1] + 0.2  # 10 cm margins: range noise, and the yaw rate over the sweep
            inside = points_in_boxes(q, gt.center[i:i + 1], grown, gt.yaw[i:i + 1])[:, 0]
            got = int(inside.sum())
            checked += 1
            total += n
            off += abs(got - n)
            assert abs(got - n) <= max(2, 0.05 * n), (f"{gt.track_id[i]} ({gt.labels_as_names[i]}): {got} points in the box, "
                                                     f"num_lidar_pts {n}")
        assert corners.shape[0] == len(gt)
    assert checked > 20 and total > 1000
    assert off <= 0.01 * total


def test_projected_box_encloses_the_rendered_object(memlog) -> None:
    sim, msgs = memlog
    frames = [m for m in _by_sensor(msgs, "CAM_FRONT")] + [m for m in _by_sensor(msgs, "CAM_FRONT_LEFT")]
    checked = 0
    for m in frames[::4]:
        fr = m.truth
        assert isinstance(fr, RenderedFrame)
        spec = sim.rig[m.message.sensor]
        cam = spec.intrinsics
        t = m.true_stamp_rel_ns / NS
        st = sim.world.bodies_at(t)
        n = sim.world.n_objects
        cam_T_world = se3.invert(sim.world.ego.world_T_ego(t) @ spec.ego_T_sensor)
        corners = box_corners(st.center[:n], sim.world.size[:n], st.yaw[:n])
        for i in np.unique(fr.instance[(fr.instance >= 0) & (fr.instance < n)]):
            ys, xs = np.nonzero(fr.instance == i)
            if len(xs) < 30:
                continue
            pc = corners[i] @ cam_T_world[:3, :3].T + cam_T_world[:3, 3]
            if np.any(pc[:, 2] < 0.5):
                continue  # partly behind the camera: the outline is not a projected polygon
            uv, _ = cam.project(pc)
            hull = cv2.convexHull(uv.astype(np.float32))
            dist = np.array([cv2.pointPolygonTest(hull, (float(x), float(y)), True) for x, y in zip(xs, ys)])
            assert dist.min() > -1.0, f"object {i}: a pixel {-dist.min():.1f} px outside its projected box"
            checked += 1
    assert checked > 15


def test_radar_radial_velocity_is_relative_velocity_on_the_line_of_sight(memlog, poses) -> None:
    sim, msgs = memlog
    checked = 0
    for m in msgs:
        ret = m.truth
        if not isinstance(ret, RadarReturns):
            continue
        spec = sim.rig[m.message.sensor]
        t = m.true_stamp_rel_ns / NS
        # sensor velocity from the exact poses (finite difference), independent of the radar model
        stamp = m.message.stamp_ns
        h = 1_000_000
        a = poses.world_T_ego(stamp - h) @ spec.ego_T_sensor
        b = poses.world_T_ego(stamp + h) @ spec.ego_T_sensor
        v_sensor = (b[:3, 3] - a[:3, 3]) / (2 * h / NS)
        st = sim.world.bodies_at(t)
        o = (poses.world_T_ego(stamp) @ spec.ego_T_sensor)[:3, 3]
        for k in np.nonzero(ret.body >= 0)[0]:
            i = ret.body[k]
            r = ret.point_world[k] - st.center[i]
            v_obj = np.array([st.velocity[i, 0] - st.yaw_rate[i] * r[1], st.velocity[i, 1] + st.yaw_rate[i] * r[0], 0.0])
            los = ret.point_world[k] - o
            los /= np.linalg.norm(los)
            expected = (v_obj - v_sensor) @ los
            assert ret.scan.radial_velocity[k] == pytest.approx(expected, abs=0.6), m.message.sensor
            checked += 1
        # static clutter: the ego-motion compensated velocity is ~0
        clutter = ret.body < 0
        if clutter.any():
            assert np.abs(np.linalg.norm(ret.scan.velocity_comp[clutter], axis=1)).max() < 0.6
    assert checked > 50


def test_radar_returns_lie_on_their_objects(memlog) -> None:
    sim, msgs = memlog
    for m in msgs:
        ret = m.truth
        if not isinstance(ret, RadarReturns) or not (ret.body >= 0).any():
            continue
        spec = sim.rig[m.message.sensor]
        T = sim.world.ego.world_T_ego(m.true_stamp_rel_ns / NS) @ spec.ego_T_sensor
        local = (ret.point_world - T[:3, 3]) @ T[:3, :3]
        rng = np.hypot(local[:, 0], local[:, 1])
        meas = np.hypot(ret.scan.points[:, 0], ret.scan.points[:, 1])
        assert np.abs(meas - rng).max() < 1.0  # range noise 0.15 m
        assert np.all(ret.scan.points[:, 2] == 0)  # 2-D radar, as nuScenes'


def test_ground_truth_counts_and_attributes(memlog) -> None:
    sim, msgs = memlog
    gt = [m.message.payload for m in _by_sensor(msgs, GROUND_TRUTH_SENSOR)]
    names = set()
    attrs = set()
    for det in gt:
        assert det.frame_id == "ego"
        assert np.all(det.num_lidar_pts >= 0) and np.all(det.num_radar_pts >= 0)
        names |= set(det.labels_as_names)
        attrs |= set(det.attribute)
        assert len(set(det.track_id)) == len(det)
    assert {"car", "pedestrian"} <= names
    assert "vehicle.moving" in attrs and "vehicle.parked" in attrs and "pedestrian.moving" in attrs
    assert sum(int(d.num_radar_pts.sum()) for d in gt) > 100
