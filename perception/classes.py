"""The object classes bevfuse detects: one tuple, imported by readers, the model, evaluation and sinks.

The ten classes of the nuScenes detection challenge, in the order of mmdetection3d's and
CenterPoint's nuScenes configs (the order of the head's heatmap channels there), which is *not* the
devkit's ``DETECTION_NAMES`` order. A ``Detections.label`` indexes its own ``class_names``; readers
of ground truth give it this tuple, so code that maps labels between tuples must go by name.
"""

from __future__ import annotations

__all__ = ["NUSCENES_CLASSES"]

NUSCENES_CLASSES: tuple[str, ...] = (
    "car",
    "truck",
    "construction_vehicle",
    "bus",
    "trailer",
    "barrier",
    "motorcycle",
    "bicycle",
    "pedestrian",
    "traffic_cone",
)
