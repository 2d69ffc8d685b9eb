"""``detections.mcap``: a ROS 2 bag (MCAP storage) of a replay's detections over its input data.

Written through the project's ``BagWriter`` (rosbag2 metadata + one ``.mcap``, every message
definition embedded), so Foxglove, ``ros2 bag play``, rosbags or the ``mcap`` library open it
without bevfuse. Per synchronized frame, all stamped at the frame's stamp in the ego frame:

=====================================  =====================================  ===============================
topic                                  type                                   what
=====================================  =====================================  ===============================
``/bevfuse/detections``                vision_msgs/msg/Detection3DArray       every detection (class, score)
``/bevfuse/markers``                   visualization_msgs/msg/MarkerArray     boxes above the display score,
                                                                              class-coloured, with a label
``/bevfuse/ground_truth/markers``      visualization_msgs/msg/MarkerArray     ground truth, white (if any)
the rig's LiDAR topic                  sensor_msgs/msg/PointCloud2            the frame's newest sweep (ego
                                                                              frame, deskewed)
``/bevfuse/radar``                     sensor_msgs/msg/PointCloud2            the accumulated radar (ego)
each camera's topic (``.../compressed``) sensor_msgs/msg/CompressedImage      the image used (JPEG), once
``/tf``                                tf2_msgs/msg/TFMessage                 world -> ego (when posed)
``/tf_static``, ``.../camera_info``    TFMessage, CameraInfo                  the rig, at the first frame
=====================================  =====================================  ===============================

The LiDAR topic carries the newest sweep only, not the several the network gets accumulated: the
older ones are the previous frames' sweeps again, and writing them would triple a bag that the
point clouds already dominate (a 20 s log at 10 Hz with 3 sweeps: ~0.5 GB instead of ~0.16 GB).

Each MarkerArray starts with a DELETEALL marker: a viewer shows only the current frame's boxes
instead of piling up every box of the log (markers with no lifetime live forever in RViz).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

from calib import se3
from calib.rig import Rig
from perception.boxes import box_corners
from perception.io.bag_writer import BagWriter
from perception.io.ros_encode import EGO_FRAME, header, serialize
from perception.io.rosmsg import make, typestore
from perception.runtime.fast_cdr import CdrWriter, detection3d_array_cdr
from perception.types import CameraImage, Detections, Modality, PointCloud, SensorMessage, SyncedFrame
from perception.viz.camera import BOX_EDGES
from perception.viz.colors import GT_COLOR, class_color

__all__ = [
    "DETECTIONS_TOPIC",
    "GT_MARKERS_TOPIC",
    "MARKERS_TOPIC",
    "RADAR_TOPIC",
    "TF_TOPIC",
    "DetectionsBag",
    "box_markers",
    "newest_sweep",
]

DETECTIONS_TOPIC = "/bevfuse/detections"
MARKERS_TOPIC = "/bevfuse/markers"
GT_MARKERS_TOPIC = "/bevfuse/ground_truth/markers"
RADAR_TOPIC = "/bevfuse/radar"
TF_TOPIC = "/tf"
WORLD_FRAME = "world"

_MARKER = "visualization_msgs/msg/Marker"
_MARKER_ARRAY = "visualization_msgs/msg/MarkerArray"
_LINE_WIDTH_M = 0.08
_TEXT_HEIGHT_M = 0.7


def _rgba(rgb: tuple[int, int, int], a: float = 1.0) -> Any:
    return make("std_msgs/msg/ColorRGBA", r=rgb[0] / 255.0, g=rgb[1] / 255.0, b=rgb[2] / 255.0, a=float(a))


def _identity_pose() -> Any:
    return make("geometry_msgs/msg/Pose", position=make("geometry_msgs/msg/Point", x=0.0, y=0.0, z=0.0),
                orientation=make("geometry_msgs/msg/Quaternion", x=0.0, y=0.0, z=0.0, w=1.0))


def _marker(hdr: Any, ns: str, mid: int, mtype: int, action: int, *, scale: tuple[float, float, float] = (0.0, 0.0, 0.0),
            colour: Any = None, points: list[Any] | None = None, pose: Any = None, text: str = "") -> Any:
    return make(
        _MARKER, header=hdr, ns=ns, id=int(mid), type=int(mtype), action=int(action), pose=pose or _identity_pose(),
        scale=make("geometry_msgs/msg/Vector3", x=scale[0], y=scale[1], z=scale[2]),
        color=colour or _rgba((0, 0, 0), 0.0), lifetime=make("builtin_interfaces/msg/Duration", sec=0, nanosec=0),
        frame_locked=False, points=points or [], colors=[], texture_resource="",
        texture=make("sensor_msgs/msg/CompressedImage", header=header(0, ""), format="", data=np.zeros(0, np.uint8)),
        uv_coordinates=[], text=text, mesh_resource="",
        mesh_file=make("visualization_msgs/msg/MeshFile", filename="", data=np.zeros(0, np.uint8)),
        mesh_use_embedded_materials=False,
    )


def box_markers(det: Detections, *, ns: str, colour: tuple[int, int, int] | None = None, labels: bool = True) -> Any:
    """A MarkerArray of ``det``: DELETEALL, then per box a LINE_LIST of its 12 edges (24 points) and,
    with ``labels``, a TEXT_VIEW_FACING 'class score' above it. ``colour`` None = by class."""
    hdr = header(det.stamp_ns, det.frame_id)
    kind = typestore().types[_MARKER]  # the type constants (LINE_LIST, DELETEALL, ...)
    markers = [_marker(hdr, ns, 0, kind.CUBE, kind.DELETEALL)]
    if len(det):
        corners = box_corners(det.center, det.size, det.yaw)  # (M, 8, 3)
        names = det.labels_as_names
        for i in range(len(det)):
            c = _rgba(colour or class_color(names[i]))
            pts = [make("geometry_msgs/msg/Point", x=float(p[0]), y=float(p[1]), z=float(p[2]))
                   for p in corners[i][BOX_EDGES.reshape(-1)]]
            markers.append(_marker(hdr, ns, 2 * i, kind.LINE_LIST, kind.ADD, scale=(_LINE_WIDTH_M, 0.0, 0.0), colour=c,
                                   points=pts))
            if labels:
                top = det.center[i] + np.array([0.0, 0.0, det.size[i, 2] / 2 + 0.5])
                pose = make("geometry_msgs/msg/Pose", position=make("geometry_msgs/msg/Point", x=float(top[0]),
                                                                    y=float(top[1]), z=float(top[2])),
                            orientation=make("geometry_msgs/msg/Quaternion", x=0.0, y=0.0, z=0.0, w=1.0))
                markers.append(_marker(hdr, ns, 2 * i + 1, kind.TEXT_VIEW_FACING, kind.ADD, scale=(0.0, 0.0, _TEXT_HEIGHT_M),
                                       colour=c, pose=pose, text=f"{names[i]} {float(det.score[i]):.2f}"))
    return make(_MARKER_ARRAY, markers=markers)


def box_markers_cdr(det: Detections, *, ns: str, colour: tuple[int, int, int] | None = None, labels: bool = True) -> bytes:
    """``serialize(box_markers(det, ...), 'visualization_msgs/msg/MarkerArray')``, packed straight
    to CDR (the same bytes; tested). The ground truth of a busy frame is a few hundred boxes of 24
    points each: as message objects that was 0.1 s a frame, most of a replay's sink time."""

    kind = typestore().types[_MARKER]
    w = CdrWriter()
    n = len(det)
    w.u32(1 + n * (2 if labels else 1))

    def marker(mid: int, mtype: int, action: int, scale: tuple[float, float, float], rgba: tuple[float, float, float, float],
               pts: np.ndarray | None = None, position: tuple[float, float, float] = (0.0, 0.0, 0.0), text: str = "",
               ) -> dict[str, int]:
        """Write one marker; returns where its id, colour and points start (offsets into ``w.buf``)."""
        at: dict[str, int] = {}
        w.header(det.stamp_ns, det.frame_id)
        w.string(ns)
        w.align(4)
        at["id"] = len(w.buf)
        w.i32(mid)
        w.i32(mtype)
        w.i32(action)
        w.f64s(*position, 0.0, 0.0, 0.0, 1.0)  # pose: position, identity orientation (x y z w)
        w.f64s(*scale)
        w.align(4)
        at["rgba"] = len(w.buf)
        w.f32s(*rgba)
        w.i32(0)  # lifetime: sec, nanosec
        w.u32(0)
        w.bool(False)  # frame_locked
        if pts is None:
            w.u32(0)
        else:
            w.u32(len(pts))
            w.align(8)
            at["points"] = len(w.buf)
            w.raw_f64(np.ascontiguousarray(pts, "<f8").tobytes())
        w.u32(0)  # colors
        w.string("")  # texture_resource
        w.header(0, "")  # texture: CompressedImage(header, format, data)
        w.string("")
        w.u32(0)
        w.u32(0)  # uv_coordinates
        w.string(text)
        w.string("")  # mesh_resource
        w.string("")  # mesh_file: filename, data
        w.u32(0)
        w.bool(False)  # mesh_use_embedded_materials
        return at

    # A box's LINE_LIST marker differs from the others only in its id, colour and 24 points, at
    # offsets fixed by where it starts modulo 8 (alignment): written once per such phase, then
    # copied and patched (a hundred ground-truth boxes a frame took ~15 ms marker by marker).
    lines: dict[int, tuple[bytes, dict[str, int]]] = {}

    def line_marker(mid: int, rgba: tuple[float, float, float, float], pts: np.ndarray, data: bytes) -> None:
        start = len(w.buf)
        phase = (start - 4) % 8
        if phase not in lines:
            at = marker(mid, kind.LINE_LIST, kind.ADD, (_LINE_WIDTH_M, 0.0, 0.0), rgba, pts=pts)
            lines[phase] = (bytes(w.buf[start:]), {k: v - start for k, v in at.items()})
            return
        template, at = lines[phase]
        w.buf += template
        struct.pack_into("<i", w.buf, start + at["id"], mid)
        struct.pack_into("<4f", w.buf, start + at["rgba"], *rgba)
        w.buf[start + at["points"]:start + at["points"] + len(data)] = data

    marker(0, kind.CUBE, kind.DELETEALL, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0))
    if n:
        corners = box_corners(det.center, det.size, det.yaw)  # (M, 8, 3)
        names = det.labels_as_names
        edges = np.ascontiguousarray(corners[:, BOX_EDGES.reshape(-1)], "<f8")  # (M, 24, 3): each edge's two ends
        raw = edges.tobytes()
        size = len(raw) // n
        rgbas: dict[str, tuple[float, float, float, float]] = {}
        for i in range(n):
            rgba = rgbas.get(names[i])
            if rgba is None:
                r, g, b = colour or class_color(names[i])
                rgba = rgbas[names[i]] = _f32s(r / 255.0, g / 255.0, b / 255.0, 1.0)
            line_marker(2 * i, rgba, edges[i], raw[i * size:(i + 1) * size])
            if labels:
                top = det.center[i] + np.array([0.0, 0.0, det.size[i, 2] / 2 + 0.5])
                marker(2 * i + 1, kind.TEXT_VIEW_FACING, kind.ADD, (0.0, 0.0, _TEXT_HEIGHT_M), rgba,
                       position=(float(top[0]), float(top[1]), float(top[2])), text=f"{names[i]} {float(det.score[i]):.2f}")
    return w.bytes()


def _f32s(*v: float) -> tuple[float, float, float, float]:
    return tuple(float(x) for x in np.asarray(v, np.float32))  # type: ignore[return-value]


def newest_sweep(cloud: PointCloud) -> PointCloud:
    """The points of the newest sweep of an accumulated cloud (``time_lag`` 0), or all of them
    when the cloud has no ``time_lag`` field."""
    if "time_lag" not in cloud.fields:
        return cloud
    keep = cloud.field("time_lag") <= 0.0
    if keep.all():
        return cloud
    offsets = None if cloud.time_offset_ns is None else cloud.time_offset_ns[keep]
    return PointCloud(cloud.stamp_ns, cloud.frame_id, cloud.points[keep], cloud.fields, offsets)


def _ros_topic(name: str) -> str:
    # dataset readers name topics after sensors ('LIDAR_TOP'); ROS topics are absolute
    return "/" + name.strip("/")


def _compressed_topic(topic: str) -> str:
    # image_transport's name for the JPEG of a raw image topic
    topic = _ros_topic(topic)
    return topic if topic.endswith("/compressed") else topic + "/compressed"


class DetectionsBag:
    """Write a replay's frames and detections to a new ROS 2 bag directory ``path`` (see the module).

    ``marker_score``: boxes below it go into the Detection3DArray but not the markers, which are for
    looking at. ``jpeg_quality`` of the camera images.
    """

    def __init__(self, path: str | Path, rig: Rig, *, marker_score: float = 0.3, jpeg_quality: int = 85) -> None:
        self.path = Path(path)
        self.rig = rig
        self.marker_score = float(marker_score)
        self._writer = BagWriter(self.path, storage="mcap", rig=rig, jpeg_quality=jpeg_quality)
        lidars = rig.of(Modality.LIDAR)
        self.lidar_topic = _ros_topic(lidars[0].topic or lidars[0].name) if lidars else "/lidar/points"
        self._camera_topics = {c.name: _compressed_topic(c.topic or f"/{c.name}/image") for c in rig.cameras}
        self._last_image_stamp: dict[str, int] = {}
        self._rig_written = False

    @property
    def counts(self) -> dict[str, int]:
        """Messages written per topic."""
        return dict(self._writer.counts)

    def _raw(self, topic: str, msgtype: str, stamp_ns: int, msg: Any) -> None:
        # BagWriter.write takes bevfuse payloads only; markers and /tf have none, so they go in as
        # serialized messages through the writer's own connection bookkeeping
        self._writer._write_raw(topic, msgtype, stamp_ns, serialize(msg, msgtype))

    def write(self, frame: SyncedFrame, detections: Detections) -> None:
        """One frame: its inputs, its detections (ego frame) and its ground truth when it has some."""
        stamp = frame.stamp_ns
        if not self._rig_written:
            self._writer.write_rig(self.rig, stamp)
            self._rig_written = True
        if np.all(np.isfinite(frame.world_T_ego)):
            T = frame.world_T_ego
            q = se3.matrix_to_quat(T)
            tf = make("geometry_msgs/msg/TransformStamped", header=header(stamp, WORLD_FRAME), child_frame_id=EGO_FRAME,
                      transform=make("geometry_msgs/msg/Transform",
                                     translation=make("geometry_msgs/msg/Vector3", x=float(T[0, 3]), y=float(T[1, 3]),
                                                      z=float(T[2, 3])),
                                     rotation=make("geometry_msgs/msg/Quaternion", x=float(q[1]), y=float(q[2]),
                                                   z=float(q[3]), w=float(q[0]))))
            self._raw(TF_TOPIC, "tf2_msgs/msg/TFMessage", stamp, make("tf2_msgs/msg/TFMessage", transforms=[tf]))
        if frame.lidar is not None:
            self._writer.write(SensorMessage(stamp, "lidar", self.lidar_topic, newest_sweep(frame.lidar)),
                               "sensor_msgs/msg/PointCloud2")
        if frame.radar is not None:
            self._writer.write(SensorMessage(stamp, "radar", RADAR_TOPIC, frame.radar), "sensor_msgs/msg/PointCloud2")
        for name, img in frame.images.items():
            self._write_image(name, img)
        # the per-frame message arrays go straight to CDR (perception.runtime.fast_cdr; the same bytes)
        self._writer._write_raw(DETECTIONS_TOPIC, "vision_msgs/msg/Detection3DArray", stamp, detection3d_array_cdr(detections))
        shown = detections.select(detections.score >= self.marker_score)
        self._writer._write_raw(MARKERS_TOPIC, _MARKER_ARRAY, stamp, box_markers_cdr(shown, ns="detections"))
        if frame.ground_truth is not None:
            self._writer._write_raw(GT_MARKERS_TOPIC, _MARKER_ARRAY, stamp,
                                    box_markers_cdr(frame.ground_truth, ns="ground_truth", colour=GT_COLOR, labels=False))

    def _write_image(self, name: str, img: CameraImage) -> None:
        # a camera slower than the LiDAR gives the same image to two frames: write it once
        if self._last_image_stamp.get(name) == img.stamp_ns:
            return
        self._last_image_stamp[name] = img.stamp_ns
        topic = self._camera_topics.get(name) or _compressed_topic(f"/{name}/image")
        self._writer.write(SensorMessage(img.stamp_ns, name, topic, img), "sensor_msgs/msg/CompressedImage")

    def close(self) -> None:
        self._writer.close()
