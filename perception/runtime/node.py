"""The on-vehicle node: a transport, the core, the ROS outputs, optionally the Foxglove server.

Start-up order (each step done before the next): the processor is built and warmed by the caller
(engine load, CUDA graph capture, numba compilation: the first frame must not pay for them);
publishers are declared; the core's threads start; only then are the sensor topics subscribed,
so that no message arrives at a node that cannot process it yet. Shut-down runs the other way:
unsubscribe, stop the core (the worker finishes its step, publishers flush and close), close the
Foxglove server and the transport.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from calib.rig import Rig
from perception.runtime.clock import SimClock, StampClock, WallClock
from perception.runtime.core import FrameProcessor, NodeConfig, NodeCore
from perception.runtime.outputs import FramePublisher
from perception.runtime.ros_io import RosOutputs, SensorInputs
from perception.runtime.transport import Transport

__all__ = ["Node", "NodeOptions"]


@dataclass(frozen=True)
class NodeOptions:
    """``use_sim_time``: latency against the player's ``/clock`` instead of the wall clock;
    ``foxglove``: serve the Foxglove WebSocket on ``foxglove_host:foxglove_port`` (0: any free port);
    ``extra_topics``: topic -> sensor name routes beyond the rig's (e.g. a pose topic)."""

    core: NodeConfig = NodeConfig()
    use_sim_time: bool = False
    foxglove: bool = False
    foxglove_host: str = "127.0.0.1"
    foxglove_port: int = 8765
    node_name: str = "bevfuse"
    marker_score: float = 0.3
    extra_topics: tuple[tuple[str, str], ...] = ()


class Node:
    """See the module docstring. ``synchronizer``: a fresh ``Synchronizer`` for ``rig``;
    ``processor``: a built, warmed ``Pipeline`` (anything with ``step(frame) -> Detections``)."""

    def __init__(self, transport: Transport, rig: Rig, synchronizer: Any, processor: FrameProcessor,
                 options: NodeOptions | None = None, publishers: list[FramePublisher] | None = None) -> None:
        self.transport, self.rig = transport, rig
        self.options = o = options or NodeOptions()
        self.sim_clock = SimClock() if o.use_sim_time else None
        clock: StampClock = self.sim_clock if self.sim_clock is not None else WallClock()
        self.outputs = RosOutputs(transport, node=o.node_name, marker_score=o.marker_score)
        pubs: list[FramePublisher] = [self.outputs, *(publishers or [])]
        self.foxglove = None
        if o.foxglove:
            from perception.runtime.foxglove_sink import FoxgloveSink

            self.foxglove = FoxgloveSink(o.foxglove_host, o.foxglove_port, name=o.node_name)
            pubs.append(self.foxglove)
        self.core = NodeCore(rig, synchronizer, processor, pubs, o.core, clock)
        self.inputs = SensorInputs(transport, rig, self.core, extra=dict(o.extra_topics), sim_clock=self.sim_clock)
        self.started = False

    def start(self) -> None:
        self.core.start()
        self.inputs.start()
        self.started = True

    def run(self, stop: threading.Event, on_status: Any = None) -> None:
        """Block until ``stop`` is set; ``on_status(NodeStatus)`` each status period (e.g. logging)."""
        last = None
        while not stop.wait(0.05):
            status = self.core.last_status
            if on_status is not None and status is not None and status is not last:
                on_status(status)
                last = status

    def stop(self, timeout_s: float = 1.5) -> bool:
        """Unsubscribe, stop the core (bounded by ``timeout_s``), close the server; True if the worker ended in time."""
        self.inputs.close()
        ok = self.core.stop(timeout_s)
        if self.foxglove is not None:
            self.foxglove.close()  # closed by the core already; a second close is harmless
        return ok
