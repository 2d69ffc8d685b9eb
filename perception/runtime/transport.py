"""What a transport (Zenoh, ROS 2) gives the runtime: publishers and subscriptions of serialized
ROS 2 messages (CDR bytes with the 4-byte encapsulation header, as rmw hands them over).

The node core never sees a transport: ``perception.runtime.ros_io`` turns received bytes into
``SensorMessage``s for it and its outputs into bytes for a transport. Keeping bytes at this
boundary means a transport needs no message classes (rclpy's ``raw=True``, Zenoh payloads), and
bevfuse's own typestore does every (de)serialization the same way whatever carries it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from perception.runtime.rmw_zenoh import DEFAULT_QOS, QosProfile

__all__ = ["RawCallback", "RawPublisher", "Received", "Subscription", "Transport", "open_transport"]


@dataclass(frozen=True)
class Received:
    """One received sample: ``data`` (CDR bytes), its ROS type, when it arrived (wall clock ns) and,
    where the transport says, when the sender published it (wall clock ns) and its sequence number."""

    topic: str
    msgtype: str
    data: bytes
    receive_ns: int
    source_ns: int | None = None
    sequence: int | None = None


RawCallback = Callable[[Received], None]


@runtime_checkable
class RawPublisher(Protocol):
    topic: str
    msgtype: str

    def publish(self, data: bytes) -> None:
        """Send one serialized message."""
        ...

    def matched(self) -> bool:
        """Whether a subscriber is known to be listening (best effort: True when unknown)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Subscription(Protocol):
    topic: str

    def close(self) -> None: ...


@runtime_checkable
class Transport(Protocol):
    """A connection to a ROS 2 graph. Callbacks run on the transport's threads: keep them short."""

    name: str

    def publisher(self, topic: str, msgtype: str, qos: QosProfile = DEFAULT_QOS, *, block: bool = False) -> RawPublisher:
        """A publisher; ``block``: wait rather than drop when the transport is congested (a player)."""
        ...

    def subscribe(self, topic: str, msgtype: str | None, callback: RawCallback, qos: QosProfile = DEFAULT_QOS) -> Subscription:
        """Subscribe to ``topic``. ``msgtype`` None: any type (the transport says which in ``Received``)."""
        ...

    def close(self) -> None: ...


def open_transport(kind: str, *, connect: Sequence[str] = (), listen: Sequence[str] = (), domain_id: int = 0,
                   distro: str = "jazzy", node: str = "bevfuse") -> Transport:
    """A transport by name: 'zenoh' (``connect``/``listen`` endpoints; rmw_zenoh's router endpoint
    when neither is given) or 'ros2' (rclpy; raises ``TransportUnavailable`` where it is missing)."""
    if kind == "zenoh":
        from perception.runtime.zenoh_transport import DEFAULT_ENDPOINT, ZenohTransport

        if not connect and not listen:
            connect = (DEFAULT_ENDPOINT,)
        return ZenohTransport(connect, listen, domain_id=domain_id, distro=distro, node=node)
    if kind == "ros2":
        from perception.runtime.ros2_transport import Ros2Transport

        return Ros2Transport(node=node, domain_id=domain_id)
    from perception.runtime.errors import TransportError

    raise TransportError(f"transport: expected 'zenoh' or 'ros2', got {kind!r}")
