"""``evaluate``: the nuScenes detection metrics (mAP, TP errors, NDS) of predictions against ground truth.

The steps of the devkit's ``DetectionEval`` (nuscenes-devkit 1.2.0): both sets are filtered
(``filter_boxes``: class range from the ego vehicle, ground truth with no points); for every class
and threshold the predictions are matched (``metrics.accumulate``); the class's AP at a threshold is
``calc_ap`` of that curve, and its TP errors are ``calc_tp`` of the curve at ``dist_th_tp`` (2 m),
except the ones the devkit leaves undefined (NaN): orientation, velocity and attribute of a traffic
cone, velocity and attribute of a barrier. Then::

    mAP       = mean over the classes of (mean over the thresholds of AP)
    mTE       = nanmean over the classes of the TP error TE  (mATE, mASE, mAOE, mAVE, mAAE)
    NDS       = (mean_ap_weight * mAP + sum over the five TP errors of (1 - min(1, mTE)))
                / (mean_ap_weight + 5)

A class absent from the ground truth still counts, as in the devkit: AP 0 and every TP error 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from perception.errors import FormatError
from perception.eval.boxes import EvalBoxes, FilterCounts, filter_boxes, parse_boxes
from perception.eval.config import (
    DEFAULT_CONFIG,
    DETECTION_NAMES,
    TP_METRIC_ABBREVIATIONS,
    TP_METRICS,
    UNDEFINED_TP_METRICS,
    DetectionEvalConfig,
)
from perception.eval.metrics import MetricCurve, accumulate, calc_ap, calc_tp

__all__ = ["ClassResult", "EvalResult", "evaluate", "evaluate_boxes"]


@dataclass(frozen=True)
class ClassResult:
    """The metrics of one class.

    ap: AP per matching threshold (m); mean_ap: their mean; tp_errors: TP metric name -> error
    (NaN where the devkit does not define it for the class); num_gt / num_pred: boxes after filtering.
    """

    name: str
    ap: Mapping[float, float]
    mean_ap: float
    tp_errors: Mapping[str, float]
    num_gt: int
    num_pred: int


@dataclass(frozen=True)
class EvalResult:
    """What ``evaluate`` measured; ``curves`` holds the 101-point curves per (class, threshold)."""

    config: DetectionEvalConfig
    classes: Mapping[str, ClassResult]
    curves: Mapping[tuple[str, float], MetricCurve]
    mean_ap: float
    tp_errors: Mapping[str, float]
    tp_scores: Mapping[str, float]
    nd_score: float
    gt_counts: FilterCounts
    pred_counts: FilterCounts

    def error(self, abbreviation: str) -> float:
        """A mean TP error by its short name: 'ATE', 'ASE', 'AOE', 'AVE' or 'AAE'."""
        for metric, short in TP_METRIC_ABBREVIATIONS.items():
            if short == abbreviation:
                return self.tp_errors[metric]
        raise KeyError(f"abbreviation: expected one of {list(TP_METRIC_ABBREVIATIONS.values())}, got {abbreviation!r}")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary: the headline figures, per class results, and the devkit's own keys.

        Headline: ``mAP``, ``NDS``, ``mATE`` ... ``mAAE``. ``per_class[name]``: ``AP`` {threshold: AP},
        ``mAP``, ``ATE`` ... ``AAE``, ``num_gt``, ``num_pred``. The devkit's ``metrics_summary.json``
        keys follow (``label_aps``, ``mean_dist_aps``, ``mean_ap``, ``label_tp_errors``, ``tp_errors``,
        ``tp_scores``, ``nd_score``, ``cfg``). Thresholds are keys as ``str(float)`` ("0.5"). An
        undefined error (NaN) is written as null, so that the file is strict JSON.
        """
        def num(x: float) -> float | None:
            return None if math.isnan(x) else float(x)

        def th(t: float) -> str:
            return str(float(t))

        per_class = {}
        for name, c in self.classes.items():
            entry: dict[str, Any] = {"AP": {th(t): num(ap) for t, ap in c.ap.items()}, "mAP": num(c.mean_ap)}
            entry.update({TP_METRIC_ABBREVIATIONS[m]: num(c.tp_errors[m]) for m in TP_METRICS})
            entry.update({"num_gt": c.num_gt, "num_pred": c.num_pred})
            per_class[name] = entry
        out: dict[str, Any] = {"mAP": num(self.mean_ap), "NDS": num(self.nd_score)}
        out.update({"m" + TP_METRIC_ABBREVIATIONS[m]: num(self.tp_errors[m]) for m in TP_METRICS})
        out["per_class"] = per_class
        out["label_aps"] = {name: {th(t): num(ap) for t, ap in c.ap.items()} for name, c in self.classes.items()}
        out["mean_dist_aps"] = {name: num(c.mean_ap) for name, c in self.classes.items()}
        out["mean_ap"] = num(self.mean_ap)
        out["label_tp_errors"] = {name: {m: num(c.tp_errors[m]) for m in TP_METRICS} for name, c in self.classes.items()}
        out["tp_errors"] = {m: num(v) for m, v in self.tp_errors.items()}
        out["tp_scores"] = {m: num(v) for m, v in self.tp_scores.items()}
        out["nd_score"] = num(self.nd_score)
        out["cfg"] = self.config.to_dict()
        out["counts"] = {
            "gt": {"total": self.gt_counts.total, "in_range": self.gt_counts.in_range, "with_points": self.gt_counts.with_points},
            "pred": {"total": self.pred_counts.total, "in_range": self.pred_counts.in_range},
        }
        return out


def _nanmean(values: Sequence[float]) -> float:
    arr = np.asarray(values, dtype=np.float64)
    # All undefined cannot happen with the ten classes (only cone and barrier have NaNs); an all-NaN
    # mean stays NaN, without numpy's warning, and NDS then counts that metric's score as 0.
    return float(np.nanmean(arr)) if np.any(~np.isnan(arr)) else math.nan


def evaluate_boxes(gt: EvalBoxes, pred: EvalBoxes, config: DetectionEvalConfig = DEFAULT_CONFIG) -> EvalResult:
    """Evaluate parsed boxes (``parse_boxes``); both must cover the same samples, as the devkit requires."""
    if set(gt.sample_tokens) != set(pred.sample_tokens):
        only_gt = sorted(set(gt.sample_tokens) - set(pred.sample_tokens))
        only_pred = sorted(set(pred.sample_tokens) - set(gt.sample_tokens))
        raise FormatError(
            "predictions and ground truth must cover the same samples (a sample without detections is an empty "
            f"list): {len(only_gt)} only in the ground truth (e.g. {only_gt[:3]}), "
            f"{len(only_pred)} only in the predictions (e.g. {only_pred[:3]})"
        )
    gt_f, gt_counts = filter_boxes(gt, config)
    pred_f, pred_counts = filter_boxes(pred, config)

    curves: dict[tuple[str, float], MetricCurve] = {}
    classes: dict[str, ClassResult] = {}
    for name in config.class_names:
        for t in config.dist_ths:
            curves[(name, t)] = accumulate(gt_f, pred_f, name, t)
        ap = {t: calc_ap(curves[(name, t)], config.min_recall, config.min_precision) for t in config.dist_ths}
        undefined = UNDEFINED_TP_METRICS.get(name, frozenset())
        tp_curve = curves[(name, config.dist_th_tp)]
        tp_errors = {m: math.nan if m in undefined else calc_tp(tp_curve, config.min_recall, m) for m in TP_METRICS}
        label = DETECTION_NAMES.index(name)
        classes[name] = ClassResult(
            name=name, ap=ap, mean_ap=float(np.mean(list(ap.values()))), tp_errors=tp_errors,
            num_gt=int(np.sum(gt_f.label == label)), num_pred=int(np.sum(pred_f.label == label)),
        )

    mean_ap = float(np.mean([c.mean_ap for c in classes.values()]))
    tp_errors = {m: _nanmean([c.tp_errors[m] for c in classes.values()]) for m in TP_METRICS}
    # 1 - error, floored at 0 (translation and velocity errors are unbounded); an undefined error scores 0.
    tp_scores = {m: 0.0 if math.isnan(e) else max(0.0, 1.0 - e) for m, e in tp_errors.items()}
    nd_score = (config.mean_ap_weight * mean_ap + sum(tp_scores.values())) / (config.mean_ap_weight + len(tp_scores))
    return EvalResult(
        config=config, classes=classes, curves=curves, mean_ap=mean_ap, tp_errors=tp_errors, tp_scores=tp_scores,
        nd_score=float(nd_score), gt_counts=gt_counts, pred_counts=pred_counts,
    )


def evaluate(gt: Mapping[str, Sequence[Mapping[str, Any]]], pred: Mapping[str, Sequence[Mapping[str, Any]]],
             config: DetectionEvalConfig = DEFAULT_CONFIG) -> EvalResult:
    """nuScenes detection metrics of ``pred`` against ``gt``, both ``{sample_token: [box dict, ...]}``.

    Box dicts as described in ``perception.eval.boxes`` (the nuScenes submission's, with
    ``ego_translation``, and ``num_pts`` for ground truth). Raises ``FormatError`` on a malformed box.
    """
    gt_boxes = parse_boxes(gt, source="ground truth", predictions=False)
    pred_boxes = parse_boxes(pred, source="predictions", predictions=True, max_boxes_per_sample=config.max_boxes_per_sample)
    return evaluate_boxes(gt_boxes, pred_boxes, config)
