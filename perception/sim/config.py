"""Parameters of the simulator: one frozen dataclass per sensor model plus the scenario knobs.

The rig file says where sensors sit, what they are called, their topics and nominal rates; these
dataclasses say how they behave (beam pattern, noise, detection probability). Defaults follow the
sensors of nuScenes (Velodyne HDL-32E, Continental ARS408, 1600x900 cameras) and common automotive
GNSS/IMU grades; each default names its source or reason where that is not obvious.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from perception.errors import ConfigError

__all__ = [
    "CameraSimConfig",
    "GnssSimConfig",
    "ImuSimConfig",
    "LidarSimConfig",
    "RadarSimConfig",
    "ScenarioConfig",
    "SimConfig",
]


def _positive(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not value > 0:
            raise ConfigError(f"{type(obj).__name__}.{name}: expected > 0, got {value!r}")


def _probability(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{type(obj).__name__}.{name}: expected a probability in [0, 1], got {value!r}")


@dataclass(frozen=True)
class LidarSimConfig:
    """A spinning LiDAR. Beams fire column by column while the head turns clockwise (seen from above).

    The message stamp is the end of the sweep (as the Velodyne driver and nuScenes do), so per-point
    time offsets are negative, within ``(-1/rate, 0]``. ``cut_azimuth_deg`` is where the sweep
    starts and ends, in the LiDAR frame (0 = its +x axis, counter-clockwise positive): the default
    puts the cut 3.8 degrees clockwise of nuScenes' CAM_BACK_LEFT, which reproduces the camera
    trigger offsets of the nuScenes sample (CAM_FRONT 35.5 ms before the LiDAR stamp).
    """

    beams: int = 32
    elevation_min_deg: float = -30.0
    elevation_max_deg: float = 10.0
    columns: int = 1084  # HDL-32E at 20 Hz: ~0.33 deg steps, 32 x 1084 = 34.7k firings a sweep
    cut_azimuth_deg: float = 194.7
    max_range_m: float = 100.0
    min_range_m: float = 1.0
    range_noise_m: float = 0.02  # HDL-32E datasheet: < 2 cm accuracy
    dropout: float = 0.01  # random lost returns
    far_dropout: float = 0.3  # extra loss of weak returns at max range, growing with range^2
    laser_interval_ns: int = 1152  # HDL-32E fires its 32 lasers 1.152 us apart
    threads: int | None = 1  # numba threads for a sweep (None: all cores); see SimConfig

    def __post_init__(self) -> None:
        _positive(self, "beams", "columns", "max_range_m", "min_range_m")
        _probability(self, "dropout", "far_dropout")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"LidarSimConfig.threads: expected >= 1 or None, got {self.threads}")
        if self.elevation_max_deg <= self.elevation_min_deg:
            raise ConfigError(f"LidarSimConfig.elevation_max_deg: expected > elevation_min_deg, got {self.elevation_max_deg}")


@dataclass(frozen=True)
class CameraSimConfig:
    """Camera rendering. ``width`` x ``height`` is the image size (the rig intrinsics are scaled).

    ``noise_sigma``: per-pixel Gaussian-like sensor noise in 8-bit levels; ``fog_m``: distance at which
    haze hides half of the contrast (keeps far geometry from aliasing into noise).
    """

    width: int = 800
    height: int = 450
    noise_sigma: float = 1.5  # daylight; every level more also costs JPEG size
    fog_m: float = 220.0
    jpeg_quality: int = 90
    threads: int | None = 1  # numba threads for an image (None: all cores); see SimConfig

    def __post_init__(self) -> None:
        _positive(self, "width", "height", "fog_m")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"CameraSimConfig.threads: expected >= 1 or None, got {self.threads}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"CameraSimConfig.jpeg_quality: expected 1..100, got {self.jpeg_quality}")


@dataclass(frozen=True)
class RadarSimConfig:
    """Automotive radar (ARS408-like). RCS by class gives the detection probability and return count.

    ``fov_deg``/``max_range_m`` for the front long-range radar and for the corner radars (chosen by
    the mount: a radar whose axis is within 30 degrees of ego +x is the front one).
    """

    front_fov_deg: float = 40.0
    front_max_range_m: float = 200.0
    corner_fov_deg: float = 150.0
    corner_max_range_m: float = 80.0
    range_noise_m: float = 0.15
    azimuth_noise_deg: float = 0.4
    velocity_noise_mps: float = 0.1
    clutter_per_scan: float = 4.0  # mean count of returns from static clutter
    detection_snr_db: float = 8.0  # SNR where detection probability is 50 %
    reference_snr_db: float = 55.0  # SNR of a 0 dBsm target at 1 m (sets the radar's reach)
    max_returns_per_object: int = 6

    def __post_init__(self) -> None:
        _positive(self, "front_fov_deg", "front_max_range_m", "corner_fov_deg", "corner_max_range_m", "max_returns_per_object")


@dataclass(frozen=True)
class GnssSimConfig:
    """GNSS receiver. ``mode`` 'rtk' (2 cm, status GBAS) or 'standard' (~1.5 m, slowly wandering error)."""

    mode: str = "rtk"
    origin_lat_deg: float = 42.336849  # Boston Seaport, where nuScenes recorded its US logs
    origin_lon_deg: float = -71.057854
    origin_alt_m: float = 5.0

    def __post_init__(self) -> None:
        if self.mode not in ("rtk", "standard"):
            raise ConfigError(f"GnssSimConfig.mode: expected 'rtk' or 'standard', got {self.mode!r}")

    @property
    def sigma_horizontal_m(self) -> float:
        return 0.02 if self.mode == "rtk" else 1.5

    @property
    def sigma_vertical_m(self) -> float:
        return 0.04 if self.mode == "rtk" else 3.0

    @property
    def correlation_s(self) -> float:
        """Time constant of the Gauss-Markov position error: multipath and atmosphere change slowly."""
        return 2.0 if self.mode == "rtk" else 30.0


@dataclass(frozen=True)
class ImuSimConfig:
    """MEMS IMU of automotive grade. Noise densities per sqrt(Hz); biases drawn once per log."""

    gyro_noise_density: float = 1.0e-4  # rad/s/sqrt(Hz) (~0.35 deg/sqrt(h) angle random walk)
    accel_noise_density: float = 1.5e-3  # m/s^2/sqrt(Hz)
    gyro_bias_sigma: float = 5.0e-5  # rad/s (~10 deg/h turn-on bias)
    accel_bias_sigma: float = 0.02  # m/s^2
    gravity: float = 9.80665


@dataclass(frozen=True)
class ScenarioConfig:
    """What the world holds. Counts are per 100 m of road; ``None`` lets the seed choose.

    The ranges give the seed room: a training set of many seeds covers one- and two-lane roads,
    straight and winding ones, sparse and dense traffic, morning and evening light.
    """

    lanes_per_direction: int | None = None  # 1..3
    curviness: float | None = None  # 0 = straight; 1 = many tight bends
    traffic_density: float | None = None  # vehicles per 100 m of each lane
    pedestrian_density: float | None = None  # pedestrians per 100 m of sidewalk
    parked_density: float | None = None  # parked vehicles per 100 m of kerb
    work_zone: bool | None = None  # cones, barriers, a construction vehicle
    sun_elevation_deg: float | None = None
    ego_max_speed_mps: float | None = None


@dataclass(frozen=True)
class SimConfig:
    """Everything the simulator needs besides the rig, the seed and the duration.

    Threads: each LiDAR or camera kernel call runs on one thread by default; the parallelism is
    across calls instead: ``render_workers`` threads render camera images ahead while the main
    thread simulates the other sensors, and the bag writing (JPEG, PointCloud2, MCAP) has a thread
    of its own. Independent threads degrade gracefully on a machine busy with other work, where a
    numba parallel region stalls at its barrier whenever the OS parks one of its workers (measured
    on the shared 2-core dev machine: 102 s for a 20 s log with the kernels on two threads each,
    59 s on one). ``lidar.threads``/``camera.threads`` (``bevfuse sim --threads``) set more.
    """

    lidar: LidarSimConfig = field(default_factory=LidarSimConfig)
    camera: CameraSimConfig = field(default_factory=CameraSimConfig)
    radar: RadarSimConfig = field(default_factory=RadarSimConfig)
    gnss: GnssSimConfig = field(default_factory=GnssSimConfig)
    imu: ImuSimConfig = field(default_factory=ImuSimConfig)
    scenario: ScenarioConfig = field(default_factory=ScenarioConfig)
    odometry_rate_hz: float = 50.0  # exact ego poses on /ego_pose (nav_msgs/Odometry), 0 = none
    radar_msgtype: str = "sensor_msgs/msg/PointCloud2"  # or 'radar_msgs/msg/RadarScan'
    start_epoch_ns: int = 1_700_000_000_000_000_000  # fixed so that a seed gives a byte-identical bag
    render_workers: int = 2  # threads rendering camera images ahead (0: render in line)

    def __post_init__(self) -> None:
        if self.radar_msgtype not in ("sensor_msgs/msg/PointCloud2", "radar_msgs/msg/RadarScan"):
            raise ConfigError(f"SimConfig.radar_msgtype: expected sensor_msgs/msg/PointCloud2 or radar_msgs/msg/RadarScan, "
                              f"got {self.radar_msgtype!r}")
        if self.render_workers < 0:
            raise ConfigError(f"SimConfig.render_workers: expected >= 0, got {self.render_workers}")
        if self.odometry_rate_hz < 0:
            raise ConfigError(f"SimConfig.odometry_rate_hz: expected >= 0, got {self.odometry_rate_hz}")

    def with_image_size(self, width: int, height: int) -> SimConfig:
        return replace(self, camera=replace(self.camera, width=width, height=height))
