"""The nuScenes detection metrics of one class: matching, precision/recall, AP and TP errors.

Written after nuscenes-devkit 1.2.0 (``eval/detection/algo.py`` and ``eval/common/utils.py``) and
kept step for step the same, because the figures must agree with the devkit's to 1e-6:

* ``accumulate``: the predictions of one class, over all samples, sorted by descending score (ties:
  the later box in file order first, as the devkit's ``sorted(...)[::-1]``), are matched greedily:
  each takes the nearest still unmatched ground-truth box of its class in its sample (xy centre
  distance; of equally near ones the first in file order) when that distance is strictly below the
  threshold. Cumulative TP and FP counts give precision and recall, which are resampled at the 101
  recalls 0, 0.01, ..., 1 with ``np.interp`` (precision 0 beyond the highest recall reached); the
  score is resampled the same way. Each match records five errors; their cumulative means are
  resampled at those scores. NaN errors (unknown ground-truth velocity, ground truth without an
  attribute) are skipped in the means, except that a mean is 0 before the first defined error, and
  all ones when no error is defined at all.
* ``calc_ap``: the mean of ``max(precision - min_precision, 0)`` over the recalls above
  ``min_recall``, divided by ``1 - min_precision``.
* ``calc_tp``: the mean of an error curve from the first recall above ``min_recall`` up to the highest
  recall reached; 1 when that recall is not above ``min_recall``.

A class with no ground truth, or whose predictions match nothing, gets the devkit's "no
predictions" curves: precision 0 (AP 0) and every error 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calib import se3
from perception.eval.boxes import EvalBoxes
from perception.eval.config import DETECTION_NAMES, TP_METRICS

__all__ = [
    "NELEM",
    "MetricCurve",
    "accumulate",
    "attr_error",
    "calc_ap",
    "calc_tp",
    "center_distance",
    "cummean",
    "scale_iou",
    "yaw_diff",
    "yaw_from_quaternions",
]

# Recall samples of the precision/recall and error curves: 0, 0.01, ..., 1 (DetectionMetricData.nelem).
NELEM = 101


@dataclass(frozen=True, eq=False)
class MetricCurve:
    """The devkit's ``DetectionMetricData``: every array (101,), indexed by the recall sample.

    confidence is the score at which each recall is reached (0 past the highest recall); the errors
    are the mean error of the matches made down to that score.
    """

    recall: np.ndarray
    precision: np.ndarray
    confidence: np.ndarray
    trans_err: np.ndarray
    vel_err: np.ndarray
    scale_err: np.ndarray
    orient_err: np.ndarray
    attr_err: np.ndarray

    @classmethod
    def no_predictions(cls) -> MetricCurve:
        """Curves of a class with no ground truth or no match: AP 0, every error 1."""
        return cls(
            recall=np.linspace(0, 1, NELEM), precision=np.zeros(NELEM), confidence=np.zeros(NELEM),
            trans_err=np.ones(NELEM), vel_err=np.ones(NELEM), scale_err=np.ones(NELEM),
            orient_err=np.ones(NELEM), attr_err=np.ones(NELEM),
        )

    @property
    def max_recall_ind(self) -> int:
        """Index of the highest recall reached: the last non-zero confidence (0 when there is none)."""
        nonzero = np.flatnonzero(self.confidence)
        return int(nonzero[-1]) if nonzero.size else 0

    def error(self, metric: str) -> np.ndarray:
        if metric not in TP_METRICS:
            raise KeyError(f"metric: expected one of {list(TP_METRICS)}, got {metric!r}")
        return getattr(self, metric)


def center_distance(a_xy: np.ndarray, b_xy: np.ndarray) -> np.ndarray:
    """xy distance between box centres: ``(..., 2+)`` against ``(..., 2+)`` broadcast, z ignored."""
    diff = a_xy[..., :2] - b_xy[..., :2]
    # What np.linalg.norm(..., axis=-1) computes, without its per-call overhead (this runs per prediction).
    return np.sqrt(np.add.reduce(diff * diff, axis=-1))


def yaw_from_quaternions(q: np.ndarray) -> np.ndarray:
    """Heading of (M, 4) w x y z quaternions: the rotated x axis projected onto xy (the devkit's quaternion_yaw)."""
    if q.shape[0] == 0:
        return np.zeros(0)
    R = se3.quat_to_matrix(q)
    return np.arctan2(R[:, 1, 0], R[:, 0, 0])


def yaw_diff(yaw_gt: np.ndarray, yaw_pred: np.ndarray, period: float) -> np.ndarray:
    """Smallest absolute heading difference, headings being equal modulo ``period`` (pi for a barrier)."""
    diff = np.mod(yaw_gt - yaw_pred + period / 2, period) - period / 2
    # As the devkit's angle_diff: only reachable for a period above 2 pi, kept for parity.
    diff = np.where(diff > np.pi, diff - 2 * np.pi, diff)
    return np.abs(diff)


def scale_iou(size_a: np.ndarray, size_b: np.ndarray) -> np.ndarray:
    """3D IoU of boxes aligned on the same centre and heading: ``(M, 3)`` sizes (same order) -> (M,)."""
    intersection = np.prod(np.minimum(size_a, size_b), axis=-1)
    union = np.prod(size_a, axis=-1) + np.prod(size_b, axis=-1) - intersection
    return intersection / union


def attr_error(attr_gt: np.ndarray, attr_pred: np.ndarray) -> np.ndarray:
    """1 - attribute accuracy per match; NaN where the ground truth has no attribute (skipped later)."""
    err = np.array([0.0 if g == p else 1.0 for g, p in zip(attr_gt, attr_pred)])
    err[np.asarray([g == "" for g in attr_gt], bool)] = np.nan
    return err


def cummean(x: np.ndarray) -> np.ndarray:
    """Running mean skipping NaNs (0 before the first number, not NaN); all ones when every value is NaN."""
    isnan = np.isnan(x)
    if isnan.all():
        # No defined error at any operating point: the devkit counts the metric as fully wrong.
        return np.ones(len(x))
    sums = np.nancumsum(x.astype(float))
    counts = np.cumsum(~isnan)
    return np.divide(sums, counts, out=np.zeros_like(sums), where=counts != 0)


def _greedy_match(gt: EvalBoxes, pred: EvalBoxes, gt_idx: np.ndarray, pred_order: np.ndarray,
                  dist_th: float) -> tuple[np.ndarray, np.ndarray]:
    """For predictions in ``pred_order`` (indices into ``pred``): the matched GT index or -1, and the distance."""
    # The ground truth of this class per sample, in file order (equally near boxes go to the first):
    # a stable sort by sample keeps that order within each group.
    gt_sample = gt.sample[gt_idx]
    by_sample = np.argsort(gt_sample, kind="stable")
    grouped = gt_idx[by_sample]
    starts = np.flatnonzero(np.r_[True, np.diff(gt_sample[by_sample]) != 0])
    bounds = dict(zip(gt_sample[by_sample][starts].tolist(), zip(starts.tolist(), np.r_[starts[1:], grouped.size].tolist())))
    # Each prediction's sample as an index of the ground truth's samples (-1: not there).
    gt_sample_of = {token: i for i, token in enumerate(gt.sample_tokens)}
    pred_to_gt = np.array([gt_sample_of.get(token, -1) for token in pred.sample_tokens], np.int64)

    taken = np.zeros(grouped.size, bool)
    matched = np.full(len(pred_order), -1, np.int64)
    dist = np.full(len(pred_order), np.inf)
    for k, (p, s) in enumerate(zip(pred_order.tolist(), pred_to_gt[pred.sample[pred_order]].tolist())):
        span = bounds.get(s)
        if span is None:
            continue  # no ground truth of this class in the sample: a false positive
        lo, hi = span
        d = center_distance(gt.translation[grouped[lo:hi]], pred.translation[p])
        d[taken[lo:hi]] = np.inf
        j = int(np.argmin(d))  # the first of equal minima, as the devkit's strict "<" scan
        if d[j] < dist_th:
            taken[lo + j] = True
            matched[k] = grouped[lo + j]
            dist[k] = d[j]
    return matched, dist


def accumulate(gt: EvalBoxes, pred: EvalBoxes, class_name: str, dist_th: float) -> MetricCurve:
    """Match one class at one centre-distance threshold and build its curves (the devkit's ``accumulate``).

    ``gt`` and ``pred`` are already filtered (``filter_boxes``); predictions of a sample token that
    has no ground truth of the class are false positives.
    """
    label = DETECTION_NAMES.index(class_name)
    gt_idx = np.flatnonzero(gt.label == label)
    npos = gt_idx.size
    if npos == 0:
        return MetricCurve.no_predictions()

    pred_idx = np.flatnonzero(pred.label == label)
    scores = pred.score[pred_idx]
    # Descending score; among equal scores the later box first: the devkit sorts (score, index)
    # pairs ascending and reverses the list.
    order = np.lexsort((np.arange(pred_idx.size), scores))[::-1]
    pred_sorted = pred_idx[order]
    matched, dist = _greedy_match(gt, pred, gt_idx, pred_sorted, dist_th)
    is_tp = matched >= 0
    if not is_tp.any():
        return MetricCurve.no_predictions()

    tp = np.cumsum(is_tp).astype(float)
    fp = np.cumsum(~is_tp).astype(float)
    conf = pred.score[pred_sorted]
    prec = tp / (fp + tp)
    rec = tp / float(npos)

    rec_interp = np.linspace(0, 1, NELEM)
    prec = np.interp(rec_interp, rec, prec, right=0)
    conf = np.interp(rec_interp, rec, conf, right=0)

    # The five errors of each match, in match order (descending score).
    p_m = pred_sorted[is_tp]
    g_m = matched[is_tp]
    period = np.pi if class_name == "barrier" else 2 * np.pi  # a barrier's heading is only known modulo pi
    errors = {
        "trans_err": dist[is_tp],
        "vel_err": np.linalg.norm(pred.velocity[p_m] - gt.velocity[g_m], axis=1),
        "scale_err": 1.0 - scale_iou(gt.size[g_m], pred.size[p_m]),
        "orient_err": yaw_diff(yaw_from_quaternions(gt.rotation[g_m]), yaw_from_quaternions(pred.rotation[p_m]), period),
        "attr_err": attr_error(gt.attribute[g_m], pred.attribute[p_m]),
    }
    match_conf = pred.score[p_m]
    # Resample each running mean at the curve's scores; np.interp wants increasing x, hence the reversals.
    curves = {key: np.interp(conf[::-1], match_conf[::-1], cummean(err)[::-1])[::-1] for key, err in errors.items()}
    return MetricCurve(recall=rec_interp, precision=prec, confidence=conf, **curves)


def calc_ap(curve: MetricCurve, min_recall: float, min_precision: float) -> float:
    """Average precision over the recalls above ``min_recall``, counting only precision above ``min_precision``."""
    first = round(100 * min_recall) + 1  # the min_recall sample itself is excluded
    prec = curve.precision[first:] - min_precision
    prec[prec < 0] = 0
    return float(np.mean(prec)) / (1.0 - min_precision)


def calc_tp(curve: MetricCurve, min_recall: float, metric: str) -> float:
    """Mean of one error curve from above ``min_recall`` to the highest recall reached; 1 if that is not above it."""
    first = round(100 * min_recall) + 1
    last = curve.max_recall_ind
    if last < first:
        return 1.0
    return float(np.mean(curve.error(metric)[first:last + 1]))
