"""Shared simulator runs: one 10 s bag written to disk, one short in-memory log with truth.

Session-scoped: every test of the folder reads the same two runs, so the whole folder costs about
one 10 s simulation at a small image size (the properties tested do not depend on resolution).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from calib.rig import Rig, load_rig
from perception.sim.config import LidarSimConfig, SimConfig
from perception.sim.simulator import SimMessage, Simulator

REPO = Path(__file__).resolve().parents[3]
DEFAULT_RIG = REPO / "data" / "rigs" / "nuscenes_like.yaml"
BAG_SECONDS = 10.0
BAG_SEED = 11


@pytest.fixture(scope="session")
def rig() -> Rig:
    return load_rig(DEFAULT_RIG)


@pytest.fixture(scope="session")
def bag10(tmp_path_factory: pytest.TempPathFactory, rig: Rig) -> tuple[Path, Simulator]:
    """A 10 s log with the default rig at 160x90 pixels and a quarter of the LiDAR columns, as MCAP.

    What it is read for (rates, stamps, the trigger model, GNSS and IMU) does not depend on the
    image size or the point density; the full density is checked in memory (``memlog``).
    """
    path = tmp_path_factory.mktemp("sim") / "bag10"
    config = SimConfig(lidar=LidarSimConfig(columns=271)).with_image_size(160, 90)
    sim = Simulator(rig, BAG_SEED, BAG_SECONDS, config)
    sim.write(path)
    return path, sim


@pytest.fixture(scope="session")
def memlog(rig: Rig) -> tuple[Simulator, list[SimMessage]]:
    """2 s in memory at 400x225 (cameras big enough for pixel checks), every message with its truth."""
    sim = Simulator(rig, 5, 2.0, SimConfig().with_image_size(400, 225))
    return sim, list(sim.messages())
