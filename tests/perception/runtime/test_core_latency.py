"""The node's latency accounting: frames their own messages completed are the steady state; frames
a clock reset let out (a restarted log: they waited for messages that never came) and frames
published in the start-up seconds are counted apart; the summary names the slowest frames."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np

from calib.rig import Rig, SensorSpec
from perception.runtime.clock import WallClock
from perception.runtime.core import NodeConfig, NodeCore
from perception.types import Detections, GnssFix, Modality, SensorMessage, SyncedFrame

from .conftest import wait_until

NS = 1_000_000_000
RIG = Rig((SensorSpec("LIDAR_TOP", Modality.LIDAR, "lidar", "/lidar", 20.0),
           SensorSpec("GNSS", Modality.GNSS, "gnss", "/fix", 10.0)))


class _Sync:
    """Each push gives the frame queued for it; a push marked ``reset`` counts a clock reset first."""

    def __init__(self) -> None:
        self.stats = SimpleNamespace(clock_resets=0, sensors={})
        self.plan: list[tuple[bool, list[SyncedFrame]]] = []

    def push(self, msg: SensorMessage) -> list[SyncedFrame]:
        reset, frames = self.plan.pop(0)
        if reset:
            self.stats.clock_resets += 1
        return frames


class _Clock(WallClock):
    """Frame stamps are wall times already, so latency = publish time - stamp."""

    def wall_of(self, stamp_ns: int) -> int:
        return stamp_ns


class _Slow:
    def step(self, frame: SyncedFrame) -> Detections:
        time.sleep(0.01)
        return Detections.empty(frame.stamp_ns, "ego", ("car",))


def _frame(stamp_ns: int) -> SyncedFrame:
    return SyncedFrame(stamp_ns=stamp_ns, images={}, lidar=None, radar=None, world_T_ego=np.eye(4))


def _fix(stamp_ns: int) -> SensorMessage:
    fix = GnssFix(stamp_ns=stamp_ns, frame_id="gnss", latitude_deg=42.0, longitude_deg=-71.0, altitude_m=5.0,
                  position_covariance=np.eye(3), covariance_type=2, status=0, service=1)
    return SensorMessage(stamp_ns, "GNSS", "/fix", fix)


def _push_and_wait(core: NodeCore, seq: int, frames_done: int) -> None:
    """One message (its frame comes from the plan), then wait until ``frames_done`` frames are out."""
    core.on_message(_fix(NS + seq))
    assert wait_until(lambda: core.frames_done >= frames_done, 10.0, 0.005)


def test_frames_released_by_a_clock_reset_are_kept_out_of_the_steady_latency() -> None:
    sync = _Sync()
    core = NodeCore(RIG, synchronizer=sync, processor=_Slow(), clock=_Clock(), config=NodeConfig(latency_warmup_s=0.0))
    now = time.time_ns()
    # three frames completed by their own messages (20 ms old), then one let out by a reset (2 s old)
    plan = [(False, [_frame(now - 20_000_000)]), (False, [_frame(now - 20_000_000)]), (False, [_frame(now - 20_000_000)]),
            (True, [_frame(now - 2 * NS)])]
    sync.plan = list(plan)
    core.start()
    try:
        for i in range(len(plan)):
            _push_and_wait(core, i, i + 1)
    finally:
        core.stop()
    s = core.summary()
    assert s["frames_done"] == 4 and s["frames_released_by_flush_or_reset"] == 1 and s["frames_in_latency_warmup"] == 0
    assert s["sensor_to_publish_ms"]["n"] == 4 and s["sensor_to_publish_steady_ms"]["n"] == 3
    assert s["sensor_to_publish_ms"]["max_ms"] >= 2000.0 > s["sensor_to_publish_steady_ms"]["max_ms"]
    slowest = s["slowest_frames"]
    assert len(slowest) == 4 and slowest[0]["released"] and slowest[0]["sensor_to_publish_ms"] >= 2000.0
    assert [f["sensor_to_publish_ms"] for f in slowest] == sorted((f["sensor_to_publish_ms"] for f in slowest), reverse=True)
    assert not any(f["released"] for f in slowest[1:])


def test_frames_of_the_start_up_seconds_are_kept_out_of_the_steady_latency() -> None:
    """Published within ``latency_warmup_s`` of the first publication: start-up, not steady state."""
    sync = _Sync()
    core = NodeCore(RIG, synchronizer=sync, processor=_Slow(), clock=_Clock(), config=NodeConfig(latency_warmup_s=0.3))
    sync.plan = [(False, [_frame(time.time_ns() - 500_000_000)])]
    core.start()
    try:
        _push_and_wait(core, 0, 1)
        time.sleep(0.4)  # past the warm-up
        sync.plan = [(False, [_frame(time.time_ns() - 20_000_000)]) for _ in range(3)]
        for i in range(3):
            _push_and_wait(core, 1 + i, 2 + i)
    finally:
        core.stop()
    s = core.summary()
    assert s["frames_done"] == 4 and s["frames_in_latency_warmup"] == 1 and s["frames_released_by_flush_or_reset"] == 0
    assert s["sensor_to_publish_ms"]["n"] == 4 and s["sensor_to_publish_steady_ms"]["n"] == 3
    assert s["sensor_to_publish_ms"]["max_ms"] >= 500.0 > s["sensor_to_publish_steady_ms"]["max_ms"]
