"""bevfuse payloads -> ROS 2 message objects of the shared typestore (``perception.io.rosmsg``).

The inverse of ``ros_decode``. Lossless encodings round-trip bit-exactly through ``ros_decode``:
PointCloud -> PointCloud2, CameraImage -> Image rgb8 or CompressedImage png, RadarScan -> radar
PointCloud2, GnssFix, ImuSample, Detections -> bevfuse_msgs/Box3DArray, CameraModel -> CameraInfo.
Lossy ones: CompressedImage jpeg; EgoPose -> Odometry and the rig -> TFMessage (a rotation matrix
stored as a quaternion comes back within ~1e-15); RadarScan -> radar_msgs/RadarScan (float32
spherical coordinates, no velocities or extras); Detections -> vision_msgs/Detection3DArray (no
velocity, attributes or point counts).

Choices made here, once:

- PointCloud2: every column float32, little-endian, packed in ``fields`` order, then the per-point
  time as ``time_offset_ns`` INT32 nanoseconds from the stamp (±2.1 s: a sweep lasts 0.1 s; a larger
  offset is an error, not something to wrap round).
- Unknown (NaN) covariances are written the ROS way: NavSatFix COVARIANCE_TYPE_UNKNOWN with zeros,
  Imu covariance zeros, and orientation_covariance[0] = -1 for "no orientation".
- The rig's ``/tf_static`` holds ``EGO_FRAME`` -> each sensor frame.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from calib import se3
from calib.camera import CameraModel, FisheyeCamera, PinholeCamera
from calib.rig import Rig
from perception.errors import RigError, ShapeError
from perception.io.rosmsg import make, typestore
from perception.types import CameraImage, Detections, EgoPose, GnssFix, ImuSample, Payload, PointCloud, RadarScan

__all__ = [
    "DEFAULT_MSGTYPES",
    "EGO_FRAME",
    "ENCODABLE_MSGTYPES",
    "camera_info_topic",
    "encode",
    "encode_box3d_array",
    "encode_camera_info",
    "encode_compressed_image",
    "encode_detection3d_array",
    "encode_image",
    "encode_imu",
    "encode_navsatfix",
    "encode_odometry",
    "encode_pointcloud",
    "encode_radar_pointcloud2",
    "encode_radar_scan",
    "encode_tf_static",
    "header",
    "serialize",
]

EGO_FRAME = "ego"
NS_PER_S = 1_000_000_000

# Payload type -> the ROS type written by default, and every type it can be written as.
DEFAULT_MSGTYPES: dict[type, str] = {
    PointCloud: "sensor_msgs/msg/PointCloud2",
    CameraImage: "sensor_msgs/msg/CompressedImage",
    RadarScan: "sensor_msgs/msg/PointCloud2",
    GnssFix: "sensor_msgs/msg/NavSatFix",
    ImuSample: "sensor_msgs/msg/Imu",
    EgoPose: "nav_msgs/msg/Odometry",
    Detections: "bevfuse_msgs/msg/Box3DArray",
}
ENCODABLE_MSGTYPES: dict[type, tuple[str, ...]] = {
    PointCloud: ("sensor_msgs/msg/PointCloud2",),
    CameraImage: ("sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/Image"),
    RadarScan: ("sensor_msgs/msg/PointCloud2", "radar_msgs/msg/RadarScan"),
    GnssFix: ("sensor_msgs/msg/NavSatFix",),
    ImuSample: ("sensor_msgs/msg/Imu",),
    EgoPose: ("nav_msgs/msg/Odometry",),
    Detections: ("bevfuse_msgs/msg/Box3DArray", "vision_msgs/msg/Detection3DArray"),
}

# numpy dtype -> sensor_msgs/PointField datatype
_POINTFIELD_TYPE: dict[np.dtype, int] = {
    np.dtype(np.int8): 1, np.dtype(np.uint8): 2, np.dtype(np.int16): 3, np.dtype(np.uint16): 4,
    np.dtype(np.int32): 5, np.dtype(np.uint32): 6, np.dtype(np.float32): 7, np.dtype(np.float64): 8,
}
_INT32 = np.iinfo(np.int32)

# image_transport's transport suffixes: dropped to find the camera's namespace.
_TRANSPORTS = ("compressed", "compressedDepth", "theora", "ffmpeg", "h264", "zstd")


def serialize(msg: Any, msgtype: str) -> bytes:
    """CDR bytes (little-endian) of a message of the shared typestore."""
    return bytes(typestore().serialize_cdr(msg, msgtype, little_endian=True))


def _time(stamp_ns: int) -> Any:
    stamp_ns = int(stamp_ns)
    sec, nsec = divmod(stamp_ns, NS_PER_S)
    if not _INT32.min <= sec <= _INT32.max:
        raise ShapeError(f"stamp_ns: {stamp_ns} is outside the int32 seconds of builtin_interfaces/Time")
    return make("builtin_interfaces/msg/Time", sec=sec, nanosec=nsec)


def header(stamp_ns: int, frame_id: str) -> Any:
    """std_msgs/Header for an int64-ns stamp."""
    return make("std_msgs/msg/Header", stamp=_time(stamp_ns), frame_id=frame_id)


def _vector3(v: np.ndarray) -> Any:
    return make("geometry_msgs/msg/Vector3", x=float(v[0]), y=float(v[1]), z=float(v[2]))


def _point(v: np.ndarray) -> Any:
    return make("geometry_msgs/msg/Point", x=float(v[0]), y=float(v[1]), z=float(v[2]))


def _quaternion(q_wxyz: np.ndarray) -> Any:
    return make("geometry_msgs/msg/Quaternion", x=float(q_wxyz[1]), y=float(q_wxyz[2]), z=float(q_wxyz[3]), w=float(q_wxyz[0]))


def _pose(T: np.ndarray) -> Any:
    return make("geometry_msgs/msg/Pose", position=_point(T[:3, 3]), orientation=_quaternion(se3.matrix_to_quat(T)))


def _yaw_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


# --------------------------------------------------------------------------------------------------
# Point clouds


def _time_column(time_offset_ns: np.ndarray, where: str) -> np.ndarray:
    t = np.asarray(time_offset_ns, dtype=np.int64)
    if t.size and (t.min() < _INT32.min or t.max() > _INT32.max):
        raise ShapeError(f"{where}: time_offset_ns spans {t.min()}..{t.max()} ns; the INT32 field holds ±{_INT32.max} ns")
    return t.astype(np.int32)


def _pointcloud2(stamp_ns: int, frame_id: str, columns: list[tuple[str, np.ndarray]], where: str) -> Any:
    """A packed little-endian PointCloud2 (height 1) of named (N,) columns, each of a PointField type."""
    names = [c for c, _ in columns]
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise ShapeError(f"{where}: field name(s) {dup} used twice")
    n = columns[0][1].shape[0]
    dtype = np.dtype([(c, v.dtype.newbyteorder("<")) for c, v in columns])
    rec = np.empty(n, dtype=dtype)
    fields = []
    for c, v in columns:
        if v.dtype not in _POINTFIELD_TYPE:
            raise ShapeError(f"{where}: field {c!r} has dtype {v.dtype}; "
                             f"PointField holds int8..int32, uint8..uint32, float32, float64")
        rec[c] = v
        offset = dtype.fields[c][1]
        fields.append(make("sensor_msgs/msg/PointField", name=c, offset=offset, datatype=_POINTFIELD_TYPE[v.dtype], count=1))
    xyz = np.stack([columns[i][1] for i in range(3)], axis=1) if n else np.zeros((0, 3))
    return make(
        "sensor_msgs/msg/PointCloud2", header=header(stamp_ns, frame_id), height=1, width=n, fields=fields,
        is_bigendian=False, point_step=dtype.itemsize, row_step=dtype.itemsize * n,
        data=np.frombuffer(rec.tobytes(), dtype=np.uint8), is_dense=bool(np.all(np.isfinite(xyz))),
    )


def encode_pointcloud(cloud: PointCloud) -> Any:
    """PointCloud -> PointCloud2: float32 fields in ``cloud.fields`` order, then ``time_offset_ns`` INT32."""
    where = f"PointCloud in {cloud.frame_id!r}"
    cols = [(name, np.ascontiguousarray(cloud.points[:, i])) for i, name in enumerate(cloud.fields)]
    if cloud.time_offset_ns is not None:
        cols.append(("time_offset_ns", _time_column(cloud.time_offset_ns, where)))
    return _pointcloud2(cloud.stamp_ns, cloud.frame_id, cols, where)


def _narrow(name: str, v: np.ndarray, where: str) -> np.ndarray:
    # PointField has no int64, bool or float16: narrow where the values allow it, else say so.
    if v.dtype == np.bool_:
        return v.astype(np.uint8)
    if v.dtype == np.float16:
        return v.astype(np.float32)
    if v.dtype in (np.int64, np.uint64):
        if v.size and (v.min() < _INT32.min or v.max() > _INT32.max):
            raise ShapeError(f"{where}: extra[{name!r}] ({v.dtype}) has values outside int32; PointField has no 64-bit integers")
        return v.astype(np.int32)
    return v


def encode_radar_pointcloud2(scan: RadarScan) -> Any:
    """RadarScan -> PointCloud2 with fields x y z rcs radial_velocity vx vy vx_comp vy_comp (float32),
    time_offset_ns (INT32) when present, then each ``extra`` in its own dtype (bool, float16, int64
    narrowed to uint8, float32, int32)."""
    where = f"RadarScan in {scan.frame_id!r}"
    cols: list[tuple[str, np.ndarray]] = [
        ("x", scan.points[:, 0]), ("y", scan.points[:, 1]), ("z", scan.points[:, 2]), ("rcs", scan.rcs),
        ("radial_velocity", scan.radial_velocity), ("vx", scan.velocity[:, 0]), ("vy", scan.velocity[:, 1]),
        ("vx_comp", scan.velocity_comp[:, 0]), ("vy_comp", scan.velocity_comp[:, 1]),
    ]
    if scan.time_offset_ns is not None:
        cols.append(("time_offset_ns", _time_column(scan.time_offset_ns, where)))
    cols += [(k, _narrow(k, np.asarray(v), where)) for k, v in scan.extra.items()]
    return _pointcloud2(scan.stamp_ns, scan.frame_id, [(c, np.ascontiguousarray(v)) for c, v in cols], where)


def encode_radar_scan(scan: RadarScan) -> Any:
    """RadarScan -> radar_msgs/RadarScan: x y z to range, azimuth, elevation; radial_velocity ->
    doppler_velocity, rcs -> amplitude. Lossy (float32 angles; velocities and extras are dropped)."""
    p = scan.points.astype(np.float64)
    rng = np.linalg.norm(p, axis=1)
    az = np.arctan2(p[:, 1], p[:, 0])
    with np.errstate(invalid="ignore", divide="ignore"):
        el = np.where(rng > 0, np.arcsin(np.clip(p[:, 2] / rng, -1.0, 1.0)), 0.0)
    returns = [
        make("radar_msgs/msg/RadarReturn", range=float(rng[i]), azimuth=float(az[i]), elevation=float(el[i]),
             doppler_velocity=float(scan.radial_velocity[i]), amplitude=float(scan.rcs[i]))
        for i in range(len(scan))
    ]
    return make("radar_msgs/msg/RadarScan", header=header(scan.stamp_ns, scan.frame_id), returns=returns)


# --------------------------------------------------------------------------------------------------
# Images


def encode_image(img: CameraImage) -> Any:
    """CameraImage -> sensor_msgs/Image rgb8 (lossless)."""
    h, w = img.height, img.width
    return make("sensor_msgs/msg/Image", header=header(img.stamp_ns, img.frame_id), height=h, width=w, encoding="rgb8",
                is_bigendian=0, step=3 * w, data=np.ascontiguousarray(img.image).reshape(-1))


def encode_compressed_image(img: CameraImage, fmt: str = "jpeg", quality: int = 90) -> Any:
    """CameraImage -> sensor_msgs/CompressedImage, ``fmt`` 'jpeg' (``quality`` 1..100) or 'png' (lossless).

    ``format`` is written as image_transport does ('rgb8; jpeg compressed bgr8'). An image decoded
    from a ``fmt`` file (``img.encoded``) is written as those bytes: no second lossy compression,
    and no encoding time; ``quality`` applies to the images compressed here.
    """
    if fmt not in ("jpeg", "png"):
        raise ShapeError(f"fmt: expected 'jpeg' or 'png', got {fmt!r}")
    if not 1 <= int(quality) <= 100:
        raise ShapeError(f"quality: expected 1..100, got {quality}")
    if img.encoded is not None and img.encoded.format == fmt:
        data = np.frombuffer(img.encoded.data, np.uint8)
    else:
        bgr = np.ascontiguousarray(img.image[..., ::-1])
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == "jpeg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
        ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", bgr, params)
        if not ok:
            raise ShapeError(f"image of camera {img.camera!r}: OpenCV could not encode it as {fmt}")
        data = np.asarray(buf, dtype=np.uint8).reshape(-1)
    return make("sensor_msgs/msg/CompressedImage", header=header(img.stamp_ns, img.frame_id),
                format=f"rgb8; {fmt} compressed bgr8", data=data)


# --------------------------------------------------------------------------------------------------
# GNSS, IMU, odometry


def encode_navsatfix(fix: GnssFix) -> Any:
    """GnssFix -> sensor_msgs/NavSatFix (a covariance with NaN is written as UNKNOWN, zeros)."""
    cov = fix.position_covariance
    unknown = bool(np.any(np.isnan(cov)))
    status = make("sensor_msgs/msg/NavSatStatus", status=int(fix.status), service=int(fix.service))
    return make("sensor_msgs/msg/NavSatFix", header=header(fix.stamp_ns, fix.frame_id), status=status,
                latitude=float(fix.latitude_deg), longitude=float(fix.longitude_deg), altitude=float(fix.altitude_m),
                position_covariance=np.zeros(9) if unknown else cov.reshape(-1).copy(),
                position_covariance_type=0 if unknown else int(fix.covariance_type))


def _ros_cov(c: np.ndarray) -> np.ndarray:
    return np.zeros(9) if np.any(np.isnan(c)) else np.asarray(c, dtype=np.float64).reshape(-1).copy()


def encode_imu(sample: ImuSample) -> Any:
    """ImuSample -> sensor_msgs/Imu (NaN orientation: identity with orientation_covariance[0] = -1)."""
    if np.any(np.isnan(sample.orientation)):
        q = np.array([1.0, 0.0, 0.0, 0.0])
        ocov = np.zeros(9)
        ocov[0] = -1.0
    else:
        q = sample.orientation
        ocov = _ros_cov(sample.orientation_covariance)
    return make("sensor_msgs/msg/Imu", header=header(sample.stamp_ns, sample.frame_id), orientation=_quaternion(q),
                orientation_covariance=ocov, angular_velocity=_vector3(sample.angular_velocity),
                angular_velocity_covariance=_ros_cov(sample.angular_velocity_covariance),
                linear_acceleration=_vector3(sample.linear_acceleration),
                linear_acceleration_covariance=_ros_cov(sample.linear_acceleration_covariance))


def encode_odometry(pose: EgoPose) -> Any:
    """EgoPose -> nav_msgs/Odometry (pose of child_frame_id in frame_id; twist in the child frame,
    NaN where unknown; covariances zero)."""
    cov = np.zeros(36)
    twist = make("geometry_msgs/msg/Twist", linear=_vector3(pose.velocity), angular=_vector3(pose.angular_velocity))
    return make("nav_msgs/msg/Odometry", header=header(pose.stamp_ns, pose.frame_id), child_frame_id=pose.child_frame_id,
                pose=make("geometry_msgs/msg/PoseWithCovariance", pose=_pose(pose.world_T_ego), covariance=cov),
                twist=make("geometry_msgs/msg/TwistWithCovariance", twist=twist, covariance=cov.copy()))


# --------------------------------------------------------------------------------------------------
# Boxes


def encode_box3d_array(det: Detections) -> Any:
    """Detections -> bevfuse_msgs/Box3DArray (class by name; None columns as '' or -1)."""
    n = len(det)
    attr = det.attribute if det.attribute is not None else np.full(n, "", dtype=object)
    track = det.track_id if det.track_id is not None else np.full(n, "", dtype=object)
    lidar = det.num_lidar_pts if det.num_lidar_pts is not None else np.full(n, -1)
    radar = det.num_radar_pts if det.num_radar_pts is not None else np.full(n, -1)
    boxes = [
        make("bevfuse_msgs/msg/Box3D", x=float(det.center[i, 0]), y=float(det.center[i, 1]), z=float(det.center[i, 2]),
             length=float(det.size[i, 0]), width=float(det.size[i, 1]), height=float(det.size[i, 2]), yaw=float(det.yaw[i]),
             vx=float(det.velocity[i, 0]), vy=float(det.velocity[i, 1]), class_name=det.class_names[int(det.label[i])],
             attribute=str(attr[i] or ""), track_id=str(track[i] or ""), score=float(det.score[i]),
             num_lidar_pts=int(lidar[i]), num_radar_pts=int(radar[i]))
        for i in range(n)
    ]
    return make("bevfuse_msgs/msg/Box3DArray", header=header(det.stamp_ns, det.frame_id), boxes=boxes)


def encode_detection3d_array(det: Detections) -> Any:
    """Detections -> vision_msgs/Detection3DArray: one hypothesis per box (class name, score), the
    box centre pose with its yaw, size = length width height, id = track_id. Lossy (see module)."""
    hdr = header(det.stamp_ns, det.frame_id)
    track = det.track_id if det.track_id is not None else np.full(len(det), "", dtype=object)
    out = []
    for i in range(len(det)):
        T = se3.from_rotation_translation(_yaw_quat(float(det.yaw[i])), det.center[i])
        pose = _pose(T)
        hyp = make("vision_msgs/msg/ObjectHypothesis", class_id=det.class_names[int(det.label[i])], score=float(det.score[i]))
        result = make("vision_msgs/msg/ObjectHypothesisWithPose", hypothesis=hyp,
                      pose=make("geometry_msgs/msg/PoseWithCovariance", pose=pose, covariance=np.zeros(36)))
        bbox = make("vision_msgs/msg/BoundingBox3D", center=_pose(T), size=_vector3(det.size[i]))
        out.append(make("vision_msgs/msg/Detection3D", header=hdr, results=[result], bbox=bbox, id=str(track[i] or "")))
    return make("vision_msgs/msg/Detection3DArray", header=hdr, detections=out)


# --------------------------------------------------------------------------------------------------
# Calibration


def camera_info_topic(image_topic: str) -> str:
    """Where a camera's CameraInfo goes (image_transport convention): the image topic's namespace
    + '/camera_info'. '/cam/image_raw' and '/cam/image_raw/compressed' -> '/cam/camera_info';
    a top-level '/CAM_FRONT' -> '/CAM_FRONT/camera_info'."""
    parts = [p for p in image_topic.split("/") if p]
    if len(parts) > 1 and parts[-1] in _TRANSPORTS:
        parts = parts[:-1]
    ns = parts[:-1] if len(parts) > 1 else parts
    return "/" + "/".join([*ns, "camera_info"])


def encode_camera_info(camera: CameraModel, stamp_ns: int, frame_id: str) -> Any:
    """PinholeCamera -> plumb_bob (5 coefficients) or rational_polynomial (8, when k4..k6 are set);
    FisheyeCamera -> equidistant (4). R = identity, P = [K | 0] (the image is not rectified)."""
    K = camera.K
    if isinstance(camera, FisheyeCamera):
        model, d = "equidistant", list(camera.distortion)
    elif isinstance(camera, PinholeCamera):
        rational = any(camera.distortion[5:])
        model, d = ("rational_polynomial", list(camera.distortion)) if rational else ("plumb_bob", list(camera.distortion[:5]))
    else:
        raise ShapeError(f"camera: expected PinholeCamera or FisheyeCamera, got {type(camera).__name__}")
    P = np.zeros((3, 4))
    P[:, :3] = K
    roi = make("sensor_msgs/msg/RegionOfInterest", x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return make("sensor_msgs/msg/CameraInfo", header=header(stamp_ns, frame_id), height=int(camera.height),
                width=int(camera.width), distortion_model=model, d=np.asarray(d, dtype=np.float64),
                k=K.reshape(-1).copy(), r=np.eye(3).reshape(-1), p=P.reshape(-1), binning_x=0, binning_y=0, roi=roi)


def encode_tf_static(rig: Rig, stamp_ns: int, ego_frame: str = EGO_FRAME) -> Any:
    """tf2_msgs/TFMessage: ``ego_frame`` -> the frame of every rig sensor (once per frame; a sensor in
    ``ego_frame`` itself gives none). Two sensors sharing a frame with different poses: RigError."""
    hdr = header(stamp_ns, ego_frame)
    seen: dict[str, tuple[str, np.ndarray]] = {}
    transforms = []
    for s in rig.sensors:
        if s.frame == ego_frame:
            continue
        if s.frame in seen:
            other, T = seen[s.frame]
            if not np.allclose(T, s.ego_T_sensor, atol=1e-9):
                raise RigError(f"{rig.source}: sensors {other!r} and {s.name!r} share frame {s.frame!r} "
                               f"with different ego_T_sensor")
            continue
        seen[s.frame] = (s.name, s.ego_T_sensor)
        tf = make("geometry_msgs/msg/Transform", translation=_vector3(s.ego_T_sensor[:3, 3]),
                  rotation=_quaternion(se3.matrix_to_quat(s.ego_T_sensor)))
        transforms.append(make("geometry_msgs/msg/TransformStamped", header=hdr, child_frame_id=s.frame, transform=tf))
    return make("tf2_msgs/msg/TFMessage", transforms=transforms)


# --------------------------------------------------------------------------------------------------
# Dispatch


def encode(payload: Payload, msgtype: str | None = None, *, jpeg_quality: int = 90) -> tuple[str, Any]:
    """(ROS type, message) for a payload: ``msgtype`` or the payload's default (``DEFAULT_MSGTYPES``).

    Raises ``ShapeError`` when the payload cannot be written as ``msgtype``.
    """
    kind = type(payload)
    if kind not in DEFAULT_MSGTYPES:
        known = [t.__name__ for t in DEFAULT_MSGTYPES]
        raise ShapeError(f"payload: {kind.__name__} is not a bevfuse payload; expected one of {known}")
    msgtype = msgtype or DEFAULT_MSGTYPES[kind]
    if msgtype not in ENCODABLE_MSGTYPES[kind]:
        raise ShapeError(f"msgtype: a {kind.__name__} is written as one of {list(ENCODABLE_MSGTYPES[kind])}, not {msgtype}")
    if isinstance(payload, PointCloud):
        return msgtype, encode_pointcloud(payload)
    if isinstance(payload, CameraImage):
        if msgtype == "sensor_msgs/msg/Image":
            return msgtype, encode_image(payload)
        return msgtype, encode_compressed_image(payload, "jpeg", jpeg_quality)
    if isinstance(payload, RadarScan):
        if msgtype == "radar_msgs/msg/RadarScan":
            return msgtype, encode_radar_scan(payload)
        return msgtype, encode_radar_pointcloud2(payload)
    if isinstance(payload, GnssFix):
        return msgtype, encode_navsatfix(payload)
    if isinstance(payload, ImuSample):
        return msgtype, encode_imu(payload)
    if isinstance(payload, EgoPose):
        return msgtype, encode_odometry(payload)
    if msgtype == "vision_msgs/msg/Detection3DArray":
        return msgtype, encode_detection3d_array(payload)
    return msgtype, encode_box3d_array(payload)
