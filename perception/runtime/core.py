"""The node core, free of any transport: ``SensorMessage``s in, ``FrameResult``s and a status out.

Threads and queues (each queue bounded, so a slow stage can never build an unbounded backlog)::

    transport callbacks --on_message()--> [ingest: DropOldestQueue of messages]
        --> sync thread: Synchronizer.push() --> [frames: DropOldestQueue, default 1 deep]
        --> worker thread: decode the frame's images, processor.step(frame)
            --> publishers.publish_frame(FrameResult)
    status thread, once a second: watchdog + counters --> publishers.publish_status(NodeStatus)

The synchronizer runs on its own thread rather than on the transport's (a deskew must not stall
the transport's receive loop) and not on the worker's (messages keep being matched while the
network runs, so that the newest complete frame is ready when the worker frees up). When the worker
is busy and a new frame is synchronized, the oldest waiting frame is dropped and counted: the
queue bound, not the arrival rate, sets the worst-case wait (bound 1: a frame waits at most one
step, so sensor-to-publish stays below two steps plus the synchronizer's wait).

**Deferred work.** The node's synchronizer is made with ``defer_assembly=True``: a frame carries
its accumulated LiDAR cloud and radar scan as ``Deferred`` members, which the worker builds
(``frame.assembled()``) for the frames it takes. Under overload most frames are dropped, and the
copies they would have cost the synchronizer's thread are never made.

**Images.** A frame may hold ``EncodedImage``s (the inputs defer JPEG decoding): the worker decodes
them, in parallel on ``decode_threads`` threads (OpenCV releases the GIL), before the step, so the
frames dropped under overload never cost a decode. An image that does not decode is counted as a
malformed message of its camera and the frame goes on without it (listed in ``missing``).

**Latency.** ``processing``: the wall time of decoding the frame's images and ``processor.step``. ``sensor to publish``: the
publication's wall time minus the frame stamp's wall time on the node's ``StampClock`` (the wall
clock on a vehicle; the player's ``/clock`` under playback, see ``perception.runtime.clock``).
The summary gives it for all frames and for the steady state: without the frames a flush or a
clock reset let out (under a looped playback the log's last frame waits for messages that only
come when the next pass has started) and without those published in the first
``latency_warmup_s`` (start-up); ``slowest_frames`` lists the ten slowest with their waits.

**Stopping.** ``stop()`` stops taking messages, lets the worker finish the step it is in (bounded by
``timeout_s``), then closes the publishers (they flush what they write). It never waits on the
transport: the caller closes that after.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from calib.rig import Rig
from perception.errors import BevfuseError
from perception.io.ros_decode import decode_encoded_image
from perception.runtime.clock import StampClock, WallClock
from perception.runtime.outputs import FramePublisher, FrameResult, NodeState, NodeStatus, SensorStatus
from perception.runtime.queues import DropOldestQueue
from perception.runtime.watchdog import Watchdog
from perception.types import CameraImage, Detections, EncodedImage, SensorMessage, SyncedFrame

__all__ = ["FrameProcessor", "NodeConfig", "NodeCore"]


class FrameProcessor(Protocol):
    """What the worker runs: ``bevfuse``'s ``Pipeline`` (``step(frame) -> Detections``)."""

    def step(self, frame: SyncedFrame) -> Detections: ...


@dataclass(frozen=True)
class NodeConfig:
    """``frame_queue``: frames waiting for the worker (oldest dropped beyond); ``ingest_queue``:
    messages waiting for the synchronizer; watchdog timeout = max(``watchdog_periods`` / nominal
    rate, ``watchdog_min_s``); ``status_period_s``: diagnostics period; ``latency_window``: frames
    kept for the latency percentiles; ``flush_when_silent``: flush the synchronizer once every
    watched sensor is silent (see ``_sync_loop``); ``decode_threads``: threads decoding a frame's
    ``EncodedImage``s; ``latency_warmup_s``: frames published this soon after the first one are
    start-up, kept out of the steady-state latency (the queues fill and the first data's code
    paths warm up then)."""

    frame_queue: int = 1
    ingest_queue: int = 4096
    watchdog_periods: float = 5.0
    watchdog_min_s: float = 0.5
    status_period_s: float = 1.0
    latency_window: int = 2000
    flush_when_silent: bool = True
    decode_threads: int = 2
    latency_warmup_s: float = 2.0


@dataclass
class _Pending:
    frame: SyncedFrame
    index: int
    queued_ns: int  # monotonic
    stamp_wall_ns: int | None  # the frame stamp on the wall clock, mapped when the frame was made
    released: bool = False  # let out by a flush or a clock reset, not by its own messages


class NodeCore:
    """See the module docstring. ``synchronizer``: anything with ``push(msg) -> list[SyncedFrame]``
    (and ``stats``); ``processor``: a ``FrameProcessor``; ``publishers``: ``FramePublisher``s."""

    def __init__(self, rig: Rig, synchronizer: Any, processor: FrameProcessor, publishers: Sequence[FramePublisher] = (),
                 config: NodeConfig | None = None, clock: StampClock | None = None) -> None:
        self.rig, self.synchronizer, self.processor = rig, synchronizer, processor
        self.publishers = list(publishers)
        self.config = c = config or NodeConfig()
        self.clock = clock or WallClock()
        self.watchdog = Watchdog(rig, c.watchdog_periods, c.watchdog_min_s, rate_window_s=max(2.0, 2 * c.status_period_s))
        self._ingest: DropOldestQueue[SensorMessage] = DropOldestQueue(c.ingest_queue)
        self._frames: DropOldestQueue[_Pending] = DropOldestQueue(c.frame_queue)
        self._sync_lock = threading.Lock()  # the synchronizer and its stats
        self._stats_lock = threading.Lock()
        self._stop = threading.Event()
        self._publish_lock = threading.Lock()
        self._closed = False
        self.state = NodeState.STARTING
        self.frames_in = 0
        self.frames_done = 0
        self.malformed: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()  # bounded: see _count_error
        self.recent_malformed: deque[str] = deque(maxlen=10)  # the last reasons, for the summary
        self.processing_ms: deque[float] = deque(maxlen=c.latency_window)
        self.latency_ms: deque[float] = deque(maxlen=c.latency_window)
        self.queue_wait_ms: deque[float] = deque(maxlen=c.latency_window)
        # sensor to publish of the frames their own messages completed (not a flush or clock reset)
        self.steady_latency_ms: deque[float] = deque(maxlen=c.latency_window)
        self.released_frames = 0
        self.warmup_frames = 0  # published within latency_warmup_s of the first publication
        self._first_publish_ns: int | None = None
        self._window_processing: list[float] = []
        self._window_latency: list[float] = []
        self._threads: list[threading.Thread] = []
        self.last_status: NodeStatus | None = None
        self._sync_drops: dict[str, int] = {}
        self._slowest: list[tuple[float, int, int, float, float, float, bool]] = []  # a min-heap of the 10 slowest frames
        self._decoder = ThreadPoolExecutor(max_workers=max(1, c.decode_threads), thread_name_prefix="bevfuse-image")

    # -- inputs (any thread) ---------------------------------------------------------------------------

    def on_message(self, msg: SensorMessage) -> None:
        """A decoded message from a transport. Returns at once; never raises on the caller's thread."""
        if self._stop.is_set():
            return
        self.watchdog.feed(msg.sensor)
        if self._ingest.put(msg) is not None:
            self._count_error("ingest queue full: oldest message dropped")

    def on_malformed(self, sensor: str, reason: str) -> None:
        """A message that could not be deserialized or decoded: counted (per sensor) and skipped.
        It still proves the sensor alive: the watchdog is about silence, not about content."""
        self.watchdog.feed(sensor)
        self.watchdog.malformed(sensor)
        with self._stats_lock:
            self.malformed[sensor] += 1
            self.recent_malformed.append(reason)

    # -- threads ---------------------------------------------------------------------------------------

    def start(self) -> None:
        for name, target in (("sync", self._sync_loop), ("worker", self._work_loop), ("status", self._status_loop)):
            t = threading.Thread(target=target, name=f"bevfuse-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        self.state = NodeState.RUNNING

    def _sync_loop(self) -> None:
        pushed_since_flush = False
        while not self._stop.is_set():
            msg = self._ingest.get(timeout=0.1)
            if msg is None:
                if pushed_since_flush and self.config.flush_when_silent and self._all_silent():
                    # The synchronizer's clock is message time: when every sensor stops, the frames
                    # it holds would wait for the next message, however late. Flush them now, as a
                    # replay flushes at the end of its log (the same frames come out).
                    pushed_since_flush = False
                    self._emit(self._sync_call(lambda s: s.flush()), released=True)
                continue
            pushed_since_flush = True
            resets = self._clock_resets()
            frames = self._sync_call(lambda s, m=msg: s.push(m))
            # a push that reset the clock (it went back: a restarted log, a time jump) released the
            # old epoch's pending frames: they waited for messages that never came
            self._emit(frames, released=self._clock_resets() != resets)

    def _clock_resets(self) -> int:
        return int(getattr(getattr(self.synchronizer, "stats", None), "clock_resets", 0))

    def _all_silent(self) -> bool:
        watched = [w.name for w in self.watchdog.sensors.values() if w.timeout_s is not None]
        return bool(watched) and len(self.watchdog.silent()) == len(watched)

    def _sync_call(self, call: Any) -> list[SyncedFrame]:
        try:
            with self._sync_lock:
                frames = list(call(self.synchronizer))
                sensors = getattr(getattr(self.synchronizer, "stats", None), "sensors", {})
                # a snapshot for the status thread, which must not wait for a push to finish
                self._sync_drops = {name: int(c.dropped) for name, c in sensors.items()}
                return frames
        except Exception as exc:  # noqa: BLE001 - one bad message must not stop the node
            self._count_error(f"synchronizer: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            return []

    def _count_error(self, key: str) -> None:
        # messages carry numbers: a long run could make unboundedly many keys; past 50 they share one
        with self._stats_lock:
            if key not in self.errors and len(self.errors) >= 50:
                key = "other errors"
            self.errors[key] += 1

    def _emit(self, frames: list[SyncedFrame], released: bool = False) -> None:
        for frame in frames:
            with self._stats_lock:
                index = self.frames_in
                self.frames_in += 1
            # mapped now, not at publication: under a looping playback the clock may have started
            # the log again by the time a slow step ends
            self._frames.put(_Pending(frame, index, time.monotonic_ns(), self.clock.wall_of(frame.stamp_ns), released))

    def _work_loop(self) -> None:
        while not self._stop.is_set():
            item = self._frames.get(timeout=0.1)
            if item is None:
                continue
            start = time.monotonic_ns()
            try:
                frame = self._decoded(item.frame)
                det = self.processor.step(frame)
            except Exception as exc:  # noqa: BLE001 - counted, reported in diagnostics; the node goes on
                self._count_error(f"pipeline: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                continue
            end = time.monotonic_ns()
            publish_ns = time.time_ns()
            stamp_wall = item.stamp_wall_ns
            latency = publish_ns - stamp_wall if stamp_wall is not None else -1
            result = FrameResult(frame=frame, detections=det, index=item.index, processing_ns=end - start,
                                 latency_ns=latency, queue_wait_ns=start - item.queued_ns, publish_ns=publish_ns)
            with self._stats_lock:
                self.frames_done += 1
                self.processing_ms.append((end - start) / 1e6)
                self.queue_wait_ms.append((start - item.queued_ns) / 1e6)
                self._window_processing.append((end - start) / 1e6)
                if latency >= 0:
                    self.latency_ms.append(latency / 1e6)
                    self._window_latency.append(latency / 1e6)
                    if self._first_publish_ns is None:
                        self._first_publish_ns = publish_ns
                    if item.released:
                        self.released_frames += 1
                    elif publish_ns - self._first_publish_ns < self.config.latency_warmup_s * 1e9:
                        self.warmup_frames += 1
                    else:
                        self.steady_latency_ms.append(latency / 1e6)
                    # the slowest frames, for the summary: where a latency tail comes from
                    entry = (latency / 1e6, item.index, item.frame.stamp_ns, (end - start) / 1e6, (start - item.queued_ns) / 1e6,
                             item.frame.wait_ns / 1e6, item.released)
                    if len(self._slowest) < 10:
                        heapq.heappush(self._slowest, entry)
                    elif entry > self._slowest[0]:
                        heapq.heapreplace(self._slowest, entry)
            self._publish("publish_frame", result)

    def _decoded(self, frame: SyncedFrame) -> SyncedFrame:
        """``frame`` with its ``EncodedImage``s decoded and its ``Deferred`` members built (see the
        module docstring)."""
        frame = frame.assembled()
        encoded = [(name, img) for name, img in frame.images.items() if isinstance(img, EncodedImage)]
        if not encoded:
            return frame
        images: dict[str, CameraImage] = dict(frame.images)
        missing = set(frame.missing)
        for (name, _), out in zip(encoded, self._decoder.map(_decode_or_reason, [img for _, img in encoded])):
            if isinstance(out, CameraImage):
                images[name] = out
            else:
                self.on_malformed(name, out)
                del images[name]
                missing.add(name)
        return replace(frame, images=images, missing=frozenset(missing))

    def _publish(self, method: str, arg: Any) -> None:
        with self._publish_lock:
            if self._closed:
                return
            for pub in self.publishers:
                try:
                    getattr(pub, method)(arg)
                except Exception as exc:  # noqa: BLE001 - a failing sink must not take the others down
                    self._count_error(f"publisher {type(pub).__name__}: {type(exc).__name__}: {str(exc)[:200]}")

    def _status_loop(self) -> None:
        while not self._stop.wait(self.config.status_period_s):
            status = self.status()
            self._publish("publish_status", status)

    # -- status ----------------------------------------------------------------------------------------

    def status(self) -> NodeStatus:
        """The status now (also what the status thread publishes), resetting the window figures."""
        now = time.monotonic_ns()
        wd = self.watchdog
        silent = wd.silent(now)
        sync_drops = self._sync_drops
        sensors = tuple(
            SensorStatus(name=w.name, rate_hz=wd.rate_hz(w.name, now), age_s=wd.age_s(w.name, now), received=w.received,
                         malformed=w.malformed, timeout_s=w.timeout_s, silent=w.name in silent)
            for w in wd.sensors.values())
        with self._stats_lock:
            proc, lat = self._window_processing, self._window_latency
            self._window_processing, self._window_latency = [], []
            nan = float("nan")
            state = NodeState.STOPPING if self._stop.is_set() else (NodeState.DEGRADED if silent else NodeState.RUNNING)
            self.state = state
            status = NodeStatus(
                stamp_ns=time.time_ns(), state=state, silent=tuple(silent), sensors=sensors, frames_in=self.frames_in,
                frames_done=self.frames_done, frames_dropped=self._frames.dropped, queue_depth=len(self._frames),
                queue_bound=self._frames.maxsize, malformed=sum(self.malformed.values()),
                processing_ms_p50=float(np.median(proc)) if proc else nan, processing_ms_max=max(proc) if proc else nan,
                latency_ms_p50=float(np.percentile(lat, 50)) if lat else nan,
                latency_ms_p99=float(np.percentile(lat, 99)) if lat else nan, latency_ms_max=max(lat) if lat else nan,
                extra={**{f"sync_dropped.{k}": str(v) for k, v in sync_drops.items()},
                       "ingest_dropped": str(self._ingest.dropped), "errors": str(sum(self.errors.values()))})
        self.last_status = status
        return status

    def summary(self) -> dict[str, Any]:
        """Counters and latency percentiles since the start (what ``bevfuse node`` prints at exit)."""
        from perception.bench.timing import latency_stats

        with self._stats_lock:
            out = {
                "frames_in": self.frames_in, "frames_done": self.frames_done, "frames_dropped": self._frames.dropped,
                "queue_bound": self._frames.maxsize, "queue_max_depth": self._frames.max_depth,
                "ingest_dropped": self._ingest.dropped, "ingest_max_depth": self._ingest.max_depth,
                "malformed": dict(self.malformed), "recent_malformed": list(self.recent_malformed), "errors": dict(self.errors),
                "processing_ms": latency_stats(list(self.processing_ms)).to_dict(extended=True),
                "sensor_to_publish_ms": latency_stats(list(self.latency_ms)).to_dict(extended=True),
                "sensor_to_publish_steady_ms": latency_stats(list(self.steady_latency_ms)).to_dict(extended=True),
                "frames_released_by_flush_or_reset": self.released_frames,
                "frames_in_latency_warmup": self.warmup_frames,
                "queue_wait_ms": latency_stats(list(self.queue_wait_ms)).to_dict(extended=True),
                "slowest_frames": [{"sensor_to_publish_ms": round(lat, 1), "index": i, "stamp_ns": st, "processing_ms": round(pr, 1),
                                    "queue_wait_ms": round(qw, 1), "sync_wait_ms": round(sw, 1), "released": rel}
                                   for lat, i, st, pr, qw, sw, rel in sorted(self._slowest, reverse=True)],
            }
        with self._sync_lock:
            stats = getattr(self.synchronizer, "stats", None)
            if stats is not None and hasattr(stats, "to_dict"):
                out["sync"] = stats.to_dict()
        out["received"] = {w.name: w.received for w in self.watchdog.sensors.values()}
        return out

    # -- stopping --------------------------------------------------------------------------------------

    def stop(self, timeout_s: float = 1.5) -> bool:
        """Stop the threads and close the publishers; True when the worker ended within ``timeout_s``."""
        self._stop.set()
        self.state = NodeState.STOPPING
        self._ingest.close()
        self._frames.close()
        end = time.monotonic() + timeout_s
        ok = True
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))
            ok = ok and not t.is_alive()
        with self._publish_lock:
            self._closed = True
            for pub in self.publishers:
                try:
                    pub.close()
                except Exception:  # noqa: BLE001
                    pass
        self._decoder.shutdown(wait=False)
        return ok


def _decode_or_reason(image: EncodedImage) -> CameraImage | str:
    # on the decoder's threads: a failure comes back as its reason, counted by the worker
    try:
        return decode_encoded_image(image)
    except BevfuseError as exc:
        return str(exc).splitlines()[0]
