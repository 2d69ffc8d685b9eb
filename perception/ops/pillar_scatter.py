"""Scatter of per-pillar feature vectors to the BEV pseudo-image (PointPillars).

Rows whose coords lie outside the grid (the ``[-1, -1]`` padding of ``pillarize``) are skipped.
When two rows name the same cell, the later row wins, on the CPU and on the GPU (an ``atomicMax`` of
the row index there), so the output never depends on thread scheduling.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from perception.config import GridConfig
from perception.errors import ShapeError
from perception.ops import _common as C
from perception.ops._recycle import recycled_empty
from perception.ops._streaming import STREAM_BYTES, can_stream, store_fence, stream_store_16

__all__ = ["scatter_pillars"]


@njit(cache=True, nogil=True)
def _cell_rows(coords, ny, nx):  # pragma: no cover - numba
    rows = np.full(ny * nx, -1, np.int32)
    for r in range(coords.shape[0]):
        iy = coords[r, 0]
        ix = coords[r, 1]
        if iy >= 0 and iy < ny and ix >= 0 and ix < nx:
            rows[iy * nx + ix] = r
    return rows


_BAND = 4  # grid rows per CPU work item (2-16 measured alike with streaming stores; 4 keeps a band's feature rows in L2)


@njit(cache=True, parallel=True, nogil=True)
def _write(features, rows, out, stream):  # pragma: no cover - numba
    # Per band of rows: list the band's occupied cells once; then, plane by plane, drop the plane's
    # values into a zeroed band-sized line (in L1), copy the line to the output and zero those
    # cells of the line again. The output is written once, in order, and with streaming stores
    # when it is 16-byte aligned (``stream``): no read of the 64 MiB before it is overwritten.
    # Measured at nuScenes scale on 2 cores (docs/BENCHMARKS.md): 9.0-10.2 ms with plain stores
    # (features first copied to a plane-major block), 7.0-7.5 ms this way. Writing "feature or zero"
    # per cell, or cell by cell across the planes (64 stores 1 MiB apart: TLB misses), is slower.
    c_all, ny, nx = out.shape
    flat = out.reshape(-1)
    per = STREAM_BYTES // flat.itemsize
    for b in prange((ny + _BAND - 1) // _BAND):
        y0 = b * _BAND
        n = (min(y0 + _BAND, ny) - y0) * nx
        base = y0 * nx
        offsets = np.empty(n, np.int32)
        feature_rows = np.empty(n, np.int32)
        k = 0
        for i in range(n):
            r = rows[base + i]
            if r >= 0:
                offsets[k] = i
                feature_rows[k] = r
                k += 1
        line = np.zeros(n, flat.dtype)
        vectors = n // per if stream else 0
        for c in range(c_all):
            start = c * ny * nx + base
            for j in range(k):
                line[offsets[j]] = features[feature_rows[j], c]
            for v in range(vectors):
                stream_store_16(flat, start + v * per, line, v * per)
            flat[start + vectors * per:start + n] = line[vectors * per:]
            for j in range(k):
                line[offsets[j]] = 0
        if stream:
            store_fence()


def scatter_pillars(features: Any, coords: Any, grid: GridConfig, *, out: Any | None = None) -> Any:
    """Pillar features -> BEV pseudo-image.

    features: (P, C) float32 or float16 (one vector per pillar, e.g. the pillar feature net's output);
    coords: (P, 2) int32 ``[iy, ix]`` as ``Pillars.coords``; numpy/CPU tensors or CUDA tensors.
    out: optional (C, ny, nx) C-contiguous array/tensor of the features' dtype and device to write
    into (a CUDA graph wants fixed addresses). Returns (C, ny, nx), zero where no pillar is (ny, nx
    from ``grid``).

    Without ``out`` on the CPU, the result takes the memory of an earlier result that nothing refers
    to any more, if there is one (``perception.ops.release_recycled`` frees what is held): a fresh
    64 MiB array costs ~7 ms of page faults before a byte is written. The op writes every element.
    """
    p, c = C.check_shape(features, "features", ("P", None))
    C.check_shape(coords, "coords", (p, 2))
    dt = C.check_dtype(features, "features", ("float32", "float16"))
    C.check_dtype(coords, "coords", "int32")
    C.check_same_device(features, "coords", coords)
    if out is not None:
        C.check_shape(out, "out", (c, grid.ny, grid.nx))
        C.check_dtype(out, "out", dt)
        C.check_same_device(features, "out", out)
        if not (out.is_contiguous() if C.is_torch(out) else out.flags.c_contiguous):
            raise ShapeError("out: expected a C-contiguous array")
    if C.is_cuda(features):
        return _scatter_cuda(features, coords, grid, out)
    feats = C.as_numpy(features)
    # numba has no float16: a scatter only moves bits, so move them as same-size unsigned ints.
    bits = feats.view(np.uint16 if dt == "float16" else np.uint32)
    res = recycled_empty((c, grid.ny, grid.nx), feats.dtype) if out is None else C.as_numpy(out, contiguous=False)
    # Streaming stores need every (plane, band) start 16-byte aligned: the array, a plane and a band.
    stream = can_stream(res, grid.ny * grid.nx, _BAND * grid.nx)
    _write(bits, _cell_rows(C.as_numpy(coords), grid.ny, grid.nx), res.view(bits.dtype), stream)
    return out if out is not None else C.like_input(features, res)


def _scatter_cuda(features: Any, coords: Any, grid: GridConfig, out: Any | None) -> Any:
    import torch

    from perception.ops import _cuda as K

    feats = features.contiguous()
    crd = coords.contiguous()
    p, c = feats.shape
    cells = grid.ny * grid.nx
    rows = torch.full((cells,), -1, dtype=torch.int32, device=feats.device)
    K.launch("pillar_scatter", "scatter_cell_rows", K.blocks(p, 256), 256,
             (K.ptr(crd), np.int32(p), np.int32(grid.ny), np.int32(grid.nx), K.ptr(rows)), feats)
    if out is None:
        out = torch.empty((c, grid.ny, grid.nx), dtype=feats.dtype, device=feats.device)
    name = "scatter_write_f16" if feats.dtype == torch.float16 else "scatter_write_f32"
    K.launch("pillar_scatter", name, K.blocks(c * cells, 256), 256,
             (K.ptr(feats), K.ptr(rows), np.int32(c), np.int64(cells), K.ptr(out)), feats)
    return out
