"""What objects look like: each one is a few oriented boxes ("parts") inside its ground-truth box.

A car is a lower body, a glass cabin and four wheels; a pedestrian legs, torso and head; a cyclist
a frame, two wheels and a rider. The LiDAR and the cameras intersect rays with the parts, so the
points and pixels of an object always lie inside its box, and classes differ in outline, colour
and reflectivity as they do on the road.

The part table is one float64 array, one row per part, columns named by the ``C_*`` constants,
so that numba kernels take it whole. Positions and velocities are filled per time step by
``World.parts_at``; the rest is fixed when the world is built.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "N_COLS",
    "PATTERN_CHEVRON",
    "PATTERN_FACADE",
    "PATTERN_FOLIAGE",
    "PATTERN_GLASS_SIDES",
    "PATTERN_PLAIN",
    "PATTERN_WINDOW_BAND",
    "Part",
    "class_parts",
    "scenery_parts",
]

# part table columns
C_CX, C_CY, C_CZ, C_HX, C_HY, C_HZ, C_YAW, C_VX, C_VY, C_OMEGA = range(10)
C_SIDE = 10  # side colour r g b in 0..1 (10, 11, 12)
C_TOP = 13  # top colour (13, 14, 15)
C_ALT = 16  # second colour of a pattern (16, 17, 18)
C_PATTERN, C_REFLECT, C_OBJECT = 19, 20, 21
C_COS, C_SIN = 22, 23  # cos and sin of C_YAW, filled with it: the ray tests then need no trigonometry
N_COLS = 24

PATTERN_PLAIN, PATTERN_GLASS_SIDES, PATTERN_WINDOW_BAND, PATTERN_CHEVRON, PATTERN_FACADE, PATTERN_FOLIAGE = range(6)

GLASS = (0.10, 0.13, 0.17)
TYRE = (0.06, 0.06, 0.07)
CHROME = (0.45, 0.45, 0.47)

# (colour, weight): the spread of car paints on real streets, greys and white first
CAR_PAINTS = (
    ((0.92, 0.92, 0.92), 0.23), ((0.05, 0.05, 0.06), 0.20), ((0.62, 0.63, 0.65), 0.16), ((0.35, 0.36, 0.38), 0.15),
    ((0.62, 0.07, 0.07), 0.09), ((0.09, 0.20, 0.52), 0.09), ((0.72, 0.66, 0.52), 0.04), ((0.15, 0.35, 0.18), 0.04),
)
CLOTHES = ((0.12, 0.14, 0.35), (0.75, 0.12, 0.12), (0.85, 0.85, 0.82), (0.10, 0.10, 0.10), (0.25, 0.45, 0.25),
           (0.85, 0.65, 0.10), (0.45, 0.30, 0.20), (0.30, 0.50, 0.75))
SKIN = ((0.87, 0.70, 0.58), (0.62, 0.45, 0.32), (0.40, 0.27, 0.18))


class Part:
    """One box of an object in its local frame (x forward, z up, origin at the box centre).

    lo, hi: (3,) corner coordinates in metres; side/top/alt: colours; reflect: LiDAR reflectivity
    (0..255 at normal incidence, 1 m).
    """

    __slots__ = ("lo", "hi", "side", "top", "alt", "pattern", "reflect")

    def __init__(self, lo: tuple[float, float, float], hi: tuple[float, float, float], side: tuple[float, float, float],
                 top: tuple[float, float, float] | None = None, alt: tuple[float, float, float] = (0.0, 0.0, 0.0),
                 pattern: int = PATTERN_PLAIN, reflect: float = 30.0) -> None:
        self.lo = np.asarray(lo, np.float64)
        self.hi = np.asarray(hi, np.float64)
        self.side = side
        self.top = side if top is None else top
        self.alt = alt
        self.pattern = pattern
        self.reflect = reflect

    def row(self, object_index: int) -> np.ndarray:
        """(N_COLS,) row with the local centre in C_CX..C_CZ (the world pose is applied later)."""
        r = np.zeros(N_COLS)
        r[C_CX:C_CZ + 1] = (self.lo + self.hi) / 2.0
        r[C_HX:C_HZ + 1] = (self.hi - self.lo) / 2.0
        r[C_SIDE:C_SIDE + 3] = self.side
        r[C_TOP:C_TOP + 3] = self.top
        r[C_ALT:C_ALT + 3] = self.alt
        r[C_PATTERN] = self.pattern
        r[C_REFLECT] = self.reflect
        r[C_OBJECT] = object_index
        return r


def _paint_reflect(c: tuple[float, float, float]) -> float:
    return 12.0 + 55.0 * float(np.mean(c))


def _wheels(l: float, w: float, h: float, radius: float, xs: tuple[float, ...]) -> list[Part]:
    out = []
    tw = min(0.25, 0.14 * w)
    for x in xs:
        for side in (-1.0, 1.0):
            y_out = side * (w / 2 - 0.01)
            y_in = y_out - side * tw
            out.append(Part((x - radius, min(y_in, y_out), -h / 2), (x + radius, max(y_in, y_out), -h / 2 + 2 * radius),
                            TYRE, reflect=4.0))
    return out


def _person(x0: float, z0: float, height: float, depth: float, width: float, rng: np.random.Generator) -> list[Part]:
    """Legs, torso and head of a standing or riding person, feet at local height ``z0``."""
    shirt = CLOTHES[rng.integers(len(CLOTHES))]
    pants = CLOTHES[rng.integers(len(CLOTHES))]
    skin = SKIN[rng.integers(len(SKIN))]
    head = min(0.24, 0.14 * height)
    legs_top = z0 + 0.47 * height
    torso_top = z0 + height - head - 0.03
    return [
        Part((x0 - depth * 0.3, -width * 0.3, z0), (x0 + depth * 0.3, width * 0.3, legs_top), pants, reflect=18.0),
        Part((x0 - depth * 0.45, -width * 0.5, legs_top), (x0 + depth * 0.45, width * 0.5, torso_top), shirt,
             reflect=_paint_reflect(shirt) * 0.7),
        Part((x0 - head * 0.5, -head * 0.45, torso_top + 0.03), (x0 + head * 0.5, head * 0.45, z0 + height), skin, reflect=20.0),
    ]


def class_parts(cls: str, size: np.ndarray, rng: np.random.Generator, rider: bool = False) -> list[Part]:
    """The parts of an object of class ``cls`` with box ``size`` (l, w, h), all inside the box."""
    l, w, h = (float(v) for v in size)
    z0, z1 = -h / 2, h / 2
    if cls == "car":
        paint = CAR_PAINTS[rng.choice(len(CAR_PAINTS), p=[p for _, p in CAR_PAINTS])][0]
        r = min(0.34, 0.2 * h)
        return [
            Part((-l / 2, -w / 2, z0 + 0.18 * h), (l / 2, w / 2, z0 + 0.58 * h), paint, reflect=_paint_reflect(paint)),
            Part((-0.36 * l, -0.43 * w, z0 + 0.58 * h), (0.18 * l, 0.43 * w, z1), paint, alt=GLASS,
                 pattern=PATTERN_GLASS_SIDES, reflect=6.0),
        ] + _wheels(l, w, h, r, (0.31 * l, -0.31 * l))
    if cls == "truck":
        cab = CAR_PAINTS[rng.choice(len(CAR_PAINTS), p=[p for _, p in CAR_PAINTS])][0]
        cargo = ((0.9, 0.9, 0.88), (0.55, 0.56, 0.58), (0.20, 0.30, 0.55), (0.70, 0.20, 0.10))[rng.integers(4)]
        r = min(0.5, 0.17 * h)
        return [
            Part((0.27 * l, -w / 2, z0 + 0.12 * h), (l / 2, w / 2, z0 + 0.82 * h), cab, alt=GLASS, pattern=PATTERN_WINDOW_BAND,
                 reflect=_paint_reflect(cab)),
            Part((-l / 2, -w / 2, z0 + 0.16 * h), (0.25 * l, w / 2, z1), cargo, reflect=_paint_reflect(cargo)),
        ] + _wheels(l, w, h, r, (0.38 * l, -0.18 * l, -0.36 * l))
    if cls == "bus":
        paint = ((0.80, 0.10, 0.10), (0.92, 0.92, 0.90), (0.15, 0.35, 0.70), (0.95, 0.75, 0.10))[rng.integers(4)]
        r = min(0.5, 0.15 * h)
        return [
            Part((-l / 2, -w / 2, z0 + 0.10 * h), (l / 2, w / 2, z1), paint, alt=GLASS, pattern=PATTERN_WINDOW_BAND,
                 reflect=_paint_reflect(paint)),
        ] + _wheels(l, w, h, r, (0.33 * l, -0.3 * l))
    if cls == "trailer":
        paint = ((0.88, 0.88, 0.86), (0.55, 0.56, 0.58), (0.60, 0.15, 0.12))[rng.integers(3)]
        r = min(0.5, 0.14 * h)
        return [
            Part((-l / 2, -w / 2, z0 + 0.28 * h), (0.46 * l, w / 2, z1), paint, reflect=_paint_reflect(paint)),
            Part((0.46 * l, -0.05 * w, z0 + 0.28 * h), (l / 2, 0.05 * w, z0 + 0.36 * h), CHROME, reflect=30.0),
        ] + _wheels(l, w, h, r, (-0.3 * l, -0.4 * l))
    if cls == "construction_vehicle":
        yellow = ((0.95, 0.70, 0.05), (0.95, 0.50, 0.05))[rng.integers(2)]
        return [
            Part((-l / 2, -w / 2, z0), (l / 2, w / 2, z0 + 0.25 * h), TYRE, reflect=5.0),  # tracks
            Part((-l / 2, -0.48 * w, z0 + 0.25 * h), (0.15 * l, 0.48 * w, z0 + 0.55 * h), yellow, reflect=60.0),
            Part((-0.15 * l, -0.45 * w, z0 + 0.55 * h), (0.15 * l, 0.1 * w, z1), yellow, alt=GLASS,
                 pattern=PATTERN_GLASS_SIDES, reflect=20.0),
            Part((0.15 * l, -0.1 * w, z0 + 0.3 * h), (l / 2, 0.1 * w, z0 + 0.75 * h), yellow, reflect=60.0),  # arm
        ]
    if cls == "pedestrian":
        return _person(0.0, z0, h, l, w, rng)
    if cls in ("bicycle", "motorcycle"):
        moto = cls == "motorcycle"
        r = 0.3 if moto else 0.34
        frame_col = ((0.1, 0.1, 0.1), (0.7, 0.1, 0.1), (0.1, 0.3, 0.7), (0.8, 0.8, 0.8))[rng.integers(4)]
        body_w = 0.45 * w if moto else 0.08
        # without a rider the box is the machine: the handlebar is its top; with one, the rider is
        bar_top = min(z0 + (1.06 if moto else 1.02), z1)
        r = min(r, 0.3 * h)
        parts = [
            Part((0.5 * l - 2 * r, -0.04, z0), (0.5 * l, 0.04, z0 + 2 * r), TYRE, reflect=5.0),
            Part((-0.5 * l, -0.04, z0), (-0.5 * l + 2 * r, 0.04, z0 + 2 * r), TYRE, reflect=5.0),
            Part((-0.3 * l, -body_w / 2, z0 + 0.3 * h / 1.1), (0.3 * l, body_w / 2, bar_top - 0.2), frame_col,
                 reflect=_paint_reflect(frame_col)),
            Part((0.25 * l, -w / 2, bar_top - 0.06), (0.32 * l, w / 2, bar_top), CHROME, reflect=35.0),
        ]
        if rider:
            seat = z0 + (0.75 if moto else 0.85)
            parts += _person(-0.05 * l, seat - 0.35, z1 - seat + 0.35, 0.45, min(0.5, 0.8 * w), rng)
        return parts
    if cls == "traffic_cone":
        orange = (0.98, 0.35, 0.02)
        return [
            Part((-l / 2, -w / 2, z0), (l / 2, w / 2, z0 + 0.05 * h), (0.1, 0.1, 0.1), reflect=10.0),
            Part((-0.32 * l, -0.32 * w, z0 + 0.05 * h), (0.32 * l, 0.32 * w, z0 + 0.42 * h), orange, reflect=90.0),
            Part((-0.24 * l, -0.24 * w, z0 + 0.42 * h), (0.24 * l, 0.24 * w, z0 + 0.66 * h), (0.97, 0.97, 0.97), reflect=200.0),
            Part((-0.16 * l, -0.16 * w, z0 + 0.66 * h), (0.16 * l, 0.16 * w, z1), orange, reflect=90.0),
        ]
    if cls == "barrier":
        if rng.random() < 0.5:  # red-white striped plastic barrier
            return [Part((-l / 2, -w / 2, z0 + 0.1 * h), (l / 2, w / 2, z1), (0.85, 0.08, 0.06), alt=(0.95, 0.95, 0.95),
                         pattern=PATTERN_CHEVRON, reflect=120.0),
                    Part((-l / 2, -w / 2, z0), (l / 2, -w / 2 + 0.15, z0 + 0.1 * h), (0.2, 0.2, 0.2), reflect=10.0),
                    Part((-l / 2, w / 2 - 0.15, z0), (l / 2, w / 2, z0 + 0.1 * h), (0.2, 0.2, 0.2), reflect=10.0)]
        return [Part((-l / 2, -w / 2, z0), (l / 2, w / 2, z1), (0.70, 0.69, 0.66), reflect=40.0)]  # concrete
    raise ValueError(f"class_parts: unknown class {cls!r}")


def scenery_parts(kind: str, size: np.ndarray, rng: np.random.Generator) -> list[Part]:
    """Static scenery (no ground truth): 'building', 'tree', 'pole'; ``size`` is the bounding box l w h."""
    l, w, h = (float(v) for v in size)
    z0, z1 = -h / 2, h / 2
    if kind == "building":
        wall = ((0.72, 0.66, 0.58), (0.55, 0.50, 0.46), (0.80, 0.78, 0.74), (0.52, 0.30, 0.24), (0.62, 0.64, 0.66))[rng.integers(5)]
        roof = (0.30, 0.30, 0.31)
        return [Part((-l / 2, -w / 2, z0), (l / 2, w / 2, z1), wall, top=roof, alt=(0.16, 0.20, 0.26), pattern=PATTERN_FACADE,
                     reflect=28.0)]
    if kind == "tree":
        trunk = 0.18
        leaf = ((0.16, 0.34, 0.12), (0.22, 0.40, 0.15), (0.13, 0.28, 0.10))[rng.integers(3)]
        return [Part((-trunk, -trunk, z0), (trunk, trunk, z0 + 0.45 * h), (0.30, 0.22, 0.15), reflect=20.0),
                Part((-l / 2, -w / 2, z0 + 0.45 * h), (l / 2, w / 2, z1), leaf, pattern=PATTERN_FOLIAGE, reflect=22.0)]
    if kind == "pole":
        grey = (0.42, 0.43, 0.45)
        return [Part((-0.1, -0.1, z0), (0.1, 0.1, z1), grey, reflect=45.0),
                Part((0.1, -0.08, z1 - 0.2), (l / 2, 0.08, z1), grey, reflect=45.0)]
    raise ValueError(f"scenery_parts: unknown kind {kind!r}")
