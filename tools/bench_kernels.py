#!/usr/bin/env python3
"""Time the pre/post-processing ops at nuScenes scale, side by side in one run, and write JSON.

    .venv/bin/python tools/bench_kernels.py --device cpu  --json out/bench_cpu.json
    .venv/bin/python tools/bench_kernels.py --device cuda --json out/bench_cuda.json

CPU: the numba op against a straightforward numpy implementation (the oracles of the tests,
tests/perception/ops/oracles.py) and, for the images, against OpenCV (cv2.resize + normalise per
camera). CUDA: the kernel against the same op written with plain torch tensor operations. Each
figure is the median of many runs after warm-up: ``perf_counter`` on the CPU, CUDA events on the GPU.
GB/s = (bytes of the inputs read + bytes of the outputs written) / median time: a lower bound on
the traffic, printed next to the device's copy bandwidth measured in the same run (row
``device_copy``: read + write of a 256 MiB buffer). NMS is compute-bound: no GB/s.

Inputs: nuScenes' demo keyframe from ../shared/realdata (or $BEVFUSE_REALDATA) when present: the
six 1600x900 camera images and their calibration, and the LIDAR_TOP sweep repeated as 10 sweeps
(0.6 m of ego motion each, 2 cm jitter, time lag column) = 346,880 points; otherwise synthetic
data of the same sizes. JSON: {"device": str, "rows": [{"op", "impl", "median_ms", "gbps"}, ...]}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from calib import se3  # noqa: E402
from calib.camera import PinholeCamera  # noqa: E402
from perception.config import GridConfig  # noqa: E402
from perception.ops import (  # noqa: E402
    ImageTransform,
    build_camera_bev_lut,
    decode_centerpoint,
    feature_camera,
    gather_camera_bev,
    nms_bev,
    pillarize,
    preprocess_images,
    rasterize_radar,
    scatter_pillars,
)

CAMERAS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_FRONT_LEFT")
OUT_HW = (256, 704)  # BEVFusion's network input
FEATURE_STRIDE = 8
BEV_STRIDE = 4  # camera BEV and head at 0.8 m: 128 x 128 on the default grid
HEIGHTS = (-1.0, 0.0, 1.0, 2.0)
PILLAR_CHANNELS = 64
CAMERA_CHANNELS = 80
N_CLASSES = 10
TOP_K = 500
N_BOXES = 4000
N_RADAR = 5000

# Targets of issue 5: (fast impl, baseline impl, minimum speed-up).
TARGETS = {"cpu": {"numpy": 5.0, "opencv": 1.0}, "cuda": {"torch": 3.0}}
CUDA_TARGET_10X = ("pillarize", "nms_rotated", "nms_circle")


@dataclass
class Case:
    op: str
    impl: str
    fn: Callable[[], object]
    nbytes: int | None


def _realdata() -> Path | None:
    root = Path(os.environ.get("BEVFUSE_REALDATA", REPO.parent / "shared" / "realdata")) / "nuscenes_demo"
    return root if (root / "samples" / "LIDAR_TOP").is_dir() else None


def _nuscenes_rig(root: Path) -> tuple[np.ndarray, list[PinholeCamera]]:
    """ego_T_cam and intrinsics of the six cameras from the demo's calibrated_sensor table."""
    meta = root / "v1.0-demo"
    channel = {s["token"]: s["channel"] for s in json.loads((meta / "sensor.json").read_text())}
    calib = {channel[c["sensor_token"]]: c for c in json.loads((meta / "calibrated_sensor.json").read_text())}
    poses = [se3.from_rotation_translation(calib[c]["rotation"], calib[c]["translation"]) for c in CAMERAS]
    cams = [PinholeCamera.from_K(calib[c]["camera_intrinsic"], 1600, 900) for c in CAMERAS]
    return np.stack(poses), cams


def _synthetic_rig() -> tuple[np.ndarray, list[PinholeCamera]]:
    ego_R_cam = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    yaws = np.deg2rad([0, -55, -110, 180, 110, 55])
    poses = [se3.from_rotation_translation(se3.rotation_z(y)[:3, :3] @ ego_R_cam, [1.0 * np.cos(y), 0.5 * np.sin(y), 1.6])
             for y in yaws]
    return np.stack(poses), [PinholeCamera(1600, 900, 1266.4, 1266.4, 816.3, 491.5)] * 6


def make_inputs(seed: int = 0) -> dict:
    """Every op's inputs at nuScenes scale, as numpy arrays."""
    import cv2

    rng = np.random.default_rng(seed)
    grid = GridConfig()
    root = _realdata()
    if root is not None:
        images = np.stack([cv2.cvtColor(cv2.imread(str(next((root / "samples" / c).glob("*.jpg")))), cv2.COLOR_BGR2RGB)
                           for c in CAMERAS])
        sweep = np.fromfile(next((root / "samples" / "LIDAR_TOP").glob("*.bin")), np.float32).reshape(-1, 5)
        poses, cams = _nuscenes_rig(root)
        source = "nuScenes demo keyframe (realdata)"
    else:
        images = rng.integers(0, 256, size=(6, 900, 1600, 3), dtype=np.uint8)
        r = np.exp(rng.uniform(np.log(1.5), np.log(70), 34688))  # dense near the car, as a spinning LiDAR
        th = rng.uniform(-np.pi, np.pi, 34688)
        sweep = np.stack([r * np.cos(th), r * np.sin(th), rng.uniform(-2, 1, 34688), rng.uniform(0, 100, 34688),
                          np.zeros(34688)], 1).astype(np.float32)
        poses, cams = _synthetic_rig()
        source = "synthetic"
    sweeps = []
    for k in range(10):  # 10 sweeps as the synchronizer accumulates them: ego motion, jitter, time lag
        s = sweep.copy()
        s[:, 0] += 0.6 * k
        s[:, :3] += rng.normal(0, 0.02, (len(s), 3))
        s[:, 4] = 0.05 * k
        sweeps.append(s)
    points = np.ascontiguousarray(np.concatenate(sweeps), np.float32)
    transform = ImageTransform.fit((900, 1600), OUT_HW, 0.48)
    pillars = pillarize(points, grid)
    p = len(pillars.coords)
    feature_cams = [feature_camera(c, transform, OUT_HW, FEATURE_STRIDE) for c in cams]
    lut = build_camera_bev_lut(poses, feature_cams, grid, HEIGHTS, bev_stride=BEV_STRIDE)
    hf, wf = lut.feature_hw
    radar = np.zeros((N_RADAR, 7), np.float32)
    radar[:, :2] = rng.uniform(-60, 60, (N_RADAR, 2))
    radar[:, 3] = rng.normal(5, 8, N_RADAR)
    radar[:, 4:6] = rng.normal(0, 4, (N_RADAR, 2))
    radar[:, 6] = rng.uniform(0, 0.5, N_RADAR)
    hh, hw = grid.ny // BEV_STRIDE, grid.nx // BEV_STRIDE
    head = [rng.normal(-4, 1.5, (N_CLASSES, hh, hw)), rng.uniform(0, 1, (2, hh, hw)), rng.normal(0, 1, (1, hh, hw)),
            rng.normal(0.5, 0.5, (3, hh, hw)), rng.normal(0, 1, (2, hh, hw)), rng.normal(0, 3, (2, hh, hw))]
    head = [m.astype(np.float32) for m in head]
    # Boxes as a decoder hands them to NMS: clusters of near-duplicates around objects.
    centres = rng.uniform(-50, 50, (N_BOXES // 8, 2))
    boxes = np.zeros((N_BOXES, 9), np.float32)
    boxes[:, :2] = np.repeat(centres, 8, axis=0) + rng.normal(0, 0.4, (N_BOXES, 2))
    boxes[:, 3:6] = np.repeat(rng.uniform([3.5, 1.6, 1.4], [5.0, 2.2, 1.9], (N_BOXES // 8, 3)), 8, axis=0)
    boxes[:, 6] = np.repeat(rng.uniform(-np.pi, np.pi, N_BOXES // 8), 8) + rng.normal(0, 0.1, N_BOXES)
    return {
        "grid": grid, "source": source, "images": images, "transform": transform, "points": points,
        "pillar_features": rng.normal(size=(p, PILLAR_CHANNELS)).astype(np.float32), "coords": pillars.coords,
        "lut": lut, "cams": feature_cams, "poses": poses,
        "camera_features": rng.normal(size=(6, CAMERA_CHANNELS, hf, wf)).astype(np.float32),
        "radar": radar, "head": head, "boxes": boxes, "scores": rng.uniform(0, 1, N_BOXES).astype(np.float32),
        "labels": np.repeat(rng.integers(0, N_CLASSES, N_BOXES // 8), 8).astype(np.int32),
    }


def _nbytes(*arrays: object) -> int:
    return int(sum(a.nbytes if hasattr(a, "nbytes") else a.numel() * a.element_size() for a in arrays))


def cpu_cases(x: dict) -> list[Case]:
    import cv2

    from tests.perception.ops import oracles as O

    g, t = x["grid"], x["transform"]
    imgs, pts = x["images"], x["points"]
    cams_t = [t] * len(imgs)
    out_img = np.empty((6, 3, *OUT_HW), np.float16)
    mean, inv_std = np.array(t.mean, np.float32), 1 / np.array(t.std, np.float32)
    (cx, cy), (oh, ow) = t.crop_xy, OUT_HW

    def opencv_images() -> np.ndarray:
        out = np.empty((len(imgs), 3, oh, ow), np.float16)
        for k, im in enumerate(imgs):
            r = cv2.resize(im, t.resize_wh, interpolation=cv2.INTER_LINEAR)[cy:cy + oh, cx:cx + ow]
            out[k] = ((r.astype(np.float32) - mean) * inv_std).transpose(2, 0, 1)
        return out

    lut, feats = x["lut"], x["camera_features"]
    pf, coords = x["pillar_features"], x["coords"]
    head, radar = x["head"], x["radar"]
    b, s, lab = x["boxes"], x["scores"], x["labels"]
    ok = np.ones(len(b), bool)
    bev_out = np.empty((PILLAR_CHANNELS, g.ny, g.nx), np.float32)
    bev_buf = np.empty_like(bev_out)
    ok_rows = coords[:, 0] >= 0

    def numpy_scatter_into() -> np.ndarray:  # the in-place numpy version: the same work minus page faults
        bev_buf.fill(0)
        bev_buf[:, coords[ok_rows, 0], coords[ok_rows, 1]] = pf[ok_rows].T
        return bev_buf

    return [
        Case("image_preprocess", "numba", lambda: preprocess_images(imgs, t, OUT_HW, dtype="float16"), _nbytes(imgs, out_img)),
        Case("image_preprocess", "opencv", opencv_images, _nbytes(imgs, out_img)),
        Case("image_preprocess", "numpy", lambda: O.preprocess_oracle(imgs, cams_t, OUT_HW).astype(np.float16),
             _nbytes(imgs, out_img)),
        Case("pillarize", "numba", lambda: pillarize(pts, g), None),
        Case("pillarize", "numpy", lambda: O.pillarize_oracle(pts, g, 32, 40000), None),
        Case("pillar_scatter", "numba", lambda: scatter_pillars(pf, coords, g), _nbytes(pf, coords, bev_out)),
        Case("pillar_scatter", "numpy", lambda: O.scatter_oracle(pf, coords, g), _nbytes(pf, coords, bev_out)),
        Case("pillar_scatter_out", "numba", lambda: scatter_pillars(pf, coords, g, out=bev_buf), _nbytes(pf, coords, bev_out)),
        Case("pillar_scatter_out", "numpy", numpy_scatter_into, _nbytes(pf, coords, bev_out)),
        Case("camera_bev_gather", "numba", lambda: gather_camera_bev(feats, lut), None),
        Case("camera_bev_gather", "numpy",
             lambda: O.camera_bev_oracle(feats, x["poses"], x["cams"], g, list(HEIGHTS), BEV_STRIDE), None),
        Case("radar_raster", "numba", lambda: rasterize_radar(radar, g), None),
        Case("radar_raster", "numpy", lambda: O.radar_oracle(radar, g, 1), None),
        Case("centerpoint_decode", "numba", lambda: decode_centerpoint(*head, g, top_k=TOP_K), _nbytes(*head)),
        Case("centerpoint_decode", "numpy", lambda: O.decode_oracle(*head, g, TOP_K, 0.1, True), _nbytes(*head)),
        Case("nms_rotated", "numba", lambda: nms_bev(b, s, lab, threshold=0.2), None),
        Case("nms_rotated", "numpy", lambda: O.nms_oracle(b, s, lab, ok, np.float32(0.2), False), None),
        Case("nms_circle", "numba", lambda: nms_bev(b, s, lab, method="circle", threshold=1.0), None),
        Case("nms_circle", "numpy", lambda: O.nms_oracle(b, s, lab, ok, np.float32(1.0), True), None),
    ]


# ---- CUDA: the kernels against the same ops in plain torch -----------------------------------------


def _torch_preprocess(imgs, t: ImageTransform, dtype):
    import torch
    import torch.nn.functional as F

    (rw, rh), (cx, cy), (oh, ow) = t.resize_wh, t.crop_xy, OUT_HW
    r = F.interpolate(imgs.permute(0, 3, 1, 2).float(), size=(rh, rw), mode="bilinear", align_corners=False)
    mean = torch.tensor(t.mean, device=imgs.device)[:, None, None]
    std = torch.tensor(t.std, device=imgs.device)[:, None, None]
    return ((r[:, :, cy:cy + oh, cx:cx + ow] - mean) / std).to(dtype)


def _torch_pillarize(pts, g: GridConfig, m: int = 32, cap: int = 40000):
    """torch.unique + scatter_reduce pillarization with the op's rules (order by first point)."""
    import torch

    n, f = pts.shape
    fx = ((pts[:, 0].double() - g.x_min) / g.cell_m)
    fy = ((pts[:, 1].double() - g.y_min) / g.cell_m)
    ok = torch.isfinite(pts).all(1) & (fx >= 0) & (fx < g.nx) & (fy >= 0) & (fy < g.ny) \
        & (pts[:, 2] >= g.z_min) & (pts[:, 2] < g.z_max)
    idx = torch.nonzero(ok).squeeze(1)
    cell = fy[idx].long() * g.nx + fx[idx].long()
    uniq, inv = torch.unique(cell, return_inverse=True)
    first = torch.full((len(uniq),), n, device=pts.device).scatter_reduce(0, inv, idx, "amin")
    rank = torch.empty_like(first)
    rank[torch.argsort(first)] = torch.arange(len(first), device=pts.device)
    pid = rank[inv]
    order = torch.sort(pid, stable=True).indices
    counts = torch.bincount(pid, minlength=len(uniq))
    start = torch.cumsum(counts, 0) - counts
    slot = torch.empty_like(pid)
    slot[order] = torch.arange(len(pid), device=pts.device) - start[pid[order]]
    keep = (pid < cap) & (slot < m)
    kp, ks, src = pid[keep], slot[keep], pts[idx[keep]]
    feats = torch.zeros((cap, m, f + 5), device=pts.device)
    num = torch.bincount(kp, minlength=cap)[:cap]
    mean = torch.zeros((cap, 3), device=pts.device).index_add_(0, kp, src[:, :3]) / num.clamp(min=1)[:, None]
    centre_x = g.x_min + ((cell[keep] % g.nx).float() + 0.5) * g.cell_m
    centre_y = g.y_min + ((cell[keep] // g.nx).float() + 0.5) * g.cell_m
    feats[kp, ks] = torch.cat([src, src[:, :3] - mean[kp], (src[:, 0] - centre_x)[:, None], (src[:, 1] - centre_y)[:, None]], 1)
    return feats, num


def _torch_scatter(feats, coords, g: GridConfig):
    import torch

    out = torch.zeros((feats.shape[1], g.ny * g.nx), dtype=feats.dtype, device=feats.device)
    ok = coords[:, 0] >= 0
    out[:, coords[ok, 0].long() * g.nx + coords[ok, 1].long()] = feats[ok].T
    return out.view(-1, g.ny, g.nx)


def _torch_gather_grids(x: dict, device: str = "cuda"):
    """Per camera, the grid_sample grid (1, Z*ny, nx, 2) in [-1, 1] (align_corners=True) and the
    validity of each sample: the same projection as the table, laid out for grid_sample."""
    import torch

    from perception.ops import bev_cell_centres

    lut = x["lut"]
    z, ny, nx = lut.shape
    pts = bev_cell_centres(x["grid"], HEIGHTS, BEV_STRIDE)
    hf, wf = lut.feature_hw
    grids, valid = [], []
    for cam, pose in zip(x["cams"], x["poses"]):
        uv, seen = cam.project(se3.transform_points(se3.invert(pose), pts), min_depth=0.1)
        uv = np.nan_to_num(uv)
        g = np.stack([uv[:, 0] / (wf - 1) * 2 - 1, uv[:, 1] / (hf - 1) * 2 - 1], 1).reshape(1, z * ny, nx, 2)
        grids.append(torch.from_numpy(g.astype(np.float32)).to(device))
        valid.append(torch.from_numpy(seen.reshape(1, 1, z * ny, nx).astype(np.float32)).to(device))
    return grids, valid


def _torch_gather(feats, grids, valid):
    import torch.nn.functional as F

    acc, count = 0, 0
    for k in range(len(grids)):
        acc = acc + F.grid_sample(feats[k:k + 1], grids[k], mode="bilinear", padding_mode="border", align_corners=True) * valid[k]
        count = count + valid[k]
    return acc / count.clamp(min=1)


def _torch_radar(pts, g: GridConfig):
    import torch

    fx = (pts[:, 0].double() - g.x_min) / g.cell_m
    fy = (pts[:, 1].double() - g.y_min) / g.cell_m
    ok = torch.isfinite(pts[:, [0, 1, 3, 4, 5, 6]]).all(1) & (fx >= 0) & (fx < g.nx) & (fy >= 0) & (fy < g.ny)
    p = pts[ok]
    cell = fy[ok].long() * g.nx + fx[ok].long()
    cells = g.ny * g.nx
    n = torch.bincount(cell, minlength=cells)
    occ = (n > 0).float()
    rcs = torch.full((cells,), -torch.inf, device=pts.device).scatter_reduce(0, cell, p[:, 3], "amax")
    lag = torch.full((cells,), torch.inf, device=pts.device).scatter_reduce(0, cell, p[:, 6], "amin")
    v = torch.zeros((2, cells), device=pts.device).index_add_(1, cell, p[:, 4:6].T) / n.clamp(min=1)
    return torch.stack([occ, torch.where(n > 0, rcs, 0), v[0], v[1], torch.where(n > 0, lag, 0)]).view(5, g.ny, g.nx)


def _torch_decode(heat, offset, height, size, rot, vel, g: GridConfig, k: int = TOP_K, thr: float = 0.1):
    import torch
    import torch.nn.functional as F

    s = torch.sigmoid(heat)
    peak = F.max_pool2d(s[None], 3, 1, 1)[0] == s
    scores, idx = torch.topk((s * peak).flatten(), k)
    hw = heat.shape[1] * heat.shape[2]
    cls, cell = idx // hw, idx % hw
    y, x = cell // heat.shape[2], cell % heat.shape[2]
    step = g.cell_m * BEV_STRIDE
    flat = [m.reshape(m.shape[0], -1)[:, cell] for m in (offset, height, size, rot, vel)]
    boxes = torch.stack([g.x_min + (x + flat[0][0]) * step, g.y_min + (y + flat[0][1]) * step, flat[1][0],
                         *torch.exp(flat[2]), torch.atan2(flat[3][0], flat[3][1]), flat[4][0], flat[4][1]], 1)
    return boxes, scores, cls, scores >= thr


def _torch_corners(b):
    import torch

    c, s = torch.cos(b[:, 6]), torch.sin(b[:, 6])
    lx = torch.tensor([0.5, -0.5, -0.5, 0.5], device=b.device)[None] * b[:, 3:4]
    ly = torch.tensor([0.5, 0.5, -0.5, -0.5], device=b.device)[None] * b[:, 4:5]
    return torch.stack([b[:, :1] + lx * c[:, None] - ly * s[:, None], b[:, 1:2] + lx * s[:, None] + ly * c[:, None]], -1)


def _torch_iou_pairs(a, b):
    """Rotated IoU of box pairs (P, 7+) x (P, 7+): Sutherland-Hodgman on all pairs at once."""
    import torch

    poly, edges = _torch_corners(a), _torch_corners(b)
    p = len(a)
    rows = torch.arange(p, device=a.device)
    count = torch.full((p,), 4, device=a.device)
    for e in range(4):
        e0, d = edges[:, e], edges[:, (e + 1) % 4] - edges[:, e]
        out = torch.zeros((p, 12, 2), device=a.device)
        n_out = torch.zeros(p, dtype=torch.long, device=a.device)
        for k in range(poly.shape[1]):
            live = k < count
            cur, prev = poly[:, k], poly[rows, (k - 1) % count.clamp(min=1)]
            sc = d[:, 0] * (cur[:, 1] - e0[:, 1]) - d[:, 1] * (cur[:, 0] - e0[:, 0])
            sp = d[:, 0] * (prev[:, 1] - e0[:, 1]) - d[:, 1] * (prev[:, 0] - e0[:, 0])
            cross = prev + (sp / (sp - sc)).nan_to_num()[:, None] * (cur - prev)
            for emit, point in ((live & ((sc >= 0) != (sp >= 0)), cross), (live & (sc >= 0), cur)):
                out[rows[emit], n_out[emit]] = point[emit]
                n_out += emit.long()
        poly, count = out, n_out
    k = torch.arange(12, device=a.device)[None]
    nxt = poly[rows[:, None], (k + 1) % count.clamp(min=1)[:, None]]
    terms = poly[..., 0] * nxt[..., 1] - nxt[..., 0] * poly[..., 1]
    inter = 0.5 * torch.where(k < count[:, None], terms, 0).sum(1).abs()
    union = a[:, 3] * a[:, 4] + b[:, 3] * b[:, 4] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), 0)


def _torch_nms(boxes, scores, labels, thr: float, circle: bool):
    """Suppression matrix on the GPU for the same-class pairs that can overlap, greedy walk on the
    host (a sequential loop of tiny tensor ops on the GPU would be slower still)."""
    import torch

    order = torch.sort(-scores, stable=True).indices
    b, lab = boxes[order], labels[order]
    m = len(b)
    d2 = ((b[:, None, :2] - b[None, :, :2]) ** 2).sum(-1)
    reach = 0.5 * torch.hypot(b[:, 3], b[:, 4])
    near = (lab[:, None] == lab[None, :]) & torch.triu(torch.ones((m, m), dtype=torch.bool, device=b.device), 1)
    if circle:
        sup = near & (d2 <= thr * thr)
    else:
        near &= d2 <= (reach[:, None] + reach[None, :]) ** 2
        i, j = torch.nonzero(near, as_tuple=True)
        sup = torch.zeros((m, m), dtype=torch.bool, device=b.device)
        sup[i, j] = _torch_iou_pairs(b[i], b[j]) > thr
    sup = sup.cpu().numpy()
    removed = np.zeros(m, bool)
    keep = np.zeros(m, bool)
    for i in range(m):
        if not removed[i]:
            keep[i] = True
            removed |= sup[i]
    out = torch.zeros(m, dtype=torch.bool, device=b.device)
    out[order[torch.from_numpy(keep).to(b.device)]] = True
    return out


def cuda_cases(x: dict, device: str = "cuda") -> list[Case]:
    """The CUDA rows. ``device="cpu"`` builds the same rows on CPU tensors (the ops then run their
    numba versions): tests/tools/test_bench_kernels.py checks there that each torch baseline
    computes what its op computes."""
    import torch

    g, t = x["grid"], x["transform"]

    def cu(a):
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    imgs, pts = cu(x["images"]), cu(x["points"])
    pf, coords = cu(x["pillar_features"]), cu(x["coords"])
    lut, feats = x["lut"].to(device), cu(x["camera_features"])
    grids, valid = _torch_gather_grids(x, device)
    radar, head = cu(x["radar"]), [cu(m) for m in x["head"]]
    b, s, lab = cu(x["boxes"]), cu(x["scores"]), cu(x["labels"])
    out_img = torch.empty((6, 3, *OUT_HW), dtype=torch.float16)
    bev_out = torch.empty((PILLAR_CHANNELS, g.ny, g.nx))
    bev_buf = torch.empty((PILLAR_CHANNELS, g.ny, g.nx), device=device)
    ok_rows = coords[:, 0] >= 0
    flat = coords[ok_rows, 0].long() * g.nx + coords[ok_rows, 1].long()

    def torch_scatter_into():
        bev_buf.zero_()
        bev_buf.view(PILLAR_CHANNELS, -1)[:, flat] = pf[ok_rows].T
        return bev_buf

    return [
        Case("image_preprocess", "cuda", lambda: preprocess_images(imgs, t, OUT_HW, dtype="float16"), _nbytes(imgs, out_img)),
        Case("image_preprocess", "torch", lambda: _torch_preprocess(imgs, t, torch.float16), _nbytes(imgs, out_img)),
        Case("pillarize", "cuda", lambda: pillarize(pts, g), None),
        Case("pillarize", "torch", lambda: _torch_pillarize(pts, g), None),
        Case("pillar_scatter", "cuda", lambda: scatter_pillars(pf, coords, g), _nbytes(pf, coords, bev_out)),
        Case("pillar_scatter", "torch", lambda: _torch_scatter(pf, coords, g), _nbytes(pf, coords, bev_out)),
        Case("pillar_scatter_out", "cuda", lambda: scatter_pillars(pf, coords, g, out=bev_buf), _nbytes(pf, coords, bev_out)),
        Case("pillar_scatter_out", "torch", torch_scatter_into, _nbytes(pf, coords, bev_out)),
        Case("camera_bev_gather", "cuda", lambda: gather_camera_bev(feats, lut), None),
        Case("camera_bev_gather", "torch", lambda: _torch_gather(feats, grids, valid), None),
        Case("radar_raster", "cuda", lambda: rasterize_radar(radar, g), None),
        Case("radar_raster", "torch", lambda: _torch_radar(radar, g), None),
        Case("centerpoint_decode", "cuda", lambda: decode_centerpoint(*head, g, top_k=TOP_K), _nbytes(*x["head"])),
        Case("centerpoint_decode", "torch", lambda: _torch_decode(*head, g), _nbytes(*x["head"])),
        Case("nms_rotated", "cuda", lambda: nms_bev(b, s, lab, threshold=0.2), None),
        Case("nms_rotated", "torch", lambda: _torch_nms(b, s, lab, 0.2, False), None),
        Case("nms_circle", "cuda", lambda: nms_bev(b, s, lab, method="circle", threshold=1.0), None),
        Case("nms_circle", "torch", lambda: _torch_nms(b, s, lab, 1.0, True), None),
    ]


def _fill_bytes(cases: list[Case], x: dict) -> None:
    """Bytes of the ops whose output size depends on the run (the pillars, the BEV maps)."""
    g, lut = x["grid"], x["lut"]
    z, ny, nx = lut.shape
    sizes = {
        "pillarize": x["points"].nbytes + 40000 * 32 * 10 * 4 + 40000 * 12,
        "camera_bev_gather": x["camera_features"].nbytes + CAMERA_CHANNELS * z * ny * nx * 4
                             + lut.camera.nbytes + lut.pixel.nbytes + lut.weight.nbytes + lut.inv_count.nbytes,
        "radar_raster": x["radar"].nbytes + 5 * g.ny * g.nx * 4,
    }
    for c in cases:
        if c.nbytes is None and c.op in sizes:
            c.nbytes = sizes[c.op]


def _cpu_clock(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def _cuda_clock(fn: Callable[[], object]) -> float:
    import torch

    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    fn()
    b.record()
    b.synchronize()
    return a.elapsed_time(b)


def time_group(fns: list[Callable[[], object]], clock: Callable[[Callable[[], object]], float], warmup: int, repeats: int,
               budget_s: float) -> list[float]:
    """Median ms of each of ``fns`` (the implementations of one op), timed in turn (A B A B ...), so
    that a machine shared with other work loads them alike; at least 3 runs each, then more until
    ``repeats`` each or ``budget_s`` seconds per implementation."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times: list[list[float]] = [[] for _ in fns]
    start = time.perf_counter()
    while len(times[0]) < repeats and (len(times[0]) < 3 or time.perf_counter() - start < budget_s * len(fns)):
        for t, fn in zip(times, fns):
            t.append(clock(fn))
    return [statistics.median(t) for t in times]


def copy_bandwidth(device: str) -> tuple[float, float]:
    """(ms, GB/s) of copying 256 MiB on the device: read + write counted."""
    n = 256 << 20
    if device == "cpu":
        src, dst = np.ones(n, np.uint8), np.empty(n, np.uint8)
        (ms,) = time_group([lambda: np.copyto(dst, src)], _cpu_clock, 2, 20, 5.0)
    else:
        import torch

        src = torch.ones(n, dtype=torch.uint8, device="cuda")
        dst = torch.empty_like(src)
        (ms,) = time_group([lambda: dst.copy_(src)], _cuda_clock, 3, 50, 5.0)
    return ms, 2 * n / ms / 1e6


def run(device: str, warmup: int, repeats: int, budget_s: float, only: set[str] | None) -> dict:
    x = make_inputs()
    if device == "cpu":
        cases, clock = cpu_cases(x), _cpu_clock
        _fill_bytes(cases, x)
        name = f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    else:
        import torch

        cases, clock = cuda_cases(x), _cuda_clock
        _fill_bytes(cases, x)
        name = f"cuda: {torch.cuda.get_device_name()}"
    copy_ms, copy_gbps = copy_bandwidth(device)
    rows = [{"op": "device_copy", "impl": "numpy" if device == "cpu" else "torch", "median_ms": round(copy_ms, 4),
             "gbps": round(copy_gbps, 1)}]
    load = [os.getloadavg()[0]] if hasattr(os, "getloadavg") else []
    for op in dict.fromkeys(c.op for c in cases):
        if only and op not in only:
            continue
        group = [c for c in cases if c.op == op]
        for c, ms in zip(group, time_group([c.fn for c in group], clock, warmup, repeats, budget_s)):
            gbps = None if c.nbytes is None or c.op.startswith("nms") else round(c.nbytes / ms / 1e6, 2)
            rows.append({"op": c.op, "impl": c.impl, "median_ms": round(ms, 4), "gbps": gbps})
            print(f"  {c.op:20s} {c.impl:7s} {ms:10.3f} ms", file=sys.stderr, flush=True)
    if hasattr(os, "getloadavg"):
        load.append(os.getloadavg()[0])
    # "load_avg": the 1-minute load at the start and the end: figures from a shared machine need it.
    return {"device": name, "inputs": x["source"], "load_avg": load, "rows": rows}


def table(result: dict) -> str:
    """One table: each row with its speed-up over the baseline(s) of its op and the target check."""
    rows = result["rows"]
    device = "cpu" if result["device"].startswith("cpu") else "cuda"
    fast = "numba" if device == "cpu" else "cuda"
    by_op: dict[str, dict[str, float]] = {}
    for r in rows:
        by_op.setdefault(r["op"], {})[r["impl"]] = r["median_ms"]
    lines = [f"device: {result['device']}   inputs: {result['inputs']}   load average: {result.get('load_avg')}",
             f"{'op':20s} {'impl':7s} {'median ms':>11s} {'GB/s':>8s}  vs baseline"]
    for r in rows:
        note = ""
        if r["impl"] == fast:
            checks = []
            for base, want in TARGETS[device].items():
                if base in by_op[r["op"]]:
                    want = 10.0 if device == "cuda" and r["op"] in CUDA_TARGET_10X else want
                    x = by_op[r["op"]][base] / r["median_ms"]
                    checks.append(f"{x:6.1f}x {base} (target {want:g}x: {'ok' if x >= want else 'MISSED'})")
            note = "; ".join(checks)
        gbps = "-" if r["gbps"] is None else f"{r['gbps']:.1f}"
        lines.append(f"{r['op']:20s} {r['impl']:7s} {r['median_ms']:11.3f} {gbps:>8s}  {note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=50, help="at most this many timed runs per row")
    ap.add_argument("--budget", type=float, default=4.0, help="seconds per row after the first 3 runs")
    ap.add_argument("--ops", help="comma-separated subset of ops")
    args = ap.parse_args(argv)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("--device cuda: torch sees no CUDA GPU (a CPU build of torch, or no driver)", file=sys.stderr)
            return 2
    result = run(args.device, args.warmup, args.repeats, args.budget, set(args.ops.split(",")) if args.ops else None)
    print(table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
