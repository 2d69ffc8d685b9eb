"""SE(3) helpers: a_T_b composition, inversion, quaternions, interpolation."""

import numpy as np
import pytest

from calib import se3
from perception.errors import ShapeError


def random_pose(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    return se3.from_rotation_translation(q / np.linalg.norm(q), rng.normal(size=3) * 10)


class TestComposeInvert:
    def test_inverse_composes_to_identity(self):
        rng = np.random.default_rng(0)
        for _ in range(20):
            T = random_pose(rng)
            np.testing.assert_allclose(se3.compose(T, se3.invert(T)), np.eye(4), atol=1e-12)
            np.testing.assert_allclose(se3.invert(T), np.linalg.inv(T), atol=1e-12)

    def test_frames_chain_by_name(self):
        # world_T_ego @ ego_T_lidar maps a lidar point into the world
        world_T_ego = se3.from_rotation_translation(se3.rotation_z(np.pi / 2), [10, 0, 0])
        ego_T_lidar = se3.from_rotation_translation(np.eye(3), [1, 0, 2])
        p_lidar = np.array([[1.0, 0.0, 0.0]])
        p_world = se3.transform_points(se3.compose(world_T_ego, ego_T_lidar), p_lidar)
        # lidar point at ego (2, 0, 2); ego rotated 90 deg left: world (10, 2, 2)
        np.testing.assert_allclose(p_world, [[10.0, 2.0, 2.0]], atol=1e-12)

    def test_transform_points_keeps_extra_columns_and_dtype(self):
        pts = np.array([[1, 2, 3, 0.5], [4, 5, 6, 0.25]], np.float32)
        out = se3.transform_points(se3.from_rotation_translation(np.eye(3), [1, 1, 1]), pts)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out[:, 3], pts[:, 3])
        np.testing.assert_allclose(out[:, :3], pts[:, :3] + 1)

    def test_bad_shapes_raise_naming_the_argument(self):
        with pytest.raises(ShapeError, match="a_T_b"):
            se3.invert(np.eye(3))
        with pytest.raises(ShapeError, match="points_b"):
            se3.transform_points(np.eye(4), np.zeros((5, 2)))


class TestQuaternion:
    def test_round_trip_including_near_180_degrees(self):
        rng = np.random.default_rng(1)
        qs = [rng.normal(size=4) for _ in range(50)] + [np.array([0.0, 1, 0, 0]), np.array([1e-9, 0, 0, 1])]
        for q in qs:
            q = q / np.linalg.norm(q)
            q = -q if q[0] < 0 else q
            R = se3.quat_to_matrix(q)
            np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
            q2 = se3.matrix_to_quat(R)
            # q and -q are the same rotation; w >= 0 fixes the sign except at w == 0
            assert min(np.abs(q2 - q).max(), np.abs(q2 + q).max()) < 1e-9

    def test_known_rotation(self):
        # 90 degrees about z: (w, x, y, z) = (cos 45, 0, 0, sin 45)
        q = [np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)]
        np.testing.assert_allclose(se3.quat_to_matrix(q), se3.rotation_z(np.pi / 2), atol=1e-12)


class TestInterpolate:
    def test_midpoint_of_a_turn(self):
        T0 = np.eye(4)
        T1 = se3.from_rotation_translation(se3.rotation_z(1.0), [4, 2, 0])
        mid = se3.interpolate(T0, T1, 0.5)
        assert se3.yaw_of(mid) == pytest.approx(0.5)
        np.testing.assert_allclose(mid[:3, 3], [2, 1, 0])

    def test_endpoints_and_vector_alpha(self):
        rng = np.random.default_rng(2)
        T0, T1 = random_pose(rng), random_pose(rng)
        out = se3.interpolate(T0, T1, np.array([0.0, 1.0]))
        np.testing.assert_allclose(out[0], T0, atol=1e-9)
        np.testing.assert_allclose(out[1], T1, atol=1e-9)

    def test_is_rigid(self):
        assert se3.is_rigid(np.eye(4))
        bad = np.eye(4)
        bad[0, 0] = 2
        assert not se3.is_rigid(bad)
        mirror = np.diag([1.0, 1.0, -1.0, 1.0])
        assert not se3.is_rigid(mirror)
