"""Automotive radar: a few returns per object, by radar cross-section, with Doppler velocities.

Per scan and object in the field of view: the signal-to-noise ratio of a target of cross-section
``rcs`` at range ``R`` falls as ``40 log10 R`` (the radar equation); it sets the detection
probability (misses) and how many returns the object gives. Returns lie on the object's faces that
face the radar, are dropped when something else is in the line of sight, and carry

- radial velocity: the relative velocity of the reflecting point, target minus sensor (the sensor's
  own velocity includes the ego's rotation), projected on the line of sight; positive = receding;
- velocity (vx, vy): that radial velocity along the measured direction, in the sensor frame, as the
  ARS408 reports it; velocity_comp: the same after adding back the sensor's own motion (so a parked
  car reads 0), as nuScenes' vx_comp/vy_comp.

Positions are 2-D (z = 0 in the sensor frame, as nuScenes' radar points) with range and azimuth
noise. Clutter: a Poisson number of static returns a scan from the ground and roadside.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calib.rig import SensorSpec
from perception.sim.config import RadarSimConfig
from perception.sim.keys import stream_key
from perception.sim.raycast import cast_rays
from perception.sim.shapes import C_OBJECT
from perception.sim.world import World
from perception.types import RadarScan

__all__ = ["CLASS_RCS", "RadarReturns", "RadarSim"]

NS = 1_000_000_000

# typical radar cross-sections (dBsm) of the classes at automotive frequencies
CLASS_RCS = {
    "car": 10.0, "truck": 20.0, "construction_vehicle": 20.0, "bus": 22.0, "trailer": 20.0, "barrier": 5.0,
    "motorcycle": 4.0, "bicycle": 0.0, "pedestrian": -5.0, "traffic_cone": -8.0,
}


@dataclass(frozen=True, eq=False)
class RadarReturns:
    """A scan and its truth: body (N,) int64 object index (-1 clutter); point_world (N, 3) the true
    reflecting point; sensor_velocity (3,) world velocity of the sensor; target_velocity (N, 3)."""

    scan: RadarScan
    body: np.ndarray
    point_world: np.ndarray
    sensor_velocity: np.ndarray
    target_velocity: np.ndarray

    def counts(self, n_objects: int) -> np.ndarray:
        b = self.body[self.body >= 0]
        return np.bincount(b, minlength=n_objects).astype(np.int64)


class RadarSim:
    """One radar of the rig: front long-range when its axis is within 30 degrees of ego +x."""

    def __init__(self, spec: SensorSpec, cfg: RadarSimConfig, world: World) -> None:
        self.spec = spec
        self.cfg = cfg
        T = spec.ego_T_sensor
        yaw = float(np.arctan2(T[1, 0], T[0, 0]))
        front = abs(yaw) < np.deg2rad(30.0)
        self.half_fov = np.deg2rad(cfg.front_fov_deg if front else cfg.corner_fov_deg) / 2
        self.max_range = cfg.front_max_range_m if front else cfg.corner_max_range_m
        rng = np.random.default_rng(stream_key(world.seed, "radar-setup", spec.name))
        # a fixed RCS offset per object (shape, material, aspect), the same in every scan
        self.rcs = np.array([CLASS_RCS[world.class_names[c]] for c in world.label[:world.n_objects]]) + \
            rng.normal(0.0, 2.0, world.n_objects)
        self.period_ns = NS / float(spec.rate_hz or 13.0)
        self.phase_ns = int(rng.integers(0, int(self.period_ns)))

    def stamps_rel_ns(self, duration_ns: int) -> np.ndarray:
        n = int(np.ceil(duration_ns / self.period_ns)) + 1
        st = self.phase_ns + np.round(np.arange(n) * self.period_ns).astype(np.int64)
        return st[st < duration_ns]

    def scan(self, world: World, t: float, stamp_ns: int, key: int) -> RadarReturns:
        """The scan at sim time ``t`` seconds."""
        cfg = self.cfg
        rng = np.random.default_rng(key)
        world_T_radar = world.ego.world_T_ego(t) @ self.spec.ego_T_sensor
        R, o = world_T_radar[:3, :3], world_T_radar[:3, 3]
        v_s = world.ego.point_velocity(t, o - np.array([*world.ego.planar(t)[:2], 0.0]))
        states = world.bodies_at(t)
        n_obj = world.n_objects
        rel = (states.center[:n_obj] - o) @ R  # object centres in the sensor frame
        rng_xy = np.hypot(rel[:, 0], rel[:, 1])
        az = np.arctan2(rel[:, 1], rel[:, 0])
        seen = np.nonzero((rng_xy < self.max_range) & (np.abs(az) < self.half_fov) & (rng_xy > 0.5))[0]
        # radar equation: SNR falls as 40 log10(R); it sets the detection probability and the return count
        snr = cfg.reference_snr_db + self.rcs[seen] - 40.0 * np.log10(np.maximum(rng_xy[seen], 1.0))
        p_detect = 1.0 / (1.0 + np.exp(-(snr - cfg.detection_snr_db) / 2.0))
        detected = rng.random(len(seen)) < p_detect
        seen, snr = seen[detected], snr[detected]
        n = 1 + rng.binomial(cfg.max_returns_per_object - 1, np.clip((snr - cfg.detection_snr_db) / 30.0, 0, 1))
        B = np.repeat(seen, n)
        P = _points_on_facing_sides(states.center[B], world.size[B], states.yaw[B], o, rng)
        r_vec = P - states.center[B]
        w = states.yaw_rate[B]
        V = np.stack([states.velocity[B, 0] - w * r_vec[:, 1], states.velocity[B, 1] + w * r_vec[:, 0], np.zeros(len(B))], 1)
        if len(P):
            # line of sight: keep the returns whose first hit is their own object
            d = P - o
            dist = np.linalg.norm(d, axis=1)
            parts = world.parts_at(t, states)
            _, hit = cast_rays(parts, np.repeat(o[None], len(P), 0), d / dist[:, None], dist + 0.3)
            hit_body = np.where(hit >= 0, parts[np.maximum(hit, 0), C_OBJECT].astype(np.int64), -1)
            ok = hit_body == B
            P, B, V = P[ok], B[ok], V[ok]
        # clutter: static returns from the roadside and the ground
        k = rng.poisson(cfg.clutter_per_scan)
        caz = rng.uniform(-self.half_fov, self.half_fov, k)
        crange = rng.uniform(3.0, 0.6 * self.max_range, k)
        local = np.stack([crange * np.cos(caz), crange * np.sin(caz), np.full(k, -o[2] + 0.2)], axis=1)
        P = np.concatenate([P, local @ R.T + o])
        B = np.concatenate([B, np.full(k, -1, np.int64)])
        V = np.concatenate([V, np.zeros((k, 3))])
        return self._measure(P, B, V, v_s, R, o, stamp_ns, rng)

    def _measure(self, P: np.ndarray, B: np.ndarray, V: np.ndarray, v_s: np.ndarray, R: np.ndarray, o: np.ndarray,
                 stamp_ns: int, rng: np.random.Generator) -> RadarReturns:
        cfg = self.cfg
        n = len(P)
        d = P - o
        los = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
        vr = np.einsum("ij,ij->i", V - v_s, los) + rng.normal(0.0, cfg.velocity_noise_mps, n)
        v_sensor_los = los @ v_s
        local = d @ R
        rr = np.linalg.norm(local[:, :2], axis=1) + rng.normal(0.0, cfg.range_noise_m, n)
        az = np.arctan2(local[:, 1], local[:, 0]) + np.deg2rad(cfg.azimuth_noise_deg) * rng.standard_normal(n)
        u = np.stack([np.cos(az), np.sin(az)], axis=1)
        rcs = np.where(B >= 0, self.rcs[np.maximum(B, 0)] if len(self.rcs) else 0.0, rng.uniform(-10.0, 5.0, n))  # clutter: weak
        rcs = rcs + rng.normal(0.0, 1.5, n)
        moving = np.abs(vr + v_sensor_los) > 0.5
        scan = RadarScan(
            stamp_ns=stamp_ns, frame_id=self.spec.frame,
            points=np.stack([rr * u[:, 0], rr * u[:, 1], np.zeros(n)], axis=1).astype(np.float32),
            rcs=rcs.astype(np.float32), radial_velocity=vr.astype(np.float32),
            velocity=(vr[:, None] * u).astype(np.float32),
            velocity_comp=((vr + v_sensor_los)[:, None] * u).astype(np.float32),
            extra={
                "dyn_prop": np.where(moving, 0, 1).astype(np.int8),  # ARS408: 0 moving, 1 stationary
                "id": np.arange(n, dtype=np.int32),
                "ambig_state": np.full(n, 3, np.int8),  # 3 = unambiguous
                "invalid_state": np.zeros(n, np.int8),
                "pdh0": np.ones(n, np.int8),  # false-alarm probability < 25 %
            },
        )
        return RadarReturns(scan, B, P, v_s, V)


def _points_on_facing_sides(center: np.ndarray, size: np.ndarray, yaw: np.ndarray, sensor: np.ndarray,
                            rng: np.random.Generator) -> np.ndarray:
    """One point per row (center (R, 3), size (R, 3), yaw (R,)) on a vertical face of the box that
    faces ``sensor``, the face drawn with weight = its width seen from the sensor."""
    R = len(center)
    c, s = np.cos(yaw), np.sin(yaw)
    ax, ay = np.stack([c, s], 1), np.stack([-s, c], 1)
    # the four side faces: outward normal, distance of the face from the centre, width, direction along it
    normals = np.stack([ax, -ax, ay, -ay], 1)  # (R, 4, 2)
    half = np.stack([size[:, 0], size[:, 0], size[:, 1], size[:, 1]], 1) / 2
    width = np.stack([size[:, 1], size[:, 1], size[:, 0], size[:, 0]], 1)
    along = np.stack([ay, ay, ax, ax], 1)
    to_sensor = sensor[None, :2] - center[:, :2]
    to_sensor /= np.maximum(np.linalg.norm(to_sensor, axis=1, keepdims=True), 1e-9)
    weights = np.maximum(np.einsum("rfk,rk->rf", normals, to_sensor), 0.0) * width + 1e-12
    cum = np.cumsum(weights, axis=1)
    face = np.minimum((cum < rng.random(R)[:, None] * cum[:, -1:]).sum(axis=1), 3)
    rows = np.arange(R)
    u = rng.uniform(-0.45, 0.45, R) * width[rows, face]
    xy = center[:, :2] + normals[rows, face] * (half[rows, face] - 0.02)[:, None] + along[rows, face] * u[:, None]
    return np.concatenate([xy, (rng.uniform(0.25, 0.75, R) * size[:, 2])[:, None]], axis=1)
