"""KITTI readers: the real object frames (../shared/realdata/kitti_object) and a raw drive written
here in the devkit's text formats (no raw drive is shipped)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from calib import se3
from perception.boxes import box_corners, points_in_boxes
from perception.errors import DecodeError, FormatError, InputFileError
from perception.io.base import EGO_POSE, GROUND_TRUTH, LogReader, detect_format, open_log
from perception.io.kitti import (
    KittiCalib,
    KittiLabel,
    KittiObjectReader,
    KittiRawReader,
    labels_to_detections,
    parse_kitti_timestamp,
    read_label_file,
    read_velodyne_bin,
)
from perception.types import CameraImage, EgoPose, GnssFix, ImuSample, PointCloud


@pytest.fixture(scope="module")
def obj(realdata: Path) -> KittiObjectReader:
    r = open_log(realdata / "kitti_object")
    assert isinstance(r, KittiObjectReader)
    return r


def _calib_matrices(path: Path) -> dict[str, np.ndarray]:
    """The calib file parsed here with plain numpy: the test's own reading of KITTI's format."""
    out = {}
    for line in path.read_text().splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out[k] = np.array(v.split(), dtype=np.float64)
    return out


def _kitti_velo_to_image(path: Path) -> np.ndarray:
    """(3, 4) P2 @ R0_rect @ Tr_velo_to_cam in homogeneous form, as KITTI's devkit multiplies it."""
    m = _calib_matrices(path)
    R0 = np.eye(4)
    R0[:3, :3] = m["R0_rect"].reshape(3, 3)
    Tr = np.eye(4)
    Tr[:3] = m["Tr_velo_to_cam"].reshape(3, 4)
    return m["P2"].reshape(3, 4) @ R0 @ Tr


def _devkit_corners_in_velo(label: KittiLabel, calib_path: Path) -> np.ndarray:
    """KITTI devkit's compute_box_3d (camera frame, origin at the bottom centre, y down), then
    mapped to the velodyne by inv(R0_rect @ Tr_velo_to_cam): an oracle independent of the reader."""
    h, w, l = label.dimensions
    ry = label.rotation_y
    R = np.array([[np.cos(ry), 0, np.sin(ry)], [0, 1, 0], [-np.sin(ry), 0, np.cos(ry)]])
    x = l / 2 * np.array([1, 1, -1, -1, 1, 1, -1, -1])
    y = np.array([0, 0, 0, 0, -h, -h, -h, -h])
    z = w / 2 * np.array([1, -1, -1, 1, 1, -1, -1, 1])
    cam = (R @ np.stack([x, y, z])).T + np.asarray(label.location)
    m = _calib_matrices(calib_path)
    R0 = np.eye(4)
    R0[:3, :3] = m["R0_rect"].reshape(3, 3)
    Tr = np.eye(4)
    Tr[:3] = m["Tr_velo_to_cam"].reshape(3, 4)
    velo = np.linalg.inv(R0 @ Tr) @ np.c_[cam, np.ones(8)].T
    return velo[:3].T


def _tilt_tolerance(calib: KittiCalib, size_hwl: tuple[float, float, float]) -> float:
    """Boxes upright in the velodyne frame cannot carry the tilt (~0.5 degree) between the velodyne and
    the rectified camera in which KITTI's boxes are upright: a corner moves by at most tilt x the
    half-diagonal. A wrong conversion is off by decimetres (the bottom centre taken as the centre:
    h/2; h w l mixed up; the yaw sign on a turned box)."""
    up_in_velo = se3.invert(calib.rect0_T_velo)[:3, :3] @ np.array([0.0, -1.0, 0.0])  # camera y points down
    tilt = float(np.arccos(np.clip(up_in_velo[2], -1.0, 1.0)))
    return 1.05 * tilt * float(np.linalg.norm(size_hwl)) / 2 + 1e-3


def _same_corner_sets(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    d = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
    return bool(d.min(axis=1).max() < tol and d.min(axis=0).max() < tol)


# ------------------------------------------------------------------------------------ object data

def test_object_reader_stream_and_rig(obj: KittiObjectReader, realdata: Path) -> None:
    assert isinstance(obj, LogReader)
    assert detect_format(realdata / "kitti_object") == "kitti_object"
    assert obj.frames == [0, 1, 2]
    assert obj.rig.names == ["cam2", "velodyne"]
    np.testing.assert_array_equal(obj.rig["velodyne"].ego_T_sensor, np.eye(4))  # ego = velodyne frame
    msgs = list(obj.messages())
    assert [m.stamp_ns for m in msgs] == sorted(m.stamp_ns for m in msgs)
    assert {m.stamp_ns for m in msgs} == {0, 100_000_000, 200_000_000}  # frame index x 100 ms
    clouds = [m.payload for m in msgs if m.sensor == "velodyne"]
    assert [len(c) for c in clouds] == [115384, 120268, 126891] and all(isinstance(c, PointCloud) for c in clouds)
    images = [m.payload for m in msgs if m.sensor == "cam2"]
    assert all(isinstance(i, CameraImage) for i in images)
    assert [i.image.shape[:2] for i in images] == [(370, 1224), (375, 1242), (375, 1242)]  # sizes vary by drive
    assert [len(m.payload) for m in msgs if m.sensor == GROUND_TRUTH] == [1, 3, 1]  # DontCare and Misc left out
    assert obj.skipped == {}


def test_velodyne_projects_into_the_image(obj: KittiObjectReader, realdata: Path) -> None:
    for f in obj.frames:
        calib_path = realdata / "kitti_object" / "training" / "calib" / f"{f:06d}.txt"
        xyz = obj.velodyne(f).xyz.astype(np.float64)
        # KITTI's own product P2 @ R0_rect @ Tr_velo_to_cam ...
        uvw = np.c_[xyz, np.ones(len(xyz))] @ _kitti_velo_to_image(calib_path).T
        front = uvw[:, 2] > 0.5
        uv_kitti = uvw[front, :2] / uvw[front, 2:]
        # ... equals the reader's camera: ego_T_cam2 inverted, then the pinhole
        cam = obj.camera(f, 2)
        uv, valid = cam.project(se3.transform_points(obj.calib(f).cam_T_velo(2), xyz))
        np.testing.assert_allclose(uv[front], uv_kitti, atol=1e-4)
        # the points in the camera's field of view (ahead, +-35 deg azimuth, -10..+2 deg elevation) land in the image
        x, y, z = xyz.T
        elevation = np.degrees(np.arctan2(z, np.hypot(x, y)))
        fov = (x > 5) & (np.abs(np.degrees(np.arctan2(y, x))) < 35) & (elevation > -10) & (elevation < 2)
        assert fov.sum() > 10000
        assert valid[fov].mean() > 0.99
    # the rig's camera (first frame's calibration) is the same transform
    np.testing.assert_allclose(se3.invert(obj.rig["cam2"].ego_T_sensor), obj.calib(0).cam_T_velo(2), atol=1e-9)


def test_label_boxes_in_velodyne_frame_match_the_devkit(obj: KittiObjectReader, realdata: Path) -> None:
    calib_dir = realdata / "kitti_object" / "training" / "calib"
    n = 0
    for f in obj.frames:
        labels = [lb for lb in obj.labels(f) if lb.type not in ("DontCare", "Misc")]
        gt = obj.ground_truth(f)
        corners = box_corners(gt.center, gt.size, gt.yaw)
        for i, lb in enumerate(labels):
            tol = _tilt_tolerance(obj.calib(f), lb.dimensions)
            assert tol < 0.15
            assert _same_corner_sets(corners[i], _devkit_corners_in_velo(lb, calib_dir / f"{f:06d}.txt"), tol), (f, lb.type)
            n += 1
    assert n == 5
    # real labels are all near-axis-aligned (ry ~ +-pi/2): a turned box checks the yaw sign too
    calib = obj.calib(1)
    for ry in (0.7, -2.3):
        lb = KittiLabel("Car", 0.0, 0, 0.0, (0, 0, 1, 1), (1.5, 1.8, 4.2), (2.0, 1.6, 15.0), ry)
        d = labels_to_detections([lb], calib, 0)
        got = box_corners(d.center, d.size, d.yaw)[0]
        want = _devkit_corners_in_velo(lb, calib_dir / "000001.txt")
        assert _same_corner_sets(got, want, _tilt_tolerance(calib, lb.dimensions))


def test_labelled_objects_contain_their_points_and_project_onto_their_2d_box(obj: KittiObjectReader) -> None:
    checked = 0
    for f in obj.frames:
        pts = obj.velodyne(f).xyz
        gt = obj.ground_truth(f)
        labels = [lb for lb in obj.labels(f) if lb.type not in ("DontCare", "Misc")]
        exact = points_in_boxes(pts, gt.center, gt.size, gt.yaw).sum(axis=0)
        # enlarged by 0.6 m in length and width (not in height, which would take in the road)
        loose = points_in_boxes(pts, gt.center, gt.size + [0.6, 0.6, 0.0], gt.yaw).sum(axis=0)
        cam = obj.camera(f, 2)
        for i, lb in enumerate(labels):
            if loose[i] >= 15:
                assert exact[i] >= 0.8 * loose[i], (f, lb.type, exact[i], loose[i])
                checked += 1
            if lb.type == "Pedestrian":
                continue  # a pedestrian's 2D box includes arms and legs outside the 3D box
            uv, _ = cam.project(se3.transform_points(obj.calib(f).cam_T_velo(2), box_corners(gt.center, gt.size, gt.yaw)[i]))
            box2d = [max(uv[:, 0].min(), 0), max(uv[:, 1].min(), 0), min(uv[:, 0].max(), cam.width - 1),
                     min(uv[:, 1].max(), cam.height - 1)]
            np.testing.assert_allclose(box2d, lb.bbox, atol=2.0, err_msg=f"frame {f} {lb.type}")
    assert checked >= 4  # pedestrian 377 points, truck 72, cyclist 18, car 67


def test_object_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="missing"):
        KittiObjectReader(tmp_path / "missing")
    (tmp_path / "x").mkdir()
    with pytest.raises(FormatError, match="not a KITTI object folder"):
        KittiObjectReader(tmp_path / "x")
    bad = tmp_path / "000007.bin"
    bad.write_bytes(np.zeros(10, np.float32).tobytes()[:-2])
    with pytest.raises(DecodeError, match=r"000007\.bin: truncated"):
        read_velodyne_bin(bad)
    lab = tmp_path / "000007.txt"
    lab.write_text("Car 0 0 0 1 2 3 4 1.5 1.6 4.0 1 2 10\n")
    with pytest.raises(FormatError, match=r"000007\.txt:1: expected 15 values"):
        read_label_file(lab)


def test_truncated_velodyne_is_skipped_in_the_stream(tmp_path: Path, realdata: Path) -> None:
    split = tmp_path / "training"
    for sub in ("velodyne", "calib", "label_2"):
        (split / sub).mkdir(parents=True)
    src = realdata / "kitti_object" / "training"
    for f in ("000001", "000002"):
        (split / "calib" / f"{f}.txt").write_bytes((src / "calib" / f"{f}.txt").read_bytes())
        (split / "label_2" / f"{f}.txt").write_bytes((src / "label_2" / f"{f}.txt").read_bytes())
        (split / "velodyne" / f"{f}.bin").write_bytes(np.ones((10, 4), np.float32).tobytes())
    cut = split / "velodyne" / "000002.bin"
    cut.write_bytes(cut.read_bytes()[:-3])
    r = KittiObjectReader(tmp_path)
    msgs = list(r.messages())
    assert [m.sensor for m in msgs] == ["velodyne", GROUND_TRUTH, GROUND_TRUTH]
    assert sum(r.skipped.values()) == 1 and str(cut) in next(iter(r.skipped))


# ------------------------------------------------------------------------------- raw, written here

T0 = "2011-09-26 13:02:25.964389445"
LAT0, LON0, ALT0 = 49.011212804408, 8.4228850417969, 112.83492279053


def _oxts_line(lat: float, lon: float, alt: float, yaw: float, vn: float, ve: float, az: float = 9.81) -> str:
    v = [lat, lon, alt, 0.0, 0.0, yaw, vn, ve, 0, 0, 0, 0.1, 0.0, az, 0, 0, 0, 0.0, 0.0, 0.05, 0, 0, 0, 0.5, 0.05,
         4, 10, 4, 4, 0]
    return " ".join(repr(float(x)) if i < 25 else str(int(x)) for i, x in enumerate(v))


def _write_raw_drive(root: Path, object_calib: Path) -> Path:
    m = _calib_matrices(object_calib)
    date = root / "2011_09_26"
    drive = date / "2011_09_26_drive_0001_sync"
    date.mkdir(parents=True)

    def fmt(a: np.ndarray) -> str:
        return " ".join(f"{x:.12e}" for x in a)

    cam_lines = ["calib_time: 09-Jan-2012 13:57:47", "corner_dist: 9.950000e-02"]
    for i in range(4):
        cam_lines += [f"S_0{i}: 1.392000e+03 5.120000e+02", f"K_0{i}: {fmt(m['P0'][[0, 1, 2, 4, 5, 6, 8, 9, 10]])}",
                      f"D_0{i}: 0 0 0 0 0", f"R_0{i}: {fmt(np.eye(3).ravel())}", f"T_0{i}: 0 0 0",
                      f"S_rect_0{i}: 6.400000e+01 3.200000e+01", f"R_rect_0{i}: {fmt(m['R0_rect'])}",
                      f"P_rect_0{i}: {fmt(m[f'P{i}'])}"]
    (date / "calib_cam_to_cam.txt").write_text("\n".join(cam_lines) + "\n")
    tr = m["Tr_velo_to_cam"].reshape(3, 4)
    (date / "calib_velo_to_cam.txt").write_text(
        f"calib_time: 15-Mar-2012 11:37:16\nR: {fmt(tr[:, :3].ravel())}\nT: {fmt(tr[:, 3])}\n"
        "delta_f: 0 0\ndelta_c: 0 0\n")
    ti = m["Tr_imu_to_velo"].reshape(3, 4)
    (date / "calib_imu_to_velo.txt").write_text(
        f"calib_time: 25-May-2012 16:47:16\nR: {fmt(ti[:, :3].ravel())}\nT: {fmt(ti[:, 3])}\n")

    import cv2

    stamps = []
    for k in range(3):
        ns = parse_kitti_timestamp(T0) + k * 100_000_137
        second = dt.datetime.fromtimestamp(ns // 10**9, tz=dt.timezone.utc)
        stamps.append(f"{second:%Y-%m-%d %H:%M:%S}.{ns % 10**9:09d}")
    dlat = 10.0 / 111_200.0  # ~10 m north per frame
    for sub, ext in (("velodyne_points", ".bin"), ("image_02", ".png"), ("oxts", ".txt")):
        (drive / sub / "data").mkdir(parents=True)
        (drive / sub / "timestamps.txt").write_text("\n".join(stamps) + "\n")
        for k in range(3):
            f = drive / sub / "data" / f"{k:010d}{ext}"
            if ext == ".bin":
                f.write_bytes(np.full((5, 4), k, np.float32).tobytes())
            elif ext == ".png":
                img = np.zeros((32, 64, 3), np.uint8)
                img[..., 2] = 200  # red in OpenCV's BGR
                cv2.imwrite(str(f), img)
            else:  # heading north (yaw = +pi/2 from east), 10 m/s north
                f.write_text(_oxts_line(LAT0 + k * dlat, LON0, ALT0, np.pi / 2, vn=10.0, ve=0.0) + "\n")
    return drive


@pytest.fixture()
def raw_drive(tmp_path: Path, realdata: Path) -> Path:
    return _write_raw_drive(tmp_path, realdata / "kitti_object" / "training" / "calib" / "000001.txt")


def test_timestamp_parsing_is_exact() -> None:
    expected = int(dt.datetime(2011, 9, 26, 13, 2, 25, tzinfo=dt.timezone.utc).timestamp()) * 10**9 + 964389445
    assert parse_kitti_timestamp(T0) == expected
    assert parse_kitti_timestamp("2011-09-26 13:02:25.5") == expected - 964389445 + 500_000_000
    with pytest.raises(FormatError, match="expected a timestamp"):
        parse_kitti_timestamp("26/09/2011 13:02")


def test_raw_drive(raw_drive: Path) -> None:
    assert detect_format(raw_drive) == "kitti_raw"
    r = open_log(raw_drive)
    assert isinstance(r, KittiRawReader)
    assert r.rig.names == ["cam2", "velodyne", "gps", "imu"]
    calib = KittiCalib.from_raw_folder(raw_drive.parent)
    np.testing.assert_allclose(r.rig["imu"].ego_T_sensor, calib.velo_T_imu)
    assert (r.rig["cam2"].intrinsics.width, r.rig["cam2"].intrinsics.height) == (64, 32)
    msgs = list(r.messages())
    assert [m.stamp_ns for m in msgs] == sorted(m.stamp_ns for m in msgs)
    by: dict[str, list] = {}
    for m in msgs:
        by.setdefault(m.sensor, []).append(m.payload)
    assert {k: len(v) for k, v in by.items()} == {EGO_POSE: 3, "gps": 3, "imu": 3, "velodyne": 3, "cam2": 3}
    assert by["velodyne"][1].stamp_ns - by["velodyne"][0].stamp_ns == 100_000_137
    fix = by["gps"][0]
    assert isinstance(fix, GnssFix) and fix.latitude_deg == LAT0 and fix.position_covariance[0, 0] == pytest.approx(0.25)
    imu = by["imu"][0]
    assert isinstance(imu, ImuSample) and imu.linear_acceleration[2] == 9.81 and imu.angular_velocity[2] == 0.05
    img = by["cam2"][0]
    assert isinstance(img, CameraImage) and img.image[0, 0].tolist() == [200, 0, 0]  # RGB
    poses = by[EGO_POSE]
    assert all(isinstance(p, EgoPose) and p.frame_id == "world" for p in poses)
    imu_T_velo = se3.invert(calib.velo_T_imu)
    # world = ENU at the first fix: the first IMU position is the origin
    np.testing.assert_allclose(se3.compose(poses[0].world_T_ego, se3.invert(imu_T_velo))[:3, 3], 0.0, atol=1e-6)
    # heading north (yaw pi/2): the ego x axis points north, and the vehicle moved ~10 m north per frame
    np.testing.assert_allclose(poses[1].world_T_ego[:3, 0], [0.0, 1.0, 0.0], atol=0.02)
    step = poses[2].world_T_ego[:3, 3] - poses[1].world_T_ego[:3, 3]
    np.testing.assert_allclose(step, [0.0, 10.0, 0.0], atol=0.05)
    # 10 m/s north, seen from a vehicle facing north: ~10 m/s forward in the ego (velodyne) frame
    np.testing.assert_allclose(poses[0].velocity, [10.0, 0.0, 0.0], atol=0.3)


def test_raw_damaged_files(raw_drive: Path) -> None:
    cut = raw_drive / "velodyne_points" / "data" / "0000000001.bin"
    cut.write_bytes(cut.read_bytes()[:-1])
    r = KittiRawReader(raw_drive)
    assert len(list(r.messages(["velodyne"]))) == 2
    assert str(cut) in next(iter(r.skipped))
    (raw_drive / "oxts" / "timestamps.txt").write_text(T0 + "\n")
    with pytest.raises(FormatError, match=r"oxts/timestamps\.txt: 1 stamps for 3 files"):
        KittiRawReader(raw_drive)
    extract = raw_drive.parent / "2011_09_26_drive_0001_extract"
    extract.mkdir()
    with pytest.raises(FormatError, match="_sync"):
        KittiRawReader(extract)
