"""Pose sources: anything that takes pose-bearing messages and answers ``world_T_ego(t_ns)``.

Three kinds: ``EgoPoseSource`` (a dataset's own poses or an odometry topic, as ``EgoPose``
messages), ``GnssImuPoseSource`` (NavSatFix fused with IMU, in ``gnss_imu.py``), and
``AutoPoseSource`` that feeds both and answers from the EgoPose messages when there are any.

``add(msg)`` says what became of a message (``PoseVerdict``) so that the synchronizer can count it;
``trajectory()`` is a ``PoseTrajectory`` snapshot (raises ``PoseError`` while there is no pose);
``ready_ns`` is the newest stamp the source has seen (poses after it are extrapolated).
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import numpy as np

from calib.rig import Rig
from perception.errors import PoseError
from perception.sync.config import PoseConfig
from perception.sync.trajectory import PoseBuffer, PoseTrajectory, finite_pose_quat
from perception.types import EgoPose, GnssFix, ImuSample, SensorMessage

__all__ = ["AutoPoseSource", "EgoPoseSource", "PoseSource", "PoseVerdict", "make_pose_source"]

# used: went into the poses; late: older than what the source can still take; invalid: unusable
# content (no fix, NaN); ignored: not a message this source reads.
PoseVerdict = Literal["used", "late", "invalid", "ignored"]


@runtime_checkable
class PoseSource(Protocol):
    name: str

    def add(self, msg: SensorMessage) -> PoseVerdict:
        """Take one message; say whether it was used."""
        ...

    def trajectory(self) -> PoseTrajectory:
        """The poses known now; ``PoseError`` while there are none."""
        ...

    @property
    def ready_ns(self) -> int | None:
        """Newest stamp the source has processed, or None before its first pose."""
        ...

    def accepts(self, msg: SensorMessage) -> bool:
        """Whether ``msg`` is one this source reads (without reading it)."""
        ...

    def reset(self) -> None:
        """Forget everything (after a clock jump)."""
        ...


class EgoPoseSource:
    """Poses from ``EgoPose`` messages: nuScenes ego_pose, AV2 city_SE3_egovehicle, KITTI oxts, odometry.

    ``sensors``: the sensor names to read (None: the first sensor that sends an EgoPose; two pose
    streams of different origins must not be mixed). Messages may come in any order within the
    history; older ones are late.
    """

    def __init__(self, config: PoseConfig | None = None, sensors: set[str] | None = None, name: str = "ego_pose") -> None:
        config = config or PoseConfig()
        self.name = name
        self.sensors = set(sensors) if sensors is not None else None
        self._configured = self.sensors
        self._buffer = PoseBuffer(int(config.history_s * 1e9), config.max_extrapolation_ns, name)
        self.frame_id: str | None = None

    def accepts(self, msg: SensorMessage) -> bool:
        return isinstance(msg.payload, EgoPose) and (self.sensors is None or msg.sensor in self.sensors)

    def add(self, msg: SensorMessage) -> PoseVerdict:
        if not self.accepts(msg):
            return "ignored"
        if self.sensors is None:
            self.sensors = {msg.sensor}
        pose: EgoPose = msg.payload  # type: ignore[assignment]
        quat = np.empty(4)
        if not finite_pose_quat(pose.world_T_ego, quat):  # the check and the quaternion, in one compiled call
            return "invalid"
        newest = self._buffer.newest_ns
        if newest is not None and pose.stamp_ns < newest - self._buffer.history_ns:
            return "late"
        if self.frame_id is None:
            self.frame_id = pose.frame_id
        self._buffer.append(pose.stamp_ns, pose.world_T_ego, quat)
        return "used"

    def trajectory(self) -> PoseTrajectory:
        return self._buffer.trajectory()

    @property
    def ready_ns(self) -> int | None:
        return self._buffer.newest_ns

    @property
    def has_poses(self) -> bool:
        return len(self._buffer) > 0

    def reset(self) -> None:
        self._buffer.clear()
        self.sensors = self._configured


class AutoPoseSource:
    """EgoPose messages when the log has them, else GNSS+IMU: both are fed, the answer comes from
    the EgoPose source as soon as it holds a pose (a deterministic choice given the message order)."""

    def __init__(self, rig: Rig | None, config: PoseConfig | None = None) -> None:
        from perception.sync.gnss_imu import GnssImuPoseSource

        config = config or PoseConfig()
        self.ego = EgoPoseSource(config)
        self.gnss_imu = GnssImuPoseSource(rig, config)
        self.name = "ego_pose"

    def accepts(self, msg: SensorMessage) -> bool:
        return self.ego.accepts(msg) or self.gnss_imu.accepts(msg)

    def add(self, msg: SensorMessage) -> PoseVerdict:
        if self.ego.accepts(msg):
            return self.ego.add(msg)
        if self.ego.has_poses:  # GNSS/IMU are not needed once the log gives poses
            return "ignored"
        return self.gnss_imu.add(msg)

    @property
    def active(self) -> PoseSource:
        return self.ego if self.ego.has_poses else self.gnss_imu

    def trajectory(self) -> PoseTrajectory:
        return self.active.trajectory()

    @property
    def ready_ns(self) -> int | None:
        return self.active.ready_ns

    def reset(self) -> None:
        self.ego.reset()
        self.gnss_imu.reset()


def make_pose_source(rig: Rig | None, config: PoseConfig | None = None) -> PoseSource:
    """The pose source that ``config.source`` names."""
    from perception.sync.gnss_imu import GnssImuPoseSource

    config = config or PoseConfig()
    if config.source == "ego_pose":
        return EgoPoseSource(config)
    if config.source == "gnss_imu":
        return GnssImuPoseSource(rig, config)
    return AutoPoseSource(rig, config)


def is_pose_payload(msg: SensorMessage) -> bool:
    return isinstance(msg.payload, (EgoPose, GnssFix, ImuSample))


def pose_or_none(source: PoseSource) -> PoseTrajectory | None:
    try:
        return source.trajectory()
    except PoseError:
        return None
