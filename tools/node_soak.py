#!/usr/bin/env python3
"""Soak test of ``bevfuse node``: its resident memory (RSS) over a long run.

Starts ``bevfuse node`` and ``bevfuse play LOG --loop`` (real time: the log's own rate, 10 Hz frames
for a 10 Hz LiDAR reference) over Zenoh on a free loopback port, samples the node's RSS every
``--interval`` seconds for ``--minutes`` after ``--warmup`` seconds, and prints one JSON object:
the samples, the median RSS of the first and of the last minute, their ratio (``growth``, and
``within_5_percent``: RSS swings a few percent frame to frame, a leak is a trend), the peak, and
the node's exit summary (frames, drops, processing and sensor-to-publish latency against the
player's ``/clock``) and the player's (how often it fell behind). The player sends the rig's sensor
topics only (``--all-topics``: every topic of the log): it shares the CPU with the node, and ground
truth nobody subscribes to would only slow it. Both processes get SIGTERM at the end.

    python tools/node_soak.py --log SIM_LOG --model data/models/tiny.pt --minutes 10

Nothing leaves the machine: Zenoh listens and connects on 127.0.0.1 only, scouting is off.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

CLI = [sys.executable, "-m", "perception.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(proc: subprocess.Popen, timeout_s: float) -> None:
    assert proc.stderr is not None
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        line = proc.stderr.readline()
        if not line:
            raise SystemExit(f"node_soak: the node ended before it was ready (exit {proc.poll()})")
        sys.stderr.write(line)
        if "bevfuse node: ready" in line:
            return
    raise SystemExit(f"node_soak: the node was not ready within {timeout_s} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log", required=True, help="drive log to play in a loop (a bevfuse sim log)")
    ap.add_argument("--model", required=True, help="checkpoint for the node")
    ap.add_argument("--rig", help="rig file (default LOG/rig.yaml)")
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the run after warm-up (default 10)")
    ap.add_argument("--warmup", type=float, default=60.0, metavar="S", help="seconds before the baseline starts (default 60)")
    ap.add_argument("--interval", type=float, default=5.0, metavar="S", help="RSS sampling period (default 5 s)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the node (default 1)")
    ap.add_argument("--rate", type=float, default=1.0, help="play rate (default 1: real time)")
    ap.add_argument("--all-topics", action="store_true",
                    help="play every topic of the log (default: only the rig's sensor topics, which the node subscribes to: "
                         "ground truth and the like would only load the player, which shares the CPU with the node)")
    args = ap.parse_args(argv)

    rig = args.rig or str(Path(args.log) / "rig.yaml")
    endpoint = f"tcp/127.0.0.1:{_free_port()}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    node = subprocess.Popen([*CLI, "node", "--rig", rig, "--model", args.model, "--listen", endpoint, "--threads", str(args.threads),
                             "--use-sim-time"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    play = None
    samples: list[tuple[float, int]] = []
    try:
        _wait_ready(node, 900.0)
        assert node.stderr is not None
        # drain the node's stderr so that it never blocks on a full pipe
        import threading

        threading.Thread(target=lambda: [None for _ in iter(node.stderr.readline, "")], daemon=True).start()
        topics: list[str] = []
        if not args.all_topics:
            from calib.rig import load_rig

            topics = ["--topics", *[s.topic for s in load_rig(rig).sensors if s.topic]]
        play = subprocess.Popen([*CLI, "play", args.log, "--loop", "--rate", str(args.rate), "--endpoint", endpoint,
                                 "--clock", "50", "--wait-for-subscriber", "30", *topics],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        proc = psutil.Process(node.pid)
        start = time.monotonic()
        end = start + args.warmup + args.minutes * 60.0
        while time.monotonic() < end:
            if node.poll() is not None or play.poll() is not None:
                raise SystemExit(f"node_soak: a process ended early (node {node.poll()}, play {play.poll()})")
            samples.append((round(time.monotonic() - start, 1), proc.memory_info().rss))
            time.sleep(args.interval)
    finally:
        play_out = ""
        if play is not None:
            if play.poll() is None:
                play.send_signal(signal.SIGTERM)
            play_out, _ = play.communicate(timeout=30)
        if node.poll() is None:
            node.send_signal(signal.SIGTERM)
        out, _ = node.communicate(timeout=60)
    summary = json.loads(out) if out.strip().startswith("{") else {}
    # RSS swings by a few percent frame to frame (activations allocated and freed): a leak is a
    # trend, so the last minute's median is compared with the first minute's after warm-up
    after = [(t, r) for t, r in samples if t >= args.warmup]
    end_t = after[-1][0] if after else 0.0
    first_minute = [r for t, r in after if t < args.warmup + 60.0] or [r for _, r in after]
    last_minute = [r for t, r in after if t >= end_t - 60.0] or [r for _, r in after]
    baseline = statistics.median(first_minute) if first_minute else float("nan")
    final = statistics.median(last_minute) if last_minute else float("nan")
    peak = max((r for _, r in after), default=float("nan"))
    growth = (final - baseline) / baseline if after else float("nan")
    report = {
        "minutes": args.minutes, "warmup_s": args.warmup, "interval_s": args.interval,
        "rss_first_minute_median_mib": round(baseline / 2**20, 1), "rss_last_minute_median_mib": round(final / 2**20, 1),
        "rss_peak_mib": round(peak / 2**20, 1), "growth": round(growth, 4),
        "peak_over_first_minute": round((peak - baseline) / baseline, 4) if after else None,
        "within_5_percent": bool(growth <= 0.05),
        "frames_done": summary.get("frames_done"), "frames_in": summary.get("frames_in"),
        "frames_dropped": summary.get("frames_dropped"), "processing_ms": summary.get("processing_ms"),
        "sensor_to_publish_ms": summary.get("sensor_to_publish_ms"), "queue_max_depth": summary.get("queue_max_depth"),
        "samples_mib": [(t, round(r / 2**20, 1)) for t, r in samples],
        # all of the node's exit summary: queue waits, receive drops, the synchronizer's counters
        "node_summary": summary,
        # the player's: how often it fell behind its schedule (it shares the CPU with the node)
        "player_summary": json.loads(play_out) if play_out.strip().startswith("{") else {},
    }
    print(json.dumps(report, indent=2))
    return 0 if report["within_5_percent"] else 1


if __name__ == "__main__":
    sys.exit(main())
