"""``bevfuse train --data DIR... --config tiny --out CKPT``: train the network on drive logs with ground truth."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perception.config import PipelineConfig

NAME = "train"
HELP = "train the BEV fusion network on drive logs with ground truth (simulator logs)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", required=True, metavar="LOG", help="training drive logs (bags with /ground_truth)")
    parser.add_argument("--config", default="tiny", help="preset name (tiny, base) or a YAML config file (default tiny)")
    parser.add_argument("--out", required=True, help="checkpoint to write (also OUT.resume.pt, OUT.log.jsonl, OUT.png)")
    parser.add_argument("--steps", type=int, default=2000, help="optimizer steps (default 2000)")
    parser.add_argument("--batch-size", type=int, default=4, help="frames per step (default 4)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of the one-cycle schedule (default 2e-3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation, order, augmentation and dropout")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--device", default="cpu", help="torch device to train on (default cpu; cuda where present)")
    parser.add_argument("--checkpoint-every", type=int, default=200, help="write OUT and OUT.resume.pt every N steps (default 200)")
    parser.add_argument("--every", type=int, default=1, help="use every N-th synchronized frame of each log (default 1)")
    parser.add_argument("--max-frames", type=int, help="at most this many training frames")
    parser.add_argument("--cache", help="folder caching the converted frames, one file per log (reused when log and config match)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT.resume.pt")
    parser.add_argument("--no-augment", action="store_true", help="no global rotation / flip / scale")
    parser.add_argument("--no-dropout", action="store_true", help="no modality dropout")
    parser.add_argument("--eval-data", nargs="+", metavar="LOG", help="held-out logs to evaluate on")
    parser.add_argument("--eval-every", type=int, default=1, help="evaluate every N-th held-out frame (default 1)")
    parser.add_argument("--score-threshold", type=float, default=0.1, help="evaluation: decode score threshold (default 0.1)")
    parser.add_argument("--eval-only", action="store_true", help="skip training: evaluate the checkpoint OUT on --eval-data")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from perception.model.config import resolve_config
    from perception.model.data import cached_frames
    from perception.model.train import TrainOptions, train

    cfg = resolve_config(args.config)
    if not args.eval_only:
        t0 = time.perf_counter()
        frames = cached_frames(args.data, cfg, args.every, args.cache)[: args.max_frames]
        print(f"train: {len(frames)} frames from {len(args.data)} logs ({time.perf_counter() - t0:.0f} s)")
        options = TrainOptions(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, threads=args.threads,
                               checkpoint_every=args.checkpoint_every, device=args.device)
        if args.no_augment:
            options = replace(options, augment=None)
        if args.no_dropout:
            options = replace(options, dropout=replace(options.dropout, lidar=0.0, camera=0.0, radar=0.0, single_camera=0.0))
        meta = {"data": [str(p) for p in args.data], "config_name": args.config, "command": "bevfuse train"}
        out = train(cfg, frames, args.out, options, resume=args.resume, meta=meta, progress=not args.no_progress)
        print(f"{out}: checkpoint ({Path(out).stat().st_size / 1e6:.1f} MB); log {out}.log.jsonl, curves {out}.png")
    if args.eval_data:
        evaluate_checkpoint(args, cfg)
    return 0


def evaluate_checkpoint(args: argparse.Namespace, cfg: PipelineConfig) -> None:
    """nuScenes metrics of the checkpoint on the held-out logs: all sensors, no cameras, no LiDAR."""
    import torch

    from perception.eval import format_table
    from perception.model.backends import make_backend
    from perception.model.data import cached_frames
    from perception.model.evaluate import evaluate_frames

    torch.set_num_threads(args.threads)
    backend = make_backend("torch", checkpoint=args.out, expect=cfg)
    held = cached_frames(args.eval_data, cfg, args.every, args.cache)[:: args.eval_every]
    results = {}
    for drop in ("all", "no-camera", "no-lidar"):
        t0 = time.perf_counter()
        r = evaluate_frames(backend, held, cfg, drop, args.score_threshold)
        results[drop] = r.to_json()
        print(f"eval {drop}: mAP {r.mean_ap:.4f} NDS {r.nd_score:.4f} on {len(held)} frames ({time.perf_counter() - t0:.0f} s)")
        print(format_table(r))
    Path(f"{args.out}.eval.json").write_text(json.dumps(results, indent=1))
