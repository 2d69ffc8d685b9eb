"""Camera feature maps -> BEV feature volume through a ``CameraBevLut`` (the per-frame half of the
lift; ``camera_bev_lut`` builds the table once per calibration).

out[c, z, iy, ix] = mean over the cameras that see sample (z, iy, ix) of their bilinear sample of
channel c; 0 where no camera sees it. Reshape to (C * Z, ny, nx) for a 2D BEV encoder.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from perception.errors import ShapeError
from perception.ops import _common as C
from perception.ops.camera_bev_lut import CameraBevLut

__all__ = ["gather_camera_bev"]

_BLOCK = 512  # samples per CPU work item: its table rows stay in cache while all channels pass


@njit(cache=True, parallel=True, nogil=True)
def _gather(features, camera, pixel, weight, inv_count, out):  # pragma: no cover - numba
    # features (N, C, H, W) float32; out (C, S) float32. Sum in slot order, then scale: the CUDA
    # kernel does the same float32 operations in the same order.
    _, c_all, h, w = features.shape
    s_all, slots = camera.shape
    for blk in prange((s_all + _BLOCK - 1) // _BLOCK):
        s0 = blk * _BLOCK
        s1 = min(s0 + _BLOCK, s_all)
        for c in range(c_all):
            for s in range(s0, s1):
                acc = np.float32(0.0)
                for k in range(slots):
                    cam = camera[s, k]
                    if cam < 0:
                        break
                    y0, x0 = pixel[s, k, 0], pixel[s, k, 1]
                    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
                    acc += (weight[s, k, 0] * features[cam, c, y0, x0] + weight[s, k, 1] * features[cam, c, y0, x1]
                            + weight[s, k, 2] * features[cam, c, y1, x0] + weight[s, k, 3] * features[cam, c, y1, x1])
                out[c, s] = acc * inv_count[s]


def gather_camera_bev(features: Any, lut: CameraBevLut) -> Any:
    """features: (N, C, Hf, Wf) float32 camera feature maps in the table's camera order, on the
    device of the table's arrays (``lut.to('cuda')`` once for GPU use).
    Returns (C, Z, ny, nx) float32 with (Z, ny, nx) = ``lut.shape``."""
    n, c, hf, wf = C.check_shape(features, "features", (lut.num_cameras, None, *lut.feature_hw))
    C.check_dtype(features, "features", "float32")
    C.check_same_device(features, "lut", lut.camera)
    z, ny, nx = lut.shape
    s = z * ny * nx
    if tuple(lut.camera.shape)[0] != s:
        raise ShapeError(f"lut: camera table has {tuple(lut.camera.shape)[0]} samples, expected {s} for shape {lut.shape}")
    if C.is_cuda(features):
        return _gather_cuda(features, lut, c, s).view(c, z, ny, nx)
    out = np.empty((c, s), np.float32)
    _gather(C.as_numpy(features), C.as_numpy(lut.camera), C.as_numpy(lut.pixel), C.as_numpy(lut.weight),
            C.as_numpy(lut.inv_count), out)
    return C.like_input(features, out.reshape(c, z, ny, nx))


def _gather_cuda(features: Any, lut: CameraBevLut, c: int, s: int) -> Any:
    import torch

    from perception.ops import _cuda as K

    feats = features.contiguous()
    out = torch.empty((c, s), dtype=torch.float32, device=feats.device)
    n, _, hf, wf = feats.shape
    K.launch("camera_bev_gather", "gather_camera_bev", (K.blocks(s, 128), c), 128,
             (K.ptr(feats), np.int32(c), np.int32(hf), np.int32(wf), K.ptr(lut.camera), K.ptr(lut.pixel), K.ptr(lut.weight),
              K.ptr(lut.inv_count), np.int32(s), np.int32(lut.camera.shape[1]), K.ptr(out)), feats)
    return out
