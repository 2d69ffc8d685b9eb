"""Rig files: which sensors a vehicle has, where they are mounted, and which topics carry them.

A rig file is YAML::

    name: my-car
    sensors:
      - name: CAM_FRONT            # unique; the name the rest of bevfuse uses
        modality: camera           # camera | lidar | radar | gnss | imu | odometry
        frame: cam_front           # the frame_id of its messages
        topic: /cam_front/image/compressed
        rate_hz: 12.0              # nominal rate (watchdogs, sync)
        time_offset_ns: 0          # added to message stamps (a known clock offset)
        ego_T_sensor:              # maps sensor coordinates into the ego frame
          translation: [1.70, 0.01, 1.51]
          rotation: [0.5, -0.5, 0.5, -0.5]   # quaternion w x y z, or a 3x3 matrix
        intrinsics: {model: pinhole, width: 1600, height: 900, fx: 1266.4, fy: 1266.4,
                     cx: 816.3, cy: 491.5, distortion: [0, 0, 0, 0, 0]}

``ego_T_sensor`` may also be given as a 4x4 nested list. ``check_rig_file`` collects every problem
(one line each, naming the file, the sensor and the key); ``load_rig`` raises them together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from calib import se3
from calib.camera import CameraModel, camera_from_dict
from perception.errors import InputFileError, RigError
from perception.types import Modality

__all__ = ["Rig", "SensorSpec", "check_rig_file", "load_rig", "rig_from_dict", "save_rig"]

_SENSOR_KEYS = {"name", "modality", "frame", "topic", "rate_hz", "time_offset_ns", "ego_T_sensor", "intrinsics", "msgtype"}
_TOP_KEYS = {"name", "sensors"}


@dataclass(frozen=True, eq=False)
class SensorSpec:
    """One sensor of the rig. ``ego_T_sensor``: (4, 4) float64 mapping sensor coordinates to ego."""

    name: str
    modality: Modality
    frame: str
    topic: str | None = None
    rate_hz: float | None = None
    ego_T_sensor: np.ndarray = field(default_factory=lambda: np.eye(4))
    time_offset_ns: int = 0
    intrinsics: CameraModel | None = None
    msgtype: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "modality": self.modality.value, "frame": self.frame}
        if self.topic is not None:
            d["topic"] = self.topic
        if self.msgtype is not None:
            d["msgtype"] = self.msgtype
        if self.rate_hz is not None:
            d["rate_hz"] = float(self.rate_hz)
        if self.time_offset_ns:
            d["time_offset_ns"] = int(self.time_offset_ns)
        d["ego_T_sensor"] = {
            "translation": [float(x) for x in self.ego_T_sensor[:3, 3]],
            "rotation": [float(x) for x in se3.matrix_to_quat(self.ego_T_sensor)],
        }
        if self.intrinsics is not None:
            d["intrinsics"] = {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in self.intrinsics.to_dict().items()}
        return d


@dataclass(frozen=True, eq=False)
class Rig:
    """The sensors of a vehicle, in a fixed order (cameras keep their order into the network)."""

    sensors: tuple[SensorSpec, ...]
    name: str = "rig"
    source: str = "<memory>"

    def __post_init__(self) -> None:
        object.__setattr__(self, "sensors", tuple(self.sensors))
        problems = _semantic_problems(self.sensors, self.source)
        if problems:
            raise RigError("\n".join(problems))

    def __getitem__(self, name: str) -> SensorSpec:
        for s in self.sensors:
            if s.name == name:
                return s
        raise KeyError(f"{self.source}: no sensor named {name!r}; the rig has {self.names}")

    def __contains__(self, name: object) -> bool:
        return any(s.name == name for s in self.sensors)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sensors]

    def of(self, modality: Modality | str) -> list[SensorSpec]:
        m = Modality(modality)
        return [s for s in self.sensors if s.modality is m]

    @property
    def cameras(self) -> list[SensorSpec]:
        return self.of(Modality.CAMERA)

    def by_topic(self, topic: str) -> SensorSpec | None:
        for s in self.sensors:
            if s.topic == topic:
                return s
        return None

    def by_frame(self, frame: str) -> SensorSpec | None:
        for s in self.sensors:
            if s.frame == frame:
                return s
        return None

    def with_sensor(self, spec: SensorSpec) -> Rig:
        """A new rig with ``spec`` added, or replacing the sensor of the same name."""
        sensors = [s for s in self.sensors if s.name != spec.name] + [spec]
        return Rig(tuple(sensors), self.name, self.source)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "sensors": [s.to_dict() for s in self.sensors]}


def _semantic_problems(sensors: tuple[SensorSpec, ...], source: str) -> list[str]:
    problems = []
    seen: set[str] = set()
    for s in sensors:
        if s.name in seen:
            problems.append(f"{source}: sensor {s.name!r}: name: duplicate sensor name")
        seen.add(s.name)
        if not se3.is_rigid(s.ego_T_sensor, atol=1e-4):
            problems.append(f"{source}: sensor {s.name!r}: ego_T_sensor: rotation is not orthonormal with det +1 "
                            f"(or the matrix is not a rigid transform)")
    topics = [s.topic for s in sensors if s.topic]
    for t in sorted({t for t in topics if topics.count(t) > 1}):
        problems.append(f"{source}: topic {t!r}: used by more than one sensor")
    return problems


def _parse_transform(value: Any, where: str, problems: list[str]) -> np.ndarray | None:
    if isinstance(value, dict):
        unknown = set(value) - {"translation", "rotation"}
        if unknown:
            problems.append(f"{where}: unknown key(s) {sorted(unknown)}; expected translation, rotation")
            return None
        try:
            t = np.asarray(value.get("translation", [0, 0, 0]), dtype=np.float64)
            r = np.asarray(value.get("rotation", [1, 0, 0, 0]), dtype=np.float64)
        except (TypeError, ValueError):
            problems.append(f"{where}: translation and rotation must be lists of numbers")
            return None
        if t.shape != (3,):
            problems.append(f"{where}.translation: expected 3 numbers, got shape {t.shape}")
            return None
        if r.shape == (4,):
            norm = float(np.linalg.norm(r))
            if abs(norm - 1.0) > 1e-3:
                problems.append(f"{where}.rotation: quaternion w x y z must have unit norm, got norm {norm:.6f}")
                return None
            R = se3.quat_to_matrix(r)
        elif r.shape == (3, 3):
            R = r
        else:
            problems.append(f"{where}.rotation: expected a quaternion [w, x, y, z] or a 3x3 matrix, got shape {r.shape}")
            return None
        T = np.eye(4)
        T[:3, :3] = R
        T[:3, 3] = t
    else:
        try:
            T = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            problems.append(f"{where}: expected {{translation, rotation}} or a 4x4 matrix")
            return None
        if T.shape != (4, 4):
            problems.append(f"{where}: expected a 4x4 matrix, got shape {T.shape}")
            return None
    if not np.all(np.isfinite(T)):
        problems.append(f"{where}: contains NaN or inf")
        return None
    return T


def _rig_problems_and_value(data: Any, source: str) -> tuple[list[str], Rig | None]:
    problems: list[str] = []
    if not isinstance(data, dict):
        return [f"{source}: expected a mapping with 'sensors', got {type(data).__name__}"], None
    unknown = set(data) - _TOP_KEYS
    if unknown:
        problems.append(f"{source}: unknown top-level key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    raw_sensors = data.get("sensors")
    if not isinstance(raw_sensors, list) or not raw_sensors:
        return problems + [f"{source}: sensors: expected a non-empty list"], None
    specs: list[SensorSpec] = []
    for i, raw in enumerate(raw_sensors):
        label = f"sensors[{i}]"
        if not isinstance(raw, dict):
            problems.append(f"{source}: {label}: expected a mapping, got {type(raw).__name__}")
            continue
        name = raw.get("name")
        if isinstance(name, str) and name:
            label = f"sensor {name!r}"
        else:
            problems.append(f"{source}: {label}: name: expected a non-empty string, got {name!r}")
            continue
        bad = set(raw) - _SENSOR_KEYS
        if bad:
            problems.append(f"{source}: {label}: unknown key(s) {sorted(bad)}; allowed: {sorted(_SENSOR_KEYS)}")
        try:
            modality = Modality(raw.get("modality"))
        except ValueError:
            problems.append(f"{source}: {label}: modality: expected one of {[m.value for m in Modality]}, got {raw.get('modality')!r}")
            continue
        frame = raw.get("frame", name)
        if not isinstance(frame, str) or not frame:
            problems.append(f"{source}: {label}: frame: expected a non-empty string, got {frame!r}")
            continue
        topic = raw.get("topic")
        if topic is not None and not isinstance(topic, str):
            problems.append(f"{source}: {label}: topic: expected a string, got {topic!r}")
        rate = raw.get("rate_hz")
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0):
            problems.append(f"{source}: {label}: rate_hz: expected a positive number, got {rate!r}")
            rate = None
        offset = raw.get("time_offset_ns", 0)
        if isinstance(offset, bool) or not isinstance(offset, int):
            problems.append(f"{source}: {label}: time_offset_ns: expected an integer (nanoseconds), got {offset!r}")
            offset = 0
        T = _parse_transform(raw.get("ego_T_sensor", np.eye(4).tolist()), f"{source}: {label}: ego_T_sensor", problems)
        intr = None
        if "intrinsics" in raw:
            try:
                intr = camera_from_dict(raw["intrinsics"], f"{source}: {label}: intrinsics")
            except RigError as exc:
                problems.append(str(exc))
        elif modality is Modality.CAMERA:
            problems.append(f"{source}: {label}: intrinsics: a camera needs intrinsics")
        if T is None:
            continue
        specs.append(SensorSpec(name, modality, frame, topic, None if rate is None else float(rate), T, int(offset), intr, raw.get("msgtype")))
    problems += _semantic_problems(tuple(specs), source)
    if problems:
        return problems, None
    return [], Rig(tuple(specs), str(data.get("name", "rig")), source)


def rig_from_dict(data: Any, source: str = "<dict>") -> Rig:
    problems, rig = _rig_problems_and_value(data, source)
    if problems or rig is None:
        raise RigError("\n".join(problems))
    return rig


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise InputFileError(f"{path}: rig file not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RigError(f"{path}: not valid YAML: {exc}") from None


def load_rig(path: str | Path) -> Rig:
    """Load and validate a rig file; raises ``RigError`` listing every problem."""
    path = Path(path)
    return rig_from_dict(_read_yaml(path), str(path))


def check_rig_file(path: str | Path) -> list[str]:
    """Every problem of a rig file, one line each; empty when it is valid."""
    path = Path(path)
    try:
        data = _read_yaml(path)
    except (InputFileError, RigError) as exc:
        return [str(exc)]
    return _rig_problems_and_value(data, str(path))[0]


def save_rig(rig: Rig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(rig.to_dict(), sort_keys=False))
