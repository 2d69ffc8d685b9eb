"""The CUDA kernels run on the host (tests/cuda_host) inside the ops' own CUDA paths, against numba.

On a machine without a GPU this is as close as a test gets to running the kernels: each op is
called with CPU torch tensors, ``_common.is_cuda`` answers True for them, and ``_cuda.launch``
executes the kernel's own source (the text NVRTC compiles) thread by thread on the CPU, with
``__syncthreads``, warp shuffles, votes and atomics. The inputs and tolerances are those of the
``gpu`` tests of each op; those still run on a real GPU (tools/gpu_check.sh), which alone can show
timing, the device's math library and races a host run cannot provoke.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception.ops import (
    ImageTransform,
    _common,
    _cuda,
    build_camera_bev_lut,
    decode_centerpoint,
    gather_camera_bev,
    nms_bev,
    pillarize,
    preprocess_images,
    rasterize_radar,
    scatter_pillars,
)
from tests import cuda_host
from tests.perception.ops.conftest import random_cloud
from tests.perception.ops.test_bev_nms import random_boxes
from tests.perception.ops.test_camera_bev import ring_rig
from tests.perception.ops.test_centerpoint_decode import head
from tests.perception.ops.test_image_preprocess import images
from tests.perception.ops.test_pillar_scatter import random_pillars
from tests.perception.ops.test_radar_raster import radar_points

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(cuda_host.compiler() is None, reason="no g++ to build the kernels for the host")

_LAUNCHED: dict[tuple[str, str], int] = {}


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cuda_host")


@pytest.fixture
def on_host(monkeypatch, build_dir):
    """Route every op given torch tensors through its CUDA path, kernels run on the host."""
    launcher = cuda_host.HostLauncher(build_dir)
    monkeypatch.setattr(_common, "is_cuda", _common.is_torch)
    monkeypatch.setattr(_cuda, "launch", launcher)
    monkeypatch.setattr(_cuda, "device_constant", lambda arr, like: torch.from_numpy(np.array(arr, copy=True)))
    yield launcher
    for key, n in launcher.launched.items():
        _LAUNCHED[key] = _LAUNCHED.get(key, 0) + n


def t(a: np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(a))


class TestImagePreprocess:
    @pytest.mark.parametrize("dtype", ["float32", "float16"])
    def test_matches_numba(self, on_host, dtype):
        imgs = images(np.random.default_rng(10), 3, 90, 160)
        ts = [ImageTransform.fit((90, 160), (32, 64), s) for s in (0.48, 0.5, 0.9)]
        ref = preprocess_images(imgs, ts, (32, 64), dtype=dtype).astype(np.float32)
        chw = t(imgs).permute(0, 3, 1, 2).contiguous()
        for inp in (t(imgs), chw.permute(0, 2, 3, 1)):  # contiguous and strided
            out = preprocess_images(inp, ts, (32, 64), dtype=dtype)
            assert out.dtype == getattr(torch, dtype)
            np.testing.assert_allclose(out.float().numpy(), ref, rtol=1e-3, atol=1e-5)


class TestPillarize:
    @pytest.mark.parametrize("seed", [0, 1])
    def test_matches_numba(self, on_host, grid, seed):
        pts = random_cloud(np.random.default_rng(seed), grid, 5000)
        cpu = pillarize(pts, grid, max_points_per_pillar=8, max_pillars=60, pad=True)
        dev = pillarize(t(pts), grid, max_points_per_pillar=8, max_pillars=60)
        np.testing.assert_array_equal(dev.counts.numpy(), cpu.counts)
        np.testing.assert_array_equal(dev.coords.numpy(), cpu.coords)
        np.testing.assert_array_equal(dev.num_points.numpy(), cpu.num_points)
        np.testing.assert_allclose(dev.features.numpy(), cpu.features, rtol=0, atol=1e-6)

    def test_edges(self, on_host, grid):
        pts = t(random_cloud(np.random.default_rng(2), grid, 3000))
        a, b = pillarize(pts, grid, max_pillars=100), pillarize(pts, grid, max_pillars=100)
        assert torch.equal(a.features, b.features) and torch.equal(a.coords, b.coords)
        empty = pillarize(torch.zeros((0, 5)), grid, max_pillars=7)
        assert empty.features.shape == (7, 32, 10) and (empty.coords == -1).all() and not empty.counts.any()


class TestPillarizeEdges:
    """The numba tests' edge cases, through the kernels."""

    @staticmethod
    def same(dev, cpu):
        n = cpu.features.shape[0]
        np.testing.assert_array_equal(dev.counts.numpy(), cpu.counts)
        np.testing.assert_array_equal(dev.coords.numpy()[:n], cpu.coords)
        np.testing.assert_array_equal(dev.num_points.numpy()[:n], cpu.num_points)
        np.testing.assert_allclose(dev.features.numpy()[:n], cpu.features, rtol=0, atol=1e-6)
        assert (dev.coords.numpy()[n:] == -1).all() and not dev.num_points.numpy()[n:].any()

    @pytest.mark.parametrize("f", [3, 4, 7])
    def test_both_caps_overflow(self, on_host, grid, f):
        pts = random_cloud(np.random.default_rng(3), grid, 2000, f)
        cpu = pillarize(pts, grid, max_points_per_pillar=4, max_pillars=20)
        s = cpu.stats()
        assert s.dropped_overflow_pillars > 0 and s.dropped_overflow_points > 0 and s.dropped_nonfinite > 0
        self.same(pillarize(t(pts), grid, max_points_per_pillar=4, max_pillars=20), cpu)

    def test_unpadded_is_trimmed(self, on_host, grid):
        pts = random_cloud(np.random.default_rng(5), grid, 800)
        cpu = pillarize(pts, grid, max_points_per_pillar=16, max_pillars=500)
        dev = pillarize(t(pts), grid, max_points_per_pillar=16, max_pillars=500, pad=False)
        assert dev.features.shape[0] == cpu.features.shape[0] < 500
        self.same(dev, cpu)

    def test_all_outside_and_all_nonfinite(self, on_host, grid):
        outside = np.full((50, 4), 100.0, np.float32)
        bad = np.zeros((30, 4), np.float32)
        bad[:10, 0], bad[10:20, 2], bad[20:, 3] = np.nan, np.inf, -np.inf
        for pts in (outside, bad):
            self.same(pillarize(t(pts), grid, max_pillars=9), pillarize(pts, grid, max_pillars=9))

    def test_noncontiguous(self, on_host, grid):
        pts = random_cloud(np.random.default_rng(6), grid, 600, 6)
        cpu = pillarize(np.ascontiguousarray(pts[:, :4]), grid, max_pillars=300)
        self.same(pillarize(torch.from_numpy(pts)[:, :4], grid, max_pillars=300), cpu)


class TestPillarScatter:
    @pytest.mark.parametrize("dtype", [np.float32, np.float16])
    def test_matches_numba(self, on_host, grid, dtype):
        feats, coords = random_pillars(np.random.default_rng(4), grid, 200, 9, dtype)
        coords[::7] = -1
        coords[1] = coords[0]  # a duplicate: the later row wins on both devices
        ref = scatter_pillars(feats, coords, grid)
        out = scatter_pillars(t(feats), t(coords), grid)
        np.testing.assert_array_equal(out.numpy(), ref)
        buf = torch.full_like(out, 3.0)
        assert scatter_pillars(t(feats), t(coords), grid, out=buf) is buf
        np.testing.assert_array_equal(buf.numpy(), ref)


class TestCameraBevGather:
    def test_matches_numba(self, on_host, grid):
        poses, cams = ring_rig(6)
        lut = build_camera_bev_lut(poses, cams, grid, [-1.0, 0.0, 1.0])
        feats = np.random.default_rng(3).normal(size=(6, 16, 12, 20)).astype(np.float32)
        ref = gather_camera_bev(feats, lut)
        out = gather_camera_bev(t(feats), lut.to("cpu"))
        np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-6)


class TestRadarRaster:
    def test_matches_numba(self, on_host, grid):
        pts = radar_points(np.random.default_rng(4), grid, 5000)
        ref = rasterize_radar(pts, grid)
        out = rasterize_radar(t(pts), grid)
        np.testing.assert_array_equal(out.counts.numpy(), ref.counts)
        np.testing.assert_allclose(out.bev.numpy(), ref.bev, rtol=1e-6, atol=1e-7)


class TestOpEdges:
    def test_image_one_camera_fp16(self, on_host):
        imgs = images(np.random.default_rng(12), 1, 45, 80)
        tr = ImageTransform.fit((45, 80), (20, 40), 0.6)
        ref = preprocess_images(imgs, tr, (20, 40), dtype="float16").astype(np.float32)
        np.testing.assert_allclose(preprocess_images(t(imgs), tr, (20, 40), dtype="float16").float().numpy(), ref,
                                   rtol=1e-3, atol=1e-5)

    def test_gather_one_camera(self, on_host, grid):
        poses, cams = ring_rig(1)
        lut = build_camera_bev_lut(poses, cams, grid, [0.0, 1.0], bev_stride=2)
        feats = np.random.default_rng(13).normal(size=(1, 8, 12, 20)).astype(np.float32)
        np.testing.assert_allclose(gather_camera_bev(t(feats), lut.to("cpu")).numpy(), gather_camera_bev(feats, lut),
                                   rtol=0, atol=1e-6)

    @pytest.mark.parametrize("stride", [1, 4])
    def test_radar_strides_and_nothing_inside(self, on_host, grid, stride):
        pts = radar_points(np.random.default_rng(14), grid, 800)
        for p in (pts, pts[:0], np.full((20, 7), 500.0, np.float32)):
            ref = rasterize_radar(p, grid, bev_stride=stride)
            out = rasterize_radar(t(p), grid, bev_stride=stride)
            np.testing.assert_array_equal(out.counts.numpy(), ref.counts)
            np.testing.assert_allclose(out.bev.numpy(), ref.bev, rtol=1e-6, atol=1e-7)

    def test_decode_beyond_the_map_and_nothing_above_threshold(self, on_host, grid):
        maps = head(np.random.default_rng(15), 2, grid.ny // 2, grid.nx // 2, velocity=False)
        for k, thr in ((500, 0.0), (5, 1.1)):
            ref = decode_centerpoint(*maps, grid, top_k=k, score_threshold=thr)
            out = decode_centerpoint(*(None if m is None else t(m) for m in maps), grid, top_k=k, score_threshold=thr)
            np.testing.assert_array_equal(out.labels.numpy(), ref.labels)
            np.testing.assert_array_equal(out.valid.numpy(), ref.valid)
            np.testing.assert_allclose(out.boxes.numpy(), ref.boxes, rtol=1e-6, atol=1e-6)


class TestCenterpointDecode:
    @pytest.mark.parametrize("sigmoid", [True, False])
    def test_matches_numba(self, on_host, grid, sigmoid):
        maps = head(np.random.default_rng(9), 3, grid.ny, grid.nx)
        maps[0][0, 2, 2] = np.nan
        maps[0][1, 5, 5:7] = 3.0  # a plateau
        maps[0][2, 3, 3], maps[0][2, 9, 9] = 0.0, -0.0  # equal values: ties go by index
        ref = decode_centerpoint(*maps, grid, top_k=40, score_threshold=0.05, sigmoid=sigmoid)
        out = decode_centerpoint(*(t(m) for m in maps), grid, top_k=40, score_threshold=0.05, sigmoid=sigmoid)
        np.testing.assert_array_equal(out.labels.numpy(), ref.labels)
        np.testing.assert_array_equal(out.valid.numpy(), ref.valid)
        np.testing.assert_allclose(out.scores.numpy(), ref.scores, rtol=1e-6)
        np.testing.assert_allclose(out.boxes.numpy(), ref.boxes, rtol=1e-6, atol=1e-6)


class TestNmsBev:
    @pytest.mark.parametrize("method, thr", [("rotated", 0.2), ("circle", 1.0)])
    def test_matches_numba(self, on_host, method, thr):
        boxes, scores, labels = random_boxes(np.random.default_rng(6), 700, n_cls=4, extent=15.0)  # 11 mask words
        valid = np.random.default_rng(7).uniform(size=700) > 0.05
        boxes[10, 0] = np.nan
        ref = nms_bev(boxes, scores, labels, method=method, threshold=thr, valid=valid)
        out = nms_bev(*(t(a) for a in (boxes, scores, labels)), method=method, threshold=thr, valid=t(valid))
        assert 0 < ref.sum() < len(ref)
        np.testing.assert_array_equal(out.numpy(), ref)

    def test_per_class_and_empty(self, on_host):
        boxes, scores, labels = random_boxes(np.random.default_rng(8), 300)
        thr = [0.1, 0.3, 0.5]
        ref = nms_bev(boxes, scores, labels, threshold=thr)
        out = nms_bev(*(t(a) for a in (boxes, scores, labels)), threshold=thr)
        np.testing.assert_array_equal(out.numpy(), ref)
        empty = nms_bev(torch.zeros((0, 7)), torch.zeros(0), torch.zeros(0, dtype=torch.int32))
        assert empty.shape == (0,)


def test_every_kernel_ran():
    # Runs after the classes above (file order): every kernel of cuda_kernels/ was executed by one.
    if not _LAUNCHED:
        pytest.skip("run with the tests above")
    every = {(m, k) for m in sorted(p.stem for p in _cuda.KERNEL_DIR.glob("*.cu")) for k in cuda_host.kernels(m)}
    assert every - set(_LAUNCHED) == set()
