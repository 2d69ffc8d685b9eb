"""``bevfuse_msgs/msg/Box3DArray`` read straight from CDR bytes into ``Detections``.

A drive log's ground truth is a few hundred boxes a frame; rosbags builds a message object per box
and ``decode_box3d_array`` walks them: about 2.6 ms a frame of a replay's input stage on the 2-core
development machine, for data that is not even a sensor's. This reads the same fields with
``struct`` in one pass (the inverse of ``perception.runtime.fast_cdr.box3d_array_cdr``) and gives
the same ``Detections`` as ``decode(deserialize(raw))``; ``tests/perception/io/test_cdr_boxes.py``
checks it value for value. Little-endian CDR (ROS 2) only: anything else returns None and the
caller takes the general path.
"""

from __future__ import annotations

import struct

import numpy as np

from perception.classes import NUSCENES_CLASSES
from perception.errors import DecodeError
from perception.io.ros_decode import NS_PER_S, _labels, frame_name
from perception.types import Detections

__all__ = ["box3d_array_from_cdr"]

_CDR_LE = b"\x00\x01\x00\x00"
_U32 = struct.Struct("<I")
_I32x2 = struct.Struct("<iI")
_BOX = struct.Struct("<9d")
_TAIL = struct.Struct("<fii")


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 4  # after the encapsulation header; alignment counts from here

    def align(self, n: int) -> None:
        self.pos += (-(self.pos - 4)) % n

    def u32(self) -> int:
        self.align(4)
        (v,) = _U32.unpack_from(self.data, self.pos)
        self.pos += 4
        return int(v)

    def string(self) -> str:
        n = self.u32()
        if n == 0 or self.pos + n > len(self.data):
            raise DecodeError(f"string of {n} bytes at {self.pos} runs past the message ({len(self.data)} bytes)")
        s = self.data[self.pos:self.pos + n - 1].decode()
        self.pos += n
        return s


def box3d_array_from_cdr(raw: bytes | memoryview, topic: str = "", class_names: tuple[str, ...] = NUSCENES_CLASSES,
                         ) -> Detections | None:
    """The ``Detections`` of one serialized Box3DArray, or None when ``raw`` is not little-endian
    CDR. Raises ``DecodeError`` (naming ``topic``) for a truncated or inconsistent message."""
    data = bytes(raw)
    if data[:4] != _CDR_LE:
        return None
    where = f"{topic or '<Box3DArray>'}: Box3DArray"
    c = _Cursor(data)
    try:
        c.align(4)
        sec, nsec = _I32x2.unpack_from(data, c.pos)
        c.pos += 8
        frame_id = c.string()
        n = c.u32()
        if n > len(data) // 88:  # a box takes at least 72 + 3 * 5 + 12 bytes
            raise DecodeError(f"{n} boxes cannot fit in {len(data)} bytes")
        f = np.empty((n, 9), np.float64)
        score = np.empty(n, np.float32)
        lidar = np.empty(n, np.int64)
        radar = np.empty(n, np.int64)
        names, attrs, tracks = [], [], []
        for i in range(n):
            c.align(8)
            f[i] = _BOX.unpack_from(data, c.pos)
            c.pos += 72
            names.append(c.string())
            attrs.append(c.string())
            tracks.append(c.string())
            c.align(4)
            score[i], lidar[i], radar[i] = _TAIL.unpack_from(data, c.pos)
            c.pos += 12
    except (struct.error, UnicodeDecodeError, DecodeError) as exc:
        raise DecodeError(f"{where}: malformed CDR: {exc}") from None
    return Detections(
        stamp_ns=int(sec) * NS_PER_S + int(nsec), frame_id=frame_name(frame_id), class_names=class_names,
        center=f[:, 0:3].copy(), size=f[:, 3:6].copy(), yaw=f[:, 6].copy(), velocity=f[:, 7:9].copy(), score=score,
        label=_labels(names, class_names, where), attribute=np.array(attrs, dtype=object), track_id=np.array(tracks, dtype=object),
        num_lidar_pts=None if np.all(lidar == -1) else lidar, num_radar_pts=None if np.all(radar == -1) else radar,
    )
