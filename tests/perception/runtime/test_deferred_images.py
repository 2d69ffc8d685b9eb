"""Deferred image decoding in the node: the inputs hand JPEGs on as ``EncodedImage``s, and the
core's worker decodes only the frames it takes, into the pixels an eager decode gives; an image
that does not decode is counted against its camera and the frame goes on without it."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from calib.rig import Rig, SensorSpec
from perception.errors import DecodeError
from perception.io.ros_decode import decode, decode_encoded_image, encoded_compressed_image
from perception.io.ros_encode import header, serialize
from perception.io.rosmsg import make, typestore
from perception.runtime.core import NodeConfig, NodeCore
from perception.runtime.ros_io import SensorInputs
from perception.runtime.transport import Received
from perception.types import CameraImage, Detections, EncodedImage, Modality, SyncedFrame

from .conftest import wait_until

NS = 1_000_000_000
RIG = Rig((SensorSpec("LIDAR_TOP", Modality.LIDAR, "lidar", "/lidar", 20.0),
           SensorSpec("CAM_FRONT", Modality.CAMERA, "cam_front", "/cam_front/compressed", 12.0),
           SensorSpec("CAM_BACK", Modality.CAMERA, "cam_back", "/cam_back/compressed", 12.0)))
_CI = "sensor_msgs/msg/CompressedImage"


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pic = cv2.GaussianBlur(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), (5, 5), 0)
    ok, buf = cv2.imencode(".jpg", pic)
    assert ok
    return buf.tobytes()


def _compressed(stamp_ns: int, frame: str, data: bytes, fmt: str = "jpeg") -> object:
    return make(_CI, header=header(stamp_ns, frame), format=fmt, data=np.frombuffer(data, np.uint8))


class TestEncodedImage:
    def test_decodes_to_the_eager_pixels(self) -> None:
        msg = _compressed(5 * NS, "cam_front", _jpeg(0))
        eager = decode(msg, _CI, topic="/cam_front/compressed", sensor="CAM_FRONT")
        lazy = decode(msg, _CI, topic="/cam_front/compressed", sensor="CAM_FRONT", defer_images=True)
        assert isinstance(eager, CameraImage) and isinstance(lazy, EncodedImage)
        assert (lazy.stamp_ns, lazy.camera, lazy.frame_id, lazy.format) == (5 * NS, "CAM_FRONT", "cam_front", "jpeg")
        out = decode_encoded_image(lazy)
        assert (out.stamp_ns, out.camera, out.frame_id) == (eager.stamp_ns, eager.camera, eager.frame_id)
        np.testing.assert_array_equal(out.image, eager.image)

    def test_format_checked_at_once_bytes_at_decode(self) -> None:
        with pytest.raises(DecodeError, match="not supported"):
            encoded_compressed_image(_compressed(NS, "c", b"x", fmt="tiff"), "/c")
        png = encoded_compressed_image(_compressed(NS, "c", b"x", fmt="rgb8; png compressed bgr8"), "/c", "C")
        assert png.format == "png"
        bad = encoded_compressed_image(_compressed(NS, "c", _jpeg(1)[:40]), "/c", "C")  # truncated: no check yet
        with pytest.raises(DecodeError, match="could not decode"):
            decode_encoded_image(bad)


class _Recorder:
    def __init__(self) -> None:
        self.frames: list[SyncedFrame] = []

    def step(self, frame: SyncedFrame) -> Detections:
        self.frames.append(frame)
        return Detections.empty(frame.stamp_ns, "ego", ("car",))



def test_the_worker_decodes_the_frames_it_takes() -> None:
    good = encoded_compressed_image(_compressed(NS, "cam_front", _jpeg(2)), "/cam_front/compressed", "CAM_FRONT")
    bad = EncodedImage(NS, "CAM_BACK", "cam_back", _jpeg(3)[:50])
    frame = SyncedFrame(stamp_ns=NS, images={"CAM_FRONT": good, "CAM_BACK": bad}, lidar=None, radar=None,
                        world_T_ego=np.eye(4), missing=frozenset({"LIDAR_TOP"}))
    proc = _Recorder()
    core = NodeCore(RIG, synchronizer=None, processor=proc, config=NodeConfig(decode_threads=2))
    core.start()
    try:
        core._emit([frame])
        assert wait_until(lambda: core.frames_done == 1, 10.0)
    finally:
        assert core.stop()
    (got,) = proc.frames
    assert set(got.images) == {"CAM_FRONT"} and isinstance(got.images["CAM_FRONT"], CameraImage)
    np.testing.assert_array_equal(got.images["CAM_FRONT"].image, decode_encoded_image(good).image)
    assert got.missing == {"LIDAR_TOP", "CAM_BACK"} and got.degraded
    assert core.malformed == {"CAM_BACK": 1} and "could not decode" in core.recent_malformed[0]


@pytest.mark.parametrize("defer", [True, False])
def test_inputs_defer_images_by_default(defer: bool) -> None:
    class Sink:
        def __init__(self) -> None:
            self.messages: list = []
            self.malformed: list = []

        def on_message(self, msg) -> None:  # noqa: ANN001
            self.messages.append(msg)

        def on_malformed(self, sensor: str, reason: str) -> None:
            self.malformed.append((sensor, reason))

    sink = Sink()
    kwargs = {} if defer else {"defer_images": False}
    inputs = SensorInputs(None, RIG, sink, **kwargs)  # type: ignore[arg-type] - no transport: samples put by hand
    data = serialize(_compressed(3 * NS, "cam_back", _jpeg(4)), _CI)
    inputs._received.put(Received("/cam_back/compressed", _CI, data, time.time_ns()))
    worker = threading.Thread(target=inputs._decode_loop, daemon=True)
    worker.start()
    try:
        assert wait_until(lambda: len(sink.messages) == 1, 10.0)
    finally:
        inputs._stop.set()
        worker.join(timeout=2.0)
    payload = sink.messages[0].payload
    assert sink.messages[0].sensor == "CAM_BACK" and payload.stamp_ns == 3 * NS and not sink.malformed
    if defer:
        assert isinstance(payload, EncodedImage) and payload.data == _jpeg(4)
    else:
        assert isinstance(payload, CameraImage)
        ref = typestore().deserialize_cdr(data, _CI)
        np.testing.assert_array_equal(payload.image, decode(ref, _CI, sensor="CAM_BACK").image)
