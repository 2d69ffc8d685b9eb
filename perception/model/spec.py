"""The network's named inputs and outputs: one table, read by the network, the export, every backend,
the INT8 calibrator and the tests, so that a name or a shape is written once.

Inputs (B = batch; 1 in an exported graph), all static:

=================  ===========================  =======  ==============================================
name               shape                        dtype    meaning
=================  ===========================  =======  ==============================================
pillar_features    (B, P, M, F)                 float32  per-point features of each pillar (pillarization op)
pillar_num_points  (B, P)                       int32    points in each pillar; 0 = padding pillar
pillar_coords      (B, P, 2)                    int32    (iy, ix) grid cell of each pillar
images             (B, N, 3, H, W)              float32  normalized images (image preprocess op)
cam_lut            (B, N, Z, Yf, Xf, 2)         float32  where each fused-grid cell at height z falls in
                                                         camera n: (u, v) normalized to [-1, 1]
                                                         (GridSample convention, align_corners=False)
cam_valid          (B, N, Z, Yf, Xf)            float32  1 where that point is in front of camera n and
                                                         inside its image, else 0; where 0, cam_lut is
                                                         OUTSIDE_LUT (-2, -2): far enough out that
                                                         GridSample's zero padding gives exactly 0
radar_bev          (B, R, ny, nx)               float32  radar raster (radar raster op)
lidar_mask         (B,)                         float32  1 = LiDAR present, 0 = missing (inputs zeros)
radar_mask         (B,)                         float32  same for the radar
camera_mask        (B, N)                       float32  same per camera
=================  ===========================  =======  ==============================================

with P = ``lidar.max_pillars``, M = ``lidar.max_points_per_pillar``, F = ``lidar.point_features``,
N = ``camera.num_cameras``, Z = ``len(camera.heights_m)``, (ny, nx) the grid, (Yf, Xf) = grid /
``fuse_stride``, R = ``radar.input_channels``.

Outputs, on the fused grid (Yf, Xf): ``heatmap`` (B, K, Yf, Xf) class probabilities (sigmoid applied),
``offset`` (B, 2, ...) sub-cell x y offset of the centre in cells, ``height`` (B, 1, ...) centre z in
metres, ``size`` (B, 3, ...) log of length width height in metres, ``rot`` (B, 2, ...) sin cos of yaw,
``velocity`` (B, 2, ...) vx vy in m/s (ego frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.config import PipelineConfig

__all__ = [
    "OUTSIDE_LUT","INPUT_NAMES", "OUTPUT_NAMES", "TensorSpec", "input_specs", "output_specs", "random_inputs"]

# cam_lut where a camera does not see a sample: two map widths out, so that every bilinear corner
# GridSample (zero padding) reads is outside the map and the sample is exactly 0.
OUTSIDE_LUT = -2.0

INPUT_NAMES: tuple[str, ...] = (
    "pillar_features",
    "pillar_num_points",
    "pillar_coords",
    "images",
    "cam_lut",
    "cam_valid",
    "radar_bev",
    "lidar_mask",
    "radar_mask",
    "camera_mask",
)
OUTPUT_NAMES: tuple[str, ...] = ("heatmap", "offset", "height", "size", "rot", "velocity")

# Channels of each regression output (the heatmap has one per class).
REGRESSION_CHANNELS: dict[str, int] = {"offset": 2, "height": 1, "size": 3, "rot": 2, "velocity": 2}


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor's static shape and numpy dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype

    def check(self, value: object) -> None:
        """Raise ``ShapeError`` naming this input if ``value`` has another shape or dtype."""
        from perception.errors import ShapeError

        shape = tuple(getattr(value, "shape", ()))
        dtype = getattr(value, "dtype", None)
        if shape != self.shape:
            raise ShapeError(f"{self.name}: expected shape {self.shape}, got {shape}")
        name = str(dtype).removeprefix("torch.")
        if name != self.dtype.name:
            raise ShapeError(f"{self.name}: expected dtype {self.dtype.name}, got {name}")


def input_specs(cfg: PipelineConfig, batch: int = 1) -> dict[str, TensorSpec]:
    """The input table above for a config, in ``INPUT_NAMES`` order."""
    m, g = cfg.model, cfg.grid
    n, z = m.camera.num_cameras, len(m.camera.heights_m)
    yf, xf = g.ny // m.fuse_stride, g.nx // m.fuse_stride
    f32, i32 = np.dtype(np.float32), np.dtype(np.int32)
    shapes = {
        "pillar_features": ((batch, m.lidar.max_pillars, m.lidar.max_points_per_pillar, m.lidar.point_features), f32),
        "pillar_num_points": ((batch, m.lidar.max_pillars), i32),
        "pillar_coords": ((batch, m.lidar.max_pillars, 2), i32),
        "images": ((batch, n, 3, m.camera.image_height, m.camera.image_width), f32),
        "cam_lut": ((batch, n, z, yf, xf, 2), f32),
        "cam_valid": ((batch, n, z, yf, xf), f32),
        "radar_bev": ((batch, m.radar.input_channels, g.ny, g.nx), f32),
        "lidar_mask": ((batch,), f32),
        "radar_mask": ((batch,), f32),
        "camera_mask": ((batch, n), f32),
    }
    return {name: TensorSpec(name, *shapes[name]) for name in INPUT_NAMES}


def output_specs(cfg: PipelineConfig, batch: int = 1) -> dict[str, TensorSpec]:
    """The output table above for a config, in ``OUTPUT_NAMES`` order (float32)."""
    m, g = cfg.model, cfg.grid
    yf, xf = g.ny // m.fuse_stride, g.nx // m.fuse_stride
    channels = {"heatmap": m.num_classes, **REGRESSION_CHANNELS}
    return {name: TensorSpec(name, (batch, channels[name], yf, xf), np.dtype(np.float32)) for name in OUTPUT_NAMES}


def random_inputs(cfg: PipelineConfig, seed: int = 0, batch: int = 1, pillar_fill: float = 0.5) -> dict[str, np.ndarray]:
    """Plausible random inputs: ``pillar_fill`` of the pillars used (distinct cells, 1..M points each,
    features zero past the count), images ~ N(0, 1), LUT coordinates partly outside the images with a
    matching ``cam_valid``, a sparse radar raster, all masks 1. For export checks and shape tests."""
    rng = np.random.default_rng(seed)
    specs = input_specs(cfg, batch)
    g, m = cfg.grid, cfg.model
    p, mp, _ = specs["pillar_features"].shape[1:]
    used = max(1, min(p, int(p * pillar_fill), g.nx * g.ny))
    out: dict[str, np.ndarray] = {}
    feats = np.zeros(specs["pillar_features"].shape, np.float32)
    counts = np.zeros(specs["pillar_num_points"].shape, np.int32)
    coords = np.zeros(specs["pillar_coords"].shape, np.int32)
    for b in range(batch):
        cells = rng.choice(g.nx * g.ny, size=used, replace=False)
        counts[b, :used] = rng.integers(1, mp + 1, size=used)
        coords[b, :used, 0], coords[b, :used, 1] = cells // g.nx, cells % g.nx
        point_ok = np.arange(mp)[None, :] < counts[b, :used, None]
        feats[b, :used] = rng.normal(size=feats[b, :used].shape).astype(np.float32) * point_ok[..., None]
    out["pillar_features"], out["pillar_num_points"], out["pillar_coords"] = feats, counts, coords
    out["images"] = rng.normal(size=specs["images"].shape).astype(np.float32)
    lut = rng.uniform(-1.3, 1.3, size=specs["cam_lut"].shape).astype(np.float32)
    valid = (np.abs(lut) <= 1.0).all(axis=-1)
    lut[~valid] = OUTSIDE_LUT
    out["cam_lut"] = lut
    out["cam_valid"] = valid.astype(np.float32)
    radar = np.zeros(specs["radar_bev"].shape, np.float32)
    hit = rng.random((batch, g.ny, g.nx)) < 0.01
    for c in range(m.radar.input_channels):
        radar[:, c][hit] = rng.normal(size=int(hit.sum())) if c else 1.0
    out["radar_bev"] = radar
    for name in ("lidar_mask", "radar_mask", "camera_mask"):
        out[name] = np.ones(specs[name].shape, np.float32)
    return out
