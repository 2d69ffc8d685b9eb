"""Training targets, losses and augmentation: targets decode back to their boxes through the
pipeline's decode op, the focal loss has its textbook values, augmentation keeps boxes and points
together."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perception.boxes import points_in_boxes
from perception.model.augment import AugmentConfig, BoxArrays, augment_matrix, transform_boxes, transform_points
from perception.model.config import preset
from perception.model.losses import centerpoint_loss, focal_loss
from perception.model.targets import build_targets, gaussian_radius


def _boxes():
    center = np.array([[10.3, -4.7, 0.9], [-20.05, 30.55, 1.2], [0.4, 0.4, 0.5]])
    size = np.array([[4.5, 1.9, 1.6], [10.0, 2.8, 3.5], [0.6, 0.6, 1.8]])
    yaw = np.array([0.3, -2.9, 1.5])
    vel = np.array([[5.0, -1.0], [0.0, 0.0], [np.nan, np.nan]])
    return BoxArrays(center, size, yaw, vel, np.array([0, 3, 8]))


def test_targets_decode_back_to_the_boxes_through_the_decode_op():
    ops = pytest.importorskip("perception.ops.centerpoint_decode")
    cfg = preset("tiny")
    b = _boxes()
    t = build_targets(cfg, b.center, b.size, b.yaw, b.velocity, b.label)
    assert t.mask.sum() == 3 and t.velocity_mask[:3].tolist() == [1, 1, 0]
    # Write the targets into head maps the way a perfect network would, and decode them.
    k, yf, xf = t.heatmap.shape
    maps = {n: np.zeros((c, yf, xf), np.float32) for n, c in (("offset", 2), ("height", 1), ("size", 3), ("rot", 2),
                                                              ("velocity", 2))}
    for slot in range(3):
        iy, ix = divmod(int(t.index[slot]), xf)
        r = t.regression[slot]
        for name, sl in (("offset", slice(0, 2)), ("height", slice(2, 3)), ("size", slice(3, 6)), ("rot", slice(6, 8)),
                         ("velocity", slice(8, 10))):
            maps[name][:, iy, ix] = r[sl]
    dec = ops.decode_centerpoint(t.heatmap, maps["offset"], maps["height"], maps["size"], maps["rot"], maps["velocity"],
                                 cfg.grid, sigmoid=False, score_threshold=0.99).trimmed()
    assert sorted(dec.labels.tolist()) == [0, 3, 8]
    for row, label in zip(dec.boxes, dec.labels):
        i = int(np.where(b.label == label)[0][0])
        np.testing.assert_allclose(row[:3], b.center[i], atol=1e-4)
        np.testing.assert_allclose(row[3:6], b.size[i], rtol=1e-5)
        assert abs(np.angle(np.exp(1j * (row[6] - b.yaw[i])))) < 1e-5
        if np.isfinite(b.velocity[i]).all():
            np.testing.assert_allclose(row[7:9], b.velocity[i], atol=1e-5)


def test_heatmap_peaks_are_one_and_boxes_outside_the_grid_are_skipped():
    cfg = preset("tiny")
    b = _boxes()
    center = np.vstack([b.center, [[80.0, 0.0, 1.0]]])
    t = build_targets(cfg, center, np.vstack([b.size, b.size[:1]]), np.append(b.yaw, 0.0),
                      np.vstack([b.velocity, [[0.0, 0.0]]]), np.append(b.label, 0))
    assert t.mask.sum() == 3
    assert (t.heatmap.max(axis=(1, 2))[[0, 3, 8]] == 1.0).all() and t.heatmap.max() == 1.0
    assert (t.heatmap == 1.0).sum() == 3


def test_gaussian_radius_grows_with_the_box():
    r = gaussian_radius(np.array([2.0, 5.0, 10.0]), np.array([2.0, 5.0, 10.0]))
    assert np.all(np.diff(r) > 0) and np.all(r > 0)


def test_focal_loss_values():
    target = torch.zeros(1, 1, 3, 3)
    target[0, 0, 1, 1] = 1.0
    perfect = torch.full((1, 1, 3, 3), -30.0)
    perfect[0, 0, 1, 1] = 30.0
    assert focal_loss(perfect, target) < 1e-6
    half = torch.zeros(1, 1, 3, 3)  # p = 0.5 everywhere
    # positive: -log(0.5) * 0.25; eight negatives: -log(0.5) * 0.25 * (1 - 0)^4
    want = 9 * np.log(2) * 0.25
    assert abs(float(focal_loss(half, target)) - want) < 1e-5


def test_centerpoint_loss_is_zero_at_the_targets_regressions():
    cfg = preset("tiny")
    b = _boxes()
    t = build_targets(cfg, b.center, b.size, b.yaw, b.velocity, b.label, max_objects=8)
    k, yf, xf = t.heatmap.shape
    out = {"heatmap": torch.full((1, k, yf, xf), -20.0)}
    chans = {"offset": 2, "height": 1, "size": 3, "rot": 2, "velocity": 2}
    start = 0
    for name, c in chans.items():
        m = torch.zeros(1, c, yf * xf)
        for slot in range(3):
            m[0, :, int(t.index[slot])] = torch.from_numpy(t.regression[slot, start:start + c])
        out[name] = m.reshape(1, c, yf, xf)
        start += c
    targets = {n: torch.from_numpy(getattr(t, n))[None] for n in ("heatmap", "index", "mask", "regression", "velocity_mask")}
    losses = centerpoint_loss(out, targets)
    assert float(losses["regression"]) < 1e-6
    out["size"] = out["size"] + 1.0
    assert abs(float(centerpoint_loss(out, targets)["size"]) - 3.0) < 1e-5


@pytest.mark.parametrize("seed", range(4))
def test_augmentation_keeps_points_inside_their_boxes(seed):
    rng = np.random.default_rng(seed)
    b = _boxes()
    pts = np.concatenate([c + (rng.uniform(-0.45, 0.45, size=(50, 3)) * s) @ np.array(
        [[np.cos(y), np.sin(y), 0], [-np.sin(y), np.cos(y), 0], [0, 0, 1]]) for c, s, y in zip(b.center, b.size, b.yaw)])
    inside = points_in_boxes(pts, b.center, b.size, b.yaw)
    assert inside.any(axis=1).all()
    A, yaw, flipped, scale = augment_matrix(rng, AugmentConfig(flip_y=0.5 if seed < 2 else 1.0))
    nb = transform_boxes(A, b, yaw, flipped, scale)
    npts = transform_points(A, pts.astype(np.float32))
    np.testing.assert_array_equal(points_in_boxes(npts, nb.center, nb.size, nb.yaw), inside)
    # the velocity turns with the box: its angle to the heading is kept (mirrored when flipped)
    rel = np.arctan2(b.velocity[0, 1], b.velocity[0, 0]) - b.yaw[0]
    nrel = np.arctan2(nb.velocity[0, 1], nb.velocity[0, 0]) - nb.yaw[0]
    assert abs(np.angle(np.exp(1j * (nrel - (-rel if flipped else rel))))) < 1e-6
    assert np.isnan(nb.velocity[2]).all()
