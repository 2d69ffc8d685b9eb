"""The environment a figure was measured in: what ``latency.json`` and BENCHMARKS.md record.

CPU model and cores, memory, the load average (this project's machines are shared: a figure taken
at load 3 on 2 cores is not one taken on a quiet machine), Python, numpy/numba/torch/ONNX
Runtime/TensorRT versions, the GPU name, memory, driver and CUDA version when torch sees one, and
on a Jetson the power mode and clocks. Every probe is optional: a missing library is recorded as
``None``, never an error.

The memory probes (``rss_mb``, ``peak_rss_mb``, ``gpu_memory_mb``) are what ``bevfuse bench``
samples during a run; they read ``/proc`` and torch's allocator counters, so they cost microseconds
and allocate nothing on the GPU.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["collect_environment", "cpu_model", "gpu_memory_mb", "jetson_power_mode", "load_average", "peak_rss_mb", "reset_gpu_peak", "rss_mb"]


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


def _proc_status_kib(key: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def rss_mb() -> float:
    """Resident set size of this process now, MiB (``VmRSS``; the peak where /proc is absent)."""
    kib = _proc_status_kib("VmRSS")
    return kib / 1024.0 if kib is not None else peak_rss_mb()


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _cuda_index(device: str) -> int | None:
    if not str(device).startswith("cuda"):
        return None
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        return torch.device(device).index if torch.device(device).index is not None else torch.cuda.current_device()
    except (ImportError, RuntimeError):
        return None


def gpu_memory_mb(device: str) -> dict[str, float] | None:
    """torch's allocator on ``device``: allocated now, peak allocated since the last
    ``reset_gpu_peak``, reserved, MiB; None off CUDA. (TensorRT and ONNX Runtime allocate outside
    torch's allocator: their memory shows in ``reserved`` only through nvidia-smi, not here.)"""
    idx = _cuda_index(device)
    if idx is None:
        return None
    import torch

    mib = 1024.0 * 1024.0
    return {"allocated_mb": torch.cuda.memory_allocated(idx) / mib, "peak_allocated_mb": torch.cuda.max_memory_allocated(idx) / mib,
            "reserved_mb": torch.cuda.memory_reserved(idx) / mib}


def reset_gpu_peak(device: str) -> None:
    """Start a new peak for ``gpu_memory_mb``'s ``peak_allocated_mb`` (no-op off CUDA)."""
    idx = _cuda_index(device)
    if idx is not None:
        import torch

        torch.cuda.reset_peak_memory_stats(idx)


def _run(cmd: list[str]) -> str | None:
    if not shutil.which(cmd[0]):
        return None
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def jetson_power_mode(nvpmodel_q: str | None) -> str | None:
    """The mode name of ``nvpmodel -q`` (``NV Power Mode: MAXN`` then the mode id) as ``MAXN (0)``."""
    if not nvpmodel_q:
        return None
    name = ident = None
    for line in nvpmodel_q.splitlines():
        line = line.strip()
        if line.lower().startswith("nv power mode:"):
            name = line.split(":", 1)[1].strip()
        elif line.isdigit():
            ident = line
    if name is None:
        return None
    return f"{name} ({ident})" if ident is not None else name


def _mem_total_mb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(float(line.split()[1]) / 1024.0)
    except (OSError, ValueError, IndexError):
        pass
    return None


def collect_environment(device: str = "cpu") -> dict[str, Any]:
    env: dict[str, Any] = {
        "device": device,
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "load_avg": load_average(),
        "memory_total_mb": _mem_total_mb(),
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
            env["cudnn"] = torch.backends.cudnn.version()
            props = torch.cuda.get_device_properties(torch.cuda.current_device())
            env["gpu_memory_total_mb"] = round(props.total_memory / 2**20)
            env["gpu_compute_capability"] = f"{props.major}.{props.minor}"
            env["gpu_driver"] = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    except ImportError:
        pass
    if Path("/etc/nv_tegra_release").exists():  # a Jetson: record power mode and clocks
        env["jetson_release"] = Path("/etc/nv_tegra_release").read_text().splitlines()[0]
        env["nvpmodel"] = _run(["nvpmodel", "-q"])
        env["jetson_power_mode"] = jetson_power_mode(env["nvpmodel"])
        env["jetson_clocks"] = _run(["jetson_clocks", "--show"])
    return env
