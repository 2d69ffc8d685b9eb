"""From synchronized frames to network inputs and training batches.

``TrainFrame`` is what a ``SyncedFrame`` keeps for training: the LiDAR points (x y z intensity
time_lag, ego frame), the radar points, the camera images already brought to the network's input
size (uint8, by the image preprocess op, so that training sees the pixels inference sees), each
camera's intrinsics at that size and its extrinsics, and the ground-truth boxes.

``frame_inputs`` turns one frame into the named inputs of ``perception.model.spec`` through the
pipeline's ops (pillarization, image preprocess, camera-to-BEV lookup table, radar raster): the same
path for training, evaluation, INT8 calibration and inference. ``make_batch`` adds the global
augmentation, modality dropout and the CenterPoint targets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from calib.camera import CameraModel
from calib.rig import Rig
from perception.config import PipelineConfig
from perception.errors import ConfigError
from perception.model.augment import (
    AugmentConfig,
    BoxArrays,
    augment_extrinsics,
    augment_matrix,
    transform_boxes,
    transform_points,
    transform_vectors,
)
from perception.model.config import CAMERA_STRIDE
from perception.model.spec import INPUT_NAMES, OUTSIDE_LUT, input_specs
from perception.model.targets import build_targets
from perception.types import SyncedFrame

if TYPE_CHECKING:
    from perception.ops.camera_bev_lut import CameraBevLut
    from perception.ops.image_preprocess import ImageTransform

__all__ = [
    "DropoutConfig",
    "RadarArrays",
    "TrainFrame",
    "cached_frames",
    "calibration_inputs",
    "camera_setup",
    "frame_inputs",
    "frames_from_logs",
    "lut_to_grid",
    "make_batch",
    "to_train_frame",
]


@dataclass(frozen=True)
class DropoutConfig:
    """Modality dropout: each training frame loses all its LiDAR, all its cameras or its radar with
    these probabilities (never all three: then the LiDAR is kept), and each remaining camera with
    ``single_camera``. A dropped sensor is zeros + mask 0, exactly what a missing one looks like."""

    lidar: float = 0.1
    camera: float = 0.15
    radar: float = 0.1
    single_camera: float = 0.05


@dataclass(frozen=True, eq=False)
class RadarArrays:
    """Radar points in the ego frame: xyz (R, 3) float32, rcs (R,) float32, velocity (R, 2) float32
    ego-motion-compensated vx vy, time_lag (R,) float32 seconds (>= 0, 0 = newest)."""

    xyz: np.ndarray
    rcs: np.ndarray
    velocity: np.ndarray
    time_lag: np.ndarray


@dataclass(frozen=True, eq=False)
class TrainFrame:
    """One frame for training or evaluation (see the module docstring). points: (P, 5) float32;
    images: (N, h, w, 3) uint8 at the network's input size; camera_ok: (N,) bool; cameras: the N
    camera models of the *feature maps* (``camera_bev_lut.feature_camera``); ego_T_cam: (N, 4, 4)
    float64 camera -> ego at the frame stamp; boxes in the ego frame."""

    stamp_ns: int
    points: np.ndarray | None
    radar: RadarArrays | None
    images: np.ndarray
    camera_ok: np.ndarray
    cameras: tuple[CameraModel, ...]
    ego_T_cam: np.ndarray
    boxes: BoxArrays
    source: str = ""


def camera_setup(rig: Rig, cfg: PipelineConfig, image_hw: Sequence[tuple[int, int] | None] | None = None,
                 ) -> tuple[list[str], list[ImageTransform], list[CameraModel]]:
    """The network's cameras (the rig's first ``num_cameras``, in rig order), one ``ImageTransform``
    each (resize to cover the input, crop centred and at the bottom: ``ImageTransform.fit``), and the
    camera model of each one's feature map. ``image_hw``: the actual image sizes where known; a
    pinhole camera whose rig intrinsics are for another size is rescaled to it."""
    from perception.ops.camera_bev_lut import feature_camera
    from perception.ops.image_preprocess import ImageTransform

    cams = rig.cameras
    n = cfg.model.camera.num_cameras
    if len(cams) < n:
        raise ConfigError(f"model.camera.num_cameras: {n}, but rig {rig.source} has {len(cams)} cameras")
    oh, ow = cfg.model.camera.image_height, cfg.model.camera.image_width
    transforms, feature_cams = [], []
    for i, spec in enumerate(cams[:n]):
        cam = spec.intrinsics
        hw = image_hw[i] if image_hw is not None else None
        if hw is not None and hw != (cam.height, cam.width):
            if not hasattr(cam, "scaled"):
                raise ConfigError(f"rig {rig.source}: camera {spec.name}: intrinsics for {cam.width}x{cam.height}, "
                                  f"images {hw[1]}x{hw[0]}, and a {type(cam).__name__} cannot be rescaled")
            cam = cam.scaled(hw[1] / cam.width, hw[0] / cam.height)
        t = ImageTransform.fit((cam.height, cam.width), (oh, ow), scale=max(ow / cam.width, oh / cam.height))
        transforms.append(t)
        feature_cams.append(feature_camera(cam, t, (oh, ow), CAMERA_STRIDE))
    return [c.name for c in cams[:n]], transforms, feature_cams


def _lidar_points(frame: SyncedFrame, cfg: PipelineConfig) -> np.ndarray | None:
    """(M, 5) float32 x y z intensity time_lag of the frame's sweep, without the points that no
    global rotation can bring into the grid (the pillarization would drop them anyway): half the
    memory of a cached frame with a 100 m LiDAR. A field the cloud lacks is 0."""
    cloud = frame.lidar
    if cloud is None or len(cloud) == 0:
        return None
    cols = np.array([0, 1, 2] + [cloud.fields.index(n) if n in cloud.fields else -1 for n in ("intensity", "time_lag")], np.int64)
    g = cfg.grid
    reach = float(np.hypot(max(-g.x_min, g.x_max), max(-g.y_min, g.y_max)) * 1.1)
    return _select_points(np.ascontiguousarray(cloud.points, dtype=np.float32), cols, reach)


@njit(cache=True, nogil=True)
def _select_points(points: np.ndarray, cols: np.ndarray, reach: float) -> np.ndarray:  # pragma: no cover - numba
    # One pass to count, one to copy: the column pick, the range test and the copy of the numpy
    # version (hstack + hypot + boolean index) without its four temporaries.
    n = points.shape[0]
    r2 = reach * reach
    keep = np.empty(n, np.bool_)
    m = 0
    for i in range(n):
        x = np.float64(points[i, 0])
        y = np.float64(points[i, 1])
        keep[i] = x * x + y * y < r2
        m += keep[i]
    out = np.empty((m, cols.size), np.float32)
    j = 0
    for i in range(n):
        if keep[i]:
            for c in range(cols.size):
                out[j, c] = points[i, cols[c]] if cols[c] >= 0 else np.float32(0.0)
            j += 1
    return out


def _radar_arrays(frame: SyncedFrame) -> RadarArrays | None:
    scan = frame.radar
    if scan is None or len(scan) == 0:
        return None
    lag = np.zeros(len(scan), np.float32) if scan.time_offset_ns is None else (-scan.time_offset_ns * 1e-9).astype(np.float32)
    return RadarArrays(scan.points.copy(), scan.rcs.copy(), scan.velocity_comp.copy(), np.maximum(lag, 0.0))


def to_train_frame(frame: SyncedFrame, rig: Rig, cfg: PipelineConfig, class_names: Sequence[str], source: str = "") -> TrainFrame:
    """Keep what training needs of ``frame`` (images resized through the preprocess op)."""
    from perception.ops.image_preprocess import IMAGENET_MEAN, IMAGENET_STD, preprocess_images

    n = cfg.model.camera.num_cameras
    names = [c.name for c in rig.cameras[:n]]
    sizes = [(frame.images[c].height, frame.images[c].width) if c in frame.images else None for c in names]
    names, transforms, cameras = camera_setup(rig, cfg, sizes)
    oh, ow = cfg.model.camera.image_height, cfg.model.camera.image_width
    images = np.zeros((len(names), oh, ow, 3), np.uint8)
    ok = np.zeros(len(names), bool)
    ego_T_cam = np.stack([frame.ego_T_sensor.get(n, rig[n].ego_T_sensor) for n in names]).astype(np.float64)
    for i, name in enumerate(names):
        img = frame.images.get(name)
        if img is None:
            continue
        norm = preprocess_images(img.image[None], transforms[i], (oh, ow))[0]  # (3, oh, ow) normalized
        # Back to uint8 for a compact cache; the round trip loses under half a grey level.
        pix = norm.transpose(1, 2, 0) * np.array(IMAGENET_STD, np.float32) + np.array(IMAGENET_MEAN, np.float32)
        images[i] = np.clip(np.rint(pix), 0, 255).astype(np.uint8)
        ok[i] = True
    boxes = _gt_boxes(frame, class_names)
    return TrainFrame(frame.stamp_ns, _lidar_points(frame, cfg), _radar_arrays(frame), images, ok, tuple(cameras), ego_T_cam,
                      boxes, source)


def _gt_boxes(frame: SyncedFrame, class_names: Sequence[str]) -> BoxArrays:
    gt = frame.ground_truth
    if gt is None or len(gt) == 0:
        return BoxArrays(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros((0, 2)), np.zeros(0, np.int64))
    index = {name: i for i, name in enumerate(class_names)}
    names = gt.labels_as_names
    keep = np.array([n in index for n in names], bool)
    label = np.array([index.get(n, -1) for n in names], np.int64)
    num = None
    if gt.num_lidar_pts is not None or gt.num_radar_pts is not None:
        num = np.zeros(len(gt), np.int64)
        for counts in (gt.num_lidar_pts, gt.num_radar_pts):
            if counts is not None:
                num += counts
        num = num[keep]
    attribute = None if gt.attribute is None else gt.attribute[keep]
    return BoxArrays(gt.center[keep], gt.size[keep], gt.yaw[keep], gt.velocity[keep], label[keep], num, attribute)


def frames_from_logs(paths: Iterable[str | Path], cfg: PipelineConfig, every: int = 1, limit: int | None = None,
                     ) -> Iterator[TrainFrame]:
    """``TrainFrame``s of drive logs (every ``every``-th synchronized frame, at most ``limit``)."""
    from perception.io.base import open_log
    from perception.sync.replay import frames_from_log

    count = 0
    for path in paths:
        reader = open_log(path)
        stream = frames_from_log(reader, None, cfg.sync)
        for i, frame in enumerate(stream):
            if i % every:
                continue
            yield to_train_frame(frame, stream.rig, cfg, cfg.model.classes, source=f"{path}#{i}")
            count += 1
            if limit is not None and count >= limit:
                return


def lut_to_grid(lut: CameraBevLut) -> tuple[np.ndarray, np.ndarray]:
    """The lookup-table op's slots -> the network's per-camera inputs: ``cam_lut`` (N, Z, Yf, Xf, 2)
    normalized (u, v) and ``cam_valid`` (N, Z, Yf, Xf).

    The op stores, per sample and seeing camera, the top-left feature pixel and four bilinear
    weights of a coordinate already clamped to the outer pixel centres; the coordinate is recovered
    as ``x0 + (w01 + w11)``, ``y0 + (w10 + w11)`` and normalized as GridSample (align_corners=False)
    reads it, ``(2 u + 1) / W - 1``. Inside the pixel-centre range GridSample's zero padding never
    applies, so the graph samples exactly what the op's gather kernel does (a test checks it).
    """
    z, ny, nx = lut.shape
    hf, wf = lut.feature_hw
    n = lut.num_cameras
    camera, pixel, weight = np.asarray(lut.camera), np.asarray(lut.pixel), np.asarray(lut.weight)
    uv = np.full((n, z * ny * nx, 2), OUTSIDE_LUT, np.float32)
    valid = np.zeros((n, z * ny * nx), np.float32)
    rows, slots = np.nonzero(camera >= 0)
    cams = camera[rows, slots]
    w = weight[rows, slots]
    u = pixel[rows, slots, 1] + (w[:, 1] + w[:, 3])
    v = pixel[rows, slots, 0] + (w[:, 2] + w[:, 3])
    uv[cams, rows, 0] = (2.0 * u + 1.0) / wf - 1.0
    uv[cams, rows, 1] = (2.0 * v + 1.0) / hf - 1.0
    valid[cams, rows] = 1.0
    return uv.reshape(n, z, ny, nx, 2), valid.reshape(n, z, ny, nx)


def frame_inputs(frame: TrainFrame, cfg: PipelineConfig, A: np.ndarray | None = None,
                 drop: tuple[bool, bool, bool] = (False, False, False), camera_drop: np.ndarray | None = None,
                 ) -> dict[str, np.ndarray]:
    """The named inputs (batch 1) of one frame, optionally moved by the augmentation ``A`` (4, 4) and
    with (lidar, camera, radar) dropped and single cameras dropped (``camera_drop`` (N,) bool)."""
    from perception.ops.camera_bev_lut import camera_bev_grid
    from perception.ops.image_preprocess import ImageTransform, preprocess_images
    from perception.ops.pillarization import pillarize
    from perception.ops.radar_raster import rasterize_radar

    specs = input_specs(cfg)
    m = cfg.model
    out = {name: np.zeros(spec.shape, spec.dtype) for name, spec in specs.items()}
    drop_lidar, drop_camera, drop_radar = drop
    if frame.points is not None and not drop_lidar:
        pts = frame.points
        if A is not None:
            pts = pts.copy()
            pts[:, :3] = transform_points(A, pts[:, :3])
        p = pillarize(pts, cfg.grid, max_points_per_pillar=m.lidar.max_points_per_pillar, max_pillars=m.lidar.max_pillars,
                      pad=True)
        if p.features.shape[-1] != m.lidar.point_features:
            raise ConfigError(f"model.lidar.point_features: {m.lidar.point_features}, but the pillarization op writes "
                              f"{p.features.shape[-1]} features per point")
        out["pillar_features"][0], out["pillar_coords"][0], out["pillar_num_points"][0] = p.features, p.coords, p.num_points
        out["lidar_mask"][0] = 1.0
    if frame.radar is not None and not drop_radar:
        radar = frame.radar
        if A is not None:
            radar = replace(radar, xyz=transform_points(A, radar.xyz), velocity=transform_vectors(A, radar.velocity))
        pts = np.column_stack([radar.xyz, radar.rcs, radar.velocity, radar.time_lag]).astype(np.float32)
        out["radar_bev"][0] = rasterize_radar(pts, cfg.grid).bev
        out["radar_mask"][0] = 1.0
    cams = frame.camera_ok.copy()
    if drop_camera:
        cams[:] = False
    if camera_drop is not None:
        cams &= ~camera_drop
    if cams.any():
        oh, ow = m.camera.image_height, m.camera.image_width
        ego_T_cam = frame.ego_T_cam if A is None else augment_extrinsics(A, frame.ego_T_cam)
        # Built per frame: the extrinsics are motion-compensated to this frame's stamp, and the
        # direct build costs a few milliseconds (equal to lut_to_grid of the slot table; tested).
        uv, valid = camera_bev_grid(ego_T_cam, frame.cameras, cfg.grid, m.camera.heights_m, bev_stride=m.fuse_stride)
        uv[~cams] = OUTSIDE_LUT  # a masked camera sees nothing either (the contract of spec.py)
        out["cam_lut"][0], out["cam_valid"][0] = uv, valid * cams[:, None, None, None]
        # The cached images are at the input size already: an identity resize, normalisation only.
        out["images"][0] = preprocess_images(frame.images, ImageTransform((ow, oh)), (oh, ow))
        out["images"][0][~cams] = 0.0
        out["camera_mask"][0] = cams.astype(np.float32)
    else:
        out["cam_lut"][:] = OUTSIDE_LUT  # no camera sees anything (the input contract of spec.py)
    return {name: out[name] for name in INPUT_NAMES}


def make_batch(frames: Sequence[TrainFrame], cfg: PipelineConfig, rng: np.random.Generator, augment: AugmentConfig | None,
               dropout: DropoutConfig | None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Batched inputs (``input_specs(cfg, len(frames))``) and CenterPoint targets of training frames."""
    inputs: dict[str, list[np.ndarray]] = {n: [] for n in INPUT_NAMES}
    targets: dict[str, list[np.ndarray]] = {n: [] for n in ("heatmap", "index", "mask", "regression", "velocity_mask")}
    for frame in frames:
        A, boxes = None, frame.boxes
        if boxes.num_points is not None:
            # Boxes without a single LiDAR or radar return are invisible to the sensors: as in the
            # nuScenes evaluation, which drops them from the ground truth, they are no targets.
            seen = boxes.num_points > 0
            boxes = BoxArrays(*(None if a is None else a[seen] for a in (boxes.center, boxes.size, boxes.yaw, boxes.velocity,
                                                                           boxes.label, boxes.num_points, boxes.attribute)))
        if augment is not None:
            A, yaw, flipped, scale = augment_matrix(rng, augment)
            boxes = transform_boxes(A, boxes, yaw, flipped, scale)
        drop, camera_drop = (False, False, False), None
        if dropout is not None:
            drop = (bool(rng.random() < dropout.lidar), bool(rng.random() < dropout.camera), bool(rng.random() < dropout.radar))
            if all(drop):
                drop = (False, True, True)
            camera_drop = rng.random(len(frame.camera_ok)) < dropout.single_camera
        x = frame_inputs(frame, cfg, A, drop, camera_drop)
        for n in INPUT_NAMES:
            inputs[n].append(x[n])
        t = build_targets(cfg, boxes.center, boxes.size, boxes.yaw, boxes.velocity, boxes.label)
        for n in targets:
            targets[n].append(getattr(t, n))
    return ({n: np.concatenate(v) for n, v in inputs.items()}, {n: np.stack(v) for n, v in targets.items()})


def calibration_inputs(paths: Sequence[str | Path], cfg: PipelineConfig, limit: int) -> Iterator[dict[str, np.ndarray]]:
    """Named inputs of up to ``limit`` frames of drive logs, for INT8 calibration (no augmentation)."""
    for frame in frames_from_logs(paths, cfg, limit=limit):
        yield frame_inputs(frame, cfg)


CACHE_VERSION = 1


def cached_frames(paths: Sequence[str | Path], cfg: PipelineConfig, every: int = 1, cache_dir: str | Path | None = None,
                  log: Callable[[str], None] = print) -> list[TrainFrame]:
    """``TrainFrame``s of drive logs, each log converted once and cached in ``cache_dir`` (one pickle
    per log, of this module's dataclasses, local use only) under a key of the log's path, size and
    time, ``every`` and the config; a changed log or config converts again."""
    import hashlib
    import json
    import pickle
    import time

    from perception.config import to_dict

    frames: list[TrainFrame] = []
    for path in paths:
        p = Path(path).resolve()
        stat = [(str(f.relative_to(p)), f.stat().st_size, int(f.stat().st_mtime)) for f in sorted(p.rglob("*")) if f.is_file()] \
            if p.is_dir() else [(p.name, p.stat().st_size, int(p.stat().st_mtime))]
        # What a TrainFrame depends on: the grid (point filter), the sync settings, the camera input.
        key = {"version": CACHE_VERSION, "log": str(p), "files": stat, "every": every, "grid": to_dict(cfg.grid),
               "sync": to_dict(cfg.sync), "camera": to_dict(cfg.model.camera), "classes": list(cfg.model.classes)}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        cache = Path(cache_dir) / f"{p.name}-{digest}.pkl" if cache_dir else None
        if cache is not None and cache.is_file():
            with cache.open("rb") as f:
                frames += pickle.load(f)  # noqa: S301 - our own cache, written below
            continue
        t0 = time.perf_counter()
        got = list(frames_from_logs([p], cfg, every=every))
        log(f"{p}: {len(got)} frames in {time.perf_counter() - t0:.0f} s")
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(cache.name + ".tmp")
            with tmp.open("wb") as f:
                pickle.dump(got, f, protocol=pickle.HIGHEST_PROTOCOL)
            tmp.replace(cache)
        frames += got
    return frames
