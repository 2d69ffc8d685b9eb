"""rmw_zenoh's names, checked against the examples of rmw_zenoh's docs/design.md."""

from __future__ import annotations

import pytest

from perception.errors import ConfigError, DecodeError
from perception.runtime.rmw_zenoh import (
    DEFAULT_QOS,
    HUMBLE_TYPE_HASH,
    SENSOR_DATA_QOS,
    QosProfile,
    dds_type_name,
    decode_attachment,
    encode_attachment,
    liveliness_key,
    qos_keyexpr,
    ros_type_name,
    split_key,
    topic_key,
    type_hash,
)

# From rmw_zenoh docs/design.md ("Topic and Service name mapping to Zenoh key expressions")
STRING_HASH = "RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18"


def test_type_names() -> None:
    assert dds_type_name("std_msgs/msg/String") == "std_msgs::msg::dds_::String_"
    assert dds_type_name("vision_msgs/msg/Detection3DArray") == "vision_msgs::msg::dds_::Detection3DArray_"
    assert ros_type_name("sensor_msgs::msg::dds_::PointCloud2_") == "sensor_msgs/msg/PointCloud2"
    with pytest.raises(ConfigError, match="package/msg/Name"):
        dds_type_name("String")
    with pytest.raises(DecodeError, match="not a DDS type name"):
        ros_type_name("std_msgs/msg/String")


def test_type_hash_matches_design_doc_example() -> None:
    # the one hash the design document prints; it checks the REP-2011 computation end to end
    assert type_hash("std_msgs/msg/String") == STRING_HASH
    assert type_hash("std_msgs/msg/String", "humble") == HUMBLE_TYPE_HASH
    h = type_hash("vision_msgs/msg/Detection3DArray")
    assert h.startswith("RIHS01_") and len(h) == 7 + 64
    with pytest.raises(ConfigError, match="not in bevfuse's typestore"):
        type_hash("nope_msgs/msg/Nope")


def test_topic_keys_match_design_doc_examples() -> None:
    assert topic_key("/chatter", "std_msgs/msg/String") == f"0/chatter/std_msgs::msg::dds_::String_/{STRING_HASH}"
    assert topic_key("/robot1/chatter", "std_msgs/msg/String") == f"0/robot1/chatter/std_msgs::msg::dds_::String_/{STRING_HASH}"
    assert topic_key("/chatter", "std_msgs/msg/String", domain_id=2, distro="humble") == \
        "2/chatter/std_msgs::msg::dds_::String_/TypeHashNotSupported"
    assert topic_key("/lidar/top", None) == "0/lidar/top/*/*"
    assert split_key(f"0/robot1/chatter/std_msgs::msg::dds_::String_/{STRING_HASH}") == \
        (0, "/robot1/chatter", "std_msgs/msg/String", STRING_HASH)
    for bad in ("/", "/a//b", "/a/*"):
        with pytest.raises(ConfigError):
            topic_key(bad, "std_msgs/msg/String")


def test_qos_and_liveliness_match_design_doc_examples() -> None:
    assert qos_keyexpr(DEFAULT_QOS) == "::,10:,:,:,,"  # the listener's subscription
    assert qos_keyexpr(QosProfile(depth=7)) == "::,7:,:,:,,"  # the talker's publisher
    assert qos_keyexpr(SENSOR_DATA_QOS) == "2::,5:,:,:,,"
    zid = "8b20917502ee955ac4476e0266340d5c"
    key = liveliness_key(kind="MP", zid=zid, node="talker", topic="/chatter", msgtype="std_msgs/msg/String",
                         qos=QosProfile(depth=7), entity_id=10, domain_id=2)
    assert key == f"@ros2_lv/2/{zid}/0/10/MP/%/%/talker/%chatter/std_msgs::msg::dds_::String_/{STRING_HASH}/::,7:,:,:,,"


def test_attachment_roundtrip() -> None:
    gid = bytes(range(16))
    data = encode_attachment(7, 1_700_000_000_123_456_789, gid)
    assert len(data) == 33 and data[16] == 16
    att = decode_attachment(data)
    assert att is not None and (att.sequence, att.source_timestamp_ns, att.gid) == (7, 1_700_000_000_123_456_789, gid)
    assert decode_attachment(None) is None and decode_attachment(b"short") is None and decode_attachment(data + b"x") is None
