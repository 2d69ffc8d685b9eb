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

__all__ = ["RadarInput", "SweepInput", "accumulate_radar", "accumulate_radar_arrays", "accumulate_sweep_arrays",
           "accumulate_sweeps", "pack_radar_scan", "pack_radar_scan_doppler"]


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


@njit(cache=True, fastmath=True, boundscheck=False, nogil=True)
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


@njit(cache=True, fastmath=True, boundscheck=False, nogil=True)
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
    return _accumulate(ref_stamp_ns, [(s.stamp_ns, s.points, s.ref_T_ego, s.columns) for s in sweeps], fields, out)


def accumulate_sweep_arrays(ref_stamp_ns: int, stamps: Sequence[int], points: Sequence[np.ndarray],
                            ref_T_ego: Sequence[np.ndarray], fields: tuple[str, ...], *, columns: bool = True,
                            out: np.ndarray | None = None) -> PointCloud:
    """``accumulate_sweeps`` with the sweeps given as lists (stamps, points, transforms; all given
    field by field with ``columns``): what the synchronizer calls for every frame, without a
    ``SweepInput`` per sweep."""
    if not len(stamps) == len(points) == len(ref_T_ego):
        raise ShapeError(f"expected as many stamps, points and transforms, got {len(stamps)}, {len(points)}, {len(ref_T_ego)}")
    return _accumulate(ref_stamp_ns, [(t, p, M, columns) for t, p, M in zip(stamps, points, ref_T_ego)], fields, out)


def _accumulate(ref_stamp_ns: int, sweeps: list[tuple[int, np.ndarray, np.ndarray, bool]], fields: tuple[str, ...],
                out: np.ndarray | None) -> PointCloud:
    """The two above: ``sweeps`` as (stamp, points, ref_T_ego, columns) tuples."""
    f = len(fields)
    n = 0
    for stamp, pts, _, cols in sweeps:
        if pts.ndim != 2 or pts.shape[0 if cols else 1] != f:
            layout = f"({f}, N) columns" if cols else f"(N, {f}) points"
            raise ShapeError(f"sweep at {stamp}: expected {layout} for fields {fields}, got {pts.shape}")
        n += pts.shape[1 if cols else 0]
    if out is None:
        out = np.empty((n, f + 1), np.float32)
    elif (out.ndim != 2 or out.shape[0] < n or out.shape[1] != f + 1 or out.dtype != np.float32
          or not out.flags.c_contiguous):
        raise ShapeError(f"out: expected a C-contiguous (>= {n}, {f + 1}) float32 buffer, got {out.shape} {out.dtype}")
    start = 0
    for stamp, pts, M, cols in sweeps:
        lag = (ref_stamp_ns - stamp) / NS_PER_S
        place = _place_columns if cols else _place
        # the top 3x4 of a C-contiguous float64 transform is one already: no copy
        place(out, start, np.ascontiguousarray(pts), np.ascontiguousarray(M[:3, :], dtype=np.float64), lag)
        start += pts.shape[1 if cols else 0]
    return PointCloud(ref_stamp_ns, EGO_FRAME, out[:n], tuple(fields) + ("time_lag",), None)


@dataclass(frozen=True, eq=False)
class RadarInput:
    """One scan to accumulate: ``ref_T_sensor: (4, 4)`` = ego(ref stamp)_T_radar(scan stamp);
    ``sensor_u: (3,)`` the radar's own velocity (m/s, radar frame) at the scan, or None if unknown."""

    scan: RadarScan
    ref_T_sensor: np.ndarray
    sensor_u: np.ndarray | None = None


# a scan's fields as the accumulation reads them, field by field: x y z rcs radial vx vy cx cy
_PACKED_FIELDS = 9


@njit(cache=True, nogil=True)
def _pack_radar(points: np.ndarray, rcs: np.ndarray, radial: np.ndarray, vel: np.ndarray, comp: np.ndarray,
                out: np.ndarray) -> bool:
    """The scan into ``out`` (9, N); whether a compensated velocity is NaN (Doppler only)."""
    nan = False
    for i in range(points.shape[0]):
        out[0, i], out[1, i], out[2, i] = points[i, 0], points[i, 1], points[i, 2]
        out[3, i], out[4, i] = rcs[i], radial[i]
        out[5, i], out[6, i] = vel[i, 0], vel[i, 1]
        out[7, i], out[8, i] = comp[i, 0], comp[i, 1]
        nan = nan or np.isnan(comp[i, 0]) or np.isnan(comp[i, 1])
    return nan


def pack_radar_scan_doppler(scan: RadarScan) -> tuple[np.ndarray, bool]:
    """``pack_radar_scan`` and whether the scan has returns without compensated velocity (NaN:
    the accumulation needs the radar's own velocity for them), in one pass."""
    out = np.empty((_PACKED_FIELDS, len(scan)), np.float32)
    nan = _pack_radar(scan.points, scan.rcs, scan.radial_velocity, scan.velocity, scan.velocity_comp, out)
    return out, bool(nan)


def pack_radar_scan(scan: RadarScan) -> np.ndarray:
    """(9, N) float32: x y z rcs radial_velocity vx vy vx_comp vy_comp of the scan's returns, field
    by field, the values as they are. What ``accumulate_radar_arrays(..., packed=)`` takes: a
    caller that puts one scan into several frames (the synchronizer: ~3) packs it once, and a frame
    concatenates one array per scan instead of five (each ``np.concatenate`` of ~15 small arrays
    costs ~10 us); field by field, the accumulation's loop vectorises."""
    out = np.empty((_PACKED_FIELDS, len(scan)), np.float32)
    _pack_radar(scan.points, scan.rcs, scan.radial_velocity, scan.velocity, scan.velocity_comp, out)
    return out


@njit(cache=True, boundscheck=False, nogil=True)
def _radar_kernel(packed: np.ndarray, scans: np.ndarray, M: np.ndarray, out_p: np.ndarray, out_rcs: np.ndarray,
                  out_radial: np.ndarray, out_v: np.ndarray, out_c: np.ndarray, out_lag: np.ndarray,
                  out_index: np.ndarray) -> None:
    """All returns of all scans (``packed``, (9, N): ``pack_radar_scan`` side by side), scan k being
    the next ``scans[k, 0]`` returns, its time lag (s) ``scans[k, 1]``, the radar's own velocity
    ``scans[k, 2:5]`` (NaN: unknown): placed by ``M[k]``, velocities rotated (Doppler-only ones
    compensated with that velocity), rcs and radial speed copied, time lag and scan index filled in.

    Scan by scan over views, branch-free (the Doppler-only value is computed for every return and
    kept where the compensated one is NaN): a loop LLVM vectorises. No fastmath: NaN decides."""
    tmp = np.empty((2, packed.shape[1]), np.float32)
    i = 0
    for k in range(scans.shape[0]):
        c = int(scans[k, 0])
        lag = np.float32(scans[k, 1])
        m00, m01, m02, m03 = M[k, 0, 0], M[k, 0, 1], M[k, 0, 2], M[k, 0, 3]
        m10, m11, m12, m13 = M[k, 1, 0], M[k, 1, 1], M[k, 1, 2], M[k, 1, 3]
        m20, m21, m22, m23 = M[k, 2, 0], M[k, 2, 1], M[k, 2, 2], M[k, 2, 3]
        u0, u1, u2 = scans[k, 2], scans[k, 3], scans[k, 4]
        px, py, pz, prcs, prad = packed[0, i:i + c], packed[1, i:i + c], packed[2, i:i + c], packed[3, i:i + c], packed[4, i:i + c]
        pvx, pvy, pcx, pcy = packed[5, i:i + c], packed[6, i:i + c], packed[7, i:i + c], packed[8, i:i + c]
        op, ov, oc = out_p[i:i + c], out_v[i:i + c], out_c[i:i + c]
        orcs, orad, olag, oidx = out_rcs[i:i + c], out_radial[i:i + c], out_lag[i:i + c], out_index[i:i + c]
        # a few short loops rather than one: each touches few enough arrays for LLVM's alias checks
        for m in range(c):
            x, y, z = np.float64(px[m]), np.float64(py[m]), np.float64(pz[m])
            op[m, 0] = m00 * x + m01 * y + m02 * z + m03
            op[m, 1] = m10 * x + m11 * y + m12 * z + m13
            op[m, 2] = m20 * x + m21 * y + m22 * z + m23
        for m in range(c):
            orcs[m] = prcs[m]
            orad[m] = prad[m]
            olag[m] = lag
            oidx[m] = k
        tx, ty = tmp[0, i:i + c], tmp[1, i:i + c]  # (the interleaved stores would keep this loop scalar)
        for m in range(c):
            x, y, z = np.float64(px[m]), np.float64(py[m]), np.float64(pz[m])
            cx, cy = np.float64(pcx[m]), np.float64(pcy[m])
            # Doppler only: the target's own radial speed along the line of sight (NaN when U is unknown)
            norm = np.sqrt(x * x + y * y + z * z)
            if 1e-9 > norm:  # max(norm, 1e-9), NaN kept
                norm = 1e-9
            dx, dy, dz = x / norm, y / norm, z / norm
            own = prad[m] + dx * u0 + dy * u1 + dz * u2
            doppler = (cx != cx) | (cy != cy)  # NaN
            cx = own * dx if doppler else cx
            cy = own * dy if doppler else cy
            # velocities (vx, vy, 0): only the top-left block of the rotation acts
            tx[m] = m00 * cx + m01 * cy
            ty[m] = m10 * cx + m11 * cy
        for m in range(c):
            oc[m, 0] = tx[m]
            oc[m, 1] = ty[m]
        for m in range(c):
            vx, vy = np.float64(pvx[m]), np.float64(pvy[m])
            ov[m, 0] = m00 * vx + m01 * vy
            ov[m, 1] = m10 * vx + m11 * vy
        i += c


def accumulate_radar(ref_stamp_ns: int, inputs: Sequence[RadarInput]) -> RadarScan:
    """One RadarScan in the ego frame at ``ref_stamp_ns``; ``extra['time_lag']`` (N,) float32 seconds
    and ``extra['sensor_index']`` (N,) int64 (position in ``inputs``); other ``extra`` fields are
    kept when every scan has them. One compiled pass over all returns (a frame holds ~15 small scans,
    where numpy would spend its time in per-call overhead)."""
    if not inputs:
        return accumulate_radar_arrays(ref_stamp_ns, [], np.zeros((0, 4, 4)), [])
    return accumulate_radar_arrays(ref_stamp_ns, [inp.scan for inp in inputs],
                                   np.stack([inp.ref_T_sensor for inp in inputs]), [inp.sensor_u for inp in inputs])


_NAN3 = (np.nan, np.nan, np.nan)


def accumulate_radar_arrays(ref_stamp_ns: int, scans: Sequence[RadarScan], ref_T_sensor: np.ndarray,
                            sensor_u: Sequence[np.ndarray | None], packed: Sequence[np.ndarray] | None = None) -> RadarScan:
    """``accumulate_radar`` with the inputs given as lists and the transforms as one (K, 4, 4) stack
    (what the synchronizer computes for a frame in one batched product). ``packed``: the scans'
    ``pack_radar_scan`` arrays, when the caller keeps them (default: packed here)."""
    k = len(scans)
    if k == 0:
        z = np.zeros(0, np.float32)
        return RadarScan(ref_stamp_ns, EGO_FRAME, np.zeros((0, 3), np.float32), z, z, np.zeros((0, 2), np.float32),
                         np.zeros((0, 2), np.float32), None, {"time_lag": z, "sensor_index": np.zeros(0, np.int64)})
    if ref_T_sensor.shape != (k, 4, 4):
        raise ShapeError(f"ref_T_sensor: expected ({k}, 4, 4), got {ref_T_sensor.shape}")
    if packed is None:
        packed = [pack_radar_scan(s) for s in scans]
    elif len(packed) != k:
        raise ShapeError(f"packed: expected {k} arrays, one per scan, got {len(packed)}")
    # one row per scan: its returns, its time lag (s, float64: what the kernel computed from the
    # stamps before), the radar's own velocity (NaN: unknown); one array where three were made
    table = np.array([(len(s), (ref_stamp_ns - s.stamp_ns) / NS_PER_S, *(_NAN3 if u is None else np.asarray(u, np.float64).tolist()))
                      for s, u in zip(scans, sensor_u)], np.float64).reshape(k, 5)
    fields = np.concatenate(packed, axis=1) if k > 1 else packed[0]
    n = fields.shape[1]
    if fields.shape[0] != _PACKED_FIELDS or n != int(table[:, 0].sum()):
        raise ShapeError(f"packed: expected ({_PACKED_FIELDS}, {int(table[:, 0].sum())}) in all, got {fields.shape}")
    pts, vel, comp = np.empty((n, 3), np.float32), np.empty((n, 2), np.float32), np.empty((n, 2), np.float32)
    rcs, radial = np.empty(n, np.float32), np.empty(n, np.float32)
    lag, index = np.empty(n, np.float32), np.empty(n, np.int64)
    _radar_kernel(np.ascontiguousarray(fields, dtype=np.float32), table, np.ascontiguousarray(ref_T_sensor, dtype=np.float64),
                  pts, rcs, radial, vel, comp, lag, index)
    extra: dict[str, np.ndarray] = {}
    if scans[0].extra:
        common = set(scans[0].extra)
        for s in scans[1:]:
            common &= s.extra.keys()
        extra = {key: np.concatenate([s.extra[key] for s in scans]) for key in sorted(common)}
    extra["time_lag"] = lag
    extra["sensor_index"] = index
    return RadarScan(ref_stamp_ns, EGO_FRAME, pts, rcs, radial, vel, comp, None, extra)
