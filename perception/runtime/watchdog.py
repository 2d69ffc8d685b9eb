"""Per-sensor watchdogs: a sensor silent for longer than its timeout makes the node degraded.

The timeout comes from the rig's nominal rate: ``periods`` periods (default 5), but never less
than ``min_timeout_s``, so that a jittery 20 Hz LiDAR on a loaded machine does not flap. A sensor
never heard from is silent once its timeout has passed since the watchdog started. Times are the
monotonic clock of this process (arrival), not message stamps: a watchdog must fire even when no
message comes to move a message clock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from calib.rig import Rig

__all__ = ["SensorWatch", "Watchdog"]


@dataclass
class SensorWatch:
    name: str
    timeout_s: float | None  # None: not watched (no nominal rate)
    last_ns: int | None = None
    received: int = 0
    malformed: int = 0


class Watchdog:
    """Arrival bookkeeping of every rig sensor with a topic; ``silent()`` names the ones past their timeout."""

    def __init__(self, rig: Rig, periods: float = 5.0, min_timeout_s: float = 0.5, rate_window_s: float = 2.0,
                 clock=time.monotonic_ns) -> None:  # noqa: ANN001 - a () -> int ns
        self._clock = clock
        self.started_ns = clock()
        self.rate_window_ns = int(rate_window_s * 1e9)
        self._lock = threading.Lock()
        self.sensors: dict[str, SensorWatch] = {}
        self._arrivals: dict[str, deque[int]] = {}
        for s in rig.sensors:
            if not s.topic:
                continue
            timeout = max(periods / s.rate_hz, min_timeout_s) if s.rate_hz else None
            self.sensors[s.name] = SensorWatch(s.name, timeout)
            self._arrivals[s.name] = deque()

    def feed(self, sensor: str, now_ns: int | None = None) -> None:
        now = self._clock() if now_ns is None else now_ns
        with self._lock:
            w = self.sensors.get(sensor)
            if w is None:
                return
            w.last_ns, w.received = now, w.received + 1
            arrivals = self._arrivals[sensor]
            arrivals.append(now)
            while arrivals and arrivals[0] < now - self.rate_window_ns:
                arrivals.popleft()

    def malformed(self, sensor: str) -> None:
        with self._lock:
            w = self.sensors.get(sensor)
            if w is not None:
                w.malformed += 1

    def age_s(self, sensor: str, now_ns: int | None = None) -> float | None:
        now = self._clock() if now_ns is None else now_ns
        w = self.sensors[sensor]
        return None if w.last_ns is None else (now - w.last_ns) / 1e9

    def rate_hz(self, sensor: str, now_ns: int | None = None) -> float:
        now = self._clock() if now_ns is None else now_ns
        with self._lock:
            arrivals = self._arrivals[sensor]
            n = sum(1 for t in arrivals if t >= now - self.rate_window_ns)
        span = min(self.rate_window_ns, now - self.started_ns)
        return n / (span / 1e9) if span > 0 else 0.0

    def is_silent(self, sensor: str, now_ns: int | None = None) -> bool:
        now = self._clock() if now_ns is None else now_ns
        w = self.sensors[sensor]
        if w.timeout_s is None:
            return False
        since = w.last_ns if w.last_ns is not None else self.started_ns
        return (now - since) / 1e9 > w.timeout_s

    def silent(self, now_ns: int | None = None) -> list[str]:
        """Watched sensors past their timeout, in rig order."""
        now = self._clock() if now_ns is None else now_ns
        return [name for name in self.sensors if self.is_silent(name, now)]
