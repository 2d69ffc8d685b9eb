"""Pure-numpy oracles of the ops: short, vectorised, written from the definitions in the op modules'
docstrings and nothing else. The tests check the numba versions against them on every run;
tools/bench_kernels.py times them as the "numpy" implementation.

They work in float64 where that is the obvious way (means, bilinear weights), so comparisons
with the float32 ops use small tolerances.
"""

from __future__ import annotations

import numpy as np

from perception.config import GridConfig

__all__ = [
    "camera_bev_oracle",
    "decode_oracle",
    "iou_one_to_many",
    "nms_oracle",
    "pillarize_oracle",
    "preprocess_oracle",
    "radar_oracle",
    "scatter_oracle",
]


def _cells(xyz: np.ndarray, grid: GridConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ix, iy, inside) of each point: the grid's half-open box, cells by floor in float64."""
    p = xyz.astype(np.float64)
    with np.errstate(invalid="ignore"):
        fx = (p[:, 0] - grid.x_min) / grid.cell_m
        fy = (p[:, 1] - grid.y_min) / grid.cell_m
        inside = (fx >= 0) & (fx < grid.nx) & (fy >= 0) & (fy < grid.ny) & (p[:, 2] >= grid.z_min) & (p[:, 2] < grid.z_max)
    ix = np.where(inside, fx, 0).astype(np.int64)
    iy = np.where(inside, fy, 0).astype(np.int64)
    return ix, iy, inside


def pillarize_oracle(points: np.ndarray, grid: GridConfig, max_points: int, max_pillars: int) -> dict:
    """features (P, M, F+5), coords (P, 2), num_points (P,), counts (6,) as pillarize defines them."""
    n, f = points.shape
    finite = np.isfinite(points).all(axis=1)
    ix, iy, inside = _cells(points[:, :3], grid)
    valid = np.flatnonzero(finite & inside)
    cell = iy[valid] * grid.nx + ix[valid]
    # Pillars numbered by their first point: unique cells ordered by first occurrence.
    uniq, first, inverse = np.unique(cell, return_index=True, return_inverse=True)
    by_first = np.argsort(first, kind="stable")
    number = np.empty(len(uniq), np.int64)
    number[by_first] = np.arange(len(uniq))
    pid = number[inverse]  # pillar of each valid point
    # Slot = how many earlier points share the pillar.
    order = np.argsort(pid, kind="stable")
    run_start = np.searchsorted(pid[order], pid[order], side="left")
    slot = np.empty(len(pid), np.int64)
    slot[order] = np.arange(len(pid)) - run_start
    in_kept_pillar = pid < max_pillars
    kept = in_kept_pillar & (slot < max_points)
    n_pillars = min(len(uniq), max_pillars)
    src = points[valid[kept]].astype(np.float64)
    kp, ks = pid[kept], slot[kept]
    num_points = np.bincount(kp, minlength=n_pillars).astype(np.int32)
    mean = np.stack([np.bincount(kp, weights=src[:, k], minlength=n_pillars) for k in range(3)], axis=1)
    mean /= np.maximum(num_points, 1)[:, None]
    coords = np.stack([uniq[by_first] // grid.nx, uniq[by_first] % grid.nx], axis=1)[:n_pillars].astype(np.int32)
    centre = np.stack([grid.x_min + (coords[:, 1] + 0.5) * grid.cell_m, grid.y_min + (coords[:, 0] + 0.5) * grid.cell_m], axis=1)
    feats = np.zeros((n_pillars, max_points, f + 5), np.float64)
    feats[kp, ks, :f] = src
    feats[kp, ks, f:f + 3] = src[:, :3] - mean[kp]
    feats[kp, ks, f + 3:f + 5] = src[:, :2] - centre[kp]
    counts = np.array([
        n_pillars,
        int((~finite).sum()),
        int((finite & ~inside).sum()),
        int((in_kept_pillar & (slot >= max_points)).sum()),
        max(len(uniq) - max_pillars, 0),
        int((~in_kept_pillar).sum()),
    ], np.int64)
    return {"features": feats, "coords": coords, "num_points": num_points, "counts": counts}


def scatter_oracle(features: np.ndarray, coords: np.ndarray, grid: GridConfig) -> np.ndarray:
    """(C, ny, nx): out[:, iy, ix] = features[row]; rows outside the grid skipped (no duplicates)."""
    ok = (coords[:, 0] >= 0) & (coords[:, 0] < grid.ny) & (coords[:, 1] >= 0) & (coords[:, 1] < grid.nx)
    out = np.zeros((features.shape[1], grid.ny, grid.nx), features.dtype)
    out[:, coords[ok, 0], coords[ok, 1]] = features[ok].T
    return out


def _bilinear_axis(n_out: int, crop: int, resized: int, src: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source index pairs and weights along one axis, OpenCV INTER_LINEAR with half-pixel centres."""
    r = np.arange(n_out) + crop  # index in the resized image
    pos = (r + 0.5) * src / resized - 0.5
    i0 = np.floor(pos).astype(np.int64)
    wt = pos - i0
    lo = i0 < 0  # before the first pixel centre: the border pixel
    wt[lo], i0[lo] = 0.0, 0
    hi = i0 >= src - 1  # past the last pixel centre: the border pixel
    wt[hi], i0[hi] = 0.0, src - 1
    return i0, np.minimum(i0 + 1, src - 1), wt, (r >= 0) & (r < resized)


def preprocess_oracle(images: np.ndarray, transforms: list, out_hw: tuple[int, int]) -> np.ndarray:
    """(N, 3, out_h, out_w) float64: resize + crop + normalise + CHW, from the definitions."""
    n, h, w, _ = images.shape
    out = np.zeros((n, 3, *out_hw))
    for k, t in enumerate(transforms):
        x0, x1, wx, okx = _bilinear_axis(out_hw[1], t.crop_xy[0], t.resize_wh[0], w)
        y0, y1, wy, oky = _bilinear_axis(out_hw[0], t.crop_xy[1], t.resize_wh[1], h)
        img = images[k].astype(np.float64)
        top = img[y0][:, x0] * (1 - wx)[None, :, None] + img[y0][:, x1] * wx[None, :, None]
        bot = img[y1][:, x0] * (1 - wx)[None, :, None] + img[y1][:, x1] * wx[None, :, None]
        v = top * (1 - wy)[:, None, None] + bot * wy[:, None, None]
        v = (v - np.array(t.mean)) / np.array(t.std)
        v[~(oky[:, None] & okx[None, :])] = 0.0
        out[k] = v.transpose(2, 0, 1)
    return out


def decode_oracle(heat: np.ndarray, offset: np.ndarray, height: np.ndarray, size: np.ndarray, rot: np.ndarray,
                  vel: np.ndarray | None, grid: GridConfig, top_k: int, threshold: float, sigmoid: bool) -> dict:
    """CenterPoint decode from the definitions: 3x3 max filter (non-finite ignored), top-K by value
    then index, threshold on the score, boxes from the maps."""
    n_cls, h, w = heat.shape
    cell = grid.cell_m * (grid.nx // w)
    finite = np.isfinite(heat)
    padded = np.pad(np.where(finite, heat, -np.inf), ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    neighbourhood_max = np.max([padded[:, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)], axis=0)
    v = heat.astype(np.float64)
    score = 1 / (1 + np.exp(-v)) if sigmoid else v
    with np.errstate(invalid="ignore"):
        cand = np.flatnonzero(finite & (heat >= neighbourhood_max) & (score >= threshold))
    cand = cand[np.lexsort((cand, -v.ravel()[cand]))][:top_k]  # value descending, then index
    k, y, x = np.unravel_index(cand, heat.shape)
    vx, vy = (vel[0, y, x], vel[1, y, x]) if vel is not None else (np.zeros(len(cand)),) * 2
    boxes = np.zeros((top_k, 9))
    boxes[:len(cand)] = np.stack([
        grid.x_min + (x + offset[0, y, x]) * cell, grid.y_min + (y + offset[1, y, x]) * cell, height[0, y, x],
        np.exp(size[0, y, x]), np.exp(size[1, y, x]), np.exp(size[2, y, x]), np.arctan2(rot[0, y, x], rot[1, y, x]), vx, vy,
    ], axis=1)
    scores = np.zeros(top_k)
    scores[:len(cand)] = score.ravel()[cand]
    labels = np.full(top_k, -1)
    labels[:len(cand)] = k
    return {"boxes": boxes, "scores": scores, "labels": labels, "valid": labels >= 0}


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """(M, 4, 2) counter-clockwise corners of x y z l w h yaw boxes, float64."""
    b = boxes.astype(np.float64)
    local = np.array([[0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]])[None] * b[:, None, 3:5]
    c, s = np.cos(b[:, 6])[:, None], np.sin(b[:, 6])[:, None]
    return np.stack([b[:, None, 0] + local[..., 0] * c - local[..., 1] * s,
                     b[:, None, 1] + local[..., 0] * s + local[..., 1] * c], axis=-1)


def _side(p: np.ndarray, e0: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Cross product of the edge direction d (from e0) with p - e0: >= 0 when p is left of (inside) a CCW edge."""
    return d[0] * (p[..., 1] - e0[1]) - d[1] * (p[..., 0] - e0[0])


def iou_one_to_many(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Rotated IoU in x-y of one box against each of ``others``: Sutherland-Hodgman clipping of
    every other box's polygon by the four edges of ``box`` (all rows at once), shoelace area."""
    poly = box_corners(others)  # (B, 4, 2), grows to at most 8 vertices
    count = np.full(len(others), 4)
    rows = np.arange(len(others))
    edges = box_corners(box[None])[0]
    for e in range(4):
        e0, d = edges[e], edges[(e + 1) % 4] - edges[e]
        out = np.zeros((len(others), 12, 2))
        n_out = np.zeros(len(others), np.int64)
        for k in range(poly.shape[1]):
            live = k < count
            cur = poly[:, k]
            prev = poly[rows, (k - 1) % np.maximum(count, 1)]
            sc, sp = _side(cur, e0, d), _side(prev, e0, d)
            with np.errstate(invalid="ignore", divide="ignore"):
                cross = prev + (sp / (sp - sc))[:, None] * (cur - prev)
            for emit, point in ((live & ((sc >= 0) != (sp >= 0)), cross), (live & (sc >= 0), cur)):
                out[rows[emit], n_out[emit]] = point[emit]
                n_out += emit
        poly, count = out, n_out
    nxt = poly[rows[:, None], (np.arange(poly.shape[1])[None] + 1) % np.maximum(count, 1)[:, None]]
    terms = poly[..., 0] * nxt[..., 1] - nxt[..., 0] * poly[..., 1]
    inter = 0.5 * np.abs(np.where(np.arange(poly.shape[1])[None] < count[:, None], terms, 0).sum(axis=1))
    union = box[3] * box[4] + others[:, 3] * others[:, 4] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms_oracle(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, valid: np.ndarray, threshold: np.ndarray,
               circle: bool) -> np.ndarray:
    """Greedy per-class NMS: visit by score (stable), keep the unsuppressed, suppress same-label
    later boxes with IoU > thr (or centre distance <= thr)."""
    thr = np.atleast_1d(threshold)
    ok = valid & np.isfinite(scores) & np.isfinite(boxes[:, :7]).all(axis=1)
    if len(thr) > 1:
        ok &= (labels >= 0) & (labels < len(thr))
    order = np.argsort(np.where(ok, -scores, np.inf), kind="stable")
    keep = np.zeros(len(boxes), bool)
    alive = ok.copy()
    for pos, a in enumerate(order):
        if not alive[a]:
            continue
        keep[a] = True
        rest = order[pos + 1:]
        rest = rest[alive[rest] & (labels[rest] == labels[a])]
        t = thr[0] if len(thr) == 1 else thr[labels[a]]
        if circle:
            hit = np.hypot(*(boxes[rest, :2] - boxes[a, :2]).T.astype(np.float64)) <= t
        else:
            hit = iou_one_to_many(boxes[a], boxes[rest]) > t
        alive[rest[hit]] = False
    return keep


def camera_bev_oracle(features: np.ndarray, ego_T_cameras: np.ndarray, cameras: list, grid: GridConfig, heights: list,
                      bev_stride: int) -> np.ndarray:
    """(C, Z, ny, nx): each cell centre at each height projected into each camera (calib), sampled
    bilinearly with the coordinate clamped to the outer pixel centres, averaged over the cameras
    that see it (0 where none)."""
    n, c, h, w = features.shape
    cell = grid.cell_m * bev_stride
    ny, nx = grid.ny // bev_stride, grid.nx // bev_stride
    z, y, x = np.meshgrid(heights, grid.y_min + (np.arange(ny) + 0.5) * cell, grid.x_min + (np.arange(nx) + 0.5) * cell,
                          indexing="ij")
    pts = np.stack([x.ravel(), y.ravel(), z.ravel(), np.ones(x.size)], axis=1)
    total = np.zeros((c, len(pts)))
    count = np.zeros(len(pts))
    for k, cam in enumerate(cameras):
        uv, seen = cam.project((np.linalg.inv(ego_T_cameras[k]) @ pts.T).T[:, :3], min_depth=0.1)
        u = np.clip(np.nan_to_num(uv[:, 0]), 0, w - 1)
        v = np.clip(np.nan_to_num(uv[:, 1]), 0, h - 1)
        x0, y0 = np.floor(u).astype(int), np.floor(v).astype(int)
        x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
        fx, fy = u - x0, v - y0
        f = features[k]
        sample = (f[:, y0, x0] * (1 - fx) * (1 - fy) + f[:, y0, x1] * fx * (1 - fy)
                  + f[:, y1, x0] * (1 - fx) * fy + f[:, y1, x1] * fx * fy)
        total += np.where(seen, sample, 0.0)
        count += seen
    return (total / np.maximum(count, 1)).reshape(c, len(heights), ny, nx)


def radar_oracle(points: np.ndarray, grid: GridConfig, bev_stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(5, ny, nx) occupancy, max rcs, mean vx vy, min time lag per cell (0 where empty), and the
    dropped counts (non-finite, outside), with numpy's unbuffered ufunc.at reductions."""
    nx, ny, cell = grid.nx // bev_stride, grid.ny // bev_stride, grid.cell_m * bev_stride
    finite = np.isfinite(points[:, [0, 1, 3, 4, 5, 6]]).all(axis=1)
    with np.errstate(invalid="ignore"):
        fx = (points[:, 0].astype(np.float64) - grid.x_min) / cell
        fy = (points[:, 1].astype(np.float64) - grid.y_min) / cell
        inside = finite & (fx >= 0) & (fx < nx) & (fy >= 0) & (fy < ny)
    p = points[inside]
    c = fy[inside].astype(np.int64) * nx + fx[inside].astype(np.int64)
    n = np.bincount(c, minlength=nx * ny)
    rcs = np.full(nx * ny, -np.inf)
    lag = np.full(nx * ny, np.inf)
    np.maximum.at(rcs, c, p[:, 3])
    np.minimum.at(lag, c, p[:, 6])
    occ = n > 0
    bev = np.zeros((5, nx * ny))
    bev[0] = occ
    bev[1, occ], bev[4, occ] = rcs[occ], lag[occ]
    bev[2, occ] = np.bincount(c, p[:, 4], minlength=nx * ny)[occ] / n[occ]
    bev[3, occ] = np.bincount(c, p[:, 5], minlength=nx * ny)[occ] / n[occ]
    return bev.reshape(5, ny, nx), np.array([(~finite).sum(), (finite & ~inside).sum()])
