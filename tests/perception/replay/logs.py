"""Small drive logs for the replay tests, written as ROS 2 bags with the project's BagWriter.

Half a second of the nuScenes-like rig with 160x90 cameras: LiDAR sweeps at 20 Hz (a ground disc and
a car 12 m ahead), six cameras at 12 Hz, one radar at 13 Hz, the ego pose at 50 Hz (odometry) and
ground truth at every sweep. ``corrupt=True`` adds what a damaged recording holds: a CAM_FRONT JPEG
cut short, a PointCloud2 whose point_step does not fit its fields, and a sweep of NaN points.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from calib import se3
from calib.rig import Rig, SensorSpec
from perception.io.bag_writer import BagWriter
from perception.io.ros_encode import encode_compressed_image, encode_pointcloud, serialize
from perception.types import CameraImage, EgoPose, Modality, PointCloud, RadarScan, SensorMessage
from tests.perception.replay import frames as F

W, H = 160, 90
NS = 1_000_000_000


def small_rig() -> Rig:
    """The shipped rig, cameras at 160x90, one radar, and the ego pose as an odometry sensor."""
    rig = F.rig()
    sensors = []
    for s in rig.sensors:
        if s.modality is Modality.CAMERA:
            s = replace(s, intrinsics=s.intrinsics.scaled(W / s.intrinsics.width))
        if s.modality is Modality.RADAR and s.name != "RADAR_FRONT":
            continue
        if s.modality in (Modality.GNSS, Modality.IMU):
            continue
        sensors.append(s)
    sensors.append(SensorSpec("ego_pose", Modality.ODOMETRY, "ego", "/ego_pose", 50.0))
    return Rig(tuple(sensors), "small", "<replay test>")


def world_T_ego(t_ns: int) -> np.ndarray:
    t = (t_ns - F.T0) / NS
    return se3.from_rotation_translation(se3.rotation_z(0.3), np.array([1000.0 + 5.0 * t, 2000.0, 10.0]))


def _sweep(rig: Rig, stamp: int, rng: np.random.Generator) -> PointCloud:
    n = 3000
    r, a = np.sqrt(rng.uniform(4, 40**2, n)), rng.uniform(-np.pi, np.pi, n)
    ground = np.column_stack([r * np.cos(a), r * np.sin(a), np.zeros(n)])
    car = F.boxes(stamp).center[0] + rng.uniform(-0.5, 0.5, (400, 3)) * np.array([4.5, 1.9, 1.6])
    ego = np.vstack([ground, car])
    lidar = rig["LIDAR_TOP"]
    xyz = se3.transform_points(se3.invert(lidar.ego_T_sensor), ego)
    pts = np.column_stack([xyz, rng.uniform(0, 100, len(xyz))]).astype(np.float32)
    offsets = np.linspace(-50_000_000, 0, len(pts)).astype(np.int64)
    return PointCloud(stamp, lidar.frame, pts, ("x", "y", "z", "intensity"), offsets)


def _image(k: int) -> np.ndarray:
    from tests.perception.io.rosbag_samples import smooth_image

    return smooth_image(H, W, k)


def write_log(path: Path, *, seconds: float = 0.5, corrupt: bool = False, seed: int = 0) -> Path:
    """Write the log to the new bag directory ``path``; returns it."""
    rig = small_rig()
    rng = np.random.default_rng(seed)
    end = F.T0 + int(seconds * NS)
    events: list[tuple[int, int, str, int]] = []  # (stamp, order, sensor, index)
    for sensor, rate, order in (("LIDAR_TOP", 20.0, 0), ("RADAR_FRONT", 13.0, 1), ("ego_pose", 50.0, 3)):
        for k, t in enumerate(range(F.T0 + (int(NS / rate) if sensor == "LIDAR_TOP" else 0), end + 1, int(NS / rate))):
            events.append((t, order, sensor, k))
    for j, cam in enumerate(rig.cameras):
        for k, t in enumerate(range(F.T0 + 5_000_000 * (j + 1), end + 1, int(NS / 12.0))):
            events.append((t, 2, cam.name, k))
    events.sort()
    writer = BagWriter(path, rig=rig)
    writer.write_rig(rig, F.T0)
    for t, _, sensor, k in events:
        spec = rig[sensor]
        if sensor == "LIDAR_TOP":
            cloud = _sweep(rig, t, rng)
            if corrupt and k == 3:
                msg = encode_pointcloud(cloud)
                msg.point_step = 7  # fields span 16 bytes: a damaged message
                writer._write_raw(spec.topic, "sensor_msgs/msg/PointCloud2", t, serialize(msg, "sensor_msgs/msg/PointCloud2"))
                continue
            if corrupt and k in (0, 6):  # the first frame has this sweep only: nothing finite
                cloud = replace(cloud, points=np.full_like(cloud.points, np.nan))
            writer.write(SensorMessage(t, sensor, spec.topic, cloud))
            gt = F.ground_truth(t)
            writer.write(SensorMessage(t, "ground_truth", "/ground_truth", gt))
        elif sensor == "RADAR_FRONT":
            scan = F.radar(t)
            scan = RadarScan(t, spec.frame, se3.transform_points(se3.invert(spec.ego_T_sensor), scan.points.astype(np.float64))
                             .astype(np.float32), scan.rcs, scan.radial_velocity, scan.velocity, scan.velocity_comp)
            writer.write(SensorMessage(t, sensor, spec.topic, scan))
        elif sensor == "ego_pose":
            writer.write(SensorMessage(t, sensor, spec.topic, EgoPose(t, "world", world_T_ego(t), "ego",
                                                                        velocity=np.array([5.0, 0.0, 0.0]))))
        else:
            img = CameraImage(t, sensor, spec.frame, _image(k))
            if corrupt and sensor == "CAM_FRONT" and k == 2:
                msg = encode_compressed_image(img)
                msg.data = msg.data[: msg.data.size // 3]  # cut short, as a recorder killed mid-write leaves it
                writer._write_raw(spec.topic, "sensor_msgs/msg/CompressedImage", t,
                                  serialize(msg, "sensor_msgs/msg/CompressedImage"))
                continue
            writer.write(SensorMessage(t, sensor, spec.topic, img))
    writer.close()
    assert cv2 is not None
    return path
