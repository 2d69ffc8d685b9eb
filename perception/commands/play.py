"""``bevfuse play LOG --transport zenoh|ros2 [--rate R] [--loop] [--clock HZ] [--endpoint E]``: publish a
drive log live, like ``ros2 bag play``.

A ROS 2 bag goes out as recorded (CDR bytes unchanged); any other log through its reader, encoded
losslessly. A bag goes out in the order it was recorded, paced by its log times; another log in
stamp order, paced by its stamps (``--rate`` times real time).
Prints one JSON object at the end: per-topic counts, how often it fell behind, wall time.
SIGINT/SIGTERM stop it at once, exit 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading

from perception.runtime.cli_args import add_transport_arguments, install_stop_handlers, transport_from_args

NAME = "play"
HELP = "publish a drive log live over Zenoh (rmw_zenoh layout) or ROS 2, in real time (a bag as recorded)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("log", help="drive log: ROS 2 bag (played as recorded), ROS 1 bag, nuScenes, KITTI, AV2")
    parser.add_argument("--rate", type=float, default=1.0, help="speed factor (default 1: real time)")
    parser.add_argument("--loop", action="store_true", help="start again at the end, until stopped")
    parser.add_argument("--clock", type=float, default=0.0, metavar="HZ",
                        help="also publish rosgraph_msgs/Clock on /clock at HZ (log time), as ros2 bag play --clock")
    parser.add_argument("--topics", nargs="+", metavar="TOPIC", help="play only these topics")
    parser.add_argument("--rig", help="rig file (for logs that are not ROS 2 bags; default: from the log)")
    parser.add_argument("--wait-for-subscriber", type=float, default=0.0, metavar="S",
                        help="declare the publishers, then wait up to S seconds for a subscriber before playing")
    add_transport_arguments(parser, "bevfuse_play")


def run(args: argparse.Namespace) -> int:
    from perception.runtime.player import Player

    stop = threading.Event()
    install_stop_handlers(stop)
    transport = transport_from_args(args)
    player = Player(args.log, transport, rate=args.rate, loop=args.loop, clock_hz=args.clock, topics=args.topics,
                    rig=args.rig, stop=stop)
    try:
        matched = player.declare(args.wait_for_subscriber)
        for topic, why in player.stats.skipped_topics.items():
            print(f"bevfuse play: warning: skipping {topic}: {why}", file=sys.stderr, flush=True)
        # one line when playing starts: scripts and tests wait for it
        print(f"bevfuse play: playing {args.log} at rate {args.rate:g} on {args.transport}", file=sys.stderr, flush=True)
        stats = player.run()
    finally:
        player.close()
        transport.close()
    out = stats.to_dict()
    out["subscriber_matched_at_start"] = matched
    out["stopped_by_signal"] = stop.is_set()
    print(json.dumps(out, indent=2))
    return 0
