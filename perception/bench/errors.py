"""Errors of ``bevfuse bench``: one line naming the option, spec or log and what was expected."""

from __future__ import annotations

from perception.errors import BevfuseError

__all__ = ["BenchError"]


class BenchError(BevfuseError):
    """A benchmark cannot run as asked: a bad ``--compare`` spec, a log too short to cycle, a
    backend/precision/device combination that does not exist."""
