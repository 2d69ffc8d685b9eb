#!/usr/bin/env python3
"""Parameters and FLOPs of the network presets, for docs/MODEL.md.

    .venv/bin/python tools/model_stats.py [tiny base ...] [--markdown]

FLOPs are counted by ``torch.utils.flop_counter`` over one forward of batch 1 with the default
random inputs (a multiply-add counts 2). It counts convolutions and matrix products, which are
nearly all of the work; GridSample, the scatter, batch norm (folded at export) and elementwise ops
are not counted, so the figure is a slight underestimate.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from perception.model.config import PRESETS, preset  # noqa: E402
from perception.model.network import build_model  # noqa: E402
from perception.model.spec import random_inputs  # noqa: E402

PARTS = ("pillar_net", "lidar_stem", "camera_backbone", "camera_to_bev", "radar_stem", "fuser", "backbone", "head")


def stats(name: str) -> dict[str, object]:
    cfg = preset(name)
    net = build_model(cfg).eval()
    x = {k: torch.from_numpy(v) for k, v in random_inputs(cfg).items()}
    counter = FlopCounterMode(display=False, depth=2)
    with torch.no_grad(), counter:
        net(x)
    with torch.no_grad():  # timed apart: the counter's bookkeeping slows the forward it counts
        start = time.perf_counter()
        net(x)
        seconds = time.perf_counter() - start
    per_module = counter.get_flop_counts()
    parts = {p: sum(per_module.get(f"BEVFusionNet.{p}", {}).values()) for p in PARTS}
    return {
        "name": name,
        "grid": f"{cfg.grid.nx}x{cfg.grid.ny} @ {cfg.grid.cell_m} m, head {cfg.grid.nx // cfg.model.fuse_stride}"
                f"x{cfg.grid.ny // cfg.model.fuse_stride}",
        "cameras": f"{cfg.model.camera.num_cameras} x {cfg.model.camera.image_height}x{cfg.model.camera.image_width}",
        "params": sum(p.numel() for p in net.parameters()),
        "gflops": counter.get_total_flops() / 1e9,
        "parts": {p: f / 1e9 for p, f in parts.items()},
        "cpu_s": seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("presets", nargs="*", default=list(PRESETS), help=f"presets (default: {' '.join(PRESETS)})")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads for the timed forward (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| config | grid | cameras | parameters | GFLOPs | " + " | ".join(PARTS) + " | CPU forward s |")
    print("|---" * (6 + len(PARTS)) + "|")
    for name in args.presets:
        s = stats(name)
        parts = " | ".join(f"{v:.2f}" for v in s["parts"].values())  # type: ignore[union-attr]
        print(f"| {s['name']} | {s['grid']} | {s['cameras']} | {s['params']:,} | {s['gflops']:.2f} | {parts} "
              f"| {s['cpu_s']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
