"""The ROS 2 transport (rclpy): exercised wherever rclpy imports, skipped elsewhere with the reason."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from perception.io.ros_encode import encode_detection3d_array, serialize
from perception.runtime.errors import TransportUnavailable
from perception.runtime.ros2_transport import Ros2Transport, rclpy_available
from perception.runtime.transport import Received, open_transport
from perception.types import Detections

RCLPY, WHY = rclpy_available()
needs_rclpy = pytest.mark.skipif(not RCLPY, reason=WHY)


@pytest.mark.skipif(RCLPY, reason="rclpy is importable here: the unavailable path cannot be shown")
def test_without_rclpy_the_error_says_why() -> None:
    with pytest.raises(TransportUnavailable, match="rclpy is not importable"):
        Ros2Transport()
    with pytest.raises(TransportUnavailable, match="setup.bash"):
        open_transport("ros2")


@needs_rclpy
def test_detections_roundtrip_over_rclpy() -> None:
    domain = 100 + os.getpid() % 100  # a domain of its own: other tests on this machine stay apart
    a = Ros2Transport(node="bevfuse_test_listener", domain_id=domain)
    b = Ros2Transport(node="bevfuse_test_talker", domain_id=domain)
    got: list[Received] = []
    try:
        msgtype = "vision_msgs/msg/Detection3DArray"
        a.subscribe("/bevfuse/detections", msgtype, got.append)
        pub = b.publisher("/bevfuse/detections", msgtype)
        det = Detections(stamp_ns=5_000_000_000, frame_id="ego", class_names=("car",), center=np.array([[1.0, 2.0, 0.5]]),
                         size=np.array([[4.0, 2.0, 1.5]]), yaw=np.array([0.1]), velocity=np.zeros((1, 2)),
                         score=np.array([0.9], np.float32), label=np.array([0]))
        data = serialize(encode_detection3d_array(det), msgtype)
        end = time.monotonic() + 15.0
        while not got and time.monotonic() < end:
            pub.publish(data)
            time.sleep(0.1)
    finally:
        b.close()
        a.close()
    assert got and got[0].data == data
