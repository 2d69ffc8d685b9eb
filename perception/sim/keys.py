"""Deterministic random streams: one 64-bit key per (seed, purpose, index), independent of call order.

A sensor's k-th message draws its noise from ``stream_key(seed, sensor, k)``, so adding a sensor or
skipping one (a fault) does not shift the randomness of any other: the same seed gives the same
bag, and a fault changes only what it is meant to change.
"""

from __future__ import annotations

import hashlib

__all__ = ["stream_key"]


def stream_key(seed: int, *labels: object) -> int:
    """A uint64 key (as a Python int) from the seed and any labels (strings, ints)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(str(int(seed)).encode())
    for label in labels:
        h.update(b"\x1f")
        h.update(str(label).encode())
    return int.from_bytes(h.digest(), "little")
