"""ROS message objects -> bevfuse payloads (``perception.types``).

The functions take a deserialized message as rosbags gives it (any typestore: the bag's own, the
shared one of ``perception.io.rosmsg``, ROS 1 or ROS 2 field spellings) and read its fields by name.
Every problem raises ``DecodeError`` naming the topic, what was expected and what was found; a reader
counts these and goes on (DESIGN.md: errors).

Conventions applied here, once:

- Stamps: ``header.stamp`` -> int64 ns (``sec * 1e9 + nanosec``).
- Frame ids lose a leading ``/`` (tf2 forbids it; ROS 1 bags often carry ``/gps``), so that frames of
  messages, ``/tf_static`` and rig files compare equal.
- Quaternions: ROS stores x y z w, bevfuse w x y z.
- PointCloud2 per-point time: the first field present of ``TIME_FIELDS`` becomes
  ``time_offset_ns`` (point time minus ``header.stamp``). Integer fields are nanoseconds (Ouster
  ``t``, Livox ``offset_time``), floating fields seconds (Velodyne ``time``). A magnitude beyond
  ``1e6`` s (``1e15`` ns) cannot be an offset within a sweep: it is read as absolute time (Hesai and
  Robosense ``timestamp``) and the header stamp is subtracted.
- Unknown covariances: ``NavSatFix`` of ``COVARIANCE_TYPE_UNKNOWN`` and ``Imu`` covariances of all
  zeros (ROS: "unknown") become NaN; an ``Imu`` with ``orientation_covariance[0] == -1`` (ROS: "no
  orientation estimate") has NaN orientation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from calib import se3
from calib.camera import CameraModel, FisheyeCamera, PinholeCamera
from perception.classes import NUSCENES_CLASSES
from perception.errors import BevfuseError, DecodeError, ShapeError
from perception.types import (
    CameraImage,
    Detections,
    EgoPose,
    EncodedImage,
    GnssFix,
    ImuSample,
    Modality,
    Payload,
    PointCloud,
    RadarScan,
)

__all__ = [
    "DETECTION_MSGTYPES",
    "MSGTYPE_MODALITY",
    "POINTFIELD_DTYPES",
    "RADAR_FIELD_HINTS",
    "TIME_FIELDS",
    "decode",
    "decode_box3d_array",
    "decode_camera_info",
    "decode_compressed_image",
    "decode_detection3d_array",
    "decode_encoded_image",
    "decode_image",
    "decode_imu",
    "decode_navsatfix",
    "decode_odometry",
    "decode_pointcloud2",
    "decode_radar_pointcloud2",
    "decode_radar_scan",
    "decode_tf",
    "encoded_compressed_image",
    "frame_name",
    "is_radar_cloud",
    "read_pointcloud2",
    "stamp_ns",
]

NS_PER_S = 1_000_000_000

# sensor_msgs/PointField datatype -> numpy type code (byte order added per message).
POINTFIELD_DTYPES: dict[int, str] = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}

# Per-point time field names, in order of preference (see the module docstring for the units).
TIME_FIELDS: tuple[str, ...] = ("time_offset_ns", "t", "offset_time", "offset_ns", "time", "time_offset", "timestamp")

# A PointCloud2 with any of these fields is a radar scan, not a LiDAR sweep.
RADAR_FIELD_HINTS: frozenset[str] = frozenset({"rcs", "vx_comp", "vy_comp", "radial_velocity", "doppler", "doppler_velocity"})
_RADIAL_FIELDS = ("radial_velocity", "doppler_velocity", "doppler", "v_r", "vr")

# The message types that carry sensor data, and the modality each gives a rig sensor. A PointCloud2
# is LiDAR unless its fields say radar (``is_radar_cloud``).
MSGTYPE_MODALITY: dict[str, Modality] = {
    "sensor_msgs/msg/PointCloud2": Modality.LIDAR,
    "sensor_msgs/msg/Image": Modality.CAMERA,
    "sensor_msgs/msg/CompressedImage": Modality.CAMERA,
    "sensor_msgs/msg/NavSatFix": Modality.GNSS,
    "sensor_msgs/msg/Imu": Modality.IMU,
    "nav_msgs/msg/Odometry": Modality.ODOMETRY,
    "radar_msgs/msg/RadarScan": Modality.RADAR,
}
# Box message types: they decode to ``Detections`` and belong to no rig sensor.
DETECTION_MSGTYPES: frozenset[str] = frozenset({"bevfuse_msgs/msg/Box3DArray", "vision_msgs/msg/Detection3DArray"})

# Beyond these magnitudes a "time offset" is an absolute time (see the module docstring).
_ABS_TIME_S = 1e6
_ABS_TIME_NS = 10**15


def stamp_ns(header: Any) -> int:
    """``header.stamp`` (sec, nanosec) as int64 nanoseconds."""
    return int(header.stamp.sec) * NS_PER_S + int(header.stamp.nanosec)


def frame_name(frame_id: str) -> str:
    """A frame id without tf1's leading slash."""
    return frame_id[1:] if frame_id.startswith("/") else frame_id


def _quat_wxyz(q: Any) -> np.ndarray:
    return np.array([q.w, q.x, q.y, q.z], dtype=np.float64)


def _vec3(v: Any) -> np.ndarray:
    return np.array([v.x, v.y, v.z], dtype=np.float64)


# --------------------------------------------------------------------------------------------------
# PointCloud2


def read_pointcloud2(msg: Any, topic: str = "") -> dict[str, np.ndarray]:
    """The columns of a PointCloud2, in field order, each ``(N,)`` in its own dtype (native byte order).

    ``N = height * width``, rows read in order. A field with ``count = k > 1`` becomes ``k`` columns
    ``name_0 .. name_{k-1}``. Padding inside a point (``point_step`` larger than the fields) and at
    the end of a row (``row_step`` larger than ``width * point_step``) is skipped. Raises
    ``DecodeError`` naming ``topic`` and the numbers when the layout does not add up.
    """
    where = f"{topic or '<PointCloud2>'}: PointCloud2"
    height, width = int(msg.height), int(msg.width)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    data = np.asarray(msg.data, dtype=np.uint8).reshape(-1)
    order = ">" if msg.is_bigendian else "<"
    names: list[str] = []
    formats: list[Any] = []
    offsets: list[int] = []
    for f in msg.fields:
        name, datatype, offset, count = str(f.name), int(f.datatype), int(f.offset), int(f.count)
        if datatype not in POINTFIELD_DTYPES:
            raise DecodeError(f"{where}: field {name!r} has datatype {datatype}; expected 1..8 (INT8..FLOAT64)")
        if count < 1:
            raise DecodeError(f"{where}: field {name!r} has count {count}; expected >= 1")
        if name in names:
            raise DecodeError(f"{where}: field {name!r} appears twice")
        base = np.dtype(order + POINTFIELD_DTYPES[datatype])
        end = offset + base.itemsize * count
        if offset < 0 or end > point_step:
            raise DecodeError(f"{where}: field {name!r} spans bytes {offset}..{end} but point_step is {point_step}")
        names.append(name)
        formats.append(base if count == 1 else (base, (count,)))
        offsets.append(offset)
    n = height * width
    if n and point_step <= 0:
        raise DecodeError(f"{where}: point_step is {point_step} for {n} points")
    if height > 1 or row_step:
        # row_step may be 0 in hand-made single-row clouds; a multi-row cloud needs it.
        if row_step < width * point_step:
            raise DecodeError(f"{where}: row_step {row_step} < width {width} * point_step {point_step}")
    if row_step == 0:
        row_step = width * point_step
    if data.size != height * row_step:
        raise DecodeError(
            f"{where}: data has {data.size} bytes; expected height {height} * row_step {row_step} = {height * row_step} "
            f"(width {width}, point_step {point_step})"
        )
    dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": max(point_step, 1)})
    if n == 0:
        rec = np.zeros(0, dtype=dtype)
    elif row_step == width * point_step:
        rec = data.view(dtype)
    else:
        rec = np.ascontiguousarray(data.reshape(height, row_step)[:, : width * point_step]).reshape(-1).view(dtype)
    out: dict[str, np.ndarray] = {}
    for name in names:
        col = rec[name]
        native = col.dtype.base.newbyteorder("=")
        if col.ndim == 1:
            out[name] = col.astype(native)
        else:
            for i in range(col.shape[1]):
                out[f"{name}_{i}"] = col[:, i].astype(native)
    return out


def _time_offsets(cols: dict[str, np.ndarray], stamp: int, where: str) -> tuple[str | None, np.ndarray | None]:
    """(name of the time field used, (N,) int64 ns offsets from ``stamp``) or (None, None)."""
    name = next((f for f in TIME_FIELDS if f in cols), None)
    if name is None:
        return None, None
    v = cols[name]
    if np.issubdtype(v.dtype, np.integer):
        ns = v.astype(np.int64)
        if ns.size and int(np.abs(ns).max()) > _ABS_TIME_NS:
            ns = ns - np.int64(stamp)
        return name, ns
    s = v.astype(np.float64)
    if not np.all(np.isfinite(s)):
        raise DecodeError(f"{where}: time field {name!r} holds NaN or inf")
    if s.size and float(np.abs(s).max()) > _ABS_TIME_S:
        # Absolute seconds: subtract the stamp's whole seconds in float64 first so that the
        # difference keeps its precision, then the stamp's sub-second nanoseconds as integers.
        sec0 = stamp // NS_PER_S
        return name, np.round((s - sec0) * 1e9).astype(np.int64) - np.int64(stamp - sec0 * NS_PER_S)
    return name, np.round(s * 1e9).astype(np.int64)


def decode_pointcloud2(msg: Any, topic: str = "") -> PointCloud:
    """PointCloud2 -> PointCloud: ``points (N, 3 + K)`` float32 = x y z then every other field in
    message order (cast to float32), per-point time as ``time_offset_ns`` (see ``TIME_FIELDS``)."""
    where = f"{topic or '<PointCloud2>'}: PointCloud2"
    cols = read_pointcloud2(msg, topic)
    missing = [c for c in ("x", "y", "z") if c not in cols]
    if missing:
        raise DecodeError(f"{where}: no field(s) {missing}; fields are {list(cols)}")
    stamp = stamp_ns(msg.header)
    tname, toff = _time_offsets(cols, stamp, where)
    rest = [c for c in cols if c not in ("x", "y", "z") and c != tname]
    names = ("x", "y", "z", *rest)
    n = cols["x"].shape[0]
    points = np.empty((n, len(names)), dtype=np.float32)
    for i, c in enumerate(names):
        points[:, i] = cols[c]
    return PointCloud(stamp_ns=stamp, frame_id=frame_name(msg.header.frame_id), points=points, fields=names, time_offset_ns=toff)


def is_radar_cloud(msg: Any) -> bool:
    """True when a PointCloud2's fields are those of a radar (``RADAR_FIELD_HINTS``)."""
    return any(str(f.name) in RADAR_FIELD_HINTS for f in msg.fields)


def decode_radar_pointcloud2(msg: Any, topic: str = "") -> RadarScan:
    """PointCloud2 with radar fields (nuScenes: x y z dyn_prop id rcs vx vy vx_comp vy_comp ...) -> RadarScan.

    ``rcs`` -> rcs; ``radial_velocity`` (or doppler, doppler_velocity, v_r) -> radial_velocity, else
    the projection of (vx, vy, 0) on the line of sight (nuScenes' vx vy are the Doppler speed along
    it; 0 for a point at the origin); vx vy -> velocity; vx_comp vy_comp -> velocity_comp; absent ones NaN. The time field as in
    ``decode_pointcloud2``; every other field goes to ``extra`` in its own dtype.
    """
    where = f"{topic or '<PointCloud2>'}: radar PointCloud2"
    cols = read_pointcloud2(msg, topic)
    missing = [c for c in ("x", "y", "z") if c not in cols]
    if missing:
        raise DecodeError(f"{where}: no field(s) {missing}; fields are {list(cols)}")
    stamp = stamp_ns(msg.header)
    tname, toff = _time_offsets(cols, stamp, where)
    n = cols["x"].shape[0]
    xyz = np.stack([cols["x"], cols["y"], cols["z"]], axis=1).astype(np.float32)
    nan = np.full(n, np.nan, dtype=np.float32)
    used = {"x", "y", "z"} | ({tname} if tname else set())

    def take(name: str) -> np.ndarray:
        used.add(name)
        return cols[name].astype(np.float32)

    rcs = take("rcs") if "rcs" in cols else nan.copy()
    def pair(a: str, b: str) -> np.ndarray:
        if a in cols and b in cols:
            return np.stack([take(a), take(b)], axis=1)
        return np.full((n, 2), np.nan, np.float32)

    velocity = pair("vx", "vy")
    comp = pair("vx_comp", "vy_comp")
    radial_name = next((f for f in _RADIAL_FIELDS if f in cols), None)
    if radial_name is not None:
        radial = take(radial_name)
    elif "vx" in cols and "vy" in cols:
        # 0 at the origin, as perception.io.nuscenes does for the same fields from a PCD file.
        p = xyz.astype(np.float64)
        r = np.linalg.norm(p, axis=1)
        along = velocity[:, 0] * p[:, 0] + velocity[:, 1] * p[:, 1]
        radial = np.divide(along, r, out=np.zeros_like(along), where=r > 0).astype(np.float32)
    else:
        radial = nan.copy()
    extra = {k: v for k, v in cols.items() if k not in used}
    return RadarScan(stamp_ns=stamp, frame_id=frame_name(msg.header.frame_id), points=xyz, rcs=rcs, radial_velocity=radial,
                     velocity=velocity, velocity_comp=comp, time_offset_ns=toff, extra=extra)


def decode_radar_scan(msg: Any, topic: str = "") -> RadarScan:
    """radar_msgs/RadarScan -> RadarScan: spherical returns to x y z (REP-103: azimuth counter-clockwise
    from +x, elevation up), doppler_velocity -> radial_velocity, amplitude -> rcs; velocities NaN."""
    ret = msg.returns
    n = len(ret)
    a = np.array([[r.range, r.azimuth, r.elevation, r.doppler_velocity, r.amplitude] for r in ret], dtype=np.float64)
    a = a.reshape(n, 5)
    rng, az, el = a[:, 0], a[:, 1], a[:, 2]
    xyz = np.stack([rng * np.cos(el) * np.cos(az), rng * np.cos(el) * np.sin(az), rng * np.sin(el)], axis=1).astype(np.float32)
    nan2 = np.full((n, 2), np.nan, dtype=np.float32)
    return RadarScan(stamp_ns=stamp_ns(msg.header), frame_id=frame_name(msg.header.frame_id), points=xyz,
                     rcs=a[:, 4].astype(np.float32), radial_velocity=a[:, 3].astype(np.float32),
                     velocity=nan2, velocity_comp=nan2.copy())


# --------------------------------------------------------------------------------------------------
# Images

# ROS encoding -> (channels, numpy type code). 8UC1/8UC3 follow cv_bridge (mono8 / bgr8).
_IMAGE_LAYOUT: dict[str, tuple[int, str]] = {
    "rgb8": (3, "u1"), "bgr8": (3, "u1"), "rgba8": (4, "u1"), "bgra8": (4, "u1"), "8uc3": (3, "u1"),
    "mono8": (1, "u1"), "8uc1": (1, "u1"), "mono16": (1, "u2"), "16uc1": (1, "u2"),
    "bayer_rggb8": (1, "u1"), "bayer_bggr8": (1, "u1"), "bayer_gbrg8": (1, "u1"), "bayer_grbg8": (1, "u1"),
}
# OpenCV names a Bayer pattern by the 2x2 block starting at the second row and column, ROS by the
# first: ROS RGGB is OpenCV BG (the mapping cv_bridge uses). The tests check it on a colour chart.
_BAYER_TO_RGB: dict[str, int] = {
    "bayer_rggb8": cv2.COLOR_BayerBG2RGB,
    "bayer_bggr8": cv2.COLOR_BayerRG2RGB,
    "bayer_gbrg8": cv2.COLOR_BayerGR2RGB,
    "bayer_grbg8": cv2.COLOR_BayerGB2RGB,
}


def decode_image(msg: Any, topic: str = "", camera: str = "") -> CameraImage:
    """sensor_msgs/Image -> CameraImage (H, W, 3) uint8 RGB.

    Encodings: rgb8, bgr8, rgba8, bgra8 (alpha dropped), mono8, mono16 (high byte kept), bayer_rggb8,
    bayer_bggr8, bayer_gbrg8, bayer_grbg8 (OpenCV's bilinear demosaicing); ``step`` padding skipped.
    """
    where = f"{topic or '<Image>'}: Image"
    enc = str(msg.encoding).lower()
    if enc not in _IMAGE_LAYOUT:
        raise DecodeError(f"{where}: encoding {msg.encoding!r} not supported; expected one of {sorted(_IMAGE_LAYOUT)}")
    ch, code = _IMAGE_LAYOUT[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    dt = np.dtype((">" if msg.is_bigendian else "<") + code)
    row = w * ch * dt.itemsize
    data = np.asarray(msg.data, dtype=np.uint8).reshape(-1)
    if step < row:
        raise DecodeError(f"{where}: step {step} < width {w} * {ch} channel(s) * {dt.itemsize} byte(s) = {row} ({enc})")
    if data.size != h * step:
        raise DecodeError(f"{where}: data has {data.size} bytes; expected height {h} * step {step} = {h * step}")
    raw = np.ascontiguousarray(data.reshape(h, step)[:, :row]).view(dt).reshape(h, w, ch)
    if enc in ("rgb8",):
        rgb = raw.copy()
    elif enc in ("bgr8", "8uc3"):
        rgb = np.ascontiguousarray(raw[..., ::-1])
    elif enc == "rgba8":
        rgb = np.ascontiguousarray(raw[..., :3])
    elif enc == "bgra8":
        rgb = np.ascontiguousarray(raw[..., 2::-1])
    elif enc in ("mono8", "8uc1"):
        rgb = np.repeat(raw, 3, axis=2)
    elif enc in ("mono16", "16uc1"):
        rgb = np.repeat((raw.astype(np.uint16) >> 8).astype(np.uint8), 3, axis=2)
    else:
        rgb = cv2.cvtColor(np.ascontiguousarray(raw[..., 0]), _BAYER_TO_RGB[enc])
    return CameraImage(stamp_ns=stamp_ns(msg.header), camera=camera, frame_id=frame_name(msg.header.frame_id), image=rgb)


_IMREAD_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)


def _image_format(fmt: str, where: str) -> str:
    """'jpeg' or 'png' from a CompressedImage ``format`` string ('' = JPEG, image_transport's default)."""
    f = fmt.lower()
    if "png" in f:
        return "png"
    if not f or "jpeg" in f or "jpg" in f:
        return "jpeg"
    raise DecodeError(f"{where}: format {fmt!r} not supported; expected jpeg or png")


def _imdecode_rgb(buf: np.ndarray, what: str, where: str) -> np.ndarray:
    flags = cv2.IMREAD_IGNORE_ORIENTATION | (_IMREAD_RGB if _IMREAD_RGB is not None else cv2.IMREAD_COLOR)
    img = cv2.imdecode(buf, flags) if buf.size else None
    if img is None:
        raise DecodeError(f"{where}: could not decode {buf.size} bytes as {what}")
    return img if _IMREAD_RGB is not None else np.ascontiguousarray(img[..., ::-1])


def decode_compressed_image(msg: Any, topic: str = "", camera: str = "") -> CameraImage:
    """sensor_msgs/CompressedImage (jpeg or png, any ``format`` string naming one) -> CameraImage RGB,
    its bytes kept in ``encoded``.

    EXIF orientation is ignored: the pixels stay as the sensor gave them, matching the calibration.
    """
    where = f"{topic or '<CompressedImage>'}: CompressedImage"
    enc = encoded_compressed_image(msg, topic, camera)
    img = _imdecode_rgb(np.frombuffer(enc.data, np.uint8), msg.format or "an image", where)
    return CameraImage(stamp_ns=enc.stamp_ns, camera=camera, frame_id=enc.frame_id, image=img, encoded=enc)


def encoded_compressed_image(msg: Any, topic: str = "", camera: str = "") -> EncodedImage:
    """sensor_msgs/CompressedImage -> EncodedImage: the bytes kept, the format checked, nothing
    decoded (``decode_encoded_image`` does that later, into what ``decode_compressed_image`` gives)."""
    where = f"{topic or '<CompressedImage>'}: CompressedImage"
    fmt = _image_format(str(msg.format), where)
    data = np.asarray(msg.data, dtype=np.uint8).reshape(-1).tobytes()
    return EncodedImage(stamp_ns=stamp_ns(msg.header), camera=camera, frame_id=frame_name(msg.header.frame_id), data=data,
                        format=fmt)


def decode_encoded_image(image: EncodedImage, topic: str = "") -> CameraImage:
    """The ``CameraImage`` of an ``EncodedImage`` (what ``decode_compressed_image`` gives for the same
    message, ``encoded`` included); ``DecodeError`` naming the camera when the bytes do not decode."""
    where = f"{topic or image.camera or '<EncodedImage>'}: {image.format} image"
    img = _imdecode_rgb(np.frombuffer(image.data, np.uint8), image.format, where)
    return CameraImage(stamp_ns=image.stamp_ns, camera=image.camera, frame_id=image.frame_id, image=img, encoded=image)


# --------------------------------------------------------------------------------------------------
# GNSS, IMU, odometry


def decode_navsatfix(msg: Any, topic: str = "") -> GnssFix:
    """sensor_msgs/NavSatFix -> GnssFix (covariance NaN when its type is UNKNOWN)."""
    cov_type = int(msg.position_covariance_type)
    cov = np.asarray(msg.position_covariance, dtype=np.float64).reshape(3, 3).copy()
    if cov_type == 0:
        cov[:] = np.nan
    return GnssFix(stamp_ns=stamp_ns(msg.header), frame_id=frame_name(msg.header.frame_id), latitude_deg=float(msg.latitude),
                   longitude_deg=float(msg.longitude), altitude_m=float(msg.altitude), position_covariance=cov,
                   covariance_type=cov_type, status=int(msg.status.status), service=int(msg.status.service))


def decode_imu(msg: Any, topic: str = "") -> ImuSample:
    """sensor_msgs/Imu -> ImuSample (orientation w x y z; see the module docstring for unknowns)."""
    # One array for the three covariances: a 100 Hz IMU makes per-message numpy overhead count.
    covs = np.array([msg.orientation_covariance, msg.angular_velocity_covariance, msg.linear_acceleration_covariance],
                    dtype=np.float64).reshape(3, 3, 3)
    no_orientation = covs[0, 0, 0] == -1.0
    covs[~covs.reshape(3, 9).any(axis=1)] = np.nan  # all zeros: ROS for "covariance unknown"
    if no_orientation:
        covs[0] = np.nan
        orientation = np.full(4, np.nan)
    else:
        orientation = _quat_wxyz(msg.orientation)
    av, la = msg.angular_velocity, msg.linear_acceleration
    vec = np.array([[av.x, av.y, av.z], [la.x, la.y, la.z]], dtype=np.float64)
    return ImuSample(stamp_ns=stamp_ns(msg.header), frame_id=frame_name(msg.header.frame_id), angular_velocity=vec[0],
                     linear_acceleration=vec[1], orientation=orientation, angular_velocity_covariance=covs[1],
                     linear_acceleration_covariance=covs[2], orientation_covariance=covs[0])


def decode_odometry(msg: Any, topic: str = "") -> EgoPose:
    """nav_msgs/Odometry -> EgoPose: ``world_T_ego`` from pose.pose (world = header.frame_id, ego =
    child_frame_id); twist.twist (in the child frame, as ROS defines it) -> velocity, angular_velocity."""
    pose = msg.pose.pose
    q = _quat_wxyz(pose.orientation)
    if not np.linalg.norm(q) > 1e-9:
        raise DecodeError(f"{topic or '<Odometry>'}: Odometry: zero-length orientation quaternion")
    T = se3.from_rotation_translation(q, _vec3(pose.position))
    return EgoPose(stamp_ns=stamp_ns(msg.header), frame_id=frame_name(msg.header.frame_id), world_T_ego=T,
                   child_frame_id=frame_name(msg.child_frame_id) or "ego", velocity=_vec3(msg.twist.twist.linear),
                   angular_velocity=_vec3(msg.twist.twist.angular))


# --------------------------------------------------------------------------------------------------
# Calibration: CameraInfo and tf


def _field(msg: Any, name: str) -> Any:
    # ROS 2 spells CameraInfo's matrices k d r p, ROS 1 K D R P.
    return getattr(msg, name) if hasattr(msg, name) else getattr(msg, name.upper())


def decode_camera_info(msg: Any, topic: str = "") -> CameraModel:
    """sensor_msgs/CameraInfo -> PinholeCamera (plumb_bob, rational_polynomial, or no distortion)
    or FisheyeCamera (equidistant). K is the intrinsic matrix; R and P (rectification) are not used."""
    where = f"{topic or '<CameraInfo>'}: CameraInfo"
    K = np.asarray(_field(msg, "k"), dtype=np.float64).reshape(3, 3)
    D = tuple(float(x) for x in _field(msg, "d"))
    model = str(msg.distortion_model).lower()
    w, h = int(msg.width), int(msg.height)
    if K[0, 0] <= 0 or K[1, 1] <= 0 or w <= 0 or h <= 0:
        raise DecodeError(f"{where}: uncalibrated camera (fx {K[0, 0]}, fy {K[1, 1]}, {w}x{h})")
    # An empty D is an ideal camera whatever the model says (drivers of rectified streams do that).
    try:
        if model in ("plumb_bob", "rational_polynomial", ""):
            want = {"plumb_bob": 5, "rational_polynomial": 8, "": len(D)}[model]
            if D and len(D) < want:
                raise DecodeError(f"{where}: {model} needs {want} distortion coefficients, got {len(D)}")
            return PinholeCamera.from_K(K, w, h, D[:want] if D else (0.0,) * 5)
        if model in ("equidistant", "fisheye", "kannala_brandt"):
            if D and len(D) < 4:
                raise DecodeError(f"{where}: {model} needs 4 distortion coefficients, got {len(D)}")
            return FisheyeCamera(w, h, float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), D[:4] if D else (0.0,) * 4)
    except ShapeError as exc:
        raise DecodeError(f"{where}: {exc}") from None
    raise DecodeError(f"{where}: distortion_model {msg.distortion_model!r} not supported; "
                      f"expected plumb_bob, rational_polynomial or equidistant")


def decode_tf(msg: Any, topic: str = "") -> list[tuple[str, str, np.ndarray]]:
    """tf2_msgs/TFMessage -> [(parent frame, child frame, parent_T_child (4, 4) float64)]."""
    out = []
    for ts in msg.transforms:
        t = ts.transform
        q = _quat_wxyz(t.rotation)
        if not np.linalg.norm(q) > 1e-9:
            raise DecodeError(f"{topic or '<TFMessage>'}: TFMessage: zero-length rotation for {ts.child_frame_id!r}")
        parent_T_child = se3.from_rotation_translation(q, _vec3(t.translation))
        out.append((frame_name(ts.header.frame_id), frame_name(ts.child_frame_id), parent_T_child))
    return out


# --------------------------------------------------------------------------------------------------
# Boxes


def _labels(names: Sequence[str], class_names: tuple[str, ...], where: str) -> np.ndarray:
    index = {c: i for i, c in enumerate(class_names)}
    unknown = sorted({c for c in names if c not in index})
    if unknown:
        raise DecodeError(f"{where}: class name(s) {unknown} not in {class_names}")
    return np.array([index[c] for c in names], dtype=np.int64)


def decode_box3d_array(msg: Any, topic: str = "", class_names: tuple[str, ...] = NUSCENES_CLASSES) -> Detections:
    """bevfuse_msgs/Box3DArray -> Detections (labels index ``class_names``; a num_*_pts column of all
    -1, "unknown", becomes None)."""
    where = f"{topic or '<Box3DArray>'}: Box3DArray"
    boxes = msg.boxes
    n = len(boxes)
    f = np.array([[b.x, b.y, b.z, b.length, b.width, b.height, b.yaw, b.vx, b.vy] for b in boxes], dtype=np.float64).reshape(n, 9)
    lidar = np.array([b.num_lidar_pts for b in boxes], dtype=np.int64)
    radar = np.array([b.num_radar_pts for b in boxes], dtype=np.int64)
    return Detections(
        stamp_ns=stamp_ns(msg.header), frame_id=frame_name(msg.header.frame_id), class_names=class_names,
        center=f[:, 0:3].copy(), size=f[:, 3:6].copy(), yaw=f[:, 6].copy(), velocity=f[:, 7:9].copy(),
        score=np.array([b.score for b in boxes], dtype=np.float32),
        label=_labels([b.class_name for b in boxes], class_names, where),
        attribute=np.array([b.attribute for b in boxes], dtype=object),
        track_id=np.array([b.track_id for b in boxes], dtype=object),
        num_lidar_pts=None if np.all(lidar == -1) else lidar,
        num_radar_pts=None if np.all(radar == -1) else radar,
    )


def decode_detection3d_array(msg: Any, topic: str = "", class_names: tuple[str, ...] = NUSCENES_CLASSES) -> Detections:
    """vision_msgs/Detection3DArray -> Detections: the best-scoring hypothesis gives class and score,
    bbox.center gives centre and yaw (upright boxes), bbox.size length width height; ``id`` -> track_id.
    vision_msgs has no velocity: it is NaN."""
    where = f"{topic or '<Detection3DArray>'}: Detection3DArray"
    dets = msg.detections
    n = len(dets)
    center = np.zeros((n, 3))
    size = np.zeros((n, 3))
    yaw = np.zeros(n)
    score = np.zeros(n, dtype=np.float32)
    names: list[str] = []
    for i, d in enumerate(dets):
        if not len(d.results):
            raise DecodeError(f"{where}: detection {i} has no hypothesis (results is empty)")
        best = max(d.results, key=lambda r: r.hypothesis.score)
        names.append(str(best.hypothesis.class_id))
        score[i] = best.hypothesis.score
        center[i] = _vec3(d.bbox.center.position)
        size[i] = _vec3(d.bbox.size)
        yaw[i] = se3.yaw_of(se3.quat_to_matrix(_quat_wxyz(d.bbox.center.orientation)))
    return Detections(stamp_ns=stamp_ns(msg.header), frame_id=frame_name(msg.header.frame_id), class_names=class_names,
                      center=center, size=size, yaw=yaw, velocity=np.full((n, 2), np.nan), score=score,
                      label=_labels(names, class_names, where), track_id=np.array([str(d.id) for d in dets], dtype=object))


# --------------------------------------------------------------------------------------------------
# Dispatch


def decode(msg: Any, msgtype: str, *, topic: str = "", sensor: str = "", modality: Modality | None = None,
           class_names: tuple[str, ...] = NUSCENES_CLASSES, defer_images: bool = False) -> Payload | EncodedImage:
    """Decode any supported message into its payload; ``sensor`` names the camera of an image.
    ``defer_images``: a CompressedImage becomes an ``EncodedImage`` (checked, not decoded).

    A PointCloud2 becomes a RadarScan when ``modality`` is RADAR, or when ``modality`` is None and
    its fields are a radar's. Anything that goes wrong, including an unexpected exception from a
    malformed message, is raised as ``DecodeError`` naming the topic and type.
    """
    try:
        if msgtype == "sensor_msgs/msg/PointCloud2":
            radar = modality is Modality.RADAR or (modality is None and is_radar_cloud(msg))
            return decode_radar_pointcloud2(msg, topic) if radar else decode_pointcloud2(msg, topic)
        if msgtype == "sensor_msgs/msg/CompressedImage":
            if defer_images:
                return encoded_compressed_image(msg, topic, sensor)
            return decode_compressed_image(msg, topic, sensor)
        if msgtype == "sensor_msgs/msg/Image":
            return decode_image(msg, topic, sensor)
        if msgtype == "sensor_msgs/msg/NavSatFix":
            return decode_navsatfix(msg, topic)
        if msgtype == "sensor_msgs/msg/Imu":
            return decode_imu(msg, topic)
        if msgtype == "nav_msgs/msg/Odometry":
            return decode_odometry(msg, topic)
        if msgtype == "radar_msgs/msg/RadarScan":
            return decode_radar_scan(msg, topic)
        if msgtype == "bevfuse_msgs/msg/Box3DArray":
            return decode_box3d_array(msg, topic, class_names)
        if msgtype == "vision_msgs/msg/Detection3DArray":
            return decode_detection3d_array(msg, topic, class_names)
    except DecodeError:
        raise
    except (BevfuseError, ValueError, TypeError, AttributeError, IndexError, KeyError, cv2.error) as exc:
        raise DecodeError(f"{topic or '<message>'}: {msgtype}: {type(exc).__name__}: {exc}") from None
    raise DecodeError(f"{topic or '<message>'}: message type {msgtype} has no bevfuse payload; "
                      f"decodable: {sorted([*MSGTYPE_MODALITY, *DETECTION_MSGTYPES])}")
