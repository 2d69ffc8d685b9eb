"""Write bevfuse messages into a ROS 2 bag (a directory with ``metadata.yaml`` + one ``.mcap`` or ``.db3``).

The bag is rosbag2 metadata version 9 (rosbags' ``Writer``), CDR-serialized, and carries the full
definition of every message type (custom ones included: see ``perception.io.rosmsg``), so that
rosbags' ``AnyReader``, ``ros2 bag`` (Jazzy and later read version 9) or Foxglove open it without
bevfuse.

Deterministic: the same calls give byte-identical files. Nothing wall-clock goes in: the metadata's
``starting_time``/``duration`` come from the messages' log times, the MCAP header names the rosbags
version (fixed for an install), and SQLite writes the same pages for the same inserts.

A rig given to the writer (or to ``write_rig``) is also stored as YAML in the metadata's
``custom_data`` under ``RIG_KEY``, so that a reader recovers the sensor names, topics and rates
exactly; ``/tf_static`` and ``CameraInfo`` carry the same calibration for ROS tools.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Literal

import yaml
from rosbags.interfaces import Connection, Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

from calib.rig import Rig
from perception.errors import ConfigError, InputFileError, ShapeError
from perception.io.ros_encode import (
    EGO_FRAME,
    ENCODABLE_MSGTYPES,
    camera_info_topic,
    encode,
    encode_camera_info,
    encode_tf_static,
    serialize,
)
from perception.io.rosmsg import typestore
from perception.types import SensorMessage

__all__ = ["RIG_KEY", "TF_STATIC_TOPIC", "BagWriter"]

RIG_KEY = "bevfuse.rig"
TF_STATIC_TOPIC = "/tf_static"

_STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}

# rmw's "infinite" duration, as `ros2 bag record` writes it into the metadata.
_INFINITE = QosTime(9223372036, 854775807)


def _qos(durability: QosDurability, depth: int) -> Qos:
    return Qos(QosHistory.KEEP_LAST, depth, QosReliability.RELIABLE, durability, _INFINITE, _INFINITE,
               QosLiveliness.AUTOMATIC, _INFINITE, False)


# /tf_static is latched: a player must offer it transient-local or late subscribers miss the rig.
_TF_STATIC_QOS = (_qos(QosDurability.TRANSIENT_LOCAL, 1),)
_SENSOR_QOS = (_qos(QosDurability.VOLATILE, 10),)


class BagWriter:
    """Write ``SensorMessage``s to a new ROS 2 bag at ``path`` (a directory; it must not exist).

    ``storage``: 'mcap' (one ``<name>.mcap``) or 'sqlite3' (one ``<name>.db3``). ``rig``: maps a
    message's sensor to its ROS type (``SensorSpec.msgtype``) and is stored in the metadata.
    ``jpeg_quality``: for CameraImage written as CompressedImage (the default).
    """

    def __init__(self, path: str | Path, storage: Literal["mcap", "sqlite3"] = "mcap", rig: Rig | None = None,
                 jpeg_quality: int = 90) -> None:
        self.path = Path(path)
        if storage not in _STORAGES:
            raise ConfigError(f"{self.path}: storage: expected 'mcap' or 'sqlite3', got {storage!r}")
        if not 1 <= int(jpeg_quality) <= 100:
            raise ConfigError(f"{self.path}: jpeg_quality: expected 1..100, got {jpeg_quality}")
        if self.path.exists():
            raise InputFileError(f"{self.path}: exists already; BagWriter writes a new bag and never overwrites one")
        if not self.path.parent.is_dir():
            raise InputFileError(f"{self.path}: parent directory {self.path.parent} does not exist")
        self.storage = storage
        self.jpeg_quality = int(jpeg_quality)
        self.rig = rig
        self.counts: dict[str, int] = {}
        self._connections: dict[str, Connection] = {}
        self._writer: Writer | None = Writer(self.path, version=9, storage_plugin=_STORAGES[storage])
        try:
            self._writer.open()
        except (WriterError, OSError) as exc:
            self._writer = None
            raise InputFileError(f"{self.path}: cannot create the bag: {exc}") from None
        if rig is not None:
            self._store_rig(rig)

    # -- writing ------------------------------------------------------------------------------------

    def _open_writer(self) -> Writer:
        if self._writer is None:
            raise InputFileError(f"{self.path}: the bag is closed")
        return self._writer

    def _connection(self, topic: str, msgtype: str) -> Connection:
        conn = self._connections.get(topic)
        if conn is not None:
            if conn.msgtype != msgtype:
                raise ConfigError(f"{self.path}: topic {topic!r} already carries {conn.msgtype}; cannot also write {msgtype}")
            return conn
        qos = _TF_STATIC_QOS if topic == TF_STATIC_TOPIC else _SENSOR_QOS
        conn = self._open_writer().add_connection(topic, msgtype, typestore=typestore(), offered_qos_profiles=qos)
        self._connections[topic] = conn
        self.counts[topic] = 0
        return conn

    def _write_raw(self, topic: str, msgtype: str, log_time_ns: int, data: bytes) -> None:
        conn = self._connection(topic, msgtype)
        self._open_writer().write(conn, int(log_time_ns), data)
        self.counts[topic] += 1

    def _msgtype_for(self, message: SensorMessage) -> str | None:
        if self.rig is None:
            return None
        spec = self.rig[message.sensor] if message.sensor in self.rig else self.rig.by_topic(message.topic)
        return spec.msgtype if spec is not None else None

    def write(self, message: SensorMessage, msgtype: str | None = None) -> None:
        """Write one message on ``message.topic`` at log time ``message.log_time_ns``.

        The ROS type: ``msgtype``, else the rig sensor's ``msgtype``, else the payload's default
        (PointCloud and RadarScan -> PointCloud2, CameraImage -> CompressedImage jpeg, GnssFix ->
        NavSatFix, ImuSample -> Imu, EgoPose -> Odometry, Detections -> bevfuse_msgs/Box3DArray).
        """
        if not message.topic.startswith("/"):
            raise ConfigError(f"{self.path}: topic {message.topic!r} of sensor {message.sensor!r}: ROS topics start with '/'")
        chosen = msgtype or self._msgtype_for(message)
        allowed = ENCODABLE_MSGTYPES.get(type(message.payload), ())
        if chosen is not None and chosen not in allowed:
            source = "msgtype argument" if msgtype else f"rig sensor {message.sensor!r}"
            raise ConfigError(f"{self.path}: topic {message.topic!r}: a {type(message.payload).__name__} is written as one of "
                              f"{list(allowed)}, not {chosen} ({source})")
        try:
            rostype, msg = encode(message.payload, chosen, jpeg_quality=self.jpeg_quality)
        except ShapeError as exc:
            raise ShapeError(f"{self.path}: topic {message.topic!r}: {exc}") from None
        self._write_raw(message.topic, rostype, int(message.log_time_ns), serialize(msg, rostype))

    def write_rig(self, rig: Rig, stamp_ns: int) -> None:
        """``/tf_static`` (``EGO_FRAME`` -> each sensor frame) and one CameraInfo per camera with
        intrinsics, on ``camera_info_topic(camera topic)`` (``/<name>/camera_info`` without a topic);
        all stamped and logged at ``stamp_ns``. The rig also goes into the metadata (``RIG_KEY``)."""
        self._write_raw(TF_STATIC_TOPIC, "tf2_msgs/msg/TFMessage", stamp_ns,
                        serialize(encode_tf_static(rig, stamp_ns, EGO_FRAME), "tf2_msgs/msg/TFMessage"))
        for cam in rig.cameras:
            if cam.intrinsics is None:
                continue
            topic = camera_info_topic(cam.topic or f"/{cam.name}")
            msg = encode_camera_info(cam.intrinsics, stamp_ns, cam.frame)
            self._write_raw(topic, "sensor_msgs/msg/CameraInfo", stamp_ns, serialize(msg, "sensor_msgs/msg/CameraInfo"))
        if self.rig is None:
            self.rig = rig
        self._store_rig(rig)

    def _store_rig(self, rig: Rig) -> None:
        text = yaml.safe_dump(rig.to_dict(), sort_keys=False)
        self._open_writer().set_custom_data(RIG_KEY, text)

    # -- closing -----------------------------------------------------------------------------------

    def close(self) -> None:
        """Finish the storage file and write ``metadata.yaml``; closing twice is harmless."""
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except (WriterError, OSError) as exc:
                raise InputFileError(f"{self.path}: could not finish the bag: {exc}") from None

    def abort(self) -> None:
        """Stop without writing the index or metadata (after an error); the partial bag stays."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.abort()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        # On an error the bag is still finished: what was written before it stays readable.
        self.close()
