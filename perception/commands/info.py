"""``bevfuse info PATH [--json] [--rig RIG]``: what a drive log holds, per stream.

Works for every format a reader registers (it goes through ``open_log``): format, duration, and per
stream the sensor, topic, message type, count, rate and first/last stamp. A table by default;
``--json`` prints one JSON object (stamps as int ns, rates in Hz, durations in seconds).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from typing import Any

NAME = "info"
HELP = "show the streams of a drive log (ROS bag, nuScenes, KITTI, AV2): counts, rates, stamps"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="drive log: ROS 1 .bag, ROS 2 bag directory/.db3/.mcap, or a dataset folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--rig", default=None, help="rig file mapping topics to sensors (default: from the log)")


def summarize(reader: Any) -> dict[str, Any]:
    """The info of an open reader as a JSON-ready dict."""
    streams = [s.to_dict() for s in reader.streams()]
    firsts = [s["first_stamp_ns"] for s in streams if s["first_stamp_ns"] is not None]
    lasts = [s["last_stamp_ns"] for s in streams if s["last_stamp_ns"] is not None]
    start = min(firsts) if firsts else None
    end = max(lasts) if lasts else None
    out: dict[str, Any] = {
        "path": str(reader.path),
        "format": reader.format,
        "start_ns": start,
        "end_ns": end,
        "duration_s": (end - start) / 1e9 if start is not None and end is not None else None,
        "message_count": sum(s["count"] for s in streams),
        "rig": {"name": reader.rig.name, "source": getattr(reader, "rig_source", reader.rig.source), "sensors": reader.rig.names},
        "streams": streams,
    }
    warnings = getattr(reader, "warnings", None)
    if warnings:
        out["warnings"] = list(warnings)
    if reader.skipped:
        out["skipped"] = dict(reader.skipped)
    return out


def _stamp(ns: int | None) -> str:
    if ns is None:
        return "-"
    # UTC with milliseconds: readable, and the raw ns is one --json away.
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def format_table(info: dict[str, Any]) -> str:
    lines = [
        f"path:      {info['path']}",
        f"format:    {info['format']}",
        f"duration:  {info['duration_s']:.3f} s" if info["duration_s"] is not None else "duration:  -",
        f"start:     {_stamp(info['start_ns'])} UTC",
        f"messages:  {info['message_count']}",
        f"rig:       {info['rig']['name']} ({info['rig']['source']}): {len(info['rig']['sensors'])} sensors",
        "",
    ]
    head = ("sensor", "topic", "type", "count", "rate Hz", "first stamp (UTC)", "last stamp (UTC)")
    rows = [head]
    for s in info["streams"]:
        rate = f"{s['rate_hz']:.2f}" if s["rate_hz"] is not None else "-"
        rows.append((s["sensor"] or "-", s["topic"], s["msgtype"], str(s["count"]), rate, _stamp(s["first_stamp_ns"]),
                     _stamp(s["last_stamp_ns"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    right = {3, 4}
    for r in rows:
        lines.append("  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    for w in info.get("warnings", []):
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from perception.io.base import open_log

    with open_log(args.path, rig=args.rig) as reader:
        info = summarize(reader)
    print(json.dumps(info, indent=2) if args.json else format_table(info))
    return 0
