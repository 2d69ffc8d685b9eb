"""``Pipeline``: one ``SyncedFrame`` in, ``Detections`` (ego frame) out. Replay and the on-vehicle node
run this same object.

The path, top to bottom, each stage under a ``StageTimer`` (CUDA events on a GPU, no host sync)::

    preprocess   SyncedFrame -> named network inputs      perception.model.data (the same function
                                                          training and evaluation use: to_train_frame
                                                          + frame_inputs, through the ops)
    inference    inputs -> head maps                      a backend of perception.model.backends
    postprocess  head maps -> Detections                  CenterPoint decode + rotated BEV NMS (ops),
                                                          attributes from speed and height

Preprocessing goes through the model engineer's ``to_train_frame`` / ``frame_inputs`` on purpose:
training caches images as uint8 at the network's input size, so inference resizes to uint8 the same
way and the network sees the very pixels it was trained on.

On CUDA the preprocessed inputs go to the backend as torch tensors, so the head maps stay on the GPU
and decode + NMS run as CUDA kernels; the boxes come back to the host once, at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from calib.camera import PinholeCamera
from calib.rig import Rig, SensorSpec
from perception.bench.timing import StageTimer
from perception.boxes import transform_detections
from perception.config import PipelineConfig
from perception.errors import BevfuseError, ConfigError
from perception.types import Detections, Modality, PointCloud, RadarScan, SyncedFrame

__all__ = ["BACKEND_NAMES", "CorruptFrameError", "DecodeConfig", "Pipeline", "resolve_backend", "sanitize_frame", "world_detections"]

# CLI names -> perception.model.backends kinds
BACKEND_NAMES: dict[str, str] = {"torch": "torch", "cudagraph": "cuda-graph", "cuda-graph": "cuda-graph",
                                 "onnxruntime": "onnxruntime", "tensorrt": "tensorrt"}
STAGES = ("preprocess", "inference", "postprocess")


def resolve_backend(name: str, device: str) -> str:
    """``auto`` -> the fastest backend installed for ``device``; any other name unchanged.

    On a CPU that is ONNX Runtime (the exported graph with its optimizer and thread pool: the tiny
    network's forward in about half of eager torch's time on the 2-core development machine, and
    steady when other processes load the cores), else torch. On a GPU it is torch: CUDA graphs
    and TensorRT are chosen by name, after a warm-up the user sees.
    """
    if name != "auto":
        return name
    if str(device).startswith("cuda"):
        return "torch"
    import importlib.util

    return "onnxruntime" if importlib.util.find_spec("onnxruntime") is not None else "torch"


@dataclass(frozen=True)
class DecodeConfig:
    """Decode and NMS settings: the ``top_k`` best peaks with score >= ``score_threshold``, then
    rotated-IoU NMS per class at ``nms_iou``. The defaults are those the model was evaluated with."""

    score_threshold: float = 0.1
    top_k: int = 300
    nms_iou: float | None = None  # None: perception.model.evaluate.NMS_IOU


def world_detections(det: Detections, frame: SyncedFrame, world_frame: str = "world") -> Detections:
    """``det`` (ego frame at ``frame.stamp_ns``) in the world frame through ``frame.world_T_ego``.

    Raises ``ConfigError`` when the frame has no pose (NaN ``world_T_ego``)."""
    if not np.all(np.isfinite(frame.world_T_ego)):
        raise ConfigError(f"frame {frame.stamp_ns}: no pose (world_T_ego is NaN): detections stay in the ego frame")
    return transform_detections(det, frame.world_T_ego, world_frame)


class CorruptFrameError(BevfuseError):
    """A frame whose data cannot go into the network (e.g. a LiDAR sweep of only NaN points)."""


def sanitize_frame(frame: SyncedFrame, lidar_name: str = "LiDAR") -> tuple[SyncedFrame, list[str]]:
    """``frame`` without non-finite LiDAR points (any field) or radar points (position or RCS), and a
    line per sensor that had some.

    A LiDAR with no-return points marks them NaN (organized clouds), so a few are normal and only
    removed: a NaN that reached a pillar would make every output of the network NaN. A sweep with
    points but not one finite is corrupt: ``CorruptFrameError``, and the frame is skipped.
    """
    notes: list[str] = []
    lidar, radar = frame.lidar, frame.radar
    if lidar is not None and len(lidar):
        ok = np.isfinite(lidar.points).all(axis=1)
        if not ok.any():
            raise CorruptFrameError(f"{lidar_name}: all {len(lidar)} points of the sweep are NaN/inf")
        if not ok.all():
            notes.append(f"{lidar_name}: {int((~ok).sum())} NaN/inf points removed")
            lidar = PointCloud(lidar.stamp_ns, lidar.frame_id, lidar.points[ok], lidar.fields,
                               None if lidar.time_offset_ns is None else lidar.time_offset_ns[ok])
    if radar is not None and len(radar):
        ok = np.isfinite(radar.points).all(axis=1) & np.isfinite(radar.rcs)
        if not ok.all():
            notes.append(f"radar: {int((~ok).sum())} NaN/inf points removed")
            radar = RadarScan(radar.stamp_ns, radar.frame_id, radar.points[ok], radar.rcs[ok], radar.radial_velocity[ok],
                              radar.velocity[ok], radar.velocity_comp[ok],
                              None if radar.time_offset_ns is None else radar.time_offset_ns[ok],
                              {k: v[ok] for k, v in radar.extra.items()})
    if lidar is frame.lidar and radar is frame.radar:
        return frame, notes
    return replace(frame, lidar=lidar, radar=radar), notes


def _padded_rig(rig: Rig, cameras: int) -> Rig:
    """``rig`` with placeholder cameras up to the network's ``cameras`` slots.

    A log with fewer cameras than the network was built for (KITTI's one, a LiDAR-only log) still
    runs: a placeholder never has an image, so its slot goes in as zeros with mask 0, exactly what a
    camera dropped in training looks like.
    """
    have = rig.cameras
    if len(have) >= cameras:
        return rig
    extra = [SensorSpec(name=f"_no_camera_{i}", modality=Modality.CAMERA, frame=f"_no_camera_{i}",
                        intrinsics=PinholeCamera(64, 64, 50.0, 50.0, 31.5, 31.5)) for i in range(cameras - len(have))]
    return Rig(tuple(rig.sensors) + tuple(extra), rig.name, rig.source)


class Pipeline:
    """The perception stack for one rig (see the module docstring).

    ``backend``: a ``perception.model.backends.Backend``; ``cfg``: the config it was built for (its
    grid and model sections must be the backend's); ``rig``: the sensors (``use_rig`` changes it).
    ``device``: where the backend runs ('cpu' or 'cuda[:n]'). ``last_stage_ms`` holds the stage
    times of the last ``step`` (read once per frame; on CUDA reading them waits for the frame).
    """

    def __init__(self, backend: Any, cfg: PipelineConfig, rig: Rig | None = None, *, device: str = "cpu",
                 precision: str = "fp32", backend_name: str | None = None, decode: DecodeConfig | None = None) -> None:
        from perception.model.evaluate import NMS_IOU

        self.backend = backend
        self.cfg = cfg
        self.device = str(device)
        self.precision = precision
        self.backend_name = backend_name or getattr(backend, "name", type(backend).__name__)
        self.decode = decode or DecodeConfig()
        self._nms_iou = NMS_IOU if self.decode.nms_iou is None else self.decode.nms_iou
        self.class_names: tuple[str, ...] = tuple(cfg.model.classes)
        self.cuda = self.device.startswith("cuda")
        self.timer = StageTimer(cuda=self.cuda)
        self.last_stage_ms: dict[str, float] = {}
        self.last_notes: list[str] = []
        self.rig: Rig | None = None
        self._lidar_name = "LiDAR"
        if rig is not None:
            self.use_rig(rig)

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, backend: str = "torch", device: str = "cpu", precision: str = "fp32",
                        rig: Rig | None = None, onnx: str | Path | None = None, engine: str | Path | None = None,
                        cache_dir: str | Path | None = None, decode: DecodeConfig | None = None,
                        threads: int | None = None) -> Pipeline:
        """A pipeline from a checkpoint (``bevfuse train``'s ``.pt``).

        ``backend``: auto | torch | cudagraph | onnxruntime | tensorrt (``resolve_backend``). The ONNX graph and TensorRT engine
        are ``onnx`` / ``engine`` when given, else exported from the checkpoint into ``cache_dir``
        (default ``$BEVFUSE_CACHE`` or ``~/.cache/bevfuse``), keyed by the checkpoint's content.
        The sync section (how many sweeps are accumulated, ...) is the one the network was trained
        with: the checkpoint's ``meta['sync']`` when it records one, else its preset's by model name
        (``tiny``: three sweeps), else the default. ``threads``: ONNX Runtime's intra-op threads
        (default: one per core; torch's and numba's are set by the caller, as the commands do).
        """
        from perception.model.backends import make_backend
        from perception.model.checkpoint import load_checkpoint
        from perception.model.config import PRESETS, preset
        from perception.model.errors import BackendError

        backend = resolve_backend(backend, device)
        kind = BACKEND_NAMES.get(backend)
        if kind is None:
            raise BackendError(f"backend {backend!r}: expected one of {sorted(set(BACKEND_NAMES) - {'cuda-graph'})}")
        net, meta = load_checkpoint(path)
        cfg: PipelineConfig = _with_training_sync(net.cfg, meta, PRESETS, preset, str(path))
        if kind in ("torch", "cuda-graph"):
            be = make_backend(kind, net=net, device=device, precision=precision)
        elif kind == "onnxruntime":
            if precision != "fp32":
                raise BackendError("onnxruntime backend: runs the fp32 graph; use --precision fp32")
            be = make_backend(kind, onnx=str(onnx or _exported_onnx(path, net, cache_dir)), threads=threads or 0)
        else:
            be = make_backend(kind, engine=str(engine or _built_engine(path, net, precision, device, cache_dir)), device=device)
        return cls(be, cfg, rig, device=device, precision=precision, backend_name=backend, decode=decode)

    def use_rig(self, rig: Rig) -> None:
        """Run on ``rig``'s sensors from now on (the cameras fill the network's slots in rig order)."""
        self.rig = _padded_rig(rig, self.cfg.model.camera.num_cameras)
        lidars = rig.of(Modality.LIDAR)
        self._lidar_name = lidars[0].name if lidars else "LiDAR"

    @property
    def config_name(self) -> str:
        g = self.cfg.grid
        return f"{self.cfg.model.name} ({g.nx}x{g.ny} cells of {g.cell_m:g} m)"

    # -- the three stages --------------------------------------------------------------------------

    def preprocess(self, frame: SyncedFrame) -> dict[str, Any]:
        """The named network inputs of ``frame`` (numpy; torch tensors on the device when on CUDA)."""
        from perception.model.data import frame_inputs, to_train_frame

        if self.rig is None:
            raise ConfigError("Pipeline: no rig; call use_rig(rig) (or pass rig=) before step()")
        # ground truth is not an input: keep it out of the conversion
        inputs = frame_inputs(to_train_frame(replace(frame, ground_truth=None), self.rig, self.cfg, self.class_names), self.cfg)
        if self.cuda:
            import torch

            return {k: torch.from_numpy(v).to(self.device, non_blocking=True) for k, v in inputs.items()}
        return inputs

    def infer(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Head maps (batch 1) from the backend."""
        return self.backend(inputs)

    def postprocess(self, outputs: dict[str, Any], stamp_ns: int) -> Detections:
        """Decode + NMS + attributes -> ``Detections`` in the ego frame at ``stamp_ns``."""
        from perception.model.evaluate import attribute_for
        from perception.ops.bev_nms import nms_bev
        from perception.ops.centerpoint_decode import decode_centerpoint

        d = self.decode
        dec = decode_centerpoint(outputs["heatmap"][0], outputs["offset"][0], outputs["height"][0], outputs["size"][0],
                                 outputs["rot"][0], outputs["velocity"][0], self.cfg.grid, top_k=d.top_k,
                                 score_threshold=d.score_threshold, sigmoid=False)
        # NMS on the fixed-K rows with the valid mask: no count is read back from the GPU before it
        keep = nms_bev(dec.boxes, dec.scores, dec.labels, method="rotated", threshold=self._nms_iou, valid=dec.valid)
        boxes, scores, labels, keep = (_host(a) for a in (dec.boxes, dec.scores, dec.labels, keep))
        keep = np.asarray(keep, bool)
        boxes = np.asarray(boxes, np.float64)[keep]
        scores = np.asarray(scores, np.float32)[keep]
        labels = np.asarray(labels, np.int64)[keep]
        speed = np.hypot(boxes[:, 7], boxes[:, 8])
        names = self.class_names
        attrs = np.array([attribute_for(names[k], s, h) for k, s, h in zip(labels, speed, boxes[:, 5])], dtype=object)
        return Detections(stamp_ns=stamp_ns, frame_id="ego", class_names=names, center=boxes[:, :3], size=boxes[:, 3:6],
                          yaw=boxes[:, 6], velocity=boxes[:, 7:9], score=scores, label=labels,
                          attribute=attrs.reshape(-1))

    def step(self, frame: SyncedFrame) -> Detections:
        """Detections (ego frame, at ``frame.stamp_ns``) of one synchronized frame; stage times in
        ``last_stage_ms``, and what ``sanitize_frame`` removed in ``last_notes``.

        Raises ``CorruptFrameError`` for a frame that cannot go in (the caller skips it)."""
        with self.timer.stage("preprocess"):
            try:
                frame, self.last_notes = sanitize_frame(frame, self._lidar_name)
            except CorruptFrameError:
                self.timer.collect()  # this frame's half-open timing must not leak into the next
                raise
            inputs = self.preprocess(frame)
        # each stage frees what it consumed inside its own timer (freeing the inputs' megabytes is
        # part of the work; left to the return it would fall between the timers)
        with self.timer.stage("inference"):
            outputs = self.infer(inputs)
            del inputs
        with self.timer.stage("postprocess"):
            det = self.postprocess(outputs, frame.stamp_ns)
            del outputs
        self.last_stage_ms = self.timer.collect()
        return det

    __call__ = step


def _with_training_sync(cfg: PipelineConfig, meta: dict[str, Any], presets: Any, preset: Any, source: str) -> PipelineConfig:
    # A checkpoint stores the grid and model sections only; the frames it was trained on also
    # depended on the sync section (a network trained on 3 accumulated sweeps sees 10 as a
    # different input). Matching the preset by name, not by equality: a preset may since have changed
    # a detail (max_pillars) without changing how its frames are built.
    from perception.config import from_dict
    from perception.sync.config import SyncConfig

    if isinstance(meta.get("sync"), dict):
        return replace(cfg, sync=from_dict(SyncConfig, meta["sync"], f"{source}: meta.sync"))
    if cfg.model.name in presets:
        return replace(cfg, sync=preset(cfg.model.name).sync)
    return cfg


def _host(a: Any) -> np.ndarray:
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def _cache_root(cache_dir: str | Path | None) -> Path:
    from perception.model.tensorrt import default_cache_dir

    return Path(cache_dir) if cache_dir else default_cache_dir()


def _exported_onnx(checkpoint: str | Path, net: Any, cache_dir: str | Path | None) -> Path:
    """The checkpoint's ONNX graph, exported once per checkpoint content into the cache."""
    from perception.model.export import GRAPH_VERSION, export_onnx, file_sha256

    sha = file_sha256(checkpoint)[:16]
    # the graph's version too: a graph exported by an older bevfuse is rebuilt, not reused
    out = _cache_root(cache_dir) / "onnx" / f"{Path(checkpoint).stem}-{sha}-g{GRAPH_VERSION}.onnx"
    if not out.is_file():
        tmp = out.with_name(out.stem + ".partial.onnx")
        export_onnx(net, tmp, check_tensorrt=False)
        tmp.replace(out)
    return out


def _built_engine(checkpoint: str | Path, net: Any, precision: str, device: str, cache_dir: str | Path | None) -> Path:
    """A TensorRT engine of the checkpoint (its own cache makes a second build free)."""
    from perception.model.tensorrt import build_engine

    onnx = _exported_onnx(checkpoint, net, cache_dir)
    out = _cache_root(cache_dir) / "engines" / f"{onnx.stem}-{precision}.engine"
    return build_engine(onnx, out, precision=precision, cache_dir=_cache_root(cache_dir), device=device)
