"""``bevfuse play``: a bag written here is played over Zenoh on loopback and received in another session."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from perception.io.bag_writer import BagWriter
from perception.io.rosmsg import typestore
from perception.runtime.player import Player, bag_records
from perception.runtime.transport import Received
from perception.runtime.zenoh_transport import ZenohTransport
from perception.types import ImuSample, PointCloud, SensorMessage

from .conftest import wait_for_line, wait_until

NS = 1_000_000_000
T0 = 1_700_000_000 * NS
TIMEOUT_S = 20.0


def _write_bag(path: Path) -> list[tuple[int, str]]:
    """0.6 s of IMU at 50 Hz (recorded 1 ms after its stamp) and a LiDAR at 10 Hz (recorded 35 ms
    after): the recording order is not the stamp order. Returns (stamp, topic) in stamp order."""
    rng = np.random.default_rng(0)
    msgs = []
    for i in range(30):
        s = T0 + i * 20_000_000
        imu = ImuSample(s, "imu", rng.normal(size=3), np.array([0.0, 0.0, 9.81]))
        msgs.append(SensorMessage(s, "IMU", "/imu/data", imu, log_time_ns=s + 1_000_000))
    for i in range(6):
        s = T0 + i * 100_000_000 + 5_000_000
        cloud = PointCloud(s, "lidar", rng.normal(size=(50, 4)).astype(np.float32))
        msgs.append(SensorMessage(s, "LIDAR_TOP", "/lidar_top/points", cloud, log_time_ns=s + 35_000_000))
    with BagWriter(path) as w:
        for m in sorted(msgs, key=lambda m: m.log_time_ns):
            w.write(m)
    return sorted((m.stamp_ns, m.topic) for m in msgs)



def test_bag_records_come_in_stamp_order(tmp_path: Path) -> None:
    expected = _write_bag(tmp_path / "bag")
    recs = list(bag_records(tmp_path / "bag"))
    assert [(r.stamp_ns, r.topic) for r in recs] == expected
    pc = typestore().deserialize_cdr(next(r for r in recs if r.topic == "/lidar_top/points").data, "sensor_msgs/msg/PointCloud2")
    assert pc.width == 50


def test_bag_records_in_record_order_carry_log_times(tmp_path: Path) -> None:
    by_stamp = _write_bag(tmp_path / "bag")
    recs = list(bag_records(tmp_path / "bag", order="record"))
    log_times = [r.log_time_ns for r in recs]
    assert log_times == sorted(log_times)  # written in log-time order
    assert sorted((r.stamp_ns, r.topic) for r in recs) == by_stamp != [(r.stamp_ns, r.topic) for r in recs]


def test_player_publishes_in_record_order_paced(tmp_path: Path, endpoint: str) -> None:
    _write_bag(tmp_path / "bag")
    expected = [(r.stamp_ns, r.topic) for r in bag_records(tmp_path / "bag", order="record")]
    sub_side = ZenohTransport(connect=(), listen=(endpoint,), node="listener")
    pub_side = ZenohTransport(connect=(endpoint,), node="player")
    got: list[Received] = []
    lock = threading.Lock()

    def on(r: Received) -> None:
        with lock:
            got.append(r)

    try:
        for topic in ("/imu/data", "/lidar_top/points", "/clock"):
            sub_side.subscribe(topic, None, on)
        player = Player(tmp_path / "bag", pub_side, rate=2.0, clock_hz=50.0)
        assert player.declare(TIMEOUT_S), "no subscriber matched"
        start = time.monotonic()
        stats = player.run()
        wall = time.monotonic() - start
        assert wait_until(lambda: sum(r.topic != "/clock" for r in got) == len(expected), TIMEOUT_S)
        player.close()
    finally:
        pub_side.close()
        sub_side.close()
    data = [r for r in got if r.topic != "/clock"]
    stamps = [typestore().deserialize_cdr(r.data, r.msgtype).header.stamp for r in data]
    assert [(s.sec * NS + s.nanosec, r.topic) for s, r in zip(stamps, data)] == expected
    assert stats.published["/imu/data"] == 30 and stats.published["/lidar_top/points"] == 6
    # 0.58 s of log time at rate 2: at least 0.29 s of wall time (a loaded machine only adds to it)
    assert wall >= 0.29 * 0.95 and stats.log_span_s == pytest.approx(0.58, abs=1e-6)
    clocks = [typestore().deserialize_cdr(r.data, r.msgtype).clock for r in got if r.topic == "/clock"]
    assert clocks, "no /clock message"
    first = clocks[0].sec * NS + clocks[0].nanosec
    assert T0 <= first <= T0 + NS


class _Sink:
    """A transport that keeps what is published (no network): for pacing checks."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, str]] = []

    def publisher(self, topic: str, msgtype: str, qos: object = None, block: bool = False) -> _Sink:
        return _SinkPub(self, topic)


class _SinkPub:
    def __init__(self, sink: _Sink, topic: str) -> None:
        self.sink, self.topic = sink, topic

    def publish(self, data: bytes) -> None:
        self.sink.sent.append((time.monotonic(), self.topic))

    def matched(self) -> int:
        return 1

    def close(self) -> None:
        pass


def test_a_clock_reset_in_the_recording_plays_on_at_once(tmp_path: Path) -> None:
    """0.2 s of IMU, then the recording clock goes back 10 s and 0.2 s more: played in about 0.4 s
    (not 10 s late, not all at once), in the written order, nothing counted behind."""
    rng = np.random.default_rng(0)
    msgs = []
    for base in (T0 + 10 * NS, T0):
        for i in range(10):
            s = base + i * 20_000_000
            imu = ImuSample(s, "imu", rng.normal(size=3), np.array([0.0, 0.0, 9.81]))
            msgs.append(SensorMessage(s, "IMU", "/imu/data", imu, log_time_ns=s + 1_000_000))
    with BagWriter(tmp_path / "bag") as w:
        for m in msgs:
            w.write(m)
    sink = _Sink()
    start = time.monotonic()
    stats = Player(tmp_path / "bag", sink, rate=1.0).run()  # type: ignore[arg-type]
    wall = time.monotonic() - start
    assert [r.stamp_ns for r in bag_records(tmp_path / "bag", order="record")] == [m.stamp_ns for m in msgs]
    assert len(sink.sent) == 20 and stats.behind == 0
    assert 0.36 * 0.95 <= wall < 3.0 and stats.log_span_s == pytest.approx(0.36, abs=1e-6)
    gap = sink.sent[10][0] - sink.sent[9][0]
    assert gap < 0.5  # the reset: the next record right away


def test_play_command_stops_on_sigterm(tmp_path: Path, endpoint: str) -> None:
    _write_bag(tmp_path / "bag")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "perception.cli", "play", str(tmp_path / "bag"), "--loop",
                             "--listen", endpoint], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for_line(proc.stderr, "bevfuse play: playing", TIMEOUT_S)
        time.sleep(1.0)  # a loop or two
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=TIMEOUT_S)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert took < 2.0, f"play took {took:.2f} s to stop"
    stats = json.loads(out)
    assert stats["stopped_by_signal"] and stats["published"]["/imu/data"] >= 30


def _write_ros1_bag(path: Path) -> None:
    """A ROS 1 bag of 5 IMU samples: no CDR bytes to forward, so play decodes and re-encodes."""
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS1_NOETIC)
    t = store.types
    with Writer(path) as w:
        conn = w.add_connection("/imu/data", "sensor_msgs/msg/Imu", typestore=store)
        for i in range(5):
            s = T0 + i * 10_000_000
            hdr = t["std_msgs/msg/Header"](seq=i, stamp=t["builtin_interfaces/msg/Time"](sec=s // NS, nanosec=s % NS), frame_id="imu")
            v = t["geometry_msgs/msg/Vector3"]
            msg = t["sensor_msgs/msg/Imu"](
                header=hdr, orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
                orientation_covariance=np.zeros(9), angular_velocity=v(x=0.01 * i, y=0.0, z=0.1),
                angular_velocity_covariance=np.zeros(9), linear_acceleration=v(x=0.0, y=0.0, z=9.81),
                linear_acceleration_covariance=np.zeros(9))
            w.write(conn, s, store.serialize_ros1(msg, "sensor_msgs/msg/Imu"))


def test_a_log_that_is_not_a_ros2_bag_goes_through_its_reader(tmp_path: Path) -> None:
    from perception.io.base import open_log
    from perception.io.ros_decode import decode_imu
    from perception.runtime.player import log_records

    _write_ros1_bag(tmp_path / "imu.bag")
    recs = list(log_records(tmp_path / "imu.bag"))
    with open_log(tmp_path / "imu.bag") as reader:
        expected = list(reader.messages())
    assert [(r.stamp_ns, r.topic, r.msgtype) for r in recs] == [(m.stamp_ns, "/imu/data", "sensor_msgs/msg/Imu") for m in expected]
    for r, m in zip(recs, expected):
        got = decode_imu(typestore().deserialize_cdr(r.data, r.msgtype), r.topic)
        np.testing.assert_array_equal(got.angular_velocity, m.payload.angular_velocity)
        np.testing.assert_array_equal(got.linear_acceleration, m.payload.linear_acceleration)
