"""The simulated world: a road, traffic, pedestrians, street furniture, buildings and the ego vehicle.

``build_world(seed, seconds, scenario)`` draws everything from one seed. Bodies (objects with
ground truth first, then scenery) move along the road at an offset ``d`` from the centre line:
``s(t) = s0 + direction * profile_distance(t)``. Vehicles of one lane share that lane's speed
profile, so they keep their gaps and never collide; the ego's lane follows the ego's profile.

Ground-truth classes are the ten nuScenes detection classes (``perception.classes``) with their
typical sizes (the nuScenes training-set means) and a spread; attributes are nuScenes' names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from perception.classes import NUSCENES_CLASSES
from perception.sim.config import ScenarioConfig
from perception.sim.motion import EgoTrajectory, SpeedProfile, TimeGrid, build_ego_trajectory, random_profile
from perception.sim.road import Road, RoadLayout, build_road
from perception.sim.shapes import (
    C_COS,
    C_CX,
    C_CY,
    C_CZ,
    C_OBJECT,
    C_OMEGA,
    C_SIN,
    C_VX,
    C_VY,
    C_YAW,
    N_COLS,
    class_parts,
    scenery_parts,
)

__all__ = ["BodyStates", "Lighting", "Scenario", "World", "build_world", "CLASS_SIZES"]

# mean (length, width, height) in metres and relative spread, nuScenes train-set statistics
CLASS_SIZES: dict[str, tuple[tuple[float, float, float], float]] = {
    "car": ((4.63, 1.96, 1.74), 0.07),
    "truck": ((6.94, 2.51, 2.84), 0.15),
    "construction_vehicle": ((6.37, 2.73, 3.19), 0.12),
    "bus": ((11.19, 2.94, 3.47), 0.08),
    "trailer": ((12.29, 2.90, 3.87), 0.1),
    "barrier": ((0.48, 2.49, 0.98), 0.08),
    "motorcycle": ((2.11, 0.77, 1.47), 0.07),
    "bicycle": ((1.70, 0.61, 1.28), 0.06),
    "pedestrian": ((0.73, 0.67, 1.77), 0.06),
    "traffic_cone": ((0.41, 0.41, 1.07), 0.12),
}
# a cycle's box holds its rider: heights with and without one
CYCLE_HEIGHT = {("bicycle", True): 1.72, ("bicycle", False): 1.08, ("motorcycle", True): 1.58, ("motorcycle", False): 1.18}

# body kinds: how a body moves and which attribute it has
LANE, PARKED, WALKER, STANDING, PROP, SCENERY = range(6)
VEHICLES = ("car", "truck", "construction_vehicle", "bus", "trailer")


@dataclass(frozen=True)
class Lighting:
    """sun: (3,) unit vector towards the sun (world); sky colours RGB 0..1; ambient level."""

    sun: np.ndarray
    zenith: np.ndarray
    horizon: np.ndarray
    ambient: float
    sun_strength: float

    def as_array(self) -> np.ndarray:
        """(11,) float64 for the renderer: sun xyz, zenith rgb, horizon rgb, ambient, strength."""
        return np.concatenate([self.sun, self.zenith, self.horizon, [self.ambient, self.sun_strength]])


@dataclass(frozen=True)
class Scenario:
    """The scenario knobs as drawn for one seed (``ScenarioConfig`` with every ``None`` resolved)."""

    lanes_per_direction: int
    curviness: float
    traffic_density: float
    pedestrian_density: float
    parked_density: float
    work_zone: bool
    sun_elevation_deg: float
    ego_max_speed_mps: float

    @classmethod
    def resolve(cls, cfg: ScenarioConfig, rng: np.random.Generator) -> Scenario:
        draws = {  # drawn whether used or not, so a fixed knob does not shift the other draws
            "lanes_per_direction": int(rng.choice([1, 2, 2, 3])),
            "curviness": float(rng.uniform(0.2, 1.0)),
            "traffic_density": float(rng.uniform(1.5, 5.0)),
            "pedestrian_density": float(rng.uniform(3.0, 14.0)),
            "parked_density": float(rng.uniform(2.0, 9.0)),
            "work_zone": bool(rng.random() < 0.5),
            "sun_elevation_deg": float(rng.uniform(12.0, 65.0)),
            "ego_max_speed_mps": float(rng.uniform(8.0, 15.0)),
        }
        for key in draws:
            value = getattr(cfg, key)
            if value is not None:
                draws[key] = value
        return cls(**draws)


@dataclass(frozen=True, eq=False)
class BodyStates:
    """Bodies at one time: center (B, 3), yaw (B,), velocity (B, 2) world vx vy, yaw_rate (B,)."""

    t: float
    center: np.ndarray
    yaw: np.ndarray
    velocity: np.ndarray
    yaw_rate: np.ndarray


@dataclass(eq=False)
class World:
    """Everything but the sensors. Bodies ``[0, n_objects)`` have ground truth, the rest are scenery.

    Per body (B,): kind, label (class index, -1 for scenery), size (B, 3), profile (-1 static),
    direction (+1/-1/0), s0, d, yaw_offset, rider, track_id. ``parts``: (P, N_COLS) in body frames.
    ``profile_dist``/``profile_v``: (n_profiles, grid.n).
    """

    seed: int
    seconds: float
    scenario: Scenario
    road: Road
    grid: TimeGrid
    ego: EgoTrajectory
    lighting: Lighting
    kind: np.ndarray
    label: np.ndarray
    size: np.ndarray
    profile: np.ndarray
    direction: np.ndarray
    s0: np.ndarray
    d: np.ndarray
    yaw_offset: np.ndarray
    rider: np.ndarray
    track_id: np.ndarray
    parts: np.ndarray
    profile_dist: np.ndarray
    profile_v: np.ndarray
    n_objects: int
    class_names: tuple[str, ...] = field(default=NUSCENES_CLASSES)
    _static: tuple[np.ndarray, ...] | None = field(default=None, init=False, repr=False)

    @property
    def n_bodies(self) -> int:
        return int(self.kind.shape[0])

    def _profiles_at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        g = self.grid
        x = (t - g.t0) / g.dt
        i = int(np.clip(np.floor(x), 0, g.n - 2))
        f = x - i
        dist = self.profile_dist[:, i] * (1 - f) + self.profile_dist[:, i + 1] * f
        v = self.profile_v[:, i] * (1 - f) + self.profile_v[:, i + 1] * f
        return dist, v

    def bodies_at(self, t: float) -> BodyStates:
        """Every body's pose and motion at sim time ``t`` seconds."""
        if self._static is None:
            # bodies without a profile never move: their poses once, then only the movers per call
            still = self.profile < 0
            x, y, heading, _ = self.road.pose(self.s0[still], self.d[still])
            self._static = (still, x, y, heading)
        still, sx, sy, sheading = self._static
        moving = ~still
        dist, v = self._profiles_at(t)
        pidx = self.profile[moving]
        s = self.s0[moving] + self.direction[moving] * dist[pidx]
        s_dot = self.direction[moving] * v[pidx]
        d = self.d[moving]
        x, y, heading, kappa = self.road.pose(s, d)
        speed = s_dot * (1.0 - kappa * d)  # along the offset curve: shorter inside a bend
        n = self.n_bodies
        center = np.empty((n, 3))
        center[:, 2] = self.size[:, 2] / 2.0
        center[still, 0], center[still, 1] = sx, sy
        center[moving, 0], center[moving, 1] = x, y
        yaw = np.empty(n)
        yaw[still], yaw[moving] = sheading, heading
        vel = np.zeros((n, 2))
        vel[moving, 0], vel[moving, 1] = speed * np.cos(heading), speed * np.sin(heading)
        yaw_rate = np.zeros(n)
        yaw_rate[moving] = s_dot * kappa
        return BodyStates(t, center, yaw + self.yaw_offset, vel, yaw_rate)

    def parts_at(self, t: float, states: BodyStates | None = None) -> np.ndarray:
        """(P, N_COLS) part table in the world at ``t``: centres, yaw, velocity of each part."""
        st = self.bodies_at(t) if states is None else states
        out = self.parts.copy()
        b = out[:, C_OBJECT].astype(np.int64)
        yaw = st.yaw[b]
        c, s = np.cos(yaw), np.sin(yaw)
        lx, ly = self.parts[:, C_CX], self.parts[:, C_CY]
        rx, ry = c * lx - s * ly, s * lx + c * ly
        out[:, C_CX] = st.center[b, 0] + rx
        out[:, C_CY] = st.center[b, 1] + ry
        out[:, C_CZ] = st.center[b, 2] + self.parts[:, C_CZ]
        out[:, C_YAW] = yaw
        out[:, C_COS] = c
        out[:, C_SIN] = s
        w = st.yaw_rate[b]
        out[:, C_VX] = st.velocity[b, 0] - w * ry  # v + omega x r
        out[:, C_VY] = st.velocity[b, 1] + w * rx
        out[:, C_OMEGA] = w
        return out

    def attributes(self, states: BodyStates) -> np.ndarray:
        """(n_objects,) object array of nuScenes attribute names at the states' time."""
        speed = np.hypot(states.velocity[:, 0], states.velocity[:, 1])
        out = np.empty(self.n_objects, dtype=object)
        for i in range(self.n_objects):
            cls = self.class_names[self.label[i]]
            if cls in VEHICLES:
                out[i] = "vehicle.parked" if self.kind[i] == PARKED else ("vehicle.moving" if speed[i] > 0.3 else "vehicle.stopped")
            elif cls in ("bicycle", "motorcycle"):
                out[i] = "cycle.with_rider" if self.rider[i] else "cycle.without_rider"
            elif cls == "pedestrian":
                out[i] = "pedestrian.moving" if speed[i] > 0.2 else "pedestrian.standing"
            else:
                out[i] = ""
        return out


class _Builder:
    """Collects bodies and their parts while the world is laid out."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.rows: list[dict] = []
        self.parts: list[np.ndarray] = []

    def add(self, kind: int, label: int, size: np.ndarray, profile: int, direction: int, s0: float, d: float,
            yaw_offset: float, rider: bool, parts: list) -> None:
        index = len(self.rows)
        self.rows.append(dict(kind=kind, label=label, size=size, profile=profile, direction=direction, s0=s0, d=d,
                              yaw_offset=yaw_offset, rider=rider))
        self.parts.extend(p.row(index) for p in parts)

    def obj(self, cls: str, kind: int, s0: float, d: float, yaw_offset: float, profile: int = -1, direction: int = 0,
            rider: bool = False, size: np.ndarray | None = None) -> None:
        if size is None:
            size = sample_size(self.rng, cls, rider)
        self.add(kind, NUSCENES_CLASSES.index(cls), size, profile, direction, s0, d, yaw_offset, rider,
                 class_parts(cls, size, self.rng, rider))

    def scenery(self, what: str, size: np.ndarray, s0: float, d: float, yaw_offset: float = 0.0) -> None:
        self.add(SCENERY, -1, size, -1, 0, s0, d, yaw_offset, False, scenery_parts(what, size, self.rng))


def sample_size(rng: np.random.Generator, cls: str, rider: bool = False) -> np.ndarray:
    """(3,) l w h drawn around the class mean, clipped to +-25 %."""
    mean, spread = CLASS_SIZES[cls]
    m = np.array(mean)
    if cls in ("bicycle", "motorcycle"):
        m[2] = CYCLE_HEIGHT[(cls, rider)]
    return m * np.clip(1.0 + spread * rng.standard_normal(3), 0.75, 1.25)


def _lighting(rng: np.random.Generator, elevation_deg: float) -> Lighting:
    el = np.deg2rad(elevation_deg)
    az = rng.uniform(-np.pi, np.pi)
    sun = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    warm = np.clip((30.0 - elevation_deg) / 20.0, 0.0, 1.0)  # low sun: warmer, dimmer sky
    zenith = np.array([0.28, 0.45, 0.78]) * (1.0 - 0.25 * warm)
    horizon = np.array([0.78, 0.84, 0.90]) * (1 - warm) + np.array([0.92, 0.78, 0.62]) * warm
    return Lighting(sun, zenith, horizon, 0.45 - 0.1 * warm, 0.75 - 0.2 * warm)


def _fill(rng: np.random.Generator, lo: float, hi: float, mean_gap: float, min_gap: float) -> list[float]:
    """Positions along [lo, hi] with exponential gaps of mean ``mean_gap`` (at least ``min_gap``)."""
    out = []
    s = lo + rng.uniform(0, mean_gap)
    while s < hi:
        out.append(s)
        s += min_gap + rng.exponential(max(mean_gap - min_gap, 0.1))
    return out


def build_world(seed: int, seconds: float, scenario: ScenarioConfig | None = None, margin_s: float = 1.0) -> World:
    """Draw a world for ``seconds`` of driving from ``seed``; the ego starts at the world origin."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    sc = Scenario.resolve(scenario or ScenarioConfig(), rng)
    layout = RoadLayout(lanes_per_direction=sc.lanes_per_direction)
    grid = TimeGrid.covering(-margin_s, seconds + margin_s)
    span = grid.n * grid.dt
    v_top = max(sc.ego_max_speed_mps, 14.0)
    reach = span * v_top  # how far anything can travel in the log
    view = 220.0
    start_s = view + reach + 50.0
    road = build_road(rng, start_s + sc.ego_max_speed_mps * span + view + reach + 50.0, start_s, layout, sc.curviness)

    # ego
    ego_profile = random_profile(rng, grid, sc.ego_max_speed_mps, stop_probability=0.15)
    ego_lane = int(rng.integers(sc.lanes_per_direction))
    ego_d = layout.lane_center_d(ego_lane, +1)
    # the profile runs from grid.t0 < 0: shift so that the ego is at start_s at t = 0
    dist0 = float(np.interp(0.0, grid.t, ego_profile.dist))
    ego = build_ego_trajectory(road, ego_profile, start_s - dist0, ego_d, float(rng.uniform(0.0, 0.25)),
                               float(rng.uniform(80.0, 200.0)), float(rng.uniform(0, 2 * np.pi)))
    ego_end = start_s + float(ego_profile.dist[-1] - dist0)
    profiles: list[SpeedProfile] = [ego_profile]
    b = _Builder(rng)

    # traffic: every lane its own flow, the ego's lane the ego's
    for direction in (+1, -1):
        for lane in range(sc.lanes_per_direction):
            d = layout.lane_center_d(lane, direction)
            rightmost = lane == sc.lanes_per_direction - 1
            if direction == 1 and lane == ego_lane:
                prof, v_max = 0, sc.ego_max_speed_mps  # ego-lane vehicles keep their gap to the ego
            else:
                v_max = float(rng.uniform(6.0, 9.0) if rightmost and rng.random() < 0.4 else rng.uniform(8.0, 15.0))
                profiles.append(random_profile(rng, grid, v_max, stop_probability=0.2))
                prof = len(profiles) - 1
            lo = start_s - view - (reach if direction == 1 else 0.0)
            hi = ego_end + view + (reach if direction == -1 else 0.0)
            mean_gap = 100.0 / sc.traffic_density
            for s in _fill(rng, lo, hi, mean_gap, 14.0):
                if prof == 0 and abs(s - start_s) < 16.0:
                    continue  # room for the ego
                u = rng.random()
                if u < 0.05:
                    cls = "motorcycle"
                elif u < 0.10 and v_max < 9.5 and rightmost:
                    cls = "bicycle"
                elif u < 0.16:
                    cls = "truck"
                elif u < 0.19:
                    cls = "bus"
                else:
                    cls = "car"
                d_obj = d - direction * 0.8 if cls == "bicycle" else d
                # s is where the body is at t = 0; s0 where it is when its profile's distance is 0 (t = grid.t0)
                s0 = s - direction * float(np.interp(0.0, grid.t, profiles[prof].dist))
                b.obj(cls, LANE, s0, d_obj, 0.0 if direction == 1 else np.pi, prof, direction,
                      rider=cls in ("bicycle", "motorcycle"))

    # the kerbside: parked vehicles, a work zone, pedestrians, parked bicycles
    lo_static, hi_static = start_s - view, ego_end + view
    zone_side = int(rng.choice([-1, 1]))
    zone = (start_s + rng.uniform(15.0, 60.0), 0.0)
    zone = (zone[0], zone[0] + rng.uniform(35.0, 70.0)) if sc.work_zone else (0.0, 0.0)
    for side in (+1, -1):
        d_park = side * (layout.carriageway_half_m + layout.parking_width_m / 2)
        yaw_park = 0.0 if side == -1 else np.pi  # parked with the traffic of that side
        s = lo_static
        while s < hi_static:
            if side == zone_side and zone[0] - 8 < s < zone[1] + 8:
                s = zone[1] + 8
                continue
            gap = rng.exponential(100.0 / sc.parked_density)
            cls = "truck" if rng.random() < 0.08 else "car"
            size = sample_size(rng, cls)
            if cls == "truck":
                size[1] = min(size[1], 2.4)
            s += gap + size[0] / 2
            b.obj(cls, PARKED, s, d_park + side * rng.uniform(-0.15, 0.15), yaw_park + rng.normal(0, 0.03), size=size)
            s += size[0] / 2 + 1.0
        kerb = layout.kerb_d_m + layout.kerb_width_m
        walk_speed = float(rng.uniform(0.9, 1.5))
        profiles.append(SpeedProfile.constant(grid, walk_speed))
        walk_prof = len(profiles) - 1
        for slot, direction in ((1.75, +1), (2.4, -1)):
            walked0 = float(np.interp(0.0, grid.t, profiles[walk_prof].dist))
            for s in _fill(rng, lo_static - reach * walk_speed / v_top, hi_static, 200.0 / sc.pedestrian_density, 2.0):
                b.obj("pedestrian", WALKER, s - direction * walked0, side * (kerb + slot), 0.0 if direction == 1 else np.pi,
                      walk_prof, direction)
        for s in _fill(rng, lo_static, hi_static, 400.0 / sc.pedestrian_density, 1.5):
            b.obj("pedestrian", STANDING, s, side * (kerb + 1.1 + rng.uniform(-0.2, 0.2)), rng.uniform(-np.pi, np.pi))
        for s in _fill(rng, lo_static, hi_static, 120.0, 3.0):
            b.obj("bicycle", PARKED, s, side * (layout.sidewalk_outer_d_m - 0.35), rng.normal(0, 0.1) + (side < 0) * np.pi)

    if sc.work_zone:
        side = zone_side
        edge = layout.carriageway_half_m
        yaw_side = 0.0 if side == -1 else np.pi
        for s in np.arange(zone[0], zone[1], 4.0):
            b.obj("traffic_cone", PROP, float(s), side * (edge + 0.3), rng.uniform(-np.pi, np.pi))
        mid = (zone[0] + zone[1]) / 2
        for s in np.arange(zone[0] + 2.0, mid - 1.5, 2.7):
            b.obj("barrier", PROP, float(s), side * (layout.kerb_d_m - 0.3), yaw_side + np.pi / 2 + rng.normal(0, 0.03))
        cv = sample_size(rng, "construction_vehicle")
        cv[1] = min(cv[1], 2.7)
        b.obj("construction_vehicle", PARKED, mid + 2.0 + cv[0] / 2, side * (edge + 0.65 + cv[1] / 2), yaw_side, size=cv)
        if rng.random() < 0.5 and mid + 4 + cv[0] + 13 < zone[1]:
            tr = sample_size(rng, "trailer")
            tr[1] = min(tr[1], 2.6)
            b.obj("trailer", PARKED, mid + 4.0 + cv[0] + tr[0] / 2, side * (edge + 0.65 + tr[1] / 2), yaw_side, size=tr)
        for s in (zone[0] - 2.0, zone[1] + 2.0):
            b.obj("barrier", PROP, float(s), side * (edge + 1.4), yaw_side + rng.normal(0, 0.05))

    n_objects = len(b.rows)
    # scenery: street lights and trees at the kerb, buildings behind the sidewalk
    for side in (+1, -1):
        for s in np.arange(lo_static + rng.uniform(0, 35), hi_static, 35.0):
            arm = rng.uniform(1.2, 2.0)
            b.scenery("pole", np.array([2 * arm, 0.2, rng.uniform(6.0, 8.0)]), float(s), side * (layout.kerb_d_m + 0.4),
                      np.pi / 2 * side)
        for s in _fill(rng, lo_static, hi_static, 18.0, 8.0):
            if side == zone_side and zone[0] - 3 < s < zone[1] + 3:
                continue
            crown = rng.uniform(2.5, 4.5)
            b.scenery("tree", np.array([crown, crown, rng.uniform(5.0, 9.0)]), s, side * (layout.kerb_d_m + 0.7))
        s = lo_static - 40.0
        while s < hi_static + 40.0:
            front = rng.uniform(12.0, 34.0)
            depth = rng.uniform(10.0, 22.0)
            setback = rng.uniform(1.5, 7.0)
            height = rng.uniform(6.0, 30.0)
            d = side * (layout.sidewalk_outer_d_m + setback + depth / 2)
            b.scenery("building", np.array([front, depth, height]), s + front / 2, d)
            s += front + (rng.uniform(0.0, 4.0) if rng.random() < 0.7 else rng.uniform(8.0, 20.0))

    rows = b.rows
    prof_dist = np.stack([p.dist for p in profiles])
    prof_v = np.stack([p.v for p in profiles])
    return World(
        seed=seed, seconds=seconds, scenario=sc, road=road, grid=grid, ego=ego,
        lighting=_lighting(rng, sc.sun_elevation_deg),
        kind=np.array([r["kind"] for r in rows], np.int64),
        label=np.array([r["label"] for r in rows], np.int64),
        size=np.array([r["size"] for r in rows], np.float64).reshape(-1, 3),
        profile=np.array([r["profile"] for r in rows], np.int64),
        direction=np.array([r["direction"] for r in rows], np.float64),
        s0=np.array([r["s0"] for r in rows], np.float64),
        d=np.array([r["d"] for r in rows], np.float64),
        yaw_offset=np.array([r["yaw_offset"] for r in rows], np.float64),
        rider=np.array([r["rider"] for r in rows], bool),
        track_id=np.array([f"track_{i:05d}" for i in range(len(rows))], dtype=object),
        parts=np.ascontiguousarray(np.stack(b.parts)) if b.parts else np.zeros((0, N_COLS)),
        profile_dist=prof_dist, profile_v=prof_v, n_objects=n_objects,
    )
