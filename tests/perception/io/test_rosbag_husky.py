"""The real ROS 1 bag (Clearpath Husky: /fix NavSatFix, /imu/data Imu, odometry) and damaged input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from calib.geodesy import EnuOrigin
from perception.errors import FormatError, InputFileError
from perception.io.base import open_log
from perception.io.rosbag import RosbagReader
from perception.types import EgoPose, GnssFix, ImuSample

BAG = "ros1_gps_imu/husky_gps_imu_odom.bag"


@pytest.fixture(scope="module")
def husky(realdata: Path) -> Path:
    return realdata / BAG


def test_reads_every_message_in_stamp_order(husky: Path) -> None:
    with open_log(husky) as reader:
        assert isinstance(reader, RosbagReader) and reader.format == "rosbag1" and reader.rig_source == "topics"
        counts: dict[str, int] = {}
        last = -1
        for m in reader.messages():
            assert m.stamp_ns >= last
            last = m.stamp_ns
            counts[m.topic] = counts.get(m.topic, 0) + 1
        assert reader.skipped == {}
    assert counts == {"/fix": 989, "/imu/data": 11865, "/husky_velocity_controller/odom": 3952}


def test_payloads_are_sane(husky: Path) -> None:
    with open_log(husky) as reader:
        rig = reader.rig
        first = {}
        for m in reader.messages():
            first.setdefault(type(m.payload), m.payload)
            if len(first) == 3:
                break
    assert {s.name: s.frame for s in rig.sensors} == {"fix": "gps", "imu_data": "imu_link",
                                                     "husky_velocity_controller_odom": "base_link"}
    fix, imu, odom = first[GnssFix], first[ImuSample], first[EgoPose]
    assert fix.frame_id == "gps"  # '/gps' in the bag: tf1's leading slash dropped
    assert 42.3 < fix.latitude_deg < 42.4 and -71.2 < fix.longitude_deg < -71.1  # near Boston
    assert fix.position_covariance[0, 0] == pytest.approx(0.81)
    assert np.linalg.norm(imu.linear_acceleration) == pytest.approx(9.8, abs=0.3)  # a robot at rest-ish
    assert np.linalg.norm(imu.orientation) == pytest.approx(1.0)
    assert (odom.frame_id, odom.child_frame_id) == ("odom", "base_link")


def test_gnss_track_length_matches_odometry(husky: Path) -> None:
    """NavSatFix -> ENU track length agrees with the wheel odometry's travelled distance.

    GPS noise (sigma ~0.9 m here, at 2.5 Hz) adds a random step to every fix, which inflates a
    polyline's length: the raw fix-to-fix length is ~10% above the odometry's. Both tracks are
    therefore resampled on the same 2 s time grid over their common span before measuring; over 2 s
    the robot moves ~2 m, large against the noise, and the odometry (already smooth) loses nothing.
    """
    with open_log(husky) as reader:
        fixes = [m.payload for m in reader.messages(["fix"])]
        poses = [m.payload for m in reader.messages(["husky_velocity_controller_odom"])]
    lat, lon, alt = (np.array([getattr(f, k) for f in fixes]) for k in ("latitude_deg", "longitude_deg", "altitude_m"))
    enu = EnuOrigin(lat[0], lon[0], alt[0]).to_enu(lat, lon, alt)
    t_gps = np.array([f.stamp_ns for f in fixes]) / 1e9
    xy = np.array([p.world_T_ego[:2, 3] for p in poses])
    t_odo = np.array([p.stamp_ns for p in poses]) / 1e9

    grid = np.arange(max(t_gps[0], t_odo[0]), min(t_gps[-1], t_odo[-1]), 2.0)

    def length(t: np.ndarray, track: np.ndarray) -> float:
        resampled = np.stack([np.interp(grid, t, track[:, i]) for i in range(2)], axis=1)
        return float(np.linalg.norm(np.diff(resampled, axis=0), axis=1).sum())

    gps_len, odo_len = length(t_gps, enu[:, :2]), length(t_odo, xy)
    raw_gps_len = float(np.linalg.norm(np.diff(enu[:, :2], axis=0), axis=1).sum())
    assert odo_len > 300  # the robot drove a few hundred metres
    assert abs(gps_len / odo_len - 1) < 0.10, (gps_len, odo_len)
    assert raw_gps_len > gps_len  # the noise inflation the resampling removes


def test_missing_and_truncated_bags_are_clear_errors(husky: Path, tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        open_log(tmp_path / "nope.bag")
    with pytest.raises(InputFileError, match="no such file"):
        RosbagReader(tmp_path / "nope.bag")
    cut = tmp_path / "cut.bag"
    with husky.open("rb") as src, cut.open("wb") as dst:
        dst.write(src.read(100_000))
    with pytest.raises(FormatError) as exc:
        open_log(cut)
    assert str(cut) in str(exc.value) and "damaged" in str(exc.value)
    # a rosbag2 directory whose storage file is cut short
    mcap_dir = tmp_path / "ros2"
    from tests.perception.io.rosbag_samples import sample_messages
    from tests.perception.io.test_rosbag_roundtrip import write_bag

    write_bag(mcap_dir, "mcap", sample_messages(frames=1))
    storage = next(mcap_dir.glob("*.mcap"))
    data = storage.read_bytes()
    storage.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match=str(mcap_dir)):
        reader = open_log(mcap_dir)
        list(reader.messages())
    shutil.rmtree(mcap_dir)
