"""latency.json's keys and figures, and report.md's tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from perception.replay.latency import LatencyLog
from perception.replay.report import format_report

STAT_KEYS = {"p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms"}


def _log(paced: bool) -> LatencyLog:
    log = LatencyLog(device="cpu", backend="torch", precision="fp32", config="tiny")
    for k in range(1, 11):
        log.add({"preprocess": float(k), "backend": 2.0 * k}, end_to_end_ms=3.0 * k + 1,
                sensor_to_output_ms=5.0 * k if paced else None, missing=frozenset({"CAM_BACK"}) if k % 5 == 0 else frozenset())
    log.drop("behind real time")
    log.wall_s = 2.0
    return log


def test_latency_json_has_the_issue_keys(tmp_path: Path) -> None:
    data = _log(paced=False).write(tmp_path / "latency.json")
    assert json.loads((tmp_path / "latency.json").read_text()) == data
    assert {"device", "backend", "precision", "config", "frames", "frames_dropped", "degraded_frames", "stages",
            "end_to_end", "sensor_to_output"} <= set(data)
    assert data["frames"] == 10 and data["frames_dropped"] == {"behind real time": 1}
    assert data["degraded_frames"] == {"CAM_BACK": 2}
    assert list(data["stages"]) == ["preprocess", "backend"]
    assert set(data["stages"]["backend"]) == STAT_KEYS
    # the first frame is a warm-up (JIT compilation): counted, not in the statistics
    assert data["warmup_frames"] == 1 and data["warmup_end_to_end_ms"] == [4.0]
    assert data["end_to_end"]["p50_ms"] == pytest.approx(19.0)  # median of 7, 10, ..., 31
    assert data["end_to_end"]["max_ms"] == 31.0
    one = LatencyLog(device="cpu", backend="torch", precision="fp32", config="tiny")
    one.add({"backend": 5.0}, end_to_end_ms=5.0)
    assert one.to_json()["end_to_end"]["p50_ms"] == 5.0  # a single frame is all there is
    assert data["sensor_to_output"] is None  # not paced: stamps and wall clock are unrelated
    assert data["fps"] == pytest.approx(5.0)
    paced = _log(paced=True).to_json()
    assert set(paced["sensor_to_output"]) == STAT_KEYS


def test_report_names_what_was_skipped() -> None:
    latency = _log(paced=False).to_json()
    metrics = {"mAP": 0.25, "NDS": 0.4, "mATE": 0.3, "mASE": 0.2, "mAOE": 0.5, "mAVE": None, "mAAE": 0.1,
               "per_class": {"car": {"mAP": 0.8, "ATE": 0.2, "ASE": 0.1, "AOE": 0.05, "AVE": 0.3, "AAE": 0.1,
                                     "num_gt": 10, "num_pred": 12}}}
    text = format_report(
        run={"logs": "a.mcap", "frames": 10}, latency=latency, metrics=metrics,
        skipped={"/lidar_top/points: PointCloud2: point_step is 7 for 100 points": 1,
                 "/cam_front/image/compressed: could not decode 100 bytes as jpeg": 2},
        sync_drops={"LIDAR_TOP: NaN points": 1}, outputs=["detections.mcap"], notes=["the log has no radar"])
    assert "| mAP | NDS | mATE | mASE | mAOE | mAVE | mAAE |" in text
    assert "| 0.2500 | 0.4000 | 0.3000 | 0.2000 | 0.5000 | n/a | 0.1000 |" in text
    assert "| car | 0.8000 |" in text
    assert "| /lidar_top/points: PointCloud2: point_step is 7 for 100 points | 1 |" in text
    assert "| /cam_front/image/compressed: could not decode 100 bytes as jpeg | 2 |" in text
    assert "| LIDAR_TOP: NaN points | 1 |" in text
    assert "| behind real time | 1 |" in text and "| CAM_BACK | 2 |" in text
    assert "| end to end | 19.00 |" in text and "| sensor to output | n/a |" in text
    assert "> the log has no radar" in text
    no_gt = format_report(run={}, latency=latency, metrics=None, skipped={}, sync_drops={}, outputs=[])
    assert "no ground truth" in no_gt and "decoded every message" in no_gt
