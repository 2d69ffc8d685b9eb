"""3D boxes drawn into camera images, and the cameras of a frame tiled into one picture.

A box's 12 edges are cut at a near plane in front of the camera before projecting (an edge that
passes behind the camera would otherwise project to a line across the whole image), and each edge
is projected in pieces so that a distorted lens bends it as it bends the real object's outline.
The projection goes through the camera model of ``calib.camera`` (OpenCV's distortion), scaled to
the image's own size when the image is not the size of the calibration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from calib import se3
from calib.camera import CameraModel, PinholeCamera
from perception.boxes import box_corners
from perception.types import CameraImage, Detections
from perception.viz.colors import GT_COLOR, TEXT_COLOR, class_color

__all__ = ["BOX_EDGES", "camera_for_image", "camera_mosaic", "camera_order", "draw_boxes_on_image", "project_box_edges"]

# Corner pairs of the 12 edges, in the corner order of ``perception.boxes`` (0-3 front face, 4-7 rear).
BOX_EDGES = np.array([[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4], [0, 4], [1, 5], [2, 6], [3, 7]])
_NEAR_M = 0.3
_PIECES = 8
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def camera_for_image(camera: CameraModel, width: int, height: int) -> CameraModel | None:
    """``camera`` for an image of ``width`` x ``height`` (scaled when the sizes differ), or None when
    it cannot be (a model without ``scaled``, or another aspect ratio: a crop, not a resize)."""
    if (int(camera.width), int(camera.height)) == (width, height):
        return camera
    sx, sy = width / camera.width, height / camera.height
    if not hasattr(camera, "scaled") or abs(sx - sy) > 0.01 * max(sx, sy):
        return None
    return camera.scaled(sx, sy)


def project_box_edges(det: Detections, camera: CameraModel, cam_T_ego: np.ndarray) -> list[list[np.ndarray]]:
    """For each box, the polylines of its visible edges, each (K, 2) float64 pixels (the list is empty
    for a box behind the camera or whose outline misses the image).

    ``det`` in the ego frame; ``cam_T_ego`` (4, 4) maps ego coordinates into the camera frame.
    """
    m = len(det)
    if m == 0:
        return []
    corners = box_corners(det.center, det.size, det.yaw)  # (M, 8, 3) ego
    cam = se3.transform_points(cam_T_ego, corners.reshape(-1, 3)).reshape(m, 8, 3)
    pa, pb = cam[:, BOX_EDGES[:, 0]].reshape(-1, 3), cam[:, BOX_EDGES[:, 1]].reshape(-1, 3)  # (M*12, 3)
    za, zb = pa[:, 2].copy(), pb[:, 2].copy()
    # move the endpoint behind the near plane onto it, along the edge (both behind: dropped below)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.clip((_NEAR_M - za) / (zb - za), 0.0, 1.0)
    a_new = np.where((za < _NEAR_M)[:, None], pa + s[:, None] * (pb - pa), pa)
    b_new = np.where((zb < _NEAR_M)[:, None], pa + s[:, None] * (pb - pa), pb)
    visible = (za >= _NEAR_M) | (zb >= _NEAR_M)
    # an ideal pinhole maps a straight edge (in front of the camera) to a straight segment: its two
    # ends are enough, and nothing folds back, so far-out ends are kept (OpenCV clips the line)
    ideal = isinstance(camera, PinholeCamera) and not any(camera.distortion)
    pieces = 1 if ideal else _PIECES
    t = np.linspace(0.0, 1.0, pieces + 1)
    pts = a_new[:, None, :] + t[None, :, None] * (b_new - a_new)[:, None, :]  # (E, P+1, 3)
    uv, _ = camera.project(pts.reshape(-1, 3), min_depth=_NEAR_M * 0.5)
    uv = uv.reshape(-1, pieces + 1, 2)
    w, h = float(camera.width), float(camera.height)
    sane = np.isfinite(uv).all(-1) & visible[:, None]
    if not ideal:
        # far outside the image a distortion polynomial folds back: keep pieces within two images of it
        with np.errstate(invalid="ignore"):
            sane &= (np.abs(uv[..., 0] - w / 2) < 2.0 * w) & (np.abs(uv[..., 1] - h / 2) < 2.0 * h)
    uv = uv.reshape(m, 12, pieces + 1, 2)
    sane = sane.reshape(m, 12, pieces + 1)
    full = sane.all(-1)  # (M, 12): the usual case, a whole edge in one polyline
    partial = sane.any(-1) & ~full
    # only the boxes whose outline can reach the image: the bounding box of its kept points meets
    # it (a busy frame's ground truth is a hundred boxes, of which a camera shows a few; the
    # per-box work below is what drawing a mosaic cost)
    with np.errstate(invalid="ignore"):
        lo = np.where(sane[..., None], uv, np.inf).min(axis=(1, 2))  # (M, 2)
        hi = np.where(sane[..., None], uv, -np.inf).max(axis=(1, 2))
    reach = (hi[:, 0] >= -1.0) & (lo[:, 0] <= w) & (hi[:, 1] >= -1.0) & (lo[:, 1] <= h)
    out: list[list[np.ndarray]] = [[] for _ in range(m)]
    for i in np.flatnonzero(reach):
        lines = [uv[i, e] for e in np.flatnonzero(full[i])]
        for e in np.flatnonzero(partial[i]):
            # split the edge where pieces were dropped
            idx = np.flatnonzero(sane[i, e])
            for run in np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1):
                if run.size > 1:
                    lines.append(uv[i, e, run])
        out[i] = lines
    return out


def draw_boxes_on_image(image: np.ndarray, det: Detections, camera: CameraModel, ego_T_cam: np.ndarray, *,
                        colour: tuple[int, int, int] | None = None, thickness: int = 2, label: bool = True) -> np.ndarray:
    """A copy of ``image`` (H, W, 3) uint8 RGB with ``det`` (ego frame) drawn through ``camera``.

    ``ego_T_cam`` (4, 4) maps camera coordinates into the ego frame (``SyncedFrame.ego_T_sensor``);
    ``camera`` is scaled to the image's size. ``colour`` None = by class. ``label``: class and
    score above each box that shows.
    """
    out = np.ascontiguousarray(image).copy()
    h, w = out.shape[:2]
    model = camera_for_image(camera, w, h)
    if model is None or len(det) == 0:
        return out
    names = det.labels_as_names
    for i, lines in enumerate(project_box_edges(det, model, se3.invert(ego_T_cam))):
        if not lines:
            continue
        pts = np.concatenate(lines)
        c = colour or class_color(names[i])
        cv2.polylines(out, [np.round(p).astype(np.int32) for p in lines], False, c, thickness, cv2.LINE_AA)
        if label:
            inside = pts[(pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)]
            if inside.shape[0]:
                x, y = int(inside[:, 0].min()), int(inside[:, 1].min())
                scale = 0.33 * max(1.0, w / 500)  # readable on a big tile, not huge on a small one
                cv2.putText(out, f"{names[i]} {det.score[i]:.2f}", (x, max(10, y - 3)), _FONT, scale, c, 1, cv2.LINE_AA)
    return out


def camera_order(cameras: Sequence[tuple[str, np.ndarray]]) -> list[str]:
    """Camera names in the order of a surround view, from their ``ego_T_cam`` (4, 4) mounts.

    Front-facing cameras first, left to right (FRONT_LEFT, FRONT, FRONT_RIGHT), then the rear-facing
    ones as the nuScenes devkit lays them out (BACK_LEFT, BACK, BACK_RIGHT), whatever order the rig
    lists them in. The optical axis is the camera's +z.
    """
    front, back = [], []
    for name, T in cameras:
        axis = np.asarray(T, dtype=np.float64)[:3, 2]
        az = float(np.degrees(np.arctan2(axis[1], axis[0])))
        if abs(az) <= 90.0:
            front.append((-az, name))
        else:
            back.append((az % 360.0, name))
    return [n for _, n in sorted(front)] + [n for _, n in sorted(back)]


def camera_mosaic(images: Mapping[str, CameraImage], cameras: Sequence[tuple[str, CameraModel | None, np.ndarray]],
                  detections: Detections | None, ground_truth: Detections | None = None, *, columns: int = 3,
                  cell_width: int = 400, score_threshold: float = 0.3) -> np.ndarray:
    """The cameras of a frame tiled ``columns`` wide, boxes projected, each tile named.

    ``cameras``: (name, model, ego_T_cam) in the order to tile (``camera_order``); a camera without
    an image this frame gets a dark tile saying so. Tiles are ``cell_width`` wide and 16:9 high
    (other aspect ratios are letterboxed), so the mosaic has the same size every frame, as a video
    needs. Each image is shrunk to its tile first and the boxes drawn on the small image: lines and
    labels stay sharp, and drawing costs a sixteenth of what it would at 1600x900.
    """
    cell_h = int(round(cell_width * 9 / 16))
    rows = max(1, -(-len(cameras) // columns))
    mosaic = np.zeros((rows * cell_h, columns * cell_width, 3), np.uint8)
    shown = None if detections is None else detections.select(detections.score >= score_threshold)
    for k, (name, model, ego_T_cam) in enumerate(cameras):
        r, c = divmod(k, columns)
        tile = np.full((cell_h, cell_width, 3), 25, np.uint8)
        img = images.get(name)
        if img is not None:
            pic = img.image
            s = min(cell_width / pic.shape[1], cell_h / pic.shape[0])
            nw, nh = max(1, int(round(pic.shape[1] * s))), max(1, int(round(pic.shape[0] * s)))
            # area averaging where the image shrinks a lot (no aliasing); bilinear otherwise, much cheaper
            small = cv2.resize(pic, (nw, nh), interpolation=cv2.INTER_AREA if s < 0.6 else cv2.INTER_LINEAR)
            if model is not None:
                # the calibration's size, not the decoded image's, is what the intrinsics describe
                model = camera_for_image(model, pic.shape[1], pic.shape[0])
            if model is not None:
                if ground_truth is not None and len(ground_truth):
                    small = draw_boxes_on_image(small, ground_truth, model, ego_T_cam, colour=GT_COLOR, thickness=1,
                                                label=False)
                if shown is not None and len(shown):
                    small = draw_boxes_on_image(small, shown, model, ego_T_cam)
            y0, x0 = (cell_h - nh) // 2, (cell_width - nw) // 2
            tile[y0:y0 + nh, x0:x0 + nw] = small
        else:
            cv2.putText(tile, "no image", (cell_width // 2 - 40, cell_h // 2), _FONT, 0.6, TEXT_COLOR, 1, cv2.LINE_AA)
        (tw, _), _ = cv2.getTextSize(name, _FONT, 0.42, 1)
        cv2.rectangle(tile, (0, 0), (tw + 8, 18), (0, 0, 0), -1)
        cv2.putText(tile, name, (4, 13), _FONT, 0.42, TEXT_COLOR, 1, cv2.LINE_AA)
        mosaic[r * cell_h:(r + 1) * cell_h, c * cell_width:(c + 1) * cell_width] = tile
    return mosaic
