"""An MP4 file written frame by frame (OpenCV's ``mp4v`` MPEG-4 Part 2 encoder).

``mp4v`` is the codec every OpenCV wheel can write without an external encoder (H.264 needs an
OpenH264 or FFmpeg build with it); browsers may not play it, VLC, ffplay, mpv and OpenCV do. The
size is fixed by the first frame: a later frame of another size is letterboxed into it, since an
encoder cannot change size mid-stream.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from perception.errors import InputFileError, ShapeError

__all__ = ["VideoWriter", "fit_frame"]


def fit_frame(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """``img`` (H, W, 3) uint8 scaled to fit ``width`` x ``height`` and centred on black."""
    if img.shape[1] == width and img.shape[0] == height:
        return img
    s = min(width / img.shape[1], height / img.shape[0])
    nw, nh = max(1, int(round(img.shape[1] * s))), max(1, int(round(img.shape[0] * s)))
    out = np.zeros((height, width, 3), np.uint8)
    y0, x0 = (height - nh) // 2, (width - nw) // 2
    out[y0:y0 + nh, x0:x0 + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    return out


class VideoWriter:
    """Write RGB frames to ``path`` at ``fps``; opened on the first frame (its size, rounded to even)."""

    def __init__(self, path: str | Path, fps: float) -> None:
        if not fps > 0:
            raise ShapeError(f"fps: expected > 0, got {fps}")
        self.path = Path(path)
        self.fps = float(fps)
        self.frames = 0
        self.size: tuple[int, int] | None = None
        self._writer: cv2.VideoWriter | None = None

    def write(self, rgb: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ShapeError(f"{self.path}: frame: expected (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
        if self._writer is None:
            # MPEG-4 encodes 4:2:0 chroma: odd sizes are refused by some decoders
            w, h = rgb.shape[1] - rgb.shape[1] % 2, rgb.shape[0] - rgb.shape[0] % 2
            writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not writer.isOpened():
                raise InputFileError(f"{self.path}: OpenCV cannot open an mp4v video for writing")
            self._writer, self.size = writer, (w, h)
        assert self.size is not None
        w, h = self.size
        if 0 <= rgb.shape[1] - w <= 1 and 0 <= rgb.shape[0] - h <= 1:
            frame = rgb[:h, :w]  # an odd size rounded down: one column or row cut, not the whole frame resampled
        else:
            frame = fit_frame(rgb, w, h)
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.release()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
