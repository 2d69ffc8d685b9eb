"""The synchronizer's fast paths held to the straightforward way of computing the same thing.

Each optimised kernel (field-by-field sweeps, run-by-run deskew, the compiled trajectory query,
deskew nodes, GNSS update and sensor velocity) against a short numpy statement of what it computes,
and end to end: a frame's accumulated cloud against one rebuilt sweep by sweep in numpy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from calib import se3
from perception.errors import PoseError, ShapeError
from perception.sync import PoseTrajectory, SweepInput, Synchronizer, accumulate_radar, accumulate_sweeps, deskew_points
from perception.sync import gnss_imu as G
from perception.sync._filter_kernels import gnss_update, imu_step_mounted, imu_step_pose
from perception.sync.accumulate import RadarInput, accumulate_radar_arrays, accumulate_sweep_arrays, pack_radar_scan
from perception.sync.deskew import deskew_columns, offset_span
from perception.sync.synchronizer import _VEL_DT, _relative_poses, _sensor_velocity
from perception.sync.trajectory import EXTRAPOLATION_BASE_NS, PoseBuffer, _segments_into, finite_pose_quat
from perception.types import PointCloud, RadarScan

MS = 1_000_000


def random_pose(rng: np.random.Generator, scale: float = 20.0) -> np.ndarray:
    q = rng.normal(size=4)
    return se3.from_rotation_translation(q / np.linalg.norm(q), rng.normal(size=3) * scale)


def turning_trajectory(t0: int, seconds: float = 2.0, step_ns: int = 10 * MS) -> PoseTrajectory:
    t = t0 + np.arange(0, int(seconds * 1e9), step_ns, dtype=np.int64)
    s = (t - t0) * 1e-9
    yaw, pitch = 0.3 + 0.12 * s, 0.02 * np.sin(s)
    W = np.stack([se3.from_rotation_translation(se3.rotation_rpy(0.01, p, y), [15.0 * si, 2.0 * si * si, 0.1 * si])
                  for si, p, y in zip(s, pitch, yaw)])
    return PoseTrajectory(t, W)


def sweep(rng: np.random.Generator, n: int, fields: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(N, F) float32 points in firing order over 50 ms (times before the stamp), and their offsets."""
    pts = np.concatenate([rng.uniform(-60, 60, (n, 3)), rng.uniform(0, 255, (n, fields - 3))], axis=1).astype(np.float32)
    offsets = np.sort(rng.integers(-50 * MS, 0, n)).astype(np.int64)
    return pts, offsets


def deskew_oracle(xyz: np.ndarray, offsets: np.ndarray, stamp: int, traj: PoseTrajectory, ego_T_sensor: np.ndarray,
                  step_ns: int) -> np.ndarray:
    """The node blend point by point in numpy: nodes every step from the first point's time, the 3x4
    transform linear between the two around each point (what the kernel does, said plainly)."""
    lo, hi = int(offsets.min()), int(offsets.max())
    k = max(2, -(-(hi - lo) // step_ns) + 1)
    times = stamp + lo + np.arange(k, dtype=np.int64) * step_ns
    nodes = (traj.relative(stamp, times) @ ego_T_sensor)[:, :3, :]
    u = (offsets - lo) / step_ns
    j = np.clip(np.floor(u).astype(np.int64), 0, k - 2)
    a = np.clip(u - j, 0.0, 1.0)[:, None, None]
    M = (1.0 - a) * nodes[j] + a * nodes[j + 1]
    p = xyz[:, :3].astype(np.float64)
    return (np.einsum("nij,nj->ni", M[:, :, :3], p) + M[:, :, 3]).astype(np.float32)


class TestDeskew:
    @pytest.mark.parametrize("fields", [3, 4, 5, 6])
    def test_columns_rows_and_oracle_agree(self, fields):
        rng = np.random.default_rng(fields)
        traj = turning_trajectory(10**12)
        stamp = 10**12 + 700 * MS
        E = random_pose(rng, 1.0)
        pts, off = sweep(rng, 5000, fields)
        rows = np.empty_like(pts)
        deskew_points(pts, off, stamp, traj, E, 2 * MS, out=rows)
        cols = deskew_columns(pts, off, stamp, traj, E, 2 * MS)
        assert cols.shape == (fields, 5000) and cols.flags.c_contiguous
        np.testing.assert_array_equal(cols.T, rows)  # the same bits in either layout
        np.testing.assert_array_equal(rows[:, 3:], pts[:, 3:])
        np.testing.assert_allclose(rows[:, :3], deskew_oracle(pts, off, stamp, traj, E, 2 * MS), rtol=0, atol=2e-5)
        # only x y z asked for, from a non-contiguous view: the same x y z
        np.testing.assert_array_equal(deskew_points(pts[:, :3], off, stamp, traj, E, 2 * MS), rows[:, :3])

    def test_order_of_the_points_changes_nothing(self):
        """The kernel goes run by run through points in firing order; any order gives the same bits."""
        rng = np.random.default_rng(7)
        traj = turning_trajectory(10**12)
        stamp = 10**12 + 500 * MS
        E = random_pose(rng, 1.0)
        pts, off = sweep(rng, 4000)
        perm = rng.permutation(len(pts))
        a = deskew_columns(pts, off, stamp, traj, E, 2 * MS)
        b = deskew_columns(pts[perm], off[perm], stamp, traj, E, 2 * MS)
        np.testing.assert_array_equal(a[:, perm], b)

    def test_runs_blocks_and_node_edges(self):
        """Long runs (whole blocks of 64 found by their min and max), runs backwards, points exactly on
        node stamps and a point alone between two runs: every order gives the bits of any other and
        the oracle's values; a given ``span`` changes nothing."""
        rng = np.random.default_rng(11)
        traj = turning_trajectory(10**12)
        stamp = 10**12 + 600 * MS
        E = random_pose(rng, 1.0)
        step = 2 * MS
        off = np.sort(np.concatenate([rng.integers(-50 * MS, 0, 6000), -50 * MS + step * np.arange(26),
                                      -50 * MS + step * np.arange(1, 26) - 1])).astype(np.int64)
        pts = sweep(rng, len(off))[0]
        a = deskew_columns(pts, off, stamp, traj, E, step)
        np.testing.assert_allclose(a[:3].T, deskew_oracle(pts, off, stamp, traj, E, step), rtol=0, atol=2e-5)
        np.testing.assert_array_equal(a[3:], pts[:, 3:].T)
        rev = np.arange(len(off))[::-1]
        np.testing.assert_array_equal(deskew_columns(pts[rev], off[rev], stamp, traj, E, step)[:, ::-1], a)
        mixed = np.concatenate([np.arange(0, 3000), [5000], np.arange(3000, 5000), np.arange(5001, len(off))])
        np.testing.assert_array_equal(deskew_columns(pts[mixed], off[mixed], stamp, traj, E, step), a[:, mixed])
        np.testing.assert_array_equal(deskew_columns(pts, off, stamp, traj, E, step, span=offset_span(off)), a)
        assert offset_span(off) == (int(off.min()), int(off.max()))

    def test_edges(self):
        traj = turning_trajectory(10**12)
        empty = deskew_columns(np.zeros((0, 5), np.float32), np.zeros(0, np.int64), 10**12 + 10**8, traj, np.eye(4))
        assert empty.shape == (5, 0)
        with pytest.raises(ShapeError, match="time_offset_ns"):
            deskew_columns(np.zeros((3, 5), np.float32), np.zeros(2, np.int64), 10**12, traj, np.eye(4))
        with pytest.raises(PoseError, match="no pose for stamp"):
            deskew_columns(np.zeros((3, 5), np.float32), np.zeros(3, np.int64), 10**12 + 10 * 10**9, traj, np.eye(4))


class TestAccumulate:
    @pytest.mark.parametrize("fields", [4, 5, 6])
    def test_columns_rows_and_oracle_agree(self, fields):
        rng = np.random.default_rng(fields)
        names = ("x", "y", "z", "intensity", "ring", "elongation")[:fields]
        ref = 10**12
        sweeps = [(ref - 50 * MS * i, sweep(rng, 1000 + 37 * i, fields)[0], random_pose(rng)) for i in range(6)]
        rows = accumulate_sweeps(ref, [SweepInput(t, p, M) for t, p, M in sweeps], names)
        cols = accumulate_sweeps(ref, [SweepInput(t, np.ascontiguousarray(p.T), M, columns=True) for t, p, M in sweeps], names)
        np.testing.assert_array_equal(rows.points, cols.points)
        # the oracle: each sweep through its transform in float64, its fields, its time lag
        want = np.concatenate([np.column_stack([se3.transform_points(M, p[:, :3].astype(np.float64)).astype(np.float32),
                                                p[:, 3:], np.full(len(p), (ref - t) / 1e9, np.float32)])
                               for t, p, M in sweeps])
        np.testing.assert_allclose(rows.points[:, :3], want[:, :3], rtol=0, atol=2e-5)
        np.testing.assert_array_equal(rows.points[:, 3:], want[:, 3:])
        assert rows.fields == names + ("time_lag",)

    def test_sweep_arrays_are_sweep_inputs(self):
        rng = np.random.default_rng(3)
        names = ("x", "y", "z", "intensity", "ring")
        sweeps = [(10**12 - 50 * MS * i, np.ascontiguousarray(sweep(rng, 700 + i)[0].T), random_pose(rng)) for i in range(4)]
        a = accumulate_sweeps(10**12, [SweepInput(t, p, M, columns=True) for t, p, M in sweeps], names)
        b = accumulate_sweep_arrays(10**12, [t for t, _, _ in sweeps], [p for _, p, _ in sweeps], [M for _, _, M in sweeps], names)
        np.testing.assert_array_equal(a.points, b.points)
        assert a.fields == b.fields
        with pytest.raises(ShapeError, match="as many"):
            accumulate_sweep_arrays(10**12, [1, 2], [sweeps[0][1]], [np.eye(4)], names)

    def test_into_a_buffer(self):
        rng = np.random.default_rng(1)
        pts = sweep(rng, 100)[0]
        buf = np.full((250, 6), -1.0, np.float32)
        out = accumulate_sweeps(5, [SweepInput(5, pts, np.eye(4)), SweepInput(4, pts.T.copy(), np.eye(4), columns=True)],
                                ("x", "y", "z", "i", "r"), out=buf)
        assert out.points.base is buf and len(out) == 200
        np.testing.assert_array_equal(out.points, accumulate_sweeps(5, [SweepInput(5, pts, np.eye(4)), SweepInput(4, pts, np.eye(4))],
                                                                    ("x", "y", "z", "i", "r")).points)
        assert (buf[200:] == -1.0).all()
        with pytest.raises(ShapeError, match="out"):
            accumulate_sweeps(5, [SweepInput(5, pts, np.eye(4))], ("x", "y", "z", "i", "r"), out=np.empty((99, 6), np.float32))
        with pytest.raises(ShapeError, match="columns"):
            accumulate_sweeps(5, [SweepInput(5, pts, np.eye(4), columns=True)], ("x", "y", "z", "i", "r"))

    def test_radar_arrays_and_per_scan_fields(self):
        rng = np.random.default_rng(2)
        scans = []
        for k, n in enumerate((3, 0, 5)):
            comp = rng.normal(size=(n, 2)).astype(np.float32)
            comp[::2] = np.nan  # Doppler only on every second return
            scans.append(RadarScan(1000 - 10 * k, "r", rng.normal(size=(n, 3)).astype(np.float32),
                                   rng.normal(size=n).astype(np.float32), rng.normal(size=n).astype(np.float32),
                                   rng.normal(size=(n, 2)).astype(np.float32), comp, extra={"dyn_prop": np.arange(n)}))
        Ms = [random_pose(rng, 2.0) for _ in scans]
        us = [rng.normal(size=3), None, rng.normal(size=3)]
        a = accumulate_radar(2000, [RadarInput(s, M, u) for s, M, u in zip(scans, Ms, us)])
        b = accumulate_radar_arrays(2000, scans, np.stack(Ms), us)
        packed = [pack_radar_scan(s) for s in scans]
        c = accumulate_radar_arrays(2000, scans, np.stack(Ms), us, packed)
        for f in ("points", "rcs", "radial_velocity", "velocity", "velocity_comp"):
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
            np.testing.assert_array_equal(getattr(c, f), getattr(b, f))
        np.testing.assert_array_equal(packed[2], np.column_stack([scans[2].points, scans[2].rcs, scans[2].radial_velocity,
                                                                  scans[2].velocity, scans[2].velocity_comp]).T)
        # the velocities said plainly: compensated ones rotated; Doppler-only ones from the radial speed
        # and the radar's own velocity (NaN without it)
        i = 0
        for s, M, u in zip(scans, Ms, us):
            for r in range(len(s)):
                p = s.points[r].astype(np.float64)
                comp = s.velocity_comp[r].astype(np.float64)
                if np.isnan(comp).any():
                    d = p / max(np.linalg.norm(p), 1e-9)
                    own = float(s.radial_velocity[r]) + (d @ u if u is not None else np.nan)
                    comp = own * d[:2]
                np.testing.assert_allclose(a.velocity_comp[i], (M[:2, :2] @ comp).astype(np.float32), rtol=1e-6, atol=1e-6)
                i += 1
        with pytest.raises(ShapeError, match="packed"):
            accumulate_radar_arrays(2000, scans, np.stack(Ms), us, packed[:2])
        assert a.extra["sensor_index"].tolist() == [0, 0, 0, 2, 2, 2, 2, 2]
        np.testing.assert_array_equal(a.extra["time_lag"], np.float32([1e-6] * 3 + [1.02e-6] * 5))
        assert a.extra["dyn_prop"].tolist() == [0, 1, 2, 0, 1, 2, 3, 4]
        np.testing.assert_allclose(a.points, np.concatenate([se3.transform_points(M, s.points.astype(np.float64))
                                                             for s, M in zip(scans, Ms)]), atol=1e-5)


class TestSynchronizerCloud:
    def test_accumulated_cloud_equals_the_slow_way(self, scene, scene_config):
        """A frame's cloud rebuilt sweep by sweep: deskewed point by point with the same poses, moved
        into the frame's ego frame in float64 numpy, fields and time lag appended."""
        sync = Synchronizer(scene.rig, scene_config)
        frames = [f for m in scene.messages for f in sync.push(m)] + sync.flush()
        poses = [m.payload for m in scene.messages if m.sensor == "ego_pose"]
        traj = PoseTrajectory.from_ego_poses(poses)
        E = scene.rig["LIDAR_TOP"].ego_T_sensor
        step = int(scene_config.deskew_step_ms * 1e6)
        sweep_stamps = np.array([m.stamp_ns for m in scene.sweeps])
        for f in frames[-3:]:
            T = f.stamp_ns
            lags = f.lidar.field("time_lag")
            # each sweep by its time lag (float32 seconds: within a microsecond of the stamp)
            stamps = [int(sweep_stamps[np.argmin(np.abs(sweep_stamps - (T - lag * 1e9)))]) for lag in dict.fromkeys(lags.tolist())]
            assert len(stamps) == 10 and stamps[0] == T
            want = []
            for t in stamps:
                cloud: PointCloud = scene.sweeps[int(np.searchsorted(sweep_stamps, t))].payload
                rows = deskew_oracle(cloud.points, cloud.time_offset_ns, t, traj, E, step)
                M = traj.relative(T, [t])[0]
                xyz = se3.transform_points(M, rows.astype(np.float64)).astype(np.float32)
                want.append(np.column_stack([xyz, cloud.points[:, 3:], np.full(len(cloud), (T - t) / 1e9, np.float32)]))
            want = np.concatenate(want)
            np.testing.assert_allclose(f.lidar.points[:, :3], want[:, :3], rtol=0, atol=1e-5)  # float32 rounding: 1 ulp
            np.testing.assert_array_equal(f.lidar.points[:, 3:], want[:, 3:])
            np.testing.assert_allclose(f.world_T_ego, traj.world_T_ego(T), atol=1e-12)


class TestFramePoses:
    def test_relative_poses_are_the_numpy_product(self):
        rng = np.random.default_rng(5)
        W = np.stack([random_pose(rng) for _ in range(9)])
        sensors = np.stack([np.eye(4)] + [random_pose(rng, 2.0) for _ in range(4)])
        rows = np.array([0, 3, 1, 0, 4, 2, 2, 0, 1], np.int64)
        out = np.empty_like(W)
        _relative_poses(W, rows, sensors, out)
        np.testing.assert_allclose(out, se3.invert(W[0]) @ W @ sensors[rows], rtol=0, atol=1e-12)
        assert (out[:, 3] == [0.0, 0.0, 0.0, 1.0]).all()


class TestPoses:
    def test_finite_pose_quat_is_matrix_to_quat(self):
        rng = np.random.default_rng(6)
        for k in range(3000):
            q = rng.normal(size=4)
            if k % 3 == 0:
                q[rng.integers(4)] = 0.0
            if k % 5 == 0:  # the four branches: each axis of a half turn, and the identity
                q = np.eye(4)[k % 4] * rng.choice([-1.0, 1.0])
            T = se3.from_rotation_translation(q / np.linalg.norm(q), rng.normal(size=3))
            out = np.empty(4)
            assert finite_pose_quat(T, out)
            np.testing.assert_array_equal(out, se3.matrix_to_quat(T))
        T[2, 3] = np.inf
        assert not finite_pose_quat(T, out)

    def test_pose_buffer_newest(self):
        buf = PoseBuffer(10 * MS, MS)
        assert buf.newest_ns is None and buf.span_ns is None
        for t in (5, 1, 9, 7, 9):
            buf.append(t * MS, np.eye(4))
        assert buf.newest_ns == 9 * MS and buf.span_ns == (1 * MS, 9 * MS) and len(buf) == 4
        np.testing.assert_array_equal(buf.trajectory().stamps_ns, np.array([1, 5, 7, 9]) * MS)
        buf.truncate_after(6 * MS)
        assert buf.newest_ns == 5 * MS and buf.span_ns == (1 * MS, 5 * MS)
        buf.truncate_after(0)
        assert buf.newest_ns is None and len(buf) == 0
        buf.append(30 * MS, np.eye(4))
        buf.append(50 * MS, np.eye(4))  # 20 ms later: the first is forgotten (history 10 ms)
        assert buf.span_ns == (50 * MS, 50 * MS)
        buf.clear()
        assert buf.newest_ns is None


class TestTrajectoryQuery:
    def test_compiled_segments_are_the_numpy_ones(self):
        rng = np.random.default_rng(4)
        for n in (2, 3, 40):
            t = np.cumsum(rng.integers(1, 30 * MS, n)).astype(np.int64)
            traj = PoseTrajectory(t, np.stack([random_pose(rng) for _ in range(n)]), max_extrapolation_ns=10**9)
            q = np.concatenate([rng.integers(t[0] - 10**9, t[-1] + 10**9, 500), t]).astype(np.int64)
            i0, i1, alpha = np.empty(len(q), np.int64), np.empty(len(q), np.int64), np.empty(len(q))
            assert _segments_into(traj.stamps_ns, q, EXTRAPOLATION_BASE_NS, traj.max_extrapolation_ns, i0, i1, alpha) == -1
            w0, w1, walpha = traj._segments(q)
            np.testing.assert_array_equal(i0, w0)
            np.testing.assert_array_equal(i1, w1)
            np.testing.assert_array_equal(alpha, walpha)
            bad = q.copy()
            bad[7] = t[-1] + 10**9 + 1
            assert _segments_into(traj.stamps_ns, bad, EXTRAPOLATION_BASE_NS, traj.max_extrapolation_ns, i0, i1, alpha) == 7

    def test_one_pose_and_out_of_range(self):
        traj = PoseTrajectory(np.array([5 * MS]), np.eye(4)[None], max_extrapolation_ns=MS)
        np.testing.assert_array_equal(traj.world_T_ego_many([4 * MS, 6 * MS]), np.stack([np.eye(4)] * 2))
        with pytest.raises(PoseError, match=f"no pose for stamp {6 * MS + 1} ns"):
            traj.world_T_ego_many([5 * MS, 6 * MS + 1])
        assert traj.covers(6 * MS) and not traj.covers(np.int64(6 * MS + 1)) and traj.covers([4 * MS, 6 * MS])
        assert not traj.covers(6 * MS, extrapolate=False)


def update_gnss_oracle(s: np.ndarray, enu: np.ndarray, cov: np.ndarray, lever: np.ndarray, gate: float) -> bool:
    """The GNSS update in numpy (the filter's code before it was compiled)."""
    x, P = s[G._X].copy(), s[G._P].reshape(6, 6).copy()
    yaw = x[2]
    m = se3.rotation_rpy(s[G._ROLL], s[G._PITCH], 0.0) @ lever
    cy, sy = math.cos(yaw), math.sin(yaw)
    h = np.array([x[0] + cy * m[0] - sy * m[1], x[1] + sy * m[0] + cy * m[1]])
    H = np.zeros((2, 6))
    H[0, 0] = H[1, 1] = 1.0
    H[0, 2], H[1, 2] = -sy * m[0] - cy * m[1], cy * m[0] - sy * m[1]
    R = cov[:2, :2]
    y = enu[:2] - h
    S = H @ P @ H.T + R
    if float(y @ np.linalg.solve(S, y)) > gate and s[G._REJECTS] < 5:
        s[G._REJECTS] += 1
        return False
    s[G._REJECTS] = 0
    K = P @ H.T @ np.linalg.inv(S)
    IKH = np.eye(6) - K @ H
    s[G._X] = x + K @ y
    s[G._P] = (IKH @ P @ IKH.T + K @ R @ K.T).ravel()
    pz = s[G._PZ].reshape(2, 2)
    kz = pz[:, 0] / (pz[0, 0] + cov[2, 2])
    s[G._Z] = s[G._Z] + kz * (enu[2] - m[2] - s[G._Z][0])
    s[G._PZ] = ((np.eye(2) - np.outer(kz, [1.0, 0.0])) @ pz).ravel()
    return True


class TestFilterKernels:
    def test_gnss_update_is_the_numpy_update(self):
        from perception.sync import _filter_kernels as fk

        assert fk.REJECTS == G._REJECTS
        rng = np.random.default_rng(0)
        outcomes = set()
        for _ in range(300):
            s = np.zeros(G._STATE_LEN)
            s[G._X] = rng.normal(size=6) * [10, 10, 3, 5, 0.01, 0.1]
            A = rng.normal(size=(6, 6))
            s[G._P] = (A @ A.T * 0.1 + np.eye(6) * 0.01).ravel()
            s[G._Z] = rng.normal(size=2)
            B = rng.normal(size=(2, 2))
            s[G._PZ] = (B @ B.T + np.eye(2) * 0.1).ravel()
            s[G._ROLL], s[G._PITCH] = rng.uniform(-0.3, 0.3, 2)
            s[G._REJECTS] = rng.integers(0, 7)
            enu = np.concatenate([s[G._X][:2] + rng.normal(size=2) * rng.choice([0.1, 5.0]), rng.normal(size=1)])
            C = rng.normal(size=(3, 3))
            cov = C @ C.T * 0.01 + np.eye(3) * 1e-3
            lever = rng.normal(size=3)
            a, b = s.copy(), s.copy()
            ok = update_gnss_oracle(a, enu, cov, lever, 30.0)
            assert gnss_update(b, enu, cov, lever, 30.0) == ok
            outcomes.add(ok)
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
        assert outcomes == {True, False}  # both the update and the gate were exercised

    def test_mounted_imu_step_is_the_rotated_step(self):
        rng = np.random.default_rng(2)
        params = np.array([1e-4, 1e-4, 2e-7, 0.09, 4e-10, 4e-6, 0.09, 2.0])
        for _ in range(50):
            s = np.zeros(G._STATE_LEN)
            s[G._X] = rng.normal(size=6) * [10, 10, 3, 5, 0.01, 0.1]
            s[G._P] = (np.eye(6) * 0.01).ravel()
            s[G._PZ] = [0.1, 0.0, 0.0, 0.1]
            s[G._OMEGA], s[G._ACCEL] = rng.normal(size=3) * 0.1, [0.0, 0.0, 9.81]
            R = se3.rotation_rpy(*rng.normal(size=3))
            w, f = rng.normal(size=3) * 0.1, rng.normal(size=3) + [0.0, 0.0, 9.81]
            a, b = s.copy(), s.copy()
            Ta, qa, Tb, qb, omega, accel = np.empty((4, 4)), np.empty(4), np.empty((4, 4)), np.empty(4), np.empty(3), np.empty(3)
            imu_step_pose(a, 0.01, R @ w, R @ f, params, Ta, qa)
            imu_step_mounted(b, 0.01, R, w, f, params, Tb, qb, omega, accel)
            np.testing.assert_allclose(omega, R @ w, rtol=0, atol=1e-15)
            np.testing.assert_allclose(accel, R @ f, rtol=0, atol=1e-14)
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(Tb, Ta, rtol=0, atol=1e-12)
            np.testing.assert_allclose(qb, qa, rtol=0, atol=1e-12)

    def test_enu_is_the_origins(self):
        from calib.geodesy import EnuOrigin

        rng = np.random.default_rng(8)
        for _ in range(50):
            origin = EnuOrigin(rng.uniform(-80, 80), rng.uniform(-180, 180), rng.uniform(-50, 2000))
            enu = G._Enu(origin)
            for spread in (1e-5, 1e-3, 0.1):
                lat, lon, alt = origin.lat_deg + rng.normal() * spread, origin.lon_deg + rng.normal() * spread, origin.alt_m + rng.normal() * 30
                np.testing.assert_allclose(enu.to_enu(lat, lon, alt), origin.to_enu(lat, lon, alt).reshape(3), rtol=0, atol=1e-6)

    def test_sensor_velocity_is_the_numpy_one(self):
        rng = np.random.default_rng(1)
        dt = 2 * _VEL_DT * 1e-9
        for _ in range(50):
            a, E = random_pose(rng), random_pose(rng, 2.0)
            step = se3.from_rotation_translation(se3.rotation_rpy(*rng.normal(size=3) * 0.003), rng.normal(size=3) * 0.3)
            b = a @ step
            a_T_b = se3.invert(a) @ b
            R = a_T_b[:3, :3]
            w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]]) / (2.0 * dt)
            want = E[:3, :3].T @ (a_T_b[:3, 3] / dt + np.cross(w, E[:3, 3]))
            np.testing.assert_allclose(_sensor_velocity(a, b, E, dt), want, rtol=1e-9, atol=1e-9)


def test_deskew_nodes_are_the_numpy_product():
    from perception.sync.deskew import deskew_transforms

    rng = np.random.default_rng(9)
    traj = turning_trajectory(10**12)
    E = random_pose(rng, 2.0)
    stamp = 10**12 + 900 * MS
    t0, nodes = deskew_transforms(traj, stamp, stamp - 50 * MS, stamp - 3 * MS, 2 * MS, E)
    times = t0 + np.arange(len(nodes), dtype=np.int64) * 2 * MS
    assert t0 == stamp - 50 * MS and len(nodes) == 25 and times[-1] >= stamp - 3 * MS
    np.testing.assert_allclose(nodes, (traj.relative(stamp, times) @ E)[:, :3, :], rtol=0, atol=1e-12)
