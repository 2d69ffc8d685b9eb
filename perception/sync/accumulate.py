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

__all__ = ["RadarInput", "SweepInput", "accumulate_radar", "accumulate_radar_arrays", "accumulate_sweeps"]


@dataclass(frozen=True, eq=False)
class SweepInput:
    """One sweep to accumulate: ``points: (N, F)`` float32 (x y z first) in the ego frame at
    ``stamp_ns``, and ``ref_T_ego: (4, 4)`` = ego(ref stamp)_T_ego(stamp_ns).

    ``columns``: ``points`` is given field by field instead, (F, N) C-contiguous (what
    ``deskew_columns`` returns): the same cloud, placed 1.5x faster (the loads vectorise)."""

    stamp_ns: int
    points: np.ndarray
    ref_T_ego: np.ndarray
    columns: bool = False

    @property
    def num_points(self) -> int:
        return int(self.points.shape[1] if self.columns else self.points.shape[0])

    @property
    def num_fields(self) -> int:
        return int(self.points.shape[0] if self.columns else self.points.shape[1])


@njit(cache=True, fastmath=True, boundscheck=False)
def _place(out: np.ndarray, start: int, pts: np.ndarray, M: np.ndarray, lag: float) -> None:
    """``out[start:start + N]`` = the N points with x y z mapped by ``M`` (3, 4) (float64 maths), the
    other fields copied, then ``lag``. ``out`` (rows, F + 1) and ``pts`` (N, F) C-contiguous.

    Flat indexing, and its own loop for the usual five fields (x y z intensity ring): LLVM
    vectorises that loop, where 2-D indexing with an inner loop over the fields ran 1.4x slower
    (this kernel writes every frame's ~350k points). Same arithmetic, same bits."""
    # the transform in locals: without it numba re-reads M every point and the loop runs 2x slower
    m00, m01, m02, m03 = M[0, 0], M[0, 1], M[0, 2], M[0, 3]
    m10, m11, m12, m13 = M[1, 0], M[1, 1], M[1, 2], M[1, 3]
    m20, m21, m22, m23 = M[2, 0], M[2, 1], M[2, 2], M[2, 3]
    n, f = pts.shape[0], pts.shape[1]
    g = f + 1
    lg = np.float32(lag)
    src = pts.reshape(-1)
    dst = out[start:start + n].reshape(-1)
    if f == 5:
        for i in range(n):
            x, y, z = np.float64(src[5 * i]), np.float64(src[5 * i + 1]), np.float64(src[5 * i + 2])
            dst[6 * i] = m00 * x + m01 * y + m02 * z + m03
            dst[6 * i + 1] = m10 * x + m11 * y + m12 * z + m13
            dst[6 * i + 2] = m20 * x + m21 * y + m22 * z + m23
            dst[6 * i + 3] = src[5 * i + 3]
            dst[6 * i + 4] = src[5 * i + 4]
            dst[6 * i + 5] = lg
    else:
        for i in range(n):
            x, y, z = np.float64(src[f * i]), np.float64(src[f * i + 1]), np.float64(src[f * i + 2])
            dst[g * i] = m00 * x + m01 * y + m02 * z + m03
            dst[g * i + 1] = m10 * x + m11 * y + m12 * z + m13
            dst[g * i + 2] = m20 * x + m21 * y + m22 * z + m23
            for c in range(3, f):
                dst[g * i + c] = src[f * i + c]
            dst[g * i + f] = lg


@njit(cache=True, fastmath=True, boundscheck=False)
def _place_columns(out: np.ndarray, start: int, cols: np.ndarray, M: np.ndarray, lag: float) -> None:
    """``_place`` of a sweep given field by field, ``cols`` (F, N) C-contiguous: the same values, bit
    for bit (the same expression per point); contiguous loads let LLVM vectorise the transform,
    ~1.5x faster than from rows, the interleaved stores are what is left."""
    m00, m01, m02, m03 = M[0, 0], M[0, 1], M[0, 2], M[0, 3]
    m10, m11, m12, m13 = M[1, 0], M[1, 1], M[1, 2], M[1, 3]
    m20, m21, m22, m23 = M[2, 0], M[2, 1], M[2, 2], M[2, 3]
    f, n = cols.shape[0], cols.shape[1]
    g = f + 1
    lg = np.float32(lag)
    xs, ys, zs = cols[0], cols[1], cols[2]
    dst = out[start:start + n].reshape(-1)
    if f == 5:
        c3, c4 = cols[3], cols[4]
        for i in range(n):
            x, y, z = np.float64(xs[i]), np.float64(ys[i]), np.float64(zs[i])
            dst[6 * i] = m00 * x + m01 * y + m02 * z + m03
            dst[6 * i + 1] = m10 * x + m11 * y + m12 * z + m13
            dst[6 * i + 2] = m20 * x + m21 * y + m22 * z + m23
            dst[6 * i + 3] = c3[i]
            dst[6 * i + 4] = c4[i]
            dst[6 * i + 5] = lg
    else:
        for i in range(n):
            x, y, z = np.float64(xs[i]), np.float64(ys[i]), np.float64(zs[i])
            dst[g * i] = m00 * x + m01 * y + m02 * z + m03
            dst[g * i + 1] = m10 * x + m11 * y + m12 * z + m13
            dst[g * i + 2] = m20 * x + m21 * y + m22 * z + m23
            dst[g * i + f] = lg
        for c in range(3, f):
            col = cols[c]
            for i in range(n):
                dst[g * i + c] = col[i]


def accumulate_sweeps(ref_stamp_ns: int, sweeps: Sequence[SweepInput], fields: tuple[str, ...],
                      out: np.ndarray | None = None) -> PointCloud:
    """One cloud in the ego frame at ``ref_stamp_ns``: fields ``fields + ('time_lag',)``, float32,
    sweeps in the given order (newest first by convention). Every sweep must have ``len(fields)`` columns.

    ``out``: a C-contiguous (M, len(fields) + 1) float32 buffer with M >= the total point count to
    write into (the cloud's points are then ``out[:N]``, a view); default a new array."""
    f = len(fields)
    n = 0
    for s in sweeps:
        if s.points.ndim != 2 or s.num_fields != f:
            layout = f"({f}, N) columns" if s.columns else f"(N, {f}) points"
            raise ShapeError(f"sweep at {s.stamp_ns}: expected {layout} for fields {fields}, got {s.points.shape}")
        n += s.num_points
    if out is None:
        out = np.empty((n, f + 1), np.float32)
    elif (out.ndim != 2 or out.shape[0] < n or out.shape[1] != f + 1 or out.dtype != np.float32
          or not out.flags.c_contiguous):
        raise ShapeError(f"out: expected a C-contiguous (>= {n}, {f + 1}) float32 buffer, got {out.shape} {out.dtype}")
    start = 0
    for s in sweeps:
        lag = (ref_stamp_ns - s.stamp_ns) / NS_PER_S
        place = _place_columns if s.columns else _place
        place(out, start, np.ascontiguousarray(s.points), np.array(s.ref_T_ego[:3, :], dtype=np.float64, order="C"), lag)
        start += s.num_points
    return PointCloud(ref_stamp_ns, EGO_FRAME, out[:n], tuple(fields) + ("time_lag",), None)


@dataclass(frozen=True, eq=False)
class RadarInput:
    """One scan to accumulate: ``ref_T_sensor: (4, 4)`` = ego(ref stamp)_T_radar(scan stamp);
    ``sensor_u: (3,)`` the radar's own velocity (m/s, radar frame) at the scan, or None if unknown."""

    scan: RadarScan
    ref_T_sensor: np.ndarray
    sensor_u: np.ndarray | None = None


@njit(cache=True)
def _radar_kernel(p: np.ndarray, radial: np.ndarray, vel: np.ndarray, comp: np.ndarray, counts: np.ndarray,
                  stamps: np.ndarray, ref_stamp: np.int64, M: np.ndarray, U: np.ndarray, out_p: np.ndarray,
                  out_v: np.ndarray, out_c: np.ndarray, out_lag: np.ndarray, out_index: np.ndarray) -> None:
    """All returns of all scans, scan k being the next ``counts[k]`` rows: placed by ``M[k]``, velocities
    rotated (Doppler-only ones compensated with ``U[k]``), time lag and scan index filled in."""
    i = 0
    for k in range(counts.shape[0]):
        lag = np.float32((ref_stamp - stamps[k]) / 1_000_000_000)
        m00, m01, m02, m03 = M[k, 0, 0], M[k, 0, 1], M[k, 0, 2], M[k, 0, 3]
        m10, m11, m12, m13 = M[k, 1, 0], M[k, 1, 1], M[k, 1, 2], M[k, 1, 3]
        m20, m21, m22, m23 = M[k, 2, 0], M[k, 2, 1], M[k, 2, 2], M[k, 2, 3]
        u0, u1, u2 = U[k, 0], U[k, 1], U[k, 2]
        for _ in range(counts[k]):
            x, y, z = np.float64(p[i, 0]), np.float64(p[i, 1]), np.float64(p[i, 2])
            out_p[i, 0] = m00 * x + m01 * y + m02 * z + m03
            out_p[i, 1] = m10 * x + m11 * y + m12 * z + m13
            out_p[i, 2] = m20 * x + m21 * y + m22 * z + m23
            cx, cy = np.float64(comp[i, 0]), np.float64(comp[i, 1])
            if np.isnan(cx) or np.isnan(cy):  # Doppler only: the target's own radial speed along the line of sight
                norm = max(np.sqrt(x * x + y * y + z * z), 1e-9)
                dx, dy, dz = x / norm, y / norm, z / norm
                own = radial[i] + dx * u0 + dy * u1 + dz * u2  # NaN when U is unknown
                cx, cy = own * dx, own * dy
            vx, vy = np.float64(vel[i, 0]), np.float64(vel[i, 1])
            # velocities (vx, vy, 0): only the top-left block of the rotation acts
            out_c[i, 0] = m00 * cx + m01 * cy
            out_c[i, 1] = m10 * cx + m11 * cy
            out_v[i, 0] = m00 * vx + m01 * vy
            out_v[i, 1] = m10 * vx + m11 * vy
            out_lag[i] = lag
            out_index[i] = k
            i += 1


def accumulate_radar(ref_stamp_ns: int, inputs: Sequence[RadarInput]) -> RadarScan:
    """One RadarScan in the ego frame at ``ref_stamp_ns``; ``extra['time_lag']`` (N,) float32 seconds
    and ``extra['sensor_index']`` (N,) int64 (position in ``inputs``); other ``extra`` fields are
    kept when every scan has them. One compiled pass over all returns (a frame holds ~15 small scans,
    where numpy would spend its time in per-call overhead)."""
    if not inputs:
        return accumulate_radar_arrays(ref_stamp_ns, [], np.zeros((0, 4, 4)), [])
    return accumulate_radar_arrays(ref_stamp_ns, [inp.scan for inp in inputs],
                                   np.stack([inp.ref_T_sensor for inp in inputs]), [inp.sensor_u for inp in inputs])


def accumulate_radar_arrays(ref_stamp_ns: int, scans: Sequence[RadarScan], ref_T_sensor: np.ndarray,
                            sensor_u: Sequence[np.ndarray | None]) -> RadarScan:
    """``accumulate_radar`` with the inputs given as lists and the transforms as one (K, 4, 4) stack
    (what the synchronizer computes for a frame in one batched product)."""
    k = len(scans)
    if k == 0:
        z = np.zeros(0, np.float32)
        return RadarScan(ref_stamp_ns, EGO_FRAME, np.zeros((0, 3), np.float32), z, z, np.zeros((0, 2), np.float32),
                         np.zeros((0, 2), np.float32), None, {"time_lag": z, "sensor_index": np.zeros(0, np.int64)})
    if ref_T_sensor.shape != (k, 4, 4):
        raise ShapeError(f"ref_T_sensor: expected ({k}, 4, 4), got {ref_T_sensor.shape}")
    counts = np.array([s.points.shape[0] for s in scans], np.int64)
    stamps = np.array([s.stamp_ns for s in scans], np.int64)
    U = np.full((k, 3), np.nan)
    for j, u in enumerate(sensor_u):
        if u is not None:
            U[j] = u
    radial = np.concatenate([s.radial_velocity for s in scans])
    n = radial.shape[0]
    pts, vel, comp = np.empty((n, 3), np.float32), np.empty((n, 2), np.float32), np.empty((n, 2), np.float32)
    lag, index = np.empty(n, np.float32), np.empty(n, np.int64)
    _radar_kernel(np.concatenate([s.points for s in scans]), radial, np.concatenate([s.velocity for s in scans]),
                  np.concatenate([s.velocity_comp for s in scans]), counts, stamps, np.int64(ref_stamp_ns),
                  np.ascontiguousarray(ref_T_sensor, dtype=np.float64), U, pts, vel, comp, lag, index)
    common = set(scans[0].extra)
    for s in scans[1:]:
        common &= set(s.extra)
    extra = {key: np.concatenate([s.extra[key] for s in scans]) for key in sorted(common)}
    extra["time_lag"] = lag
    extra["sensor_index"] = index
    return RadarScan(ref_stamp_ns, EGO_FRAME, pts, np.concatenate([s.rcs for s in scans]), radial, vel, comp, None, extra)
