"""``bevfuse sim``: a multi-sensor drive-log simulator with ground truth, deterministic for a seed.

World (``world``, ``road``, ``motion``, ``shapes``) -> sensors (``lidar``, ``camera`` + ``render``,
``radar``, ``inertial``) -> ``Simulator`` (timing, faults, ground truth, bag writing) -> a ROS 2 bag
that rosbags or any ROS 2 tool reads. ``preview`` draws one frame; ``faults`` parses ``--faults``.

Imports stay light here: the numba kernels compile (or load from their cache) when a simulator
module is first imported, not when ``perception`` is.
"""

from __future__ import annotations

__all__ = ["FaultPlan", "SimConfig", "Simulator", "parse_faults"]


def __getattr__(name: str) -> object:
    if name == "Simulator":
        from perception.sim.simulator import Simulator

        return Simulator
    if name == "SimConfig":
        from perception.sim.config import SimConfig

        return SimConfig
    if name in ("FaultPlan", "parse_faults"):
        from perception.sim import faults

        return getattr(faults, name)
    raise AttributeError(f"module 'perception.sim' has no attribute {name!r}")
