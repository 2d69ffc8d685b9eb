"""Errors of the runtime: a transport that cannot start, a node that cannot run."""

from __future__ import annotations

from perception.errors import BevfuseError, ConfigError

__all__ = ["MessageTypeMissing", "NodeError", "TransportError", "TransportUnavailable"]


class TransportError(BevfuseError):
    """A transport could not open, declare or send (names the endpoint, topic or key)."""


class TransportUnavailable(TransportError):
    """The transport's library is not installed here (e.g. rclpy outside a ROS 2 environment)."""


class MessageTypeMissing(TransportError):
    """A message type whose generated package is not installed where the transport needs one (ROS 2:
    rclpy needs each type's generated typesupport; Zenoh carries any type as bytes)."""

    def __init__(self, msgtype: str, message: str) -> None:
        super().__init__(message)
        self.msgtype = msgtype


class NodeError(ConfigError):
    """The node cannot be set up from its arguments (rig, model, topics)."""
