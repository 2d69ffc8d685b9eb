"""Sample payloads of every type, a rig that carries them, and an exact payload comparison.

Shared by the ROS codec and bag tests. Data are random but seeded, with NaNs where bevfuse uses them
for "unknown", so that a round trip has to keep the bits, not only the values.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from calib import se3
from calib.camera import FisheyeCamera, PinholeCamera
from calib.rig import Rig, SensorSpec
from perception.classes import NUSCENES_CLASSES
from perception.types import (
    CameraImage,
    Detections,
    EgoPose,
    GnssFix,
    ImuSample,
    Modality,
    PointCloud,
    RadarScan,
    SensorMessage,
)

T0 = 1_700_000_000_123_456_789  # a 2023 stamp with every nanosecond digit set

PINHOLE = PinholeCamera(64, 48, 50.5, 51.25, 31.7, 23.9, (-0.12, 0.03, 0.001, -0.002, 0.0005))
RATIONAL = PinholeCamera(64, 48, 40.0, 40.0, 32.0, 24.0, (0.1, -0.01, 0.0, 0.0, 0.001, 0.2, -0.02, 0.003))
FISHEYE = FisheyeCamera(64, 48, 20.0, 20.5, 31.5, 23.5, (0.05, -0.01, 0.002, -0.0003))


def _T(yaw: float, t: tuple[float, float, float], roll: float = 0.0) -> np.ndarray:
    R = se3.rotation_z(yaw) @ np.array([[1, 0, 0], [0, np.cos(roll), -np.sin(roll)], [0, np.sin(roll), np.cos(roll)]])
    return se3.from_rotation_translation(R, t)


def sample_rig() -> Rig:
    """Every modality; cameras with pinhole, rational and fisheye models; per-sensor ROS types."""
    cam_rot = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # ego x fwd -> optical z fwd
    return Rig((
        SensorSpec("CAM_FRONT", Modality.CAMERA, "cam_front", "/cam_front/image_raw", 12.0,
                   se3.from_rotation_translation(cam_rot, [1.7, 0.0, 1.5]), 0, PINHOLE, "sensor_msgs/msg/Image"),
        SensorSpec("CAM_BACK", Modality.CAMERA, "cam_back", "/cam_back/image_raw/compressed", 12.0,
                   se3.from_rotation_translation(se3.rotation_z(np.pi) @ cam_rot, [-1.0, 0.0, 1.5]), 0, RATIONAL),
        SensorSpec("CAM_FISHEYE", Modality.CAMERA, "cam_fisheye", "/cam_fisheye/image_raw", 12.0,
                   _T(0.5, (0.5, 0.9, 1.0), roll=0.2), 0, FISHEYE, "sensor_msgs/msg/Image"),
        SensorSpec("LIDAR_TOP", Modality.LIDAR, "lidar_top", "/lidar_top/points", 20.0, _T(-0.01, (0.9, 0.0, 1.84))),
        SensorSpec("RADAR_FRONT", Modality.RADAR, "radar_front", "/radar_front/points", 13.0, _T(0.0, (3.4, 0.0, 0.5))),
        SensorSpec("RADAR_LEFT", Modality.RADAR, "radar_left", "/radar_left/scan", 13.0, _T(1.57, (2.4, 0.9, 0.5)),
                   msgtype="radar_msgs/msg/RadarScan"),
        SensorSpec("GNSS", Modality.GNSS, "gnss", "/gnss/fix", 10.0, _T(0.0, (0.0, 0.0, 1.9))),
        SensorSpec("IMU", Modality.IMU, "imu", "/imu/data", 100.0, _T(0.0, (0.1, 0.0, 0.3))),
        SensorSpec("ODOM", Modality.ODOMETRY, "ego", "/odom", 50.0),
    ), name="sample", source="<sample>")


def smooth_image(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth RGB picture (gradients and a disc): JPEG keeps it within a few grey levels."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([x / w * 255, y / h * 255, 128 + 100 * np.sin((x + y + seed * 7) / 9.0)], axis=2)
    img[(x - w / 2) ** 2 + (y - h / 2) ** 2 < (h / 4) ** 2] = (40 + seed, 200, 90)
    return np.clip(img, 0, 255).astype(np.uint8)


def lidar_cloud(stamp: int, rng: np.random.Generator, n: int = 500) -> PointCloud:
    pts = rng.normal(0.0, 20.0, size=(n, 5)).astype(np.float32)
    pts[:, 3] = rng.uniform(0, 255, n)
    pts[:, 4] = rng.integers(0, 32, n)
    pts[7, :3] = np.nan  # a no-return point
    offsets = np.sort(rng.integers(-50_000_000, 50_000_000, n)).astype(np.int64)
    return PointCloud(stamp, "lidar_top", pts, ("x", "y", "z", "intensity", "ring"), offsets)


def radar_scan(stamp: int, rng: np.random.Generator, frame: str, n: int = 40, full: bool = True) -> RadarScan:
    pts = np.column_stack([rng.uniform(1, 80, n), rng.uniform(-20, 20, n), np.zeros(n)]).astype(np.float32)
    vel = rng.normal(0, 5, (n, 2)).astype(np.float32)
    vel[3] = np.nan  # the sensor gave no velocity for this one
    extra = {"dyn_prop": rng.integers(0, 8, n).astype(np.int8), "id": np.arange(n, dtype=np.uint16),
             "ambig_state": rng.integers(0, 5, n).astype(np.uint8), "x_rms": rng.uniform(0, 1, n).astype(np.float32)}
    return RadarScan(stamp, frame, pts, rng.normal(5, 5, n).astype(np.float32), rng.normal(0, 3, n).astype(np.float32),
                     vel, (vel + 1.5).astype(np.float32), rng.integers(-30_000_000, 0, n).astype(np.int64) if full else None,
                     extra if full else {})


def detections(stamp: int, rng: np.random.Generator, n: int = 6) -> Detections:
    label = rng.integers(0, len(NUSCENES_CLASSES), n).astype(np.int64)
    vel = rng.normal(0, 3, (n, 2))
    vel[0] = np.nan
    return Detections(
        stamp_ns=stamp, frame_id="ego", class_names=NUSCENES_CLASSES, center=rng.normal(0, 20, (n, 3)),
        size=rng.uniform(0.5, 10, (n, 3)), yaw=rng.uniform(-np.pi, np.pi, n), velocity=vel,
        score=np.ones(n, np.float32), label=label,
        attribute=np.array(["vehicle.moving" if i % 2 else "" for i in range(n)], dtype=object),
        track_id=np.array([f"track-{i:03d}" for i in range(n)], dtype=object),
        num_lidar_pts=rng.integers(0, 500, n).astype(np.int64), num_radar_pts=rng.integers(0, 9, n).astype(np.int64),
    )


def sample_messages(seed: int = 0, frames: int = 3) -> list[SensorMessage]:
    """``frames`` rounds of one message per rig sensor + ground truth, with realistic latencies
    (log time after the stamp, LiDAR the latest so log order differs from stamp order)."""
    rng = np.random.default_rng(seed)
    out: list[SensorMessage] = []
    for k in range(frames):
        t = T0 + k * 100_000_000
        imu_nan = k % 2 == 0
        cov = np.diag(rng.uniform(0.01, 1, 3))
        pose = _T(0.1 * k, (10.0 + k, -3.0 + 0.5 * k, 0.2), roll=0.01 * k)

        def cam(name: str, dt: int, seed: int, t: int = t) -> CameraImage:
            return CameraImage(t + dt, name, name.lower(), smooth_image(48, 64, seed))

        items = [
            ("CAM_FRONT", "/cam_front/image_raw", cam("CAM_FRONT", 1_000, k), 30),
            ("CAM_BACK", "/cam_back/image_raw/compressed", cam("CAM_BACK", 2_000, 10 + k), 25),
            ("CAM_FISHEYE", "/cam_fisheye/image_raw", cam("CAM_FISHEYE", 3_000, 20 + k), 28),
            ("LIDAR_TOP", "/lidar_top/points", lidar_cloud(t, rng), 80),
            ("RADAR_FRONT", "/radar_front/points", radar_scan(t + 5_000, rng, "radar_front"), 10),
            ("RADAR_LEFT", "/radar_left/scan", radar_scan(t + 6_000, rng, "radar_left", full=False), 12),
            ("GNSS", "/gnss/fix", GnssFix(t + 7_000, "gnss", 42.375 + 1e-5 * k, -71.147, 7.3 + k,
                                           cov if k else np.full((3, 3), np.nan), 2 if k else 0, 2 if k else 0, 1), 5),
            ("IMU", "/imu/data", ImuSample(t + 8_000, "imu", rng.normal(0, 0.1, 3), rng.normal(0, 1, 3) + [0, 0, 9.81],
                                           np.full(4, np.nan) if imu_nan else se3.matrix_to_quat(pose),
                                           np.diag(rng.uniform(1e-4, 1e-3, 3)), np.full((3, 3), np.nan),
                                           np.full((3, 3), np.nan) if imu_nan else np.diag([1e-3, 2e-3, 3e-3])), 2),
            ("ODOM", "/odom", EgoPose(t + 9_000, "map", pose, "ego", rng.normal(0, 5, 3),
                                       np.full(3, np.nan) if k == 1 else rng.normal(0, 0.1, 3)), 3),
            ("ground_truth", "/ground_truth/boxes", detections(t, rng), 1),
        ]
        for sensor, topic, payload, latency_ms in items:
            out.append(SensorMessage(payload.stamp_ns, sensor, topic, payload, payload.stamp_ns + latency_ms * 1_000_000))
    # A recorder writes in arrival (log time) order.
    out.sort(key=lambda m: m.log_time_ns)
    return out


def _bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == object:
        return a.tolist() == b.tolist()
    return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def assert_payload_equal(a: object, b: object, *, atol: dict[str, float] | None = None, where: str = "") -> None:
    """Field-by-field equality of two payloads; arrays bit-exact unless ``atol`` names the field
    (then NaN-aware closeness)."""
    atol = atol or {}
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    for f in dataclasses.fields(a):
        if f.name == "encoded":  # where an image came from (its JPEG bytes), not what it holds
            continue
        va, vb = getattr(a, f.name), getattr(b, f.name)
        label = f"{where}.{f.name}"
        if f.name in atol:
            # as float64: uint8 images would wrap round in the subtraction
            fa, fb = np.asarray(va, np.float64), np.asarray(vb, np.float64)
            assert np.allclose(fa, fb, atol=atol[f.name], rtol=0, equal_nan=True), label
        elif isinstance(va, np.ndarray) or isinstance(vb, np.ndarray):
            assert va is not None and vb is not None, f"{label}: {va} vs {vb}"
            assert _bits_equal(va, vb), f"{label}: arrays differ ({va.dtype} {va.shape} vs {vb.dtype} {vb.shape})"
        elif isinstance(va, dict):
            assert sorted(va) == sorted(vb), f"{label}: keys {sorted(va)} vs {sorted(vb)}"
            for k in va:
                assert _bits_equal(va[k], vb[k]), f"{label}[{k!r}] differs ({va[k].dtype} vs {vb[k].dtype})"
        else:
            assert va == vb, f"{label}: {va!r} != {vb!r}"
