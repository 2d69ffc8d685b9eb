"""``bevfuse bench``'s loop: frames through every stage of the stack, each stage timed, one or several
backend/precision/config combinations interleaved.

Per frame, for each run (a ``RunSpec``), the stages in order::

    decode       a bundle of raw records -> SensorMessages       perception.bench.frames (CPU clock)
    sync         SensorMessages -> SyncedFrame                    the Synchronizer (CPU clock)
    preprocess   SyncedFrame -> network inputs                    Pipeline.step's own timer: CUDA
    network      inputs -> head maps                              events on a GPU, the CPU clock
    postprocess  head maps -> Detections (on the host)            otherwise ('inference' is 'network')
    output       Detections -> CDR bytes                          what the node publishes each frame:
                                                                  Detection3DArray + BoundingBox3DArray

``end_to_end`` is the host clock from the start of ``decode`` to the end of ``output``: on a GPU the
postprocess copies the boxes back to the host, so it includes the device work. ``overhead`` is
``end_to_end`` minus the sum of the stages, per frame: the glue between the timed regions (taking
the frame out of the synchronizer's list, the timers themselves). A stage sum larger than the
end-to-end time would mean a stage timer is wrong; the tests check it is not.

Interleaving (``--compare``): frame i of every run before frame i+1 of any, so a machine that slows
down for a minute (another job, thermal throttling) slows every run alike and the ratios hold.
Each run has its own synchronizer copy and frame position; runs of the same config share the raw
log in memory.

Pacing (``--rate R``): frame i is started when its last record would have arrived at R times real
time (never earlier); ``sensor_to_output`` is the age of its detections at the end of ``output``
on that clock. The benchmark never drops a frame: one started after its successor was already due
is counted in ``frames_behind``, and its age shows the backlog. Without ``--rate`` frames run back
to back and ``sensor_to_output`` is null (stamps and the wall clock are unrelated).

Between frames, outside every timed region: copying the warm synchronizer at a cycle start,
sampling memory (every ``memory_every`` frames), the progress bar and pacing waits.
Measurements go into preallocated arrays, so the loop allocates nothing that outlives a frame:
a soak's memory growth is the stack's, not the benchmark's.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perception.bench.environment import collect_environment, gpu_memory_mb, load_average, peak_rss_mb, reset_gpu_peak, rss_mb
from perception.bench.errors import BenchError
from perception.bench.frames import FrameCycle, FrameSource, RawLog, sim_log
from perception.bench.spec import RunSpec
from perception.bench.timing import StageTimer, latency_stats

__all__ = ["DEFAULT_IMAGE_SIZES", "STAGES", "BenchOptions", "BenchResult", "RunResult", "default_cache_dir", "run_bench"]

STAGES = ("decode", "sync", "preprocess", "network", "postprocess", "output")
# the pipeline's stage names -> the benchmark's
PIPELINE_STAGES = {"preprocess": "preprocess", "inference": "network", "postprocess": "postprocess"}
# Simulated camera size per config: tiny was trained on 400x225 logs (docs/MODEL.md), base is nuScenes-scale.
DEFAULT_IMAGE_SIZES: dict[str, tuple[int, int]] = {"tiny": (400, 225), "base": (1600, 900)}
MODELS_DIR = Path(__file__).resolve().parents[2] / "data" / "models"


def default_cache_dir() -> Path:
    """Where simulated logs and random-weight checkpoints are kept: ``$BEVFUSE_CACHE/bench``
    (default ``~/.cache/bevfuse/bench``)."""
    from perception.model.tensorrt import default_cache_dir as root

    return root() / "bench"


@dataclass
class BenchOptions:
    """What to run. ``frames`` timed frames after ``warmup`` untimed ones (per run); ``input``:
    'sim' or a log path; ``model``: a checkpoint for the runs of ``model_config`` (default: the
    shipped ``data/models/<config>.pt``, else random weights, seeded); ``soak``: report drift;
    ``rate``: pace at R x real time; ``log_seconds``: use only the first seconds of a log."""

    specs: Sequence[RunSpec]
    frames: int = 200
    warmup: int = 10
    input: str = "sim"
    model: Path | None = None
    model_config: str | None = None
    rate: float | None = None
    soak: bool = False
    sim_seconds: float = 5.0
    sim_seed: int = 7
    image_size: tuple[int, int] | None = None
    log_seconds: float | None = None
    warm_frames: int | None = None
    cache_dir: Path | None = None
    progress: bool = False
    per_frame: bool = False
    memory_every: int | None = None


@dataclass
class RunResult:
    """One run's measurements: per-frame arrays (warm-up frames first) and what they summarize to."""

    spec: RunSpec
    latency: dict[str, Any]
    stage_ms: np.ndarray  # (frames, len(STAGES))
    end_to_end_ms: np.ndarray
    sensor_to_output_ms: np.ndarray  # NaN where not paced
    warmup: int


@dataclass
class BenchResult:
    """Every run, the comparison rows (ratios to the first run), the memory timeline and the environment."""

    runs: list[RunResult]
    compare: list[dict[str, Any]]
    memory_timeline: list[list[float]]
    environment: dict[str, Any]
    wall_s: float

    def to_json(self) -> dict[str, Any]:
        """The first run's latency record (the ``latency.json`` schema), plus ``runs`` and ``compare``
        when there are several."""
        out = dict(self.runs[0].latency)
        if len(self.runs) > 1:
            out["runs"] = [r.latency for r in self.runs]
            out["compare"] = self.compare
        out["memory_timeline"] = {"columns": ["frame", "rss_mb", "gpu_allocated_mb"], "rows": self.memory_timeline}
        return out


def _random_checkpoint(config: str, cache_dir: Path) -> Path:
    """A seeded random-weight checkpoint of preset ``config`` (for configs that ship no weights:
    latency does not depend on the weights, except through how many boxes survive decode)."""
    path = cache_dir / "models" / f"{config}-random-seed0.pt"
    if path.is_file():
        return path
    import torch

    from perception.model.checkpoint import save_checkpoint
    from perception.model.config import preset
    from perception.model.network import build_model

    torch.manual_seed(0)
    net = build_model(preset(config))
    return save_checkpoint(path, net, meta={"note": "random weights (torch seed 0), written by bevfuse bench"})


def _checkpoint_for(spec: RunSpec, options: BenchOptions, cache_dir: Path) -> tuple[Path, str]:
    if options.model is not None and spec.config == (options.model_config or spec.config):
        return Path(options.model), "given"
    shipped = MODELS_DIR / f"{spec.config}.pt"
    if shipped.is_file():
        return shipped, "shipped"
    return _random_checkpoint(spec.config, cache_dir), "random weights (seed 0)"


def _build_pipeline(spec: RunSpec, options: BenchOptions, cache_dir: Path) -> tuple[Any, Path, str]:
    from perception.pipeline import Pipeline

    ckpt, origin = _checkpoint_for(spec, options, cache_dir)
    # exported graphs and engines: into the bench cache when one is given, else where replay keeps them
    exports = cache_dir if options.cache_dir else None
    pipeline = Pipeline.from_checkpoint(ckpt, backend=spec.backend, device=spec.device, precision=spec.precision, cache_dir=exports)
    name = pipeline.cfg.model.name
    if name in DEFAULT_IMAGE_SIZES and name != spec.config:
        raise BenchError(f"{ckpt}: a {name!r} checkpoint, but the run {spec.label} is for config {spec.config!r}")
    return pipeline, ckpt, origin


@dataclass
class _Run:
    spec: RunSpec
    pipeline: Any
    source: FrameSource
    model: Path
    model_origin: str
    input_info: dict[str, Any]
    total: int
    stage_ms: np.ndarray = field(init=False)
    e2e_ms: np.ndarray = field(init=False)
    s2o_ms: np.ndarray = field(init=False)
    timer: StageTimer = field(default_factory=StageTimer)
    missing: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    behind: int = 0
    wall_ns: int = 0
    anchor: tuple[int, int] | None = None  # (perf_counter_ns, continuing-clock ns) of the first frame
    done: int = 0

    def __post_init__(self) -> None:
        self.stage_ms = np.zeros((self.total, len(STAGES)))
        self.e2e_ms = np.zeros(self.total)
        self.s2o_ms = np.full(self.total, np.nan)

    def step(self, rate: float | None) -> None:
        """The next frame through every stage (see the module docstring); its times into the next row.
        A frame the pipeline refuses (``CorruptFrameError``) is counted in ``dropped`` and has no row."""
        from perception.pipeline import CorruptFrameError
        from perception.runtime.fast_cdr import box3d_array_cdr, detection3d_array_cdr

        begin = time.perf_counter_ns()
        src = self.source
        src.start_cycle_if_due()
        cycle = src.cycle
        arrival = src.next_arrival_ns()
        if rate is not None:
            if self.anchor is None:
                self.anchor = (time.perf_counter_ns(), arrival)
            due = self.anchor[0] + int((arrival - self.anchor[1]) / rate)
            wait = due - time.perf_counter_ns()
            if wait > 0:
                time.sleep(wait / 1e9)
        timer = self.timer
        t0 = time.perf_counter_ns()
        try:
            frame = src.next(timer)
            det = self.pipeline.step(frame)
        except CorruptFrameError as exc:
            timer.collect()
            self.dropped[f"corrupt frame: {exc}"] += 1
            return
        with timer.stage("output"):
            detection3d_array_cdr(det)
            box3d_array_cdr(det)
        t1 = time.perf_counter_ns()
        own = timer.collect()
        row = self.stage_ms[self.done]
        row[0], row[1], row[5] = own.get("decode", 0.0), own.get("sync", 0.0), own.get("output", 0.0)
        for k, ms in self.pipeline.last_stage_ms.items():
            row[STAGES.index(PIPELINE_STAGES.get(k, k))] = ms
        self.e2e_ms[self.done] = (t1 - t0) / 1e6
        if rate is not None and self.anchor is not None:
            stamp = src.shifted(frame.stamp_ns, cycle)
            self.s2o_ms[self.done] = ((t1 - self.anchor[0]) * rate + self.anchor[1] - stamp) / 1e6
            next_due = self.anchor[0] + int((src.next_arrival_ns() - self.anchor[1]) / rate)
            if t0 > next_due:  # the next frame was due before this one started: a backlog
                self.behind += 1
        for sensor in frame.missing:
            self.missing[sensor] += 1
        self.done += 1
        self.wall_ns += time.perf_counter_ns() - begin

    def result(self, warmup: int, rate: float | None, extra: dict[str, Any]) -> RunResult:
        from perception.replay.latency import LatencyLog

        n = self.done
        w = min(warmup, n - 1) if n > 1 else 0
        log = LatencyLog(device=self.spec.device, backend=self.spec.backend, precision=self.spec.precision,
                         config=self.pipeline.config_name, warmup=w, extended=True)
        for k in range(n):
            s2o = None if np.isnan(self.s2o_ms[k]) else float(self.s2o_ms[k])
            log.add(dict(zip(STAGES, self.stage_ms[k].tolist())), float(self.e2e_ms[k]), s2o)
        log.degraded_frames.update(self.missing)
        log.frames_dropped.update(self.dropped)
        log.wall_s = self.wall_ns / 1e9
        timed = self.e2e_ms[w:n]
        overhead = timed - self.stage_ms[w:n].sum(axis=1)
        log.extra.update({
            "spec": self.spec.label,
            "stage_order": list(STAGES),
            "overhead": latency_stats(overhead).to_dict(extended=True) if timed.size else None,
            "throughput_fps": float(timed.size / (timed.sum() / 1e3)) if timed.size and timed.sum() > 0 else None,
            "rate": rate,
            "frames_behind": self.behind if rate is not None else None,
            "model": str(self.model), "model_weights": self.model_origin,
            "input": self.input_info,
        })
        log.extra.update(extra)
        lat = log.to_json()
        return RunResult(self.spec, lat, self.stage_ms[:n].copy(), self.e2e_ms[:n].copy(), self.s2o_ms[:n].copy(), w)


def _input_path(spec: RunSpec, options: BenchOptions, cache_dir: Path) -> tuple[Path, dict[str, Any]]:
    if options.input != "sim":
        path = Path(options.input)
        return path, {"source": "log", "path": str(path)}
    size = options.image_size or DEFAULT_IMAGE_SIZES[spec.config]
    path = sim_log(cache_dir, size, options.sim_seconds, options.sim_seed, progress=options.progress)
    return path, {"source": "sim", "path": str(path), "image_size": f"{size[0]}x{size[1]}", "seconds": options.sim_seconds,
                  "seed": options.sim_seed}


def _drift(run: RunResult, memory: list[list[float]], gpu: bool) -> dict[str, Any]:
    """Drift between the first and the last window of the timed frames (1000 frames, or a quarter
    of them when there are fewer than 4000).

    Latency: the p99 of each window. Memory: the median of the samples taken in each window, not
    one sample at each end: between two frames the RSS moves by a few percent with what the
    allocator happens to keep, and one unlucky sample would read as growth (or hide it).
    """
    timed = run.end_to_end_ms[run.warmup:]
    n = timed.size
    win = max(1, min(1000, n // 4))
    first = float(np.percentile(timed[:win], 99))
    last = float(np.percentile(timed[-win:], 99))
    m = np.asarray(memory, dtype=float)
    lo, hi = run.warmup, run.warmup + n
    head = m[(m[:, 0] >= lo) & (m[:, 0] <= lo + win)]
    tail = m[(m[:, 0] >= hi - win) & (m[:, 0] <= hi)]
    head = head if len(head) else m[:1]
    tail = tail if len(tail) else m[-1:]
    rss0, rss1 = float(np.median(head[:, 1])), float(np.median(tail[:, 1]))
    out: dict[str, Any] = {
        "frames": int(n), "window": int(win),
        "first_p99_ms": first, "last_p99_ms": last, "p99_ratio": last / first if first > 0 else None,
        "rss_start_mb": rss0, "rss_end_mb": rss1, "rss_growth_pct": 100.0 * (rss1 - rss0) / rss0 if rss0 > 0 else None,
        "rss_samples": int(len(head) + len(tail)), "rss_max_mb": float(m[:, 1].max()),
        "gpu_allocated_start_mb": float(np.median(head[:, 2])) if gpu else None,
        "gpu_allocated_end_mb": float(np.median(tail[:, 2])) if gpu else None,
    }
    out["rss_growth_ok"] = out["rss_growth_pct"] is not None and out["rss_growth_pct"] < 5.0
    out["p99_within_10pct"] = out["p99_ratio"] is not None and abs(out["p99_ratio"] - 1.0) <= 0.10
    return out


def run_bench(options: BenchOptions) -> BenchResult:
    """Build every run, load the inputs, time ``warmup + frames`` frames per run, interleaved."""
    from tqdm import tqdm

    specs = [s.check() for s in options.specs]
    if not specs:
        raise BenchError("no run to benchmark")
    if options.frames < 1:
        raise BenchError(f"frames: expected >= 1, got {options.frames}")
    if options.warmup < 0:
        raise BenchError(f"warmup: expected >= 0, got {options.warmup}")
    if options.rate is not None and len(specs) > 1:
        raise BenchError("--rate paces one run at real time; it does not combine with --compare")
    if options.input != "sim" and not Path(options.input).exists():
        raise BenchError(f"--input {options.input}: no such log (or 'sim' for a simulated one)")
    cache_dir = Path(options.cache_dir) if options.cache_dir else default_cache_dir()
    started = time.perf_counter()
    load_start = load_average()
    total = options.warmup + options.frames
    raws: dict[Path, RawLog] = {}
    cycles: dict[tuple[Path, str], FrameCycle] = {}
    runs: list[_Run] = []
    try:
        for spec in specs:
            pipeline, ckpt, origin = _build_pipeline(spec, options, cache_dir)
            path, info = _input_path(spec, options, cache_dir)
            if path not in raws:
                raws[path] = RawLog.load(path, options.log_seconds)
            raw = raws[path]
            key = (path, repr(pipeline.cfg.sync))
            if key not in cycles:
                cycles[key] = FrameCycle.build(raw, pipeline.cfg.sync, options.warm_frames)
            cyc = cycles[key]
            pipeline.use_rig(raw.rig)
            info = {**info, "format": raw.format, "records": len(raw.records), "raw_mb": round(raw.raw_bytes / 2**20, 1),
                    "span_s": round(raw.span_s, 3), "log_frames": cyc.log_frames, "warm_frames": cyc.warm_frames,
                    "cycled_frames": len(cyc.bundles), "pose_source": cyc.config.pose.source, "decode": raw.decode_note,
                    "skipped_records": dict(cyc.skipped)}
            runs.append(_Run(spec, pipeline, FrameSource(cyc), ckpt, origin, info, total))

        gpu_device = next((s.device for s in specs if s.cuda), None)
        every = options.memory_every or max(1, total // 500)
        memory: list[list[float]] = []

        def sample(i: int) -> None:
            g = gpu_memory_mb(gpu_device) if gpu_device else None
            memory.append([i, round(rss_mb(), 2), round(g["allocated_mb"], 2) if g else float("nan")])

        bar = tqdm(total=total * len(runs), unit="frame", desc="bench", disable=not options.progress, leave=False)
        try:
            for i in range(total):
                if i == options.warmup and gpu_device:
                    reset_gpu_peak(gpu_device)
                if i % every == 0 or i == options.warmup:
                    sample(i)
                for run in runs:
                    run.step(options.rate)
                bar.update(len(runs))
            sample(total)
        finally:
            bar.close()
        wall = time.perf_counter() - started
        gpu = gpu_memory_mb(gpu_device) if gpu_device else None
        env = collect_environment(gpu_device or specs[0].device)
        env["load_avg_start"] = load_start  # "load_avg" is at the end
        mem = {"rss_mb_start": next((m[1] for m in memory if m[0] >= options.warmup), memory[0][1]), "rss_mb_end": memory[-1][1],
               "peak_rss_mb": round(peak_rss_mb(), 1), "gpu": gpu}
        results: list[RunResult] = []
        labels = [r.spec.label for r in runs]
        for run in runs:
            extra: dict[str, Any] = {"environment": env, "memory": mem, "warmup": options.warmup}
            if len(runs) > 1:
                extra["interleaved_with"] = [x for x in labels if x != run.spec.label]
            res = run.result(options.warmup, options.rate, extra)
            if options.soak:
                res.latency["soak"] = _drift(res, memory, gpu_device is not None)
            if options.per_frame:
                res.latency["per_frame_ms"] = {
                    "stages": {s: res.stage_ms[:, k].round(4).tolist() for k, s in enumerate(STAGES)},
                    "end_to_end": res.end_to_end_ms.round(4).tolist(),
                    "sensor_to_output": None if options.rate is None else res.sensor_to_output_ms.round(4).tolist(),
                }
            results.append(res)
        return BenchResult(results, compare_rows(results), memory, env, wall)
    finally:
        for raw in raws.values():
            raw.close()


def compare_rows(runs: Sequence[RunResult]) -> list[dict[str, Any]]:
    """One row per run: its end-to-end figures and their ratio to the first run's (>1: slower)."""
    rows: list[dict[str, Any]] = []
    base = runs[0].latency.get("end_to_end") or {}
    for r in runs:
        e = r.latency.get("end_to_end") or {}
        row: dict[str, Any] = {"spec": r.spec.label, "frames": r.latency.get("frames")}
        for k in ("p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms", "mean_ms", "std_ms"):
            row[k] = e.get(k)
        row["throughput_fps"] = r.latency.get("throughput_fps")
        for k in ("p50_ms", "p99_ms", "mean_ms"):
            b, v = base.get(k), e.get(k)
            row[k.replace("_ms", "_ratio")] = v / b if b and v is not None else None
        rows.append(row)
    return rows
