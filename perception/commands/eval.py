"""``bevfuse eval --gt GT.json --pred PRED.json [--json OUT] [--config CFG.json]``: nuScenes detection metrics.

Prints mAP, the mean TP errors and NDS, then a row per class (AP, AP per matching threshold, TP
errors, boxes evaluated). ``--json`` also writes the figures (``EvalResult.to_json``). A malformed
file ends the command with one line naming the file and the key (exit 2, from ``perception.cli``).
"""

from __future__ import annotations

import argparse

NAME = "eval"
HELP = "nuScenes detection metrics (mAP, TP errors, NDS) of a submission against ground truth"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, metavar="GT.json",
                        help='ground truth {"results": {sample_token: [box, ...]}}, boxes with ego_translation and num_pts')
    parser.add_argument("--pred", required=True, metavar="PRED.json",
                        help="predictions in the nuScenes submission format, boxes with ego_translation")
    parser.add_argument("--json", metavar="OUT", help="also write the figures to this JSON file")
    parser.add_argument("--config", metavar="CFG.json",
                        help="evaluation settings in the devkit's layout (default: detection_cvpr_2019)")


def run(args: argparse.Namespace) -> int:
    from perception.eval import (
        DEFAULT_CONFIG,
        evaluate_boxes,
        format_table,
        load_config_file,
        load_gt_file,
        load_pred_file,
        write_json,
    )

    config = load_config_file(args.config) if args.config else DEFAULT_CONFIG
    gt = load_gt_file(args.gt)
    pred = load_pred_file(args.pred, config)
    result = evaluate_boxes(gt, pred, config)
    print(format_table(result))
    if args.json:
        write_json(args.json, result.to_json())
        print(f"wrote {args.json}")
    return 0
