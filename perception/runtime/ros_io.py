"""The node's ROS side: subscriptions that feed the core, and the ROS topics it publishes.

**Inputs.** One subscription per rig sensor with a topic. Bytes are deserialized with bevfuse's
typestore and decoded with ``perception.io.ros_decode`` exactly as the bag reader does (stamp =
``header.stamp`` + the sensor's ``time_offset_ns``; a zero stamp is replaced by the arrival time),
so a live stream yields the ``SensorMessage``s a replay of its recording yields. On Zenoh the
subscription takes any type on the topic (the type is in the key); over rclpy it takes the rig's
``msgtype`` or the modality's usual one. A message that cannot be deserialized or decoded is
counted (``NodeCore.on_malformed``) and skipped. ``/clock`` feeds a ``SimClock`` when asked.
The transport's callback only queues the bytes; one decode thread decodes them in arrival order
(bounded queue: when it falls that far behind, the oldest samples go, counted in ``receive_dropped``).
A sample that waited longer than ``max_age_s`` for the decode thread is dropped undecoded and
counted in ``receive_stale``: under overload (a player at 4x real time on two cores) the decode
thread falls behind, and a count-bounded queue alone let seconds of samples wait, so every frame
came out seconds late. Dropping them before decoding sheds the work too.
Compressed images are not decoded here at all (``defer_images``): they reach the synchronizer as
``EncodedImage``s and the core's worker decodes the images of the frames it takes, so a frame
dropped under overload never costs its six JPEG decodes (most of the decode thread's work).

**Outputs** (``RosOutputs``, a ``FramePublisher``), the topics of ``bevfuse replay``'s bag:

=================================  ======================================  ==========================
topic                              type                                    when
=================================  ======================================  ==========================
``/bevfuse/detections``            vision_msgs/msg/Detection3DArray        every frame
``/bevfuse/boxes``                 bevfuse_msgs/msg/Box3DArray             every frame (lossless:
                                                                           velocity, float64)
``/bevfuse/markers``               visualization_msgs/msg/MarkerArray      every frame (score >= 0.3)
                                                                           while it has a subscriber
``/diagnostics``                   diagnostic_msgs/msg/DiagnosticArray     once a second
``/bevfuse/debug/processing_time_ms``   std_msgs/msg/Float64               once a second (max of the
``/bevfuse/debug/pipeline_latency_ms``  std_msgs/msg/Float64               last second; NaN if none)
=================================  ======================================  ==========================
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import replace
from typing import Any

from calib.rig import Rig, SensorSpec
from perception.errors import BevfuseError
from perception.io.ros_decode import decode
from perception.io.ros_encode import serialize
from perception.io.rosmsg import make, typestore
from perception.runtime.clock import SimClock
from perception.runtime.errors import MessageTypeMissing, NodeError
from perception.runtime.fast_cdr import box3d_array_cdr, detection3d_array_cdr
from perception.runtime.outputs import FrameResult, NodeState, NodeStatus
from perception.runtime.player import CLOCK_TOPIC, CLOCK_TYPE
from perception.runtime.queues import DropOldestQueue
from perception.runtime.rmw_zenoh import DEFAULT_QOS, SENSOR_DATA_QOS
from perception.runtime.transport import Received, Subscription, Transport
from perception.types import Modality, SensorMessage

__all__ = [
    "BOXES_TOPIC",
    "DETECTIONS_TOPIC",
    "DIAGNOSTICS_TOPIC",
    "LATENCY_TOPIC",
    "MARKERS_TOPIC",
    "PROCESSING_TOPIC",
    "RosOutputs",
    "SensorInputs",
    "diagnostic_array",
]

DETECTIONS_TOPIC = "/bevfuse/detections"
BOXES_TOPIC = "/bevfuse/boxes"
MARKERS_TOPIC = "/bevfuse/markers"
DIAGNOSTICS_TOPIC = "/diagnostics"
PROCESSING_TOPIC = "/bevfuse/debug/processing_time_ms"
LATENCY_TOPIC = "/bevfuse/debug/pipeline_latency_ms"

_DET = "vision_msgs/msg/Detection3DArray"
_BOXES = "bevfuse_msgs/msg/Box3DArray"
_MARKERS = "visualization_msgs/msg/MarkerArray"
_DIAG = "diagnostic_msgs/msg/DiagnosticArray"
_F64 = "std_msgs/msg/Float64"
NS_PER_S = 1_000_000_000

# The ROS type a sensor is subscribed as over rclpy when the rig names none (what the bag writer writes).
DEFAULT_SENSOR_TYPES: dict[Modality, str] = {
    Modality.LIDAR: "sensor_msgs/msg/PointCloud2",
    Modality.RADAR: "sensor_msgs/msg/PointCloud2",
    Modality.CAMERA: "sensor_msgs/msg/CompressedImage",
    Modality.GNSS: "sensor_msgs/msg/NavSatFix",
    Modality.IMU: "sensor_msgs/msg/Imu",
    Modality.ODOMETRY: "nav_msgs/msg/Odometry",
}


class SensorInputs:
    """Subscribes the rig's sensors (and ``extra`` topic -> sensor name routes) on ``transport`` and
    hands decoded messages to ``core`` (anything with ``on_message`` and ``on_malformed``).

    ``defer_images``: JPEG/PNG images go on as ``EncodedImage``s, decoded by the core's worker for
    the frames it processes only (see the module docstring)."""

    def __init__(self, transport: Transport, rig: Rig, core: Any, *, extra: dict[str, str] | None = None,
                 sim_clock: SimClock | None = None, receive_queue: int = 4096, max_age_s: float = 0.15,
                 defer_images: bool = True) -> None:
        self.transport, self.rig, self.core, self.sim_clock = transport, rig, core, sim_clock
        self.defer_images = defer_images
        self.subscriptions: list[Subscription] = []
        # the transport's thread only queues the bytes; one decode thread keeps the arrival order
        self._received: DropOldestQueue[Received] = DropOldestQueue(receive_queue)
        self.max_age_ns = int(max_age_s * 1e9)
        self.receive_stale = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._routes: dict[str, tuple[str, SensorSpec | None]] = {}
        for s in rig.sensors:
            if s.topic:
                self._routes[s.topic] = (s.name, s)
        for topic, sensor in (extra or {}).items():
            self._routes.setdefault(topic, (sensor, None))

    def start(self) -> None:
        """Start the decode thread, then declare the subscriptions (after the backend is warm)."""
        self._thread = threading.Thread(target=self._decode_loop, name="bevfuse-decode", daemon=True)
        self._thread.start()
        any_type = self.transport.name == "zenoh"
        for topic, (_, spec) in self._routes.items():
            msgtype = None if any_type else ((spec.msgtype if spec else None) or (DEFAULT_SENSOR_TYPES.get(spec.modality) if spec else None))
            self.subscriptions.append(self.transport.subscribe(topic, msgtype, self._received.put, SENSOR_DATA_QOS))
        if self.sim_clock is not None:
            self.subscriptions.append(self.transport.subscribe(CLOCK_TOPIC, CLOCK_TYPE, self._on_clock, DEFAULT_QOS))

    def _on_clock(self, r: Received) -> None:
        try:
            c = typestore().deserialize_cdr(r.data, CLOCK_TYPE).clock
        except Exception:  # noqa: BLE001 - a bad clock sample is skipped
            return
        assert self.sim_clock is not None
        self.sim_clock.feed(int(c.sec) * NS_PER_S + int(c.nanosec), r.receive_ns)

    def to_message(self, r: Received) -> SensorMessage:
        """Decode one received sample as the bag reader would; raises ``BevfuseError`` when it cannot."""
        sensor, spec = self._routes[r.topic]
        try:
            msg = typestore().deserialize_cdr(r.data, r.msgtype)
        except Exception as exc:  # noqa: BLE001 - rosbags raises assorted errors on short or bad CDR
            raise BevfuseError(f"{r.topic}: cannot deserialize {r.msgtype}: {type(exc).__name__}: {str(exc)[:200]}") from None
        payload = decode(msg, r.msgtype, topic=r.topic, sensor=sensor, modality=spec.modality if spec else None,
                         defer_images=self.defer_images)
        stamp = payload.stamp_ns if payload.stamp_ns > 0 else r.receive_ns
        stamp += spec.time_offset_ns if spec else 0
        if stamp != payload.stamp_ns:
            payload = replace(payload, stamp_ns=stamp)
        return SensorMessage(stamp_ns=stamp, sensor=sensor, topic=r.topic, payload=payload, log_time_ns=r.receive_ns)

    @property
    def receive_dropped(self) -> int:
        """Samples dropped because the decode thread fell a whole queue behind."""
        return self._received.dropped

    def _decode_loop(self) -> None:
        while not self._stop.is_set():
            r = self._received.get(timeout=0.1)
            if r is None:
                continue
            if time.time_ns() - r.receive_ns > self.max_age_ns:  # receive_ns: the transport's time.time_ns()
                self.receive_stale += 1
                continue
            self._on_received(r)

    def _on_received(self, r: Received) -> None:
        sensor = self._routes[r.topic][0]
        try:
            msg = self.to_message(r)
        except BevfuseError as exc:
            self.core.on_malformed(sensor, str(exc).splitlines()[0])
            return
        except Exception as exc:  # noqa: BLE001 - whatever a malformed message does, the node goes on
            self.core.on_malformed(sensor, f"{r.topic}: {type(exc).__name__}: {str(exc)[:200]}")
            return
        self.core.on_message(msg)

    def close(self) -> None:
        for sub in self.subscriptions:
            sub.close()
        self.subscriptions.clear()
        self._stop.set()
        self._received.close()
        if self._thread is not None:
            self._thread.join(1.0)


def _kv(key: str, value: Any) -> Any:
    if isinstance(value, float):
        value = "nan" if math.isnan(value) else f"{value:.3f}"
    return make("diagnostic_msgs/msg/KeyValue", key=key, value=str(value))


def diagnostic_array(status: NodeStatus, node: str = "bevfuse") -> Any:
    """DiagnosticArray of a NodeStatus: one status for the node, one per watched sensor."""
    from perception.io.ros_encode import header

    kind = typestore().types["diagnostic_msgs/msg/DiagnosticStatus"]
    ok, warn = int(kind.OK), int(kind.WARN)
    level = warn if status.state is NodeState.DEGRADED else ok
    message = status.state.value + (f": silent {', '.join(status.silent)}" if status.silent else "")
    values = [_kv("state", status.state.value), _kv("silent", ",".join(status.silent)), _kv("frames_in", status.frames_in),
              _kv("frames_done", status.frames_done), _kv("frames_dropped", status.frames_dropped),
              _kv("queue_depth", status.queue_depth), _kv("queue_bound", status.queue_bound), _kv("malformed", status.malformed),
              _kv("processing_ms_p50", status.processing_ms_p50), _kv("processing_ms_max", status.processing_ms_max),
              _kv("latency_ms_p50", status.latency_ms_p50), _kv("latency_ms_p99", status.latency_ms_p99),
              _kv("latency_ms_max", status.latency_ms_max), *[_kv(k, v) for k, v in sorted(status.extra.items())]]
    statuses = [make("diagnostic_msgs/msg/DiagnosticStatus", level=level, name=f"{node}: node",
                     message=message, hardware_id=node, values=values)]
    for s in status.sensors:
        sv = [_kv("rate_hz", s.rate_hz), _kv("age_s", float("nan") if s.age_s is None else s.age_s), _kv("received", s.received),
              _kv("malformed", s.malformed), _kv("timeout_s", float("nan") if s.timeout_s is None else s.timeout_s),
              _kv("dropped", status.extra.get(f"sync_dropped.{s.name}", "0"))]
        statuses.append(make("diagnostic_msgs/msg/DiagnosticStatus", level=warn if s.silent else ok, name=f"{node}: sensor {s.name}",
                             message="silent" if s.silent else "ok", hardware_id=s.name, values=sv))
    return make(_DIAG, header=header(status.stamp_ns, ""), status=statuses)


class RosOutputs:
    """Publishes frames and statuses on ``transport`` (the topics of the module docstring).

    Over rclpy every type needs its generated package installed. The three detection outputs are
    each optional: one whose package is missing (``bevfuse_msgs`` unless built; ``vision_msgs``
    under ROS 2's pip wheels, which have none) is left out, named in ``unavailable`` (topic ->
    why) and in the diagnostics, as long as one of them can be published; the diagnostics and
    latency topics (``diagnostic_msgs``, ``std_msgs``: in every ROS 2) are required."""

    def __init__(self, transport: Transport, *, node: str = "bevfuse", marker_score: float = 0.3) -> None:
        self.node, self.marker_score = node, float(marker_score)
        self.unavailable: dict[str, str] = {}
        self.detections = self._optional(transport, DETECTIONS_TOPIC, _DET)
        self.boxes = self._optional(transport, BOXES_TOPIC, _BOXES)
        self.markers = self._optional(transport, MARKERS_TOPIC, _MARKERS)
        if self.detections is None and self.boxes is None and self.markers is None:
            raise NodeError("node: no detection output can be published on this transport: " + "; ".join(self.unavailable.values()))
        self.diagnostics = transport.publisher(DIAGNOSTICS_TOPIC, _DIAG, DEFAULT_QOS)
        self.processing = transport.publisher(PROCESSING_TOPIC, _F64, DEFAULT_QOS)
        self.latency = transport.publisher(LATENCY_TOPIC, _F64, DEFAULT_QOS)
        self.published = 0

    def _optional(self, transport: Transport, topic: str, msgtype: str) -> Any:
        try:
            return transport.publisher(topic, msgtype, DEFAULT_QOS)
        except MessageTypeMissing as exc:
            self.unavailable[topic] = str(exc)
            return None

    def publish_frame(self, result: FrameResult) -> None:
        det = result.detections
        # the fast writers: the same bytes as ros_encode + rosbags, a tenth of the time (fast_cdr.py)
        if self.detections is not None:
            self.detections.publish(detection3d_array_cdr(det))
        if self.boxes is not None:
            self.boxes.publish(box3d_array_cdr(det))
        if self.markers is not None and self.markers.matched():  # markers are for looking at: built only while someone looks
            from perception.replay.bag_sink import box_markers_cdr

            shown = det.select(det.score >= self.marker_score)
            self.markers.publish(box_markers_cdr(shown, ns="detections"))
        self.published += 1

    def publish_status(self, status: NodeStatus) -> None:
        if self.unavailable:  # said every second, not only in a start-up line that scrolls away
            status = replace(status, extra={**status.extra, "outputs_unavailable": ",".join(sorted(self.unavailable))})
        self.diagnostics.publish(serialize(diagnostic_array(status, self.node), _DIAG))
        self.processing.publish(serialize(make(_F64, data=float(status.processing_ms_max)), _F64))
        self.latency.publish(serialize(make(_F64, data=float(status.latency_ms_max)), _F64))

    def close(self) -> None:
        for pub in (self.detections, self.boxes, self.markers, self.diagnostics, self.processing, self.latency):
            if pub is not None:
                pub.close()

