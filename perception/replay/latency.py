"""``latency.json``: what a replay measured, per stage and end to end, and what it dropped.

::

    {"device", "backend", "precision", "config": str, "frames": int,
     "frames_dropped": {reason: count}, "degraded_frames": {sensor: count},
     "stages": {stage: {"p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms"}},
     "end_to_end": {same keys}, "sensor_to_output": {same keys} or null, ...}

``stages`` are the pipeline's own timers (CUDA events on a GPU). ``end_to_end`` is the host clock
from the moment the synchronized frame was handed to the pipeline until its detections were back
on the host, so it includes everything the pipeline does (image decode is the reader's, counted in
``decode_ms`` per frame when the reader reports it, and added to ``end_to_end``).
The first ``warmup`` frames (default 1: numba and torch compile and allocate on their first call)
are counted in ``frames`` but left out of the statistics (``warmup_end_to_end_ms`` lists them),
unless no other frame ran.
``sensor_to_output`` is the age of the detections when they came out, measured from the frame's
stamp on the replay clock; it exists only for a paced replay (``--rate``), where the replay clock
stands in for the vehicle's. As fast as possible, stamps and the wall clock are unrelated: null.

``extended=True`` (what ``bevfuse bench`` writes) adds ``p99.9_ms``, ``std_ms`` and ``n`` to every
statistics block; the keys above stay as they are, so one reader handles both files.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perception.bench.timing import latency_stats, summarize_stages
from perception.eval import write_json

__all__ = ["LatencyLog"]


def _stats(samples: list[float], extended: bool = False) -> dict[str, float] | None:
    return latency_stats(samples).to_dict(extended) if samples else None


@dataclass
class LatencyLog:
    """Per-frame timings of a replay; ``to_json`` gives the dict of the module docstring."""

    device: str
    backend: str
    precision: str
    config: str
    stage_ms: list[dict[str, float]] = field(default_factory=list)
    end_to_end_ms: list[float] = field(default_factory=list)
    sensor_to_output_ms: list[float] = field(default_factory=list)
    frames_dropped: Counter[str] = field(default_factory=Counter)
    degraded_frames: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0
    warmup: int = 1
    extra: dict[str, Any] = field(default_factory=dict)
    extended: bool = False

    @property
    def frames(self) -> int:
        """Frames that went through the pipeline."""
        return len(self.end_to_end_ms)

    def add(self, stages_ms: dict[str, float], end_to_end_ms: float, sensor_to_output_ms: float | None = None,
            missing: frozenset[str] = frozenset()) -> None:
        """One processed frame: its stage times, its end-to-end time and, when paced, its age at output."""
        self.stage_ms.append(dict(stages_ms))
        self.end_to_end_ms.append(float(end_to_end_ms))
        if sensor_to_output_ms is not None:
            self.sensor_to_output_ms.append(float(sensor_to_output_ms))
        for sensor in sorted(missing):
            self.degraded_frames[sensor] += 1

    def drop(self, reason: str, count: int = 1) -> None:
        """A frame that did not go through the pipeline, and why."""
        self.frames_dropped[reason] += count

    @property
    def fps(self) -> float | None:
        """Frames processed per second of wall time of the whole replay (sinks included)."""
        return self.frames / self.wall_s if self.wall_s > 0 and self.frames else None

    def to_json(self) -> dict[str, Any]:
        w = self.warmup if self.frames > self.warmup else 0
        out: dict[str, Any] = {
            "device": self.device, "backend": self.backend, "precision": self.precision, "config": self.config,
            "frames": self.frames, "frames_dropped": dict(sorted(self.frames_dropped.items())),
            "degraded_frames": dict(sorted(self.degraded_frames.items())),
            "stages": {k: v.to_dict(self.extended) for k, v in summarize_stages(self.stage_ms[w:]).items()},
            "end_to_end": _stats(self.end_to_end_ms[w:], self.extended),
            # only paced frames have an age; the first of them warms up like the rest
            "sensor_to_output": _stats(self.sensor_to_output_ms[w:] if len(self.sensor_to_output_ms) > w else [], self.extended),
            "warmup_frames": w, "warmup_end_to_end_ms": self.end_to_end_ms[:w],
            "wall_s": self.wall_s, "fps": self.fps,
        }
        out.update(self.extra)
        return out

    def write(self, path: str | Path) -> dict[str, Any]:
        data = self.to_json()
        write_json(path, data)
        return data
