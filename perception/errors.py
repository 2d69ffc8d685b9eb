"""The one exception hierarchy of bevfuse.

Every message names the file, topic or key, what was expected and what was found, so that a
user reading one line knows where to look. Callers catch ``BevfuseError`` at the edge (the CLI,
a replay loop) and never see a traceback from deep inside numpy or rosbags.
"""

from __future__ import annotations

__all__ = [
    "BevfuseError",
    "ConfigError",
    "DecodeError",
    "FormatError",
    "InputFileError",
    "PoseError",
    "RigError",
    "ShapeError",
    "TopicMappingError",
]


class BevfuseError(Exception):
    """Base class of every error bevfuse raises on purpose."""


class ShapeError(BevfuseError, ValueError):
    """An array has the wrong shape or dtype where it enters a stage."""


class ConfigError(BevfuseError, ValueError):
    """A configuration file or value is invalid (unknown key, wrong type, out of range)."""


class RigError(ConfigError):
    """A rig file is invalid: names the file, the sensor and the key."""


class InputFileError(BevfuseError, OSError):
    """A file or directory that was asked for is missing or unreadable."""


class FormatError(BevfuseError):
    """A drive log is not in a format bevfuse reads, or is damaged (e.g. a truncated bag)."""


class DecodeError(BevfuseError):
    """A single message could not be decoded; replay counts these and goes on."""


class TopicMappingError(BevfuseError):
    """A topic could not be mapped to a rig sensor, or a rig sensor's topic is absent."""


class PoseError(BevfuseError):
    """A pose was asked for outside the span a pose source covers."""
