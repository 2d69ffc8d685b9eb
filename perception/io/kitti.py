"""KITTI: the object benchmark (``training/``, ``testing/``) and raw drives (``*_drive_*_sync``).

Frames (both layouts). KITTI's ego is the **velodyne frame** (x forward, y left, z up, as bevfuse's
``ego``, but with its origin at the LiDAR, ~1.7 m above the road, not at the rear axle): the
velodyne has the identity ``ego_T_sensor`` and ground truth is given in it. Camera ``camN`` is the
*rectified* camera N (the images are rectified): a velodyne point ``X`` lands at pixel
``P_N @ R0_rect @ Tr_velo_to_cam @ X``. ``P_N = K [I | t_N]`` with the same ``K`` for every camera,
so the rig stores ``ego_T_camN = inv([I | t_N] @ R0_rect @ Tr_velo_to_cam)``, ``t_N = K^-1 P_N[:, 3]``,
and a ``PinholeCamera`` from ``K`` without distortion.

**Object** (``<root>/training/{velodyne,image_2,image_3,calib,label_2}``): frames have no stamps,
so frame ``000123`` is stamped 123 x 100 ms (KITTI's 10 Hz; the frames are not consecutive in
time, the stamps only order them). Every frame comes from its own drive and has its own calib file:
the rig is built from the first frame's, and ``calib(frame)`` gives each frame's exactly (the
ground truth of each frame is converted with its own calib). ``label_2`` boxes are in the
rectified camera-0 frame: ``h w l``, ``location`` = the centre of the box's *bottom* face (camera
y points down), ``rotation_y`` about camera y (0 = facing camera x). They become ``Detections`` in
the velodyne frame: centre = ``velo_T_rect0 @ (x, y - h/2, z)``; the heading direction
``(cos ry, 0, -sin ry)`` (the box's +x in camera coordinates) is carried into the velodyne frame and
``yaw = atan2`` of it (for the nominal calibration ``yaw = -ry - pi/2``); size = ``(l, w, h)``.
Classes: Car -> car, Van -> car (nuScenes' car includes vans and minivans), Truck -> truck,
Pedestrian -> pedestrian, Person_sitting -> pedestrian with attribute
``pedestrian.sitting_lying_down``, Cyclist -> bicycle with attribute ``cycle.with_rider`` (nuScenes'
bicycle box includes its rider); Tram, Misc and DontCare have no detection class and are left out.

**Raw** (``<date>/<date>_drive_<nnnn>_sync/{velodyne_points,image_02,image_03,oxts}/`` with
``data/`` and ``timestamps.txt``, and ``<date>/calib_{cam_to_cam,velo_to_cam,imu_to_velo}.txt``):
timestamps ``2011-09-26 13:02:25.964389445`` are taken as UTC (KITTI does not say; they are local
time in Karlsruhe) to int64 ns. The velodyne stamp is the one of ``velodyne_points/timestamps.txt``
(no per-point times). Each oxts line (30 values, KITTI's ``dataformat.txt``) gives a ``GnssFix``
(sensor ``gps``; ENU covariance diag(pos_accuracy^2, pos_accuracy^2, NaN), status 0), an
``ImuSample`` (sensor ``imu``, frame ``imu``: wx wy wz, ax ay az, which include gravity;
orientation = world_R_imu) and an ``EgoPose`` on ``ego_pose``: ``world`` is ENU at the first oxts
fix (bevfuse's convention, where the devkit uses a Mercator projection), ``world_R_imu =
Rz(yaw) Ry(pitch) Rx(roll)`` (yaw 0 = east, counter-clockwise), ``world_T_ego = world_T_imu @
imu_T_velo``. Only the ``_sync`` (synchronised, rectified) drives are read; the colour cameras
image_02/03 are served, the grey image_00/01 are not.
"""

from __future__ import annotations

import datetime as _dt
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calib import se3
from calib.camera import PinholeCamera
from calib.geodesy import EnuOrigin
from calib.rig import Rig, SensorSpec
from perception.classes import NUSCENES_CLASSES as DETECTION_CLASSES
from perception.errors import FormatError, InputFileError
from perception.io.base import EGO_POSE, GROUND_TRUTH, IndexedReader, IndexEntry, register_reader
from perception.io.nuscenes import read_camera_image, read_points_bin
from perception.types import CameraImage, Detections, EgoPose, GnssFix, ImuSample, Modality, PointCloud

__all__ = [
    "KITTI_CLASS_TO_CLASS",
    "KITTI_OBJECT_FRAME_NS",
    "KittiCalib",
    "KittiLabel",
    "KittiObjectReader",
    "KittiRawReader",
    "OxtsRecord",
    "is_kitti_object",
    "is_kitti_raw",
    "labels_to_detections",
    "parse_kitti_timestamp",
    "read_calib_file",
    "read_label_file",
    "read_oxts_file",
    "read_velodyne_bin",
]

KITTI_OBJECT_FRAME_NS = 100_000_000  # object frames have no stamps: frame index x 100 ms (10 Hz)
VELODYNE = "velodyne"
WORLD_FRAME = "world"

KITTI_CLASS_TO_CLASS: dict[str, str] = {
    "Car": "car",
    "Van": "car",
    "Truck": "truck",
    "Pedestrian": "pedestrian",
    "Person_sitting": "pedestrian",
    "Cyclist": "bicycle",
}
_ATTRIBUTE = {"Cyclist": "cycle.with_rider", "Person_sitting": "pedestrian.sitting_lying_down"}
_CAMERAS = (2, 3)  # the colour cameras


def read_velodyne_bin(path: str | Path) -> np.ndarray:
    """A KITTI velodyne scan: ``(N, 4)`` float32 x y z reflectance in the velodyne frame."""
    return read_points_bin(path, 4, "x y z reflectance")


def read_calib_file(path: str | Path) -> dict[str, str]:
    """``key: values`` lines of a KITTI calib file, the values as text (``calib_time`` is not numeric)."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: KITTI calib file not found")
    out: dict[str, str] = {}
    for i, line in enumerate(p.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise FormatError(f"{p}:{i}: expected 'key: values', got {line[:60]!r}")
        out[key.strip()] = value.strip()
    return out


def _numbers(values: dict[str, str], key: str, n: int, where: str | Path) -> np.ndarray:
    if key not in values:
        raise FormatError(f"{where}: no {key!r} line (has {sorted(values)})")
    try:
        arr = np.array([float(v) for v in values[key].split()], dtype=np.float64)
    except ValueError:
        raise FormatError(f"{where}: {key}: expected {n} numbers, got {values[key][:60]!r}") from None
    if arr.shape != (n,):
        raise FormatError(f"{where}: {key}: expected {n} numbers, got {arr.shape[0]}")
    return arr


def _rt(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    return se3.from_rotation_translation(R.reshape(3, 3), t)


@dataclass(frozen=True, eq=False)
class KittiCalib:
    """The calibration of a KITTI frame or drive.

    P: camera index -> (3, 4) rectified projection ``K [I | t]``; R0_rect: (4, 4) the rectifying
    rotation of camera 0; cam0_T_velo: (4, 4) ``Tr_velo_to_cam``; velo_T_imu: (4, 4)
    ``Tr_imu_to_velo`` when given; image_size: camera index -> (width, height) when known (raw).
    """

    P: dict[int, np.ndarray]
    R0_rect: np.ndarray
    cam0_T_velo: np.ndarray
    velo_T_imu: np.ndarray | None = None
    image_size: dict[int, tuple[int, int]] | None = None
    source: str = "<calib>"

    @classmethod
    def from_object_file(cls, path: str | Path) -> KittiCalib:
        """An object-benchmark calib .txt: P0-P3, R0_rect, Tr_velo_to_cam, Tr_imu_to_velo."""
        v = read_calib_file(path)
        P = {i: _numbers(v, f"P{i}", 12, path).reshape(3, 4) for i in range(4) if f"P{i}" in v}
        if 2 not in P:
            raise FormatError(f"{path}: no 'P2' line (has {sorted(v)})")
        tr = _numbers(v, "Tr_velo_to_cam", 12, path).reshape(3, 4)
        imu = _numbers(v, "Tr_imu_to_velo", 12, path).reshape(3, 4) if "Tr_imu_to_velo" in v else None
        return cls(P=P, R0_rect=_rt(_numbers(v, "R0_rect", 9, path), np.zeros(3)), cam0_T_velo=_rt(tr[:, :3], tr[:, 3]),
                   velo_T_imu=None if imu is None else _rt(imu[:, :3], imu[:, 3]), source=str(path))

    @classmethod
    def from_raw_folder(cls, date_dir: str | Path) -> KittiCalib:
        """A raw date folder's calib_cam_to_cam.txt, calib_velo_to_cam.txt and calib_imu_to_velo.txt."""
        d = Path(date_dir)
        c2c_path, v2c_path, i2v_path = (d / f"calib_{n}.txt" for n in ("cam_to_cam", "velo_to_cam", "imu_to_velo"))
        c2c, v2c = read_calib_file(c2c_path), read_calib_file(v2c_path)
        P, size = {}, {}
        for i in range(4):
            if f"P_rect_0{i}" in c2c:
                P[i] = _numbers(c2c, f"P_rect_0{i}", 12, c2c_path).reshape(3, 4)
                w, h = _numbers(c2c, f"S_rect_0{i}", 2, c2c_path)
                size[i] = (int(round(w)), int(round(h)))
        if 2 not in P:
            raise FormatError(f"{c2c_path}: no 'P_rect_02' line")
        velo_T_imu = None
        if i2v_path.is_file():
            i2v = read_calib_file(i2v_path)
            velo_T_imu = _rt(_numbers(i2v, "R", 9, i2v_path), _numbers(i2v, "T", 3, i2v_path))
        return cls(P=P, R0_rect=_rt(_numbers(c2c, "R_rect_00", 9, c2c_path), np.zeros(3)),
                   cam0_T_velo=_rt(_numbers(v2c, "R", 9, v2c_path), _numbers(v2c, "T", 3, v2c_path)),
                   velo_T_imu=velo_T_imu, image_size=size, source=str(d))

    def K(self, cam: int = 2) -> np.ndarray:
        """(3, 3) intrinsics of rectified camera ``cam``."""
        return self.P[cam][:, :3].copy()

    @property
    def rect0_T_velo(self) -> np.ndarray:
        """(4, 4) velodyne -> rectified camera 0 (the frame of label_2 boxes): ``R0_rect @ Tr_velo_to_cam``."""
        return se3.compose(self.R0_rect, self.cam0_T_velo)

    def cam_T_velo(self, cam: int = 2) -> np.ndarray:
        """(4, 4) velodyne -> rectified camera ``cam``: the baseline of P_cam, then rect0_T_velo."""
        P = self.P[cam]
        t = np.linalg.solve(P[:, :3], P[:, 3])  # P = K [I | t]  =>  t = K^-1 P[:, 3]
        return se3.compose(se3.from_rotation_translation(np.eye(3), t), self.rect0_T_velo)

    def projection(self, cam: int = 2) -> np.ndarray:
        """(3, 4) velodyne -> pixels of camera ``cam``: ``P_cam @ R0_rect @ Tr_velo_to_cam`` (KITTI's own product)."""
        return self.P[cam] @ self.rect0_T_velo

    def camera(self, cam: int, width: int, height: int) -> PinholeCamera:
        return PinholeCamera.from_K(self.K(cam), width, height)


@dataclass(frozen=True)
class KittiLabel:
    """One line of a KITTI label file (camera-0 rectified frame, metres and radians).

    bbox: (left, top, right, bottom) pixels in image_2; dimensions: (h, w, l); location: x y z of
    the bottom-face centre; score: only in result files.
    """

    type: str
    truncated: float
    occluded: int
    alpha: float
    bbox: tuple[float, float, float, float]
    dimensions: tuple[float, float, float]
    location: tuple[float, float, float]
    rotation_y: float
    score: float | None = None


def read_label_file(path: str | Path) -> list[KittiLabel]:
    """Parse a label_2 file (15 values a line, 16 with a score); ``FormatError`` naming file and line."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: KITTI label file not found")
    out = []
    for i, line in enumerate(p.read_text(errors="replace").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) not in (15, 16):
            raise FormatError(f"{p}:{i}: expected 15 values (16 with a score), got {len(parts)}")
        try:
            v = [float(x) for x in parts[1:]]
        except ValueError:
            raise FormatError(f"{p}:{i}: non-numeric value in {line[:80]!r}") from None
        out.append(KittiLabel(parts[0], v[0], int(v[1]), v[2], (v[3], v[4], v[5], v[6]), (v[7], v[8], v[9]),
                              (v[10], v[11], v[12]), v[13], v[14] if len(v) == 15 else None))
    return out


def labels_to_detections(labels: list[KittiLabel], calib: KittiCalib, stamp_ns: int, frame_id: str = VELODYNE) -> Detections:
    """label_2 boxes -> ``Detections`` in the velodyne frame (see the module docstring for the conversion).

    Labels without a detection class (DontCare, Misc, Tram) are left out; velocity is NaN (KITTI
    has none); score is the label's score when present, else 1.
    """
    keep = [lb for lb in labels if lb.type in KITTI_CLASS_TO_CLASS]
    if not keep:
        return Detections.empty(stamp_ns, frame_id, DETECTION_CLASSES)
    n = len(keep)
    hwl = np.array([lb.dimensions for lb in keep], dtype=np.float64)
    loc = np.array([lb.location for lb in keep], dtype=np.float64)
    ry = np.array([lb.rotation_y for lb in keep], dtype=np.float64)
    velo_T_rect0 = se3.invert(calib.rect0_T_velo)
    center_rect = loc - np.stack([np.zeros(n), hwl[:, 0] / 2, np.zeros(n)], axis=1)  # camera y is down
    center = se3.transform_points(velo_T_rect0, center_rect)
    # The box's +x (its heading) in the camera frame: rotation_y turns it about camera y (down).
    ahead = se3.transform_points(velo_T_rect0, center_rect + np.stack([np.cos(ry), np.zeros(n), -np.sin(ry)], axis=1))
    heading = ahead - center
    return Detections(
        stamp_ns=stamp_ns, frame_id=frame_id, class_names=DETECTION_CLASSES, center=center,
        size=hwl[:, [2, 1, 0]], yaw=np.arctan2(heading[:, 1], heading[:, 0]), velocity=np.full((n, 2), np.nan),
        score=np.array([1.0 if lb.score is None else lb.score for lb in keep], np.float32),
        label=np.array([DETECTION_CLASSES.index(KITTI_CLASS_TO_CLASS[lb.type]) for lb in keep], np.int64),
        attribute=np.array([_ATTRIBUTE.get(lb.type, "") for lb in keep], dtype=object),
    )


def _png_size(path: Path) -> tuple[int, int] | None:
    # The IHDR chunk holds width and height at bytes 16-24: no need to decode a 1 MB image for them.
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if len(head) == 24 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        w, h = struct.unpack(">II", head[16:24])
        return int(w), int(h)
    return None


def _image_size(path: Path) -> tuple[int, int]:
    size = _png_size(path)
    if size is None:
        img = read_camera_image(path)
        size = (int(img.shape[1]), int(img.shape[0]))
    return size


def _camera_specs(calib: KittiCalib, sizes: dict[int, tuple[int, int]]) -> list[SensorSpec]:
    specs = []
    for cam in _CAMERAS:
        if cam in sizes and cam in calib.P:
            specs.append(SensorSpec(name=f"cam{cam}", modality=Modality.CAMERA, frame=f"cam{cam}", topic=f"cam{cam}",
                                    rate_hz=10.0, ego_T_sensor=se3.invert(calib.cam_T_velo(cam)),
                                    intrinsics=calib.camera(cam, *sizes[cam]), msgtype="kitti/png"))
    return specs


def _velodyne_spec() -> SensorSpec:
    return SensorSpec(name=VELODYNE, modality=Modality.LIDAR, frame=VELODYNE, topic=VELODYNE, rate_hz=10.0,
                      ego_T_sensor=np.eye(4), msgtype="kitti/velodyne_bin")


def _split_dir(path: Path) -> Path | None:
    if (path / VELODYNE).is_dir() or (path / "image_2").is_dir():
        return path
    for split in ("training", "testing"):
        if (path / split / VELODYNE).is_dir() or (path / split / "image_2").is_dir():
            return path / split
    return None


def is_kitti_object(path: Path) -> bool:
    """A KITTI object root (with training/ or testing/) or split folder, with calib/ and velodyne/ or image_2/."""
    p = Path(path)
    if not p.is_dir():
        return False
    split = _split_dir(p)
    return split is not None and (split / "calib").is_dir()


class KittiObjectReader(IndexedReader):
    """Reads a KITTI object split: velodyne, image_2/3, and label_2 as ground truth (velodyne frame).

    ``split``: ``training`` or ``testing`` when ``path`` is the root holding both (default training).
    """

    def __init__(self, path: str | Path, rig: Rig | None = None, split: str | None = None) -> None:
        p = Path(path)
        if not p.is_dir():
            raise InputFileError(f"{p}: KITTI object folder not found")
        super().__init__(path=p, format="kitti_object")
        self.split_dir = (p / split) if split else _split_dir(p)
        if self.split_dir is None or not (self.split_dir / "calib").is_dir():
            raise FormatError(f"{p}: not a KITTI object folder: expected training/ or testing/ with calib/ and velodyne/")
        stems: set[str] = set()
        for sub, ext in ((VELODYNE, ".bin"), ("image_2", ".png")):
            stems |= {f.stem for f in (self.split_dir / sub).glob(f"*{ext}")}
        bad = sorted(s for s in stems if not s.isdigit())
        if bad:
            raise FormatError(f"{self.split_dir}: frame files must be numbered (000123.bin), found {bad[:3]}")
        self.frames: list[int] = sorted(int(s) for s in stems)
        if not self.frames:
            raise FormatError(f"{self.split_dir}: no frames in velodyne/ or image_2/")
        self._stem_width = max(len(s) for s in stems)
        self._calibs: dict[int, KittiCalib] = {}
        first = self.frames[0]
        calib0 = self.calib(first)
        sizes = {cam: _image_size(self._file(f"image_{cam}", first, ".png")) for cam in _CAMERAS
                 if self._file(f"image_{cam}", first, ".png").is_file()}
        built = Rig(tuple([*_camera_specs(calib0, sizes), _velodyne_spec()]), name="kitti-object",
                    source=str(self._file("calib", first, ".txt")))
        self.rig = rig if rig is not None else built
        self._msgtypes = {VELODYNE: ("kitti/velodyne_bin", Modality.LIDAR), GROUND_TRUTH: ("kitti/label_2", None)}
        self._msgtypes.update({f"cam{c}": ("kitti/png", Modality.CAMERA) for c in _CAMERAS})
        has_labels = (self.split_dir / "label_2").is_dir()
        index: list[IndexEntry] = []
        for f in self.frames:
            stamp = f * KITTI_OBJECT_FRAME_NS
            if self._file(VELODYNE, f, ".bin").is_file():
                index.append(IndexEntry(stamp, 1, len(index), VELODYNE, f))
            for cam in _CAMERAS:
                if self._file(f"image_{cam}", f, ".png").is_file():
                    index.append(IndexEntry(stamp, 1, len(index), f"cam{cam}", f))
            if has_labels:
                index.append(IndexEntry(stamp, 2, len(index), GROUND_TRUTH, f))
        self._index = index

    def _file(self, sub: str, frame: int, ext: str) -> Path:
        return self.split_dir / sub / f"{frame:0{self._stem_width}d}{ext}"

    def calib(self, frame: int) -> KittiCalib:
        """The calibration of one frame (each object frame has its own calib file)."""
        if frame not in self._calibs:
            self._calibs[frame] = KittiCalib.from_object_file(self._file("calib", frame, ".txt"))
        return self._calibs[frame]

    def stamp_ns(self, frame: int) -> int:
        return frame * KITTI_OBJECT_FRAME_NS

    def camera(self, frame: int, cam: int = 2) -> PinholeCamera:
        """The exact camera of one frame: its calib's ``K`` and its image's size (they vary by drive)."""
        return self.calib(frame).camera(cam, *_image_size(self._file(f"image_{cam}", frame, ".png")))

    def labels(self, frame: int) -> list[KittiLabel]:
        return read_label_file(self._file("label_2", frame, ".txt"))

    def ground_truth(self, frame: int) -> Detections:
        return labels_to_detections(self.labels(frame), self.calib(frame), self.stamp_ns(frame))

    def velodyne(self, frame: int) -> PointCloud:
        pts = read_velodyne_bin(self._file(VELODYNE, frame, ".bin"))
        return PointCloud(stamp_ns=self.stamp_ns(frame), frame_id=VELODYNE, points=pts, fields=("x", "y", "z", "intensity"))

    def image(self, frame: int, cam: int = 2) -> CameraImage:
        img = read_camera_image(self._file(f"image_{cam}", frame, ".png"))
        return CameraImage(stamp_ns=self.stamp_ns(frame), camera=f"cam{cam}", frame_id=f"cam{cam}", image=img)

    def _decode(self, e: IndexEntry) -> Any:
        if e.sensor == VELODYNE:
            return self.velodyne(e.ref)
        if e.sensor == GROUND_TRUTH:
            return self.ground_truth(e.ref)
        return self.image(e.ref, int(e.sensor[3:]))


# ---------------------------------------------------------------------------------------------- raw

def parse_kitti_timestamp(text: str, where: str = "<timestamp>") -> int:
    """``2011-09-26 13:02:25.964389445`` (taken as UTC) -> int64 ns since the epoch, without float rounding."""
    s = text.strip()
    try:
        date_part, _, frac = s.partition(".")
        whole = _dt.datetime.strptime(date_part, "%Y-%m-%d %H:%M:%S").replace(tzinfo=_dt.timezone.utc)
        if frac and not frac.isdigit():
            raise ValueError(frac)
    except ValueError:
        raise FormatError(f"{where}: expected a timestamp like '2011-09-26 13:02:25.964389445', got {s[:40]!r}") from None
    ns = int((frac + "000000000")[:9]) if frac else 0
    return int(whole.timestamp()) * 1_000_000_000 + ns


def _read_timestamps(path: Path) -> list[int]:
    if not path.is_file():
        raise InputFileError(f"{path}: KITTI timestamps file not found")
    return [parse_kitti_timestamp(line, f"{path}:{i}")
            for i, line in enumerate(path.read_text().splitlines(), start=1) if line.strip()]


_OXTS_FIELDS = ("lat", "lon", "alt", "roll", "pitch", "yaw", "vn", "ve", "vf", "vl", "vu", "ax", "ay", "az", "af", "al",
                "au", "wx", "wy", "wz", "wf", "wl", "wu", "pos_accuracy", "vel_accuracy", "navstat", "numsats",
                "posmode", "velmode", "orimode")


@dataclass(frozen=True)
class OxtsRecord:
    """One oxts line: the 30 values of KITTI's ``dataformat.txt`` by name (``values['yaw']``...)."""

    values: dict[str, float]

    def __getitem__(self, key: str) -> float:
        return self.values[key]

    def world_R_imu(self) -> np.ndarray:
        """(3, 3) ENU <- IMU: Rz(yaw) @ Ry(pitch) @ Rx(roll), as the devkit's convertOxtsToPose."""
        return se3.rotation_rpy(self["roll"], self["pitch"], self["yaw"])


def read_oxts_file(path: str | Path) -> OxtsRecord:
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: oxts file not found")
    parts = p.read_text().split()
    if len(parts) != 30:
        raise FormatError(f"{p}: expected 30 oxts values, got {len(parts)}")
    try:
        return OxtsRecord(dict(zip(_OXTS_FIELDS, (float(v) for v in parts))))
    except ValueError:
        raise FormatError(f"{p}: non-numeric oxts value") from None


def is_kitti_raw(path: Path) -> bool:
    """A ``*_sync`` drive folder whose parent holds calib_velo_to_cam.txt."""
    p = Path(path)
    return (p.is_dir() and (p.parent / "calib_velo_to_cam.txt").is_file()
            and any((p / d).is_dir() for d in ("oxts", "velodyne_points", "image_02")))


class KittiRawReader(IndexedReader):
    """Reads one KITTI raw ``_sync`` drive: velodyne, image_02/03, and oxts as gps + imu + ego_pose."""

    def __init__(self, path: str | Path, rig: Rig | None = None) -> None:
        p = Path(path)
        if not p.is_dir():
            raise InputFileError(f"{p}: KITTI raw drive folder not found")
        if not p.name.endswith("_sync"):
            raise FormatError(f"{p}: only synchronised+rectified KITTI raw drives (*_sync) are read")
        super().__init__(path=p, format="kitti_raw")
        self.calib_data = KittiCalib.from_raw_folder(p.parent)
        calib = self.calib_data
        self._files: dict[str, list[Path]] = {}
        self._stamps: dict[str, list[int]] = {}
        for sensor, sub, ext in [(VELODYNE, "velodyne_points", ".bin"), ("cam2", "image_02", ".png"),
                                 ("cam3", "image_03", ".png"), ("oxts", "oxts", ".txt")]:
            folder = p / sub
            if not folder.is_dir():
                continue
            files = sorted((folder / "data").glob(f"*{ext}"))
            stamps = _read_timestamps(folder / "timestamps.txt")
            if len(stamps) < len(files):
                raise FormatError(f"{folder / 'timestamps.txt'}: {len(stamps)} stamps for {len(files)} files in data/")
            # a file's index is its number (0000000042.bin is the 43rd stamp), not its rank
            self._files[sensor] = files
            self._stamps[sensor] = [stamps[int(f.stem)] if f.stem.isdigit() and int(f.stem) < len(stamps) else -1
                                    for f in files]
        specs = _camera_specs(calib, {c: calib.image_size[c] for c in _CAMERAS
                                      if calib.image_size and c in calib.image_size and f"cam{c}" in self._files})
        specs.append(_velodyne_spec())
        self.velo_T_imu = calib.velo_T_imu
        if "oxts" in self._files:
            if calib.velo_T_imu is None:
                raise InputFileError(f"{p.parent / 'calib_imu_to_velo.txt'}: needed to place the oxts unit")
            for name, modality in (("gps", Modality.GNSS), ("imu", Modality.IMU)):
                specs.append(SensorSpec(name=name, modality=modality, frame="imu", topic=name, rate_hz=10.0,
                                        ego_T_sensor=calib.velo_T_imu, msgtype="kitti/oxts"))
        self.rig = rig if rig is not None else Rig(tuple(specs), name=f"kitti-raw {p.name}", source=str(p.parent))
        self._origin: EnuOrigin | None = None
        if self._files.get("oxts"):
            first = read_oxts_file(self._files["oxts"][0])
            self._origin = EnuOrigin(first["lat"], first["lon"], first["alt"])
        self._msgtypes = {VELODYNE: ("kitti/velodyne_bin", Modality.LIDAR), "cam2": ("kitti/png", Modality.CAMERA),
                          "cam3": ("kitti/png", Modality.CAMERA), "gps": ("kitti/oxts", Modality.GNSS),
                          "imu": ("kitti/oxts", Modality.IMU), EGO_POSE: ("kitti/oxts", Modality.ODOMETRY)}
        index: list[IndexEntry] = []
        for sensor, files in self._files.items():
            for f, stamp in zip(files, self._stamps[sensor]):
                if stamp < 0:
                    self.skipped[f"{sensor}: {f}: no line for it in timestamps.txt"] += 1
                    continue
                if sensor == "oxts":
                    for rank, name in ((0, EGO_POSE), (1, "gps"), (1, "imu")):
                        index.append(IndexEntry(stamp, rank, len(index), name, f))
                else:
                    index.append(IndexEntry(stamp, 1, len(index), sensor, f))
        index.sort(key=lambda e: (e.stamp_ns, e.rank, e.seq))
        self._index = index

    @property
    def origin(self) -> EnuOrigin | None:
        """The ENU origin of ``world`` (the first oxts fix)."""
        return self._origin

    def _decode(self, e: IndexEntry) -> Any:
        if e.sensor == VELODYNE:
            return PointCloud(stamp_ns=e.stamp_ns, frame_id=VELODYNE, points=read_velodyne_bin(e.ref),
                              fields=("x", "y", "z", "intensity"))
        if e.sensor in ("cam2", "cam3"):
            return CameraImage(stamp_ns=e.stamp_ns, camera=e.sensor, frame_id=e.sensor, image=read_camera_image(e.ref))
        rec = read_oxts_file(e.ref)
        if e.sensor == "gps":
            return self.gnss_fix(rec, e.stamp_ns)
        if e.sensor == "imu":
            return self.imu_sample(rec, e.stamp_ns)
        return self.ego_pose(rec, e.stamp_ns)

    @staticmethod
    def gnss_fix(rec: OxtsRecord, stamp_ns: int) -> GnssFix:
        acc2 = rec["pos_accuracy"] ** 2
        cov = np.diag([acc2, acc2, np.nan])  # KITTI gives a north/east accuracy only
        return GnssFix(stamp_ns=stamp_ns, frame_id="imu", latitude_deg=rec["lat"], longitude_deg=rec["lon"],
                       altitude_m=rec["alt"], position_covariance=cov, covariance_type=1, status=0)

    @staticmethod
    def imu_sample(rec: OxtsRecord, stamp_ns: int) -> ImuSample:
        return ImuSample(stamp_ns=stamp_ns, frame_id="imu",
                         angular_velocity=np.array([rec["wx"], rec["wy"], rec["wz"]], np.float64),
                         linear_acceleration=np.array([rec["ax"], rec["ay"], rec["az"]], np.float64),
                         orientation=se3.matrix_to_quat(rec.world_R_imu()))

    def ego_pose(self, rec: OxtsRecord, stamp_ns: int) -> EgoPose:
        """The velodyne (= ego) pose in ENU about the first fix, with its velocity and angular rate in ego."""
        assert self._origin is not None and self.velo_T_imu is not None
        R = rec.world_R_imu()
        enu = self._origin.to_enu(rec["lat"], rec["lon"], rec["alt"])
        world_T_imu = se3.from_rotation_translation(R, enu)
        imu_T_velo = se3.invert(self.velo_T_imu)
        world_T_ego = se3.compose(world_T_imu, imu_T_velo)
        # velocity of the velodyne origin: v_imu + w x r (lever arm r from the IMU to the velodyne, in imu)
        w_imu = np.array([rec["wx"], rec["wy"], rec["wz"]])
        v_imu = R.T @ np.array([rec["ve"], rec["vn"], rec["vu"]])
        v_velo_in_imu = v_imu + np.cross(w_imu, imu_T_velo[:3, 3])
        velo_R_imu = self.velo_T_imu[:3, :3]
        return EgoPose(stamp_ns=stamp_ns, frame_id=WORLD_FRAME, world_T_ego=world_T_ego,
                       velocity=velo_R_imu @ v_velo_in_imu, angular_velocity=velo_R_imu @ w_imu)


def _open_object(path: str | Path, rig: Rig | None = None, **kwargs: Any) -> KittiObjectReader:
    return KittiObjectReader(path, rig=rig, **kwargs)


def _open_raw(path: str | Path, rig: Rig | None = None, **kwargs: Any) -> KittiRawReader:
    return KittiRawReader(path, rig=rig, **kwargs)


register_reader("kitti_object", is_kitti_object, _open_object)
register_reader("kitti_raw", is_kitti_raw, _open_raw)
