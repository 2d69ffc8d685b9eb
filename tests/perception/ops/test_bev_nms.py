"""nms_bev: numba against the numpy oracle (rotated and circle), hand-computed IoUs, ties, per-class
thresholds, invalid rows, errors; CUDA against numba."""

from __future__ import annotations

import numpy as np
import pytest

from perception.errors import ShapeError
from perception.ops import nms_bev
from tests.perception.ops.oracles import nms_oracle


def random_boxes(rng, m, n_cls=3, extent=12.0):
    boxes = np.zeros((m, 9), np.float32)
    boxes[:, :2] = rng.uniform(-extent, extent, (m, 2))
    boxes[:, 3:5] = rng.uniform(0.5, 5.0, (m, 2))
    boxes[:, 5] = 1.5
    boxes[:, 6] = rng.uniform(-np.pi, np.pi, m)
    scores = rng.uniform(0, 1, m).astype(np.float32)
    scores[rng.choice(m, m // 5, replace=False)] = 0.5  # ties: resolved by the row order
    return boxes, scores, rng.integers(0, n_cls, m).astype(np.int32)


class TestNmsBev:
    def test_smoke(self):
        boxes, scores, labels = random_boxes(np.random.default_rng(0), 20)
        keep = nms_bev(boxes, scores, labels)
        assert keep.shape == (20,) and keep.dtype == np.bool_ and keep.any()

    @pytest.mark.parametrize("seed", [0, 1, 2])
    @pytest.mark.parametrize("method, thr", [("rotated", 0.1), ("rotated", 0.5), ("circle", 1.5)])
    def test_matches_oracle(self, seed, method, thr):
        rng = np.random.default_rng(seed)
        boxes, scores, labels = random_boxes(rng, int(rng.integers(50, 250)))
        valid = rng.uniform(size=len(boxes)) > 0.1
        keep = nms_bev(boxes, scores, labels, method=method, threshold=thr, valid=valid)
        np.testing.assert_array_equal(keep, nms_oracle(boxes, scores, labels, valid, np.float32(thr), method == "circle"))
        assert 0 < keep.sum() < valid.sum()

    def test_per_class_threshold(self):
        boxes, scores, labels = random_boxes(np.random.default_rng(3), 150)
        labels[:5] = 7  # outside the per-class list: dropped
        thr = np.array([0.05, 0.3, 0.9], np.float32)
        keep = nms_bev(boxes, scores, labels, threshold=thr)
        np.testing.assert_array_equal(keep, nms_oracle(boxes, scores, labels, np.ones(150, bool), thr, False))
        assert not keep[:5].any()

    def test_hand_computed(self):
        # IoU of two 2x2 squares offset by (1, 1) is 1/7; a square and itself rotated by 45 deg: 1/sqrt(2).
        b = np.zeros((4, 7), np.float32)
        b[:, 3:5] = 2.0
        b[1, :2] = 1.0
        b[2, 6] = np.pi / 4
        b[3, :2] = 2.0  # touches box 0 at a corner: IoU 0; IoU with box 1 is 1/7
        scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
        labels = np.zeros(4, np.int32)
        np.testing.assert_array_equal(nms_bev(b, scores, labels, threshold=0.15), [1, 1, 0, 1])  # 0 kills 2
        np.testing.assert_array_equal(nms_bev(b, scores, labels, threshold=0.75), [1, 1, 1, 1])
        np.testing.assert_array_equal(nms_bev(b, scores, labels, threshold=0.7), [1, 1, 0, 1])  # 1/sqrt(2) > 0.7
        np.testing.assert_array_equal(nms_bev(b, scores, labels, threshold=0.14), [1, 0, 0, 1])  # 1/7 > 0.14
        # Circle: distances from box 0: sqrt(2), 0, sqrt(8)
        np.testing.assert_array_equal(nms_bev(b, scores, labels, method="circle", threshold=1.5), [1, 0, 0, 1])
        np.testing.assert_array_equal(nms_bev(b, scores, labels, method="circle", threshold=1.4), [1, 1, 0, 1])

    def test_classes_do_not_suppress_each_other(self):
        b = np.zeros((2, 7), np.float32)
        b[:, 3:5] = 2.0
        keep = nms_bev(b, np.array([0.9, 0.8], np.float32), np.array([0, 1], np.int32), threshold=0.1)
        np.testing.assert_array_equal(keep, [1, 1])

    def test_ties_keep_the_first_row(self):
        b = np.zeros((3, 7), np.float32)
        b[:, 3:5] = 2.0
        keep = nms_bev(b, np.full(3, 0.5, np.float32), np.zeros(3, np.int32))
        np.testing.assert_array_equal(keep, [1, 0, 0])

    def test_invalid_and_nonfinite_rows(self):
        boxes, scores, labels = random_boxes(np.random.default_rng(4), 80)
        boxes[3, 0], boxes[4, 6], scores[5] = np.nan, np.inf, np.nan
        valid = np.ones(80, bool)
        valid[6:10] = False
        keep = nms_bev(boxes, scores, labels, valid=valid)
        assert not keep[3:10].any()
        np.testing.assert_array_equal(keep, nms_oracle(boxes, scores, labels, valid, np.float32(0.2), False))

    def test_empty_one_and_degenerate(self):
        assert nms_bev(np.zeros((0, 7), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32)).shape == (0,)
        one = nms_bev(np.ones((1, 7), np.float32), np.ones(1, np.float32), np.zeros(1, np.int32))
        np.testing.assert_array_equal(one, [True])
        flat = np.zeros((2, 7), np.float32)  # zero-area boxes: IoU 0, both kept
        np.testing.assert_array_equal(nms_bev(flat, np.ones(2, np.float32), np.zeros(2, np.int32)), [True, True])

    def test_noncontiguous_and_torch(self):
        torch = pytest.importorskip("torch")
        boxes, scores, labels = random_boxes(np.random.default_rng(5), 100)
        ref = nms_bev(boxes[:, :7].copy(), scores, labels)
        np.testing.assert_array_equal(nms_bev(boxes[:, :7], scores, labels), ref)  # a column slice
        out = nms_bev(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(labels))
        assert isinstance(out, torch.Tensor)
        np.testing.assert_array_equal(out.numpy(), ref)

    @pytest.mark.parametrize("args, kwargs, exc, match", [
        ((np.zeros((3, 6), np.float32), np.zeros(3, np.float32), np.zeros(3, np.int32)), {}, ShapeError, "boxes: expected .* 7"),
        ((np.zeros((3, 7), np.float64), np.zeros(3, np.float32), np.zeros(3, np.int32)), {}, ShapeError, "boxes: expected dtype"),
        ((np.zeros((3, 7), np.float32), np.zeros(4, np.float32), np.zeros(3, np.int32)), {}, ShapeError, r"scores: expected shape \(3,\)"),
        ((np.zeros((3, 7), np.float32), np.zeros(3, np.float32), np.zeros(3, np.int64)), {}, ShapeError, "labels: expected dtype int32"),
        ((np.zeros((3, 7), np.float32), np.zeros(3, np.float32), np.zeros(3, np.int32)), {"valid": np.ones(3)}, ShapeError,
         "valid: expected dtype bool"),
        ((np.zeros((3, 7), np.float32), np.zeros(3, np.float32), np.zeros(3, np.int32)), {"method": "soft"}, ValueError, "method"),
        ((np.zeros((3, 7), np.float32), np.zeros(3, np.float32), np.zeros(3, np.int32)), {"threshold": 1.5}, ValueError,
         "threshold"),
    ])
    def test_invalid(self, args, kwargs, exc, match):
        with pytest.raises(exc, match=match):
            nms_bev(*args, **kwargs)


@pytest.mark.gpu
class TestNmsBevCuda:
    @pytest.mark.parametrize("method, thr", [("rotated", 0.2), ("circle", 1.0)])
    def test_matches_numba(self, method, thr):
        import torch

        boxes, scores, labels = random_boxes(np.random.default_rng(6), 3000, n_cls=4, extent=30.0)  # 47 mask words
        valid = np.random.default_rng(7).uniform(size=3000) > 0.05
        boxes[10, 0] = np.nan
        ref = nms_bev(boxes, scores, labels, method=method, threshold=thr, valid=valid)
        out = nms_bev(*(torch.from_numpy(a).cuda() for a in (boxes, scores, labels)), method=method, threshold=thr,
                      valid=torch.from_numpy(valid).cuda())
        np.testing.assert_array_equal(out.cpu().numpy(), ref)

    def test_per_class_and_empty(self):
        import torch

        boxes, scores, labels = random_boxes(np.random.default_rng(8), 500)
        thr = [0.1, 0.3, 0.5]
        ref = nms_bev(boxes, scores, labels, threshold=thr)
        out = nms_bev(*(torch.from_numpy(a).cuda() for a in (boxes, scores, labels)), threshold=thr)
        np.testing.assert_array_equal(out.cpu().numpy(), ref)
        empty = nms_bev(torch.zeros((0, 7), device="cuda"), torch.zeros(0, device="cuda"),
                        torch.zeros(0, dtype=torch.int32, device="cuda"))
        assert empty.shape == (0,)
