"""Camera models agree with OpenCV, and project/unproject are inverses with a validity mask."""

import cv2
import numpy as np
import pytest

from calib.camera import FisheyeCamera, PinholeCamera, camera_from_dict
from perception.errors import RigError, ShapeError

CAM = PinholeCamera(1600, 900, 1266.4, 1266.4, 816.3, 491.5, (-0.05, 0.01, 0.001, -0.0005, 0.002))


def points_in_front(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(-5, 5, n), rng.uniform(-3, 3, n), rng.uniform(2, 40, n)], axis=1)


class TestPinhole:
    def test_matches_opencv_project_points(self):
        pts = points_in_front(500)
        uv, _ = CAM.project(pts)
        ref, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), CAM.K, np.array(CAM.distortion[:5]))
        np.testing.assert_allclose(uv, ref.reshape(-1, 2), atol=1e-6)

    def test_unproject_inverts_project(self):
        pts = points_in_front(500, seed=1)
        uv, valid = CAM.project(pts)
        rays = CAM.unproject(uv[valid])
        expected = pts[valid] / np.linalg.norm(pts[valid], axis=1, keepdims=True)
        np.testing.assert_allclose(rays, expected, atol=1e-7)

    def test_validity_behind_and_outside(self):
        pts = np.array([[0, 0, 10.0], [0, 0, -10.0], [100, 0, 1.0], [0, 0, 0.0]])
        uv, valid = CAM.project(pts)
        assert valid.tolist() == [True, False, False, False]
        assert np.isnan(uv[1]).all()

    def test_wrong_shape(self):
        with pytest.raises(ShapeError, match="points_cam"):
            CAM.project(np.zeros((4, 2)))

    def test_scaled_camera_matches_resized_image_pixel_centres(self):
        small = CAM.scaled(0.5)
        p = points_in_front(10)
        uv, _ = CAM.project(p)
        uv2, _ = small.project(p)
        np.testing.assert_allclose(uv2, (uv + 0.5) * 0.5 - 0.5, atol=1e-3)  # distortion scales with K


class TestFisheye:
    def test_matches_opencv_fisheye(self):
        cam = FisheyeCamera(1280, 960, 330.0, 330.0, 640.0, 480.0, (0.05, -0.01, 0.002, -0.0003))
        pts = points_in_front(300, seed=2)
        uv, _ = cam.project(pts)
        ref, _ = cv2.fisheye.projectPoints(pts.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), cam.K, np.array(cam.distortion))
        np.testing.assert_allclose(uv, ref.reshape(-1, 2), atol=1e-6)
        rays = cam.unproject(uv)
        np.testing.assert_allclose(rays, pts / np.linalg.norm(pts, axis=1, keepdims=True), atol=1e-7)

    def test_wide_angle_point_beside_the_camera_projects(self):
        cam = FisheyeCamera(1280, 960, 330.0, 330.0, 640.0, 480.0, (0.0, 0.0, 0.0, 0.0), max_fov_deg=200)
        uv, valid = cam.project(np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]))
        assert valid[0] and not valid[1]


def test_camera_from_dict_errors_name_the_key():
    with pytest.raises(RigError, match="fx/fy"):
        camera_from_dict({"width": 10, "height": 10, "fx": -1, "fy": 1, "cx": 5, "cy": 5}, "rig.yaml: sensor 'C': intrinsics")
    with pytest.raises(RigError, match="missing"):
        camera_from_dict({"width": 10}, "x")
