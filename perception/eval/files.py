"""Reading and writing the evaluation's JSON files.

Predictions: the nuScenes submission, ``{"meta": {...}, "results": {sample_token: [box, ...]}}``
(``meta`` is required, as by the devkit's ``load_prediction``; its content is not checked). Ground
truth: ``{"results": {sample_token: [box, ...]}}`` (``meta`` optional), boxes with ``num_pts``.
Boxes of both carry ``ego_translation``. Every problem raises one ``BevfuseError`` naming the file
and the key.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from perception.errors import FormatError, InputFileError
from perception.eval.boxes import EvalBoxes, parse_boxes
from perception.eval.config import DEFAULT_CONFIG, DetectionEvalConfig

__all__ = ["load_config_file", "load_gt_file", "load_pred_file", "read_json", "write_json", "write_results_file"]


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a missing file raises ``InputFileError``, bad JSON ``FormatError`` with the line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFileError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise InputFileError(f"{p}: is a directory, expected a JSON file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{p}: cannot read: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(f"{p}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def _results(data: Any, path: Path, *, need_meta: bool) -> Any:
    if not isinstance(data, Mapping):
        raise FormatError(f"{path}: expected a JSON object with key 'results', got {type(data).__name__}")
    if "results" not in data:
        raise FormatError(f"{path}: missing key 'results' (expected {{\"meta\": ..., \"results\": {{sample_token: [boxes]}}}})")
    if need_meta and "meta" not in data:
        raise FormatError(f"{path}: missing key 'meta' (a nuScenes submission carries "
                          "{\"meta\": {\"use_camera\": ..., \"use_lidar\": ...}, \"results\": ...})")
    if "meta" in data and not isinstance(data["meta"], Mapping):
        raise FormatError(f"{path}: meta: expected an object, got {type(data['meta']).__name__}")
    return data["results"]


def load_gt_file(path: str | Path) -> EvalBoxes:
    """Ground truth from ``{"results": {...}}``."""
    p = Path(path)
    return parse_boxes(_results(read_json(p), p, need_meta=False), source=str(p), predictions=False)


def load_pred_file(path: str | Path, config: DetectionEvalConfig = DEFAULT_CONFIG) -> EvalBoxes:
    """Predictions from a nuScenes submission file (at most ``config.max_boxes_per_sample`` per sample)."""
    p = Path(path)
    return parse_boxes(_results(read_json(p), p, need_meta=True), source=str(p), predictions=True,
                       max_boxes_per_sample=config.max_boxes_per_sample)


def load_config_file(path: str | Path) -> DetectionEvalConfig:
    """A config in the devkit's JSON layout (``detection_cvpr_2019.json``); errors name the file and key."""
    p = Path(path)
    return DetectionEvalConfig.from_dict(read_json(p), source=str(p))


def _strict(value: Any) -> Any:
    """NaN and infinities as null: Python's json would write NaN, which strict parsers refuse."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented strict JSON (NaN written as null)."""
    p = Path(path)
    try:
        p.write_text(json.dumps(_strict(data), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputFileError(f"{p}: cannot write: {exc}") from None


def write_results_file(path: str | Path, results: Mapping[str, list[dict[str, Any]]],
                       meta: Mapping[str, Any] | None = None) -> None:
    """Write boxes as ``{"meta": ..., "results": ...}``: a submission (with meta) or a ground-truth file.

    An unknown velocity stays the JSON literal NaN, as the devkit writes and reads it (it would
    fail on null); ``parse_boxes`` reads both.
    """
    p = Path(path)
    data: dict[str, Any] = {} if meta is None else {"meta": dict(meta)}
    data["results"] = results
    try:
        p.write_text(json.dumps(data) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputFileError(f"{p}: cannot write: {exc}") from None
