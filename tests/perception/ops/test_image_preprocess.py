"""preprocess_images: numba against the numpy oracle and against cv2.resize (1 grey level), fp16,
crops past the image, strides, errors; decode_jpegs; CUDA against numba."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from perception.errors import DecodeError, ShapeError
from perception.ops import ImageTransform, decode_jpegs, preprocess_images
from tests.perception.ops.oracles import preprocess_oracle


def images(rng, n, h=45, w=80):
    # Smooth content plus noise: both flat regions and sharp edges exercise the interpolation.
    yy, xx = np.mgrid[0:h, 0:w]
    base = (127 + 100 * np.sin(xx / 5.0)[..., None] * np.cos(yy / 7.0)[..., None]).astype(np.float64)
    imgs = base[None] + rng.normal(0, 40, size=(n, h, w, 3))
    return np.clip(imgs, 0, 255).astype(np.uint8)


def denormalize(out, t):
    return out * np.array(t.std)[:, None, None] + np.array(t.mean)[:, None, None]


class TestPreprocessImages:
    def test_smoke(self):
        imgs = images(np.random.default_rng(0), 2)
        out = preprocess_images(imgs, ImageTransform((40, 22)), (16, 32))
        assert out.shape == (2, 3, 16, 32) and out.dtype == np.float32

    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_matches_oracle(self, seed):
        rng = np.random.default_rng(seed)
        imgs = images(rng, 3)
        ts = [ImageTransform((int(rng.integers(20, 160)), int(rng.integers(12, 90))),
                             (int(rng.integers(-5, 10)), int(rng.integers(-5, 10))),
                             tuple(rng.uniform(80, 140, 3)), tuple(rng.uniform(40, 70, 3))) for _ in range(3)]
        out = preprocess_images(imgs, ts, (20, 36))
        np.testing.assert_allclose(out, preprocess_oracle(imgs, ts, (20, 36)), rtol=0, atol=2e-4)

    @pytest.mark.parametrize("resize_wh", [(38, 22), (40, 23), (160, 90), (121, 67), (77, 44), (24, 10)])
    def test_within_one_grey_level_of_opencv(self, resize_wh):
        imgs = images(np.random.default_rng(3), 1)
        t = ImageTransform(resize_wh, mean=(0, 0, 0), std=(1, 1, 1))
        ref = cv2.resize(imgs[0], resize_wh, interpolation=cv2.INTER_LINEAR).astype(np.float64).transpose(2, 0, 1)
        out = preprocess_images(imgs, t, (resize_wh[1], resize_wh[0]))[0]
        assert np.abs(out - ref).max() <= 1.0

    def test_nuscenes_transform_against_opencv(self):
        t = ImageTransform.fit((900, 1600), (256, 704), 0.48)
        assert t.resize_wh == (768, 432) and t.crop_xy == (32, 176)
        img = images(np.random.default_rng(4), 1, 900, 1600)
        rw, rh = t.resize_wh
        cx, cy = t.crop_xy
        ref = cv2.resize(img[0], (rw, rh), interpolation=cv2.INTER_LINEAR)[cy:cy + 256, cx:cx + 704]
        ref = ref.astype(np.float64).transpose(2, 0, 1)
        out = preprocess_images(img, t, (256, 704))[0]
        assert np.abs(denormalize(out, t) - ref).max() <= 1.0 + 1e-3

    def test_float16_is_rounded_float32(self):
        imgs = images(np.random.default_rng(5), 2)
        t = ImageTransform((50, 30), (3, 2))
        a = preprocess_images(imgs, t, (24, 40), dtype="float16")
        b = preprocess_images(imgs, t, (24, 40), dtype=np.float32)
        assert a.dtype == np.float16
        np.testing.assert_array_equal(a, b.astype(np.float16))

    def test_crop_outside_is_zero(self):
        imgs = images(np.random.default_rng(6), 1)
        out = preprocess_images(imgs, ImageTransform((30, 20), (-4, -3)), (30, 40))[0]
        assert not out[:, :3].any() and not out[:, :, :4].any()  # above and left of the image
        assert not out[:, 23:].any() and not out[:, :, 34:].any()  # below and right of it
        assert np.all(out[:, 3:23, 4:34] != 0)

    def test_one_camera_and_empty(self):
        imgs = images(np.random.default_rng(7), 1)
        assert preprocess_images(imgs, [ImageTransform((40, 22))], (22, 40)).shape == (1, 3, 22, 40)
        empty = preprocess_images(np.zeros((0, 9, 16, 3), np.uint8), [], (4, 8))
        assert empty.shape == (0, 3, 4, 8)

    def test_noncontiguous_and_torch(self):
        torch = pytest.importorskip("torch")
        chw = np.ascontiguousarray(images(np.random.default_rng(8), 2).transpose(0, 3, 1, 2))
        hwc_view = chw.transpose(0, 2, 3, 1)  # as decode_jpeg's output permuted
        t = ImageTransform((60, 33), (2, 1))
        ref = preprocess_images(np.ascontiguousarray(hwc_view), t, (24, 48))
        np.testing.assert_array_equal(preprocess_images(hwc_view, t, (24, 48)), ref)
        out = preprocess_images(torch.from_numpy(chw).permute(0, 2, 3, 1), t, (24, 48))
        assert isinstance(out, torch.Tensor)
        np.testing.assert_array_equal(out.numpy(), ref)

    @pytest.mark.parametrize("imgs, ts, exc, match", [
        (np.zeros((1, 9, 16, 3), np.float32), ImageTransform((8, 4)), ShapeError, "images: expected dtype uint8"),
        (np.zeros((1, 9, 16, 4), np.uint8), ImageTransform((8, 4)), ShapeError, r"images: expected shape \(\*, \*, \*, 3\)"),
        (np.zeros((9, 16, 3), np.uint8), ImageTransform((8, 4)), ShapeError, "images: expected a 4-D"),
        (np.zeros((2, 9, 16, 3), np.uint8), [ImageTransform((8, 4))], ShapeError, "transforms: expected 2"),
    ])
    def test_invalid(self, imgs, ts, exc, match):
        with pytest.raises(exc, match=match):
            preprocess_images(imgs, ts, (4, 8))

    def test_invalid_parameters(self):
        imgs = np.zeros((1, 9, 16, 3), np.uint8)
        with pytest.raises(ValueError, match="dtype"):
            preprocess_images(imgs, ImageTransform((8, 4)), (4, 8), dtype="int8")
        with pytest.raises(ValueError, match="std"):
            ImageTransform((8, 4), std=(1, 0, 1))


class TestDecodeJpegs:
    def test_roundtrip_rgb(self):
        img = np.zeros((45, 80, 3), np.uint8)
        img[..., 0], img[..., 1], img[..., 2] = 200, np.arange(80, dtype=np.uint8)[None, :], 40  # R, G ramp, B
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 100])
        out = decode_jpegs([buf.tobytes(), buf.tobytes()])
        assert out.shape == (2, 45, 80, 3) and out.dtype == np.uint8
        assert np.abs(out[0].astype(int) - img).mean() < 3  # lossy, but RGB order kept

    def test_errors(self):
        with pytest.raises(DecodeError, match=r"data\[0\]"):
            decode_jpegs([b"not a jpeg"])
        small = cv2.imencode(".jpg", np.zeros((4, 4, 3), np.uint8))[1].tobytes()
        large = cv2.imencode(".jpg", np.zeros((8, 4, 3), np.uint8))[1].tobytes()
        with pytest.raises(ShapeError, match="differ in size"):
            decode_jpegs([small, large])


@pytest.mark.gpu
class TestPreprocessImagesCuda:
    @pytest.mark.parametrize("dtype", ["float32", "float16"])
    def test_matches_numba(self, dtype):
        import torch

        imgs = images(np.random.default_rng(10), 3, 90, 160)
        ts = [ImageTransform.fit((90, 160), (32, 64), s) for s in (0.48, 0.5, 0.9)]
        ref = preprocess_images(imgs, ts, (32, 64), dtype=dtype).astype(np.float32)
        chw = torch.from_numpy(imgs).cuda().permute(0, 3, 1, 2).contiguous()
        for inp in (torch.from_numpy(imgs).cuda(), chw.permute(0, 2, 3, 1)):  # contiguous and strided
            out = preprocess_images(inp, ts, (32, 64), dtype=dtype)
            assert out.dtype == getattr(torch, dtype)
            np.testing.assert_allclose(out.float().cpu().numpy(), ref, rtol=1e-3, atol=1e-5)

    def test_nvjpeg_path(self):
        pytest.importorskip("torchvision")
        img = images(np.random.default_rng(11), 1, 90, 160)[0]
        buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
        gpu = decode_jpegs([buf, buf], device="cuda")
        cpu = decode_jpegs([buf, buf])
        assert gpu.shape == cpu.shape and gpu.is_cuda
        assert np.abs(gpu.cpu().numpy().astype(int) - cpu).max() <= 8  # two IDCT implementations
        t = ImageTransform.fit((90, 160), (32, 64), 0.5)
        out = preprocess_images(gpu, t, (32, 64))
        np.testing.assert_allclose(out.cpu().numpy(), preprocess_images(gpu.cpu().numpy(), t, (32, 64)), atol=1e-5)
