"""The benchmark's pictures (matplotlib, Agg: no display needed), one PNG each:

- ``stages.png``: one horizontal bar per run, the mean time of each stage stacked (so the bar is the
  mean end-to-end time less the overhead), the p50 and p99 of end to end marked on it;
- ``cdf.png``: the distribution of end-to-end latency per run (where the tail starts, how long it is);
- ``timeline.png``: per frame, each stage stacked, for every run (a drift, a periodic stall, a
  slow first cycle show here and nowhere in the percentiles), with the process RSS below it when
  a memory timeline is given (a soak).

Warm-up frames are left out of the first two (as of the statistics) and shaded in the third.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from perception.bench.runner import STAGES, RunResult

__all__ = ["write_plots"]

_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3")


def _plt():  # noqa: ANN202 - the pyplot module
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _stages(runs: Sequence[RunResult], path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 1.9 + 0.7 * len(runs)))
    y = np.arange(len(runs))
    left = np.zeros(len(runs))
    for k, stage in enumerate(STAGES):
        means = np.array([r.stage_ms[r.warmup:, k].mean() if r.stage_ms.shape[0] > r.warmup else 0.0 for r in runs])
        ax.barh(y, means, left=left, color=_COLORS[k % len(_COLORS)], label=stage, height=0.6)
        left += means
    right = float(left.max()) if len(runs) else 1.0
    for j, r in enumerate(runs):
        e2e = r.end_to_end_ms[r.warmup:]
        if e2e.size:
            p50, p99 = np.percentile(e2e, [50, 99])
            right = max(right, float(p99))
            ax.plot([p50], [j], marker="|", color="black", markersize=22, mew=2)
            ax.plot([p99], [j], marker="|", color="red", markersize=22, mew=2)
            ax.text(left[j], j, f"  p50 {p50:.1f} / p99 {p99:.1f} ms", va="center", fontsize=8)
    ax.set_xlim(0, right * 1.35)
    ax.set_yticks(y, [r.spec.label for r in runs])
    ax.invert_yaxis()
    ax.set_xlabel("ms per frame (bars: mean per stage; black | p50, red | p99 of end to end)")
    ax.legend(ncol=len(STAGES), fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.suptitle("stage times", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _cdf(runs: Sequence[RunResult], path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5))
    for j, r in enumerate(runs):
        e2e = np.sort(r.end_to_end_ms[r.warmup:])
        if not e2e.size:
            continue
        q = np.arange(1, e2e.size + 1) / e2e.size
        ax.step(e2e, q, where="post", color=_COLORS[j % len(_COLORS)], label=f"{r.spec.label} (n={e2e.size})")
    for level in (0.5, 0.9, 0.99):
        ax.axhline(level, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("end-to-end latency (ms)")
    ax.set_ylabel("fraction of frames at or below")
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("end-to-end latency CDF")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _timeline(runs: Sequence[RunResult], path: Path, memory: Sequence[Sequence[float]] | None) -> None:
    plt = _plt()
    rows = len(runs) + (1 if memory else 0)
    fig, axes = plt.subplots(rows, 1, figsize=(11, 2.6 * rows), sharex=True, squeeze=False)
    for j, r in enumerate(runs):
        ax = axes[j, 0]
        x = np.arange(r.stage_ms.shape[0])
        ax.stackplot(x, r.stage_ms.T, labels=STAGES, colors=_COLORS[: len(STAGES)], step="mid", lw=0)
        ax.plot(x, r.end_to_end_ms, color="black", lw=0.5, label="end to end")
        if r.warmup:
            ax.axvspan(-0.5, r.warmup - 0.5, color="grey", alpha=0.2, label="warm-up")
        ax.set_ylabel("ms")
        ax.set_title(r.spec.label, fontsize=9)
        ax.grid(alpha=0.3)
        if j == 0:
            ax.legend(ncol=8, fontsize=7, loc="upper right")
    if memory:
        m = np.asarray(memory, dtype=float)
        ax = axes[-1, 0]
        ax.plot(m[:, 0], m[:, 1], color="#4c72b0", label="RSS (MiB)")
        ax.set_ylabel("RSS MiB")
        if np.isfinite(m[:, 2]).any():
            ax2 = ax.twinx()
            ax2.plot(m[:, 0], m[:, 2], color="#c44e52", label="GPU allocated (MiB)")
            ax2.set_ylabel("GPU MiB")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("frame")
    fig.suptitle("per-frame stage times")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_plots(runs: Sequence[RunResult], out_dir: str | Path, memory: Sequence[Sequence[float]] | None = None) -> list[Path]:
    """Write ``stages.png``, ``cdf.png`` and ``timeline.png`` into ``out_dir`` (created); returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "stages.png", out / "cdf.png", out / "timeline.png"]
    _stages(runs, paths[0])
    _cdf(runs, paths[1])
    _timeline(runs, paths[2], memory)
    return paths
