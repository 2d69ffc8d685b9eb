"""The road: a chain of straight and circular segments with a lane layout and markings.

The centre line is parametrised by arclength ``s``; a point beside it by ``(s, d)``, ``d`` the
lateral offset, positive to the left of the road direction. Traffic keeps right: the lanes of the
road direction are at ``d < 0``, the oncoming lanes at ``d > 0``. Cross-section from the centre:
double yellow line, lanes (``lane_width_m``, dashed white between them), solid white edge line,
a parking strip, a kerb, the sidewalk, then a verge up to the building line.

World -> (s, d) runs for every ground pixel of every camera image, so it is a numba kernel: a
coarse grid (``lookup_cell_m``) stores the nearest segment of each cell, and the exact projection
onto that segment's line or circle follows. Segments join with a continuous heading, so near a
joint the two candidates give the same (s, d) to well under a centimetre.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numba as nb
import numpy as np

__all__ = ["Road", "RoadLayout", "SURFACE_NAMES", "build_road", "road_sd", "surface_at"]

# surface classes of the ground (index into the renderer's and the LiDAR's material tables)
ASPHALT, WHITE_PAINT, YELLOW_PAINT, SIDEWALK, KERB, GRASS = range(6)
SURFACE_NAMES = ("asphalt", "white_paint", "yellow_paint", "sidewalk", "kerb", "grass")


@dataclass(frozen=True)
class RoadLayout:
    """Cross-section of the road, metres; offsets are |d| from the centre line."""

    lanes_per_direction: int
    lane_width_m: float = 3.5
    parking_width_m: float = 2.5
    kerb_width_m: float = 0.25
    sidewalk_width_m: float = 3.5
    line_width_m: float = 0.15
    dash_length_m: float = 3.0
    dash_period_m: float = 12.0

    @property
    def carriageway_half_m(self) -> float:
        """|d| of the solid edge line."""
        return self.lanes_per_direction * self.lane_width_m

    @property
    def kerb_d_m(self) -> float:
        return self.carriageway_half_m + self.parking_width_m

    @property
    def sidewalk_outer_d_m(self) -> float:
        return self.kerb_d_m + self.kerb_width_m + self.sidewalk_width_m

    def lane_center_d(self, lane: int, direction: int) -> float:
        """Lateral offset of lane ``lane`` (0 = next to the centre line); direction +1 = along s."""
        return -direction * (lane + 0.5) * self.lane_width_m

    def as_array(self) -> np.ndarray:
        """(8,) float64 for the numba kernels."""
        return np.array([self.lanes_per_direction, self.lane_width_m, self.parking_width_m, self.kerb_width_m,
                         self.sidewalk_width_m, self.line_width_m, self.dash_length_m, self.dash_period_m], np.float64)


@dataclass(frozen=True, eq=False)
class Road:
    """seg: (K, 10) float64 rows ``x0 y0 heading0 s0 curvature`` (segment start pose) then derived
    ``cos0 sin0 centre_x centre_y angle0`` (circle centre and start angle on it; 0 for straights);
    ``length_m`` total.

    grid_seg: (GY, GX) int16 nearest segment per lookup cell; grid_meta: (4,) x_min y_min cell nx.
    """

    seg: np.ndarray
    length_m: float
    layout: RoadLayout
    grid_seg: np.ndarray
    grid_meta: np.ndarray

    def pose(self, s: np.ndarray, d: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Points at arclength ``s: (N,)`` and offset ``d``: x, y, centre-line heading, curvature (each (N,))."""
        s = np.atleast_1d(np.asarray(s, dtype=np.float64))
        d = np.broadcast_to(np.asarray(d, dtype=np.float64), s.shape)
        out = np.empty((s.shape[0], 4))
        _pose_many(self.seg, s, np.ascontiguousarray(d), out)
        return out[:, 0], out[:, 1], out[:, 2], out[:, 3]

    def to_sd(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (N,) -> (s, d), each (N,)."""
        x = np.ascontiguousarray(np.atleast_1d(x), dtype=np.float64)
        y = np.ascontiguousarray(np.atleast_1d(y), dtype=np.float64)
        s = np.empty_like(x)
        d = np.empty_like(x)
        for i in range(x.shape[0]):
            s[i], d[i] = road_sd(self.seg, self.grid_seg, self.grid_meta, x[i], y[i])
        return s, d


@nb.njit(cache=True)
def _seg_pose(seg: np.ndarray, k: int, s: float) -> tuple[float, float, float]:
    x0, y0, h0, s0, kap = seg[k, 0], seg[k, 1], seg[k, 2], seg[k, 3], seg[k, 4]
    u = s - s0
    if abs(kap) < 1e-12:
        return x0 + u * np.cos(h0), y0 + u * np.sin(h0), h0
    h = h0 + kap * u
    return x0 + (np.sin(h) - np.sin(h0)) / kap, y0 - (np.cos(h) - np.cos(h0)) / kap, h


@nb.njit(cache=True, nogil=True)
def _pose_many(seg: np.ndarray, s: np.ndarray, d: np.ndarray, out: np.ndarray) -> None:
    n_seg = seg.shape[0]
    for i in range(s.shape[0]):
        k = np.searchsorted(seg[:, 3], s[i], side="right") - 1
        k = min(max(k, 0), n_seg - 1)
        x, y, h = _seg_pose(seg, k, s[i])
        out[i, 0] = x - d[i] * np.sin(h)
        out[i, 1] = y + d[i] * np.cos(h)
        out[i, 2] = h
        out[i, 3] = seg[k, 4]


@nb.njit(cache=True)
def fast_atan2(y: float, x: float) -> float:
    """atan2 to within 1e-5 rad (a minimax polynomial): road_sd runs once per ground pixel, and
    libm's atan2 was half of its cost. 1e-5 rad on a 1 km radius is 1 cm along the road."""
    ax, ay = abs(x), abs(y)
    if ax == 0.0 and ay == 0.0:
        return 0.0
    swap = ay > ax
    z = ax / ay if swap else ay / ax
    z2 = z * z
    a = z * (0.99997726 + z2 * (-0.33262347 + z2 * (0.19354346 + z2 * (-0.11643287 + z2 * (0.05265332 + z2 * -0.01172120)))))
    if swap:
        a = 0.5 * np.pi - a
    if x < 0.0:
        a = np.pi - a
    return -a if y < 0.0 else a


@nb.njit(cache=True)
def road_sd(seg: np.ndarray, grid_seg: np.ndarray, grid_meta: np.ndarray, x: float, y: float) -> tuple[float, float]:
    """(s, d) of world point (x, y): nearest segment from the lookup grid, then exact projection.

    Uses the derived columns of ``seg`` (cos/sin of the start heading, circle centre, start angle).
    """
    cell = grid_meta[2]
    gx = int((x - grid_meta[0]) / cell)
    gy = int((y - grid_meta[1]) / cell)
    gx = min(max(gx, 0), grid_seg.shape[1] - 1)
    gy = min(max(gy, 0), grid_seg.shape[0] - 1)
    k = grid_seg[gy, gx]
    s, d = _project(seg, k, x, y)
    # near a joint the grid may name the neighbour: take the segment whose span holds the projection
    if s < seg[k, 3] and k > 0:
        s2, d2 = _project(seg, k - 1, x, y)
        if s2 <= seg[k, 3]:
            return s2, d2
    elif k + 1 < seg.shape[0] and s > seg[k + 1, 3]:
        s2, d2 = _project(seg, k + 1, x, y)
        if s2 >= seg[k + 1, 3]:
            return s2, d2
    return s, d


@nb.njit(cache=True)
def _project(seg: np.ndarray, k: int, x: float, y: float) -> tuple[float, float]:
    """(s, d) of (x, y) on segment k's line or circle (extended beyond its ends)."""
    s0, kap = seg[k, 3], seg[k, 4]
    if kap == 0.0:
        dx, dy = x - seg[k, 0], y - seg[k, 1]
        c, sn = seg[k, 5], seg[k, 6]
        return s0 + dx * c + dy * sn, -dx * sn + dy * c
    px, py = x - seg[k, 7], y - seg[k, 8]
    dang = fast_atan2(py, px) - seg[k, 9]
    if dang > np.pi:
        dang -= 2.0 * np.pi
    elif dang < -np.pi:
        dang += 2.0 * np.pi
    rho = np.sqrt(px * px + py * py)
    return s0 + dang / kap, 1.0 / kap - (rho if kap > 0 else -rho)


@nb.njit(cache=True)
def surface_at(layout: np.ndarray, s: float, d: float) -> int:
    """Ground surface class at road coordinates (s, d); ``layout`` from ``RoadLayout.as_array``."""
    n, lane_w, park_w, kerb_w, walk_w, line_w, dash_len, dash_period = (
        layout[0], layout[1], layout[2], layout[3], layout[4], layout[5], layout[6], layout[7])
    a = abs(d)
    half = line_w * 0.5
    edge = n * lane_w
    if a < edge + half:
        # double yellow centre line: two lines 0.1 m either side of the centre
        if abs(a - 0.1 - half) < half:
            return YELLOW_PAINT
        if abs(a - edge) < half:
            return WHITE_PAINT
        for j in range(1, int(n)):
            if abs(a - j * lane_w) < half:
                if (s % dash_period) < dash_len:
                    return WHITE_PAINT
                return ASPHALT
        return ASPHALT
    kerb = edge + park_w
    if a < kerb:
        return ASPHALT
    if a < kerb + kerb_w:
        return KERB
    if a < kerb + kerb_w + walk_w:
        return SIDEWALK
    return GRASS


def _segments(rng: np.random.Generator, length_m: float, curviness: float) -> list[tuple[float, float]]:
    """(length, curvature) pairs whose lengths add up to at least ``length_m``."""
    out: list[tuple[float, float]] = []
    total = 0.0
    while total < length_m:
        if rng.random() < 0.35 + 0.4 * curviness:
            radius = rng.uniform(400.0 - 300.0 * curviness, 900.0 - 600.0 * curviness)
            turn = np.deg2rad(rng.uniform(15.0, 40.0 + 50.0 * curviness))
            length = radius * turn
            out.append((length, rng.choice([-1.0, 1.0]) / radius))
        else:
            length = rng.uniform(60.0, 250.0 - 150.0 * curviness)
            out.append((length, 0.0))
        total += length
    return out


def build_road(rng: np.random.Generator, length_m: float, start_s_m: float, layout: RoadLayout, curviness: float,
               lookup_margin_m: float = 300.0, lookup_cell_m: float = 2.0) -> Road:
    """A random road of at least ``length_m`` whose point at ``start_s_m`` lies at the world origin.

    The heading there is random: the world frame is ENU, and roads run in every direction.
    """
    pairs = _segments(rng, length_m, curviness)
    seg = np.zeros((len(pairs), 10))
    x = y = h = s = 0.0
    for k, (length, kap) in enumerate(pairs):
        seg[k, :5] = (x, y, h, s, kap)
        x, y, h = _seg_pose(seg, k, s + length)
        s += length
    # move and turn the road so that s = start_s_m is at the origin, heading a random direction
    tmp = np.empty((1, 4))
    _pose_many(seg, np.array([start_s_m]), np.zeros(1), tmp)
    turn = rng.uniform(-np.pi, np.pi) - tmp[0, 2]
    c, sn = np.cos(turn), np.sin(turn)
    px, py = seg[:, 0] - tmp[0, 0], seg[:, 1] - tmp[0, 1]
    seg[:, 0], seg[:, 1] = c * px - sn * py, sn * px + c * py
    seg[:, 2] += turn
    seg = _derive(seg)
    grid_seg, meta = _lookup_grid(seg, s, lookup_margin_m, lookup_cell_m)
    return Road(seg, s, layout, grid_seg, meta)


def _derive(seg: np.ndarray) -> np.ndarray:
    """Fill the derived columns 5..9 from the start poses, so that road_sd does no trigonometry twice."""
    seg = seg.copy()
    c, sn, kap = np.cos(seg[:, 2]), np.sin(seg[:, 2]), seg[:, 4]
    seg[:, 5], seg[:, 6] = c, sn
    curved = kap != 0.0
    r = np.where(curved, 1.0 / np.where(curved, kap, 1.0), 0.0)
    seg[:, 7] = np.where(curved, seg[:, 0] - r * sn, 0.0)
    seg[:, 8] = np.where(curved, seg[:, 1] + r * c, 0.0)
    seg[:, 9] = np.where(curved, np.arctan2(seg[:, 1] - seg[:, 8], seg[:, 0] - seg[:, 7]), 0.0)
    return seg


def _lookup_grid(seg: np.ndarray, length_m: float, margin_m: float, cell_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Nearest segment per cell, by a labelled distance transform of the rasterised centre line."""
    s = np.arange(0.0, length_m, cell_m * 0.5)
    xy = np.empty((s.shape[0], 4))
    _pose_many(seg, s, np.zeros_like(s), xy)
    seg_of_sample = np.clip(np.searchsorted(seg[:, 3], s, side="right") - 1, 0, seg.shape[0] - 1)
    x_min, y_min = xy[:, 0].min() - margin_m, xy[:, 1].min() - margin_m
    nx = int(np.ceil((xy[:, 0].max() + margin_m - x_min) / cell_m)) + 1
    ny = int(np.ceil((xy[:, 1].max() + margin_m - y_min) / cell_m)) + 1
    gx = ((xy[:, 0] - x_min) / cell_m).astype(np.int64)
    gy = ((xy[:, 1] - y_min) / cell_m).astype(np.int64)
    src = np.ones((ny, nx), np.uint8)
    src[gy, gx] = 0
    _, labels = cv2.distanceTransformWithLabels(src, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    label_to_seg = np.zeros(labels.max() + 1, np.int16)
    label_to_seg[labels[gy, gx]] = seg_of_sample  # later samples win a shared cell: either is exact enough
    grid = label_to_seg[labels]
    return np.ascontiguousarray(grid), np.array([x_min, y_min, cell_m, nx], np.float64)
