"""Raw records in memory, cut into per-frame bundles, replayed cycle after cycle into the same frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception.bench.errors import BenchError
from perception.bench.frames import FrameCycle, FrameSource, RawLog, default_warm_frames, sim_log
from perception.bench.timing import StageTimer
from perception.io.base import GROUND_TRUTH, open_log
from perception.model.config import preset
from perception.sync.replay import frames_from_log

SYNC = preset("tiny").sync


@pytest.fixture(scope="module")
def raw(small_log: Path):
    with RawLog.load(small_log) as r:
        yield r


@pytest.fixture(scope="module")
def cycle(raw: RawLog) -> FrameCycle:
    return FrameCycle.build(raw, SYNC)


def test_records_are_the_readers_messages_without_ground_truth(raw: RawLog, small_log: Path):
    assert raw.format.startswith("rosbag2")
    assert raw.raw_bytes > 0
    stamps = [r.stamp_ns for r in raw.records]
    assert stamps == sorted(stamps)
    with open_log(small_log) as reader:
        expected = [(m.sensor, m.stamp_ns) for m in reader.messages() if m.sensor != GROUND_TRUTH]
    decoded = [raw.decode(r) for r in raw.records]
    assert all(m is not None for m in decoded)
    assert [(m.sensor, m.stamp_ns) for m in decoded] == expected


def test_bundles_cut_the_log_into_the_frames_of_frames_from_log(raw: RawLog, cycle: FrameCycle, small_log: Path):
    b = cycle.bundles
    assert cycle.warm_frames >= default_warm_frames(raw.rig, SYNC) == 3
    assert all(x.end == y.start for x, y in zip(b, b[1:])), "bundles must be contiguous"
    assert all(x.start <= x.end for x in b)
    assert [x.stamp_ns for x in b] == sorted({x.stamp_ns for x in b})
    with open_log(small_log) as reader:
        stamps = [f.stamp_ns for f in frames_from_log(reader, reader.rig, SYNC)]
    assert stamps[cycle.warm_frames:cycle.warm_frames + len(b)] == [x.stamp_ns for x in b]
    assert cycle.log_frames == len(stamps)
    assert cycle.span_ns == b[-1].stamp_ns - b[0].stamp_ns + SYNC.frame_period_ns


def test_every_cycle_gives_the_same_frames(cycle: FrameCycle):
    src = FrameSource(cycle)
    timer = StageTimer()
    n = len(cycle.bundles)
    seen = []
    for _ in range(2 * n + 1):
        frame = src.next(timer)
        times = timer.collect()
        assert set(times) == {"decode", "sync"} and all(t >= 0 for t in times.values())
        seen.append((frame.stamp_ns, len(frame.lidar.points), sorted(frame.images), sorted(frame.missing)))
    assert seen[:n] == seen[n:2 * n]
    assert seen[2 * n] == seen[0]
    assert src.cycle == 2 and src.index == 2 * n + 1 and src.position == 1
    assert not any(m for *_, m in seen[:n]), "cycled frames start after the synchronizer is warm: nothing missing"


def test_the_continuing_clock_moves_on_across_cycles(cycle: FrameCycle):
    src = FrameSource(cycle)
    timer = StageTimer()
    arrivals = []
    for _ in range(len(cycle.bundles) + 3):
        arrivals.append(src.next_arrival_ns())
        src.next(timer)
        timer.collect()
    assert np.all(np.diff(arrivals) >= 0)
    assert src.shifted(0, 2) == 2 * cycle.span_ns


def test_a_log_too_short_to_warm_up_is_refused(small_log: Path):
    with RawLog.load(small_log, seconds=0.25) as short:
        with pytest.raises(BenchError, match="too short"):
            FrameCycle.build(short, SYNC)


def test_sim_log_is_written_once_and_reused(tmp_path: Path):
    first = sim_log(tmp_path, (64, 36), seconds=0.3, seed=1)
    assert (first / "metadata.yaml").is_file() and first.name == "sim-64x36-0.3s-seed1"
    stamp = (first / "metadata.yaml").stat().st_mtime_ns
    assert sim_log(tmp_path, (64, 36), seconds=0.3, seed=1) == first
    assert (first / "metadata.yaml").stat().st_mtime_ns == stamp
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())


def test_a_dataset_log_is_read_through_its_index(realdata: Path):
    """nuScenes: records are index entries, decoded by the reader (reading the file included)."""
    log = realdata / "nuscenes_demo"
    with RawLog.load(log) as r:
        assert "nuscenes" in r.format and "reading its file" in r.decode_note
        decoded = [r.decode(rec) for rec in r.records]
        with open_log(log) as reader:
            expected = [(m.sensor, m.stamp_ns) for m in reader.messages() if m.sensor != GROUND_TRUTH]
        assert [(m.sensor, m.stamp_ns) for m in decoded if m is not None] == expected
        assert any(m.sensor.startswith("CAM") and m.payload.image.shape == (900, 1600, 3) for m in decoded if m is not None)
        with pytest.raises(BenchError, match="too short"):  # one keyframe: nothing left after the warm-up
            FrameCycle.build(r, SYNC)
