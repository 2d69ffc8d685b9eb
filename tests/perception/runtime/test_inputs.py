"""The node's inputs: a bag played over Zenoh decodes to the reader's own messages; a malformed
message is counted and skipped."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from calib.rig import Rig, SensorSpec
from perception.io.base import open_log
from perception.runtime.player import Player
from perception.runtime.ros_io import SensorInputs
from perception.runtime.zenoh_transport import ZenohTransport
from perception.types import Modality, SensorMessage

from .conftest import wait_until
from .test_play import _write_bag

TIMEOUT_S = 20.0
RIG = Rig((SensorSpec("LIDAR_TOP", Modality.LIDAR, "lidar", "/lidar_top/points", 10.0),
           SensorSpec("IMU", Modality.IMU, "imu", "/imu/data", 50.0)))


class Collector:
    """Where SensorInputs delivers: the two calls of NodeCore it uses, recorded."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[SensorMessage] = []
        self.malformed: list[tuple[str, str]] = []

    def on_message(self, msg: SensorMessage) -> None:
        with self.lock:
            self.messages.append(msg)

    def on_malformed(self, sensor: str, reason: str) -> None:
        with self.lock:
            self.malformed.append((sensor, reason))



def test_live_messages_equal_the_readers(tmp_path: Path, endpoint: str) -> None:
    _write_bag(tmp_path / "bag")
    with open_log(tmp_path / "bag", rig=RIG) as reader:
        expected = list(reader.messages(order="record"))  # the player plays a bag as recorded
    node_side = ZenohTransport(connect=(), listen=(endpoint,), node="node")
    play_side = ZenohTransport(connect=(endpoint,), node="player")
    sink = Collector()
    inputs = SensorInputs(node_side, RIG, sink)
    try:
        inputs.start()
        player = Player(tmp_path / "bag", play_side, rate=4.0)
        assert player.declare(TIMEOUT_S)
        player.run()
        assert wait_until(lambda: len(sink.messages) == len(expected), TIMEOUT_S)
        # garbage on the LiDAR topic: counted against the sensor, never raised
        bad = play_side.publisher("/lidar_top/points", "sensor_msgs/msg/PointCloud2")
        bad.publish(b"\x00\x01\x00\x00garbage")
        assert wait_until(lambda: len(sink.malformed) == 1, TIMEOUT_S)
        player.close()
    finally:
        inputs.close()
        play_side.close()
        node_side.close()
    assert [(m.sensor, m.topic, m.stamp_ns) for m in sink.messages] == [(m.sensor, m.topic, m.stamp_ns) for m in expected]
    for got, ref in zip(sink.messages, expected):
        assert type(got.payload) is type(ref.payload)
        if hasattr(ref.payload, "points"):
            np.testing.assert_array_equal(got.payload.points, ref.payload.points)
            assert got.payload.fields == ref.payload.fields
        else:
            np.testing.assert_array_equal(got.payload.angular_velocity, ref.payload.angular_velocity)
    sensor, reason = sink.malformed[0]
    assert sensor == "LIDAR_TOP" and "/lidar_top/points" in reason and "PointCloud2" in reason


def test_samples_that_waited_too_long_are_dropped_undecoded() -> None:
    """Under overload the decode thread falls behind: a sample older than max_age_s is counted in
    receive_stale and never decoded (garbage that was decoded would be counted malformed)."""
    from perception.runtime.transport import Received

    sink = Collector()
    inputs = SensorInputs(None, RIG, sink, max_age_s=0.3)  # type: ignore[arg-type] - no transport: samples put by hand
    now = time.time_ns()
    inputs._received.put(Received("/lidar_top/points", "sensor_msgs/msg/PointCloud2", b"garbage", now - 1_000_000_000))
    inputs._received.put(Received("/imu/data", "sensor_msgs/msg/Imu", b"garbage", now))
    worker = threading.Thread(target=inputs._decode_loop, daemon=True)
    worker.start()
    try:
        assert wait_until(lambda: len(sink.malformed) == 1 and inputs.receive_stale == 1, TIMEOUT_S)
    finally:
        inputs._stop.set()
        worker.join(timeout=2.0)
    assert sink.malformed[0][0] == "IMU" and not sink.messages
