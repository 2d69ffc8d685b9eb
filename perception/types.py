"""The data model: what flows between readers, the synchronizer, the pipeline and the sinks.

Conventions (DESIGN.md): stamps and durations are ``int64`` nanoseconds; every message names the
frame its coordinates are in; arrays are checked where they enter (a wrong shape or dtype raises
``ShapeError`` naming the argument). The dataclasses are frozen: a stage makes a new object rather
than editing one it was given, so a frame handed to a sink cannot change under it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Union

import numpy as np
import numpy.typing as npt

from perception.errors import ShapeError

__all__ = [
    "CameraImage",
    "Deferred",
    "Detections",
    "EgoPose",
    "EncodedImage",
    "GnssFix",
    "ImuSample",
    "Modality",
    "Payload",
    "PointCloud",
    "RadarScan",
    "SensorMessage",
    "SyncedFrame",
    "check_array",
]

NS_PER_S = 1_000_000_000


class Modality(str, Enum):
    CAMERA = "camera"
    LIDAR = "lidar"
    RADAR = "radar"
    GNSS = "gnss"
    IMU = "imu"
    ODOMETRY = "odometry"


def check_array(
    value: npt.ArrayLike,
    name: str,
    *,
    dtype: npt.DTypeLike | None = None,
    ndim: int | None = None,
    shape: tuple[int | None, ...] | None = None,
) -> np.ndarray:
    """Return ``value`` as an ndarray after checking dtype and shape; ``None`` in ``shape`` = any.

    Raises ``ShapeError`` naming ``name`` with what was expected and what was found.
    """
    # the same checks as ever, in fewer steps: every message and every frame passes through here
    # (~20 arrays a frame), and np.asarray / np.dtype(...) cost more than the comparisons
    arr = value if type(value) is np.ndarray else np.asarray(value)
    if dtype is not None and arr.dtype != _as_dtype(dtype):
        raise ShapeError(f"{name}: expected dtype {np.dtype(dtype)}, got {arr.dtype}")
    if shape is not None:
        got = arr.shape
        if got == shape:  # the usual case, every size given and right: one tuple comparison
            return arr
        ndim = len(shape)
    if ndim is not None and arr.ndim != ndim:
        raise ShapeError(f"{name}: expected {ndim}-D array{_fmt_shape(shape)}, got shape {arr.shape}")
    if shape is not None:
        for want, got in zip(shape, arr.shape):
            if want is not None and want != got:
                raise ShapeError(f"{name}: expected shape {_fmt_shape(shape).strip()}, got {arr.shape}")
    return arr


_DTYPES: dict[object, np.dtype] = {}


def _as_dtype(dtype: npt.DTypeLike) -> np.dtype:
    """``np.dtype(dtype)``, remembered for the hashable specifications (np.float32, 'f4', a dtype)."""
    try:
        return _DTYPES[dtype]
    except KeyError:
        dt = _DTYPES[dtype] = np.dtype(dtype)
        return dt
    except TypeError:  # unhashable (a structured specification as a list)
        return np.dtype(dtype)


def _fmt_shape(shape: tuple[int | None, ...] | None) -> str:
    if shape is None:
        return ""
    return " (" + ", ".join("N" if s is None else str(s) for s in shape) + ")"


def _check_stamp(stamp_ns: int, name: str = "stamp_ns") -> int:
    if isinstance(stamp_ns, (bool, float)) or not isinstance(stamp_ns, (int, np.integer)):
        raise ShapeError(f"{name}: expected int nanoseconds, got {type(stamp_ns).__name__} {stamp_ns!r}")
    return int(stamp_ns)


def _opt_time_offsets(value: npt.ArrayLike | None, n: int, name: str) -> np.ndarray | None:
    if value is None:
        return None
    arr = check_array(value, name, dtype=np.int64, ndim=1)
    if arr.shape[0] != n:
        raise ShapeError(f"{name}: expected {n} offsets (one per point), got {arr.shape[0]}")
    return arr


@dataclass(frozen=True, eq=False)
class CameraImage:
    """image: (H, W, 3) uint8 RGB, taken at ``stamp_ns`` by camera ``camera`` in frame ``frame_id``.

    ``encoded``: the JPEG/PNG it was decoded from, when it came compressed: a writer stores those
    bytes as they came rather than compressing the pixels a second time (lossy, and ~4 ms an image)."""

    stamp_ns: int
    camera: str
    frame_id: str
    image: np.ndarray
    encoded: EncodedImage | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "stamp_ns", _check_stamp(self.stamp_ns))
        check_array(self.image, "image", dtype=np.uint8, shape=(None, None, 3))

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True, eq=False)
class EncodedImage:
    """A camera image still compressed: ``data`` the JPEG or PNG bytes as the camera sent them
    (``format`` 'jpeg' or 'png'), decoded into a ``CameraImage`` by
    ``perception.io.ros_decode.decode_encoded_image``.

    The node's inputs hand images to the synchronizer this way and decode them only for the frames
    its worker takes: under overload most frames are dropped, and decoding their images first was
    most of the CPU the node spent on them. The synchronizer treats it as the camera's image."""

    stamp_ns: int
    camera: str
    frame_id: str
    data: bytes
    format: str = "jpeg"

    def __post_init__(self) -> None:
        object.__setattr__(self, "stamp_ns", _check_stamp(self.stamp_ns))
        if not isinstance(self.data, bytes):
            raise ShapeError(f"data: expected bytes, got {type(self.data).__name__}")
        if self.format not in ("jpeg", "png"):
            raise ShapeError(f"format: expected 'jpeg' or 'png', got {self.format!r}")


@dataclass(frozen=True, eq=False)
class PointCloud:
    """points: (N, F) float32 with named ``fields``, the first three always x y z (metres, ``frame_id``).

    ``time_offset_ns: (N,) int64`` is each point's firing time minus ``stamp_ns`` where the sensor
    gives it (a spinning LiDAR sweeps over 50-100 ms), else ``None``.
    """

    stamp_ns: int
    frame_id: str
    points: np.ndarray
    fields: tuple[str, ...] = ("x", "y", "z", "intensity")
    time_offset_ns: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "stamp_ns", _check_stamp(self.stamp_ns))
        pts = check_array(self.points, "points", dtype=np.float32, ndim=2)
        fields = tuple(self.fields)
        object.__setattr__(self, "fields", fields)
        if pts.shape[1] != len(fields):
            raise ShapeError(f"points: {pts.shape[1]} columns but {len(fields)} fields {fields}")
        if fields[:3] != ("x", "y", "z"):
            raise ShapeError(f"fields: the first three must be ('x', 'y', 'z'), got {fields[:3]}")
        object.__setattr__(self, "time_offset_ns", _opt_time_offsets(self.time_offset_ns, pts.shape[0], "time_offset_ns"))

    def __len__(self) -> int:
        return int(self.points.shape[0])

    @property
    def xyz(self) -> np.ndarray:
        return self.points[:, :3]

    def field(self, name: str) -> np.ndarray:
        """One column by name, e.g. ``cloud.field('intensity')``."""
        try:
            return self.points[:, self.fields.index(name)]
        except ValueError:
            raise KeyError(f"point field {name!r} not in {self.fields}") from None


@dataclass(frozen=True, eq=False)
class RadarScan:
    """A radar scan in ``frame_id``.

    points: (N, 3) float32 x y z; rcs: (N,) float32 dBsm; radial_velocity: (N,) float32 m/s (Doppler,
    positive = moving away); velocity: (N, 2) float32 vx vy as the sensor reports it (NaN if not);
    velocity_comp: (N, 2) float32 ego-motion-compensated vx vy; time_offset_ns: (N,) int64 or None.
    ``extra`` holds any other per-point fields (e.g. nuScenes' dyn_prop, ambig_state), each (N,).
    """

    stamp_ns: int
    frame_id: str
    points: np.ndarray
    rcs: np.ndarray
    radial_velocity: np.ndarray
    velocity: np.ndarray
    velocity_comp: np.ndarray
    time_offset_ns: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stamp_ns", _check_stamp(self.stamp_ns))
        pts = check_array(self.points, "points", dtype=np.float32, shape=(None, 3))
        n = pts.shape[0]
        check_array(self.rcs, "rcs", dtype=np.float32, shape=(n,))
        check_array(self.radial_velocity, "radial_velocity", dtype=np.float32, shape=(n,))
        check_array(self.velocity, "velocity", dtype=np.float32, shape=(n, 2))
        check_array(self.velocity_comp, "velocity_comp", dtype=np.float32, shape=(n, 2))
        object.__setattr__(self, "time_offset_ns", _opt_time_offsets(self.time_offset_ns, n, "time_offset_ns"))
        for key, val in self.extra.items():
            check_array(val, f"extra[{key!r}]", shape=(n,))

    def __len__(self) -> int:
        return int(self.points.shape[0])


@dataclass(frozen=True, eq=False)
class GnssFix:
    """A GNSS fix: WGS84 latitude/longitude in degrees, altitude in metres.

    position_covariance: (3, 3) float64 in ENU metres^2 (NaN where unknown); status: -1 no fix,
    0 fix, 1 SBAS, 2 GBAS/RTK (sensor_msgs/NavSatStatus).
    """

    stamp_ns: int
    frame_id: str
    latitude_deg: float
    longitude_deg: float
    altitude_m: float
    position_covariance: np.ndarray = field(default_factory=lambda: np.full((3, 3), np.nan))
    covariance_type: int = 0
    status: int = 0
    service: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "stamp_ns", _check_stamp(self.stamp_ns))
        check_array(self.position_covariance, "position_covariance", dtype=np.float64, shape=(3, 3))


@dataclass(frozen=True, eq=False)
class ImuSample:
    """An IMU sample in ``frame_id``: angular_velocity (3,) rad/s, linear_acceleration (3,) m/s^2
    (specific force: a resting IMU reads +9.81 on its up axis); orientation (4,) w x y z or NaN."""

    stamp_ns: int
    frame_id: str
    angular_velocity: np.ndarray
    linear_acceleration: np.ndarray
    orientation: np.ndarray = field(default_factory=lambda: np.full(4, np.nan))
    angular_velocity_covariance: np.ndarray = field(default_factory=lambda: np.full((3, 3), np.nan))
    linear_acceleration_covariance: np.ndarray = field(default_factory=lambda: np.full((3, 3), np.nan))
    orientation_covariance: np.ndarray = field(default_factory=lambda: np.full((3, 3), np.nan))

    def __post_init__(self) -> None:
        object.__setattr__(self, "stamp_ns", _check_stamp(self.stamp_ns))
        check_array(self.angular_velocity, "angular_velocity", dtype=np.float64, shape=(3,))
        check_array(self.linear_acceleration, "linear_acceleration", dtype=np.float64, shape=(3,))
        check_array(self.orientation, "orientation", dtype=np.float64, shape=(4,))
        for name in ("angular_velocity_covariance", "linear_acceleration_covariance", "orientation_covariance"):
            check_array(getattr(self, name), name, dtype=np.float64, shape=(3, 3))


@dataclass(frozen=True, eq=False)
class EgoPose:
    """A pose of the vehicle: ``world_T_ego`` (4, 4) float64 at ``stamp_ns``, from a dataset's pose
    table or an odometry topic. ``velocity``: (3,) ego-frame linear velocity m/s, or NaN;
    ``angular_velocity``: (3,) rad/s, or NaN. ``frame_id`` names the world frame."""

    stamp_ns: int
    frame_id: str
    world_T_ego: np.ndarray
    child_frame_id: str = "ego"
    velocity: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))
    angular_velocity: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))

    def __post_init__(self) -> None:
        object.__setattr__(self, "stamp_ns", _check_stamp(self.stamp_ns))
        check_array(self.world_T_ego, "world_T_ego", dtype=np.float64, shape=(4, 4))
        check_array(self.velocity, "velocity", dtype=np.float64, shape=(3,))
        check_array(self.angular_velocity, "angular_velocity", dtype=np.float64, shape=(3,))


@dataclass(frozen=True, eq=False)
class Detections:
    """3D boxes in ``frame_id`` at ``stamp_ns``: detections, or ground truth (then ``score`` is 1).

    center: (N, 3) float64 x y z of the box centre; size: (N, 3) float64 length width height
    (l along the heading); yaw: (N,) float64 rad about +z; velocity: (N, 2) float64 vx vy m/s in
    ``frame_id``; score: (N,) float32; label: (N,) int64 index into ``class_names``;
    attribute: (N,) object array of nuScenes attribute names ('' when none).
    Ground truth also carries track_id (N,) object str, num_lidar_pts / num_radar_pts (N,) int64.
    """

    stamp_ns: int
    frame_id: str
    class_names: tuple[str, ...]
    center: np.ndarray
    size: np.ndarray
    yaw: np.ndarray
    velocity: np.ndarray
    score: np.ndarray
    label: np.ndarray
    attribute: np.ndarray | None = None
    track_id: np.ndarray | None = None
    num_lidar_pts: np.ndarray | None = None
    num_radar_pts: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "stamp_ns", _check_stamp(self.stamp_ns))
        object.__setattr__(self, "class_names", tuple(self.class_names))
        n = check_array(self.center, "center", dtype=np.float64, shape=(None, 3)).shape[0]
        check_array(self.size, "size", dtype=np.float64, shape=(n, 3))
        check_array(self.yaw, "yaw", dtype=np.float64, shape=(n,))
        check_array(self.velocity, "velocity", dtype=np.float64, shape=(n, 2))
        check_array(self.score, "score", dtype=np.float32, shape=(n,))
        label = check_array(self.label, "label", dtype=np.int64, shape=(n,))
        if n and (label.min() < 0 or label.max() >= len(self.class_names)):
            raise ShapeError(f"label: values must index class_names (0..{len(self.class_names) - 1}), got {label.min()}..{label.max()}")
        for name in ("attribute", "track_id"):
            if getattr(self, name) is not None:
                check_array(getattr(self, name), name, shape=(n,))
        for name in ("num_lidar_pts", "num_radar_pts"):
            if getattr(self, name) is not None:
                check_array(getattr(self, name), name, dtype=np.int64, shape=(n,))

    def __len__(self) -> int:
        return int(self.center.shape[0])

    @property
    def labels_as_names(self) -> list[str]:
        return [self.class_names[i] for i in self.label]

    @classmethod
    def empty(cls, stamp_ns: int, frame_id: str, class_names: tuple[str, ...]) -> Detections:
        return cls(
            stamp_ns=stamp_ns, frame_id=frame_id, class_names=class_names,
            center=np.zeros((0, 3)), size=np.zeros((0, 3)), yaw=np.zeros(0), velocity=np.zeros((0, 2)),
            score=np.zeros(0, np.float32), label=np.zeros(0, np.int64),
        )

    def select(self, mask: npt.ArrayLike) -> Detections:
        """A new Detections with the rows where ``mask`` is true (or at the given indices)."""
        idx = np.asarray(mask)

        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[idx]

        return Detections(
            stamp_ns=self.stamp_ns, frame_id=self.frame_id, class_names=self.class_names,
            center=self.center[idx], size=self.size[idx], yaw=self.yaw[idx], velocity=self.velocity[idx],
            score=self.score[idx], label=self.label[idx], attribute=take(self.attribute),
            track_id=take(self.track_id), num_lidar_pts=take(self.num_lidar_pts), num_radar_pts=take(self.num_radar_pts),
        )


Payload = Union[CameraImage, PointCloud, RadarScan, GnssFix, ImuSample, EgoPose, Detections]


@dataclass(frozen=True, eq=False)
class SensorMessage:
    """One decoded message of a drive log or a live topic.

    ``stamp_ns`` is the header stamp (the measurement time), ``sensor`` the rig sensor name
    (or the topic when no rig maps it), ``log_time_ns`` when it was recorded/received (for latency
    and late-arrival handling; equal to the stamp when the format has no such time).
    """

    stamp_ns: int
    sensor: str
    topic: str
    payload: Payload
    log_time_ns: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "stamp_ns", _check_stamp(self.stamp_ns))
        if self.log_time_ns is None:
            object.__setattr__(self, "log_time_ns", self.stamp_ns)
        else:
            object.__setattr__(self, "log_time_ns", _check_stamp(self.log_time_ns, "log_time_ns"))


@dataclass(frozen=True, eq=False)
class SyncedFrame:
    """Everything the network needs for one reference LiDAR sweep, in the ego frame at ``stamp_ns``.

    images: camera name -> CameraImage (in rig order; absent cameras are listed in ``missing``), or
    an ``EncodedImage`` where the producer defers decoding (the node's inputs: decoded by its worker);
    lidar: PointCloud in frame 'ego' with a ``time_lag`` field (seconds, >= 0, 0 for the newest
    sweep) or None; radar: RadarScan in 'ego' accumulated over a window, or None (either may be a
    ``Deferred`` from a synchronizer made with ``defer_assembly``, until ``assembled()``);
    world_T_ego: (4, 4) pose at ``stamp_ns``; missing: the sensors that did not arrive in time;
    sensor_age_ns: sensor -> stamp_ns minus that sensor's data stamp; wait_ns: how long the frame
    waited in the synchronizer; ground_truth: boxes in 'ego' when the log has them;
    ego_T_sensor: camera -> (4, 4) mapping that camera's frame at its image's stamp into the ego
    frame at ``stamp_ns`` (the rig extrinsics composed with the ego motion between the two stamps:
    pixels cannot be moved, so the projection has to be).
    """

    stamp_ns: int
    images: dict[str, CameraImage]
    lidar: PointCloud | Deferred | None
    radar: RadarScan | Deferred | None
    world_T_ego: np.ndarray
    missing: frozenset[str] = frozenset()
    sensor_age_ns: dict[str, int] = field(default_factory=dict)
    wait_ns: int = 0
    ground_truth: Detections | None = None
    ego_T_sensor: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stamp_ns", _check_stamp(self.stamp_ns))
        check_array(self.world_T_ego, "world_T_ego", dtype=np.float64, shape=(4, 4))
        for name, T in self.ego_T_sensor.items():
            check_array(T, f"ego_T_sensor[{name!r}]", dtype=np.float64, shape=(4, 4))
        object.__setattr__(self, "missing", frozenset(self.missing))

    @property
    def degraded(self) -> bool:
        return bool(self.missing)

    def assembled(self) -> SyncedFrame:
        """This frame with its ``Deferred`` members built (itself when it has none)."""
        lidar = self.lidar.build() if isinstance(self.lidar, Deferred) else self.lidar
        radar = self.radar.build() if isinstance(self.radar, Deferred) else self.radar
        if lidar is self.lidar and radar is self.radar:
            return self
        return replace(self, lidar=lidar, radar=radar)


@dataclass(frozen=True, eq=False)
class Deferred:
    """A frame member built only when a consumer needs it: ``build()`` gives it. The node's
    synchronizer (``Synchronizer(defer_assembly=True)``) hands out the accumulated LiDAR cloud and
    radar scan this way, so that the frames its busy worker drops never cost the copies; the worker
    calls ``SyncedFrame.assembled()``. ``build`` must capture only data nothing changes afterwards."""

    build: Callable[[], Any]
