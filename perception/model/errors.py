"""Errors of the model package, under the one hierarchy of ``perception.errors``."""

from __future__ import annotations

from perception.errors import BevfuseError, FormatError

__all__ = ["BackendError", "CheckpointError", "ExportError"]


class CheckpointError(FormatError):
    """A checkpoint cannot be used: truncated, not a bevfuse checkpoint, another config, mismatched shapes."""


class ExportError(BevfuseError):
    """The network could not be exported (ONNX) or built (TensorRT), or the graph has an unsupported operator."""


class BackendError(BevfuseError):
    """An inference backend is unavailable here (library not installed, no GPU) or was given bad inputs."""
