"""box3d_array_from_cdr gives what rosbags' deserialization + decode_box3d_array give, field by field,
for ground truth with and without point counts, attributes and track ids, and none at all."""

from __future__ import annotations

import numpy as np
import pytest

from perception.errors import DecodeError
from perception.io.cdr_boxes import box3d_array_from_cdr
from perception.io.ros_decode import decode
from perception.io.rosmsg import typestore
from perception.runtime.fast_cdr import box3d_array_cdr
from tests.perception.io.rosbag_samples import T0, detections

MSGTYPE = "bevfuse_msgs/msg/Box3DArray"


def _slow(raw: bytes):
    return decode(typestore().deserialize_cdr(raw, MSGTYPE), MSGTYPE, topic="/gt")


@pytest.mark.parametrize("n", [0, 1, 9])
@pytest.mark.parametrize("counts", [True, False])
def test_equals_the_general_path(n: int, counts: bool) -> None:
    from dataclasses import replace

    det = detections(T0 + 123, np.random.default_rng(n), n=max(n, 1))
    if n == 0:
        det = det.select(np.zeros(1, bool))
    if not counts:
        det = replace(det, num_lidar_pts=None, num_radar_pts=None)
    raw = box3d_array_cdr(det)
    want, got = _slow(raw), box3d_array_from_cdr(raw, "/gt")
    assert got is not None
    assert got.stamp_ns == want.stamp_ns and got.frame_id == want.frame_id and got.class_names == want.class_names
    for name in ("center", "size", "yaw", "velocity", "score", "label", "attribute", "track_id", "num_lidar_pts", "num_radar_pts"):
        a, b = getattr(got, name), getattr(want, name)
        if b is None:
            assert a is None, name
        else:
            assert a.dtype == b.dtype and a.shape == b.shape, name
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_truncated_and_foreign_bytes() -> None:
    raw = box3d_array_cdr(detections(T0, np.random.default_rng(0), n=4))
    with pytest.raises(DecodeError, match="/gt: Box3DArray: malformed CDR"):
        box3d_array_from_cdr(raw[: len(raw) - 30], "/gt")
    assert box3d_array_from_cdr(b"\x00\x00\x00\x00" + raw[4:]) is None  # big-endian CDR: the general path
