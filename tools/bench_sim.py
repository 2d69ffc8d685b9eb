#!/usr/bin/env python3
"""How long ``bevfuse sim`` takes to simulate a log with the default rig (target: 20 s of log in <= 60 s).

    python tools/bench_sim.py                         # 20 s log, 800x450, default rig, seed 0
    python tools/bench_sim.py --image-size 1600x900 --json out/bench_sim_1600.json

The numba kernels are compiled (or loaded from their cache) by a 0.2 s warm-up run first, so the
figure is the simulation itself: the world, every sensor, the JPEG encoding and the MCAP writing.
Prints a summary and writes JSON with the wall time, the CPU time (all threads), the per-stage times
(cProfile's cumulative times on the main thread; camera rendering and bag writing run on threads of
their own, overlapped), the bag size and the machine with its load average.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from calib.rig import load_rig  # noqa: E402
from perception.commands.sim import DEFAULT_RIG, parse_image_size  # noqa: E402
from perception.sim.config import SimConfig  # noqa: E402
from perception.sim.simulator import Simulator  # noqa: E402

# the functions whose cumulative time is reported per stage
STAGES = {
    "lidar": "lidar.py:.*\\(sweep\\)",
    "waiting for camera images": "_base.py:.*\\(result\\)",
    "radars": "radar.py:.*\\(scan\\)",
    "gnss+imu": "inertial.py:.*\\((fix|sample)\\)",
    "ground truth": "simulator.py:.*\\(ground_truth\\)",
}
# The cameras render on the simulator's render threads and the bag writing (PointCloud2 and JPEG
# encoding, MCAP) on its writer thread, overlapped with the rest: cProfile sees the main thread
# only, so for the cameras it shows the time the main thread waited for an image, not their cost.


def _stage_times(profile: cProfile.Profile) -> dict[str, float]:
    import re

    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    out = {}
    for stage, pattern in STAGES.items():
        rx = re.compile(pattern)
        out[stage] = round(sum(v[3] for (f, line, name), v in stats.items() if rx.search(f"{Path(f).name}:{line}({name})")), 2)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", default="800x450")
    p.add_argument("--rig", default=str(DEFAULT_RIG))
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--threads", type=int, default=None, help="numba threads for the LiDAR and camera kernels (default: SimConfig's, 1)")
    p.add_argument("--json", default="out/bench_sim.json", help="where to write the JSON result")
    args = p.parse_args()
    width, height = parse_image_size(args.image_size)
    rig = load_rig(args.rig)
    config = SimConfig().with_image_size(width, height)
    if args.threads is not None:
        config = replace(config, lidar=replace(config.lidar, threads=args.threads), camera=replace(config.camera, threads=args.threads))
    work = Path(tempfile.mkdtemp(prefix="bench_sim_"))
    try:
        t = time.perf_counter()
        Simulator(rig, args.seed, 0.2, config).write(work / "warmup", storage=args.storage)
        warmup = time.perf_counter() - t
        profile = cProfile.Profile()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        profile.enable()
        sim = Simulator(rig, args.seed, args.seconds, config)
        counts = sim.write(work / "bag", storage=args.storage)
        profile.disable()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        size = sum(f.stat().st_size for f in (work / "bag").iterdir())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "benchmark": "bevfuse sim",
        "command": "python tools/bench_sim.py " + " ".join(sys.argv[1:]),
        "log_seconds": args.seconds,
        "image_size": f"{width}x{height}",
        "rig": Path(args.rig).name,
        "storage": args.storage,
        "seed": args.seed,
        "threads": config.camera.threads or os.cpu_count(),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "realtime_factor": round(args.seconds / wall, 3),
        "target_wall_s": 60.0 * args.seconds / 20.0,
        "meets_target": wall <= 60.0 * args.seconds / 20.0,
        "warmup_s (0.2 s log, includes numba compile or cache load)": round(warmup, 2),
        "stages_s (profiled, cumulative)": _stage_times(profile),
        "messages": sum(counts.values()),
        "bag_mb": round(size / 1e6, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "load_avg_1min": round(os.getloadavg()[0], 2)},
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }
    print(f"bevfuse sim: {args.seconds:g} s log, {width}x{height}, {Path(args.rig).name}: {wall:.1f} s wall "
          f"({cpu:.1f} s CPU, {result['realtime_factor']}x real time), target {result['target_wall_s']:.0f} s: "
          f"{'met' if result['meets_target'] else 'NOT met'}")
    for stage, sec in result["stages_s (profiled, cumulative)"].items():
        print(f"  {stage:36s} {sec:7.2f} s")
    print(f"  {result['messages']} messages, {result['bag_mb']} MB; load average {result['machine']['load_avg_1min']}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
