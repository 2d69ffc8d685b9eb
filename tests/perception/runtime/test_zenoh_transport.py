"""Two Zenoh sessions on loopback (no router, no scouting): CDR messages on rmw_zenoh's keys."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from perception.io.ros_decode import decode_detection3d_array
from perception.io.ros_encode import encode_detection3d_array, serialize
from perception.io.rosmsg import typestore
from perception.runtime.errors import TransportError
from perception.runtime.rmw_zenoh import SENSOR_DATA_QOS, topic_key
from perception.runtime.transport import Received
from perception.runtime.zenoh_transport import ZenohTransport
from perception.types import Detections

from .conftest import wait_until

TIMEOUT_S = 15.0  # generous: the machine is shared


def _detections(stamp_ns: int) -> Detections:
    return Detections(stamp_ns=stamp_ns, frame_id="ego", class_names=("car", "pedestrian"),
                      center=np.array([[10.0, -2.0, 0.8], [5.5, 3.0, 0.9]]), size=np.array([[4.5, 1.9, 1.6], [0.7, 0.7, 1.8]]),
                      yaw=np.array([0.3, -1.2]), velocity=np.zeros((2, 2)), score=np.array([0.9, 0.6], np.float32),
                      label=np.array([0, 1]))



@pytest.fixture
def pair(endpoint: str):  # noqa: ANN201
    listener = ZenohTransport(connect=(), listen=(endpoint,), node="listener")
    talker = ZenohTransport(connect=(endpoint,), node="talker")
    try:
        assert talker.wait_for_peer(TIMEOUT_S), "the two sessions did not connect over loopback"
        yield listener, talker
    finally:
        talker.close()
        listener.close()


def test_detections_roundtrip_with_attachment(pair: tuple[ZenohTransport, ZenohTransport]) -> None:
    listener, talker = pair
    got: list[Received] = []
    lock = threading.Lock()

    def on(r: Received) -> None:
        with lock:
            got.append(r)

    msgtype = "vision_msgs/msg/Detection3DArray"
    sub = listener.subscribe("/bevfuse/detections", msgtype, on)
    pub = talker.publisher("/bevfuse/detections", msgtype)
    assert pub.key == topic_key("/bevfuse/detections", msgtype)
    assert wait_until(pub.matched, TIMEOUT_S), "the publisher never saw the subscriber"
    sent = [serialize(encode_detection3d_array(_detections(1_000_000_000 + i)), msgtype) for i in range(3)]
    for data in sent:
        pub.publish(data)
    assert wait_until(lambda: len(got) == 3, TIMEOUT_S)
    assert [r.data for r in got] == sent
    assert [r.sequence for r in got] == [1, 2, 3]
    assert all(r.msgtype == msgtype and r.topic == "/bevfuse/detections" for r in got)
    assert all(r.source_ns is not None and abs(r.receive_ns - r.source_ns) < 10e9 for r in got)
    det = decode_detection3d_array(typestore().deserialize_cdr(got[0].data, msgtype), "/bevfuse/detections", ("car", "pedestrian"))
    ref = _detections(1_000_000_000)
    np.testing.assert_allclose(det.center, ref.center)
    np.testing.assert_allclose(det.yaw, ref.yaw, atol=1e-12)
    sub.close()


def test_any_type_subscription_reads_the_type_from_the_key(pair: tuple[ZenohTransport, ZenohTransport]) -> None:
    listener, talker = pair
    got: list[Received] = []
    listener.subscribe("/fix", None, got.append, SENSOR_DATA_QOS)
    pub = talker.publisher("/fix", "std_msgs/msg/String", SENSOR_DATA_QOS)
    assert wait_until(pub.matched, TIMEOUT_S)
    data = serialize(typestore().types["std_msgs/msg/String"](data="hi"), "std_msgs/msg/String")
    pub.publish(data)
    assert wait_until(lambda: len(got) == 1, TIMEOUT_S)
    assert got[0].msgtype == "std_msgs/msg/String" and got[0].data == data


def test_liveliness_tokens_announce_the_entities(pair: tuple[ZenohTransport, ZenohTransport]) -> None:
    listener, talker = pair
    talker.publisher("/bevfuse/detections", "vision_msgs/msg/Detection3DArray")
    keys: list[str] = []

    def tokens() -> bool:
        keys[:] = [str(r.ok.key_expr) for r in listener.session.liveliness().get("@ros2_lv/0/**", timeout=2.0) if r.ok]
        return any("/MP/" in k for k in keys)

    assert wait_until(tokens, 10.0), keys
    pub_key = next(k for k in keys if "/MP/" in k)
    assert pub_key.startswith(f"@ros2_lv/0/{talker.zid}/0/")
    assert "/MP/%/%/talker/%bevfuse%detections/vision_msgs::msg::dds_::Detection3DArray_/RIHS01_" in pub_key
    assert f"@ros2_lv/0/{talker.zid}/0/0/NN/%/%/talker" in keys


def test_bad_endpoint_is_a_transport_error() -> None:
    with pytest.raises(TransportError, match="zenoh"):
        ZenohTransport(connect=("nonsense-endpoint",))
    with pytest.raises(TransportError, match="at least one endpoint"):
        ZenohTransport(connect=(), listen=())
