"""Radar rasterisation: accumulated radar points -> BEV channels.

Channels (``RADAR_CHANNELS``), per cell of the grid (coarsened by ``bev_stride``):
occupancy (1 where any point falls, else 0), the largest RCS, the mean ego-motion-compensated
vx and vy, the newest time lag (the smallest, seconds); all 0 in empty cells.

A point is dropped as non-finite when x, y, rcs, vx, vy or time lag is NaN or inf, else as outside
unless ``x_min <= x < x_max`` and ``y_min <= y < y_max`` (cells by floor in float64, as the pillars).
z is not used: automotive radars (nuScenes' ARS 408 among them) measure little or no elevation.
Means are summed in float64 on both devices, so the order in which the GPU's atomics add cannot
show in the float32 result except in a last-bit tie.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from perception.config import GridConfig
from perception.errors import ShapeError
from perception.ops import _common as C

__all__ = ["RADAR_CHANNELS", "RADAR_COLUMNS", "RadarRaster", "rasterize_radar"]

RADAR_COLUMNS = ("x", "y", "z", "rcs", "vx_comp", "vy_comp", "time_lag")
RADAR_CHANNELS = ("occupancy", "max_rcs", "mean_vx", "mean_vy", "newest_time_lag")


@dataclass(frozen=True, eq=False)
class RadarRaster:
    """bev: (5, ny, nx) float32 in ``RADAR_CHANNELS`` order; counts: (2,) int64 dropped_nonfinite,
    dropped_outside (numpy, or tensors on the input's device)."""

    bev: Any
    counts: Any

    @property
    def dropped_nonfinite(self) -> int:
        return int(self.counts[0])

    @property
    def dropped_outside(self) -> int:
        return int(self.counts[1])


@njit(cache=True, nogil=True)
def _raster(points, x_min, y_min, cell, nx, ny):  # pragma: no cover - numba
    # A radar frame has thousands of points on a 512 x 512 grid: accumulate per touched cell
    # (a cell -> slot map) and finalise only those, instead of full-grid float64 sums.
    bev = np.zeros((5, ny, nx), np.float32)
    slot_of = np.full(ny * nx, -1, np.int32)
    cells = np.empty(points.shape[0], np.int64)
    count = np.zeros(points.shape[0], np.int64)
    sums = np.zeros((points.shape[0], 2), np.float64)
    counts = np.zeros(2, np.int64)
    used = 0
    for i in range(points.shape[0]):
        finite = np.isfinite(points[i, 0]) and np.isfinite(points[i, 1])
        for k in range(3, 7):
            finite = finite and np.isfinite(points[i, k])
        if not finite:
            counts[0] += 1
            continue
        fx = (np.float64(points[i, 0]) - x_min) / cell
        fy = (np.float64(points[i, 1]) - y_min) / cell
        if not (fx >= 0.0 and fx < nx and fy >= 0.0 and fy < ny):
            counts[1] += 1
            continue
        ix, iy = np.int64(fx), np.int64(fy)
        c = iy * nx + ix
        s = slot_of[c]
        rcs, lag = points[i, 3], points[i, 6]
        if s < 0:
            s = used
            used += 1
            slot_of[c] = s
            cells[s] = c
            bev[1, iy, ix], bev[4, iy, ix] = rcs, lag
        else:
            bev[1, iy, ix] = max(bev[1, iy, ix], rcs)
            bev[4, iy, ix] = min(bev[4, iy, ix], lag)
        count[s] += 1
        sums[s, 0] += np.float64(points[i, 4])
        sums[s, 1] += np.float64(points[i, 5])
    for s in range(used):
        iy, ix = cells[s] // nx, cells[s] % nx
        bev[0, iy, ix] = 1.0
        bev[2, iy, ix] = np.float32(sums[s, 0] / count[s])
        bev[3, iy, ix] = np.float32(sums[s, 1] / count[s])
    return bev, counts


def rasterize_radar(points: Any, grid: GridConfig, *, bev_stride: int = 1) -> RadarRaster:
    """points: (N, 7) float32 columns ``RADAR_COLUMNS`` (x y z rcs vx_comp vy_comp time_lag, ego
    frame, metres, dBsm, m/s, s); numpy/CPU tensor or CUDA tensor. bev_stride: coarsen the grid by
    this factor (the radar branch often runs at a lower resolution). Returns ``RadarRaster``."""
    C.check_shape(points, "points", (None, len(RADAR_COLUMNS)))
    C.check_dtype(points, "points", "float32")
    if isinstance(bev_stride, bool) or not isinstance(bev_stride, int) or bev_stride < 1 \
            or grid.nx % bev_stride or grid.ny % bev_stride:
        raise ValueError(f"bev_stride: expected a positive integer dividing the grid {grid.ny} x {grid.nx}, got {bev_stride!r}")
    if points.shape[0] >= 2**31 - 1:
        raise ShapeError(f"points: at most 2**31 - 2 points, got {points.shape[0]}")
    nx, ny, cell = grid.nx // bev_stride, grid.ny // bev_stride, grid.cell_m * bev_stride
    if C.is_cuda(points):
        return _raster_cuda(points, float(grid.x_min), float(grid.y_min), float(cell), nx, ny)
    bev, counts = _raster(C.as_numpy(points), float(grid.x_min), float(grid.y_min), float(cell), nx, ny)
    return RadarRaster(C.like_input(points, bev), C.like_input(points, counts))


def _raster_cuda(points: Any, x_min: float, y_min: float, cell: float, nx: int, ny: int) -> RadarRaster:
    import torch

    from perception.ops import _cuda as K

    pts = points.contiguous()
    n = pts.shape[0]
    dev = pts.device
    cells = nx * ny
    count = torch.zeros(cells, dtype=torch.int32, device=dev)
    rcs_key = torch.full((cells,), np.iinfo(np.int32).min, dtype=torch.int32, device=dev)
    lag_key = torch.full((cells,), np.iinfo(np.int32).max, dtype=torch.int32, device=dev)
    sums = torch.zeros((2, cells), dtype=torch.float64, device=dev)
    counts = torch.zeros(2, dtype=torch.int64, device=dev)
    K.launch("radar_raster", "radar_accumulate", K.blocks(n, 256), 256,
             (K.ptr(pts), np.int32(n), np.float64(x_min), np.float64(y_min), np.float64(cell), np.int32(nx), np.int32(ny),
              K.ptr(count), K.ptr(rcs_key), K.ptr(lag_key), K.ptr(sums), K.ptr(counts)), pts)
    bev = torch.empty((5, ny, nx), dtype=torch.float32, device=dev)
    K.launch("radar_raster", "radar_finalize", K.blocks(cells, 256), 256,
             (K.ptr(count), K.ptr(rcs_key), K.ptr(lag_key), K.ptr(sums), np.int32(cells), K.ptr(bev)), pts)
    return RadarRaster(bev, counts)
