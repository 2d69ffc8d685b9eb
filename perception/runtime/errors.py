"""Errors of the runtime: a transport that cannot start, a node that cannot run."""

from __future__ import annotations

from perception.errors import BevfuseError, ConfigError

__all__ = ["NodeError", "TransportError", "TransportUnavailable"]


class TransportError(BevfuseError):
    """A transport could not open, declare or send (names the endpoint, topic or key)."""


class TransportUnavailable(TransportError):
    """The transport's library is not installed here (e.g. rclpy outside a ROS 2 environment)."""


class NodeError(ConfigError):
    """The node cannot be set up from its arguments (rig, model, topics)."""
