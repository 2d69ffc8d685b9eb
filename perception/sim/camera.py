"""The cameras: when each one fires (the trigger model) and what it sees (``render_image``).

Trigger model (nuScenes'): a camera exposes when the spinning LiDAR points along the camera's
optical axis, so the cameras of one sweep fire in turn, tens of milliseconds apart, in the order
the head passes them. A camera's clock is phase-locked to the LiDAR: frame ``n`` is at
``crossing + n / rate``, where ``crossing`` is when the head passes the camera's axis during the
first sweep. Where the camera rate divides the LiDAR rate every frame is at a crossing; at
nuScenes' 12 Hz against 20 Hz, every third frame (4 Hz) is, the ones in between are evenly spaced.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from calib.camera import PinholeCamera
from calib.rig import SensorSpec
from perception.errors import RigError
from perception.sim.config import CameraSimConfig
from perception.sim.lidar import LidarSim
from perception.sim.render import background, local_frames, part_screen_boxes, render_image, tile_lists, tile_size
from perception.sim.threads import kernel_threads
from perception.sim.world import World
from perception.types import CameraImage

__all__ = ["CameraSim", "RenderedFrame", "camera_axis_azimuth"]

NS = 1_000_000_000


def camera_axis_azimuth(ego_T_cam: np.ndarray, ego_T_lidar: np.ndarray) -> float:
    """Azimuth (rad) of the camera's optical axis (+z of the camera) in the LiDAR frame."""
    axis_ego = ego_T_cam[:3, 2]
    axis_lidar = ego_T_lidar[:3, :3].T @ axis_ego
    return float(np.arctan2(axis_lidar[1], axis_lidar[0]))


@dataclass(frozen=True, eq=False)
class RenderedFrame:
    """image: CameraImage; instance: (H, W) int32 body index per pixel (-1 ground or sky)."""

    image: CameraImage
    instance: np.ndarray


class CameraSim:
    """One camera of the rig; ``spec.intrinsics`` must already be at the rendered image size."""

    def __init__(self, spec: SensorSpec, cfg: CameraSimConfig, lidar: LidarSim) -> None:
        if not isinstance(spec.intrinsics, PinholeCamera):
            raise RigError(f"sensor {spec.name!r}: intrinsics: the simulator renders pinhole cameras, "
                           f"got {type(spec.intrinsics).__name__}")
        if any(spec.intrinsics.distortion):
            raise RigError(f"sensor {spec.name!r}: intrinsics.distortion: the simulator renders undistorted images "
                           f"(as nuScenes ships them), got {spec.intrinsics.distortion}")
        self.spec = spec
        self.cfg = cfg
        self.model = spec.intrinsics
        self.trigger_offset_ns = lidar.azimuth_time_ns(camera_axis_azimuth(spec.ego_T_sensor, lidar.spec.ego_T_sensor))
        """ns from the start of a LiDAR sweep to this camera's crossing."""
        self.period_ns = NS / float(spec.rate_hz or 12.0)

    def stamps_rel_ns(self, duration_ns: int) -> np.ndarray:
        """(K,) int64 trigger stamps in [0, duration) ns from the log start (the first sweep starts at 0)."""
        n = int(np.ceil((duration_ns - self.trigger_offset_ns) / self.period_ns)) + 1
        st = self.trigger_offset_ns + np.round(np.arange(n) * self.period_ns).astype(np.int64)
        return st[(st >= 0) & (st < duration_ns)]

    def render(self, world: World, t: float, stamp_ns: int, key: int, world_key: int) -> RenderedFrame:
        """The image at sim time ``t`` seconds (global shutter), stamped ``stamp_ns``."""
        m = self.model
        world_T_cam = world.ego.world_T_ego(t) @ self.spec.ego_T_sensor
        R = np.ascontiguousarray(world_T_cam[:3, :3])
        tr = np.ascontiguousarray(world_T_cam[:3, 3])
        parts = world.parts_at(t)
        max_dist = 3.0 * self.cfg.fog_m  # beyond: haze has taken 3/4 of the contrast and a car is a few pixels
        boxes = part_screen_boxes(parts, R, tr, m.fx, m.fy, m.cx, m.cy, m.width, m.height, max_dist)
        loc = local_frames(parts, tr)
        tile = tile_size(m.width)
        ptr, idx = tile_lists(boxes, np.ascontiguousarray(loc[:, 5]), m.width, m.height, tile)
        image = np.empty((m.height, m.width, 3), np.uint8)
        instance = np.empty((m.height, m.width), np.int32)
        r = world.road
        light = world.lighting.as_array()
        bg = np.empty(((m.height + 1) // 2, (m.width + 1) // 2, 3), np.float32)
        with kernel_threads(m.width * m.height, self.cfg.threads):
            background(R, tr, m.fx, m.fy, m.cx, m.cy, light, self.cfg.fog_m, np.uint64(world_key), r.seg, r.grid_seg,
                       r.grid_meta, r.layout.as_array(), bg)
            # half-resolution sample (i, j) sits at full-resolution pixel (2i + 0.5, 2j + 0.5): OpenCV's
            # pixel-centre convention for a 2x enlargement, so a plain bilinear resize lines them up
            bg_full = cv2.resize(bg, (m.width, m.height), interpolation=cv2.INTER_LINEAR) if bg.shape[:2] != (m.height, m.width) \
                else bg
            render_image(parts, loc, boxes, tile, ptr, idx, R, tr, m.fx, m.fy, m.cx, m.cy, light, self.cfg.fog_m,
                         self.cfg.noise_sigma, np.uint64(key), np.uint64(world_key), np.ascontiguousarray(bg_full), image, instance)
        return RenderedFrame(CameraImage(stamp_ns=stamp_ns, camera=self.spec.name, frame_id=self.spec.frame, image=image),
                             instance)
