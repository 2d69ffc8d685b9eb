"""ROS 2 names as rmw_zenoh lays them out on Zenoh: key expressions, type names, type hashes,
the per-sample attachment and the liveliness tokens (rmw_zenoh's docs/design.md).

- **Data key**: ``<domain_id>/<topic without its leading and trailing '/'>/<dds type>/<type hash>``,
  e.g. ``0/chatter/std_msgs::msg::dds_::String_/RIHS01_df66...1a18``; the topic's inner slashes
  stay (``0/robot1/chatter/...``).
- **DDS type name**: ``pkg/msg/Name`` -> ``pkg::msg::dds_::Name_``.
- **Type hash**: REP-2011's RIHS01 (sha256 of the canonical JSON type description), as rosidl
  generates it, computed by rosbags' ``Typestore.hash_rihs01`` from the shared typestore (Humble
  definitions + bevfuse's ``.msg`` files; every type the node uses hashes the same in rosbags'
  Humble, Jazzy and Kilted stores). ROS 2 Humble has no type hashes: its rmw_zenoh writes
  ``TypeHashNotSupported`` (``HUMBLE_TYPE_HASH``).
- **Attachment** of every sample: int64 LE sequence number, int64 LE source timestamp (ns since
  the UNIX epoch), one byte GID length (16), the 16-byte GID.
- **Liveliness token** of a publisher/subscription (graph discovery, ``ros2 topic list``):
  ``@ros2_lv/<domain>/<zid>/<node id>/<entity id>/<MP|MS>/<enclave>/<namespace>/<node>/<topic>/<type>/<hash>/<qos>``,
  names mangled ('/' -> '%'), QoS in rmw_zenoh's compact form where a field equal to rmw_zenoh's
  default (reliable, volatile, keep-last 42, infinite durations, automatic liveliness) is left empty.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from functools import cache

from perception.errors import ConfigError, DecodeError
from perception.io.rosmsg import typestore

__all__ = [
    "ATTACHMENT_SIZE",
    "HUMBLE_TYPE_HASH",
    "LIVELINESS_PREFIX",
    "Attachment",
    "QosProfile",
    "SENSOR_DATA_QOS",
    "DEFAULT_QOS",
    "dds_type_name",
    "decode_attachment",
    "encode_attachment",
    "liveliness_key",
    "mangle",
    "qos_keyexpr",
    "ros_type_name",
    "split_key",
    "topic_key",
    "type_hash",
]

HUMBLE_TYPE_HASH = "TypeHashNotSupported"
LIVELINESS_PREFIX = "@ros2_lv"
GID_SIZE = 16
ATTACHMENT_SIZE = 8 + 8 + 1 + GID_SIZE

# rmw/types.h enum values, as rmw_zenoh writes them into a liveliness token
RELIABLE, BEST_EFFORT = 1, 2
TRANSIENT_LOCAL, VOLATILE = 1, 2
KEEP_LAST, KEEP_ALL = 1, 2
_ZENOH_DEFAULT = (RELIABLE, VOLATILE, KEEP_LAST, 42)  # rmw_zenoh's qos.cpp defaults


@dataclass(frozen=True)
class QosProfile:
    """The part of a ROS 2 QoS profile that rmw_zenoh maps: reliability, durability, history, depth."""

    reliability: int = RELIABLE
    durability: int = VOLATILE
    history: int = KEEP_LAST
    depth: int = 10

    @property
    def best_effort(self) -> bool:
        return self.reliability == BEST_EFFORT


DEFAULT_QOS = QosProfile()  # rclcpp's default: reliable, volatile, keep last 10
SENSOR_DATA_QOS = QosProfile(reliability=BEST_EFFORT, depth=5)  # rmw_qos_profile_sensor_data


def dds_type_name(msgtype: str) -> str:
    """``sensor_msgs/msg/PointCloud2`` -> ``sensor_msgs::msg::dds_::PointCloud2_``."""
    parts = msgtype.split("/")
    if len(parts) != 3 or not all(parts):
        raise ConfigError(f"message type {msgtype!r}: expected 'package/msg/Name'")
    pkg, kind, name = parts
    return f"{pkg}::{kind}::dds_::{name}_"


def ros_type_name(dds_name: str) -> str:
    """The inverse of ``dds_type_name``; raises ``DecodeError`` on anything else."""
    parts = dds_name.split("::")
    if len(parts) != 4 or parts[2] != "dds_" or not parts[3].endswith("_") or len(parts[3]) < 2:
        raise DecodeError(f"type {dds_name!r}: not a DDS type name 'pkg::msg::dds_::Name_'")
    return f"{parts[0]}/{parts[1]}/{parts[3][:-1]}"


@cache
def type_hash(msgtype: str, distro: str = "jazzy") -> str:
    """The type hash rmw_zenoh puts in keys: RIHS01 (Iron and later), ``TypeHashNotSupported`` (Humble)."""
    if distro == "humble":
        return HUMBLE_TYPE_HASH
    store = typestore()
    if msgtype not in store.types:
        raise ConfigError(f"message type {msgtype!r} is not in bevfuse's typestore")
    return store.hash_rihs01(msgtype)


def _strip(topic: str) -> str:
    name = topic.strip("/")
    if not name or "//" in name or any(c in name for c in "*$?#"):
        raise ConfigError(f"topic {topic!r}: not a valid ROS topic name for a Zenoh key")
    return name


def topic_key(topic: str, msgtype: str | None, *, domain_id: int = 0, distro: str = "jazzy") -> str:
    """The data key expression of ``topic`` carrying ``msgtype`` (see the module docstring);
    ``msgtype`` None: the key expression matching every type on the topic (``.../*/*``)."""
    if msgtype is None:
        # a DDS type name has no '/', a type hash neither: one chunk each
        return f"{int(domain_id)}/{_strip(topic)}/*/*"
    return f"{int(domain_id)}/{_strip(topic)}/{dds_type_name(msgtype)}/{type_hash(msgtype, distro)}"


def split_key(key: str) -> tuple[int, str, str, str]:
    """(domain id, topic with its leading '/', ROS type, type hash) of a data key; ``DecodeError`` otherwise."""
    parts = key.split("/")
    if len(parts) < 4 or not parts[0].isdigit():
        raise DecodeError(f"key {key!r}: not '<domain>/<topic>/<type>/<hash>'")
    return int(parts[0]), "/" + "/".join(parts[1:-2]), ros_type_name(parts[-2]), parts[-1]


def mangle(name: str) -> str:
    """rmw_zenoh's name mangling for liveliness tokens: every '/' becomes '%'."""
    return name.replace("/", "%")


def qos_keyexpr(qos: QosProfile) -> str:
    """rmw_zenoh's compact QoS string: ``<rel>:<dur>:<hist>,<depth>:<deadline s>,<ns>:<lifespan s>,<ns>:<liveliness>,<s>,<ns>``,
    a field left empty when it equals rmw_zenoh's default (durations are always the default here)."""
    d_rel, d_dur, d_hist, d_depth = _ZENOH_DEFAULT

    def f(value: int, default: int) -> str:
        return "" if value == default else str(value)

    return (f"{f(qos.reliability, d_rel)}:{f(qos.durability, d_dur)}:{f(qos.history, d_hist)},{f(qos.depth, d_depth)}"
            ":,:,:,,")


def liveliness_key(*, kind: str, zid: str, node: str, topic: str, msgtype: str, qos: QosProfile, domain_id: int = 0,
                   namespace: str = "/", node_id: int = 0, entity_id: int = 1, distro: str = "jazzy") -> str:
    """The liveliness token of a publisher (``kind`` 'MP') or subscription ('MS'); enclave '/'."""
    if kind not in ("MP", "MS"):
        raise ConfigError(f"entity kind {kind!r}: expected 'MP' or 'MS'")
    topic_fq = "/" + _strip(topic)
    return "/".join([LIVELINESS_PREFIX, str(int(domain_id)), zid, str(node_id), str(entity_id), kind, mangle("/"),
                     mangle(namespace), mangle(node), mangle(topic_fq), dds_type_name(msgtype),
                     type_hash(msgtype, distro), qos_keyexpr(qos)])


@dataclass(frozen=True)
class Attachment:
    """What rmw_zenoh attaches to each sample."""

    sequence: int
    source_timestamp_ns: int
    gid: bytes


def encode_attachment(sequence: int, source_timestamp_ns: int, gid: bytes) -> bytes:
    if len(gid) != GID_SIZE:
        raise ConfigError(f"gid: expected {GID_SIZE} bytes, got {len(gid)}")
    return struct.pack("<qqB", int(sequence), int(source_timestamp_ns), GID_SIZE) + bytes(gid)


def decode_attachment(data: bytes | None) -> Attachment | None:
    """The attachment of a sample, or None when there is none or it is not rmw_zenoh's layout."""
    if data is None or len(data) < 17:
        return None
    seq, ts, n = struct.unpack_from("<qqB", data)
    if len(data) != 17 + n:
        return None
    return Attachment(seq, ts, bytes(data[17:]))


def gid_for(key: str) -> bytes:
    """A 16-byte GID for an entity. rmw_zenoh hashes the liveliness key with XXH3-128; bevfuse uses
    BLAKE2b-128 of the same key (stable, unique per entity; receivers only compare GIDs)."""
    return hashlib.blake2b(key.encode(), digest_size=GID_SIZE).digest()
