"""Hand-worked cases of the nuScenes metrics: every expected figure is derived in the comments.

Reminders used throughout (DetectionEvalConfig defaults = detection_cvpr_2019):
* recall is sampled at r_k = k/100, k = 0..100; AP averages max(p(r_k) - 0.1, 0) / 0.9 over the
  90 samples k = 11..100, so a class with precision 1 up to recall R (and 0 after) has
  AP = (number of k in 11..100 with r_k <= R) / 90.
* precision between two reached recalls is linearly interpolated; below the first reached recall it
  is the first precision; above the last it is 0; at a recall reached several times (false
  positives after the last true positive) np.interp takes the last precision there.
* TP errors are averaged over k = 11..(highest recall index); a class with no ground truth, or none
  matched, has AP 0 and every TP error 1, and still counts in the means over the ten classes.
"""

from __future__ import annotations

import math

import pytest

from perception.errors import FormatError
from perception.eval import DETECTION_NAMES, evaluate
from tests.perception.eval.factory import box

ALL = DETECTION_NAMES


def _perfect_scene() -> tuple[dict, dict]:
    """Two boxes of each class, 5-15 m away, and a prediction on each with the same everything."""
    gt, pred = [], []
    for i, name in enumerate(ALL):
        for j in range(2):
            x, y = 5.0 + i, 10.0 * j - 5.0
            kw = {"yaw": 0.3 * i, "velocity": (0.0, 0.0) if name in ("barrier", "traffic_cone") else (1.0, -2.0)}
            gt.append(box(name, x, y, **kw))
            pred.append(box(name, x, y, score=0.9 - 0.01 * i, **kw))
    return {"s0": gt}, {"s0": pred}


def test_perfect_prediction_scores_one():
    # Every class: precision 1 at every recall -> AP 1 at every threshold; every match is exact, so
    # each error curve is 0 -> TP errors 0, except the devkit's undefined ones (NaN): a cone's
    # orientation, velocity and attribute, a barrier's velocity and attribute.
    # mAP = 1; the mean errors are 0 (the NaNs are skipped); NDS = (5 * 1 + 5 * (1 - 0)) / 10 = 1.
    result = evaluate(*_perfect_scene())
    assert result.mean_ap == pytest.approx(1.0, abs=1e-12)
    assert result.nd_score == pytest.approx(1.0, abs=1e-12)
    for m, e in result.tp_errors.items():
        assert e == pytest.approx(0.0, abs=1e-9), m
    for name, c in result.classes.items():
        assert all(ap == pytest.approx(1.0) for ap in c.ap.values()), name
    cone, barrier = result.classes["traffic_cone"].tp_errors, result.classes["barrier"].tp_errors
    assert all(math.isnan(cone[m]) for m in ("orient_err", "vel_err", "attr_err"))
    assert all(math.isnan(barrier[m]) for m in ("vel_err", "attr_err"))
    assert barrier["orient_err"] == pytest.approx(0.0, abs=1e-9)
    js = result.to_json()
    assert js["mAP"] == pytest.approx(1.0) and js["NDS"] == pytest.approx(1.0)
    assert js["per_class"]["traffic_cone"]["AOE"] is None and js["per_class"]["car"]["AP"]["0.5"] == pytest.approx(1.0)


def test_classes_absent_from_ground_truth_count_as_zero():
    # Only cars, predicted perfectly. As the devkit: the nine absent classes get AP 0 and TP errors 1.
    # mAP = 1/10. mATE = mASE = (0 + 9 * 1) / 10 = 0.9. mAOE: the cone's is NaN -> (0 + 8) / 9.
    # mAVE = mAAE: cone and barrier NaN -> (0 + 7) / 8.
    # NDS = (5 * 0.1 + (0.1 + 0.1 + 1/9 + 1/8 + 1/8)) / 10.
    gt = {"s0": [box("car", 10.0), box("car", 20.0, 5.0)]}
    pred = {"s0": [box("car", 10.0, score=0.8), box("car", 20.0, 5.0, score=0.7)]}
    r = evaluate(gt, pred)
    assert r.mean_ap == pytest.approx(0.1)
    assert r.error("ATE") == pytest.approx(0.9) and r.error("ASE") == pytest.approx(0.9)
    assert r.error("AOE") == pytest.approx(8 / 9)
    assert r.error("AVE") == pytest.approx(7 / 8) and r.error("AAE") == pytest.approx(7 / 8)
    assert r.nd_score == pytest.approx((0.5 + 0.1 + 0.1 + 1 / 9 + 1 / 8 + 1 / 8) / 10)
    assert r.classes["truck"].ap[2.0] == 0.0 and r.classes["truck"].tp_errors["trans_err"] == 1.0


def test_shifted_box_ap_by_threshold_and_translation_error():
    # One car, predicted 0.7 m off in x. At 0.5 m: 0.7 >= 0.5, no match -> AP 0. At 1, 2, 4 m: a
    # match at recall 1 with precision 1 -> AP 1. Class AP = (0 + 1 + 1 + 1) / 4 = 0.75.
    # ATE (from the 2 m matches) = 0.7; the other errors 0.
    r = evaluate({"s0": [box("car", 10.0)]}, {"s0": [box("car", 10.7, score=0.5)]})
    car = r.classes["car"]
    assert car.ap == pytest.approx({0.5: 0.0, 1.0: 1.0, 2.0: 1.0, 4.0: 1.0})
    assert car.mean_ap == pytest.approx(0.75)
    assert car.tp_errors["trans_err"] == pytest.approx(0.7)
    assert car.tp_errors["scale_err"] == pytest.approx(0.0, abs=1e-12)
    assert r.mean_ap == pytest.approx(0.075)


def test_match_needs_distance_strictly_below_threshold():
    # 1.0 m off (exactly representable): not a match at 1 m (the devkit tests "<"), a match at 2 and 4 m.
    r = evaluate({"s0": [box("car", 10.0)]}, {"s0": [box("car", 11.0, score=0.5)]})
    assert r.classes["car"].ap == pytest.approx({0.5: 0.0, 1.0: 0.0, 2.0: 1.0, 4.0: 1.0})
    assert r.classes["car"].tp_errors["trans_err"] == pytest.approx(1.0)


def test_wrong_class_matches_nothing():
    # A car predicted as a truck: the car has ground truth but no prediction (AP 0, errors 1); the
    # truck has a prediction but no ground truth (AP 0, errors 1). Nothing scores.
    r = evaluate({"s0": [box("car", 10.0)]}, {"s0": [box("truck", 10.0, score=0.9)]})
    assert r.mean_ap == 0.0
    assert r.classes["car"].tp_errors["trans_err"] == 1.0 and r.classes["truck"].ap[4.0] == 0.0
    assert (r.classes["car"].num_gt, r.classes["car"].num_pred) == (1, 0)
    assert (r.classes["truck"].num_gt, r.classes["truck"].num_pred) == (0, 1)


def test_class_range_and_point_filters():
    ego = (100.0, 200.0, 0.0)  # the ranges are measured from the ego position, not the origin
    gt = {"s0": [
        box("car", 149.9, 200.0, ego=ego),               # 49.9 m: in range (car 50 m)
        box("pedestrian", 145.0, 200.0, ego=ego),        # 45 m: out of range (pedestrian 40 m), dropped
        box("truck", 110.0, 200.0, ego=ego, num_pts=0),  # nothing measured in it: dropped
    ]}
    pred = {"s0": [
        box("car", 150.1, 200.0, score=0.9, ego=ego),         # 50.1 m: the prediction is filtered by ITS distance
        box("pedestrian", 145.0, 200.0, score=0.9, ego=ego),  # filtered too
        box("truck", 110.0, 200.0, score=0.9, ego=ego),       # kept, but its ground truth is gone: a false positive
    ]}
    r = evaluate(gt, pred)
    # car: one ground truth, no prediction left -> AP 0; pedestrian and truck: no ground truth -> AP 0.
    assert r.mean_ap == 0.0
    assert (r.gt_counts.total, r.gt_counts.in_range, r.gt_counts.with_points) == (3, 2, 1)
    assert (r.pred_counts.total, r.pred_counts.in_range) == (3, 1)
    assert r.classes["car"].num_gt == 1 and r.classes["car"].num_pred == 0
    assert r.classes["pedestrian"].num_gt == 0 and r.classes["truck"].num_pred == 1
    # Move the car prediction 0.2 m closer (49.7 m, 0.2 m off): now it is kept and matches at every threshold.
    pred["s0"][0] = box("car", 149.7, 200.0, score=0.9, ego=ego)
    assert evaluate(gt, pred).classes["car"].mean_ap == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("name", "turn", "expected"),
    [
        ("barrier", math.pi, 0.0),            # a barrier's heading only counts modulo pi
        ("barrier", math.pi / 2, math.pi / 2),
        ("car", math.pi, math.pi),            # a car turned round: the largest error
        ("car", -0.25, 0.25),
        ("car", 2 * math.pi - 0.1, 0.1),      # the short way round
    ],
)
def test_orientation_error(name, turn, expected):
    r = evaluate({"s0": [box(name, 10.0, yaw=0.2)]}, {"s0": [box(name, 10.0, yaw=0.2 + turn, score=0.9)]})
    assert r.classes[name].tp_errors["orient_err"] == pytest.approx(expected, abs=1e-9)


def test_scale_velocity_and_attribute_errors():
    gt = {"s0": [box("car", 10.0, wlh=(2.0, 4.0, 1.5), velocity=(1.0, 1.0), attribute="vehicle.moving")]}
    # Size swapped to l w h by mistake: intersection 2 * 2 * 1.5 = 6, union 12 + 12 - 6 = 18,
    # IoU 1/3 -> ASE 2/3. Velocity off by (3, 4) -> AVE 5. Wrong attribute -> AAE 1.
    pred = {"s0": [box("car", 10.0, wlh=(4.0, 2.0, 1.5), velocity=(4.0, 5.0), attribute="vehicle.parked", score=0.9)]}
    err = evaluate(gt, pred).classes["car"].tp_errors
    assert err["scale_err"] == pytest.approx(2 / 3)
    assert err["vel_err"] == pytest.approx(5.0)
    assert err["attr_err"] == pytest.approx(1.0)
    # Twice as large in each dimension: IoU = 1/8 -> ASE 7/8.
    pred["s0"][0]["size"] = [4.0, 8.0, 3.0]
    assert evaluate(gt, pred).classes["car"].tp_errors["scale_err"] == pytest.approx(7 / 8)
    # Ground truth without attribute: the accuracy is NaN for every match, and the devkit then sets
    # the whole attribute curve to 1 (not 0): AAE 1 whatever is predicted.
    gt["s0"][0]["attribute_name"] = ""
    pred["s0"][0]["attribute_name"] = ""
    assert evaluate(gt, pred).classes["car"].tp_errors["attr_err"] == pytest.approx(1.0)


def test_low_score_false_positives_after_the_match():
    # One car, its detection at 0.9, three far false positives at 0.1. In score order: TP, FP, FP, FP
    # -> precision 1, 1/2, 1/3, 1/4, all at recall 1. Recalls below 1 take precision 1; recall 1
    # takes the last, 1/4. AP = (89 * (1 - 0.1) + (1/4 - 0.1)) / 90 / 0.9 = 80.25 / 81 at every threshold.
    gt = {"s0": [box("car", 10.0)]}
    pred = {"s0": [box("car", 10.0, score=0.9)] + [box("car", 30.0, y, score=0.1) for y in (-10.0, 0.0, 10.0)]}
    r = evaluate(gt, pred)
    assert r.classes["car"].ap[2.0] == pytest.approx(80.25 / 81)
    assert r.classes["car"].tp_errors["trans_err"] == pytest.approx(0.0, abs=1e-12)


def test_false_positive_ranked_above_the_match():
    # FP at 0.95 then TP at 0.9: precision 0 at recall 0, 1/2 at recall 1, interpolated p(r) = r / 2.
    # AP = sum over k = 11..100 of max(k/200 - 0.1, 0) / 90 / 0.9; the terms are positive from k = 20:
    # sum_{k=20}^{100} (k/200 - 0.1) = 4860 / 200 - 8.1 = 16.2 -> AP = 16.2 / 81 = 0.2.
    gt = {"s0": [box("car", 10.0)]}
    pred = {"s0": [box("car", 10.0, score=0.9), box("car", 30.0, score=0.95)]}
    assert evaluate(gt, pred).classes["car"].ap[1.0] == pytest.approx(0.2)


def test_missing_detection_halves_recall():
    # Two cars, one detected (0.3 m off): recall 1/2 with precision 1. Precision 1 for r_k <= 0.5,
    # 0 above: k = 11..50, 40 samples -> AP = 40 / 90 = 4/9 at 0.5, 1, 2, 4 m. The highest recall
    # index is 50 >= 11, so ATE = mean of the (constant) error 0.3 over k = 11..50.
    gt = {"s0": [box("car", 10.0), box("car", 20.0, 5.0)]}
    pred = {"s0": [box("car", 10.3, score=0.9)]}
    car = evaluate(gt, pred).classes["car"]
    assert car.ap == pytest.approx({0.5: 4 / 9, 1.0: 4 / 9, 2.0: 4 / 9, 4.0: 4 / 9})
    assert car.tp_errors["trans_err"] == pytest.approx(0.3)


def test_recall_below_min_recall_gives_error_one():
    # 20 cars, one detected exactly: recall 0.05 <= 0.1. AP 0 (no precision above recall 0.1), and
    # since the highest recall index (5) is below 11 the TP errors are 1, not the match's 0.
    gt = {"s0": [box("car", 5.0 + i, 2.0 * (i % 3)) for i in range(20)]}
    pred = {"s0": [box("car", 5.0, 0.0, score=0.9)]}
    car = evaluate(gt, pred).classes["car"]
    assert car.mean_ap == 0.0
    assert car.tp_errors["trans_err"] == 1.0


def test_greedy_matching_by_score_across_samples():
    # Two samples. In s0 two predictions compete for one car: at 2 m the higher score (1.5 m off)
    # takes it and the lower (0.1 m off) is a false positive; s1's car is detected exactly at 0.5.
    # Sorted: 0.9 TP (r .5, p 1), 0.8 FP (r .5, p .5), 0.5 TP (r 1, p 2/3).
    # p(r_k): 1 below r = 0.5 (the first precision); at 0.5 the last precision there, 1/2; above,
    # linear from (0.5, 1/2) to (1, 2/3). The score curve likewise: 0.9, then 0.8 at 0.5, then linear to 0.5.
    gt = {"s0": [box("car", 10.0, token="s0")], "s1": [box("car", 10.0, token="s1")]}
    pred = {"s0": [box("car", 11.5, score=0.9, token="s0"), box("car", 10.1, score=0.8, token="s0")],
            "s1": [box("car", 10.0, score=0.5, token="s1")]}

    def curve(k: int, below: float, at: float, end: float) -> float:
        r = k / 100
        if r < 0.5:
            return below
        if r == 0.5:
            return at
        return at + (r - 0.5) / 0.5 * (end - at)

    def ap(p) -> float:
        return sum(max(p(k) - 0.1, 0.0) for k in range(11, 101)) / 90 / 0.9

    car = evaluate(gt, pred).classes["car"]
    assert car.ap[2.0] == pytest.approx(ap(lambda k: curve(k, 1.0, 0.5, 2 / 3)))
    # At 1 m the 0.9 prediction cannot match: FP, then 0.8 TP, 0.5 TP: p = 0, 1/2, 2/3 at r = 0, 1/2, 1,
    # linear in between: the threshold changes who wins the greedy match.
    assert car.ap[1.0] == pytest.approx(ap(lambda k: curve(k, k / 100, 0.5, 2 / 3)))
    # ATE at 2 m: the matches in score order are 1.5 m (score 0.9) and 0 m (score 0.5); running
    # means 1.5, 0.75, resampled linearly in score at the score curve: e(c) = 0.75 + (c - 0.5) / 0.4 * 0.75.
    ate = [0.75 + (curve(k, 0.9, 0.8, 0.5) - 0.5) / 0.4 * 0.75 for k in range(11, 101)]
    assert car.tp_errors["trans_err"] == pytest.approx(sum(ate) / len(ate))


def test_no_predictions_at_all():
    # Every class: no match -> AP 0 and every error 1 -> every TP score 0 -> mAP 0, NDS 0.
    gt, _ = _perfect_scene()
    r = evaluate(gt, {"s0": []})
    assert r.mean_ap == 0.0 and r.nd_score == 0.0
    assert all(e == 1.0 for e in r.tp_errors.values())


def test_samples_must_agree():
    with pytest.raises(FormatError, match="same samples.*1 only in the ground truth"):
        evaluate({"s0": [box("car", 10.0)], "s1": []}, {"s0": []})
