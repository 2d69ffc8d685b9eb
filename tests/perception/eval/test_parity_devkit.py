"""bevfuse's evaluation against nuscenes-devkit 1.2.0's own code on the same boxes: equal to 1e-6.

Compared: the 101-point precision, score and five error curves of every class and threshold, every
AP and TP error (NaN where the devkit has NaN), the mean errors, their scores, mAP and NDS.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from perception.eval import DEFAULT_CONFIG, evaluate
from tests.perception.eval.devkit import assert_parity, devkit_config, devkit_evaluate, require_devkit
from tests.perception.eval.factory import box, random_scene


@pytest.fixture(autouse=True)
def _devkit() -> None:
    require_devkit()


def test_default_config_is_the_devkits_cvpr_2019():
    assert DEFAULT_CONFIG.to_dict() == devkit_config().serialize()
    assert DEFAULT_CONFIG.class_names == tuple(devkit_config().class_names)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_random_scenes_match_the_devkit(seed):
    gt, pred = random_scene(seed, n_samples=10)
    result = evaluate(gt, pred)
    assert_parity(result, *devkit_evaluate(gt, pred))
    # The scene must exercise the metric, or parity would be trivial: partial APs, errors in (0, 1),
    # a class without ground truth, NaN-defined classes.
    aps = [ap for c in result.classes.values() for ap in c.ap.values()]
    assert any(0.05 < ap < 0.95 for ap in aps)
    assert 0 < result.tp_errors["trans_err"] < 1 and 0 < result.tp_errors["orient_err"] < 1
    assert result.classes["trailer"].num_gt == 0 and result.classes["trailer"].num_pred > 0
    assert result.classes["bus"].num_gt > 0 and result.classes["bus"].num_pred == 0
    assert result.gt_counts.in_range < result.gt_counts.total and result.gt_counts.with_points < result.gt_counts.in_range
    assert math.isnan(result.classes["traffic_cone"].tp_errors["orient_err"])


def test_tied_scores_follow_the_devkits_order():
    # Four predictions with one score for two cars: which of the tied boxes is ranked first decides
    # the curves (the devkit ranks the later box in file order first).
    gt = {"s0": [box("car", 10.0), box("car", 20.0)]}
    pred = {"s0": [box("car", 10.0, score=0.5), box("car", 40.0, score=0.5), box("car", 20.4, score=0.5),
                   box("car", 45.0, score=0.5)]}
    assert_parity(evaluate(gt, pred), *devkit_evaluate(gt, pred))


def test_equally_distant_ground_truth_goes_to_the_first():
    gt = {"s0": [box("car", 10.0, 1.0, velocity=(1.0, 0.0)), box("car", 10.0, -1.0, velocity=(5.0, 0.0))]}
    pred = {"s0": [box("car", 10.0, 0.0, score=0.9, velocity=(1.0, 0.0))]}
    result = evaluate(gt, pred)
    assert_parity(result, *devkit_evaluate(gt, pred))
    assert result.classes["car"].tp_errors["vel_err"] == pytest.approx(0.0)


def test_nan_velocity_and_all_nan_attributes_match_the_devkit():
    nan = (math.nan, math.nan)
    gt = {"s0": [box("car", 10.0, velocity=nan, attribute=""), box("car", 20.0, velocity=(1.0, 2.0), attribute=""),
                 box("pedestrian", 8.0, velocity=nan)]}
    pred = {"s0": [box("car", 10.2, score=0.9), box("car", 20.0, score=0.3, velocity=(1.0, 1.0)),
                   box("pedestrian", 8.0, score=0.4, velocity=(0.5, 0.5))]}
    result = evaluate(gt, pred)
    assert_parity(result, *devkit_evaluate(gt, pred))
    # Cars: matches at scores 0.9 (velocity NaN) and 0.3 (error 1). The running mean is 0 -- not
    # skipped -- before the first defined value: [0, 1]. Scores: 0.9 up to r = 0.5, then linear to
    # 0.3 at r = 1, so the resampled error is 0 for k <= 50 and 2 r_k - 1 above:
    # AVE = sum_{k=51}^{100} (k/50 - 1) / 90 = (75.5 - 50) / 90 = 25.5 / 90.
    assert result.classes["car"].tp_errors["vel_err"] == pytest.approx(25.5 / 90)
    # No car attribute at all: the whole curve is 1. The pedestrian's only velocity is NaN: 1 too.
    assert result.classes["car"].tp_errors["attr_err"] == 1.0
    assert result.classes["pedestrian"].tp_errors["vel_err"] == 1.0


def test_many_samples_scale():
    # A larger scene (60 samples, ~1000 boxes each side): still equal, and quick.
    gt, pred = random_scene(11, n_samples=60)
    result = evaluate(gt, pred)
    assert_parity(result, *devkit_evaluate(gt, pred))
    assert np.isfinite(result.nd_score)
