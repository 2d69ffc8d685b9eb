"""Frames for ``bevfuse bench``: a log's raw messages held in memory, replayed through the decoder and
the synchronizer as many times as the benchmark needs frames.

A 5 s log has about 50 frames; a benchmark wants 200, a soak 10,000. The frames are cycled, and
every cycle does the work of the first one, stage by stage:

1. ``RawLog.load`` reads the log's records **undecoded** into memory before any clock starts: for a
   ROS bag the serialized CDR bytes of each message (with its topic, log time and stamp), for a
   dataset reader (nuScenes, KITTI, AV2) its index entries (a file name: decoding is the reader's
   work, reading the file included, from the page cache after the first cycle). Ground truth is
   left out: the vehicle has none. A reader that offers neither is decoded up front, and its
   ``decode`` stage measures nothing (``decode_note`` says so).
2. ``FrameCycle.build`` decodes and pushes every record once through a ``Synchronizer`` (with the
   sync config ``frames_from_log`` would use for this log) and cuts the record list into
   **bundles**: bundle k is the records pushed between the push that completed frame k-1 and the
   push that completed frame k. Decoding and pushing bundle k is exactly the work that produced
   frame k. The frames that only ``flush()`` would give (the log's tail, degraded because the
   log ended) are not cycled.
3. The first frames of a log are not like the rest: the sweep history is empty and the pose
   filter is starting. Those ``warm_frames`` (the sweep history, then until a frame has every
   sensor, 20 more at most) only bring the synchronizer to its steady state; a
   deep copy of it at that point (``snapshot``) starts every cycle. So cycle c replays bundles
   ``warm_frames .. end`` into a fresh copy of a warm synchronizer: the same frames every cycle,
   with no jump of the clock or the pose between the end of the log and its start, and no state
   (pose history, stats) that grows with the number of cycles, which a soak would report as a
   leak. The copy is made between frames, outside every timed region.
4. ``FrameSource.next(timer)`` gives one frame: the ``decode`` stage decodes its bundle's records,
   the ``sync`` stage pushes them into the synchronizer and takes the frame out. A push may complete
   two frames at once (a late camera releases two): the second frame's bundle is empty and its
   ``decode`` and ``sync`` stages are ~0, as they are on the vehicle. The decoded messages the
   synchronizer does not keep are freed inside ``sync`` (freeing images takes time too).

On the vehicle each message is decoded when it arrives, before its frame is complete; here a
frame's whole bundle is decoded after its last record "arrived", so a paced run's
``sensor_to_output`` is an upper bound of the vehicle's (by the decode time of the bundle's
earlier messages).
"""

from __future__ import annotations

import copy
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calib.rig import Rig
from perception.bench.errors import BenchError
from perception.bench.timing import StageTimer
from perception.io.base import GROUND_TRUTH, LogReader, open_log
from perception.sync.config import SyncConfig
from perception.sync.synchronizer import Synchronizer
from perception.types import Modality, SensorMessage, SyncedFrame

__all__ = ["Bundle", "FrameCycle", "FrameSource", "RawLog", "default_warm_frames", "sim_log"]

NS = 1_000_000_000
# warm-up frames beyond the sweep history, at most, waiting for a frame with every sensor in
MAX_EXTRA_WARM = 20


@dataclass(frozen=True)
class _Record:
    stamp_ns: int
    data: Any  # what RawLog.decode takes: (topic, log_time, bytes) | an index entry | a SensorMessage


@dataclass
class RawLog:
    """A log's records in memory, undecoded, in stamp order (ties in file order), and how to decode one.

    Holds the reader open (decoding a bag's record needs its type store): use as a context manager
    or call ``close``. ``decode(record)`` gives the ``SensorMessage`` the reader's ``messages()``
    would have given, or None for a record the reader skips (counted in ``reader.skipped``).
    """

    path: Path
    reader: LogReader
    records: list[_Record]
    decode_record: Callable[[Any], SensorMessage | None]
    decode_note: str
    raw_bytes: int = 0

    @property
    def rig(self) -> Rig:
        return self.reader.rig

    @property
    def format(self) -> str:
        return self.reader.format

    def decode(self, record: _Record) -> SensorMessage | None:
        return self.decode_record(record.data)

    @property
    def span_s(self) -> float:
        return (self.records[-1].stamp_ns - self.records[0].stamp_ns) / NS if self.records else 0.0

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> RawLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def load(cls, path: str | Path, seconds: float | None = None) -> RawLog:
        """Read ``path`` (any format ``open_log`` reads) into memory; only its first ``seconds`` when given."""
        reader = open_log(path)
        try:
            end = _end_stamp(reader, seconds)
            if hasattr(reader, "raw_records") and hasattr(reader, "decode_record"):
                records, decode, note, size = _raw_records(reader, end)
            else:
                records, decode, note, size = _predecoded_records(reader, end)
        except BaseException:
            reader.close()
            raise
        if not records:
            reader.close()
            raise BenchError(f"{path}: no sensor messages to benchmark with")
        return cls(Path(path), reader, records, decode, note, size)


def _end_stamp(reader: Any, seconds: float | None) -> int | None:
    """The last stamp to keep: ``seconds`` after the log's first sensor stamp (None: keep all)."""
    if seconds is None:
        return None
    firsts = [s.first_stamp_ns for s in reader.streams() if s.count and s.first_stamp_ns is not None and s.modality is not None]
    return min(firsts) + int(seconds * NS) if firsts else None


def _raw_records(reader: Any, end: int | None) -> tuple[list[_Record], Callable[[Any], SensorMessage | None], str, int]:
    """The reader's undecoded records (``raw_records``), decoded per frame by ``decode_record``."""
    records = [r for r in reader.raw_records() if r.sensor != GROUND_TRUTH and (end is None or r.stamp_ns <= end)]
    size = sum(r.size for r in records)
    if str(reader.format).startswith("rosbag"):
        note = "CDR deserialization and payload decoding (JPEG, PointCloud2 fields) of the frame's messages"
    else:
        note = f"the {reader.format} reader's work per message: reading its file and decoding it"
    return [_Record(r.stamp_ns, r) for r in records], reader.decode_record, note, size


def _predecoded_records(reader: Any, end: int | None) -> tuple[list[_Record], Callable[[Any], SensorMessage | None], str, int]:
    msgs = [m for m in reader.messages() if m.sensor != GROUND_TRUTH and (end is None or m.stamp_ns <= end)]
    note = f"not measured: the {reader.format} reader gives decoded messages only (decoded before the clock started)"
    return [_Record(m.stamp_ns, m) for m in msgs], lambda m: m, note, 0


@dataclass(frozen=True)
class Bundle:
    """The records ``[start, end)`` whose decoding and pushing completed the frame at ``stamp_ns``;
    ``arrival_ns``: the stamp of the record that completed it (when the frame could go out)."""

    start: int
    end: int
    stamp_ns: int
    arrival_ns: int


def default_warm_frames(rig: Rig, config: SyncConfig) -> int:
    """Frames until the sweep history is full (``lidar_sweeps`` sweeps at the LiDAR's rate), plus one
    for the pose source to settle."""
    lidars = rig.of(Modality.LIDAR)
    rate = (lidars[0].rate_hz if lidars and lidars[0].rate_hz else None) or config.frame_rate_hz
    history_s = min(config.lidar_sweeps / rate, config.lidar_max_lag_ms / 1e3)
    return int(math.ceil(history_s * config.frame_rate_hz - 1e-9)) + 1


@dataclass
class FrameCycle:
    """The bundles of a log cut for one sync config, and the warm synchronizer every cycle starts from.

    ``bundles``: the cycled frames (after the warm-up ones, before the flushed tail); ``log_frames``:
    every frame the log gave; ``skipped``: records the reader could not decode, by reason."""

    raw: RawLog
    config: SyncConfig
    bundles: list[Bundle]
    snapshot: Synchronizer
    warm_frames: int
    log_frames: int
    prepare_s: float
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def span_ns(self) -> int:
        """Stamp span of one cycle plus one frame period: the clock offset from a cycle to the next."""
        return self.bundles[-1].stamp_ns - self.bundles[0].stamp_ns + self.config.frame_period_ns

    @classmethod
    def build(cls, raw: RawLog, config: SyncConfig, warm_frames: int | None = None) -> FrameCycle:
        from perception.sync.replay import FrameStream

        t0 = time.perf_counter()
        rig = raw.rig
        # the config frames_from_log would use for this log (pose source from what it has, ...)
        config = FrameStream(raw.reader, rig, config).config
        want = default_warm_frames(rig, config) if warm_frames is None else max(0, int(warm_frames))
        sync = Synchronizer(rig, config)
        snapshot = copy.deepcopy(sync) if want == 0 else None
        first = 0  # bundles before it warm the synchronizer
        bundles: list[Bundle] = []
        start = 0
        for j, rec in enumerate(raw.records):
            msg = raw.decode(rec)
            if msg is None:
                continue
            out = sync.push(msg)
            for k, frame in enumerate(out):
                bundles.append(Bundle(start if k == 0 else j + 1, j + 1, frame.stamp_ns, rec.stamp_ns))
            if out:
                start = j + 1
                # warm: the history is full and the last frame had every sensor (the pose filter may
                # take a few more frames than the sweeps), or it never will within MAX_EXTRA_WARM
                settled = not out[-1].missing or len(bundles) >= want + MAX_EXTRA_WARM
                if snapshot is None and len(bundles) >= want and settled:
                    # after a push that completed frames, nothing of the next frame is in yet: a clean cut
                    snapshot, first = copy.deepcopy(sync), len(bundles)
        log_frames = len(bundles) + len(sync.flush())
        skipped = Counter(raw.reader.skipped)
        if snapshot is None or first >= len(bundles):
            raise BenchError(f"{raw.path}: too short to benchmark: {len(bundles)} frame(s) came out of the synchronizer "
                             f"before the end of the log, {want} of them only warm it up ({config.lidar_sweeps} sweeps of "
                             f"history); use a longer log (bevfuse sim --seconds 5)")
        return cls(raw, config, bundles[first:], snapshot, first, log_frames, time.perf_counter() - t0, skipped)


class FrameSource:
    """Frames from a ``FrameCycle``, forever: ``next(timer)`` times ``decode`` and ``sync`` on ``timer``.

    ``index`` counts the frames given; ``cycle`` the completed cycles. ``stamp_ns(frame)`` is the
    frame's stamp on a clock that keeps going across cycles (cycle c is shifted by c spans), which
    is what pacing and ``sensor_to_output`` need; the frames themselves keep their log stamps.
    """

    def __init__(self, cycle: FrameCycle) -> None:
        self.cycle_data = cycle
        self.index = 0
        self.cycle = 0
        self._pos = 0
        self._sync: Synchronizer | None = None
        self._spent = False
        self._pending: list[SyncedFrame] = []
        self.skipped: Counter[str] = Counter()

    @property
    def position(self) -> int:
        """Which cycled frame ``next`` gives next (0 .. len(bundles) - 1)."""
        return self._pos

    def start_cycle_if_due(self) -> None:
        """Copy the warm synchronizer when a cycle starts: call outside timed regions (``next`` calls
        it too, which only matters for the very first frame)."""
        if self._pos == 0 and (self._sync is None or self._spent):
            self._sync = None  # free the spent copy here too: freeing a synchronizer full of frames takes ms
            self._pending = []
            self._sync = copy.deepcopy(self.cycle_data.snapshot)
            self._spent = False

    def next_arrival_ns(self) -> int:
        """When the next frame's last record arrives, on the continuing clock."""
        b = self.cycle_data.bundles[self._pos]
        return b.arrival_ns + self.cycle * self.cycle_data.span_ns

    def shifted(self, stamp_ns: int, cycle: int | None = None) -> int:
        return stamp_ns + (self.cycle if cycle is None else cycle) * self.cycle_data.span_ns

    def next(self, timer: StageTimer) -> SyncedFrame:
        data = self.cycle_data
        self.start_cycle_if_due()
        sync = self._sync
        assert sync is not None
        b = data.bundles[self._pos]
        raw = data.raw
        with timer.stage("decode"):
            msgs = [raw.decode(r) for r in raw.records[b.start:b.end]]
        with timer.stage("sync"):
            for m in msgs:
                if m is not None:
                    self._pending += sync.push(m)
            frame = self._pending.pop(0) if self._pending else None
            msgs = m = None  # what the synchronizer did not keep is freed here, in its stage
        if frame is None or frame.stamp_ns != b.stamp_ns:
            got = "no frame" if frame is None else f"the frame at {frame.stamp_ns}"
            raise BenchError(f"{raw.path}: replaying the records of the frame at {b.stamp_ns} gave {got}: the synchronizer "
                             "did not repeat the preparation pass (is a record decoded differently the second time?)")
        self.index += 1
        self._pos += 1
        if self._pos == len(data.bundles):
            self._pos = 0
            self.cycle += 1
            self._spent = True  # the next cycle starts from a new copy of the snapshot
        return frame


def sim_log(cache_dir: str | Path, image_size: tuple[int, int], seconds: float = 5.0, seed: int = 7,
            rig_path: str | Path | None = None, progress: bool = False) -> Path:
    """A simulated log for the benchmark, written once into ``cache_dir`` and reused.

    The nuScenes-like rig (or ``rig_path``) with cameras at ``image_size`` (W, H); the same
    arguments give the same bag (the simulator is deterministic for a seed), so the cache is keyed
    by them. Written to a ``.partial`` directory first: an interrupted run leaves no half log.
    """
    import shutil

    from calib.rig import load_rig
    from perception.commands.sim import DEFAULT_RIG
    from perception.sim.config import SimConfig
    from perception.sim.simulator import Simulator

    w, h = image_size
    rig_file = Path(rig_path) if rig_path else DEFAULT_RIG
    tag = "" if rig_path is None else f"-{rig_file.stem}"
    out = Path(cache_dir) / f"sim{tag}-{w}x{h}-{seconds:g}s-seed{seed}"
    if (out / "metadata.yaml").is_file():
        return out
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.parent.mkdir(parents=True, exist_ok=True)
    sim = Simulator(load_rig(rig_file), seed, seconds, SimConfig().with_image_size(w, h))
    sim.write(partial, progress=progress)
    partial.rename(out)
    return out
