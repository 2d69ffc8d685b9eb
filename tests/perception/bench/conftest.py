"""Shared benchmark runs for the tests of this folder (session-scoped: each is run once).

``small_log``: 2.5 s of the simulator at 160x90 with a quarter of the LiDAR columns (the
benchmark's logic does not depend on resolution; the figures do, and they are not tested here).
``single``: one run of the shipped tiny checkpoint, 40 timed frames after 2 warm-up, with the
soak's drift; ``compared``: torch and ONNX Runtime interleaved. Torch runs on one thread while
they run: on this project's loaded 2-core machines two threads are slower, and slow tests help no one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from perception.bench.runner import BenchOptions, BenchResult, run_bench
from perception.bench.spec import RunSpec

SMALL_SECONDS = 2.5


def write_small_log(path: Path, seconds: float = SMALL_SECONDS, seed: int = 3) -> Path:
    from dataclasses import replace

    from calib.rig import load_rig
    from perception.commands.sim import DEFAULT_RIG
    from perception.sim.config import SimConfig
    from perception.sim.simulator import Simulator

    config = SimConfig().with_image_size(160, 90)
    config = replace(config, lidar=replace(config.lidar, columns=271))
    Simulator(load_rig(DEFAULT_RIG), seed, seconds, config).write(path)
    return path


@pytest.fixture(scope="session")
def small_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_small_log(tmp_path_factory.mktemp("benchlog") / "small")


@pytest.fixture(scope="session")
def one_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def bench_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("benchcache")


@pytest.fixture(scope="session")
def single(small_log: Path, bench_cache: Path, one_thread: None) -> BenchResult:
    return run_bench(BenchOptions(specs=[RunSpec()], frames=40, warmup=2, input=str(small_log), soak=True, per_frame=True,
                                  cache_dir=bench_cache))


@pytest.fixture(scope="session")
def compared(small_log: Path, bench_cache: Path, one_thread: None) -> BenchResult:
    pytest.importorskip("onnxruntime")
    specs = [RunSpec(backend="torch"), RunSpec(backend="onnxruntime")]
    return run_bench(BenchOptions(specs=specs, frames=6, warmup=1, input=str(small_log), cache_dir=bench_cache))
