"""``bevfuse eval`` and its files: the table, --json, and one clear line for a bad file or config."""

from __future__ import annotations

import json
import math

import pytest

from perception.cli import main
from perception.errors import ConfigError, FormatError
from perception.eval import (
    DEFAULT_CONFIG,
    DetectionEvalConfig,
    evaluate,
    load_gt_file,
    load_pred_file,
    write_results_file,
)
from tests.perception.eval.factory import box, random_scene

META = {"use_camera": False, "use_lidar": True, "use_radar": False, "use_map": False, "use_external": False}


@pytest.fixture
def files(tmp_path):
    gt, pred = random_scene(3, n_samples=4)
    gt_path, pred_path = tmp_path / "gt.json", tmp_path / "pred.json"
    write_results_file(gt_path, gt)
    write_results_file(pred_path, pred, meta=META)
    return gt_path, pred_path, gt, pred


def test_table_and_json(files, tmp_path, capsys):
    gt_path, pred_path, gt, pred = files
    out = tmp_path / "metrics.json"
    assert main(["eval", "--gt", str(gt_path), "--pred", str(pred_path), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    expected = evaluate(gt, pred)
    assert f"mAP:  {expected.mean_ap:.4f}" in text and f"NDS:  {expected.nd_score:.4f}" in text
    assert "traffic_cone" in text and "n/a" in text  # the cone's undefined errors
    written = json.loads(out.read_text())  # strict JSON: NaN written as null
    assert written["NDS"] == pytest.approx(expected.nd_score, abs=1e-12)
    assert written["per_class"]["traffic_cone"]["AOE"] is None
    assert written["per_class"]["car"]["AP"]["2.0"] == pytest.approx(expected.classes["car"].ap[2.0])
    assert set(written) >= {"mAP", "NDS", "mATE", "mASE", "mAOE", "mAVE", "mAAE", "per_class", "label_aps", "cfg"}


def test_devkit_config_file(files, tmp_path, capsys):
    gt_path, pred_path, gt, pred = files
    cfg = DEFAULT_CONFIG.to_dict()
    cfg["dist_ths"], cfg["dist_th_tp"] = [1.0, 2.0], 1.0
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    out = tmp_path / "m.json"
    assert main(["eval", "--gt", str(gt_path), "--pred", str(pred_path), "--config", str(cfg_path), "--json", str(out)]) == 0
    written = json.loads(out.read_text())
    assert set(written["per_class"]["car"]["AP"]) == {"1.0", "2.0"}
    assert written["NDS"] == pytest.approx(evaluate(gt, pred, DetectionEvalConfig.from_dict(cfg)).nd_score)
    cfg["dist_th_tp"] = 3.0
    cfg_path.write_text(json.dumps(cfg))
    assert main(["eval", "--gt", str(gt_path), "--pred", str(pred_path), "--config", str(cfg_path)]) == 2
    assert "cfg.json: dist_th_tp: expected one of dist_ths [1.0, 2.0], got 3.0" in capsys.readouterr().err


def _broken(tmp_path, data, name="pred.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _one(**changes):
    b = box("car", 10.0, score=0.5)
    b.update(changes)
    for key, value in list(b.items()):
        if value is None:
            del b[key]
    return {"meta": META, "results": {"s0": [b]}}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "pred.json: not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
        ([], "pred.json: expected a JSON object with key 'results', got list"),
        ({"meta": META}, "pred.json: missing key 'results'"),
        ({"results": {}}, "pred.json: missing key 'meta'"),
        ({"meta": META, "results": []}, "pred.json: results: expected an object mapping sample_token"),
        ({"meta": META, "results": {"s0": {}}}, "pred.json: results['s0']: expected a list of boxes, got dict"),
        (_one(translation=[1, 2]), "pred.json: results['s0'][0].translation: expected a list of 3 numbers, got [1, 2]"),
        (_one(translation=None), "pred.json: results['s0'][0].translation: expected a list of 3 numbers, got missing"),
        (_one(translation=[1, "a", 3]), "results['s0'][0].translation: expected a list of 3 numbers, got [1, 'a', 3]"),
        (_one(size=[1.0, 0.0, 1.0]), "results['s0'][0].size: expected width length height > 0"),
        (_one(rotation=[0, 0, 0, 0]), "results['s0'][0].rotation: expected a non-zero quaternion"),
        (_one(ego_translation=None), "results['s0'][0].ego_translation: expected a list of 3 numbers, got missing"),
        (_one(detection_name="sign"), "results['s0'][0].detection_name: expected one of ['car'"),
        (_one(detection_score=None), "results['s0'][0].detection_score: expected a finite number, got missing"),
        (_one(detection_score="high"), "results['s0'][0].detection_score: expected a finite number, got 'high'"),
        (_one(attribute_name="vehicle.flying"), "results['s0'][0].attribute_name: expected '' or one of"),
        (_one(sample_token="s9"), "results['s0'][0].sample_token: 's9' differs from the key"),
        (_one(num_pts=1.5), "results['s0'][0].num_pts: expected an integer, got 1.5"),
    ],
)
def test_bad_prediction_file_gives_one_line(tmp_path, capsys, content, message):
    gt = _broken(tmp_path, {"results": {"s0": [box("car", 10.0)]}}, "gt.json")
    pred = _broken(tmp_path, content)
    assert main(["eval", "--gt", str(gt), "--pred", str(pred)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bevfuse eval: error: ") and err.count("\n") == 1
    assert message in err


def test_missing_file_and_sample_mismatch(tmp_path, capsys):
    gt = _broken(tmp_path, {"results": {"s0": [box("car", 10.0)], "s1": []}}, "gt.json")
    assert main(["eval", "--gt", str(gt), "--pred", str(tmp_path / "nope.json")]) == 2
    assert "nope.json: no such file" in capsys.readouterr().err
    pred = _broken(tmp_path, {"meta": META, "results": {"s0": []}})
    assert main(["eval", "--gt", str(gt), "--pred", str(pred)]) == 2
    assert "must cover the same samples" in capsys.readouterr().err


def test_too_many_boxes_per_sample(tmp_path):
    pred = _broken(tmp_path, {"meta": META, "results": {"s0": [box("car", 10.0, score=0.1)] * 501}})
    with pytest.raises(FormatError, match=r"results\['s0'\]: 501 boxes, at most 500"):
        load_pred_file(pred)


def test_nan_and_null_velocity_are_read(tmp_path):
    gt = {"s0": [box("car", 10.0, velocity=(math.nan, math.nan))]}
    path = tmp_path / "gt.json"
    write_results_file(path, gt)
    assert "NaN" in path.read_text()  # the devkit's own JSON reads it back
    text = path.read_text().replace("NaN", "null")
    path.write_text(text)
    assert math.isnan(load_gt_file(path).velocity[0, 0])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"class_range": {"car": 50}}, "class_range: expected exactly the ten detection classes"),
        ({"dist_ths": [0.5, -1.0]}, "dist_ths: expected distinct positive metres"),
        ({"min_precision": 1.0}, "min_precision: expected 0 <= value < 1"),
        ({"max_boxes_per_sample": 0}, "max_boxes_per_sample: expected an integer >= 1"),
        ({"dist_fcn": "iou"}, "dist_fcn: expected 'center_distance'"),
        ({"extra": 1}, "unknown key(s) ['extra']"),
    ],
)
def test_config_validation(changes, message):
    data = {**DEFAULT_CONFIG.to_dict(), **changes}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        DetectionEvalConfig.from_dict(data, source="cfg.json")
