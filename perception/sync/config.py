"""Synchronizer settings: the ``sync`` section of the config tree (see perception.config)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SyncConfig:
    """How LiDAR sweeps, cameras and radars are grouped into frames."""

    frame_rate_hz: float = field(default=10.0, metadata={"gt": 0, "le": 100})
    camera_slop_ms: float = field(default=50.0, metadata={"ge": 0})
    lidar_sweeps: int = field(default=10, metadata={"ge": 1, "le": 30})
    radar_window_ms: float = field(default=250.0, metadata={"ge": 0})
    deadline_ms: float = field(default=100.0, metadata={"ge": 0})
