"""3D box geometry: corners, which points lie in which boxes, and moving boxes between frames.

A box is bevfuse's (as in ``Detections``): ``center (M, 3)`` float64 x y z of the box centre,
``size (M, 3)`` length width height (length along the heading), ``yaw (M,)`` radians about +z of
the frame the box is in. Boxes are upright (no roll or pitch), as every detection head and the
nuScenes/AV2 metrics treat them.

The corner order is the nuScenes devkit's (``Box.corners``), so code ported from it reads the same:
corners 0-3 are the front face (x = +l/2 in the box frame, the heading side), 4-7 the rear face,
and within each face: left-top, right-top, right-bottom, left-bottom (left = +y, top = +z). In the
box frame (x along the heading) corner ``k`` is ``(sx, sy, sz) * (l, w, h) / 2`` with::

    k :  0   1   2   3   4   5   6   7
    sx: +1  +1  +1  +1  -1  -1  -1  -1      front face 0 1 2 3, rear face 4 5 6 7
    sy: +1  -1  -1  +1  +1  -1  -1  +1      top face 0 1 5 4, bottom face 3 2 6 7
    sz: +1  +1  -1  -1  +1  +1  -1  -1
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from calib import se3
from perception.errors import ShapeError
from perception.types import Detections, check_array

__all__ = [
    "box_corners",
    "count_points_in_boxes",
    "points_in_boxes",
    "transform_boxes",
    "transform_detections",
    "wlh_to_lwh",
    "yaw_from_quaternion",
]

# Unit-box corner signs in the devkit's order (see the module docstring): (8, 3) x y z.
_CORNER_SIGNS = np.array(
    [[1, 1, 1], [1, -1, 1], [1, -1, -1], [1, 1, -1], [-1, 1, 1], [-1, -1, 1], [-1, -1, -1], [-1, 1, -1]], dtype=np.float64
)

def _boxes(center: npt.ArrayLike, size: npt.ArrayLike, yaw: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = np.asarray(center, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != 3:
        raise ShapeError(f"center: expected (M, 3) box centres, got shape {c.shape}")
    m = c.shape[0]
    s = np.asarray(size, dtype=np.float64)
    if s.shape != (m, 3):
        raise ShapeError(f"size: expected ({m}, 3) length width height, got shape {s.shape}")
    y = np.asarray(yaw, dtype=np.float64)
    if y.shape != (m,):
        raise ShapeError(f"yaw: expected ({m},) radians, got shape {y.shape}")
    return c, s, y


def box_corners(center: npt.ArrayLike, size: npt.ArrayLike, yaw: npt.ArrayLike) -> np.ndarray:
    """The 8 corners of each box: ``(M, 8, 3)`` float64, in the order of the module docstring.

    center: (M, 3); size: (M, 3) l w h; yaw: (M,) rad about +z.
    """
    c, s, y = _boxes(center, size, yaw)
    local = _CORNER_SIGNS[None, :, :] * (s[:, None, :] / 2.0)  # (M, 8, 3) in the box frame
    cos, sin = np.cos(y)[:, None], np.sin(y)[:, None]
    out = np.empty_like(local)
    out[..., 0] = cos * local[..., 0] - sin * local[..., 1]
    out[..., 1] = sin * local[..., 0] + cos * local[..., 1]
    out[..., 2] = local[..., 2]
    return out + c[:, None, :]


def points_in_boxes(points: npt.ArrayLike, center: npt.ArrayLike, size: npt.ArrayLike, yaw: npt.ArrayLike) -> np.ndarray:
    """Which points lie in which boxes: ``(N, M)`` bool.

    points: (N, 3+) x y z (extra columns ignored) in the frame of the boxes; center (M, 3),
    size (M, 3) l w h, yaw (M,). The faces count as inside (``<=``), as the nuScenes devkit's
    ``points_in_box`` does, so counts compare with its ``num_lidar_pts``.
    """
    p = np.asarray(points)
    if p.ndim != 2 or p.shape[1] < 3:
        raise ShapeError(f"points: expected (N, 3+) x y z, got shape {p.shape}")
    c, s, y = _boxes(center, size, yaw)
    n, m = p.shape[0], c.shape[0]
    out = np.zeros((n, m), dtype=bool)
    if n == 0 or m == 0:
        return out
    # float64: world-frame coordinates (~1e3 m) would lose centimetres in float32 once centred
    xyz = p[:, :3].astype(np.float64)
    # Only the points whose x lies within a box's circumscribed radius of its centre can be in it:
    # sort by x once and test each box on its slab, instead of every point against every box
    # (a 100k-point sweep against 100 boxes is 10M point-box pairs, the slabs a few percent of that).
    order = np.argsort(xyz[:, 0], kind="stable")
    xs = xyz[order, 0]
    half = s / 2.0
    radius = np.hypot(half[:, 0], half[:, 1]) * (1 + 1e-9) + 1e-9  # a hair more: faces are inside
    lo = np.searchsorted(xs, c[:, 0] - radius, side="left")
    hi = np.searchsorted(xs, c[:, 0] + radius, side="right")
    cos, sin = np.cos(y), np.sin(y)
    for j in range(m):
        idx = order[lo[j]:hi[j]]
        if idx.size == 0:
            continue
        d = xyz[idx] - c[j]
        # rotate by -yaw into the box frame; only x and y turn, the boxes are upright
        lx = cos[j] * d[:, 0] + sin[j] * d[:, 1]
        ly = -sin[j] * d[:, 0] + cos[j] * d[:, 1]
        inside = (np.abs(lx) <= half[j, 0]) & (np.abs(ly) <= half[j, 1]) & (np.abs(d[:, 2]) <= half[j, 2])
        out[idx[inside], j] = True
    return out


def count_points_in_boxes(points: npt.ArrayLike, center: npt.ArrayLike, size: npt.ArrayLike, yaw: npt.ArrayLike) -> np.ndarray:
    """How many points lie in each box: ``(M,)`` int64 (a point in two overlapping boxes counts in both)."""
    return points_in_boxes(points, center, size, yaw).sum(axis=0).astype(np.int64)


def yaw_from_quaternion(q: npt.ArrayLike) -> np.ndarray:
    """Heading of rotations given as quaternions ``(M, 4)`` w x y z: ``(M,)`` rad about +z.

    The heading is the direction of the rotated x axis projected onto the xy plane (the devkit's
    ``quaternion_yaw``), so a small roll or pitch of an annotated box does not bend it.
    """
    q = np.asarray(q, dtype=np.float64)
    if q.ndim != 2 or q.shape[1] != 4:
        raise ShapeError(f"q: expected (M, 4) quaternions w x y z, got shape {q.shape}")
    if q.shape[0] == 0:
        return np.zeros(0)
    R = se3.quat_to_matrix(q)
    return np.arctan2(R[:, 1, 0], R[:, 0, 0])


def wlh_to_lwh(size_wlh: npt.ArrayLike) -> np.ndarray:
    """nuScenes box sizes ``(M, 3)`` width length height to bevfuse's length width height."""
    s = np.asarray(size_wlh, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != 3:
        raise ShapeError(f"size_wlh: expected (M, 3) width length height, got shape {s.shape}")
    return s[:, [1, 0, 2]]


def transform_boxes(a_T_b: npt.ArrayLike, center: npt.ArrayLike, yaw: npt.ArrayLike,
                    velocity: npt.ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Express boxes given in frame b in frame a: ``(center_a (M, 3), yaw_a (M,), velocity_a (M, 2) | None)``.

    The heading is the rotated x axis of each box projected onto a's xy plane, and velocity
    (M, 2) vx vy is rotated as a vector (vz = 0); a's z axis is assumed close to b's (e.g. ego and
    world, sensor and ego of a level-mounted LiDAR), since upright boxes cannot carry a tilt.
    The size does not change. The velocity is re-expressed, not made relative to a moving frame.
    """
    T = np.asarray(a_T_b, dtype=np.float64)
    if T.shape != (4, 4):
        raise ShapeError(f"a_T_b: expected (4, 4), got shape {T.shape}")
    c = np.asarray(center, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != 3:
        raise ShapeError(f"center: expected (M, 3), got shape {c.shape}")
    y = np.asarray(yaw, dtype=np.float64)
    if y.shape != (c.shape[0],):
        raise ShapeError(f"yaw: expected ({c.shape[0]},), got shape {y.shape}")
    R = T[:3, :3]
    heading = np.stack([np.cos(y), np.sin(y), np.zeros_like(y)], axis=1) @ R.T
    yaw_a = np.arctan2(heading[:, 1], heading[:, 0])
    center_a = se3.transform_points(T, c) if c.shape[0] else c.copy()
    vel_a = None
    if velocity is not None:
        v = np.asarray(velocity, dtype=np.float64)
        if v.shape != (c.shape[0], 2):
            raise ShapeError(f"velocity: expected ({c.shape[0]}, 2) vx vy, got shape {v.shape}")
        v3 = np.concatenate([v, np.zeros((v.shape[0], 1))], axis=1) @ R.T
        vel_a = v3[:, :2]
    return center_a, yaw_a, vel_a


def transform_detections(dets: Detections, a_T_b: npt.ArrayLike, frame_id: str) -> Detections:
    """``dets`` (in frame b = ``dets.frame_id``) expressed in frame ``frame_id`` through ``a_T_b``."""
    check_array(np.asarray(a_T_b, dtype=np.float64), "a_T_b", shape=(4, 4))
    center, yaw, vel = transform_boxes(a_T_b, dets.center, dets.yaw, dets.velocity)
    assert vel is not None
    return Detections(
        stamp_ns=dets.stamp_ns, frame_id=frame_id, class_names=dets.class_names, center=center, size=dets.size.copy(),
        yaw=yaw, velocity=vel, score=dets.score, label=dets.label, attribute=dets.attribute, track_id=dets.track_id,
        num_lidar_pts=dets.num_lidar_pts, num_radar_pts=dets.num_radar_pts,
    )
