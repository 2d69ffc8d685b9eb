"""Recycled CPU output memory for ops that overwrite every byte of a large output.

A new 64 MiB numpy array costs about 7 ms on the CPU before the op writes a byte of it: numpy maps
fresh pages and the operating system zeroes each one on first touch (docs/BENCHMARKS.md,
pillar_scatter). In a frame loop the previous frame's output is usually dropped just before the
next call, so its pages, already mapped and touched, can serve again. That is what this module
does, in the way torch's CUDA caching allocator does for device memory.

Buffers come in size classes (2**k times 1, 1.25, 1.5 or 1.75), so an output whose size changes a
little from frame to frame (pillarize's, one row per pillar) still finds the last one's memory, at
the cost of up to a quarter more memory than asked for.

The memory goes back to the pool only when nothing refers to the array handed out any more: no
view, slice, torch tensor or memoryview of it (each keeps the lease object below alive, through
numpy's ``base`` chain). Its contents are stale when it is handed out again, so only ops that write
every element may use ``recycled_empty``. At most ``MAX_PER_SIZE`` buffers of each size, and
``MAX_BYTES`` in all, are kept; ``release_recycled`` drops them all.
"""

from __future__ import annotations

from collections import deque

import numpy as np

__all__ = ["MAX_BYTES", "MAX_PER_SIZE", "recycled_bytes", "recycled_empty", "release_recycled", "size_class"]

MAX_PER_SIZE = 2  # a frame loop needs one (two when it keeps the previous frame); more only holds memory
MAX_BYTES = 512 << 20  # all sizes together: a caller cycling through many grids does not pile up memory

# size class (bytes) -> buffers free for reuse. deque.append/pop are atomic, so no lock: a lock taken here
# could deadlock when the garbage collector runs a lease's __del__ inside ``recycled_empty``.
_free: dict[int, deque[np.ndarray]] = {}


class _Lease:
    """The owner of one handed-out array: exposes the pooled buffer, returns it when collected."""

    __slots__ = ("__array_interface__", "_buffer", "__weakref__")

    def __init__(self, buffer: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self._buffer = buffer
        self.__array_interface__ = {"shape": shape, "typestr": dtype.str, "descr": dtype.descr,
                                    "data": (buffer.ctypes.data, False), "strides": None, "version": 3}

    def __del__(self) -> None:
        free = _free.get(self._buffer.nbytes) if _free is not None else None  # None at interpreter exit
        if free is not None and len(free) < MAX_PER_SIZE and recycled_bytes() + self._buffer.nbytes <= MAX_BYTES:
            free.append(self._buffer)


def size_class(nbytes: int) -> int:
    """The buffer size that serves ``nbytes``: rounded up to a quarter of its power of two."""
    k = max(int(nbytes).bit_length() - 1, 2)
    step = 1 << (k - 2)
    return -(-int(nbytes) // step) * step


def recycled_empty(shape: tuple[int, ...], dtype: np.dtype | str) -> np.ndarray:
    """An uninitialised C-contiguous array, in memory an earlier, dropped output used if there is one.

    The caller must write every element before returning the array to its own caller.
    """
    dt = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    cls = size_class(nbytes)
    free = _free.setdefault(cls, deque())
    try:
        buffer = free.pop()
    except IndexError:
        buffer = np.empty(cls, np.uint8)
    return np.asarray(_Lease(buffer, tuple(int(s) for s in shape), dt))


def recycled_bytes() -> int:
    """Bytes held for reuse now (not counting arrays still in use)."""
    return sum(b.nbytes for free in list(_free.values()) for b in list(free))


def release_recycled() -> None:
    """Drop every buffer held for reuse (arrays still in use are untouched and come back later)."""
    for free in list(_free.values()):
        free.clear()
