"""Counters of the synchronizer, designed so that two invariants can be checked at any time.

Per sensor, every message received ends in exactly one place:

    received == used + dropped_late + dropped_unmatched + dropped_overflow + dropped_invalid + pending

``pending`` are the messages held right now (reorder buffer, queues) not yet used or dropped; a
message used by several frames (a radar scan, a LiDAR sweep accumulated into several frames) is
counted once. ``flush()`` resolves every pending message.

Per frame member (the reference LiDAR, each camera, each radar, the pose source):

    frames == in_frames + missing_from_frames

so no frame goes out without saying, sensor by sensor, whether it had it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["SensorCounters", "SyncStats"]


@dataclass
class SensorCounters:
    """Message counters of one sensor (see the module docstring for the invariants)."""

    received: int = 0
    used: int = 0
    dropped_late: int = 0  # arrived after every frame it could have gone into (or out of order, policy 'drop')
    dropped_unmatched: int = 0  # held in time, but no frame took it (outside every slop/window, superseded)
    dropped_overflow: int = 0  # pushed out of its bounded queue
    dropped_invalid: int = 0  # unusable: wrong payload for the sensor, duplicate stamp, NaN, stamp from the future
    pending: int = 0
    member: bool = False  # a frame member: the frame counters below apply
    in_frames: int = 0
    missing_from_frames: int = 0

    @property
    def dropped(self) -> int:
        return self.dropped_late + self.dropped_unmatched + self.dropped_overflow + self.dropped_invalid

    def balanced(self) -> bool:
        return self.received == self.used + self.dropped + self.pending


@dataclass
class SyncStats:
    """All counters of a synchronizer. ``problems()`` lists every invariant that does not hold."""

    sensors: dict[str, SensorCounters] = field(default_factory=dict)
    frames: int = 0
    degraded_frames: int = 0
    frames_without_reference: int = 0  # emitted on the frame clock while the reference LiDAR was out
    clock_resets: int = 0
    ignored: Counter[str] = field(default_factory=Counter)  # messages of sensors that take no part
    drop_reasons: Counter[str] = field(default_factory=Counter)  # 'sensor: reason' -> count, for reports
    reset_reasons: list[str] = field(default_factory=list)  # why each clock reset happened

    def sensor(self, name: str, member: bool = False) -> SensorCounters:
        c = self.sensors.get(name)
        if c is None:
            c = self.sensors[name] = SensorCounters(member=member)
        elif member and not c.member:
            c.member = True
        return c

    def problems(self) -> list[str]:
        out = []
        for name, c in self.sensors.items():
            if not c.balanced():
                out.append(f"{name}: received {c.received} != used {c.used} + dropped {c.dropped} + pending {c.pending}")
            if min(c.received, c.used, c.dropped_late, c.dropped_unmatched, c.dropped_overflow, c.dropped_invalid,
                   c.pending) < 0:
                out.append(f"{name}: a negative counter: {c}")
            if c.member and c.in_frames + c.missing_from_frames != self.frames:
                out.append(f"{name}: in {c.in_frames} + missing from {c.missing_from_frames} frames != {self.frames} frames")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames, "degraded_frames": self.degraded_frames,
            "frames_without_reference": self.frames_without_reference, "clock_resets": self.clock_resets,
            "sensors": {k: asdict(v) for k, v in self.sensors.items()},
            "ignored": dict(self.ignored), "drop_reasons": dict(self.drop_reasons), "reset_reasons": list(self.reset_reasons),
        }
