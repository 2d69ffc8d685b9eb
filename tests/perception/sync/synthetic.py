"""Synthetic streams with known truth for the sync tests: an ego that drives a known path, a spinning
LiDAR that samples a static world while moving, cameras and radars at offsets, GNSS and IMU with noise.

Nothing here is a mock of bevfuse: these are sensors, built from first principles, that produce the
same ``SensorMessage``s a reader would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from calib import se3
from calib.camera import camera_from_dict
from calib.geodesy import EnuOrigin
from calib.rig import Rig, SensorSpec
from perception.types import CameraImage, GnssFix, ImuSample, Modality, PointCloud, RadarScan, SensorMessage

__all__ = ["MemoryLog", "Motion", "StaticWorld", "camera_msg", "gnss_stream", "imu_stream", "lidar_sweep", "make_rig", "merge",
           "radar_msg"]

G = 9.80665
NS = 1_000_000_000


@dataclass
class Motion:
    """A planar ego path from speed and yaw-rate profiles, integrated at 1 kHz.

    speed(t) = v0 + accel * t (clipped to >= 0); yaw_rate(t) = w0 + w_amp * sin(2 pi t / w_period).
    Poses start at ``start`` (x, y, yaw) at t = t0_ns.
    """

    v0: float = 15.0
    accel: float = 0.0
    w0: float = 0.0
    w_amp: float = 0.0
    w_period: float = 20.0
    duration_s: float = 10.0
    t0_ns: int = 1_000 * NS
    start: tuple[float, float, float] = (0.0, 0.0, 0.3)

    def __post_init__(self) -> None:
        dt = 1e-3
        n = int(round(self.duration_s / dt)) + 1
        t = np.arange(n) * dt
        v = self.speed(t)
        w = self.yaw_rate(t)
        yaw = self.start[2] + np.concatenate([[0.0], np.cumsum(0.5 * (w[1:] + w[:-1]) * dt)])
        vx, vy = v * np.cos(yaw), v * np.sin(yaw)
        x = self.start[0] + np.concatenate([[0.0], np.cumsum(0.5 * (vx[1:] + vx[:-1]) * dt)])
        y = self.start[1] + np.concatenate([[0.0], np.cumsum(0.5 * (vy[1:] + vy[:-1]) * dt)])
        self._t, self._x, self._y, self._yaw = t, x, y, yaw

    def speed(self, t: np.ndarray) -> np.ndarray:
        return np.maximum(self.v0 + self.accel * np.asarray(t, float), 0.0)

    def yaw_rate(self, t: np.ndarray) -> np.ndarray:
        return self.w0 + self.w_amp * np.sin(2 * np.pi * np.asarray(t, float) / self.w_period)

    def _rel(self, t_ns: np.ndarray) -> np.ndarray:
        return (np.asarray(t_ns, np.int64) - self.t0_ns) * 1e-9

    def state(self, t_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = self._rel(t_ns)
        return np.interp(s, self._t, self._x), np.interp(s, self._t, self._y), np.interp(s, self._t, self._yaw)

    def world_T_ego(self, t_ns: int) -> np.ndarray:
        x, y, yaw = self.state(np.array([t_ns]))
        return se3.from_rotation_translation(se3.rotation_z(float(yaw[0])), [float(x[0]), float(y[0]), 0.0])

    def world_T_ego_many(self, t_ns: np.ndarray) -> np.ndarray:
        x, y, yaw = self.state(t_ns)
        out = np.zeros((len(x), 4, 4))
        c, s = np.cos(yaw), np.sin(yaw)
        out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1] = c, -s, s, c
        out[:, 2, 2] = out[:, 3, 3] = 1.0
        out[:, 0, 3], out[:, 1, 3] = x, y
        return out

    def imu_truth(self, t_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ego-frame angular velocity (K, 3) and specific force (K, 3) on flat ground."""
        s = self._rel(t_ns)
        v, w = self.speed(s), self.yaw_rate(s)
        vdot = np.where(v > 0, self.accel, 0.0)
        omega = np.stack([np.zeros_like(w), np.zeros_like(w), w], axis=1)
        force = np.stack([vdot * np.ones_like(v), v * w, np.full_like(v, G)], axis=1)
        return omega, force


def make_rig(n_cameras: int = 6, n_radars: int = 5, lidar_rate: float = 20.0, imu_T: np.ndarray | None = None,
             gnss_lever: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Rig:
    """A nuScenes-like rig: LIDAR_TOP, cameras around, radars around, a GNSS antenna and an IMU."""
    sensors = [SensorSpec("LIDAR_TOP", Modality.LIDAR, "lidar_top", "/lidar", lidar_rate,
                          se3.from_rotation_translation(se3.rotation_z(-math.pi / 2), [0.9, 0.0, 1.8]))]
    intr = camera_from_dict({"model": "pinhole", "width": 64, "height": 36, "fx": 40.0, "fy": 40.0, "cx": 32.0, "cy": 18.0},
                            "synthetic")
    for i in range(n_cameras):
        yaw = 2 * math.pi * i / max(n_cameras, 1)
        R = se3.rotation_z(yaw) @ np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)
        sensors.append(SensorSpec(f"CAM_{i}", Modality.CAMERA, f"cam_{i}", f"/cam_{i}", 12.0,
                                  se3.from_rotation_translation(R, [1.0 * math.cos(yaw), 0.5 * math.sin(yaw), 1.5]),
                                  intrinsics=intr))
    for i in range(n_radars):
        yaw = 2 * math.pi * i / max(n_radars, 1)
        sensors.append(SensorSpec(f"RADAR_{i}", Modality.RADAR, f"radar_{i}", f"/radar_{i}", 13.0,
                                  se3.from_rotation_translation(se3.rotation_z(yaw), [2.0 * math.cos(yaw), math.sin(yaw), 0.5])))
    sensors.append(SensorSpec("GNSS", Modality.GNSS, "gnss", "/fix", 10.0,
                              se3.from_rotation_translation(np.eye(3), list(gnss_lever))))
    sensors.append(SensorSpec("IMU", Modality.IMU, "imu", "/imu", 100.0, np.eye(4) if imu_T is None else imu_T))
    return Rig(tuple(sensors), "synthetic")


class StaticWorld:
    """Static structure around a path: ground points, building walls along both sides, poles.

    points: (M, 3) float64 in the world frame, laid out along the ego's path so that the LiDAR sees them.
    """

    def __init__(self, motion: Motion, seed: int = 0, spacing: float = 0.5, reach: float = 40.0) -> None:
        rng = np.random.default_rng(seed)
        ts = motion.t0_ns + np.arange(0, int(motion.duration_s * NS), NS // 10, dtype=np.int64)
        x, y, yaw = motion.state(ts)
        pts = []
        for xi, yi, ci in zip(x[::5], y[::5], yaw[::5]):
            fwd, left = np.array([math.cos(ci), math.sin(ci)]), np.array([-math.sin(ci), math.cos(ci)])
            along = rng.uniform(-reach, reach, 400)
            for side in (-12.0, 12.0):  # walls 12 m either side, 0..6 m high
                h = rng.uniform(0.2, 6.0, 400)
                xy = np.array([xi, yi]) + along[:, None] * fwd + side * left
                pts.append(np.column_stack([xy, h]))
            across = rng.uniform(-11.0, 11.0, 400)  # ground
            xy = np.array([xi, yi]) + along[:, None] * fwd + across[:, None] * left
            pts.append(np.column_stack([xy, np.zeros(400)]))
            for _ in range(4):  # poles
                c = np.array([xi, yi]) + rng.uniform(-reach, reach) * fwd + rng.choice([-8.0, 8.0]) * left
                h = np.linspace(0.2, 5.0, 30)
                pts.append(np.column_stack([np.repeat(c[None], 30, 0), h]))
        self.points = np.concatenate(pts)
        self.spacing = spacing


def lidar_sweep(motion: Motion, world: StaticWorld, rig: Rig, stamp_ns: int, period_ns: int = 50_000_000,
                max_range: float = 40.0, sensor: str = "LIDAR_TOP", noise_m: float = 0.0,
                rng: np.random.Generator | None = None) -> SensorMessage:
    """A sweep stamped at its end (like nuScenes and the Velodyne driver): offsets in (-period, 0].

    Each world point is fired at the time the head points at it (its azimuth in the LiDAR frame,
    clockwise from the cut), and its coordinates are where it is in the LiDAR frame at that moment.
    """
    ego_T_lidar = rig[sensor].ego_T_sensor
    lidar_T_world0 = se3.invert(motion.world_T_ego(stamp_ns) @ ego_T_lidar)
    p0 = se3.transform_points(lidar_T_world0, world.points)
    rng_m = np.linalg.norm(p0[:, :2], axis=1)
    keep = (rng_m > 2.0) & (rng_m < max_range)
    p0, wp = p0[keep], world.points[keep]
    az = np.arctan2(p0[:, 1], p0[:, 0])
    frac = np.mod(-az, 2 * np.pi) / (2 * np.pi)  # clockwise turn from +x, 0..1
    offsets = (-(1.0 - frac) * period_ns).astype(np.int64)
    offsets = np.minimum(offsets, 0)
    t = stamp_ns + offsets
    W = motion.world_T_ego_many(t)
    lidar_T_world = se3.invert(W @ ego_T_lidar)
    pts = np.einsum("nij,nj->ni", lidar_T_world[:, :3, :3], wp) + lidar_T_world[:, :3, 3]
    if noise_m and rng is not None:
        pts = pts + rng.normal(0, noise_m, pts.shape)
    order = np.argsort(offsets, kind="stable")
    pts, offsets = pts[order], offsets[order]
    cloud = np.column_stack([pts, np.full(len(pts), 7.0)]).astype(np.float32)
    pc = PointCloud(stamp_ns, rig[sensor].frame, cloud, ("x", "y", "z", "intensity"), offsets)
    return SensorMessage(stamp_ns, sensor, rig[sensor].topic or sensor, pc)


def camera_msg(rig: Rig, camera: str, stamp_ns: int, log_time_ns: int | None = None) -> SensorMessage:
    spec = rig[camera]
    img = np.full((spec.intrinsics.height, spec.intrinsics.width, 3), 100, np.uint8)
    return SensorMessage(stamp_ns, camera, spec.topic or camera, CameraImage(stamp_ns, camera, spec.frame, img), log_time_ns)


def radar_msg(motion: Motion, world: StaticWorld, rig: Rig, radar: str, stamp_ns: int, n: int = 20,
              log_time_ns: int | None = None) -> SensorMessage:
    """Returns from static world points in front of the radar, with the Doppler a static target shows."""
    spec = rig[radar]
    W = motion.world_T_ego(stamp_ns)
    radar_T_world = se3.invert(W @ spec.ego_T_sensor)
    p = se3.transform_points(radar_T_world, world.points)
    r = np.linalg.norm(p[:, :2], axis=1)
    sel = np.flatnonzero((p[:, 0] > 1.0) & (r < 60.0))[:n]
    pts = p[sel].astype(np.float32)
    # a static target seen from a sensor moving with velocity u (sensor frame) closes at -u . dir
    s = (np.asarray(stamp_ns) - motion.t0_ns) * 1e-9
    v, w = float(motion.speed(s)), float(motion.yaw_rate(s))
    lever = spec.ego_T_sensor[:3, 3]
    u_ego = np.array([v - w * lever[1], w * lever[0], 0.0])
    u = spec.ego_T_sensor[:3, :3].T @ u_ego
    d = pts.astype(np.float64) / np.linalg.norm(pts, axis=1, keepdims=True)
    radial = (-(d @ u)).astype(np.float32)
    m = len(pts)
    # a radar that reports only Doppler: no (compensated) velocity vectors
    nan2 = np.full((m, 2), np.nan, np.float32)
    scan = RadarScan(stamp_ns, spec.frame, pts, np.zeros(m, np.float32), radial, nan2, nan2.copy())
    return SensorMessage(stamp_ns, radar, spec.topic or radar, scan, log_time_ns)


def imu_stream(motion: Motion, rig: Rig, rate_hz: float = 100.0, gyro_noise: float = 1e-4, accel_noise: float = 1.5e-3,
               gyro_bias: float = 5e-5, accel_bias: float = 0.02, seed: int = 0, sensor: str = "IMU") -> list[SensorMessage]:
    """IMU samples (noise densities per sqrt(Hz), constant biases) in the IMU's own axes."""
    rng = np.random.default_rng(seed)
    step = int(round(NS / rate_hz))
    t = motion.t0_ns + np.arange(0, int(motion.duration_s * NS), step, dtype=np.int64)
    omega, force = motion.imu_truth(t)
    spec = rig[sensor]
    imu_R_ego = spec.ego_T_sensor[:3, :3].T
    sd = math.sqrt(rate_hz)
    omega = omega + gyro_bias + rng.normal(0, gyro_noise * sd, omega.shape)
    force = force + accel_bias + rng.normal(0, accel_noise * sd, force.shape)
    out = []
    for ti, w, f in zip(t, omega @ imu_R_ego.T, force @ imu_R_ego.T):
        out.append(SensorMessage(int(ti), sensor, spec.topic or sensor, ImuSample(int(ti), spec.frame, w, f)))
    return out


def gnss_stream(motion: Motion, rig: Rig, origin: EnuOrigin, rate_hz: float = 10.0, sigma: float = 0.02,
                seed: int = 1, sensor: str = "GNSS", correlation_s: float = 0.0) -> list[SensorMessage]:
    """Fixes of the antenna (at the rig's lever arm) with noise ``sigma`` metres (vertical twice that),
    RTK status; ``correlation_s`` > 0 makes it a first-order Gauss-Markov error (multipath, atmosphere)."""
    rng = np.random.default_rng(seed)
    step = int(round(NS / rate_hz))
    t = motion.t0_ns + np.arange(0, int(motion.duration_s * NS), step, dtype=np.int64)
    W = motion.world_T_ego_many(t)
    lever = rig[sensor].ego_T_sensor[:3, 3]
    ant = np.einsum("nij,j->ni", W[:, :3, :3], lever) + W[:, :3, 3]
    white = rng.normal(0, 1.0, ant.shape)
    if correlation_s > 0:
        phi = math.exp(-1.0 / (rate_hz * correlation_s))
        err = np.empty_like(white)
        err[0] = white[0]
        for k in range(1, len(white)):
            err[k] = phi * err[k - 1] + math.sqrt(1 - phi * phi) * white[k]
        white = err
    ant = ant + white * sigma * np.array([1, 1, 2])
    geo = origin.to_geodetic(ant)
    cov = np.diag([sigma ** 2, sigma ** 2, (2 * sigma) ** 2])
    spec = rig[sensor]
    return [SensorMessage(int(ti), sensor, spec.topic or sensor,
                          GnssFix(int(ti), spec.frame, float(g[0]), float(g[1]), float(g[2]), cov, 2, 2))
            for ti, g in zip(t, geo)]


def merge(*streams: list[SensorMessage]) -> list[SensorMessage]:
    """Messages of several streams in stamp order (ties: the order the streams are given)."""
    tagged = [(m.stamp_ns, k, i, m) for k, s in enumerate(streams) for i, m in enumerate(s)]
    tagged.sort(key=lambda e: (e[0], e[1], e[2]))
    return [e[3] for e in tagged]


def ego_pose_stream(motion: Motion, rate_hz: float = 50.0, sensor: str = "ego_pose") -> list[SensorMessage]:
    """Exact poses, as a dataset's pose table or an odometry topic gives them."""
    from perception.types import EgoPose

    step = int(round(NS / rate_hz))
    t = motion.t0_ns + np.arange(0, int(motion.duration_s * NS) + 1, step, dtype=np.int64)
    W = motion.world_T_ego_many(t)
    return [SensorMessage(int(ti), sensor, "/ego_pose", EgoPose(int(ti), "world", Wi)) for ti, Wi in zip(t, W)]


@dataclass
class Scene:
    """A full synthetic drive: 20 Hz LiDAR stamped at the sweep end, cameras triggered as the LiDAR
    passes them on every second sweep (so each 10 Hz frame has exactly one image per camera, at a
    known offset), free-running 13 Hz radars, 50 Hz exact poses."""

    motion: Motion
    rig: Rig
    world: StaticWorld
    sweeps: list[SensorMessage]
    cameras: list[SensorMessage]
    radars: list[SensorMessage]
    poses: list[SensorMessage]
    camera_offsets_ms: dict[str, float]

    @property
    def messages(self) -> list[SensorMessage]:
        return merge(self.sweeps, self.cameras, self.radars, self.poses)


def make_scene(duration_s: float = 3.0, speed: float = 15.0, yaw_rate: float = 0.1, n_cameras: int = 6,
               n_radars: int = 5) -> Scene:
    motion = Motion(v0=speed, w0=yaw_rate, duration_s=duration_s + 0.5)
    rig = make_rig(n_cameras, n_radars)
    world = StaticWorld(motion)
    period = 50_000_000
    first = motion.t0_ns + 2 * period
    stamps = [first + k * period for k in range(int(duration_s * 20))]
    sweeps = [lidar_sweep(motion, world, rig, s, period) for s in stamps]
    # camera i points at azimuth 2 pi i / n in the ego frame; the head turns clockwise from +x of the LiDAR
    lidar_yaw = se3.yaw_of(rig["LIDAR_TOP"].ego_T_sensor)
    offsets = {}
    for i in range(n_cameras):
        az = 2 * math.pi * i / n_cameras - lidar_yaw
        frac = (-az) % (2 * math.pi) / (2 * math.pi)
        offsets[f"CAM_{i}"] = round(-(1.0 - frac) * period) / 1e6
    cams = [camera_msg(rig, cam, s + round(off * 1e6)) for s in stamps[::2] for cam, off in offsets.items()]
    radars = [radar_msg(motion, world, rig, f"RADAR_{i}", motion.t0_ns + 60_000_000 + k * 76_923_077 + i * 7_000_000)
              for i in range(n_radars) for k in range(int(duration_s * 13))]
    end = stamps[-1] + period  # every sensor stops with the LiDAR (else frames would go on without it)
    radars = [m for m in radars if m.stamp_ns <= end]
    poses = [m for m in ego_pose_stream(motion) if m.stamp_ns <= end]
    return Scene(motion, rig, world, sweeps, cams, radars, poses, offsets)


class MemoryLog:
    """A drive log in memory, as a reader gives it: ``messages()`` in stamp order (ties in recorded
    order), like bevfuse's readers; ``messages(order='record')`` as recorded, when ``record_order``
    (what a reader that can read a bag in record order offers)."""

    format = "memory"

    def __init__(self, rig: Rig, recorded: list[SensorMessage], record_order: bool = True) -> None:
        from collections import Counter
        from pathlib import Path

        self.path = Path("memory")
        self.rig = rig
        self.skipped: Counter[str] = Counter()
        self._recorded = list(recorded)
        if not record_order:
            self.messages = self._stamp_ordered  # type: ignore[method-assign]

    def streams(self) -> list:
        from perception.io.base import StreamInfo

        out: dict[str, StreamInfo] = {}
        for m in self._recorded:
            spec = self.rig[m.sensor] if m.sensor in self.rig else None
            info = out.setdefault(m.sensor, StreamInfo(m.sensor, m.topic, type(m.payload).__name__,
                                                       spec.modality if spec else None, 0, m.stamp_ns, m.stamp_ns))
            info.count += 1
            info.first_stamp_ns = min(info.first_stamp_ns, m.stamp_ns)
            info.last_stamp_ns = max(info.last_stamp_ns, m.stamp_ns)
        return list(out.values())

    def messages(self, sensors=None, order: str = "stamp"):  # noqa: ANN001, ANN201 - LogReader.messages
        if order == "record":
            return iter([m for m in self._recorded if sensors is None or m.sensor in sensors])
        return self._stamp_ordered(sensors)

    def _stamp_ordered(self, sensors=None):  # noqa: ANN001, ANN202
        tagged = sorted(enumerate(self._recorded), key=lambda e: (e[1].stamp_ns, e[0]))
        return iter([m for _, m in tagged if sensors is None or m.sensor in sensors])

    def close(self) -> None:
        pass

    def __enter__(self) -> MemoryLog:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
