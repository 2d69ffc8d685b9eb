"""The Zenoh transport: CDR-encoded ROS 2 messages on rmw_zenoh's key expressions.

A ``ZenohTransport`` is one Zenoh session in peer mode (as each ROS 2 context is under rmw_zenoh).
It connects to ``connect`` endpoints (rmw_zenoh's router listens on ``tcp/localhost:7447``) and
listens on ``listen`` endpoints (so that a second bevfuse process can connect to it when no router
runs). Multicast scouting is always off and gossip scouting off unless asked for: nothing is
discovered or announced beyond the endpoints named, so a test never sends a packet off the machine.

Each sample carries rmw_zenoh's attachment (sequence number, source timestamp, GID); each
publisher, subscription and the node itself declare rmw_zenoh's liveliness tokens, so that
``ros2 topic list`` on an rmw_zenoh system sees them. See ``perception.runtime.rmw_zenoh`` and
docs/NODE.md for what was checked against what.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Sequence
from typing import Any

from perception.runtime.errors import TransportError, TransportUnavailable
from perception.runtime.rmw_zenoh import (
    DEFAULT_QOS,
    LIVELINESS_PREFIX,
    QosProfile,
    decode_attachment,
    encode_attachment,
    gid_for,
    liveliness_key,
    mangle,
    split_key,
    topic_key,
)
from perception.runtime.transport import RawCallback, Received

__all__ = ["DEFAULT_ENDPOINT", "ZenohTransport", "zenoh_config"]

# rmw_zenoh's router endpoint; 127.0.0.1 rather than localhost so that it can never resolve to
# anything but the loopback interface.
DEFAULT_ENDPOINT = "tcp/127.0.0.1:7447"


def _zenoh() -> Any:
    try:
        import zenoh
    except ImportError as exc:  # pragma: no cover - eclipse-zenoh is a dependency of the runtime
        raise TransportUnavailable(f"the Zenoh transport needs the eclipse-zenoh package: {exc}") from None
    return zenoh


def zenoh_config(connect: Sequence[str] = (), listen: Sequence[str] = (), *, gossip: bool = False) -> Any:
    """A peer-mode ``zenoh.Config`` with exactly these endpoints, multicast scouting off."""
    zenoh = _zenoh()
    conf = zenoh.Config()
    for key, value in (
        ("mode", "peer"),
        ("connect/endpoints", list(connect)),
        ("listen/endpoints", list(listen)),
        ("scouting/multicast/enabled", False),
        ("scouting/gossip/enabled", bool(gossip)),
    ):
        try:
            conf.insert_json5(key, json.dumps(value))
        except Exception as exc:  # zenoh raises ZError with the parser's message
            raise TransportError(f"zenoh config {key} = {value!r}: {exc}") from None
    return conf


def _direct_callback(fn: Any) -> Any:
    """``fn`` run on Zenoh's receiving thread. zenoh-python's default runs each subscriber's Python
    callback on a thread of its own, so samples of two topics can be delivered in another order than
    they were sent (measured here: ~8% of consecutive pairs swapped at 3000 msg/s). A synchronizer fed
    out of order matches frames differently than a replay; run directly, the samples of one link
    come in the order sent. Callbacks must then be short: they only hand the bytes on."""
    zenoh = _zenoh()
    try:
        return zenoh.handlers.Callback(fn, indirect=False)
    except TypeError:  # an eclipse-zenoh without the (unstable) option: per-topic order only
        return fn


class _Publisher:
    def __init__(self, transport: ZenohTransport, topic: str, msgtype: str, qos: QosProfile, block: bool) -> None:
        zenoh = _zenoh()
        self.topic, self.msgtype, self.qos = topic, msgtype, qos
        self.key = topic_key(topic, msgtype, domain_id=transport.domain_id, distro=transport.distro)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        token_key = transport._entity_key("MP", topic, msgtype, qos)
        self._gid = gid_for(token_key)
        # rmw_zenoh: KEEP_ALL + RELIABLE blocks on congestion, anything else drops. A player asks
        # to block: it must not lose what it replays.
        cc = zenoh.CongestionControl.BLOCK if block else zenoh.CongestionControl.DROP
        rel = zenoh.Reliability.BEST_EFFORT if qos.best_effort else zenoh.Reliability.RELIABLE
        try:
            self._pub = transport.session.declare_publisher(self.key, congestion_control=cc, reliability=rel)
            self._token = transport.session.liveliness().declare_token(token_key)
        except Exception as exc:
            raise TransportError(f"zenoh: cannot declare a publisher on {self.key}: {exc}") from None

    def publish(self, data: bytes) -> None:
        with self._lock:  # sequence numbers in the order the samples go out
            att = encode_attachment(next(self._seq), time.time_ns(), self._gid)
            self._pub.put(data, attachment=att)

    def matched(self) -> bool:
        return bool(self._pub.matching_status.matching)

    def close(self) -> None:
        for entity in (self._token, self._pub):
            try:
                entity.undeclare()
            except Exception:  # noqa: BLE001 - a closed session has undeclared it already
                pass


class _Subscription:
    def __init__(self, transport: ZenohTransport, topic: str, msgtype: str | None, callback: RawCallback, qos: QosProfile) -> None:
        self.topic = topic
        self.key = topic_key(topic, msgtype, domain_id=transport.domain_id, distro=transport.distro)
        self._msgtype = msgtype
        self._callback = callback
        self.type_errors = 0
        try:
            self._sub = transport.session.declare_subscriber(self.key, _direct_callback(self._on_sample))
            self._token = None
            if msgtype is not None:
                self._token = transport.session.liveliness().declare_token(transport._entity_key("MS", topic, msgtype, qos))
        except Exception as exc:
            raise TransportError(f"zenoh: cannot subscribe to {self.key}: {exc}") from None

    def _on_sample(self, sample: Any) -> None:
        now = time.time_ns()
        msgtype = self._msgtype
        if msgtype is None:
            try:
                msgtype = split_key(str(sample.key_expr))[2]
            except Exception:  # noqa: BLE001 - a key that is not rmw_zenoh's: counted, skipped
                self.type_errors += 1
                return
        att = decode_attachment(sample.attachment.to_bytes() if sample.attachment is not None else None)
        self._callback(Received(self.topic, msgtype, sample.payload.to_bytes(), now,
                                att.source_timestamp_ns if att else None, att.sequence if att else None))

    def close(self) -> None:
        for entity in (self._token, self._sub):
            if entity is None:
                continue
            try:
                entity.undeclare()
            except Exception:  # noqa: BLE001
                pass


class ZenohTransport:
    """One Zenoh session speaking rmw_zenoh's layout (see the module docstring).

    ``connect``/``listen``: Zenoh endpoints (``tcp/127.0.0.1:7447``); ``domain_id``: ROS_DOMAIN_ID;
    ``distro``: 'jazzy' (RIHS01 type hashes; Iron and later) or 'humble' (``TypeHashNotSupported``);
    ``node``: the node name in the liveliness tokens.
    """

    name = "zenoh"

    def __init__(self, connect: Sequence[str] = (DEFAULT_ENDPOINT,), listen: Sequence[str] = (), *, domain_id: int = 0,
                 distro: str = "jazzy", node: str = "bevfuse", namespace: str = "/", gossip: bool = False) -> None:
        if distro not in ("jazzy", "humble"):
            raise TransportError(f"distro: expected 'jazzy' (RIHS01 hashes, Iron and later) or 'humble', got {distro!r}")
        if not connect and not listen:
            raise TransportError("zenoh: give at least one endpoint to connect to or listen on")
        zenoh = _zenoh()
        self.domain_id, self.distro, self.node, self.namespace = int(domain_id), distro, node, namespace
        self.connect, self.listen = tuple(connect), tuple(listen)
        try:
            self.session = zenoh.open(zenoh_config(connect, listen, gossip=gossip))
        except TransportError:
            raise
        except Exception as exc:
            raise TransportError(f"zenoh: cannot open a session (connect {list(connect)}, listen {list(listen)}): {exc}") from None
        self.zid = str(self.session.zid())
        self._ids = itertools.count(10)  # rmw_zenoh numbers the node's entities from 10 too
        self._closed = False
        self._entities: list[Any] = []
        self._node_token = self.session.liveliness().declare_token(
            "/".join([LIVELINESS_PREFIX, str(self.domain_id), self.zid, "0", "0", "NN", mangle("/"), mangle(namespace), mangle(node)]))

    def _entity_key(self, kind: str, topic: str, msgtype: str, qos: QosProfile) -> str:
        return liveliness_key(kind=kind, zid=self.zid, node=self.node, topic=topic, msgtype=msgtype, qos=qos,
                              domain_id=self.domain_id, namespace=self.namespace, entity_id=next(self._ids), distro=self.distro)

    def publisher(self, topic: str, msgtype: str, qos: QosProfile = DEFAULT_QOS, *, block: bool = False) -> _Publisher:
        pub = _Publisher(self, topic, msgtype, qos, block)
        self._entities.append(pub)
        return pub

    def subscribe(self, topic: str, msgtype: str | None, callback: RawCallback, qos: QosProfile = DEFAULT_QOS) -> _Subscription:
        sub = _Subscription(self, topic, msgtype, callback, qos)
        self._entities.append(sub)
        return sub

    def peers(self) -> list[str]:
        """The Zenoh ids of the peers and routers this session is connected to."""
        info = self.session.info
        return [str(z) for z in (*info.peers_zid(), *info.routers_zid())]

    def wait_for_peer(self, timeout_s: float) -> bool:
        """Wait until at least one peer or router is connected (True) or ``timeout_s`` passes."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.peers():
                return True
            time.sleep(0.02)
        return bool(self.peers())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for entity in reversed(self._entities):
            entity.close()
        try:
            self._node_token.undeclare()
        except Exception:  # noqa: BLE001
            pass
        self.session.close()
