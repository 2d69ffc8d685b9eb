"""ROS message decoding and encoding, message by message, with hand-built edge cases.

Messages go through real CDR serialization (``serialize`` then the typestore's deserializer), so the
decoders see what they would see from a bag.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from calib import se3
from perception.classes import NUSCENES_CLASSES
from perception.errors import DecodeError, ShapeError
from perception.io import ros_decode as D
from perception.io import ros_encode as E
from perception.io.rosbag import sensor_name_for_topic
from perception.io.rosmsg import make, typestore
from perception.types import CameraImage, Modality, PointCloud, RadarScan
from tests.perception.io.rosbag_samples import (
    FISHEYE,
    PINHOLE,
    RATIONAL,
    T0,
    assert_payload_equal,
    detections,
    lidar_cloud,
    radar_scan,
    sample_rig,
    smooth_image,
)

PC2 = "sensor_msgs/msg/PointCloud2"


def cdr(msg: object, msgtype: str) -> object:
    """The message as a reader would get it: CDR bytes and back."""
    return typestore().deserialize_cdr(E.serialize(msg, msgtype), msgtype)


def cloud_msg(rec: np.ndarray, fields: list[tuple[str, int, int, int]], *, height: int = 1, row_pad: int = 0,
              big: bool = False, stamp: int = T0, **override: int) -> object:
    """A PointCloud2 of the structured array ``rec`` (height * width records), fields given as
    (name, datatype, offset, count); ``row_pad`` garbage bytes end each row."""
    width = rec.size // height
    step = rec.dtype.itemsize
    rows = rec.reshape(height, width)
    data = b"".join(r.tobytes() + b"\xab" * row_pad for r in rows)
    layout = {"point_step": step, "row_step": width * step + row_pad} | override
    pf = [make("sensor_msgs/msg/PointField", name=n, datatype=dt, offset=o, count=c) for n, dt, o, c in fields]
    return make(PC2, header=E.header(stamp, "/lidar"), height=height, width=width, fields=pf, is_bigendian=big,
                data=np.frombuffer(data, np.uint8).copy(), is_dense=True, **layout)


# -- PointCloud2 -----------------------------------------------------------------------------------

# Every PointField datatype, unaligned, with a gap inside the point (bytes 31..35) and a count-3 field.
MIXED = [("x", 7, 0, 1), ("y", 8, 4, 1), ("z", 7, 12, 1), ("i8", 1, 16, 1), ("u8", 2, 17, 1), ("i16", 3, 18, 1),
         ("u16", 4, 20, 1), ("i32", 5, 22, 1), ("u32", 6, 26, 1), ("t", 6, 36, 1), ("normal", 7, 40, 3)]
_CODES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}


def mixed_records(order: str, n: int, rng: np.random.Generator) -> np.ndarray:
    dtype = np.dtype({"names": [f[0] for f in MIXED],
                      "formats": [order + _CODES[f[1]] if f[3] == 1 else (order + _CODES[f[1]], (f[3],)) for f in MIXED],
                      "offsets": [f[2] for f in MIXED], "itemsize": 56})
    rec = np.zeros(n, dtype)
    for name, dt, _, _ in MIXED:
        info = np.iinfo(_CODES[dt]) if _CODES[dt][0] in "iu" else None
        if info is not None:
            rec[name] = rng.integers(info.min, info.max, n, endpoint=True, dtype=np.int64 if info.min < 0 else np.uint64)
        else:
            rec[name] = rng.normal(0, 100, rec[name].shape)
    rec["t"] = rng.integers(0, 100_000_000, n)  # Ouster-style uint32 ns
    return rec


@pytest.mark.parametrize("big", [False, True], ids=["little-endian", "big-endian"])
def test_pointcloud2_every_datatype_padding_and_endianness(big: bool) -> None:
    rec = mixed_records(">" if big else "<", 12, np.random.default_rng(0))
    msg = cdr(cloud_msg(rec, MIXED, height=3, row_pad=5, big=big), PC2)
    cloud = D.decode(msg, PC2, topic="/lidar")
    assert isinstance(cloud, PointCloud) and cloud.frame_id == "lidar"
    assert cloud.fields == ("x", "y", "z", "i8", "u8", "i16", "u16", "i32", "u32", "normal_0", "normal_1", "normal_2")
    for name in ("x", "y", "z", "i8", "u8", "i16", "u16", "i32", "u32"):
        np.testing.assert_array_equal(cloud.field(name), rec[name].astype(np.float32), err_msg=name)
    np.testing.assert_array_equal(cloud.field("normal_2"), rec["normal"][:, 2].astype(np.float32))
    np.testing.assert_array_equal(cloud.time_offset_ns, rec["t"].astype(np.int64))
    # read_pointcloud2 keeps each column's own type, in native byte order.
    cols = D.read_pointcloud2(msg, "/lidar")
    assert cols["i16"].dtype == np.int16 and cols["y"].dtype == np.float64 and cols["u32"].dtype.isnative
    np.testing.assert_array_equal(cols["u32"], rec["u32"])


@pytest.mark.parametrize(("field", "dt", "values", "expect_ns"), [
    ("time", 7, np.array([0.0, 0.05, -0.01], np.float32), None),  # Velodyne: float32 s from the stamp
    ("t", 6, np.array([0, 50_000_000, 99_999_999], np.uint32), [0, 50_000_000, 99_999_999]),  # Ouster: uint32 ns
    ("offset_time", 6, np.array([1, 2, 3], np.uint32), [1, 2, 3]),  # Livox: uint32 ns
    ("timestamp", 8, (T0 + np.array([-1_000_000, 0, 2_500_000])) / 1e9, [-1_000_000, 0, 2_500_000]),  # Hesai: absolute s
    ("timestamp", 5, None, None),  # an int32 'timestamp' of small ns offsets
])
def test_pointcloud2_time_field_conventions(field: str, dt: int, values: np.ndarray | None, expect_ns: list[int] | None) -> None:
    if values is None:
        values = np.array([-5, 0, 7], np.int32)
        expect_ns = [-5, 0, 7]
    if expect_ns is None:
        expect_ns = np.round(values.astype(np.float64) * 1e9).astype(np.int64).tolist()
    size = 8 if dt == 8 else 4
    dtype = np.dtype({"names": ["x", "y", "z", field], "formats": ["<f4"] * 3 + ["<" + _CODES[dt]],
                      "offsets": [0, 4, 8, 12], "itemsize": 12 + size})
    rec = np.zeros(3, dtype)
    rec[field] = values
    msg = cloud_msg(rec, [("x", 7, 0, 1), ("y", 7, 4, 1), ("z", 7, 8, 1), (field, dt, 12, 1)])
    cloud = D.decode_pointcloud2(cdr(msg, PC2))
    assert cloud.fields == ("x", "y", "z")
    # absolute float64 seconds carry ~0.2 us of rounding at 2023 epoch values
    tol = 500 if field == "timestamp" and dt == 8 else 0
    np.testing.assert_allclose(cloud.time_offset_ns, expect_ns, atol=tol, rtol=0)


@pytest.mark.parametrize(("override", "fields", "match"), [
    ({"point_step": 8}, None, r"field 'z' spans bytes 8\.\.12 but point_step is 8"),
    ({"row_step": 20}, None, r"row_step 20 < width 4 \* point_step 12"),
    ({"width": 5}, None, r"data has 48 bytes; expected height 1 \* row_step 60 = 60 \(width 5, point_step 12\)"),
    ({}, [("x", 7, 0, 1), ("y", 7, 4, 1), ("z", 9, 8, 1)], "datatype 9"),
    ({}, [("x", 7, 0, 1), ("y", 7, 4, 1), ("y", 7, 8, 1)], "'y' appears twice"),
    ({}, [("x", 7, 0, 1), ("y", 7, 4, 1), ("intensity", 7, 8, 1)], r"no field\(s\) \['z'\]"),
    ({}, [("x", 7, 0, 1), ("y", 7, 4, 1), ("z", 7, 8, 0)], "count 0"),
])
def test_pointcloud2_layout_errors_name_topic_and_numbers(override: dict, fields: list | None, match: str) -> None:
    rec = np.zeros(4, np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4")]))
    msg = cloud_msg(rec, fields or [("x", 7, 0, 1), ("y", 7, 4, 1), ("z", 7, 8, 1)])
    for k, v in override.items():
        setattr(msg, k, v)
    if "width" in override:
        msg.row_step = 5 * 12
    with pytest.raises(DecodeError, match=match) as exc:
        D.decode(cdr(msg, PC2), PC2, topic="/velodyne_points")
    assert str(exc.value).startswith("/velodyne_points: PointCloud2")


def test_pointcloud_round_trip_is_bit_exact_and_checks_offset_range() -> None:
    cloud = lidar_cloud(T0, np.random.default_rng(4))
    back = D.decode(cdr(E.encode_pointcloud(cloud), PC2), PC2, modality=Modality.LIDAR)
    assert_payload_equal(cloud, back)
    empty = PointCloud(T0, "l", np.zeros((0, 4), np.float32))
    assert_payload_equal(empty, D.decode_pointcloud2(cdr(E.encode_pointcloud(empty), PC2)))
    far = PointCloud(T0, "l", np.zeros((1, 4), np.float32), time_offset_ns=np.array([3 * 10**9]))
    with pytest.raises(ShapeError, match="time_offset_ns spans"):
        E.encode_pointcloud(far)


# -- radar -----------------------------------------------------------------------------------------


def read_pcd(path: Path) -> tuple[list[tuple[str, int, int, int]], bytes, int]:
    """(PointField tuples, packed data, point count) of a binary PCD (v0.7)."""
    raw = path.read_bytes()
    header, _, data = raw.partition(b"DATA binary\n")
    meta = {ln.split()[0]: ln.split()[1:] for ln in header.decode().splitlines() if ln and not ln.startswith("#")}
    types = {("F", 4): 7, ("F", 8): 8, ("I", 1): 1, ("I", 2): 3, ("I", 4): 5, ("U", 1): 2, ("U", 2): 4, ("U", 4): 6}
    fields, off = [], 0
    for name, size, typ, count in zip(meta["FIELDS"], meta["SIZE"], meta["TYPE"], meta["COUNT"]):
        fields.append((name, types[(typ, int(size))], off, int(count)))
        off += int(size) * int(count)
    n = int(meta["POINTS"][0])
    return fields, data[: n * off], n


def test_nuscenes_radar_pointcloud2_from_real_pcd(realdata: Path) -> None:
    pcd = next((realdata / "nuscenes_radar").glob("*RADAR_BACK_RIGHT*.pcd"))
    fields, data, n = read_pcd(pcd)
    step = fields[-1][2] + 1
    pf = [make("sensor_msgs/msg/PointField", name=a, datatype=b, offset=c, count=d) for a, b, c, d in fields]
    msg = make(PC2, header=E.header(T0, "radar_back_right"), height=1, width=n, fields=pf, is_bigendian=False,
               point_step=step, row_step=step * n, data=np.frombuffer(data, np.uint8).copy(), is_dense=True)
    assert D.is_radar_cloud(msg)
    scan = D.decode(cdr(msg, PC2), PC2, topic="/radar_back_right")
    assert isinstance(scan, RadarScan) and len(scan) == n == 125
    cols = D.read_pointcloud2(msg)
    np.testing.assert_array_equal(scan.rcs, cols["rcs"])
    np.testing.assert_array_equal(scan.velocity_comp[:, 1], cols["vy_comp"])
    # nuScenes' vx vy lie along the line of sight: the projection recovers the Doppler speed.
    p = np.stack([cols["x"], cols["y"], cols["z"]], 1).astype(np.float64)
    radial = (cols["vx"] * p[:, 0] + cols["vy"] * p[:, 1]) / np.linalg.norm(p, axis=1)
    np.testing.assert_allclose(scan.radial_velocity, radial, rtol=1e-6)
    assert sorted(scan.extra) == sorted(["dyn_prop", "id", "is_quality_valid", "ambig_state", "x_rms", "y_rms",
                                         "invalid_state", "pdh0", "vx_rms", "vy_rms"])
    assert scan.extra["id"].dtype == np.int16 and scan.extra["dyn_prop"].dtype == np.int8
    assert np.all(np.isfinite(scan.points)) and np.abs(scan.points).max() < 300


def test_radar_scan_round_trips() -> None:
    scan = radar_scan(T0, np.random.default_rng(5), "radar")
    back = D.decode(cdr(E.encode_radar_pointcloud2(scan), PC2), PC2, modality=Modality.RADAR)
    assert_payload_equal(scan, back)
    # radar_msgs: spherical, checked on hand-computed returns
    rs = make("radar_msgs/msg/RadarScan", header=E.header(T0, "r"), returns=[
        make("radar_msgs/msg/RadarReturn", range=10.0, azimuth=np.pi / 2, elevation=0.0, doppler_velocity=-2.0, amplitude=7.0),
        make("radar_msgs/msg/RadarReturn", range=5.0, azimuth=0.0, elevation=float(np.arcsin(0.6)), doppler_velocity=1.0,
             amplitude=-3.0)])
    got = D.decode(cdr(rs, "radar_msgs/msg/RadarScan"), "radar_msgs/msg/RadarScan")
    np.testing.assert_allclose(got.points, [[0, 10, 0], [4, 0, 3]], atol=1e-5)
    assert got.radial_velocity.tolist() == [-2.0, 1.0] and got.rcs.tolist() == [7.0, -3.0]
    again = D.decode_radar_scan(cdr(E.encode_radar_scan(got), "radar_msgs/msg/RadarScan"))
    np.testing.assert_allclose(again.points, got.points, atol=1e-5)


# -- images ----------------------------------------------------------------------------------------


def image_msg(encoding: str, pixels: np.ndarray, *, pad: int = 0, big: bool = False) -> object:
    h, w = pixels.shape[:2]
    row = pixels.reshape(h, -1).view(np.uint8).reshape(h, -1)
    data = np.concatenate([row, np.full((h, pad), 0xCD, np.uint8)], axis=1).reshape(-1)
    return make("sensor_msgs/msg/Image", header=E.header(T0, "cam"), height=h, width=w, encoding=encoding,
                is_bigendian=int(big), step=row.shape[1] + pad, data=data)


# A flat colour per 16x16 patch: demosaicing reproduces a flat colour exactly away from the edges,
# so a wrong Bayer mapping (R and B swapped, or G misplaced) shows as a different colour.
CHART = np.zeros((32, 32, 3), np.uint8)
CHART[:16, :16] = (200, 40, 10)
CHART[:16, 16:] = (10, 180, 60)
CHART[16:, :16] = (30, 60, 220)
CHART[16:, 16:] = (250, 250, 20)


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_patterns(pattern: str) -> None:
    channel = {"r": 0, "g": 1, "b": 2}
    mosaic = np.zeros(CHART.shape[:2], np.uint8)
    for k, c in enumerate(pattern):
        dy, dx = divmod(k, 2)
        mosaic[dy::2, dx::2] = CHART[dy::2, dx::2, channel[c]]
    img = D.decode(cdr(image_msg(f"bayer_{pattern}8", mosaic, pad=3), "sensor_msgs/msg/Image"), "sensor_msgs/msg/Image")
    for y, x in ((6, 6), (6, 25), (25, 6), (25, 25)):  # patch centres
        np.testing.assert_array_equal(img.image[y, x], CHART[y, x], err_msg=f"{pattern} at {(y, x)}")


def test_plain_encodings_and_step_padding() -> None:
    rgb = smooth_image(6, 7, 1)
    ImT = "sensor_msgs/msg/Image"
    assert np.array_equal(D.decode(cdr(image_msg("rgb8", rgb, pad=2), ImT), ImT).image, rgb)
    assert np.array_equal(D.decode(cdr(image_msg("bgr8", rgb[..., ::-1].copy(), pad=1), ImT), ImT).image, rgb)
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 9, np.uint8)], axis=2)
    assert np.array_equal(D.decode(cdr(image_msg("rgba8", rgba), ImT), ImT).image, rgb)
    mono = rgb[..., 1].copy()
    got = D.decode(cdr(image_msg("mono8", mono, pad=4), ImT), ImT).image
    assert got.shape == (6, 7, 3) and all(np.array_equal(got[..., c], mono) for c in range(3))
    mono16 = (mono.astype(np.uint16) << 8) | 0x7F
    got16 = D.decode(cdr(image_msg("mono16", mono16.astype(">u2"), big=True), ImT), ImT).image
    assert np.array_equal(got16[..., 0], mono)
    with pytest.raises(DecodeError, match="encoding 'yuv422' not supported"):
        D.decode(cdr(image_msg("yuv422", mono), ImT), ImT, topic="/cam")
    short = image_msg("rgb8", rgb)
    short.step = 20
    with pytest.raises(DecodeError, match=r"/cam: Image: step 20 < width 7 \* 3"):
        D.decode(cdr(short, ImT), ImT, topic="/cam")


def test_compressed_images() -> None:
    img = CameraImage(T0, "CAM", "cam", smooth_image(40, 50, 2))
    CT = "sensor_msgs/msg/CompressedImage"
    png = D.decode(cdr(E.encode_compressed_image(img, "png"), CT), CT, sensor="CAM")
    assert_payload_equal(img, png)
    jpg = D.decode(cdr(E.encode_compressed_image(img, "jpeg", 90), CT), CT, sensor="CAM")
    err = jpg.image.astype(np.float64) - img.image
    # PSNR in dB (29.6 measured): 4:2:0 chroma blurs the saturated disc's edge; swapped channels would give ~10.
    assert 10 * np.log10(255**2 / np.mean(err**2)) > 27.0
    assert E.encode_compressed_image(img).format == "rgb8; jpeg compressed bgr8"
    # a decoded JPEG keeps its bytes, and is written back as them (no second lossy compression)
    sent = cdr(E.encode_compressed_image(img, "jpeg", 90), CT)
    assert jpg.encoded is not None and jpg.encoded.format == "jpeg" and jpg.encoded.data == bytes(sent.data)
    assert bytes(E.encode_compressed_image(jpg, "jpeg", 50).data) == jpg.encoded.data
    again = D.decode(cdr(E.encode_compressed_image(jpg, "png"), CT), CT, sensor="CAM")  # another format: from the pixels
    assert again.encoded.format == "png" and np.array_equal(again.image, jpg.image)
    assert img.encoded is None and bytes(E.encode_compressed_image(img, "jpeg", 50).data) != bytes(sent.data)
    bad = E.encode_compressed_image(img)
    bad.data = bad.data[:100]
    with pytest.raises(DecodeError, match=r"/cam/compressed: CompressedImage: could not decode 100 bytes"):
        D.decode(cdr(bad, CT), CT, topic="/cam/compressed")
    assert np.array_equal(D.decode(cdr(E.encode_image(img), "sensor_msgs/msg/Image"), "sensor_msgs/msg/Image",
                                   sensor="CAM").image, img.image)
    assert cv2.imdecode(np.asarray(E.encode_compressed_image(img).data), cv2.IMREAD_COLOR).shape == (40, 50, 3)


# -- GNSS, IMU, odometry, calibration, boxes -------------------------------------------------------


def test_unknown_covariances_and_orientation() -> None:
    fix = make("sensor_msgs/msg/NavSatFix", header=E.header(T0, "/gps"),
               status=make("sensor_msgs/msg/NavSatStatus", status=0, service=1), latitude=42.0, longitude=-71.0,
               altitude=5.0, position_covariance=np.arange(9.0), position_covariance_type=0)
    g = D.decode_navsatfix(cdr(fix, "sensor_msgs/msg/NavSatFix"))
    assert g.frame_id == "gps" and np.isnan(g.position_covariance).all()
    fix.position_covariance_type = 2
    assert D.decode_navsatfix(fix).position_covariance[2, 2] == 8.0
    imu = make("sensor_msgs/msg/Imu", header=E.header(T0, "imu"),
               orientation=make("geometry_msgs/msg/Quaternion", x=0.0, y=0.0, z=0.0, w=1.0),
               orientation_covariance=np.array([-1.0] + [0.0] * 8),
               angular_velocity=make("geometry_msgs/msg/Vector3", x=1.0, y=2.0, z=3.0), angular_velocity_covariance=np.zeros(9),
               linear_acceleration=make("geometry_msgs/msg/Vector3", x=0.0, y=0.0, z=9.8),
               linear_acceleration_covariance=np.eye(3).reshape(-1))
    s = D.decode_imu(cdr(imu, "sensor_msgs/msg/Imu"))
    assert np.isnan(s.orientation).all() and np.isnan(s.orientation_covariance).all()
    assert np.isnan(s.angular_velocity_covariance).all() and s.linear_acceleration_covariance[1, 1] == 1.0
    assert s.angular_velocity.tolist() == [1.0, 2.0, 3.0]


def test_camera_info_models_round_trip_and_errors() -> None:
    CI = "sensor_msgs/msg/CameraInfo"
    for cam, model in ((PINHOLE, "plumb_bob"), (RATIONAL, "rational_polynomial"), (FISHEYE, "equidistant")):
        msg = E.encode_camera_info(cam, T0, "cam")
        assert msg.distortion_model == model
        assert D.decode_camera_info(cdr(msg, CI)) == cam
    msg = E.encode_camera_info(PINHOLE, T0, "cam")
    msg.k = np.zeros(9)
    with pytest.raises(DecodeError, match="/cam/camera_info: CameraInfo: uncalibrated"):
        D.decode_camera_info(msg, "/cam/camera_info")
    msg = E.encode_camera_info(PINHOLE, T0, "cam")
    msg.distortion_model = "double_sphere"
    with pytest.raises(DecodeError, match="'double_sphere' not supported"):
        D.decode_camera_info(msg)


def test_tf_static_of_a_rig() -> None:
    rig = sample_rig()
    edges = D.decode_tf(cdr(E.encode_tf_static(rig, T0), "tf2_msgs/msg/TFMessage"))
    # ODOM sits in the ego frame itself: no transform for it.
    assert [c for _, c, _ in edges] == [s.frame for s in rig.sensors if s.frame != "ego"]
    for parent, child, T in edges:
        assert parent == "ego"
        np.testing.assert_allclose(T, rig.by_frame(child).ego_T_sensor, atol=1e-15)
        assert se3.is_rigid(T)


def test_boxes() -> None:
    det = detections(T0, np.random.default_rng(7))
    BT, VT = "bevfuse_msgs/msg/Box3DArray", "vision_msgs/msg/Detection3DArray"
    assert_payload_equal(det, D.decode(cdr(E.encode_box3d_array(det), BT), BT))
    bare = det.select(np.arange(len(det)))
    bare = type(det)(bare.stamp_ns, bare.frame_id, bare.class_names, bare.center, bare.size, bare.yaw, bare.velocity,
                     bare.score, bare.label)
    back = D.decode(cdr(E.encode_box3d_array(bare), BT), BT)
    assert back.num_lidar_pts is None and back.attribute.tolist() == [""] * len(det)
    msg = E.encode_box3d_array(det)
    msg.boxes[2].class_name = "unicorn"
    with pytest.raises(DecodeError, match=r"/gt: Box3DArray: class name\(s\) \['unicorn'\] not in"):
        D.decode(msg, BT, topic="/gt")
    # vision_msgs: the best hypothesis wins
    vmsg = E.encode_detection3d_array(det)
    extra = make("vision_msgs/msg/ObjectHypothesisWithPose",
                 hypothesis=make("vision_msgs/msg/ObjectHypothesis", class_id="pedestrian", score=2.0),
                 pose=vmsg.detections[0].results[0].pose)
    vmsg.detections[0].results.append(extra)
    got = D.decode(cdr(vmsg, VT), VT)
    assert got.labels_as_names[0] == "pedestrian" and got.score[0] == 2.0
    assert got.labels_as_names[1:] == det.labels_as_names[1:] and got.class_names == NUSCENES_CLASSES


def test_encode_rejects_wrong_type_and_decode_wraps_malformed() -> None:
    with pytest.raises(ShapeError, match="CameraImage is written as one of"):
        E.encode(CameraImage(T0, "c", "c", smooth_image(4, 4, 0)), "sensor_msgs/msg/Imu")
    with pytest.raises(DecodeError, match="has no bevfuse payload"):
        D.decode(object(), "std_msgs/msg/String", topic="/chatter")
    with pytest.raises(DecodeError, match="/odom: nav_msgs/msg/Odometry: AttributeError"):
        D.decode(object(), "nav_msgs/msg/Odometry", topic="/odom")


@pytest.mark.parametrize(("topic", "info", "name"), [
    ("/cam/image_raw", "/cam/camera_info", "cam_image_raw"),
    ("/cam/image_raw/compressed", "/cam/camera_info", "cam_image_raw"),
    ("/CAM_FRONT", "/CAM_FRONT/camera_info", "CAM_FRONT"),
    ("/a/b/image", "/a/b/camera_info", "a_b_image"),
])
def test_topic_conventions(topic: str, info: str, name: str) -> None:
    assert E.camera_info_topic(topic) == info
    assert sensor_name_for_topic(topic) == name
