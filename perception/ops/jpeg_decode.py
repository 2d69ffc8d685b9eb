"""JPEG bytes -> a batch of RGB images ready for ``preprocess_images``.

On a GPU the bytes go to nvJPEG through ``torchvision.io.decode_jpeg(device='cuda')`` and the
pixels never visit host memory; the (N, 3, H, W) result is returned as an (N, H, W, 3) *view*
(``permute``), which ``preprocess_images`` reads through its strides without a copy. On the CPU
OpenCV decodes. torchvision is imported only for the GPU path: it is not a dependency.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from perception.errors import DecodeError, ShapeError

__all__ = ["decode_jpegs"]


def decode_jpegs(data: Sequence[bytes], device: Any = "cpu") -> Any:
    """Decode N JPEG images of one size. data: N byte strings (or uint8 arrays); device: "cpu"
    (numpy out) or a CUDA device (a torch tensor view on it). Returns (N, H, W, 3) uint8 RGB.
    Raises ``DecodeError`` naming the image that does not decode, ``ShapeError`` when sizes differ."""
    if str(device).startswith("cuda"):
        return _decode_cuda(data, device)
    images = []
    for i, buf in enumerate(data):
        arr = np.frombuffer(buf, np.uint8) if isinstance(buf, (bytes, bytearray, memoryview)) else np.asarray(buf, np.uint8)
        bgr = cv2.imdecode(arr, cv2.IMREAD_COLOR)
        if bgr is None:
            raise DecodeError(f"data[{i}]: not a decodable JPEG ({arr.size} bytes)")
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return _stack(images, np.stack, (0, 0, 3))


def _stack(images: list, stack: Any, empty_hw3: tuple[int, int, int]) -> Any:
    if not images:
        return np.zeros((0, *empty_hw3), np.uint8)
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) != 1:
        raise ShapeError(f"data: the images differ in size {sorted(shapes)}; decode cameras of one size per call")
    return stack(images)


def _decode_cuda(data: Sequence[bytes], device: Any) -> Any:
    import torch

    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError as exc:
        raise ImportError(f"decoding JPEG on the GPU needs torchvision with nvJPEG ({exc}); "
                          "decode on the CPU (device='cpu') and upload instead") from None
    if not data:
        return torch.zeros((0, 0, 0, 3), dtype=torch.uint8, device=device)
    raw = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in data]
    try:
        chw = decode_jpeg(raw, mode=ImageReadMode.RGB, device=device)
    except RuntimeError as exc:
        raise DecodeError(f"data: nvJPEG could not decode the batch ({exc})") from None
    batch = _stack(list(chw), torch.stack, (0, 0, 3))
    return batch.permute(0, 2, 3, 1)
