"""The on-vehicle runtime: ``bevfuse node`` and ``bevfuse play``.

- ``NodeCore`` (core.py): transport-free; SensorMessages in, a bounded worker running the
  Synchronizer and the Pipeline, ``FrameResult``s and a ``NodeStatus`` a second out, watchdogs.
- ``Node`` (node.py): the core wired to a transport, the ROS outputs and the Foxglove server.
- Transports (``Transport``): ``ZenohTransport`` (rmw_zenoh's key layout, CDR payloads; no ROS 2
  needed) and ``Ros2Transport`` (rclpy, where importable); ``open_transport(kind, ...)``.
- ``rmw_zenoh``: key expressions, type hashes (RIHS01), attachments, liveliness tokens.
- ``Player`` (player.py): a drive log published live, like ``ros2 bag play``.
- ``FoxgloveSink``: the Foxglove WebSocket live view.

Names are imported lazily: importing the package pulls in neither Zenoh nor Foxglove.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "FoxgloveSink",
    "FramePublisher",
    "FrameResult",
    "Node",
    "NodeConfig",
    "NodeCore",
    "NodeOptions",
    "NodeState",
    "NodeStatus",
    "Player",
    "Ros2Transport",
    "RosOutputs",
    "SensorInputs",
    "SimClock",
    "Transport",
    "TransportError",
    "Watchdog",
    "ZenohTransport",
    "open_transport",
]

_WHERE = {
    "FoxgloveSink": "foxglove_sink",
    "FramePublisher": "outputs", "FrameResult": "outputs", "NodeState": "outputs", "NodeStatus": "outputs",
    "Node": "node", "NodeOptions": "node",
    "NodeConfig": "core", "NodeCore": "core",
    "Player": "player",
    "Ros2Transport": "ros2_transport",
    "RosOutputs": "ros_io", "SensorInputs": "ros_io",
    "SimClock": "clock",
    "Transport": "transport", "open_transport": "transport",
    "TransportError": "errors",
    "Watchdog": "watchdog",
    "ZenohTransport": "zenoh_transport",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"perception.runtime.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'perception.runtime' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
