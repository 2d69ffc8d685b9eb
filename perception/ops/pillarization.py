"""Pillarization: a LiDAR point cloud -> PointPillars pillars on the BEV grid.

Rules (the same on the CPU and the GPU, checked by the tests):

- A point is dropped as *non-finite* when any of its columns is NaN or inf, else as *outside* unless
  ``x_min <= x < x_max``, ``y_min <= y < y_max`` and ``z_min <= z < z_max`` (the grid's bounds).
  The cell is ``ix = floor((x - x_min) / cell_m)``, ``iy = floor((y - y_min) / cell_m)``, computed in
  float64 on both devices so that a point on a cell border lands in the same cell everywhere
  (the float32 coordinate is compared exactly: float32(-3.2) lies below a bound of -3.2).
- Pillars are numbered in the order of their first point in the input: pillar 0 is the cell of the
  first valid point, and so on. Only the first ``max_pillars`` pillars are kept; the points of a
  later pillar are dropped and counted (``dropped_overflow_pillar_points``).
- A pillar keeps its first ``max_points_per_pillar`` points in input order; later points are
  dropped and counted (``dropped_overflow_points``).

Features of a kept point (C = F + 5 channels): the F input columns, then the offsets of x, y, z to
the mean of the pillar's kept points, then the offsets of x, y to the pillar's centre (PointPillars).
Empty slots are zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit, prange

from perception.config import GridConfig
from perception.errors import ShapeError
from perception.ops import _common as C
from perception.ops._recycle import recycled_empty

__all__ = ["NUM_EXTRA_FEATURES", "PillarStats", "Pillars", "pillarize"]

# Channels added to the F input columns: dx_mean, dy_mean, dz_mean, dx_centre, dy_centre.
NUM_EXTRA_FEATURES = 5
# Order of Pillars.counts.
_COUNT_NAMES = ("num_pillars", "dropped_nonfinite", "dropped_outside", "dropped_overflow_points",
                "dropped_overflow_pillars", "dropped_overflow_pillar_points")


@dataclass(frozen=True)
class PillarStats:
    """What happened to the input points; all counts are points except ``*_pillars``."""

    num_input: int
    num_pillars: int
    dropped_nonfinite: int
    dropped_outside: int
    dropped_overflow_points: int
    dropped_overflow_pillars: int
    dropped_overflow_pillar_points: int

    @property
    def kept_points(self) -> int:
        return (self.num_input - self.dropped_nonfinite - self.dropped_outside - self.dropped_overflow_points
                - self.dropped_overflow_pillar_points)


@dataclass(frozen=True, eq=False)
class Pillars:
    """The pillars of one cloud, as numpy arrays (numpy in) or torch tensors (torch in).

    features: (P, M, C) float32 (M = max_points_per_pillar, C = F + 5); coords: (P, 2) int32
    ``[iy, ix]`` grid cell; num_points: (P,) int32 kept points; counts: (6,) int64 = num_pillars,
    dropped_nonfinite, dropped_outside, dropped_overflow_points, dropped_overflow_pillars,
    dropped_overflow_pillar_points. When padded, P = max_pillars and the rows from num_pillars on
    have coords ``[-1, -1]``, num_points 0 and zero features (``scatter_pillars`` skips them).
    """

    features: Any
    coords: Any
    num_points: Any
    counts: Any
    num_input: int

    def stats(self) -> PillarStats:
        """The counts as Python ints (for a CUDA result this waits for the GPU)."""
        vals = [int(v) for v in (self.counts.tolist())]
        return PillarStats(self.num_input, *vals)


@njit(cache=True, nogil=True)
def _assign(points, x_min, y_min, z_min, z_max, cell, nx, ny, max_points, max_pillars):  # pragma: no cover - numba
    n, f = points.shape
    cell_pillar = np.full(ny * nx, -1, np.int32)  # -1: not seen yet, -2: dropped by the pillar cap
    members = np.empty((max_pillars, max_points), np.int32)  # input index of each kept point
    counts = np.zeros(max_pillars, np.int32)
    coords = np.empty((max_pillars, 2), np.int32)
    stats = np.zeros(6, np.int64)
    n_pillars = 0
    for i in range(n):
        finite = True
        for k in range(f):
            if not np.isfinite(points[i, k]):
                finite = False
                break
        if not finite:
            stats[1] += 1
            continue
        fx = (np.float64(points[i, 0]) - x_min) / cell
        fy = (np.float64(points[i, 1]) - y_min) / cell
        z = np.float64(points[i, 2])
        if not (fx >= 0.0 and fx < nx and fy >= 0.0 and fy < ny and z >= z_min and z < z_max):
            stats[2] += 1
            continue
        ix = np.int32(fx)
        iy = np.int32(fy)
        c = iy * nx + ix
        p = cell_pillar[c]
        if p == -1:
            if n_pillars < max_pillars:
                p = n_pillars
                n_pillars += 1
                coords[p, 0] = iy
                coords[p, 1] = ix
            else:
                p = -2
                stats[4] += 1
            cell_pillar[c] = p
        if p == -2:
            stats[5] += 1
            continue
        k = counts[p]
        if k < max_points:
            members[p, k] = i
            counts[p] = k + 1
        else:
            stats[3] += 1
    stats[0] = n_pillars
    return n_pillars, counts, coords, members, stats


@njit(cache=True, parallel=True, nogil=True)
def _fill(points, members, counts, coords, n_pillars, x_min, y_min, cell, features, coords_out, num_points):  # pragma: no cover
    f = points.shape[1]
    for p in prange(features.shape[0]):
        n = counts[p] if p < n_pillars else 0
        num_points[p] = n
        if n == 0:
            coords_out[p, 0] = -1
            coords_out[p, 1] = -1
            features[p] = 0.0
            continue
        coords_out[p, 0] = coords[p, 0]
        coords_out[p, 1] = coords[p, 1]
        # Sequential float32 sums in input order: the CUDA kernel adds in the same order.
        sx = np.float32(0.0)
        sy = np.float32(0.0)
        sz = np.float32(0.0)
        for s in range(n):
            i = members[p, s]
            sx += points[i, 0]
            sy += points[i, 1]
            sz += points[i, 2]
        nf = np.float32(n)
        mx = sx / nf
        my = sy / nf
        mz = sz / nf
        cx = np.float32(x_min + (coords[p, 1] + 0.5) * cell)
        cy = np.float32(y_min + (coords[p, 0] + 0.5) * cell)
        for s in range(n):
            i = members[p, s]
            for k in range(f):
                features[p, s, k] = points[i, k]
            features[p, s, f] = points[i, 0] - mx
            features[p, s, f + 1] = points[i, 1] - my
            features[p, s, f + 2] = points[i, 2] - mz
            features[p, s, f + 3] = points[i, 0] - cx
            features[p, s, f + 4] = points[i, 1] - cy
        features[p, n:] = 0.0  # one memset for the empty slots


def _check(points: Any, max_points_per_pillar: int, max_pillars: int) -> tuple[int, int]:
    n, f = C.check_shape(points, "points", (None, None))
    if f < 3:
        raise ShapeError(f"points: expected (N, F) with F >= 3 columns x y z ..., got shape {(n, f)}")
    C.check_dtype(points, "points", "float32")
    for name, v in (("max_points_per_pillar", max_points_per_pillar), ("max_pillars", max_pillars)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: expected a positive integer, got {v!r}")
    if n >= 2**31 - 1:
        raise ShapeError(f"points: at most 2**31 - 2 points (int32 indices), got {n}")
    return n, f


def pillarize(points: Any, grid: GridConfig, *, max_points_per_pillar: int = 32, max_pillars: int = 40000,
              pad: bool | None = None) -> Pillars:
    """Group ``points`` into the pillars of ``grid`` (see the module docstring for the rules).

    points: (N, F) float32, F >= 3, columns x y z then any per-point features (nuScenes: intensity,
    time lag), in the ego frame; a numpy array, a CPU tensor (numba) or a CUDA tensor (kernel).
    pad: return ``max_pillars`` rows (static shapes for CUDA graphs and TensorRT) instead of
    ``num_pillars``; default True on CUDA (trimming there would wait for the GPU), False on the CPU.
    Returns ``Pillars`` with features (P, M, F + 5) float32, coords (P, 2) int32, num_points (P,) int32.
    """
    n, f = _check(points, max_points_per_pillar, max_pillars)
    if C.is_cuda(points):
        return _pillarize_cuda(points, grid, max_points_per_pillar, max_pillars, True if pad is None else pad)
    pts = C.as_numpy(points)
    n_pillars, counts, coords, members, stats = _assign(
        pts, float(grid.x_min), float(grid.y_min), float(grid.z_min), float(grid.z_max), float(grid.cell_m),
        grid.nx, grid.ny, max_points_per_pillar, max_pillars)
    rows = max_pillars if pad else n_pillars
    # _fill writes every element: the memory of an earlier, dropped result will do (no page faults).
    features = recycled_empty((rows, max_points_per_pillar, f + NUM_EXTRA_FEATURES), np.float32)
    coords_out = np.empty((rows, 2), np.int32)
    num_points = np.empty(rows, np.int32)
    _fill(pts, members, counts, coords, n_pillars, float(grid.x_min), float(grid.y_min), float(grid.cell_m),
          features, coords_out, num_points)
    return Pillars(C.like_input(points, features), C.like_input(points, coords_out), C.like_input(points, num_points),
                   C.like_input(points, stats), n)


def _pillarize_cuda(points: Any, grid: GridConfig, m: int, max_pillars: int, pad: bool) -> Pillars:
    import torch

    from perception.ops import _cuda as K

    pts = points.contiguous()
    n, f = pts.shape
    dev = pts.device
    i32, f64 = np.int32, np.float64
    cells = grid.nx * grid.ny
    bounds = (f64(grid.x_min), f64(grid.y_min), f64(grid.z_min), f64(grid.z_max), f64(grid.cell_m))
    stats = torch.zeros(6, dtype=torch.int64, device=dev)
    counts = torch.zeros(max_pillars, dtype=torch.int32, device=dev)
    coords = torch.empty((max_pillars, 2), dtype=torch.int32, device=dev)
    num_points = torch.empty(max_pillars, dtype=torch.int32, device=dev)
    features = torch.empty((max_pillars, m, f + NUM_EXTRA_FEATURES), dtype=torch.float32, device=dev)
    T = 256
    if n > 0:
        point_cell = torch.empty(n, dtype=torch.int32, device=dev)
        first = torch.full((cells,), np.iinfo(np.int32).max, dtype=torch.int32, device=dev)
        K.launch("pillarization", "pillar_assign", K.blocks(n, T), T,
                 (K.ptr(pts), i32(n), i32(f), *bounds, i32(grid.nx), i32(grid.ny), K.ptr(point_cell), K.ptr(first),
                  K.ptr(stats)), pts)
        is_first = torch.empty(n, dtype=torch.int32, device=dev)
        K.launch("pillarization", "pillar_mark_first", K.blocks(n, T), T,
                 (K.ptr(point_cell), K.ptr(first), i32(n), K.ptr(is_first)), pts)
        # Pillar number = how many pillars start before this point: a prefix sum over first points
        # orders the pillars by first point without a sort.
        rank = torch.cumsum(is_first, 0, dtype=torch.int32)
        cell_pillar = torch.empty(cells, dtype=torch.int32, device=dev)
        K.launch("pillarization", "pillar_number", K.blocks(n, T), T,
                 (K.ptr(point_cell), K.ptr(is_first), K.ptr(rank), i32(n), i32(max_pillars), i32(grid.nx),
                  K.ptr(cell_pillar), K.ptr(coords), K.ptr(stats)), pts)
        key = torch.empty(n, dtype=torch.int32, device=dev)
        K.launch("pillarization", "pillar_key", K.blocks(n, T), T,
                 (K.ptr(point_cell), K.ptr(cell_pillar), i32(n), i32(max_pillars), K.ptr(key), K.ptr(counts),
                  K.ptr(stats)), pts)
        # A stable sort by pillar keeps each pillar's points in input order: slot = rank in its run.
        sorted_key, order = torch.sort(key, stable=True)
        offsets = torch.cumsum(counts, 0, dtype=torch.int32) - counts
        K.launch("pillarization", "pillar_gather", K.blocks(n, T), T,
                 (K.ptr(pts), i32(n), i32(f), K.ptr(sorted_key), K.ptr(order), K.ptr(offsets), i32(max_pillars), i32(m),
                  K.ptr(features), K.ptr(stats)), pts)
    warps_per_block = 4
    K.launch("pillarization", "pillar_finalize", K.blocks(max_pillars, warps_per_block), 32 * warps_per_block,
             (i32(f), K.ptr(counts), i32(max_pillars), i32(m), f64(grid.x_min), f64(grid.y_min), f64(grid.cell_m),
              K.ptr(features), K.ptr(coords), K.ptr(num_points)), pts)
    if not pad:
        p = int(stats[0].item())  # the caller asked for trimmed arrays: this waits for the GPU
        features, coords, num_points = features[:p], coords[:p], num_points[:p]
    return Pillars(features, coords, num_points, stats, n)
