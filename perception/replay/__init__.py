"""``bevfuse replay``: drive logs through the ``Pipeline`` into files a person or a tool opens.

The sinks are small and independent of the model: ``DetectionsBag`` (``detections.mcap``),
``SubmissionWriter`` (``detections.json``, ``ground_truth.json``, ``metrics.json``), ``LatencyLog``
(``latency.json``), ``write_report`` (``report.md``) and ``PictureWriter`` (``bev/``, ``cameras/``,
``bev.mp4``). Names are imported lazily: ``bevfuse --help`` must not pay for OpenCV or rosbags.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["DetectionsBag", "LatencyLog", "PictureWriter", "SubmissionWriter", "format_report", "sample_token", "write_report"]

_WHERE = {
    "DetectionsBag": "bag_sink",
    "LatencyLog": "latency",
    "PictureWriter": "pictures",
    "SubmissionWriter": "submission",
    "sample_token": "submission",
    "format_report": "report",
    "write_report": "report",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"perception.replay.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'perception.replay' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
