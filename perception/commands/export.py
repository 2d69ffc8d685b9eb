"""``bevfuse export --model CKPT --onnx OUT.onnx [--engine OUT.engine --precision fp16|int8]``."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "export"
HELP = "export a checkpoint to ONNX (one static graph) and optionally build a TensorRT engine from it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="checkpoint (.pt) written by bevfuse train")
    parser.add_argument("--onnx", help="ONNX file to write (default: beside --engine, with .onnx)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset, >= 17 (default 17)")
    parser.add_argument("--engine", help="TensorRT engine to build from the ONNX graph (needs TensorRT 10 and a GPU)")
    parser.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16", help="engine precision (default fp16)")
    parser.add_argument("--calib-data", nargs="+", metavar="DIR", help="int8: drive logs whose frames calibrate the engine")
    parser.add_argument("--calib-frames", type=int, default=200, help="int8: at most this many calibration frames (default 200)")
    parser.add_argument("--cache-dir", help="engine, timing and calibration cache (default $BEVFUSE_CACHE or ~/.cache/bevfuse)")


def run(args: argparse.Namespace) -> int:
    from perception.errors import ConfigError
    from perception.model.checkpoint import load_checkpoint
    from perception.model.export import export_onnx

    if not args.onnx and not args.engine:
        raise ConfigError("export: give --onnx OUT.onnx, --engine OUT.engine, or both")
    if args.precision == "int8" and args.engine and not args.calib_data:
        print("export: int8 without --calib-data works only where a calibration cache for this model exists")
    net, _ = load_checkpoint(args.model)
    onnx_path = Path(args.onnx) if args.onnx else Path(args.engine).with_suffix(".onnx")
    export_onnx(net, onnx_path, opset=args.opset)
    print(f"{onnx_path}: ONNX opset {args.opset}, config {net.cfg.model.name}")
    if args.engine:
        from perception.model.tensorrt import build_engine

        frames = None
        if args.calib_data:
            from perception.model.data import calibration_inputs

            frames = calibration_inputs(args.calib_data, net.cfg, args.calib_frames)
        engine = build_engine(onnx_path, args.engine, args.precision, args.cache_dir, frames)
        print(f"{engine}: TensorRT {args.precision} engine")
    return 0
