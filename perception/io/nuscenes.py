"""nuScenes v1.0 (the JSON tables of a dataroot) as a bevfuse drive log.

A dataroot holds ``v1.0-<version>/`` (the tables: sensor, calibrated_sensor, ego_pose, sample,
sample_data, sample_annotation, instance, category, attribute, scene) and the data files the
``sample_data`` rows name (``samples/`` keyframes, ``sweeps/``). The reader serves one scene (or
every scene of the dataroot whose calibrations agree), keyframes and sweeps alike, in stamp order:

- ``LIDAR_TOP`` ``.pcd.bin`` -> ``PointCloud`` in the LiDAR frame, ``(N, 5)`` float32 x y z intensity
  ring (no per-point times: nuScenes does not record them).
- ``RADAR_*`` ``.pcd`` (PCD v0.7, 18 fields) -> ``RadarScan`` in the radar frame: x y z, rcs, vx vy
  (``velocity``, relative to the sensor), vx_comp vy_comp (``velocity_comp``, ego motion removed),
  ``radial_velocity`` = the projection of (vx, vy, 0) on the line of sight (what a Doppler radar
  measures; nuScenes does not store it); the other 10 fields in ``extra``. No filtering: the
  devkit's default filters (invalid_state, dyn_prop, ambig_state) are the user's choice.
- ``CAM_*`` JPEG -> ``CameraImage`` RGB uint8.
- every ``ego_pose`` row a selected ``sample_data`` points to -> ``EgoPose`` on sensor ``ego_pose``
  at that row's own timestamp (nuScenes records one pose per sensor reading, so camera and LiDAR
  poses of one keyframe differ by the ~40 ms between their exposures; all are kept).
- each keyframe's annotations -> ``Detections`` on sensor ``ground_truth`` at the sample's
  timestamp, in the global frame (``frame_id`` ``"world"``): size converted from nuScenes' w l h to
  l w h, yaw from the rotation quaternion, velocity (vx, vy) from ``annotation_velocity_global.json``
  (annotation token -> [vx, vy], next to the tables or in the dataroot) when present, else the
  devkit's ``box_velocity`` (centre difference to the prev/next annotation of the instance, NaN
  without one or across more than 1.5 s per side), label = the detection class of the category
  (categories outside the ten detection classes, e.g. ``animal``, are left out), track_id =
  instance token.

Times: nuScenes microseconds -> int64 nanoseconds. Frames: ``"world"`` is nuScenes' global (map)
frame, ``"ego"`` the vehicle body, and each sensor's frame is named after its channel. The rig is
built from ``calibrated_sensor`` (one row per channel in the selection; cameras get a
``PinholeCamera`` from ``camera_intrinsic`` and the size from ``sample_data`` width/height).
Nominal rates in the rig: cameras 12 Hz, LiDAR 20 Hz, radars 13 Hz.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calib import se3
from calib.camera import PinholeCamera
from calib.rig import Rig, SensorSpec
from perception.boxes import wlh_to_lwh, yaw_from_quaternion
from perception.classes import NUSCENES_CLASSES as DETECTION_CLASSES
from perception.errors import DecodeError, FormatError, InputFileError, TopicMappingError
from perception.io.base import EGO_POSE, GROUND_TRUTH, IndexedReader, StreamInfo, register_reader
from perception.io.pcd import PcdFile, read_pcd
from perception.types import CameraImage, Detections, EgoPose, Modality, PointCloud, RadarScan

__all__ = [
    "NUSCENES_CATEGORY_TO_CLASS",
    "NUSCENES_LIDAR_FIELDS",
    "NuScenesReader",
    "WORLD_FRAME",
    "is_nuscenes_dataroot",
    "nuscenes_category_to_class",
    "open_nuscenes",
    "radar_scan_from_pcd",
    "read_camera_image",
    "read_points_bin",
]

WORLD_FRAME = "world"
NUSCENES_LIDAR_FIELDS = ("x", "y", "z", "intensity", "ring")
_RADAR_REQUIRED = ("x", "y", "z", "rcs", "vx", "vy", "vx_comp", "vy_comp")
_TABLES = ("sensor", "calibrated_sensor", "ego_pose", "sample", "sample_data", "sample_annotation", "instance",
           "category", "attribute", "scene")
_VELOCITY_FILE = "annotation_velocity_global.json"
# The devkit's box_velocity: a neighbour more than 1.5 s away per side gives no velocity.
_MAX_VELOCITY_GAP_S = 1.5
# The camera order of BEVFusion / mmdetection3d's nuScenes configs: the network sees them in this order.
_CAMERA_ORDER = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")
_RADAR_ORDER = ("RADAR_FRONT", "RADAR_FRONT_LEFT", "RADAR_FRONT_RIGHT", "RADAR_BACK_LEFT", "RADAR_BACK_RIGHT")
_RATE_HZ = {Modality.CAMERA: 12.0, Modality.LIDAR: 20.0, Modality.RADAR: 13.0}
_MSGTYPE = {Modality.CAMERA: "nuscenes/jpg", Modality.LIDAR: "nuscenes/pcd.bin", Modality.RADAR: "nuscenes/radar.pcd"}
_US_TO_NS = 1000

# nuScenes category -> detection class, as the devkit's category_to_detection_name; the categories
# not listed (animal, emergency vehicles, strollers, wheelchairs, debris, bicycle racks...) have none.
NUSCENES_CATEGORY_TO_CLASS: dict[str, str] = {
    "movable_object.barrier": "barrier",
    "vehicle.bicycle": "bicycle",
    "vehicle.bus.bendy": "bus",
    "vehicle.bus.rigid": "bus",
    "vehicle.car": "car",
    "vehicle.construction": "construction_vehicle",
    "vehicle.motorcycle": "motorcycle",
    "human.pedestrian.adult": "pedestrian",
    "human.pedestrian.child": "pedestrian",
    "human.pedestrian.construction_worker": "pedestrian",
    "human.pedestrian.police_officer": "pedestrian",
    "movable_object.trafficcone": "traffic_cone",
    "vehicle.trailer": "trailer",
    "vehicle.truck": "truck",
}


def nuscenes_category_to_class(category: str) -> str | None:
    """The detection class of a nuScenes category name (``vehicle.car`` -> ``car``), or None."""
    return NUSCENES_CATEGORY_TO_CLASS.get(category)


def read_points_bin(path: str | Path, columns: int, layout: str) -> np.ndarray:
    """A float32 point file (nuScenes ``.pcd.bin``, KITTI velodyne ``.bin``): ``(N, columns)`` float32.

    ``layout`` names the columns in the error raised when the file size is not a multiple of a
    point (a truncated download): ``DecodeError`` naming the file. Missing: ``InputFileError``.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise InputFileError(f"{p}: point file not found") from None
    except OSError as exc:
        raise InputFileError(f"{p}: cannot read point file: {exc.strerror or exc}") from None
    point_bytes = 4 * columns
    if len(raw) % point_bytes:
        raise DecodeError(f"{p}: truncated or not a point file: {len(raw)} bytes is not a multiple of "
                          f"{point_bytes} ({columns} float32 {layout} per point)")
    return np.frombuffer(raw, dtype="<f4").reshape(-1, columns).astype(np.float32)


def read_camera_image(path: str | Path) -> np.ndarray:
    """A JPEG/PNG as ``(H, W, 3)`` uint8 RGB; ``InputFileError`` when missing, ``DecodeError`` when undecodable."""
    import cv2

    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: image file not found")
    bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DecodeError(f"{p}: not a decodable image")
    return np.ascontiguousarray(bgr[:, :, ::-1])  # OpenCV decodes to BGR


def radar_scan_from_pcd(pcd: PcdFile, stamp_ns: int, frame_id: str) -> RadarScan:
    """A nuScenes radar PCD (x y z rcs vx vy vx_comp vy_comp + the rest) as a ``RadarScan``.

    radial_velocity: (N,) float32 = (vx, vy, 0) . (x, y, z) / |(x, y, z)| (0 at the origin).
    """
    missing = [f for f in _RADAR_REQUIRED if f not in pcd.fields]
    if missing:
        raise DecodeError(f"{pcd.path}: radar PCD lacks field(s) {missing}; it has {pcd.fields}")
    xyz = pcd.xyz()
    vel = np.stack([pcd.field("vx"), pcd.field("vy")], axis=1).astype(np.float32)
    vel_comp = np.stack([pcd.field("vx_comp"), pcd.field("vy_comp")], axis=1).astype(np.float32)
    rng = np.linalg.norm(xyz.astype(np.float64), axis=1)
    along = xyz[:, 0].astype(np.float64) * vel[:, 0] + xyz[:, 1].astype(np.float64) * vel[:, 1]
    radial = np.divide(along, rng, out=np.zeros_like(along), where=rng > 0).astype(np.float32)
    extra = {f: np.asarray(pcd.field(f)) for f in pcd.fields if f not in _RADAR_REQUIRED}
    return RadarScan(stamp_ns=stamp_ns, frame_id=frame_id, points=xyz, rcs=pcd.field("rcs").astype(np.float32),
                     radial_velocity=radial, velocity=vel, velocity_comp=vel_comp, extra=extra)


def _find_version_dir(dataroot: Path, version: str | None) -> Path:
    if version is not None:
        vdir = dataroot / version
        if not vdir.is_dir():
            raise InputFileError(f"{vdir}: nuScenes table folder for version {version!r} not found")
        return vdir
    found = sorted(p for p in dataroot.glob("v1.0-*") if (p / "sample_data.json").is_file())
    if not found:
        raise FormatError(f"{dataroot}: not a nuScenes dataroot: no v1.0-*/sample_data.json")
    if len(found) > 1:
        raise FormatError(f"{dataroot}: several nuScenes versions ({', '.join(p.name for p in found)}); pass version=")
    return found[0]


def is_nuscenes_dataroot(path: Path) -> bool:
    """A folder with ``v1.0-*/sample_data.json``, or such a ``v1.0-*`` folder itself."""
    p = Path(path)
    if not p.is_dir():
        return False
    if p.name.startswith("v1.0-") and (p / "sample_data.json").is_file():
        return True
    return any((v / "sample_data.json").is_file() for v in p.glob("v1.0-*"))


@dataclass(frozen=True)
class _Entry:
    """One message of the index: decoded only when ``messages`` reaches it."""

    stamp_ns: int
    rank: int  # at equal stamps: the pose first, then the data, then the ground truth
    seq: int
    sensor: str
    kind: str  # "data" | "pose" | "gt"
    token: str


class NuScenesReader(IndexedReader):
    """Reads a nuScenes dataroot. ``scene``: a scene name or token (default: all scenes, which must
    share one calibration per channel; pick a scene otherwise). ``rig``: replaces the rig built from
    ``calibrated_sensor`` (its sensor names must be the channels)."""

    def __init__(self, path: str | Path, rig: Rig | None = None, version: str | None = None,
                 scene: str | None = None) -> None:
        p = Path(path)
        if not p.is_dir():
            raise InputFileError(f"{p}: nuScenes dataroot not found")
        if p.name.startswith("v1.0-") and (p / "sample_data.json").is_file() and version is None:
            p, version = p.parent, p.name
        super().__init__(path=p, format="nuscenes")
        self.dataroot = p
        self.version_dir = _find_version_dir(p, version)
        self.version = self.version_dir.name
        self._tables: dict[str, list[dict[str, Any]]] = {name: self._load_table(name) for name in _TABLES}
        self._by_token: dict[str, dict[str, dict[str, Any]]] = {
            name: {row["token"]: row for row in rows} for name, rows in self._tables.items()
        }
        self._velocity = self._load_velocities()
        self._scene_tokens = self._select_scenes(scene)
        sample_rows = [s for s in self._tables["sample"] if s["scene_token"] in self._scene_tokens]
        self._samples = sorted(sample_rows, key=lambda s: (s["timestamp"], s["token"]))
        sample_set = {s["token"] for s in sample_rows}
        self._sample_data = [sd for sd in self._tables["sample_data"] if sd["sample_token"] in sample_set]
        self._channel_of_sd = {sd["token"]: self._sensor_row(sd)["channel"] for sd in self._sample_data}
        self._sd_by_sample_channel = {(sd["sample_token"], self._channel_of_sd[sd["token"]]): sd["token"]
                                      for sd in self._sample_data if sd.get("is_key_frame")}
        self._annotations_by_sample: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for ann in self._tables["sample_annotation"]:
            if ann["sample_token"] in sample_set:
                self._annotations_by_sample[ann["sample_token"]].append(ann)
        built = self._build_rig()
        if rig is not None:
            missing = sorted({c for c in self._channel_of_sd.values()} - set(rig.names))
            if missing:
                raise TopicMappingError(f"{rig.source}: the given rig lacks the nuScenes channel(s) {missing}")
        self.rig = rig if rig is not None else built
        self._index = self._build_index()

    # ------------------------------------------------------------------ tables
    def _load_table(self, name: str) -> list[dict[str, Any]]:
        path = self.version_dir / f"{name}.json"
        if not path.is_file():
            raise FormatError(f"{path}: nuScenes table {name!r} missing from {self.version_dir}")
        try:
            rows = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FormatError(f"{path}: not valid JSON: {exc}") from None
        if not isinstance(rows, list) or any(not isinstance(r, dict) or "token" not in r for r in rows):
            raise FormatError(f"{path}: expected a JSON list of records with a 'token'")
        return rows

    def _load_velocities(self) -> dict[str, tuple[float, float]]:
        for path in (self.version_dir / _VELOCITY_FILE, self.dataroot / _VELOCITY_FILE):
            if path.is_file():
                try:
                    raw = json.loads(path.read_text())
                    return {tok: (float(v[0]), float(v[1])) for tok, v in raw.items()}
                except (json.JSONDecodeError, AttributeError, TypeError, ValueError, IndexError) as exc:
                    raise FormatError(f"{path}: expected {{annotation token: [vx, vy]}}: {exc}") from None
        return {}

    def table(self, name: str) -> list[dict[str, Any]]:
        """The rows of a table (the whole dataroot's, not only the selected scenes')."""
        if name not in self._tables:
            raise KeyError(f"{self.version_dir}: no table {name!r}; loaded: {sorted(self._tables)}")
        return self._tables[name]

    def get(self, table: str, token: str) -> dict[str, Any]:
        """One row by token; ``FormatError`` naming the table file when the token is absent."""
        try:
            return self._by_token[table][token]
        except KeyError:
            raise FormatError(f"{self.version_dir / (table + '.json')}: no record with token {token!r}") from None

    def _sensor_row(self, sd: dict[str, Any]) -> dict[str, Any]:
        cs = self.get("calibrated_sensor", sd["calibrated_sensor_token"])
        return self.get("sensor", cs["sensor_token"])

    def _select_scenes(self, scene: str | None) -> set[str]:
        scenes = self._tables["scene"]
        if scene is None:
            return {s["token"] for s in scenes}
        chosen = {s["token"] for s in scenes if scene in (s["token"], s.get("name"))}
        if not chosen:
            names = ", ".join(s.get("name", s["token"]) for s in scenes[:20])
            raise InputFileError(f"{self.version_dir / 'scene.json'}: no scene named {scene!r}; scenes: {names}")
        return chosen

    @property
    def scenes(self) -> list[str]:
        """Names of the scenes this reader serves."""
        return [s.get("name", s["token"]) for s in self._tables["scene"] if s["token"] in self._scene_tokens]

    @property
    def samples(self) -> list[str]:
        """Keyframe (sample) tokens in time order."""
        return [s["token"] for s in self._samples]

    # ------------------------------------------------------------------ rig
    def _build_rig(self) -> Rig:
        per_channel: dict[str, dict[str, Any]] = {}
        modality_of: dict[str, Modality] = {}
        size_of: dict[str, tuple[int, int]] = {}
        source = str(self.version_dir / "calibrated_sensor.json")
        for sd in self._sample_data:
            cs = self.get("calibrated_sensor", sd["calibrated_sensor_token"])
            sensor = self.get("sensor", cs["sensor_token"])
            ch = sensor["channel"]
            prev = per_channel.setdefault(ch, cs)
            if prev is not cs and not (np.allclose(prev["translation"], cs["translation"], atol=1e-9)
                                       and np.allclose(prev["rotation"], cs["rotation"], atol=1e-9)):
                raise FormatError(f"{source}: channel {ch} has several calibrations in the selected scenes "
                                  f"({prev['token']}, {cs['token']}); read one scene at a time (scene=...)")
            try:
                modality_of[ch] = Modality(sensor["modality"])
            except ValueError:
                raise FormatError(f"{self.version_dir / 'sensor.json'}: channel {ch}: unknown modality "
                                  f"{sensor['modality']!r}") from None
            if modality_of[ch] is Modality.CAMERA and ch not in size_of and sd.get("width") and sd.get("height"):
                size_of[ch] = (int(sd["width"]), int(sd["height"]))
        specs = []
        for ch in sorted(per_channel, key=_channel_sort_key):
            cs = per_channel[ch]
            modality = modality_of[ch]
            intr = None
            if modality is Modality.CAMERA:
                K = np.asarray(cs.get("camera_intrinsic") or [], dtype=np.float64)
                if K.shape != (3, 3):
                    raise FormatError(f"{source}: {cs['token']} ({ch}): camera_intrinsic: expected 3x3, got shape {K.shape}")
                if ch not in size_of:
                    size_of[ch] = self._image_size_from_file(ch)
                intr = PinholeCamera.from_K(K, *size_of[ch])
            ego_T_sensor = se3.from_rotation_translation(cs["rotation"], cs["translation"])
            specs.append(SensorSpec(name=ch, modality=modality, frame=ch, topic=ch, rate_hz=_RATE_HZ.get(modality),
                                    ego_T_sensor=ego_T_sensor, intrinsics=intr, msgtype=_MSGTYPE.get(modality)))
        if not specs:
            raise FormatError(f"{self.version_dir / 'sample_data.json'}: no sample_data in the selected scene(s)")
        return Rig(tuple(specs), name=f"nuscenes {self.version} {'+'.join(self.scenes)}", source=source)

    def _image_size_from_file(self, channel: str) -> tuple[int, int]:
        # Older table dumps leave width/height at 0: read one image of the channel instead.
        for sd in self._sample_data:
            if self._channel_of_sd[sd["token"]] == channel:
                img = read_camera_image(self.dataroot / sd["filename"])
                return int(img.shape[1]), int(img.shape[0])
        raise FormatError(f"{self.version_dir}: camera {channel} has no image to take its size from")

    # ------------------------------------------------------------------ index
    def _build_index(self) -> list[_Entry]:
        entries: list[_Entry] = []
        seen_pose: set[str] = set()
        for sd in self._sample_data:
            ch = self._channel_of_sd[sd["token"]]
            entries.append(_Entry(int(sd["timestamp"]) * _US_TO_NS, 1, len(entries), ch, "data", sd["token"]))
            pose_tok = sd["ego_pose_token"]
            if pose_tok not in seen_pose:
                seen_pose.add(pose_tok)
                pose = self.get("ego_pose", pose_tok)
                entries.append(_Entry(int(pose["timestamp"]) * _US_TO_NS, 0, len(entries), EGO_POSE, "pose", pose_tok))
        for s in self._samples:
            entries.append(_Entry(int(s["timestamp"]) * _US_TO_NS, 2, len(entries), GROUND_TRUTH, "gt", s["token"]))
        entries.sort(key=lambda e: (e.stamp_ns, e.rank, e.seq))
        return entries

    def streams(self) -> list[StreamInfo]:
        infos: dict[str, StreamInfo] = {}
        for e in self._index:
            info = infos.get(e.sensor)
            if info is None:
                if e.kind == "data":
                    spec = self.rig[e.sensor] if e.sensor in self.rig else None
                    modality = spec.modality if spec else None
                    msgtype = _MSGTYPE.get(modality, "nuscenes/sample_data") if modality else "nuscenes/sample_data"
                else:
                    modality = Modality.ODOMETRY if e.kind == "pose" else None
                    msgtype = "nuscenes/ego_pose" if e.kind == "pose" else "nuscenes/sample_annotation"
                info = infos[e.sensor] = StreamInfo(e.sensor, e.sensor, msgtype, modality, 0, e.stamp_ns, e.stamp_ns)
            info.count += 1
            info.last_stamp_ns = e.stamp_ns
        return list(infos.values())

    def _decode(self, e: _Entry) -> CameraImage | PointCloud | RadarScan | EgoPose | Detections:
        if e.kind == "pose":
            return self._ego_pose(self.get("ego_pose", e.token))
        if e.kind == "gt":
            return self.ground_truth(e.token)
        return self.load(e.token)

    # ------------------------------------------------------------------ helpers
    def sample_data_token(self, sample_token: str, channel: str) -> str:
        """The keyframe sample_data token of ``channel`` in sample ``sample_token``."""
        try:
            return self._sd_by_sample_channel[(sample_token, channel)]
        except KeyError:
            where = self.version_dir / "sample_data.json"
            raise KeyError(f"{where}: no keyframe of {channel} in sample {sample_token}") from None

    def stamp_ns(self, sample_data_token: str) -> int:
        return int(self.get("sample_data", sample_data_token)["timestamp"]) * _US_TO_NS

    def ego_pose_of(self, sample_data_token: str) -> EgoPose:
        """The ego pose recorded with a sample_data (at that sensor's own timestamp)."""
        sd = self.get("sample_data", sample_data_token)
        return self._ego_pose(self.get("ego_pose", sd["ego_pose_token"]))

    def ego_T_sensor_of(self, sample_data_token: str) -> np.ndarray:
        """(4, 4) ``ego_T_sensor`` of the calibrated_sensor row a sample_data was recorded with."""
        cs = self.get("calibrated_sensor", self.get("sample_data", sample_data_token)["calibrated_sensor_token"])
        return se3.from_rotation_translation(cs["rotation"], cs["translation"])

    def _ego_pose(self, row: dict[str, Any]) -> EgoPose:
        return EgoPose(stamp_ns=int(row["timestamp"]) * _US_TO_NS, frame_id=WORLD_FRAME,
                       world_T_ego=se3.from_rotation_translation(row["rotation"], row["translation"]))

    def load(self, sample_data_token: str) -> CameraImage | PointCloud | RadarScan:
        """Decode one sample_data file; raises ``InputFileError`` / ``DecodeError`` naming the file."""
        sd = self.get("sample_data", sample_data_token)
        sensor = self._sensor_row(sd)
        ch = sensor["channel"]
        stamp = int(sd["timestamp"]) * _US_TO_NS
        path = self.dataroot / sd["filename"]
        modality = sensor["modality"]
        if modality == "lidar":
            pts = read_points_bin(path, 5, "x y z intensity ring")
            return PointCloud(stamp_ns=stamp, frame_id=ch, points=pts, fields=NUSCENES_LIDAR_FIELDS)
        if modality == "radar":
            try:
                pcd = read_pcd(path)
            except FormatError as exc:
                raise DecodeError(str(exc)) from None
            return radar_scan_from_pcd(pcd, stamp, ch)
        if modality == "camera":
            return CameraImage(stamp_ns=stamp, camera=ch, frame_id=ch, image=read_camera_image(path))
        raise DecodeError(f"{path}: sample_data of unknown modality {modality!r}")

    def ground_truth(self, sample_token: str) -> Detections:
        """The annotations of a keyframe as ``Detections`` in the world (global) frame.

        Rows whose category is not one of the ten detection classes are left out.
        """
        sample = self.get("sample", sample_token)
        rows = []
        labels = []
        for ann in self._annotations_by_sample.get(sample_token, []):
            instance = self.get("instance", ann["instance_token"])
            cls = nuscenes_category_to_class(self.get("category", instance["category_token"])["name"])
            if cls is None:
                continue
            rows.append(ann)
            labels.append(DETECTION_CLASSES.index(cls))
        stamp = int(sample["timestamp"]) * _US_TO_NS
        if not rows:
            return Detections.empty(stamp, WORLD_FRAME, DETECTION_CLASSES)
        n = len(rows)
        attribute = np.empty(n, dtype=object)
        track = np.empty(n, dtype=object)
        for i, ann in enumerate(rows):
            # nuScenes gives at most one attribute per box (vehicle / cycle / pedestrian state)
            toks = ann.get("attribute_tokens") or []
            attribute[i] = self.get("attribute", toks[0])["name"] if toks else ""
            track[i] = ann["instance_token"]
        return Detections(
            stamp_ns=stamp, frame_id=WORLD_FRAME, class_names=DETECTION_CLASSES,
            center=np.array([a["translation"] for a in rows], dtype=np.float64),
            size=wlh_to_lwh(np.array([a["size"] for a in rows], dtype=np.float64)),
            yaw=yaw_from_quaternion(np.array([a["rotation"] for a in rows], dtype=np.float64)),
            velocity=np.array([self._box_velocity(a) for a in rows], dtype=np.float64).reshape(n, 2),
            score=np.ones(n, np.float32), label=np.array(labels, np.int64), attribute=attribute, track_id=track,
            num_lidar_pts=np.array([int(a.get("num_lidar_pts", -1)) for a in rows], np.int64),
            num_radar_pts=np.array([int(a.get("num_radar_pts", -1)) for a in rows], np.int64),
        )

    def _box_velocity(self, ann: dict[str, Any]) -> tuple[float, float]:
        if ann["token"] in self._velocity:
            return self._velocity[ann["token"]]
        anns = self._by_token["sample_annotation"]
        prev = anns.get(ann.get("prev") or "")
        nxt = anns.get(ann.get("next") or "")
        if prev is None and nxt is None:
            return (np.nan, np.nan)
        first, last = prev or ann, nxt or ann
        t_first = self.get("sample", first["sample_token"])["timestamp"]
        dt = 1e-6 * (self.get("sample", last["sample_token"])["timestamp"] - t_first)
        max_dt = _MAX_VELOCITY_GAP_S * (2 if prev is not None and nxt is not None else 1)
        if dt <= 0 or dt > max_dt:
            return (np.nan, np.nan)
        d = np.asarray(last["translation"], np.float64) - np.asarray(first["translation"], np.float64)
        return (float(d[0] / dt), float(d[1] / dt))

    def annotation_counts(self) -> Counter[str]:
        """Annotations per category name in the selected scenes, the ones left out included."""
        out: Counter[str] = Counter()
        for rows in self._annotations_by_sample.values():
            for ann in rows:
                out[self.get("category", self.get("instance", ann["instance_token"])["category_token"])["name"]] += 1
        return out


def _channel_sort_key(ch: str) -> tuple[int, int, str]:
    if ch in _CAMERA_ORDER:
        return (0, _CAMERA_ORDER.index(ch), ch)
    if ch.startswith("CAM"):
        return (0, len(_CAMERA_ORDER), ch)
    if ch.startswith("LIDAR"):
        return (1, 0, ch)
    if ch in _RADAR_ORDER:
        return (2, _RADAR_ORDER.index(ch), ch)
    return (3, 0, ch)


def open_nuscenes(path: str | Path, rig: Rig | None = None, **kwargs: Any) -> NuScenesReader:
    """``open_log`` entry point: ``version=`` and ``scene=`` pass through."""
    return NuScenesReader(path, rig=rig, **kwargs)


register_reader("nuscenes", is_nuscenes_dataroot, open_nuscenes)
