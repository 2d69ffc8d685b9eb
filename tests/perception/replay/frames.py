"""Frames with known content for the sink and picture tests: the shipped nuScenes-like rig, a flat
ground of LiDAR points, a car ahead and a pedestrian on the left, grey camera images.

Built from the data model itself (the same ``SyncedFrame`` the synchronizer emits), not a stand-in.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from calib import se3
from calib.rig import Rig, load_rig
from perception.classes import NUSCENES_CLASSES
from perception.types import CameraImage, Detections, PointCloud, RadarScan, SyncedFrame

REPO = Path(__file__).resolve().parents[3]
RIG_PATH = REPO / "data" / "rigs" / "nuscenes_like.yaml"
T0 = 1_700_000_000_000_000_000
PERIOD = 100_000_000
IMAGE_W, IMAGE_H = 320, 180  # the rig's 1600x900 cameras, scaled by 1/5


def rig() -> Rig:
    return load_rig(RIG_PATH)


def boxes(stamp_ns: int, *, score: tuple[float, float] = (0.9, 0.6), frame_id: str = "ego") -> Detections:
    """A car 12 m ahead heading +x, and a pedestrian 8 m to the left."""
    names = NUSCENES_CLASSES
    return Detections(
        stamp_ns=stamp_ns, frame_id=frame_id, class_names=names,
        center=np.array([[12.0, 0.0, 0.8], [3.0, 8.0, 0.9]]), size=np.array([[4.5, 1.9, 1.6], [0.7, 0.7, 1.8]]),
        yaw=np.array([0.0, np.pi / 2]), velocity=np.array([[5.0, 0.0], [0.0, 1.0]]),
        score=np.array(score, np.float32), label=np.array([names.index("car"), names.index("pedestrian")], np.int64),
        attribute=np.array(["vehicle.moving", "pedestrian.moving"], dtype=object),
    )


def ground_truth(stamp_ns: int) -> Detections:
    gt = boxes(stamp_ns, score=(1.0, 1.0))
    return replace(gt, num_lidar_pts=np.array([120, 30], np.int64), num_radar_pts=np.array([3, 0], np.int64))


def lidar(stamp_ns: int, n: int = 2000, seed: int = 0) -> PointCloud:
    rng = np.random.default_rng(seed)
    xyz = np.column_stack([rng.uniform(-40, 40, n), rng.uniform(-40, 40, n), np.zeros(n)])
    pts = np.column_stack([xyz, rng.uniform(0, 100, n), np.zeros(n)]).astype(np.float32)
    return PointCloud(stamp_ns, "ego", pts, fields=("x", "y", "z", "intensity", "time_lag"))


def radar(stamp_ns: int) -> RadarScan:
    pts = np.array([[12.0, 0.5, 0.5], [30.0, -5.0, 0.5]], np.float32)
    return RadarScan(stamp_ns, "ego", pts, rcs=np.array([10.0, 5.0], np.float32),
                     radial_velocity=np.array([5.0, 0.0], np.float32), velocity=np.full((2, 2), np.nan, np.float32),
                     velocity_comp=np.array([[5.0, 0.0], [0.0, 0.0]], np.float32))


def images(r: Rig, stamp_ns: int, cameras: tuple[str, ...] | None = None) -> dict[str, CameraImage]:
    out = {}
    for c in r.cameras:
        if cameras is not None and c.name not in cameras:
            continue
        out[c.name] = CameraImage(stamp_ns, c.name, c.frame, np.full((IMAGE_H, IMAGE_W, 3), 90, np.uint8))
    return out


def pose(k: int) -> np.ndarray:
    """The ego 5 m further along x each frame, turned 30 degrees, somewhere in a city."""
    return se3.from_rotation_translation(se3.rotation_z(np.pi / 6), np.array([1000.0 + 5.0 * k, 2000.0, 10.0]))


def frame(r: Rig, k: int, *, with_gt: bool = True, posed: bool = True, image_stamp: int | None = None) -> SyncedFrame:
    stamp = T0 + k * PERIOD
    return SyncedFrame(
        stamp_ns=stamp, images=images(r, image_stamp if image_stamp is not None else stamp), lidar=lidar(stamp, seed=k),
        radar=radar(stamp), world_T_ego=pose(k) if posed else np.full((4, 4), np.nan),
        ground_truth=ground_truth(stamp) if with_gt else None,
        ego_T_sensor={c.name: c.ego_T_sensor for c in r.cameras},
    )
