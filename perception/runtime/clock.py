"""Where a sensor stamp sits on the node's wall clock: what "sensor stamp to publish" is measured against.

On the vehicle stamps are taken on the synchronized system clock (ROS time = wall time): a stamp
*is* a wall time (``WallClock``). Under playback they are the log's times: ``SimClock`` follows
``rosgraph_msgs/Clock`` from the player (``bevfuse play --clock``, ``ros2 bag play --clock``) and
maps a stamp to the wall time at which the player's clock showed it, ``rate`` included, as a ROS
node with ``use_sim_time`` does. Latency is then wall time, whatever the playback rate.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["SimClock", "StampClock", "WallClock"]


class StampClock(Protocol):
    def wall_of(self, stamp_ns: int) -> int | None:
        """The wall time (ns since the epoch) of a sensor stamp, or None while unknown."""
        ...


class WallClock:
    """Stamps are wall times (live sensors on a synchronized clock)."""

    def wall_of(self, stamp_ns: int) -> int | None:
        return int(stamp_ns)


class SimClock:
    """Fed with (clock message stamp, wall time it arrived); the rate is the slope between the first
    and the newest sample of the current epoch (a clock that goes back starts a new epoch: a loop).
    A clock older than ``max_age_s`` maps nothing (None: the latency of that frame is unknown)."""

    def __init__(self, max_age_s: float = 1.0) -> None:
        # a clock not heard from for max_age_s maps nothing: the player stopped, and the next one
        # may start a new epoch whose first sample is still on its way
        self.max_age_ns = int(max_age_s * 1e9)
        self._lock = threading.Lock()
        self._first: tuple[int, int] | None = None
        self._last: tuple[int, int] | None = None

    def feed(self, clock_ns: int, wall_ns: int) -> None:
        with self._lock:
            if self._last is not None and clock_ns < self._last[0]:
                self._first = None  # the log started again
            if self._first is None:
                self._first = (clock_ns, wall_ns)
            self._last = (clock_ns, wall_ns)

    @property
    def rate(self) -> float | None:
        with self._lock:
            if self._first is None or self._last is None or self._last[1] - self._first[1] < 50_000_000:
                return None
            return (self._last[0] - self._first[0]) / (self._last[1] - self._first[1])

    def wall_of(self, stamp_ns: int, now_ns: int | None = None) -> int | None:
        rate = self.rate
        now = time.time_ns() if now_ns is None else now_ns
        with self._lock:
            if self._last is None or not rate or now - self._last[1] > self.max_age_ns:
                return None
            clock_ns, wall_ns = self._last
        return wall_ns + int((stamp_ns - clock_ns) / rate)
