"""``bevfuse sim --out DIR --seconds S --seed N``: simulate a drive log with ground truth, as a ROS 2 bag.

The bag (``DIR``, a rosbag2 directory: metadata.yaml + one .mcap or .db3) holds every sensor of the
rig, ``/ground_truth`` boxes at each LiDAR stamp, the exact ego pose on ``/ego_pose``, ``/tf_static``
and the camera infos; ``DIR/rig.yaml`` is the rig with the cameras scaled to ``--image-size``. The
same seed gives a byte-identical bag.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

NAME = "sim"
HELP = "simulate a multi-sensor drive log with ground truth (ROS 2 bag), deterministic for a seed"

DEFAULT_RIG = Path(__file__).resolve().parents[2] / "data" / "rigs" / "nuscenes_like.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="bag directory to create (must not exist)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the log in seconds (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="random seed: the world, the drive and every noise (default 0)")
    parser.add_argument("--rig", default=None, help=f"rig file (default: {DEFAULT_RIG.name}, nuScenes' layout)")
    parser.add_argument("--image-size", default="800x450", help="camera image size WxH (default 800x450; nuScenes: 1600x900)")
    parser.add_argument("--faults", default=None, help="e.g. drop=0.05,jitter_ms=10,outage=CAM_FRONT@3+2,reorder=0.02,"
                                                      "clock_jump=0.5@4,drop:RADAR_FRONT=0.2")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="bag storage (default mcap)")
    parser.add_argument("--preview", default=None, metavar="PNG", help="also write a PNG of the middle frame: six cameras + BEV")
    parser.add_argument("--gnss", choices=("rtk", "standard"), default="rtk", help="GNSS noise level (default rtk)")
    parser.add_argument("--radar-msgtype", choices=("pointcloud2", "radarscan"), default="pointcloud2",
                        help="radar topics as sensor_msgs/PointCloud2 with nuScenes fields (default) or radar_msgs/RadarScan")
    parser.add_argument("--threads", type=int, default=None, help="threads for the LiDAR and camera kernels (default 1: the "
                                                                 "bag writing has its own thread; raise it on a machine with more cores)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_image_size(text: str) -> tuple[int, int]:
    from perception.errors import ConfigError

    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) < 16 or int(m.group(2)) < 16:
        raise ConfigError(f"--image-size: expected WxH with both at least 16, e.g. 800x450, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from calib.rig import load_rig
    from perception.errors import ConfigError, InputFileError
    from perception.sim.config import GnssSimConfig, SimConfig
    from perception.sim.faults import parse_faults
    from perception.sim.preview import PreviewCollector
    from perception.sim.simulator import Simulator

    width, height = parse_image_size(args.image_size)
    rig_path = Path(args.rig) if args.rig else DEFAULT_RIG
    if not rig_path.is_file():
        raise InputFileError(f"{rig_path}: rig file not found" + ("" if args.rig else "; pass one with --rig"))
    rig = load_rig(rig_path)
    out = Path(args.out)
    if out.exists():
        raise InputFileError(f"{out}: exists already; bevfuse sim writes a new bag directory")
    faults = parse_faults(args.faults, rig.names)
    config = replace(SimConfig(), gnss=GnssSimConfig(mode=args.gnss),
                     radar_msgtype="radar_msgs/msg/RadarScan" if args.radar_msgtype == "radarscan" else "sensor_msgs/msg/PointCloud2")
    config = config.with_image_size(width, height)
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads: expected >= 1, got {args.threads}")
        config = replace(config, lidar=replace(config.lidar, threads=args.threads), camera=replace(config.camera, threads=args.threads))
    t0 = time.perf_counter()
    sim = Simulator(rig, args.seed, args.seconds, config, faults)
    preview = PreviewCollector(sim) if args.preview else None
    counts = sim.write(out, storage=args.storage, progress=not args.no_progress, on_message=preview)
    if preview is not None:
        preview.save(args.preview)
    took = time.perf_counter() - t0
    sc = sim.world.scenario
    print(f"{out}: {sum(counts.values())} messages on {len(counts)} topics, {args.seconds:g} s simulated in {took:.1f} s "
          f"(seed {args.seed}: {sc.lanes_per_direction} lane(s) each way, {sim.world.n_objects} objects)", file=sys.stderr)
    if args.preview:
        print(f"{args.preview}: preview written", file=sys.stderr)
    return 0
