"""Every kernel in cuda_kernels/ compiles with nvcc for the GPUs bevfuse targets, even on a machine
without a GPU (CI has none): sm_72 (Xavier), sm_87 (Orin), sm_90 (Hopper).

The source compiled is exactly the text NVRTC gets at run time (``_cuda.source``: common.cuh pasted
in) with the same options. An architecture the installed nvcc no longer knows is skipped with the
reason (CUDA 13 dropped sm_72: tests/test_cuda_abi.py compiles it with CUDA 11.8's NVRTC); a missing nvcc
skips, except under CI=true where it fails. All supported architectures of one kernel go through
one nvcc call, and the kernels compile concurrently (one nvcc per core) in a session fixture.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import pytest

from perception.ops import _cuda

KERNELS = sorted(p.stem for p in _cuda.KERNEL_DIR.glob("*.cu"))
ARCHS = ("72", "87", "90")  # Xavier, Orin, Hopper


@lru_cache(maxsize=1)
def _nvcc() -> tuple[str, str, frozenset[str]]:
    """(path, version, supported compute capabilities) of the nvcc on PATH or under $CUDA_HOME."""
    path = shutil.which("nvcc") or shutil.which(str(Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "bin" / "nvcc"))
    if path is None:
        return "", "", frozenset()
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60).stdout
    match = re.search(r"release (\d+\.\d+)", out)
    version = match.group(1) if match else "unknown"
    listed = subprocess.run([path, "--list-gpu-arch"], capture_output=True, text=True, timeout=60)
    archs = frozenset(re.findall(r"compute_(\d+)", listed.stdout)) if listed.returncode == 0 else frozenset(ARCHS)
    return path, version, archs


def _require_nvcc() -> tuple[str, str, frozenset[str]]:
    path, version, archs = _nvcc()
    if not path:
        msg = "nvcc not found on PATH or in $CUDA_HOME/bin: the CUDA kernels cannot be compile-checked"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path, version, archs


def test_kernels_found():
    assert {"pillarization", "pillar_scatter", "image_preprocess", "centerpoint_decode", "bev_nms", "camera_bev_gather",
            "radar_raster"} <= set(KERNELS)


def _compile(nvcc: str, kernel: str, archs: list[str], folder: Path) -> subprocess.CompletedProcess:
    src = folder / f"{kernel}.cu"
    src.write_text(_cuda.source(kernel))
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
    # -Xptxas -v: ptxas reports each kernel's registers and spills (test_no_register_spills).
    cmd = [nvcc, *_cuda.NVRTC_OPTIONS, *gencode, "-Werror", "all-warnings", "-Xptxas", "-v", "-c", str(src),
           "-o", str(folder / f"{kernel}.o")]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="session")
def compiled() -> dict[str, tuple[list[str], subprocess.CompletedProcess]]:
    nvcc, version, supported = _require_nvcc()
    archs = [a for a in ARCHS if a in supported]
    if not archs:
        pytest.skip(f"nvcc {version} supports none of sm_{', sm_'.join(ARCHS)}")
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        jobs = {k: pool.submit(_compile, nvcc, k, archs, Path(tmp)) for k in KERNELS}
        return {k: (archs, job.result()) for k, job in jobs.items()}


@pytest.mark.parametrize("kernel", KERNELS)
def test_compiles(kernel: str, compiled):
    archs, proc = compiled[kernel]
    assert proc.returncode == 0, f"{kernel}.cu failed for sm_{archs} with nvcc {_nvcc()[1]}:\n{proc.stderr}"


_PTXAS_ENTRY = re.compile(r"Compiling entry function '(\w+)' for '(sm_\d+)'\s*\n.*?(\d+) bytes spill stores, (\d+) bytes spill loads", re.DOTALL)


@pytest.mark.parametrize("kernel", KERNELS)
def test_no_register_spills(kernel: str, compiled):
    """No kernel spills registers to local memory on any target: a spill turns register traffic
    into memory traffic in the hot loop. (Local arrays, such as the clipping polygons of the
    rotated-IoU kernel, are a stack frame, not a spill, and are allowed.)"""
    archs, proc = compiled[kernel]
    assert proc.returncode == 0
    found = _PTXAS_ENTRY.findall(proc.stderr + proc.stdout)
    assert {arch for _, arch, _, _ in found} == {f"sm_{a}" for a in archs}, proc.stderr
    spills = [f"{name} on {arch}: {st} bytes stored, {ld} loaded" for name, arch, st, ld in found if int(st) or int(ld)]
    assert not spills, "register spills: " + "; ".join(spills)


@pytest.mark.parametrize("arch", ARCHS)
def test_arch_supported_by_nvcc(arch: str):
    """One line per target GPU: skipped, with the reason, where this nvcc cannot build it."""
    _, version, supported = _require_nvcc()
    if arch not in supported:
        pytest.skip(f"sm_{arch} not compiled by nvcc: nvcc {version} no longer supports it "
                    f"(tests/test_cuda_abi.py builds sm_72 machine code with CUDA 11.8's NVRTC instead)")
