"""The world on its own: road geometry, object sizes and classes, the ego's motion."""

from __future__ import annotations

import numpy as np
import pytest

from perception.classes import NUSCENES_CLASSES
from perception.sim.config import ScenarioConfig
from perception.sim.road import ASPHALT, GRASS, SIDEWALK, WHITE_PAINT, YELLOW_PAINT, surface_at
from perception.sim.world import CLASS_SIZES, build_world


@pytest.fixture(scope="module")
def world():
    return build_world(7, 6.0, ScenarioConfig(work_zone=True, lanes_per_direction=2, curviness=0.8))


def test_road_coordinates_round_trip(world) -> None:
    road = world.road
    assert np.any(road.seg[:, 4] != 0) and np.any(road.seg[:, 4] == 0)  # straight and curved segments
    rng = np.random.default_rng(0)
    s = rng.uniform(50, road.length_m - 50, 2000)
    d = rng.uniform(-25, 25, 2000)
    x, y, heading, _ = road.pose(s, d)
    s2, d2 = road.to_sd(x, y)
    assert np.abs(s2 - s).max() < 0.01 and np.abs(d2 - d).max() < 0.01
    # the heading is the centre line's direction: a small step along s moves along it
    x1, y1, _, _ = road.pose(s + 0.01, np.zeros_like(s))
    x0, y0, _, _ = road.pose(s, np.zeros_like(s))
    np.testing.assert_allclose(np.arctan2(y1 - y0, x1 - x0), np.angle(np.exp(1j * heading)), atol=1e-3)


def test_cross_section(world) -> None:
    lay = world.road.layout
    a = lay.as_array()
    assert surface_at(a, 5.0, 0.0) == ASPHALT
    assert surface_at(a, 5.0, 0.1 + lay.line_width_m / 2) == YELLOW_PAINT  # double yellow centre line
    assert surface_at(a, 5.0, -lay.carriageway_half_m) == WHITE_PAINT  # edge line
    assert surface_at(a, 1.0, lay.lane_width_m) == WHITE_PAINT and surface_at(a, 7.0, lay.lane_width_m) == ASPHALT  # dashes
    assert surface_at(a, 5.0, lay.kerb_d_m + 1.0) == SIDEWALK
    assert surface_at(a, 5.0, -(lay.sidewalk_outer_d_m + 1.0)) == GRASS


def test_objects_have_nuscenes_classes_sizes_and_tracks(world) -> None:
    n = world.n_objects
    names = {NUSCENES_CLASSES[c] for c in world.label[:n]}
    assert {"car", "truck", "pedestrian", "bicycle", "traffic_cone", "barrier", "construction_vehicle"} <= names
    for i in range(n):
        cls = NUSCENES_CLASSES[world.label[i]]
        mean = np.array(CLASS_SIZES[cls][0])
        ratio = world.size[i] / mean
        assert np.all(ratio[:2] > 0.74) and np.all(ratio[:2] < 1.26), cls
    assert len(set(world.track_id)) == world.n_bodies
    assert np.all(world.label[n:] == -1)  # scenery has no class


def test_parts_stay_inside_their_boxes(world) -> None:
    from perception.sim.shapes import C_CX, C_CY, C_CZ, C_HX, C_HY, C_HZ, C_OBJECT

    p = world.parts
    b = p[:, C_OBJECT].astype(int)
    gt = b < world.n_objects
    half = world.size[b[gt]] / 2
    reach = np.abs(p[gt][:, [C_CX, C_CY, C_CZ]]) + p[gt][:, [C_HX, C_HY, C_HZ]]
    bad = np.nonzero(np.any(reach > half + 1e-9, axis=1))[0]
    assert len(bad) == 0, [NUSCENES_CLASSES[world.label[b[gt][i]]] for i in bad[:5]]


def test_ego_drives_with_accelerations_and_turns(world) -> None:
    ego = world.ego
    t = ego.grid.t
    inside = (t > 0) & (t < world.seconds)
    speed = np.hypot(ego.vx, ego.vy)[inside]
    assert speed.max() > 5.0
    assert np.abs(np.gradient(speed, ego.grid.dt)).max() > 0.3  # it speeds up or slows down
    moving = speed > 1.0
    direction = np.arctan2(ego.vy, ego.vx)[inside][moving]
    np.testing.assert_allclose(np.angle(np.exp(1j * (direction - ego.yaw[inside][moving]))), 0.0, atol=0.02)
    assert np.abs(ego.x[0]) < 300 and np.hypot(*ego.planar(0.0)[:2]) < 12  # starts near the world origin


def test_moving_objects_move_and_attributes_follow(world) -> None:
    a, b = world.bodies_at(1.0), world.bodies_at(2.0)
    n = world.n_objects
    moved = np.linalg.norm(b.center[:n, :2] - a.center[:n, :2], axis=1)
    speed = np.linalg.norm(a.velocity[:n], axis=1)
    attrs = world.attributes(a)
    parked = attrs == "vehicle.parked"
    assert parked.any() and np.all(moved[parked] == 0)
    moving = attrs == "vehicle.moving"
    assert moving.any() and np.all(moved[moving] > 0)
    # displacement over 1 s matches the speed within what the speed change allows
    assert np.median(np.abs(moved[moving] - speed[moving])) < 1.0
    assert set(attrs[[NUSCENES_CLASSES[c] == "pedestrian" for c in world.label[:n]]]) <= {"pedestrian.moving", "pedestrian.standing"}
