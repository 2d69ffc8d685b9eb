"""Camera-to-BEV lookup table (Simple-BEV / Fast-BEV lifting): built once per calibration.

Every BEV cell centre at each of a few heights (ego frame) is projected into every camera's feature
map with ``calib`` (distortion and fisheye included). A sample sees a camera when the projection
is in front of it and inside the feature map (``[-0.5, W - 0.5) x [-0.5, H - 0.5)``, pixel centres
at integers as everywhere in calib); its bilinear weights then sample the feature map with the
coordinate clamped to the outer pixel centres (a border-replicating ``grid_sample`` with
``align_corners=True`` in pixel units). ``gather_camera_bev`` averages the cameras that see a
sample. The build runs in numpy: it happens when the calibration changes, not per frame.

``camera_bev_grid`` is the network's form of the same table, built directly: per camera, the
normalized (u, v) that GridSample reads and a 0/1 validity, from one fused numba kernel (about a
millisecond for six cameras of the tiny grid). The pipeline builds it per frame because the camera
extrinsics it is given are motion-compensated to the frame's stamp; it equals
``lut_to_grid(build_camera_bev_lut(...))`` (a test pins the two together).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit, prange

from calib import se3
from calib.camera import CameraModel, FisheyeCamera, PinholeCamera
from perception.config import GridConfig
from perception.errors import ShapeError
from perception.ops.image_preprocess import ImageTransform

__all__ = ["CameraBevLut", "bev_cell_centres", "build_camera_bev_lut", "camera_bev_grid", "feature_camera"]


@dataclass(frozen=True, eq=False)
class CameraBevLut:
    """S = Z * ny * nx samples in (z, iy, ix) order, K slots each (K = the most cameras any sample sees).

    camera: (S, K) int32 camera index, -1 in unused slots (used slots come first, cameras in order);
    pixel: (S, K, 2) int32 ``[y0, x0]`` top-left feature pixel; the other corners are
    ``y1 = min(y0 + 1, Hf - 1)``, ``x1 = min(x0 + 1, Wf - 1)``; weight: (S, K, 4) float32 for
    (y0, x0), (y0, x1), (y1, x0), (y1, x1); inv_count: (S,) float32, 1 / cameras seeing the sample
    (0 where none). numpy arrays, or torch tensors after ``to(device)``.
    """

    camera: Any
    pixel: Any
    weight: Any
    inv_count: Any
    shape: tuple[int, int, int]
    feature_hw: tuple[int, int]
    num_cameras: int
    heights: tuple[float, ...]

    def to(self, device: Any) -> CameraBevLut:
        """The same table as torch tensors on ``device`` (do it once, keep the result)."""
        import torch

        def move(a: Any) -> Any:
            return (a if isinstance(a, torch.Tensor) else torch.from_numpy(a)).to(device)

        return dataclasses.replace(self, camera=move(self.camera), pixel=move(self.pixel), weight=move(self.weight),
                                   inv_count=move(self.inv_count))

    @property
    def coverage(self) -> float:
        """Fraction of samples that at least one camera sees."""
        inv = self.inv_count
        inv = inv.cpu().numpy() if hasattr(inv, "cpu") else np.asarray(inv)
        return float((inv > 0).mean()) if inv.size else 0.0


def bev_cell_centres(grid: GridConfig, heights: Sequence[float], bev_stride: int = 1) -> np.ndarray:
    """(Z * ny' * nx', 3) float64 ego points in (z, iy, ix) order for the grid coarsened by ``bev_stride``."""
    if isinstance(bev_stride, bool) or not isinstance(bev_stride, int) or bev_stride < 1 \
            or grid.nx % bev_stride or grid.ny % bev_stride:
        raise ValueError(f"bev_stride: expected a positive integer dividing the grid {grid.ny} x {grid.nx}, got {bev_stride!r}")
    cell = grid.cell_m * bev_stride
    xs = grid.x_min + (np.arange(grid.nx // bev_stride) + 0.5) * cell
    ys = grid.y_min + (np.arange(grid.ny // bev_stride) + 0.5) * cell
    z, y, x = np.meshgrid(np.asarray(heights, np.float64), ys, xs, indexing="ij")
    return np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)


def feature_camera(camera: CameraModel, transform: ImageTransform, out_hw: tuple[int, int], stride: int) -> CameraModel:
    """The camera as seen by a feature map of ``stride`` computed from the image that
    ``preprocess_images(..., transform, out_hw)`` produced: the pixel maps compose
    (resize with half-pixel centres, crop, stride) into one affine map of u and v."""
    oh, ow = out_hw
    if oh % stride or ow % stride:
        raise ValueError(f"stride: {stride} does not divide the network input {out_hw}")
    (rw, rh), (cx0, cy0) = transform.resize_wh, transform.crop_xy
    sx, sy = rw / camera.width, rh / camera.height
    return dataclasses.replace(camera, width=ow // stride, height=oh // stride, fx=camera.fx * sx / stride,
                               fy=camera.fy * sy / stride, cx=((camera.cx + 0.5) * sx - cx0) / stride - 0.5,
                               cy=((camera.cy + 0.5) * sy - cy0) / stride - 0.5)


def _corner_weights(coord: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    c = np.clip(coord, 0.0, size - 1)
    i0 = np.floor(c)
    return i0.astype(np.int32), (c - i0)


def _checked(ego_T_cameras: Any, cameras: Sequence[CameraModel], heights: Sequence[float],
             ) -> tuple[np.ndarray, tuple[int, int], tuple[float, ...]]:
    """The arguments both builders share, checked: (N, 4, 4) float64 poses, the feature maps' one
    (height, width), the heights as floats."""
    T = np.asarray(ego_T_cameras, np.float64)
    n = len(cameras)
    if T.shape != (n, 4, 4):
        raise ShapeError(f"ego_T_cameras: expected ({n}, 4, 4) for {n} cameras, got {T.shape}")
    if n == 0:
        raise ShapeError("cameras: expected at least one camera")
    sizes = {(c.height, c.width) for c in cameras}
    if len(sizes) != 1:
        raise ShapeError(f"cameras: the feature maps must share one size, got {sorted(sizes)}")
    hs = tuple(float(h) for h in heights)
    if not hs:
        raise ShapeError("heights: expected at least one height")
    return T, sizes.pop(), hs


def build_camera_bev_lut(ego_T_cameras: Any, cameras: Sequence[CameraModel], grid: GridConfig, heights: Sequence[float], *,
                         bev_stride: int = 1, min_depth: float = 0.1) -> CameraBevLut:
    """Build the table for N cameras.

    ego_T_cameras: (N, 4, 4) float64 camera (optical frame) -> ego; cameras: N camera models of
    the *feature maps* (all the same size; see ``feature_camera``); heights: ego z of the samples
    in metres; bev_stride: the BEV feature map is the grid coarsened by this factor.
    """
    T, (hf, wf), heights = _checked(ego_T_cameras, cameras, heights)
    n = len(cameras)
    pts = bev_cell_centres(grid, heights, bev_stride)
    s = len(pts)
    seen = np.zeros((s, n), bool)
    uv = np.zeros((s, n, 2))
    for k, (cam, ego_T_cam) in enumerate(zip(cameras, T)):
        uv[:, k], seen[:, k] = cam.project(se3.transform_points(se3.invert(ego_T_cam), pts), min_depth=min_depth)
    count = seen.sum(axis=1)
    slots = max(int(count.max()), 1)
    slot = np.cumsum(seen, axis=1) - 1  # slot of camera k for the samples that it sees
    rows, cams = np.nonzero(seen)
    camera = np.full((s, slots), -1, np.int32)
    pixel = np.zeros((s, slots, 2), np.int32)
    weight = np.zeros((s, slots, 4), np.float32)
    x0, fx = _corner_weights(uv[rows, cams, 0], wf)
    y0, fy = _corner_weights(uv[rows, cams, 1], hf)
    sl = slot[rows, cams]
    camera[rows, sl] = cams
    pixel[rows, sl] = np.stack([y0, x0], axis=1)
    weight[rows, sl] = np.stack([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx], axis=1)
    inv_count = np.where(count > 0, 1.0 / np.maximum(count, 1), 0.0).astype(np.float32)
    shape = (len(heights), grid.ny // bev_stride, grid.nx // bev_stride)
    return CameraBevLut(camera, pixel, weight, inv_count, shape, (hf, wf), n, heights)


# -- the network's form, built directly --------------------------------------------------------------

_PINHOLE, _FISHEYE = 0, 1


@njit(parallel=True, cache=True, fastmath=False, nogil=True)
def _project_grid(pts: np.ndarray, cam_T_ego: np.ndarray, kind: np.ndarray, params: np.ndarray, min_depth: float,
                  uv: np.ndarray, valid: np.ndarray) -> None:  # pragma: no cover - compiled
    # The arithmetic of calib.camera's project(), in the same order and in float64, point by point.
    n = cam_T_ego.shape[0]
    s = pts.shape[0]
    for k in range(n):
        R = cam_T_ego[k]
        fx, fy, cx, cy, w, h = params[k, 0], params[k, 1], params[k, 2], params[k, 3], params[k, 4], params[k, 5]
        d = params[k, 6:15]
        for i in prange(s):
            px, py, pz = pts[i, 0], pts[i, 1], pts[i, 2]
            X = px * R[0, 0] + py * R[0, 1] + pz * R[0, 2] + R[0, 3]
            Y = px * R[1, 0] + py * R[1, 1] + pz * R[1, 2] + R[1, 3]
            Z = px * R[2, 0] + py * R[2, 1] + pz * R[2, 2] + R[2, 3]
            ok = False
            u = 0.0
            v = 0.0
            if kind[k] == _PINHOLE:
                if Z > min_depth:
                    x = X / Z
                    y = Y / Z
                    r2 = x * x + y * y
                    radial = (1 + d[0] * r2 + d[1] * r2**2 + d[4] * r2**3) / (1 + d[5] * r2 + d[6] * r2**2 + d[7] * r2**3)
                    xd = x * radial + 2 * d[2] * x * y + d[3] * (r2 + 2 * x * x)
                    yd = y * radial + d[2] * (r2 + 2 * y * y) + 2 * d[3] * x * y
                    u = fx * xd + cx
                    v = fy * yd + cy
                    ok = True
            else:
                r = np.hypot(X, Y)
                theta = np.arctan2(r, Z)
                if theta < d[8] and np.sqrt(X * X + Y * Y + Z * Z) > min_depth:
                    t2 = theta * theta
                    td = theta * (1 + d[0] * t2 + d[1] * t2**2 + d[2] * t2**3 + d[3] * t2**4)
                    scale = td / r if r > 1e-12 else 1.0 / max(Z, 1e-12)
                    u = fx * X * scale + cx
                    v = fy * Y * scale + cy
                    ok = True
            if ok and u >= -0.5 and u < w - 0.5 and v >= -0.5 and v < h - 0.5:
                # clamped to the outer pixel centres, normalized as GridSample (align_corners=False) reads it
                uc = min(max(u, 0.0), w - 1.0)
                vc = min(max(v, 0.0), h - 1.0)
                uv[k, i, 0] = (2.0 * uc + 1.0) / w - 1.0
                uv[k, i, 1] = (2.0 * vc + 1.0) / h - 1.0
                valid[k, i] = 1.0
            else:
                uv[k, i, 0] = -2.0  # perception.model.spec.OUTSIDE_LUT: GridSample reads exactly 0
                uv[k, i, 1] = -2.0
                valid[k, i] = 0.0


_CENTRES: dict[tuple, np.ndarray] = {}


def _cached_centres(grid: GridConfig, heights: tuple[float, ...], bev_stride: int) -> np.ndarray:
    key = (grid.x_min, grid.y_min, grid.cell_m, grid.nx, grid.ny, heights, bev_stride)
    pts = _CENTRES.get(key)
    if pts is None:
        if len(_CENTRES) > 8:
            _CENTRES.clear()
        pts = _CENTRES[key] = np.ascontiguousarray(bev_cell_centres(grid, heights, bev_stride))
    return pts


def _camera_params(cam: CameraModel) -> tuple[int, np.ndarray]:
    p = np.zeros(15)
    p[:6] = cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height
    if isinstance(cam, PinholeCamera):
        p[6:14] = cam.distortion  # k1 k2 p1 p2 k3 k4 k5 k6
        return _PINHOLE, p
    if isinstance(cam, FisheyeCamera):
        p[6:10] = cam.distortion
        p[14] = np.deg2rad(cam.max_fov_deg) / 2
        return _FISHEYE, p
    raise TypeError(f"camera_bev_grid: unsupported camera model {type(cam).__name__}")


def camera_bev_grid(ego_T_cameras: Any, cameras: Sequence[CameraModel], grid: GridConfig, heights: Sequence[float], *,
                    bev_stride: int = 1, min_depth: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The network's camera inputs directly: ``cam_lut`` (N, Z, Yf, Xf, 2) float32, the normalized
    (u, v) GridSample reads (coordinates clamped to the outer pixel centres; (-2, -2) where the
    camera does not see the sample), and ``cam_valid`` (N, Z, Yf, Xf) float32 1 where it does. Same arguments and rules as
    ``build_camera_bev_lut``."""
    T, _, heights = _checked(ego_T_cameras, cameras, heights)
    n = len(cameras)
    pts = _cached_centres(grid, heights, bev_stride)
    cam_T_ego = np.ascontiguousarray(se3.invert(T)[:, :3, :])
    kinds = np.zeros(n, np.int64)
    params = np.zeros((n, 15))
    for k, cam in enumerate(cameras):
        kinds[k], params[k] = _camera_params(cam)
    s = len(pts)
    uv = np.empty((n, s, 2), np.float32)
    valid = np.empty((n, s), np.float32)
    _project_grid(pts, cam_T_ego, kinds, params, float(min_depth), uv, valid)
    shape = (len(heights), grid.ny // bev_stride, grid.nx // bev_stride)
    return uv.reshape(n, *shape, 2), valid.reshape(n, *shape)
