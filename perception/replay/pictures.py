"""The replay's pictures: ``bev/NNNNNN.png``, ``cameras/NNNNNN.jpg`` and ``bev.mp4``.

Every frame goes into the video: the BEV on the left and, when the rig has cameras, the camera
mosaic with projected boxes on the right. PNGs (BEV) and JPEGs (camera mosaic) are written every
``every`` frames and for the first frame, so a long log does not leave thousands of files; the
video has them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from calib.rig import Rig
from perception.errors import InputFileError
from perception.types import Detections, SyncedFrame
from perception.viz.bev import BevView, render_bev
from perception.viz.camera import camera_mosaic, camera_order
from perception.viz.video import VideoWriter

__all__ = ["PictureWriter"]


def _imwrite(path: Path, rgb: np.ndarray, params: list[int] | None = None) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params or []):
        raise InputFileError(f"{path}: OpenCV could not write the picture")


class PictureWriter:
    """Draw each replayed frame (see the module). ``view``: the BEV window; ``fps``: of the video
    (the log's frame rate plays it in real time); ``score_threshold``: the lowest score drawn;
    ``cameras``: the rig cameras to tile (default all; a log that never recorded a camera the rig
    lists should not show a tile of it saying "no image" on every frame)."""

    def __init__(self, out_dir: str | Path, rig: Rig, view: BevView, class_names: tuple[str, ...], *, fps: float = 10.0,
                 every: int = 10, score_threshold: float = 0.3, video: bool = True,
                 cameras: Sequence[str] | None = None) -> None:
        self.out = Path(out_dir)
        self.bev_dir = self.out / "bev"
        self.cam_dir = self.out / "cameras"
        self.bev_dir.mkdir(parents=True, exist_ok=True)
        self.rig = rig
        self.view = view
        self.class_names = class_names
        self.every = max(1, int(every))
        self.score_threshold = float(score_threshold)
        mounts = [(c.name, c.ego_T_sensor) for c in rig.cameras if cameras is None or c.name in cameras]
        self.cameras = camera_order(mounts)
        if self.cameras:
            self.cam_dir.mkdir(parents=True, exist_ok=True)
        self.video = VideoWriter(self.out / "bev.mp4", fps) if video else None
        self.index = 0
        self.pngs: list[Path] = []

    def _mosaic(self, frame: SyncedFrame, det: Detections) -> np.ndarray:
        specs = [(n, self.rig[n].intrinsics, frame.ego_T_sensor.get(n, self.rig[n].ego_T_sensor)) for n in self.cameras]
        columns = 3 if len(specs) > 4 else max(1, min(2, len(specs)))
        rows = -(-len(specs) // columns)
        # tiles as high as the BEV over the rows: the video puts them side by side at full resolution
        cell_width = max(64, int(self.view.size / rows * 16 / 9))
        return camera_mosaic(frame.images, specs, det, frame.ground_truth, columns=columns, cell_width=cell_width,
                             score_threshold=self.score_threshold)

    def write(self, frame: SyncedFrame, detections: Detections, *, log_name: str = "") -> None:
        """Draw one frame (``detections`` in the ego frame)."""
        stamp = datetime.fromtimestamp(frame.stamp_ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        shown = int(np.sum(detections.score >= self.score_threshold))
        title = [f"{log_name} frame {self.index}" if log_name else f"frame {self.index}", f"{stamp} UTC",
                 f"{shown} detections >= {self.score_threshold:.2f}"]
        if frame.ground_truth is not None:
            title.append(f"{len(frame.ground_truth)} ground-truth boxes")
        missing = sorted(frame.missing)
        if missing:
            # the title sits over the picture: a long list would run across the legend
            more = f" +{len(missing) - 2} more" if len(missing) > 2 else ""
            title.append("missing: " + ", ".join(missing[:2]) + more)
        bev = render_bev(self.view, lidar=frame.lidar, radar=frame.radar, detections=detections,
                         ground_truth=frame.ground_truth, score_threshold=self.score_threshold, title=title,
                         class_names=self.class_names)
        mosaic = self._mosaic(frame, detections) if self.cameras else None
        keep = self.index % self.every == 0
        if keep:
            path = self.bev_dir / f"{self.index:06d}.png"
            _imwrite(path, bev)
            self.pngs.append(path)
            if mosaic is not None:
                _imwrite(self.cam_dir / f"{self.index:06d}.jpg", mosaic, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if self.video is not None:
            if mosaic is not None:
                # side by side; the mosaic is as high as the BEV but for the rounding of its tiles
                canvas = np.zeros((bev.shape[0], bev.shape[1] + mosaic.shape[1], 3), np.uint8)
                canvas[:, :bev.shape[1]] = bev
                h = min(bev.shape[0], mosaic.shape[0])
                canvas[:h, bev.shape[1]:] = mosaic[:h]
                self.video.write(canvas)
            else:
                self.video.write(bev)
        self.index += 1

    def close(self) -> None:
        if self.video is not None:
            self.video.close()
