"""``detections.json`` (nuScenes submission), ``ground_truth.json`` and ``metrics.json`` of a replay.

One sample per synchronized frame, its token ``<log name>:<frame stamp ns>`` (unique across the logs
of one replay, and the same on every replay of the same log). Boxes are moved to the world frame
through the frame's pose (``detections_to_boxes``, with ``ego_translation``); a frame with no pose
(NaN ``world_T_ego``) is written in the ego frame, both its detections and its ground truth, which
the evaluation matches the same way (it only compares boxes within a sample).

Classes outside the ten nuScenes detection classes are left out of these files (counted in
``dropped_classes``): the format has no place for them. The metrics cover the frames that carry
ground truth; the predictions of the other frames are in ``detections.json`` only.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from perception.eval import DETECTION_NAMES, EvalResult, detections_to_boxes, evaluate, write_json, write_results_file
from perception.types import Detections, SyncedFrame

__all__ = ["SubmissionWriter", "sample_token"]


def sample_token(log_name: str, stamp_ns: int) -> str:
    """The sample token of a frame: ``<log name>:<stamp ns>``."""
    return f"{log_name}:{int(stamp_ns)}"


def _known_classes(det: Detections, dropped: Counter[str]) -> Detections:
    names = det.labels_as_names
    keep = np.array([n in DETECTION_NAMES for n in names], bool)
    if not keep.all():
        dropped.update(n for n, k in zip(names, keep) if not k)
        det = det.select(keep)
    return det


class SubmissionWriter:
    """Collect a replay's frames; ``write(out_dir)`` writes the JSON files (see the module)."""

    def __init__(self, meta: dict[str, Any] | None = None) -> None:
        self.meta = {"use_camera": True, "use_lidar": True, "use_radar": True, "use_map": False, "use_external": False}
        self.meta.update(meta or {})
        self.predictions: dict[str, list[dict[str, Any]]] = {}
        self.ground_truth: dict[str, list[dict[str, Any]]] = {}
        self.dropped_classes: Counter[str] = Counter()
        self.frames_without_pose = 0

    def add(self, log_name: str, frame: SyncedFrame, detections: Detections) -> str:
        """Add one frame's detections (ego frame) and its ground truth; returns the sample token."""
        token = sample_token(log_name, frame.stamp_ns)
        pose = frame.world_T_ego if np.all(np.isfinite(frame.world_T_ego)) else None
        if pose is None:
            self.frames_without_pose += 1
        self.predictions[token] = detections_to_boxes(_known_classes(detections, self.dropped_classes), token, world_T_ego=pose)
        if frame.ground_truth is not None:
            gt = _known_classes(frame.ground_truth, Counter())
            self.ground_truth[token] = detections_to_boxes(gt, token, world_T_ego=pose, ground_truth=True)
        return token

    def evaluate(self) -> EvalResult | None:
        """nuScenes metrics over the frames with ground truth, or None when no frame has any."""
        if not self.ground_truth:
            return None
        pred = {t: self.predictions[t] for t in self.ground_truth}
        return evaluate(self.ground_truth, pred)

    def write(self, out_dir: str | Path) -> EvalResult | None:
        """``detections.json`` always; ``ground_truth.json`` and ``metrics.json`` when there is ground truth.
        Returns the metrics (or None)."""
        out = Path(out_dir)
        write_results_file(out / "detections.json", self.predictions, self.meta)
        result = self.evaluate()
        if result is not None:
            write_results_file(out / "ground_truth.json", self.ground_truth)
            write_json(out / "metrics.json", result.to_json())
        return result
