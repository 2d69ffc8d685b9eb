"""CenterPoint decode: head maps -> the top-K local peaks -> 3D boxes in the ego frame.

- The head's (H, W) must divide the BEV grid: stride = grid.nx / W = grid.ny / H (the head runs at
  a whole-number fraction of the grid; the grid itself is never restated). A head cell is
  ``cell_m * stride`` metres; cell (iy, ix) spans from ``(x_min + ix * cell, y_min + iy * cell)``.
- A peak is a finite heatmap value >= each finite value of its 3x3 neighbourhood in the same class
  (CenterPoint's ``max_pool2d(3, 1, 1) == heat``, plateaus included); NaN/inf never peak and never
  suppress a neighbour.
- The K peaks of highest value are taken over all classes, ties broken by the lower flat index
  (class, y, x), and a row is valid when its score (sigmoid of the value, or the value itself when
  ``sigmoid=False``) is >= ``score_threshold``. Rows come sorted by value, so the valid rows are a
  prefix; the others are padding (score 0, label -1, box 0). Fixed K rows on every device: no
  data-dependent shape, no wait for the GPU, and the export path sees static shapes.
- Box: x = x_min + (ix + offset_x) * cell, y likewise, z = height, (l, w, h) = exp(size),
  yaw = atan2(sin, cos), (vx, vy) = velocity (zeros when the head has none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit, prange

from perception.config import GridConfig
from perception.errors import ShapeError
from perception.ops import _common as C

__all__ = ["BOX_FIELDS", "DecodedBoxes", "decode_centerpoint"]

BOX_FIELDS = ("x", "y", "z", "l", "w", "h", "yaw", "vx", "vy")


@dataclass(frozen=True, eq=False)
class DecodedBoxes:
    """boxes: (K, 9) float32 x y z l w h yaw vx vy (ego frame); scores: (K,) float32;
    labels: (K,) int32 class index, -1 in padding; valid: (K,) bool, a prefix of the rows."""

    boxes: Any
    scores: Any
    labels: Any
    valid: Any

    def trimmed(self) -> DecodedBoxes:
        """Only the valid rows (for a CUDA result this waits for the GPU to count them)."""
        n = int(self.valid.sum())
        return DecodedBoxes(self.boxes[:n], self.scores[:n], self.labels[:n], self.valid[:n])


@njit(cache=True, nogil=True)
def _smallest_sorted(keys, k):  # pragma: no cover - numba
    """The k smallest of ``keys`` (unique int64), ascending: a bounded max-heap, O(n log k), so the
    ~20k candidates of a heatmap are not all sorted to keep 500 (np.partition would do, but its
    numba compilation costs more than the whole test run of this op)."""
    n = keys.shape[0]
    if n <= k:
        return np.sort(keys)
    heap = keys[:k].copy()
    for i in range(k // 2 - 1, -1, -1):  # heapify (max at the root)
        _sift_down(heap, i, k)
    for j in range(k, n):
        if keys[j] < heap[0]:
            heap[0] = keys[j]
            _sift_down(heap, 0, k)
    return np.sort(heap)


@njit(cache=True, nogil=True)
def _sift_down(heap, i, n):  # pragma: no cover - numba
    while True:
        big, left, right = i, 2 * i + 1, 2 * i + 2
        if left < n and heap[left] > heap[big]:
            big = left
        if right < n and heap[right] > heap[big]:
            big = right
        if big == i:
            return
        heap[i], heap[big] = heap[big], heap[i]
        i = big


@njit(cache=True, nogil=True, inline="always")
def _finite_or_minus_inf(v):  # pragma: no cover - numba
    return v if v < np.inf else np.float32(-np.inf)  # +inf never suppresses; NaN compares False anyway


@njit(cache=True, nogil=True, inline="always")
def _inner_neighbour_max(heat, k, y, x):  # pragma: no cover - numba
    """The largest finite value among the 8 neighbours of an inner cell (0 < y < h-1, 0 < x < w-1),
    as selects, not branches: on a noisy heatmap each compare would be a coin toss for the branch
    predictor. The caller's loop bounds let LLVM drop numba's negative-index checks."""
    f = _finite_or_minus_inf
    return max(f(heat[k, y - 1, x - 1]), f(heat[k, y - 1, x]), f(heat[k, y - 1, x + 1]), f(heat[k, y, x - 1]),
               f(heat[k, y, x + 1]), f(heat[k, y + 1, x - 1]), f(heat[k, y + 1, x]), f(heat[k, y + 1, x + 1]))


@njit(cache=True, nogil=True)
def _border_suppressed(heat, k, y, x, v):  # pragma: no cover - numba
    """Whether a finite neighbour of a border cell exceeds v (bounds-checked; few cells)."""
    _, h, w = heat.shape
    for dy in range(-1, 2):
        for dx in range(-1, 2):
            yy, xx = y + dy, x + dx
            if 0 <= yy < h and 0 <= xx < w:
                nb = heat[k, yy, xx]
                if nb > v and nb < np.inf:
                    return True
    return False


@njit(cache=True, nogil=True, parallel=True)
def _class_peak_keys(heat, heat_bits, cutoff, keys, counts):  # pragma: no cover - numba
    # One class per work item (the classes are independent): the sort keys of class k's local
    # maxima at or above ``cutoff`` go to keys[k, :counts[k]], in (y, x) order, so the result never
    # depends on threads. cutoff: below it a value cannot reach the threshold (_value_cutoff), so
    # ~90% of a heatmap is skipped with one compare; the exact score test is left to the caller,
    # out of this loop: a call to exp here, even one rarely taken, doubled the loop's time.
    # Inner cells first, in a loop with no bounds tests; then the border.
    n_cls, h, w = heat.shape
    for k in prange(n_cls):
        n = 0
        for y in range(1, h - 1):
            for x in range(1, w - 1):
                v = heat[k, y, x]
                if not (v >= cutoff) or not (v < np.inf):  # NaN and inf never peak
                    continue
                if _inner_neighbour_max(heat, k, y, x) > v:  # plateaus are peaks
                    continue
                # Sort key: -value, then the flat index (unique, so the order is fully determined).
                keys[k, n] = -C.float_order_key(heat_bits[k, y, x]) * 4294967296 + (k * h + y) * w + x
                n += 1
        for y in range(h):
            step = 1 if y == 0 or y == h - 1 else max(w - 1, 1)  # whole first/last rows, else both ends
            for x in range(0, w, step):
                v = heat[k, y, x]
                if not (v >= cutoff) or not (v < np.inf) or _border_suppressed(heat, k, y, x, v):
                    continue
                keys[k, n] = -C.float_order_key(heat_bits[k, y, x]) * 4294967296 + (k * h + y) * w + x
                n += 1
        counts[k] = n


@njit(cache=True, nogil=True)
def _decode(heat, offset, height, size, rot, vel, has_vel, top_k, threshold, cutoff, sure, sigmoid, x0, y0, cell):  # pragma: no cover
    n_cls, h, w = heat.shape
    heat_bits = heat.view(np.int32)
    class_keys = np.empty((n_cls, h * w), np.int64)
    counts = np.zeros(n_cls, np.int64)
    _class_peak_keys(heat, heat_bits, cutoff, class_keys, counts)
    # The segments end to end (class order), keeping the peaks that score >= threshold. Values at
    # or above ``sure`` surely do (_value_sure): a key compare; only the thin band between the
    # cutoff and ``sure`` needs the score itself. The test is monotone in the value, so filtering
    # before the top-K selects the same rows.
    sure_key = -C.float_order_key(np.array([sure], np.float32).view(np.int32)[0]) * 4294967296 + 4294967295
    keys = np.empty(counts.sum(), np.int64)
    n = 0
    flat = heat.ravel()
    for k in range(n_cls):
        for j in range(counts[k]):
            key = class_keys[k, j]
            if key > sure_key:  # below ``sure``
                v = flat[key & 0xFFFFFFFF]
                s = np.float32(1.0) / (np.float32(1.0) + np.exp(-v)) if sigmoid else v
                if s < threshold:
                    continue
            keys[n] = key
            n += 1
    keys = _smallest_sorted(keys[:n], top_k)
    boxes = np.zeros((top_k, 9), np.float32)
    scores = np.zeros(top_k, np.float32)
    labels = np.full(top_k, -1, np.int32)
    valid = np.zeros(top_k, np.bool_)
    for j in range(min(top_k, n)):
        e = keys[j] & 0xFFFFFFFF
        v = flat[e]
        k = e // (h * w)
        y = (e // w) % h
        x = e % w
        boxes[j, 0] = x0 + (np.float32(x) + offset[0, y, x]) * cell
        boxes[j, 1] = y0 + (np.float32(y) + offset[1, y, x]) * cell
        boxes[j, 2] = height[0, y, x]
        boxes[j, 3] = np.exp(size[0, y, x])
        boxes[j, 4] = np.exp(size[1, y, x])
        boxes[j, 5] = np.exp(size[2, y, x])
        boxes[j, 6] = np.arctan2(rot[0, y, x], rot[1, y, x])
        if has_vel:
            boxes[j, 7] = vel[0, y, x]
            boxes[j, 8] = vel[1, y, x]
        scores[j] = np.float32(1.0) / (np.float32(1.0) + np.exp(-v)) if sigmoid else v
        labels[j] = k
        valid[j] = True
    return boxes, scores, labels, valid


def _value_sure(threshold: float, sigmoid: bool) -> np.float32:
    """A heatmap value at or above this surely scores >= threshold (the sigmoid need not be
    evaluated): the inverse sigmoid at the threshold plus the same margin as ``_value_cutoff``."""
    if not sigmoid:
        return np.float32(threshold)
    if threshold <= 0:
        return np.float32(-np.inf)
    if threshold >= 0.999:
        return np.float32(np.inf)  # near saturation the margin is below float32 rounding: always test
    return np.float32(np.log(threshold / (1 - threshold)) + 1e-3)


def _value_cutoff(threshold: float, sigmoid: bool) -> np.float32:
    """A heatmap value below this cannot score >= threshold. With the sigmoid: its inverse at the
    threshold, less a margin far wider than float32 rounding of the sigmoid (the exact test runs
    after); thresholds >= 1 are capped where float32 sigmoid saturates."""
    if not sigmoid:
        return np.float32(threshold)
    if threshold <= 0:
        return np.float32(-np.inf)
    t = min(threshold, 1 - 1e-7)
    return np.float32(np.log(t / (1 - t)) - 1e-3)


def _check(heatmap: Any, maps: dict[str, tuple[Any, int]], grid: GridConfig) -> tuple[int, int, int, int]:
    n_cls, h, w = C.check_shape(heatmap, "heatmap", (None, None, None))
    C.check_dtype(heatmap, "heatmap", "float32")
    for name, (m, ch) in maps.items():
        if m is None:
            continue
        C.check_shape(m, name, (ch, h, w))
        C.check_dtype(m, name, "float32")
        C.check_same_device(heatmap, name, m)
    if n_cls < 1 or h < 1 or w < 1 or grid.nx % w or grid.ny % h or grid.nx // w != grid.ny // h:
        raise ShapeError(f"heatmap: expected (classes, H, W) with the grid's {grid.ny} x {grid.nx} cells a whole "
                         f"multiple of (H, W), the same in y and x; got {tuple(heatmap.shape)}")
    return n_cls, h, w, grid.nx // w


def decode_centerpoint(heatmap: Any, offset: Any, height: Any, size: Any, rot: Any, velocity: Any | None, grid: GridConfig,
                       *, top_k: int = 500, score_threshold: float = 0.1, sigmoid: bool = True) -> DecodedBoxes:
    """Decode one frame's CenterPoint head (see the module docstring for the rules).

    heatmap: (classes, H, W) float32 (logits when ``sigmoid``, else scores); offset: (2, H, W) x y
    sub-cell offsets; height: (1, H, W) box centre z; size: (3, H, W) log l w h; rot: (2, H, W)
    sin cos of yaw; velocity: (2, H, W) vx vy or None. All float32 on one device.
    Returns ``DecodedBoxes`` with ``top_k`` rows (valid rows first, sorted by score).
    """
    maps = {"offset": (offset, 2), "height": (height, 1), "size": (size, 3), "rot": (rot, 2), "velocity": (velocity, 2)}
    _, _, _, stride = _check(heatmap, maps, grid)
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k: expected a positive integer, got {top_k!r}")
    x0, y0, cell = np.float32(grid.x_min), np.float32(grid.y_min), np.float32(grid.cell_m * stride)
    if C.is_cuda(heatmap):
        return _decode_cuda(heatmap, offset, height, size, rot, velocity, int(top_k), float(score_threshold), sigmoid,
                            x0, y0, cell)
    has_vel = velocity is not None
    vel = C.as_numpy(velocity) if has_vel else np.zeros((2, 1, 1), np.float32)
    out = _decode(C.as_numpy(heatmap), C.as_numpy(offset), C.as_numpy(height), C.as_numpy(size), C.as_numpy(rot), vel,
                  has_vel, int(top_k), np.float32(score_threshold), _value_cutoff(float(score_threshold), bool(sigmoid)),
                  _value_sure(float(score_threshold), bool(sigmoid)), bool(sigmoid), x0, y0, cell)
    return DecodedBoxes(*(C.like_input(heatmap, a) for a in out))


def _decode_cuda(heatmap: Any, offset: Any, height: Any, size: Any, rot: Any, velocity: Any | None, top_k: int,
                 threshold: float, sigmoid: bool, x0: np.float32, y0: np.float32, cell: np.float32) -> DecodedBoxes:
    import torch

    from perception.ops import _cuda as K

    heat = heatmap.contiguous()
    n_cls, h, w = heat.shape
    total = heat.numel()
    dev = heat.device
    keys = torch.empty(total, dtype=torch.int64, device=dev)
    T = 256
    K.launch("centerpoint_decode", "decode_peak_keys", K.blocks(total, T), T,
             (K.ptr(heat), np.int32(n_cls), np.int32(h), np.int32(w), K.ptr(keys)), heat)
    k_eff = min(top_k, total)
    # Keys are unique (the flat index is in the low bits), so top-K is well defined; sorted=True
    # gives the rows in descending key order = descending value, then ascending index.
    top = torch.topk(keys, k_eff, sorted=True).values
    boxes = torch.empty((top_k, 9), dtype=torch.float32, device=dev)
    scores = torch.empty(top_k, dtype=torch.float32, device=dev)
    labels = torch.empty(top_k, dtype=torch.int32, device=dev)
    valid = torch.empty(top_k, dtype=torch.bool, device=dev)
    maps = [m.contiguous() for m in (offset, height, size, rot)]
    vel = velocity.contiguous() if velocity is not None else maps[0]  # never read when has_vel is 0
    K.launch("centerpoint_decode", "decode_boxes", K.blocks(top_k, 128), 128,
             (K.ptr(top), np.int32(k_eff), np.int32(top_k), K.ptr(heat), *(K.ptr(m) for m in maps), K.ptr(vel),
              np.int32(velocity is not None), np.int32(h), np.int32(w), np.float32(threshold), np.int32(sigmoid), x0, y0,
              cell, K.ptr(boxes), K.ptr(scores), K.ptr(labels), K.ptr(valid)), heat)
    return DecodedBoxes(boxes, scores, labels, valid)
