"""The ROS message types bevfuse reads and writes: ROS 2 Humble plus a few registered packages.

The store is rosbags' ROS 2 Humble typestore with these definitions added from the ``.msg`` files
shipped in ``perception/io/msg/<package>/msg/<Name>.msg``:

- ``radar_msgs/msg/RadarReturn``, ``radar_msgs/msg/RadarScan`` (ros-perception/radar_msgs),
- ``vision_msgs/msg/{ObjectHypothesis, ObjectHypothesisWithPose, BoundingBox3D, Detection3D,
  Detection3DArray}`` (vision_msgs 4.x, as in Humble),
- ``bevfuse_msgs/msg/Box3D``, ``bevfuse_msgs/msg/Box3DArray``: bevfuse's ground-truth boxes.

A bag written with this store carries the full definition of every type it uses (``generate_msgdef``
puts the dependencies in), so any ROS 2 tool, or rosbags' ``AnyReader`` with no extra types, reads
the custom types without bevfuse installed.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

__all__ = ["CUSTOM_MSGTYPES", "MSG_DIR", "make", "msg_definitions", "typestore"]

MSG_DIR = Path(__file__).resolve().parent / "msg"


def msg_definitions() -> dict[str, str]:
    """ROS type name (``pkg/msg/Name``) -> ``.msg`` text, for every file under ``MSG_DIR``, sorted by name."""
    out: dict[str, str] = {}
    for path in sorted(MSG_DIR.glob("*/msg/*.msg")):
        out[f"{path.parent.parent.name}/msg/{path.stem}"] = path.read_text(encoding="utf-8")
    return out


CUSTOM_MSGTYPES: tuple[str, ...] = tuple(msg_definitions())


@lru_cache(maxsize=1)
def typestore() -> Typestore:
    """The shared store: ROS 2 Humble + the custom types above (built once, ~50 ms)."""
    store = get_typestore(Stores.ROS2_HUMBLE)
    types: dict[str, Any] = {}
    for name, text in msg_definitions().items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


def make(msgtype: str, **fields: Any) -> Any:
    """Construct a message of ``msgtype`` (e.g. ``'sensor_msgs/msg/Imu'``) from the shared store."""
    return typestore().types[msgtype](**fields)
