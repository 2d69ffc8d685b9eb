"""The core's parts that need no pipeline: the drop-oldest queue, the watchdogs, the playback clock,
the diagnostics message."""

from __future__ import annotations

import threading

import pytest

from calib.rig import Rig, SensorSpec
from perception.io.ros_encode import serialize
from perception.io.rosmsg import typestore
from perception.runtime.clock import SimClock, WallClock
from perception.runtime.outputs import NodeState, NodeStatus, SensorStatus
from perception.runtime.queues import DropOldestQueue
from perception.runtime.ros_io import diagnostic_array
from perception.runtime.watchdog import Watchdog
from perception.types import Modality

MS = 1_000_000


def _rig() -> Rig:
    return Rig((SensorSpec("LIDAR_TOP", Modality.LIDAR, "lidar", "/lidar", 20.0),
                SensorSpec("CAM_FRONT", Modality.CAMERA, "cam", "/cam", 12.0),
                SensorSpec("GNSS", Modality.GNSS, "gnss", "/fix", None),
                SensorSpec("UNUSED", Modality.IMU, "imu", None, 100.0)))


class TestDropOldestQueue:
    def test_bound_and_drop_count(self) -> None:
        q: DropOldestQueue[int] = DropOldestQueue(2)
        assert q.put(1) is None and q.put(2) is None
        assert q.put(3) == 1 and q.put(4) == 2
        assert len(q) == 2 and q.dropped == 2 and q.max_depth == 2 and q.put_count == 4
        assert q.get(0) == 3 and q.get(0) == 4 and q.get(0.01) is None

    def test_close_wakes_a_waiting_get(self) -> None:
        q: DropOldestQueue[int] = DropOldestQueue(1)
        got: list[int | None] = []
        t = threading.Thread(target=lambda: got.append(q.get(timeout=30)))
        t.start()
        q.close()
        t.join(5)
        assert not t.is_alive() and got == [None] and q.closed

    def test_invalid_size(self) -> None:
        with pytest.raises(ValueError, match="maxsize"):
            DropOldestQueue(0)


class TestWatchdog:
    def test_timeouts_from_the_rig_rates(self) -> None:
        wd = Watchdog(_rig(), periods=5.0, min_timeout_s=0.3, clock=lambda: 0)
        assert wd.sensors["LIDAR_TOP"].timeout_s == pytest.approx(0.3)  # 5 / 20 Hz = 0.25 < the minimum
        assert wd.sensors["CAM_FRONT"].timeout_s == pytest.approx(5 / 12)
        assert wd.sensors["GNSS"].timeout_s is None  # no nominal rate: not watched
        assert "UNUSED" not in wd.sensors  # no topic: nothing to subscribe to

    def test_silence_names_the_sensor_and_recovers(self) -> None:
        wd = Watchdog(_rig(), periods=5.0, min_timeout_s=0.3, clock=lambda: 0)
        assert wd.silent(100 * MS) == []  # within the start-up grace
        assert wd.silent(500 * MS) == ["LIDAR_TOP", "CAM_FRONT"]  # never heard of
        for t in range(0, 1000, 50):
            wd.feed("LIDAR_TOP", 500 * MS + t * MS)
        wd.feed("CAM_FRONT", 600 * MS)
        assert wd.silent(1500 * MS) == ["CAM_FRONT"]  # camera silent since 600 ms: 0.9 s > 5/12 s
        assert wd.rate_hz("LIDAR_TOP", 1500 * MS) == pytest.approx(20 / 1.5)  # 20 arrivals since the start 1.5 s ago
        assert wd.rate_hz("LIDAR_TOP", 2400 * MS) == pytest.approx(20 / 2.0)  # ... in the last 2 s window
        wd.feed("CAM_FRONT", 1600 * MS)
        assert wd.silent(1700 * MS) == []
        assert wd.age_s("CAM_FRONT", 1700 * MS) == pytest.approx(0.1)


class TestSimClock:
    def test_maps_stamps_to_wall_time_at_the_play_rate(self) -> None:
        c = SimClock()
        assert c.wall_of(5) is None
        s0, w0 = 1_000_000 * MS, 2_000_000 * MS
        for i in range(11):  # rate 4: 40 ms of log per 10 ms of wall
            c.feed(s0 + i * 40 * MS, w0 + i * 10 * MS)
        assert c.rate == pytest.approx(4.0)
        now = w0 + 120 * MS
        assert c.wall_of(s0 + 400 * MS, now) == w0 + 100 * MS
        assert c.wall_of(s0 + 360 * MS, now) == w0 + 90 * MS
        assert c.wall_of(s0 + 360 * MS, w0 + 1200 * MS) is None  # the clock stopped: a stale mapping is no mapping
        c.feed(s0, w0 + 500 * MS)  # a loop: the clock went back, a new epoch
        assert c.rate is None
        assert WallClock().wall_of(123) == 123


def test_diagnostics_message() -> None:
    sensors = (SensorStatus("LIDAR_TOP", 20.0, 0.01, 100, 0, 0.3, False), SensorStatus("CAM_FRONT", 0.0, 2.5, 30, 2, 0.4, True))
    status = NodeStatus(stamp_ns=1_700_000_000 * 1_000_000_000, state=NodeState.DEGRADED, silent=("CAM_FRONT",), sensors=sensors,
                        frames_in=10, frames_done=8, frames_dropped=2, queue_depth=1, queue_bound=1, malformed=2,
                        processing_ms_p50=80.0, processing_ms_max=95.0, latency_ms_p50=120.0, latency_ms_p99=150.0,
                        latency_ms_max=151.0, extra={"sync_dropped.CAM_FRONT": "3"})
    msg = diagnostic_array(status)
    back = typestore().deserialize_cdr(serialize(msg, "diagnostic_msgs/msg/DiagnosticArray"), "diagnostic_msgs/msg/DiagnosticArray")
    node, lidar, cam = back.status
    assert (node.name, node.level, node.message) == ("bevfuse: node", 1, "degraded: silent CAM_FRONT")
    values = {kv.key: kv.value for kv in node.values}
    assert values["frames_dropped"] == "2" and values["latency_ms_p99"] == "150.000" and values["queue_bound"] == "1"
    assert (lidar.level, lidar.message, cam.level, cam.message) == (0, "ok", 1, "silent")
    assert {kv.key: kv.value for kv in cam.values}["dropped"] == "3"
    assert float({kv.key: kv.value for kv in lidar.values}["rate_hz"]) == 20.0
