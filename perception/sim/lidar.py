"""The spinning LiDAR: one sweep -> a ``PointCloud`` in the LiDAR frame with per-point time offsets.

Points stay where the sensor measured them, in the LiDAR frame *at each point's firing time* (as
a real driver publishes them); the ``time_offset_ns`` column says when that was, relative to the
sweep stamp (the end of the sweep), so a consumer that deskews needs the ego pose per point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calib.rig import SensorSpec
from perception.sim.config import LidarSimConfig
from perception.sim.raycast import NO_RETURN, lidar_candidates, lidar_sweep
from perception.sim.road import Road
from perception.sim.shapes import C_OBJECT
from perception.sim.threads import kernel_threads
from perception.sim.world import World
from perception.types import PointCloud

__all__ = ["LidarSim", "LidarSweep"]

GROUP = 16  # columns per broad-phase group (~0.7 ms, ~5 degrees at 20 Hz)
NS = 1_000_000_000


@dataclass(frozen=True, eq=False)
class LidarSweep:
    """A sweep and its truth: cloud; body (N,) int64 index of the body each point hit (-1 ground)."""

    cloud: PointCloud
    body: np.ndarray
    fire_time_s: np.ndarray  # (N,) float64 sim seconds

    def counts(self, n_objects: int) -> np.ndarray:
        """(n_objects,) int64 points on each ground-truth object."""
        b = self.body[(self.body >= 0) & (self.body < n_objects)]
        return np.bincount(b, minlength=n_objects).astype(np.int64)


class LidarSim:
    """The LiDAR of ``spec`` (mount, frame, rate) with the behaviour of ``cfg``."""

    def __init__(self, spec: SensorSpec, cfg: LidarSimConfig, road: Road) -> None:
        self.spec = spec
        self.cfg = cfg
        self.road = road
        self.period_ns = int(round(NS / float(spec.rate_hz or 20.0)))
        el = np.deg2rad(np.linspace(cfg.elevation_min_deg, cfg.elevation_max_deg, cfg.beams))
        self.sin_el, self.cos_el = np.sin(el), np.cos(el)
        T = spec.ego_T_sensor
        self.ego_R_lidar = np.ascontiguousarray(T[:3, :3])
        self.mount_t = np.ascontiguousarray(T[:3, 3])
        self.mount_yaw = float(np.arctan2(T[1, 0], T[0, 0]))
        self.cut = np.deg2rad(cfg.cut_azimuth_deg)
        # integer per-point offsets from the stamp: column c, beam b fire at -T + c*T/C + b*interval
        col_ns = (np.arange(cfg.columns, dtype=np.int64) * self.period_ns) // cfg.columns
        beam_ns = np.arange(cfg.beams, dtype=np.int64) * cfg.laser_interval_ns
        self.offsets_ns = (col_ns[:, None] + beam_ns[None, :] - self.period_ns).reshape(-1)
        self.ring = np.tile(np.arange(cfg.beams, dtype=np.float32), cfg.columns)

    def azimuth_time_ns(self, azimuth_in_lidar: float) -> int:
        """When, from the start of a sweep, the head points at ``azimuth_in_lidar`` (rad, LiDAR frame).

        The head turns clockwise (seen from above) from ``cut``: the camera trigger model.
        """
        frac = ((self.cut - azimuth_in_lidar) % (2.0 * np.pi)) / (2.0 * np.pi)
        return int(round(frac * self.period_ns))

    def sweep(self, world: World, stamp_rel_ns: int, stamp_ns: int, key: int) -> LidarSweep:
        """Simulate the sweep that ends at ``stamp_rel_ns`` (ns from the log start)."""
        cfg = self.cfg
        t_stamp = stamp_rel_ns / NS
        period = self.period_ns / NS
        t_start = t_stamp - period
        parts = world.parts_at(t_stamp)
        ego = world.ego.packed
        g = world.grid
        ptr, idx, near = lidar_candidates(parts, ego, g.t0, g.dt, self.mount_t, self.mount_yaw, t_start, period, cfg.columns,
                                    GROUP, self.cut, t_stamp, cfg.max_range_m)
        n = cfg.columns * cfg.beams
        xyz = np.zeros((n, 3), np.float32)
        inten = np.zeros(n, np.float32)
        t_fire = np.empty(n, np.float64)
        hit = np.empty(n, np.int64)
        r = self.road
        with kernel_threads(n, cfg.threads, min_work=20_000):  # a ray costs ~10 pixels
            lidar_sweep(parts, ptr, idx, near, GROUP, ego, g.t0, g.dt, self.ego_R_lidar, self.mount_t, self.sin_el, self.cos_el,
                        cfg.columns, t_start, period, cfg.laser_interval_ns / NS, self.cut, t_stamp, cfg.max_range_m,
                        cfg.min_range_m, cfg.range_noise_m, cfg.dropout, cfg.far_dropout, np.uint64(key), r.seg, r.grid_seg,
                        r.grid_meta, r.layout.as_array(), xyz, inten, t_fire, hit)
        keep = hit != NO_RETURN
        points = np.concatenate([xyz[keep], inten[keep, None], self.ring[keep, None]], axis=1)
        body = np.where(hit[keep] >= 0, parts[np.maximum(hit[keep], 0), C_OBJECT].astype(np.int64), -1)
        cloud = PointCloud(stamp_ns=stamp_ns, frame_id=self.spec.frame, points=np.ascontiguousarray(points, np.float32),
                           fields=("x", "y", "z", "intensity", "ring"), time_offset_ns=self.offsets_ns[keep])
        return LidarSweep(cloud, body, t_fire[keep])
