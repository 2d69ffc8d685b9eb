"""bevfuse ``Detections`` to and from nuScenes submission box dicts.

Two conventions differ between them, and this module is the one place that bridges them:

* **size**: bevfuse's ``Detections.size`` is (length, width, height), length along the heading;
  nuScenes' ``size`` is (width, length, height). The first two columns swap both ways.
* **heading**: bevfuse keeps a yaw (rad about +z); nuScenes a rotation quaternion (w, x, y, z).
  A yaw becomes the quaternion of an upright box; a quaternion becomes the yaw of its rotated x axis
  projected onto the xy plane (the devkit's ``quaternion_yaw``), so a tilted annotation keeps its heading.

Frames: nuScenes boxes are in the global frame, and ``ego_translation`` is the box translation
minus the ego position (the devkit's ``add_center_dist``, with the LIDAR_TOP ego pose). Detections
in the ego frame are moved to the world with ``world_T_ego`` (position, heading and velocity
vector). Without a pose, ego-frame detections are written in the ego frame itself (``ego_translation``
= centre): evaluate that only against ground truth written the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from calib import se3
from perception.boxes import transform_detections
from perception.classes import NUSCENES_CLASSES
from perception.errors import FormatError
from perception.eval.boxes import parse_boxes
from perception.eval.config import ATTRIBUTE_NAMES, DETECTION_NAMES
from perception.eval.metrics import yaw_from_quaternions
from perception.types import Detections, check_array

__all__ = ["boxes_to_detections", "detections_to_boxes", "lwh_to_wlh", "wlh_to_lwh"]

# The devkit's score of a ground-truth box; a Detections of ground truth has score 1 instead.
_GT_SCORE = -1.0


def lwh_to_wlh(size: npt.ArrayLike) -> np.ndarray:
    """bevfuse sizes (N, 3) length width height to nuScenes width length height."""
    s = check_array(np.asarray(size, dtype=np.float64), "size", ndim=2, shape=(None, 3))
    return s[:, [1, 0, 2]]


def wlh_to_lwh(size: npt.ArrayLike) -> np.ndarray:
    """nuScenes sizes (N, 3) width length height to bevfuse length width height (the same swap)."""
    return lwh_to_wlh(size)


def detections_to_boxes(dets: Detections, sample_token: str, *, world_T_ego: npt.ArrayLike | None = None,
                        ego_frame: str = "ego", ground_truth: bool = False) -> list[dict[str, Any]]:
    """The nuScenes box dicts of one sample's detections (or ground truth).

    ``dets`` in the frame ``ego_frame`` are moved to the world through ``world_T_ego`` (4, 4) when
    given, else written as they are; ``dets`` in any other frame are taken to be in the world frame,
    and ``world_T_ego`` is then required for ``ego_translation``. Class names must be among the ten
    ``DETECTION_NAMES`` and attributes among ``ATTRIBUTE_NAMES`` (or ''): anything else raises
    ``FormatError``. ``ground_truth``: ``detection_score`` is the devkit's -1 and ``num_pts`` =
    num_lidar_pts + num_radar_pts (-1 when the Detections has neither); otherwise the submission's
    fields only (score from ``dets.score``).
    """
    pose = None if world_T_ego is None else check_array(np.asarray(world_T_ego, dtype=np.float64), "world_T_ego", shape=(4, 4))
    if dets.frame_id == ego_frame:
        if pose is not None:
            dets = transform_detections(dets, pose, "world")
        ego_position = np.zeros(3) if pose is None else pose[:3, 3]
    else:
        if pose is None:
            raise FormatError(f"detections in frame {dets.frame_id!r} (not {ego_frame!r}): world_T_ego is needed "
                              "to compute ego_translation")
        ego_position = pose[:3, 3]

    names = dets.labels_as_names
    for name in dict.fromkeys(names):
        if name not in DETECTION_NAMES:
            raise FormatError(f"class {name!r} is not a nuScenes detection class {list(DETECTION_NAMES)}")
    n = len(dets)
    attributes = [""] * n if dets.attribute is None else [str(a) if a is not None else "" for a in dets.attribute]
    for a in dict.fromkeys(attributes):
        if a and a not in ATTRIBUTE_NAMES:
            raise FormatError(f"attribute {a!r} is not a nuScenes attribute {list(ATTRIBUTE_NAMES)} (or '')")
    if ground_truth:
        counts = [c for c in (dets.num_lidar_pts, dets.num_radar_pts) if c is not None]
        num_pts = np.sum(counts, axis=0) if counts else np.full(n, -1, np.int64)

    size_wlh = lwh_to_wlh(dets.size)
    boxes = []
    for i in range(n):
        translation = dets.center[i]
        box: dict[str, Any] = {
            "sample_token": sample_token,
            "translation": translation.tolist(),
            "size": size_wlh[i].tolist(),
            "rotation": se3.matrix_to_quat(se3.rotation_z(float(dets.yaw[i]))).tolist(),
            "velocity": dets.velocity[i].tolist(),
            "ego_translation": (translation - ego_position).tolist(),
            "detection_name": names[i],
            "detection_score": _GT_SCORE if ground_truth else float(dets.score[i]),
            "attribute_name": attributes[i],
        }
        if ground_truth:
            box["num_pts"] = int(num_pts[i])
        boxes.append(box)
    return boxes


def boxes_to_detections(boxes: Sequence[Mapping[str, Any]], *, class_names: Sequence[str] = NUSCENES_CLASSES,
                        stamp_ns: int = 0, frame_id: str = "world", ego_T_world: npt.ArrayLike | None = None,
                        ego_frame: str = "ego") -> Detections:
    """One sample's nuScenes box dicts as a ``Detections`` (checked as ``parse_boxes`` does).

    In ``frame_id`` (the global frame), or in ``ego_frame`` through ``ego_T_world`` when given.
    ``label`` indexes ``class_names``; a box without a score (ground truth) gets score 1; ``num_pts``,
    when every box has one, becomes ``num_lidar_pts`` (the file merges LiDAR and radar counts) with
    ``num_radar_pts`` 0.
    """
    token = str(boxes[0].get("sample_token", "")) if boxes else ""
    parsed = parse_boxes({token: list(boxes)}, source="boxes", predictions=False)
    index = {name: i for i, name in enumerate(class_names)}
    label = np.empty(len(parsed), np.int64)
    for k, name in enumerate(parsed.names):
        if name not in index:
            raise FormatError(f"boxes: results[{token!r}][{k}].detection_name: {name!r} is not in class_names "
                              f"{list(class_names)}")
        label[k] = index[name]
    score = np.where(parsed.score == _GT_SCORE, 1.0, parsed.score).astype(np.float32)
    counted = len(parsed) > 0 and bool(np.all(parsed.num_pts >= 0))
    dets = Detections(
        stamp_ns=stamp_ns, frame_id=frame_id, class_names=tuple(class_names),
        center=parsed.translation.copy(), size=wlh_to_lwh(parsed.size), yaw=yaw_from_quaternions(parsed.rotation),
        velocity=parsed.velocity.copy(), score=score, label=label, attribute=parsed.attribute.copy(),
        num_lidar_pts=parsed.num_pts.copy() if counted else None,
        num_radar_pts=np.zeros(len(parsed), np.int64) if counted else None,
    )
    if ego_T_world is not None:
        pose = check_array(np.asarray(ego_T_world, dtype=np.float64), "ego_T_world", shape=(4, 4))
        dets = transform_detections(dets, pose, ego_frame)
    return dets
