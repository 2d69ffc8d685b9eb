"""The ROS 2 transport through rclpy, where rclpy can be imported (a sourced ROS 2 install).

Messages cross rclpy as serialized bytes (``raw=True`` subscriptions, ``publish(bytes)``), so
bevfuse's typestore does all (de)serialization as on Zenoh and a type only needs its Python class
at the rclpy boundary (``message_class``): a type whose package is not installed in the ROS 2
environment raises ``MessageTypeMissing`` (bevfuse's own ``bevfuse_msgs`` exist there only where
that package is built; ``vision_msgs`` has no pip wheel). Subscriptions on sensor topics use
the sensor-data QoS (best effort, keep last 5), as ROS 2 drivers publish them.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from typing import Any

from perception.runtime.errors import MessageTypeMissing, TransportError, TransportUnavailable
from perception.runtime.rmw_zenoh import BEST_EFFORT, DEFAULT_QOS, TRANSIENT_LOCAL, QosProfile
from perception.runtime.transport import RawCallback, Received

__all__ = ["Ros2Transport", "message_class", "rclpy_available"]


def rclpy_available() -> tuple[bool, str]:
    """(True, '') where rclpy imports, else (False, why)."""
    try:
        import rclpy  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken ROS environment
        return False, (f"rclpy is not importable here ({type(exc).__name__}: {exc}); source a ROS 2 setup.bash, "
                       "or pip install 'bevfuse[ros2]' (ROS 2's pip wheels)")
    return True, ""


def _keep_discovery_local() -> None:
    """Network hygiene: discovery on this machine only (no multicast off it) unless the user names
    a range (SUBNET on a vehicle whose sensors sit on other ECUs). rcl reads it at init. Humble
    and older know only ROS_LOCALHOST_ONLY (Iron replaced it and warns when it is set)."""
    if os.environ.get("ROS_DISTRO", "") in ("humble", "galactic", "foxy"):
        if "ROS_AUTOMATIC_DISCOVERY_RANGE" not in os.environ:
            os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")
    else:
        os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def _qos(qos: QosProfile) -> Any:
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        depth=qos.depth,
        history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.BEST_EFFORT if qos.reliability == BEST_EFFORT else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if qos.durability == TRANSIENT_LOCAL else DurabilityPolicy.VOLATILE,
    )


class _Publisher:
    def __init__(self, node: Any, topic: str, msgtype: str, qos: QosProfile) -> None:
        self.topic, self.msgtype = topic, msgtype
        self._pub = node.create_publisher(message_class(msgtype), topic, _qos(qos))

    def publish(self, data: bytes) -> None:
        self._pub.publish(data)  # rclpy publishes bytes as a serialized message

    def matched(self) -> bool:
        return self._pub.get_subscription_count() > 0

    def close(self) -> None:
        self._pub.destroy()


class _Subscription:
    def __init__(self, node: Any, topic: str, msgtype: str, callback: RawCallback, qos: QosProfile) -> None:
        self.topic, self.msgtype = topic, msgtype

        def on(data: bytes) -> None:
            callback(Received(topic, msgtype, bytes(data), time.time_ns()))

        self._sub = node.create_subscription(message_class(msgtype), topic, on, _qos(qos), raw=True)

    def close(self) -> None:
        self._sub.destroy()


def message_class(msgtype: str) -> Any:
    """The rosidl-generated Python class of ``pkg/msg/Name`` (what ``rosidl_runtime_py``'s
    ``get_message`` does, which the pip wheels of ROS 2 do not ship). ``MessageTypeMissing`` where
    the package is not installed in this ROS 2 environment."""
    parts = msgtype.split("/")
    if len(parts) != 3 or not all(parts):
        raise TransportError(f"ros2: {msgtype!r} is not a message type name (pkg/msg/Name)")
    pkg, kind, name = parts
    try:
        return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
    except (AttributeError, ModuleNotFoundError) as exc:
        if pkg == "bevfuse_msgs":
            how = "build bevfuse's message package (the .msg files in perception/io/msg) in a ROS 2 workspace"
        else:
            deb = pkg.replace("_", "-")
            how = f"apt install ros-$ROS_DISTRO-{deb}, or pip install ros-{deb} where ROS 2 comes from pip wheels"
        raise MessageTypeMissing(msgtype, f"ros2: message type {msgtype} is not installed in this ROS 2 environment "
                                          f"({exc}); {how}") from None


class Ros2Transport:
    """One rclpy context and node, spun by a single-threaded executor on a background thread."""

    name = "ros2"

    def __init__(self, node: str = "bevfuse", namespace: str = "/", domain_id: int | None = None) -> None:
        ok, why = rclpy_available()
        if not ok:
            raise TransportUnavailable(why)
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        _keep_discovery_local()
        self._context = rclpy.Context()
        kwargs = {"domain_id": int(domain_id)} if domain_id is not None else {}
        rclpy.init(context=self._context, **kwargs)
        self.node = rclpy.create_node(node, namespace=namespace, context=self._context)
        # one thread: callbacks in arrival order across topics (see zenoh_transport._direct_callback)
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name="bevfuse-rclpy", daemon=True)
        self._thread.start()
        self._entities: list[Any] = []

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception:  # noqa: BLE001 - the context was shut down under it
            pass

    def publisher(self, topic: str, msgtype: str, qos: QosProfile = DEFAULT_QOS, *, block: bool = False) -> _Publisher:
        pub = _Publisher(self.node, topic, msgtype, qos)
        self._entities.append(pub)
        return pub

    def subscribe(self, topic: str, msgtype: str | None, callback: RawCallback, qos: QosProfile = DEFAULT_QOS) -> _Subscription:
        if msgtype is None:
            msgtype = self._graph_type(topic)
        sub = _Subscription(self.node, topic, msgtype, callback, qos)
        self._entities.append(sub)
        return sub

    def _graph_type(self, topic: str, timeout_s: float = 2.0) -> str:
        end = time.monotonic() + timeout_s
        while True:
            for name, types in self.node.get_topic_names_and_types():
                if name == topic and types:
                    return str(types[0])
            if time.monotonic() > end:
                raise TransportError(f"ros2: topic {topic}: no publisher in the graph to learn its type from; give the type in the rig")
            time.sleep(0.05)

    def close(self) -> None:
        for entity in reversed(self._entities):
            try:
                entity.close()
            except Exception:  # noqa: BLE001
                pass
        self._entities.clear()
        self._executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        if self._context.ok():
            self._context.shutdown()
        self._thread.join(timeout=2.0)
