"""Camera images -> network input in one pass: bilinear resize, crop, per-channel normalisation,
HWC -> CHW, float32 or float16.

The resize is OpenCV's ``INTER_LINEAR`` with half-pixel centres: output column x of the resized
image samples source column ``(x + 0.5) * W / resize_w - 0.5``, clamped to the image (OpenCV
repeats the border pixel), and only the cropped window is ever computed. OpenCV interpolates
uint8 in 11-bit fixed point; this op interpolates in float32, so the two agree within 1 grey level
before normalisation (tests/perception/ops/test_image_preprocess.py checks it against cv2.resize).
Crop pixels outside the resized image are 0 in the output (0 after normalisation: "no signal").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit, prange

from perception.errors import ShapeError
from perception.ops import _common as C

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ImageTransform", "preprocess_images"]

# ImageNet statistics in 0..255 units, RGB order (what torchvision/mmdet backbones are trained with).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class ImageTransform:
    """One camera's input transform: resize the (H, W) image to ``resize_wh``, take the window of
    the output size whose top-left corner is ``crop_xy`` in the resized image, then
    ``(value - mean) / std`` per RGB channel (0..255 units)."""

    resize_wh: tuple[int, int]
    crop_xy: tuple[int, int] = (0, 0)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        rw, rh = (int(v) for v in self.resize_wh)
        if rw < 1 or rh < 1:
            raise ValueError(f"resize_wh: expected positive sizes, got {self.resize_wh}")
        object.__setattr__(self, "resize_wh", (rw, rh))
        object.__setattr__(self, "crop_xy", tuple(int(v) for v in self.crop_xy))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        std = tuple(float(v) for v in self.std)
        if len(self.mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"mean/std: expected 3 values each, std > 0; got mean={self.mean}, std={std}")
        object.__setattr__(self, "std", std)

    @classmethod
    def fit(cls, image_hw: tuple[int, int], out_hw: tuple[int, int], scale: float, **kwargs: Any) -> ImageTransform:
        """Resize by ``scale``, then crop ``out_hw`` centred horizontally and at the bottom (the sky
        carries little for driving; BEVDet/BEVFusion crop the same way): 1600x900 at 0.48 -> 704x256
        is resize (768, 432), crop (32, 176)."""
        h, w = image_hw
        rw, rh = round(w * scale), round(h * scale)
        return cls((rw, rh), ((rw - out_hw[1]) // 2, rh - out_hw[0]), **kwargs)

    def packed(self, image_hw: tuple[int, int]) -> np.ndarray:
        """(14,) float32 kernel parameters: sx ox sy oy x_lo x_hi y_lo y_hi mean[3] 1/std[3];
        source coordinate = output index * s + o; valid output columns x_lo <= x < x_hi."""
        h, w = image_hw
        rw, rh = self.resize_wh
        cx, cy = self.crop_xy
        sx, sy = w / rw, h / rh
        return np.array([sx, (cx + 0.5) * sx - 0.5, sy, (cy + 0.5) * sy - 0.5, -cx, rw - cx, -cy, rh - cy,
                         *self.mean, *(1.0 / s for s in self.std)], np.float32)


@njit(cache=True, inline="always")
def _source_index(k, scale, offset, lo, hi, size):  # pragma: no cover - numba
    """Output index k along one axis -> (source index, next source index, weight of the next,
    inside the resized image). OpenCV's clamping: a coordinate before the first or past the last
    pixel centre takes the border pixel. float32 as the CUDA kernel computes it."""
    f = np.float32(k) * scale + offset
    a = np.int64(np.floor(f))
    w = f - np.float32(a)
    if a < 0:
        a, w = 0, np.float32(0.0)
    if a >= size - 1:
        a, w = size - 1, np.float32(0.0)
    return a, min(a + 1, size - 1), w, k >= lo and k < hi


@njit(cache=True, parallel=True, nogil=True)
def _preprocess(images, params, out32, out16, f16):  # pragma: no cover - numba
    # images (N, H, W, 3) uint8 C-contiguous; params (N, 14) float32; the output goes to out16
    # (N, 3, oh, ow) uint16 float16 bits when f16, else to out32 float32 (the other is a dummy:
    # one signature, one compilation for both dtypes).
    n_cam, h, w, _ = images.shape
    oh, ow = (out16.shape[2], out16.shape[3]) if f16 else (out32.shape[2], out32.shape[3])
    one = np.float32(1.0)
    flat = images.reshape(-1)
    x0s = np.empty((n_cam, ow), np.int64)
    x1s = np.empty((n_cam, ow), np.int64)
    wxs = np.empty((n_cam, ow), np.float32)
    oks = np.empty((n_cam, ow), np.bool_)
    for n in range(n_cam):  # column tables once per camera, not once per row
        for x in range(ow):
            a, b, wt, ok = _source_index(x, params[n, 0], params[n, 1], params[n, 4], params[n, 5], w)
            x0s[n, x], x1s[n, x], wxs[n, x], oks[n, x] = 3 * a, 3 * b, wt, ok
    for job in prange(n_cam * oh):
        n = job // oh
        y = job % oh
        y0, y1, wy, oky = _source_index(y, params[n, 2], params[n, 3], params[n, 6], params[n, 7], h)
        row = np.empty((3, ow), np.float32)
        base0 = (n * h + y0) * w * 3
        base1 = (n * h + y1) * w * 3
        for x in range(ow):
            if not (oky and oks[n, x]):
                row[0, x] = 0.0
                row[1, x] = 0.0
                row[2, x] = 0.0
                continue
            wx = wxs[n, x]
            a0 = base0 + x0s[n, x]
            a1 = base0 + x1s[n, x]
            b0 = base1 + x0s[n, x]
            b1 = base1 + x1s[n, x]
            for c in range(3):
                top = np.float32(flat[a0 + c]) * (one - wx) + np.float32(flat[a1 + c]) * wx
                bot = np.float32(flat[b0 + c]) * (one - wx) + np.float32(flat[b1 + c]) * wx
                v = top * (one - wy) + bot * wy
                row[c, x] = (v - params[n, 8 + c]) * params[n, 11 + c]
        if f16:
            bits = row.view(np.uint32)
            for c in range(3):
                for x in range(ow):
                    out16[n, c, y, x] = C.f32_bits_to_f16_bits(bits[c, x])
        else:
            for c in range(3):
                for x in range(ow):
                    out32[n, c, y, x] = row[c, x]


def _dtype_name(dtype: Any) -> str:
    """"float16"/"float32" from a string, a numpy dtype or scalar type, or a torch dtype."""
    name = str(dtype).removeprefix("torch.")
    try:
        name = np.dtype(name if name in ("float16", "float32", "half", "float") else dtype).name
    except TypeError:
        pass
    if name not in ("float16", "float32"):
        raise ValueError(f"dtype: expected float16 or float32, got {dtype!r}")
    return name


def preprocess_images(images: Any, transforms: ImageTransform | Sequence[ImageTransform], out_hw: tuple[int, int], *,
                      dtype: Any = "float32") -> Any:
    """Resize, crop, normalise and transpose N camera images in one pass.

    images: (N, H, W, 3) uint8 RGB (numpy, CPU tensor, or CUDA tensor; any strides, e.g. a permuted
    view of decode_jpeg's (N, 3, H, W) output); transforms: one ImageTransform per camera, or one
    for all; out_hw: (out_h, out_w); dtype: "float32" or "float16" (also numpy/torch dtypes).
    Returns (N, 3, out_h, out_w) of ``dtype``: numpy in, numpy out; tensor in, tensor out.
    """
    n, h, w, _ = C.check_shape(images, "images", (None, None, None, 3))
    C.check_dtype(images, "images", "uint8")
    name = _dtype_name(dtype)
    if isinstance(transforms, ImageTransform):
        transforms = [transforms] * n
    transforms = list(transforms)
    if len(transforms) != n or not all(isinstance(t, ImageTransform) for t in transforms):
        raise ShapeError(f"transforms: expected {n} ImageTransform (one per image), got {len(transforms)} items")
    oh, ow = (int(v) for v in out_hw)
    if oh < 1 or ow < 1:
        raise ValueError(f"out_hw: expected positive sizes, got {out_hw}")
    if h < 1 or w < 1:
        raise ShapeError(f"images: expected non-empty images, got shape {tuple(images.shape)}")
    params = np.stack([t.packed((h, w)) for t in transforms]) if n else np.zeros((0, 14), np.float32)
    if C.is_cuda(images):
        return _preprocess_cuda(images, params, oh, ow, name)
    imgs = C.as_numpy(images)
    out = np.empty((n, 3, oh, ow), name)
    f16 = name == "float16"
    dummy32, dummy16 = np.empty((1, 1, 1, 1), np.float32), np.empty((1, 1, 1, 1), np.uint16)
    _preprocess(imgs, params, dummy32 if f16 else out, C.f16_bits(out) if f16 else dummy16, f16)
    return C.like_input(images, out)


def _preprocess_cuda(images: Any, params: np.ndarray, oh: int, ow: int, name: str) -> Any:
    import torch

    from perception.ops import _cuda as K

    n = images.shape[0]
    out = torch.empty((n, 3, oh, ow), dtype=getattr(torch, name), device=images.device)
    if n == 0:
        return out
    prm = K.device_constant(params, images)
    strides = tuple(np.int64(s) for s in images.stride())  # in elements (uint8: bytes)
    T = 128
    K.launch("image_preprocess", f"preprocess_{'f16' if name == 'float16' else 'f32'}", (K.blocks(ow, T), oh, n), T,
             (K.ptr(images), np.int32(images.shape[1]), np.int32(images.shape[2]), *strides, K.ptr(prm), np.int32(oh),
              np.int32(ow), K.ptr(out)), images)
    return out
