"""Evaluation boxes: the nuScenes submission box dicts, checked and held as columns.

A box dict is the nuScenes submission's (and the devkit's ``DetectionBox``)::

    sample_token     str, the key it is filed under (filled in from the key when absent)
    translation      [x, y, z] m, box centre in the global frame
    size             [w, l, h] m, all > 0 (nuScenes order: WIDTH first; bevfuse's Detections use l w h)
    rotation         [w, x, y, z] quaternion, any non-zero length
    velocity         [vx, vy] m/s in the global frame; NaN (or null) where unknown
    ego_translation  [x, y, z] m, translation minus the ego position (LIDAR_TOP ego pose): its xy
                     length is the distance the class range is checked against
    detection_name   one of the ten ``DETECTION_NAMES``
    detection_score  float, required for predictions; ground truth: optional (the devkit's -1.0)
    attribute_name   one of ``ATTRIBUTE_NAMES`` or '' (default '')
    num_pts          int, LiDAR + radar points in a ground-truth box; -1 (default) = not counted

``parse_boxes`` turns ``{sample_token: [box, ...]}`` into an ``EvalBoxes``; anything malformed
raises ``FormatError`` naming the source, the sample and the key. ``filter_boxes`` applies the
devkit's ``filter_eval_boxes``: the class range, then boxes with no points. The devkit's third filter,
bicycles and motorcycles standing in a bicycle rack, needs the rack annotations of the nuScenes
tables (``static_object.bicycle_rack``), which a results file does not carry: it is not applied,
so the figures are the devkit's exactly where no sample has a rack (``load_nuscenes_gt`` counts them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from perception.errors import FormatError
from perception.eval.config import ATTRIBUTE_NAMES, DETECTION_NAMES, DetectionEvalConfig

__all__ = ["EvalBoxes", "FilterCounts", "filter_boxes", "parse_boxes"]

_NAME_INDEX = {name: i for i, name in enumerate(DETECTION_NAMES)}
_ATTRIBUTES = frozenset(ATTRIBUTE_NAMES) | {""}


@dataclass(frozen=True, eq=False)
class EvalBoxes:
    """Boxes of many samples as columns, in file order (samples in key order, boxes in list order).

    The order matters: the devkit sorts predictions by score with ties broken by this order, and
    takes the first of equally distant ground-truth boxes.

    sample_tokens: (S,) the samples, including those without boxes; sample: (N,) int64 index into
    sample_tokens; translation, ego_translation: (N, 3); size: (N, 3) w l h; rotation: (N, 4) w x y z;
    velocity: (N, 2); label: (N,) int64 index into ``DETECTION_NAMES``; score: (N,) float64;
    attribute: (N,) object str; num_pts: (N,) int64.
    """

    sample_tokens: tuple[str, ...]
    sample: np.ndarray
    translation: np.ndarray
    size: np.ndarray
    rotation: np.ndarray
    velocity: np.ndarray
    ego_translation: np.ndarray
    label: np.ndarray
    score: np.ndarray
    attribute: np.ndarray
    num_pts: np.ndarray

    def __len__(self) -> int:
        return int(self.sample.shape[0])

    @property
    def ego_dist(self) -> np.ndarray:
        """(N,) xy distance from the ego vehicle (the devkit's ``EvalBox.ego_dist``)."""
        return np.sqrt(np.sum(self.ego_translation[:, :2] ** 2, axis=1))

    @property
    def names(self) -> list[str]:
        return [DETECTION_NAMES[i] for i in self.label]

    def select(self, mask: np.ndarray) -> EvalBoxes:
        """The boxes where ``mask`` is true, order kept; every sample token is kept."""
        cols = {f.name: getattr(self, f.name)[mask] for f in fields(self) if f.name != "sample_tokens"}
        return EvalBoxes(sample_tokens=self.sample_tokens, **cols)


@dataclass(frozen=True)
class FilterCounts:
    """How many boxes each filter stage kept (the devkit prints the same three numbers)."""

    total: int
    in_range: int
    with_points: int


def _where(source: str, token: str, index: int, key: str) -> str:
    return f"{source}: results[{token!r}][{index}].{key}"


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _vectors(boxes: list[tuple[str, int, Mapping[str, Any]]], key: str, n: int, source: str, *,
             allow_nan: bool = False, default: Sequence[float] | None = None) -> np.ndarray:
    """Column ``key`` of every box as (N, n) float64; the first malformed box raises, named.

    Most files are well formed, so the column is converted in one go and the boxes are only walked
    one by one to name the culprit when that fails.
    """
    if default is None:
        raw = [box.get(key) for _, _, box in boxes]
    else:
        raw = [box.get(key, default) for _, _, box in boxes]
    if not raw:
        return np.zeros((0, n))
    arr = None
    try:
        cand = np.asarray(raw)
        if cand.dtype.kind in "fiu" and cand.shape == (len(raw), n):
            arr = cand.astype(np.float64)
    except ValueError:  # ragged lists
        pass
    if arr is None and allow_nan:
        # JSON has no NaN: null stands for an unknown velocity.
        try:
            cand = np.asarray(raw, dtype=object)
            if cand.shape == (len(raw), n) and all(v is None or _is_number(v) for v in cand.ravel()):
                arr = np.where(cand == None, np.nan, cand).astype(np.float64)  # noqa: E711 (elementwise)
        except ValueError:
            pass
    if arr is None:
        for (token, index, _), value in zip(boxes, raw):
            ok = (isinstance(value, (list, tuple)) and len(value) == n
                  and all(_is_number(v) or (allow_nan and v is None) for v in value))
            if not ok:
                what = "missing" if value is None else repr(value)
                raise FormatError(f"{_where(source, token, index, key)}: expected a list of {n} numbers, got {what}")
        raise FormatError(f"{source}: {key}: expected lists of {n} numbers")  # unreachable: one box failed above
    if not allow_nan:
        bad = np.flatnonzero(~np.all(np.isfinite(arr), axis=1))
        if bad.size:
            token, index, _ = boxes[bad[0]]
            raise FormatError(f"{_where(source, token, index, key)}: expected finite numbers, got {raw[bad[0]]!r}")
    return arr


def parse_boxes(results: Any, *, source: str, predictions: bool,
                max_boxes_per_sample: int | None = None) -> EvalBoxes:
    """Check and convert ``{sample_token: [box dict, ...]}`` (the ``results`` of a file).

    ``predictions``: a detection_score is required, and at most ``max_boxes_per_sample`` boxes per
    sample are allowed (as the devkit's ``load_prediction``); ground truth may omit the score.
    ``source`` names the file (or "ground truth") in error messages.
    """
    if not isinstance(results, Mapping):
        raise FormatError(f"{source}: results: expected an object mapping sample_token to a list of boxes, "
                          f"got {type(results).__name__}")
    tokens: list[str] = []
    flat: list[tuple[str, int, Mapping[str, Any]]] = []
    sample: list[int] = []
    for s, (token, boxes) in enumerate(results.items()):
        if not isinstance(token, str):
            raise FormatError(f"{source}: results: sample tokens must be strings, got {token!r}")
        if not isinstance(boxes, list):
            raise FormatError(f"{source}: results[{token!r}]: expected a list of boxes, got {type(boxes).__name__}")
        if max_boxes_per_sample is not None and len(boxes) > max_boxes_per_sample:
            raise FormatError(f"{source}: results[{token!r}]: {len(boxes)} boxes, at most {max_boxes_per_sample} "
                              "are allowed per sample (max_boxes_per_sample)")
        tokens.append(token)
        for i, box in enumerate(boxes):
            if not isinstance(box, Mapping):
                raise FormatError(f"{source}: results[{token!r}][{i}]: expected a box object, got {type(box).__name__}")
            own = box.get("sample_token", token)
            if own != token:
                raise FormatError(f"{_where(source, token, i, 'sample_token')}: {own!r} differs from the key it is filed under")
            flat.append((token, i, box))
            sample.append(s)

    translation = _vectors(flat, "translation", 3, source)
    size = _vectors(flat, "size", 3, source)
    bad = np.flatnonzero(np.any(size <= 0, axis=1))
    if bad.size:
        token, index, box = flat[bad[0]]
        raise FormatError(f"{_where(source, token, index, 'size')}: expected width length height > 0, got {box['size']!r}")
    rotation = _vectors(flat, "rotation", 4, source)
    bad = np.flatnonzero(np.linalg.norm(rotation, axis=1) < 1e-12) if len(flat) else np.zeros(0, int)
    if bad.size:
        token, index, box = flat[bad[0]]
        raise FormatError(f"{_where(source, token, index, 'rotation')}: expected a non-zero quaternion w x y z, "
                          f"got {box['rotation']!r}")
    velocity = _vectors(flat, "velocity", 2, source, allow_nan=True)
    ego_translation = _vectors(flat, "ego_translation", 3, source)

    label = np.empty(len(flat), np.int64)
    score = np.empty(len(flat), np.float64)
    attribute = np.empty(len(flat), object)
    num_pts = np.empty(len(flat), np.int64)
    for k, (token, index, box) in enumerate(flat):
        name = box.get("detection_name")
        if name not in _NAME_INDEX:
            what = "missing" if name is None else repr(name)
            raise FormatError(f"{_where(source, token, index, 'detection_name')}: expected one of {list(DETECTION_NAMES)}, "
                              f"got {what}")
        label[k] = _NAME_INDEX[name]
        if "detection_score" in box or predictions:
            value = box.get("detection_score")
            if not _is_number(value) or not math.isfinite(value):
                what = "missing" if value is None else repr(value)
                raise FormatError(f"{_where(source, token, index, 'detection_score')}: expected a finite number, got {what}")
            score[k] = value
        else:
            score[k] = -1.0  # the devkit's score of a ground-truth box
        attr = box.get("attribute_name", "")
        if attr not in _ATTRIBUTES:
            raise FormatError(f"{_where(source, token, index, 'attribute_name')}: expected '' or one of "
                              f"{list(ATTRIBUTE_NAMES)}, got {attr!r}")
        attribute[k] = attr
        pts = box.get("num_pts", -1)
        if not _is_number(pts) or not float(pts).is_integer():
            raise FormatError(f"{_where(source, token, index, 'num_pts')}: expected an integer, got {pts!r}")
        num_pts[k] = int(pts)

    return EvalBoxes(
        sample_tokens=tuple(tokens), sample=np.asarray(sample, np.int64).reshape(-1),
        translation=translation, size=size, rotation=rotation, velocity=velocity, ego_translation=ego_translation,
        label=label, score=score, attribute=attribute, num_pts=num_pts,
    )


def filter_boxes(boxes: EvalBoxes, config: DetectionEvalConfig) -> tuple[EvalBoxes, FilterCounts]:
    """The devkit's ``filter_eval_boxes`` without the bicycle-rack stage (see the module docstring).

    Keeps a box when its xy distance to the ego vehicle is strictly below its class range, then
    drops boxes with ``num_pts == 0`` (ground truth nothing was measured in; predictions carry -1
    and so always stay). Applied alike to ground truth and predictions.
    """
    ranges = np.array([config.class_range[name] for name in DETECTION_NAMES])
    in_range = boxes.ego_dist < ranges[boxes.label] if len(boxes) else np.zeros(0, bool)
    kept = in_range & (boxes.num_pts != 0)
    return boxes.select(kept), FilterCounts(total=len(boxes), in_range=int(in_range.sum()), with_points=int(kept.sum()))
