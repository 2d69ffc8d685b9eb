"""GNSS fixes and IMU samples from the ego trajectory.

GNSS: the antenna's true position (ego pose and lever arm) in the world ENU frame, plus a
Gauss-Markov error (first-order, correlated over ``correlation_s``: multipath and atmosphere drift,
they do not jump from fix to fix), converted to WGS84 around the configured origin. The covariance
says the noise level honestly: diagonal, known (``COVARIANCE_TYPE_DIAGONAL_KNOWN``).

IMU: specific force and angular rate in the IMU frame. On the flat world the ego rotates about +z
only; the IMU, mounted off the ego origin, also feels the centripetal and tangential accelerations
of its lever arm. A resting IMU reads +g on its up axis. Biases are drawn once per log; white
noise per sample from the noise densities and the rate.
"""

from __future__ import annotations

import numpy as np

from calib.geodesy import EnuOrigin
from calib.rig import SensorSpec
from perception.sim.config import GnssSimConfig, ImuSimConfig
from perception.sim.keys import stream_key
from perception.sim.world import World
from perception.types import GnssFix, ImuSample

__all__ = ["GnssSim", "ImuSim"]

COVARIANCE_TYPE_DIAGONAL_KNOWN = 2
STATUS_FIX, STATUS_GBAS_FIX = 0, 2
SERVICE_GPS = 1


class GnssSim:
    """The GNSS receiver of ``spec``; ``stamps_rel_ns`` fixes the error process's time steps."""

    def __init__(self, spec: SensorSpec, cfg: GnssSimConfig, seed: int, stamps_rel_ns: np.ndarray) -> None:
        self.spec = spec
        self.cfg = cfg
        self.origin = EnuOrigin(cfg.origin_lat_deg, cfg.origin_lon_deg, cfg.origin_alt_m)
        rng = np.random.default_rng(stream_key(seed, "gnss-error", spec.name))
        n = len(stamps_rel_ns)
        sigma = np.array([cfg.sigma_horizontal_m, cfg.sigma_horizontal_m, cfg.sigma_vertical_m])
        err = np.zeros((n, 3))
        if n:
            err[0] = sigma * rng.standard_normal(3)
        dt = np.diff(stamps_rel_ns) / 1e9
        for k in range(1, n):
            phi = np.exp(-dt[k - 1] / cfg.correlation_s)
            err[k] = phi * err[k - 1] + np.sqrt(1.0 - phi * phi) * sigma * rng.standard_normal(3)
        self.error = err
        self.index = {int(s): k for k, s in enumerate(stamps_rel_ns)}
        self.covariance = np.diag(sigma**2)

    def fix(self, world: World, t: float, stamp_rel_ns: int, stamp_ns: int) -> GnssFix:
        antenna = (world.ego.world_T_ego(t) @ self.spec.ego_T_sensor)[:3, 3]
        enu = antenna + self.error[self.index[int(stamp_rel_ns)]]
        lat, lon, alt = self.origin.to_geodetic(enu)
        return GnssFix(stamp_ns=stamp_ns, frame_id=self.spec.frame, latitude_deg=float(lat), longitude_deg=float(lon),
                       altitude_m=float(alt), position_covariance=self.covariance.copy(),
                       covariance_type=COVARIANCE_TYPE_DIAGONAL_KNOWN,
                       status=STATUS_GBAS_FIX if self.cfg.mode == "rtk" else STATUS_FIX, service=SERVICE_GPS)


class ImuSim:
    """The IMU of ``spec``: biases for the log drawn from ``seed``."""

    def __init__(self, spec: SensorSpec, cfg: ImuSimConfig, seed: int) -> None:
        self.spec = spec
        self.cfg = cfg
        rng = np.random.default_rng(stream_key(seed, "imu-bias", spec.name))
        self.gyro_bias = cfg.gyro_bias_sigma * rng.standard_normal(3)
        self.accel_bias = cfg.accel_bias_sigma * rng.standard_normal(3)
        rate = float(spec.rate_hz or 100.0)
        self.gyro_sigma = cfg.gyro_noise_density * np.sqrt(rate)
        self.accel_sigma = cfg.accel_noise_density * np.sqrt(rate)
        self.seed = seed
        self._block = -1
        self._noise = np.zeros((0, 6))

    def true_rates(self, world: World, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Noise-free (angular velocity, specific force) in the IMU frame at ``t``.

        Planar ego (yaw only): the lever arm r (world) adds the tangential acceleration
        yaw_acc x r and the centripetal -yaw_rate^2 r to the ego's acceleration.
        """
        ego = world.ego
        _, _, yaw = ego.planar(t)
        ax, ay = ego.acceleration(t)[:2]
        wz = float(ego.angular_velocity(t)[2])
        az = float(ego.angular_acceleration(t)[2])
        c, s = np.cos(yaw), np.sin(yaw)
        m = self.spec.ego_T_sensor[:3, 3]
        rx, ry = c * m[0] - s * m[1], s * m[0] + c * m[1]
        f_world = np.array([ax - az * ry - wz * wz * rx, ay + az * rx - wz * wz * ry, self.cfg.gravity])
        ego_R_world = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
        imu_R_ego = self.spec.ego_T_sensor[:3, :3].T
        return imu_R_ego @ np.array([0.0, 0.0, wz]), imu_R_ego @ (ego_R_world @ f_world)

    def sample(self, world: World, t: float, stamp_ns: int, index: int) -> ImuSample:
        # white noise of sample ``index``: drawn in blocks, the same whichever samples are asked for
        block, k = divmod(index, 1024)
        if self._block != block:
            rng = np.random.default_rng(stream_key(self.seed, "imu", self.spec.name, block))
            self._noise = rng.standard_normal((1024, 6))
            self._block = block
        w, f = self.true_rates(world, t)
        gyro = w + self.gyro_bias + self.gyro_sigma * self._noise[k, :3]
        acc = f + self.accel_bias + self.accel_sigma * self._noise[k, 3:]
        return ImuSample(stamp_ns=stamp_ns, frame_id=self.spec.frame, angular_velocity=gyro, linear_acceleration=acc,
                         angular_velocity_covariance=np.eye(3) * self.gyro_sigma**2,
                         linear_acceleration_covariance=np.eye(3) * self.accel_sigma**2)
