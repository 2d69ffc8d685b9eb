"""The ROS 2 transport (rclpy), checked against ROS 2 itself wherever rclpy imports (``make test``
installs ROS 2 Kilted's pip wheels: rclpy, Fast DDS, the common message packages); skipped
elsewhere with the reason.

What ROS 2's own code checks here: its generated typesupport (Fast CDR) reads every message type
bevfuse writes and bevfuse reads what it writes; its generated type hashes (``share/<pkg>/msg/*.json``)
equal the RIHS01 hashes bevfuse puts in rmw_zenoh keys; two rclpy nodes exchange bevfuse's bytes.
Every participant uses its own ROS domain and discovery on this machine only
(``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, which the transport sets unless the user did).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from perception.io.ros_encode import encode, serialize
from perception.io.rosmsg import make, typestore
from perception.runtime.errors import MessageTypeMissing, TransportUnavailable
from perception.runtime.outputs import NodeState, NodeStatus, SensorStatus
from perception.runtime.rmw_zenoh import type_hash
from perception.runtime.ros2_transport import Ros2Transport, message_class, rclpy_available
from perception.runtime.transport import Received, open_transport
from perception.types import CameraImage, Detections, GnssFix, ImuSample, PointCloud

from .conftest import wait_until

RCLPY, WHY = rclpy_available()
needs_rclpy = pytest.mark.skipif(not RCLPY, reason=WHY)
NS = 1_000_000_000


def _domain() -> int:
    """A ROS domain of this test process's own (0-101 are valid for Fast DDS's default ports)."""
    return 1 + os.getpid() % 100


def _installed(pkg: str) -> bool:
    try:
        __import__(f"{pkg}.msg")
    except ImportError:
        return False
    return True


@pytest.mark.skipif(RCLPY, reason="rclpy is importable here: shown in a child without ROS 2's library path instead")
def test_without_rclpy_the_error_says_why() -> None:
    with pytest.raises(TransportUnavailable, match="rclpy is not importable"):
        Ros2Transport()
    with pytest.raises(TransportUnavailable, match="setup.bash"):
        open_transport("ros2")


@pytest.mark.skipif(not os.environ.get("_ROS_WHEELS_BOOTSTRAP_COMPLETE"), reason="ROS 2 does not come from its pip wheels here")
def test_without_the_ros_library_path_the_error_says_why() -> None:
    # The pip wheels' libraries are found through LD_LIBRARY_PATH, which their bootstrap sets by
    # re-executing Python; a child that skips it is a Python where rclpy cannot load.
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    code = ("from perception.runtime.transport import open_transport\n"
            "try:\n    open_transport('ros2')\nexcept Exception as e:\n    print(type(e).__name__, e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("TransportUnavailable rclpy is not importable here"), out.stdout
    assert "setup.bash" in out.stdout and "bevfuse[ros2]" in out.stdout


@needs_rclpy
def test_a_missing_message_package_is_named_with_how_to_install_it() -> None:
    if _installed("vision_msgs"):
        pytest.skip("vision_msgs is installed here")
    with pytest.raises(MessageTypeMissing, match=r"vision_msgs/msg/Detection3DArray.*apt install ros-\$ROS_DISTRO-vision-msgs") as err:
        message_class("vision_msgs/msg/Detection3DArray")
    assert err.value.msgtype == "vision_msgs/msg/Detection3DArray"
    with pytest.raises(MessageTypeMissing, match="perception/io/msg"):
        message_class("bevfuse_msgs/msg/Box3DArray")


def _sample_payloads() -> dict[str, bytes]:
    """One message of each type bevfuse writes on ROS topics (sensor inputs as the player sends
    them, the node's outputs), as bevfuse serializes it."""
    from perception.replay.bag_sink import box_markers_cdr
    from perception.runtime.ros_io import diagnostic_array

    rng = np.random.default_rng(4)
    stamp = 1_700_000_000 * NS + 123_456_789
    cloud = PointCloud(stamp, "lidar_top", np.concatenate([rng.normal(size=(50, 3)), rng.uniform(0, 255, (50, 1))], axis=1).astype(np.float32),
                       time_offset_ns=rng.integers(-50_000_000, 0, 50).astype(np.int64))
    image = CameraImage(stamp, "CAM_FRONT", "cam_front", rng.integers(0, 255, (9, 16, 3), dtype=np.uint8))
    fix = GnssFix(stamp, "gnss", 42.33, -71.05, 12.5, np.diag([0.5, 0.5, 2.0]))
    imu = ImuSample(stamp, "imu", np.array([0.01, 0.0, -0.02]), np.array([0.1, -0.2, 9.8]), np.array([1.0, 0.0, 0.0, 0.0]))
    det = Detections(stamp_ns=stamp, frame_id="ego", class_names=("car", "pedestrian"),
                     center=np.array([[10.0, 2.0, 0.8], [5.0, -3.0, 0.9]]), size=np.array([[4.5, 1.9, 1.6], [0.7, 0.7, 1.8]]),
                     yaw=np.array([0.3, -1.2]), velocity=np.array([[3.0, 0.1], [0.0, 1.2]]),
                     score=np.array([0.9, 0.55], np.float32), label=np.array([0, 1]))
    status = NodeStatus(stamp_ns=stamp, state=NodeState.DEGRADED, silent=("CAM_FRONT",),
                        sensors=(SensorStatus("LIDAR_TOP", 20.0, 0.01, 100, 0, 0.3, False), SensorStatus("CAM_FRONT", 0.0, 2.5, 30, 2, 0.4, True)),
                        frames_in=10, frames_done=8, frames_dropped=2, queue_depth=1, queue_bound=1, malformed=2,
                        processing_ms_p50=80.0, processing_ms_max=95.0, latency_ms_p50=120.0, latency_ms_p99=150.0,
                        latency_ms_max=151.0, extra={"sync_dropped.CAM_FRONT": "3"})
    out: dict[str, bytes] = {}
    for payload in (cloud, fix, imu):
        rostype, obj = encode(payload)
        out[rostype] = serialize(obj, rostype)
    for msgtype in ("sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/Image"):
        rostype, obj = encode(image, msgtype)
        out[rostype] = serialize(obj, rostype)
    out["visualization_msgs/msg/MarkerArray"] = box_markers_cdr(det, ns="detections")
    out["diagnostic_msgs/msg/DiagnosticArray"] = serialize(diagnostic_array(status), "diagnostic_msgs/msg/DiagnosticArray")
    out["std_msgs/msg/Float64"] = serialize(make("std_msgs/msg/Float64", data=95.0), "std_msgs/msg/Float64")
    clock = make("rosgraph_msgs/msg/Clock", clock=make("builtin_interfaces/msg/Time", sec=1_700_000_000, nanosec=5))
    out["rosgraph_msgs/msg/Clock"] = serialize(clock, "rosgraph_msgs/msg/Clock")
    return out


def _normalised(data: bytes, msgtype: str) -> bytes:
    # Fast CDR leaves its alignment padding as it finds the buffer, rosbags writes zeros: compare
    # the bytes after a pass through bevfuse's reader and writer, which zeroes the padding.
    return typestore().serialize_cdr(typestore().deserialize_cdr(data, msgtype), msgtype)


@needs_rclpy
def test_ros2_reads_what_bevfuse_writes_and_writes_it_back() -> None:
    from rclpy.serialization import deserialize_message, serialize_message

    samples = _sample_payloads()
    assert len(samples) == 9
    for msgtype, data in samples.items():
        native = deserialize_message(data, message_class(msgtype))  # ROS 2's generated Fast CDR typesupport
        again = bytes(serialize_message(native))
        assert len(again) == len(data), msgtype
        assert _normalised(again, msgtype) == data, f"{msgtype}: ROS 2 wrote back other content"

    # spot checks of the native objects' fields (the typesupport read them where bevfuse wrote them)
    cloud = deserialize_message(samples["sensor_msgs/msg/PointCloud2"], message_class("sensor_msgs/msg/PointCloud2"))
    assert (cloud.width * cloud.height, cloud.header.frame_id, cloud.header.stamp.nanosec) == (50, "lidar_top", 123_456_789)
    assert [f.name for f in cloud.fields][:3] == ["x", "y", "z"]
    diag = deserialize_message(samples["diagnostic_msgs/msg/DiagnosticArray"], message_class("diagnostic_msgs/msg/DiagnosticArray"))
    assert [s.name for s in diag.status] == ["bevfuse: node", "bevfuse: sensor LIDAR_TOP", "bevfuse: sensor CAM_FRONT"]
    assert diag.status[0].level == diag.status[0].WARN
    assert {kv.key: kv.value for kv in diag.status[0].values}["silent"] == "CAM_FRONT"
    markers = deserialize_message(samples["visualization_msgs/msg/MarkerArray"], message_class("visualization_msgs/msg/MarkerArray"))
    assert markers.markers[0].action == markers.markers[0].DELETEALL
    assert len(markers.markers) == 1 + 2 * 2  # DELETEALL, then per box its edges and its label


@needs_rclpy
def test_bevfuse_decodes_messages_ros2_built() -> None:
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Imu, NavSatFix, PointCloud2, PointField

    from perception.io.ros_decode import decode

    xyz = np.array([[1.0, 2.0, 3.0], [-4.0, 5.5, 0.25]], np.float32)
    pc = PointCloud2()
    pc.header.stamp.sec, pc.header.stamp.nanosec, pc.header.frame_id = 1_700_000_001, 250_000_000, "lidar_top"
    pc.height, pc.width, pc.point_step, pc.row_step, pc.is_dense = 1, 2, 16, 32, True
    pc.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate(("x", "y", "z", "intensity"))]
    pc.data = np.concatenate([xyz, np.array([[7.0], [9.0]], np.float32)], axis=1).tobytes()
    msgtype = "sensor_msgs/msg/PointCloud2"
    cloud = decode(typestore().deserialize_cdr(bytes(serialize_message(pc)), msgtype), msgtype, sensor="LIDAR_TOP")
    assert isinstance(cloud, PointCloud)
    assert cloud.stamp_ns == 1_700_000_001 * NS + 250_000_000
    assert cloud.fields[:4] == ("x", "y", "z", "intensity")
    np.testing.assert_array_equal(cloud.points[:, :3], xyz)
    np.testing.assert_array_equal(cloud.points[:, 3], [7.0, 9.0])

    fix = NavSatFix(latitude=48.1, longitude=11.5, altitude=520.0)
    fix.header.stamp.sec = 1_700_000_002
    fix.position_covariance = [1.0, 0, 0, 0, 2.0, 0, 0, 0, 3.0]
    got = decode(typestore().deserialize_cdr(bytes(serialize_message(fix)), "sensor_msgs/msg/NavSatFix"), "sensor_msgs/msg/NavSatFix")
    assert isinstance(got, GnssFix)
    assert (got.stamp_ns, got.latitude_deg, got.longitude_deg, got.altitude_m) == (1_700_000_002 * NS, 48.1, 11.5, 520.0)

    imu = Imu()
    imu.header.stamp.sec = 1_700_000_003
    imu.linear_acceleration.z, imu.angular_velocity.x, imu.orientation.w = 9.81, 0.5, 1.0
    got = decode(typestore().deserialize_cdr(bytes(serialize_message(imu)), "sensor_msgs/msg/Imu"), "sensor_msgs/msg/Imu")
    assert isinstance(got, ImuSample)
    assert got.stamp_ns == 1_700_000_003 * NS
    np.testing.assert_allclose(got.linear_acceleration, [0.0, 0.0, 9.81])
    np.testing.assert_allclose(got.angular_velocity, [0.5, 0.0, 0.0])


# The types bevfuse puts on ROS topics or subscribes to (rmw_zenoh keys carry their hashes).
SPOKEN_TYPES = ("sensor_msgs/msg/PointCloud2", "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/Image",
                "sensor_msgs/msg/CameraInfo", "sensor_msgs/msg/NavSatFix", "sensor_msgs/msg/Imu", "nav_msgs/msg/Odometry",
                "visualization_msgs/msg/MarkerArray", "diagnostic_msgs/msg/DiagnosticArray", "std_msgs/msg/Float64",
                "rosgraph_msgs/msg/Clock", "geometry_msgs/msg/TransformStamped", "std_msgs/msg/String")


def _ros_type_hash(msgtype: str) -> str | None:
    """RIHS01 as ROS 2's rosidl generator wrote it (share/<pkg>/msg/<Name>.json), if installed."""
    pkg, _, name = msgtype.split("/")
    prefixes = [Path(sys.prefix), *(Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p)]
    for prefix in prefixes:
        f = prefix / "share" / pkg / "msg" / f"{name}.json"
        if f.is_file():
            first = json.loads(f.read_text())["type_hashes"][0]
            assert first["type_name"] == msgtype
            return str(first["hash_string"])
    return None


@needs_rclpy
def test_rmw_zenoh_type_hashes_equal_ros2_generated_ones() -> None:
    found = {t: _ros_type_hash(t) for t in SPOKEN_TYPES}
    missing = [t for t, h in found.items() if h is None]
    assert not missing, f"no generated type description for {missing} in {sys.prefix} or AMENT_PREFIX_PATH"
    differ = {t: (type_hash(t), h) for t, h in found.items() if type_hash(t) != h}
    assert not differ, differ


def _roundtrip(msgtype: str, data: bytes) -> list[Received]:
    a = Ros2Transport(node="bevfuse_test_listener", domain_id=_domain())
    b = Ros2Transport(node="bevfuse_test_talker", domain_id=_domain())
    got: list[Received] = []
    try:
        a.subscribe("/bevfuse/test", msgtype, got.append)
        pub = b.publisher("/bevfuse/test", msgtype)
        assert wait_until(pub.matched, 15.0), "the subscription was never matched"
        end = time.monotonic() + 15.0
        while not got and time.monotonic() < end:
            pub.publish(data)
            time.sleep(0.1)
    finally:
        b.close()
        a.close()
    return got


@needs_rclpy
def test_bytes_cross_rclpy_unchanged() -> None:
    msgtype = "sensor_msgs/msg/PointCloud2"
    data = _sample_payloads()[msgtype]
    got = _roundtrip(msgtype, data)
    assert got, "nothing received"
    assert (got[0].topic, got[0].msgtype) == ("/bevfuse/test", msgtype)
    assert _normalised(got[0].data, msgtype) == data


@needs_rclpy
def test_discovery_stays_on_this_machine_unless_the_user_widens_it() -> None:
    code = ("import os\nfrom perception.runtime.ros2_transport import Ros2Transport\n"
            f"t = Ros2Transport(node='bevfuse_test_range', domain_id={_domain()})\n"
            "print(os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'])\nt.close()\n")
    base = {k: v for k, v in os.environ.items() if k not in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOCALHOST_ONLY", "ROS_DISTRO")}
    for preset, expected in ((None, "LOCALHOST"), ("SUBNET", "SUBNET")):
        env = base if preset is None else {**base, "ROS_AUTOMATIC_DISCOVERY_RANGE": preset}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == expected


def test_humble_is_kept_local_through_its_own_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from perception.runtime.ros2_transport import _keep_discovery_local

    for name in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOCALHOST_ONLY"):
        monkeypatch.setenv(name, "x")  # so that teardown restores each as it was, set by the code or not
        monkeypatch.delenv(name)
    monkeypatch.setenv("ROS_DISTRO", "humble")
    _keep_discovery_local()
    assert os.environ.get("ROS_LOCALHOST_ONLY") == "1" and "ROS_AUTOMATIC_DISCOVERY_RANGE" not in os.environ
    del os.environ["ROS_LOCALHOST_ONLY"]
    monkeypatch.setenv("ROS_DISTRO", "kilted")
    _keep_discovery_local()
    assert os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") == "LOCALHOST" and "ROS_LOCALHOST_ONLY" not in os.environ


@needs_rclpy
def test_node_outputs_leave_out_types_ros2_lacks_and_say_so() -> None:
    from diagnostic_msgs.msg import DiagnosticArray

    from perception.runtime.ros_io import RosOutputs

    t = Ros2Transport(node="bevfuse_test_outputs", domain_id=_domain())
    listener = Ros2Transport(node="bevfuse_test_outputs_listener", domain_id=_domain())
    got: list[Received] = []
    try:
        outputs = RosOutputs(t, node="bevfuse")
        lacking = {topic for topic, msgtype in (("/bevfuse/detections", "vision_msgs"), ("/bevfuse/boxes", "bevfuse_msgs"))
                   if not _installed(msgtype)}
        assert set(outputs.unavailable) == lacking
        assert outputs.markers is not None and outputs.diagnostics is not None
        listener.subscribe("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", got.append)
        status = NodeStatus(stamp_ns=5 * NS, state=NodeState.RUNNING, silent=(), sensors=(), frames_in=1, frames_done=1,
                            frames_dropped=0, queue_depth=0, queue_bound=1, malformed=0, processing_ms_p50=1.0,
                            processing_ms_max=1.0, latency_ms_p50=2.0, latency_ms_p99=2.0, latency_ms_max=2.0)
        assert wait_until(outputs.diagnostics.matched, 15.0)
        end = time.monotonic() + 15.0
        while not got and time.monotonic() < end:
            outputs.publish_status(status)
            time.sleep(0.1)
        outputs.close()
    finally:
        listener.close()
        t.close()
    assert got
    from rclpy.serialization import deserialize_message

    msg: Any = deserialize_message(got[0].data, DiagnosticArray)
    values = {kv.key: kv.value for kv in msg.status[0].values}
    assert values.get("outputs_unavailable", "") == ",".join(sorted(lacking))
