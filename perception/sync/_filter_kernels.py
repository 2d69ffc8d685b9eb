"""numba kernels of the GNSS+IMU filter's per-sample steps (see gnss_imu.py for the model).

They work in place on the flat state array whose layout gnss_imu.py defines (indices repeated
here as constants, checked against it in the tests). A Python version of one prediction costs
~100 us in small-array overhead; at 100 Hz IMU that alone would eat the synchronizer's budget.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["gnss_update", "imu_step", "imu_step_mounted", "imu_step_pose", "imu_steps_mounted", "pose_and_quat",
           "pose_and_quat_into", "predict"]

GRAVITY = 9.80665
# layout (mirrors gnss_imu._X ... _REJECTS)
X0, P0, Z0, PZ0, ROLL, PITCH, OMEGA0, ACCEL0, VDOT, VEND, REJECTS = 0, 6, 42, 44, 48, 49, 50, 53, 56, 57, 58
# params: q rates of the 6 states, vertical accel noise, attitude time constant
Q0, QZ, TAU = 0, 6, 7


@njit(cache=True, nogil=True)
def _wrap(a: float) -> float:
    return (a + math.pi) % (2.0 * math.pi) - math.pi


@njit(cache=True, nogil=True)
def predict(s: np.ndarray, dt: float, params: np.ndarray) -> None:
    """Propagate the state ``s`` by ``dt`` seconds with the held IMU values, in place."""
    v, bg = s[X0 + 3], s[X0 + 4]
    wx, wy, wz = s[OMEGA0], s[OMEGA0 + 1], s[OMEGA0 + 2]
    roll, pitch = s[ROLL], s[PITCH]
    sr, cr = math.sin(roll), math.cos(roll)
    sp, cp = math.sin(pitch), max(math.cos(pitch), 1e-3)
    yaw_rate = (sr * wy + cr * wz) / cp - bg
    # forward acceleration: the accelerometer's x less its bias state. Gravity's share on a slope
    # (g sin pitch) is left to the bias state on purpose: taking it from the estimated pitch closes
    # a loop (speed error -> acceleration estimate -> pitch -> speed) that runs away with a poorly
    # known IMU mounting, while the bias state absorbs a slope within seconds.
    acc = s[ACCEL0] - s[X0 + 5]
    cy, sy = math.cos(s[X0 + 2]), math.sin(s[X0 + 2])
    s[X0] += v * cy * cp * dt
    s[X0 + 1] += v * sy * cp * dt
    s[X0 + 2] += yaw_rate * dt
    s[X0 + 3] += acc * dt
    F = np.eye(6)
    F[0, 2] = -v * sy * cp * dt
    F[0, 3] = cy * cp * dt
    F[1, 2] = v * cy * cp * dt
    F[1, 3] = sy * cp * dt
    F[2, 4] = -dt / cp
    F[3, 5] = -dt
    P = s[P0:P0 + 36].reshape((6, 6))
    Pn = F @ P @ F.T
    for i in range(6):
        Pn[i, i] += params[Q0 + i] * dt
    s[P0:P0 + 36] = Pn.ravel()
    # vertical: constant velocity
    s[Z0] += s[Z0 + 1] * dt
    p00, p01, p10, p11 = s[PZ0], s[PZ0 + 1], s[PZ0 + 2], s[PZ0 + 3]
    qa = params[QZ]
    n00 = p00 + dt * (p10 + p01) + dt * dt * p11 + qa * dt ** 3 / 3.0
    n01 = p01 + dt * p11 + qa * dt * dt / 2.0
    s[PZ0], s[PZ0 + 1], s[PZ0 + 2], s[PZ0 + 3] = n00, n01, n01, p11 + qa * dt
    # roll/pitch: Euler-angle kinematics, then a pull towards gravity
    roll_n = roll + (wx + sr * sp / cp * wy + cr * sp / cp * wz) * dt
    pitch_n = pitch + (cr * wy - sr * wz) * dt
    # the speed change since the last prediction includes the fixes' corrections: that is what
    # tells the car's real acceleration apart from the accelerometer's gravity share
    k_v = min(1.0, dt / 0.5)
    s[VDOT] += k_v * ((s[X0 + 3] - s[VEND]) / dt - s[VDOT])
    s[VEND] = s[X0 + 3]
    ux = s[ACCEL0] - s[VDOT]
    uy = s[ACCEL0 + 1] - v * (wz - bg)
    uz = s[ACCEL0 + 2]
    if abs(math.sqrt(ux * ux + uy * uy + uz * uz) - GRAVITY) < 1.0:  # skip while something else shakes the IMU
        k = min(1.0, dt / params[TAU])
        roll_n += k * _wrap(math.atan2(uy, uz) - roll_n)
        pitch_n += k * _wrap(math.atan2(-ux, math.hypot(uy, uz)) - pitch_n)
    s[ROLL], s[PITCH] = roll_n, pitch_n


@njit(cache=True, nogil=True)
def imu_step(s: np.ndarray, dt: float, omega: np.ndarray, accel: np.ndarray, params: np.ndarray) -> None:
    """One IMU sample: predict over ``dt`` with the mean of the held and the new sample (trapezoid),
    then hold the new one (a fix between two samples is predicted to with it)."""
    for i in range(3):
        s[OMEGA0 + i] = 0.5 * (s[OMEGA0 + i] + omega[i])
        s[ACCEL0 + i] = 0.5 * (s[ACCEL0 + i] + accel[i])
    if dt > 0:
        predict(s, dt, params)
    for i in range(3):
        s[OMEGA0 + i] = omega[i]
        s[ACCEL0 + i] = accel[i]


@njit(cache=True, nogil=True)
def pose_and_quat(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``world_T_ego`` (4, 4) of the state and its quaternion (w, x, y, z), ``R = Rz(yaw) Ry(pitch) Rx(roll)``
    (the same convention as ``calib.se3.rotation_rpy``; the tests check they agree)."""
    T, q = np.empty((4, 4)), np.empty(4)
    pose_and_quat_into(s, T, q)
    return T, q


@njit(cache=True, nogil=True)
def pose_and_quat_into(s: np.ndarray, T: np.ndarray, q: np.ndarray) -> None:
    """``pose_and_quat`` written into ``T`` (4, 4) and ``q`` (4,): no arrays made or returned, for
    the filter's 100 Hz loop (returning a tuple of new arrays cost more than the maths)."""
    roll, pitch, yaw = s[ROLL], s[PITCH], s[X0 + 2]
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    T[0, 0], T[0, 1], T[0, 2] = cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr
    T[1, 0], T[1, 1], T[1, 2] = sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr
    T[2, 0], T[2, 1], T[2, 2] = -sp, cp * sr, cp * cr
    T[0, 3], T[1, 3], T[2, 3] = s[X0], s[X0 + 1], s[Z0]
    T[3, 0], T[3, 1], T[3, 2], T[3, 3] = 0.0, 0.0, 0.0, 1.0
    # quaternion of Rz Ry Rx: product of the three half-angle quaternions
    c1, s1 = math.cos(yaw / 2), math.sin(yaw / 2)
    c2, s2 = math.cos(pitch / 2), math.sin(pitch / 2)
    c3, s3 = math.cos(roll / 2), math.sin(roll / 2)
    q[0] = c1 * c2 * c3 + s1 * s2 * s3
    q[1] = c1 * c2 * s3 - s1 * s2 * c3
    q[2] = c1 * s2 * c3 + s1 * c2 * s3
    q[3] = s1 * c2 * c3 - c1 * s2 * s3
    if q[0] < 0:
        for i in range(4):
            q[i] = -q[i]


@njit(cache=True, nogil=True)
def imu_step_pose(s: np.ndarray, dt: float, omega: np.ndarray, accel: np.ndarray, params: np.ndarray,
                  T: np.ndarray, q: np.ndarray) -> None:
    """``imu_step`` then ``pose_and_quat_into``: one call per IMU sample."""
    imu_step(s, dt, omega, accel, params)
    pose_and_quat_into(s, T, q)


@njit(cache=True, nogil=True)
def imu_step_mounted(s: np.ndarray, dt: float, R: np.ndarray, w: np.ndarray, f: np.ndarray, params: np.ndarray,
                     T: np.ndarray, q: np.ndarray, omega: np.ndarray, accel: np.ndarray) -> None:
    """An IMU sample as the IMU reads it (``w``, ``f`` (3,) in its own axes): into the ego frame by
    its mounting ``R`` (3, 3) (``omega = R @ w``, ``accel = R @ f``, written out: the filter keeps
    them for replays), then ``imu_step_pose``. One call per sample where the two small products
    and the step were three."""
    for i in range(3):
        omega[i] = R[i, 0] * w[0] + R[i, 1] * w[1] + R[i, 2] * w[2]
        accel[i] = R[i, 0] * f[0] + R[i, 1] * f[1] + R[i, 2] * f[2]
    imu_step(s, dt, omega, accel, params)
    pose_and_quat_into(s, T, q)


@njit(cache=True, nogil=True)
def imu_steps_mounted(s: np.ndarray, t: int, ts: np.ndarray, R: np.ndarray, wf: np.ndarray, params: np.ndarray,
                      states: np.ndarray, T: np.ndarray, q: np.ndarray, omega_accel: np.ndarray) -> int:
    """``imu_step_mounted`` for K samples in a row, the state ``s`` at stamp ``t`` (ns) before them:
    sample k at ``ts[k]`` read ``wf[k]`` = (w, f) (6,); after it the state is ``states[k]``, its pose
    ``T[k]``, ``q[k]``, its ego-frame values ``omega_accel[k]``. The same steps, in the same order,
    as one call per sample. Returns the stamp of the state after them (max of t and the ts)."""
    for k in range(ts.shape[0]):
        imu_step_mounted(s, (ts[k] - t) * 1e-9, R, wf[k, :3], wf[k, 3:], params, T[k], q[k],
                         omega_accel[k, :3], omega_accel[k, 3:])
        t = max(t, ts[k])
        states[k] = s
    return t


@njit(cache=True, nogil=True)
def gnss_update(s: np.ndarray, enu: np.ndarray, cov: np.ndarray, lever: np.ndarray, gate: float) -> bool:
    """Correct the state ``s`` in place with a fix of the antenna at ``enu`` (3,) local ENU, covariance
    ``cov`` (3, 3), the antenna at ``lever`` (3,) in the ego frame. Horizontal: EKF update with
    ``h(x) = p + Rz(yaw) Ry(pitch) Rx(roll) lever`` (Joseph form); a fix whose chi-square residual
    exceeds ``gate`` is skipped unless five were skipped in a row (returns False: count it).
    Vertical: Kalman update of ``[pz, vz]`` with the antenna height.

    The numpy statement of the same update is the oracle in the tests (it took ~180 us a fix in
    small-array calls; this is one compiled call with the 2x2 innovation inverted in closed form)."""
    roll, pitch, yaw = s[ROLL], s[PITCH], s[X0 + 2]
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    # the lever arm levelled: Ry(pitch) Rx(roll) @ lever
    lx, ly, lz = lever[0], lever[1], lever[2]
    m0 = cp * lx + sp * sr * ly + sp * cr * lz
    m1 = cr * ly - sr * lz
    m2 = -sp * lx + cp * sr * ly + cp * cr * lz
    cy, sy = math.cos(yaw), math.sin(yaw)
    y0 = enu[0] - (s[X0] + cy * m0 - sy * m1)
    y1 = enu[1] - (s[X0 + 1] + sy * m0 + cy * m1)
    # H (2, 6): identity on px, py, and the heading column
    a, b = -sy * m0 - cy * m1, cy * m0 - sy * m1
    P = s[P0:P0 + 36].reshape((6, 6)).copy()
    PHt = np.empty((6, 2))
    for i in range(6):
        PHt[i, 0] = P[i, 0] + a * P[i, 2]
        PHt[i, 1] = P[i, 1] + b * P[i, 2]
    s00 = PHt[0, 0] + a * PHt[2, 0] + cov[0, 0]
    s01 = PHt[0, 1] + a * PHt[2, 1] + cov[0, 1]
    s10 = PHt[1, 0] + b * PHt[2, 0] + cov[1, 0]
    s11 = PHt[1, 1] + b * PHt[2, 1] + cov[1, 1]
    det = s00 * s11 - s01 * s10
    i00, i01, i10, i11 = s11 / det, -s01 / det, -s10 / det, s00 / det
    d2 = y0 * (i00 * y0 + i01 * y1) + y1 * (i10 * y0 + i11 * y1)
    # an outlier is skipped, but never many in a row: the filter may be the one that is wrong
    if d2 > gate and s[REJECTS] < 5:
        s[REJECTS] += 1
        return False
    s[REJECTS] = 0
    K = np.empty((6, 2))
    for i in range(6):
        K[i, 0] = PHt[i, 0] * i00 + PHt[i, 1] * i10
        K[i, 1] = PHt[i, 0] * i01 + PHt[i, 1] * i11
        s[X0 + i] += K[i, 0] * y0 + K[i, 1] * y1
    IKH = np.eye(6)
    for i in range(6):
        IKH[i, 0] -= K[i, 0]
        IKH[i, 1] -= K[i, 1]
        IKH[i, 2] -= K[i, 0] * a + K[i, 1] * b
    A = np.zeros((6, 6))  # IKH @ P
    for i in range(6):
        for k in range(6):
            v = IKH[i, k]
            for j in range(6):
                A[i, j] += v * P[k, j]
    for i in range(6):
        for j in range(6):
            acc = 0.0
            for k in range(6):
                acc += A[i, k] * IKH[j, k]
            # + K R K^T
            kr0 = K[i, 0] * cov[0, 0] + K[i, 1] * cov[1, 0]
            kr1 = K[i, 0] * cov[0, 1] + K[i, 1] * cov[1, 1]
            s[P0 + 6 * i + j] = acc + kr0 * K[j, 0] + kr1 * K[j, 1]
    # vertical
    p00, p01, p10, p11 = s[PZ0], s[PZ0 + 1], s[PZ0 + 2], s[PZ0 + 3]
    sz = p00 + cov[2, 2]
    k0, k1 = p00 / sz, p10 / sz
    r = enu[2] - m2 - s[Z0]
    s[Z0] += k0 * r
    s[Z0 + 1] += k1 * r
    s[PZ0], s[PZ0 + 1] = (1.0 - k0) * p00, (1.0 - k0) * p01
    s[PZ0 + 2], s[PZ0 + 3] = p10 - k1 * p00, p11 - k1 * p01
    return True
