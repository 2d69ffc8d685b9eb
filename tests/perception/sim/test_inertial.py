"""GNSS and IMU read back from the bag with rosbags alone, against the exact ego poses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from calib.geodesy import EnuOrigin
from perception.sim.config import GnssSimConfig
from perception.sim.simulator import Simulator

NS = 1_000_000_000


def _stamp(msg: object) -> int:
    return int(msg.header.stamp.sec) * NS + int(msg.header.stamp.nanosec)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def streams(bag10: tuple[Path, Simulator]) -> dict:
    path, _ = bag10
    out: dict[str, list] = {"imu": [], "odom": [], "fix": []}
    with AnyReader([path], default_typestore=get_typestore(Stores.ROS2_HUMBLE)) as reader:
        conns = [c for c in reader.connections if c.topic in ("/imu/data", "/ego_pose", "/gnss/fix")]
        for conn, _, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == "/imu/data":
                out["imu"].append((_stamp(msg), msg.angular_velocity.z, msg.linear_acceleration.z))
            elif conn.topic == "/ego_pose":
                q = msg.pose.pose.orientation
                p = msg.pose.pose.position
                out["odom"].append((_stamp(msg), 2 * np.arctan2(q.z, q.w), p.x, p.y))
            else:
                out["fix"].append((_stamp(msg), msg.latitude, msg.longitude, msg.position_covariance[0], msg.status.status))
    return {k: np.array(sorted(v)) for k, v in out.items()}


def test_integrated_gyro_reproduces_the_heading(streams: dict, rig) -> None:
    imu, odom = streams["imu"], streams["odom"]
    assert rig["IMU"].ego_T_sensor[:3, :3] == pytest.approx(np.eye(3))  # IMU z = ego z in the default rig
    t = (imu[:, 0] - imu[0, 0]) / NS
    heading = np.concatenate([[0.0], np.cumsum(0.5 * (imu[1:, 1] + imu[:-1, 1]) * np.diff(t))])
    yaw = np.unwrap(odom[:, 1])
    truth = np.interp(imu[:, 0], odom[:, 0], yaw) - np.interp(imu[0, 0], odom[:, 0], yaw)
    assert np.abs(truth).max() > np.deg2rad(3), "the drive should turn for this test to mean something"
    err = np.rad2deg(np.abs(heading - truth))
    assert err.max() < 1.0, f"integrated gyro heading off by {err.max():.3f} deg over {t[-1]:.1f} s"
    # specific force: a car on a flat road feels +g on its up axis
    assert imu[:, 2].mean() == pytest.approx(9.80665, abs=0.05)


def test_gnss_fixes_follow_the_antenna_within_their_covariance(streams: dict, rig) -> None:
    fix, odom = streams["fix"], streams["odom"]
    cfg = GnssSimConfig()
    origin = EnuOrigin(cfg.origin_lat_deg, cfg.origin_lon_deg, cfg.origin_alt_m)
    enu = origin.to_enu(fix[:, 1], fix[:, 2], np.full(len(fix), cfg.origin_alt_m))
    yaw = np.interp(fix[:, 0], odom[:, 0], np.unwrap(odom[:, 1]))
    lever = rig["GNSS"].ego_T_sensor[:3, 3]
    x = np.interp(fix[:, 0], odom[:, 0], odom[:, 2]) + np.cos(yaw) * lever[0] - np.sin(yaw) * lever[1]
    y = np.interp(fix[:, 0], odom[:, 0], odom[:, 3]) + np.sin(yaw) * lever[0] + np.cos(yaw) * lever[1]
    err = np.hypot(enu[:, 0] - x, enu[:, 1] - y)
    sigma = np.sqrt(fix[:, 3])
    assert sigma == pytest.approx(np.full(len(fix), cfg.sigma_horizontal_m))  # RTK by default
    assert err.max() < 6 * cfg.sigma_horizontal_m
    assert np.all(fix[:, 4] == 2)  # GBAS fix
    assert len(fix) == 100
