"""Time synchronization and ego motion: from message streams to ``SyncedFrame``s.

- ``Synchronizer``: streaming ``push(msg) -> [SyncedFrame]``, ``flush()``; counters in ``SyncStats``.
- ``frames_from_log(reader, rig, config)``: the synchronizer driven by a drive log, with ground truth.
- Pose sources answering ``world_T_ego(t_ns)``: ``EgoPoseSource`` (dataset poses, odometry),
  ``GnssImuPoseSource`` (NavSatFix + IMU, an EKF), ``AutoPoseSource``; ``PoseTrajectory`` / ``PoseBuffer``.
- ``deskew_cloud`` / ``deskew_points``; ``accumulate_sweeps`` / ``accumulate_radar``.

Names are imported lazily so that loading the config tree (``perception.sync.config``) does not
pull in numba.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "AutoPoseSource",
    "EgoPoseSource",
    "FrameStream",
    "GnssImuPoseSource",
    "PoseBuffer",
    "PoseConfig",
    "PoseSource",
    "PoseTrajectory",
    "RadarInput",
    "SensorCounters",
    "SweepInput",
    "SyncConfig",
    "SyncStats",
    "Synchronizer",
    "accumulate_radar",
    "accumulate_sweeps",
    "deskew_cloud",
    "deskew_points",
    "frames_from_log",
    "ground_truth_in_ego",
    "make_pose_source",
]

_WHERE = {
    "AutoPoseSource": "pose", "EgoPoseSource": "pose", "PoseSource": "pose", "make_pose_source": "pose",
    "FrameStream": "replay", "frames_from_log": "replay", "ground_truth_in_ego": "replay",
    "GnssImuPoseSource": "gnss_imu",
    "PoseBuffer": "trajectory", "PoseTrajectory": "trajectory",
    "PoseConfig": "config", "SyncConfig": "config",
    "RadarInput": "accumulate", "SweepInput": "accumulate", "accumulate_radar": "accumulate",
    "accumulate_sweeps": "accumulate",
    "SensorCounters": "stats", "SyncStats": "stats",
    "Synchronizer": "synchronizer",
    "deskew_cloud": "deskew", "deskew_points": "deskew",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"perception.sync.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'perception.sync' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
