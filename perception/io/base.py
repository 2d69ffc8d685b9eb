"""What every drive-log reader provides, and ``open_log`` that picks the reader for a path.

A reader yields ``SensorMessage``s in stamp order (ties keep the file's order) and knows its
``Rig``. A reader of a log that was recorded as a stream (the ROS bag reader) also takes
``messages(sensors, order="record")``: the messages in the order they were written, which keeps
what a stamp sort hides (a clock that jumped back); the dataset readers (nuScenes, KITTI, AV2) have
no recorded order and do not take the argument.

Sensor data payloads are CameraImage, PointCloud, RadarScan, GnssFix, ImuSample; poses from a
dataset's own tables or an odometry topic come as ``EgoPose`` on the sensor ``ego_pose`` (or the
odometry sensor's name); ground truth comes as ``Detections`` on the sensor ``ground_truth``. A
message that cannot be decoded is skipped and counted in ``skipped`` (reason -> count), never
raised mid-stream: a replay says what it skipped in its report.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from calib.rig import Rig
from perception.errors import BevfuseError, FormatError, InputFileError
from perception.types import Modality, SensorMessage

__all__ = ["EGO_POSE", "GROUND_TRUTH", "IndexEntry", "IndexedReader", "LogReader", "RawRecord", "ReaderBase", "StreamInfo", "detect_format",
           "open_log", "READERS"]

EGO_POSE = "ego_pose"
GROUND_TRUTH = "ground_truth"


@dataclass
class StreamInfo:
    """One stream of a log: what ``bevfuse info`` prints for it."""

    sensor: str
    topic: str
    msgtype: str
    modality: Modality | None
    count: int = 0
    first_stamp_ns: int | None = None
    last_stamp_ns: int | None = None

    @property
    def rate_hz(self) -> float | None:
        if self.count < 2 or self.first_stamp_ns is None or self.last_stamp_ns is None:
            return None
        span = self.last_stamp_ns - self.first_stamp_ns
        return (self.count - 1) * 1e9 / span if span > 0 else None

    def to_dict(self) -> dict:
        return {
            "sensor": self.sensor, "topic": self.topic, "msgtype": self.msgtype,
            "modality": self.modality.value if self.modality else None, "count": self.count,
            "rate_hz": self.rate_hz, "first_stamp_ns": self.first_stamp_ns, "last_stamp_ns": self.last_stamp_ns,
        }


@runtime_checkable
class LogReader(Protocol):
    """The interface of every reader. Use as a context manager where it holds files open."""

    path: Path
    format: str
    rig: Rig
    skipped: Counter[str]

    def streams(self) -> list[StreamInfo]:
        """Per-stream counts, stamps and rates (from an index where the format has one)."""
        ...

    def messages(self, sensors: Collection[str] | None = None) -> Iterator[SensorMessage]:
        """Decoded messages in stamp order, optionally only those of ``sensors``.

        Optional: an ``order`` argument, 'stamp' (the default) or 'record' (as written to the log;
        another value raises ``ConfigError``), for readers that know the recorded order
        (``perception.sync.replay.offers_record_order`` tests for it)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> LogReader: ...

    def __exit__(self, *exc: object) -> None: ...


@dataclass
class ReaderBase:
    """Shared plumbing for readers: context manager and the skip counter."""

    path: Path
    format: str = "unknown"
    skipped: Counter[str] = field(default_factory=Counter)

    def close(self) -> None:
        pass

    def __enter__(self):  # noqa: ANN204 - returns the concrete reader
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class RawRecord:
    """One message of a log before decoding: ``raw_records()`` yields them in ``messages()``'s order,
    ``decode_record()`` turns one into its ``SensorMessage`` (or None, skipped and counted). For
    timing the decode on its own (``bevfuse bench``). ``size``: bytes held (0 when ``data`` only
    points at a file)."""

    stamp_ns: int
    sensor: str
    data: Any
    size: int = 0


@dataclass(frozen=True)
class IndexEntry:
    """One message of a dataset reader's index, decoded only when ``messages`` reaches it.

    ``rank`` orders equal stamps (pose first, then data, then ground truth); ``seq`` keeps file order.
    """

    stamp_ns: int
    rank: int
    seq: int
    sensor: str
    ref: Any


class IndexedReader(ReaderBase):
    """Readers of file-per-message datasets (nuScenes, KITTI, AV2): an index sorted by stamp,
    each entry decoded lazily by ``_decode``; an unreadable file is skipped and counted."""

    _index: list[Any]  # entries with at least stamp_ns and sensor
    _msgtypes: dict[str, tuple[str, Modality | None]]

    def _decode(self, e: Any) -> Any:
        raise NotImplementedError

    def _stream_type(self, e: Any) -> tuple[str, Modality | None]:
        return self._msgtypes[e.sensor]

    def streams(self) -> list[StreamInfo]:
        infos: dict[str, StreamInfo] = {}
        for e in self._index:
            info = infos.get(e.sensor)
            if info is None:
                msgtype, modality = self._stream_type(e)
                info = infos[e.sensor] = StreamInfo(e.sensor, e.sensor, msgtype, modality, 0, e.stamp_ns, e.stamp_ns)
            info.count += 1
            info.last_stamp_ns = e.stamp_ns
        return list(infos.values())

    def raw_records(self, sensors: Collection[str] | None = None) -> Iterator[RawRecord]:
        """The index entries of ``sensors`` (default all), undecoded, in stamp order."""
        wanted = None if sensors is None else set(sensors)
        for e in self._index:
            if wanted is None or e.sensor in wanted:
                yield RawRecord(e.stamp_ns, e.sensor, e)

    def decode_record(self, record: RawRecord) -> SensorMessage | None:
        e = record.data
        try:
            payload = self._decode(e)
        except BevfuseError as exc:
            # One unreadable file must not end a replay: count it (the message names the file).
            self.skipped[f"{e.sensor}: {exc}"] += 1
            return None
        return SensorMessage(stamp_ns=e.stamp_ns, sensor=e.sensor, topic=e.sensor, payload=payload)

    def messages(self, sensors: Collection[str] | None = None) -> Iterator[SensorMessage]:
        for record in self.raw_records(sensors):
            msg = self.decode_record(record)
            if msg is not None:
                yield msg


Opener = Callable[..., LogReader]

# Format name -> (test whether a path is of it, open it). Filled by the reader modules below;
# a dict of typed entries rather than a string registry that imports by name.
READERS: dict[str, tuple[Callable[[Path], bool], Opener]] = {}


def register_reader(name: str, detect: Callable[[Path], bool], opener: Opener) -> None:
    READERS[name] = (detect, opener)


def _load_readers() -> None:
    # Import for their register_reader side effect; each module guards its own heavy imports.
    import importlib

    for mod in ("perception.io.rosbag", "perception.io.nuscenes", "perception.io.kitti", "perception.io.av2"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def detect_format(path: str | Path) -> str:
    """The name of the format of ``path``; raises ``FormatError`` naming the formats tried."""
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{p}: no such file or directory")
    _load_readers()
    for name, (detect, _) in READERS.items():
        if detect(p):
            return name
    raise FormatError(f"{p}: not a drive log bevfuse reads (tried: {', '.join(READERS) or 'none'})")


def open_log(path: str | Path, rig: Rig | str | Path | None = None, fmt: str | None = None, **kwargs: object) -> LogReader:
    """Open a drive log of any supported format. ``rig`` (a Rig or a rig file) maps topics to sensors;
    without it the reader builds the rig from the log (``/tf_static`` + ``CameraInfo``, or the
    dataset's calibration tables) and maps topics by message type."""
    p = Path(path)
    name = fmt or detect_format(p)
    _load_readers()
    if name not in READERS:
        raise FormatError(f"{p}: unknown format {name!r}; known: {sorted(READERS)}")
    if isinstance(rig, (str, Path)):
        from calib.rig import load_rig

        rig = load_rig(rig)
    return READERS[name][1](p, rig=rig, **kwargs)
