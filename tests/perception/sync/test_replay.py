"""frames_from_log: ground truth placed in the ego frame at the frame stamp; the log read in recorded
order, so that a clock jump back is seen and counted."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from calib import se3
from perception.errors import ConfigError
from perception.io.base import GROUND_TRUTH
from perception.sync import frames_from_log, ground_truth_in_ego
from perception.types import Detections, SensorMessage, SyncedFrame
from tests.perception.sync.synthetic import MemoryLog, Scene, merge


def boxes(frame_id: str, stamp: int) -> Detections:
    return Detections(stamp_ns=stamp, frame_id=frame_id, class_names=("car",), center=np.array([[10.0, 2.0, 1.0]]),
                      size=np.array([[4.0, 2.0, 1.5]]), yaw=np.array([0.3]), velocity=np.array([[5.0, 0.0]]),
                      score=np.ones(1, np.float32), label=np.zeros(1, np.int64))


def frame(world_T_ego: np.ndarray, stamp: int = 1000) -> SyncedFrame:
    return SyncedFrame(stamp, {}, None, None, world_T_ego)


def test_from_the_world():
    W = se3.from_rotation_translation(se3.rotation_z(np.pi / 2), [100.0, 50.0, 0.0])
    out = ground_truth_in_ego(boxes("world", 1000), frame(W))
    np.testing.assert_allclose(out.center, se3.transform_points(se3.invert(W), np.array([[10.0, 2.0, 1.0]])), atol=1e-9)
    assert out.frame_id == "ego" and out.stamp_ns == 1000
    np.testing.assert_allclose(out.yaw, [0.3 - np.pi / 2], atol=1e-9)
    np.testing.assert_allclose(out.velocity, [[0.0, -5.0]], atol=1e-9)  # re-expressed, not made relative
    nan = frame(np.full((4, 4), np.nan))
    assert ground_truth_in_ego(boxes("world", 1000), nan) is None  # no pose: cannot be placed


def test_from_the_ego_frame_at_another_stamp():
    # the car drove 1.5 m forward between the boxes' stamp and the frame's: they are 1.5 m nearer
    rel = se3.from_rotation_translation(np.eye(3), [-1.5, 0.0, 0.0])  # ego(frame)_T_ego(boxes)
    out = ground_truth_in_ego(boxes("ego", 900), frame(np.eye(4)), relative=rel)
    np.testing.assert_allclose(out.center, [[8.5, 2.0, 1.0]], atol=1e-12)
    assert ground_truth_in_ego(boxes("ego", 900), frame(np.eye(4))) is None  # the motion is unknown
    same = ground_truth_in_ego(boxes("ego", 1000), frame(np.full((4, 4), np.nan)))
    np.testing.assert_allclose(same.center, [[10.0, 2.0, 1.0]])  # same stamp: no pose needed


# ---------------------------------------------------------------- recorded order and clock jumps

def _shift(msg: SensorMessage, dt: int) -> SensorMessage:
    p = replace(msg.payload, stamp_ns=msg.payload.stamp_ns + dt)
    return SensorMessage(msg.stamp_ns + dt, msg.sensor, msg.topic, p)


def _ground_truth(scene: Scene, stamp: int) -> SensorMessage:
    """One box 10 m ahead of the ego at ``stamp``, in the world frame (as nuScenes gives it)."""
    W = scene.motion.world_T_ego(stamp)
    center = se3.transform_points(W, np.array([[10.0, 0.0, 1.0]]))
    det = Detections(stamp_ns=stamp, frame_id="world", class_names=("car",), center=center, size=np.array([[4.0, 2.0, 1.5]]),
                     yaw=np.array([se3.yaw_of(W)]), velocity=np.zeros((1, 2)), score=np.ones(1, np.float32),
                     label=np.zeros(1, np.int64))
    return SensorMessage(stamp, GROUND_TRUTH, "/ground_truth", det)


def recorded_with_clock_jump(scene: Scene, jump_ns: int) -> tuple[list[SensorMessage], int]:
    """The scene as a recorder got it, ground truth at every key sweep, the recording clock set back by
    ``jump_ns`` a frame into the second half (stamps after it overlap those before it). Returns the
    messages in recorded order and the first stamp after the jump."""
    gts = [_ground_truth(scene, m.stamp_ns) for m in scene.sweeps[::2]]
    msgs = merge(scene.sweeps, scene.cameras, scene.radars, scene.poses, gts)
    cut_at = scene.sweeps[30].stamp_ns - 48_000_000  # before the cameras of key sweep 30
    half = next(i for i, m in enumerate(msgs) if m.stamp_ns >= cut_at)
    return msgs[:half] + [_shift(m, -jump_ns) for m in msgs[half:]], cut_at - jump_ns


class TestRecordedOrder:
    def test_clock_jump_back_is_counted_in_recorded_order(self, scene, scene_config):
        jump = 1_500_000_000  # 1.5 s back (more than clock_jump_ms), 1.6 s into a 3 s log: the stamps after it overlap
        recorded, restart = recorded_with_clock_jump(scene, jump)
        log = MemoryLog(scene.rig, recorded)
        stream = frames_from_log(log, config=scene_config)
        frames = list(stream)
        st = stream.stats
        assert stream.order == "record"
        assert st.clock_resets == 1 and "behind the clock" in st.reset_reasons[0]
        # every message is accounted for, per sensor: received = used + dropped (nothing pending at the end)
        assert st.problems() == []
        sent: dict[str, int] = {}
        for m in recorded:
            if m.sensor != GROUND_TRUTH:
                sent[m.sensor] = sent.get(m.sensor, 0) + 1
        for name, c in st.sensors.items():
            assert c.received == sent[name], name
            assert c.received == c.used + c.dropped and c.pending == 0, name
        # what the old epoch still held when the clock went back is counted as dropped by the jump
        assert st.drop_reasons["LIDAR_TOP: clock jump"] == 1 and st.sensors["LIDAR_TOP"].used == 58
        # the frames go back with the clock once, and each epoch is in stamp order
        stamps = [f.stamp_ns for f in frames]
        back = [i for i in range(1, len(stamps)) if stamps[i] < stamps[i - 1]]
        assert len(back) == 1
        k = back[0]
        assert stamps[k] >= restart and all(b > a for a, b in zip(stamps[k:], stamps[k + 1:]))
        assert all(b > a for a, b in zip(stamps[:k], stamps[1:k]))
        # ground truth found its own epoch's frame on both sides of the jump, in the right place
        for side in (frames[1:k], frames[k + 1:]):
            placed = [f for f in side if f.ground_truth is not None]
            assert len(placed) >= len(side) - 1
            for f in placed:
                assert f.ground_truth.stamp_ns == f.stamp_ns
                np.testing.assert_allclose(f.ground_truth.center, [[10.0, 0.0, 1.0]], atol=1e-6)

    def test_stamp_order_hides_the_jump(self, scene, scene_config):
        """What a stamp-ordered reader gives (bevfuse's ROS bag reader today): the two epochs merged by
        stamp, no jump to see, nothing counted as one, sweeps of both epochs mixed into frames."""
        recorded, _ = recorded_with_clock_jump(scene, 1_500_000_000)
        log = MemoryLog(scene.rig, recorded, record_order=False)
        stream = frames_from_log(log, config=scene_config)
        frames = list(stream)
        assert stream.order == "stamp"
        assert stream.stats.clock_resets == 0
        assert stream.stats.problems() == []  # still balanced, but half the log went for duplicates of the other half
        assert len(frames) == 15 and stream.stats.sensors["LIDAR_TOP"].dropped_invalid == 30
        assert frames and all(b > a for a, b in zip([f.stamp_ns for f in frames], [f.stamp_ns for f in frames[1:]]))
        with pytest.raises(ConfigError, match="recorded order"):
            frames_from_log(log, config=scene_config, order="record")

    def test_record_and_stamp_order_agree_without_a_jump(self, scene, scene_config):
        gts = [_ground_truth(scene, m.stamp_ns) for m in scene.sweeps[::2]]
        msgs = merge(scene.sweeps, scene.cameras, scene.radars, scene.poses, gts)
        a = list(frames_from_log(MemoryLog(scene.rig, msgs), config=scene_config))
        b = list(frames_from_log(MemoryLog(scene.rig, msgs), config=scene_config, order="stamp"))
        assert [f.stamp_ns for f in a] == [f.stamp_ns for f in b] and len(a) == len(scene.sweeps[::2])
        for fa, fb in zip(a, b):
            np.testing.assert_array_equal(fa.lidar.points, fb.lidar.points)
            np.testing.assert_array_equal(fa.ground_truth.center, fb.ground_truth.center)
