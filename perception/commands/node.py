"""``bevfuse node --rig RIG --model CKPT --transport ros2|zenoh [--backend ...] [--device ...] [--foxglove]``:
the on-vehicle node.

Loads the checkpoint into a ``Pipeline`` (``--backend``: auto, torch, cudagraph, onnxruntime, tensorrt),
warms it, declares its publishers, then subscribes to the rig's sensor topics and publishes
detections (``/bevfuse/detections``, ``/bevfuse/boxes``, ``/bevfuse/markers``), ``/diagnostics``
and the latency topics once a second. Prints ``bevfuse node: ready`` on stderr once subscribed.
SIGINT/SIGTERM stop it within 2 s with exit code 0; a JSON summary (frames, drops, latency
percentiles, per-sensor counters) goes to stdout at exit, and the process ends there (``run``
does not return on success: call it in a process of its own). See docs/NODE.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time

from perception.runtime.cli_args import add_transport_arguments, install_stop_handlers, transport_from_args

NAME = "node"
HELP = "run the on-vehicle node: rig topics in, detections and diagnostics out (Zenoh or ROS 2), with watchdogs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rig", required=True, help="rig file: sensors, topics, nominal rates (watchdog timeouts)")
    parser.add_argument("--model", required=True, metavar="CKPT", help="checkpoint (bevfuse train's .pt)")
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "cudagraph", "onnxruntime", "tensorrt"),
                        help="inference backend (default auto: onnxruntime on a CPU where it is installed, else torch)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:n] (default cpu)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16"), help="network precision (default fp32)")
    parser.add_argument("--engine", help="TensorRT engine to load (default: built from the checkpoint into the cache)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads of torch, numba and ONNX Runtime (default: one per core; 1 on a CPU shared with other work: docs/NODE.md)")
    parser.add_argument("--foxglove", action="store_true", help="also serve a Foxglove WebSocket (live view)")
    parser.add_argument("--foxglove-host", default="127.0.0.1", help="address the Foxglove server binds (default 127.0.0.1)")
    parser.add_argument("--foxglove-port", type=int, default=8765, help="Foxglove server port, 0 = any free one (default 8765)")
    parser.add_argument("--queue", type=int, default=1, metavar="N",
                        help="frames waiting for the worker; beyond, the oldest is dropped (default 1)")
    parser.add_argument("--watchdog-periods", type=float, default=5.0,
                        help="a sensor is silent after this many nominal periods without a message (default 5)")
    parser.add_argument("--watchdog-min", type=float, default=0.5, metavar="S", help="... but never less than S seconds (default 0.5)")
    parser.add_argument("--use-sim-time", action="store_true",
                        help="measure sensor-to-publish latency against /clock (bevfuse play --clock) instead of the wall clock")
    parser.add_argument("--pose-topic", help="an odometry topic with the ego pose (nav_msgs/Odometry): poses from it, not GNSS/IMU")
    parser.add_argument("--status", action="store_true", help="print the status line on stderr once a second")
    add_transport_arguments(parser, "bevfuse")


def _pose_source(rig, sync_cfg, pose_topic: str | None):  # noqa: ANN001, ANN202
    """The sync config with the pose source resolved as a replay of the same data resolves it."""
    from dataclasses import replace

    from perception.types import Modality

    if sync_cfg.pose.source != "auto":
        return sync_cfg
    has_poses = pose_topic is not None or bool(rig.of(Modality.ODOMETRY))
    return replace(sync_cfg, pose=replace(sync_cfg.pose, source="ego_pose" if has_poses else "gnss_imu"))


def _status_line(status) -> str:  # noqa: ANN001
    def f(x: float) -> str:
        return "-" if math.isnan(x) else f"{x:.0f}"

    silent = f" silent: {','.join(status.silent)}" if status.silent else ""
    return (f"bevfuse node: {status.state.value}{silent} frames {status.frames_done}/{status.frames_in} "
            f"dropped {status.frames_dropped} processing p50 {f(status.processing_ms_p50)} ms "
            f"latency p99 {f(status.latency_ms_p99)} ms malformed {status.malformed}")


def run(args: argparse.Namespace) -> int:
    from calib.rig import load_rig
    from perception.io.base import EGO_POSE
    from perception.pipeline import Pipeline
    from perception.runtime.core import NodeConfig
    from perception.runtime.node import Node, NodeOptions
    from perception.runtime.warmup import warm_up, warm_up_sync
    from perception.sync.synchronizer import Synchronizer

    stop = threading.Event()
    starting = [True]

    def on_signal() -> None:
        if starting[0]:  # nothing opened yet that needs closing in order: leave at once
            print("bevfuse node: stopped during start-up", file=sys.stderr, flush=True)
            os._exit(0)

    install_stop_handlers(stop, on_signal)
    rig = load_rig(args.rig)
    if args.transport == "ros2":  # say so now, not after minutes of loading
        from perception.runtime.errors import TransportUnavailable
        from perception.runtime.ros2_transport import rclpy_available

        ok, why = rclpy_available()
        if not ok:
            raise TransportUnavailable(why)
    if args.threads:  # as bevfuse replay --threads does, so that both compute the same numbers
        import numba
        import torch

        torch.set_num_threads(args.threads)
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    t0 = time.monotonic()
    pipeline = Pipeline.from_checkpoint(args.model, backend=args.backend, device=args.device, precision=args.precision,
                                        rig=rig, engine=args.engine, threads=args.threads)
    warm_ms = warm_up(pipeline, rig)
    sync_cfg = _pose_source(rig, pipeline.cfg.sync, args.pose_topic)
    warm_up_sync(rig, sync_cfg)
    print(f"bevfuse node: {pipeline.config_name} on {pipeline.backend_name}/{args.device} loaded and warmed in "
          f"{time.monotonic() - t0:.1f} s (steady step {warm_ms[-1]:.0f} ms)", file=sys.stderr, flush=True)
    starting[0] = False
    transport = transport_from_args(args)
    options = NodeOptions(
        core=NodeConfig(frame_queue=args.queue, watchdog_periods=args.watchdog_periods, watchdog_min_s=args.watchdog_min),
        use_sim_time=args.use_sim_time, foxglove=args.foxglove, foxglove_host=args.foxglove_host,
        foxglove_port=args.foxglove_port, node_name=args.node_name,
        extra_topics=((args.pose_topic, EGO_POSE),) if args.pose_topic else ())
    node = None
    try:
        node = Node(transport, rig, Synchronizer(rig, sync_cfg, defer_assembly=True), pipeline, options)
        node.start()
        for topic, why in node.outputs.unavailable.items():
            print(f"bevfuse node: warning: not publishing {topic}: {why}", file=sys.stderr, flush=True)
        where = f" foxglove ws://{node.foxglove.host}:{node.foxglove.port}" if node.foxglove is not None else ""
        print(f"bevfuse node: ready on {args.transport} ({len(node.inputs.subscriptions)} subscriptions){where}",
              file=sys.stderr, flush=True)
        node.run(stop, (lambda s: print(_status_line(s), file=sys.stderr, flush=True)) if args.status else None)
    finally:
        t_stop = time.monotonic()
        ok = node.stop(timeout_s=1.2) if node is not None else True
        t_node = time.monotonic()
        transport.close()
        t_transport = time.monotonic()
    summary = node.core.summary()
    summary["stopped_cleanly"] = ok
    summary["shutdown_s"] = {"node": round(t_node - t_stop, 3), "transport": round(t_transport - t_node, 3)}
    summary["receive_dropped"] = node.inputs.receive_dropped
    summary["receive_stale"] = node.inputs.receive_stale
    summary["outputs_unavailable"] = sorted(node.outputs.unavailable)
    print(json.dumps(summary, indent=2, default=str), flush=True)
    sys.stderr.flush()
    # Everything is closed and flushed: leave now. The interpreter's own teardown (torch, numba,
    # Zenoh's and Foxglove's runtimes, and a worker still inside a CPU step) takes 3-8 s on a loaded
    # 2-core machine, and a node must be gone within 2 s of SIGTERM.
    os._exit(0)
