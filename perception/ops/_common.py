"""Helpers shared by the ops: device dispatch, entry checks on numpy arrays and torch tensors.

Every op takes numpy arrays, CPU torch tensors or CUDA torch tensors. CPU inputs run the numba
implementation (a CPU torch tensor is viewed as numpy without a copy, and the results come back as
torch tensors); CUDA tensors run the kernel in ``cuda_kernels/``. torch is looked up in
``sys.modules`` rather than imported, so a numpy-only caller never pays torch's import time.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import njit

from perception.errors import ShapeError

__all__ = [
    "as_numpy",
    "check_dtype",
    "check_shape",
    "dtype_name",
    "f16_bits",
    "f32_bits_to_f16_bits",
    "float_order_key",
    "is_cuda",
    "is_torch",
    "like_input",
]


def is_torch(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def is_cuda(x: Any) -> bool:
    return is_torch(x) and x.is_cuda


_DTYPE_NAMES: dict[Any, str] = {}


def dtype_name(x: Any) -> str:
    """'float32', 'uint8', ... for a numpy array or a torch tensor."""
    # cached per dtype object: numpy's dtype.name costs ~3 us, and an op checks several arrays
    # per call (a tenth of a 1 ms decode)
    name = _DTYPE_NAMES.get(x.dtype)
    if name is None:
        name = str(x.dtype).removeprefix("torch.") if is_torch(x) else np.dtype(x.dtype).name
        _DTYPE_NAMES[x.dtype] = name
    return name


def _fmt(shape: Sequence[int | str | None]) -> str:
    inner = ", ".join("*" if s is None else str(s) for s in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def check_shape(x: Any, name: str, shape: Sequence[int | str | None]) -> tuple[int, ...]:
    """Check ``x.shape`` against ``shape``: an int must match, a str names a size that must agree
    everywhere it appears (returned through the tuple), ``None`` matches anything."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise ShapeError(f"{name}: expected a numpy array or torch tensor {_fmt(shape)}, got {type(x).__name__}")
    got = tuple(int(s) for s in x.shape)
    if len(got) != len(shape):
        raise ShapeError(f"{name}: expected a {len(shape)}-D array {_fmt(shape)}, got shape {got}")
    named: dict[str, int] = {}
    for want, g in zip(shape, got):
        if isinstance(want, int) and want != g:
            raise ShapeError(f"{name}: expected shape {_fmt(shape)}, got {got}")
        if isinstance(want, str):
            if named.setdefault(want, g) != g:
                raise ShapeError(f"{name}: expected shape {_fmt(shape)} with equal {want}, got {got}")
    return got


def check_dtype(x: Any, name: str, allowed: str | Sequence[str]) -> str:
    allowed = (allowed,) if isinstance(allowed, str) else tuple(allowed)
    got = dtype_name(x)
    if got not in allowed:
        raise ShapeError(f"{name}: expected dtype {' or '.join(allowed)}, got {got}")
    return got


def check_same_device(ref: Any, name: str, x: Any) -> None:
    """``x`` must live where ``ref`` lives (both numpy/CPU, or both on the same CUDA device)."""
    if is_cuda(ref) != is_cuda(x) or (is_cuda(ref) and ref.device != x.device):
        where = str(ref.device) if is_torch(ref) else "cpu"
        found = str(x.device) if is_torch(x) else "cpu (numpy)"
        raise ShapeError(f"{name}: expected a tensor on {where} like the first input, got {found}")


def as_numpy(x: Any, *, contiguous: bool = True) -> np.ndarray:
    """A numpy view of a numpy array or CPU torch tensor (a C-contiguous copy only when needed:
    numba compiles one specialisation per memory layout, and one is enough)."""
    arr = x.numpy() if is_torch(x) else np.asarray(x)
    return np.ascontiguousarray(arr) if contiguous else arr


def like_input(x: Any, arr: np.ndarray) -> Any:
    """Return ``arr`` as a torch tensor when the op's input ``x`` was one, else as it is."""
    if is_torch(x):
        return sys.modules["torch"].from_numpy(arr)
    return arr


def f16_bits(out_f16: np.ndarray) -> np.ndarray:
    """A uint16 view of a float16 array: numba has no float16 on the CPU, so kernels write the bits."""
    return out_f16.view(np.uint16)


@njit(cache=True, inline="always")
def f32_bits_to_f16_bits(u):  # pragma: no cover - numba
    """float32 bits (uint32) -> float16 bits, round to nearest even: numpy's astype(float16) and
    CUDA's cvt.rn.f16.f32 give the same bits. numba has no float16 on the CPU, hence by hand."""
    sign = (u >> 16) & 0x8000
    a = u & 0x7FFFFFFF
    if a >= 0x7F800000:  # inf, nan
        return sign | (0x7E00 if a > 0x7F800000 else 0x7C00)
    if a >= 0x477FF000:  # >= 65520 rounds to inf
        return sign | 0x7C00
    if a >= 0x38800000:  # a normal float16: rebias the exponent, round the 13 dropped bits
        return sign | ((a - 0x38000000 + 0xFFF + ((a >> 13) & 1)) >> 13)
    e = a >> 23
    if e < 102:  # below 2**-25: rounds to zero (float32 subnormals included)
        return sign
    # float16 subnormal: m * 2**-24 with m = round(value * 2**24)
    mant = (a & 0x7FFFFF) | 0x800000
    shift = 126 - e
    q = mant >> shift
    rem = mant & ((1 << shift) - 1)
    half = 1 << (shift - 1)
    if rem > half or (rem == half and (q & 1) == 1):
        q += 1
    return sign | q


@njit(cache=True, inline="always")
def float_order_key(bits):  # pragma: no cover - numba
    """float32 bits (int32) -> an int whose order is the float's order (as bev_float_order_key in
    common.cuh). The ops sort int64 keys ``order_key * 2**32 + index``: unique keys make any sort
    deterministic, and numba's np.sort compiles far faster than a stable argsort or np.partition.
    -0.0 and +0.0 are equal values, so they share the key 0: equal scores tie, and ties go by index."""
    if bits == -2147483648:  # -0.0
        return np.int64(0)
    return np.int64(bits) if bits >= 0 else np.int64(bits ^ 0x7FFFFFFF)
