"""Box dicts for the evaluation tests: one hand-made box, and seeded random scenes.

The random scenes are built to reach every branch of the devkit's algorithm: boxes out of class
range, ground truth without points, NaN velocities, missing attributes, tilted and unnormalised
quaternions, barriers turned by pi, duplicate and false detections, tied scores, a class with
predictions but no ground truth (trailer) and one with ground truth but no predictions (bus).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from perception.eval.config import CLASS_ATTRIBUTES, DETECTION_NAMES

__all__ = ["box", "quaternion", "random_scene"]

# Rough (w, l, h) of each class, so that scale errors look like real ones.
TYPICAL_WLH = {
    "car": (1.9, 4.6, 1.7), "truck": (2.5, 7.0, 3.0), "bus": (2.9, 11.0, 3.5), "trailer": (2.9, 12.0, 3.9),
    "construction_vehicle": (2.8, 6.5, 3.2), "pedestrian": (0.7, 0.7, 1.8), "motorcycle": (0.8, 2.1, 1.5),
    "bicycle": (0.6, 1.7, 1.3), "traffic_cone": (0.4, 0.4, 1.0), "barrier": (2.5, 0.5, 1.0),
}


def quaternion(yaw: float, roll: float = 0.0, scale: float = 1.0) -> list[float]:
    """w x y z of a rotation by ``yaw`` about z after ``roll`` about x, times ``scale`` (unnormalised on purpose)."""
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    # Hamilton product (cy, 0, 0, sy) * (cr, sr, 0, 0).
    return [scale * cy * cr, scale * cy * sr, scale * sy * sr, scale * sy * cr]


def box(name: str, x: float, y: float = 0.0, *, score: float | None = None, yaw: float = 0.0,
        wlh: tuple[float, float, float] | None = None, velocity: tuple[float, float] = (0.0, 0.0),
        attribute: str | None = None, num_pts: int = 10, ego: tuple[float, float, float] = (0.0, 0.0, 0.0),
        token: str = "s0") -> dict[str, Any]:
    """One box dict at (x, y, 1) in the global frame, the ego vehicle at ``ego``.

    ``score`` None makes a ground-truth box (with ``num_pts``); a number makes a prediction. The
    attribute defaults to the class's first one ('' for barrier and cone).
    """
    translation = [float(x), float(y), 1.0]
    if attribute is None:
        attribute = (CLASS_ATTRIBUTES[name] or ("",))[0]
    out: dict[str, Any] = {
        "sample_token": token,
        "translation": translation,
        "size": list(wlh or TYPICAL_WLH[name]),
        "rotation": quaternion(yaw),
        "velocity": list(velocity),
        "ego_translation": [translation[i] - ego[i] for i in range(3)],
        "detection_name": name,
        "attribute_name": attribute,
    }
    if score is None:
        out["num_pts"] = num_pts
        out["detection_score"] = -1.0
    else:
        out["detection_score"] = float(score)
    return out


def _random_box(rng: np.random.Generator, token: str, name: str, ego: np.ndarray, max_range: float) -> dict[str, Any]:
    r, theta = rng.uniform(1.0, max_range), rng.uniform(-math.pi, math.pi)
    translation = [ego[0] + r * math.cos(theta), ego[1] + r * math.sin(theta), ego[2] + rng.uniform(0.3, 2.0)]
    wlh = [s * math.exp(rng.normal(0, 0.15)) for s in TYPICAL_WLH[name]]
    moving = name not in ("barrier", "traffic_cone")
    velocity = [float(v) for v in rng.normal(0, 3.0, 2)] if moving else [0.0, 0.0]
    if moving and rng.random() < 0.1:
        velocity = [math.nan, math.nan]  # the devkit's GT velocity where it cannot be estimated
    choices = CLASS_ATTRIBUTES[name]
    attribute = "" if not choices or rng.random() < 0.1 else str(rng.choice(choices))
    return {
        "sample_token": token, "translation": translation, "size": wlh,
        "rotation": quaternion(rng.uniform(-math.pi, math.pi), rng.normal(0, 0.05), rng.uniform(0.5, 2.0)),
        "velocity": velocity, "ego_translation": [translation[i] - ego[i] for i in range(3)],
        "num_pts": 0 if rng.random() < 0.08 else int(rng.integers(1, 300)),
        "detection_name": name, "detection_score": -1.0, "attribute_name": attribute,
    }


def _detect(rng: np.random.Generator, gt: dict[str, Any], ego: np.ndarray) -> dict[str, Any]:
    """A noisy detection of ground-truth box ``gt``."""
    name = gt["detection_name"]
    sigma = float(rng.choice([0.05, 0.3, 0.8, 2.0]))
    translation = [gt["translation"][0] + rng.normal(0, sigma), gt["translation"][1] + rng.normal(0, sigma),
                   gt["translation"][2] + rng.normal(0, 0.2)]
    w, x, y, z = gt["rotation"]
    yaw = math.atan2(2 * (w * z + x * y), w * w + x * x - y * y - z * z) + rng.normal(0, 0.2)
    if rng.random() < 0.15:
        yaw += math.pi  # heading flipped: free for a barrier, the worst error for the others
    velocity = gt["velocity"] if not math.isnan(gt["velocity"][0]) else [0.0, 0.0]
    choices = CLASS_ATTRIBUTES[name]
    attribute = gt["attribute_name"] if rng.random() < 0.8 or not choices else str(rng.choice(choices))
    return {
        "sample_token": gt["sample_token"], "translation": translation,
        "size": [s * math.exp(rng.normal(0, 0.1)) for s in gt["size"]],
        "rotation": quaternion(yaw), "velocity": [v + float(rng.normal(0, 0.7)) for v in velocity],
        "ego_translation": [translation[i] - ego[i] for i in range(3)],
        # Two decimals: ties between scores are common, as the devkit's tie order must be matched.
        "detection_name": name, "detection_score": round(float(rng.uniform(0.05, 1.0)), 2),
        "attribute_name": attribute,
    }


def random_scene(seed: int, n_samples: int = 10) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    """(ground truth, predictions) over ``n_samples`` samples; the same seed gives the same scene."""
    rng = np.random.default_rng(seed)
    gt: dict[str, list[dict[str, Any]]] = {}
    pred: dict[str, list[dict[str, Any]]] = {}
    for s in range(n_samples):
        token = f"scene{seed}-sample{s}"
        ego = np.array([rng.uniform(-800, 800), rng.uniform(-800, 800), 0.0])
        gt[token], pred[token] = [], []
        for name in DETECTION_NAMES:
            if name == "trailer":
                continue  # no ground truth: its predictions are all false positives
            for _ in range(int(rng.integers(0, 5))):
                g = _random_box(rng, token, name, ego, 60.0)
                gt[token].append(g)
                if name == "bus" or rng.random() < 0.2:
                    continue  # missed
                pred[token].append(_detect(rng, g, ego))
                if rng.random() < 0.1:
                    pred[token].append(_detect(rng, g, ego))  # a duplicate detection
        for _ in range(int(rng.integers(0, 8))):  # false positives anywhere
            name = str(rng.choice([n for n in DETECTION_NAMES if n != "bus"]))
            fp = _random_box(rng, token, name, ego, 60.0)
            fp.pop("num_pts")
            fp["detection_score"] = round(float(rng.uniform(0.0, 0.6)), 2)
            pred[token].append(fp)
        order = rng.permutation(len(pred[token]))  # file order decides ties: shuffle it
        pred[token] = [pred[token][i] for i in order]
    return gt, pred
