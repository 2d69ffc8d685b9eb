"""Drive the synchronizer from a drive log: ``frames_from_log(reader, rig, config)``.

The pose source is chosen from what the log has (with ``sync.pose.source: auto``): its own poses
(``EgoPose`` on ``ego_pose`` or an odometry sensor) when there are any, else GNSS + IMU. Ground truth
(``Detections`` on ``ground_truth``) is attached to the frame whose stamp it is nearest (within
``gt_tolerance_ms``), moved into the ego frame at the frame stamp: from the world frame through
the frame's pose, from the ego frame at another stamp through the ego motion between the two.

**Order.** The synchronizer takes the messages as they were recorded (what a node on the car got)
when the reader can give them so: ``reader.messages(order="record")``. Only then does it see a
clock that jumped back (a replay restarted, a time source reset) and count it as a new epoch; a
stamp-ordered stream merges the two epochs by stamp and hides the jump. The ROS bag reader takes
the argument (file order: ``perception.io.rosbag``); a reader without it (the dataset readers,
which have no recorded order) is read in its stamp order; ``FrameStream.order`` says which it was.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from calib import se3
from calib.rig import Rig
from perception.boxes import transform_detections
from perception.errors import ConfigError, PoseError
from perception.io.base import EGO_POSE, GROUND_TRUTH, LogReader
from perception.sync.config import SyncConfig
from perception.sync.deskew import EGO_FRAME
from perception.sync.synchronizer import Synchronizer
from perception.types import Detections, Modality, SensorMessage, SyncedFrame

__all__ = ["ORDERS", "PRECOMPENSATED_FORMATS", "FrameStream", "frames_from_log", "ground_truth_in_ego"]

# auto: the recorded order when the reader offers it, else its stamp order
ORDERS = ("auto", "record", "stamp")

# Formats whose LiDAR sweeps are already motion-compensated to the sweep stamp: deskewing them
# again would move each point by the motion during the sweep a second time.
PRECOMPENSATED_FORMATS = {
    "av2": "Argoverse 2 sweeps are 'egomotion-compensated to the egovehicle reference timestamp' (av2-api Sweep)",
}


def ground_truth_in_ego(det: Detections, frame: SyncedFrame, relative: np.ndarray | None = None,
                        rig: Rig | None = None) -> Detections | None:
    """``det`` in the ego frame at ``frame.stamp_ns``, or None when it cannot be placed.

    ``det.frame_id``: 'ego' (at ``det.stamp_ns``: ``relative`` = ego(frame)_T_ego(det) moves it; the
    identity when the stamps are equal), a rig sensor frame (through its ``ego_T_sensor`` first), or
    any other name = the world frame of the poses (through ``frame.world_T_ego``).
    """
    if det.frame_id == EGO_FRAME or (rig is not None and rig.by_frame(det.frame_id) is not None):
        ego_T_src = np.eye(4) if det.frame_id == EGO_FRAME else rig.by_frame(det.frame_id).ego_T_sensor  # type: ignore[union-attr]
        if det.stamp_ns != frame.stamp_ns:
            if relative is None:
                return None
            ego_T_src = relative @ ego_T_src
        out = transform_detections(det, ego_T_src, EGO_FRAME)
    else:
        if not np.all(np.isfinite(frame.world_T_ego)):
            return None
        out = transform_detections(det, se3.invert(frame.world_T_ego), EGO_FRAME)
    return replace_stamp(out, frame.stamp_ns)


def replace_stamp(det: Detections, stamp_ns: int) -> Detections:
    return replace(det, stamp_ns=int(stamp_ns))


def offers_record_order(reader: LogReader) -> bool:
    """Whether ``reader.messages`` takes ``order='record'`` (messages as they were recorded)."""
    try:
        return "order" in inspect.signature(reader.messages).parameters
    except (TypeError, ValueError):
        return False


class FrameStream:
    """An iterator of ``SyncedFrame``s from a log (what ``frames_from_log`` returns).

    ``synchronizer`` (and its ``stats``) can be read during and after the iteration;
    ``ground_truth_unplaced`` counts ground-truth messages that found no frame or no pose, by reason;
    ``order`` is the order the messages were read in: 'record' or 'stamp' (see the module docstring).
    """

    def __init__(self, reader: LogReader, rig: Rig | None = None, config: SyncConfig | None = None,
                 gt_tolerance_ms: float = 25.0, order: str = "auto") -> None:
        if order not in ORDERS:
            raise ConfigError(f"order: expected one of {ORDERS}, got {order!r}")
        self.reader = reader
        self.rig = rig or reader.rig
        config = config or SyncConfig()
        if config.pose.source == "auto":
            streams = reader.streams()
            has_poses = any(s.sensor == EGO_POSE or s.modality is Modality.ODOMETRY for s in streams)
            config = replace(config, pose=replace(config.pose, source="ego_pose" if has_poses else "gnss_imu"))
        if reader.format in PRECOMPENSATED_FORMATS:
            lidars = tuple(s.name for s in self.rig.of(Modality.LIDAR))
            config = replace(config, precompensated=tuple(dict.fromkeys(config.precompensated + lidars)))
        self.config = config
        if order == "auto":
            order = "record" if offers_record_order(reader) else "stamp"
        elif order == "record" and not offers_record_order(reader):
            raise ConfigError(f"order: {type(reader).__name__} ({reader.format}) cannot give its messages in recorded order")
        self.order = order
        self.synchronizer = Synchronizer(self.rig, config)
        self.ground_truth_unplaced: Counter[str] = Counter()
        self._tol = int(gt_tolerance_ms * 1e6)
        self._jump = config.ns("clock_jump_ms")
        self._it = self._frames()

    @property
    def stats(self):  # noqa: ANN201 - SyncStats
        return self.synchronizer.stats

    def __iter__(self) -> FrameStream:
        return self

    def __next__(self) -> SyncedFrame:
        return next(self._it)

    def _messages(self) -> Iterator[SensorMessage]:
        if self.order == "record":
            return self.reader.messages(order="record")  # type: ignore[call-arg]
        return self.reader.messages()

    def _frames(self) -> Iterator[SyncedFrame]:
        sync = self.synchronizer
        gts: list[Detections] = []
        waiting: list[SyncedFrame] = []
        for msg in self._messages():
            if msg.sensor == GROUND_TRUTH and isinstance(msg.payload, Detections):
                gts.append(msg.payload)
                continue
            before, resets = sync.clock_ns, sync.stats.clock_resets
            out = sync.push(msg)
            if sync.stats.clock_resets != resets and before is not None:
                # the clock went back (recorded order): the old epoch's frames, which this push let
                # out, take the old epoch's ground truth now, before the new epoch's stamps (lower,
                # and overlapping the old ones) could be mistaken for theirs
                cut = before - self._jump
                old_gts = [g for g in gts if g.stamp_ns >= cut]
                gts = [g for g in gts if g.stamp_ns < cut]
                for frame in waiting + [f for f in out if f.stamp_ns >= cut]:
                    yield self._attach(frame, old_gts)
                self.ground_truth_unplaced["no frame within tolerance"] += len(old_gts)
                waiting = [f for f in out if f.stamp_ns < cut]
            else:
                waiting += out
            # a frame waits until no ground truth for it can still come: the synchronizer's clock
            # (the newest stamp it took) is past the frame plus the tolerance
            clock = sync.clock_ns
            while waiting and clock is not None and waiting[0].stamp_ns + self._tol < clock:
                yield self._attach(waiting.pop(0), gts)
        waiting += sync.flush()
        for frame in waiting:
            yield self._attach(frame, gts)
        self.ground_truth_unplaced["no frame within tolerance"] += len(gts)

    def _attach(self, frame: SyncedFrame, gts: list[Detections]) -> SyncedFrame:
        # ground truth too old for this frame will fit no later one either
        while gts and gts[0].stamp_ns < frame.stamp_ns - self._tol:
            gts.pop(0)
            self.ground_truth_unplaced["no frame within tolerance"] += 1
        near = [g for g in gts if abs(g.stamp_ns - frame.stamp_ns) <= self._tol]
        if not near:
            return frame
        det = min(near, key=lambda g: abs(g.stamp_ns - frame.stamp_ns))
        gts.remove(det)
        relative = None
        if det.stamp_ns != frame.stamp_ns:
            try:
                relative = self.synchronizer.pose.trajectory().relative(frame.stamp_ns, [det.stamp_ns])[0]
            except PoseError:
                relative = None
        placed = ground_truth_in_ego(det, frame, relative, self.rig)
        if placed is None:
            self.ground_truth_unplaced["no pose to place it"] += 1
            return frame
        return replace(frame, ground_truth=placed)


def frames_from_log(reader: LogReader, rig: Rig | None = None, config: SyncConfig | None = None,
                    order: str = "auto") -> FrameStream:
    """Synchronized frames of a drive log, with ground truth when the log has it (see the module docstring).

    ``order``: 'auto' (the recorded order when the reader offers it, else its stamp order), 'record'
    (``ConfigError`` when the reader cannot), or 'stamp'."""
    return FrameStream(reader, rig, config, order=order)
