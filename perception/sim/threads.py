"""How many threads the numba kernels of one call may use.

A parallel region costs a hand-over to the thread pool and a barrier at its end; for a small image
or a sparse sweep that costs more than the work, and on a machine busy with other processes a
descheduled worker holds the barrier up. Small calls therefore run on the calling thread alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numba as nb

__all__ = ["PARALLEL_MIN_WORK", "kernel_threads"]

PARALLEL_MIN_WORK = 100_000  # items (pixels): below this a kernel call runs serially


@contextmanager
def kernel_threads(work: int, limit: int | None = None, min_work: int = PARALLEL_MIN_WORK) -> Iterator[int]:
    """Set numba's thread count for the calls inside: 1 for ``work`` below ``min_work``, else
    ``limit`` (None: numba's default, the machine's cores). Restores the previous count."""
    before = nb.get_num_threads()
    want = 1 if work < min_work else min(limit or nb.config.NUMBA_NUM_THREADS, nb.config.NUMBA_NUM_THREADS)
    nb.set_num_threads(max(1, want))
    try:
        yield want
    finally:
        nb.set_num_threads(before)
