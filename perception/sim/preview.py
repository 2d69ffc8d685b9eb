"""A picture of one simulated frame: the six camera images and a bird's-eye view.

The BEV (ego frame at the LiDAR stamp, x forward = up) shows the sweep's points placed with the
ego pose of each point's own firing time (deskewed), the radar returns with their ego-motion
compensated velocities, the ground-truth boxes by class, and the ego trajectory of the whole log.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from calib import se3
from perception.boxes import box_corners
from perception.errors import InputFileError
from perception.sim.camera import RenderedFrame
from perception.sim.lidar import LidarSweep
from perception.sim.radar import RadarReturns
from perception.sim.simulator import GROUND_TRUTH_SENSOR, SimMessage, Simulator
from perception.types import Detections, Modality

__all__ = ["CLASS_COLORS", "PreviewCollector"]

# BGR colours of the classes in the BEV (NUSCENES_CLASSES order)
CLASS_COLORS = {
    "car": (255, 158, 0), "truck": (255, 99, 71), "construction_vehicle": (233, 150, 70), "bus": (255, 69, 0),
    "trailer": (255, 140, 0), "barrier": (112, 128, 144), "motorcycle": (255, 61, 99), "bicycle": (220, 20, 60),
    "pedestrian": (0, 0, 230), "traffic_cone": (47, 79, 79),
}
CLASS_COLORS = {k: (b, g, r) for k, (r, g, b) in CLASS_COLORS.items()}  # nuScenes devkit colours, RGB -> BGR

TILE_W, TILE_H = 480, 270
BEV_PX = 540
BEV_RANGE_M = 55.0


class PreviewCollector:
    """Watches the simulator's messages (``Simulator.write(on_message=...)``) and keeps one frame.

    ``at_s``: sim time of the frame (default: the middle of the log), rounded to a LiDAR stamp.
    """

    def __init__(self, sim: Simulator, at_s: float | None = None) -> None:
        self.sim = sim
        stamps = sim.lidar_stamps[sim.reference]
        if len(stamps) == 0:
            raise InputFileError("preview: the log is shorter than one LiDAR sweep")
        target = (sim.seconds / 2 if at_s is None else at_s) * 1e9
        # prefer a sweep during which every camera fires (a nuScenes keyframe), nearest the target
        period = sim.lidars[sim.reference].period_ns
        cams = [sim.stamps[c] for c in sim.cameras]
        def keyframe(s: int) -> bool:
            return all(np.any((c > s - period) & (c <= s)) for c in cams)
        order = np.argsort(np.abs(stamps - target), kind="stable")
        pick = next((k for k in order[:40] if keyframe(int(stamps[k]))), order[0])
        self.stamp_rel = int(stamps[pick])
        self.sweep: LidarSweep | None = None
        self.gt: Detections | None = None
        self.cameras: dict[str, tuple[int, RenderedFrame]] = {}
        self.radars: dict[str, tuple[int, RadarReturns]] = {}

    def __call__(self, sm: SimMessage) -> None:
        name, st = sm.message.sensor, sm.true_stamp_rel_ns
        if name == GROUND_TRUTH_SENSOR and st == self.stamp_rel:
            self.gt = sm.message.payload  # type: ignore[assignment]
            return
        if name not in self.sim.rig:
            return
        mod = self.sim.rig[name].modality
        if name == self.sim.reference and st == self.stamp_rel:
            self.sweep = sm.truth  # type: ignore[assignment]
        elif mod is Modality.CAMERA and isinstance(sm.truth, RenderedFrame):
            # the frame triggered during this sweep, else the nearest one
            period = self.sim.lidars[self.sim.reference].period_ns
            def rank(s: int) -> tuple[bool, int]:
                return (not (self.stamp_rel - period < s <= self.stamp_rel), abs(s - self.stamp_rel))
            best = self.cameras.get(name)
            if best is None or rank(st) < rank(best[0]):
                self.cameras[name] = (st, sm.truth)
        elif mod is Modality.RADAR and isinstance(sm.truth, RadarReturns) and st <= self.stamp_rel:
            if name not in self.radars or st > self.radars[name][0]:
                self.radars[name] = (st, sm.truth)

    # -- drawing -------------------------------------------------------------------------------------

    def _to_px(self, xy: np.ndarray) -> np.ndarray:
        """Ego x (forward) up, y (left) to the left."""
        s = BEV_PX / (2 * BEV_RANGE_M)
        return np.stack([BEV_PX / 2 - xy[:, 1] * s, BEV_PX / 2 - xy[:, 0] * s], axis=1)

    def _bev(self) -> np.ndarray:
        sim, w = self.sim, self.sim.world
        img = np.full((BEV_PX, BEV_PX, 3), 18, np.uint8)
        t = self.stamp_rel / 1e9
        ego_T_world = se3.invert(w.ego.world_T_ego(t))
        s = BEV_PX / (2 * BEV_RANGE_M)
        for r in range(10, int(BEV_RANGE_M) + 1, 10):  # range rings every 10 m
            cv2.circle(img, (BEV_PX // 2, BEV_PX // 2), int(r * s), (45, 45, 45), 1, cv2.LINE_AA)
        if self.sweep is not None:
            cloud = self.sweep.cloud
            lidar = sim.rig[sim.reference].ego_T_sensor
            x, y, yaw = w.ego.planar(self.sweep.fire_time_s)
            p_ego = cloud.xyz.astype(np.float64) @ lidar[:3, :3].T + lidar[:3, 3]
            c, sn = np.cos(yaw), np.sin(yaw)
            world = np.stack([x + c * p_ego[:, 0] - sn * p_ego[:, 1], y + sn * p_ego[:, 0] + c * p_ego[:, 1], p_ego[:, 2]], 1)
            pts = world @ ego_T_world[:3, :3].T + ego_T_world[:3, 3]
            px = self._to_px(pts).astype(np.int64)
            ok = (px[:, 0] >= 0) & (px[:, 0] < BEV_PX) & (px[:, 1] >= 0) & (px[:, 1] < BEV_PX)
            z = np.clip(0.25 + pts[ok, 2] / 6.0, 0, 1)  # above ground: bright, by height (turbo, from blue-green)
            colors = cv2.applyColorMap((z * 255).astype(np.uint8)[:, None], cv2.COLORMAP_TURBO)[:, 0]
            colors[pts[ok, 2] < 0.15] = (95, 95, 95)  # ground
            img[px[ok, 1], px[ok, 0]] = colors
        # ego trajectory of the whole log
        traj = np.stack([w.ego.x, w.ego.y, np.zeros_like(w.ego.x)], 1)[::50]
        tp = self._to_px(traj @ ego_T_world[:3, :3].T + ego_T_world[:3, 3]).astype(np.int32)
        cv2.polylines(img, [tp], False, (0, 200, 255), 1, cv2.LINE_AA)
        ego_box = box_corners(np.array([[1.3, 0.0, 0.8]]), np.array([[4.1, 1.8, 1.6]]), np.zeros(1))[0, [0, 1, 5, 4], :2]
        cv2.polylines(img, [self._to_px(ego_box).astype(np.int32)], True, (255, 255, 255), 1, cv2.LINE_AA)
        if self.gt is not None:
            corners = box_corners(self.gt.center, self.gt.size, self.gt.yaw)
            for i, name in enumerate(self.gt.labels_as_names):
                poly = self._to_px(corners[i, [0, 1, 5, 4], :2]).astype(np.int32)
                cv2.polylines(img, [poly], True, CLASS_COLORS[name], 1, cv2.LINE_AA)
                front = self._to_px(np.array([self.gt.center[i, :2], corners[i, [0, 1], :2].mean(0)])).astype(np.int32)
                cv2.line(img, tuple(front[0]), tuple(front[1]), CLASS_COLORS[name], 1, cv2.LINE_AA)
        for name, (_, ret) in self.radars.items():
            T = sim.rig[name].ego_T_sensor
            p = ret.scan.points.astype(np.float64) @ T[:3, :3].T + T[:3, 3]
            v = np.concatenate([ret.scan.velocity_comp, np.zeros((len(p), 1), np.float32)], 1) @ T[:3, :3].T
            a = self._to_px(p[:, :2]).astype(np.int32)
            b = self._to_px(p[:, :2] + 0.5 * v[:, :2]).astype(np.int32)
            for k in range(len(p)):
                cv2.circle(img, tuple(a[k]), 2, (60, 60, 255), -1, cv2.LINE_AA)
                cv2.line(img, tuple(a[k]), tuple(b[k]), (60, 60, 255), 1, cv2.LINE_AA)
        cv2.putText(img, f"BEV  t={t:.2f} s  +-{BEV_RANGE_M:.0f} m  lidar / radar (red) / GT / ego path", (8, 18),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.42, (230, 230, 230), 1, cv2.LINE_AA)
        return img

    def image(self) -> np.ndarray:
        """(540, 1980, 3) uint8 BGR: cameras front row FL F FR, back row BL B BR, then the BEV."""
        names = [s.name for s in self.sim.rig.cameras]
        order = [n for n in ("CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT")
                 if n in names] or names
        tiles = []
        for n in order[:6]:
            tile = np.zeros((TILE_H, TILE_W, 3), np.uint8)
            if n in self.cameras:
                st, fr = self.cameras[n]
                tile = cv2.resize(cv2.cvtColor(fr.image.image, cv2.COLOR_RGB2BGR), (TILE_W, TILE_H), interpolation=cv2.INTER_AREA)
                label = f"{n}  {(st - self.stamp_rel) / 1e6:+.1f} ms"
                cv2.putText(tile, label, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
                cv2.putText(tile, label, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
            tiles.append(tile)
        while len(tiles) < 6:
            tiles.append(np.zeros((TILE_H, TILE_W, 3), np.uint8))
        grid = np.concatenate([np.concatenate(tiles[:3], 1), np.concatenate(tiles[3:6], 1)], 0)
        return np.concatenate([grid, self._bev()], 1)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        if not cv2.imwrite(str(path), self.image()):
            raise InputFileError(f"{path}: could not write the preview PNG")
