"""Run-time compilation and launching of the kernels in ``cuda_kernels/`` (NVRTC through CuPy).

- Compiled once per source and GPU architecture: CuPy's ``RawModule`` keeps the binary in memory
  per device and on disk (``~/.cupy/kernel_cache``, or ``$CUPY_CACHE_DIR``) under a hash of the
  source text, the options, the architecture and the NVRTC version. ``common.cuh`` is pasted into
  the source before compiling rather than ``#include``d, so that an edit of the header changes the
  hash and can never leave a stale binary in the cache.
- Launched on torch's current stream, torch tensors in and out (their raw device pointers are
  passed as 64-bit kernel arguments, no DLPack round trip per call), and nothing here waits for the
  GPU: a launcher that needs a count it does not know keeps it on the device.
- ``--fmad=false``: no fused multiply-add contraction, so float32 results match the numba versions
  (which LLVM does not contract either) bit for bit where the operations are the same.
- CuPy is imported on first use only: CPU-only installs never need it.
"""

from __future__ import annotations

import functools
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["KERNEL_DIR", "NVRTC_OPTIONS", "blocks", "device_constant", "kernel", "launch", "ptr", "source"]

KERNEL_DIR = Path(__file__).resolve().parents[2] / "cuda_kernels"
NVRTC_OPTIONS = ("-std=c++17", "--fmad=false")
_INCLUDE = re.compile(r'^\s*#\s*include\s+"common\.cuh"\s*$', re.MULTILINE)


def _kernel_dir() -> Path:
    # Installed as package data of ``cuda_kernels`` (setup.py); in a checkout it sits beside perception/.
    try:
        import cuda_kernels

        return Path(cuda_kernels.__file__).resolve().parent
    except ImportError:  # pragma: no cover - only when the package data was not installed
        return KERNEL_DIR


def _cupy() -> Any:
    try:
        import cupy
    except ImportError as exc:
        raise ImportError(
            "CUDA tensors need CuPy to compile the kernels (pip install 'bevfuse[gpu]'); "
            f"numpy arrays and CPU tensors run without it ({exc})"
        ) from None
    return cupy


@functools.cache
def source(name: str) -> str:
    """The text of ``cuda_kernels/<name>.cu`` with ``common.cuh`` pasted in where it is included."""
    folder = _kernel_dir()
    text = (folder / f"{name}.cu").read_text()
    # "#pragma once" means nothing once pasted (and host compilers warn about it in a main file).
    common = re.sub(r"^\s*#\s*pragma\s+once\s*$", "", (folder / "common.cuh").read_text(), flags=re.MULTILINE)
    return _INCLUDE.sub(lambda _: common, text, count=1)


_modules: dict[tuple[str, int], Any] = {}
_functions: dict[tuple[str, str, int], Any] = {}


def kernel(module: str, name: str, device_index: int) -> Any:
    """The ``extern "C"`` kernel ``name`` of ``cuda_kernels/<module>.cu`` for one device.

    The first call per module and device compiles (NVRTC, for that device's architecture) or loads
    the cached binary: call each op once before capturing a CUDA graph."""
    fn = _functions.get((module, name, device_index))
    if fn is None:
        cupy = _cupy()
        with cupy.cuda.Device(device_index):
            mod = _modules.get((module, device_index))
            if mod is None:
                mod = _modules[(module, device_index)] = cupy.RawModule(code=source(module), options=NVRTC_OPTIONS)
            fn = _functions[(module, name, device_index)] = mod.get_function(name)
    return fn


_streams: dict[tuple[int, int], Any] = {}


def _stream_of(tensor: Any) -> Any:
    import torch

    s = torch.cuda.current_stream(tensor.device)
    key = (int(s.cuda_stream), tensor.device.index)
    ext = _streams.get(key)
    if ext is None:
        ext = _cupy().cuda.ExternalStream(key[0], key[1])
        _streams[key] = ext
    return ext


def launch(module: str, name: str, grid: int | tuple[int, ...], block: int | tuple[int, ...], args: tuple, like: Any,
           shared_mem: int = 0) -> None:
    """Launch ``module.name`` on the current torch stream of ``like``'s device; returns at once."""
    grid = (grid,) if isinstance(grid, int) else tuple(grid)
    block = (block,) if isinstance(block, int) else tuple(block)
    if min(grid) <= 0:
        return  # nothing to do (empty input): a zero-size launch is an error in CUDA
    idx = like.device.index
    fn = kernel(module, name, idx)
    cupy = _cupy()
    with cupy.cuda.Device(idx), _stream_of(like):
        fn(grid, block, args, shared_mem=shared_mem)


def ptr(t: Any) -> np.uint64:
    """A tensor's device pointer as a 64-bit kernel argument."""
    return np.uint64(t.data_ptr())


def blocks(n: int, threads: int) -> int:
    return (int(n) + threads - 1) // threads


_constants: OrderedDict[tuple, Any] = OrderedDict()
_CONSTANTS_MAX = 32


def device_constant(arr: np.ndarray, like: Any) -> Any:
    """A small host array (per-camera parameters, per-class thresholds) as a tensor on ``like``'s
    device. Cached by value: the usual call repeats the same parameters, so after the first call
    there is no copy at all (and a CUDA graph captured later replays a stable buffer). A new value
    goes through pinned memory with ``non_blocking=True``, which does not wait for the GPU."""
    import torch

    arr = np.ascontiguousarray(arr)
    key = (arr.dtype.str, arr.shape, arr.tobytes(), str(like.device))
    t = _constants.get(key)
    if t is not None:
        _constants.move_to_end(key)
        return t
    t = torch.from_numpy(arr.copy()).pin_memory().to(like.device, non_blocking=True)
    _constants[key] = t
    if len(_constants) > _CONSTANTS_MAX:
        _constants.popitem(last=False)
    return t
