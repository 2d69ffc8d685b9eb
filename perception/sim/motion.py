"""Motion: speed profiles along the road and the ego vehicle's dense trajectory.

Everything moves on a common time grid (``dt`` = 1 ms over the simulated span with a margin), so
any stamp, a LiDAR point's firing time included, is answered by linear interpolation between two
grid samples. Profiles are smooth: acceleration follows its command through a first-order lag, so
the jerk is bounded and the IMU sees what a car does, not steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numba as nb
import numpy as np

from calib import se3
from perception.sim.road import Road

__all__ = ["EgoTrajectory", "SpeedProfile", "TimeGrid", "build_ego_trajectory", "random_profile"]


@dataclass(frozen=True)
class TimeGrid:
    """Sample times ``t0 + k * dt`` seconds (sim time; 0 = start of the log), ``n`` samples."""

    t0: float
    dt: float
    n: int

    @cached_property
    def t(self) -> np.ndarray:
        """(n,) sample times; computed once (every interpolation of the log reads it)."""
        return self.t0 + self.dt * np.arange(self.n)

    @classmethod
    def covering(cls, start_s: float, end_s: float, dt: float = 1e-3) -> TimeGrid:
        return cls(start_s, dt, int(np.ceil((end_s - start_s) / dt)) + 1)


@dataclass(frozen=True, eq=False)
class SpeedProfile:
    """Distance travelled ``dist``, speed ``v`` and acceleration ``a``, each (n,) on ``grid``."""

    grid: TimeGrid
    dist: np.ndarray
    v: np.ndarray
    a: np.ndarray

    @classmethod
    def constant(cls, grid: TimeGrid, speed: float) -> SpeedProfile:
        t = grid.t - grid.t0
        return cls(grid, speed * t, np.full(grid.n, speed), np.zeros(grid.n))


@nb.njit(cache=True)
def _integrate(targets: np.ndarray, change_every: np.ndarray, v0: float, dt: float, n: int, a_max: float, a_brake: float,
               gain: float, lag_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dist = np.empty(n)
    v = np.empty(n)
    a = np.empty(n)
    cur_v, cur_a, cur_d = v0, 0.0, 0.0
    j = 0
    alpha = dt / lag_s
    for k in range(n):
        while j + 1 < targets.shape[0] and k >= change_every[j + 1]:
            j += 1
        cmd = gain * (targets[j] - cur_v)
        cmd = min(max(cmd, -a_brake), a_max)
        cur_a += alpha * (cmd - cur_a)
        if cur_v <= 0.0 and cur_a < 0.0:  # standing: brakes hold the car, no backwards creep
            cur_a = 0.0
        dist[k], v[k], a[k] = cur_d, cur_v, cur_a
        cur_d += cur_v * dt + 0.5 * cur_a * dt * dt
        cur_v = max(cur_v + cur_a * dt, 0.0)
    return dist, v, a


def random_profile(rng: np.random.Generator, grid: TimeGrid, v_max: float, stop_probability: float,
                   a_max: float = 1.8, a_brake: float = 3.0) -> SpeedProfile:
    """Cruise, speed up, slow down and sometimes stop: a new target speed every 2-5 s.

    The first target is near ``v_max`` and the profile starts below it, so a log opens in motion
    and speeding up.
    """
    span = grid.n * grid.dt
    times = [0.0]
    targets = [rng.uniform(0.6, 1.0) * v_max]
    v0 = targets[0] * rng.uniform(0.5, 0.85)
    while times[-1] < span:
        times.append(times[-1] + rng.uniform(2.0, 5.0))
        if rng.random() < stop_probability:
            targets.append(0.0)
        else:
            targets.append(rng.uniform(0.35, 1.0) * v_max)
    idx = (np.asarray(times) / grid.dt).astype(np.int64)
    dist, v, a = _integrate(np.asarray(targets), idx, v0, grid.dt, grid.n, a_max, a_brake, 0.8, 0.35)
    return SpeedProfile(grid, dist, v, a)


@dataclass(frozen=True, eq=False)
class EgoTrajectory:
    """The ego vehicle on a flat world (z = 0, no roll or pitch), dense on ``grid``.

    x, y, yaw (unwrapped), vx, vy, ax, ay (world frame), yaw_rate, yaw_acc: each (n,) float64.
    """

    grid: TimeGrid
    x: np.ndarray
    y: np.ndarray
    yaw: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    ax: np.ndarray
    ay: np.ndarray
    yaw_rate: np.ndarray
    yaw_acc: np.ndarray

    def _interp(self, arr: np.ndarray, t: np.ndarray | float) -> np.ndarray:
        return np.interp(t, self.grid.t, arr)

    def planar(self, t: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x, y, yaw at sim times ``t``."""
        return self._interp(self.x, t), self._interp(self.y, t), self._interp(self.yaw, t)

    def world_T_ego(self, t: float) -> np.ndarray:
        """(4, 4) pose at sim time ``t``."""
        x, y, yaw = self.planar(t)
        return se3.from_rotation_translation(se3.rotation_z(float(yaw)), [float(x), float(y), 0.0])

    def velocity(self, t: float) -> np.ndarray:
        """(3,) world-frame linear velocity at ``t``."""
        return np.array([self._interp(self.vx, t), self._interp(self.vy, t), 0.0])

    def acceleration(self, t: float) -> np.ndarray:
        return np.array([self._interp(self.ax, t), self._interp(self.ay, t), 0.0])

    def angular_velocity(self, t: float) -> np.ndarray:
        """(3,) world-frame angular velocity (about +z only on a flat world)."""
        return np.array([0.0, 0.0, float(self._interp(self.yaw_rate, t))])

    def angular_acceleration(self, t: float) -> np.ndarray:
        return np.array([0.0, 0.0, float(self._interp(self.yaw_acc, t))])

    def point_velocity(self, t: float, offset_world: np.ndarray) -> np.ndarray:
        """(3,) world velocity of a point rigidly attached to the ego, ``offset_world`` from its origin."""
        return self.velocity(t) + np.cross(self.angular_velocity(t), offset_world)

    @property
    def packed(self) -> np.ndarray:
        """(n, 3) x y yaw, contiguous, for the numba kernels (with ``grid.t0`` and ``grid.dt``)."""
        return np.ascontiguousarray(np.stack([self.x, self.y, self.yaw], axis=1))


def build_ego_trajectory(road: Road, profile: SpeedProfile, start_s: float, lane_d: float, weave_amp_m: float,
                         weave_period_m: float, weave_phase: float) -> EgoTrajectory:
    """The ego follows its lane at offset ``lane_d`` with a gentle lateral weave (a human driver).

    The lateral offset is a function of arclength, ``d(s) = lane_d + A sin(2 pi s / P + phase)``, so
    the heading is the tangent of the driven curve and stays defined while the car stands still.
    """
    g = profile.grid
    s = start_s + profile.dist
    k = 2.0 * np.pi / weave_period_m
    d = lane_d + weave_amp_m * np.sin(k * s + weave_phase)
    dd_ds = weave_amp_m * k * np.cos(k * s + weave_phase)
    x, y, heading, kappa = road.pose(s, d)
    yaw = np.unwrap(heading + np.arctan2(dd_ds, 1.0 - kappa * d))
    # second-order central differences on the 1 ms grid: errors ~dt^2, far below any sensor noise
    vx, vy = np.gradient(x, g.dt), np.gradient(y, g.dt)
    ax, ay = np.gradient(vx, g.dt), np.gradient(vy, g.dt)
    yaw_rate = np.gradient(yaw, g.dt)
    yaw_acc = np.gradient(yaw_rate, g.dt)
    return EgoTrajectory(g, x, y, yaw, vx, vy, ax, ay, yaw_rate, yaw_acc)
