#!/usr/bin/env python3
"""Throughput of the synchronizer at nuScenes scale, on one CPU core.

A 20 Hz LiDAR with ~34k points per sweep (per-point firing times over the 50 ms sweep, stamped at
its end), 6 cameras at 12 Hz (1600x900 images, passed by reference), 5 radars at 13 Hz (125
returns, Doppler only), and the poses from GNSS (10 Hz) + IMU (100 Hz) through the filter, or
from EgoPose messages (``--poses ego_pose``). Frames at 10 Hz with deskew and 10-sweep
accumulation. The messages are generated before the clock starts; the time is every ``push`` and
``flush`` call, i.e. the whole synchronizer including the pose filter.

    python tools/bench_sync.py --seconds 20 --json out/bench_sync.json

Prints a summary and writes JSON: ms per frame (all pushes, divided by the frames) and percentiles
of the per-frame cost (the pushes between two frames, the emitting one included), as this
thread's CPU time (what the synchronizer costs) and as wall time (what it took on this machine,
neighbours included: on a shared machine the two differ; the load average is recorded).
"""

from __future__ import annotations

import os

# one core: set before numpy and numba load their thread pools
for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from calib import se3  # noqa: E402
from calib.camera import camera_from_dict  # noqa: E402
from calib.geodesy import EnuOrigin  # noqa: E402
from calib.rig import Rig, SensorSpec  # noqa: E402
from perception.sync import SyncConfig, Synchronizer  # noqa: E402
from perception.sync.config import PoseConfig  # noqa: E402
from perception.types import (  # noqa: E402
    CameraImage,
    EgoPose,
    GnssFix,
    ImuSample,
    Modality,
    PointCloud,
    RadarScan,
    SensorMessage,
)

NS = 1_000_000_000
T0 = 1_700_000_000 * NS
SPEED, YAW_RATE = 12.0, 0.08  # m/s, rad/s: a city drive on a gentle curve


def pose(t_ns: np.ndarray) -> np.ndarray:
    """(K, 4, 4) world_T_ego on a circle at SPEED and YAW_RATE."""
    s = (np.asarray(t_ns, np.int64) - T0) * 1e-9
    yaw = YAW_RATE * s
    out = np.zeros((len(s), 4, 4))
    c, n = np.cos(yaw), np.sin(yaw)
    out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1] = c, -n, n, c
    out[:, 2, 2] = out[:, 3, 3] = 1.0
    out[:, 0, 3], out[:, 1, 3] = SPEED / YAW_RATE * n, SPEED / YAW_RATE * (1 - c)
    return out


def make_rig() -> Rig:
    intr = camera_from_dict({"model": "pinhole", "width": 1600, "height": 900, "fx": 1266.0, "fy": 1266.0,
                             "cx": 800.0, "cy": 450.0}, "bench")
    sensors = [SensorSpec("LIDAR_TOP", Modality.LIDAR, "lidar_top", "/lidar", 20.0,
                          se3.from_rotation_translation(se3.rotation_z(-math.pi / 2), [0.94, 0.0, 1.84]))]
    for i in range(6):
        yaw = 2 * math.pi * i / 6
        R = se3.rotation_z(yaw) @ np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)
        sensors.append(SensorSpec(f"CAM_{i}", Modality.CAMERA, f"cam_{i}", f"/cam_{i}", 12.0,
                                  se3.from_rotation_translation(R, [1.5 * math.cos(yaw), 0.5 * math.sin(yaw), 1.5]),
                                  intrinsics=intr))
    for i in range(5):
        yaw = 2 * math.pi * i / 5
        sensors.append(SensorSpec(f"RADAR_{i}", Modality.RADAR, f"radar_{i}", f"/radar_{i}", 13.0,
                                  se3.from_rotation_translation(se3.rotation_z(yaw), [2.0 * math.cos(yaw), math.sin(yaw), 0.5])))
    sensors.append(SensorSpec("GNSS", Modality.GNSS, "gnss", "/fix", 10.0, se3.from_rotation_translation(np.eye(3), [0.5, 0, 1.6])))
    sensors.append(SensorSpec("IMU", Modality.IMU, "imu", "/imu", 100.0))
    return Rig(tuple(sensors), "bench")


def make_messages(rig: Rig, seconds: float, poses: str, points: int, seed: int = 0) -> list[SensorMessage]:
    rng = np.random.default_rng(seed)
    out: list[tuple[int, int, SensorMessage]] = []
    end = T0 + int(seconds * NS)

    def add(stamp: int, prio: int, msg: SensorMessage) -> None:
        out.append((stamp, prio, msg))

    # LiDAR: a fixed random scene of ranges per beam/column, firing times over the 50 ms before the stamp
    az = rng.uniform(-math.pi, math.pi, points)
    el = rng.uniform(-0.5, 0.15, points)
    r = rng.uniform(2.0, 60.0, points)
    xyz = np.stack([r * np.cos(el) * np.cos(az), r * np.cos(el) * np.sin(az), r * np.sin(el)], axis=1)
    frac = np.mod(-az, 2 * math.pi) / (2 * math.pi)
    order = np.argsort(frac)
    offsets = (-(1.0 - frac[order]) * 50_000_000).astype(np.int64)
    cloud = np.column_stack([xyz[order], rng.uniform(0, 255, points), rng.integers(0, 32, points)]).astype(np.float32)
    for t in range(T0 + 50_000_000, end, 50_000_000):
        pc = PointCloud(t, "lidar_top", cloud, ("x", "y", "z", "intensity", "ring"), offsets)
        add(t, 0, SensorMessage(t, "LIDAR_TOP", "/lidar", pc))
    image = np.zeros((900, 1600, 3), np.uint8)
    for i in range(6):
        for t in range(T0 + 3_000_000 * i, end, 83_333_333):
            add(t, 1, SensorMessage(t, f"CAM_{i}", f"/cam_{i}", CameraImage(t, f"CAM_{i}", f"cam_{i}", image)))
    for i in range(5):
        n = 125
        p = rng.uniform(-50, 50, (n, 3)).astype(np.float32)
        nan2 = np.full((n, 2), np.nan, np.float32)
        for t in range(T0 + 7_000_000 * i, end, 76_923_077):
            scan = RadarScan(t, f"radar_{i}", p, np.zeros(n, np.float32), rng.normal(0, 5, n).astype(np.float32), nan2, nan2)
            add(t, 2, SensorMessage(t, f"RADAR_{i}", f"/radar_{i}", scan))
    if poses == "ego_pose":
        ts = np.arange(T0, end, 20_000_000, dtype=np.int64)
        for t, W in zip(ts, pose(ts)):
            add(int(t), 3, SensorMessage(int(t), "ego_pose", "/ego_pose", EgoPose(int(t), "world", W)))
    else:
        origin = EnuOrigin(42.3368, -71.0579, 5.0)
        ts = np.arange(T0, end, 10_000_000, dtype=np.int64)
        for t in ts:
            w = np.array([0.0, 0.0, YAW_RATE]) + rng.normal(0, 1e-3, 3)
            f = np.array([0.0, SPEED * YAW_RATE, 9.80665]) + rng.normal(0, 0.02, 3)
            add(int(t), 4, SensorMessage(int(t), "IMU", "/imu", ImuSample(int(t), "imu", w, f)))
        gt = np.arange(T0, end, 100_000_000, dtype=np.int64)
        W = pose(gt)
        ant = W[:, :3, 3] + np.einsum("nij,j->ni", W[:, :3, :3], rig["GNSS"].ego_T_sensor[:3, 3]) + rng.normal(0, 0.02, (len(gt), 3))
        geo = origin.to_geodetic(ant)
        cov = np.diag([4e-4, 4e-4, 1.6e-3])
        for t, g in zip(gt, geo):
            add(int(t), 5, SensorMessage(int(t), "GNSS", "/fix", GnssFix(int(t), "gnss", *map(float, g), cov, 2, 2)))
    out.sort(key=lambda e: (e[0], e[1]))
    return [m for _, _, m in out]


def run(seconds: float, poses: str, points: int, warmup_s: float) -> dict:
    rig = make_rig()
    msgs = make_messages(rig, seconds, poses, points)
    config = SyncConfig(camera_slop_ms=42.0, pose=PoseConfig(source=poses))
    sync = Synchronizer(rig, config)
    warm_end = T0 + int(warmup_s * NS)
    wall: list[float] = []  # per frame: the pushes since the previous frame, the emitting one included
    cpu: list[float] = []
    total_wall = total_cpu = acc_wall = acc_cpu = 0.0
    frames = 0
    pts_per_frame: list[int] = []
    for m in msgs:
        # wall clock and this thread's CPU time: on a shared machine the CPU time is what the
        # synchronizer itself cost, the wall time also what the neighbours took from it
        t, c = time.perf_counter(), time.thread_time()
        out = sync.push(m)
        dt, dc = time.perf_counter() - t, time.thread_time() - c
        if m.stamp_ns < warm_end:  # numba cache loads, first deskews, filter start-up
            continue
        total_wall += dt
        total_cpu += dc
        acc_wall += dt
        acc_cpu += dc
        for f in out:
            frames += 1
            wall.append(acc_wall)
            cpu.append(acc_cpu)
            acc_wall = acc_cpu = 0.0
            pts_per_frame.append(len(f.lidar) if f.lidar is not None else 0)
    t, c = time.perf_counter(), time.thread_time()
    frames += len(sync.flush())
    total_wall += time.perf_counter() - t
    total_cpu += time.thread_time() - c
    problems = sync.stats.problems()
    w, u = np.array(wall) * 1e3, np.array(cpu) * 1e3

    def pct(a: np.ndarray, q: float) -> float | None:
        return float(np.percentile(a, q)) if len(a) else None

    return {
        "poses": poses,
        "seconds_of_data": seconds,
        "warmup_s": warmup_s,
        "messages": len(msgs),
        "frames": frames,
        "points_per_sweep": points,
        "points_per_frame_median": int(np.median(pts_per_frame)) if pts_per_frame else 0,
        "cpu_ms_per_frame_mean": 1e3 * total_cpu / max(frames, 1),
        "cpu_ms_per_frame_p50": pct(u, 50),
        "cpu_ms_per_frame_p95": pct(u, 95),
        "cpu_ms_per_frame_max": float(u.max()) if len(u) else None,
        "wall_ms_per_frame_mean": 1e3 * total_wall / max(frames, 1),
        "wall_ms_per_frame_p50": pct(w, 50),
        "wall_ms_per_frame_p95": pct(w, 95),
        "degraded_frames": sync.stats.degraded_frames,
        "counter_problems": problems,
    }


def memory_floor(points: int, sweeps: int = 10, repeats: int = 20) -> dict:
    """What the machine's memory allows right now: the CPU ms of one contiguous copy of a frame's
    worth of cloud (``points * sweeps`` x 6 float32, ~8 MB at nuScenes scale) into a buffer used
    again, the memory traffic of building the accumulated cloud with no arithmetic at all (the
    synchronizer reads its cached sweeps and writes the cloud: it cannot go much under this); and
    the copy bandwidth of a 64 MiB array (more than the caches hold). On a shared machine both move
    with the neighbours."""
    rng = np.random.default_rng(1)
    n = points * sweeps * 6
    src = [rng.random(n, dtype=np.float32) for _ in range(2)]  # two sources: not one that stays in cache
    dst = np.empty(n, np.float32)
    np.copyto(dst, src[0])
    times = []
    for r in range(repeats):
        c = time.thread_time()
        np.copyto(dst, src[r % 2])
        times.append(time.thread_time() - c)
    a = np.ones(64 * 1024 * 1024 // 8)
    b = np.empty_like(a)
    t = time.perf_counter()
    for _ in range(5):
        np.copyto(b, a)
    gbps = 2 * a.nbytes * 5 / (time.perf_counter() - t) / 1e9
    return {"copy_floor_ms_per_frame": float(np.median(times) * 1e3), "copy_gb_per_s_read_plus_write": gbps}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="seconds of data (default 20: 200 frames)")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds not timed at the start")
    ap.add_argument("--points", type=int, default=34_688, help="points per sweep (nuScenes LIDAR_TOP: 34,688)")
    ap.add_argument("--poses", choices=("gnss_imu", "ego_pose", "both"), default="both")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    results = []
    for poses in (("gnss_imu", "ego_pose") if args.poses == "both" else (args.poses,)):
        r = run(args.seconds, poses, args.points, args.warmup)
        results.append(r)
        print(f"poses={poses:9s} frames={r['frames']:4d} points/frame={r['points_per_frame_median']:7d}  "
              f"CPU ms/frame mean {r['cpu_ms_per_frame_mean']:.2f} p50 {r['cpu_ms_per_frame_p50']:.2f} "
              f"p95 {r['cpu_ms_per_frame_p95']:.2f} max {r['cpu_ms_per_frame_max']:.2f} | "
              f"wall mean {r['wall_ms_per_frame_mean']:.2f} p50 {r['wall_ms_per_frame_p50']:.2f}  "
              f"degraded {r['degraded_frames']}  counters {'ok' if not r['counter_problems'] else r['counter_problems']}")
    floor = memory_floor(args.points)
    print(f"memory: one plain copy of a frame's cloud takes {floor['copy_floor_ms_per_frame']:.2f} ms "
          f"(the floor of building it); copy bandwidth {floor['copy_gb_per_s_read_plus_write']:.1f} GB/s (read + write)")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    report = {"benchmark": "synchronizer", "machine": platform.processor() or platform.machine(),
              "cpus": os.cpu_count(), "load_average": load, "python": sys.version.split()[0],
              "threads": os.environ.get("NUMBA_NUM_THREADS"), "memory": floor, "results": results}
    print(f"machine: {os.cpu_count()} CPUs, load average {load}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0 if all(not r["counter_problems"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
