"""Play a drive log onto a transport in real time (or ``rate`` times it), like ``ros2 bag play``.

**What goes out.** A ROS 2 bag (a rosbag2 directory, ``.mcap`` or ``.db3``) is played as it was
recorded: every topic, each message's CDR bytes unchanged (so a subscriber decodes exactly what
``bevfuse replay`` decodes from the file). Any other log (ROS 1 bag, nuScenes, KITTI, AV2) goes
through its reader and is encoded losslessly: images as ``sensor_msgs/Image`` rgb8, clouds as
PointCloud2, ground truth as ``bevfuse_msgs/Box3DArray``, poses as Odometry.

**Order and pacing.** A bag goes out in the order it was recorded (``order="record"``, the
default): file order, paced by the recorder's clock (the log time), as ``ros2 bag play`` paces
it. That is the order ``bevfuse replay`` reads a bag in (``RosbagReader.messages(order="record")``
through ``frames_from_log``), so that a node's synchronizer sees what replay's sees, and what a node
on the car saw. Message ``i`` goes out at ``start + (t_i - t_0) / rate`` on the monotonic clock
(``t``: the log time); a log time that goes back (a clock reset in the recording) plays on at once
from there. A log without a recorded order (nuScenes, KITTI, AV2) goes out in stamp order, paced
by its stamps. ``order="stamp"``: stamp order (header stamp; the log time for a type without a
header), ties in file order, paced by the stamps; a bag is recorded in arrival order, and a heap
holds ``reorder_window_ns`` of log time to restore the stamp order (a message recorded later than
that after its stamp goes out late and is counted in ``late_reordered``). When the player falls
behind it sends at once and counts ``behind`` (never skips).

**Clock.** ``clock_hz > 0`` publishes ``rosgraph_msgs/Clock`` on ``/clock`` (the log's time at the
play position: the log time in record order, the stamp in stamp order), as ``ros2 bag play --clock``
does, so that a node can measure latency in log time.
"""

from __future__ import annotations

import heapq
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perception.errors import BevfuseError, ConfigError, FormatError
from perception.io.rosmsg import typestore
from perception.runtime.errors import MessageTypeMissing
from perception.runtime.rmw_zenoh import DEFAULT_QOS
from perception.runtime.transport import RawPublisher, Transport

__all__ = ["CLOCK_TOPIC", "PLAY_ORDERS", "PlayStats", "Player", "Record", "bag_records", "log_records"]

NS_PER_S = 1_000_000_000
CLOCK_TOPIC = "/clock"
CLOCK_TYPE = "rosgraph_msgs/msg/Clock"
PLAY_ORDERS = ("record", "stamp")


@dataclass(frozen=True)
class Record:
    """One message to publish: its stamp, topic, ROS type and CDR bytes; ``log_time_ns``: when it was
    recorded (the play clock in record order), None in stamp order (the stamp is the play clock)."""

    stamp_ns: int
    topic: str
    msgtype: str
    data: bytes
    log_time_ns: int | None = None


@dataclass
class PlayStats:
    """What a play did: per topic counts, how often it was behind schedule, loops completed."""

    published: Counter[str] = field(default_factory=Counter)
    behind: int = 0
    late_reordered: int = 0
    loops: int = 0
    wall_s: float = 0.0
    log_span_s: float = 0.0
    # topic -> why it was not played: its type is not installed where the transport needs it
    # (rclpy; as ros2 bag play skips a topic whose package is missing)
    skipped_topics: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"published": dict(self.published), "messages": sum(self.published.values()), "behind": self.behind,
                "late_reordered": self.late_reordered, "loops": self.loops, "wall_s": round(self.wall_s, 3),
                "log_span_s": round(self.log_span_s, 3), "skipped_topics": dict(self.skipped_topics)}


def _header_first(msgtype: str) -> bool:
    fields = typestore().fielddefs.get(msgtype, (None, []))[1]
    if not fields:
        return False
    name, (_, ref) = fields[0]
    return name == "header" and isinstance(ref, str) and ref.endswith("/Header")


def _cdr_stamp(raw: bytes) -> int:
    """header.stamp of CDR bytes whose first field is a Header (encapsulation byte 1: 1 = little-endian); 0 if unreadable."""
    if len(raw) < 12:
        return 0
    sec, nsec = struct.unpack_from("<iI" if raw[1] else ">iI", raw, 4)
    return sec * NS_PER_S + nsec


def is_ros2_bag(path: Path) -> bool:
    if path.is_dir():
        return (path / "metadata.yaml").is_file()
    return path.suffix in (".mcap", ".db3")


def bag_records(path: Path, reorder_window_ns: int = 2 * NS_PER_S, topics: set[str] | None = None,
                counters: PlayStats | None = None, order: str = "stamp") -> Iterator[Record]:
    """The messages of a ROS 2 bag as recorded (CDR bytes), in stamp order or, with ``order="record"``,
    in file order with their log times (see the module docstring)."""
    from rosbags.highlevel import AnyReader, AnyReaderError

    from perception.io.rosbag import messages_as_recorded

    try:
        reader = AnyReader([path], default_typestore=typestore())
        reader.open()
    except (AnyReaderError, OSError) as exc:
        raise FormatError(f"{path}: cannot open the bag: {exc}") from None
    try:
        conns = [c for c in reader.connections if topics is None or c.topic in topics]
        header = {c.id: _header_first(c.msgtype) for c in conns}
        if order == "record":  # no heap: the records as written, the stamp as in stamp order
            for conn, log_time, raw in messages_as_recorded(conns):
                stamp = _cdr_stamp(raw) if header[conn.id] else 0
                yield Record(stamp if stamp > 0 else log_time, conn.topic, conn.msgtype, bytes(raw), log_time)
            return
        heap: list[tuple[int, int, str, str, bytes]] = []
        released = None
        for i, (conn, log_time, raw) in enumerate(reader.messages(connections=conns)):
            stamp = _cdr_stamp(raw) if header[conn.id] else 0
            heapq.heappush(heap, (stamp if stamp > 0 else log_time, i, conn.topic, conn.msgtype, bytes(raw)))
            while heap and heap[0][0] <= log_time - reorder_window_ns:
                rec = heapq.heappop(heap)
                if released is not None and rec[0] < released and counters is not None:
                    counters.late_reordered += 1
                released = rec[0] if released is None else max(released, rec[0])
                yield Record(rec[0], rec[2], rec[3], rec[4])
        while heap:
            rec = heapq.heappop(heap)
            yield Record(rec[0], rec[2], rec[3], rec[4])
    finally:
        reader.close()


def log_records(path: Path, rig: Any = None, topics: set[str] | None = None, order: str = "stamp") -> Iterator[Record]:
    """The messages of any log bevfuse reads, decoded by its reader and encoded losslessly; with
    ``order="record"`` as recorded (with log times) when the reader knows that order (a ROS 1 bag)."""
    from perception.io.base import open_log
    from perception.io.ros_encode import encode, serialize
    from perception.sync.replay import offers_record_order
    from perception.types import CameraImage

    with open_log(path, rig=rig) as reader:
        recorded = order == "record" and offers_record_order(reader)
        for msg in (reader.messages(order="record") if recorded else reader.messages()):  # type: ignore[call-arg]
            topic = msg.topic if msg.topic.startswith("/") else f"/{msg.topic}"
            if topics is not None and topic not in topics:
                continue
            # rgb8 Image rather than the default JPEG: a subscriber gets the reader's pixels exactly
            msgtype = "sensor_msgs/msg/Image" if isinstance(msg.payload, CameraImage) else None
            rostype, obj = encode(msg.payload, msgtype)
            yield Record(msg.stamp_ns, topic, rostype, serialize(obj, rostype), msg.log_time_ns if recorded else None)


class Player:
    """Publishes ``path`` on ``transport`` (see the module docstring); ``run()`` blocks until the end
    (or forever with ``loop``) or until ``stop`` is set."""

    def __init__(self, path: str | Path, transport: Transport, *, rate: float = 1.0, loop: bool = False,
                 clock_hz: float = 0.0, topics: list[str] | None = None, rig: Any = None,
                 reorder_window_ns: int = 2 * NS_PER_S, stop: threading.Event | None = None, order: str = "record") -> None:
        self.path = Path(path)
        if not rate > 0:
            raise BevfuseError(f"rate: expected a positive number, got {rate}")
        if order not in PLAY_ORDERS:
            raise ConfigError(f"order: expected one of {list(PLAY_ORDERS)}, got {order!r}")
        self.order = order
        self.transport, self.rate, self.loop, self.clock_hz = transport, float(rate), loop, float(clock_hz)
        self.topics = set(topics) if topics else None
        self.rig, self.reorder_window_ns = rig, reorder_window_ns
        self.stop = stop or threading.Event()
        self.stats = PlayStats()
        self._publishers: dict[tuple[str, str], RawPublisher | None] = {}
        self._clock_pub: RawPublisher | None = None
        self._play_time: tuple[int, float] | None = None  # (stamp, monotonic) of the play position
        self._done = threading.Event()

    def records(self) -> Iterator[Record]:
        if is_ros2_bag(self.path):
            return bag_records(self.path, self.reorder_window_ns, self.topics, self.stats, self.order)
        return log_records(self.path, self.rig, self.topics, self.order)

    def publisher(self, topic: str, msgtype: str) -> RawPublisher | None:
        """The topic's publisher; None (and the topic in ``stats.skipped_topics``) where the
        transport cannot carry its type."""
        key = (topic, msgtype)
        if key not in self._publishers:
            try:
                # block on congestion: a player must not drop what it replays
                self._publishers[key] = self.transport.publisher(topic, msgtype, DEFAULT_QOS, block=True)
            except MessageTypeMissing as exc:
                self._publishers[key] = None
                self.stats.skipped_topics[topic] = str(exc)
        return self._publishers[key]

    def declare(self, wait_for_subscriber_s: float = 0.0) -> bool:
        """Declare the publishers of the first pass before playing (a subscriber can match them);
        with ``wait_for_subscriber_s`` wait until some are matched and their number has been stable
        for 0.5 s (or the time is up). True when one is matched."""
        seen: set[tuple[str, str]] = set()
        for rec in self.records():
            if (rec.topic, rec.msgtype) not in seen:
                seen.add((rec.topic, rec.msgtype))
                self.publisher(rec.topic, rec.msgtype)
            if len(seen) >= 64 or self.stop.is_set():
                break
        end = time.monotonic() + wait_for_subscriber_s
        matched, since = 0, time.monotonic()
        while time.monotonic() < end and not self.stop.is_set():
            n = sum(p.matched() for p in self._publishers.values() if p is not None)
            if n != matched:
                matched, since = n, time.monotonic()
            elif matched and time.monotonic() - since > 0.5:
                # the subscriber's declarations arrive one by one: play once their count is stable
                # (a message sent before its subscription is known is lost, and with it a frame)
                return True
            self.stop.wait(0.02)
        return any(p.matched() for p in self._publishers.values() if p is not None)

    def _clock_loop(self) -> None:
        from perception.io.ros_encode import serialize

        period = 1.0 / self.clock_hz
        make = typestore().types
        while not self.stop.wait(period) and not self._done.is_set():
            pos = self._play_time
            if pos is None:
                continue
            stamp = pos[0] + int((time.monotonic() - pos[1]) * self.rate * NS_PER_S)
            sec, nsec = divmod(stamp, NS_PER_S)
            msg = make[CLOCK_TYPE](clock=make["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec))
            assert self._clock_pub is not None
            self._clock_pub.publish(serialize(msg, CLOCK_TYPE))

    def run(self, on_record: Callable[[Record], None] | None = None) -> PlayStats:
        start_wall = time.monotonic()
        self._done = threading.Event()
        clock_thread = None
        if self.clock_hz > 0:
            self._clock_pub = self.transport.publisher(CLOCK_TOPIC, CLOCK_TYPE, DEFAULT_QOS)
            clock_thread = threading.Thread(target=self._clock_loop, name="bevfuse-play-clock", daemon=True)
            clock_thread.start()
        try:
            while not self.stop.is_set():
                self._play_once(on_record)
                if not self.loop:
                    break
                self.stats.loops += 1
        finally:
            self.stats.wall_s = time.monotonic() - start_wall
            self._done.set()
            if clock_thread is not None:
                clock_thread.join(timeout=2.0)
        return self.stats

    def _play_once(self, on_record: Callable[[Record], None] | None) -> None:
        first: int | None = None  # the play clock at t0 (monotonic)
        t0 = 0.0
        last = 0  # the previous record's play clock
        before = 0  # log span of the epochs before a clock reset
        for rec in self.records():
            if self.stop.is_set():
                return
            clock = rec.stamp_ns if rec.log_time_ns is None else rec.log_time_ns
            if first is None:
                first, t0 = clock, time.monotonic()
            elif rec.log_time_ns is not None and clock < last:
                # the recording's clock went back (a reset): this record goes out right after the
                # previous one, and the pace goes on from here (pacing by the old epoch would send
                # the whole overlap at once)
                t0 += (last - first) / NS_PER_S / self.rate
                before += last - first
                first = clock
            last = clock
            due = t0 + (clock - first) / NS_PER_S / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                if self.stop.wait(delay):
                    return
            elif delay < -0.005:
                self.stats.behind += 1
            self._play_time = (clock, time.monotonic())
            pub = self.publisher(rec.topic, rec.msgtype)
            if pub is None:
                continue
            pub.publish(rec.data)
            self.stats.published[rec.topic] += 1
            self.stats.log_span_s = max(self.stats.log_span_s, (before + clock - first) / NS_PER_S)
            if on_record is not None:
                on_record(rec)

    def close(self) -> None:
        for pub in self._publishers.values():
            if pub is not None:
                pub.close()
        if self._clock_pub is not None:
            self._clock_pub.close()
        self._publishers.clear()
