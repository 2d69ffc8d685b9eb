"""Global BEV augmentation, applied consistently to everything a training sample holds in the ego frame.

One 4x4 linear map ``A`` (a rotation about z, an optional mirror of y, a uniform scale) moves the
LiDAR points, the radar points and their velocities, the boxes and their velocities; the cameras
cannot move their pixels, so their extrinsics absorb it instead: ``ego_T_cam' = A @ ego_T_cam``.
The camera-to-BEV lookup table built from the new extrinsics then sends each augmented BEV cell to
the pixel that saw the original point, so the image features land where the augmented LiDAR puts
the object. The scale is the one part a camera cannot take as a matrix factor (the table inverts
extrinsics as rigid transforms), and it needs none: a camera at ``s t`` with the same orientation
sees the world scaled by ``s`` exactly as the original camera saw the original world (projection
divides by depth), so ``augment_extrinsics`` rotates/mirrors the orientation and scales only the
translation. The mirror keeps the rotation block orthogonal (det -1), which the rigid inverse handles.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

__all__ = [
    "AugmentConfig",
    "BoxArrays",
    "augment_extrinsics",
    "augment_matrix",
    "transform_boxes",
    "transform_points",
    "transform_vectors",
]


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the global augmentation (CenterPoint's nuScenes values by default)."""

    rotation_rad: float = np.pi / 4  # yaw drawn uniformly in [-r, r]
    scale: tuple[float, float] = (0.95, 1.05)
    flip_y: float = 0.5  # probability of mirroring y (left <-> right)


@dataclass(frozen=True, eq=False)
class BoxArrays:
    """Boxes in the ego frame: center (N, 3), size (N, 3) l w h, yaw (N,), velocity (N, 2), label (N,) int64;
    num_points (N,) int64 LiDAR + radar points inside (evaluation drops boxes with none), or None;
    attribute (N,) object nuScenes attribute names, or None."""

    center: np.ndarray
    size: np.ndarray
    yaw: np.ndarray
    velocity: np.ndarray
    label: np.ndarray
    num_points: np.ndarray | None = None
    attribute: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.center.shape[0])


def augment_matrix(rng: np.random.Generator, cfg: AugmentConfig) -> tuple[np.ndarray, float, bool, float]:
    """A random ``A`` (4, 4) = scale @ rotation_z(yaw) @ mirror, and its (yaw, flipped, scale)."""
    yaw = float(rng.uniform(-cfg.rotation_rad, cfg.rotation_rad))
    flipped = bool(rng.random() < cfg.flip_y)
    scale = float(rng.uniform(*cfg.scale))
    c, s = np.cos(yaw), np.sin(yaw)
    A = np.eye(4)
    A[:2, :2] = [[c, -s], [s, c]]
    if flipped:
        A[:3, :3] = A[:3, :3] @ np.diag([1.0, -1.0, 1.0])
    A[:3, :3] *= scale
    return A, yaw, flipped, scale


def augment_extrinsics(A: np.ndarray, ego_T_cam: np.ndarray) -> np.ndarray:
    """(N, 4, 4) camera extrinsics in the augmented ego frame of ``A`` = s * Q (Q orthogonal):
    orientation ``Q @ R``, position ``A @ t`` (see the module docstring)."""
    s = np.cbrt(abs(np.linalg.det(A[:3, :3])))
    out = np.array(ego_T_cam, np.float64, copy=True)
    out[..., :3, :3] = (A[:3, :3] / s) @ out[..., :3, :3]
    out[..., :3, 3] = out[..., :3, 3] @ A[:3, :3].T + A[:3, 3]
    return out


def transform_points(A: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    """(N, 3) points through the linear part of ``A`` (float32 kept float32)."""
    return (xyz.astype(np.float64) @ A[:3, :3].T + A[:3, 3]).astype(xyz.dtype)


def transform_vectors(A: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(N, 2) ground-plane vectors (velocities) through the xy block of ``A``: NaN stays NaN."""
    return (v.astype(np.float64) @ A[:2, :2].T).astype(v.dtype)


def transform_boxes(A: np.ndarray, boxes: BoxArrays, yaw: float, flipped: bool, scale: float) -> BoxArrays:
    """Boxes through ``A`` = scale @ rotation(yaw) @ mirror: a mirrored heading is -yaw, then rotated."""
    heading = -boxes.yaw if flipped else boxes.yaw
    heading = np.arctan2(np.sin(heading + yaw), np.cos(heading + yaw))
    return replace(boxes, center=transform_points(A, boxes.center), size=boxes.size * scale, yaw=heading,
                   velocity=transform_vectors(A, boxes.velocity))
