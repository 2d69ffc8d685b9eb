"""Stage timers and latency statistics shared by the pipeline, replay and ``bevfuse bench``.

On the CPU a stage is timed with ``perf_counter_ns``. On the GPU, work is asynchronous: a host
clock around a kernel launch measures the launch, not the kernel. ``StageTimer`` therefore records
a pair of CUDA events on the current stream around each stage and resolves them only when the
caller asks for the frame's times (after the frame's work is known to be done), so timing adds no
host synchronisation inside the pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["LatencyStats", "StageTimer", "latency_stats", "summarize_stages"]


@dataclass
class _Pending:
    stage: str
    start: Any  # int ns on CPU, torch.cuda.Event on GPU
    end: Any = None


@dataclass
class StageTimer:
    """Times named stages of one frame; ``cuda=True`` uses CUDA events on torch's current stream.

    Usage::

        timer = StageTimer(cuda=False)
        with timer.stage("preprocess"):
            ...
        times_ms = timer.collect()   # {"preprocess": 1.23}; resets the timer for the next frame
    """

    cuda: bool = False
    _pending: list[_Pending] = field(default_factory=list)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.cuda:
            import torch

            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            entry = _Pending(name, start)
            self._pending.append(entry)
            try:
                yield
            finally:
                end.record()
                entry.end = end
        else:
            entry = _Pending(name, time.perf_counter_ns())
            self._pending.append(entry)
            try:
                yield
            finally:
                entry.end = time.perf_counter_ns()

    def collect(self) -> dict[str, float]:
        """Milliseconds per stage of the frame (a stage entered twice is summed); resets."""
        out: dict[str, float] = {}
        if self.cuda and self._pending:
            self._pending[-1].end.synchronize()  # events complete in stream order: the last one suffices
        for p in self._pending:
            if p.end is None:
                continue
            ms = p.start.elapsed_time(p.end) if self.cuda else (p.end - p.start) / 1e6
            out[p.stage] = out.get(p.stage, 0.0) + float(ms)
        self._pending.clear()
        return out


@dataclass(frozen=True)
class LatencyStats:
    """Percentiles of a latency sample, milliseconds. ``n`` samples."""

    n: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float
    std_ms: float

    def to_dict(self, extended: bool = False) -> dict[str, float]:
        d = {"p50_ms": self.p50_ms, "p90_ms": self.p90_ms, "p99_ms": self.p99_ms, "max_ms": self.max_ms, "mean_ms": self.mean_ms}
        if extended:
            d.update({"p99.9_ms": self.p999_ms, "std_ms": self.std_ms, "n": self.n})
        return d


def latency_stats(samples_ms: list[float] | np.ndarray) -> LatencyStats:
    """Percentiles by linear interpolation (numpy's default); an empty sample gives NaNs."""
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        nan = float("nan")
        return LatencyStats(0, nan, nan, nan, nan, nan, nan, nan)
    p50, p90, p99, p999 = np.percentile(a, [50, 90, 99, 99.9])
    return LatencyStats(int(a.size), float(p50), float(p90), float(p99), float(p999), float(a.max()), float(a.mean()), float(a.std()))


def summarize_stages(frames: list[dict[str, float]]) -> dict[str, LatencyStats]:
    """Per-stage statistics over frames, stages in the order they first appear."""
    order: list[str] = []
    for f in frames:
        for k in f:
            if k not in order:
                order.append(k)
    return {k: latency_stats([f[k] for f in frames if k in f]) for k in order}
