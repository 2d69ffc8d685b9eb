"""A table of timed poses that answers ``world_T_ego(t_ns)`` by SE(3) interpolation.

Between samples: slerp on the rotation, linear on the translation. Outside the covered span:
linear/slerp extrapolation from the two end samples up to ``max_extrapolation_ns``, beyond that a
``PoseError`` naming the stamp and the span.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from calib import se3
from perception.errors import PoseError, ShapeError
from perception.types import EgoPose

__all__ = ["PoseTrajectory"]


class PoseTrajectory:
    """stamps_ns: (M,) int64 strictly increasing; world_T_ego: (M, 4, 4) float64."""

    def __init__(self, stamps_ns: npt.ArrayLike, world_T_ego: npt.ArrayLike, max_extrapolation_ns: int = 100_000_000,
                 name: str = "trajectory") -> None:
        stamps = np.asarray(stamps_ns)
        if stamps.dtype.kind not in "iu" or stamps.ndim != 1:
            raise ShapeError(f"stamps_ns: expected (M,) integer nanoseconds, got {stamps.dtype} {stamps.shape}")
        poses = np.asarray(world_T_ego, dtype=np.float64)
        if poses.shape != (stamps.shape[0], 4, 4):
            raise ShapeError(f"world_T_ego: expected ({stamps.shape[0]}, 4, 4), got {poses.shape}")
        if stamps.shape[0] == 0:
            raise ShapeError("stamps_ns: a trajectory needs at least one pose")
        order = np.argsort(stamps, kind="stable")
        stamps, poses = stamps[order].astype(np.int64), poses[order]
        keep = np.concatenate([[True], np.diff(stamps) > 0])  # duplicate stamps: keep the first
        self.stamps_ns = stamps[keep]
        self.poses = poses[keep]
        self.max_extrapolation_ns = int(max_extrapolation_ns)
        self.name = name

    @classmethod
    def from_ego_poses(cls, poses: Sequence[EgoPose], **kwargs: object) -> PoseTrajectory:
        return cls(np.array([p.stamp_ns for p in poses], np.int64), np.stack([p.world_T_ego for p in poses]), **kwargs)

    def __len__(self) -> int:
        return int(self.stamps_ns.shape[0])

    @property
    def span_ns(self) -> tuple[int, int]:
        return int(self.stamps_ns[0]), int(self.stamps_ns[-1])

    def covers(self, t_ns: int) -> bool:
        lo, hi = self.span_ns
        return lo - self.max_extrapolation_ns <= t_ns <= hi + self.max_extrapolation_ns

    def world_T_ego(self, t_ns: int) -> np.ndarray:
        """(4, 4) pose at ``t_ns``."""
        return self.world_T_ego_many(np.array([int(t_ns)], np.int64))[0]

    def world_T_ego_many(self, t_ns: npt.ArrayLike) -> np.ndarray:
        """(K, 4, 4) poses at the stamps ``t_ns: (K,) int64`` (e.g. per-point firing times)."""
        t = np.asarray(t_ns, dtype=np.int64).reshape(-1)
        lo, hi = self.span_ns
        bad = (t < lo - self.max_extrapolation_ns) | (t > hi + self.max_extrapolation_ns)
        if np.any(bad):
            tb = int(t[bad][0])
            raise PoseError(f"{self.name}: no pose for stamp {tb} ns: covered span is [{lo}, {hi}] ns "
                            f"with at most {self.max_extrapolation_ns} ns extrapolation")
        if len(self) == 1:
            return np.repeat(self.poses[:1], t.shape[0], axis=0)
        # index of the segment [i, i+1] for each stamp; clipped so ends extrapolate from the end segments
        i = np.clip(np.searchsorted(self.stamps_ns, t, side="right") - 1, 0, len(self) - 2)
        out = np.empty((t.shape[0], 4, 4))
        for seg in np.unique(i):
            m = i == seg
            t0, t1 = self.stamps_ns[seg], self.stamps_ns[seg + 1]
            alpha = (t[m] - t0).astype(np.float64) / float(t1 - t0)
            out[m] = se3.interpolate(self.poses[seg], self.poses[seg + 1], alpha)
        return out
