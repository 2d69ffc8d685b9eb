"""Deskew: move every LiDAR point from the ego pose at its firing time to the pose at the sweep stamp.

A spinning LiDAR fires over 50-100 ms while the car moves metres; a point fired at ``stamp + dt``
is where the sensor saw it from the pose at that time. In the ego frame at the sweep stamp it is

    p_ego(stamp) = ego(stamp)_T_world @ world_T_ego(stamp + dt) @ ego_T_lidar @ p_lidar

The pose is interpolated at nodes ``deskew_step_ms`` apart (default 2 ms) across the sweep and the
3x4 transform is blended linearly between the two nodes around each point: between nodes 2 ms
apart a car turns by ~2e-3 rad at most, where a linear blend of the matrices is exact to ~1e-6,
and the translation is exact wherever the trajectory itself is linear between its samples; so the
per-point cost is one small loop in numba instead of one slerp per point.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from perception.errors import ShapeError
from perception.sync.trajectory import PoseTrajectory
from perception.types import PointCloud

__all__ = ["EGO_FRAME", "deskew_cloud", "deskew_points", "deskew_transforms", "transform_cloud"]

EGO_FRAME = "ego"


def deskew_transforms(trajectory: PoseTrajectory, stamp_ns: int, t_first_ns: int, t_last_ns: int, step_ns: int,
                      ego_T_sensor: np.ndarray) -> tuple[int, np.ndarray]:
    """Node stamps start at ``t_first_ns`` every ``step_ns`` to cover ``t_last_ns``: returns the first
    node stamp and ``nodes: (K, 3, 4)`` float64 = ``ego(stamp)_T_sensor(t_k)`` (K >= 2)."""
    if step_ns <= 0:
        raise ShapeError(f"step_ns: expected > 0, got {step_ns}")
    k = max(2, int(-(-(t_last_ns - t_first_ns) // step_ns)) + 1)
    times = t_first_ns + np.arange(k, dtype=np.int64) * step_ns
    rel = trajectory.relative(stamp_ns, times) @ ego_T_sensor
    return int(t_first_ns), np.ascontiguousarray(rel[:, :3, :])


@njit(cache=True, fastmath=True, boundscheck=False)
def _apply_nodes(xyz: np.ndarray, offsets: np.ndarray, stamp: np.int64, t0: np.int64, step: np.int64,
                 nodes: np.ndarray, out: np.ndarray) -> None:
    k = nodes.shape[0]
    inv_step = 1.0 / step
    base = stamp - t0
    for i in range(xyz.shape[0]):
        u = (base + offsets[i]) * inv_step
        j = int(np.floor(u))
        if j < 0:
            j = 0
        elif j > k - 2:
            j = k - 2
        a = min(max(u - j, 0.0), 1.0)
        b = 1.0 - a
        x, y, z = np.float64(xyz[i, 0]), np.float64(xyz[i, 1]), np.float64(xyz[i, 2])
        n0, n1 = nodes[j], nodes[j + 1]
        for r in range(3):
            out[i, r] = ((b * n0[r, 0] + a * n1[r, 0]) * x + (b * n0[r, 1] + a * n1[r, 1]) * y
                         + (b * n0[r, 2] + a * n1[r, 2]) * z + (b * n0[r, 3] + a * n1[r, 3]))
        for c in range(3, out.shape[1]):  # the other fields ride along (one pass over the sweep)
            out[i, c] = xyz[i, c]


def deskew_points(xyz: np.ndarray, time_offset_ns: np.ndarray, stamp_ns: int, trajectory: PoseTrajectory,
                  ego_T_sensor: np.ndarray, step_ns: int = 1_000_000, out: np.ndarray | None = None) -> np.ndarray:
    """xyz: (N, 3+) float32 in the sensor frame (x y z first), fired at ``stamp_ns + time_offset_ns:
    (N,) int64``; returns (N, 3) float32 in the ego frame at ``stamp_ns``, or fills ``out`` (N, C)
    float32 when given: x y z moved, columns 3..C-1 copied from ``xyz`` (a whole cloud in one pass).
    ``PoseError`` if the trajectory does not cover the sweep (within its extrapolation bound)."""
    if xyz.ndim != 2 or xyz.shape[1] < 3:
        raise ShapeError(f"xyz: expected (N, 3+), got {xyz.shape}")
    offsets = np.asarray(time_offset_ns, dtype=np.int64)
    if offsets.shape != (xyz.shape[0],):
        raise ShapeError(f"time_offset_ns: expected ({xyz.shape[0]},), got {offsets.shape}")
    if out is None:
        out = np.empty((xyz.shape[0], 3), np.float32)
    elif out.ndim != 2 or out.shape[0] != xyz.shape[0] or not 3 <= out.shape[1] <= xyz.shape[1] or out.dtype != np.float32:
        raise ShapeError(f"out: expected ({xyz.shape[0]}, 3..{xyz.shape[1]}) float32, got {out.shape} {out.dtype}")
    if xyz.shape[0] == 0:
        return out
    lo, hi = int(offsets.min()), int(offsets.max())
    t0, nodes = deskew_transforms(trajectory, stamp_ns, stamp_ns + lo, stamp_ns + hi, step_ns, ego_T_sensor)
    _apply_nodes(xyz, offsets, np.int64(stamp_ns), np.int64(t0), np.int64(step_ns), nodes, out)
    return out


def transform_cloud(cloud: PointCloud, a_T_frame: np.ndarray, frame_id: str = EGO_FRAME) -> PointCloud:
    """The cloud with x y z mapped by ``a_T_frame`` (4, 4), other fields kept, per-point times dropped."""
    pts = cloud.points.copy()
    R, t = a_T_frame[:3, :3], a_T_frame[:3, 3]
    pts[:, :3] = (cloud.points[:, :3].astype(np.float64) @ R.T + t).astype(np.float32)
    return PointCloud(cloud.stamp_ns, frame_id, pts, cloud.fields, None)


def deskew_cloud(cloud: PointCloud, trajectory: PoseTrajectory, ego_T_sensor: np.ndarray,
                 step_ns: int = 1_000_000) -> PointCloud:
    """The cloud in the ego frame at its stamp, every point moved by the motion since it was fired.

    A cloud without per-point times is only transformed by ``ego_T_sensor``."""
    if cloud.time_offset_ns is None:
        return transform_cloud(cloud, ego_T_sensor)
    pts = np.empty_like(cloud.points)
    deskew_points(cloud.points, cloud.time_offset_ns, cloud.stamp_ns, trajectory, ego_T_sensor, step_ns, out=pts)
    return PointCloud(cloud.stamp_ns, EGO_FRAME, pts, cloud.fields, None)
