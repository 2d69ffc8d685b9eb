"""Settings and names of the nuScenes detection evaluation (nuscenes-devkit 1.2.0, ``detection_cvpr_2019``).

The class and attribute names are the devkit's, and so is the order of ``DETECTION_NAMES`` (the
order of its ``detection_cvpr_2019.json`` class ranges; the mean over classes does not depend on it,
only the order in which tables list the classes). ``DetectionEvalConfig`` holds the same keys as
the devkit's ``DetectionConfig`` and reads and writes the same JSON, so a devkit config file can be
passed to ``bevfuse eval --config``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from perception.errors import ConfigError

__all__ = [
    "ATTRIBUTE_NAMES",
    "CLASS_ATTRIBUTES",
    "DEFAULT_CONFIG",
    "DETECTION_NAMES",
    "TP_METRICS",
    "TP_METRIC_ABBREVIATIONS",
    "UNDEFINED_TP_METRICS",
    "DetectionEvalConfig",
]

# The devkit's DETECTION_NAMES (eval/detection/constants.py), in its order.
DETECTION_NAMES: tuple[str, ...] = (
    "car", "truck", "bus", "trailer", "construction_vehicle",
    "pedestrian", "motorcycle", "bicycle", "traffic_cone", "barrier",
)

# The devkit's ATTRIBUTE_NAMES: a box carries at most one, or '' for none.
ATTRIBUTE_NAMES: tuple[str, ...] = (
    "pedestrian.moving", "pedestrian.sitting_lying_down", "pedestrian.standing",
    "cycle.with_rider", "cycle.without_rider",
    "vehicle.moving", "vehicle.parked", "vehicle.stopped",
)

# The attributes that make sense for each class (the devkit's detection_name_to_rel_attributes).
# The metric itself does not enforce this: a wrong attribute simply counts as an attribute error.
CLASS_ATTRIBUTES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "car": ATTRIBUTE_NAMES[5:8], "truck": ATTRIBUTE_NAMES[5:8], "bus": ATTRIBUTE_NAMES[5:8],
    "trailer": ATTRIBUTE_NAMES[5:8], "construction_vehicle": ATTRIBUTE_NAMES[5:8],
    "pedestrian": ATTRIBUTE_NAMES[0:3],
    "motorcycle": ATTRIBUTE_NAMES[3:5], "bicycle": ATTRIBUTE_NAMES[3:5],
    "traffic_cone": (), "barrier": (),
})

# The true-positive metrics, in the devkit's order, and the names the nuScenes papers give their means.
TP_METRICS: tuple[str, ...] = ("trans_err", "scale_err", "orient_err", "vel_err", "attr_err")
TP_METRIC_ABBREVIATIONS: Mapping[str, str] = MappingProxyType({
    "trans_err": "ATE", "scale_err": "ASE", "orient_err": "AOE", "vel_err": "AVE", "attr_err": "AAE",
})

# Metrics the devkit does not define for a class (DetectionEval.evaluate sets them to NaN, so they
# drop out of the mean over classes): a cone has no heading, no motion and no attribute; a barrier
# does not move and has no attribute (its heading counts, modulo pi: see metrics.yaw_diff).
UNDEFINED_TP_METRICS: Mapping[str, frozenset[str]] = MappingProxyType({
    "traffic_cone": frozenset({"attr_err", "vel_err", "orient_err"}),
    "barrier": frozenset({"attr_err", "vel_err"}),
})

_KEYS = ("class_range", "dist_fcn", "dist_ths", "dist_th_tp", "min_recall", "min_precision",
         "max_boxes_per_sample", "mean_ap_weight")


def _number(value: Any, key: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{source}: {key}: expected a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class DetectionEvalConfig:
    """The evaluation settings, as the devkit's ``DetectionConfig``.

    class_range: metres from the ego vehicle (xy) within which boxes of each class are evaluated,
    one entry for each of the ten ``DETECTION_NAMES``; dist_ths: the centre-distance matching
    thresholds (m) averaged into the AP; dist_th_tp: the threshold whose matches give the TP errors;
    min_recall / min_precision: the part of the precision/recall curve that counts;
    max_boxes_per_sample: the most predictions one sample may hold; mean_ap_weight: mAP's weight in NDS.
    """

    class_range: Mapping[str, float]
    dist_ths: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    dist_th_tp: float = 2.0
    min_recall: float = 0.1
    min_precision: float = 0.1
    max_boxes_per_sample: int = 500
    mean_ap_weight: float = 5.0
    source: str = field(default="config", compare=False)

    def __post_init__(self) -> None:
        src = self.source
        if not isinstance(self.class_range, Mapping):
            raise ConfigError(f"{src}: class_range: expected a mapping of class name to metres, got {self.class_range!r}")
        names = set(self.class_range)
        if names != set(DETECTION_NAMES):
            missing, unknown = sorted(set(DETECTION_NAMES) - names), sorted(names - set(DETECTION_NAMES))
            raise ConfigError(f"{src}: class_range: expected exactly the ten detection classes; "
                              f"missing {missing}, unknown {unknown}")
        ranges = {}
        for name, value in self.class_range.items():
            r = _number(value, f"class_range.{name}", src)
            if r <= 0:
                raise ConfigError(f"{src}: class_range.{name}: expected > 0 metres, got {value!r}")
            ranges[name] = r
        object.__setattr__(self, "class_range", MappingProxyType(ranges))
        if isinstance(self.dist_ths, (str, bytes)) or not hasattr(self.dist_ths, "__iter__"):
            raise ConfigError(f"{src}: dist_ths: expected a list of metres, got {self.dist_ths!r}")
        ths = tuple(_number(t, "dist_ths", src) for t in self.dist_ths)
        if not ths or any(t <= 0 for t in ths) or len(set(ths)) != len(ths):
            raise ConfigError(f"{src}: dist_ths: expected distinct positive metres, got {list(self.dist_ths)}")
        object.__setattr__(self, "dist_ths", ths)
        tp = _number(self.dist_th_tp, "dist_th_tp", src)
        if tp not in ths:
            raise ConfigError(f"{src}: dist_th_tp: expected one of dist_ths {list(ths)}, got {self.dist_th_tp!r}")
        object.__setattr__(self, "dist_th_tp", tp)
        # The devkit's calc_ap asserts 0 <= min_precision < 1 and 0 <= min_recall <= 1; a recall of 1
        # leaves no curve to average, so it is refused here.
        min_recall = _number(self.min_recall, "min_recall", src)
        if not 0.0 <= min_recall < 1.0:
            raise ConfigError(f"{src}: min_recall: expected 0 <= value < 1, got {self.min_recall!r}")
        min_precision = _number(self.min_precision, "min_precision", src)
        if not 0.0 <= min_precision < 1.0:
            raise ConfigError(f"{src}: min_precision: expected 0 <= value < 1, got {self.min_precision!r}")
        object.__setattr__(self, "min_recall", min_recall)
        object.__setattr__(self, "min_precision", min_precision)
        mb = self.max_boxes_per_sample
        if isinstance(mb, bool) or not isinstance(mb, int) or mb < 1:
            raise ConfigError(f"{src}: max_boxes_per_sample: expected an integer >= 1, got {mb!r}")
        weight = _number(self.mean_ap_weight, "mean_ap_weight", src)
        if weight < 0:
            raise ConfigError(f"{src}: mean_ap_weight: expected >= 0, got {self.mean_ap_weight!r}")
        object.__setattr__(self, "mean_ap_weight", weight)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The evaluated classes, in the order of ``class_range``."""
        return tuple(self.class_range)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config") -> DetectionEvalConfig:
        """Read the devkit's config JSON layout (e.g. ``detection_cvpr_2019.json``); every key is required."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a JSON object with keys {list(_KEYS)}, got {type(data).__name__}")
        unknown = sorted(set(data) - set(_KEYS))
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {unknown}; expected {list(_KEYS)}")
        missing = [k for k in _KEYS if k not in data]
        if missing:
            raise ConfigError(f"{source}: missing key(s) {missing}")
        # Only centre distance is defined for detection in the devkit (DetectionConfig.dist_fcn_callable).
        if data["dist_fcn"] != "center_distance":
            raise ConfigError(f"{source}: dist_fcn: expected 'center_distance', got {data['dist_fcn']!r}")
        return cls(
            class_range=data["class_range"], dist_ths=data["dist_ths"], dist_th_tp=data["dist_th_tp"],
            min_recall=data["min_recall"], min_precision=data["min_precision"],
            max_boxes_per_sample=data["max_boxes_per_sample"], mean_ap_weight=data["mean_ap_weight"], source=source,
        )

    def to_dict(self) -> dict[str, Any]:
        """The devkit's config JSON layout (``DetectionConfig.serialize``)."""
        return {
            "class_range": dict(self.class_range), "dist_fcn": "center_distance", "dist_ths": list(self.dist_ths),
            "dist_th_tp": self.dist_th_tp, "min_recall": self.min_recall, "min_precision": self.min_precision,
            "max_boxes_per_sample": self.max_boxes_per_sample, "mean_ap_weight": self.mean_ap_weight,
        }


# detection_cvpr_2019.json of nuscenes-devkit 1.2.0: the configuration of the nuScenes detection challenge.
DEFAULT_CONFIG = DetectionEvalConfig(
    class_range={
        "car": 50, "truck": 50, "bus": 50, "trailer": 50, "construction_vehicle": 50,
        "pedestrian": 40, "motorcycle": 40, "bicycle": 40, "traffic_cone": 30, "barrier": 30,
    },
    dist_ths=(0.5, 1.0, 2.0, 4.0), dist_th_tp=2.0, min_recall=0.1, min_precision=0.1,
    max_boxes_per_sample=500, mean_ap_weight=5, source="detection_cvpr_2019",
)
