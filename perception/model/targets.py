"""CenterPoint training targets from ground-truth boxes, on the fused grid of a config.

For each box (centre x y z, size l w h, yaw, velocity vx vy, label k) in the ego frame:
- ``heatmap[k]`` gets a Gaussian peak of 1 at the cell holding the centre, with CenterNet's radius
  for the box's footprint in cells (at least ``min_radius``); overlapping peaks take the maximum;
- at that cell the regression targets are ``offset`` = centre in cells minus the cell index
  (0..1 along x and y), ``height`` = z in metres, ``size`` = log(l, w, h), ``rot`` = (sin, cos) yaw,
  ``velocity`` = (vx, vy) m/s.

These conventions are the decoder's (``decode_maps`` here, and the decode op of the pipeline):
``x = x_min + (ix + offset_x) * cell``, ``y = y_min + (iy + offset_y) * cell`` with
``cell = grid.cell_m * fuse_stride``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.config import PipelineConfig

__all__ = ["Targets", "build_targets", "gaussian_radius"]


@dataclass(frozen=True, eq=False)
class Targets:
    """heatmap: (K, Yf, Xf) float32; index: (O,) int64 flat cell ``iy * Xf + ix``; mask: (O,) float32
    (1 for the boxes present, 0 for padding); regression: (O, 10) float32 = offset 2, height 1,
    log size 3, sin cos 2, velocity 2 (NaN velocities are masked by ``velocity_mask`` (O,))."""

    heatmap: np.ndarray
    index: np.ndarray
    mask: np.ndarray
    regression: np.ndarray
    velocity_mask: np.ndarray


def gaussian_radius(height: np.ndarray, width: np.ndarray, min_overlap: float = 0.1) -> np.ndarray:
    """CenterNet's radius (in cells) within which a shifted box still overlaps the true one by
    ``min_overlap`` IoU: the smallest root of its three quadratic cases."""
    a1, b1 = 1.0, height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + np.sqrt(b1**2 - 4 * a1 * c1)) / 2
    a2, b2 = 4.0, 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + np.sqrt(b2**2 - 4 * a2 * c2)) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + np.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return np.minimum(np.minimum(r1, r2), r3)


def _draw_gaussian(heatmap: np.ndarray, cx: int, cy: int, radius: int) -> None:
    diameter = 2 * radius + 1
    sigma = diameter / 6
    ys, xs = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    g = np.exp(-(xs * xs + ys * ys) / (2 * sigma * sigma))
    h, w = heatmap.shape
    left, right = min(cx, radius), min(w - cx, radius + 1)
    top, bottom = min(cy, radius), min(h - cy, radius + 1)
    patch = heatmap[cy - top:cy + bottom, cx - left:cx + right]
    np.maximum(patch, g[radius - top:radius + bottom, radius - left:radius + right], out=patch)


def build_targets(cfg: PipelineConfig, center: np.ndarray, size: np.ndarray, yaw: np.ndarray, velocity: np.ndarray,
                  label: np.ndarray, max_objects: int = 256, min_radius: int = 2) -> Targets:
    """Targets for one frame. center, size: (N, 3); yaw: (N,); velocity: (N, 2); label: (N,) int.
    Boxes whose centre falls outside the grid are skipped; past ``max_objects`` boxes, the rest are
    drawn in the heatmap but get no regression slot."""
    g, m = cfg.grid, cfg.model
    stride = m.fuse_stride
    cell = g.cell_m * stride
    yf, xf = g.ny // stride, g.nx // stride
    heatmap = np.zeros((m.num_classes, yf, xf), np.float32)
    index = np.zeros(max_objects, np.int64)
    mask = np.zeros(max_objects, np.float32)
    vmask = np.zeros(max_objects, np.float32)
    regression = np.zeros((max_objects, 10), np.float32)
    fx = (np.asarray(center[:, 0], np.float64) - g.x_min) / cell
    fy = (np.asarray(center[:, 1], np.float64) - g.y_min) / cell
    radius = gaussian_radius(np.asarray(size[:, 1]) / cell, np.asarray(size[:, 0]) / cell)
    slot = 0
    for i in range(len(label)):
        if not (0 <= fx[i] < xf and 0 <= fy[i] < yf) or not np.all(np.isfinite(size[i])) or np.any(size[i] <= 0):
            continue
        ix, iy = int(fx[i]), int(fy[i])
        _draw_gaussian(heatmap[int(label[i])], ix, iy, max(min_radius, int(radius[i])))
        if slot >= max_objects:
            continue
        index[slot] = iy * xf + ix
        mask[slot] = 1.0
        v = np.asarray(velocity[i], np.float64)
        vmask[slot] = float(np.all(np.isfinite(v)))
        regression[slot] = (fx[i] - ix, fy[i] - iy, center[i, 2], *np.log(size[i]), np.sin(yaw[i]), np.cos(yaw[i]),
                            *(v if vmask[slot] else (0.0, 0.0)))
        slot += 1
    return Targets(heatmap, index, mask, regression, vmask)
