"""``report.md``: a replay summed up in Markdown tables a person reads first.

Sections: the run (logs, model, device, frames, wall time, FPS), detection metrics (when the log has
ground truth), latency per stage, frames dropped and degraded, and every message the readers or the
synchronizer skipped or dropped, by reason (a corrupt image or point cloud is named here with its
topic and what was wrong with it), then the output files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from perception.errors import InputFileError

__all__ = ["format_report", "write_report"]

_TP = ("mATE", "mASE", "mAOE", "mAVE", "mAAE")


def _num(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, int):
        return str(x)
    return f"{float(x):.{digits}f}"


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> list[str]:
    align = ["---:" if i in right else "---" for i in range(len(head))]
    out = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return out


def _latency_rows(latency: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    entries = [(f"stage: {k}", v) for k, v in latency.get("stages", {}).items()]
    entries += [("end to end", latency.get("end_to_end")), ("sensor to output", latency.get("sensor_to_output"))]
    for name, s in entries:
        if s is None:
            rows.append([name, "n/a", "n/a", "n/a", "n/a", "n/a"])
        else:
            rows.append([name] + [_num(s[k], 2) for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms")])
    return rows


def format_report(*, run: Mapping[str, Any], latency: Mapping[str, Any], metrics: Mapping[str, Any] | None,
                  skipped: Mapping[str, int], sync_drops: Mapping[str, int], outputs: Sequence[str],
                  notes: Sequence[str] = (), bad_frames: Sequence[str] = (), cleaned: Mapping[str, int] | None = None) -> str:
    """The report's text. ``run``: key -> value lines of the first table; ``latency``: ``latency.json``'s
    dict; ``metrics``: ``metrics.json``'s dict or None; ``skipped``: reader reason -> count (messages
    that could not be decoded); ``sync_drops``: synchronizer 'sensor: reason' -> count; ``notes``:
    lines said before the tables (e.g. sensors the log lacks); ``bad_frames``: one line per frame
    skipped as corrupt (log, stamp, what was wrong); ``cleaned``: 'sensor: what' -> frames where
    invalid points were removed and the frame went on."""
    lines = ["# bevfuse replay report", ""]
    for note in notes:
        lines += [f"> {note}", ""]
    lines += ["## Run", ""]
    lines += _table(["", ""], [[k, v] for k, v in run.items()])
    lines.append("")

    lines += ["## Detection metrics (nuScenes)", ""]
    if metrics is None:
        lines += ["The log has no ground truth: no metrics.", ""]
    else:
        lines += _table(["mAP", "NDS", *_TP], [[_num(metrics.get("mAP")), _num(metrics.get("NDS"))]
                                                + [_num(metrics.get(k)) for k in _TP]], right=range(7))
        lines.append("")
        per = metrics.get("per_class", {})
        rows = [[name, _num(c.get("mAP")), _num(c.get("ATE")), _num(c.get("ASE")), _num(c.get("AOE")), _num(c.get("AVE")),
                 _num(c.get("AAE")), c.get("num_gt", 0), c.get("num_pred", 0)] for name, c in per.items()]
        lines += _table(["class", "AP", "ATE", "ASE", "AOE", "AVE", "AAE", "#gt", "#pred"], rows, right=range(1, 9))
        lines += ["", "n/a: the devkit does not define that error for the class, or no box matched.", ""]

    lines += ["## Latency (ms)", ""]
    lines += [f"{latency.get('frames', 0)} frames on {latency.get('device')} ({latency.get('backend')}, "
              f"{latency.get('precision')}, config {latency.get('config')}).", ""]
    lines += _table(["", "p50", "p90", "p99", "max", "mean"], _latency_rows(latency), right=range(1, 6))
    lines.append("")

    lines += ["## Frames dropped and degraded", ""]
    dropped = latency.get("frames_dropped", {}) or {}
    degraded = latency.get("degraded_frames", {}) or {}
    if dropped:
        lines += _table(["frames dropped: reason", "count"], sorted(dropped.items()), right=(1,))
        lines.append("")
    else:
        lines += ["No frame dropped.", ""]
    if degraded:
        lines += _table(["degraded frames: sensor missing", "frames"], sorted(degraded.items()), right=(1,))
        lines.append("")
    else:
        lines += ["No frame missed a sensor.", ""]

    lines += ["## Skipped and corrupt messages", ""]
    if bad_frames:
        lines += ["Frames skipped as corrupt (the replay went on):", ""]
        lines += [f"- {b}" for b in bad_frames[:50]]
        if len(bad_frames) > 50:
            lines.append(f"- ... and {len(bad_frames) - 50} more")
        lines.append("")
    if cleaned:
        lines += _table(["invalid points removed, frame kept", "frames"], sorted(cleaned.items()), right=(1,))
        lines.append("")
    if skipped:
        lines += ["Messages the reader could not decode (skipped; the replay went on):", ""]
        lines += _table(["topic / sensor: problem", "count"], sorted(skipped.items()), right=(1,))
        lines.append("")
    else:
        lines += ["The reader decoded every message.", ""]
    if sync_drops:
        lines += ["Messages the synchronizer dropped (late, unmatched, invalid, or held at the end of the log):", ""]
        lines += _table(["sensor: reason", "count"], sorted(sync_drops.items()), right=(1,))
        lines.append("")

    lines += ["## Outputs", ""]
    lines += [f"- `{o}`" for o in outputs]
    lines.append("")
    return "\n".join(lines)


def write_report(path: str | Path, **kwargs: Any) -> str:
    """Write ``format_report(**kwargs)`` to ``path``; returns the text."""
    text = format_report(**kwargs)
    p = Path(path)
    try:
        p.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputFileError(f"{p}: cannot write: {exc}") from None
    return text
