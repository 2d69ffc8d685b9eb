"""Multi-sweep accumulation into the reference ego frame, with a time-lag channel.

LiDAR: as nuScenes' ``LidarPointCloud.from_file_multisweep``: each earlier sweep is moved into
the ego frame of the reference sweep through the world (``ego(ref)_T_world @ world_T_ego(t_i)``)
and gets a ``time_lag`` column ``(t_ref - t_i) / 1e9`` seconds (0 for the reference sweep). The
sweeps come in already deskewed into their own ego frame, so each is one rigid transform here.

Radar: every scan of every radar in the window, moved into the reference ego frame the same way;
its ego-motion-compensated velocities (vx, vy in the radar frame) are rotated into the reference
ego frame (z = 0, as nuScenes does), and a ``time_lag`` goes into ``extra``. A radar that reports
no compensated velocity (NaN) gets it from the Doppler speed and the ego motion: a static target
seen from a sensor moving at ``u`` shows ``radial = -u . d``, so ``radial + u . d`` is the target's
own radial speed, reported along the line of sight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit

from perception.errors import ShapeError
from perception.sync.deskew import EGO_FRAME
from perception.types import NS_PER_S, PointCloud, RadarScan

__all__ = ["RadarInput", "SweepInput", "accumulate_radar", "accumulate_sweeps"]


@dataclass(frozen=True, eq=False)
class SweepInput:
    """One sweep to accumulate: ``points: (N, F)`` float32 (x y z first) in the ego frame at
    ``stamp_ns``, and ``ref_T_ego: (4, 4)`` = ego(ref stamp)_T_ego(stamp_ns)."""

    stamp_ns: int
    points: np.ndarray
    ref_T_ego: np.ndarray


@njit(cache=True, fastmath=True, boundscheck=False)
def _place(out: np.ndarray, start: int, pts: np.ndarray, M: np.ndarray, lag: float) -> None:
    # the transform in locals: without it numba re-reads M every point and the loop runs 2x slower
    m00, m01, m02, m03 = M[0, 0], M[0, 1], M[0, 2], M[0, 3]
    m10, m11, m12, m13 = M[1, 0], M[1, 1], M[1, 2], M[1, 3]
    m20, m21, m22, m23 = M[2, 0], M[2, 1], M[2, 2], M[2, 3]
    f = pts.shape[1]
    lg = np.float32(lag)
    for i in range(pts.shape[0]):
        x, y, z = np.float64(pts[i, 0]), np.float64(pts[i, 1]), np.float64(pts[i, 2])
        o = start + i
        out[o, 0] = m00 * x + m01 * y + m02 * z + m03
        out[o, 1] = m10 * x + m11 * y + m12 * z + m13
        out[o, 2] = m20 * x + m21 * y + m22 * z + m23
        for c in range(3, f):
            out[o, c] = pts[i, c]
        out[o, f] = lg


def accumulate_sweeps(ref_stamp_ns: int, sweeps: Sequence[SweepInput], fields: tuple[str, ...]) -> PointCloud:
    """One cloud in the ego frame at ``ref_stamp_ns``: fields ``fields + ('time_lag',)``, float32,
    sweeps in the given order (newest first by convention). Every sweep must have ``len(fields)`` columns."""
    f = len(fields)
    n = 0
    for s in sweeps:
        if s.points.ndim != 2 or s.points.shape[1] != f:
            raise ShapeError(f"sweep at {s.stamp_ns}: expected (N, {f}) points for fields {fields}, got {s.points.shape}")
        n += s.points.shape[0]
    out = np.empty((n, f + 1), np.float32)
    start = 0
    for s in sweeps:
        lag = (ref_stamp_ns - s.stamp_ns) / NS_PER_S
        _place(out, start, s.points, np.ascontiguousarray(s.ref_T_ego[:3, :]), lag)
        start += s.points.shape[0]
    return PointCloud(ref_stamp_ns, EGO_FRAME, out, tuple(fields) + ("time_lag",), None)


@dataclass(frozen=True, eq=False)
class RadarInput:
    """One scan to accumulate: ``ref_T_sensor: (4, 4)`` = ego(ref stamp)_T_radar(scan stamp);
    ``sensor_u: (3,)`` the radar's own velocity (m/s, radar frame) at the scan, or None if unknown."""

    scan: RadarScan
    ref_T_sensor: np.ndarray
    sensor_u: np.ndarray | None = None


@njit(cache=True)
def _radar_kernel(p: np.ndarray, radial: np.ndarray, vel: np.ndarray, comp: np.ndarray, idx: np.ndarray,
                  M: np.ndarray, U: np.ndarray, out_p: np.ndarray, out_v: np.ndarray, out_c: np.ndarray) -> None:
    for i in range(p.shape[0]):
        k = idx[i]
        x, y, z = np.float64(p[i, 0]), np.float64(p[i, 1]), np.float64(p[i, 2])
        for r in range(3):
            out_p[i, r] = M[k, r, 0] * x + M[k, r, 1] * y + M[k, r, 2] * z + M[k, r, 3]
        cx, cy = np.float64(comp[i, 0]), np.float64(comp[i, 1])
        if np.isnan(cx) or np.isnan(cy):  # Doppler only: the target's own radial speed along the line of sight
            norm = max(np.sqrt(x * x + y * y + z * z), 1e-9)
            dx, dy, dz = x / norm, y / norm, z / norm
            own = radial[i] + dx * U[k, 0] + dy * U[k, 1] + dz * U[k, 2]  # NaN when U is unknown
            cx, cy = own * dx, own * dy
        vx, vy = np.float64(vel[i, 0]), np.float64(vel[i, 1])
        # velocities (vx, vy, 0): only the top-left block of the rotation acts
        out_c[i, 0] = M[k, 0, 0] * cx + M[k, 0, 1] * cy
        out_c[i, 1] = M[k, 1, 0] * cx + M[k, 1, 1] * cy
        out_v[i, 0] = M[k, 0, 0] * vx + M[k, 0, 1] * vy
        out_v[i, 1] = M[k, 1, 0] * vx + M[k, 1, 1] * vy


def accumulate_radar(ref_stamp_ns: int, inputs: Sequence[RadarInput]) -> RadarScan:
    """One RadarScan in the ego frame at ``ref_stamp_ns``; ``extra['time_lag']`` (N,) float32 seconds
    and ``extra['sensor_index']`` (N,) int64 (position in ``inputs``); other ``extra`` fields are
    kept when every scan has them. One compiled pass over all returns (a frame holds ~15 small scans,
    where numpy would spend its time in per-call overhead)."""
    if not inputs:
        z = np.zeros(0, np.float32)
        return RadarScan(ref_stamp_ns, EGO_FRAME, np.zeros((0, 3), np.float32), z, z, np.zeros((0, 2), np.float32),
                         np.zeros((0, 2), np.float32), None, {"time_lag": z, "sensor_index": np.zeros(0, np.int64)})
    scans = [inp.scan for inp in inputs]
    counts = np.array([len(s) for s in scans])
    idx = np.repeat(np.arange(len(scans)), counts)
    M = np.ascontiguousarray(np.stack([inp.ref_T_sensor for inp in inputs]))
    U = np.array([np.full(3, np.nan) if inp.sensor_u is None else inp.sensor_u for inp in inputs], np.float64).reshape(-1, 3)
    radial = np.concatenate([s.radial_velocity for s in scans])
    n = len(idx)
    pts, vel, comp = np.empty((n, 3), np.float32), np.empty((n, 2), np.float32), np.empty((n, 2), np.float32)
    _radar_kernel(np.concatenate([s.points for s in scans]), radial, np.concatenate([s.velocity for s in scans]),
                  np.concatenate([s.velocity_comp for s in scans]), idx, M, U, pts, vel, comp)
    common = set(scans[0].extra)
    for s in scans[1:]:
        common &= set(s.extra)
    extra = {key: np.concatenate([s.extra[key] for s in scans]) for key in sorted(common)}
    stamps = np.array([s.stamp_ns for s in scans], np.int64)
    extra["time_lag"] = ((ref_stamp_ns - stamps) / NS_PER_S).astype(np.float32)[idx]
    extra["sensor_index"] = idx.astype(np.int64)
    return RadarScan(ref_stamp_ns, EGO_FRAME, pts, np.concatenate([s.rcs for s in scans]), radial, vel, comp, None, extra)
