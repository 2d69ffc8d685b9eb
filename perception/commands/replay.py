"""``bevfuse replay LOG... [--model CKPT] [--backend ...] [--device ...] [--precision ...] [--rate R]
[--max-frames N] [--out DIR]``: drive logs through the perception stack into files to open.

Every format ``bevfuse info`` reads. Into DIR: ``detections.mcap`` (ROS 2 bag: detections, box
markers, the input LiDAR and cameras), ``detections.json`` (nuScenes submission), ``metrics.json``
and ``ground_truth.json`` when the log has ground truth, ``latency.json``, ``report.md``, ``bev/``
PNGs, ``cameras/`` mosaics with projected boxes and ``bev.mp4``. Prints where they are and the
headline figures. A log without a LiDAR ends the command with one line naming what is missing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from perception.commands.argtypes import positive_float, positive_int

NAME = "replay"
HELP = "replay drive logs through the perception stack: detections (MCAP, nuScenes JSON), metrics, latency, pictures"

MODELS_DIR = Path(__file__).resolve().parents[2] / "data" / "models"


def default_model() -> Path | None:
    """The shipped checkpoint: ``data/models/tiny.pt``, else the only ``.pt`` there, else None."""
    if (MODELS_DIR / "tiny.pt").is_file():
        return MODELS_DIR / "tiny.pt"
    found = sorted(MODELS_DIR.glob("*.pt"))
    return found[0] if len(found) == 1 else None






def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("logs", nargs="+", metavar="LOG", help="drive logs: ROS 1 .bag, ROS 2 bag, nuScenes, KITTI, AV2")
    parser.add_argument("--model", metavar="CKPT", help="checkpoint (default: the shipped data/models/tiny.pt)")
    parser.add_argument("--backend", choices=("auto", "torch", "cudagraph", "onnxruntime", "tensorrt"), default="auto",
                        help="inference backend (default auto: onnxruntime on a CPU where it is installed, else torch)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument("--precision", choices=("fp32", "fp16"), default="fp32", help="fp16 on CUDA only (default fp32)")
    parser.add_argument("--rate", type=positive_float, default=None, metavar="R",
                        help="play at R x real time, dropping frames the stack cannot keep up with (default: as fast as possible)")
    parser.add_argument("--max-frames", type=positive_int, default=None, metavar="N", help="stop after N frames (over all logs)")
    parser.add_argument("--out", default="replay", metavar="DIR", help="output folder (default ./replay)")
    parser.add_argument("--force", action="store_true", help="replace the outputs of an earlier replay in DIR")
    parser.add_argument("--png-every", type=positive_int, default=10, metavar="N",
                        help="keep a BEV PNG and a camera mosaic every N frames (default 10; the video has all)")
    parser.add_argument("--no-pictures", action="store_true", help="no PNGs, mosaics or video")
    parser.add_argument("--onnx", help="onnxruntime: this graph instead of one exported from the checkpoint")
    parser.add_argument("--engine", help="tensorrt: this engine instead of one built from the checkpoint")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="CPU threads of torch, numba and ONNX Runtime (default: one per core)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def headline(result: object) -> list[str]:
    """The lines printed at the end: where the outputs are, NDS, mAP, p50/p99 latency, FPS."""
    r = result
    lat = r.latency  # type: ignore[attr-defined]
    lines = [f"outputs in {r.out_dir}/: " + ", ".join(r.outputs)]  # type: ignore[attr-defined]
    m = r.metrics  # type: ignore[attr-defined]
    if m:
        lines.append(f"NDS {m['NDS']:.4f}   mAP {m['mAP']:.4f}")
    else:
        lines.append("no ground truth in the log: no metrics")
    e2e = lat.get("end_to_end")
    if e2e:
        fps = f"{lat['fps']:.2f}" if lat.get("fps") else "n/a"
        lines.append(f"latency end to end: p50 {e2e['p50_ms']:.1f} ms, p99 {e2e['p99_ms']:.1f} ms "
                     f"({lat['frames']} frames, {lat['device']}, {lat['backend']}, {lat['precision']}); {fps} frames/s")
    dropped = sum(lat.get("frames_dropped", {}).values())
    if dropped:
        lines.append(f"frames dropped: {dropped} ({', '.join(f'{k}: {v}' for k, v in lat['frames_dropped'].items())})")
    for note in r.notes:  # type: ignore[attr-defined]
        lines.append(f"note: {note}")
    return lines


def run(args: argparse.Namespace) -> int:
    from perception.pipeline import Pipeline
    from perception.replay.errors import ReplayError
    from perception.replay.runner import ReplayOptions, replay

    if args.threads:
        import numba
        import torch

        torch.set_num_threads(args.threads)
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    model = Path(args.model) if args.model else default_model()
    if model is None:
        raise ReplayError(f"no --model given and no shipped checkpoint in {MODELS_DIR} (bevfuse train writes one)")
    pipeline = Pipeline.from_checkpoint(model, backend=args.backend, device=args.device, precision=args.precision,
                                        onnx=args.onnx, engine=args.engine, threads=args.threads)
    options = ReplayOptions(out_dir=Path(args.out), rate=args.rate, max_frames=args.max_frames, png_every=args.png_every,
                            pictures=not args.no_pictures, force=args.force, progress=not args.no_progress,
                            model_path=str(model))
    result = replay(args.logs, pipeline, options)
    print("\n".join(headline(result)))
    return 0
