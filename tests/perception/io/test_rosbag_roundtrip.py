"""BagWriter -> rosbag2 (MCAP and SQLite) -> RosbagReader: every payload type, both storages.

Bags are written to tmp_path and read back through ``open_log``; lossless encodings must come back
bit-exact, the lossy ones (JPEG, quaternions, radar_msgs' spherical float32) within stated bounds.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from perception.errors import ConfigError, InputFileError, TopicMappingError
from perception.io.bag_writer import RIG_KEY, BagWriter
from perception.io.base import GROUND_TRUTH, LogReader, detect_format, open_log
from perception.io.ros_encode import encode_pointcloud, serialize
from perception.io.rosbag import RosbagReader
from perception.io.rosmsg import make, typestore
from perception.types import CameraImage, EgoPose, RadarScan, SensorMessage
from tests.perception.io.rosbag_samples import T0, assert_payload_equal, lidar_cloud, sample_messages, sample_rig

STORAGES = ("mcap", "sqlite3")
PC2 = "sensor_msgs/msg/PointCloud2"


def write_bag(path: Path, storage: str, messages: list[SensorMessage], with_rig: bool = True) -> Path:
    rig = sample_rig()
    with BagWriter(path, storage=storage, rig=rig if with_rig else None, jpeg_quality=95) as bag:
        if with_rig:
            bag.write_rig(rig, T0 - 1)
        for m in messages:
            # Detections also go out as vision_msgs, on a second topic.
            bag.write(m)
            if m.topic == "/ground_truth/boxes":
                bag.write(SensorMessage(m.stamp_ns, "detections", "/detections", m.payload, m.log_time_ns),
                          msgtype="vision_msgs/msg/Detection3DArray")
    return path


@pytest.fixture(scope="module")
def messages() -> list[SensorMessage]:
    return sample_messages()


@pytest.fixture(scope="module", params=STORAGES)
def bag(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, messages: list[SensorMessage]) -> Path:
    return write_bag(tmp_path_factory.mktemp(request.param) / "drive", request.param, messages)


def _read_all(path: Path, **kw: object) -> tuple[RosbagReader, list[SensorMessage]]:
    reader = open_log(path, **kw)
    assert isinstance(reader, RosbagReader)
    return reader, list(reader.messages())


def test_round_trip_every_payload(bag: Path, messages: list[SensorMessage]) -> None:
    assert detect_format(bag) == "rosbag"
    reader, got = _read_all(bag)
    with reader:
        assert isinstance(reader, LogReader)
        assert reader.rig_source == "embedded"
        assert reader.skipped == Counter()
        suffixes = {p.suffix for p in bag.iterdir()}
        assert reader.format == ("rosbag2-mcap" if ".mcap" in suffixes else "rosbag2-sqlite3")
    by_key = {(m.sensor, m.stamp_ns): m for m in got}
    assert len(got) == len(messages) + 3  # + the three Detection3DArray copies
    for m in messages:
        r = by_key[(m.sensor, m.stamp_ns)]
        where = f"{m.sensor}@{m.stamp_ns}"
        assert (r.topic, r.log_time_ns) == (m.topic, m.log_time_ns), where
        if m.sensor == "CAM_BACK":  # CompressedImage JPEG q95: chroma subsampling blurs the disc's edge
            assert_payload_equal(m.payload, r.payload, atol={"image": 255}, where=where)
            err = m.payload.image.astype(np.float64) - r.payload.image
            assert np.abs(err).mean() < 3.0 and 10 * np.log10(255**2 / np.mean(err**2)) > 30.0  # PSNR dB
        elif m.sensor == "ODOM":  # a rotation matrix through a quaternion: exact to rounding
            assert_payload_equal(m.payload, r.payload, atol={"world_T_ego": 1e-15}, where=where)
        elif m.sensor == "RADAR_LEFT":  # radar_msgs/RadarScan: float32 range/azimuth/elevation, no velocities
            p = r.payload
            assert isinstance(p, RadarScan)
            np.testing.assert_allclose(p.points, m.payload.points, atol=1e-4)
            assert p.rcs.tobytes() == m.payload.rcs.tobytes()
            assert p.radial_velocity.tobytes() == m.payload.radial_velocity.tobytes()
            assert np.isnan(p.velocity).all() and np.isnan(p.velocity_comp).all()
        else:
            assert_payload_equal(m.payload, r.payload, where=where)
    # vision_msgs: class, score, box, yaw, track id survive; velocity and attributes do not exist there.
    gt = {m.stamp_ns: m.payload for m in messages if m.sensor == GROUND_TRUTH}
    for d in (m for m in got if m.sensor == "/detections"):
        want = gt[d.stamp_ns]
        assert d.payload.label.tolist() == want.label.tolist()
        assert d.payload.track_id.tolist() == want.track_id.tolist()
        np.testing.assert_array_equal(d.payload.center, want.center)
        np.testing.assert_allclose(np.cos(d.payload.yaw - want.yaw), 1.0, atol=1e-12)
        assert np.isnan(d.payload.velocity).all()


def test_messages_come_in_stamp_order_and_filter_by_sensor(bag: Path, messages: list[SensorMessage]) -> None:
    reader, got = _read_all(bag)
    stamps = [m.stamp_ns for m in got]
    assert stamps == sorted(stamps)
    # The writer recorded in log-time order, so stamp order is a real reordering here.
    assert [m.stamp_ns for m in messages] != sorted(m.stamp_ns for m in messages)
    with reader:
        lidar = list(reader.messages(["LIDAR_TOP", "IMU"]))
        assert {m.sensor for m in lidar} == {"LIDAR_TOP", "IMU"} and len(lidar) == 6
        with pytest.raises(TopicMappingError, match="NOPE"):
            list(reader.messages(["NOPE"]))


def test_streams_from_index(bag: Path, messages: list[SensorMessage]) -> None:
    with open_log(bag) as reader:
        streams = {s.topic: s for s in reader.streams()}
    assert streams["/tf_static"].count == 1 and streams["/tf_static"].stamp_source == "log_time"
    assert streams["/cam_front/camera_info"].msgtype == "sensor_msgs/msg/CameraInfo"
    lidar = streams["/lidar_top/points"]
    assert (lidar.sensor, lidar.count, lidar.stamp_source) == ("LIDAR_TOP", 3, "header")
    assert lidar.first_stamp_ns == T0 and lidar.last_stamp_ns == T0 + 200_000_000
    assert lidar.rate_hz == pytest.approx(10.0)
    assert streams["/ground_truth/boxes"].sensor == GROUND_TRUTH


def test_custom_types_readable_without_bevfuse(bag: Path) -> None:
    """A fresh AnyReader with no extra types reads the radar_msgs, vision_msgs and bevfuse_msgs types
    from the definitions stored in the bag."""
    seen: Counter[str] = Counter()
    assert "bevfuse_msgs/msg/Box3DArray" not in get_typestore(Stores.ROS2_HUMBLE).types
    with AnyReader([bag]) as reader:  # no default_typestore: types come from the bag or nowhere
        for conn, _, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            seen[conn.msgtype] += 1
            if conn.msgtype == "bevfuse_msgs/msg/Box3DArray":
                assert len(msg.boxes) == 6 and msg.boxes[1].track_id == "track-001"
            if conn.msgtype == "radar_msgs/msg/RadarScan":
                assert len(msg.returns) == 40 and msg.returns[0].range > 0
            if conn.msgtype == "vision_msgs/msg/Detection3DArray":
                assert msg.detections[0].results[0].hypothesis.score == 1.0
    assert seen["bevfuse_msgs/msg/Box3DArray"] == 3 and seen["radar_msgs/msg/RadarScan"] == 3
    assert seen["vision_msgs/msg/Detection3DArray"] == 3


def test_rig_rebuilt_from_tf_static_and_camera_info(bag: Path) -> None:
    original = sample_rig()
    with RosbagReader(bag, embedded_rig=False) as reader:
        assert reader.rig_source == "tf_static"
        rebuilt = {s.topic: s for s in reader.rig.sensors}
        assert reader.warnings == []
    assert set(rebuilt) == {s.topic for s in original.sensors}
    for want in original.sensors:
        got = rebuilt[want.topic]
        default = {"camera": "sensor_msgs/msg/CompressedImage", "lidar": PC2, "radar": PC2, "gnss": "sensor_msgs/msg/NavSatFix",
                   "imu": "sensor_msgs/msg/Imu", "odometry": "nav_msgs/msg/Odometry"}[want.modality.value]
        assert (got.modality, got.frame, got.msgtype) == (want.modality, want.frame, want.msgtype or default), want.name
        np.testing.assert_allclose(got.ego_T_sensor, want.ego_T_sensor, atol=1e-15)
        assert got.intrinsics == want.intrinsics
    assert rebuilt["/cam_back/image_raw/compressed"].name == "cam_back_image_raw"


def test_given_rig_maps_topics_and_absent_topic_is_an_error(bag: Path) -> None:
    rig = sample_rig()
    # A rig sensor without a topic finds the one topic of its modality.
    rig = rig.with_sensor(type(rig["GNSS"])("MY_GNSS", rig["GNSS"].modality, "gnss"))
    rig = type(rig)(tuple(s for s in rig.sensors if s.name != "GNSS"), "r", "<test>")
    with open_log(bag, rig=rig) as reader:
        assert reader.rig_source == "given"
        assert {m.sensor for m in reader.messages(["MY_GNSS"])} == {"MY_GNSS"}
    bad = rig.with_sensor(type(rig["IMU"])("IMU", rig["IMU"].modality, "imu", "/imu/missing"))
    with pytest.raises(TopicMappingError) as exc:
        open_log(bag, rig=bad)
    text = str(exc.value)
    assert "/imu/missing" in text and "/lidar_top/points (sensor_msgs/msg/PointCloud2)" in text and str(bag) in text


def test_sensor_time_offset_is_applied(bag: Path) -> None:
    rig = sample_rig()
    imu = rig["IMU"]
    shifted = rig.with_sensor(type(imu)(imu.name, imu.modality, imu.frame, imu.topic, imu.rate_hz, imu.ego_T_sensor, -500))
    with open_log(bag, rig=shifted) as reader:
        got = list(reader.messages(["IMU"]))
    assert [m.stamp_ns for m in got] == [T0 + k * 100_000_000 + 8_000 - 500 for k in range(3)]
    assert all(m.payload.stamp_ns == m.stamp_ns for m in got)


@pytest.mark.parametrize("storage", STORAGES)
def test_writer_is_deterministic(tmp_path: Path, storage: str) -> None:
    msgs = sample_messages(seed=3, frames=2)

    def digest(path: Path) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}

    # Same bag name in two places: the storage file and the metadata name the bag directory.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = digest(write_bag(tmp_path / "a" / "drive", storage, msgs))
    b = digest(write_bag(tmp_path / "b" / "drive", storage, msgs))
    assert a == b and len(a) == 2
    meta = (tmp_path / "a" / "drive" / "metadata.yaml").read_text()
    assert RIG_KEY in meta and "version: 9" in meta


def test_writer_refuses_bad_use(tmp_path: Path) -> None:
    (tmp_path / "exists").mkdir()
    with pytest.raises(InputFileError, match="exists already"):
        BagWriter(tmp_path / "exists")
    with pytest.raises(InputFileError, match="does not exist"):
        BagWriter(tmp_path / "no" / "such" / "bag")
    msg = sample_messages(frames=1)
    with BagWriter(tmp_path / "bag", rig=sample_rig()) as bag:
        cam = next(m for m in msg if isinstance(m.payload, CameraImage))
        with pytest.raises(ConfigError, match="CameraImage is written as one of"):
            bag.write(cam, msgtype="sensor_msgs/msg/NavSatFix")
        odom = next(m for m in msg if isinstance(m.payload, EgoPose))
        bag.write(odom)
        with pytest.raises(ConfigError, match="already carries nav_msgs/msg/Odometry"):
            bag.write(SensorMessage(odom.stamp_ns, "x", "/odom", msg[0].payload))


def test_undecodable_message_is_skipped_and_counted(tmp_path: Path) -> None:
    """A PointCloud2 whose point_step disagrees with its fields is skipped with its reason; the
    messages around it still come out."""
    path = tmp_path / "bad"
    store = typestore()
    good = encode_pointcloud(lidar_cloud(T0, np.random.default_rng(1), n=10))
    bad = encode_pointcloud(lidar_cloud(T0 + 1, np.random.default_rng(2), n=10))
    bad.point_step = 16  # its fields need 24 bytes: x y z intensity ring float32 + time_offset_ns int32
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conn = w.add_connection("/points", "sensor_msgs/msg/PointCloud2", typestore=store)
        w.write(conn, T0, serialize(good, "sensor_msgs/msg/PointCloud2"))
        w.write(conn, T0 + 1, serialize(bad, "sensor_msgs/msg/PointCloud2"))
        good.header.stamp = make("builtin_interfaces/msg/Time", sec=good.header.stamp.sec + 1, nanosec=0)
        w.write(conn, T0 + 2, serialize(good, "sensor_msgs/msg/PointCloud2"))
    with open_log(path) as reader:
        got = list(reader.messages())
        assert len(got) == 2
        (reason, count), = reader.skipped.items()
    assert count == 1
    assert "/points" in reason and "point_step is 16" in reason


def test_images_decoded_ahead_come_out_in_order_and_a_bad_jpeg_is_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Compressed images decode on worker threads a few records ahead: the messages, their order
    and the skip counter are those of decoding one record at a time, with a truncated JPEG among
    the images and points between them."""
    import cv2

    import perception.io.rosbag as rosbag_mod

    path = tmp_path / "cams"
    store = typestore()
    rng = np.random.default_rng(3)
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        cams = [w.add_connection(f"/cam{k}/image/compressed", "sensor_msgs/msg/CompressedImage", typestore=store) for k in range(3)]
        pts = w.add_connection("/points", PC2, typestore=store)
        for i in range(12):
            stamp = T0 + i * 10_000_000
            for k, conn in enumerate(cams):
                img = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
                data = np.frombuffer(cv2.imencode(".jpg", img)[1].tobytes(), np.uint8)
                if i == 5 and k == 1:
                    data = data[: len(data) // 3]  # truncated
                sec, nsec = divmod(stamp + k, 1_000_000_000)
                msg = make("sensor_msgs/msg/CompressedImage",
                           header=make("std_msgs/msg/Header", stamp=make("builtin_interfaces/msg/Time", sec=sec, nanosec=nsec),
                                       frame_id=f"cam{k}"), format="jpeg", data=data)
                w.write(conn, stamp + k, serialize(msg, "sensor_msgs/msg/CompressedImage"))
            w.write(pts, stamp + 5, serialize(encode_pointcloud(lidar_cloud(stamp + 5, rng, n=20)), PC2))

    def read() -> tuple[list[tuple[int, str]], list[np.ndarray], dict[str, int]]:
        with open_log(path) as reader:
            got = list(reader.messages())
            return [(m.stamp_ns, m.topic) for m in got], [m.payload.image for m in got if m.topic.startswith("/cam")], \
                dict(reader.skipped)

    order, images, skipped = read()
    monkeypatch.setattr(rosbag_mod, "IMAGE_DECODE_THREADS", 1)
    monkeypatch.setattr(rosbag_mod, "DECODE_AHEAD", 0)
    want_order, want_images, want_skipped = read()
    assert order == want_order and len(order) == 12 * 4 - 1
    assert order == sorted(order)
    assert all(np.array_equal(a, b) for a, b in zip(images, want_images))
    assert skipped == want_skipped and sum(skipped.values()) == 1 and "/cam1" in next(iter(skipped))


def test_raw_records_decode_to_the_messages(bag: Path) -> None:
    """raw_records() + decode_record() (what bevfuse bench times) give messages(), in its order."""
    with open_log(bag) as reader:
        want = list(reader.messages())
        records = list(reader.raw_records())
        got = [reader.decode_record(r) for r in records]
    assert all(r.size == len(r.data[2]) > 0 for r in records)
    assert [(m.stamp_ns, m.sensor, m.topic) for m in got] == [(m.stamp_ns, m.sensor, m.topic) for m in want]
    for a, b in zip(got, want):
        assert_payload_equal(a.payload, b.payload)
