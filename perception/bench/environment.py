"""The environment a figure was measured in: what ``latency.json`` and BENCHMARKS.md record.

CPU model and cores, memory, Python, numpy/numba/torch/ONNX Runtime/TensorRT versions, the GPU
name, driver and CUDA version when torch sees one, and on a Jetson the power mode and clocks.
Every probe is optional: a missing library is recorded as ``None``, never an error.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["collect_environment", "cpu_model", "peak_rss_mb"]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_rss_mb() -> float:
    """Peak resident set size of this process, MiB (ru_maxrss is KiB on Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _run(cmd: list[str]) -> str | None:
    if not shutil.which(cmd[0]):
        return None
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def collect_environment(device: str = "cpu") -> dict[str, Any]:
    env: dict[str, Any] = {
        "device": device,
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "sched_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": _version("numpy"),
        "numba": _version("numba"),
        "torch": _version("torch"),
        "onnxruntime": _version("onnxruntime"),
        "tensorrt": _version("tensorrt"),
        "gpu": None,
        "gpu_driver": None,
        "cuda": None,
    }
    try:
        import torch

        env["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            env["gpu"] = torch.cuda.get_device_name()
            env["cuda"] = torch.version.cuda
            env["gpu_driver"] = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    except ImportError:
        pass
    if Path("/etc/nv_tegra_release").exists():  # a Jetson: record power mode and clocks
        env["jetson_release"] = Path("/etc/nv_tegra_release").read_text().splitlines()[0]
        env["nvpmodel"] = _run(["nvpmodel", "-q"])
        env["jetson_clocks"] = _run(["jetson_clocks", "--show"])
    return env
