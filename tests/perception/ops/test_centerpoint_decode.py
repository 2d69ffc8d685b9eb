"""decode_centerpoint: numba against the numpy oracle, hand-computed boxes, plateaus, NaN, errors; CUDA against numba."""

from __future__ import annotations

import numpy as np
import pytest

from perception.config import GridConfig
from perception.errors import ShapeError
from perception.ops import decode_centerpoint
from tests.perception.ops.oracles import decode_oracle


def head(rng, n_cls, h, w, *, velocity=True):
    heat = rng.normal(-3, 1.5, size=(n_cls, h, w)).astype(np.float32)
    maps = [rng.uniform(0, 1, (2, h, w)), rng.normal(0, 1, (1, h, w)), rng.normal(0.5, 0.5, (3, h, w)),
            rng.normal(0, 1, (2, h, w)), rng.normal(0, 3, (2, h, w)) if velocity else None]
    return [heat] + [None if m is None else m.astype(np.float32) for m in maps]


def assert_matches(out, ref):
    np.testing.assert_array_equal(out.labels, ref["labels"])
    np.testing.assert_array_equal(out.valid, ref["valid"])
    np.testing.assert_allclose(out.scores, ref["scores"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out.boxes, ref["boxes"], rtol=1e-5, atol=1e-4)


class TestDecodeCenterpoint:
    def test_smoke(self, grid):
        out = decode_centerpoint(*head(np.random.default_rng(0), 3, 8, 10), grid, top_k=20)
        assert out.boxes.shape == (20, 9) and out.boxes.dtype == np.float32
        assert out.scores.shape == (20,) and out.labels.dtype == np.int32 and out.valid.dtype == np.bool_

    @pytest.mark.parametrize("seed", [0, 1, 2])
    @pytest.mark.parametrize("stride", [1, 2])
    @pytest.mark.parametrize("top_k", [10, 300])
    def test_matches_oracle(self, grid, seed, stride, top_k):
        rng = np.random.default_rng(seed)
        maps = head(rng, 4, grid.ny // stride, grid.nx // stride, velocity=seed != 2)
        thr = float(rng.uniform(0.02, 0.2))
        out = decode_centerpoint(*maps, grid, top_k=top_k, score_threshold=thr)
        assert_matches(out, decode_oracle(*maps, grid, top_k, thr, True))
        assert out.valid.all() if top_k == 10 else 0 < out.valid.sum() < top_k  # the cap, or the padding
        assert (np.diff(out.valid.astype(int)) <= 0).all()  # valid rows are a prefix

    def test_scores_without_sigmoid(self, grid):
        maps = head(np.random.default_rng(3), 2, 8, 10)
        maps[0] = np.abs(maps[0]) / 10
        out = decode_centerpoint(*maps, grid, top_k=30, score_threshold=0.3, sigmoid=False)
        assert_matches(out, decode_oracle(*maps, grid, 30, 0.3, False))

    def test_hand_computed(self, grid):
        # Head at stride 2 on the 20 x 16 grid: 10 x 8 cells of 0.8 m from (-4, -3.2).
        h, w = 8, 10
        heat = np.full((2, h, w), -10, np.float32)
        heat[1, 3, 4] = 2.0  # class 1 peak at iy 3, ix 4
        heat[1, 3, 5] = 1.0  # a neighbour: not a peak
        heat[0, 0, 0] = 0.0  # class 0 peak in the corner, score 0.5
        offset = np.full((2, h, w), 0.5, np.float32)
        height = np.full((1, h, w), 1.25, np.float32)
        size = np.log(np.array([4.0, 2.0, 1.5], np.float32))[:, None, None] * np.ones((3, h, w), np.float32)
        rot = np.stack([np.full((h, w), np.sin(0.3)), np.full((h, w), np.cos(0.3))]).astype(np.float32)
        out = decode_centerpoint(heat, offset, height, size, rot, None, grid, top_k=3, score_threshold=0.4)
        np.testing.assert_array_equal(out.labels, [1, 0, -1])
        np.testing.assert_allclose(out.scores[:2], [1 / (1 + np.exp(-2.0)), 0.5], rtol=1e-6)
        np.testing.assert_allclose(out.boxes[0], [-4 + 4.5 * 0.8, -3.2 + 3.5 * 0.8, 1.25, 4, 2, 1.5, 0.3, 0, 0], atol=1e-5)
        np.testing.assert_allclose(out.boxes[1, :2], [-4 + 0.4, -3.2 + 0.4], atol=1e-6)
        assert not out.boxes[2].any()

    def test_plateau_and_ties(self, grid):
        heat = np.full((1, 8, 10), -5, np.float32)
        heat[0, 2, 2] = heat[0, 2, 3] = 1.0  # a plateau: both are peaks (max_pool == heat)
        heat[0, 6, 8] = 1.0  # an equal value further on: after them by index
        out = decode_centerpoint(heat, *head(np.random.default_rng(4), 1, 8, 10)[1:], grid, top_k=3)
        np.testing.assert_allclose(out.boxes[:, 0] // 0.8, [-5 + 2, -5 + 3, -5 + 8], atol=0)

    def test_ties_at_the_cut(self, grid):
        # Nine equal isolated peaks and a cap of 5: the five lowest indices, whatever the selection does.
        heat = np.full((1, 8, 10), -9, np.float32)
        cells = [(0, 8), (0, 0), (7, 9), (2, 4), (4, 2), (7, 0), (4, 6), (2, 8), (6, 4)]
        for y, x in cells:
            heat[0, y, x] = 1.0
        heat[0, 5, 5] = 2.0
        out = decode_centerpoint(heat, *head(np.random.default_rng(9), 1, 8, 10)[1:], grid, top_k=6)
        ref = decode_oracle(heat, *head(np.random.default_rng(9), 1, 8, 10)[1:], grid, 6, 0.1, True)
        assert_matches(out, ref)
        assert out.valid.all()

    @pytest.mark.parametrize("hw", [(1, 1), (1, 7), (7, 1), (2, 2), (2, 9), (3, 3), (5, 4)])
    def test_thin_maps_and_coarse_values(self, hw):
        # Maps with no inner cells, or few: the border path alone. Values on a coarse lattice make
        # plateaus and ties everywhere, NaN and inf included.
        h, w = hw
        g = GridConfig(x_min=0.0, x_max=0.5 * w, y_min=0.0, y_max=0.5 * h, z_min=-2.0, z_max=2.0, cell_m=0.5)
        rng = np.random.default_rng(h * 10 + w)
        for _ in range(5):
            maps = head(rng, 3, h, w)
            maps[0] = np.round(maps[0]).astype(np.float32)
            maps[0].flat[rng.integers(0, maps[0].size, 2)] = [np.nan, np.inf]
            out = decode_centerpoint(*maps, g, top_k=6, score_threshold=0.05)
            assert_matches(out, decode_oracle(*maps, g, 6, 0.05, True))

    @pytest.mark.parametrize("thr", [0.1, 0.5, 0.9, 0.9995])
    def test_values_at_the_threshold(self, grid, thr):
        # Logits within float32 rounding of the threshold's inverse sigmoid: the exact score test
        # decides, not the value shortcut (_value_cutoff / _value_sure).
        logit = np.float32(np.log(thr / (1 - thr)))
        steps = np.arange(-40, 40, dtype=np.float32)
        near = logit + steps * np.float32(2e-5) * max(1.0, abs(float(logit)))  # +-8e-4: inside the +-1e-3 band
        # The op tests the float32 score and the oracle the float64 one: drop the values whose two
        # scores could fall on either side of the threshold.
        near = near[np.abs(1 / (1 + np.exp(-near.astype(np.float64))) - thr) > 1e-6]
        heat = np.full((1, 16, 20), -20, np.float32)
        ys, xs = np.meshgrid(np.arange(0, 16, 2), np.arange(0, 20, 2), indexing="ij")  # isolated cells
        heat[0, ys.ravel()[:len(near)], xs.ravel()[:len(near)]] = near
        maps = [heat] + head(np.random.default_rng(11), 1, 16, 20)[1:]
        out = decode_centerpoint(*maps, grid, top_k=100, score_threshold=thr)
        ref = decode_oracle(*maps, grid, 100, thr, True)
        assert 0 < ref["valid"].sum() < len(near)  # the threshold cuts through the values
        assert_matches(out, ref)

    def test_nonfinite(self, grid):
        maps = head(np.random.default_rng(5), 2, 8, 10)
        maps[0][0, 1, 1] = np.nan
        maps[0][0, 4, 4] = np.inf
        maps[0][1] = np.nan  # a whole class
        out = decode_centerpoint(*maps, grid, top_k=40, score_threshold=0.0)
        assert_matches(out, decode_oracle(*maps, grid, 40, 0.0, True))
        assert (out.labels[out.valid] == 0).all()

    def test_empty_and_top_k_beyond_map(self, grid):
        maps = head(np.random.default_rng(6), 1, 8, 10)
        none = decode_centerpoint(*maps, grid, top_k=5, score_threshold=1.1)
        assert not none.valid.any() and (none.labels == -1).all() and none.trimmed().boxes.shape == (0, 9)
        many = decode_centerpoint(*maps, grid, top_k=500, score_threshold=0.0)
        assert many.boxes.shape == (500, 9) and 0 < many.valid.sum() < 80

    def test_noncontiguous_and_torch(self, grid):
        torch = pytest.importorskip("torch")
        maps = head(np.random.default_rng(7), 3, 8, 10)
        ref = decode_centerpoint(*maps, grid, top_k=20)
        strided = [np.asfortranarray(m) for m in maps]
        np.testing.assert_array_equal(decode_centerpoint(*strided, grid, top_k=20).boxes, ref.boxes)
        out = decode_centerpoint(*(torch.from_numpy(m) for m in maps), grid, top_k=20)
        assert isinstance(out.boxes, torch.Tensor)
        np.testing.assert_array_equal(out.boxes.numpy(), ref.boxes)

    def test_invalid(self, grid):
        maps = head(np.random.default_rng(8), 2, 8, 10)
        with pytest.raises(ShapeError, match="heatmap: expected .* whole multiple"):
            decode_centerpoint(*head(np.random.default_rng(8), 2, 7, 10), grid)
        with pytest.raises(ShapeError, match=r"size: expected shape \(3, 8, 10\)"):
            decode_centerpoint(*maps[:3], maps[3][:2], *maps[4:], grid)
        with pytest.raises(ShapeError, match="heatmap: expected dtype float32"):
            decode_centerpoint(maps[0].astype(np.float64), *maps[1:], grid)
        with pytest.raises(ShapeError, match="heatmap: expected a 3-D"):
            decode_centerpoint(maps[0][0], *maps[1:], grid)
        with pytest.raises(ValueError, match="top_k"):
            decode_centerpoint(*maps, grid, top_k=0)


@pytest.mark.gpu
class TestDecodeCenterpointCuda:
    @pytest.mark.parametrize("sigmoid", [True, False])
    def test_matches_numba(self, grid, sigmoid):
        import torch

        maps = head(np.random.default_rng(9), 3, grid.ny, grid.nx)
        maps[0][0, 2, 2] = np.nan
        maps[0][1, 5, 5:7] = 3.0  # a plateau
        ref = decode_centerpoint(*maps, grid, top_k=40, score_threshold=0.05, sigmoid=sigmoid)
        out = decode_centerpoint(*(torch.from_numpy(m).cuda() for m in maps), grid, top_k=40, score_threshold=0.05,
                                 sigmoid=sigmoid)
        np.testing.assert_array_equal(out.labels.cpu().numpy(), ref.labels)
        np.testing.assert_array_equal(out.valid.cpu().numpy(), ref.valid)
        np.testing.assert_allclose(out.scores.cpu().numpy(), ref.scores, rtol=1e-6)
        np.testing.assert_allclose(out.boxes.cpu().numpy(), ref.boxes, rtol=1e-6, atol=1e-6)
