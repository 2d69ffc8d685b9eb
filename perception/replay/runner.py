"""The replay loop: drive logs -> synchronizer -> ``Pipeline`` -> the sinks of this package.

Per log: ``open_log`` (any format a reader supports), a check that the log has what frames are built
around (a LiDAR: the synchronizer's reference), ``frames_from_log`` with the pipeline's sync config,
then frame by frame ``Pipeline.step`` and the sinks. The time spent getting a frame out of the
synchronizer (reading, decoding images and point clouds, synchronizing) is the ``input`` stage;
``end_to_end`` is ``input`` plus the pipeline.

``rate`` None replays as fast as possible and runs the sinks inline, outside the timed region. With
``rate`` R the log plays at R times real time, as a vehicle would see it: a reader thread releases
frame k when it is due (when its last message would have arrived: its stamp plus its wait in the
synchronizer, on the replay clock) into a one-frame mailbox; the pipeline takes the newest frame
whenever it is free, and a frame replaced before it was taken is dropped and counted. The sinks then
run on a worker thread, so that drawing and writing do not make the stack look slower than it is;
``sensor_to_output`` is how old each frame's detections were when they came out.
"""

from __future__ import annotations

import queue
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calib.rig import Rig
from perception.errors import BevfuseError
from perception.pipeline import CorruptFrameError
from perception.replay.errors import ReplayError
from perception.types import Detections, Modality, SyncedFrame

__all__ = ["OUTPUT_NAMES", "ReplayOptions", "ReplayResult", "check_log", "log_names", "replay"]

# What a replay writes into its folder (per log, when there are several: bag and pictures).
OUTPUT_NAMES = ("detections.mcap", "detections.json", "ground_truth.json", "metrics.json", "latency.json", "report.md",
                "bev", "cameras", "bev.mp4")


@dataclass
class ReplayOptions:
    """``out_dir``: where the outputs go; ``rate``: None = as fast as possible, else the speed-up over
    real time; ``max_frames``: stop after this many frames over all logs; ``png_every``: every how
    many frames a PNG and a camera mosaic are kept (the video has every frame); ``pictures`` /
    ``video`` / ``bag``: which outputs to write; ``force``: replace outputs already in ``out_dir``;
    ``display_score``: the lowest score drawn and put among the markers."""

    out_dir: Path
    rate: float | None = None
    max_frames: int | None = None
    png_every: int = 10
    pictures: bool = True
    video: bool = True
    bag: bool = True
    force: bool = False
    progress: bool = True
    display_score: float = 0.3
    model_path: str = ""


@dataclass
class ReplayResult:
    """What a replay did: outputs written, and the figures of ``latency.json`` and ``metrics.json``."""

    out_dir: Path
    frames: int
    latency: dict[str, Any]
    metrics: dict[str, Any] | None
    outputs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _utc(stamp_ns: int) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(stamp_ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def log_names(paths: Sequence[str | Path]) -> list[str]:
    """A short unique name per log (its file or folder name without the extension)."""
    names: list[str] = []
    for p in paths:
        p = Path(p)
        base = (p.stem if p.is_file() else p.name) or "log"
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def check_log(path: str | Path, reader: Any) -> list[str]:
    """Raise ``ReplayError`` when the log has no LiDAR; else the notes on sensors it lacks."""
    streams = [s for s in reader.streams() if s.count > 0]
    have = {s.modality for s in streams if s.modality is not None}
    rig: Rig = reader.rig
    if not rig.of(Modality.LIDAR) or Modality.LIDAR not in have:
        missing = [m.value for m in (Modality.LIDAR, Modality.CAMERA, Modality.RADAR) if m not in have]
        listed = ", ".join(f"{s.modality.value if s.modality else 'other'} {s.topic} ({s.count})" for s in streams) or "nothing"
        raise ReplayError(f"{path}: cannot replay: no LiDAR, and every frame is built around a LiDAR sweep "
                          f"(the synchronizer's reference sensor); missing sensors: {', '.join(missing)}; "
                          f"the log has: {listed}")
    notes = []
    if Modality.CAMERA not in have:
        notes.append(f"{Path(path).name}: no camera in the log: every frame ran without images (camera inputs masked)")
    if Modality.RADAR not in have:
        notes.append(f"{Path(path).name}: no radar in the log: every frame ran without radar (radar input masked)")
    return notes


class _TimedStream:
    """Iterate a frame stream, timing each ``next`` (reading, decoding and synchronizing a frame)."""

    def __init__(self, stream: Iterator[SyncedFrame]) -> None:
        self._it = stream
        self.last_ms = 0.0

    def __iter__(self) -> _TimedStream:
        return self

    def __next__(self) -> SyncedFrame:
        t0 = time.perf_counter_ns()
        try:
            return next(self._it)
        finally:
            self.last_ms = (time.perf_counter_ns() - t0) / 1e6


class _Sinks:
    """The per-frame outputs of one log: bag, submission rows, pictures."""

    def __init__(self, log_dir: Path, rig: Rig, pipeline: Any, options: ReplayOptions, submission: Any,
                 cameras: Sequence[str]) -> None:
        from perception.replay.bag_sink import DetectionsBag
        from perception.replay.pictures import PictureWriter
        from perception.viz.bev import BevView

        log_dir.mkdir(parents=True, exist_ok=True)
        self.submission = submission
        self.bag = DetectionsBag(log_dir / "detections.mcap", rig, marker_score=options.display_score) if options.bag else None
        self.pictures = None
        if options.pictures:
            self.pictures = PictureWriter(log_dir, rig, BevView.for_grid(pipeline.cfg.grid, 800), pipeline.class_names,
                                          fps=pipeline.cfg.sync.frame_rate_hz * (options.rate or 1.0), every=options.png_every,
                                          score_threshold=options.display_score, video=options.video, cameras=cameras)

    def write(self, log_name: str, frame: SyncedFrame, det: Detections) -> None:
        self.submission.add(log_name, frame, det)
        if self.bag is not None:
            self.bag.write(frame, det)
        if self.pictures is not None:
            self.pictures.write(frame, det, log_name=log_name)

    def close(self) -> None:
        try:
            if self.bag is not None:
                self.bag.close()
        finally:
            if self.pictures is not None:
                self.pictures.close()


class _Worker:
    """Run ``fn(*item)`` for queued items on one thread, in order; the first error is re-raised."""

    def __init__(self, fn: Callable[..., None], depth: int = 8) -> None:
        self._fn = fn
        self._q: queue.Queue[tuple[Any, ...] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bevfuse-replay-sinks", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._q.get()) is not None:
            if self._error is None:
                try:
                    self._fn(*item)
                except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                    self._error = exc

    def put(self, *item: Any) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(item)

    def close(self) -> None:
        self._q.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


class _PacedFrames:
    """Frames released at their due time on a clock ``rate`` times real time, as a vehicle gets them.

    A thread reads the log (reading, decoding and synchronizing run beside the pipeline, as the
    drivers and the synchronizer do on the vehicle) and puts each frame, when it is due, into a
    one-frame mailbox. A frame still in the mailbox when the next one is due was not picked up in
    time: it is replaced, and counted in ``dropped``. Iterating gives (frame, input ms).
    """

    def __init__(self, frames: _TimedStream, rate: float) -> None:
        self._frames = frames
        self._rate = rate
        self._cv = threading.Condition()
        self._slot: tuple[SyncedFrame, float] | None = None
        self._done = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self.anchor: tuple[float, int] | None = None  # (wall s, replay-clock ns) of the first frame
        self.dropped = 0
        self._reported = 0
        self._thread = threading.Thread(target=self._run, name="bevfuse-replay-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for frame in self._frames:
                input_ms = self._frames.last_ms
                ready = frame.stamp_ns + frame.wait_ns  # when its last message would have arrived
                now = time.perf_counter()
                if self.anchor is None:
                    self.anchor = (now, ready)
                due = self.anchor[0] + (ready - self.anchor[1]) * 1e-9 / self._rate
                if due > now and self._stop.wait(due - now):
                    return
                if self._stop.is_set():
                    return
                with self._cv:
                    if self._slot is not None:
                        self.dropped += 1
                    self._slot = (frame, input_ms)
                    self._cv.notify()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            self._error = exc
        finally:
            with self._cv:
                self._done = True
                self._cv.notify()

    def __iter__(self) -> Iterator[tuple[SyncedFrame, float]]:
        while True:
            with self._cv:
                while self._slot is None and not self._done:
                    self._cv.wait()
                item, self._slot = self._slot, None
            if item is None:
                if self._error is not None:
                    raise self._error
                return
            yield item

    def take_dropped(self) -> int:
        """Drops since the last call (for a progress bar)."""
        new, self._reported = self.dropped - self._reported, self.dropped
        return new

    def age_ms(self, frame: SyncedFrame, done_s: float) -> float | None:
        """The replay clock at ``done_s`` minus the frame's stamp: how old its detections are."""
        if self.anchor is None:
            return None
        return ((done_s - self.anchor[0]) * self._rate * 1e9 + self.anchor[1] - frame.stamp_ns) / 1e6

    def stop(self) -> None:
        self._stop.set()
        with self._cv:
            self._slot = None
        self._thread.join()


def _prepare_out(out: Path, force: bool, subdirs: Sequence[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    present = [out / n for n in OUTPUT_NAMES if (out / n).exists()]
    present += [out / d / n for d in subdirs for n in OUTPUT_NAMES if (out / d / n).exists()]
    if present and not force:
        raise ReplayError(f"{out}: holds the outputs of an earlier replay ({', '.join(p.name for p in present[:4])}"
                          f"{' ...' if len(present) > 4 else ''}); pass --force to replace them, or another --out")
    for p in present:
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()


def _estimate_frames(reader: Any, rig: Rig, rate_hz: float) -> int | None:
    lidar = rig.of(Modality.LIDAR)[0].name
    for s in reader.streams():
        if s.sensor == lidar and s.first_stamp_ns is not None and s.last_stamp_ns is not None:
            return int((s.last_stamp_ns - s.first_stamp_ns) * 1e-9 * rate_hz) + 1
    return None


def replay(logs: Sequence[str | Path], pipeline: Any, options: ReplayOptions) -> ReplayResult:
    """Replay ``logs`` through ``pipeline`` (a ``perception.pipeline.Pipeline``) into ``options.out_dir``.

    Writes ``detections.json`` (+ ``ground_truth.json``, ``metrics.json`` with ground truth),
    ``latency.json`` and ``report.md`` over all logs, and per log ``detections.mcap``, ``bev/``,
    ``cameras/`` and ``bev.mp4`` (in ``out_dir``, or ``out_dir/<log name>/`` for several logs).
    Raises ``ReplayError`` before replaying anything when a log cannot be replayed.
    """
    from tqdm import tqdm

    from perception.bench.environment import collect_environment
    from perception.io.base import open_log
    from perception.replay.latency import LatencyLog
    from perception.replay.report import write_report
    from perception.replay.submission import SubmissionWriter
    from perception.sync.replay import frames_from_log

    if options.rate is not None and not options.rate > 0:
        raise ReplayError(f"rate: expected > 0, got {options.rate}")
    out = Path(options.out_dir)
    names = log_names(logs)
    notes: list[str] = []
    readers = []
    try:
        for path in logs:  # every log is checked before any is replayed
            reader = open_log(path)
            readers.append(reader)
            notes += check_log(path, reader)
        subdirs = names if len(logs) > 1 else []
        _prepare_out(out, options.force, subdirs)

        latency = LatencyLog(device=pipeline.device, backend=pipeline.backend_name, precision=pipeline.precision,
                             config=pipeline.config_name)
        submission = SubmissionWriter()
        skipped: Counter[str] = Counter()
        sync_drops: Counter[str] = Counter()
        cleaned: Counter[str] = Counter()
        bad_frames: list[str] = []
        outputs: list[str] = []
        processed = 0
        started = time.perf_counter()
        for name, reader in zip(names, readers):
            if options.max_frames is not None and processed >= options.max_frames:
                break
            log_dir = out / name if len(logs) > 1 else out
            rig = reader.rig
            pipeline.use_rig(rig)
            stream = frames_from_log(reader, rig, pipeline.cfg.sync)
            frames = _TimedStream(iter(stream))
            streamed = {s.sensor for s in reader.streams() if s.count > 0}
            sinks = _Sinks(log_dir, rig, pipeline, options, submission, [c.name for c in rig.cameras if c.name in streamed])
            worker = _Worker(sinks.write) if options.rate is not None else None
            total = _estimate_frames(reader, rig, pipeline.cfg.sync.frame_rate_hz)
            if options.max_frames is not None and total is not None:
                total = min(total, options.max_frames - processed)
            bar = tqdm(total=total, unit="frame", desc=name, disable=not options.progress, leave=False)
            paced = _PacedFrames(frames, options.rate) if options.rate is not None else None
            source: Iterator[tuple[SyncedFrame, float]] = paced if paced is not None else ((f, frames.last_ms) for f in frames)
            try:
                for frame, input_ms in source:
                    bar.update(1 + (paced.take_dropped() if paced is not None else 0))
                    t0 = time.perf_counter()
                    try:
                        det = pipeline.step(frame)
                    except CorruptFrameError as exc:
                        latency.drop(f"corrupt frame: {exc}")
                        bad_frames.append(f"{name} frame at {_utc(frame.stamp_ns)} ({frame.stamp_ns}): {exc}")
                        continue
                    except BevfuseError as exc:
                        why = str(exc).splitlines()[0]
                        latency.drop(f"pipeline error: {why}")
                        bad_frames.append(f"{name} frame at {_utc(frame.stamp_ns)} ({frame.stamp_ns}): {why}")
                        continue
                    done = time.perf_counter()
                    for note in pipeline.last_notes:
                        cleaned[f"{name}: {note.split(':')[0]}: NaN/inf points removed (frames)"] += 1
                    stages = {"input": input_ms, **pipeline.last_stage_ms}
                    age_ms = None if paced is None else paced.age_ms(frame, done)
                    latency.add(stages, input_ms + (done - t0) * 1e3, age_ms, frame.missing)
                    if worker is not None:
                        worker.put(name, frame, det)
                    else:
                        sinks.write(name, frame, det)
                    processed += 1
                    if options.max_frames is not None and processed >= options.max_frames:
                        break
            finally:
                bar.close()
                if paced is not None:
                    paced.stop()
                    if paced.dropped:
                        latency.drop("behind real time (a newer frame was due before the stack was free)", paced.dropped)
                try:
                    if worker is not None:
                        worker.close()
                finally:
                    sinks.close()
            skipped.update({f"{name}: {k}": v for k, v in reader.skipped.items()})
            sync_drops.update({f"{name}: {k}": v for k, v in stream.stats.drop_reasons.items()})
            prefix = f"{name}/" if len(logs) > 1 else ""
            outputs += [prefix + n for n in ("detections.mcap", "bev", "cameras", "bev.mp4") if (log_dir / n).exists()]
        latency.wall_s = time.perf_counter() - started
    finally:
        for r in readers:
            r.close()

    result = submission.write(out)
    metrics = None if result is None else result.to_json()
    latency.extra["environment"] = collect_environment(pipeline.device)
    latency.extra["rate"] = options.rate
    lat = latency.write(out / "latency.json")
    outputs = ["detections.json"] + (["ground_truth.json", "metrics.json"] if metrics else []) + ["latency.json", "report.md"] + outputs
    if submission.dropped_classes:
        notes.append("classes outside the nuScenes ten, left out of detections.json: "
                     + ", ".join(f"{k} ({v})" for k, v in sorted(submission.dropped_classes.items())))
    run = {
        "logs": ", ".join(f"{n} ({r.format})" for n, r in zip(names, readers)),
        "model": options.model_path or "-",
        "device / backend / precision": f"{pipeline.device} / {pipeline.backend_name} / {pipeline.precision}",
        "config": pipeline.config_name,
        "pace": "as fast as possible" if options.rate is None else f"{options.rate:g} x real time",
        "frames processed": latency.frames,
        "frames dropped": sum(latency.frames_dropped.values()),
        "frames with ground truth": len(submission.ground_truth),
        "wall time (s)": f"{latency.wall_s:.1f}",
        "frames per second": f"{latency.fps:.2f}" if latency.fps else "n/a",
        "CPU": f"{lat['environment'].get('cpu')} ({lat['environment'].get('sched_cores')} cores)",
    }
    write_report(out / "report.md", run=run, latency=lat, metrics=metrics, skipped=dict(skipped), sync_drops=dict(sync_drops),
                 outputs=outputs, notes=notes, bad_frames=bad_frames, cleaned=dict(cleaned))
    return ReplayResult(out, latency.frames, lat, metrics, outputs, notes)
