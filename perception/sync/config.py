"""Synchronizer settings: the ``sync`` section of the config tree (see perception.config).

Each field carries its allowed range in ``metadata`` (``gt``/``ge``/``lt``/``le``/``choices``), which
``perception.config`` checks when it loads a YAML file; cross-field rules are checked in
``__post_init__``. Times are given in milliseconds here because people write configs; the
synchronizer converts them to int64 nanoseconds once (``SyncConfig.ns``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from perception.errors import ConfigError

__all__ = ["LATE_POLICIES", "POSE_SOURCES", "PoseConfig", "SyncConfig"]

LATE_POLICIES = ("drop", "wait")
POSE_SOURCES = ("auto", "ego_pose", "gnss_imu")


def _ms(value: float) -> int:
    return int(round(value * 1e6))


@dataclass(frozen=True)
class PoseConfig:
    """Where ego poses come from and how the GNSS+IMU filter is tuned.

    ``source``: 'ego_pose' uses EgoPose messages (a dataset's pose table or an odometry topic),
    'gnss_imu' fuses NavSatFix and IMU, 'auto' uses EgoPose messages when there are any, else GNSS+IMU.
    Noise densities are per sqrt(Hz) (the units of an IMU datasheet); ``gnss_sigma_m`` is used when a
    fix carries no covariance, ``gnss_sigma_floor_m`` bounds an optimistic one from below.

    Poses are kept ``history_s`` behind the newest (enough for a frame's accumulation window) and
    extrapolated at most ``max_extrapolation_ms`` past the ends. The filter starts once the car has
    moved ``heading_init_m`` (its heading comes from that motion), waiting at most ``init_window_s``
    of fixes; a fix or IMU sample up to ``gnss_replay_ms`` late is folded in by re-running the
    filter; a fix whose chi-square residual exceeds ``gnss_gate`` is skipped (never five in a row).
    ``imu_auto_level``: when the first ``imu_level_samples`` IMU samples read gravity more than
    ``imu_level_min_deg`` away from the ego's up axis, the IMU mounting is corrected by the
    axis-aligned rotation that turns it up. ``attitude_tau_s``: how fast roll and pitch are pulled
    towards gravity.
    """

    source: str = field(default="auto", metadata={"choices": POSE_SOURCES})
    max_extrapolation_ms: float = field(default=100.0, metadata={"ge": 0, "le": 2000})
    history_s: float = field(default=2.0, metadata={"gt": 0, "le": 600})
    gyro_noise: float = field(default=5.0e-4, metadata={"gt": 0})  # rad/s/sqrt(Hz)
    accel_noise: float = field(default=0.3, metadata={"gt": 0})  # m/s^2/sqrt(Hz), vehicle vibration included
    gyro_bias_walk: float = field(default=2.0e-5, metadata={"ge": 0})  # rad/s^2/sqrt(Hz)
    accel_bias_walk: float = field(default=2.0e-3, metadata={"ge": 0})  # m/s^3/sqrt(Hz)
    position_noise: float = field(default=0.05, metadata={"ge": 0})  # m/sqrt(s): slip, lever arm, model error
    vertical_accel_noise: float = field(default=0.3, metadata={"gt": 0})  # m/s^2/sqrt(Hz)
    gnss_sigma_m: float = field(default=1.0, metadata={"gt": 0})
    gnss_sigma_floor_m: float = field(default=0.01, metadata={"gt": 0})
    heading_init_m: float = field(default=5.0, metadata={"gt": 0})
    imu_auto_level: bool = True
    imu_level_samples: int = field(default=20, metadata={"ge": 1, "le": 10000})
    imu_level_min_deg: float = field(default=30.0, metadata={"gt": 0, "le": 90})
    attitude_tau_s: float = field(default=2.0, metadata={"gt": 0})
    gnss_gate: float = field(default=30.0, metadata={"gt": 0})  # chi-square (2 dof) above which a fix is an outlier
    gnss_replay_ms: float = field(default=500.0, metadata={"ge": 0, "le": 10000})
    init_window_s: float = field(default=120.0, metadata={"gt": 0})

    @property
    def max_extrapolation_ns(self) -> int:
        return _ms(self.max_extrapolation_ms)


@dataclass(frozen=True)
class SyncConfig:
    """How LiDAR sweeps, cameras and radars are grouped into frames.

    The reference LiDAR (``reference_sensor``, default: the rig's first LiDAR) sets the frame stamps:
    a sweep starts a frame when it is at least one frame period (less a tolerance) after the previous
    frame's sweep; the sweeps between are accumulated (``lidar_sweeps`` in all, none older than
    ``lidar_max_lag_ms``). Camera ``c`` is matched to the frame at stamp ``T`` with the image nearest
    to ``T + camera_offsets_ms[c]`` within ``camera_slop_ms`` (or ``camera_slops_ms[c]``). Radars
    contribute every scan in ``[T - radar_window_ms, T + radar_slop_ms]``.

    A frame goes out when every sensor is in, or when the synchronizer's clock (the newest stamp
    pushed: message time, so replays are deterministic) passes ``T + deadline_ms``: the sensors not
    in are listed in ``SyncedFrame.missing``. ``late_policy`` 'drop' drops a message that arrives
    out of order for its sensor; 'wait' holds every message ``reorder_window_ms`` (message time) to
    put its sensor's stream back in order first, dropping only what comes later than that. Queues
    hold at most ``queue_size`` messages per sensor; at most ``max_pending_frames`` frames wait.

    A stamp more than ``clock_jump_ms`` behind the clock on the reference LiDAR or a pose sensor
    starts a new epoch. With ``emit_without_reference``, frames keep coming on the frame clock while
    the reference LiDAR is out (``lidar`` None, the LiDAR listed as missing). ``precompensated``:
    LiDAR sensors whose points are already motion-compensated to the sweep stamp (Argoverse 2),
    which are not deskewed again.
    """

    frame_rate_hz: float = field(default=10.0, metadata={"gt": 0, "le": 100})
    reference_sensor: str | None = None
    camera_slop_ms: float = field(default=50.0, metadata={"ge": 0})
    camera_slops_ms: dict[str, float] = field(default_factory=dict)
    camera_offsets_ms: dict[str, float] = field(default_factory=dict)
    lidar_sweeps: int = field(default=10, metadata={"ge": 1, "le": 30})
    lidar_max_lag_ms: float = field(default=600.0, metadata={"gt": 0, "le": 5000})
    deskew: bool = True
    deskew_step_ms: float = field(default=2.0, metadata={"gt": 0, "le": 50})
    precompensated: tuple[str, ...] = ()
    radar_window_ms: float = field(default=250.0, metadata={"ge": 0})
    radar_slop_ms: float = field(default=0.0, metadata={"ge": 0})
    deadline_ms: float = field(default=100.0, metadata={"ge": 0})
    late_policy: str = field(default="drop", metadata={"choices": LATE_POLICIES})
    reorder_window_ms: float = field(default=50.0, metadata={"ge": 0, "le": 5000})
    queue_size: int = field(default=32, metadata={"ge": 2, "le": 10000})
    max_pending_frames: int = field(default=4, metadata={"ge": 1, "le": 1000})
    clock_jump_ms: float = field(default=1000.0, metadata={"gt": 0})
    emit_without_reference: bool = True
    pose: PoseConfig = field(default_factory=PoseConfig)

    def __post_init__(self) -> None:
        for name in ("camera_slops_ms", "camera_offsets_ms"):
            value = getattr(self, name)
            if not isinstance(value, dict):
                raise ConfigError(f"{name}: expected a mapping camera -> milliseconds, got {type(value).__name__}")
            for cam, ms in value.items():
                if isinstance(ms, bool) or not isinstance(ms, (int, float)):
                    raise ConfigError(f"{name}.{cam}: expected a number, got {ms!r}")
        for cam, ms in self.camera_slops_ms.items():
            if ms < 0:
                raise ConfigError(f"camera_slops_ms.{cam}: expected >= 0, got {ms!r}")
        object.__setattr__(self, "precompensated", tuple(self.precompensated))

    @property
    def frame_period_ns(self) -> int:
        return int(round(1e9 / self.frame_rate_hz))

    def ns(self, name: str) -> int:
        """A ``*_ms`` field in int64 nanoseconds: ``config.ns('deadline_ms')``."""
        return _ms(getattr(self, name))

    def camera_slop_ns(self, camera: str) -> int:
        return _ms(self.camera_slops_ms.get(camera, self.camera_slop_ms))

    def camera_offset_ns(self, camera: str) -> int:
        return _ms(self.camera_offsets_ms.get(camera, 0.0))
