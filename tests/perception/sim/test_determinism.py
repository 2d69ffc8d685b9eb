"""A seed gives a byte-identical bag; another seed another world."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from perception.sim.config import SimConfig
from perception.sim.simulator import Simulator


def _files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_same_seed_same_bytes_other_seed_other_world(tmp_path: Path, rig) -> None:
    cfg = SimConfig().with_image_size(96, 54)
    a, b, c = (Simulator(rig, seed, 0.6, cfg) for seed in (3, 3, 4))
    for sim, run in ((a, "1"), (b, "2"), (c, "3")):  # the bag's name is inside it: same name, other folders
        (tmp_path / run).mkdir()
        sim.write(tmp_path / run / "bag")
    fa, fb, fc = (_files(tmp_path / run / "bag") for run in "123")
    assert sorted(fa) == ["bag.mcap", "metadata.yaml", "rig.yaml"]
    assert fa == fb
    assert fa["bag.mcap"] != fc["bag.mcap"]
    # another world, not only other noise: other objects, sizes and road
    assert a.world.n_objects != c.world.n_objects or not np.allclose(a.world.size[:5], c.world.size[:5])
    ra, rc = a.world.road.seg[:, :5], c.world.road.seg[:, :5]
    assert ra.shape != rc.shape or not np.allclose(ra, rc)


def test_sqlite3_storage_is_deterministic_too(tmp_path: Path, rig) -> None:
    cfg = SimConfig().with_image_size(64, 36)
    for run in ("1", "2"):
        (tmp_path / run).mkdir()
        Simulator(rig, 9, 0.3, cfg).write(tmp_path / run / "bag", storage="sqlite3")
    assert _files(tmp_path / "1" / "bag") == _files(tmp_path / "2" / "bag")


def test_thread_count_does_not_change_the_bag(tmp_path: Path, rig) -> None:
    """400x250 images and full sweeps on all cores must give the bytes of the one-thread default."""
    base = SimConfig().with_image_size(400, 250)
    parallel = replace(base, lidar=replace(base.lidar, threads=None), camera=replace(base.camera, threads=None))
    for run, cfg in (("1", base), ("2", parallel)):
        (tmp_path / run).mkdir()
        Simulator(rig, 5, 0.25, cfg).write(tmp_path / run / "bag")
    assert _files(tmp_path / "1" / "bag") == _files(tmp_path / "2" / "bag")
