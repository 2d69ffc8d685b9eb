"""Box geometry: corner order, points in boxes (hand-made cases and the devkit's rule as an oracle), conversions."""

from __future__ import annotations

import numpy as np
import pytest

from calib import se3
from perception.boxes import (
    box_corners,
    count_points_in_boxes,
    points_in_boxes,
    transform_boxes,
    transform_detections,
    wlh_to_lwh,
    yaw_from_quaternion,
)
from perception.errors import ShapeError
from perception.types import Detections


def _devkit_points_in_box(corners: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The nuScenes devkit's ``points_in_box`` rule, on one box's (8, 3) corners: an independent oracle
    that also depends on the corner order (0 front-left-top, 1 front-right-top, 3 front-left-bottom,
    4 rear-left-top)."""
    p1, p_x, p_y, p_z = corners[0], corners[4], corners[1], corners[3]
    i, j, k = p_x - p1, p_y - p1, p_z - p1
    v = points - p1
    iv, jv, kv = v @ i, v @ j, v @ k
    return (0 <= iv) & (iv <= i @ i) & (0 <= jv) & (jv <= j @ j) & (0 <= kv) & (kv <= k @ k)


class TestCorners:
    def test_axis_aligned_order(self) -> None:
        c = box_corners([[10.0, 20.0, 1.0]], [[4.0, 2.0, 1.5]], [0.0])[0]
        expected = np.array([[2, 1, 0.75], [2, -1, 0.75], [2, -1, -0.75], [2, 1, -0.75],
                             [-2, 1, 0.75], [-2, -1, 0.75], [-2, -1, -0.75], [-2, 1, -0.75]]) + [10, 20, 1]
        np.testing.assert_allclose(c, expected)

    def test_rotated_front_face_points_along_heading(self) -> None:
        yaw = np.deg2rad(90.0)
        c = box_corners([[0.0, 0.0, 0.0]], [[4.0, 2.0, 1.0]], [yaw])[0]
        # front-left-top of a box facing +y: ahead is +y, its left is -x
        np.testing.assert_allclose(c[0], [-1.0, 2.0, 0.5], atol=1e-12)
        front, rear = c[:4].mean(axis=0), c[4:].mean(axis=0)
        np.testing.assert_allclose(front - rear, [0.0, 4.0, 0.0], atol=1e-12)
        top, bottom = c[[0, 1, 5, 4]].mean(axis=0), c[[3, 2, 6, 7]].mean(axis=0)
        np.testing.assert_allclose(top - bottom, [0.0, 0.0, 1.0], atol=1e-12)

    def test_empty_and_bad_shapes(self) -> None:
        assert box_corners(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0)).shape == (0, 8, 3)
        with pytest.raises(ShapeError, match="size"):
            box_corners(np.zeros((2, 3)), np.zeros((2, 2)), np.zeros(2))
        with pytest.raises(ShapeError, match="yaw"):
            box_corners(np.zeros((2, 3)), np.ones((2, 3)), np.zeros(3))


class TestPointsInBoxes:
    def test_axis_aligned_inside_outside_and_faces(self) -> None:
        pts = np.array([[0, 0, 0], [1.99, 0.99, 0.49], [2.0, 0, 0], [2.01, 0, 0], [0, 1.01, 0], [0, 0, -0.51]], float)
        m = points_in_boxes(pts, [[0.0, 0.0, 0.0]], [[4.0, 2.0, 1.0]], [0.0])
        assert m.shape == (6, 1)
        assert m[:, 0].tolist() == [True, True, True, False, False, False]  # a point on a face is inside

    def test_rotated_box(self) -> None:
        c = [[10.0, 5.0, 0.0]]
        s = [[4.0, 1.0, 2.0]]
        yaw = [np.pi / 4]
        d = np.array([np.cos(np.pi / 4), np.sin(np.pi / 4), 0.0])
        pts = np.array([
            [10 + 1.9 * d[0], 5 + 1.9 * d[1], 0.0],  # 1.9 m ahead along the heading: inside
            [10 + 1.9, 5.0, 0.0],                     # 1.9 m along world x: 1.34 m to the side: outside
            [10 - 2.1 * d[0], 5 - 2.1 * d[1], 0.0],  # 2.1 m behind: outside
            [10 - 0.4 * d[1], 5 + 0.4 * d[0], 0.9],  # 0.4 m to the left, 0.9 m up: inside
        ])
        assert points_in_boxes(pts, c, s, yaw)[:, 0].tolist() == [True, False, False, True]

    def test_overlapping_boxes_count_in_both(self) -> None:
        pts = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [9.0, 9.0, 9.0]])
        m = points_in_boxes(pts, [[0.0, 0, 0], [2.0, 0, 0]], [[4.0, 2, 2], [4.0, 2, 2]], [0.0, 0.3])
        assert m.tolist() == [[True, True], [False, True], [False, False]]
        assert count_points_in_boxes(pts, [[0.0, 0, 0], [2.0, 0, 0]], [[4.0, 2, 2], [4.0, 2, 2]], [0.0, 0.3]).tolist() == [1, 2]

    def test_empty_inputs(self) -> None:
        assert points_in_boxes(np.zeros((0, 3)), [[0.0, 0, 0]], [[1.0, 1, 1]], [0.0]).shape == (0, 1)
        assert points_in_boxes(np.ones((5, 4), np.float32), np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0)).shape == (5, 0)
        assert count_points_in_boxes(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0)).shape == (0,)

    def test_bad_points_shape(self) -> None:
        with pytest.raises(ShapeError, match="points"):
            points_in_boxes(np.zeros((4, 2)), [[0.0, 0, 0]], [[1.0, 1, 1]], [0.0])

    def test_matches_devkit_rule_on_random_boxes(self) -> None:
        rng = np.random.default_rng(7)
        m = 25
        center = rng.uniform(-20, 20, (m, 3)) + [1000.0, 2000.0, 0.0]  # world-like coordinates
        size = rng.uniform(0.5, 6.0, (m, 3))
        yaw = rng.uniform(-np.pi, np.pi, m)
        pts = np.concatenate([
            rng.uniform(-25, 25, (4000, 3)) + [1000.0, 2000.0, 0.0],
            center[rng.integers(0, m, 4000)] + rng.normal(0, 1.5, (4000, 3)),
        ]).astype(np.float32)
        corners = box_corners(center, size, yaw)
        oracle = np.stack([_devkit_points_in_box(corners[j], pts.astype(np.float64)) for j in range(m)], axis=1)
        got = points_in_boxes(pts, center, size, yaw)
        # the two rules agree except for points within float rounding of a face
        assert (got != oracle).sum() <= 2
        assert got.sum() > 500  # the case is not vacuous

    def test_points_on_a_corner_of_a_rotated_box(self) -> None:
        # a corner lies at the circumscribed radius, the edge of the x-slab the search looks in
        centre = np.array([3.0, -2.0, 0.5])
        c = box_corners([centre], [[4.0, 2.0, 1.0]], [0.4])[0]
        just_in = centre + (c - centre) * (1 - 1e-9)
        just_out = centre + (c - centre) * (1 + 1e-9)
        assert points_in_boxes(just_in, [centre], [[4.0, 2.0, 1.0]], [0.4])[:, 0].all()
        assert not points_in_boxes(just_out, [centre], [[4.0, 2.0, 1.0]], [0.4])[:, 0].any()


class TestConversions:
    def test_yaw_from_quaternion(self) -> None:
        yaws = np.array([0.0, 0.3, -2.0, np.pi - 0.01])
        q = np.stack([np.cos(yaws / 2), np.zeros(4), np.zeros(4), np.sin(yaws / 2)], axis=1)
        np.testing.assert_allclose(yaw_from_quaternion(q), yaws, atol=1e-12)
        # a small roll does not bend the heading
        roll = se3.quat_to_matrix([np.cos(0.05), np.sin(0.05), 0, 0])
        R = se3.rotation_z(0.7) @ roll
        assert yaw_from_quaternion(se3.matrix_to_quat(R)[None])[0] == pytest.approx(0.7, abs=1e-12)
        assert yaw_from_quaternion(np.zeros((0, 4))).shape == (0,)

    def test_wlh_to_lwh(self) -> None:
        np.testing.assert_array_equal(wlh_to_lwh([[2.0, 4.5, 1.6]]), [[4.5, 2.0, 1.6]])

    def test_transform_boxes(self) -> None:
        a_T_b = se3.from_rotation_translation(se3.rotation_z(np.pi / 2), [1.0, 2.0, 3.0])
        c, y, v = transform_boxes(a_T_b, [[1.0, 0.0, 0.0]], [0.25], [[1.0, 0.0]])
        np.testing.assert_allclose(c, [[1.0, 3.0, 3.0]], atol=1e-12)
        np.testing.assert_allclose(y, [0.25 + np.pi / 2], atol=1e-12)
        np.testing.assert_allclose(v, [[0.0, 1.0]], atol=1e-12)
        # the corners of the moved box are the moved corners
        size = np.array([[4.0, 2.0, 1.5]])
        moved = se3.transform_points(a_T_b, box_corners([[1.0, 0, 0]], size, [0.25])[0])
        np.testing.assert_allclose(box_corners(c, size, y)[0], moved, atol=1e-12)

    def test_transform_detections(self) -> None:
        d = Detections(stamp_ns=5, frame_id="ego", class_names=("car",), center=np.array([[1.0, 0, 0]]),
                       size=np.array([[4.0, 2, 1.5]]), yaw=np.array([0.0]), velocity=np.array([[2.0, 0.0]]),
                       score=np.ones(1, np.float32), label=np.zeros(1, np.int64), track_id=np.array(["a"], object))
        world_T_ego = se3.from_rotation_translation(se3.rotation_z(np.pi), [10.0, 0, 0])
        w = transform_detections(d, world_T_ego, "world")
        assert w.frame_id == "world" and w.stamp_ns == 5 and w.track_id[0] == "a"
        np.testing.assert_allclose(w.center, [[9.0, 0, 0]], atol=1e-12)
        np.testing.assert_allclose(w.velocity, [[-2.0, 0.0]], atol=1e-12)
        assert abs(abs(w.yaw[0]) - np.pi) < 1e-12
