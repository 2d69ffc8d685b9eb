"""Fault specs: strict parsing, and each fault doing what it says in the simulated stream."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from calib.rig import Rig
from perception.cli import main
from perception.sim.config import LidarSimConfig, SimConfig
from perception.sim.faults import FaultSpecError, parse_faults
from perception.sim.simulator import Simulator

NS = 1_000_000_000
SECONDS = 3.0
# faults act on message timing: a sparse LiDAR and tiny images keep the six runs quick
CONFIG = SimConfig(lidar=LidarSimConfig(columns=120, beams=16)).with_image_size(64, 36)


@pytest.fixture(scope="module")
def small_rig(rig: Rig) -> Rig:
    return Rig(tuple(rig[n] for n in ("LIDAR_TOP", "CAM_FRONT", "RADAR_FRONT", "IMU")), "small", "test")


def _run(rig: Rig, spec: str | None) -> tuple[Simulator, dict[str, list]]:
    sim = Simulator(rig, 21, SECONDS, CONFIG, parse_faults(spec, rig.names))
    out: dict[str, list] = defaultdict(list)
    for m in sim.messages():
        out[m.message.sensor].append(m)
    return sim, out


@pytest.fixture(scope="module")
def clean(small_rig: Rig) -> tuple[Simulator, dict[str, list]]:
    return _run(small_rig, None)


def test_parse_accepts_the_documented_grammar() -> None:
    plan = parse_faults("drop=0.05,jitter_ms=10,outage=CAM_FRONT@3+2,reorder=0.1,clock_jump=-0.5@4,drop:IMU=0.2,"
                        "outage=IMU@1.5+0.25", ["CAM_FRONT", "IMU"])
    assert plan.drop_all == 0.05 and plan.drop == {"IMU": 0.2}
    assert plan.drop_probability("IMU") == 0.2 and plan.drop_probability("CAM_FRONT") == 0.05
    assert plan.jitter_ns == 10_000_000 and plan.reorder == 0.1
    assert plan.outages == (("CAM_FRONT", 3 * NS, 5 * NS), ("IMU", 1_500_000_000, 1_750_000_000))
    assert plan.clock_jumps == ((4 * NS, -500_000_000),)
    assert parse_faults("").empty and parse_faults(None).empty


@pytest.mark.parametrize("spec, names", [
    ("drop=1.5", "drop=1.5"),
    ("drop=0.1,jitter_ms=abc", "jitter_ms=abc"),
    ("outage=CAM_FRONT@3", "outage=CAM_FRONT@3"),
    ("outage=CAM_NOSE@3+2", "CAM_NOSE"),
    ("drop:LIDAR_X=0.1", "LIDAR_X"),
    ("clock_jump=0.5", "clock_jump=0.5"),
    ("warp=3", "warp"),
    ("drop=0.1,,reorder=0.1", "empty token"),
    ("jitter_ms=-2", "jitter_ms=-2"),
    ("drop=0.1,drop=0.2", "given twice"),
    ("reorder", "reorder"),
])
def test_parse_errors_name_the_bad_token(spec: str, names: str) -> None:
    with pytest.raises(FaultSpecError, match=names.replace("+", r"\+")):
        parse_faults(spec, ["CAM_FRONT", "IMU", "LIDAR_TOP"])


def test_bad_spec_on_the_command_line(tmp_path, capsys) -> None:
    code = main(["sim", "--out", str(tmp_path / "bag"), "--seconds", "0.2", "--faults", "drop=0.1,outage=CAM_FRONT@x+1",
                 "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "outage=CAM_FRONT@x+1" in err and "START" in err
    assert not (tmp_path / "bag").exists()


def test_drop_rate(small_rig: Rig, clean) -> None:
    _, base = clean
    _, got = _run(small_rig, "drop=0.3,drop:CAM_FRONT=0.0")
    kept = len(got["IMU"]) / len(base["IMU"])
    assert kept == pytest.approx(0.7, abs=0.06)  # 300 draws: 2.3 sigma
    assert len(got["CAM_FRONT"]) == len(base["CAM_FRONT"])
    assert len(got["ground_truth"]) == len(base["ground_truth"])  # truth is not a sensor


def test_outage_leaves_a_gap(small_rig: Rig, clean) -> None:
    _, got = _run(small_rig, "outage=CAM_FRONT@1+1.5")
    t = np.array([m.true_stamp_rel_ns for m in got["CAM_FRONT"]]) / NS
    assert not np.any((t >= 1.0) & (t < 2.5))
    assert np.any(t < 1.0) and np.any(t >= 2.5)
    assert np.max(np.diff(t)) > 1.4
    assert len(got["IMU"]) == len(clean[1]["IMU"])


def test_jitter_moves_stamps_within_the_bound(small_rig: Rig, clean) -> None:
    sim, got = _run(small_rig, "jitter_ms=10")
    ms = [(m.message.stamp_ns - sim.config.start_epoch_ns - m.true_stamp_rel_ns) / 1e6 for m in got["IMU"]]
    ms = np.array(ms)
    assert np.abs(ms).max() <= 10.0
    assert np.std(ms) == pytest.approx(10 / np.sqrt(3), rel=0.15)  # uniform in +-10 ms
    # the data are those of the true time: the same IMU readings as without jitter
    a = [m.message.payload.angular_velocity for m in got["IMU"]]
    b = [m.message.payload.angular_velocity for m in clean[1]["IMU"]]
    np.testing.assert_array_equal(a, b)


def test_reorder_delivers_late(small_rig: Rig) -> None:
    _, got = _run(small_rig, "reorder=0.2")
    stamps = np.array([m.message.stamp_ns for m in got["IMU"]])  # in recording order
    late = np.sum(np.diff(stamps) < 0)
    assert 0.1 * len(stamps) < late < 0.3 * len(stamps)
    logs = np.array([m.message.log_time_ns for m in got["IMU"]])
    assert np.all(np.diff(logs) >= 0)  # the recorder's clock still runs forward


def test_clock_jump_shifts_stamps_and_log_times(small_rig: Rig, clean) -> None:
    sim, got = _run(small_rig, "clock_jump=0.5@2")
    imu = got["IMU"]
    stamps = np.array([m.message.stamp_ns for m in imu])
    gaps = np.diff(stamps)
    assert np.sum(gaps > 400_000_000) == 1
    jump = np.argmax(gaps)
    assert imu[jump + 1].true_stamp_rel_ns >= 2 * NS > imu[jump].true_stamp_rel_ns
    assert gaps[jump] == 500_000_000 + 10_000_000
    gt = got["ground_truth"]
    assert any(m.message.stamp_ns - sim.config.start_epoch_ns - m.true_stamp_rel_ns == 500_000_000 for m in gt)
