"""CameraToBEV's CPU path that samples only what each camera sees equals the dense form (one
GridSample per camera over every sample, what is exported and captured), values and gradients, for
inputs that keep the contract of spec.py (cam_lut = OUTSIDE_LUT where cam_valid is 0)."""

from __future__ import annotations

import pytest
import torch

from perception.model import branches
from perception.model.branches import CameraToBEV


def _inputs(seed: int, b: int = 2, n: int = 3, c: int = 5, z: int = 2, yf: int = 6, xf: int = 7):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(b * n, c, 4, 9, generator=g, requires_grad=True)
    lut = torch.rand(b, n, z, yf, xf, 2, generator=g) * 2.2 - 1.1  # some outside the map: zero padding
    valid = (torch.rand(b, n, z, yf, xf, generator=g) < 0.35).float()
    lut[valid == 0] = -2.0  # the input contract (spec.OUTSIDE_LUT): what a camera does not see reads 0
    mask = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])[:b, :n]
    return feats, lut, valid, mask


@pytest.mark.parametrize("seed", range(3))
def test_sparse_equals_dense(monkeypatch, seed):
    feats, lut, valid, mask = _inputs(seed)
    assert branches._sparse_ok(feats)
    mean, seen = CameraToBEV.sample(feats, lut, valid, mask)
    (grad_sparse,) = torch.autograd.grad(mean.square().sum(), feats)

    monkeypatch.setattr(branches, "_sparse_ok", lambda features: False)
    want, want_seen = CameraToBEV.sample(feats, lut, valid, mask)
    (grad_dense,) = torch.autograd.grad(want.square().sum(), feats)

    assert (seen > 0).any() and (seen == 0).any()
    torch.testing.assert_close(seen, want_seen, rtol=0, atol=0)
    torch.testing.assert_close(mean, want, rtol=0, atol=0)  # the same terms in the same order
    torch.testing.assert_close(grad_sparse, grad_dense, rtol=1e-6, atol=1e-6)


def test_a_masked_camera_contributes_nothing():
    feats, lut, valid, mask = _inputs(5)
    mean, _ = CameraToBEV.sample(feats, lut, valid, mask)
    poked = feats.detach().clone()
    poked[1] += 100.0  # batch 0, camera 1: masked out
    mean2, _ = CameraToBEV.sample(poked, lut, valid, mask)
    torch.testing.assert_close(mean[0], mean2[0], rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tracing_takes_the_dense_path():
    feats, lut, valid, mask = _inputs(1)
    traced = torch.jit.trace(lambda f, l, v, m: CameraToBEV.sample(f, l, v, m)[0], (feats.detach(), lut, valid, mask))
    assert "nonzero" not in str(traced.graph)
    torch.testing.assert_close(traced(feats.detach(), lut, valid, mask), CameraToBEV.sample(feats.detach(), lut, valid, mask)[0])
