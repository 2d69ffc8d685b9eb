"""What the node core hands its publishers: one ``FrameResult`` per processed frame and one
``NodeStatus`` a second. Publishers (ROS topics over a transport, the Foxglove server) implement
``FramePublisher``; the core knows nothing of messages or transports (Autoware's lesson: the
node adapts, the core computes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol, runtime_checkable

from perception.types import Detections, SyncedFrame

__all__ = ["FramePublisher", "FrameResult", "NodeState", "NodeStatus", "SensorStatus"]


class NodeState(str, Enum):
    STARTING = "starting"
    RUNNING = "running"  # every watched sensor is talking
    DEGRADED = "degraded"  # a sensor is silent past its timeout (named in NodeStatus.silent)
    STOPPING = "stopping"


@dataclass(frozen=True)
class FrameResult:
    """One processed frame. Times are wall-clock ns (``time.time_ns``) except the durations.

    ``processing_ns``: the pipeline's step; ``latency_ns``: the frame's sensor stamp to this
    publication (on the node's clock, see ``perception.runtime.core``); ``queue_wait_ns``: how long
    the frame waited for the worker; ``index``: the frame's number among the frames synchronized.
    """

    frame: SyncedFrame
    detections: Detections
    index: int
    processing_ns: int
    latency_ns: int
    queue_wait_ns: int
    publish_ns: int


@dataclass(frozen=True)
class SensorStatus:
    """One sensor's view at a status: rate over the last window (Hz), age of its newest message
    (s since it arrived), counters since the start, whether its watchdog fired."""

    name: str
    rate_hz: float
    age_s: float | None
    received: int
    malformed: int
    timeout_s: float | None
    silent: bool


@dataclass(frozen=True)
class NodeStatus:
    """The node once a second: state, silent sensors, per-sensor status, frame and drop counters,
    latency figures over the last window (ms; NaN before the first frame)."""

    stamp_ns: int
    state: NodeState
    silent: tuple[str, ...]
    sensors: tuple[SensorStatus, ...]
    frames_in: int
    frames_done: int
    frames_dropped: int
    queue_depth: int
    queue_bound: int
    malformed: int
    processing_ms_p50: float
    processing_ms_max: float
    latency_ms_p50: float
    latency_ms_p99: float
    latency_ms_max: float
    extra: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class FramePublisher(Protocol):
    def publish_frame(self, result: FrameResult) -> None:
        """Called on the worker thread after each frame: keep it short."""
        ...

    def publish_status(self, status: NodeStatus) -> None:
        """Called once a second from the node's timer thread."""
        ...

    def close(self) -> None: ...
