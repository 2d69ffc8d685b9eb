"""The printed tables: every stage a row, every statistic a column, ratios to the first run."""

from __future__ import annotations

from perception.bench.report import compare_table, format_ms, headline, soak_lines, stage_table
from perception.bench.runner import STAGES, BenchResult


def test_format_ms_keeps_about_four_digits():
    assert format_ms(0.123456).strip() == "0.123"
    assert format_ms(12.3456).strip() == "12.35"
    assert format_ms(1234.56).strip() == "1234.6"
    assert format_ms(None).strip() == "-" and format_ms(float("nan")).strip() == "-"


def test_the_stage_table_has_a_row_per_stage_and_the_totals(single: BenchResult):
    lat = single.runs[0].latency
    text = stage_table(lat)
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["stage", "(ms)"]
    assert lines[0].split()[2:] == ["p50", "p90", "p99", "p99.9", "max", "mean", "std"]
    names = [line.split()[0] for line in lines[2:] if not line.startswith("-")]
    assert names[:len(STAGES)] == list(STAGES)
    assert "overhead" in names and "end" in names and "sensor->output" not in names
    e2e = next(line for line in lines if line.startswith("end to end"))
    assert format_ms(lat["end_to_end"]["p50_ms"]).strip() == e2e.split()[3]


def test_the_headline_names_the_run_throughput_memory_and_load(single: BenchResult):
    text = headline(single.runs[0].latency)
    assert "tiny/torch:fp32@cpu" in text and "frames/s" in text and "RSS" in text and "load average" in text


def test_the_compare_table_has_a_row_per_run_with_ratios(compared: BenchResult):
    text = compare_table(compared.compare)
    rows = text.splitlines()[2:]
    assert [r.split()[0] for r in rows] == [r.spec.label for r in compared.runs]
    assert rows[0].split()[-2:] == ["1.00", "1.00"]
    assert rows[1].split()[-2] == f"{compared.compare[1]['p50_ratio']:.2f}"


def test_soak_lines_say_whether_each_criterion_holds(single: BenchResult):
    soak = dict(single.runs[0].latency["soak"])
    lines = soak_lines(soak)
    assert len(lines) == 2 and "p99" in lines[0] and "RSS" in lines[1]
    soak.update(p99_ratio=1.5, p99_within_10pct=False, rss_growth_pct=7.0, rss_growth_ok=False)
    lines = soak_lines(soak)
    assert "NOT within 10%" in lines[0] and "NOT under 5%" in lines[1]
