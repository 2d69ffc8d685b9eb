"""Fixtures of the runtime tests: free loopback ports and Zenoh endpoints on 127.0.0.1 only."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it; a race with another process is unlikely)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def endpoint() -> str:
    """A Zenoh endpoint on the loopback interface, on a free port."""
    return f"tcp/127.0.0.1:{free_port()}"


def wait_for_line(stream, needle: str, timeout_s: float) -> str:  # noqa: ANN001 - a text stream of a subprocess
    """Read ``stream`` line by line until a line contains ``needle``; returns what was read.

    Bounded: a reader thread, joined with ``timeout_s``; raises AssertionError on timeout or EOF.
    """
    import threading

    seen: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in iter(stream.readline, ""):
            seen.append(line)
            if needle in line:
                found.set()
                return

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(timeout_s)
    if not found.is_set():
        raise AssertionError(f"no line with {needle!r} within {timeout_s} s; got:\n{''.join(seen)}")
    return "".join(seen)


def wait_until(cond: Callable[[], object], timeout_s: float, poll_s: float = 0.02) -> bool:
    """Poll ``cond`` until it is true or ``timeout_s`` has passed; returns its last value as a bool."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(poll_s)
    return bool(cond())
