"""scatter_pillars: numba against the numpy oracle, padding rows, duplicates, errors; CUDA against numba."""

from __future__ import annotations

import numpy as np
import pytest

from perception.errors import ShapeError
from perception.ops import pillarize, scatter_pillars
from perception.ops._streaming import can_stream
from perception.ops.pillar_scatter import _BAND
from tests.perception.ops.conftest import random_cloud
from tests.perception.ops.oracles import scatter_oracle


def random_pillars(rng, grid, p, c, dtype=np.float32):
    cells = rng.choice(grid.ny * grid.nx, size=p, replace=False)
    coords = np.stack([cells // grid.nx, cells % grid.nx], axis=1).astype(np.int32)
    return rng.normal(size=(p, c)).astype(dtype), coords


class TestScatterPillars:
    def test_smoke(self, grid):
        feats, coords = random_pillars(np.random.default_rng(0), grid, 10, 4)
        out = scatter_pillars(feats, coords, grid)
        assert out.shape == (4, grid.ny, grid.nx) and out.dtype == np.float32

    @pytest.mark.parametrize("seed", [0, 1])
    @pytest.mark.parametrize("dtype", [np.float32, np.float16])
    def test_matches_oracle(self, grid, seed, dtype):
        rng = np.random.default_rng(seed)
        feats, coords = random_pillars(rng, grid, int(rng.integers(1, grid.nx * grid.ny)), 7, dtype)
        out = scatter_pillars(feats, coords, grid)
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, scatter_oracle(feats, coords, grid))

    def test_from_pillarize_padding_skipped(self, grid):
        pts = random_cloud(np.random.default_rng(2), grid, 500)
        pil = pillarize(pts, grid, max_pillars=400, pad=True)
        feats = pil.features.max(axis=1)  # a stand-in for the pillar feature net
        assert (pil.coords[-1] == -1).all()
        np.testing.assert_array_equal(scatter_pillars(feats, pil.coords, grid), scatter_oracle(feats, pil.coords, grid))

    def test_outside_and_duplicates(self, grid):
        feats = np.arange(10, dtype=np.float32).reshape(5, 2)
        coords = np.array([[0, 0], [grid.ny, 0], [0, grid.nx], [0, 0], [-1, 3]], np.int32)
        out = scatter_pillars(feats, coords, grid)
        np.testing.assert_array_equal(out[:, 0, 0], feats[3])  # the later row wins
        assert np.count_nonzero(out) == 2  # rows 1, 2 and 4 lie outside the grid

    def test_out_buffer_reused(self, grid):
        feats, coords = random_pillars(np.random.default_rng(5), grid, 30, 4)
        out = np.full((4, grid.ny, grid.nx), 7.0, np.float32)  # stale content must not survive
        assert scatter_pillars(feats, coords, grid, out=out) is out
        np.testing.assert_array_equal(out, scatter_oracle(feats, coords, grid))
        with pytest.raises(ShapeError, match="out: expected shape"):
            scatter_pillars(feats, coords, grid, out=np.zeros((3, grid.ny, grid.nx), np.float32))
        with pytest.raises(ShapeError, match="out: expected a C-contiguous"):
            scatter_pillars(feats, coords, grid, out=np.zeros((4, grid.nx, grid.ny), np.float32).transpose(0, 2, 1))

    def test_fresh_output_over_recycled_memory(self, grid):
        # Without out=, the memory of a dropped earlier result is reused: none of its stale values
        # may survive, and a result still held is never handed out again.
        from perception.ops import _recycle

        feats, coords = random_pillars(np.random.default_rng(7), grid, 40, 4)
        held = scatter_pillars(feats, coords, grid)
        dropped = scatter_pillars(feats[::-1].copy(), coords, grid)
        dropped[...] = np.nan
        stale = dropped.__array_interface__["data"][0]
        del dropped
        out = scatter_pillars(feats, coords, grid)
        assert out.__array_interface__["data"][0] == stale or _recycle.MAX_PER_SIZE == 0
        assert out.__array_interface__["data"][0] != held.__array_interface__["data"][0]
        np.testing.assert_array_equal(out, scatter_oracle(feats, coords, grid))
        np.testing.assert_array_equal(held, out)

    @pytest.mark.parametrize("dtype", [np.float32, np.float16])
    def test_streaming_and_plain_stores_agree(self, grid, dtype):
        # An aligned buffer is written with streaming stores, one 4 bytes off with plain ones.
        feats, coords = random_pillars(np.random.default_rng(6), grid, 90, 5, dtype)
        ref = scatter_oracle(feats, coords, grid)
        size = 5 * grid.ny * grid.nx * np.dtype(dtype).itemsize
        raw = np.empty(size + 64, np.uint8)
        head = -raw.ctypes.data % 16
        for shift, streams in ((head, True), (head + 4, False)):  # planes and bands of this grid are 16-byte multiples
            out = raw[shift:shift + size].view(dtype).reshape(5, grid.ny, grid.nx)
            out.fill(3)
            assert can_stream(out, grid.ny * grid.nx, _BAND * grid.nx) == streams
            scatter_pillars(feats, coords, grid, out=out)
            np.testing.assert_array_equal(out, ref)

    def test_empty(self, grid):
        out = scatter_pillars(np.zeros((0, 3), np.float32), np.zeros((0, 2), np.int32), grid)
        assert out.shape == (3, grid.ny, grid.nx) and not out.any()

    def test_noncontiguous_and_torch(self, grid):
        torch = pytest.importorskip("torch")
        feats, coords = random_pillars(np.random.default_rng(3), grid, 50, 6)
        ref = scatter_oracle(feats, coords, grid)
        np.testing.assert_array_equal(scatter_pillars(np.asfortranarray(feats), coords, grid), ref)
        out = scatter_pillars(torch.from_numpy(feats), torch.from_numpy(coords), grid)
        assert isinstance(out, torch.Tensor)
        np.testing.assert_array_equal(out.numpy(), ref)

    @pytest.mark.parametrize("feats, coords, match", [
        (np.zeros((4, 3), np.float64), np.zeros((4, 2), np.int32), "features: expected dtype"),
        (np.zeros((4, 3), np.float32), np.zeros((4, 2), np.int64), "coords: expected dtype int32"),
        (np.zeros((4, 3), np.float32), np.zeros((5, 2), np.int32), r"coords: expected shape \(4, 2\)"),
        (np.zeros((4,), np.float32), np.zeros((4, 2), np.int32), "features: expected a 2-D"),
    ])
    def test_invalid(self, grid, feats, coords, match):
        with pytest.raises(ShapeError, match=match):
            scatter_pillars(feats, coords, grid)


@pytest.mark.gpu
class TestScatterPillarsCuda:
    @pytest.mark.parametrize("dtype", [np.float32, np.float16])
    def test_matches_numba(self, grid, dtype):
        import torch

        feats, coords = random_pillars(np.random.default_rng(4), grid, 200, 9, dtype)
        coords[::7] = -1
        coords[1] = coords[0]  # a duplicate: the later row wins on both devices
        ref = scatter_pillars(feats, coords, grid)
        out = scatter_pillars(torch.from_numpy(feats).cuda(), torch.from_numpy(coords).cuda(), grid)
        np.testing.assert_array_equal(out.cpu().numpy(), ref)
        buf = torch.full_like(out, 3.0)
        assert scatter_pillars(torch.from_numpy(feats).cuda(), torch.from_numpy(coords).cuda(), grid, out=buf) is buf
        np.testing.assert_array_equal(buf.cpu().numpy(), ref)
