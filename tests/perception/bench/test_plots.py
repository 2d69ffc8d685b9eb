"""The three PNGs are written, are real images, and have a panel per run."""

from __future__ import annotations

from pathlib import Path

import cv2

from perception.bench.plots import write_plots
from perception.bench.runner import BenchResult


def _read(path: Path):
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, f"{path}: not a readable image"
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert img.std() > 5, f"{path}: blank"
    return img


def test_plots_of_one_run_with_its_memory(single: BenchResult, tmp_path: Path):
    paths = write_plots(single.runs, tmp_path / "plots", single.memory_timeline)
    assert [p.name for p in paths] == ["stages.png", "cdf.png", "timeline.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        _read(p)


def test_more_runs_make_taller_pictures(single: BenchResult, compared: BenchResult, tmp_path: Path):
    one = write_plots(single.runs, tmp_path / "one")
    two = write_plots(compared.runs, tmp_path / "two")
    assert _read(two[0]).shape[0] > _read(one[0]).shape[0]  # a bar per run
    assert _read(two[2]).shape[0] > _read(one[2]).shape[0]  # a timeline panel per run
