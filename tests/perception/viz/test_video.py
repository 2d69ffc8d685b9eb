"""bev.mp4 plays: OpenCV reads back every frame, at the size written."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from perception.errors import ShapeError
from perception.viz.video import VideoWriter, fit_frame


def test_frames_read_back(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    with VideoWriter(path, fps=10) as video:
        for k in range(6):
            frame = np.zeros((121, 161, 3), np.uint8)  # odd sizes: rounded down to even
            frame[:, :, 0] = 40 * k  # red grows
            video.write(frame)
        video.write(np.zeros((60, 80, 3), np.uint8))  # another size: letterboxed into the first
    assert video.frames == 7 and video.size == (160, 120)
    cap = cv2.VideoCapture(str(path))
    got = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        got.append(bgr)
    cap.release()
    assert len(got) == 7
    assert got[0].shape == (120, 160, 3)
    # RGB in, BGR out of OpenCV: the red channel is BGR's last
    assert abs(float(got[5][..., 2].mean()) - 200) < 12 and float(got[5][..., 0].mean()) < 12


def test_bad_frames_and_fit() -> None:
    with pytest.raises(ShapeError):
        VideoWriter("x.mp4", fps=0)
    with pytest.raises(ShapeError, match="uint8"):
        VideoWriter("x.mp4", fps=5).write(np.zeros((10, 10, 3), np.float32))
    out = fit_frame(np.full((10, 40, 3), 255, np.uint8), 40, 40)
    assert out.shape == (40, 40, 3) and out[0].max() == 0 and out[20].min() == 255
