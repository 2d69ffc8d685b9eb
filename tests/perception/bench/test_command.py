"""``bevfuse bench`` end to end: the table on stdout, the JSON and plots on disk, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from perception.bench.runner import STAGES
from perception.cli import main


def test_bench_prints_the_stage_table_and_writes_json_and_plots(small_log: Path, bench_cache: Path, one_thread: None,
                                                                 tmp_path: Path, capsys):
    out = tmp_path / "out" / "bench.json"
    code = main(["bench", "--config", "tiny", "--device", "cpu", "--frames", "5", "--warmup", "1", "--input", str(small_log),
                 "--json", str(out), "--plots", str(tmp_path / "plots"), "--cache", str(bench_cache), "--no-progress"])
    assert code == 0
    text = capsys.readouterr().out
    for stage in STAGES:
        assert any(line.startswith(stage + " ") for line in text.splitlines()), stage
    assert "end to end" in text and "p99.9" in text and "frames/s" in text
    data = json.loads(out.read_text())
    assert list(data["stages"]) == list(STAGES)
    for stats in data["stages"].values():
        assert stats["n"] == 5 and {"p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms", "mean_ms", "std_ms"} <= set(stats)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["cdf.png", "stages.png", "timeline.png"]


def test_bad_options_end_with_one_line(capsys):
    assert main(["bench", "--compare", "torch,tourch"]) == 2
    err = capsys.readouterr().err
    assert "bevfuse bench: error:" in err and "'tourch'" in err and len(err.strip().splitlines()) == 1
    assert main(["bench", "--soak", "5", "--frames", "5"]) == 2
    assert "--soak" in capsys.readouterr().err
    assert main(["bench", "--backend", "cudagraph"]) == 2
    assert "CUDA only" in capsys.readouterr().err
