"""The evaluation on the real nuScenes demo keyframe (../shared/realdata/nuscenes_demo, 68 annotated boxes).

Ground truth is built from the tables by ``load_nuscenes_gt`` (ego position from the ego pose of the
LIDAR_TOP sample_data; velocities from annotation_velocity_global.json, since a lone keyframe has
no neighbours to estimate them from). The devkit's side is built through its own ``NuScenes`` db,
``add_center_dist`` and the whole ``filter_eval_boxes`` (bicycle-rack stage included).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from calib import se3
from perception.eval import (
    DETECTION_NAMES,
    boxes_to_detections,
    detections_to_boxes,
    evaluate,
    load_nuscenes_gt,
)
from perception.types import Detections
from tests.perception.eval.devkit import assert_parity, devkit_boxes, devkit_config, devkit_run, require_devkit

VERSION = "v1.0-demo"
SAMPLE = "ca9a282c9e77460f8360f564131a8af5"
# In range of their class and with points, per class (car 50 m, pedestrian 40 m, cone/barrier 30 m).
PRESENT = {"car": 4, "truck": 2, "pedestrian": 10, "traffic_cone": 3, "barrier": 14}


@pytest.fixture(scope="module")
def demo(realdata: Path) -> dict[str, Any]:
    root = realdata / "nuscenes_demo"
    velocities = json.loads((root / "annotation_velocity_global.json").read_text())
    gt = load_nuscenes_gt(root, VERSION, velocities=velocities)
    tables = root / VERSION
    sd = next(r for r in json.loads((tables / "sample_data.json").read_text())
              if r["sample_token"] == SAMPLE and "LIDAR_TOP" in r["filename"] and r["is_key_frame"])
    pose = next(r for r in json.loads((tables / "ego_pose.json").read_text()) if r["token"] == sd["ego_pose_token"])
    return {"root": root, "velocities": velocities, "gt": gt.results, "racks": gt.rack_count,
            "world_T_ego": se3.from_rotation_translation(pose["rotation"], pose["translation"])}


def _scored(results: dict[str, list[dict]], score: float = 0.8) -> dict[str, list[dict]]:
    return {t: [dict(b, detection_score=score) for b in boxes] for t, boxes in results.items()}


def test_ground_truth_from_the_tables(demo):
    boxes = demo["gt"][SAMPLE]
    assert list(demo["gt"]) == [SAMPLE] and len(boxes) == 68 and demo["racks"] == 0
    assert sum(b["attribute_name"] != "" for b in boxes) == 43
    # Eight of the ten classes are annotated (no trailer, no motorcycle; category.json lists all ten).
    assert {b["detection_name"] for b in boxes} == set(DETECTION_NAMES) - {"trailer", "motorcycle"}
    ego = demo["world_T_ego"][:3, 3]
    for b in boxes:
        np.testing.assert_allclose(b["ego_translation"], np.asarray(b["translation"]) - ego, atol=1e-9)
        assert b["num_pts"] >= 0 and all(s > 0 for s in b["size"])
    first = boxes[0]  # the first record of sample_annotation.json: a standing pedestrian, 1 LiDAR point
    assert first["detection_name"] == "pedestrian" and first["attribute_name"] == "pedestrian.standing"
    assert first["size"] == [0.621, 0.669, 1.642] and first["num_pts"] == 1
    # Without the velocity file a lone keyframe has no velocity (the devkit's box_velocity gives NaN).
    bare = load_nuscenes_gt(demo["root"], VERSION).results[SAMPLE]
    assert all(math.isnan(b["velocity"][0]) for b in bare)


def test_self_evaluation(demo):
    # Perfect on the five classes present within range: AP 1, errors 0. The five absent classes
    # (bus, trailer, construction vehicle, motorcycle, bicycle: none within range with points) count
    # as AP 0 and errors 1, as in the devkit, so mAP = 5/10, not 1:
    # mATE = mASE = 5/10; mAOE: cone undefined -> 5/9; mAVE = mAAE: cone, barrier undefined -> 5/8.
    # NDS = (5 * 0.5 + 0.5 + 0.5 + 4/9 + 3/8 + 3/8) / 10.
    r = evaluate(demo["gt"], _scored(demo["gt"]))
    assert {n: c.num_gt for n, c in r.classes.items() if c.num_gt} == PRESENT
    for name in PRESENT:
        c = r.classes[name]
        assert c.mean_ap == pytest.approx(1.0)
        assert all(math.isnan(e) or e == pytest.approx(0.0, abs=1e-9) for e in c.tp_errors.values()), name
    assert r.mean_ap == pytest.approx(0.5)
    assert r.error("AOE") == pytest.approx(5 / 9) and r.error("AVE") == pytest.approx(5 / 8)
    assert r.nd_score == pytest.approx((2.5 + 0.5 + 0.5 + 4 / 9 + 3 / 8 + 3 / 8) / 10)
    assert (r.gt_counts.total, r.gt_counts.in_range, r.gt_counts.with_points) == (68, 34, 33)


def _perturbed(demo: dict[str, Any], seed: int) -> dict[str, list[dict]]:
    """Detections in the ego frame made from the ground truth with noise, misses and false positives,
    written back to the global frame through the LIDAR_TOP ego pose (the way bevfuse writes a submission)."""
    rng = np.random.default_rng(seed)
    world_T_ego = demo["world_T_ego"]
    gt = boxes_to_detections(demo["gt"][SAMPLE], ego_T_world=se3.invert(world_T_ego))
    keep = rng.random(len(gt)) > 0.15
    d = gt.select(keep)
    n = len(d)
    n_fp = 12
    fp_r, fp_theta = rng.uniform(2, 45, n_fp), rng.uniform(-np.pi, np.pi, n_fp)
    center = np.concatenate([
        d.center + np.column_stack([rng.normal(0, 0.4, (n, 2)), rng.normal(0, 0.1, n)]),
        np.column_stack([fp_r * np.cos(fp_theta), fp_r * np.sin(fp_theta), np.ones(n_fp)]),
    ])
    label = np.concatenate([d.label, rng.integers(0, len(d.class_names), n_fp)])
    size = np.concatenate([d.size * np.exp(rng.normal(0, 0.1, (n, 3))), np.tile([[4.0, 2.0, 1.6]], (n_fp, 1))])
    yaw = np.concatenate([d.yaw + rng.normal(0, 0.2, n) + np.pi * (rng.random(n) < 0.1), rng.uniform(-3, 3, n_fp)])
    velocity = np.concatenate([np.nan_to_num(d.velocity) + rng.normal(0, 0.5, (n, 2)), rng.normal(0, 2, (n_fp, 2))])
    attribute = np.concatenate([d.attribute, np.array([""] * n_fp, dtype=object)])
    score = np.round(rng.uniform(0.05, 1.0, n + n_fp), 2).astype(np.float32)
    dets = Detections(stamp_ns=0, frame_id="ego", class_names=d.class_names, center=center, size=size, yaw=yaw,
                      velocity=velocity, score=score, label=label.astype(np.int64), attribute=attribute)
    return {SAMPLE: detections_to_boxes(dets, SAMPLE, world_T_ego=world_T_ego)}


def _devkit_side(demo: dict[str, Any], pred: dict[str, list[dict]]) -> tuple[Any, Any, Any]:
    """The devkit's ground truth (as its load_gt builds it) and predictions, both with its add_center_dist
    (before its filter_eval_boxes), and its result."""
    from nuscenes import NuScenes
    from nuscenes.eval.common.data_classes import EvalBoxes
    from nuscenes.eval.common.loaders import add_center_dist, filter_eval_boxes
    from nuscenes.eval.detection.data_classes import DetectionBox
    from nuscenes.eval.detection.utils import category_to_detection_name

    nusc = NuScenes(version=VERSION, dataroot=str(demo["root"]), verbose=False)
    cfg = devkit_config()
    gt = EvalBoxes()
    for sample in nusc.sample:
        boxes = []
        for token in sample["anns"]:
            ann = nusc.get("sample_annotation", token)
            name = category_to_detection_name(ann["category_name"])
            if name is None:
                continue
            attrs = ann["attribute_tokens"]
            boxes.append(DetectionBox(
                sample_token=sample["token"], translation=ann["translation"], size=ann["size"], rotation=ann["rotation"],
                velocity=tuple(demo["velocities"].get(token, nusc.box_velocity(token)[:2])),
                num_pts=ann["num_lidar_pts"] + ann["num_radar_pts"], detection_name=name, detection_score=-1.0,
                attribute_name=nusc.get("attribute", attrs[0])["name"] if attrs else "",
            ))
        gt.add_boxes(sample["token"], boxes)
    gt = add_center_dist(nusc, gt)
    gt_unfiltered = [b.serialize() for b in gt[SAMPLE]]
    pred_boxes = add_center_dist(nusc, devkit_boxes(pred))
    pred_unfiltered = [b.serialize() for b in pred_boxes[SAMPLE]]
    gt = filter_eval_boxes(nusc, gt, cfg.class_range)
    pred_boxes = filter_eval_boxes(nusc, pred_boxes, cfg.class_range)
    return gt_unfiltered, pred_unfiltered, devkit_run(gt, pred_boxes, cfg)


@pytest.mark.parametrize("seed", [None, 7, 8])
def test_parity_with_the_devkit(demo, seed):
    require_devkit()
    pred = _scored(demo["gt"]) if seed is None else _perturbed(demo, seed)
    devkit_gt, devkit_pred, (metrics, md_list) = _devkit_side(demo, pred)
    # Our ground truth is the devkit's, box for box (order, values, ego_translation from the pose).
    ours = demo["gt"][SAMPLE]
    assert len(ours) == len(devkit_gt)
    for a, b in zip(ours, devkit_gt):
        assert a["detection_name"] == b["detection_name"] and a["attribute_name"] == b["attribute_name"]
        assert a["num_pts"] == b["num_pts"]
        for key in ("translation", "size", "rotation", "velocity", "ego_translation"):
            np.testing.assert_allclose(a[key], b[key], atol=1e-9, err_msg=key)
    # The submission's ego_translation (from world_T_ego) is the devkit's add_center_dist.
    assert len(pred[SAMPLE]) == len(devkit_pred)
    for a, b in zip(pred[SAMPLE], devkit_pred):
        np.testing.assert_allclose(a["ego_translation"], b["ego_translation"], atol=1e-9)
    result = evaluate(demo["gt"], pred)
    assert_parity(result, metrics, md_list)
    if seed is not None:
        assert 0.0 < result.mean_ap < 0.5 and 0.0 < result.nd_score < 0.5


def test_ego_frame_round_trip_keeps_the_boxes(demo):
    # Global -> ego Detections -> global: positions, sizes, headings and velocities come back (the
    # rotation becomes upright, so the quaternion differs but its heading does not).
    world_T_ego = demo["world_T_ego"]
    boxes = demo["gt"][SAMPLE]
    dets = boxes_to_detections(boxes, ego_T_world=se3.invert(world_T_ego))
    assert dets.frame_id == "ego" and dets.num_lidar_pts is not None
    # In the ego frame the ranges are plain distances from the origin.
    np.testing.assert_allclose(np.hypot(dets.center[:, 0], dets.center[:, 1]),
                               [np.hypot(*b["ego_translation"][:2]) for b in boxes], atol=0.05)
    back = detections_to_boxes(dets, SAMPLE, world_T_ego=world_T_ego, ground_truth=True)
    for a, b in zip(boxes, back):
        np.testing.assert_allclose(b["translation"], a["translation"], atol=1e-9)
        np.testing.assert_allclose(b["size"], a["size"], atol=1e-12)
        np.testing.assert_allclose(b["ego_translation"], a["ego_translation"], atol=1e-9)
        # The velocity goes through the ego frame as an (vx, vy, 0) vector: the pose's small tilt
        # (~0.02 rad) drops a part of order tilt^2 of it on the way (transform_boxes keeps boxes upright).
        # An unknown (NaN) velocity stays unknown.
        if math.isnan(a["velocity"][0]):
            assert math.isnan(b["velocity"][0])
        else:
            assert np.linalg.norm(np.subtract(b["velocity"], a["velocity"])) <= 2e-3 * np.linalg.norm(a["velocity"]) + 1e-12
        assert b["num_pts"] == a["num_pts"] and b["attribute_name"] == a["attribute_name"]
    r = evaluate(demo["gt"], _scored({SAMPLE: back}))
    assert r.mean_ap == pytest.approx(0.5)
    assert r.classes["car"].tp_errors["orient_err"] < 1e-3 and r.classes["car"].tp_errors["trans_err"] < 1e-9


def test_velocity_estimate_matches_the_devkit(demo, tmp_path):
    # Three keyframes built from the demo's tables (copied to tmp_path, never into the repo): every
    # annotation of the demo sample reappears 0.5 s and 4.0 s later, moved, chained by prev/next.
    # The middle one gets a centred difference over 4.0 s (> 2 * 1.5 s: NaN), the first a forward
    # difference over 0.5 s, the last a backward one over 3.5 s (> 1.5 s: NaN).
    require_devkit()
    from nuscenes import NuScenes

    tables = tmp_path / VERSION
    shutil.copytree(demo["root"] / VERSION, tables)
    load = {name: json.loads((tables / f"{name}.json").read_text())
            for name in ("sample", "sample_annotation", "sample_data", "ego_pose")}
    first = load["sample"][0]
    lidar = next(r for r in load["sample_data"] if r["sample_token"] == SAMPLE and "LIDAR_TOP" in r["filename"])
    pose = next(r for r in load["ego_pose"] if r["token"] == lidar["ego_pose_token"])
    originals = [a for a in load["sample_annotation"] if a["sample_token"] == SAMPLE]
    prev_ann = {a["token"]: a for a in originals}
    for k, dt in enumerate((0.5, 4.0), start=1):
        token = f"sample{k}"
        load["sample"].append(dict(first, token=token, timestamp=first["timestamp"] + int(dt * 1e6)))
        load["ego_pose"].append(dict(pose, token=f"pose{k}", translation=[pose["translation"][0] + 5.0 * k,
                                                                          *pose["translation"][1:]]))
        load["sample_data"].append(dict(lidar, token=f"sd{k}", sample_token=token, ego_pose_token=f"pose{k}"))
        moved = {}
        for i, a in enumerate(originals):
            new = dict(a, token=f"ann{k}-{i}", sample_token=token, prev=prev_ann[a["token"]]["token"], next="",
                       translation=[a["translation"][0] + 0.3 * i * k, a["translation"][1] - 0.1 * k, a["translation"][2]])
            prev_ann[a["token"]]["next"] = new["token"]
            load["sample_annotation"].append(new)
            moved[a["token"]] = new
        prev_ann = {orig: moved[orig] for orig in prev_ann}
    for name, records in load.items():
        (tables / f"{name}.json").write_text(json.dumps(records))

    ours = load_nuscenes_gt(tmp_path, VERSION).results
    nusc = NuScenes(version=VERSION, dataroot=str(tmp_path), verbose=False)
    seen = {"finite": 0, "nan": 0}
    for token, boxes in ours.items():
        anns = [nusc.get("sample_annotation", t) for t in nusc.get("sample", token)["anns"]]
        anns = [a for a in anns if a["category_name"] != "static_object.bicycle_rack"]
        assert len(boxes) == len(anns)
        for b, a in zip(boxes, anns):
            expected = nusc.box_velocity(a["token"])[:2]
            np.testing.assert_allclose(b["velocity"], expected, atol=1e-9, equal_nan=True)
            seen["nan" if math.isnan(expected[0]) else "finite"] += 1
        np.testing.assert_allclose([b["ego_translation"][0] for b in boxes],
                                   [b["translation"][0] - nusc.get("ego_pose", nusc.get(
                                       "sample_data", nusc.get("sample", token)["data"]["LIDAR_TOP"])["ego_pose_token"])
                                    ["translation"][0] for b in boxes], atol=1e-9)
    assert seen == {"finite": 68, "nan": 136}
