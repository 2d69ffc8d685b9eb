"""pillarize: numba against the numpy oracle, hand-computed cases, edges, errors; CUDA against numba."""

from __future__ import annotations

import numpy as np
import pytest

from perception.config import GridConfig
from perception.errors import ShapeError
from perception.ops import Pillars, pillarize
from tests.perception.ops.conftest import random_cloud
from tests.perception.ops.oracles import pillarize_oracle


def assert_matches_oracle(out: Pillars, points: np.ndarray, grid: GridConfig, m: int, cap: int) -> None:
    ref = pillarize_oracle(points, grid, m, cap)
    np.testing.assert_array_equal(out.counts, ref["counts"])
    np.testing.assert_array_equal(out.coords, ref["coords"])
    np.testing.assert_array_equal(out.num_points, ref["num_points"])
    # float32 sums against float64 means: a few ulp of the coordinates.
    np.testing.assert_allclose(out.features, ref["features"], rtol=0, atol=2e-6)
    s = out.stats()
    assert s.num_input == len(points)
    assert s.kept_points == int(ref["num_points"].sum())


class TestPillarize:
    def test_smoke(self, grid):
        pts = random_cloud(np.random.default_rng(0), grid, 200)
        out = pillarize(pts, grid, max_points_per_pillar=8, max_pillars=100)
        p = out.features.shape[0]
        assert out.features.shape == (p, 8, 10) and out.features.dtype == np.float32
        assert out.coords.shape == (p, 2) and out.coords.dtype == np.int32
        assert out.num_points.shape == (p,) and out.num_points.dtype == np.int32
        assert out.counts.dtype == np.int64 and out.counts[0] == p

    @pytest.mark.parametrize("seed", [0, 1, 2])
    @pytest.mark.parametrize("f", [4, 5])
    def test_matches_oracle(self, grid, seed, f):
        rng = np.random.default_rng(seed)
        pts = random_cloud(rng, grid, int(rng.integers(300, 3000)), f)
        assert_matches_oracle(pillarize(pts, grid, max_points_per_pillar=16, max_pillars=200), pts, grid, 16, 200)

    def test_both_caps_overflow(self, grid):
        pts = random_cloud(np.random.default_rng(3), grid, 2000)
        out = pillarize(pts, grid, max_points_per_pillar=4, max_pillars=20)
        s = out.stats()
        assert s.num_pillars == 20 and s.dropped_overflow_pillars > 0 and s.dropped_overflow_points > 0
        assert s.dropped_overflow_pillar_points > 0 and s.dropped_nonfinite > 0 and s.dropped_outside > 0
        assert_matches_oracle(out, pts, grid, 4, 20)

    def test_hand_computed(self, grid):
        # Cells are 0.4 m from (-4, -3.2): (0.1, 0.1) is ix 10, iy 8 (centre 0.2, 0.0 + 0.2).
        pts = np.array([
            [0.1, 0.1, 0.0, 1.0],
            [-3.9, -3.1, 1.0, 2.0],  # ix 0, iy 0: the second pillar
            [0.3, 0.3, 1.0, 3.0],  # same cell as the first point
            [0.35, 0.2, 0.5, 4.0],  # third point of pillar 0: over the cap of 2
        ], np.float32)
        out = pillarize(pts, grid, max_points_per_pillar=2, max_pillars=10)
        np.testing.assert_array_equal(out.coords, [[8, 10], [0, 0]])
        np.testing.assert_array_equal(out.num_points, [2, 1])
        np.testing.assert_array_equal(out.counts, [2, 0, 0, 1, 0, 0])
        f0 = out.features[0]
        np.testing.assert_allclose(f0[0], [0.1, 0.1, 0.0, 1.0, -0.1, -0.1, -0.5, -0.1, -0.1], atol=1e-6)
        np.testing.assert_allclose(f0[1], [0.3, 0.3, 1.0, 3.0, 0.1, 0.1, 0.5, 0.1, 0.1], atol=1e-6)
        np.testing.assert_allclose(out.features[1, 0], [-3.9, -3.1, 1.0, 2.0, 0, 0, 0, -0.1, -0.1], atol=1e-6)
        assert not out.features[1, 1].any()

    def test_pillar_cap_keeps_first_pillars(self, grid):
        # Four cells visited in the order A B A C D: with a cap of 2, C and D are dropped.
        a, b, c, d = [-3.9, -3.1], [3.9, 3.1], [0.0, 0.0], [1.0, 1.0]
        pts = np.array([a + [0, 0], b + [0, 1], a + [0, 2], c + [0, 3], d + [0, 4], c + [0, 5]], np.float32)
        out = pillarize(pts, grid, max_points_per_pillar=32, max_pillars=2)
        np.testing.assert_array_equal(out.coords, [[0, 0], [15, 19]])
        np.testing.assert_array_equal(out.num_points, [2, 1])
        np.testing.assert_array_equal(out.counts, [2, 0, 0, 0, 2, 3])
        np.testing.assert_array_equal(out.features[0, :2, 3], [0, 2])  # input order inside the pillar

    def test_borders(self):
        # Half-open box: x_min, y_min, z_min inside; x_max, y_max, z_max outside. Bounds exact in
        # float32 here: float32(-3.2) is below the float64 bound -3.2 and would be outside.
        grid = GridConfig(x_min=-4.0, x_max=4.0, y_min=-2.0, y_max=2.0, z_min=-2.0, z_max=2.0, cell_m=0.5)
        pts = np.array([
            [grid.x_min, grid.y_min, grid.z_min, 0],
            [grid.x_max, 0, 0, 0],
            [0, grid.y_max, 0, 0],
            [0, 0, grid.z_max, 0],
            [np.nextafter(np.float32(grid.x_max), np.float32(0)), 0.1, 0, 0],
        ], np.float32)
        out = pillarize(pts, grid)
        np.testing.assert_array_equal(out.coords, [[0, 0], [4, grid.nx - 1]])
        assert out.stats().dropped_outside == 3

    def test_empty(self, grid):
        out = pillarize(np.zeros((0, 5), np.float32), grid)
        assert out.features.shape == (0, 32, 10) and out.coords.shape == (0, 2)
        np.testing.assert_array_equal(out.counts, np.zeros(6))

    def test_all_outside(self, grid):
        pts = np.full((50, 4), 100.0, np.float32)
        out = pillarize(pts, grid)
        assert out.features.shape[0] == 0 and out.stats().dropped_outside == 50

    def test_all_nonfinite(self, grid):
        pts = np.zeros((30, 4), np.float32)
        pts[:10, 0], pts[10:20, 2], pts[20:, 3] = np.nan, np.inf, -np.inf  # any column counts
        out = pillarize(pts, grid)
        assert out.features.shape[0] == 0 and out.stats().dropped_nonfinite == 30

    def test_pad(self, grid):
        pts = random_cloud(np.random.default_rng(4), grid, 300)
        trimmed = pillarize(pts, grid, max_points_per_pillar=8, max_pillars=500)
        padded = pillarize(pts, grid, max_points_per_pillar=8, max_pillars=500, pad=True)
        p = trimmed.features.shape[0]
        assert padded.features.shape == (500, 8, 10)
        np.testing.assert_array_equal(padded.features[:p], trimmed.features)
        np.testing.assert_array_equal(padded.coords[:p], trimmed.coords)
        assert (padded.coords[p:] == -1).all() and not padded.num_points[p:].any() and not padded.features[p:].any()

    def test_noncontiguous(self, grid):
        base = random_cloud(np.random.default_rng(5), grid, 800, 6)
        view = base[::2, :5]  # strided rows and a column slice
        assert not view.flags.c_contiguous
        a = pillarize(view, grid, max_points_per_pillar=8, max_pillars=100)
        b = pillarize(np.ascontiguousarray(view), grid, max_points_per_pillar=8, max_pillars=100)
        np.testing.assert_array_equal(a.features, b.features)
        assert_matches_oracle(a, np.ascontiguousarray(view), grid, 8, 100)

    def test_torch_cpu(self, grid):
        torch = pytest.importorskip("torch")
        pts = random_cloud(np.random.default_rng(6), grid, 500)
        a = pillarize(torch.from_numpy(pts), grid)
        b = pillarize(pts, grid)
        assert isinstance(a.features, torch.Tensor)
        np.testing.assert_array_equal(a.features.numpy(), b.features)
        assert a.stats() == b.stats()

    def test_deterministic(self, grid):
        pts = random_cloud(np.random.default_rng(7), grid, 1500)
        a, b = pillarize(pts, grid), pillarize(pts, grid)
        np.testing.assert_array_equal(a.features, b.features)

    @pytest.mark.parametrize("bad, match", [
        (np.zeros((10, 5), np.float64), "points: expected dtype float32"),
        (np.zeros((10, 2), np.float32), "points: expected .* F >= 3"),
        (np.zeros(10, np.float32), "points: expected a 2-D"),
        ([[0.0, 0.0, 0.0]], "points: expected a numpy array or torch tensor"),
    ])
    def test_invalid_input(self, grid, bad, match):
        with pytest.raises(ShapeError, match=match):
            pillarize(bad, grid)

    def test_invalid_caps(self, grid):
        with pytest.raises(ValueError, match="max_pillars"):
            pillarize(np.zeros((1, 4), np.float32), grid, max_pillars=0)


@pytest.mark.gpu
class TestPillarizeCuda:
    @pytest.mark.parametrize("seed", [0, 1])
    def test_matches_numba(self, grid, seed):
        import torch

        pts = random_cloud(np.random.default_rng(seed), grid, 5000)
        cpu = pillarize(pts, grid, max_points_per_pillar=8, max_pillars=60, pad=True)
        gpu = pillarize(torch.from_numpy(pts).cuda(), grid, max_points_per_pillar=8, max_pillars=60)
        np.testing.assert_array_equal(gpu.counts.cpu().numpy(), cpu.counts)
        np.testing.assert_array_equal(gpu.coords.cpu().numpy(), cpu.coords)
        np.testing.assert_array_equal(gpu.num_points.cpu().numpy(), cpu.num_points)
        np.testing.assert_allclose(gpu.features.cpu().numpy(), cpu.features, rtol=0, atol=1e-6)

    def test_deterministic_and_edges(self, grid):
        import torch

        pts = torch.from_numpy(random_cloud(np.random.default_rng(2), grid, 20000)).cuda()
        a, b = pillarize(pts, grid, max_pillars=100), pillarize(pts, grid, max_pillars=100)
        assert torch.equal(a.features, b.features) and torch.equal(a.coords, b.coords)
        empty = pillarize(torch.zeros((0, 5), device="cuda"), grid, max_pillars=7)
        assert empty.features.shape == (7, 32, 10) and (empty.coords == -1).all() and not empty.counts.any()
        trimmed = pillarize(pts, grid, max_pillars=100, pad=False)
        assert trimmed.features.shape[0] == a.stats().num_pillars
