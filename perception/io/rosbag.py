"""Read ROS bags (ROS 1 ``.bag``; ROS 2 bag directories, ``.db3`` and ``.mcap``) as bevfuse messages.

Reading goes through rosbags' ``AnyReader``, with the bag's own message definitions (the shared
typestore of ``perception.io.rosmsg`` fills in for a ROS 2 bag that has none).

**Rig.** The one given; else the rig a ``BagWriter`` stored in the metadata (``RIG_KEY``); else one
built from the bag: a sensor per topic of a sensor message type (``MSGTYPE_MODALITY``), named after
the topic, in the frame of its first message, placed by ``/tf_static`` (ego = the frame named
``ego``, ``base_link``, ``base_footprint`` or the root of the tf tree) with the intrinsics of its
``CameraInfo`` (``<camera namespace>/camera_info``, else the CameraInfo in the camera's frame);
without ``/tf_static`` every sensor sits at the ego origin. ``reader.rig_source`` says which.

**Topics -> sensors.** A rig sensor's topic; a rig sensor without a topic takes the one topic of
its modality not otherwise mapped (the frame id decides between several). A rig topic absent from
the bag raises ``TopicMappingError`` listing the bag's topics. Decodable topics no sensor claims
come out under their topic name (a single ``Box3DArray`` topic as ``ground_truth``).

**Stamps and order.** A message's stamp is its ``header.stamp`` (+ the sensor's ``time_offset_ns``);
a message without a header, or with a zero stamp, uses its log (record) time. ``messages()``
yields in stamp order, ties in file order: a first pass reads only the stamp bytes of each record
(no deserialization) and the second pass releases each message as soon as no later record can
have an earlier stamp, so memory holds only the messages that arrived out of order.
``messages(order="record")`` yields the records in the order they were written to the file (what
a node on the car received), with the same stamps and decoding: SQLite by row id, MCAP chunk by
chunk and record by record, ROS 1 chunk by chunk (decompressed) and record by record. Not by log
time, the order of rosbags' ``AnyReader``: a clock that jumped back takes the log time back with
it, and a log-time merge interleaves the two epochs as a stamp sort does.

**Failures.** A message that cannot be deserialized or decoded is skipped and counted in
``skipped[reason]``; a missing path raises ``InputFileError``, a damaged or truncated bag
``FormatError`` naming the path, never a rosbags traceback.
"""

from __future__ import annotations

import heapq
import os
import struct
from collections import defaultdict, deque
from collections.abc import Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.interfaces import Connection
from rosbags.rosbag1.reader import Header, RecordType, read_bytes, read_uint32
from rosbags.rosbag1.reader import Reader as Reader1
from rosbags.rosbag2.reader import DirectoryReader
from rosbags.rosbag2.storage_mcap import McapReader
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Reader

from calib import se3
from calib.camera import CameraModel
from calib.rig import Rig, SensorSpec, rig_from_dict
from perception.classes import NUSCENES_CLASSES
from perception.errors import BevfuseError, ConfigError, DecodeError, FormatError, InputFileError, RigError, TopicMappingError
from perception.io.bag_writer import RIG_KEY
from perception.io.base import GROUND_TRUTH, RawRecord, ReaderBase, StreamInfo, register_reader
from perception.io.cdr_boxes import box3d_array_from_cdr
from perception.io.ros_decode import (
    DETECTION_MSGTYPES,
    MSGTYPE_MODALITY,
    decode,
    decode_camera_info,
    decode_tf,
    frame_name,
    is_radar_cloud,
)
from perception.io.ros_encode import EGO_FRAME, camera_info_topic
from perception.io.rosmsg import typestore
from perception.types import Modality, SensorMessage

__all__ = ["EGO_FRAME_CANDIDATES", "READ_ORDERS", "RosStreamInfo", "RosbagReader", "detect", "messages_as_recorded", "open_rosbag",
           "sensor_name_for_topic"]

NS_PER_S = 1_000_000_000
EGO_FRAME_CANDIDATES: tuple[str, ...] = (EGO_FRAME, "base_link", "base_footprint")
_TF_STATIC_TYPES = ("tf2_msgs/msg/TFMessage",)
_CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
_TRANSPORTS = ("compressed", "compressedDepth", "theora", "ffmpeg", "h264", "zstd")
_MAGIC = {".bag": b"#ROSBAG V2.0\n", ".mcap": b"\x89MCAP0\r\n", ".db3": b"SQLite format 3\x00"}
# what ``messages(order=...)`` takes: by stamp (ties in file order), or as written to the file
READ_ORDERS = ("stamp", "record")


# --------------------------------------------------------------------------------------------------
# Detection and small helpers


def _head(path: Path, n: int) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


def detect(path: Path) -> bool:
    """True for a ROS 1 bag, a ROS 2 bag directory (``metadata.yaml`` of rosbag2) or a ``.db3``/``.mcap``."""
    path = Path(path)
    if path.is_dir():
        meta = path / "metadata.yaml"
        return meta.is_file() and b"rosbag2_bagfile_information" in _head(meta, 4096)
    magic = _MAGIC.get(path.suffix)
    return magic is not None and _head(path, len(magic)) == magic


def sensor_name_for_topic(topic: str) -> str:
    """'/cam_front/image_raw/compressed' -> 'cam_front_image_raw', '/imu/data' -> 'imu_data'."""
    parts = [p for p in topic.split("/") if p]
    if len(parts) > 1 and parts[-1] in _TRANSPORTS:
        parts = parts[:-1]
    return "_".join(parts) or "root"


def _header_first(store: Any, msgtype: str) -> bool:
    """Whether the type's first field is a std_msgs/Header (its stamp then sits at a fixed offset)."""
    fields = store.fielddefs.get(msgtype, (None, []))[1]
    if not fields:
        return False
    name, (_, ref) = fields[0]
    return name == "header" and isinstance(ref, str) and ref.endswith("/Header")


def _raw_stamp(raw: bytes | memoryview, is2: bool) -> int:
    """header.stamp of a serialized message whose first field is a Header; 0 when unreadable.

    CDR: 4-byte encapsulation (byte 1: 1 = little-endian), then int32 sec, uint32 nanosec.
    ROS 1: uint32 seq, then uint32 secs, uint32 nsecs, little-endian.
    """
    if len(raw) < 12:
        return 0
    if is2:
        sec, nsec = struct.unpack_from("<iI" if raw[1] else ">iI", raw, 4)
    else:
        sec, nsec = struct.unpack_from("<II", raw, 4)
    return sec * NS_PER_S + nsec


# --------------------------------------------------------------------------------------------------
# Record (file) order
#
# rosbags reads every storage in log-time order (a heap merge over chunks or index entries, SQLite
# ``ORDER BY timestamp``), and a log time jumps back with the clock. The order the records were
# written in is read here from the storage readers rosbags opened (their internals, as of rosbags
# 0.11: ``McapReader.messages_scan``, ``Sqlite3Reader.dbconn``, ``Reader1.chunk_infos``/``chunks``),
# so that decompression, split files and connection ids stay rosbags'.

_BagItem = tuple[Connection, int, Any]  # connection, log time, raw bytes: what AnyReader.messages yields


def _same_topic(a: Connection, b: Connection) -> bool:
    """A rosbag2 directory's connection and a storage file's: how rosbags' DirectoryReader pairs them."""
    return (a.topic == b.topic and a.msgtype == b.msgtype and a.ext == b.ext
            and (not a.digest or not b.digest or a.digest == b.digest))


def _sqlite_in_record_order(db: Sqlite3Reader, conns: list[Connection]) -> Iterator[_BagItem]:
    # the row id is the insert order (rosbag2 appends); the connection id is the topic's row id
    if db.dbconn is None:
        raise FormatError(f"{db.path}: the storage is closed")
    by_id = {c.id: c for c in conns}
    query = f"SELECT topic_id, timestamp, data FROM messages WHERE topic_id IN ({','.join('?' * len(by_id))}) ORDER BY id"
    for cid, log_time, data in db.dbconn.execute(query, tuple(by_id)):
        yield by_id[cid], log_time, data


def _ros1_in_record_order(bag: Reader1, conns: list[Connection]) -> Iterator[_BagItem]:
    # chunks by file position, each decompressed once, its records walked from the start (the index
    # only lists each connection's messages, sorted by time)
    if bag.bio is None:
        raise FormatError(f"{bag.path}: the bag is closed")
    by_id = {c.id: c for c in conns}
    for info in sorted(bag.chunk_infos, key=lambda i: i.pos):
        if by_id.keys().isdisjoint(info.connection_counts):
            continue
        chunk = bag.chunks[info.pos]
        bag.bio.seek(chunk.datapos)
        raw = chunk.decompressor(read_bytes(bag.bio, chunk.datasize))
        buf = BytesIO(raw)
        while buf.tell() < len(raw):
            header = Header.read(buf)
            size = read_uint32(buf)
            conn = by_id.get(header.get_uint32("conn")) if header.get_uint8("op") == RecordType.MSGDATA else None
            if conn is None:  # a connection record, or a message of a topic not asked for
                buf.seek(size, os.SEEK_CUR)
                continue
            yield conn, header.get_time("time"), read_bytes(buf, size)


def _storage_in_record_order(storage: Any, conns: list[Connection]) -> Iterator[_BagItem]:
    if isinstance(storage, McapReader):
        return storage.messages_scan(conns)  # chunks in file order, records in chunk order
    if isinstance(storage, Sqlite3Reader):
        return _sqlite_in_record_order(storage, conns)
    raise FormatError(f"{storage.path}: cannot read a {type(storage).__name__} storage in record order")


def messages_as_recorded(connections: Collection[Connection]) -> Iterator[_BagItem]:
    """(connection, log time, raw bytes) of the records of ``connections`` (of an open ``AnyReader``)
    in the order they were written to the bag; what ``AnyReader.messages`` yields, in file order."""
    owners: dict[int, tuple[Any, list[Connection]]] = {}
    for c in connections:  # the reader of each connection's file (several ROS 1 bags: one after the other)
        owners.setdefault(id(c.owner), (c.owner, []))[1].append(c)
    for owner, mine in owners.values():
        if isinstance(owner, Reader1):
            yield from _ros1_in_record_order(owner, mine)
        elif isinstance(owner, DirectoryReader):
            # split files in the metadata's order, each with its own connection ids (as DirectoryReader.messages)
            unzip = None
            if owner.metadata.compression_mode == "message":
                from rosbags.rosbag2.reader import zstd  # the zstd module rosbags itself uses

                unzip = zstd.decompress
            for storage in owner.storages:
                pairs = {s.id: c for s in storage.connections for c in mine if _same_topic(s, c)}
                wanted = [s for s in storage.connections if s.id in pairs]
                if not wanted:
                    continue
                for s, log_time, data in _storage_in_record_order(storage, wanted):
                    yield pairs[s.id], log_time, unzip(data) if unzip else data
        else:
            yield from _storage_in_record_order(owner, mine)


@dataclass
class RosStreamInfo(StreamInfo):
    """A StreamInfo that says where its stamps come from: 'header' (header.stamp of the first and
    last recorded messages) or 'log_time' (record time, for types without a header)."""

    stamp_source: str = "header"

    def to_dict(self) -> dict:
        return {**super().to_dict(), "stamp_source": self.stamp_source}


@dataclass(frozen=True)
class _Topic:
    name: str
    msgtype: str
    connections: tuple[Connection, ...]
    count: int
    header_first: bool


@dataclass(frozen=True)
class _Route:
    """Where a topic's messages go: the sensor name, the modality that steers decoding, the offset."""

    sensor: str
    modality: Modality | None
    time_offset_ns: int = 0


BOX3D_ARRAY = "bevfuse_msgs/msg/Box3DArray"

# Compressed images decode on this many threads, at most this many records ahead of the one
# being handed out (a frame of a six-camera rig is ~35 records: the look-ahead stays within it).
IMAGE_DECODE_THREADS = 2
DECODE_AHEAD = 12


# --------------------------------------------------------------------------------------------------
# The reader


class RosbagReader(ReaderBase):
    """A ROS 1 or ROS 2 bag as a ``LogReader``; see the module docstring for the rules.

    ``rig``: maps topics to sensors (else the stored or built rig). ``embedded_rig``: use the rig a
    BagWriter stored (False: build it from /tf_static and CameraInfo). ``class_names``: what box
    messages' class names index.
    """

    def __init__(self, path: str | Path, rig: Rig | None = None, *, embedded_rig: bool = True,
                 class_names: tuple[str, ...] = NUSCENES_CLASSES) -> None:
        super().__init__(Path(path))
        self.class_names = tuple(class_names)
        self.warnings: list[str] = []
        self._any: AnyReader | None = None
        self._first_cache: dict[str, tuple[int, Any] | None] = {}
        self._stamp_cache: dict[frozenset[str], np.ndarray] = {}
        self._streams: list[RosStreamInfo] | None = None
        self._open()
        try:
            self.topics = self._collect_topics()
            self.rig, self.rig_source = self._resolve_rig(rig, embedded_rig)
            self._routes = self._map_topics()
        except BaseException:
            self.close()
            raise

    # -- opening -----------------------------------------------------------------------------------

    def _open(self) -> None:
        p = self.path
        if not p.exists():
            raise InputFileError(f"{p}: no such file or directory")
        if p.is_dir():
            storage = self._metadata().get("storage_identifier", "?")
            self.format = f"rosbag2-{storage}"
        elif p.suffix == ".bag":
            self.format = "rosbag1"
        elif p.suffix in (".mcap", ".db3"):
            self.format = "rosbag2-" + {".mcap": "mcap", ".db3": "sqlite3"}[p.suffix]
        else:
            raise FormatError(f"{p}: not a ROS bag (expected a .bag file, a rosbag2 directory, a .db3 or a .mcap)")
        try:
            reader = AnyReader([p], default_typestore=typestore())
            reader.open()
        except FileNotFoundError as exc:
            raise InputFileError(f"{p}: {exc}") from None
        except BevfuseError:
            raise
        except Exception as exc:  # noqa: BLE001 - any rosbags/storage failure is a damaged bag to the user
            raise FormatError(f"{p}: damaged or unreadable {self.format} bag: {type(exc).__name__}: {exc}") from None
        self._any = reader
        self.is2 = bool(reader.is2)

    def _metadata(self) -> dict:
        meta = self.path / "metadata.yaml"
        try:
            data = yaml.safe_load(meta.read_text(encoding="utf-8"))
            info = data["rosbag2_bagfile_information"]
            return info if isinstance(info, dict) else {}
        except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
            raise FormatError(f"{meta}: not a rosbag2 metadata file: {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        reader, self._any = self._any, None
        if reader is not None:
            reader.close()

    def _reader(self) -> AnyReader:
        if self._any is None:
            raise FormatError(f"{self.path}: the reader is closed")
        return self._any

    def _iter(self, connections: Collection[Connection], start: int | None = None) -> Iterator[_BagItem]:
        """AnyReader.messages (log-time order), with storage failures mid-file turned into a FormatError naming the path."""
        yield from self._guarded(self._reader().messages(connections=list(connections), start=start))

    def _iter_recorded(self, connections: Collection[Connection]) -> Iterator[_BagItem]:
        """The records as written to the file (see "Record (file) order" above), failures as in ``_iter``."""
        self._reader()  # raises when closed
        yield from self._guarded(messages_as_recorded(connections))

    def _guarded(self, it: Iterator[_BagItem]) -> Iterator[_BagItem]:
        while True:
            try:
                item = next(it)
            except StopIteration:
                return
            except BevfuseError:
                raise
            except Exception as exc:  # noqa: BLE001 - a truncated chunk, a bad index: the bag is damaged
                raise FormatError(f"{self.path}: damaged {self.format} bag while reading messages: "
                                  f"{type(exc).__name__}: {exc}") from None
            yield item

    # -- topics ------------------------------------------------------------------------------------

    def _collect_topics(self) -> dict[str, _Topic]:
        reader = self._reader()
        by_topic: dict[str, list[Connection]] = defaultdict(list)
        for c in reader.connections:
            by_topic[c.topic].append(c)
        topics: dict[str, _Topic] = {}
        for name in sorted(by_topic):
            conns = by_topic[name]
            types = sorted({c.msgtype for c in conns})
            if len(types) > 1:
                self.warnings.append(f"{self.path}: topic {name!r} carries several types {types}; only {types[0]} is read")
                conns = [c for c in conns if c.msgtype == types[0]]
            topics[name] = _Topic(name, types[0], tuple(conns), sum(c.msgcount for c in conns),
                                  _header_first(reader.typestore, types[0]))
        return topics

    def _topic_list(self) -> str:
        return ", ".join(f"{t.name} ({t.msgtype})" for t in self.topics.values()) or "none"

    def _first(self, topic: str) -> tuple[int, Any] | None:
        """(log time, deserialized message) of a topic's first record, cached; None if it has none or fails."""
        if topic not in self._first_cache:
            t = self.topics[topic]
            item = next(self._iter(t.connections), None)
            msg = None
            if item is not None:
                try:
                    msg = (item[1], self._reader().deserialize(item[2], t.msgtype))
                except AnyReaderError as exc:
                    self.warnings.append(f"{self.path}: topic {topic!r}: first message unreadable: {exc}")
            self._first_cache[topic] = msg
        return self._first_cache[topic]

    def _modality_of(self, topic: str) -> Modality | None:
        """The sensor modality a topic's type (and, for PointCloud2, its fields) gives; None for boxes/other."""
        t = self.topics[topic]
        modality = MSGTYPE_MODALITY.get(t.msgtype)
        if t.msgtype == "sensor_msgs/msg/PointCloud2":
            first = self._first(topic)
            if first is not None and is_radar_cloud(first[1]):
                modality = Modality.RADAR
        return modality

    def _frame_of(self, topic: str) -> str:
        """The sensor frame of a topic: its first message's header frame, or for Odometry the child
        frame (the header names the world frame the body's pose is given in)."""
        first = self._first(topic)
        if first is None or not hasattr(first[1], "header"):
            return ""
        if self.topics[topic].msgtype == "nav_msgs/msg/Odometry":
            return frame_name(str(first[1].child_frame_id))
        return frame_name(str(first[1].header.frame_id))

    # -- the rig -----------------------------------------------------------------------------------

    def _resolve_rig(self, rig: Rig | None, embedded: bool) -> tuple[Rig, str]:
        if rig is not None:
            return rig, "given"
        if embedded and self.path.is_dir():
            text = (self._metadata().get("custom_data") or {}).get(RIG_KEY)
            if text:
                try:
                    return rig_from_dict(yaml.safe_load(text), f"{self.path}/metadata.yaml:custom_data[{RIG_KEY}]"), "embedded"
                except (RigError, yaml.YAMLError) as exc:
                    self.warnings.append(f"{self.path}: the stored rig is invalid, building one from the bag instead: {exc}")
        return self._rig_from_bag()

    def _tf_edges(self) -> list[tuple[str, str, np.ndarray]]:
        edges: list[tuple[str, str, np.ndarray]] = []
        for t in self.topics.values():
            if t.name.rstrip("/").endswith("tf_static") and t.msgtype in _TF_STATIC_TYPES:
                for _, _, raw in self._iter(t.connections):
                    try:
                        edges += decode_tf(self._reader().deserialize(raw, t.msgtype), t.name)
                    except (AnyReaderError, DecodeError) as exc:
                        self.skipped[f"{t.name}: {str(exc).splitlines()[0]}"] += 1
        return edges

    @staticmethod
    def _ego_transforms(edges: list[tuple[str, str, np.ndarray]]) -> tuple[str | None, dict[str, np.ndarray]]:
        """(ego frame, frame -> ego_T_frame) for every frame connected to the ego frame."""
        if not edges:
            return None, {}
        frames = {p for p, _, _ in edges} | {c for _, c, _ in edges}
        ego = next((f for f in EGO_FRAME_CANDIDATES if f in frames), None)
        if ego is None:
            roots = sorted({p for p, _, _ in edges} - {c for _, c, _ in edges})
            if len(roots) != 1:
                return None, {}
            ego = roots[0]
        adj: dict[str, list[tuple[str, np.ndarray]]] = defaultdict(list)
        for parent, child, p_T_c in edges:
            adj[parent].append((child, p_T_c))
            adj[child].append((parent, se3.invert(p_T_c)))
        out = {ego: np.eye(4)}
        queue = [ego]
        while queue:  # breadth-first: ego_T_next = ego_T_frame @ frame_T_next
            frame = queue.pop(0)
            for nxt, f_T_n in adj[frame]:
                if nxt not in out:
                    out[nxt] = out[frame] @ f_T_n
                    queue.append(nxt)
        return ego, out

    def _camera_infos(self) -> dict[str, tuple[str, CameraModel]]:
        """CameraInfo topic -> (frame, camera model), from each topic's first message."""
        out: dict[str, tuple[str, CameraModel]] = {}
        for t in self.topics.values():
            if t.msgtype != _CAMERA_INFO:
                continue
            first = self._first(t.name)
            if first is None:
                continue
            try:
                out[t.name] = (frame_name(str(first[1].header.frame_id)), decode_camera_info(first[1], t.name))
            except DecodeError as exc:
                self.warnings.append(str(exc))
        return out

    def _rig_from_bag(self) -> tuple[Rig, str]:
        edges = self._tf_edges()
        ego, ego_T = self._ego_transforms(edges)
        if edges and ego is None:
            self.warnings.append(f"{self.path}: /tf_static has no frame named {list(EGO_FRAME_CANDIDATES)} and no single root; "
                                 f"sensors are placed at the ego origin")
        infos = self._camera_infos()
        rates = {s.topic: s.rate_hz for s in self._stream_stats()}
        specs: list[SensorSpec] = []
        used_names: set[str] = set()
        for t in self.topics.values():
            modality = self._modality_of(t.name) if t.msgtype in MSGTYPE_MODALITY else None
            if modality is None:
                continue
            name = sensor_name_for_topic(t.name)
            base, k = name, 2
            while name in used_names:
                name, k = f"{base}_{k}", k + 1
            used_names.add(name)
            frame = self._frame_of(t.name) or name
            T = ego_T.get(frame)
            if T is None:
                T = np.eye(4)
                if ego is not None:
                    self.warnings.append(f"{self.path}: sensor {name!r}: frame {frame!r} is not in /tf_static; "
                                         f"placed at the ego origin")
            intr = None
            if modality is Modality.CAMERA:
                info = infos.get(camera_info_topic(t.name)) or next((v for v in infos.values() if v[0] == frame), None)
                if info is None:
                    self.warnings.append(f"{self.path}: camera {name!r} ({t.name}): no CameraInfo; no intrinsics")
                else:
                    intr = info[1]
            rate = rates.get(t.name)
            specs.append(SensorSpec(name=name, modality=modality, frame=frame, topic=t.name,
                                    rate_hz=round(rate, 3) if rate else None, ego_T_sensor=T, intrinsics=intr, msgtype=t.msgtype))
        source = "tf_static" if ego is not None else "topics"
        return Rig(tuple(specs), name=self.path.name, source=f"{self.path} ({source})"), source

    # -- topic -> sensor ---------------------------------------------------------------------------

    def _compatible(self, spec: SensorSpec, topic: str) -> bool:
        mt = self.topics[topic].msgtype
        if mt == "sensor_msgs/msg/PointCloud2":
            return spec.modality in (Modality.LIDAR, Modality.RADAR)
        return MSGTYPE_MODALITY.get(mt) is spec.modality

    def _map_topics(self) -> dict[str, _Route]:
        routes: dict[str, _Route] = {}
        missing = [s for s in self.rig.sensors if s.topic and s.topic not in self.topics]
        if missing:
            listed = ", ".join(f"sensor {s.name!r} topic {s.topic!r}" for s in missing)
            raise TopicMappingError(f"{self.path}: rig {self.rig.source}: {listed} not in the bag; "
                                    f"the bag's topics: {self._topic_list()}")
        for s in self.rig.sensors:
            if s.topic:
                if not self._compatible(s, s.topic):
                    raise TopicMappingError(f"{self.path}: rig {self.rig.source}: sensor {s.name!r} ({s.modality.value}) "
                                            f"is mapped to {s.topic!r}, which carries {self.topics[s.topic].msgtype}")
                routes[s.topic] = _Route(s.name, s.modality, s.time_offset_ns)
        decodable = [t for t in self.topics.values() if t.msgtype in MSGTYPE_MODALITY or t.msgtype in DETECTION_MSGTYPES]
        for s in self.rig.sensors:
            if s.topic:
                continue
            cands = [t.name for t in decodable
                     if t.name not in routes and t.msgtype in MSGTYPE_MODALITY and self._compatible(s, t.name)
                     and (t.msgtype != "sensor_msgs/msg/PointCloud2" or self._modality_of(t.name) is s.modality)]
            if len(cands) > 1:
                cands = [c for c in cands if self._frame_of(c) == s.frame] or cands
            if len(cands) != 1:
                why = "no unmapped topic" if not cands else f"several topics {cands}"
                raise TopicMappingError(f"{self.path}: rig {self.rig.source}: sensor {s.name!r} has no topic and {why} of its "
                                        f"modality {s.modality.value}; the bag's topics: {self._topic_list()}")
            routes[cands[0]] = _Route(s.name, s.modality, s.time_offset_ns)
        boxes = [t.name for t in decodable if t.msgtype == "bevfuse_msgs/msg/Box3DArray" and t.name not in routes]
        for t in decodable:
            if t.name in routes:
                continue
            sensor = GROUND_TRUTH if boxes == [t.name] else t.name
            routes[t.name] = _Route(sensor, None)
        return routes

    @property
    def sensors(self) -> list[str]:
        """The sensor names ``messages()`` yields, in topic order."""
        return sorted({r.sensor for r in self._routes.values()})

    def topic_of(self, sensor: str) -> str:
        for topic, r in self._routes.items():
            if r.sensor == sensor:
                return topic
        raise TopicMappingError(f"{self.path}: no sensor {sensor!r}; sensors: {self.sensors}")

    # -- streams -----------------------------------------------------------------------------------

    def _last(self, t: _Topic) -> tuple[Connection, int, Any] | None:
        """The last record of a topic, by reading back from the end in growing windows (index seeks)."""
        reader = self._reader()
        first, end = reader.start_time, reader.end_time
        window = max(NS_PER_S, 4 * (end - first) // max(t.count, 1))
        while True:
            lo = max(first, end - window)
            last = None
            for item in self._iter(t.connections, start=lo):
                last = item
            if last is not None or lo <= first:
                return last
            window *= 4

    def _stream_stats(self) -> list[RosStreamInfo]:
        if self._streams is not None:
            return self._streams
        out: list[RosStreamInfo] = []
        routes = getattr(self, "_routes", {})
        for t in self.topics.values():
            route = routes.get(t.name)
            offset = route.time_offset_ns if route else 0
            first = next(self._iter(t.connections), None) if t.count else None
            last = self._last(t) if t.count else None
            stamps, source = [], "header" if t.header_first else "log_time"
            for item in (first, last):
                if item is None:
                    continue
                s = _raw_stamp(item[2], self.is2) if t.header_first else 0
                if s <= 0:
                    s, source = item[1], "log_time"
                stamps.append(s + offset)
            out.append(RosStreamInfo(
                sensor=route.sensor if route else "", topic=t.name, msgtype=t.msgtype,
                modality=route.modality if route else None, count=t.count,
                first_stamp_ns=stamps[0] if stamps else None, last_stamp_ns=stamps[-1] if stamps else None, stamp_source=source))
        if routes:  # cache only once the routes exist (the rig builder asks before)
            self._streams = out
        return out

    def streams(self) -> list[StreamInfo]:
        """Every topic of the bag: count from the index; first/last stamp from the header of the first
        and last recorded message (``stamp_source`` 'header') or their log times ('log_time').
        Topics that yield no payload (tf, CameraInfo) have sensor '' and modality None."""
        return list(self._stream_stats())

    # -- messages ----------------------------------------------------------------------------------

    def _select(self, sensors: Collection[str] | None) -> list[str]:
        if sensors is None:
            return list(self._routes)
        wanted = set(sensors)
        unknown = wanted - {r.sensor for r in self._routes.values()}
        if unknown:
            raise TopicMappingError(f"{self.path}: no sensor(s) {sorted(unknown)} in this bag; sensors: {self.sensors}")
        return [t for t, r in self._routes.items() if r.sensor in wanted]

    def _stamp(self, topic: str, log_time: int, raw: Any) -> int:
        t = self.topics[topic]
        s = _raw_stamp(raw, self.is2) if t.header_first else 0
        return (s if s > 0 else log_time) + self._routes[topic].time_offset_ns

    def _stamps(self, topics: list[str], conns: list[Connection]) -> np.ndarray:
        key = frozenset(topics)
        if key not in self._stamp_cache:
            stamps = (self._stamp(c.topic, t, raw) for c, t, raw in self._iter(conns))
            self._stamp_cache[key] = np.fromiter(stamps, dtype=np.int64)
        return self._stamp_cache[key]

    def _decode(self, topic: str, log_time: int, raw: Any, stamp: int) -> SensorMessage | None:
        return self._finish(topic, log_time, stamp, self._payload(topic, raw))

    def _payload(self, topic: str, raw: Any) -> Any:
        """Deserialize and decode one record: the payload, or the exception that says why not
        (returned, not raised, so that a decode on a worker thread reports back in order)."""
        t, route = self.topics[topic], self._routes[topic]
        try:
            if t.msgtype == BOX3D_ARRAY and self.is2:  # ground truth: straight from the bytes (cdr_boxes)
                boxes = box3d_array_from_cdr(raw, topic, self.class_names)
                if boxes is not None:
                    return boxes
            msg = self._reader().deserialize(raw, t.msgtype)
            return decode(msg, t.msgtype, topic=topic, sensor=route.sensor, modality=route.modality, class_names=self.class_names)
        except (AnyReaderError, DecodeError) as exc:
            return exc

    def _finish(self, topic: str, log_time: int, stamp: int, payload: Any) -> SensorMessage | None:
        if isinstance(payload, AnyReaderError):
            self.skipped[f"{topic}: cannot deserialize {self.topics[topic].msgtype}: {str(payload).splitlines()[0]}"] += 1
            return None
        if isinstance(payload, DecodeError):
            self.skipped[str(payload).splitlines()[0]] += 1
            return None
        if payload.stamp_ns != stamp:  # a time offset, or a zero header stamp replaced by the log time
            payload = replace(payload, stamp_ns=stamp)
        return SensorMessage(stamp_ns=stamp, sensor=self._routes[topic].sensor, topic=topic, payload=payload, log_time_ns=log_time)

    def _check_order(self, order: str) -> str:
        if order not in READ_ORDERS:
            raise ConfigError(f"{self.path}: order: expected one of {list(READ_ORDERS)} ('stamp': by header stamp; "
                              f"'record': as written to the file), got {order!r}")
        return order

    def _ordered(self, topics: list[str], conns: list[Connection], order: str = "stamp") -> Iterator[tuple[str, int, Any, int]]:
        """(topic, log time, raw record, stamp) in stamp order, ties in file order, or in record order; undecoded."""
        if order == "record":  # as written: no stamp pass, no heap; each stamp as in stamp order
            for conn, log_time, raw in self._iter_recorded(conns):
                yield conn.topic, log_time, raw, self._stamp(conn.topic, log_time, raw)
            return
        stamps = self._stamps(topics, conns)
        # next_min[i]: the smallest stamp of the records after i (int64 max after the last one).
        next_min = np.empty_like(stamps)
        if stamps.size:
            next_min[:-1] = np.minimum.accumulate(stamps[::-1])[::-1][1:]
            next_min[-1] = np.iinfo(np.int64).max
        heap: list[tuple[int, int, str, int, Any]] = []
        for i, (conn, log_time, raw) in enumerate(self._iter(conns)):
            if i >= stamps.size:
                raise FormatError(f"{self.path}: the bag changed while being read ({stamps.size} records indexed, more found)")
            s, bound = int(stamps[i]), int(next_min[i])
            if not heap and s <= bound:  # in order: no buffering
                yield conn.topic, log_time, raw, s
                continue
            heapq.heappush(heap, (s, i, conn.topic, log_time, raw))
            while heap and heap[0][0] <= bound:
                s0, _, topic, lt, r = heapq.heappop(heap)
                yield topic, lt, r, s0

    def raw_records(self, sensors: Collection[str] | None = None, order: str = "stamp") -> Iterator[RawRecord]:
        """The records of ``sensors`` (default all), undecoded (CDR or ROS 1 bytes, copied out of the
        reader's chunk buffers), in ``messages()``'s order for the same ``order``."""
        return self._raw_records(sensors, self._check_order(order))  # a bad order raises here, not at the first next()

    def _raw_records(self, sensors: Collection[str] | None, order: str) -> Iterator[RawRecord]:
        topics = self._select(sensors)
        conns = [c for t in topics for c in self.topics[t].connections]
        if not conns:
            return
        for topic, log_time, raw, stamp in self._ordered(topics, conns, order):
            data = bytes(raw)
            yield RawRecord(stamp, self._routes[topic].sensor, (topic, log_time, data), len(data))

    def decode_record(self, record: RawRecord) -> SensorMessage | None:
        topic, log_time, data = record.data
        return self._decode(topic, log_time, data, record.stamp_ns)

    def messages(self, sensors: Collection[str] | None = None, order: str = "stamp") -> Iterator[SensorMessage]:
        """Decoded messages of ``sensors`` (default: all) in stamp order, ties in file order; with
        ``order="record"`` in the order they were written to the bag (see the module docstring).
        Another ``order`` raises ``ConfigError`` at the call.

        Compressed images are decoded a few records ahead on two worker threads (OpenCV releases
        the GIL while it decodes): JPEG decoding is most of a camera rig's reading time, and the
        records between two images (IMU, poses, radar) are deserialized meanwhile. Messages still
        come out one by one in order, and a record that fails to decode is counted in order.
        """
        return self._messages(sensors, self._check_order(order))

    def _messages(self, sensors: Collection[str] | None, order: str) -> Iterator[SensorMessage]:
        topics = self._select(sensors)
        conns = [c for t in topics for c in self.topics[t].connections]
        if not conns:
            return
        ordered = self._ordered(topics, conns, order)
        images = {t for t in topics if self.topics[t].msgtype == "sensor_msgs/msg/CompressedImage"}
        if not images:
            for topic, log_time, raw, stamp in ordered:
                out = self._decode(topic, log_time, raw, stamp)
                if out is not None:
                    yield out
            return
        pending: deque[tuple[str, int, int, Any]] = deque()
        with ThreadPoolExecutor(max_workers=IMAGE_DECODE_THREADS, thread_name_prefix="bevfuse-jpeg") as pool:
            for topic, log_time, raw, stamp in ordered:
                # other records are decoded here, on this thread, while the images ahead of them decode
                job = pool.submit(self._payload, topic, raw) if topic in images else self._payload(topic, raw)
                pending.append((topic, log_time, stamp, job))
                while pending and (len(pending) > DECODE_AHEAD or not isinstance(pending[0][3], Future) or pending[0][3].done()):
                    out = self._resolve(pending.popleft())
                    if out is not None:
                        yield out
            while pending:
                out = self._resolve(pending.popleft())
                if out is not None:
                    yield out

    def _resolve(self, item: tuple[str, int, int, Any]) -> SensorMessage | None:
        topic, log_time, stamp, job = item
        return self._finish(topic, log_time, stamp, job.result() if isinstance(job, Future) else job)


def open_rosbag(path: str | Path, rig: Rig | None = None, **kwargs: Any) -> RosbagReader:
    """``open_log``'s opener for ROS bags (keyword arguments go to ``RosbagReader``)."""
    return RosbagReader(path, rig, **kwargs)


register_reader("rosbag", detect, open_rosbag)
