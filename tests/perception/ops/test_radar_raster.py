"""rasterize_radar: numba against the numpy oracle, a hand-computed cell, edges, errors; CUDA against numba."""

from __future__ import annotations

import numpy as np
import pytest

from perception.errors import ShapeError
from perception.ops import rasterize_radar
from tests.perception.ops.oracles import radar_oracle


def radar_points(rng, grid, n, bad=0.05):
    pts = np.zeros((n, 7), np.float32)
    pts[:, 0] = rng.uniform(grid.x_min * 1.3, grid.x_max * 1.3, n)
    pts[:, 1] = rng.uniform(grid.y_min * 1.3, grid.y_max * 1.3, n)
    pts[:, 2] = rng.uniform(0, 1, n)
    pts[:, 3] = rng.normal(0, 10, n)  # dBsm: often negative
    pts[:, 4:6] = rng.normal(0, 5, (n, 2))
    pts[:, 6] = rng.uniform(0, 0.5, n)
    pts[rng.choice(n, n // 3), :2] = pts[0, :2]  # a crowded cell
    k = rng.choice(n, int(n * bad), replace=False)
    pts[k, rng.choice([0, 1, 3, 4, 5, 6], len(k))] = rng.choice([np.nan, np.inf], len(k))
    return pts


class TestRasterizeRadar:
    def test_smoke(self, grid):
        out = rasterize_radar(radar_points(np.random.default_rng(0), grid, 50), grid)
        assert out.bev.shape == (5, grid.ny, grid.nx) and out.bev.dtype == np.float32
        assert out.counts.shape == (2,) and out.counts.dtype == np.int64

    @pytest.mark.parametrize("seed", [0, 1, 2])
    @pytest.mark.parametrize("stride", [1, 4])
    def test_matches_oracle(self, grid, seed, stride):
        rng = np.random.default_rng(seed)
        pts = radar_points(rng, grid, int(rng.integers(100, 1500)))
        out = rasterize_radar(pts, grid, bev_stride=stride)
        bev, counts = radar_oracle(pts, grid, stride)
        np.testing.assert_array_equal(out.counts, counts)
        np.testing.assert_allclose(out.bev, bev, rtol=1e-6, atol=1e-6)
        assert out.dropped_nonfinite > 0 and out.dropped_outside > 0

    def test_hand_computed(self, grid):
        # Two points in cell (iy 8, ix 10) of the 0.4 m grid, one in (0, 0); z is ignored.
        pts = np.array([[0.1, 0.1, 99.0, -5.0, 1.0, 2.0, 0.3],
                        [0.3, 0.2, 0.0, -2.0, 3.0, -4.0, 0.1],
                        [-3.9, -3.1, 0.0, 7.0, 0.5, 0.5, 0.0]], np.float32)
        out = rasterize_radar(pts, grid)
        np.testing.assert_allclose(out.bev[:, 8, 10], [1, -2, 2, -1, 0.1], rtol=1e-6)
        np.testing.assert_allclose(out.bev[:, 0, 0], [1, 7, 0.5, 0.5, 0], rtol=1e-6)
        assert np.count_nonzero(out.bev[0]) == 2

    def test_empty_and_all_outside(self, grid):
        empty = rasterize_radar(np.zeros((0, 7), np.float32), grid)
        assert not empty.bev.any() and not empty.counts.any()
        far = np.full((10, 7), 1000.0, np.float32)
        out = rasterize_radar(far, grid)
        assert not out.bev.any() and out.dropped_outside == 10

    def test_noncontiguous_and_torch(self, grid):
        torch = pytest.importorskip("torch")
        pts = radar_points(np.random.default_rng(3), grid, 300)
        ref = rasterize_radar(pts, grid)
        np.testing.assert_array_equal(rasterize_radar(np.asfortranarray(pts), grid).bev, ref.bev)
        out = rasterize_radar(torch.from_numpy(pts), grid)
        assert isinstance(out.bev, torch.Tensor)
        np.testing.assert_array_equal(out.bev.numpy(), ref.bev)

    def test_invalid(self, grid):
        with pytest.raises(ShapeError, match=r"points: expected shape \(\*, 7\)"):
            rasterize_radar(np.zeros((3, 5), np.float32), grid)
        with pytest.raises(ShapeError, match="points: expected dtype float32"):
            rasterize_radar(np.zeros((3, 7)), grid)
        with pytest.raises(ValueError, match="bev_stride"):
            rasterize_radar(np.zeros((3, 7), np.float32), grid, bev_stride=3)


@pytest.mark.gpu
class TestRasterizeRadarCuda:
    def test_matches_numba(self, grid):
        import torch

        pts = radar_points(np.random.default_rng(4), grid, 5000)
        ref = rasterize_radar(pts, grid)
        out = rasterize_radar(torch.from_numpy(pts).cuda(), grid)
        np.testing.assert_array_equal(out.counts.cpu().numpy(), ref.counts)
        np.testing.assert_allclose(out.bev.cpu().numpy(), ref.bev, rtol=1e-6, atol=1e-7)
