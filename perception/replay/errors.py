"""Errors of ``bevfuse replay``: one line that says which log and what is missing or wrong."""

from __future__ import annotations

from perception.errors import BevfuseError

__all__ = ["ReplayError"]


class ReplayError(BevfuseError):
    """A log cannot be replayed (e.g. it has no LiDAR), or the output folder is not usable."""
