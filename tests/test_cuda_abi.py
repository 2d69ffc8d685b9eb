"""The CUDA kernels as the run time sees them, checked without a GPU.

1. NVRTC (the compiler the run time uses, from NVIDIA's pip wheels) compiles every
   ``cuda_kernels/*.cu`` from exactly the text and options of ``perception.ops._cuda``, without a
   warning: CUDA 13's for Orin (compute_87) and Hopper (compute_90), and CUDA 11.8's to machine code
   for JetPack 5's Xavier (sm_72) and Orin (sm_87).
2. Every launch the ops make names a kernel that exists, with the right number of arguments, each of
   the size and kind (integer or float) of the kernel's parameter. CuPy packs each argument by its
   own numpy dtype, so an ``np.int64`` given to an ``int`` parameter would shift every later one;
   nothing at run time would say so. The launches are recorded by running each op's CUDA path on
   torch's ``meta`` device (shapes, no data) with ``_cuda.launch`` replaced by a recorder; the
   kernels' parameters are read from the PTX that NVRTC produced.
3. A side effect of (2): the CUDA paths never read a value back to the host (a ``meta`` tensor has
   none to read), as DESIGN.md's "no host synchronisation inside" asks; the one documented
   exception, ``pillarize(..., pad=False)`` (trimmed arrays need the count), is left out.
"""

from __future__ import annotations

import ctypes
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from perception.ops import _common, _cuda

torch = pytest.importorskip("torch")

KERNELS = sorted(p.stem for p in _cuda.KERNEL_DIR.glob("*.cu"))
# (NVRTC release, target): the run-time compiler of CUDA 13 (the pinned torch/CuPy builds) for Orin
# and Hopper as PTX (whose entries the launch check reads), and CUDA 11.8's to machine code for
# JetPack 5's boards, Xavier (sm_72) and Orin (sm_87): nvcc 13 on this machine no longer knows
# sm_72 (tests/test_cuda_compile.py). 11.8 is the CUDA closest to JetPack 5's 11.4 that pip has;
# CUDA 12's NVRTC builds sm_72 too, but warns that it is deprecated.
TARGETS = (("13", "compute_87"), ("13", "compute_90"), ("11", "sm_72"), ("11", "sm_87"))
PTX_FROM = ("13", "compute_90")
# Where each release's wheel puts its library: nvidia-cuda-nvrtc (13), nvidia-cuda-nvrtc-cu11.
_LIBRARIES = {"13": ("cu13/lib", "libnvrtc.so.13"), "11": ("cuda_nvrtc/lib", "libnvrtc.so.11.2")}
_WHEELS = {"13": "nvidia-cuda-nvrtc", "11": "nvidia-cuda-nvrtc-cu11"}


def _nvrtc_library(release: str) -> Path | None:
    try:
        import nvidia
    except ImportError:
        return None
    folder, name = _LIBRARIES[release]
    for root in nvidia.__path__:
        if (Path(root) / folder / name).is_file():
            return Path(root) / folder / name
    return None


@cache
def _nvrtc(release: str) -> ctypes.CDLL:
    path = _nvrtc_library(release)
    if path is None:
        msg = f"NVRTC {release} not installed (pip install {_WHEELS[release]}, part of the test extra on Linux x86_64)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    # libnvrtc dlopens its builtins by soname; the wheel's folder is not on the loader's path, so
    # load them first (a library already loaded satisfies the later dlopen; each release's
    # builtins have their own soname).
    for builtins in sorted(path.parent.glob("libnvrtc-builtins.so*")):
        if ".alt." not in builtins.name:
            ctypes.CDLL(str(builtins), mode=ctypes.RTLD_GLOBAL)
    return ctypes.CDLL(str(path))


def nvrtc_version(release: str) -> str:
    major, minor = ctypes.c_int(), ctypes.c_int()
    assert _nvrtc(release).nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)) == 0
    return f"{major.value}.{minor.value}"


def nvrtc_compile(release: str, source: str, name: str, arch: str) -> tuple[int, str, str, int]:
    """(result code, log, PTX, bytes of machine code) of one NVRTC compilation with the run time's
    options: PTX for a ``compute_XX`` target, machine code (a cubin) for ``sm_XX``."""
    lib = _nvrtc(release)
    options = (*_cuda.NVRTC_OPTIONS, f"--gpu-architecture={arch}")
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), f"{name}.cu".encode(), 0, None, None) == 0
    try:
        opts = (ctypes.c_char_p * len(options))(*(o.encode() for o in options))
        code = lib.nvrtcCompileProgram(prog, len(options), opts)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        ptx, cubin = "", 0
        if code == 0 and arch.startswith("compute_"):
            lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
            buf = ctypes.create_string_buffer(size.value)
            lib.nvrtcGetPTX(prog, buf)
            ptx = buf.value.decode()
        elif code == 0:
            assert lib.nvrtcGetCUBINSize(prog, ctypes.byref(size)) == 0
            cubin = size.value
        return code, log.value.decode(errors="replace").strip(), ptx, cubin
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


@cache
def compiled(kernel: str, release: str, arch: str) -> tuple[int, str, str, int]:
    return nvrtc_compile(release, _cuda.source(kernel), kernel, arch)


def kernel_ptx(kernel: str) -> str:
    return compiled(kernel, *PTX_FROM)[2]


_ENTRY = re.compile(r"\.entry\s+(\w+)\s*\((.*?)\)", re.DOTALL)
_PARAM = re.compile(r"\.param\s+(?:\.align\s+\d+\s+)?\.([usbf])(\d+)\s+\w+(\[\d+\])?")


def entries(ptx: str) -> dict[str, list[tuple[str, int]]]:
    """Kernel name -> [(kind 'u' 's' 'b' or 'f', bytes), ...] of its parameters, from PTX."""
    out = {}
    for name, params in _ENTRY.findall(ptx):
        found = _PARAM.findall(params)
        assert all(not array for *_, array in found), f"{name}: a by-value struct parameter; the check reads scalars only"
        out[name] = [(kind, int(bits) // 8) for kind, bits, _ in found]
    return out


@pytest.mark.parametrize("release, arch", TARGETS)
@pytest.mark.parametrize("kernel", KERNELS)
def test_nvrtc_compiles_without_warnings(kernel, release, arch):
    code, log, ptx, cubin = compiled(kernel, release, arch)
    assert code == 0, f"NVRTC {nvrtc_version(release)} failed on {kernel}.cu for {arch}:\n{log}"
    assert log == "", f"NVRTC {nvrtc_version(release)} warns on {kernel}.cu for {arch}:\n{log}"
    if arch.startswith("compute_"):
        assert entries(ptx), f"{kernel}.cu has no kernel"
    else:
        assert cubin > 0, f"{kernel}.cu: no machine code for {arch}"


# --- launches, recorded on the meta device ---------------------------------------------------------

@dataclass(frozen=True)
class Launch:
    module: str
    name: str
    grid: tuple[int, ...]
    block: tuple[int, ...]
    args: tuple[Any, ...]
    shared_mem: int


@pytest.fixture
def recorded(monkeypatch) -> list[Launch]:
    calls: list[Launch] = []

    def record(module, name, grid, block, args, like, shared_mem=0):
        assert like.device.type == "meta"
        calls.append(Launch(module, name, (grid,) if isinstance(grid, int) else tuple(grid),
                            (block,) if isinstance(block, int) else tuple(block), tuple(args), shared_mem))

    monkeypatch.setattr(_common, "is_cuda", lambda x: _common.is_torch(x) and x.device.type in ("cuda", "meta"))
    monkeypatch.setattr(_cuda, "launch", record)
    monkeypatch.setattr(_cuda, "ptr", lambda t: np.uint64(0x10000))  # meta tensors have no address
    monkeypatch.setattr(_cuda, "device_constant", lambda arr, like: torch.from_numpy(np.ascontiguousarray(arr)).to(like.device))
    return calls


def meta(a: np.ndarray) -> Any:
    return torch.empty(a.shape, dtype=torch.from_numpy(a[:0].reshape(-1)).dtype, device="meta")


def run_every_op() -> None:
    """Each op's CUDA path once per kernel variant, at small sizes (the ABI does not depend on them)."""
    from perception.config import GridConfig
    from perception.ops import (
        ImageTransform,
        build_camera_bev_lut,
        decode_centerpoint,
        gather_camera_bev,
        nms_bev,
        pillarize,
        preprocess_images,
        rasterize_radar,
        scatter_pillars,
    )
    from tests.perception.ops.test_camera_bev import ring_rig

    grid = GridConfig(x_min=-4.0, x_max=4.0, y_min=-3.2, y_max=3.2, z_min=-2.0, z_max=2.0, cell_m=0.4)
    for dtype in ("float32", "float16"):
        imgs = torch.empty((3, 90, 160, 3), dtype=torch.uint8, device="meta")
        ts = [ImageTransform.fit((90, 160), (32, 64), s) for s in (0.48, 0.5, 0.9)]
        preprocess_images(imgs, ts, (32, 64), dtype=dtype)
        preprocess_images(imgs.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1), ts, (32, 64), dtype=dtype)
    # pad=False launches the same kernels and then waits for the pillar count, by design (documented).
    pillarize(meta(np.zeros((5000, 5), np.float32)), grid, max_points_per_pillar=8, max_pillars=60, pad=True)
    coords = meta(np.zeros((200, 2), np.int32))
    for dt in (np.float32, np.float16):
        feats = meta(np.zeros((200, 9), dt))
        out = scatter_pillars(feats, coords, grid)
        scatter_pillars(feats, coords, grid, out=out)
    poses, cams = ring_rig(6)
    lut = build_camera_bev_lut(poses, cams, grid, [-1.0, 0.0, 1.0])
    gather_camera_bev(meta(np.zeros((6, 16, 12, 20), np.float32)), lut.to("meta"))
    rasterize_radar(meta(np.zeros((5000, 7), np.float32)), grid)
    maps = [meta(np.zeros((c, grid.ny, grid.nx), np.float32)) for c in (3, 2, 1, 3, 2, 2)]
    for sigmoid in (True, False):
        decode_centerpoint(*maps, grid, top_k=40, score_threshold=0.05, sigmoid=sigmoid)
    decode_centerpoint(*maps[:5], None, grid, top_k=40)
    boxes, scores = meta(np.zeros((3000, 7), np.float32)), meta(np.zeros(3000, np.float32))
    labels, valid = meta(np.zeros(3000, np.int32)), meta(np.zeros(3000, bool))
    for method, thr in (("rotated", [0.1, 0.3, 0.5]), ("circle", 1.0)):
        nms_bev(boxes, scores, labels, method=method, threshold=thr, valid=valid)


def test_every_kernel_is_launched(recorded):
    run_every_op()
    launched = {(c.module, c.name) for c in recorded}
    defined = {(k, name) for k in KERNELS for name in entries(kernel_ptx(k))}
    assert launched == defined, f"defined, never launched: {sorted(defined - launched)}; launched, not defined: {sorted(launched - defined)}"


def test_launch_arguments_match_the_kernels_parameters(recorded):
    run_every_op()
    assert recorded
    for call in recorded:
        params = entries(kernel_ptx(call.module))[call.name]
        where = f"{call.module}.{call.name}"
        assert len(call.args) == len(params), f"{where}: {len(call.args)} arguments for {len(params)} parameters"
        for i, (arg, (kind, size)) in enumerate(zip(call.args, params)):
            assert isinstance(arg, np.generic), f"{where} argument {i}: {type(arg).__name__}; pass a numpy scalar of the parameter's type"
            assert arg.dtype.itemsize == size, f"{where} argument {i}: {arg.dtype} ({arg.dtype.itemsize} bytes) for a {size}-byte parameter"
            assert (arg.dtype.kind == "f") == (kind == "f"), f"{where} argument {i}: {arg.dtype} for a .{kind}{8 * size} parameter"


def test_launch_shapes_are_legal(recorded):
    run_every_op()
    for call in recorded:
        where = f"{call.module}.{call.name}"
        assert len(call.grid) <= 3 and len(call.block) <= 3, where
        assert int(np.prod(call.block)) <= 1024 and call.block[0] % 32 == 0, f"{where}: block {call.block}"
        assert call.grid[0] < 2**31 and all(g <= 65535 for g in call.grid[1:]), f"{where}: grid {call.grid}"
        assert call.shared_mem <= 48 * 1024, f"{where}: {call.shared_mem} bytes of shared memory need an opt-in"
