"""The Foxglove WebSocket server: a client on 127.0.0.1 subscribes and receives a detections message."""

from __future__ import annotations

import json
import struct
import time

import numpy as np
import pytest

from perception.errors import BevfuseError
from perception.io.ros_decode import decode_detection3d_array
from perception.io.rosmsg import typestore
from perception.runtime.foxglove_sink import FoxgloveSink
from perception.runtime.outputs import FrameResult
from perception.types import CameraImage, Detections, PointCloud, SyncedFrame

websocket = pytest.importorskip("websocket", reason="websocket-client is a test dependency of the runtime")

STAMP = 1_700_000_000_250_000_000
CLASSES = ("car", "pedestrian")
TIMEOUT_S = 15.0


def _result() -> FrameResult:
    det = Detections(stamp_ns=STAMP, frame_id="ego", class_names=CLASSES, center=np.array([[12.0, 1.0, 0.9]]),
                     size=np.array([[4.4, 1.8, 1.5]]), yaw=np.array([0.25]), velocity=np.zeros((1, 2)),
                     score=np.array([0.8], np.float32), label=np.array([0]))
    cloud = PointCloud(STAMP, "ego", np.random.default_rng(0).normal(size=(100, 5)).astype(np.float32),
                       fields=("x", "y", "z", "intensity", "time_lag"))
    img = CameraImage(STAMP, "CAM_FRONT", "cam_front", np.full((90, 160, 3), 128, np.uint8))
    frame = SyncedFrame(stamp_ns=STAMP, images={"CAM_FRONT": img}, lidar=cloud, radar=None, world_T_ego=np.eye(4))
    return FrameResult(frame=frame, detections=det, index=0, processing_ns=1, latency_ns=2, queue_wait_ns=0, publish_ns=3)


def _recv_json(ws, op: str, deadline: float) -> dict:  # noqa: ANN001
    while time.monotonic() < deadline:
        msg = ws.recv()
        if isinstance(msg, str):
            data = json.loads(msg)
            if data.get("op") == op:
                return data
    raise AssertionError(f"no {op!r} message in time")


def test_client_receives_detections() -> None:
    sink = FoxgloveSink(port=0)  # the OS picks a free port on 127.0.0.1
    result = _result()
    try:
        assert sink.host == "127.0.0.1" and sink.port > 0
        ws = websocket.create_connection(sink.url, subprotocols=["foxglove.sdk.v1"], timeout=TIMEOUT_S)
        try:
            deadline = time.monotonic() + TIMEOUT_S
            adv = _recv_json(ws, "advertise", deadline)
            by_topic = {c["topic"]: c for c in adv["channels"]}
            assert {"/bevfuse/detections", "/bevfuse/scene", "/bevfuse/lidar"} <= set(by_topic)
            det_ch = by_topic["/bevfuse/detections"]
            assert (det_ch["encoding"], det_ch["schemaName"], det_ch["schemaEncoding"]) == \
                ("cdr", "vision_msgs/msg/Detection3DArray", "ros2msg")
            ws.send(json.dumps({"op": "subscribe", "subscriptions": [
                {"id": 7, "channelId": det_ch["id"]}, {"id": 8, "channelId": by_topic["/bevfuse/scene"]["id"]}]}))
            got: dict[int, bytes] = {}
            ws.settimeout(0.2)
            while len(got) < 2 and time.monotonic() < deadline:
                sink.publish_frame(result)  # until the server has seen the subscription
                try:
                    msg = ws.recv()
                except websocket.WebSocketTimeoutException:
                    continue
                if isinstance(msg, bytes) and msg[0] == 0x01:
                    sub_id, log_time = struct.unpack_from("<IQ", msg, 1)
                    assert log_time == STAMP
                    got[sub_id] = msg[13:]
        finally:
            ws.close()
    finally:
        sink.close()
    assert set(got) == {7, 8}, "no detections message over the WebSocket"
    ros = typestore().deserialize_cdr(got[7], "vision_msgs/msg/Detection3DArray")
    det = decode_detection3d_array(ros, "/bevfuse/detections", CLASSES)
    np.testing.assert_allclose(det.center, result.detections.center)
    np.testing.assert_allclose(det.yaw, result.detections.yaw, atol=1e-12)
    assert det.labels_as_names == ["car"] and len(got[8]) > 0  # SceneUpdate: protobuf bytes


def test_port_in_use_is_a_clear_error() -> None:
    sink = FoxgloveSink(port=0)
    try:
        with pytest.raises(BevfuseError, match=str(sink.port)):
            FoxgloveSink(port=sink.port)
    finally:
        sink.close()
