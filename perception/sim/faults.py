"""Sensor faults for the synchronizer and reliability tests: ``--faults SPEC``.

SPEC is comma-separated tokens (sensor names are the rig's; times are seconds from the log start):

- ``drop=P``: each message of every sensor is lost with probability P;
- ``drop:SENSOR=P``: the same for one sensor (overrides ``drop=P`` for it);
- ``jitter_ms=X``: header stamps jitter uniformly within +-X ms of the true time (the data stay
  those of the true time: a driver stamping late or early);
- ``outage=SENSOR@START+SECONDS``: no message of SENSOR with a true stamp in [START, START+SECONDS);
  repeatable;
- ``reorder=P``: with probability P a message arrives late, 1 to 3 of its periods after its time,
  so it is recorded after newer messages of its topic (out-of-order delivery);
- ``clock_jump=SECONDS@AT``: from AT on, the recording clock reads SECONDS more (negative: it
  jumps back); header stamps and log times both jump. Repeatable.

Faults act on rig sensors only; the ground truth and the exact ego poses are not sensors, only a
clock jump moves them too. Each decision draws from a stream keyed by (seed, sensor, message index),
so a fault spec changes only what it names.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

from perception.errors import ConfigError
from perception.sim.keys import stream_key

__all__ = ["FaultDecision", "FaultInjector", "FaultPlan", "FaultSpecError", "parse_faults"]

NS = 1_000_000_000


class FaultSpecError(ConfigError):
    """A ``--faults`` spec that cannot be parsed; the message names the offending token."""


@dataclass(frozen=True)
class FaultPlan:
    drop_all: float = 0.0
    drop: dict[str, float] = field(default_factory=dict)
    jitter_ns: int = 0
    outages: tuple[tuple[str, int, int], ...] = ()  # (sensor, start_ns, end_ns) relative to the log start
    reorder: float = 0.0
    clock_jumps: tuple[tuple[int, int], ...] = ()  # (at_ns, jump_ns), sorted by at

    @property
    def empty(self) -> bool:
        return self == FaultPlan()

    def drop_probability(self, sensor: str) -> float:
        return self.drop.get(sensor, self.drop_all)

    def clock(self, t_rel_ns: int) -> int:
        """The recorded clock's reading at true time ``t_rel_ns``: the true time plus the jumps so far."""
        return t_rel_ns + sum(j for at, j in self.clock_jumps if t_rel_ns >= at)


_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def _number(token: str, text: str, what: str) -> float:
    if not re.fullmatch(_NUM, text):
        raise FaultSpecError(f"--faults: token {token!r}: {what}: expected a number, got {text!r}")
    value = float(text)
    if not math.isfinite(value):
        raise FaultSpecError(f"--faults: token {token!r}: {what}: expected a finite number, got {text!r}")
    return value


def _probability(token: str, text: str) -> float:
    p = _number(token, text, "probability")
    if not 0.0 <= p <= 1.0:
        raise FaultSpecError(f"--faults: token {token!r}: probability must be in [0, 1], got {p}")
    return p


def _sensor(token: str, name: str, sensors: Collection[str] | None) -> str:
    if not name:
        raise FaultSpecError(f"--faults: token {token!r}: missing sensor name")
    if sensors is not None and name not in sensors:
        raise FaultSpecError(f"--faults: token {token!r}: unknown sensor {name!r}; the rig has {sorted(sensors)}")
    return name


def parse_faults(spec: str | None, sensors: Collection[str] | None = None) -> FaultPlan:
    """Parse a fault spec strictly; ``sensors`` (the rig's names) validates sensor names.

    Raises ``FaultSpecError`` naming the bad token and what was expected.
    """
    if spec is None or not spec.strip():
        return FaultPlan()
    drop_all = 0.0
    drop: dict[str, float] = {}
    jitter_ns = 0
    outages: list[tuple[str, int, int]] = []
    reorder = 0.0
    jumps: list[tuple[int, int]] = []
    seen: set[str] = set()
    for raw in spec.split(","):
        token = raw.strip()
        if not token:
            raise FaultSpecError(f"--faults: empty token in {spec!r} (two commas, or a trailing comma)")
        if "=" not in token:
            raise FaultSpecError(f"--faults: token {token!r}: expected KEY=VALUE (drop, drop:SENSOR, jitter_ms, outage, "
                                 f"reorder, clock_jump)")
        key, value = (x.strip() for x in token.split("=", 1))
        if key in ("drop", "jitter_ms", "reorder") or key.startswith("drop:"):
            if key in seen:
                raise FaultSpecError(f"--faults: token {token!r}: {key} given twice")
            seen.add(key)
        if key == "drop":
            drop_all = _probability(token, value)
        elif key.startswith("drop:"):
            drop[_sensor(token, key[5:].strip(), sensors)] = _probability(token, value)
        elif key == "jitter_ms":
            ms = _number(token, value, "jitter_ms")
            if ms < 0:
                raise FaultSpecError(f"--faults: token {token!r}: jitter_ms must be >= 0, got {ms}")
            jitter_ns = int(round(ms * 1e6))
        elif key == "reorder":
            reorder = _probability(token, value)
        elif key == "outage":
            m = re.fullmatch(r"([^@]*)@([^+]+)\+(.+)", value)
            if not m:
                raise FaultSpecError(f"--faults: token {token!r}: expected outage=SENSOR@START+SECONDS, e.g. outage=CAM_FRONT@3+2")
            name = _sensor(token, m.group(1).strip(), sensors)
            start = _number(token, m.group(2).strip(), "START")
            length = _number(token, m.group(3).strip(), "SECONDS")
            if start < 0 or length <= 0:
                raise FaultSpecError(f"--faults: token {token!r}: START must be >= 0 and SECONDS > 0, got {start} and {length}")
            outages.append((name, int(round(start * NS)), int(round((start + length) * NS))))
        elif key == "clock_jump":
            m = re.fullmatch(r"([^@]+)@(.+)", value)
            if not m:
                raise FaultSpecError(f"--faults: token {token!r}: expected clock_jump=SECONDS@AT, e.g. clock_jump=0.5@4")
            jump = _number(token, m.group(1).strip(), "SECONDS")
            at = _number(token, m.group(2).strip(), "AT")
            if at < 0 or jump == 0:
                raise FaultSpecError(f"--faults: token {token!r}: AT must be >= 0 and SECONDS non-zero, got {at} and {jump}")
            jumps.append((int(round(at * NS)), int(round(jump * NS))))
        else:
            raise FaultSpecError(f"--faults: token {token!r}: unknown fault {key!r}; expected drop, drop:SENSOR, jitter_ms, "
                                 f"outage, reorder or clock_jump")
    return FaultPlan(drop_all, drop, jitter_ns, tuple(outages), reorder, tuple(sorted(jumps)))


@dataclass(frozen=True)
class FaultDecision:
    """What happens to one message: kept or not, its header stamp and when it is received (true ns)."""

    keep: bool
    stamp_rel_ns: int
    receive_rel_ns: int


class FaultInjector:
    """Applies a ``FaultPlan`` message by message, deterministically for a seed."""

    def __init__(self, plan: FaultPlan, seed: int) -> None:
        self.plan = plan
        self.seed = seed

    def decide(self, sensor: str, index: int, stamp_rel_ns: int, latency_ns: int, period_ns: int) -> FaultDecision:
        """The fate of message ``index`` of ``sensor`` with true stamp ``stamp_rel_ns``."""
        plan = self.plan
        receive = stamp_rel_ns + latency_ns
        if plan.empty:
            return FaultDecision(True, stamp_rel_ns, receive)
        u = np.random.default_rng(stream_key(self.seed, "fault", sensor, index)).random(4)
        for name, start, end in plan.outages:
            if name == sensor and start <= stamp_rel_ns < end:
                return FaultDecision(False, stamp_rel_ns, receive)
        if u[0] < plan.drop_probability(sensor):
            return FaultDecision(False, stamp_rel_ns, receive)
        stamp = stamp_rel_ns
        if plan.jitter_ns:
            stamp += int(round((2.0 * u[1] - 1.0) * plan.jitter_ns))
        if u[2] < plan.reorder:
            receive += int(round((1.0 + 2.0 * u[3]) * period_ns))
        return FaultDecision(True, stamp, receive)
