"""Evaluate a network on frames with ground truth: forward, decode (the pipeline's decode op), the
nuScenes metrics of ``perception.eval``, with any sensors removed.

The network predicts no attributes; nuScenes' AAE wants one per box, so ``attribute_for`` derives it
the way the devkit's baselines do, from the predicted speed (moving / parked or standing) and, for
cycles, from the box height (a rider makes the box taller: ``perception.sim.world.CYCLE_HEIGHT``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from perception.config import PipelineConfig
from perception.eval import EvalResult, detections_to_boxes, evaluate
from perception.model.backends import Backend
from perception.model.data import TrainFrame, frame_inputs
from perception.types import Detections

__all__ = ["DROPS", "attribute_for", "evaluate_frames", "predict"]

# Named sensor removals: (lidar, camera, radar) dropped.
DROPS: dict[str, tuple[bool, bool, bool]] = {
    "all": (False, False, False),
    "no-camera": (False, True, False),
    "no-lidar": (True, False, False),
    "no-radar": (False, False, True),
    "lidar-only": (False, True, True),
}
VEHICLES = ("car", "truck", "construction_vehicle", "bus", "trailer")
# Half-way between the simulator's cycle heights with and without a rider.
RIDER_HEIGHT = {"bicycle": 1.40, "motorcycle": 1.38}
MOVING_MPS = 0.3
# Rotated-IoU NMS per class after the decode's 3x3 peak picking (CenterPoint-PointPillars' value).
NMS_IOU = 0.2


def attribute_for(name: str, speed: float, height: float) -> str:
    """A nuScenes attribute for a predicted box of class ``name``."""
    if name in VEHICLES:
        return "vehicle.moving" if speed > MOVING_MPS else "vehicle.parked"
    if name in RIDER_HEIGHT:
        return "cycle.with_rider" if height > RIDER_HEIGHT[name] else "cycle.without_rider"
    if name == "pedestrian":
        return "pedestrian.moving" if speed > MOVING_MPS else "pedestrian.standing"
    return ""


def predict(backend: Backend, frame: TrainFrame, cfg: PipelineConfig, drop: tuple[bool, bool, bool] = (False, False, False),
            score_threshold: float = 0.1, top_k: int = 300) -> Detections:
    """Detections (ego frame) of one frame with the sensors in ``drop`` removed."""
    from perception.ops.bev_nms import nms_bev
    from perception.ops.centerpoint_decode import decode_centerpoint

    out = backend(frame_inputs(frame, cfg, drop=drop))
    dec = decode_centerpoint(out["heatmap"][0], out["offset"][0], out["height"][0], out["size"][0], out["rot"][0],
                             out["velocity"][0], cfg.grid, top_k=top_k, score_threshold=score_threshold,
                             sigmoid=False).trimmed()
    keep = np.asarray(nms_bev(dec.boxes, dec.scores, dec.labels, method="rotated", threshold=NMS_IOU), bool)
    boxes = np.asarray(dec.boxes, np.float64)[keep]
    scores = np.asarray(dec.scores, np.float32)[keep]
    names = cfg.model.classes
    labels = np.asarray(dec.labels, np.int64)[keep]
    speed = np.hypot(boxes[:, 7], boxes[:, 8])
    attrs = np.array([attribute_for(names[k], s, h) for k, s, h in zip(labels, speed, boxes[:, 5])], dtype=object)
    return Detections(stamp_ns=frame.stamp_ns, frame_id="ego", class_names=names, center=boxes[:, :3], size=boxes[:, 3:6],
                      yaw=boxes[:, 6], velocity=boxes[:, 7:9], score=scores, label=labels,
                      attribute=attrs)


def ground_truth(frame: TrainFrame, cfg: PipelineConfig) -> Detections:
    b = frame.boxes
    n = len(b)
    names = cfg.model.classes
    return Detections(stamp_ns=frame.stamp_ns, frame_id="ego", class_names=names, center=b.center.astype(np.float64),
                      size=b.size.astype(np.float64), yaw=b.yaw.astype(np.float64),
                      velocity=np.nan_to_num(b.velocity.astype(np.float64)), score=np.ones(n, np.float32), label=b.label,
                      attribute=b.attribute, num_lidar_pts=None if b.num_points is None else b.num_points.astype(np.int64))


def evaluate_frames(backend: Backend, frames: Sequence[TrainFrame], cfg: PipelineConfig, drop: str = "all",
                    score_threshold: float = 0.1) -> EvalResult:
    """nuScenes metrics of ``backend`` over ``frames`` with the sensors of ``DROPS[drop]`` removed.

    Boxes stay in the ego frame on both sides (no world pose is needed: each frame is its own sample).
    ``score_threshold``: the decode's; AP integrates over scores, so a low value only adds the
    low-confidence tail (what an under-trained network's detections all are).
    """
    gt, pred = {}, {}
    for i, frame in enumerate(frames):
        token = f"{i:06d}:{frame.source}"
        gt[token] = detections_to_boxes(ground_truth(frame, cfg), token, ground_truth=True)
        pred[token] = detections_to_boxes(predict(backend, frame, cfg, DROPS[drop], score_threshold), token)
    return evaluate(gt, pred)
