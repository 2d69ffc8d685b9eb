"""Streaming (non-temporal) stores from numba: they copy the right bytes, and misaligned targets are refused."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from perception.ops._streaming import STREAM_BYTES, can_stream, store_fence, stream_store_16


@njit(cache=True)
def _stream_copy(dst, src):  # pragma: no cover - numba
    per = STREAM_BYTES // dst.itemsize
    for v in range(dst.size // per):
        stream_store_16(dst, v * per, src, v * per)
    store_fence()


def aligned_empty(n: int, dtype) -> np.ndarray:
    raw = np.empty(n * np.dtype(dtype).itemsize + STREAM_BYTES, np.uint8)
    head = -raw.ctypes.data % STREAM_BYTES
    return raw[head:head + n * np.dtype(dtype).itemsize].view(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.float32, np.float64])
def test_stream_store_copies_16_bytes_at_a_time(dtype):
    rng = np.random.default_rng(0)
    src = rng.integers(0, 100, 4096 * 16 // np.dtype(dtype).itemsize + 5).astype(dtype)[3:]  # a misaligned source
    dst = aligned_empty(4096 * 16 // np.dtype(dtype).itemsize, dtype)
    dst.fill(0)
    _stream_copy(dst, src)
    np.testing.assert_array_equal(dst, src[:dst.size])


def test_can_stream_needs_an_aligned_start_and_aligned_chunks():
    a = aligned_empty(64, np.float32)
    assert can_stream(a)
    assert can_stream(a, 4, 8)
    assert not can_stream(a, 4, 6)  # a chunk of 6 float32 starts 24 bytes in
    assert not can_stream(aligned_empty(65, np.float32)[1:])
    assert can_stream(aligned_empty(64, np.float16), 8) and not can_stream(aligned_empty(64, np.float16), 4)
