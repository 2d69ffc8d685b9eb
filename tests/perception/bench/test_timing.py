"""Stage timers and latency statistics."""

import time

import numpy as np
import pytest

from perception.bench.timing import StageTimer, latency_stats, summarize_stages


def test_cpu_stage_timer_measures_and_resets():
    timer = StageTimer()
    with timer.stage("a"):
        time.sleep(0.02)
    with timer.stage("b"):
        pass
    with timer.stage("a"):
        time.sleep(0.01)
    t = timer.collect()
    assert list(t) == ["a", "b"]
    assert t["a"] >= 29.0  # two sleeps, summed
    assert t["b"] < t["a"]
    assert timer.collect() == {}


def test_stage_is_recorded_even_when_it_raises():
    timer = StageTimer()
    with pytest.raises(ValueError), timer.stage("boom"):
        raise ValueError
    assert "boom" in timer.collect()


def test_percentiles():
    s = latency_stats(np.arange(1, 101, dtype=float))
    assert s.n == 100 and s.p50_ms == pytest.approx(50.5) and s.max_ms == 100 and s.mean_ms == pytest.approx(50.5)
    assert s.p99_ms == pytest.approx(99.01)
    assert np.isnan(latency_stats([]).p50_ms)
    d = s.to_dict()
    assert set(d) == {"p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms"}


def test_summarize_keeps_stage_order():
    out = summarize_stages([{"decode": 1.0, "net": 5.0}, {"decode": 2.0, "net": 6.0, "nms": 0.5}])
    assert list(out) == ["decode", "net", "nms"]
    assert out["nms"].n == 1
