"""Driving nuscenes-devkit 1.2.0's own evaluation code, to compare bevfuse's figures with it.

The devkit is a test-only dependency. Where it cannot be imported the parity tests skip, saying
why, except under CI=true, where that fails the run (a missing pin must not pass unnoticed).
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import pytest

from perception.eval.config import DETECTION_NAMES, TP_METRICS
from perception.eval.detection import EvalResult

__all__ = ["DEVKIT_VERSION", "assert_parity", "devkit_evaluate", "devkit_filter", "require_devkit"]

DEVKIT_VERSION = "1.2.0"
CURVE_KEYS = ("recall", "precision", "confidence", "trans_err", "vel_err", "scale_err", "orient_err", "attr_err")
TOL = 1e-6


def require_devkit() -> None:
    """Skip (or under CI=true fail) unless nuscenes-devkit 1.2.0's detection evaluation imports."""
    from importlib import metadata

    try:
        version = metadata.version("nuscenes-devkit")
        import nuscenes.eval.detection.evaluate  # noqa: F401  (pulls algo, data_classes, loaders)
    except Exception as exc:  # ImportError, or a missing transitive dependency of the devkit
        msg = (f"nuscenes-devkit {DEVKIT_VERSION} is not importable ({type(exc).__name__}: {exc}); install the test "
               f"pins: pip install --no-deps nuscenes-devkit=={DEVKIT_VERSION}; pip install pyquaternion cachetools scikit-learn")
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    if version != DEVKIT_VERSION:
        msg = f"nuscenes-devkit {version} is installed; the parity tests are written against {DEVKIT_VERSION}"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)


def devkit_config() -> Any:
    from nuscenes.eval.common.config import config_factory

    return config_factory("detection_cvpr_2019")


def devkit_boxes(results: dict[str, list[dict[str, Any]]]) -> Any:
    from nuscenes.eval.common.data_classes import EvalBoxes
    from nuscenes.eval.detection.data_classes import DetectionBox

    return EvalBoxes.deserialize(results, DetectionBox)


def devkit_filter(eval_boxes: Any, cfg: Any) -> Any:
    """The first two stages of the devkit's filter_eval_boxes, for samples that are not in a NuScenes db.

    (Its third stage looks up bicycle racks in the db; the real-data test runs the whole function.)
    """
    for token in eval_boxes.sample_tokens:
        kept = [b for b in eval_boxes[token] if b.ego_dist < cfg.class_range[b.detection_name]]
        eval_boxes.boxes[token] = [b for b in kept if not b.num_pts == 0]
    return eval_boxes


def devkit_run(gt_boxes: Any, pred_boxes: Any, cfg: Any) -> tuple[Any, Any]:
    """The devkit's DetectionEval.evaluate on already loaded and filtered boxes.

    ``DetectionEval.__init__`` only loads files and a NuScenes db; ``evaluate`` reads nothing but
    these four attributes, so they are set directly and the devkit's own loop runs unchanged.
    """
    from nuscenes.eval.detection.evaluate import DetectionEval

    ev = DetectionEval.__new__(DetectionEval)
    ev.cfg, ev.gt_boxes, ev.pred_boxes, ev.verbose = cfg, gt_boxes, pred_boxes, False
    return ev.evaluate()


def devkit_evaluate(gt: dict[str, list[dict[str, Any]]], pred: dict[str, list[dict[str, Any]]]) -> tuple[Any, Any]:
    """(DetectionMetrics, DetectionMetricDataList) of the devkit for box dicts carrying ego_translation."""
    cfg = devkit_config()
    return devkit_run(devkit_filter(devkit_boxes(gt), cfg), devkit_filter(devkit_boxes(pred), cfg), cfg)


def _close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= TOL


def assert_parity(result: EvalResult, metrics: Any, md_list: Any) -> None:
    """Every figure and every 101-point curve of ``result`` equals the devkit's to 1e-6 (NaN where it has NaN)."""
    for (name, th), curve in result.curves.items():
        md = md_list[(name, th)]
        for key in CURVE_KEYS:
            np.testing.assert_allclose(getattr(curve, key), getattr(md, key), rtol=0, atol=TOL, equal_nan=True,
                                       err_msg=f"curve {key} of {name} at {th} m")
    for name in DETECTION_NAMES:
        for th in result.config.dist_ths:
            ours, theirs = result.classes[name].ap[th], metrics.get_label_ap(name, th)
            assert _close(ours, theirs), f"AP of {name} at {th} m: {ours} != devkit {theirs}"
        for m in TP_METRICS:
            ours, theirs = result.classes[name].tp_errors[m], metrics.get_label_tp(name, m)
            assert _close(ours, theirs), f"{m} of {name}: {ours} != devkit {theirs}"
    for m in TP_METRICS:
        assert _close(result.tp_errors[m], metrics.tp_errors[m]), f"mean {m}: {result.tp_errors[m]} != {metrics.tp_errors[m]}"
        assert _close(result.tp_scores[m], metrics.tp_scores[m]), f"score {m}"
    assert _close(result.mean_ap, metrics.mean_ap), f"mAP {result.mean_ap} != devkit {metrics.mean_ap}"
    assert _close(result.nd_score, metrics.nd_score), f"NDS {result.nd_score} != devkit {metrics.nd_score}"
    summary = metrics.serialize()
    ours = result.to_json()
    for name, aps in summary["label_aps"].items():
        for th, ap in aps.items():
            assert _close(ours["label_aps"][name][str(float(th))], ap)
