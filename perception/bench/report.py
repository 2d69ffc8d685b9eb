"""The text ``bevfuse bench`` prints: the stage table of a run, the comparison table of several, the
soak's drift lines. Plain fixed-width text (a terminal, a CI log, a paste into BENCHMARKS.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["compare_table", "format_ms", "headline", "soak_lines", "stage_table"]

_COLS = (("p50", "p50_ms"), ("p90", "p90_ms"), ("p99", "p99_ms"), ("p99.9", "p99.9_ms"), ("max", "max_ms"),
         ("mean", "mean_ms"), ("std", "std_ms"))


def format_ms(value: float | None, width: int = 9) -> str:
    """A millisecond figure with about four significant digits, right-aligned; '-' for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-".rjust(width)
    v = float(value)
    text = f"{v:.3f}" if abs(v) < 10 else f"{v:.2f}" if abs(v) < 100 else f"{v:.1f}"
    return text.rjust(width)


def _row(name: str, stats: Mapping[str, Any] | None, width: int) -> str:
    cells = "".join(format_ms(None if stats is None else stats.get(key)) for _, key in _COLS)
    return f"{name:<{width}}{cells}"


def stage_table(latency: Mapping[str, Any]) -> str:
    """Per-stage percentiles (ms), then the stage sum's glue (overhead), end to end and sensor to output."""
    rows: list[tuple[str, Mapping[str, Any] | None]] = list(latency.get("stages", {}).items())
    width = max([len(n) for n, _ in rows] + [len("sensor->output")]) + 2
    header = f"{'stage (ms)':<{width}}" + "".join(label.rjust(9) for label, _ in _COLS)
    lines = [header, "-" * len(header)]
    lines += [_row(name, stats, width) for name, stats in rows]
    lines.append("-" * len(header))
    if latency.get("overhead"):
        lines.append(_row("overhead", latency["overhead"], width))
    lines.append(_row("end to end", latency.get("end_to_end"), width))
    if latency.get("sensor_to_output"):
        lines.append(_row("sensor->output", latency["sensor_to_output"], width))
    return "\n".join(lines)


def headline(latency: Mapping[str, Any]) -> str:
    """What ran, on what, how many frames; throughput, memory and load on a second line."""
    inp = latency.get("input", {})
    src = (f"simulated log {inp.get('image_size')} {inp.get('seconds')} s seed {inp.get('seed')}" if inp.get("source") == "sim"
           else f"log {inp.get('path')}")
    cyc = f"{inp.get('cycled_frames')} frames cycled after {inp.get('warm_frames')} warm-up frames of the log"
    fps = latency.get("throughput_fps")
    mem = latency.get("memory") or {}
    env = latency.get("environment") or {}
    gpu = mem.get("gpu")
    gpu_text = f", GPU peak allocated {gpu['peak_allocated_mb']:.0f} MiB" if gpu else ""
    load = f"{env.get('load_avg_start')} at the start, {env.get('load_avg')} at the end"
    first = (f"bevfuse bench: {latency.get('spec')}, {latency.get('config')}: {latency.get('frames')} frames "
             f"({latency.get('warmup_frames')} warm-up, not in the statistics); {src} ({cyc})")
    pace = "" if latency.get("rate") is None else (f"; paced at {latency['rate']:g} x real time, "
                                                    f"{latency.get('frames_behind')} frames started behind")
    fps_text = f"{fps:.2f} frames/s (1000 / mean end to end)" if fps else "n/a"
    nan = float("nan")
    second = (f"throughput {fps_text}{pace}; RSS {mem.get('rss_mb_start', nan):.0f} -> {mem.get('rss_mb_end', nan):.0f} MiB, "
              f"peak {mem.get('peak_rss_mb', nan):.0f} MiB{gpu_text}; {env.get('cpu')} ({env.get('sched_cores')} cores), "
              f"load average {load}")
    return first + "\n" + second


def compare_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """End-to-end figures per run and their ratio to the first run (>1: slower than it)."""
    width = max(len(str(r["spec"])) for r in rows) + 2
    header = (f"{'run (end to end, ms)':<{width}}" + "".join(label.rjust(9) for label, _ in _COLS[:6]) + "fps".rjust(9)
              + "x p50".rjust(8) + "x p99".rjust(8))
    lines = [header, "-" * len(header)]
    for r in rows:
        cells = "".join(format_ms(r.get(key)) for _, key in _COLS[:6])
        fps = r.get("throughput_fps")
        ratios = "".join((f"{r[k]:.2f}" if r.get(k) is not None else "-").rjust(8) for k in ("p50_ratio", "p99_ratio"))
        lines.append(f"{r['spec']:<{width}}{cells}{(f'{fps:.2f}' if fps else '-').rjust(9)}{ratios}")
    return "\n".join(lines)


def soak_lines(soak: Mapping[str, Any]) -> list[str]:
    """The drift of a soak in two lines, with the pass/fail of each criterion."""
    ratio = soak.get("p99_ratio")
    growth = soak.get("rss_growth_pct")
    lines = [f"soak: {soak['frames']} frames; p99 of the first {soak['window']}: {soak['first_p99_ms']:.2f} ms, of the last "
             f"{soak['window']}: {soak['last_p99_ms']:.2f} ms (ratio {ratio:.3f}: "
             f"{'within' if soak.get('p99_within_10pct') else 'NOT within'} 10%)",
             f"soak: RSS {soak['rss_start_mb']:.1f} -> {soak['rss_end_mb']:.1f} MiB ({growth:+.2f}%: "
             f"{'under' if soak.get('rss_growth_ok') else 'NOT under'} 5%)"]
    if soak.get("gpu_allocated_start_mb") is not None:
        lines.append(f"soak: GPU allocated {soak['gpu_allocated_start_mb']:.1f} -> {soak['gpu_allocated_end_mb']:.1f} MiB")
    return lines
