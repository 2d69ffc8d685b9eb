"""Point-cloud registration for calibration tools (desktop only: needs the ``calib`` extra, open3d).

``register_clouds`` estimates ``target_T_source`` by point-to-plane ICP on voxel-downsampled
clouds, e.g. to refine a LiDAR-to-LiDAR extrinsic from a static scene, or to check a logged ego
motion between two sweeps. The on-vehicle core never imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from perception.errors import BevfuseError, ShapeError

__all__ = ["Registration", "register_clouds"]


@dataclass(frozen=True)
class Registration:
    """target_T_source: (4, 4) float64; fitness: share of source points with a correspondence;
    inlier_rmse_m: RMS distance of those correspondences."""

    target_T_source: np.ndarray
    fitness: float
    inlier_rmse_m: float


def _open3d():  # noqa: ANN202 - the module
    try:
        import open3d as o3d
    except ImportError as exc:
        raise BevfuseError(f"calib.registration needs open3d: pip install 'bevfuse[calib]' ({exc})") from None
    return o3d


def register_clouds(
    source_xyz: npt.ArrayLike,
    target_xyz: npt.ArrayLike,
    init_target_T_source: npt.ArrayLike | None = None,
    voxel_m: float = 0.2,
    max_correspondence_m: float = 1.0,
    iterations: int = 60,
) -> Registration:
    """Point-to-plane ICP of ``source_xyz: (N, 3)`` onto ``target_xyz: (M, 3)`` (metres)."""
    o3d = _open3d()
    src = np.asarray(source_xyz, dtype=np.float64)
    tgt = np.asarray(target_xyz, dtype=np.float64)
    for name, arr in (("source_xyz", src), ("target_xyz", tgt)):
        if arr.ndim != 2 or arr.shape[1] < 3:
            raise ShapeError(f"{name}: expected (N, 3) points, got shape {arr.shape}")
    src, tgt = src[:, :3], tgt[:, :3]
    src = src[np.isfinite(src).all(axis=1)]
    tgt = tgt[np.isfinite(tgt).all(axis=1)]
    if len(src) < 10 or len(tgt) < 10:
        raise ShapeError(f"register_clouds: need at least 10 finite points per cloud, got {len(src)} and {len(tgt)}")
    init = np.eye(4) if init_target_T_source is None else np.asarray(init_target_T_source, dtype=np.float64)

    def prepare(xyz: np.ndarray):  # noqa: ANN202
        pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
        pc = pc.voxel_down_sample(voxel_m)
        # normals for point-to-plane: neighbours within a few voxels, as the ground and walls need
        pc.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=voxel_m * 4, max_nn=30))
        return pc

    s, t = prepare(src), prepare(tgt)
    result = o3d.pipelines.registration.registration_icp(
        s, t, max_correspondence_m, init,
        o3d.pipelines.registration.TransformationEstimationPointToPlane(),
        o3d.pipelines.registration.ICPConvergenceCriteria(max_iteration=iterations),
    )
    return Registration(np.asarray(result.transformation, dtype=np.float64).copy(), float(result.fitness), float(result.inlier_rmse))
