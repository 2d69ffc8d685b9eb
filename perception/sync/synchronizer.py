"""The streaming synchronizer: ``push(SensorMessage) -> list[SyncedFrame]``, ``flush()`` at the end.

One frame per reference-LiDAR sweep at the configured frame rate (default 10 Hz: every second
sweep of a 20 Hz LiDAR; the sweeps between are accumulated into the next frame). For the frame at
stamp ``T``:

- LiDAR: the key sweep and up to ``lidar_sweeps - 1`` earlier ones (none older than
  ``lidar_max_lag_ms``), each deskewed into its own ego frame (once, cached) and moved into the
  ego frame at ``T``, with a ``time_lag`` column (seconds);
- cameras: for camera ``c`` the image nearest to ``T + offset_c`` within ``slop_c``; each image
  goes into one frame at most;
- radars: every scan in ``[T - radar_window, T + radar_slop]`` of every radar, in the ego frame at
  ``T`` with compensated velocities rotated into it;
- the pose ``world_T_ego(T)`` and, per camera, ``ego_T_sensor`` at the image's stamp.

**When a frame goes out.** As soon as every member is in: each camera has its final match (no
later image can be nearer: the camera's last image plus half its nominal period already lies
farther from the target, the inter-message bound of ROS ApproximateTime), or provably none;
each radar has a scan in the window, or provably none; the pose source has reached the end of the
sweep. Otherwise when the synchronizer's clock passes ``T + deadline``: the clock is message
time (the newest stamp pushed), never the wall clock, so a replay gives the same frames as the
run that recorded it, and frames never wait on a sleeping process. What is not in is listed
in ``SyncedFrame.missing`` (degraded, never silent). Frames go out in stamp order.

**Late and out of order.** Policy 'drop': a message older than its sensor's previous one, or too
old for any frame still to come, is dropped and counted. Policy 'wait': every non-pose message
is held ``reorder_window_ms`` of message time in a reorder buffer and released in stamp order,
so a stream reordered by less than that loses nothing (at the price of that much latency). Pose
messages go straight to the pose source, which folds late ones in itself.

**Clock jumps.** A reference-LiDAR or pose message more than ``clock_jump_ms`` behind the clock
means the clock went back (a replay restarted, a time source reset): the frames pending go out,
the queues are dropped (counted), the pose source is reset and a new epoch starts at that
message. Any other sensor that far behind is late; a stamp more than ``clock_jump_ms`` ahead
of the clock on a camera or radar is invalid (it would drag the clock along).

**Counters.** ``stats`` (``SyncStats``): per sensor received = used + dropped (late, unmatched,
overflow, invalid) + pending, and per frame member frames = in + missing; see stats.py.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from calib import se3
from calib.rig import Rig
from perception.errors import ConfigError, PoseError
from perception.sync.accumulate import accumulate_radar_arrays, accumulate_sweep_arrays, pack_radar_scan_doppler
from perception.sync.config import SyncConfig
from perception.sync.deskew import EGO_FRAME, deskew_columns, offset_span, rigid_inverse_rows
from perception.sync.pose import PoseSource, make_pose_source
from perception.sync.stats import SyncStats
from perception.sync.trajectory import PoseTrajectory
from perception.types import (
    CameraImage,
    Deferred,
    EgoPose,
    EncodedImage,
    GnssFix,
    ImuSample,
    Modality,
    PointCloud,
    RadarScan,
    SensorMessage,
    SyncedFrame,
)

__all__ = ["Synchronizer"]

_REF, _CAM, _RADAR, _POSE = "reference", "camera", "radar", "pose"
_NAN_POSE = np.full((4, 4), np.nan)
_IDENTITY = np.eye(4)
_IDENTITY.flags.writeable = False


class _Held:
    """A message the synchronizer holds, with its bookkeeping (a plain class with slots: one is made
    for every message, ~20 a frame, and a dataclass with __post_init__ cost twice as much)."""

    __slots__ = ("arrived", "msg", "needs_u", "packed", "resolved", "role", "seq", "stamp", "u")

    def __init__(self, msg: SensorMessage, role: str, seq: int, arrived: int) -> None:
        self.msg = msg
        self.role = role
        self.seq = seq
        self.arrived = arrived  # the synchronizer's clock when it was pushed
        self.resolved = False  # used or dropped: counted already
        self.needs_u: bool | None = None  # a radar scan without compensated velocities: its own velocity is needed
        self.u: np.ndarray | None = None  # that velocity (radar frame), once known: a scan serves several frames
        self.packed: np.ndarray | None = None  # a radar scan's fields for the accumulation (pack_radar_scan), once
        self.stamp: int = msg.stamp_ns  # a plain attribute: the matching loops read it ~200 times a frame


@dataclass(eq=False)
class _Sweep:
    held: _Held
    # (F, N) float32, field by field, in the ego frame at its stamp, once computed (the layout that
    # accumulates fastest: the sweep is placed into ~5 frames)
    ego_points: np.ndarray | None = None
    _span: tuple[int, int] | None = None

    @property
    def stamp(self) -> int:
        return self.held.stamp

    @property
    def span(self) -> tuple[int, int]:
        """The least and the greatest time offset of its points ((0, 0) without times or points; once:
        a frame asks on every push, and the deskew needs it too)."""
        if self._span is None:
            off = self.held.msg.payload.time_offset_ns  # type: ignore[union-attr]
            self._span = offset_span(off) if off is not None and len(off) else (0, 0)
        return self._span

    @property
    def last_fired(self) -> int:
        """How long after its stamp the sweep's last point was fired (>= 0)."""
        return max(0, self.span[1])


@dataclass(eq=False)
class _Frame:
    stamp: int
    sweep: _Sweep | None  # None: no reference sweep came in time (a frame on the frame clock)
    created: int  # synchronizer clock when the frame was opened
    pose_needed: int  # the pose source must have reached this stamp (see Synchronizer._pose_needed)
    check: tuple = field(default=())  # what the last completeness check saw (skip it when nothing changed)
    # per camera / radar: (that sensor's version when looked at, whether it was in); while a frame is
    # the first pending one only routed messages change the queues, and each bumps its sensor's version
    members_in: dict[str, tuple[int, bool]] = field(default_factory=dict)


class Synchronizer:
    """Groups a stream of ``SensorMessage``s into ``SyncedFrame``s (see the module docstring).

    ``rig``: the sensors (cameras in the order frames list them); ``config``: the ``sync`` section;
    ``pose_source``: default ``make_pose_source(rig, config.pose)``. ``defer_assembly``: frames carry
    their accumulated LiDAR cloud and radar scan as ``Deferred`` (built by ``frame.assembled()``,
    from inputs fixed when the frame was made: the same arrays as without it), so that a consumer
    that drops most frames, as the node's worker under overload, never pays their copies.
    """

    def __init__(self, rig: Rig, config: SyncConfig | None = None, pose_source: PoseSource | None = None, *,
                 defer_assembly: bool = False) -> None:
        self.rig = rig
        self.defer_assembly = defer_assembly
        self.config = c = config or SyncConfig()
        lidars = [s.name for s in rig.of(Modality.LIDAR)]
        ref = c.reference_sensor or (lidars[0] if lidars else None)
        if ref is None or ref not in rig or rig[ref].modality is not Modality.LIDAR:
            raise ConfigError(f"sync.reference_sensor: expected a LiDAR of rig {rig.source} ({lidars}), got {ref!r}")
        self.reference = ref
        self.cameras = [s.name for s in rig.cameras]
        self.radars = [s.name for s in rig.of(Modality.RADAR)]
        for key in ("camera_slops_ms", "camera_offsets_ms"):
            unknown = sorted(set(getattr(c, key)) - set(self.cameras))
            if unknown:
                raise ConfigError(f"sync.{key}: no camera {unknown} in rig {rig.source}; cameras: {self.cameras}")
        self.pose: PoseSource = pose_source or make_pose_source(rig, c.pose)
        self.pose_name = self.pose.name

        period = c.frame_period_ns
        ref_rate = rig[ref].rate_hz
        lidar_period = int(round(1e9 / ref_rate)) if ref_rate else period
        # a sweep opens a frame when it is a frame period after the last one, less half a sweep:
        # at 20 Hz / 10 Hz every second sweep, and a dropped key sweep moves the frame by one sweep
        self._key_gap = period - min(lidar_period // 2, period // 4)
        self._period = period
        self._deadline = c.ns("deadline_ms")
        self._slop = {cam: c.camera_slop_ns(cam) for cam in self.cameras}
        self._offset = {cam: c.camera_offset_ns(cam) for cam in self.cameras}
        # the nearest a camera's next image can be after its last one (half its nominal period, so jitter fits)
        self._cam_gap = {s.name: int(0.5e9 / s.rate_hz) if s.rate_hz else 0 for s in rig.cameras}
        self._radar_window = c.ns("radar_window_ms")
        self._radar_slop = c.ns("radar_slop_ms")
        self._max_lag = c.ns("lidar_max_lag_ms")
        self._reorder = c.ns("reorder_window_ms") if c.late_policy == "wait" else 0
        self._jump = c.ns("clock_jump_ms")
        self._step = c.ns("deskew_step_ms")
        self._deskew = {ref: c.deskew and ref not in c.precompensated}
        self._without_reference = c.emit_without_reference

        self._members = self.cameras + self.radars  # in the order _complete looks at them
        self._ego_T = {s.name: s.ego_T_sensor for s in rig.sensors}
        # the extrinsics as one stack for the compiled pose products, row 0 the identity (the ego itself)
        self._sensor_rows = {s.name: i + 1 for i, s in enumerate(rig.sensors)}
        self._sensor_stack = np.stack([np.eye(4)] + [np.asarray(s.ego_T_sensor, np.float64) for s in rig.sensors])
        self.stats = SyncStats()
        self.stats.sensor(ref, member=True)
        for name in self.cameras + self.radars:
            self.stats.sensor(name, member=True)
        self.stats.sensor(self.pose_name, member=True)
        # every frame counts each member in or missing: the counters once (SyncStats.sensor returns the same object)
        self._member_counters = [(name, self.stats.sensor(name, member=True))
                                 for name in [ref, *self.cameras, *self.radars, self.pose_name]]
        self._seq = 0
        self._before_jump: int | None = None  # the clock when it last jumped back, while the new epoch is behind it
        self._new_epoch()

    # ------------------------------------------------------------------ state
    def _new_epoch(self) -> None:
        self._now: int | None = None
        self._heap: list[tuple[int, int, _Held]] = []
        self._last: dict[str, int] = {}  # newest released stamp per sensor
        self._cam_q: dict[str, list[_Held]] = {cam: [] for cam in self.cameras}
        self._radar_q: dict[str, list[_Held]] = {r: [] for r in self.radars}
        self._sweeps: list[_Sweep] = []
        self._pending: list[_Frame] = []
        self._last_key: int | None = None
        self._version = 0  # bumped on every member message, for the completeness check cache
        self._sensor_version: dict[str, int] = dict.fromkeys(self.cameras + self.radars, 0)  # the same, per sensor

    # ------------------------------------------------------------------ public
    def push(self, msg: SensorMessage) -> list[SyncedFrame]:
        """Take one message; return the frames it completed (zero or more, in stamp order)."""
        out: list[SyncedFrame] = []
        role = self._role(msg)
        if role is None:
            self.stats.ignored[msg.sensor] += 1
            return out
        name = msg.sensor
        counters = self.stats.sensor(name)
        counters.received += 1
        if role == "invalid":
            self._drop(name, "invalid", f"payload {type(msg.payload).__name__} does not fit the sensor")
            return out
        stamp = msg.stamp_ns
        timeline = role in (_REF, _POSE)
        if self._before_jump is not None and self._now is not None:
            if self._now > self._before_jump:
                self._before_jump = None  # the new epoch has caught up with where the old one ended
            elif stamp > self._now + self._jump and stamp <= self._before_jump + self._jump:
                # measured before the clock jumped, recorded after (latency): from the old epoch
                self._drop(name, "late", "from before the clock jump")
                return out
        if self._now is not None:
            if stamp < self._now - self._jump:
                if timeline:
                    out += self._clock_reset(f"{name} stamp {stamp} is {(self._now - stamp) / 1e9:.3f} s behind the clock")
                else:
                    self._drop(name, "late", "far behind the clock")
                    return out
            elif stamp > self._now + self._jump and not timeline:
                self._drop(name, "invalid", "stamp far ahead of the clock")
                return out
        self._now = stamp if self._now is None else max(self._now, stamp)
        if self._without_reference and self._last_key is not None and (
                self._now - self._reorder >= self._last_key + self._period + self._deadline):
            # frames on the frame clock first: this message may be the one that makes them due
            self._open_frames_without_reference()
        self._seq += 1
        if role == _POSE:
            verdict = self.pose.add(msg)
            if verdict == "used":
                counters.used += 1
            else:
                self._drop(name, {"late": "late", "invalid": "invalid"}.get(verdict, "unmatched"), f"pose source: {verdict}")
        elif self._reorder:
            counters.pending += 1
            held = _Held(msg, role, self._seq, self._now)
            heapq.heappush(self._heap, (stamp, held.seq, held))
            self._release(self._now - self._reorder)
        else:
            counters.pending += 1
            self._route(_Held(msg, role, self._seq, self._now))
        out += self._advance(force=False)
        return out

    @property
    def clock_ns(self) -> int | None:
        """The synchronizer's clock: the newest stamp it took in this epoch (None before the first)."""
        return self._now

    def flush(self) -> list[SyncedFrame]:
        """End of stream: release everything held, emit every pending frame, resolve every message."""
        self._release(None)
        out = self._advance(force=True)
        self._drop_all("end of stream")
        self._new_epoch()
        return out

    # ------------------------------------------------------------------ intake
    def _role(self, msg: SensorMessage) -> str | None:
        p = msg.payload
        if isinstance(p, (EgoPose, GnssFix, ImuSample)):
            return _POSE if self.pose.accepts(msg) else None
        name = msg.sensor
        if name == self.reference:
            return _REF if isinstance(p, PointCloud) else "invalid"
        if name in self._cam_q:
            return _CAM if isinstance(p, (CameraImage, EncodedImage)) else "invalid"  # EncodedImage: decoded later
        if name in self._radar_q:
            return _RADAR if isinstance(p, RadarScan) else "invalid"
        return None

    def _drop(self, name: str, kind: str, reason: str, held: _Held | None = None) -> None:
        c = self.stats.sensor(name)
        if held is not None:
            if held.resolved:
                return
            held.resolved = True
            c.pending -= 1
        setattr(c, f"dropped_{kind}", getattr(c, f"dropped_{kind}") + 1)
        self.stats.drop_reasons[f"{name}: {reason}"] += 1

    def _use(self, held: _Held) -> None:
        if not held.resolved:
            held.resolved = True
            c = self.stats.sensor(held.msg.sensor)
            c.pending -= 1
            c.used += 1

    def _release(self, upto: int | None) -> None:
        """Release held messages with stamp <= ``upto`` (all if None) to the matching stage, in stamp order."""
        while self._heap and (upto is None or self._heap[0][0] <= upto):
            self._route(heapq.heappop(self._heap)[2])

    def _earliest_frame(self) -> int | None:
        """The stamp of the earliest frame still to go out (pending, or the next to open)."""
        if self._pending:
            return self._pending[0].stamp
        if self._last_key is not None:
            return self._last_key + self._key_gap
        return None

    def _route(self, held: _Held) -> None:
        name, stamp = held.msg.sensor, held.stamp
        last = self._last.get(name)
        if last is not None and stamp <= last:
            kind, why = ("invalid", "duplicate stamp") if stamp == last else ("late", "out of order")
            self._drop(name, kind, why, held)
            return
        self._last[name] = stamp
        earliest = self._earliest_frame()
        self._version += 1
        if name in self._sensor_version:
            self._sensor_version[name] += 1
        if held.role == _REF:
            self._add_sweep(held, earliest)
        elif held.role == _CAM:
            if earliest is not None and stamp < earliest + self._offset[name] - self._slop[name]:
                self._drop(name, "late", "after the frames it could match went out", held)
                return
            self._insert(self._cam_q[name], held)
        else:
            if earliest is not None and stamp < earliest - self._radar_window:
                self._drop(name, "late", "older than every radar window to come", held)
                return
            self._insert(self._radar_q[name], held)

    def _insert(self, queue: list[_Held], held: _Held) -> None:
        queue.append(held)  # released in stamp order per sensor: append keeps the queue sorted
        while len(queue) > self.config.queue_size:
            old = queue.pop(0)
            self._drop(old.msg.sensor, "overflow", "queue full", old)

    def _add_sweep(self, held: _Held, earliest: int | None) -> None:
        stamp = held.stamp
        if earliest is not None and stamp < earliest - self._max_lag:
            self._drop(held.msg.sensor, "late", "older than every accumulation window to come", held)
            return
        sweep = _Sweep(held)
        self._sweeps.append(sweep)
        if self._last_key is None or stamp >= self._last_key + self._key_gap:
            self._last_key = stamp
            frame = _Frame(stamp, sweep, held.arrived, stamp)
            frame.pose_needed = self._pose_needed(frame)
            self._pending.append(frame)
        limit = self.config.lidar_sweeps + self.config.queue_size
        while len(self._sweeps) > limit:
            old = self._sweeps.pop(0)
            self._drop(old.held.msg.sensor, "overflow", "sweep history full", old.held)

    # ------------------------------------------------------------------ frames
    def _advance(self, force: bool) -> list[SyncedFrame]:
        out: list[SyncedFrame] = []
        while self._pending:
            frame = self._pending[0]
            due = force or len(self._pending) > self.config.max_pending_frames or (
                self._now is not None and self._now - self._reorder >= frame.stamp + self._deadline)
            if not due and not self._complete(frame):
                break
            self._pending.pop(0)
            out.append(self._emit(frame))
        return out

    def _open_frames_without_reference(self) -> None:
        """While the reference LiDAR is out, open frames on the frame clock once their deadline has
        passed, as long as a camera or radar has something for them (a frame of nothing is no frame)."""
        if self._last_key is None or self._now is None:
            return
        while self._now - self._reorder >= self._last_key + self._period + self._deadline:
            self._last_key += self._period
            T = self._last_key
            if any(self._best_camera(cam, T) is not None for cam in self.cameras) or any(
                    self._radar_scans(radar, T) for radar in self.radars):
                self._pending.append(_Frame(T, None, T, T))  # it waited since its stamp

    def _pose_needed(self, frame: _Frame) -> int:
        sweep = frame.sweep
        if sweep is None or not self._deskew[self.reference]:
            return frame.stamp
        return frame.stamp + sweep.last_fired

    def _complete(self, frame: _Frame) -> bool:
        ready = self.pose.ready_ns
        key = (self._version, ready is not None and ready >= frame.pose_needed)
        if key == frame.check:
            return False  # nothing it waits for has changed since the last look
        frame.check = key
        if not key[1]:
            return False
        # each member looked at again only when its own queue changed (a push changes one sensor;
        # looking at every camera and radar on every push cost ~20 us)
        cache, version = frame.members_in, self._sensor_version
        for name in self._members:
            seen = cache.get(name)
            if seen is None or seen[0] != version[name]:
                seen = cache[name] = (version[name], self._member_in(name, frame.stamp))
            if not seen[1]:
                return False
        return True

    def _member_in(self, name: str, T: int) -> bool:
        """Whether camera or radar ``name`` has what the frame at ``T`` waits for (see ``_complete``)."""
        last = self._last.get(name)
        if name in self._cam_q:
            target, slop = T + self._offset[name], self._slop[name]
            best = self._best_camera(name, T)
            if best is None:
                return last is not None and last > target + slop  # provably none: already past the window
            # final unless a later image could still be nearer
            return last is not None and last + self._cam_gap[name] - target >= abs(best.stamp - target)
        return bool(self._radar_scans(name, T)) or (last is not None and last > T + self._radar_slop)

    def _best_camera(self, cam: str, T: int) -> _Held | None:
        target, slop = T + self._offset[cam], self._slop[cam]
        best, best_d = None, None
        for h in self._cam_q[cam]:
            d = abs(h.stamp - target)
            if d <= slop and (best_d is None or d < best_d):
                best, best_d = h, d
        return best

    def _radar_scans(self, radar: str, T: int) -> list[_Held]:
        lo, hi = T - self._radar_window, T + self._radar_slop
        return [h for h in self._radar_q[radar] if lo <= h.stamp <= hi]

    def _trajectory(self) -> PoseTrajectory | None:
        try:
            return self.pose.trajectory()
        except PoseError:
            return None

    def _sweep_points(self, sweep: _Sweep, traj: PoseTrajectory | None) -> np.ndarray | None:
        """The sweep in the ego frame at its stamp, deskewed when its points carry times (cached),
        field by field: (F, N) float32."""
        if sweep.ego_points is not None:
            return sweep.ego_points
        cloud: PointCloud = sweep.held.msg.payload  # type: ignore[assignment]
        ego_T_sensor = self._ego_T_cloud(cloud)
        if self._deskew[self.reference] and cloud.time_offset_ns is not None and len(cloud):
            if traj is None:
                return None
            try:
                cols = deskew_columns(cloud.points, cloud.time_offset_ns, cloud.stamp_ns, traj, ego_T_sensor, self._step,
                                      span=sweep.span)
            except PoseError:
                return None
        else:
            cols = np.ascontiguousarray(se3.transform_points(ego_T_sensor, cloud.points).T)
        sweep.ego_points = cols
        return cols

    def _ego_T_cloud(self, cloud: PointCloud) -> np.ndarray:
        spec = self.rig[self.reference]
        if cloud.frame_id == EGO_FRAME:
            return np.eye(4)
        if cloud.frame_id != spec.frame:
            other = self.rig.by_frame(cloud.frame_id)
            if other is not None:
                return other.ego_T_sensor
        return spec.ego_T_sensor

    def _emit(self, frame: _Frame) -> SyncedFrame:
        c = self.config
        T = frame.stamp
        missing: list[str] = []
        age: dict[str, int] = {}
        traj = self._trajectory()
        pose_ok = traj is not None and traj.covers(T)

        # what goes in: chosen first, so that every pose the frame needs is one trajectory query
        key_pts = None
        history: list[_Sweep] = []
        if frame.sweep is not None:
            key_pts = self._sweep_points(frame.sweep, traj if pose_ok else None)
            pose_ok = pose_ok and key_pts is not None  # a sweep that cannot be deskewed: no usable pose
            if pose_ok:
                for sweep in reversed(self._sweeps):
                    if len(history) >= c.lidar_sweeps - 1:
                        break
                    if sweep is not frame.sweep and T - self._max_lag <= sweep.stamp <= T:
                        history.append(sweep)
        poses = _FramePoses(traj if pose_ok else None, T, self._sensor_rows, self._sensor_stack)
        history_rows = [poses.add(sweep.stamp) for sweep in history]
        cams = [(cam, self._best_camera(cam, T)) for cam in self.cameras]
        cam_rows = [poses.add(h.stamp, cam) if h is not None else -1 for cam, h in cams]
        # radars: (name, scan, its row, the rows of the poses around it for its own velocity, if needed)
        inside: list[tuple[str, _Held, int, int, int]] = []
        for radar in self.radars:
            for h in self._radar_scans(radar, T):
                if h.packed is None:  # a scan's first frame: its fields packed, its velocities looked at, once
                    h.packed, h.needs_u = pack_radar_scan_doppler(h.msg.payload)  # type: ignore[arg-type]
                row = poses.add(h.stamp, radar)
                if h.needs_u and h.u is None:
                    inside.append((radar, h, row, poses.add(h.stamp - _VEL_DT), poses.add(h.stamp + _VEL_DT)))
                else:
                    inside.append((radar, h, row, -1, -1))
        rel = poses.compute()
        world_T_ego = poses.world_T_ego if pose_ok else _NAN_POSE.copy()

        # the small members first, the LiDAR last: building the cloud streams ~15 MB through the
        # caches, and the radar's Python and small arrays ran 2x slower after it
        # cameras: the image as taken, and where the camera was then, in the ego frame at T
        images: dict[str, CameraImage] = {}
        ego_T_sensor: dict[str, np.ndarray] = {}
        cam_age: dict[str, int] = {}
        for (cam, best), row in zip(cams, cam_rows):
            if best is None:
                missing.append(cam)
                continue
            self._cam_q[cam].remove(best)
            self._use(best)
            images[cam] = best.msg.payload  # type: ignore[assignment]
            cam_age[cam] = T - best.stamp
            if row >= 0:
                ego_T_sensor[cam] = rel[row]
        # radars: every scan in the window, placed from the pose at its own stamp
        # scans without compensated velocities: the radar's own velocity, once, all in one call
        moving = [(h, before, after, self._sensor_rows[name]) for name, h, row, before, after in inside
                  if row >= 0 and before >= 0 and after >= 0]
        if moving:
            u = np.empty((len(moving), 3))
            _sensor_velocities(rel, np.array([m[1] for m in moving], np.int64), np.array([m[2] for m in moving], np.int64),
                               self._sensor_stack, np.array([m[3] for m in moving], np.int64), 2 * _VEL_DT * 1e-9, u)
            for (h, _, _, _), uh in zip(moving, u):
                h.u = uh
        radar_scans: list[RadarScan] = []
        radar_packed: list[np.ndarray] = []
        radar_rows: list[int] = []
        radar_u: list[np.ndarray | None] = []
        newest: dict[str, int] = {}
        for name, h, row, _, _ in inside:
            if row < 0:
                continue
            radar_scans.append(h.msg.payload)  # type: ignore[arg-type]
            radar_packed.append(h.packed)  # type: ignore[arg-type]
            radar_rows.append(row)
            radar_u.append(h.u)
            self._use(h)
            if h.stamp > newest.get(name, h.stamp - 1):
                newest[name] = h.stamp
        radar: RadarScan | Deferred | None = None
        if self.radars:
            radar_args = (T, radar_scans, rel[radar_rows] if radar_rows else _NO_POSES, radar_u, radar_packed)
            radar = (Deferred(lambda a=radar_args: accumulate_radar_arrays(*a)) if self.defer_assembly
                     else accumulate_radar_arrays(*radar_args))

        # LiDAR: the key sweep and the ones before it
        lidar: PointCloud | Deferred | None = None
        if frame.sweep is None:
            missing.append(self.reference)
        else:
            if key_pts is None:  # cannot deskew: the key sweep as measured, and the pose flagged
                cloud: PointCloud = frame.sweep.held.msg.payload  # type: ignore[assignment]
                rows = cloud.points.copy()
                rows[:, :3] = se3.transform_points(self._ego_T_cloud(cloud), cloud.points[:, :3])
                key_pts = np.ascontiguousarray(rows.T)
            stamps, clouds, moves = [T], [key_pts], [_IDENTITY]
            self._use(frame.sweep.held)
            for sweep, row in zip(history, history_rows):
                pts = self._sweep_points(sweep, traj)
                if pts is None or row < 0 or pts.shape[0] != key_pts.shape[0]:
                    continue
                stamps.append(sweep.stamp)
                clouds.append(pts)
                moves.append(rel[row])
                self._use(sweep.held)
            fields = frame.sweep.held.msg.payload.fields  # type: ignore[union-attr]
            # the sweeps' arrays are cached per sweep and never written again; moves are rows of this frame's own rel
            lidar_args = (T, stamps, clouds, moves, fields)
            lidar = (Deferred(lambda a=lidar_args: accumulate_sweep_arrays(*a)) if self.defer_assembly
                     else accumulate_sweep_arrays(*lidar_args))
            age[self.reference] = T - frame.sweep.stamp
        age.update(cam_age)  # the ages in member order: reference, cameras, radars, pose
        for name in self.radars:
            if name in newest:
                age[name] = T - newest[name]
            else:
                missing.append(name)

        if pose_ok:
            age[self.pose_name] = T - int(self.pose.ready_ns or T)
        else:
            missing.append(self.pose_name)
        self._retire(T)

        st = self.stats
        st.frames += 1
        st.degraded_frames += bool(missing)
        st.frames_without_reference += frame.sweep is None
        absent = frozenset(missing)
        for name, cnt in self._member_counters:
            if name in absent:
                cnt.missing_from_frames += 1
            else:
                cnt.in_frames += 1
        return SyncedFrame(stamp_ns=T, images=images, lidar=lidar, radar=radar, world_T_ego=world_T_ego,
                           missing=absent, sensor_age_ns=age, wait_ns=int((self._now or T) - frame.created),
                           ego_T_sensor=ego_T_sensor)

    def _retire(self, T: int) -> None:
        """After the frame at ``T``: drop what no later frame can take (later frames are >= T + key gap)."""
        nxt = T + self._key_gap
        for cam, q in self._cam_q.items():
            cut = nxt + self._offset[cam] - self._slop[cam]
            while q and q[0].stamp < cut:
                self._drop(cam, "unmatched", "no frame matched it", q.pop(0))
        for radar, q in self._radar_q.items():
            while q and q[0].stamp < nxt - self._radar_window:
                self._drop(radar, "unmatched", "outside every radar window", q.pop(0))
        while self._sweeps and self._sweeps[0].stamp < nxt - self._max_lag:
            old = self._sweeps.pop(0)
            self._drop(self.reference, "unmatched", "sweep not accumulated into any frame", old.held)

    # ------------------------------------------------------------------ resets
    def _drop_all(self, reason: str) -> None:
        while self._heap:
            held = heapq.heappop(self._heap)[2]
            self._drop(held.msg.sensor, "unmatched", reason, held)
        for q in (*self._cam_q.values(), *self._radar_q.values()):
            for held in q:
                self._drop(held.msg.sensor, "unmatched", reason, held)
            q.clear()
        for sweep in self._sweeps:
            self._drop(self.reference, "unmatched", reason, sweep.held)
        self._sweeps.clear()

    def _clock_reset(self, why: str) -> list[SyncedFrame]:
        """The clock went back: emit what is pending with what is held, then start a new epoch."""
        self._release(None)
        out = self._advance(force=True)
        self._drop_all("clock jump")
        self.stats.clock_resets += 1
        self.stats.reset_reasons.append(why)
        self.pose.reset()
        before = self._now
        self._new_epoch()
        self._before_jump = before
        return out


_VEL_DT = 10_000_000  # half the span of the central difference for a radar's own velocity


class _FramePoses:
    """The poses one frame needs, ``ego(T)_T_sensor(t)``, from one trajectory query and one compiled
    product: ``add(t, sensor)`` asks for one and gives its row in ``rel`` (after ``compute()``).

    Without a trajectory everything is placed by the rig alone (the frame lists the pose as
    missing) and the ego's own motion is unknown; a stamp the trajectory does not cover gives -1
    (that data is left out). Row 0 is the ego at ``T`` itself (``world_T_ego``).
    """

    def __init__(self, traj: PoseTrajectory | None, T: int, sensor_rows: dict[str, int], sensors: np.ndarray) -> None:
        self.traj = traj
        self.world_T_ego = _NAN_POSE
        self.rel = _NO_POSES
        self._t = [T]  # T is covered (the caller checked)
        self._s = [0]
        self._rows, self._sensors = sensor_rows, sensors
        self._lo = self._hi = 0
        if traj is not None:
            lo, hi = traj.span_ns
            m = traj.max_extrapolation_ns
            self._lo, self._hi = lo - m, hi + m

    def add(self, t: int, sensor: str | None = None) -> int:
        """Ask for ``ego(T)_T_sensor(t)`` (``ego(T)_T_ego(t)`` without a sensor): its row in ``rel``,
        or -1 where there is none (a stamp the trajectory does not cover; the ego's motion without a
        trajectory)."""
        if self.traj is None:
            if sensor is None:
                return -1
        elif not self._lo <= t <= self._hi:
            return -1
        self._t.append(t)
        self._s.append(0 if sensor is None else self._rows[sensor])
        return len(self._t) - 1

    def compute(self) -> np.ndarray:
        """``rel`` (K, 4, 4): every pose asked for (the same values as ``inv(W(T)) @ W(t) @ sensor_T``
        to rounding; ~20 us where numpy took ~200 us of small-array calls)."""
        rows = np.array(self._s, np.int64)
        if self.traj is None:
            self.rel = self._sensors[rows]  # the rig extrinsics (a copy)
        else:
            W = self.traj.world_T_ego_many(np.array(self._t, np.int64))
            self.world_T_ego = W[0]
            self.rel = np.empty_like(W)
            _relative_poses(W, rows, self._sensors, self.rel)
        return self.rel


_NO_POSES = np.zeros((0, 4, 4))


@njit(cache=True, nogil=True)
def _relative_poses(W: np.ndarray, rows: np.ndarray, sensors: np.ndarray, out: np.ndarray) -> None:
    """``out[k] = inv(W[0]) @ W[k] @ sensors[rows[k]]`` for rigid (4, 4) ``W`` and ``sensors``: one
    compiled pass (the tests hold it to the numpy product)."""
    r = rigid_inverse_rows(W[0])
    a = np.empty((3, 4))
    for k in range(W.shape[0]):
        Wk = W[k]
        for i in range(3):
            for j in range(4):
                a[i, j] = r[i, 0] * Wk[0, j] + r[i, 1] * Wk[1, j] + r[i, 2] * Wk[2, j]
            a[i, 3] += r[i, 3]
        E = sensors[rows[k]]
        for i in range(3):
            for j in range(4):
                out[k, i, j] = a[i, 0] * E[0, j] + a[i, 1] * E[1, j] + a[i, 2] * E[2, j]
            out[k, i, 3] += a[i, 3]
        out[k, 3, 0] = out[k, 3, 1] = out[k, 3, 2] = 0.0
        out[k, 3, 3] = 1.0


@njit(cache=True, nogil=True)
def _sensor_velocities(rel: np.ndarray, before: np.ndarray, after: np.ndarray, sensors: np.ndarray, rows: np.ndarray,
                       dt: float, out: np.ndarray) -> None:
    """``out[k] = _sensor_velocity(rel[before[k]], rel[after[k]], sensors[rows[k]], dt)``: a frame's
    radar velocities in one call."""
    for k in range(out.shape[0]):
        out[k] = _sensor_velocity(rel[before[k]], rel[after[k]], sensors[rows[k]], dt)


@njit(cache=True, nogil=True)
def _sensor_velocity(a: np.ndarray, b: np.ndarray, ego_T_sensor: np.ndarray, dt: float) -> np.ndarray:
    """The velocity (3,) in the sensor frame of a sensor at ``ego_T_sensor`` on an ego that moved from
    ``a`` to ``b`` (4, 4 poses in one frame) in ``dt`` seconds, at the middle of the move: the
    translation and rotation of ``a_T_b = inv(a) @ b`` over dt, the rotation vector from the skew part
    of its rotation (exact to ~theta^2 ~ 1e-4 for a 20 ms turn), the lever arm's swing added. One
    compiled call (numpy spent ~60 us on the dozen 3x3 operations; a frame makes several)."""
    # a_T_b = [Ra^T Rb, Ra^T (tb - ta)]
    R = np.empty((3, 3))
    v = np.empty(3)
    for i in range(3):
        for j in range(3):
            R[i, j] = a[0, i] * b[0, j] + a[1, i] * b[1, j] + a[2, i] * b[2, j]
        v[i] = (a[0, i] * (b[0, 3] - a[0, 3]) + a[1, i] * (b[1, 3] - a[1, 3]) + a[2, i] * (b[2, 3] - a[2, 3])) / dt
    wx, wy, wz = (R[2, 1] - R[1, 2]) / (2.0 * dt), (R[0, 2] - R[2, 0]) / (2.0 * dt), (R[1, 0] - R[0, 1]) / (2.0 * dt)
    lx, ly, lz = ego_T_sensor[0, 3], ego_T_sensor[1, 3], ego_T_sensor[2, 3]
    ux, uy, uz = v[0] + wy * lz - wz * ly, v[1] + wz * lx - wx * lz, v[2] + wx * ly - wy * lx
    out = np.empty(3)
    for i in range(3):  # the sensor's rotation transposed: ego -> sensor axes
        out[i] = ego_T_sensor[0, i] * ux + ego_T_sensor[1, i] * uy + ego_T_sensor[2, i] * uz
    return out
