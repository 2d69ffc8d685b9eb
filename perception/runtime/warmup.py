"""Warm the pipeline before the node subscribes: the first frames must not pay for numba compilation,
ONNX Runtime's session set-up, CUDA graph capture or a TensorRT engine's first enqueue.

The warm-up frame is built from the rig alone: a LiDAR sweep of points spread over the grid, a grey
image per camera at its intrinsics' size, a radar scan per radar, identity pose. It goes through
``processor.step`` ``runs`` times (compilation happens on the first; the second shows the steady
time, which ``bevfuse node`` prints).
"""

from __future__ import annotations

import time

import numpy as np

from calib.rig import Rig
from perception.types import CameraImage, Modality, PointCloud, RadarScan, SensorMessage, SyncedFrame

__all__ = ["warm_up", "warm_up_sync", "warmup_frame", "warmup_messages"]


def warmup_frame(rig: Rig, stamp_ns: int = 1_000_000_000, points: int = 20_000, seed: int = 0) -> SyncedFrame:
    """A plausible frame for ``rig`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    r = rng.uniform(2.0, 50.0, points)
    a = rng.uniform(-np.pi, np.pi, points)
    xyz = np.stack([r * np.cos(a), r * np.sin(a), rng.uniform(-1.5, 1.5, points)], axis=1)
    cols = np.concatenate([xyz, rng.uniform(0, 100, (points, 1)), np.zeros((points, 1))], axis=1).astype(np.float32)
    cloud = PointCloud(stamp_ns, "ego", cols, fields=("x", "y", "z", "intensity", "time_lag"))
    images = {}
    for cam in rig.cameras:
        w, h = (cam.intrinsics.width, cam.intrinsics.height) if cam.intrinsics is not None else (640, 360)
        images[cam.name] = CameraImage(stamp_ns, cam.name, cam.frame, np.full((int(h), int(w), 3), 96, np.uint8))
    radar = None
    if rig.of(Modality.RADAR):
        n = 32
        f32 = np.float32
        radar = RadarScan(stamp_ns, "ego", rng.uniform(-40, 40, (n, 3)).astype(f32), rng.uniform(-5, 20, n).astype(f32),
                          np.zeros(n, f32), np.zeros((n, 2), f32), np.zeros((n, 2), f32))
    return SyncedFrame(stamp_ns=stamp_ns, images=images, lidar=cloud, radar=radar, world_T_ego=np.eye(4),
                       ego_T_sensor={c.name: c.ego_T_sensor for c in rig.cameras})


def warm_up(processor, rig: Rig, runs: int = 2) -> list[float]:  # noqa: ANN001 - a FrameProcessor
    """Run ``processor.step`` on ``warmup_frame(rig)`` ``runs`` times; the wall time of each, ms."""
    frame = warmup_frame(rig)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        processor.step(frame)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def warmup_messages(rig: Rig, seconds: float = 1.5, start_ns: int = 1_000_000_000) -> list[SensorMessage]:
    """A stationary vehicle for ``seconds``: every rig sensor at its nominal rate (10 Hz without
    one), in stamp order; LiDAR sweeps carry per-point times so that deskewing runs."""
    from perception.types import GnssFix, ImuSample

    rng = np.random.default_rng(1)
    out: list[SensorMessage] = []
    for s in rig.sensors:
        rate = s.rate_hz or (100.0 if s.modality is Modality.IMU else 10.0)
        for k in range(1, int(seconds * rate) + 1):
            t = start_ns + int(k * 1e9 / rate)
            if s.modality is Modality.LIDAR:
                n = 5000
                pts = np.concatenate([rng.uniform(-40, 40, (n, 2)), rng.uniform(-1.5, 1.5, (n, 1)), rng.uniform(0, 100, (n, 1))],
                                     axis=1).astype(np.float32)
                offs = -np.linspace(1e9 / rate, 0, n).astype(np.int64)
                payload = PointCloud(t, s.frame, pts, time_offset_ns=offs)
            elif s.modality is Modality.CAMERA:
                w, h = (s.intrinsics.width, s.intrinsics.height) if s.intrinsics is not None else (640, 360)
                payload = CameraImage(t, s.name, s.frame, np.full((int(h), int(w), 3), 96, np.uint8))
            elif s.modality is Modality.RADAR:
                m, f32 = 16, np.float32
                payload = RadarScan(t, s.frame, rng.uniform(-40, 40, (m, 3)).astype(f32), np.zeros(m, f32), np.zeros(m, f32),
                                    np.zeros((m, 2), f32), np.zeros((m, 2), f32))
            elif s.modality is Modality.GNSS:
                payload = GnssFix(t, s.frame, 42.3368, -71.0578, 5.0, np.diag([1e-4, 1e-4, 4e-4]), covariance_type=2, status=2)
            elif s.modality is Modality.IMU:
                payload = ImuSample(t, s.frame, np.zeros(3), np.array([0.0, 0.0, 9.81]))
            else:
                continue
            out.append(SensorMessage(t, s.name, s.topic or s.name, payload))
    out.sort(key=lambda m: m.stamp_ns)
    return out


def warm_up_sync(rig: Rig, sync_config: object) -> int:
    """Run a throwaway ``Synchronizer`` over ``warmup_messages``: its numba kernels (deskew,
    accumulation, the GNSS/IMU filter) compile now, not on the first live frames. Returns the
    frames it made (0 is possible for an odd rig: warming is best effort)."""
    from perception.sync.synchronizer import Synchronizer

    sync = Synchronizer(rig, sync_config)  # type: ignore[arg-type]
    frames = 0
    try:
        for msg in warmup_messages(rig):
            frames += len(sync.push(msg))
        frames += len(sync.flush())
    except Exception:  # noqa: BLE001 - a warm-up that fails leaves only a slower first frame
        return frames
    return frames
