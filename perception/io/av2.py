"""Argoverse 2 sensor logs (Feather tables, read with pyarrow) as a bevfuse drive log.

A log folder holds ``sensors/lidar/<ts>.feather``, ``sensors/cameras/<camera>/<ts>.jpg``,
``city_SE3_egovehicle.feather``, ``calibration/egovehicle_SE3_sensor.feather`` and
``calibration/intrinsics.feather``, and (train/val) ``annotations.feather``. Stamps are already
int64 ns (the file names, the ``timestamp_ns`` columns).

- LiDAR sweeps -> ``PointCloud`` with fields x y z intensity laser_number (float32; x y z are
  stored as float16) and ``time_offset_ns`` = ``offset_ns`` (each return's time after the sweep
  stamp, spread over the ~100 ms of a revolution). AV2 ships each sweep **already in the ego
  (egovehicle) frame**, the up and down LiDARs merged: the rig's sensor ``lidar`` therefore has
  ``frame`` ``"ego"`` and the identity ``ego_T_sensor``; the mounting of ``up_lidar`` and
  ``down_lidar`` is kept in ``Av2Reader.sensor_extrinsics`` for whoever needs it.
- Camera JPEGs -> ``CameraImage`` RGB; the rig's cameras come from ``intrinsics.feather``
  (``PinholeCamera`` with radial k1 k2 k3) and ``egovehicle_SE3_sensor.feather``.
- ``city_SE3_egovehicle`` rows -> ``EgoPose`` on ``ego_pose`` (``frame_id`` ``"world"`` = the city frame).
- ``annotations.feather`` -> ``Detections`` on ``ground_truth`` at each annotated (LiDAR) stamp, in
  the **ego** frame as AV2 gives them: size (l w h) = (length_m, width_m, height_m), yaw from the
  quaternion, ``num_lidar_pts`` = ``num_interior_pts``, ``track_id`` = ``track_uuid``. Velocity
  (vx vy, absolute, expressed in the ego axes) is the centre difference of the track's city-frame
  positions at the previous and next annotated stamps (one-sided at the ends, NaN alone or across
  more than 1.5 s per side), as nuScenes' devkit derives it. Categories map to the nuScenes
  detection classes where the definitions agree (see ``AV2_CATEGORY_TO_CLASS``); the others
  (bollards, signs, strollers, dogs, riders annotated apart from their bicycle...) are left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from calib import se3
from calib.camera import PinholeCamera
from calib.rig import Rig, SensorSpec
from perception.boxes import transform_boxes, yaw_from_quaternion
from perception.classes import NUSCENES_CLASSES as DETECTION_CLASSES
from perception.errors import FormatError, InputFileError
from perception.io.base import EGO_POSE, GROUND_TRUTH, IndexedReader, IndexEntry, register_reader
from perception.io.nuscenes import read_camera_image
from perception.sync.trajectory import PoseTrajectory
from perception.types import CameraImage, Detections, EgoPose, Modality, PointCloud

__all__ = ["AV2_CATEGORY_TO_CLASS", "AV2_LIDAR_FIELDS", "Av2Reader", "is_av2_log", "read_feather", "read_lidar_sweep"]

WORLD_FRAME = "world"
EGO_FRAME = "ego"
LIDAR = "lidar"
AV2_LIDAR_FIELDS = ("x", "y", "z", "intensity", "laser_number")

# AV2 category -> nuScenes detection class. Left out on purpose: LARGE_VEHICLE (fire trucks, RVs,
# extended vans: split across nuScenes' car/truck/emergency), BICYCLIST / MOTORCYCLIST (AV2 boxes the
# rider apart from the cycle; nuScenes' cycle box includes the rider), CONSTRUCTION_BARREL, BOLLARD,
# signs, WHEELED_DEVICE/RIDER, STROLLER, WHEELCHAIR, DOG, ANIMAL, RAILED_VEHICLE.
AV2_CATEGORY_TO_CLASS: dict[str, str] = {
    "REGULAR_VEHICLE": "car",
    "BUS": "bus",
    "SCHOOL_BUS": "bus",
    "ARTICULATED_BUS": "bus",
    "BOX_TRUCK": "truck",
    "TRUCK": "truck",
    "TRUCK_CAB": "truck",
    "VEHICULAR_TRAILER": "trailer",
    "BICYCLE": "bicycle",
    "MOTORCYCLE": "motorcycle",
    "PEDESTRIAN": "pedestrian",
    "OFFICIAL_SIGNALER": "pedestrian",
    "CONSTRUCTION_CONE": "traffic_cone",
}
_MAX_VELOCITY_GAP_NS = 1_500_000_000
_LIDAR_RATE_HZ = 10.0
_CAMERA_RATE_HZ = 20.0


def read_feather(path: str | Path, columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named columns of a Feather file as numpy arrays; errors name the file and the column."""
    import pyarrow as pa
    import pyarrow.feather as feather

    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: Feather file not found")
    try:
        table = feather.read_table(p)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise FormatError(f"{p}: not a readable Feather file: {exc}") from None
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise FormatError(f"{p}: missing column(s) {missing}; it has {table.column_names}")
    return {c: table.column(c).to_numpy(zero_copy_only=False) for c in columns}


def read_lidar_sweep(path: str | Path, stamp_ns: int) -> PointCloud:
    """One AV2 sweep: ``(N, 5)`` float32 x y z intensity laser_number in the ego frame, ``time_offset_ns`` (N,) int64."""
    cols = read_feather(path, ("x", "y", "z", "intensity", "laser_number", "offset_ns"))
    pts = np.stack([cols[k].astype(np.float32) for k in AV2_LIDAR_FIELDS], axis=1)
    return PointCloud(stamp_ns=stamp_ns, frame_id=EGO_FRAME, points=pts, fields=AV2_LIDAR_FIELDS,
                      time_offset_ns=cols["offset_ns"].astype(np.int64))


def _poses(cols: dict[str, np.ndarray]) -> np.ndarray:
    """(K, 4, 4) ``a_T_b`` from the qw qx qy qz tx_m ty_m tz_m columns of an AV2 SE(3) table.

    Assembled in one go from se3's batched quat_to_matrix: a log has thousands of poses, and
    ``se3.from_rotation_translation`` builds one at a time (0.3 ms each).
    """
    q = np.stack([cols["qw"], cols["qx"], cols["qy"], cols["qz"]], axis=1).astype(np.float64)
    out = np.zeros((q.shape[0], 4, 4))
    if q.shape[0]:
        out[:, :3, :3] = se3.quat_to_matrix(q)
    out[:, :3, 3] = np.stack([cols["tx_m"], cols["ty_m"], cols["tz_m"]], axis=1)
    out[:, 3, 3] = 1.0
    return out


_POSE_COLS = ("qw", "qx", "qy", "qz", "tx_m", "ty_m", "tz_m")


def is_av2_log(path: Path) -> bool:
    """A folder with ``city_SE3_egovehicle.feather`` and ``sensors/`` or ``calibration/``."""
    p = Path(path)
    has_data = (p / "sensors").is_dir() or (p / "calibration").is_dir()
    return p.is_dir() and (p / "city_SE3_egovehicle.feather").is_file() and has_data


class Av2Reader(IndexedReader):
    """Reads one Argoverse 2 sensor log folder."""

    def __init__(self, path: str | Path, rig: Rig | None = None) -> None:
        p = Path(path)
        if not p.is_dir():
            raise InputFileError(f"{p}: Argoverse 2 log folder not found")
        super().__init__(path=p, format="av2")
        self.log_id = p.name
        pose_cols = read_feather(p / "city_SE3_egovehicle.feather", ("timestamp_ns", *_POSE_COLS))
        self._pose_stamps = pose_cols["timestamp_ns"].astype(np.int64)
        self._pose_mats = _poses(pose_cols)
        if self._pose_stamps.size == 0:
            raise FormatError(f"{p / 'city_SE3_egovehicle.feather'}: no poses")
        self.trajectory = PoseTrajectory(self._pose_stamps, self._pose_mats, name=str(p / "city_SE3_egovehicle.feather"))
        self.sensor_extrinsics, cameras = self._read_calibration(p / "calibration")
        self._lidar_files = self._stamped_files(p / "sensors" / "lidar", ".feather")
        self._camera_files = {name: self._stamped_files(p / "sensors" / "cameras" / name, ".jpg") for name in cameras}
        specs = [SensorSpec(name=name, modality=Modality.CAMERA, frame=name, topic=name, rate_hz=_CAMERA_RATE_HZ,
                            ego_T_sensor=self.sensor_extrinsics[name], intrinsics=cam, msgtype="av2/jpg")
                 for name, cam in cameras.items()]
        specs.append(SensorSpec(name=LIDAR, modality=Modality.LIDAR, frame=EGO_FRAME, topic=LIDAR, rate_hz=_LIDAR_RATE_HZ,
                                ego_T_sensor=np.eye(4), msgtype="av2/lidar_feather"))
        self.rig = rig if rig is not None else Rig(tuple(specs), name=f"av2 {self.log_id}", source=str(p / "calibration"))
        self._annotations = self._read_annotations(p / "annotations.feather")
        self._msgtypes: dict[str, tuple[str, Modality | None]] = {
            LIDAR: ("av2/lidar_feather", Modality.LIDAR), EGO_POSE: ("av2/city_SE3_egovehicle", Modality.ODOMETRY),
            GROUND_TRUTH: ("av2/annotations", None), **{c: ("av2/jpg", Modality.CAMERA) for c in cameras},
        }
        index: list[IndexEntry] = [IndexEntry(int(t), 0, i, EGO_POSE, i) for i, t in enumerate(self._pose_stamps)]
        for t, f in self._lidar_files:
            index.append(IndexEntry(t, 1, len(index), LIDAR, f))
        for name, files in self._camera_files.items():
            for t, f in files:
                index.append(IndexEntry(t, 1, len(index), name, f))
        if self._annotations is not None:
            for t in np.unique(self._annotations["timestamp_ns"]):
                index.append(IndexEntry(int(t), 2, len(index), GROUND_TRUTH, int(t)))
        index.sort(key=lambda e: (e.stamp_ns, e.rank, e.seq))
        self._index = index

    # ------------------------------------------------------------------ files
    @staticmethod
    def _stamped_files(folder: Path, ext: str) -> list[tuple[int, Path]]:
        if not folder.is_dir():
            return []
        out = []
        for f in folder.glob(f"*{ext}"):
            stem = f.name[: -len(ext)]
            if not stem.isdigit():
                raise FormatError(f"{f}: AV2 sensor files are named <timestamp_ns>{ext}")
            out.append((int(stem), f))
        return sorted(out)

    def _read_calibration(self, folder: Path) -> tuple[dict[str, np.ndarray], dict[str, PinholeCamera]]:
        ext_path, intr_path = folder / "egovehicle_SE3_sensor.feather", folder / "intrinsics.feather"
        ext = read_feather(ext_path, ("sensor_name", *_POSE_COLS))
        extrinsics = {str(n): T for n, T in zip(ext["sensor_name"], _poses(ext))}
        cameras: dict[str, PinholeCamera] = {}
        if intr_path.is_file():
            intr = read_feather(intr_path, ("sensor_name", "fx_px", "fy_px", "cx_px", "cy_px", "k1", "k2", "k3",
                                            "width_px", "height_px"))
            for i, name in enumerate(intr["sensor_name"]):
                name = str(name)
                if name not in extrinsics:
                    raise FormatError(f"{ext_path}: no extrinsics for camera {name!r} of {intr_path.name}")
                cameras[name] = PinholeCamera(
                    int(intr["width_px"][i]), int(intr["height_px"][i]), float(intr["fx_px"][i]), float(intr["fy_px"][i]),
                    float(intr["cx_px"][i]), float(intr["cy_px"][i]),
                    # AV2 gives radial k1 k2 k3 only: OpenCV's order is k1 k2 p1 p2 k3
                    (float(intr["k1"][i]), float(intr["k2"][i]), 0.0, 0.0, float(intr["k3"][i])))
        return extrinsics, cameras

    def _read_annotations(self, path: Path) -> dict[str, np.ndarray] | None:
        if not path.is_file():
            return None
        cols = read_feather(path, ("timestamp_ns", "track_uuid", "category", "length_m", "width_m", "height_m", *_POSE_COLS,
                                   "num_interior_pts"))
        cols["timestamp_ns"] = cols["timestamp_ns"].astype(np.int64)
        cols["velocity"] = self._track_velocities(cols)
        return cols

    def _track_velocities(self, cols: dict[str, np.ndarray]) -> np.ndarray:
        """(K, 2) vx vy of every annotation row, in its own ego frame (see the module docstring)."""
        ts = cols["timestamp_ns"]
        k = ts.shape[0]
        center_ego = np.stack([cols["tx_m"], cols["ty_m"], cols["tz_m"]], axis=1).astype(np.float64)
        center_city = np.empty_like(center_ego)
        stamps = np.unique(ts)
        covered = np.array([self.trajectory.covers(int(t)) for t in stamps], dtype=bool)
        poses = {int(t): self.trajectory.world_T_ego(int(t)) for t in stamps[covered]}
        for t in stamps:
            m = ts == t
            center_city[m] = se3.transform_points(poses[int(t)], center_ego[m]) if int(t) in poses else np.nan
        _, track = np.unique(cols["track_uuid"].astype(str), return_inverse=True)
        order = np.lexsort((ts, track))  # by track, then time: a track's neighbours are adjacent
        t_o, trk_o, c_o = ts[order], track[order], center_city[order]
        has_prev = np.zeros(k, bool)
        has_next = np.zeros(k, bool)
        same = trk_o[1:] == trk_o[:-1]
        has_prev[1:] = same & (t_o[1:] - t_o[:-1] <= _MAX_VELOCITY_GAP_NS)
        has_next[:-1] = same & (t_o[1:] - t_o[:-1] <= _MAX_VELOCITY_GAP_NS)
        i = np.arange(k)
        first = np.where(has_prev, i - 1, i)
        last = np.where(has_next, i + 1, i)
        dt = (t_o[last] - t_o[first]).astype(np.float64) * 1e-9
        with np.errstate(invalid="ignore", divide="ignore"):
            v_city_o = (c_o[last] - c_o[first]) / dt[:, None]
        v_city_o[dt <= 0] = np.nan
        v_city = np.empty_like(v_city_o)
        v_city[order] = v_city_o
        out = np.full((k, 2), np.nan)
        for t in stamps:  # absolute velocity, re-expressed in the axes of the ego frame at t
            m = ts == t
            if int(t) in poses:
                ego_T_city = se3.invert(poses[int(t)])
                out[m] = transform_boxes(ego_T_city, center_city[m], np.zeros(int(m.sum())), v_city[m, :2])[2]
        return out

    # ------------------------------------------------------------------ reading
    @property
    def lidar_stamps(self) -> list[int]:
        return [t for t, _ in self._lidar_files]

    def lidar(self, stamp_ns: int) -> PointCloud:
        for t, f in self._lidar_files:
            if t == stamp_ns:
                return read_lidar_sweep(f, t)
        raise KeyError(f"{self.path / 'sensors' / 'lidar'}: no sweep at {stamp_ns} ns")

    def ego_pose(self, row: int) -> EgoPose:
        return EgoPose(stamp_ns=int(self._pose_stamps[row]), frame_id=WORLD_FRAME, world_T_ego=self._pose_mats[row].copy())

    def ground_truth(self, stamp_ns: int) -> Detections:
        """The cuboids annotated at ``stamp_ns`` (a LiDAR stamp) in the ego frame."""
        a = self._annotations
        if a is None:
            raise InputFileError(f"{self.path / 'annotations.feather'}: this log has no annotations")
        rows = np.flatnonzero(a["timestamp_ns"] == stamp_ns)
        cls = [AV2_CATEGORY_TO_CLASS.get(str(c)) for c in a["category"][rows]]
        rows = rows[[c is not None for c in cls]] if rows.size else rows
        labels = np.array([DETECTION_CLASSES.index(c) for c in cls if c is not None], np.int64)
        n = rows.shape[0]
        if n == 0:
            return Detections.empty(stamp_ns, EGO_FRAME, DETECTION_CLASSES)
        q = np.stack([a["qw"][rows], a["qx"][rows], a["qy"][rows], a["qz"][rows]], axis=1).astype(np.float64)
        return Detections(
            stamp_ns=stamp_ns, frame_id=EGO_FRAME, class_names=DETECTION_CLASSES,
            center=np.stack([a["tx_m"][rows], a["ty_m"][rows], a["tz_m"][rows]], axis=1).astype(np.float64),
            size=np.stack([a["length_m"][rows], a["width_m"][rows], a["height_m"][rows]], axis=1).astype(np.float64),
            yaw=yaw_from_quaternion(q), velocity=a["velocity"][rows].astype(np.float64), score=np.ones(n, np.float32),
            label=labels, attribute=np.full(n, "", dtype=object), track_id=a["track_uuid"][rows].astype(object),
            num_lidar_pts=a["num_interior_pts"][rows].astype(np.int64),
        )

    def _decode(self, e: IndexEntry) -> Any:
        if e.sensor == EGO_POSE:
            return self.ego_pose(e.ref)
        if e.sensor == GROUND_TRUTH:
            return self.ground_truth(e.ref)
        if e.sensor == LIDAR:
            return read_lidar_sweep(e.ref, e.stamp_ns)
        return CameraImage(stamp_ns=e.stamp_ns, camera=e.sensor, frame_id=e.sensor, image=read_camera_image(e.ref))


def _open(path: str | Path, rig: Rig | None = None, **kwargs: Any) -> Av2Reader:
    return Av2Reader(path, rig=rig, **kwargs)


register_reader("av2", is_av2_log, _open)
