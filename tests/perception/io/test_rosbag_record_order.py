"""RosbagReader in record order: ``messages(order="record")`` and ``raw_records(order="record")``.

Every storage gets a bag whose records are in neither stamp order nor log-time order (the order
of rosbags' ``AnyReader``): IMU recorded 1 ms after its stamp, a GNSS fix recorded 60 ms late, a
large LiDAR sweep (an MCAP chunk ends after it; a ROS 1 chunk every few records), then the
recording clock goes back 55 ms, stamps and log times alike. Record order must give the written
order, stamp order the sorted one, both the same messages; an unknown order is a ConfigError.

Storages: rosbag2 MCAP and SQLite (``BagWriter``; rosbags' ``Writer`` with message, file and
storage compression), ROS 1 (uncompressed, bz2 and lz4 chunks), and the real ROS 1 bag against
its own index.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag1 import Reader as Reader1
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode
from rosbags.typesys import Stores, get_typestore

from perception.errors import ConfigError
from perception.io.bag_writer import BagWriter
from perception.io.base import open_log
from perception.io.ros_encode import encode, serialize
from perception.io.rosbag import RosbagReader
from perception.io.rosmsg import make, typestore
from perception.sync.replay import offers_record_order
from perception.types import GnssFix, ImuSample, PointCloud, SensorMessage
from tests.perception.io.rosbag_samples import T0, assert_payload_equal

MS = 1_000_000
IMU, GNSS, LIDAR = "/imu/data", "/gnss/fix", "/lidar_top/points"
LIDAR_POINTS = 70_000  # 1.1 MB: rosbags' MCAP writer closes a chunk after 1 MiB


def recording() -> list[SensorMessage]:
    """The messages in the order they are written (see the module docstring); stamps all distinct."""
    rng = np.random.default_rng(0)

    def imu(stamp: int) -> SensorMessage:
        sample = ImuSample(stamp, "imu", rng.normal(size=3), np.array([0.0, 0.0, 9.81]) + rng.normal(size=3))
        return SensorMessage(stamp, "imu", IMU, sample, log_time_ns=stamp + 1 * MS)

    out = []
    for i in range(8):  # 0 .. 70 ms
        out.append(imu(T0 + i * 10 * MS))
        if i == 6:  # stamped at 5 ms, recorded at 65 ms
            out.append(SensorMessage(T0 + 5 * MS, "gnss", GNSS, GnssFix(T0 + 5 * MS, "gnss", 42.37, -71.14, 7.5),
                                     log_time_ns=T0 + 65 * MS))
    points = np.tile(rng.normal(0.0, 20.0, (100, 4)), (LIDAR_POINTS // 100, 1)).astype(np.float32)  # compresses fast
    cloud = PointCloud(T0 + 75 * MS, "lidar", points)
    out.append(SensorMessage(cloud.stamp_ns, "lidar", LIDAR, cloud, log_time_ns=T0 + 78 * MS))
    for i in range(6):  # the clock went back: 23 .. 73 ms, recorded at 24 .. 74 ms
        out.append(imu(T0 + 23 * MS + i * 10 * MS))
    return out


def _keys(messages: list[SensorMessage]) -> list[tuple[str, int, int | None]]:
    return [(m.topic, m.stamp_ns, m.log_time_ns) for m in messages]


# -- writers: one per storage ------------------------------------------------------------------------


def write_bagwriter(path: Path, storage: str) -> None:
    with BagWriter(path, storage=storage) as bag:  # type: ignore[arg-type]
        for m in recording():
            bag.write(m)


def write_rosbags2(path: Path, storage: StoragePlugin, mode: CompressionMode) -> None:
    """rosbags' own writer, for the compression modes BagWriter does not use."""
    writer = Writer(path, version=9, storage_plugin=storage)
    writer.set_compression(mode, CompressionFormat.ZSTD)
    with writer:
        conns = {}
        for m in recording():
            rostype, msg = encode(m.payload)
            if m.topic not in conns:
                conns[m.topic] = writer.add_connection(m.topic, rostype, typestore=typestore())
            writer.write(conns[m.topic], int(m.log_time_ns or 0), serialize(msg, rostype))


def write_ros1(path: Path, compression: Writer1.CompressionFormat | None) -> None:
    """A ROS 1 bag with the ROS 1 message layout (Header with seq), a chunk every ~4 kB."""
    noetic = get_typestore(Stores.ROS1_NOETIC)
    writer = Writer1(path)
    if compression is not None:
        writer.set_compression(compression)
    writer.chunk_threshold = 4096
    with writer:
        conns = {}
        for m in recording():
            rostype, msg = encode(m.payload)
            h = msg.header
            header = noetic.types["std_msgs/msg/Header"](
                seq=0, stamp=noetic.types["builtin_interfaces/msg/Time"](sec=h.stamp.sec, nanosec=h.stamp.nanosec), frame_id=h.frame_id)
            fields = {f.name: getattr(msg, f.name) for f in dataclasses.fields(msg) if f.name != "header"}
            if m.topic not in conns:
                conns[m.topic] = writer.add_connection(m.topic, rostype, typestore=noetic)
            writer.write(conns[m.topic], int(m.log_time_ns or 0),
                         noetic.serialize_ros1(noetic.types[rostype](header=header, **fields), rostype))
    with Reader1(path) as written:
        assert len(written.chunk_infos) > 2  # record order crosses chunks


BAGS: dict[str, tuple[str, Callable[[Path], None]]] = {
    # id: (file name, writer)
    "mcap": ("bag", lambda p: write_bagwriter(p, "mcap")),
    "sqlite3": ("bag", lambda p: write_bagwriter(p, "sqlite3")),
    "mcap-message-zstd": ("bag", lambda p: write_rosbags2(p, StoragePlugin.MCAP, CompressionMode.MESSAGE)),
    "mcap-chunk-zstd": ("bag", lambda p: write_rosbags2(p, StoragePlugin.MCAP, CompressionMode.STORAGE)),
    "sqlite3-file-zstd": ("bag", lambda p: write_rosbags2(p, StoragePlugin.SQLITE3, CompressionMode.FILE)),
    "ros1": ("drive.bag", lambda p: write_ros1(p, None)),
    "ros1-bz2": ("drive.bag", lambda p: write_ros1(p, Writer1.CompressionFormat.BZ2)),
    "ros1-lz4": ("drive.bag", lambda p: write_ros1(p, Writer1.CompressionFormat.LZ4)),
}


@pytest.fixture(scope="module", params=sorted(BAGS))
def bag(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    name, write = BAGS[request.param]
    path = tmp_path_factory.mktemp(request.param) / name
    write(path)
    return path


def _read(path: Path, order: str, sensors: list[str] | None = None) -> tuple[list[SensorMessage], Counter[str]]:
    with open_log(path) as reader:
        assert isinstance(reader, RosbagReader)
        return list(reader.messages(sensors, order=order)), Counter(reader.skipped)


# -- the tests ---------------------------------------------------------------------------------------


def test_the_recording_is_in_no_sorted_order() -> None:
    """What the bags hold: record order differs from stamp order and from log-time order."""
    written = _keys(recording())
    assert written != sorted(written, key=lambda k: k[1])
    assert written != sorted(written, key=lambda k: k[2] or 0)


def test_record_order_is_the_written_order_and_stamp_order_the_sorted_one(bag: Path) -> None:
    written = _keys(recording())
    recorded, skipped_r = _read(bag, "record")
    by_stamp, skipped_s = _read(bag, "stamp")
    assert _keys(recorded) == written
    assert _keys(by_stamp) == sorted(written, key=lambda k: k[1])
    assert skipped_r == skipped_s == Counter()
    # the same messages, payloads bit for bit
    same = {(m.topic, m.stamp_ns): m for m in by_stamp}
    for m in recorded:
        other = same.pop((m.topic, m.stamp_ns))
        assert (m.sensor, m.log_time_ns) == (other.sensor, other.log_time_ns)
        assert_payload_equal(m.payload, other.payload, where=f"{m.topic}@{m.stamp_ns}")
    assert not same


def test_raw_records_and_a_sensor_subset_in_record_order(bag: Path) -> None:
    with open_log(bag) as reader:
        want = list(reader.messages(order="record"))
        records = list(reader.raw_records(order="record"))
        decoded = [reader.decode_record(r) for r in records]
        imu = reader.sensors[[reader.topic_of(s) for s in reader.sensors].index(IMU)]
        only_imu = list(reader.messages([imu], order="record"))
        only_imu_raw = [r.stamp_ns for r in reader.raw_records([imu], order="record")]
    assert [(r.stamp_ns, r.sensor) for r in records] == [(m.stamp_ns, m.sensor) for m in want]
    assert _keys([m for m in decoded if m is not None]) == _keys(want)
    imu_written = [k for k in _keys(recording()) if k[0] == IMU]
    assert _keys(only_imu) == imu_written and only_imu_raw == [k[1] for k in imu_written]


def test_an_unknown_order_is_a_config_error_at_the_call(tmp_path: Path) -> None:
    write_bagwriter(tmp_path / "bag", "mcap")
    with open_log(tmp_path / "bag") as reader:
        assert offers_record_order(reader)  # so frames_from_log reads bags as recorded
        for call in (reader.messages, reader.raw_records):
            with pytest.raises(ConfigError, match=r"order: expected one of \['stamp', 'record'\].*got 'file'") as err:
                call(order="file")  # raised before any iteration
            assert str(tmp_path / "bag") in str(err.value)


def test_mcap_record_order_agrees_with_the_mcap_library(tmp_path: Path) -> None:
    """An independent reading of the file order (the ``mcap`` package, log_time_order=False), over
    several chunks."""
    reader_mod = pytest.importorskip("mcap.reader")
    write_bagwriter(tmp_path / "bag", "mcap")
    (mcap_file,) = (tmp_path / "bag").glob("*.mcap")
    with mcap_file.open("rb") as fh:
        mcap = reader_mod.make_reader(fh)
        summary = mcap.get_summary()
        assert summary is not None and len(summary.chunk_indexes) >= 2
        in_file = [(ch.topic, msg.log_time) for _, ch, msg in mcap.iter_messages(log_time_order=False)]
    recorded, _ = _read(tmp_path / "bag", "record")
    assert [(m.topic, m.log_time_ns) for m in recorded] == [k for k in in_file if k[0] in (IMU, GNSS, LIDAR)]


@pytest.mark.parametrize("storage", [StoragePlugin.MCAP, StoragePlugin.SQLITE3], ids=["mcap", "sqlite3"])
def test_images_decode_and_count_in_record_order_as_in_stamp_order(tmp_path: Path, storage: StoragePlugin,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Compressed images (decoded ahead on worker threads), a truncated one among them, a clock that
    goes back: record order gives the same images and the same skip count as stamp order, and the
    same as decoding one record at a time."""
    import cv2

    import perception.io.rosbag as rosbag_mod

    path = tmp_path / "cams"
    rng = np.random.default_rng(3)
    written = []
    with Writer(path, version=9, storage_plugin=storage) as w:
        cams = [w.add_connection(f"/cam{k}/image/compressed", "sensor_msgs/msg/CompressedImage", typestore=typestore()) for k in range(2)]
        for i, t in enumerate([*range(0, 80, 10), *range(35, 75, 10)]):  # ms; the clock goes back after 70
            for k, conn in enumerate(cams):
                stamp = T0 + t * MS + k
                data = np.frombuffer(cv2.imencode(".jpg", (rng.random((24, 32, 3)) * 255).astype(np.uint8))[1].tobytes(), np.uint8)
                if i == 8 and k == 1:  # the first image after the clock went back
                    data = data[: len(data) // 3]  # truncated: skipped and counted
                sec, nsec = divmod(stamp, 1_000_000_000)
                msg = make("sensor_msgs/msg/CompressedImage",
                           header=make("std_msgs/msg/Header", stamp=make("builtin_interfaces/msg/Time", sec=sec, nanosec=nsec),
                                       frame_id=f"cam{k}"), format="jpeg", data=data)
                w.write(conn, stamp + 20 * MS, serialize(msg, "sensor_msgs/msg/CompressedImage"))
                written.append((conn.topic, stamp))

    def images(order: str) -> tuple[list[tuple[str, int]], dict[tuple[str, int], np.ndarray], Counter[str]]:
        got, skipped = _read(path, order)
        return [(m.topic, m.stamp_ns) for m in got], {(m.topic, m.stamp_ns): m.payload.image for m in got}, skipped

    order_r, images_r, skipped_r = images("record")
    order_s, images_s, skipped_s = images("stamp")
    monkeypatch.setattr(rosbag_mod, "IMAGE_DECODE_THREADS", 1)
    monkeypatch.setattr(rosbag_mod, "DECODE_AHEAD", 0)
    order_1, images_1, skipped_1 = images("record")
    truncated = ("/cam1/image/compressed", T0 + 35 * MS + 1)
    assert order_r == [k for k in written if k != truncated] == order_1
    assert order_s == sorted(order_r, key=lambda k: k[1])
    assert images_r.keys() == images_s.keys() == images_1.keys()
    assert all(np.array_equal(images_r[k], images_s[k]) and np.array_equal(images_r[k], images_1[k]) for k in images_r)
    assert skipped_r == skipped_s == skipped_1 and sum(skipped_r.values()) == 1 and "/cam1" in next(iter(skipped_r))


def test_real_ros1_bag_in_record_order_follows_its_chunks(realdata: Path) -> None:
    """The Husky bag: record order is the order of its index entries by (chunk, offset in the chunk),
    the same records as stamp order (undecoded: raw_records)."""
    with open_log(realdata / "ros1_gps_imu" / "husky_gps_imu_odom.bag") as reader:
        recorded = [(r.data[0], r.data[1], r.stamp_ns, r.data[2]) for r in reader.raw_records(order="record")]
        by_stamp = [(r.data[0], r.data[1], r.stamp_ns, r.data[2]) for r in reader.raw_records()]
        bag = reader._reader().readers[0]  # rosbags' ROS 1 reader: its index, read independently
        topic = {c.id: c.topic for c in bag.connections}
        index = sorted((e.chunk_pos, e.offset, topic[cid], e.time) for cid, entries in bag.indexes.items() for e in entries)
        assert len(bag.chunk_infos) > 1
    assert len(recorded) == 16806
    assert [(t, lt) for t, lt, _, _ in recorded] == [(t, lt) for _, _, t, lt in index]
    assert Counter(recorded) == Counter(by_stamp) and recorded != by_stamp
    assert [s for _, _, s, _ in by_stamp] == sorted(s for _, _, s, _ in by_stamp)
