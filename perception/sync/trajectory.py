"""Timed poses that answer ``world_T_ego(t_ns)`` by SE(3) interpolation.

Between samples: slerp on the rotation, linear on the translation (one vectorised pass for any
number of query stamps, so that per-point LiDAR firing times cost one call). Outside the covered
span: extrapolation with the motion of the last ``extrapolation_base_ns`` of the trajectory, up to
``max_extrapolation_ns``; beyond that a ``PoseError`` naming the stamp and the span.

``PoseTrajectory`` is an immutable table; ``PoseBuffer`` is its streaming form (append as poses
arrive, forget what is older than a history, query a cached snapshot).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from numba import njit

from calib import se3
from perception.errors import PoseError, ShapeError
from perception.types import EgoPose

__all__ = ["PoseBuffer", "PoseTrajectory"]

# Extrapolating from the last two samples is fragile when they are nanoseconds apart (AV2's pose
# table has pairs 5 ns apart): the motion is taken over at least this much of the trajectory.
EXTRAPOLATION_BASE_NS = 20_000_000


@njit(cache=True, nogil=True)
def _interpolate(quats: np.ndarray, poses: np.ndarray, i0: np.ndarray, i1: np.ndarray, alpha: np.ndarray,
                 out: np.ndarray) -> None:
    """out[k] = slerp(quats[i0], quats[i1], alpha) with linear translation: ``se3.interpolate`` for many
    stamps in one compiled loop (the numpy version costs ~0.3 ms of small-array overhead per call,
    and a frame makes several). The tests check it against ``se3.slerp`` / ``se3.quat_to_matrix``."""
    for k in range(alpha.shape[0]):
        a = alpha[k]
        q0, q1 = quats[i0[k]], quats[i1[k]]
        dot = q0[0] * q1[0] + q0[1] * q1[1] + q0[2] * q1[2] + q0[3] * q1[3]
        sign = 1.0
        if dot < 0.0:
            sign, dot = -1.0, -dot
        if dot > 0.9995:  # nearly parallel: linear, as se3.slerp
            w0, w1 = 1.0 - a, a
        else:
            theta = np.arccos(min(dot, 1.0))
            sn = np.sin(theta)
            w0, w1 = np.sin((1.0 - a) * theta) / sn, np.sin(a * theta) / sn
        w1 *= sign
        w = w0 * q0[0] + w1 * q1[0]
        x = w0 * q0[1] + w1 * q1[1]
        y = w0 * q0[2] + w1 * q1[2]
        z = w0 * q0[3] + w1 * q1[3]
        n = np.sqrt(w * w + x * x + y * y + z * z)
        w, x, y, z = w / n, x / n, y / n, z / n
        o = out[k]
        o[0, 0], o[0, 1], o[0, 2] = 1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)
        o[1, 0], o[1, 1], o[1, 2] = 2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)
        o[2, 0], o[2, 1], o[2, 2] = 2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)
        for r in range(3):
            p0, p1 = poses[i0[k], r, 3], poses[i1[k], r, 3]
            o[r, 3] = p0 + a * (p1 - p0)
        o[3, 0], o[3, 1], o[3, 2], o[3, 3] = 0.0, 0.0, 0.0, 1.0


@njit(cache=True, nogil=True)
def finite_pose_quat(T: np.ndarray, q: np.ndarray) -> bool:
    """Whether the (4, 4) pose ``T`` is finite; if it is, the quaternion (w x y z, w >= 0) of its
    rotation block into ``q`` (4,): ``se3.matrix_to_quat`` of one matrix (the same branches and
    operations; tested against it) and the finiteness check in one compiled call, where numpy
    spent ~15 us a pose on them (an EgoPose stream appends 50 a second). For a finite matrix the
    square roots never see a negative number (each branch takes the largest diagonal term)."""
    for i in range(4):
        for j in range(4):
            if not math.isfinite(T[i, j]):
                return False
    tr = T[0, 0] + T[1, 1] + T[2, 2]
    if tr > 0:
        s = 2.0 * math.sqrt(tr + 1.0)
        w, x, y, z = 0.25 * s, (T[2, 1] - T[1, 2]) / s, (T[0, 2] - T[2, 0]) / s, (T[1, 0] - T[0, 1]) / s
    elif T[0, 0] > T[1, 1] and T[0, 0] > T[2, 2]:
        s = 2.0 * math.sqrt(1.0 + T[0, 0] - T[1, 1] - T[2, 2])
        w, x, y, z = (T[2, 1] - T[1, 2]) / s, 0.25 * s, (T[0, 1] + T[1, 0]) / s, (T[0, 2] + T[2, 0]) / s
    elif T[1, 1] > T[2, 2]:
        s = 2.0 * math.sqrt(1.0 + T[1, 1] - T[0, 0] - T[2, 2])
        w, x, y, z = (T[0, 2] - T[2, 0]) / s, (T[0, 1] + T[1, 0]) / s, 0.25 * s, (T[1, 2] + T[2, 1]) / s
    else:
        s = 2.0 * math.sqrt(1.0 + T[2, 2] - T[0, 0] - T[1, 1])
        w, x, y, z = (T[1, 0] - T[0, 1]) / s, (T[0, 2] + T[2, 0]) / s, (T[1, 2] + T[2, 1]) / s, 0.25 * s
    n = math.sqrt(w * w + x * x + y * y + z * z)
    sign = -1.0 if w / n < 0 else 1.0
    q[0], q[1], q[2], q[3] = sign * (w / n), sign * (x / n), sign * (y / n), sign * (z / n)
    return True


@njit(cache=True, nogil=True)
def _segments_into(s: np.ndarray, t: np.ndarray, base_ns: int, max_ext_ns: int, i0: np.ndarray, i1: np.ndarray,
                   alpha: np.ndarray) -> int:
    """``PoseTrajectory._segments`` and the coverage check in one compiled pass (numpy spends ~50 us
    of small-array overhead on them per query): the same indices and the same float64 division,
    so the same bits (tested). Returns the position of the first stamp outside the span plus the
    extrapolation bound, else -1 (i0, i1, alpha filled only then, and only with two samples or more)."""
    n = s.shape[0]
    lo, hi = s[0] - max_ext_ns, s[n - 1] + max_ext_ns
    for k in range(t.shape[0]):
        if t[k] < lo or t[k] > hi:
            return k
    if n < 2:
        return -1
    # extrapolation over at least base_ns of trajectory, as in _segments
    jb = max(min(np.searchsorted(s, s[0] + base_ns, side="left"), n - 1), 1)
    ja = min(max(np.searchsorted(s, s[n - 1] - base_ns, side="right") - 1, 0), n - 2)
    for k in range(t.shape[0]):
        tk = t[k]
        if tk < s[0]:
            a, b = 0, jb
        elif tk > s[n - 1]:
            a, b = ja, n - 1
        else:
            a = min(max(np.searchsorted(s, tk, side="right") - 1, 0), n - 2)
            b = a + 1
        i0[k], i1[k] = a, b
        alpha[k] = np.float64(tk - s[a]) / np.float64(s[b] - s[a])
    return -1


@njit(cache=True, nogil=True)
def world_T_ego_into(stamps: np.ndarray, quats: np.ndarray, poses: np.ndarray, max_extrapolation_ns: int,
                     t: np.ndarray, out: np.ndarray) -> int:
    """``PoseTrajectory.world_T_ego_many`` in one compiled call: ``_segments_into`` then
    ``_interpolate`` (or the one pose) into ``out`` (K, 4, 4), the same values. Returns the
    position of the first stamp outside the span plus the bound (``out`` not filled), else -1."""
    k = t.shape[0]
    i0, i1, alpha = np.empty(k, np.int64), np.empty(k, np.int64), np.empty(k)
    bad = _segments_into(stamps, t, EXTRAPOLATION_BASE_NS, max_extrapolation_ns, i0, i1, alpha)
    if bad >= 0:
        return bad
    if stamps.shape[0] == 1:
        for j in range(k):
            out[j] = poses[0]
        return -1
    _interpolate(quats, poses, i0, i1, alpha, out)
    return -1


class PoseTrajectory:
    """stamps_ns: (M,) int64 (sorted here; duplicates keep the first); world_T_ego: (M, 4, 4) float64."""

    def __init__(self, stamps_ns: npt.ArrayLike, world_T_ego: npt.ArrayLike, max_extrapolation_ns: int = 100_000_000,
                 name: str = "trajectory", *, quats: npt.ArrayLike | None = None) -> None:
        stamps = np.asarray(stamps_ns)
        if stamps.dtype.kind not in "iu" or stamps.ndim != 1:
            raise ShapeError(f"stamps_ns: expected (M,) integer nanoseconds, got {stamps.dtype} {stamps.shape}")
        poses = np.asarray(world_T_ego, dtype=np.float64)
        if poses.shape != (stamps.shape[0], 4, 4):
            raise ShapeError(f"world_T_ego: expected ({stamps.shape[0]}, 4, 4), got {poses.shape}")
        if stamps.shape[0] == 0:
            raise ShapeError("stamps_ns: a trajectory needs at least one pose")
        if not np.all(np.isfinite(poses)):
            raise ShapeError(f"world_T_ego: {name} holds NaN or inf poses")
        order = np.argsort(stamps, kind="stable")
        stamps, poses = stamps[order].astype(np.int64), poses[order]
        keep = np.concatenate([[True], np.diff(stamps) > 0])  # duplicate stamps: keep the first
        self.stamps_ns = stamps[keep]
        self.poses = poses[keep]
        if quats is None:
            self.quats = se3.matrix_to_quat(self.poses)
        else:
            self.quats = np.asarray(quats, dtype=np.float64)[order][keep]
        self.max_extrapolation_ns = int(max_extrapolation_ns)
        self.name = name

    @classmethod
    def sorted_unique(cls, stamps_ns: np.ndarray, world_T_ego: np.ndarray, quats: np.ndarray,
                      max_extrapolation_ns: int, name: str) -> PoseTrajectory:
        """For callers that hold strictly increasing stamps, checked poses and their quaternions
        already (``PoseBuffer``): no sorting, no checks, no copies."""
        self = cls.__new__(cls)
        self.stamps_ns, self.poses, self.quats = stamps_ns, world_T_ego, quats
        self.max_extrapolation_ns, self.name = int(max_extrapolation_ns), name
        return self

    @classmethod
    def from_ego_poses(cls, poses: Sequence[EgoPose], **kwargs: object) -> PoseTrajectory:
        return cls(np.array([p.stamp_ns for p in poses], np.int64), np.stack([p.world_T_ego for p in poses]), **kwargs)

    def __len__(self) -> int:
        return int(self.stamps_ns.shape[0])

    @property
    def span_ns(self) -> tuple[int, int]:
        return int(self.stamps_ns[0]), int(self.stamps_ns[-1])

    def covers(self, t_ns: int | npt.ArrayLike, *, extrapolate: bool = True) -> bool:
        """True when every stamp in ``t_ns`` has a pose (within the extrapolation bound if allowed)."""
        lo, hi = self.span_ns
        margin = self.max_extrapolation_ns if extrapolate else 0
        if isinstance(t_ns, (int, np.integer)):  # one stamp (a frame asks once per frame): no arrays
            return lo - margin <= int(t_ns) <= hi + margin
        t = np.asarray(t_ns, dtype=np.int64)
        return bool(np.all((t >= lo - margin) & (t <= hi + margin)))

    def world_T_ego(self, t_ns: int) -> np.ndarray:
        """(4, 4) pose at ``t_ns``."""
        return self.world_T_ego_many(np.array([int(t_ns)], np.int64))[0]

    def world_T_ego_many(self, t_ns: npt.ArrayLike) -> np.ndarray:
        """(K, 4, 4) poses at the stamps ``t_ns: (K,) int64`` (e.g. per-point firing times)."""
        t = np.asarray(t_ns, dtype=np.int64).reshape(-1)
        out = np.empty((t.shape[0], 4, 4))
        bad = world_T_ego_into(self.stamps_ns, self.quats, self.poses, self.max_extrapolation_ns, t, out)
        if bad >= 0:
            raise self.no_pose(int(t[bad]))
        return out

    def no_pose(self, t_ns: int) -> PoseError:
        """The error for a stamp the trajectory does not cover."""
        lo, hi = self.span_ns
        return PoseError(f"{self.name}: no pose for stamp {t_ns} ns: covered span is [{lo}, {hi}] ns "
                         f"with at most {self.max_extrapolation_ns} ns extrapolation")

    def _segments(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each stamp, the two samples to interpolate between and the fraction (may be < 0 or > 1).
        The numpy statement of what ``_segments_into`` computes (the tests hold one to the other)."""
        s = self.stamps_ns
        i0 = np.clip(np.searchsorted(s, t, side="right") - 1, 0, len(s) - 2)
        i1 = i0 + 1
        before, after = t < s[0], t > s[-1]
        if before.any():  # extrapolate backwards over at least EXTRAPOLATION_BASE_NS of trajectory
            j = min(int(np.searchsorted(s, s[0] + EXTRAPOLATION_BASE_NS, side="left")), len(s) - 1)
            i0[before], i1[before] = 0, max(j, 1)
        if after.any():
            j = max(int(np.searchsorted(s, s[-1] - EXTRAPOLATION_BASE_NS, side="right")) - 1, 0)
            i0[after], i1[after] = min(j, len(s) - 2), len(s) - 1
        t0, t1 = s[i0], s[i1]
        alpha = (t - t0).astype(np.float64) / (t1 - t0).astype(np.float64)
        return i0, i1, alpha

    def relative(self, t_ref_ns: int, t_ns: npt.ArrayLike) -> np.ndarray:
        """(K, 4, 4) ``ego(t_ref)_T_ego(t)``: maps ego coordinates at ``t`` into the ego frame at ``t_ref``."""
        t = np.asarray(t_ns, dtype=np.int64).reshape(-1)
        poses = self.world_T_ego_many(np.concatenate([[int(t_ref_ns)], t]))
        return se3.invert(poses[0]) @ poses[1:]


class PoseBuffer:
    """A growing trajectory for streaming use: ``append(stamp, world_T_ego)`` in any order, poses
    older than ``history_ns`` behind the newest are forgotten; ``trajectory()`` is cached until the
    next change, so many queries between two appends cost one snapshot.

    Poses live in preallocated arrays (a filter appends one per IMU sample, 100 a second), so that a
    snapshot is three slices rather than a stack of hundreds of small matrices.
    """

    def __init__(self, history_ns: int, max_extrapolation_ns: int, name: str = "poses") -> None:
        self.history_ns = int(history_ns)
        self.max_extrapolation_ns = int(max_extrapolation_ns)
        self.name = name
        self._t = np.zeros(256, np.int64)
        self._P = np.zeros((256, 4, 4))
        self._q = np.zeros((256, 4))
        self._lo = self._hi = 0  # the live poses are [_lo, _hi)
        self._newest: int | None = None  # _t[_hi - 1] as an int (None when empty): asked on every push
        self._snapshot: PoseTrajectory | None = None

    def __len__(self) -> int:
        return self._hi - self._lo

    def clear(self) -> None:
        self._lo = self._hi = 0
        self._newest = None
        self._snapshot = None

    @property
    def span_ns(self) -> tuple[int, int] | None:
        return (int(self._t[self._lo]), self._newest) if self._newest is not None else None

    @property
    def newest_ns(self) -> int | None:
        """The stamp of the newest pose (None when empty)."""
        return self._newest

    def _room(self, more: int = 1) -> None:
        """Make space for ``more`` poses at the end: compact, or grow."""
        if self._hi + more <= len(self._t):
            return
        n = self._hi - self._lo
        if n + more <= len(self._t) // 2:
            self._t[:n], self._P[:n], self._q[:n] = self._t[self._lo:self._hi], self._P[self._lo:self._hi], self._q[self._lo:self._hi]
        else:
            cap = max(2 * len(self._t), 2 * (n + more))
            t, P, q = np.zeros(cap, np.int64), np.zeros((cap, 4, 4)), np.zeros((cap, 4))
            t[:n], P[:n], q[:n] = self._t[self._lo:self._hi], self._P[self._lo:self._hi], self._q[self._lo:self._hi]
            self._t, self._P, self._q = t, P, q
        self._lo, self._hi = 0, n

    def append(self, stamp_ns: int, world_T_ego: np.ndarray, quat: np.ndarray | None = None) -> None:
        """Add a pose; a pose at a stamp already held replaces it (a filter's update after its prediction)."""
        stamp_ns = int(stamp_ns)
        if quat is None:
            W = np.asarray(world_T_ego, dtype=np.float64)
            quat = np.empty(4)
            if W.shape != (4, 4) or not finite_pose_quat(W, quat):
                quat = se3.matrix_to_quat(W)  # what numpy makes of it, as before
        q = quat
        if self._newest is None or stamp_ns > self._newest:
            # in order (the usual case): at the end, without a search
            if self._hi == self._t.shape[0]:
                self._room()
            i = self._hi
            self._hi = i + 1
            self._t[i], self._P[i], self._q[i] = stamp_ns, world_T_ego, q
            self._newest = stamp_ns
            self._prune()
            self._snapshot = None
            return
        i = self._lo + int(np.searchsorted(self._t[self._lo:self._hi], stamp_ns))
        if i == self._hi or self._t[i] != stamp_ns:  # out of order: shift the newer ones up by one
            self._room()
            i = self._lo + int(np.searchsorted(self._t[self._lo:self._hi], stamp_ns))
            self._t[i + 1:self._hi + 1] = self._t[i:self._hi].copy()
            self._P[i + 1:self._hi + 1] = self._P[i:self._hi].copy()
            self._q[i + 1:self._hi + 1] = self._q[i:self._hi].copy()
            self._hi += 1
        self._t[i], self._P[i], self._q[i] = stamp_ns, world_T_ego, q
        self._prune()
        self._snapshot = None

    def extend(self, stamps_ns: np.ndarray, world_T_ego: np.ndarray, quats: np.ndarray) -> None:
        """``append`` of K poses ``(K,)`` int64, ``(K, 4, 4)``, ``(K, 4)`` in one go: the same buffer
        after as K appends (the history pruned to the newest), slices instead of K calls where the
        stamps are strictly increasing after the newest held; otherwise one append each."""
        k = len(stamps_ns)
        if k == 0:
            return
        ts = stamps_ns.tolist()  # Python ints: numpy's diff and all cost ~7 us on ten stamps
        first, last = ts[0], ts[-1]
        if (self._newest is not None and first <= self._newest) or not all(a < b for a, b in zip(ts, ts[1:])):
            for i in range(k):
                self.append(int(stamps_ns[i]), world_T_ego[i], quats[i])
            return
        while self._hi + k > self._t.shape[0]:
            self._room(k)
        lo, hi = self._hi, self._hi + k
        self._t[lo:hi], self._P[lo:hi], self._q[lo:hi] = stamps_ns, world_T_ego, quats
        self._hi = hi
        self._newest = last
        self._prune()
        self._snapshot = None

    def truncate_after(self, stamp_ns: int) -> None:
        """Forget every pose later than ``stamp_ns`` (a filter re-runs from there)."""
        i = self._lo + int(np.searchsorted(self._t[self._lo:self._hi], int(stamp_ns), side="right"))
        if i < self._hi:
            self._hi = i
            self._newest = int(self._t[i - 1]) if i > self._lo else None
            self._snapshot = None

    def _prune(self) -> None:
        t, lo = self._t, self._lo
        cut = self._newest - self.history_ns  # type: ignore[operator]  # not empty here
        if t[lo] < cut:  # then lo + 1 < hi: the newest is >= cut
            if t[lo + 1] >= cut:  # the usual case, one pose per append: no search
                self._lo = lo + 1
            else:
                self._lo = lo + int(np.searchsorted(t[lo:self._hi], cut))

    def trajectory(self) -> PoseTrajectory:
        """The current poses as a ``PoseTrajectory``; ``PoseError`` when there are none yet."""
        if self._snapshot is None:
            if self._hi == self._lo:
                raise PoseError(f"{self.name}: no pose received yet")
            sl = slice(self._lo, self._hi)
            self._snapshot = PoseTrajectory.sorted_unique(self._t[sl].copy(), self._P[sl].copy(), self._q[sl].copy(),
                                                          self.max_extrapolation_ns, self.name)
        return self._snapshot
