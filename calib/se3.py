"""SE(3) helpers: the one place where 4x4 rigid transforms are built, composed and applied.

Naming convention (see DESIGN.md): ``a_T_b`` maps coordinates in frame ``b`` into frame ``a``, so
``world_T_ego @ ego_T_lidar`` gives ``world_T_lidar`` and the inner frame names must match.
Matrices are float64 ``(4, 4)``; quaternions are ``(w, x, y, z)`` with ``w >= 0`` on output.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from perception.errors import ShapeError

__all__ = [
    "compose",
    "from_rotation_translation",
    "identity",
    "interpolate",
    "invert",
    "is_rigid",
    "matrix_to_quat",
    "quat_to_matrix",
    "rotation_rpy",
    "rotation_z",
    "slerp",
    "transform_points",
    "yaw_of",
]

Array = npt.NDArray[np.float64]


def _check_transform(T: npt.ArrayLike, name: str) -> Array:
    T = np.asarray(T, dtype=np.float64)
    if T.shape[-2:] != (4, 4):
        raise ShapeError(f"{name}: expected a (..., 4, 4) transform, got shape {T.shape}")
    return T


def identity() -> Array:
    return np.eye(4)


def from_rotation_translation(rotation: npt.ArrayLike, translation: npt.ArrayLike) -> Array:
    """Build ``a_T_b`` from a (3, 3) rotation matrix or (4,) quaternion wxyz and a (3,) translation."""
    rotation = np.asarray(rotation, dtype=np.float64)
    if rotation.shape == (4,):
        rotation = quat_to_matrix(rotation)
    if rotation.shape != (3, 3):
        raise ShapeError(f"rotation: expected (3, 3) matrix or (4,) quaternion, got {rotation.shape}")
    translation = np.asarray(translation, dtype=np.float64).reshape(-1)
    if translation.shape != (3,):
        raise ShapeError(f"translation: expected (3,), got {translation.shape}")
    T = np.eye(4)
    T[:3, :3] = rotation
    T[:3, 3] = translation
    return T


def compose(*transforms: npt.ArrayLike) -> Array:
    """``compose(a_T_b, b_T_c, ...)`` = ``a_T_b @ b_T_c @ ...``."""
    if not transforms:
        return np.eye(4)
    out = _check_transform(transforms[0], "transforms[0]")
    for i, T in enumerate(transforms[1:], start=1):
        out = out @ _check_transform(T, f"transforms[{i}]")
    return out


def invert(a_T_b: npt.ArrayLike) -> Array:
    """Return ``b_T_a``, using the rigid structure (R^T, -R^T t) rather than a general inverse."""
    T = _check_transform(a_T_b, "a_T_b")
    R = T[..., :3, :3]
    t = T[..., :3, 3]
    out = np.zeros_like(T)
    Rt = np.swapaxes(R, -1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", Rt, t)
    out[..., 3, 3] = 1.0
    return out


def transform_points(a_T_b: npt.ArrayLike, points_b: npt.ArrayLike) -> npt.NDArray[np.floating]:
    """Map ``points_b: (N, 3+)`` from frame b to frame a; columns past xyz are passed through.

    The dtype of the input is kept (float32 clouds stay float32); the maths runs in float64.
    """
    T = _check_transform(a_T_b, "a_T_b")
    if T.shape != (4, 4):
        raise ShapeError(f"a_T_b: expected one (4, 4) transform, got {T.shape}")
    pts = np.asarray(points_b)
    if pts.ndim != 2 or pts.shape[1] < 3:
        raise ShapeError(f"points_b: expected (N, 3+) array, got shape {pts.shape}")
    xyz = pts[:, :3].astype(np.float64) @ T[:3, :3].T + T[:3, 3]
    out = np.array(pts, copy=True)
    if not np.issubdtype(out.dtype, np.floating):
        out = out.astype(np.float64)
    out[:, :3] = xyz
    return out


def is_rigid(T: npt.ArrayLike, atol: float = 1e-6) -> bool:
    """True when the rotation block is orthonormal with determinant +1 and the last row is 0 0 0 1."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        return False
    R = T[:3, :3]
    return bool(
        np.allclose(R @ R.T, np.eye(3), atol=atol)
        and abs(np.linalg.det(R) - 1.0) < atol
        and np.allclose(T[3], [0, 0, 0, 1], atol=atol)
    )


def quat_to_matrix(q: npt.ArrayLike) -> Array:
    """Quaternion(s) ``(..., 4)`` in (w, x, y, z) order to rotation matrices ``(..., 3, 3)``.

    The quaternion is normalised first, so a slightly denormalised one from a file is accepted.
    """
    q = np.asarray(q, dtype=np.float64)
    if q.shape[-1] != 4:
        raise ShapeError(f"q: expected (..., 4) quaternion(s) w x y z, got shape {q.shape}")
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(norm < 1e-12):
        raise ShapeError("q: zero-length quaternion")
    w, x, y, z = np.moveaxis(q / norm, -1, 0)
    R = np.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
            2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
            2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
        ],
        axis=-1,
    )
    return R.reshape(q.shape[:-1] + (3, 3))


def matrix_to_quat(R: npt.ArrayLike) -> Array:
    """Rotation matrix ``(3, 3)`` (or the rotation block of a 4x4) to (w, x, y, z), ``w >= 0``.

    Batched: ``(..., 3, 3)`` or ``(..., 4, 4)`` gives ``(..., 4)``. Shepperd's method: pick the
    largest diagonal term to stay numerically stable near 180 degrees.
    """
    R = np.asarray(R, dtype=np.float64)
    if R.shape[-2:] == (4, 4):
        R = R[..., :3, :3]
    if R.ndim < 2 or R.shape[-2:] != (3, 3):
        raise ShapeError(f"R: expected (..., 3, 3) or (..., 4, 4), got {R.shape}")
    if R.ndim == 2:  # one rotation: scalar code, ten times faster than the batched path below
        return _matrix_to_quat_one(R)
    m = R.reshape(-1, 3, 3)
    q = np.empty((m.shape[0], 4))
    tr = np.trace(m, axis1=1, axis2=2)
    d0, d1, d2 = m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]
    b0 = tr > 0
    b1 = ~b0 & (d0 > d1) & (d0 > d2)
    b2 = ~b0 & ~b1 & (d1 > d2)
    b3 = ~(b0 | b1 | b2)
    # each branch only on its own rows, so that no square root of a negative number is taken
    if b0.any():
        r = m[b0]
        s = 2.0 * np.sqrt(tr[b0] + 1.0)
        q[b0] = np.stack([0.25 * s, (r[:, 2, 1] - r[:, 1, 2]) / s, (r[:, 0, 2] - r[:, 2, 0]) / s,
                          (r[:, 1, 0] - r[:, 0, 1]) / s], axis=-1)
    if b1.any():
        r = m[b1]
        s = 2.0 * np.sqrt(1.0 + r[:, 0, 0] - r[:, 1, 1] - r[:, 2, 2])
        q[b1] = np.stack([(r[:, 2, 1] - r[:, 1, 2]) / s, 0.25 * s, (r[:, 0, 1] + r[:, 1, 0]) / s,
                          (r[:, 0, 2] + r[:, 2, 0]) / s], axis=-1)
    if b2.any():
        r = m[b2]
        s = 2.0 * np.sqrt(1.0 + r[:, 1, 1] - r[:, 0, 0] - r[:, 2, 2])
        q[b2] = np.stack([(r[:, 0, 2] - r[:, 2, 0]) / s, (r[:, 0, 1] + r[:, 1, 0]) / s, 0.25 * s,
                          (r[:, 1, 2] + r[:, 2, 1]) / s], axis=-1)
    if b3.any():
        r = m[b3]
        s = 2.0 * np.sqrt(1.0 + r[:, 2, 2] - r[:, 0, 0] - r[:, 1, 1])
        q[b3] = np.stack([(r[:, 1, 0] - r[:, 0, 1]) / s, (r[:, 0, 2] + r[:, 2, 0]) / s,
                          (r[:, 1, 2] + r[:, 2, 1]) / s, 0.25 * s], axis=-1)
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    q[q[:, 0] < 0] *= -1.0
    return q.reshape(R.shape[:-2] + (4,))


def _matrix_to_quat_one(R: np.ndarray) -> Array:
    tr = R[0, 0] + R[1, 1] + R[2, 2]
    if tr > 0:
        s = 2.0 * math.sqrt(tr + 1.0)
        q = (0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s)
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * math.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = ((R[2, 1] - R[1, 2]) / s, 0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s)
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * math.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = ((R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s)
    else:
        s = 2.0 * math.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = ((R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s)
    out = np.array(q, dtype=np.float64)
    out /= math.sqrt(float(out @ out))
    return -out if out[0] < 0 else out


def slerp(q0: npt.ArrayLike, q1: npt.ArrayLike, alpha: float | npt.ArrayLike) -> Array:
    """Spherical linear interpolation of unit quaternions (w, x, y, z); alpha in [0, 1].

    Broadcasts: ``q0, q1: (..., 4)`` and ``alpha: (...)``; one pair with ``alpha: (M,)`` gives
    ``(M, 4)``, ``M`` pairs with ``alpha: (M,)`` give ``(M, 4)``. Takes the short way round.
    """
    q0 = np.asarray(q0, dtype=np.float64)
    q1 = np.asarray(q1, dtype=np.float64)
    q0 = q0 / np.linalg.norm(q0, axis=-1, keepdims=True)
    q1 = q1 / np.linalg.norm(q1, axis=-1, keepdims=True)
    a = np.asarray(alpha, dtype=np.float64)
    dot = np.sum(q0 * q1, axis=-1)
    q1 = np.where((dot < 0.0)[..., None], -q1, q1)
    dot = np.abs(dot)
    # nearly parallel: linear interpolation avoids dividing by sin(~0)
    near = dot > 0.9995
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    s = np.where(near, 1.0, np.sin(theta))
    w0 = np.where(near, 1.0 - a, np.sin((1.0 - a) * theta) / s)
    w1 = np.where(near, a, np.sin(a * theta) / s)
    q = w0[..., None] * q0 + w1[..., None] * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def interpolate(a_T_b0: npt.ArrayLike, a_T_b1: npt.ArrayLike, alpha: float | npt.ArrayLike) -> Array:
    """Interpolate between two poses: slerp on the rotation, linear on the translation.

    ``alpha`` scalar gives ``(4, 4)``; ``alpha: (M,)`` gives ``(M, 4, 4)``. Batched: ``(M, 4, 4)``
    pose pairs with ``alpha: (M,)`` give ``(M, 4, 4)`` (one alpha per pair). Values outside
    [0, 1] extrapolate (the caller bounds how far).
    """
    T0 = _check_transform(a_T_b0, "a_T_b0")
    T1 = _check_transform(a_T_b1, "a_T_b1")
    a = np.asarray(alpha, dtype=np.float64)
    q = slerp(matrix_to_quat(T0), matrix_to_quat(T1), a)
    shape = q.shape[:-1]
    out = np.zeros(shape + (4, 4))
    out[..., :3, :3] = quat_to_matrix(q)
    t0, t1 = T0[..., :3, 3], T1[..., :3, 3]
    out[..., :3, 3] = t0 + a[..., None] * (t1 - t0)
    out[..., 3, 3] = 1.0
    return out


def rotation_z(yaw: float) -> Array:
    """Rotation matrix (3, 3) about +z by ``yaw`` radians (counter-clockwise seen from above)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotation_rpy(roll: float, pitch: float, yaw: float) -> Array:
    """Rotation (3, 3) ``Rz(yaw) @ Ry(pitch) @ Rx(roll)``: the vehicle convention (x forward, z up).

    Scalar maths, for filters that call it once per sample."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def yaw_of(T_or_R: npt.ArrayLike) -> float:
    """Heading (rotation about +z) of a transform or rotation, from its x axis."""
    R = np.asarray(T_or_R, dtype=np.float64)
    return float(np.arctan2(R[1, 0], R[0, 0]))
