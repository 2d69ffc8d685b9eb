"""Fixtures of the op tests: a small grid (fast numba runs, every edge reachable) and seeded inputs."""

from __future__ import annotations

import numpy as np
import pytest

from perception.config import GridConfig


@pytest.fixture
def grid() -> GridConfig:
    """20 x 16 cells of 0.4 m: small enough that caps overflow with a few hundred points."""
    return GridConfig(x_min=-4.0, x_max=4.0, y_min=-3.2, y_max=3.2, z_min=-2.0, z_max=2.0, cell_m=0.4)


def random_cloud(rng: np.random.Generator, grid: GridConfig, n: int, f: int = 5, *, bad: float = 0.05,
                 clusters: int = 3) -> np.ndarray:
    """(n, f) float32: uniform over a box 20% larger than the grid (some points outside), a few
    tight clusters (pillars that overflow), a fraction ``bad`` of rows holding a NaN or an inf."""
    lo = np.array([grid.x_min, grid.y_min, grid.z_min]) * 1.2
    hi = np.array([grid.x_max, grid.y_max, grid.z_max]) * 1.2
    pts = np.empty((n, f), np.float32)
    pts[:, :3] = rng.uniform(lo, hi, size=(n, 3))
    pts[:, 3:] = rng.uniform(0, 1, size=(n, f - 3))
    for _ in range(clusters):
        centre = rng.uniform(lo, hi) / 1.2
        idx = rng.choice(n, size=n // 10, replace=False)
        pts[idx, :3] = centre + rng.normal(0, 0.05, size=(len(idx), 3))
    n_bad = int(n * bad)
    rows = rng.choice(n, size=n_bad, replace=False)
    cols = rng.integers(0, f, size=n_bad)
    pts[rows, cols] = rng.choice([np.nan, np.inf, -np.inf], size=n_bad)
    return pts
