"""Ground truth for the evaluation from the nuScenes tables (the devkit's ``load_gt`` + ``add_center_dist``).

Reads the JSON tables of ``<dataroot>/<version>/`` directly (no devkit): for every sample, its
annotations whose category maps to one of the ten detection classes, with

* ``ego_translation`` = translation minus the translation of the ego pose of the sample's key-frame
  LIDAR_TOP sample_data (3D, as the devkit; only xy counts);
* ``velocity``: the devkit's ``box_velocity`` (centred difference over the previous and next
  annotation of the instance, one-sided at a track end, NaN for a lone annotation or when the
  frames are further apart than ``max_time_diff``, doubled for the centred case), unless
  ``velocities`` gives it (some samples, like a single keyframe, carry it beside the tables);
* ``num_pts`` = num_lidar_pts + num_radar_pts; ``attribute_name`` the single attribute or ''.

Bicycle-rack annotations (``static_object.bicycle_rack``) are not detection classes; the devkit
uses them to drop bicycles and motorcycles parked in racks, which ``filter_boxes`` does not do:
``rack_count`` in the result says how many racks a split holds, so a caller sees when that matters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perception.errors import FormatError
from perception.eval.files import read_json

__all__ = ["CATEGORY_TO_DETECTION_NAME", "NuScenesGt", "load_nuscenes_gt"]

# The devkit's category_to_detection_name: general nuScenes categories -> detection classes.
# Not mapped (not evaluated): animals, personal mobility, strollers, wheelchairs, debris, pushable
# objects, bicycle racks, ambulances and police cars.
CATEGORY_TO_DETECTION_NAME: Mapping[str, str] = {
    "movable_object.barrier": "barrier",
    "vehicle.bicycle": "bicycle",
    "vehicle.bus.bendy": "bus",
    "vehicle.bus.rigid": "bus",
    "vehicle.car": "car",
    "vehicle.construction": "construction_vehicle",
    "vehicle.motorcycle": "motorcycle",
    "human.pedestrian.adult": "pedestrian",
    "human.pedestrian.child": "pedestrian",
    "human.pedestrian.construction_worker": "pedestrian",
    "human.pedestrian.police_officer": "pedestrian",
    "movable_object.trafficcone": "traffic_cone",
    "vehicle.trailer": "trailer",
    "vehicle.truck": "truck",
}

_BIKE_RACK = "static_object.bicycle_rack"


@dataclass(frozen=True)
class NuScenesGt:
    """``results``: {sample_token: [box dict]} ready for ``evaluate``; ``rack_count``: bicycle racks seen."""

    results: dict[str, list[dict[str, Any]]]
    rack_count: int


def _table(root: Path, name: str) -> list[dict[str, Any]]:
    path = root / f"{name}.json"
    data = read_json(path)
    if not isinstance(data, list):
        raise FormatError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    return data


def _get(record: Mapping[str, Any], key: str, table: str) -> Any:
    try:
        return record[key]
    except (KeyError, TypeError):
        raise FormatError(f"{table}.json: record {record.get('token', '?') if isinstance(record, Mapping) else record!r}: "
                          f"missing key {key!r}") from None


def load_nuscenes_gt(dataroot: str | Path, version: str, *, velocities: Mapping[str, Any] | None = None,
                     max_time_diff: float = 1.5) -> NuScenesGt:
    """Ground-truth boxes of every sample of ``<dataroot>/<version>`` (samples in table order).

    ``velocities``: optional {sample_annotation token: (vx, vy) global m/s} overriding the estimate.
    """
    root = Path(dataroot) / version
    samples = _table(root, "sample")
    sample_data = _table(root, "sample_data")
    sensors = {r["token"]: r for r in _table(root, "sensor")}
    calibrated = {r["token"]: r for r in _table(root, "calibrated_sensor")}
    poses = {r["token"]: r for r in _table(root, "ego_pose")}
    annotations = _table(root, "sample_annotation")
    ann_by_token = {r["token"]: r for r in annotations}
    categories = {r["token"]: _get(r, "name", "category") for r in _table(root, "category")}
    instances = {r["token"]: _get(r, "category_token", "instance") for r in _table(root, "instance")}
    attributes = {r["token"]: _get(r, "name", "attribute") for r in _table(root, "attribute")}
    timestamps = {s["token"]: _get(s, "timestamp", "sample") for s in samples}

    # The key-frame LIDAR_TOP of each sample (the devkit's sample['data']['LIDAR_TOP']; a later record wins).
    lidar_pose: dict[str, list[float]] = {}
    for sd in sample_data:
        if not _get(sd, "is_key_frame", "sample_data"):
            continue
        cs = calibrated.get(_get(sd, "calibrated_sensor_token", "sample_data"))
        if cs is None or sensors.get(cs["sensor_token"], {}).get("channel") != "LIDAR_TOP":
            continue
        pose = poses.get(_get(sd, "ego_pose_token", "sample_data"))
        if pose is None:
            raise FormatError(f"sample_data.json: record {sd['token']}: ego_pose_token {sd['ego_pose_token']!r} "
                              "is not in ego_pose.json")
        lidar_pose[_get(sd, "sample_token", "sample_data")] = _get(pose, "translation", "ego_pose")

    def velocity(ann: Mapping[str, Any]) -> list[float]:
        if velocities is not None and ann["token"] in velocities:
            return [float(v) for v in velocities[ann["token"]]][:2]
        has_prev, has_next = ann.get("prev", "") != "", ann.get("next", "") != ""
        if not has_prev and not has_next:
            return [float("nan")] * 2
        first = ann_by_token[ann["prev"]] if has_prev else ann
        last = ann_by_token[ann["next"]] if has_next else ann
        dt = 1e-6 * timestamps[last["sample_token"]] - 1e-6 * timestamps[first["sample_token"]]
        limit = max_time_diff * 2 if has_prev and has_next else max_time_diff
        if dt > limit:
            return [float("nan")] * 2
        v = (np.asarray(last["translation"], float) - np.asarray(first["translation"], float)) / dt
        return v[:2].tolist()

    results: dict[str, list[dict[str, Any]]] = {s["token"]: [] for s in samples}
    racks = 0
    for ann in annotations:
        token = _get(ann, "sample_token", "sample_annotation")
        if token not in results:
            raise FormatError(f"sample_annotation.json: record {ann['token']}: sample_token {token!r} is not in sample.json")
        category = categories.get(instances.get(_get(ann, "instance_token", "sample_annotation"), ""), "")
        if category == _BIKE_RACK:
            racks += 1
        name = CATEGORY_TO_DETECTION_NAME.get(category)
        if name is None:
            continue
        attr_tokens = _get(ann, "attribute_tokens", "sample_annotation")
        if len(attr_tokens) > 1:
            raise FormatError(f"sample_annotation.json: record {ann['token']}: {len(attr_tokens)} attributes, "
                              "a detection box has at most one")
        if token not in lidar_pose:
            raise FormatError(f"sample_data.json: sample {token!r} has no key-frame LIDAR_TOP record "
                              "(needed for the ego position)")
        translation = [float(x) for x in _get(ann, "translation", "sample_annotation")]
        ego = lidar_pose[token]
        num_pts = int(_get(ann, "num_lidar_pts", "sample_annotation")) + int(_get(ann, "num_radar_pts", "sample_annotation"))
        results[token].append({
            "sample_token": token,
            "translation": translation,
            "size": [float(x) for x in _get(ann, "size", "sample_annotation")],
            "rotation": [float(x) for x in _get(ann, "rotation", "sample_annotation")],
            "velocity": velocity(ann),
            "ego_translation": [translation[i] - ego[i] for i in range(3)],
            "num_pts": num_pts,
            "detection_name": name,
            "detection_score": -1.0,
            "attribute_name": attributes[attr_tokens[0]] if attr_tokens else "",
        })
    return NuScenesGt(results=results, rack_count=racks)
