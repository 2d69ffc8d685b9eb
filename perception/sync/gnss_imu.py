"""Ego poses from GNSS fixes fused with an IMU: a small EKF for a ground vehicle.

The world frame is local ENU with its origin at the first fix (``EnuOrigin``). The filter has
three parts, each as small as a car allows:

- horizontal EKF, state ``[px, py, yaw, v, gyro_bias_z, accel_bias_x]``: driven by the IMU's yaw
  rate and forward acceleration, with the car's non-holonomic constraint (it moves along its
  own x axis), corrected by the fix of the GNSS antenna, which sits at the rig's lever arm
  ``ego_T_gnss`` from the ego origin (so the heading enters the measurement model);
- vertical Kalman filter ``[pz, vz]`` on the fix altitude;
- roll and pitch by a complementary filter: gyro integration pulled towards the gravity direction
  the accelerometer sees once the car's own acceleration (forward, and v * yaw rate sideways)
  is taken out.

The IMU is mounted by the rig's ``ego_T_imu``; with ``imu_auto_level``, when the first
``imu_level_samples`` samples read gravity more than ``imu_level_min_deg`` away from the ego's up
axis, the mounting is corrected by the axis-aligned rotation that turns it up (bags without
``/tf_static`` leave the IMU axes unknown: the Husky's IMU has y up). The IMU's own orientation
estimate (magnetometer-based, often wrong near cars) is not used.

The heading is initialised from the first ``heading_init_m`` of motion: the chord between two
fixes points along the heading at the middle of the arc, and the gyro carries it back to the
first fix, where the filter starts; every buffered message is then replayed, so poses cover the
log from its first fix. A fix or IMU sample that arrives out of order (GNSS latency is normal) is
folded in by restoring the state before its stamp and re-running the newer messages, up to
``gnss_replay_ms`` back. IMU samples that come in order are queued and stepped together, in one
compiled call, when something needs the state (a fix, a trajectory, a late message): the same
arithmetic in the same order as one at a time, so the same poses bit for bit, for a tenth of the
Python calls. Given the same messages in the same order the output is the same.
"""

from __future__ import annotations

import bisect
import math

import numpy as np

from calib import se3
from calib.geodesy import EnuOrigin
from calib.rig import Rig
from perception.errors import PoseError
from perception.sync._filter_kernels import gnss_update, imu_step_pose, imu_steps_mounted, pose_and_quat_into, predict
from perception.sync.config import PoseConfig
from perception.sync.pose import PoseVerdict
from perception.sync.trajectory import PoseBuffer, PoseTrajectory
from perception.types import GnssFix, ImuSample, Modality, SensorMessage

__all__ = ["GnssImuPoseSource", "level_rotation"]

GRAVITY = 9.80665


def _axis_rotations() -> np.ndarray:
    """The 24 rotations that map axes onto axes (signed permutation matrices, det +1): (24, 3, 3)."""
    out = []
    for perm in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)):
        for signs in np.ndindex(2, 2, 2):
            R = np.zeros((3, 3))
            for row, (col, sg) in enumerate(zip(perm, signs)):
                R[row, col] = -1.0 if sg else 1.0
            if np.linalg.det(R) > 0:
                out.append(R)
    return np.stack(out)


_AXIS_ROTATIONS = _axis_rotations()


def level_rotation(specific_force: np.ndarray, min_tilt_deg: float = 30.0) -> np.ndarray:
    """(3, 3) correction of an IMU mounting from the mean specific force ``(3,)`` it reads (ego axes).

    Below ``min_tilt_deg`` between that force and +z the identity: the rig's mounting stands, and
    the tilt is the car's own acceleration or a slope (0.35 g of braking or cornering reads as 19
    degrees), which the attitude filter handles. Above it the mounting is plainly not what the rig
    says (an IMU on its side, as in bags without /tf_static): the axis-aligned rotation that turns
    the axis nearest to the force onto +z, the smallest such (IMUs are mounted along the car's axes).
    """
    f = np.asarray(specific_force, dtype=np.float64)
    f = f / np.linalg.norm(f)
    if math.degrees(math.acos(min(1.0, max(-1.0, f[2])))) < min_tilt_deg:
        return np.eye(3)
    up = _AXIS_ROTATIONS @ f  # (24, 3): where each candidate sends the force
    best = np.flatnonzero(up[:, 2] > 0.5)  # candidates that send the nearest axis to +z
    return _AXIS_ROTATIONS[best[np.argmax(np.trace(_AXIS_ROTATIONS[best], axis1=1, axis2=2))]].copy()


# The filter's whole state is one flat float64 array, so that a snapshot (kept for replays) is one
# copy and the per-sample prediction runs in one numba call. Layout:
_X = slice(0, 6)  # px py yaw v gyro_bias_z accel_bias_x
_P = slice(6, 42)  # 6x6 covariance of _X, row-major
_Z = slice(42, 44)  # pz vz
_PZ = slice(44, 48)  # 2x2 covariance of _Z
_ROLL, _PITCH = 48, 49
_OMEGA = slice(50, 53)  # held ego-frame angular velocity (rad/s)
_ACCEL = slice(53, 56)  # held ego-frame specific force (m/s^2)
_VDOT, _VEND, _REJECTS = 56, 57, 58  # low-passed forward acceleration; speed after the last prediction; gate count
_STATE_LEN = 59


class _State:
    """Stamp of the state (int ns, kept out of the float array to keep its precision) and the array
    (a plain class with slots: one is kept per event, 110 a second)."""

    __slots__ = ("s", "t")

    def __init__(self, t: int, s: np.ndarray) -> None:
        self.t = t
        self.s = s

    def copy(self) -> _State:
        return _State(self.t, self.s.copy())

    @property
    def x(self) -> np.ndarray:
        return self.s[_X]

    @property
    def P(self) -> np.ndarray:
        return self.s[_P].reshape(6, 6)


# An event is (stamp, sequence number, kind, a, b): kind 0 = IMU (omega, specific force in ego),
# kind 1 = GNSS (antenna ENU (3,), covariance (3, 3)). The sequence keeps equal stamps in arrival order.
_Event = tuple[int, int, int, np.ndarray, np.ndarray]
_IMU, _GNSS = 0, 1


class GnssImuPoseSource:
    """``add`` NavSatFix (``GnssFix``) and IMU (``ImuSample``) messages; ``trajectory()`` the poses.

    ``rig`` gives ``ego_T_sensor`` of the GNSS antenna (lever arm) and of the IMU (mounting), found
    by the message's sensor name or frame; without it both are at the ego origin, axes aligned.
    ``origin``: the ENU origin (default: the first fix).
    """

    def __init__(self, rig: Rig | None = None, config: PoseConfig | None = None, origin: EnuOrigin | None = None,
                 name: str = "gnss_imu") -> None:
        self.rig = rig
        self.config = config or PoseConfig()
        self.name = name
        self._fixed_origin = origin
        self.rejected_fixes = 0
        c = self.config
        self._params = np.array([c.position_noise ** 2, c.position_noise ** 2, c.gyro_noise ** 2, c.accel_noise ** 2,
                                 c.gyro_bias_walk ** 2, c.accel_bias_walk ** 2, c.vertical_accel_noise ** 2,
                                 c.attitude_tau_s])
        # the pose of the state after the last event (scratch: PoseBuffer.append copies it)
        self._pose, self._quat = np.eye(4), np.zeros(4)
        self.reset()

    # ------------------------------------------------------------------ public
    def reset(self) -> None:
        c = self.config
        self.origin: EnuOrigin | None = self._fixed_origin
        self._enu: _Enu | None = None
        self._poses = PoseBuffer(int(c.history_s * 1e9), c.max_extrapolation_ns, self.name)
        self._gnss_sensor: str | None = None
        self._imu_sensor: str | None = None
        self._lever = np.zeros(3)
        self._imu_R = np.eye(3)  # ego_R_imu, after levelling
        self._level_buf: list[np.ndarray] = []
        self._pre_imu: list[tuple[int, np.ndarray, np.ndarray]] = []  # before the heading is known
        self._pre_fix: list[tuple[int, np.ndarray, np.ndarray]] = []
        self._seq = 0
        self._state: _State | None = None
        self._events: list[_Event] = []
        self._keys: list[tuple[int, int]] = []
        self._snaps: list[_State] = []
        self._base: _State | None = None
        # IMU samples in order after every event, not stepped yet: (stamp, [wx wy wz fx fy fz] as
        # read); stepped in one compiled call when anything needs the state (see _step_queued)
        self._queued: list[tuple[int, list[float]]] = []

    @property
    def initialised(self) -> bool:
        return self._state is not None

    def accepts(self, msg: SensorMessage) -> bool:
        p = msg.payload
        if isinstance(p, GnssFix):
            return self._gnss_sensor in (None, msg.sensor)
        if isinstance(p, ImuSample):
            return self._imu_sensor in (None, msg.sensor)
        return False

    def add(self, msg: SensorMessage) -> PoseVerdict:
        if not self.accepts(msg):
            return "ignored"
        p = msg.payload
        if isinstance(p, GnssFix):
            self._step_queued()
            return self._add_fix(msg.sensor, p)
        return self._add_imu(msg.sensor, p)  # type: ignore[arg-type]

    def trajectory(self) -> PoseTrajectory:
        self._step_queued()
        if self._state is None:
            moved = 0.0
            if len(self._pre_fix) > 1:
                moved = float(np.linalg.norm(self._pre_fix[-1][1][:2] - self._pre_fix[0][1][:2]))
            raise PoseError(f"{self.name}: no pose yet: the heading is set after {self.config.heading_init_m} m of "
                            f"motion, moved {moved:.2f} m over {len(self._pre_fix)} fix(es)")
        return self._poses.trajectory()

    @property
    def ready_ns(self) -> int | None:
        if self._queued:  # taken, in order: their poses are there as soon as anyone asks
            return self._queued[-1][0]
        return None if self._state is None else self._state.t

    # ------------------------------------------------------------------ input
    def _spec_T(self, sensor: str, frame_id: str) -> np.ndarray:
        if self.rig is not None:
            if sensor in self.rig:
                return self.rig[sensor].ego_T_sensor
            spec = self.rig.by_frame(frame_id)
            if spec is not None:
                return spec.ego_T_sensor
        return np.eye(4)

    def _add_fix(self, sensor: str, fix: GnssFix) -> PoseVerdict:
        vals = (fix.latitude_deg, fix.longitude_deg, fix.altitude_m)
        if fix.status < 0 or not all(math.isfinite(v) for v in vals):
            self.rejected_fixes += 1
            return "invalid"
        if self._gnss_sensor is None:
            self._gnss_sensor = sensor
            self._lever = self._spec_T(sensor, fix.frame_id)[:3, 3].copy()
        if self.origin is None:
            self.origin = EnuOrigin(*vals)
        if type(self.origin) is EnuOrigin:
            if self._enu is None or self._enu.origin is not self.origin:
                self._enu = _Enu(self.origin)
            enu = self._enu.to_enu(*vals)
        else:
            enu = self.origin.to_enu(*vals).reshape(3)
        cov = self._fix_covariance(fix)
        if self._state is None:
            return self._pre_init_fix(fix.stamp_ns, enu, cov)
        return self._event(fix.stamp_ns, _GNSS, enu, cov)

    def _fix_covariance(self, fix: GnssFix) -> np.ndarray:
        c = self.config
        cov = fix.position_covariance
        # Python floats: numpy's isfinite / all and scalar indexing cost ~40 us on a 3x3
        if fix.covariance_type == 0 or not all(map(math.isfinite, cov.ravel().tolist())):
            cov = np.diag([c.gnss_sigma_m ** 2, c.gnss_sigma_m ** 2, (2 * c.gnss_sigma_m) ** 2])
        cov = cov.copy()
        floor = c.gnss_sigma_floor_m ** 2
        d = cov.diagonal().tolist()
        cov[0, 0], cov[1, 1], cov[2, 2] = max(d[0], floor), max(d[1], floor), max(d[2], floor)
        return cov

    def _add_imu(self, sensor: str, imu: ImuSample) -> PoseVerdict:
        w, f = imu.angular_velocity, imu.linear_acceleration
        if not math.isfinite(sum(w.tolist()) + sum(f.tolist())):  # any NaN or inf (Python floats: 4x faster at 100 Hz)
            return "invalid"
        if self._state is not None and self._imu_sensor == sensor and self._events and \
                imu.stamp_ns >= (self._queued[-1][0] if self._queued else self._events[-1][0]):
            # the usual sample, running and in order: queued, and stepped with the others in one
            # compiled call when the state is needed (a frame needs it once; ten calls cost 10x)
            self._queued.append((imu.stamp_ns, w.tolist() + f.tolist()))
            return "used"
        self._step_queued()
        if self._imu_sensor is None:
            self._imu_sensor = sensor
            self._imu_R = self._spec_T(sensor, imu.frame_id)[:3, :3].copy()
        if self.config.imu_auto_level and self._state is None and len(self._level_buf) < self.config.imu_level_samples:
            self._level_buf.append(self._imu_R @ f)
            if len(self._level_buf) == self.config.imu_level_samples:
                R = level_rotation(np.mean(self._level_buf, axis=0), self.config.imu_level_min_deg)
                self._imu_R = R @ self._imu_R
                # samples taken before the levelling was known are re-rotated
                self._pre_imu = [(t, R @ a, R @ b) for t, a, b in self._pre_imu]
            else:
                # keep them (in the unlevelled ego frame) until the correction is known
                self._pre_imu.append((imu.stamp_ns, self._imu_R @ w, self._imu_R @ f))
                return "used"
        omega, accel = self._imu_R @ w, self._imu_R @ f
        if self._state is None:
            self._pre_imu.append((imu.stamp_ns, omega, accel))
            if len(self._pre_imu) % 256 == 0:  # trimming is O(n): not on every sample
                self._trim_pre_init()
            return "used"
        return self._event(imu.stamp_ns, _IMU, omega, accel)

    # ------------------------------------------------------------------ initialisation
    def _pre_init_fix(self, t: int, enu: np.ndarray, cov: np.ndarray) -> PoseVerdict:
        self._pre_fix.append((t, enu, cov))
        self._pre_fix.sort(key=lambda e: e[0])
        self._trim_pre_init()
        t0, p0, cov0 = self._pre_fix[0]
        tk, pk, _ = self._pre_fix[-1]
        chord = pk[:2] - p0[:2]
        length = float(np.linalg.norm(chord))
        if length < self.config.heading_init_m or tk <= t0 or not self._level_done():
            return "used"
        self._initialise(t0, p0, cov0, tk, chord, length)
        return "used"

    def _level_done(self) -> bool:
        return not self.config.imu_auto_level or len(self._level_buf) >= self.config.imu_level_samples \
            or self._imu_sensor is None

    def _trim_pre_init(self) -> None:
        window = int(self.config.init_window_s * 1e9)
        newest = max([e[0] for e in self._pre_fix] + [e[0] for e in self._pre_imu])
        self._pre_fix = [e for e in self._pre_fix if e[0] >= newest - window]
        first = self._pre_fix[0][0] if self._pre_fix else newest - window
        self._pre_imu = [e for e in self._pre_imu if e[0] >= first - 1_000_000_000]

    def _gyro_yaw(self, t_from: int, t_to: int) -> float:
        """Yaw turned between two stamps by integrating the buffered gyro (trapezoid, level assumed)."""
        imu = sorted(self._pre_imu, key=lambda e: e[0])
        if len(imu) < 2:
            return 0.0
        ts = np.array([e[0] for e in imu], np.int64)
        wz = np.array([e[1][2] for e in imu])
        cum = np.concatenate([[0.0], np.cumsum(0.5 * (wz[1:] + wz[:-1]) * np.diff(ts) * 1e-9)])
        tsf = ts.astype(np.float64)
        return float(np.interp(float(t_to), tsf, cum) - np.interp(float(t_from), tsf, cum))

    def _initialise(self, t0: int, p0: np.ndarray, cov0: np.ndarray, tk: int, chord: np.ndarray, length: float) -> None:
        t_mid = (t0 + tk) // 2
        to_mid, turned = self._gyro_yaw(t0, t_mid), self._gyro_yaw(t0, tk)
        # the antenna's chord is the ego origin's plus the lever arm's swing as the car turns
        # (1 m of lever and 0.06 rad of turn tilt a 3 m chord by a degree): take the swing out,
        # with the heading it depends on from the previous pass (two passes converge)
        yaw0 = math.atan2(chord[1], chord[0]) - to_mid
        for _ in range(2):
            swing = _lever_world(yaw0 + turned, 0.0, 0.0, self._lever) - _lever_world(yaw0, 0.0, 0.0, self._lever)
            ego_chord = chord - swing[:2]
            yaw0 = math.atan2(ego_chord[1], ego_chord[0]) - to_mid
        # start level: a car's roll and pitch are small, and the gravity pull settles them within
        # attitude_tau_s (taking them from the accelerometer now would read the car's own
        # acceleration as tilt)
        roll = pitch = 0.0
        lever = _lever_world(yaw0, roll, pitch, self._lever)
        sigma = math.sqrt(max(cov0[0, 0], cov0[1, 1]))
        v0 = length / ((tk - t0) * 1e-9)
        yaw_sigma = min(max(2.0 * sigma / length, math.radians(0.5)), math.radians(30.0))
        first_imu = [e for e in self._pre_imu if e[0] <= t0]
        omega, accel = (first_imu[-1][1], first_imu[-1][2]) if first_imu else (np.zeros(3), np.array([0, 0, GRAVITY]))
        st = np.zeros(_STATE_LEN)
        st[_X] = [p0[0] - lever[0], p0[1] - lever[1], yaw0, v0, 0.0, 0.0]
        st[_P] = np.diag([cov0[0, 0], cov0[1, 1], yaw_sigma ** 2, max(1.0, 0.5 * v0) ** 2, 0.01 ** 2, 0.2 ** 2]).ravel()
        st[_Z] = [p0[2] - lever[2], 0.0]
        st[_PZ] = [cov0[2, 2], 0.0, 0.0, 1.0]
        st[_ROLL], st[_PITCH] = roll, pitch
        st[_OMEGA], st[_ACCEL] = omega, accel
        st[_VEND] = v0
        self._state = _State(t0, st)
        self._base = self._state.copy()
        pose_and_quat_into(self._state.s, self._pose, self._quat)
        self._poses.append(t0, self._pose, self._quat)
        pending: list[tuple[int, int, np.ndarray, np.ndarray]] = [(t, _IMU, a, b) for t, a, b in self._pre_imu if t > t0]
        pending += [(t, _GNSS, e, cv) for t, e, cv in self._pre_fix[1:]]
        pending.sort(key=lambda e: (e[0], e[1]))
        self._pre_imu, self._pre_fix = [], []
        for t, kind, a, b in pending:
            self._event(t, kind, a, b)

    # ------------------------------------------------------------------ events and replay
    def _step_queued(self) -> None:
        """The queued IMU samples into the filter: what ``_event`` does for each, the steps in one
        compiled call (the same arithmetic, so the same states and poses, bit for bit)."""
        queued = self._queued
        if not queued:
            return
        self._queued = []
        st = self._state
        assert st is not None
        k = len(queued)
        ts = np.array([e[0] for e in queued], np.int64)
        states, P, q, omega_accel = np.empty((k, _STATE_LEN)), np.empty((k, 4, 4)), np.empty((k, 4)), np.empty((k, 6))
        t0 = st.t
        st.t = imu_steps_mounted(st.s, t0, ts, self._imu_R, np.array([e[1] for e in queued]), self._params,
                                 states, P, q, omega_accel)
        t_state, seq = t0, self._seq
        events, keys, snaps = self._events, self._keys, self._snaps
        omega, accel = omega_accel[:, :3], omega_accel[:, 3:]
        for i, (t, _) in enumerate(queued):
            if t > t_state:
                t_state = t
            seq += 1
            events.append((t, seq, _IMU, omega[i], accel[i]))
            keys.append((t, seq))
            snaps.append(_State(t_state, states[i]))  # a row of the batch: never written again
            if len(events) % 32 == 0:  # pruning shifts the lists: not on every sample
                self._seq = seq
                self._prune_events()
                events, keys, snaps = self._events, self._keys, self._snaps
        self._seq = seq
        self._poses.extend(ts, P, q)
        self._pose[...], self._quat[...] = P[-1], q[-1]

    def _event(self, t: int, kind: int, a: np.ndarray, b: np.ndarray) -> PoseVerdict:
        assert self._state is not None and self._base is not None
        self._seq += 1
        key = (t, self._seq)
        if not self._events or t >= self._events[-1][0]:
            self._apply(self._state, kind, t, a, b)
            self._events.append((t, self._seq, kind, a, b))
            self._keys.append(key)
            self._snaps.append(self._state.copy())
            self._poses.append(t, self._pose, self._quat)
            if len(self._events) % 32 == 0:  # pruning shifts the lists: not on every sample
                self._prune_events()
            return "used"
        if t < self._base.t:
            return "late"
        i = bisect.bisect_right(self._keys, key)
        state = (self._snaps[i - 1] if i > 0 else self._base).copy()
        self._poses.truncate_after(state.t)
        self._events.insert(i, (t, self._seq, kind, a, b))
        self._keys.insert(i, key)
        del self._snaps[i:]
        for ev in self._events[i:]:
            self._apply(state, ev[2], ev[0], ev[3], ev[4])
            self._snaps.append(state.copy())
            self._poses.append(ev[0], self._pose, self._quat)
        self._state = state
        return "used"

    def _prune_events(self) -> None:
        horizon = self._events[-1][0] - int(self.config.gnss_replay_ms * 1e6)
        # the first event at or after the horizon (keys are (stamp, seq), sorted), keeping the last one
        cut = min(bisect.bisect_left(self._keys, (horizon,)), len(self._events) - 1)
        if cut:
            self._base = self._snaps[cut - 1]
            del self._events[:cut], self._keys[:cut], self._snaps[:cut]

    def _apply(self, st: _State, kind: int, t: int, a: np.ndarray, b: np.ndarray) -> None:
        """One event into ``st``; its pose (and quaternion) then in ``self._pose`` / ``self._quat``."""
        if kind == _IMU:
            imu_step_pose(st.s, (t - st.t) * 1e-9, a, b, self._params, self._pose, self._quat)
            st.t = max(st.t, t)
        else:
            self._predict(st, t)
            self._update_gnss(st, a, b)
            pose_and_quat_into(st.s, self._pose, self._quat)

    def _predict(self, st: _State, t: int) -> None:
        dt = (t - st.t) * 1e-9
        if dt > 0:
            predict(st.s, dt, self._params)
            st.t = t

    def _update_gnss(self, st: _State, enu: np.ndarray, cov: np.ndarray) -> None:
        if not gnss_update(st.s, enu, cov, self._lever, self.config.gnss_gate):
            self.rejected_fixes += 1

    @property
    def state(self) -> dict[str, float]:
        """The filter's current estimate (for reports and tests)."""
        self._step_queued()
        if self._state is None:
            return {}
        s = self._state.s
        px, py, yaw, v, bg, ba = (float(a) for a in s[_X])
        return {"t_ns": self._state.t, "x": px, "y": py, "z": float(s[_Z][0]), "yaw": yaw, "speed": v,
                "gyro_bias": bg, "accel_bias": ba, "roll": float(s[_ROLL]), "pitch": float(s[_PITCH])}


_WGS84_A, _WGS84_B = 6378137.0, 6356752.31424518  # pymap3d's WGS-84 (the ellipsoid EnuOrigin uses)


def _ecef(lat_deg: float, lon_deg: float, alt_m: float) -> tuple[float, float, float]:
    """pymap3d.geodetic2ecef on WGS-84, the same formula in Python floats."""
    lat, lon = math.radians(lat_deg), math.radians(lon_deg)
    n = _WGS84_A ** 2 / math.hypot(_WGS84_A * math.cos(lat), _WGS84_B * math.sin(lat))
    return ((n + alt_m) * math.cos(lat) * math.cos(lon), (n + alt_m) * math.cos(lat) * math.sin(lon),
            (n * (_WGS84_B / _WGS84_A) ** 2 + alt_m) * math.sin(lat))


class _Enu:
    """``EnuOrigin.to_enu`` of one fix (pymap3d.geodetic2enu: geodetic to ECEF, the difference rotated
    into ENU at the origin) in Python floats, the origin's part computed once: pymap3d on 0-d
    arrays costs ~120 us a fix. The same formula; the tests hold it to ``EnuOrigin.to_enu``."""

    def __init__(self, origin: EnuOrigin) -> None:
        self.origin = origin
        self._x0, self._y0, self._z0 = _ecef(origin.lat_deg, origin.lon_deg, origin.alt_m)
        lat0, lon0 = math.radians(origin.lat_deg), math.radians(origin.lon_deg)
        self._sa, self._ca = math.sin(lat0), math.cos(lat0)
        self._so, self._co = math.sin(lon0), math.cos(lon0)

    def to_enu(self, lat_deg: float, lon_deg: float, alt_m: float) -> np.ndarray:
        x, y, z = _ecef(lat_deg, lon_deg, alt_m)
        u, v, w = x - self._x0, y - self._y0, z - self._z0
        t = self._co * u + self._so * v
        return np.array([-self._so * u + self._co * v, -self._sa * t + self._ca * w, self._ca * t + self._sa * w])


def _lever_world(yaw: float, roll: float, pitch: float, lever: np.ndarray) -> np.ndarray:
    return se3.rotation_rpy(roll, pitch, yaw) @ lever


def gnss_imu_sensors(rig: Rig) -> tuple[list[str], list[str]]:
    """The rig's GNSS and IMU sensor names."""
    return [s.name for s in rig.of(Modality.GNSS)], [s.name for s in rig.of(Modality.IMU)]
