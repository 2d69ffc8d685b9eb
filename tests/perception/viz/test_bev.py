"""The BEV picture: where things land (x up, y left, ego at the centre) and in which colour."""

from __future__ import annotations

import numpy as np
import pytest

from perception.types import PointCloud
from perception.viz.bev import BevView, render_bev
from perception.viz.colors import GT_COLOR, RADAR_COLOR, class_color
from tests.perception.replay import frames as F

VIEW = BevView.for_range(40.0, 400)  # 5 px per metre


def _has_colour(img: np.ndarray, col: float, row: float, rgb: tuple[int, int, int], radius: int = 3, tol: int = 40) -> bool:
    r0, c0 = int(round(row)), int(round(col))
    patch = img[max(0, r0 - radius):r0 + radius + 1, max(0, c0 - radius):c0 + radius + 1].astype(int)
    return bool(np.any(np.all(np.abs(patch - np.array(rgb)) <= tol, axis=-1)))


def test_view_geometry() -> None:
    assert VIEW.size == 400 and VIEW.px_per_m == 5.0
    px = VIEW.to_pixels(np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]))
    np.testing.assert_allclose(px, [[200, 200], [200, 150], [150, 200]])  # forward = up, left = left


def test_boxes_points_and_radar_land_where_they_are() -> None:
    det = F.boxes(F.T0)  # car 12 m ahead (4.5 m long), pedestrian 8 m left
    img = render_bev(VIEW, lidar=None, radar=F.radar(F.T0), detections=det, ground_truth=None, class_names=det.class_names)
    assert img.shape == (400, 400, 3) and img.dtype == np.uint8
    # the car's front face is 14.25 m ahead: row 200 - 71.25; its rear face at 9.75 m
    assert _has_colour(img, 200, 200 - 14.25 * 5, class_color("car"))
    assert _has_colour(img, 200, 200 - 9.75 * 5, class_color("car"))
    assert not _has_colour(img, 200, 200 + 12 * 5, class_color("car"))  # nothing mirrored behind
    assert _has_colour(img, 200 - 8 * 5, 200 - 3 * 5, class_color("pedestrian"))
    # the radar return 30 m ahead, 5 m right: a cross
    assert _has_colour(img, 200 + 5 * 5, 200 - 30 * 5, RADAR_COLOR, radius=1, tol=5)


def test_score_threshold_and_ground_truth_outline() -> None:
    det = F.boxes(F.T0, score=(0.9, 0.2))
    gt = F.ground_truth(F.T0)
    img = render_bev(VIEW, detections=det, ground_truth=gt, score_threshold=0.3)
    assert not _has_colour(img, 200 - 8 * 5, 200 - 3 * 5, class_color("pedestrian"), tol=10)
    # the pedestrian's ground truth is still there, outlined white
    assert _has_colour(img, 200 - 8 * 5 + 1.75, 200 - 3 * 5, GT_COLOR, tol=10)


def test_lidar_points_drawn_and_nan_ignored() -> None:
    cloud = F.lidar(F.T0, n=50)
    pts = cloud.points.copy()
    pts[0, :3] = [20.0, -20.0, 1.0]
    pts[1, :3] = np.nan
    cloud = type(cloud)(cloud.stamp_ns, cloud.frame_id, pts, cloud.fields)
    img = render_bev(VIEW, lidar=cloud)
    c, r = VIEW.to_pixels(np.array([[20.0, -20.0]]))[0]
    gc, gr = VIEW.to_pixels(cloud.points[2:3, :2])[0]
    # a raised point is drawn brighter than a ground point (z = 0), both above the black background
    assert int(img[int(r), int(c)].min()) > int(img[int(gr), int(gc)].min()) > 60


def test_the_highest_point_of_a_pixel_shows_whatever_the_order() -> None:
    """Points sharing a pixel: the brightest (highest) wins, as painting them dark to bright does, in
    any input order; points outside the picture or not finite change nothing."""
    from perception.viz.bev import _draw_lidar

    rng = np.random.default_rng(3)
    n = 4000
    pts = np.column_stack([rng.uniform(-45, 45, n), rng.uniform(-45, 45, n), rng.uniform(-1.0, 3.5, n),
                           rng.uniform(0, 1, n)]).astype(np.float32)
    pts[:300, :2] = [4.03, -2.07]  # 300 points on one pixel, at different heights
    pts[300:310, 2] = np.inf
    pts[310:320, 0] = np.nan

    def drawn(p: np.ndarray) -> np.ndarray:
        img = np.full((VIEW.size, VIEW.size, 3), 7, np.uint8)
        _draw_lidar(img, VIEW, PointCloud(F.T0, "ego", p, ("x", "y", "z", "intensity"), None))
        return img

    img = drawn(pts)
    np.testing.assert_array_equal(drawn(pts[::-1].copy()), img)
    np.testing.assert_array_equal(drawn(pts[rng.permutation(n)]), img)
    # the reference: painted dark to bright, grey from the height (0.85 of white at 2.5 m and up)
    ok = np.isfinite(pts[:, :3]).all(axis=1)
    col = np.floor(VIEW.size / 2 - pts[ok, 1].astype(np.float64) * VIEW.px_per_m).astype(int)
    row = np.floor(VIEW.size / 2 - pts[ok, 0].astype(np.float64) * VIEW.px_per_m).astype(int)
    inside = (col >= 0) & (col < VIEW.size) & (row >= 0) & (row < VIEW.size)
    assert 0 < inside.sum() < ok.sum() < n
    grey = (85 + 120 * np.clip((pts[ok, 2][inside] + 0.5) / 3.0, 0.0, 1.0)).astype(np.uint8)
    want = np.full_like(img, 7)
    for g, r, c in sorted(zip(grey, row[inside], col[inside])):
        want[r, c] = (g, g, min(int(g) + 25, 255))
    np.testing.assert_array_equal(img, want)


@pytest.mark.parametrize("half", [25.0, 51.2, 75.0])
def test_view_for_grid_holds_the_grid(half: float) -> None:
    from perception.config import GridConfig

    grid = GridConfig(x_min=-half, x_max=half, y_min=-half, y_max=half, cell_m=0.2 if half != 75.0 else 0.5)
    v = BevView.for_grid(grid, 600)
    assert v.size == 600 and v.half_range_m == pytest.approx(half)
