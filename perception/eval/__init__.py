"""nuScenes detection evaluation: mAP, TP errors (ATE ASE AOE AVE AAE) and NDS, as nuscenes-devkit 1.2.0.

``evaluate(gt, pred)`` takes ``{sample_token: [box dict, ...]}`` in the nuScenes submission format
(plus ``ego_translation``, and ``num_pts`` for ground truth) and returns an ``EvalResult``;
``detections_to_boxes`` / ``boxes_to_detections`` bridge bevfuse ``Detections`` and those dicts.
The definitions are in docs/EVAL.md; ``bevfuse eval`` is the command.
"""

from perception.eval.boxes import EvalBoxes, FilterCounts, filter_boxes, parse_boxes
from perception.eval.config import (
    ATTRIBUTE_NAMES,
    CLASS_ATTRIBUTES,
    DEFAULT_CONFIG,
    DETECTION_NAMES,
    TP_METRICS,
    DetectionEvalConfig,
)
from perception.eval.convert import boxes_to_detections, detections_to_boxes, lwh_to_wlh, wlh_to_lwh
from perception.eval.detection import ClassResult, EvalResult, evaluate, evaluate_boxes
from perception.eval.files import load_config_file, load_gt_file, load_pred_file, write_json, write_results_file
from perception.eval.metrics import MetricCurve
from perception.eval.nuscenes_gt import NuScenesGt, load_nuscenes_gt
from perception.eval.report import format_table

__all__ = [
    "ATTRIBUTE_NAMES",
    "CLASS_ATTRIBUTES",
    "DEFAULT_CONFIG",
    "DETECTION_NAMES",
    "TP_METRICS",
    "ClassResult",
    "DetectionEvalConfig",
    "EvalBoxes",
    "EvalResult",
    "FilterCounts",
    "MetricCurve",
    "NuScenesGt",
    "boxes_to_detections",
    "detections_to_boxes",
    "evaluate",
    "evaluate_boxes",
    "filter_boxes",
    "format_table",
    "load_config_file",
    "load_gt_file",
    "load_nuscenes_gt",
    "load_pred_file",
    "lwh_to_wlh",
    "parse_boxes",
    "wlh_to_lwh",
    "write_json",
    "write_results_file",
]
