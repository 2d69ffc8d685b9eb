"""The benchmark's numbers: the latency.json schema, stage times that add up, interleaved comparisons,
pacing and the soak's drift."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from perception.bench.errors import BenchError
from perception.bench.runner import STAGES, BenchOptions, BenchResult, compare_rows, run_bench
from perception.bench.spec import RunSpec
from perception.replay.latency import LatencyLog

STAT_KEYS = {"p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms", "mean_ms", "std_ms", "n"}
ORDERED = ("p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms")


def _check_stats(stats: dict, n: int, where: str) -> None:
    assert set(stats) == STAT_KEYS, where
    assert stats["n"] == n, where
    values = [stats[k] for k in ORDERED]
    assert all(np.isfinite(values)), where
    assert values == sorted(values), f"{where}: percentiles out of order {values}"
    assert stats["std_ms"] >= 0 and values[0] <= stats["max_ms"], where
    assert min(values) >= 0, where


def test_the_json_is_replays_latency_schema_with_extended_stats(single: BenchResult):
    data = json.loads(json.dumps(single.to_json()))  # what --json writes: plain JSON
    replay_keys = set(LatencyLog("cpu", "torch", "fp32", "tiny").to_json())
    assert replay_keys <= set(data), f"missing replay keys: {replay_keys - set(data)}"
    assert (data["device"], data["backend"], data["precision"]) == ("cpu", "torch", "fp32")
    assert data["config"].startswith("tiny")
    assert data["frames"] == 42 and data["warmup_frames"] == 2 and len(data["warmup_end_to_end_ms"]) == 2
    assert list(data["stages"]) == list(STAGES) == data["stage_order"]
    for stage, stats in data["stages"].items():
        _check_stats(stats, 40, stage)
    for stage in ("decode", "sync", "preprocess", "network", "postprocess"):
        assert data["stages"][stage]["p50_ms"] > 0, stage
    _check_stats(data["end_to_end"], 40, "end_to_end")
    _check_stats(data["overhead"], 40, "overhead")
    assert data["sensor_to_output"] is None and data["rate"] is None
    assert data["throughput_fps"] == pytest.approx(1000.0 / data["end_to_end"]["mean_ms"])
    assert data["input"]["cycled_frames"] > 0 and data["input"]["records"] > 0
    env = data["environment"]
    assert env["cpu"] and env["torch"] and env["load_avg"] is not None and "load_avg_start" in env
    mem = data["memory"]
    assert 10 < mem["rss_mb_start"] <= mem["peak_rss_mb"] + 1 and mem["gpu"] is None
    assert data["memory_timeline"]["columns"] == ["frame", "rss_mb", "gpu_allocated_mb"]


def test_stage_times_add_up_to_end_to_end_within_the_overhead(single: BenchResult):
    run = single.runs[0]
    stage_sum = run.stage_ms.sum(axis=1)
    e2e = run.end_to_end_ms
    assert np.all(stage_sum <= e2e + 1e-6), "a stage timed more than the frame took"
    overhead = (e2e - stage_sum)[run.warmup:]
    assert np.median(overhead) < 0.1 * np.median(e2e[run.warmup:])
    assert overhead.mean() < 0.15 * e2e[run.warmup:].mean()
    reported = run.latency["overhead"]
    assert reported["mean_ms"] == pytest.approx(overhead.mean())
    assert reported["max_ms"] == pytest.approx(overhead.max())
    per_frame = run.latency["per_frame_ms"]
    assert per_frame["end_to_end"] == pytest.approx(e2e.round(4).tolist())
    assert set(per_frame["stages"]) == set(STAGES)


def test_the_stage_statistics_are_those_of_the_timed_frames(single: BenchResult):
    run = single.runs[0]
    timed = run.stage_ms[run.warmup:]
    for k, stage in enumerate(STAGES):
        stats = run.latency["stages"][stage]
        assert stats["p99_ms"] == pytest.approx(np.percentile(timed[:, k], 99))
        assert stats["mean_ms"] == pytest.approx(timed[:, k].mean())


def test_the_soak_reports_drift(single: BenchResult):
    soak = single.runs[0].latency["soak"]
    assert soak["frames"] == 40 and soak["window"] == 10
    e2e = single.runs[0].end_to_end_ms[2:]
    assert soak["first_p99_ms"] == pytest.approx(np.percentile(e2e[:10], 99))
    assert soak["last_p99_ms"] == pytest.approx(np.percentile(e2e[-10:], 99))
    assert soak["p99_ratio"] == pytest.approx(soak["last_p99_ms"] / soak["first_p99_ms"])
    assert soak["rss_start_mb"] > 10 and soak["rss_end_mb"] > 10 and soak["rss_samples"] >= 2
    assert soak["rss_growth_pct"] == pytest.approx(100 * (soak["rss_end_mb"] - soak["rss_start_mb"]) / soak["rss_start_mb"])
    assert soak["rss_growth_ok"] == (soak["rss_growth_pct"] < 5)
    assert soak["p99_within_10pct"] == (abs(soak["p99_ratio"] - 1) <= 0.1)
    assert soak["gpu_allocated_start_mb"] is None


def test_compare_interleaves_and_divides_by_the_first(compared: BenchResult):
    data = compared.to_json()
    labels = [r["spec"] for r in data["runs"]]
    assert labels == ["tiny/torch:fp32@cpu", "tiny/onnxruntime:fp32@cpu"]
    assert data["spec"] == labels[0] and data["runs"][1]["backend"] == "onnxruntime"
    assert data["runs"][0]["interleaved_with"] == [labels[1]]
    rows = data["compare"]
    assert [r["spec"] for r in rows] == labels
    assert rows[0]["p50_ratio"] == pytest.approx(1.0) and rows[0]["p99_ratio"] == pytest.approx(1.0)
    base, other = (r["end_to_end"] for r in data["runs"])
    assert rows[1]["p50_ratio"] == pytest.approx(other["p50_ms"] / base["p50_ms"])
    assert rows[1]["p99_ratio"] == pytest.approx(other["p99_ms"] / base["p99_ms"])
    assert rows[1]["mean_ratio"] == pytest.approx(other["mean_ms"] / base["mean_ms"])
    for run in data["runs"]:
        assert run["frames"] == 7
        for stats in run["stages"].values():
            assert stats["n"] == 6
    # both runs decoded and synchronized their own frames: the same frames, the same data
    a, b = compared.runs
    assert a.stage_ms[:, 0].sum() > 0 and b.stage_ms[:, 0].sum() > 0


def test_compare_rows_of_given_runs():
    from perception.bench.runner import RunResult

    def run(label: str, p50: float) -> RunResult:
        lat = {"frames": 3, "throughput_fps": 1000 / p50,
               "end_to_end": {"p50_ms": p50, "p99_ms": 2 * p50, "mean_ms": p50, "p90_ms": p50, "p99.9_ms": 2 * p50,
                              "max_ms": 2 * p50, "std_ms": 0.0}}
        return RunResult(RunSpec(backend=label), lat, np.zeros((3, 6)), np.zeros(3), np.zeros(3), 0)

    rows = compare_rows([run("torch", 10.0), run("onnxruntime", 25.0)])
    assert [r["p50_ratio"] for r in rows] == [1.0, 2.5]
    assert rows[1]["p99_ratio"] == 2.5 and rows[1]["throughput_fps"] == 40.0


def test_a_paced_run_measures_sensor_to_output(small_log: Path, bench_cache: Path, one_thread: None):
    result = run_bench(BenchOptions(specs=[RunSpec()], frames=4, warmup=1, input=str(small_log), rate=5.0, cache_dir=bench_cache))
    data = result.to_json()
    s2o = data["sensor_to_output"]
    _check_stats(s2o, 4, "sensor_to_output")
    assert data["rate"] == 5.0 and isinstance(data["frames_behind"], int)
    run = result.runs[0]
    # the age includes at least the frame's own processing, on a clock 5 x faster than the wall
    assert np.all(run.sensor_to_output_ms[1:] >= 5.0 * run.end_to_end_ms[1:] - 0.05)


def test_options_that_cannot_run_are_refused_before_any_work(small_log: Path):
    with pytest.raises(BenchError, match="--compare"):
        run_bench(BenchOptions(specs=[RunSpec(), RunSpec(backend="onnxruntime")], rate=1.0, input=str(small_log)))
    with pytest.raises(BenchError, match="CUDA only"):
        run_bench(BenchOptions(specs=[RunSpec(backend="tensorrt")], input=str(small_log)))
    with pytest.raises(BenchError, match="no such log"):
        run_bench(BenchOptions(specs=[RunSpec()], input=str(small_log.parent / "nothing-here")))
