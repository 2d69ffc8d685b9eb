"""The CUDA kernels of ``cuda_kernels/`` built for the host and launched through ctypes.

``launch`` has the signature of ``perception.ops._cuda.launch``: a test swaps it in (with
``_common.is_cuda`` answering True for CPU tensors) and the ops' own CUDA paths run, torch calls
and all, with each kernel executed on the CPU by ``bev_emulate.h``. The source compiled is the one
the run time hands to NVRTC (``_cuda.source``: ``common.cuh`` pasted in), with two mechanical
changes: ``extern __shared__`` arrays point into the emulator's buffer, and a C wrapper per kernel
unpacks the argument array the way the CUDA driver does.
"""

from __future__ import annotations

import ctypes
import hashlib
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import numpy as np

from perception.ops import _cuda

HEADER = Path(__file__).with_name("bev_emulate.h")
CXX_FLAGS = ("-std=c++20", "-O1", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared", "-pthread")
# -ffp-contract=off: the kernels are built with --fmad=false (perception/ops/_cuda.py), so a*b+c
# rounds twice on the GPU; the host must not fuse it either.

_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)\s*\{')
_EXTERN_SHARED = re.compile(r"extern\s+__shared__\s+(\w+)\s+(\w+)\s*\[\s*\]\s*;")
# A kernel that calls one of these needs its block's threads to run together (bev_warp_count is
# common.cuh's wrapper of __ballot_sync).
_COOPERATIVE = re.compile(r"\b(__syncthreads|__shfl_sync|__ballot_sync|bev_warp_count)\b")


def compiler() -> str | None:
    return shutil.which("g++")


def _body(source: str, open_brace: int) -> str:
    depth = 0
    for i in range(open_brace, len(source)):
        depth += {"{": 1, "}": -1}.get(source[i], 0)
        if depth == 0:
            return source[open_brace:i + 1]
    raise ValueError("unbalanced braces in a kernel")


def kernels(module: str) -> dict[str, tuple[list[str], bool]]:
    """name -> (parameter types, whether the kernel needs its threads run together)."""
    src = _cuda.source(module)
    found = {}
    for m in _KERNEL.finditer(src):
        params = [p.strip() for p in m.group(2).split(",") if p.strip()]
        # A parameter's type is all but its last word ("const float* __restrict__ boxes").
        types = [re.sub(r"\b__restrict__\b", "", p[:re.search(r"\w+$", p).start()]).strip() for p in params]
        found[m.group(1)] = (types, bool(_COOPERATIVE.search(_body(src, m.end() - 1))))
    return found


def host_source(module: str) -> str:
    src = _EXTERN_SHARED.sub(r"\1* \2 = reinterpret_cast<\1*>(bev_emu::dynamic_shared.data());", _cuda.source(module))
    wrappers = []
    for name, (types, together) in kernels(module).items():
        call = ", ".join(f"*reinterpret_cast<{t}*>(args[{i}])" for i, t in enumerate(types))
        wrappers.append(
            f'extern "C" void bev_emu_{name}(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,\n'
            f"                                 unsigned long long shared_bytes, void** args) {{\n"
            f"    bev_emu::launch(dim3{{gx, gy, gz}}, dim3{{bx, by, bz}}, shared_bytes, {str(together).lower()},\n"
            f"                    [&] {{ {name}({call}); }});\n}}\n")
    return f'#include "{HEADER.name}"\n{src}\n' + "\n".join(wrappers)


@cache
def library(module: str, build_dir: Path) -> ctypes.CDLL:
    text = host_source(module)
    digest = hashlib.sha256((text + HEADER.read_text() + " ".join(CXX_FLAGS)).encode()).hexdigest()[:16]
    so = build_dir / f"{module}-{digest}.so"
    if not so.exists():
        cpp = so.with_suffix(".cpp")
        cpp.write_text(text)
        cxx = compiler()
        if cxx is None:
            raise RuntimeError("no g++ to build the host emulation of the CUDA kernels")
        res = subprocess.run([cxx, *CXX_FLAGS, f"-I{HEADER.parent}", str(cpp), "-o", str(so)], capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"g++ failed on {module}.cu for the host:\n{res.stderr[-4000:]}")
    lib = ctypes.CDLL(str(so))
    for name in kernels(module):
        fn = getattr(lib, f"bev_emu_{name}")
        fn.argtypes = [ctypes.c_uint] * 6 + [ctypes.c_ulonglong, ctypes.c_void_p]
        fn.restype = None
    return lib


class HostLauncher:
    """A drop-in for ``_cuda.launch`` that runs the kernel on the host; counts launches per kernel."""

    def __init__(self, build_dir: Path) -> None:
        self.build_dir = build_dir
        self.launched: dict[tuple[str, str], int] = {}

    def __call__(self, module: str, name: str, grid, block, args: tuple, like, shared_mem: int = 0) -> None:
        grid = (grid,) if isinstance(grid, int) else tuple(grid)
        block = (block,) if isinstance(block, int) else tuple(block)
        if min(grid) <= 0:
            return  # as _cuda.launch: an empty input launches nothing
        grid3 = [int(g) for g in grid] + [1] * (3 - len(grid))
        block3 = [int(b) for b in block] + [1] * (3 - len(block))
        types, _ = kernels(module)[name]
        if len(args) != len(types):
            raise TypeError(f"{module}.{name}: {len(args)} arguments for {len(types)} parameters")
        # Each argument's bytes, as the driver copies them: numpy scalars (pointers are uint64).
        held = [np.array(a) for a in args]
        pointers = (ctypes.c_void_p * len(held))(*[h.ctypes.data for h in held])
        fn = getattr(library(module, self.build_dir), f"bev_emu_{name}")
        fn(*grid3, *block3, int(shared_mem), pointers)
        self.launched[(module, name)] = self.launched.get((module, name), 0) + 1
