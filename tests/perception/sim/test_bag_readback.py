"""The simulated bag read back with rosbags alone (no bevfuse decoding): topics, rates, stamps.

The trigger model is recomputed here from the rig and the LiDAR parameters, independently of the
simulator's code: the head turns clockwise from the cut azimuth, a camera fires when the head
points along its optical axis, and the sweep is stamped at its end.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from perception.sim.config import LidarSimConfig
from perception.sim.simulator import Simulator

NS = 1_000_000_000


def _stamp(msg: object) -> int:
    return int(msg.header.stamp.sec) * NS + int(msg.header.stamp.nanosec)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def readback(bag10: tuple[Path, Simulator]) -> dict:
    path, sim = bag10
    stamps: dict[str, list[int]] = defaultdict(list)
    types: dict[str, str] = {}
    gt_boxes: dict[int, int] = {}
    with AnyReader([path], default_typestore=get_typestore(Stores.ROS2_HUMBLE)) as reader:
        for conn, _, raw in reader.messages():
            types[conn.topic] = conn.msgtype
            if conn.topic.endswith("/camera_info") or conn.topic == "/tf_static":
                continue
            msg = reader.deserialize(raw, conn.msgtype)  # the JPEG stays undecoded: headers are all we read
            stamps[conn.topic].append(_stamp(msg))
            if conn.topic == "/ground_truth":
                gt_boxes[_stamp(msg)] = len(msg.boxes)
    return {"stamps": {k: np.array(sorted(v), np.int64) for k, v in stamps.items()}, "types": types, "gt": gt_boxes,
            "sim": sim}


def test_every_rig_topic_at_its_nominal_rate(readback: dict, rig) -> None:
    stamps = readback["stamps"]
    for spec in rig.sensors:
        st = stamps[spec.topic]
        rate = (len(st) - 1) * NS / (st[-1] - st[0])
        assert rate == pytest.approx(spec.rate_hz, rel=0.02), f"{spec.name} on {spec.topic}: {rate:.3f} Hz"
        assert len(st) == pytest.approx(spec.rate_hz * 10.0, abs=2), spec.name
    for topic, nominal in (("/ground_truth", 20.0), ("/ego_pose", 50.0)):
        st = stamps[topic]
        assert (len(st) - 1) * NS / (st[-1] - st[0]) == pytest.approx(nominal, rel=0.02), topic


def test_message_types(readback: dict, rig) -> None:
    types = readback["types"]
    assert types["/ground_truth"] == "bevfuse_msgs/msg/Box3DArray"
    assert types["/ego_pose"] == "nav_msgs/msg/Odometry"
    expect = {"lidar": "sensor_msgs/msg/PointCloud2", "camera": "sensor_msgs/msg/CompressedImage",
              "radar": "sensor_msgs/msg/PointCloud2", "gnss": "sensor_msgs/msg/NavSatFix", "imu": "sensor_msgs/msg/Imu"}
    for spec in rig.sensors:
        assert types[spec.topic] == expect[spec.modality.value], spec.name
    assert types["/tf_static"] == "tf2_msgs/msg/TFMessage"
    assert sum(t.endswith("/camera_info") for t in types) == 6


def _expected_trigger_offsets_ns(rig) -> dict[str, int]:
    """From the sweep's start: the clockwise angle from the cut to the camera's axis, over the spin rate."""
    lidar_cfg = LidarSimConfig()
    lidar = rig["LIDAR_TOP"]
    period = NS / lidar.rate_hz
    out = {}
    for cam in rig.cameras:
        axis = lidar.ego_T_sensor[:3, :3].T @ cam.ego_T_sensor[:3, 2]
        az = np.degrees(np.arctan2(axis[1], axis[0]))
        clockwise = (lidar_cfg.cut_azimuth_deg - az) % 360.0
        out[cam.name] = int(round(clockwise / 360.0 * period))
    return out


def test_cameras_fire_as_the_lidar_passes_their_axes(readback: dict, rig) -> None:
    stamps = readback["stamps"]
    lidar = stamps[rig["LIDAR_TOP"].topic]
    period = int(NS / rig["LIDAR_TOP"].rate_hz)
    assert np.all(np.diff(lidar) == period)
    offsets = _expected_trigger_offsets_ns(rig)
    sweep_start = lidar - period
    before_stamp = {}
    for cam in rig.cameras:
        st = stamps[cam.topic]
        # keyframes: camera frames exactly at the crossing of a sweep (every 3rd frame at 12 Hz vs 20 Hz)
        crossing = sweep_start + offsets[cam.name]
        hits = np.isin(st, crossing)
        assert hits.sum() >= len(st) // 3 - 1, cam.name
        # every frame: phase-locked to the first crossing at the camera's own rate
        n = np.arange(len(st))
        expected = offsets[cam.name] + np.round(n * NS / cam.rate_hz).astype(np.int64) + (lidar[0] - period)
        np.testing.assert_array_equal(st, expected, err_msg=cam.name)
        before_stamp[cam.name] = period - offsets[cam.name]
    # nuScenes' order and spacing: front-left first, back-left last, tens of ms apart, all before the stamp
    order = sorted(before_stamp, key=lambda c: -before_stamp[c])
    assert order == ["CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT", "CAM_BACK", "CAM_BACK_LEFT"]
    assert before_stamp["CAM_FRONT"] == pytest.approx(35.5e6, abs=0.5e6)  # nuScenes sample: 35.49 ms
    assert before_stamp["CAM_FRONT_LEFT"] - before_stamp["CAM_BACK_LEFT"] > 30e6


def test_ground_truth_on_every_lidar_stamp(readback: dict, rig) -> None:
    lidar = readback["stamps"][rig["LIDAR_TOP"].topic]
    gt = readback["stamps"]["/ground_truth"]
    np.testing.assert_array_equal(gt, lidar)
    assert min(readback["gt"].values()) > 5  # a street has objects around the ego at every stamp
