"""tools/bench_kernels.py: the plain-torch baselines of the GPU table compute what the ops compute.

The GPU rows time each CUDA kernel against the same op written in plain torch (``cuda_cases``). A
baseline that computed something else, or less, would make the ratio meaningless, and it would
first run on a lent GPU, where a crash costs scarce device time. So the rows are built here on CPU
tensors (``cuda_cases(x, device="cpu")``: the ops then run their numba versions, which the ``gpu``
tests hold the CUDA kernels to) at the benchmark's own nuScenes-scale inputs, and each baseline's
result is compared with its op's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import bench_kernels  # noqa: E402


@pytest.fixture(scope="module")
def results() -> dict[tuple[str, str], object]:
    x = bench_kernels.make_inputs()
    out = {}
    for case in bench_kernels.cuda_cases(x, device="cpu"):
        value = case.fn()
        out[(case.op, case.impl)] = value.clone() if isinstance(value, torch.Tensor) else value  # out= rows share a buffer
    return out


def as_np(a) -> np.ndarray:
    return a.detach().float().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def test_every_op_has_a_kernel_row_and_a_torch_row(results):
    ops = {op for op, _ in results}
    assert ops == {"image_preprocess", "pillarize", "pillar_scatter", "pillar_scatter_out", "camera_bev_gather",
                   "radar_raster", "centerpoint_decode", "nms_rotated", "nms_circle"}
    assert all((op, impl) in results for op in ops for impl in ("cuda", "torch"))


def test_image_preprocess(results):
    op, base = as_np(results[("image_preprocess", "cuda")]), as_np(results[("image_preprocess", "torch")])
    assert op.shape == base.shape == (6, 3, *bench_kernels.OUT_HW)
    np.testing.assert_allclose(base, op, rtol=0, atol=0.02)  # bilinear in float vs the op's fixed point: < 1 grey level


def test_pillarize(results):
    pillars = results[("pillarize", "cuda")]
    features, num_points = results[("pillarize", "torch")]
    np.testing.assert_array_equal(as_np(num_points), as_np(pillars.num_points))
    np.testing.assert_allclose(as_np(features), as_np(pillars.features), rtol=0, atol=1e-4)


@pytest.mark.parametrize("op", ["pillar_scatter", "pillar_scatter_out"])
def test_pillar_scatter(results, op):
    np.testing.assert_array_equal(as_np(results[(op, "torch")]), as_np(results[(op, "cuda")]))


def test_camera_bev_gather(results):
    op = as_np(results[("camera_bev_gather", "cuda")])
    base = as_np(results[("camera_bev_gather", "torch")]).reshape(op.shape)  # (1, C, Z*ny, nx) -> (C, Z, ny, nx)
    assert np.mean(op != 0) > 0.5  # the rig sees most cells
    np.testing.assert_allclose(base, op, rtol=0, atol=1e-4)


def test_radar_raster(results):
    np.testing.assert_allclose(as_np(results[("radar_raster", "torch")]), as_np(results[("radar_raster", "cuda")].bev),
                               rtol=1e-6, atol=1e-6)


def test_centerpoint_decode(results):
    dec = results[("centerpoint_decode", "cuda")]
    boxes, scores, labels, valid = (as_np(a) for a in results[("centerpoint_decode", "torch")])
    v = as_np(dec.valid).astype(bool)
    n = int(v.sum())
    assert n > 0 and np.array_equal(valid.astype(bool), v)
    np.testing.assert_array_equal(labels[:n], as_np(dec.labels)[:n])
    np.testing.assert_allclose(scores[:n], as_np(dec.scores)[:n], rtol=1e-6)
    np.testing.assert_allclose(boxes[:n], as_np(dec.boxes)[:n], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", ["nms_rotated", "nms_circle"])
def test_nms(results, op):
    keep = as_np(results[(op, "cuda")]).astype(bool)
    assert 0 < keep.sum() < len(keep)
    np.testing.assert_array_equal(as_np(results[(op, "torch")]).astype(bool), keep)
