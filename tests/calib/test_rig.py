"""Rig files: loading, validation with messages naming file/sensor/key, and `bevfuse rig check`."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from calib import se3
from calib.rig import Rig, SensorSpec, check_rig_file, load_rig, save_rig
from perception.cli import main
from perception.errors import InputFileError, RigError
from perception.types import Modality

GOOD = {
    "name": "test-car",
    "sensors": [
        {"name": "LIDAR_TOP", "modality": "lidar", "frame": "lidar_top", "topic": "/lidar", "rate_hz": 20,
         "ego_T_sensor": {"translation": [0.9, 0.0, 1.8], "rotation": [0.7071068, 0, 0, -0.7071068]}},
        {"name": "CAM_FRONT", "modality": "camera", "frame": "cam_front", "topic": "/cam_front/image/compressed",
         "rate_hz": 12, "time_offset_ns": 1500,
         "ego_T_sensor": {"translation": [1.7, 0.0, 1.5], "rotation": [0.5, -0.5, 0.5, -0.5]},
         "intrinsics": {"model": "pinhole", "width": 1600, "height": 900, "fx": 1266.4, "fy": 1266.4, "cx": 816.3, "cy": 491.5}},
        {"name": "GNSS", "modality": "gnss", "frame": "gnss", "topic": "/fix",
         "ego_T_sensor": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1.9], [0, 0, 0, 1]]},
    ],
}


def write(tmp_path: Path, data: dict, name: str = "rig.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


def test_load_good_rig(tmp_path):
    rig = load_rig(write(tmp_path, GOOD))
    assert rig.names == ["LIDAR_TOP", "CAM_FRONT", "GNSS"]
    assert rig["CAM_FRONT"].intrinsics.width == 1600
    assert rig["CAM_FRONT"].time_offset_ns == 1500
    assert rig.by_topic("/fix").name == "GNSS"
    assert [s.name for s in rig.of(Modality.CAMERA)] == ["CAM_FRONT"]
    # the camera's optical axis (z) points forward along ego x
    axis = rig["CAM_FRONT"].ego_T_sensor[:3, :3] @ np.array([0, 0, 1.0])
    np.testing.assert_allclose(axis, [1, 0, 0], atol=1e-6)


def test_save_and_reload_is_identical(tmp_path):
    rig = load_rig(write(tmp_path, GOOD))
    out = tmp_path / "copy.yaml"
    save_rig(rig, out)
    again = load_rig(out)
    for a, b in zip(rig.sensors, again.sensors):
        for key in ("name", "modality", "frame", "topic", "rate_hz", "time_offset_ns"):
            assert getattr(a, key) == getattr(b, key)
        np.testing.assert_allclose(a.ego_T_sensor, b.ego_T_sensor, atol=1e-12)
        assert a.intrinsics == b.intrinsics


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["sensors"][0]["ego_T_sensor"].update(rotation=[[1, 0, 0], [0, 2, 0], [0, 0, 1]]),
         "sensor 'LIDAR_TOP': ego_T_sensor: rotation is not orthonormal"),
        (lambda d: d["sensors"][0]["ego_T_sensor"].update(rotation=[1, 1, 0, 0]), "sensor 'LIDAR_TOP': ego_T_sensor.rotation: quaternion"),
        (lambda d: d["sensors"][1]["intrinsics"].update(fx=-5), "sensor 'CAM_FRONT': intrinsics.fx/fy: focal lengths must be positive"),
        (lambda d: d["sensors"][1].update(name="LIDAR_TOP"), "sensor 'LIDAR_TOP': name: duplicate"),
        (lambda d: d["sensors"][2].update(modality="sonar"), "sensor 'GNSS': modality: expected one of"),
        (lambda d: d["sensors"][2].update(colour="red"), "sensor 'GNSS': unknown key(s) ['colour']"),
        (lambda d: d["sensors"][1].pop("intrinsics"), "sensor 'CAM_FRONT': intrinsics: a camera needs intrinsics"),
        (lambda d: d["sensors"][0].update(rate_hz=-1), "sensor 'LIDAR_TOP': rate_hz: expected a positive number"),
        (lambda d: d["sensors"][2].update(topic="/lidar"), "topic '/lidar': used by more than one sensor"),
    ],
)
def test_invalid_rigs_name_file_sensor_and_key(tmp_path, mutate, expected):
    import copy

    data = copy.deepcopy(GOOD)
    mutate(data)
    path = write(tmp_path, data)
    problems = check_rig_file(path)
    assert any(expected in p for p in problems), problems
    assert all(p.startswith(str(path)) for p in problems)
    with pytest.raises(RigError, match=str(path)):
        load_rig(path)


def test_every_problem_is_listed(tmp_path):
    import copy

    data = copy.deepcopy(GOOD)
    data["sensors"][0]["ego_T_sensor"]["rotation"] = [[1, 0, 0], [0, 2, 0], [0, 0, 1]]
    data["sensors"][1]["intrinsics"]["fy"] = 0
    assert len(check_rig_file(write(tmp_path, data))) == 2


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        load_rig(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sensors: [unclosed")
    assert "not valid YAML" in check_rig_file(bad)[0]


def test_rig_in_memory_validates_too():
    mirror = np.diag([1.0, -1.0, 1.0, 1.0])
    with pytest.raises(RigError, match="orthonormal"):
        Rig((SensorSpec("L", Modality.LIDAR, "l", ego_T_sensor=mirror),))
    ok = Rig((SensorSpec("L", Modality.LIDAR, "l", ego_T_sensor=se3.from_rotation_translation(np.eye(3), [1, 2, 3])),))
    assert "L" in ok


class TestRigCheckCommand:
    def test_valid_rig_exits_zero(self, tmp_path, capsys):
        assert main(["rig", "check", str(write(tmp_path, GOOD))]) == 0
        assert "3 sensors" in capsys.readouterr().out

    def test_invalid_rig_exits_nonzero_one_line_per_problem(self, tmp_path, capsys):
        import copy

        data = copy.deepcopy(GOOD)
        data["sensors"][0]["ego_T_sensor"]["rotation"] = [[1, 0, 0], [0, 2, 0], [0, 0, 1]]
        data["sensors"][1]["intrinsics"]["fy"] = 0
        assert main(["rig", "check", str(write(tmp_path, data))]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 2

    def test_installed_console_script(self, tmp_path):
        exe = Path(sys.executable).with_name("bevfuse")
        res = subprocess.run([str(exe), "rig", "check", str(tmp_path / "missing.yaml")], capture_output=True, text=True)
        assert res.returncode == 1
        assert "rig file not found" in res.stderr
        assert "Traceback" not in res.stderr
