"""Camera models with vectorised projection and unprojection.

Points are in the camera's optical frame (OpenCV convention: x right, y down, z forward).
``project`` returns pixel coordinates and a validity mask: a point is invalid when it lies behind
the camera (z <= min_depth) or lands outside the image. Pixel centres are at integer coordinates,
the image spans [-0.5, W - 0.5] x [-0.5, H - 0.5], as in OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import numpy as np
import numpy.typing as npt

from perception.errors import ShapeError

__all__ = ["CameraModel", "FisheyeCamera", "PinholeCamera", "camera_from_dict"]


def _points(points_cam: npt.ArrayLike) -> np.ndarray:
    p = np.asarray(points_cam, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ShapeError(f"points_cam: expected (N, 3) points in the camera frame, got shape {p.shape}")
    return p


def _pixels(uv: npt.ArrayLike) -> np.ndarray:
    q = np.asarray(uv, dtype=np.float64)
    if q.ndim != 2 or q.shape[1] != 2:
        raise ShapeError(f"uv: expected (N, 2) pixel coordinates, got shape {q.shape}")
    return q


@dataclass(frozen=True)
class PinholeCamera:
    """Pinhole with OpenCV's radial-tangential distortion (k1, k2, p1, p2, k3).

    ``distortion`` of all zeros is an ideal pinhole (e.g. nuScenes' undistorted images).
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion: tuple[float, ...] = field(default=(0.0, 0.0, 0.0, 0.0, 0.0))
    model: str = "pinhole"

    def __post_init__(self) -> None:
        d = tuple(float(x) for x in self.distortion)
        if len(d) not in (4, 5, 8):
            raise ShapeError(f"distortion: expected 4, 5 or 8 OpenCV coefficients, got {len(d)}")
        object.__setattr__(self, "distortion", d + (0.0,) * (8 - len(d)))

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @classmethod
    def from_K(cls, K: npt.ArrayLike, width: int, height: int, distortion: tuple[float, ...] = (0.0,) * 5) -> PinholeCamera:
        K = np.asarray(K, dtype=np.float64)
        if K.shape != (3, 3):
            raise ShapeError(f"K: expected (3, 3), got {K.shape}")
        return cls(int(width), int(height), float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), tuple(distortion))

    def _distort(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k1, k2, p1, p2, k3, k4, k5, k6 = self.distortion
        r2 = x * x + y * y
        radial = (1 + k1 * r2 + k2 * r2**2 + k3 * r2**3) / (1 + k4 * r2 + k5 * r2**2 + k6 * r2**3)
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return xd, yd

    def project(self, points_cam: npt.ArrayLike, min_depth: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
        """points_cam (N, 3) -> (uv (N, 2) float64, valid (N,) bool). Invalid rows hold NaN."""
        p = _points(points_cam)
        z = p[:, 2]
        front = z > min_depth
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.where(front, p[:, 0] / z, np.nan)
            y = np.where(front, p[:, 1] / z, np.nan)
        xd, yd = self._distort(x, y) if any(self.distortion) else (x, y)  # an ideal pinhole skips the polynomial
        uv = np.stack([self.fx * xd + self.cx, self.fy * yd + self.cy], axis=1)
        valid = front & self.in_image(uv)
        uv[~front] = np.nan
        return uv, valid

    def in_image(self, uv: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return (uv[:, 0] >= -0.5) & (uv[:, 0] < self.width - 0.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] < self.height - 0.5)

    def unproject(self, uv: npt.ArrayLike, iterations: int = 20) -> np.ndarray:
        """uv (N, 2) -> unit rays (N, 3) in the camera frame (z > 0).

        Undistortion by fixed-point iteration, as OpenCV's ``undistortPoints`` does.
        """
        q = _pixels(uv)
        xd = (q[:, 0] - self.cx) / self.fx
        yd = (q[:, 1] - self.cy) / self.fy
        x, y = xd.copy(), yd.copy()
        if any(self.distortion):
            k1, k2, p1, p2, k3, k4, k5, k6 = self.distortion
            for _ in range(iterations):
                r2 = x * x + y * y
                icdist = (1 + k4 * r2 + k5 * r2**2 + k6 * r2**3) / (1 + k1 * r2 + k2 * r2**2 + k3 * r2**3)
                dx = 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
                dy = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
                x = (xd - dx) * icdist
                y = (yd - dy) * icdist
        rays = np.stack([x, y, np.ones_like(x)], axis=1)
        return rays / np.linalg.norm(rays, axis=1, keepdims=True)

    def to_dict(self) -> dict:
        return {"model": "pinhole", "width": self.width, "height": self.height, "fx": self.fx, "fy": self.fy,
                "cx": self.cx, "cy": self.cy, "distortion": list(self.distortion[:5]) if not any(self.distortion[5:]) else list(self.distortion)}

    def scaled(self, sx: float, sy: float | None = None) -> PinholeCamera:
        """The same camera seen through an image resized by (sx, sy), e.g. for a feature map."""
        sy = sx if sy is None else sy
        # OpenCV's resize maps pixel centres: u' = (u + 0.5) * s - 0.5
        return PinholeCamera(round(self.width * sx), round(self.height * sy), self.fx * sx, self.fy * sy,
                             (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5, self.distortion)


@dataclass(frozen=True)
class FisheyeCamera:
    """Kannala-Brandt fisheye (OpenCV ``cv2.fisheye``): theta_d = theta (1 + k1 t^2 + k2 t^4 + k3 t^6 + k4 t^8).

    Points up to ``max_fov_deg`` / 2 off the optical axis project, even slightly behind the image
    plane when the field of view exceeds 180 degrees.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion: tuple[float, ...] = field(default=(0.0, 0.0, 0.0, 0.0))
    max_fov_deg: float = 200.0
    model: str = "fisheye"

    def __post_init__(self) -> None:
        d = tuple(float(x) for x in self.distortion)
        if len(d) != 4:
            raise ShapeError(f"distortion: expected 4 Kannala-Brandt coefficients k1..k4, got {len(d)}")
        object.__setattr__(self, "distortion", d)

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def _theta_d(self, theta: np.ndarray) -> np.ndarray:
        k1, k2, k3, k4 = self.distortion
        t2 = theta * theta
        return theta * (1 + k1 * t2 + k2 * t2**2 + k3 * t2**3 + k4 * t2**4)

    def project(self, points_cam: npt.ArrayLike, min_depth: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
        p = _points(points_cam)
        r = np.hypot(p[:, 0], p[:, 1])
        theta = np.arctan2(r, p[:, 2])
        ok = (theta < np.deg2rad(self.max_fov_deg) / 2) & (np.linalg.norm(p, axis=1) > min_depth)
        td = self._theta_d(theta)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(r > 1e-12, td / r, 1.0 / np.maximum(p[:, 2], 1e-12))
        uv = np.stack([self.fx * p[:, 0] * scale + self.cx, self.fy * p[:, 1] * scale + self.cy], axis=1)
        uv[~ok] = np.nan
        valid = ok & PinholeCamera.in_image(self, uv)  # same image bounds rule
        return uv, valid

    def unproject(self, uv: npt.ArrayLike, iterations: int = 20) -> np.ndarray:
        q = _pixels(uv)
        xd = (q[:, 0] - self.cx) / self.fx
        yd = (q[:, 1] - self.cy) / self.fy
        td = np.hypot(xd, yd)
        theta = td.copy()
        k1, k2, k3, k4 = self.distortion
        for _ in range(iterations):  # Newton on theta_d(theta) = td
            t2 = theta * theta
            f = self._theta_d(theta) - td
            df = 1 + 3 * k1 * t2 + 5 * k2 * t2**2 + 7 * k3 * t2**3 + 9 * k4 * t2**4
            theta = theta - f / df
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(td > 1e-12, np.sin(theta) / td, 1.0)
        rays = np.stack([xd * s, yd * s, np.cos(theta)], axis=1)
        return rays / np.linalg.norm(rays, axis=1, keepdims=True)

    def to_dict(self) -> dict:
        return {"model": "fisheye", "width": self.width, "height": self.height, "fx": self.fx, "fy": self.fy,
                "cx": self.cx, "cy": self.cy, "distortion": list(self.distortion)}


CameraModel = Union[PinholeCamera, FisheyeCamera]


def camera_from_dict(d: dict, where: str = "intrinsics") -> CameraModel:
    """Build a camera model from a rig file's ``intrinsics`` mapping; errors name ``where``."""
    from perception.errors import RigError

    if not isinstance(d, dict):
        raise RigError(f"{where}: expected a mapping, got {type(d).__name__}")
    model = d.get("model", "pinhole")
    allowed = {"model", "width", "height", "fx", "fy", "cx", "cy", "distortion"}
    unknown = set(d) - allowed
    if unknown:
        raise RigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    missing = [k for k in ("width", "height", "fx", "fy", "cx", "cy") if k not in d]
    if missing:
        raise RigError(f"{where}: missing key(s) {missing}")
    try:
        w, h = int(d["width"]), int(d["height"])
        fx, fy, cx, cy = (float(d[k]) for k in ("fx", "fy", "cx", "cy"))
    except (TypeError, ValueError) as exc:
        raise RigError(f"{where}: width/height/fx/fy/cx/cy must be numbers ({exc})") from None
    if fx <= 0 or fy <= 0:
        raise RigError(f"{where}.fx/fy: focal lengths must be positive, got fx={fx}, fy={fy}")
    if w <= 0 or h <= 0:
        raise RigError(f"{where}.width/height: must be positive, got {w}x{h}")
    dist = d.get("distortion")
    try:
        if model == "pinhole":
            return PinholeCamera(w, h, fx, fy, cx, cy, tuple(dist) if dist is not None else (0.0,) * 5)
        if model == "fisheye":
            return FisheyeCamera(w, h, fx, fy, cx, cy, tuple(dist) if dist is not None else (0.0,) * 4)
    except (ShapeError, TypeError, ValueError) as exc:
        raise RigError(f"{where}.distortion: {exc}") from None
    raise RigError(f"{where}.model: expected 'pinhole' or 'fisheye', got {model!r}")
