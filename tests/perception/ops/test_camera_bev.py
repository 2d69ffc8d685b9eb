"""build_camera_bev_lut + gather_camera_bev: against the numpy oracle (projection with calib, bilinear,
average), a hand-checkable ramp, one camera, the feature-camera map, errors; CUDA against numba."""

from __future__ import annotations

import numpy as np
import pytest

from calib import se3
from calib.camera import FisheyeCamera, PinholeCamera
from perception.errors import ShapeError
from perception.ops import ImageTransform, build_camera_bev_lut, feature_camera, gather_camera_bev
from tests.perception.ops.oracles import camera_bev_oracle

# Optical frame (x right, y down, z forward) of a camera looking along ego +x.
EGO_R_FORWARD_CAM = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def ring_rig(n, hf=12, wf=20, fisheye_last=False):
    """n cameras around the vehicle at 1.5 m height, yaw 360/n apart, overlapping fields of view."""
    poses, cams = [], []
    for k in range(n):
        R = se3.rotation_z(2 * np.pi * k / n)[:3, :3] @ EGO_R_FORWARD_CAM
        poses.append(se3.from_rotation_translation(R, [0.5 * np.cos(2 * np.pi * k / n), 0.5 * np.sin(2 * np.pi * k / n), 1.5]))
        if fisheye_last and k == n - 1:
            cams.append(FisheyeCamera(wf, hf, 3.0, 3.0, (wf - 1) / 2, (hf - 1) / 2, (0.05, 0.01, 0.0, 0.0)))
        else:
            cams.append(PinholeCamera(wf, hf, 3.0, 3.0, (wf - 1) / 2 + 0.3, (hf - 1) / 2 - 0.2, (-0.01, 0.001, 0.0, 0.0, 0.0)))
    return np.stack(poses), cams


class TestCameraBev:
    def test_smoke(self, grid):
        poses, cams = ring_rig(3)
        lut = build_camera_bev_lut(poses, cams, grid, [-1.0, 0.0, 1.0], bev_stride=2)
        assert lut.shape == (3, grid.ny // 2, grid.nx // 2) and lut.feature_hw == (12, 20)
        s, k = lut.camera.shape
        assert s == 3 * (grid.ny // 2) * (grid.nx // 2) and k >= 2  # the cameras overlap
        assert lut.pixel.shape == (s, k, 2) and lut.weight.shape == (s, k, 4) and lut.inv_count.shape == (s,)
        np.testing.assert_allclose(lut.weight.sum(axis=2)[lut.camera >= 0], 1.0, atol=1e-6)
        out = gather_camera_bev(np.ones((3, 5, 12, 20), np.float32), lut)
        assert out.shape == (5, 3, grid.ny // 2, grid.nx // 2) and out.dtype == np.float32
        assert np.all((out == 0) | np.isclose(out, 1, rtol=0, atol=1e-6))  # an average of ones, or unseen
        assert 0.5 < lut.coverage < 1.0

    @pytest.mark.parametrize("seed", [0, 1])
    @pytest.mark.parametrize("n_cams, stride", [(6, 1), (4, 2), (1, 1)])
    def test_matches_oracle(self, grid, seed, n_cams, stride):
        poses, cams = ring_rig(n_cams, fisheye_last=n_cams == 4)
        heights = [-1.5, -0.5, 0.5, 1.5]
        feats = np.random.default_rng(seed).normal(size=(n_cams, 7, 12, 20)).astype(np.float32)
        lut = build_camera_bev_lut(poses, cams, grid, heights, bev_stride=stride)
        out = gather_camera_bev(feats, lut)
        np.testing.assert_allclose(out, camera_bev_oracle(feats, poses, cams, grid, heights, stride), rtol=0, atol=1e-5)

    def test_ramp_reproduces_the_projection(self, grid):
        poses, cams = ring_rig(1)
        cam = cams[0]
        ramp = np.stack(np.meshgrid(np.arange(20), np.arange(12), indexing="xy"))[::-1].astype(np.float32)  # (v, u)
        out = gather_camera_bev(ramp[None][:, [1, 0]], build_camera_bev_lut(poses, cams, grid, [0.0]))  # channels u, v
        x = grid.x_min + (np.arange(grid.nx) + 0.5) * grid.cell_m
        y = grid.y_min + (np.arange(grid.ny) + 0.5) * grid.cell_m
        X, Y = np.meshgrid(x, y)
        pts = np.stack([X.ravel(), Y.ravel(), np.zeros(X.size)], axis=1)
        uv, seen = cam.project(se3.transform_points(se3.invert(poses[0]), pts), min_depth=0.1)
        inner = seen & (uv[:, 0] >= 0) & (uv[:, 0] <= 19) & (uv[:, 1] >= 0) & (uv[:, 1] <= 11)
        assert inner.sum() > 20
        np.testing.assert_allclose(out[0, 0].ravel()[inner], uv[inner, 0], atol=1e-4)  # bilinear of a ramp is exact
        np.testing.assert_allclose(out[1, 0].ravel()[inner], uv[inner, 1], atol=1e-4)
        assert not out[:, 0].reshape(2, -1)[:, ~seen].any()  # behind the camera or off the image: 0

    def test_feature_camera_composes_the_preprocess(self):
        cam = PinholeCamera(1600, 900, 1266.4, 1266.4, 816.3, 491.5)
        t = ImageTransform.fit((900, 1600), (256, 704), 0.48)
        pts = np.array([[2.0, -1.0, 20.0], [-5.0, 0.5, 12.0], [0.0, 0.0, 5.0]])
        uv, _ = cam.project(pts)
        for stride in (1, 8):
            fc = feature_camera(cam, t, (256, 704), stride)
            assert (fc.width, fc.height) == (704 // stride, 256 // stride)
            expect = ((uv + 0.5) * [768 / 1600, 432 / 900] - [32, 176]) / stride - 0.5  # resize, crop, stride
            np.testing.assert_allclose(fc.project(pts)[0], expect, atol=1e-9)

    def test_nothing_seen(self, grid):
        poses, cams = ring_rig(2)
        poses[:, 2, 3] = 100.0  # cameras 100 m up looking at the horizon: the grid is below every view
        lut = build_camera_bev_lut(poses, cams, grid, [0.0])
        assert lut.camera.shape[1] == 1 and (lut.camera == -1).all() and lut.coverage == 0.0
        assert not gather_camera_bev(np.ones((2, 3, 12, 20), np.float32), lut).any()

    def test_noncontiguous_and_torch(self, grid):
        torch = pytest.importorskip("torch")
        poses, cams = ring_rig(3)
        lut = build_camera_bev_lut(poses, cams, grid, [0.0, 1.0], bev_stride=2)
        feats = np.random.default_rng(2).normal(size=(3, 12, 20, 4)).astype(np.float32).transpose(0, 3, 1, 2)
        ref = gather_camera_bev(np.ascontiguousarray(feats), lut)
        np.testing.assert_array_equal(gather_camera_bev(feats, lut), ref)
        out = gather_camera_bev(torch.from_numpy(feats), lut.to("cpu"))
        assert isinstance(out, torch.Tensor)
        np.testing.assert_array_equal(out.numpy(), ref)

    def test_invalid(self, grid):
        poses, cams = ring_rig(2)
        lut = build_camera_bev_lut(poses, cams, grid, [0.0])
        with pytest.raises(ShapeError, match=r"features: expected shape \(2, \*, 12, 20\)"):
            gather_camera_bev(np.zeros((3, 4, 12, 20), np.float32), lut)
        with pytest.raises(ShapeError, match="features: expected dtype float32"):
            gather_camera_bev(np.zeros((2, 4, 12, 20), np.float64), lut)
        with pytest.raises(ShapeError, match="ego_T_cameras"):
            build_camera_bev_lut(poses[:1], cams, grid, [0.0])
        with pytest.raises(ShapeError, match="share one size"):
            build_camera_bev_lut(poses, [cams[0], PinholeCamera(10, 10, 5, 5, 5, 5)], grid, [0.0])
        with pytest.raises(ValueError, match="bev_stride"):
            build_camera_bev_lut(poses, cams, grid, [0.0], bev_stride=3)


@pytest.mark.gpu
class TestCameraBevCuda:
    def test_matches_numba(self, grid):
        import torch

        poses, cams = ring_rig(6)
        lut = build_camera_bev_lut(poses, cams, grid, [-1.0, 0.0, 1.0])
        feats = np.random.default_rng(3).normal(size=(6, 16, 12, 20)).astype(np.float32)
        ref = gather_camera_bev(feats, lut)
        out = gather_camera_bev(torch.from_numpy(feats).cuda(), lut.to("cuda"))
        np.testing.assert_allclose(out.cpu().numpy(), ref, rtol=0, atol=1e-6)


class TestCameraBevGrid:
    """camera_bev_grid (the network's per-camera form, built in one kernel) equals the slot table
    converted by perception.model.data.lut_to_grid: same cameras see the same samples at the same
    normalized coordinates, for distorted pinholes and a fisheye."""

    @pytest.mark.parametrize("n_cams, stride, fisheye", [(6, 1, False), (4, 2, True), (1, 1, False)])
    def test_equals_the_slot_table(self, grid, n_cams, stride, fisheye):
        from perception.model.data import lut_to_grid
        from perception.ops.camera_bev_lut import camera_bev_grid

        poses, cams = ring_rig(n_cams, fisheye_last=fisheye)
        heights = [-1.5, -0.5, 0.5, 1.5]
        want_uv, want_valid = lut_to_grid(build_camera_bev_lut(poses, cams, grid, heights, bev_stride=stride))
        uv, valid = camera_bev_grid(poses, cams, grid, heights, bev_stride=stride)
        assert uv.shape == want_uv.shape and valid.shape == want_valid.shape
        assert uv.dtype == np.float32 and valid.dtype == np.float32
        assert want_valid.sum() > 50
        np.testing.assert_array_equal(valid, want_valid)
        np.testing.assert_allclose(uv, want_uv, rtol=0, atol=2e-6)
        assert np.all(uv[valid == 0] == -2.0) and np.abs(uv[valid > 0]).max() <= 1.0  # spec.OUTSIDE_LUT where unseen

    def test_a_moved_camera_sees_other_samples(self, grid):
        from perception.ops.camera_bev_lut import camera_bev_grid

        poses, cams = ring_rig(1)
        uv0, _ = camera_bev_grid(poses, cams, grid, [0.0])
        moved = poses.copy()
        moved[0, 0, 3] += 2.0  # 2 m forward
        uv1, _ = camera_bev_grid(moved, cams, grid, [0.0])
        assert not np.allclose(uv0, uv1)

    def test_errors(self, grid):
        from perception.ops.camera_bev_lut import camera_bev_grid

        poses, cams = ring_rig(2)
        with pytest.raises(ShapeError):
            camera_bev_grid(poses[:1], cams, grid, [0.0])
        with pytest.raises(ShapeError):
            camera_bev_grid(poses, cams, grid, [])
