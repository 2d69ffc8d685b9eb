"""bev/ PNGs, cameras/ mosaics and bev.mp4 of a replay, on synthetic frames and the real nuScenes frame."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from perception.replay.bag_sink import DetectionsBag
from perception.replay.pictures import PictureWriter
from perception.viz.bev import BevView
from perception.viz.colors import class_color
from tests.perception.replay import frames as F


def _read_video(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames


def test_pictures_of_a_short_replay(tmp_path: Path) -> None:
    rig = F.rig()
    det = F.boxes(F.T0)
    pics = PictureWriter(tmp_path, rig, BevView.for_range(51.2, 400), det.class_names, fps=10, every=2)
    for k in range(5):
        frame = F.frame(rig, k)
        if k == 3:  # a frame without its back camera
            frame = replace(frame, images={n: i for n, i in frame.images.items() if n != "CAM_BACK"},
                            missing=frozenset({"CAM_BACK"}))
        pics.write(frame, F.boxes(frame.stamp_ns), log_name="synthetic")
    pics.close()
    assert sorted(p.name for p in (tmp_path / "bev").iterdir()) == ["000000.png", "000002.png", "000004.png"]
    assert sorted(p.name for p in (tmp_path / "cameras").iterdir()) == ["000000.jpg", "000002.jpg", "000004.jpg"]
    bev = cv2.imread(str(tmp_path / "bev" / "000000.png"))[..., ::-1]
    assert bev.shape == (400, 400, 3)
    assert np.any(np.all(np.abs(bev.astype(int) - class_color("car")) < 30, axis=-1))
    mosaic = cv2.imread(str(tmp_path / "cameras" / "000000.jpg"))
    # 3 x 2 tiles, each half the BEV's height, 16:9: 355 x 200
    assert mosaic.shape == (400, 3 * 355, 3)
    video = _read_video(tmp_path / "bev.mp4")
    assert len(video) == 5
    # the BEV beside the mosaic, 1465 wide, rounded down to even for the encoder
    assert video[0].shape == (400, 1464, 3)


def test_real_nuscenes_frame_pictures_and_bag(realdata: Path, tmp_path: Path) -> None:
    from perception.io.base import open_log
    from perception.sync.replay import frames_from_log

    with open_log(realdata / "nuscenes_demo") as reader:
        stream = frames_from_log(reader)
        [frame] = list(stream)
        rig = stream.rig
    gt = frame.ground_truth
    assert gt is not None and len(gt) == 68
    # the ground truth, 0.4 m off, as detections: they must land on the objects in every camera
    det = replace(gt, center=gt.center + np.array([0.4, 0.0, 0.0]), num_lidar_pts=None, num_radar_pts=None,
                  score=np.full(len(gt), 0.8, np.float32))
    pics = PictureWriter(tmp_path, rig, BevView.for_range(51.2, 800), det.class_names, fps=2)
    pics.write(frame, det, log_name="nuscenes_demo")
    pics.close()
    mosaic = cv2.imread(str(tmp_path / "cameras" / "000000.jpg"))[..., ::-1]
    assert mosaic.shape == (800, 3 * 711, 3)
    # CAM_FRONT (the middle top tile) sees the cars ahead: orange pixels there
    front = mosaic[:400, 711:1422].astype(int)
    assert np.sum(np.all(np.abs(front - class_color("car")) < 50, axis=-1)) > 50
    assert len(_read_video(tmp_path / "bev.mp4")) == 1
    bag = DetectionsBag(tmp_path / "detections", rig)
    bag.write(frame, det)
    bag.close()
    counts = bag.counts
    assert counts["/bevfuse/detections"] == 1 and counts["/LIDAR_TOP"] == 1
    assert sum(1 for t in counts if t.endswith("/compressed")) == 6


@pytest.mark.parametrize("every", [0, 1])
def test_every_at_least_one(tmp_path: Path, every: int) -> None:
    rig = F.rig()
    pics = PictureWriter(tmp_path, rig, BevView.for_range(20.0, 200), F.boxes(F.T0).class_names, every=every, video=False)
    pics.write(F.frame(rig, 0), F.boxes(F.T0))
    pics.write(F.frame(rig, 1), F.boxes(F.T0))
    pics.close()
    assert len(list((tmp_path / "bev").iterdir())) == 2
