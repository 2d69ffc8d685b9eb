"""``bevfuse info``: in-process through perception.cli.main, and once as the installed script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from perception.cli import main

HUSKY = "ros1_gps_imu/husky_gps_imu_odom.bag"
# topic -> (type, count, nominal rate Hz)
EXPECTED = {
    "/fix": ("sensor_msgs/msg/NavSatFix", 989, 2.5),
    "/imu/data": ("sensor_msgs/msg/Imu", 11865, 30.0),
    "/husky_velocity_controller/odom": ("nav_msgs/msg/Odometry", 3952, 10.0),
}


def check_husky_info(info: dict, path: Path) -> None:
    assert info["path"] == str(path) and info["format"] == "rosbag1"
    assert info["duration_s"] == pytest.approx(395.3, abs=0.5)
    assert info["message_count"] == 16806
    streams = {s["topic"]: s for s in info["streams"]}
    assert set(streams) == set(EXPECTED)
    for topic, (msgtype, count, rate) in EXPECTED.items():
        s = streams[topic]
        assert (s["msgtype"], s["count"], s["stamp_source"]) == (msgtype, count, "header"), topic
        assert s["rate_hz"] == pytest.approx(rate, rel=0.01), topic
        assert s["first_stamp_ns"] < s["last_stamp_ns"] and isinstance(s["first_stamp_ns"], int)


def test_info_json_in_process(realdata: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = realdata / HUSKY
    assert main(["info", str(path), "--json"]) == 0
    check_husky_info(json.loads(capsys.readouterr().out), path)


def test_info_json_installed_script(realdata: Path) -> None:
    script = Path(sys.executable).with_name("bevfuse")
    assert script.exists(), f"the bevfuse console script is not installed next to {sys.executable}"
    path = realdata / HUSKY
    done = subprocess.run([str(script), "info", str(path), "--json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    check_husky_info(json.loads(done.stdout), path)


def test_info_table(realdata: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(realdata / HUSKY)]) == 0
    out = capsys.readouterr().out
    assert "format:    rosbag1" in out and "duration:  395.3" in out
    row = next(line for line in out.splitlines() if line.startswith("imu_data"))
    assert row.split()[1:5] == ["/imu/data", "sensor_msgs/msg/Imu", "11865", "30.01"]


def _one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and captured.out == "", captured.err
    assert lines[0].startswith("bevfuse info: error: ") and "Traceback" not in captured.err
    return lines[0]


def test_bad_input_exits_2_with_one_line(realdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.bag"
    assert str(missing) in _one_error_line(capsys, ["info", str(missing)])
    cut = tmp_path / "cut.bag"
    cut.write_bytes((realdata / HUSKY).read_bytes()[:100_000])
    line = _one_error_line(capsys, ["info", str(cut), "--json"])
    assert str(cut) in line and "damaged" in line
    rig = tmp_path / "rig.yaml"
    rig.write_text(yaml.safe_dump({"name": "husky", "sensors": [
        {"name": "GPS", "modality": "gnss", "frame": "gps", "topic": "/fix"},
        {"name": "LIDAR", "modality": "lidar", "frame": "velodyne", "topic": "/velodyne_points"},
    ]}))
    line = _one_error_line(capsys, ["info", str(realdata / HUSKY), "--rig", str(rig)])
    assert "'/velodyne_points' not in the bag" in line and "/imu/data (sensor_msgs/msg/Imu)" in line


def test_info_with_rig_names_the_sensors(realdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rig = tmp_path / "rig.yaml"
    rig.write_text(yaml.safe_dump({"name": "husky", "sensors": [
        {"name": "GPS", "modality": "gnss", "frame": "gps", "topic": "/fix"},
        {"name": "IMU", "modality": "imu", "frame": "imu_link"},  # no topic: found by type
    ]}))
    assert main(["info", str(realdata / HUSKY), "--json", "--rig", str(rig)]) == 0
    info = json.loads(capsys.readouterr().out)
    sensors = {s["topic"]: s["sensor"] for s in info["streams"]}
    assert sensors == {"/fix": "GPS", "/imu/data": "IMU", "/husky_velocity_controller/odom": "/husky_velocity_controller/odom"}
    assert info["rig"]["source"] == "given"
