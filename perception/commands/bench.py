"""``bevfuse bench [--config tiny|base] [--device cpu|cuda] [--backend ...] [--precision fp32|fp16|int8]
[--frames N] [--warmup N] [--input sim|LOG] [--compare SPEC,...] [--rate R] [--soak N] [--json OUT]
[--plots DIR]``: latency of the whole stack, stage by stage.

Times decode, sync, preprocess, network, postprocess and output per frame (CUDA events for the
pipeline's stages on a GPU, the CPU clock elsewhere) and end to end; prints p50, p90, p99, p99.9,
max, mean and std per stage, the throughput, the memory and the load average. ``--input sim``
(default) simulates a 5 s log once into the cache and cycles its frames (perception.bench.frames
says how); ``--compare`` interleaves several runs frame by frame and prints their ratios to the
first; ``--soak N`` runs N frames and reports drift (p99 of the first and last thousand frames,
RSS at the start and the end). ``--json`` writes the ``latency.json`` schema of ``bevfuse
replay`` with extended statistics; ``--plots`` writes stages.png, cdf.png and timeline.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from perception.commands.argtypes import non_negative_int, positive_float, positive_int

NAME = "bench"
HELP = "time every stage of the stack (decode .. output) on simulated or recorded frames; compare backends; soak"








def add_arguments(parser: argparse.ArgumentParser) -> None:
    from perception.bench.spec import BACKENDS, CONFIGS, PRECISIONS

    parser.add_argument("--config", choices=CONFIGS, default="tiny", help="model preset (default tiny; base has random weights)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument("--backend", choices=("auto", *BACKENDS), default="auto",
                        help="inference backend (default auto: onnxruntime on a CPU where it is installed, else torch)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="fp16 on CUDA; int8 with tensorrt (default fp32)")
    parser.add_argument("--frames", type=positive_int, default=None, metavar="N", help="timed frames per run (default 200)")
    parser.add_argument("--warmup", type=non_negative_int, default=10, metavar="N",
                        help="frames run first and left out of the statistics (default 10: numba and torch compile)")
    parser.add_argument("--input", default="sim", metavar="sim|LOG",
                        help="'sim' (default): a simulated log, written once into the cache; or a drive log any reader opens")
    parser.add_argument("--compare", default=None, metavar="SPEC,SPEC,...",
                        help="runs to interleave, SPEC = [CONFIG/]BACKEND[:PRECISION][@DEVICE], e.g. torch,onnxruntime or "
                             "torch:fp16@cuda,tensorrt:int8@cuda; missing parts from --config/--precision/--device; "
                             "ratios are to the first")
    parser.add_argument("--rate", type=positive_float, default=None, metavar="R",
                        help="start each frame when its data would have arrived at R x real time and report sensor->output "
                             "(default: back to back, sensor->output null)")
    parser.add_argument("--soak", type=positive_int, default=None, metavar="N",
                        help="run N frames and report drift: p99 of the first and last 1000, RSS and GPU memory at start and end")
    parser.add_argument("--json", default=None, metavar="OUT", help="write the results (latency.json schema) to OUT")
    parser.add_argument("--plots", default=None, metavar="DIR", help="write stages.png, cdf.png and timeline.png into DIR")
    parser.add_argument("--per-frame", action="store_true", help="also put every frame's stage times into the JSON")
    parser.add_argument("--model", default=None, metavar="CKPT",
                        help="checkpoint for the --config runs (default: data/models/<config>.pt, else seeded random weights)")
    parser.add_argument("--sim-seconds", type=positive_float, default=5.0, metavar="S", help="length of the simulated log (default 5)")
    parser.add_argument("--sim-seed", type=int, default=7, metavar="N", help="seed of the simulated log (default 7)")
    parser.add_argument("--image-size", default=None, metavar="WxH",
                        help="simulated camera size (default: tiny 400x225, what it was trained on; base 1600x900)")
    parser.add_argument("--log-seconds", type=positive_float, default=None, metavar="S",
                        help="--input LOG: load only its first S seconds into memory (default: all of it)")
    parser.add_argument("--cache", default=None, metavar="DIR",
                        help="where simulated logs and random-weight checkpoints are kept (default $BEVFUSE_CACHE/bench or "
                             "~/.cache/bevfuse/bench)")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="CPU threads for torch and numba (default: theirs; on a busy machine 1 can be faster than 2)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from perception.bench.errors import BenchError
    from perception.bench.report import compare_table, headline, soak_lines, stage_table
    from perception.bench.runner import BenchOptions, run_bench
    from perception.bench.spec import RunSpec, parse_compare
    from perception.commands.sim import parse_image_size
    from perception.eval import write_json

    if args.soak is not None and args.frames is not None:
        raise BenchError("--soak N runs N frames: give --soak or --frames, not both")
    from perception.pipeline import resolve_backend

    default = RunSpec(args.config, resolve_backend(args.backend, args.device), args.precision, args.device)
    specs = parse_compare(args.compare, default) if args.compare else [default.check("--config/--backend/--precision/--device")]
    if args.threads:
        import numba
        import torch

        torch.set_num_threads(args.threads)
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    options = BenchOptions(
        specs=specs, frames=args.soak or args.frames or 200, warmup=args.warmup, input=args.input,
        model=Path(args.model) if args.model else None, model_config=args.config, rate=args.rate, soak=args.soak is not None,
        sim_seconds=args.sim_seconds, sim_seed=args.sim_seed,
        image_size=parse_image_size(args.image_size) if args.image_size else None, log_seconds=args.log_seconds,
        cache_dir=Path(args.cache) if args.cache else None, progress=not args.no_progress, per_frame=args.per_frame)
    result = run_bench(options)
    for k, r in enumerate(result.runs):
        if k:
            print()
        print(headline(r.latency))
        print(stage_table(r.latency))
        if r.latency.get("soak"):
            print("\n".join(soak_lines(r.latency["soak"])))
    if len(result.runs) > 1:
        print()
        print(compare_table(result.compare))
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json(out, result.to_json())
        print(f"{out}: written")
    if args.plots:
        from perception.bench.plots import write_plots

        paths = write_plots(result.runs, args.plots, result.memory_timeline)
        print(f"{args.plots}/: " + ", ".join(p.name for p in paths))
    return 0
