"""Does ``--transport ros2`` keep to this machine? Two bevfuse ROS 2 transports exchange messages
for a few seconds; the packets each network interface sent meanwhile (``/proc/net/dev``) are
printed, and written as JSON with ``--json``.

    python tools/ros2_loopback_check.py                      # the transport's default: LOCALHOST
    python tools/ros2_loopback_check.py --range SUBNET       # ROS 2's own default, for comparison

Other processes' traffic counts too: run it on a quiet machine, and compare with ``--range SUBNET``
(Fast DDS then announces itself by multicast on every interface).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def tx_packets() -> dict[str, int]:
    out = {}
    for line in Path("/proc/net/dev").read_text().splitlines()[2:]:
        name, rest = line.split(":", 1)
        out[name.strip()] = int(rest.split()[9])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--range", default=None, choices=("LOCALHOST", "SUBNET", "SYSTEM_DEFAULT"),
                    help="ROS_AUTOMATIC_DISCOVERY_RANGE (default: the transport's, LOCALHOST)")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--domain-id", type=int, default=57)
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()
    if args.range:
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = args.range
    from perception.io.ros_encode import serialize
    from perception.io.rosmsg import make
    from perception.runtime.ros2_transport import Ros2Transport

    before = tx_packets()
    a = Ros2Transport(node="bevfuse_check_a", domain_id=args.domain_id)
    b = Ros2Transport(node="bevfuse_check_b", domain_id=args.domain_id)
    got: list[object] = []
    a.subscribe("/bevfuse/check", "std_msgs/msg/String", got.append)
    pub = b.publisher("/bevfuse/check", "std_msgs/msg/String")
    data = serialize(make("std_msgs/msg/String", data="x" * 100), "std_msgs/msg/String")
    end = time.monotonic() + args.seconds
    sent = 0
    while time.monotonic() < end:
        pub.publish(data)
        sent += 1
        time.sleep(0.01)
    b.close()
    a.close()
    after = tx_packets()
    delta = {k: after[k] - before.get(k, 0) for k in after}
    off_machine = {k: v for k, v in delta.items() if k != "lo" and v}
    res = {"range": os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"], "seconds": args.seconds, "sent": sent, "received": len(got),
           "tx_packets": delta, "sent_off_loopback": sum(off_machine.values())}
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
