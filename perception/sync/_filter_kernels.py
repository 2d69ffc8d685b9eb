"""numba kernels of the GNSS+IMU filter's per-sample steps (see gnss_imu.py for the model).

They work in place on the flat state array whose layout gnss_imu.py defines (indices repeated
here as constants, checked against it in the tests). A Python version of one prediction costs
~100 us in small-array overhead; at 100 Hz IMU that alone would eat the synchronizer's budget.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["imu_step", "pose_and_quat", "predict"]

GRAVITY = 9.80665
# layout (mirrors gnss_imu._X ... _REJECTS)
X0, P0, Z0, PZ0, ROLL, PITCH, OMEGA0, ACCEL0, VDOT, VEND = 0, 6, 42, 44, 48, 49, 50, 53, 56, 57
# params: q rates of the 6 states, vertical accel noise, attitude time constant
Q0, QZ, TAU = 0, 6, 7


@njit(cache=True)
def _wrap(a: float) -> float:
    return (a + math.pi) % (2.0 * math.pi) - math.pi


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
def pose_and_quat(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``world_T_ego`` (4, 4) of the state and its quaternion (w, x, y, z), ``R = Rz(yaw) Ry(pitch) Rx(roll)``
    (the same convention as ``calib.se3.rotation_rpy``; the tests check they agree)."""
    roll, pitch, yaw = s[ROLL], s[PITCH], s[X0 + 2]
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    T = np.eye(4)
    T[0, 0], T[0, 1], T[0, 2] = cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr
    T[1, 0], T[1, 1], T[1, 2] = sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr
    T[2, 0], T[2, 1], T[2, 2] = -sp, cp * sr, cp * cr
    T[0, 3], T[1, 3], T[2, 3] = s[X0], s[X0 + 1], s[Z0]
    # quaternion of Rz Ry Rx: product of the three half-angle quaternions
    c1, s1 = math.cos(yaw / 2), math.sin(yaw / 2)
    c2, s2 = math.cos(pitch / 2), math.sin(pitch / 2)
    c3, s3 = math.cos(roll / 2), math.sin(roll / 2)
    q = np.empty(4)
    q[0] = c1 * c2 * c3 + s1 * s2 * s3
    q[1] = c1 * c2 * s3 - s1 * s2 * c3
    q[2] = c1 * s2 * c3 + s1 * c2 * s3
    q[3] = s1 * c2 * c3 - c1 * s2 * s3
    if q[0] < 0:
        q = -q
    return T, q
