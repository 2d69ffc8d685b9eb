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
from perception.sync.trajectory import PoseTrajectory, world_T_ego_into
from perception.types import PointCloud

__all__ = ["EGO_FRAME", "deskew_cloud", "deskew_columns", "deskew_points", "deskew_transforms", "offset_span",
           "transform_cloud"]

EGO_FRAME = "ego"


def deskew_transforms(trajectory: PoseTrajectory, stamp_ns: int, t_first_ns: int, t_last_ns: int, step_ns: int,
                      ego_T_sensor: np.ndarray) -> tuple[int, np.ndarray]:
    """Node stamps start at ``t_first_ns`` every ``step_ns`` to cover ``t_last_ns``: returns the first
    node stamp and ``nodes: (K, 3, 4)`` float64 = ``ego(stamp)_T_sensor(t_k)`` (K >= 2)."""
    if step_ns <= 0:
        raise ShapeError(f"step_ns: expected > 0, got {step_ns}")
    k = max(2, int(-(-(t_last_ns - t_first_ns) // step_ns)) + 1)
    nodes = np.empty((k, 3, 4))
    bad = _deskew_nodes(trajectory.stamps_ns, trajectory.quats, trajectory.poses, trajectory.max_extrapolation_ns,
                        np.int64(stamp_ns), np.int64(t_first_ns), np.int64(step_ns),
                        np.ascontiguousarray(ego_T_sensor, dtype=np.float64), nodes)
    if bad >= 0:
        raise trajectory.no_pose(int(stamp_ns) if bad == 0 else int(t_first_ns) + (bad - 1) * int(step_ns))
    return int(t_first_ns), nodes


@njit(cache=True, nogil=True)
def _deskew_nodes(stamps: np.ndarray, quats: np.ndarray, poses: np.ndarray, max_extrapolation_ns: int,
                  stamp: np.int64, t_first: np.int64, step: np.int64, E: np.ndarray, nodes: np.ndarray) -> int:
    """``deskew_transforms`` in one compiled call (the node stamps, their poses, ``_compose_nodes``):
    a dozen small numpy calls cost ~50 us a sweep. Returns the position of the first stamp (0: the
    sweep stamp, j: node j - 1) the trajectory does not cover, else -1."""
    k = nodes.shape[0]
    times = np.empty(k + 1, np.int64)
    times[0] = stamp
    for j in range(k):
        times[j + 1] = t_first + j * step
    W = np.empty((k + 1, 4, 4))
    bad = world_T_ego_into(stamps, quats, poses, max_extrapolation_ns, times, W)
    if bad >= 0:
        return bad
    _compose_nodes(W, E, nodes)
    return -1


@njit(cache=True, nogil=True, inline="always")
def rigid_inverse_rows(T: np.ndarray) -> np.ndarray:
    """The top three rows of ``inv(T)`` for a rigid (4, 4) ``T``: ``[R^T, -R^T t]`` (3, 4)."""
    r = np.empty((3, 4))
    for i in range(3):
        for j in range(3):
            r[i, j] = T[j, i]
        r[i, 3] = -(T[0, i] * T[0, 3] + T[1, i] * T[1, 3] + T[2, i] * T[2, 3])
    return r


@njit(cache=True, nogil=True)
def _compose_nodes(W: np.ndarray, E: np.ndarray, out: np.ndarray) -> None:
    """``out[k] = (inv(W[0]) @ W[k + 1] @ E)[:3]`` for rigid (4, 4) ``W`` and ``E``: one compiled pass
    (``trajectory.relative(...) @ E`` in numpy cost ~60 us of small-array calls per sweep). The
    tests hold it to the numpy product within 1e-12."""
    r = rigid_inverse_rows(W[0])
    a = np.empty((3, 4))
    for k in range(out.shape[0]):
        Wk = W[k + 1]
        for i in range(3):
            for j in range(4):
                a[i, j] = r[i, 0] * Wk[0, j] + r[i, 1] * Wk[1, j] + r[i, 2] * Wk[2, j]
            a[i, 3] += r[i, 3]
        for i in range(3):
            for j in range(4):
                out[k, i, j] = a[i, 0] * E[0, j] + a[i, 1] * E[1, j] + a[i, 2] * E[2, j]
            out[k, i, 3] += a[i, 3]


@njit(cache=True, inline="always")
def _node_index(u: float, k: int) -> int:
    """The node interval [j, j + 1] of a point at ``u`` node steps after the first node."""
    j = int(np.floor(u))
    if j < 0:
        j = 0
    elif j > k - 2:
        j = k - 2
    return j


@njit(cache=True, nogil=True)
def _first_at_node(j: int, base: int, inv_step: float, lo: int, hi: int) -> int:
    """The smallest time offset in ``[lo, hi]`` of a point at or after node ``j``, i.e. with
    ``_node_index`` >= j: ``(base + offset) * inv_step >= j`` (the expression the kernel uses; it
    grows with the offset, so a bisection finds the edge); ``hi + 1`` when there is none."""
    fj = np.float64(j)
    if (base + lo) * inv_step >= fj:
        return lo
    if (base + hi) * inv_step < fj:
        return hi + 1
    a, b = lo, hi  # below j at a, at or above at b
    while b - a > 1:
        mid = a + (b - a) // 2
        if (base + mid) * inv_step >= fj:
            b = mid
        else:
            a = mid
    return b


@njit(cache=True, boundscheck=False, nogil=True)
def _run_end(offsets: np.ndarray, i: int, n: int, t_lo: int, t_hi: int) -> int:
    """The end of the run that starts at point ``i``: the first point after it whose offset is
    outside ``[t_lo, t_hi)``. Whole blocks of 64 by their min and max (a loop LLVM vectorises), the
    rest point by point: per-point node look-ups (a floor each) cost as much as the blend itself."""
    e = i + 1
    while e + 64 <= n:
        blk = offsets[e:e + 64]
        mn = mx = blk[0]
        for q in range(64):
            mn = min(mn, blk[q])
            mx = max(mx, blk[q])
        if mn < t_lo or mx >= t_hi:
            break
        e += 64
    while e < n and t_lo <= offsets[e] < t_hi:
        e += 1
    return e


@njit(cache=True, fastmath=True, boundscheck=False, nogil=True)
def _apply_nodes(xyz: np.ndarray, offsets: np.ndarray, stamp: np.int64, t0: np.int64, step: np.int64,
                 nodes: np.ndarray, out: np.ndarray, columns: bool, lo: np.int64, hi: np.int64) -> None:
    """Point i moved by the 3x4 transform blended between the nodes around its time, its other
    fields copied: ``xyz`` (N, F) C-contiguous, x y z first; ``out`` C-contiguous, (N, G) rows,
    or with ``columns`` (G, N), one row per field (3 <= G <= F); ``lo``, ``hi`` the least and the
    greatest offset.

    A spinning LiDAR lists its points in firing order, so consecutive points share a node interval
    (2 ms of a sweep: ~1400 nuScenes points): the loop goes run by run, a run's points being those
    whose offsets lie between the two offsets where the node index changes (found by bisection,
    once per run), with the run's two nodes in locals and an inner loop over views of the run
    (a loop over ``range(i, e)`` does not vectorise: numba's index wraparound gets in the way; over
    views it does, ~4x faster). Each point gets the same expression whatever the runs and the
    layout, so the bits depend on neither (nor on the order of the points; only the speed does)."""
    k = nodes.shape[0]
    inv_step = 1.0 / step
    base = stamp - t0
    n, f = xyz.shape[0], xyz.shape[1]
    g = out.shape[0] if columns else out.shape[1]
    i = 0
    while i < n:
        j = _node_index((base + offsets[i]) * inv_step, k)
        # the run: the offsets whose node index is j (the first point's own index decides it)
        t_lo = lo if j == 0 else _first_at_node(j, base, inv_step, lo, hi)
        t_hi = hi + 1 if j == k - 2 else _first_at_node(j + 1, base, inv_step, lo, hi)
        if t_lo <= offsets[i] < t_hi:
            e = _run_end(offsets, i, n, t_lo, t_hi)
        else:  # cannot happen (the bisection uses the same expression): one point on its own then
            e = i + 1
        a00, a01, a02, a03 = nodes[j, 0, 0], nodes[j, 0, 1], nodes[j, 0, 2], nodes[j, 0, 3]
        a10, a11, a12, a13 = nodes[j, 1, 0], nodes[j, 1, 1], nodes[j, 1, 2], nodes[j, 1, 3]
        a20, a21, a22, a23 = nodes[j, 2, 0], nodes[j, 2, 1], nodes[j, 2, 2], nodes[j, 2, 3]
        c00, c01, c02, c03 = nodes[j + 1, 0, 0], nodes[j + 1, 0, 1], nodes[j + 1, 0, 2], nodes[j + 1, 0, 3]
        c10, c11, c12, c13 = nodes[j + 1, 1, 0], nodes[j + 1, 1, 1], nodes[j + 1, 1, 2], nodes[j + 1, 1, 3]
        c20, c21, c22, c23 = nodes[j + 1, 2, 0], nodes[j + 1, 2, 1], nodes[j + 1, 2, 2], nodes[j + 1, 2, 3]
        fj = np.float64(j)
        r = e - i
        off = offsets[i:e]
        src = xyz[i:e].reshape(-1)
        # one loop per layout, the widths known where it pays (x y z intensity ring): those vectorise best
        if columns and f == 5 and g == 5:
            X, Y, Z, I4, R5 = out[0, i:e], out[1, i:e], out[2, i:e], out[3, i:e], out[4, i:e]
            for m in range(r):
                a = min(max((base + off[m]) * inv_step - fj, 0.0), 1.0)
                b = 1.0 - a
                x, y, z = np.float64(src[5 * m]), np.float64(src[5 * m + 1]), np.float64(src[5 * m + 2])
                X[m] = (b * a00 + a * c00) * x + (b * a01 + a * c01) * y + (b * a02 + a * c02) * z + (b * a03 + a * c03)
                Y[m] = (b * a10 + a * c10) * x + (b * a11 + a * c11) * y + (b * a12 + a * c12) * z + (b * a13 + a * c13)
                Z[m] = (b * a20 + a * c20) * x + (b * a21 + a * c21) * y + (b * a22 + a * c22) * z + (b * a23 + a * c23)
                I4[m] = src[5 * m + 3]
                R5[m] = src[5 * m + 4]
        elif columns:
            X, Y, Z = out[0, i:e], out[1, i:e], out[2, i:e]
            for m in range(r):
                a = min(max((base + off[m]) * inv_step - fj, 0.0), 1.0)
                b = 1.0 - a
                x, y, z = np.float64(src[f * m]), np.float64(src[f * m + 1]), np.float64(src[f * m + 2])
                X[m] = (b * a00 + a * c00) * x + (b * a01 + a * c01) * y + (b * a02 + a * c02) * z + (b * a03 + a * c03)
                Y[m] = (b * a10 + a * c10) * x + (b * a11 + a * c11) * y + (b * a12 + a * c12) * z + (b * a13 + a * c13)
                Z[m] = (b * a20 + a * c20) * x + (b * a21 + a * c21) * y + (b * a22 + a * c22) * z + (b * a23 + a * c23)
            for c in range(3, g):
                col = out[c, i:e]
                for m in range(r):
                    col[m] = src[f * m + c]
        elif f == 5 and g == 5:
            dst = out[i:e].reshape(-1)
            for m in range(r):
                a = min(max((base + off[m]) * inv_step - fj, 0.0), 1.0)
                b = 1.0 - a
                x, y, z = np.float64(src[5 * m]), np.float64(src[5 * m + 1]), np.float64(src[5 * m + 2])
                dst[5 * m] = (b * a00 + a * c00) * x + (b * a01 + a * c01) * y + (b * a02 + a * c02) * z + (b * a03 + a * c03)
                dst[5 * m + 1] = (b * a10 + a * c10) * x + (b * a11 + a * c11) * y + (b * a12 + a * c12) * z + (b * a13 + a * c13)
                dst[5 * m + 2] = (b * a20 + a * c20) * x + (b * a21 + a * c21) * y + (b * a22 + a * c22) * z + (b * a23 + a * c23)
                dst[5 * m + 3] = src[5 * m + 3]
                dst[5 * m + 4] = src[5 * m + 4]
        else:
            dst = out[i:e].reshape(-1)
            for m in range(r):
                a = min(max((base + off[m]) * inv_step - fj, 0.0), 1.0)
                b = 1.0 - a
                x, y, z = np.float64(src[f * m]), np.float64(src[f * m + 1]), np.float64(src[f * m + 2])
                dst[g * m] = (b * a00 + a * c00) * x + (b * a01 + a * c01) * y + (b * a02 + a * c02) * z + (b * a03 + a * c03)
                dst[g * m + 1] = (b * a10 + a * c10) * x + (b * a11 + a * c11) * y + (b * a12 + a * c12) * z + (b * a13 + a * c13)
                dst[g * m + 2] = (b * a20 + a * c20) * x + (b * a21 + a * c21) * y + (b * a22 + a * c22) * z + (b * a23 + a * c23)
                for c in range(3, g):
                    dst[g * m + c] = src[f * m + c]
        i = e


@njit(cache=True, nogil=True)
def _min_max(a: np.ndarray) -> tuple[int, int]:
    """(min, max) of a non-empty int64 array in one vectorised pass (3x faster than numpy's two)."""
    lo = hi = a[0]
    for i in range(a.shape[0]):
        lo = min(lo, a[i])
        hi = max(hi, a[i])
    return lo, hi


def offset_span(time_offset_ns: np.ndarray) -> tuple[int, int]:
    """The least and the greatest of a non-empty int64 array of per-point time offsets, as ints
    (what ``deskew_columns(..., span=)`` takes: a caller that needs them anyway computes them once)."""
    lo, hi = _min_max(np.ascontiguousarray(time_offset_ns, dtype=np.int64))
    return int(lo), int(hi)


def _check_deskew_input(xyz: np.ndarray, time_offset_ns: np.ndarray) -> np.ndarray:
    if xyz.ndim != 2 or xyz.shape[1] < 3:
        raise ShapeError(f"xyz: expected (N, 3+), got {xyz.shape}")
    offsets = np.asarray(time_offset_ns, dtype=np.int64)
    if offsets.shape != (xyz.shape[0],):
        raise ShapeError(f"time_offset_ns: expected ({xyz.shape[0]},), got {offsets.shape}")
    return offsets


def _deskew_into(xyz: np.ndarray, offsets: np.ndarray, stamp_ns: int, trajectory: PoseTrajectory,
                 ego_T_sensor: np.ndarray, step_ns: int, out: np.ndarray, columns: bool,
                 span: tuple[int, int] | None = None) -> None:
    if xyz.shape[0] == 0:
        return
    lo, hi = _min_max(offsets) if span is None else span
    t0, nodes = deskew_transforms(trajectory, stamp_ns, stamp_ns + lo, stamp_ns + hi, step_ns, ego_T_sensor)
    _apply_nodes(np.ascontiguousarray(xyz), np.ascontiguousarray(offsets), np.int64(stamp_ns), np.int64(t0),
                 np.int64(step_ns), nodes, out, columns, np.int64(lo), np.int64(hi))


def deskew_columns(xyz: np.ndarray, time_offset_ns: np.ndarray, stamp_ns: int, trajectory: PoseTrajectory,
                   ego_T_sensor: np.ndarray, step_ns: int = 1_000_000, *,
                   span: tuple[int, int] | None = None) -> np.ndarray:
    """``deskew_points`` of a whole cloud ``xyz`` (N, F), returned field by field: (F, N) float32,
    C-contiguous (the layout the synchronizer keeps its deskewed sweeps in, see
    ``accumulate.SweepInput``); the same values, bit for bit, as ``deskew_points(..., out=(N, F))``.
    ``span``: ``offset_span(time_offset_ns)`` when the caller has it already (it must be exact)."""
    offsets = _check_deskew_input(xyz, time_offset_ns)
    out = np.empty((xyz.shape[1], xyz.shape[0]), np.float32)
    _deskew_into(xyz, offsets, stamp_ns, trajectory, ego_T_sensor, step_ns, out, True, span)
    return out


def deskew_points(xyz: np.ndarray, time_offset_ns: np.ndarray, stamp_ns: int, trajectory: PoseTrajectory,
                  ego_T_sensor: np.ndarray, step_ns: int = 1_000_000, out: np.ndarray | None = None) -> np.ndarray:
    """xyz: (N, 3+) float32 in the sensor frame (x y z first), fired at ``stamp_ns + time_offset_ns:
    (N,) int64``; returns (N, 3) float32 in the ego frame at ``stamp_ns``, or fills ``out`` (N, C)
    float32 when given: x y z moved, columns 3..C-1 copied from ``xyz`` (a whole cloud in one pass).
    ``PoseError`` if the trajectory does not cover the sweep (within its extrapolation bound)."""
    offsets = _check_deskew_input(xyz, time_offset_ns)
    if out is None:
        out = np.empty((xyz.shape[0], 3), np.float32)
    elif out.ndim != 2 or out.shape[0] != xyz.shape[0] or not 3 <= out.shape[1] <= xyz.shape[1] or out.dtype != np.float32:
        raise ShapeError(f"out: expected ({xyz.shape[0]}, 3..{xyz.shape[1]}) float32, got {out.shape} {out.dtype}")
    dst = out if out.flags.c_contiguous else np.empty(out.shape, np.float32)
    _deskew_into(xyz, offsets, stamp_ns, trajectory, ego_T_sensor, step_ns, dst, False)
    if dst is not out:
        out[...] = dst
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
