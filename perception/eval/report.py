"""A plain-text table of an ``EvalResult``: the headline figures, then one row per class."""

from __future__ import annotations

import math

from perception.eval.config import TP_METRIC_ABBREVIATIONS, TP_METRICS
from perception.eval.detection import EvalResult

__all__ = ["format_table"]


def _f(x: float, width: int = 6) -> str:
    return f"{'n/a':>{width}}" if math.isnan(x) else f"{x:{width}.4f}"


def format_table(result: EvalResult) -> str:
    """The devkit's summary (mAP, mean TP errors, NDS) and per-class AP, AP per threshold and TP errors.

    ``n/a`` marks an error the devkit does not define for the class (e.g. a cone's orientation).
    """
    ths = result.config.dist_ths
    lines = [f"mAP:  {result.mean_ap:.4f}"]
    for m in TP_METRICS:
        lines.append(f"m{TP_METRIC_ABBREVIATIONS[m]}: {_f(result.tp_errors[m], 0)}")
    lines.append(f"NDS:  {result.nd_score:.4f}")
    g, p = result.gt_counts, result.pred_counts
    lines.append(f"ground truth: {g.total} boxes, {g.in_range} in class range, {g.with_points} with points; "
                 f"predictions: {p.total}, {p.in_range} in class range")
    lines.append("")
    header = ["class".ljust(20), f"{'AP':>6}"] + [f"{'AP@' + format(t, 'g'):>6}" for t in ths]
    header += [f"{TP_METRIC_ABBREVIATIONS[m]:>6}" for m in TP_METRICS] + [f"{'#gt':>6}", f"{'#pred':>6}"]
    lines.append(" ".join(header))
    for name, c in result.classes.items():
        row = [name.ljust(20), _f(c.mean_ap)] + [_f(c.ap[t]) for t in ths]
        row += [_f(c.tp_errors[m]) for m in TP_METRICS] + [f"{c.num_gt:>6d}", f"{c.num_pred:>6d}"]
        lines.append(" ".join(row))
    return "\n".join(lines)
