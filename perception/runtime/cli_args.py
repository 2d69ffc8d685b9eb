"""Command-line options shared by ``bevfuse play`` and ``bevfuse node``: which transport, where."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["add_transport_arguments", "install_stop_handlers", "transport_from_args"]


def add_transport_arguments(parser: argparse.ArgumentParser, default_node: str) -> None:
    parser.add_argument("--transport", choices=("zenoh", "ros2"), default="zenoh",
                        help="zenoh: rmw_zenoh's layout over a Zenoh session (no ROS 2 needed); ros2: rclpy (default zenoh)")
    parser.add_argument("--endpoint", action="append", default=[], metavar="ENDPOINT",
                        help="Zenoh endpoint to connect to, repeatable (default tcp/127.0.0.1:7447, rmw_zenoh's router, "
                             "unless --listen is given)")
    parser.add_argument("--listen", action="append", default=[], metavar="ENDPOINT",
                        help="Zenoh endpoint to listen on, repeatable (e.g. tcp/127.0.0.1:7447 when no router runs)")
    parser.add_argument("--domain-id", type=int, default=int(os.environ.get("ROS_DOMAIN_ID", "0") or 0),
                        help="ROS domain id (default $ROS_DOMAIN_ID or 0)")
    parser.add_argument("--distro", choices=("jazzy", "humble"), default="jazzy",
                        help="type hashes in the Zenoh keys: jazzy = RIHS01 (Iron and later), humble = TypeHashNotSupported")
    parser.add_argument("--node-name", default=default_node, help=f"ROS node name (default {default_node})")


def transport_from_args(args: argparse.Namespace) -> Any:
    from perception.runtime.transport import open_transport

    return open_transport(args.transport, connect=args.endpoint, listen=args.listen, domain_id=args.domain_id,
                          distro=args.distro, node=args.node_name)


def install_stop_handlers(stop: threading.Event, also: Callable[[], None] | None = None) -> None:
    """SIGINT and SIGTERM set ``stop`` (the main loop then shuts down in order) instead of raising;
    ``also`` is called after (e.g. to leave at once while nothing is open yet)."""

    def handler(signum: int, frame: object) -> None:
        stop.set()
        if also is not None:
            also()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
