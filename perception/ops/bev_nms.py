"""Non-maximum suppression of BEV boxes: rotated-box IoU or CenterPoint's circle (centre distance).

Greedy and per class, the same on both devices:
- boxes are visited by score, highest first, ties by the lower row index (a stable sort);
- a visited box that nothing has suppressed is kept and suppresses every later box of the same
  label with ``IoU > threshold`` (``method="rotated"``: the area of the polygon intersection of the
  two rotated rectangles in x-y over the union) or with a centre distance ``<= threshold`` metres
  (``method="circle"``; CenterPoint's ``min_radius`` is compared with the *squared* distance, so
  pass ``sqrt(min_radius)`` to reproduce its results);
- ``threshold`` is one value or one per class (then labels must index it; other rows are dropped);
- rows that are not ``valid``, or whose box or score is not finite, are neither kept nor suppress.

Corners are computed with float64 sin/cos rounded to float32 and everything else in float32 with
the same operations as the CUDA kernel, so the two decide alike except for an IoU within rounding
of the threshold. Returns a keep mask of fixed size (no wait for the GPU).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import njit

from perception.errors import ShapeError
from perception.ops import _common as C

__all__ = ["nms_bev"]

_METHODS = ("rotated", "circle")


@njit(cache=True, nogil=True)
def _corners(boxes, ok):  # pragma: no cover - numba
    """(M, 4, 2) float32 counter-clockwise corners: (l/2, w/2), (-l/2, w/2), (-l/2, -w/2), (l/2, -w/2) rotated."""
    m = boxes.shape[0]
    out = np.zeros((m, 4, 2), np.float32)
    sx = np.array([0.5, -0.5, -0.5, 0.5], np.float32)
    sy = np.array([0.5, 0.5, -0.5, -0.5], np.float32)
    for i in range(m):
        if not ok[i]:
            continue
        c = np.float32(np.cos(np.float64(boxes[i, 6])))
        s = np.float32(np.sin(np.float64(boxes[i, 6])))
        for k in range(4):
            dx = sx[k] * boxes[i, 3]
            dy = sy[k] * boxes[i, 4]
            out[i, k, 0] = boxes[i, 0] + (dx * c - dy * s)
            out[i, k, 1] = boxes[i, 1] + (dx * s + dy * c)
    return out


@njit(cache=True, inline="always")
def _cross(ax, ay, bx, by):  # pragma: no cover - numba
    return ax * by - ay * bx


@njit(cache=True, nogil=True)
def _iou(corners, boxes, a, b, px, py, qx, qy):  # pragma: no cover - numba
    """IoU in x-y of boxes a and b: Sutherland-Hodgman clip of a's polygon by b's four edges.
    px, py, qx, qy: scratch (16,) float32. Mirrors rotated_iou in cuda_kernels/bev_nms.cu."""
    n = 4
    for k in range(4):
        px[k] = corners[a, k, 0]
        py[k] = corners[a, k, 1]
    for e in range(4):
        ex0, ey0 = corners[b, e, 0], corners[b, e, 1]
        ex1, ey1 = corners[b, (e + 1) % 4, 0], corners[b, (e + 1) % 4, 1]
        dx, dy = ex1 - ex0, ey1 - ey0
        m = 0
        for k in range(n):
            sx, sy = px[(k + n - 1) % n], py[(k + n - 1) % n]  # previous vertex
            cx, cy = px[k], py[k]
            ds = _cross(dx, dy, sx - ex0, sy - ey0)
            dc = _cross(dx, dy, cx - ex0, cy - ey0)
            if dc >= 0:  # current inside (left of the edge)
                if ds < 0:
                    t = ds / (ds - dc)
                    qx[m] = sx + t * (cx - sx)
                    qy[m] = sy + t * (cy - sy)
                    m += 1
                qx[m] = cx
                qy[m] = cy
                m += 1
            elif ds >= 0:
                t = ds / (ds - dc)
                qx[m] = sx + t * (cx - sx)
                qy[m] = sy + t * (cy - sy)
                m += 1
        n = m
        for k in range(n):
            px[k] = qx[k]
            py[k] = qy[k]
        if n == 0:
            return np.float32(0.0)
    area2 = np.float32(0.0)
    for k in range(n):
        j = (k + 1) % n
        area2 += px[k] * py[j] - px[j] * py[k]
    inter = abs(area2) * np.float32(0.5)
    union = boxes[a, 3] * boxes[a, 4] + boxes[b, 3] * boxes[b, 4] - inter
    return inter / union if union > 0 else np.float32(0.0)


@njit(cache=True, nogil=True)
def _nms(boxes, scores, labels, valid, thresholds, circle):  # pragma: no cover - numba
    m = boxes.shape[0]
    n_cls = thresholds.shape[0]
    ok = np.zeros(m, np.bool_)
    for i in range(m):
        fin = np.isfinite(scores[i])
        for k in range(7):
            fin = fin and np.isfinite(boxes[i, k])
        ok[i] = valid[i] and fin and (n_cls == 1 or (labels[i] >= 0 and labels[i] < n_cls))
    corners = _corners(boxes, ok)
    # Bounding radius: pairs further apart than the sum cannot overlap, which skips most IoUs.
    radius = np.zeros(m, np.float32)
    for i in range(m):
        radius[i] = np.float32(0.5) * np.sqrt(boxes[i, 3] * boxes[i, 3] + boxes[i, 4] * boxes[i, 4])
    # Visiting order: score descending, ties by row; failed rows left out. Classes never interact,
    # so the order is then grouped by label (each group keeps score order) and the greedy pass runs
    # per group, skipping every cross-class pair. Unique int64 keys: any sort gives this order.
    bits = scores.view(np.int32)
    key = np.empty(ok.sum(), np.int64)
    n = 0
    for i in range(m):
        if ok[i]:
            key[n] = -C.float_order_key(bits[i]) * 4294967296 + i
            n += 1
    order = np.sort(key) & 0xFFFFFFFF
    for j in range(n):
        key[j] = np.int64(labels[order[j]]) * 4294967296 + j
    grouped = order[np.sort(key) & 0xFFFFFFFF]
    keep = np.zeros(m, np.bool_)
    removed = np.zeros(m, np.bool_)
    px, py = np.empty(16, np.float32), np.empty(16, np.float32)
    qx, qy = np.empty(16, np.float32), np.empty(16, np.float32)
    start = 0
    while start < grouped.shape[0]:
        stop = start + 1
        while stop < grouped.shape[0] and labels[grouped[stop]] == labels[grouped[start]]:
            stop += 1
        thr = thresholds[0] if n_cls == 1 else thresholds[labels[grouped[start]]]
        for ii in range(start, stop):
            a = grouped[ii]
            if removed[a]:
                continue
            keep[a] = True
            for jj in range(ii + 1, stop):
                b = grouped[jj]
                if removed[b]:
                    continue
                dx = boxes[a, 0] - boxes[b, 0]
                dy = boxes[a, 1] - boxes[b, 1]
                d2 = dx * dx + dy * dy
                if circle:
                    removed[b] = d2 <= thr * thr
                else:
                    reach = (radius[a] + radius[b]) * np.float32(1.01)
                    if d2 <= reach * reach and _iou(corners, boxes, a, b, px, py, qx, qy) > thr:
                        removed[b] = True
        start = stop
    return keep


def nms_bev(boxes: Any, scores: Any, labels: Any, *, method: str = "rotated", threshold: float | Sequence[float] = 0.2,
            valid: Any | None = None) -> Any:
    """Greedy per-class BEV NMS (rules in the module docstring).

    boxes: (M, 7+) float32 x y z l w h yaw [...] (``DecodedBoxes.boxes`` fits); scores: (M,) float32;
    labels: (M,) int32; valid: (M,) bool or None (all rows); method: "rotated" (IoU threshold) or
    "circle" (distance threshold in metres); threshold: a float or one per class.
    Returns keep: (M,) bool on the input's device.
    """
    m, _ = C.check_shape(boxes, "boxes", ("M", None))
    if boxes.shape[1] < 7:
        raise ShapeError(f"boxes: expected (M, 7+) x y z l w h yaw ..., got shape {tuple(boxes.shape)}")
    C.check_dtype(boxes, "boxes", "float32")
    C.check_shape(scores, "scores", (m,))
    C.check_dtype(scores, "scores", "float32")
    C.check_shape(labels, "labels", (m,))
    C.check_dtype(labels, "labels", "int32")
    for name, x in (("scores", scores), ("labels", labels)) + ((("valid", valid),) if valid is not None else ()):
        C.check_same_device(boxes, name, x)
    if valid is not None:
        C.check_shape(valid, "valid", (m,))
        C.check_dtype(valid, "valid", "bool")
    if method not in _METHODS:
        raise ValueError(f"method: expected one of {list(_METHODS)}, got {method!r}")
    thr = np.atleast_1d(np.asarray(threshold, np.float32))
    top = 1.0 if method == "rotated" else np.inf
    if thr.ndim != 1 or thr.size == 0 or not np.all((thr >= 0) & (thr <= top)):
        raise ValueError(f"threshold: expected one value or one per class, each in [0, {top}], got {threshold!r}")
    if C.is_cuda(boxes):
        return _nms_cuda(boxes, scores, labels, valid, thr, method == "circle")
    ok = C.as_numpy(valid) if valid is not None else np.ones(m, np.bool_)
    keep = _nms(C.as_numpy(boxes), C.as_numpy(scores), C.as_numpy(labels), ok, thr, method == "circle")
    return C.like_input(boxes, keep)


def _nms_cuda(boxes: Any, scores: Any, labels: Any, valid: Any | None, thr: np.ndarray, circle: bool) -> Any:
    import torch

    from perception.ops import _cuda as K

    dev = boxes.device
    m = boxes.shape[0]
    keep = torch.zeros(m, dtype=torch.bool, device=dev)
    if m == 0:
        return keep
    bx = boxes.contiguous()
    sc, lb = scores.contiguous(), labels.contiguous()
    ok = valid.contiguous() if valid is not None else torch.ones(m, dtype=torch.bool, device=dev)
    thresholds = K.device_constant(thr, bx)
    key = torch.empty(m, dtype=torch.float32, device=dev)
    prep = torch.empty((m, 16), dtype=torch.float32, device=dev)  # x y l w, 4 corners (x, y), radius, ok
    K.launch("bev_nms", "nms_prepare", K.blocks(m, 256), 256,
             (K.ptr(bx), np.int32(bx.shape[1]), K.ptr(sc), K.ptr(lb), K.ptr(ok), np.int32(m), np.int32(thr.size),
              K.ptr(key), K.ptr(prep)), bx)
    # Stable: equal scores keep the row order, as numba's mergesort does; failed rows (key +inf) go last.
    order = torch.sort(key, stable=True).indices
    words = (m + 63) // 64
    mask = torch.empty((m, words), dtype=torch.int64, device=dev)
    K.launch("bev_nms", "nms_mask", (words, words), 64,
             (K.ptr(prep), K.ptr(lb), K.ptr(order), np.int32(m), K.ptr(thresholds), np.int32(thr.size),
              np.int32(circle), K.ptr(mask)), bx)
    K.launch("bev_nms", "nms_reduce", 1, 256,
             (K.ptr(mask), K.ptr(prep), K.ptr(order), np.int32(m), K.ptr(keep)), bx, shared_mem=8 * words + 8 * 64)
    return keep
