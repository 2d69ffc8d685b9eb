"""Live view: a Foxglove WebSocket server (the ``foxglove-sdk`` package) serving each frame.

Channels (all in the frame ``ego``, stamped with the frame's sensor stamp):

- ``/bevfuse/scene``: ``foxglove.SceneUpdate``, a cube and a label per box (colour by class);
- ``/bevfuse/detections``: ``vision_msgs/msg/Detection3DArray`` as CDR with its ``ros2msg``
  schema (the bytes the ROS topic carries: a client decodes it with any ROS 2 CDR reader);
- ``/bevfuse/lidar``: ``foxglove.PointCloud`` of the frame's (accumulated, deskewed) LiDAR points;
- ``/bevfuse/camera/<name>``: ``foxglove.CompressedImage`` (JPEG) per camera.

Each channel is only encoded while a client subscribes to it (``has_sinks``): with no viewer
connected the server costs the worker nothing. The server binds to
127.0.0.1 unless another host is named; port 0 lets the OS choose (``port`` says which).
"""

from __future__ import annotations

import colorsys
from typing import Any

import cv2
import numpy as np

from perception.errors import BevfuseError
from perception.io.rosmsg import typestore
from perception.runtime.fast_cdr import detection3d_array_cdr
from perception.runtime.outputs import FrameResult, NodeStatus
from perception.types import Detections

__all__ = ["FoxgloveSink"]

_DET_TYPE = "vision_msgs/msg/Detection3DArray"
NS_PER_S = 1_000_000_000


def _class_colors(names: tuple[str, ...]) -> dict[str, tuple[float, float, float]]:
    return {n: colorsys.hsv_to_rgb(i / max(len(names), 1), 0.8, 1.0) for i, n in enumerate(names)}


class FoxgloveSink:
    """A ``FramePublisher`` serving frames to Foxglove over a WebSocket (see the module docstring)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8765, *, name: str = "bevfuse", jpeg_quality: int = 80) -> None:
        try:
            import foxglove
            from foxglove import channels
        except ImportError as exc:  # pragma: no cover - foxglove-sdk is a dependency of the runtime
            raise BevfuseError(f"--foxglove needs the foxglove-sdk package: {exc}") from None
        self._fg = foxglove
        self._msgs = __import__("foxglove.messages", fromlist=["SceneUpdate"])
        self.context = foxglove.Context()  # its own context: two servers in one process never mix
        try:
            self.server = foxglove.start_server(name=name, host=host, port=port, context=self.context)
        except Exception as exc:  # foxglove raises its own errors for a port in use
            raise BevfuseError(f"foxglove: cannot serve on {host}:{port}: {exc}") from None
        self.host, self.port = host, int(self.server.port)
        self.jpeg_quality = int(jpeg_quality)
        msgdef, _ = typestore().generate_msgdef(_DET_TYPE, ros_version=2)
        self.scene = channels.SceneUpdateChannel("/bevfuse/scene", context=self.context)
        self.detections = foxglove.Channel(
            "/bevfuse/detections", message_encoding="cdr", context=self.context,
            schema=foxglove.Schema(name=_DET_TYPE, encoding="ros2msg", data=msgdef.encode()))
        self.lidar = channels.PointCloudChannel("/bevfuse/lidar", context=self.context)
        self.cameras: dict[str, Any] = {}
        self._colors: dict[str, tuple[float, float, float]] = {}

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    # -- messages ------------------------------------------------------------------------------------

    def _timestamp(self, stamp_ns: int) -> Any:
        sec, nsec = divmod(int(stamp_ns), NS_PER_S)
        return self._msgs.Timestamp(sec=sec, nsec=nsec)

    def _pose(self, center: np.ndarray, yaw: float) -> Any:
        m = self._msgs
        return m.Pose(position=m.Vector3(x=float(center[0]), y=float(center[1]), z=float(center[2])),
                      orientation=m.Quaternion(x=0.0, y=0.0, z=float(np.sin(yaw / 2)), w=float(np.cos(yaw / 2))))

    def scene_update(self, det: Detections) -> Any:
        """SceneUpdate of one entity holding a cube and a text per box."""
        m = self._msgs
        if not self._colors:
            self._colors = _class_colors(det.class_names)
        cubes, texts = [], []
        for i in range(len(det)):
            name = det.class_names[int(det.label[i])]
            r, g, b = self._colors.get(name, (1.0, 1.0, 1.0))
            pose = self._pose(det.center[i], float(det.yaw[i]))
            cubes.append(m.CubePrimitive(pose=pose, size=m.Vector3(x=float(det.size[i, 0]), y=float(det.size[i, 1]),
                                                                    z=float(det.size[i, 2])), color=m.Color(r=r, g=g, b=b, a=0.4)))
            top = det.center[i] + np.array([0.0, 0.0, det.size[i, 2] / 2 + 0.3])
            texts.append(m.TextPrimitive(pose=self._pose(top, 0.0), billboard=True, font_size=14.0, scale_invariant=True,
                                         color=m.Color(r=r, g=g, b=b, a=1.0), text=f"{name} {float(det.score[i]):.2f}"))
        entity = m.SceneEntity(timestamp=self._timestamp(det.stamp_ns), frame_id=det.frame_id, id="detections",
                               cubes=cubes, texts=texts)
        return m.SceneUpdate(entities=[entity])

    def _point_cloud(self, result: FrameResult) -> Any:
        m = self._msgs
        cloud = result.frame.lidar
        assert cloud is not None
        pts = np.ascontiguousarray(cloud.points[:, : min(4, cloud.points.shape[1])], dtype=np.float32)
        fields = [m.PackedElementField(name=n, offset=4 * i, type=m.PackedElementFieldNumericType.Float32)
                  for i, n in enumerate(cloud.fields[: pts.shape[1]])]
        return m.PointCloud(timestamp=self._timestamp(result.frame.stamp_ns), frame_id="ego", pose=self._pose(np.zeros(3), 0.0),
                            point_stride=4 * pts.shape[1], fields=fields, data=pts.tobytes())

    # -- FramePublisher ------------------------------------------------------------------------------

    def publish_frame(self, result: FrameResult) -> None:
        det, stamp = result.detections, result.frame.stamp_ns
        if self.scene.has_sinks():
            self.scene.log(self.scene_update(det), log_time=stamp)
        if self.detections.has_sinks():
            self.detections.log(detection3d_array_cdr(det), log_time=stamp)
        if result.frame.lidar is not None and self.lidar.has_sinks():
            self.lidar.log(self._point_cloud(result), log_time=stamp)
        for name, img in result.frame.images.items():
            ch = self.cameras.get(name)
            if ch is None:
                from foxglove import channels

                ch = self.cameras[name] = channels.CompressedImageChannel(f"/bevfuse/camera/{name}", context=self.context)
            if not ch.has_sinks():
                continue
            if img.encoded is not None:  # the camera's own JPEG/PNG: sent as it came
                data, fmt = img.encoded.data, img.encoded.format
            else:
                ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img.image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
                if not ok:
                    continue
                data, fmt = buf.tobytes(), "jpeg"
            ch.log(self._msgs.CompressedImage(timestamp=self._timestamp(img.stamp_ns), frame_id=img.frame_id,
                                              data=data, format=fmt), log_time=stamp)

    def publish_status(self, status: NodeStatus) -> None:
        pass  # diagnostics go to the ROS topics; Foxglove shows them from there

    def close(self) -> None:
        try:
            self.server.stop()
        except Exception:  # noqa: BLE001 - stopping twice
            pass
