#!/usr/bin/env python3
"""Simulate a training set in one command: many seeds, each its own street, traffic, light and drive.

    python tools/make_training_set.py --out data_sim/train --count 50 --seconds 20 --first-seed 1000 --jobs 2

writes ``OUT/seed_01000/`` ... (each a ROS 2 bag with ``rig.yaml`` inside, and ``preview.png`` with
``--previews``) and ``OUT/index.json``: per log the seed, the scenario drawn (lanes, curviness, traffic,
pedestrians, parked cars, work zone, sun elevation, ego top speed), the GNSS mode, the object count
and the message counts. Seeds are consecutive from ``--first-seed``, so sets made with disjoint seed
ranges never share a log (keep the validation range apart from the training one).

Variety: every seed draws its own scenario (``perception.sim.world.Scenario``); on top, every
third log uses standard GNSS instead of RTK, and ``--fault-fraction`` of the logs carry sensor faults
(drops, jitter, an outage of a random sensor) so that a model sees degraded inputs too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _one(job: dict) -> dict:
    """Simulate one log (runs in a worker process)."""
    import numpy as np

    from calib.rig import load_rig
    from perception.sim.config import GnssSimConfig, SimConfig
    from perception.sim.faults import parse_faults
    from perception.sim.keys import stream_key
    from perception.sim.preview import PreviewCollector
    from perception.sim.simulator import Simulator

    seed = job["seed"]
    rig = load_rig(job["rig"])
    rng = np.random.default_rng(stream_key(seed, "training-set"))
    gnss = "standard" if seed % 3 == 0 else "rtk"
    faults = None
    if rng.random() < job["fault_fraction"]:
        victim = str(rng.choice(rig.names))
        start = float(rng.uniform(0.0, max(job["seconds"] - 2.0, 0.0)))
        faults = f"drop=0.02,jitter_ms=3,outage={victim}@{start:.2f}+1.5"
    config = SimConfig(gnss=GnssSimConfig(mode=gnss)).with_image_size(*job["image_size"])
    sim = Simulator(rig, seed, job["seconds"], config, parse_faults(faults, rig.names))
    out = Path(job["out"]) / f"seed_{seed:05d}"
    preview = PreviewCollector(sim) if job["previews"] else None
    t = time.perf_counter()
    counts = sim.write(out, storage=job["storage"], on_message=preview)
    if preview is not None:
        preview.save(out / "preview.png")
    return {"seed": seed, "path": str(out), "scenario": asdict(sim.world.scenario), "gnss": gnss, "faults": faults or "",
            "objects": sim.world.n_objects, "messages": counts, "seconds_to_simulate": round(time.perf_counter() - t, 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for the logs (created; must not hold logs of these seeds)")
    p.add_argument("--count", type=int, default=10, help="number of logs")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--seconds", type=float, default=20.0, help="length of each log")
    p.add_argument("--image-size", default="800x450")
    p.add_argument("--rig", default=None, help="rig file (default: the nuScenes-like rig)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--fault-fraction", type=float, default=0.2, help="share of logs with sensor faults (0 = none)")
    p.add_argument("--previews", action="store_true", help="a preview.png in every log folder")
    p.add_argument("--jobs", type=int, default=1, help="logs simulated at once (processes)")
    args = p.parse_args()

    from perception.commands.sim import DEFAULT_RIG, parse_image_size
    from perception.errors import BevfuseError

    try:
        size = parse_image_size(args.image_size)
    except BevfuseError as exc:
        print(f"make_training_set: error: {exc}", file=sys.stderr)
        return 2
    if args.count < 1 or not 0.0 <= args.fault_fraction <= 1.0:
        print("make_training_set: error: --count must be >= 1 and --fault-fraction in [0, 1]", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = range(args.first_seed, args.first_seed + args.count)
    clash = [s for s in seeds if (out / f"seed_{s:05d}").exists()]
    if clash:
        print(f"make_training_set: error: {out} already holds seed(s) {clash[:5]}...", file=sys.stderr)
        return 2
    jobs = [{"seed": s, "rig": str(args.rig or DEFAULT_RIG), "seconds": args.seconds, "image_size": size, "out": str(out),
             "storage": args.storage, "fault_fraction": args.fault_fraction, "previews": args.previews} for s in seeds]
    t = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(_one, jobs))
    else:
        results = [_one(j) for j in jobs]
    for r in results:
        print(f"{r['path']}: {r['objects']} objects, {r['scenario']['lanes_per_direction']} lane(s) each way, "
              f"gnss {r['gnss']}{', faults ' + r['faults'] if r['faults'] else ''} ({r['seconds_to_simulate']} s)")
    (out / "index.json").write_text(json.dumps({"logs": results, "seconds_per_log": args.seconds,
                                                "image_size": args.image_size}, indent=2) + "\n")
    print(f"{len(results)} logs in {time.perf_counter() - t:.0f} s; index: {out / 'index.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
