"""``bevfuse sim`` end to end: the bag, the rig beside it, the preview picture."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from calib.rig import load_rig
from perception.cli import main


def test_sim_writes_bag_rig_and_preview(tmp_path: Path, capsys) -> None:
    out = tmp_path / "log"
    png = tmp_path / "preview.png"
    code = main(["sim", "--out", str(out), "--seconds", "0.4", "--seed", "2", "--image-size", "320x180",
                 "--storage", "sqlite3", "--preview", str(png), "--no-progress", "--radar-msgtype", "radarscan"])
    assert code == 0, capsys.readouterr().err
    assert (out / "log.db3").is_file() and (out / "metadata.yaml").is_file()
    rig = load_rig(out / "rig.yaml")
    assert all(c.intrinsics.width == 320 and c.intrinsics.height == 180 for c in rig.cameras)
    assert all(s.msgtype == "radar_msgs/msg/RadarScan" for s in rig.of("radar"))
    img = cv2.imread(str(png))
    assert img.shape == (540, 1980, 3)
    front = img[:270, 480:960].astype(np.float64)
    # a street, not noise: blue-ish sky on top, grey road at the bottom centre, smooth neighbourhoods
    top, bottom = front[:40].reshape(-1, 3).mean(0), front[-60:, 160:320].reshape(-1, 3).mean(0)
    assert top[0] > top[2] and top.mean() > bottom.mean()
    assert abs(bottom[0] - bottom[2]) < 25
    assert np.abs(np.diff(front, axis=1)).mean() < 12
    bev = img[:, 1440:]
    assert (bev.reshape(-1, 3).max(1) > 60).mean() > 0.01  # points and boxes drawn


@pytest.mark.parametrize("args, message", [
    (["--image-size", "800by450"], "--image-size"),
    (["--rig", "/nonexistent/rig.yaml"], "rig file not found"),
])
def test_sim_bad_arguments(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    code = main(["sim", "--out", str(tmp_path / "x"), "--seconds", "0.2", "--no-progress", *args])
    assert code == 2
    assert message in capsys.readouterr().err
