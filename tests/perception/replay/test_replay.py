"""bevfuse replay end to end: every output of a damaged log, determinism, pacing, the real logs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from mcap.reader import make_reader
from rosbags.highlevel import AnyReader

from perception.cli import main
from perception.pipeline import Pipeline
from perception.replay.errors import ReplayError
from perception.replay.runner import ReplayOptions, replay
from tests.perception.replay.fixtures import corrupt_log, tiny_checkpoint  # noqa: F401 - fixtures
from tests.perception.replay.logs import small_rig, write_log

STAT_KEYS = {"p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms"}


@pytest.fixture(scope="module")
def pipeline(tiny_checkpoint: Path) -> Pipeline:  # noqa: F811
    return Pipeline.from_checkpoint(tiny_checkpoint)


@pytest.fixture(scope="module")
def first_run(pipeline: Pipeline, corrupt_log: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: F811
    out = tmp_path_factory.mktemp("replay") / "out"
    return replay([corrupt_log], pipeline, ReplayOptions(out_dir=out, png_every=2, progress=False))


def test_every_output_of_a_damaged_log(first_run) -> None:
    out = first_run.out_dir
    for name in ("detections.mcap", "detections.json", "ground_truth.json", "metrics.json", "latency.json", "report.md",
                 "bev", "cameras", "bev.mp4"):
        assert (out / name).exists(), name
    # 5 frames: the first (its only sweep all NaN) is skipped as corrupt, 4 go through
    lat = json.loads((out / "latency.json").read_text())
    assert lat["frames"] == 4 and first_run.frames == 4
    assert {"device", "backend", "precision", "config", "frames", "frames_dropped", "degraded_frames", "stages",
            "end_to_end", "sensor_to_output"} <= set(lat)
    assert (lat["device"], lat["backend"], lat["precision"]) == ("cpu", "torch", "fp32")
    assert lat["frames_dropped"] == {"corrupt frame: LIDAR_TOP: all 3400 points of the sweep are NaN/inf": 1}
    assert lat["degraded_frames"] == {"CAM_FRONT": 1}  # its JPEG was cut short
    assert list(lat["stages"]) == ["input", "preprocess", "inference", "postprocess"]
    assert set(lat["end_to_end"]) == STAT_KEYS and lat["sensor_to_output"] is None
    parts = sum(lat["stages"][s]["mean_ms"] for s in lat["stages"])
    assert lat["end_to_end"]["mean_ms"] == pytest.approx(parts, rel=0.05)

    report = (out / "report.md").read_text()
    # the damaged messages and the skipped frame are named, with what was wrong
    assert "could not decode 1006 bytes" in report and "/cam_front/image/compressed" in report
    assert "point_step is 7" in report and "/lidar_top/points" in report
    assert "frame at 2023-11-14 22:13:20.050 UTC (1700000000050000000): LIDAR_TOP: all 3400 points" in report
    # the two NaN sweeps, accumulated with good ones into 3 later frames: cleaned, not skipped
    assert "LIDAR_TOP: NaN/inf points removed (frames) | 3 |" in report
    assert "## Detection metrics (nuScenes)" in report and "| mAP | NDS |" in report

    metrics = json.loads((out / "metrics.json").read_text())
    assert {"mAP", "NDS", "mATE", "mASE", "mAOE", "mAVE", "mAAE", "per_class"} <= set(metrics)
    dets = json.loads((out / "detections.json").read_text())["results"]
    assert len(dets) == 4 and all(t.startswith("corrupt:") for t in dets)
    box = next(iter(dets.values()))[0]
    assert abs(box["translation"][0] - 1000) < 60  # in the world frame of the log's poses

    # the bag: the mcap library and rosbags both read it
    [mcap_file] = list((out / "detections.mcap").glob("*.mcap"))
    with mcap_file.open("rb") as f:
        summary = make_reader(f).get_summary()
    topics = {c.topic: summary.schemas[c.schema_id].name for c in summary.channels.values()}
    assert topics["/bevfuse/detections"] == "vision_msgs/msg/Detection3DArray"
    assert topics["/bevfuse/markers"] == "visualization_msgs/msg/MarkerArray"
    assert topics["/lidar_top/points"] == "sensor_msgs/msg/PointCloud2"
    with AnyReader([out / "detections.mcap"]) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts["/bevfuse/detections"] == 4 and counts["/bevfuse/ground_truth/markers"] == 4

    # pictures: PNGs every 2nd frame, the video has them all and OpenCV reads it
    assert sorted(p.name for p in (out / "bev").iterdir()) == ["000000.png", "000002.png"]
    cap = cv2.VideoCapture(str(out / "bev.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 4


def test_same_log_twice_same_detections(first_run, pipeline: Pipeline, tmp_path: Path) -> None:
    # the same log twice in one replay: each into its own folder, and the same detections for both
    log = write_log(tmp_path / "clean", seconds=0.3)
    out = tmp_path / "out"
    res = replay([log, log], pipeline, ReplayOptions(out_dir=out, pictures=False, progress=False))
    assert res.frames == 6
    assert (out / "clean" / "detections.mcap").is_dir() and (out / "clean-2" / "detections.mcap").is_dir()
    assert res.outputs[0] == "detections.json" and "clean-2/detections.mcap" in res.outputs
    results = json.loads((out / "detections.json").read_text())["results"]
    def boxes(log: str) -> dict[str, str]:
        return {t.split(":")[1]: json.dumps([{k: v for k, v in b.items() if k != "sample_token"} for b in bs])
                for t, bs in results.items() if t.startswith(log + ":")}

    first, second = boxes("clean"), boxes("clean-2")
    assert len(first) == 3 and first == second
    # and an output folder in use is not overwritten without --force
    with pytest.raises(ReplayError, match="--force"):
        replay([log], pipeline, ReplayOptions(out_dir=out, pictures=False, bag=False, progress=False))
    with pytest.raises(ReplayError, match="--force"):
        replay([log], pipeline, ReplayOptions(out_dir=first_run.out_dir, progress=False))


def test_real_time_pace_drops_what_it_cannot_keep_up_with(pipeline: Pipeline, corrupt_log: Path, tmp_path: Path) -> None:  # noqa: F811
    # 50 x real time: a frame every 2 ms of wall time, which no CPU network keeps up with
    res = replay([corrupt_log], pipeline, ReplayOptions(out_dir=tmp_path, rate=50.0, pictures=False, progress=False))
    lat = res.latency
    dropped = lat["frames_dropped"].get("behind real time (a newer frame was due before the stack was free)", 0)
    corrupt = lat["frames_dropped"].get("corrupt frame: LIDAR_TOP: all 3400 points of the sweep are NaN/inf", 0)
    assert dropped >= 1 and res.frames >= 1 and res.frames + dropped + corrupt == 5
    # paced, the age of each frame's detections on the replay clock is measured: at least its own run time
    assert set(lat["sensor_to_output"]) == STAT_KEYS
    assert lat["sensor_to_output"]["max_ms"] >= 50 * lat["stages"]["inference"]["max_ms"] * 0.9


def test_cli_real_nuscenes_frame(realdata: Path, tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:  # noqa: F811
    code = main(["replay", str(realdata / "nuscenes_demo"), "--model", str(tiny_checkpoint), "--out", str(tmp_path),
                 "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "NDS" in out and "mAP" in out and "p50" in out and "p99" in out and "frames/s" in out
    assert "no radar in the log" in out
    dets = json.loads((tmp_path / "detections.json").read_text())["results"]
    [(token, boxes)] = dets.items()
    assert token == "nuscenes_demo:1532402927647951000" and len(boxes) > 0
    # nuScenes' global frame: the ego is at (411, 1181) in that map
    assert np.median([b["translation"][0] for b in boxes]) == pytest.approx(411, abs=60)
    assert json.loads((tmp_path / "metrics.json").read_text())["per_class"]["car"]["num_gt"] > 0
    mosaic = cv2.imread(str(tmp_path / "cameras" / "000000.jpg"))
    assert mosaic is not None and mosaic.shape[0] == 800
    assert (tmp_path / "bev" / "000000.png").is_file()


def test_cli_log_without_lidar_says_what_is_missing(realdata: Path, tiny_checkpoint: Path, tmp_path: Path,  # noqa: F811
                                                    capsys) -> None:
    code = main(["replay", str(realdata / "ros1_gps_imu" / "husky_gps_imu_odom.bag"), "--model", str(tiny_checkpoint),
                 "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot replay: no LiDAR" in err and "missing sensors: lidar, camera, radar" in err
    assert "gnss /fix (989)" in err and "imu /imu/data (11865)" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_rig_of_the_test_log() -> None:
    rig = small_rig()
    assert [c.intrinsics.width for c in rig.cameras] == [160] * 6
