"""The simulator loop: every sensor of the rig, in stamp order, into ``SensorMessage``s and a bag.

Timing (sim time 0 = the start of the log, the start of the first LiDAR sweep):

- LiDAR sweep ``k`` ends (and is stamped) at ``k / rate`` for k = 1, 2, ...; its points fire over
  the sweep before the stamp.
- cameras: the trigger model of ``perception.sim.camera`` (the LiDAR head crossing their axes);
- radars at their own rate with a fixed phase each; GNSS, IMU and the exact ego pose from 0 at
  their rates; ground truth at every stamp of the first LiDAR.

Each message is recorded ``latency`` after its stamp (driver, compression, transport), and the bag
is written in order of recording time, as a recorder on the car would; faults may drop, jitter,
delay or re-clock messages (``perception.sim.faults``). The ground truth and the ego pose topics are
exact: they are what a test or a training run compares against.
"""

from __future__ import annotations

import heapq
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from calib import se3
from calib.rig import Rig, SensorSpec, save_rig
from perception.errors import ConfigError, RigError
from perception.sim.camera import CameraSim, RenderedFrame
from perception.sim.config import SimConfig
from perception.sim.faults import FaultDecision, FaultInjector, FaultPlan
from perception.sim.inertial import GnssSim, ImuSim
from perception.sim.keys import stream_key
from perception.sim.lidar import LidarSim, LidarSweep
from perception.sim.radar import RadarReturns, RadarSim
from perception.sim.world import World, build_world
from perception.types import Detections, EgoPose, Modality, SensorMessage

__all__ = ["EGO_POSE_TOPIC", "GROUND_TRUTH_TOPIC", "SimMessage", "Simulator", "scale_rig"]

NS = 1_000_000_000
GROUND_TRUTH_TOPIC = "/ground_truth"
GROUND_TRUTH_SENSOR = "ground_truth"
EGO_POSE_TOPIC = "/ego_pose"
EGO_POSE_SENSOR = "ego_pose"
WORLD_FRAME = "world"
EGO_FRAME = "ego"
GT_RANGE_M = 100.0
RENDER_LOOKAHEAD_EVENTS = 128  # ~0.4 s of events: ~25 images rendered ahead at most  # ground truth covers the objects within the LiDAR's reach

# (base, spread) of the delay from the measurement to the recorder, ns
LATENCY_NS = {
    Modality.LIDAR: (3_000_000, 2_000_000),
    Modality.CAMERA: (18_000_000, 6_000_000),
    Modality.RADAR: (4_000_000, 2_000_000),
    Modality.GNSS: (30_000_000, 10_000_000),
    Modality.IMU: (500_000, 500_000),
}
# order of events that share a stamp: sensors first, the ground truth last (it counts their points)
_PRIORITY = {Modality.LIDAR: 0, Modality.RADAR: 1, Modality.CAMERA: 2, Modality.GNSS: 3, Modality.IMU: 4,
             Modality.ODOMETRY: 5}
_GT_PRIORITY = 9


def scale_rig(rig: Rig, width: int, height: int) -> Rig:
    """The rig with every camera's intrinsics scaled to a ``width`` x ``height`` image."""
    sensors = []
    for s in rig.sensors:
        if s.modality is Modality.CAMERA and s.intrinsics is not None:
            m = s.intrinsics
            if (m.width, m.height) != (width, height):
                s = replace(s, intrinsics=m.scaled(width / m.width, height / m.height))
                if (s.intrinsics.width, s.intrinsics.height) != (width, height):  # rounding of an odd aspect
                    s = replace(s, intrinsics=replace(s.intrinsics, width=width, height=height))
        sensors.append(s)
    return Rig(tuple(sensors), rig.name, rig.source)


@dataclass(frozen=True, eq=False)
class SimMessage:
    """A message as it goes into the bag, with the simulator's truth for tests and previews.

    truth: LidarSweep, RadarReturns, RenderedFrame or None; receive_rel_ns: when the recorder got it.
    """

    message: SensorMessage
    truth: object | None
    receive_rel_ns: int
    true_stamp_rel_ns: int


@dataclass(order=True)
class _Event:
    stamp_rel_ns: int
    priority: int
    sensor: str = field(compare=False)
    index: int = field(compare=False)


class Simulator:
    """Simulate ``seconds`` of driving with ``rig`` from ``seed``.

    ``messages()`` yields everything in recording order (in memory); ``write(path)`` writes the bag.
    """

    def __init__(self, rig: Rig, seed: int, seconds: float, config: SimConfig | None = None,
                 faults: FaultPlan | None = None) -> None:
        if seconds <= 0:
            raise ConfigError(f"seconds: expected > 0, got {seconds}")
        self.config = config or SimConfig()
        cfg = self.config
        self.seed = int(seed)
        self.seconds = float(seconds)
        self.duration_ns = int(round(seconds * NS))
        rig = scale_rig(rig, cfg.camera.width, cfg.camera.height)
        if cfg.radar_msgtype != "sensor_msgs/msg/PointCloud2":
            rig = Rig(tuple(replace(s, msgtype=cfg.radar_msgtype) if s.modality is Modality.RADAR else s for s in rig.sensors),
                      rig.name, rig.source)
        self.rig = rig
        lidars = rig.of(Modality.LIDAR)
        if not lidars:
            raise RigError(f"{rig.source}: the simulator needs a LiDAR: it clocks the cameras and the ground truth")
        self.faults = FaultInjector(faults or FaultPlan(), self.seed)
        self.world: World = build_world(self.seed, self.seconds, cfg.scenario)
        self.world_key = stream_key(self.seed, "textures")
        self.lidars = {s.name: LidarSim(s, cfg.lidar, self.world.road) for s in lidars}
        self.reference = lidars[0].name
        ref = self.lidars[self.reference]
        self.cameras = {s.name: CameraSim(s, cfg.camera, ref) for s in rig.cameras}
        self.radars = {s.name: RadarSim(s, cfg.radar, self.world) for s in rig.of(Modality.RADAR)}
        self.gnss = {s.name: GnssSim(s, cfg.gnss, self.seed, self._periodic(s.rate_hz or 10.0)) for s in rig.of(Modality.GNSS)}
        self.imus = {s.name: ImuSim(s, cfg.imu, self.seed) for s in rig.of(Modality.IMU)}
        self.lidar_stamps = {name: np.arange(1, int(self.duration_ns // L.period_ns) + 1, dtype=np.int64) * L.period_ns
                             for name, L in self.lidars.items()}
        self.stamps: dict[str, np.ndarray] = dict(self.lidar_stamps)
        self.stamps.update({n: c.stamps_rel_ns(self.duration_ns) for n, c in self.cameras.items()})
        self.stamps.update({n: r.stamps_rel_ns(self.duration_ns) for n, r in self.radars.items()})
        for group in (rig.of(Modality.GNSS), rig.of(Modality.IMU)):
            self.stamps.update({s.name: self._periodic(s.rate_hz or 10.0) for s in group})
        if cfg.odometry_rate_hz > 0:
            self.stamps[EGO_POSE_SENSOR] = self._periodic(cfg.odometry_rate_hz)
        self.stamps[GROUND_TRUTH_SENSOR] = self.lidar_stamps[self.reference]

    # -- time ----------------------------------------------------------------------------------------

    def _periodic(self, rate_hz: float) -> np.ndarray:
        period = NS / float(rate_hz)
        st = np.round(np.arange(int(np.ceil(self.duration_ns / period)) + 1) * period).astype(np.int64)
        return st[st < self.duration_ns]

    def to_stamp_ns(self, rel_ns: int) -> int:
        """Absolute stamp (ns since the epoch) of ``rel_ns`` on the recording clock."""
        return self.config.start_epoch_ns + self.faults.plan.clock(int(rel_ns))

    def events(self) -> list[_Event]:
        out = []
        for name, stamps in self.stamps.items():
            if name == GROUND_TRUTH_SENSOR:
                prio = _GT_PRIORITY
            elif name == EGO_POSE_SENSOR:
                prio = _PRIORITY[Modality.ODOMETRY]
            else:
                prio = _PRIORITY[self.rig[name].modality]
            out.extend(_Event(int(s), prio, name, k) for k, s in enumerate(stamps))
        out.sort()
        return out

    # -- the messages --------------------------------------------------------------------------------

    def _latency_ns(self, spec: SensorSpec, index: int) -> int:
        base, spread = LATENCY_NS.get(spec.modality, (0, 0))
        u = stream_key(self.seed, "latency", spec.name, index) / 2.0**64
        return base + int(u * spread)

    def _period_ns(self, name: str) -> int:
        spec = self.rig[name]
        return int(round(NS / float(spec.rate_hz or 10.0)))

    def messages(self, progress: Callable[[int], None] | None = None) -> Iterator[SimMessage]:
        """Every message in the order the recorder receives it (faults applied).

        ``progress(ns)`` is called with the sim time reached, for a progress bar. Camera images are
        rendered ahead on ``config.render_workers`` threads (the kernels release the GIL), while
        this thread simulates the other sensors; each image is a pure function of its event, so
        the messages are the same whatever the scheduling.
        """
        pending: list[tuple[int, int, SimMessage]] = []
        seq = 0
        last_sweep: dict[str, LidarSweep] = {}
        last_radar: dict[str, RadarReturns] = {}
        events = self.events()
        workers = self.config.render_workers
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bevfuse-sim-render") if workers > 0 else None
        ahead: dict[int, Future[RenderedFrame]] = {}
        submitted = 0
        try:
            for i, ev in enumerate(events):
                if pool is not None:  # keep the workers busy with the cameras of the next ~0.4 s
                    while submitted < min(len(events), i + RENDER_LOOKAHEAD_EVENTS):
                        e = events[submitted]
                        if e.sensor in self.cameras:
                            fate = self._fate(e)
                            if fate.keep:
                                ahead[submitted] = pool.submit(self._render, e, fate)
                        submitted += 1
                while pending and pending[0][0] <= ev.stamp_rel_ns:
                    yield heapq.heappop(pending)[2]
                for sm in self._simulate(ev, last_sweep, last_radar, ahead.pop(i, None)):
                    heapq.heappush(pending, (sm.receive_rel_ns, seq, sm))
                    seq += 1
                if progress is not None:
                    progress(ev.stamp_rel_ns)
            while pending:
                yield heapq.heappop(pending)[2]
        finally:
            if pool is not None:
                for f in ahead.values():
                    f.cancel()
                pool.shutdown(wait=True)

    def _fate(self, ev: _Event) -> FaultDecision:
        spec = self.rig[ev.sensor]
        return self.faults.decide(ev.sensor, ev.index, ev.stamp_rel_ns, self._latency_ns(spec, ev.index), self._period_ns(ev.sensor))

    def _header_stamp_ns(self, ev: _Event, fate: FaultDecision) -> int:
        """The header stamp: the jittered true time on the recording clock (jumps counted at the true time)."""
        return self.config.start_epoch_ns + fate.stamp_rel_ns + (self.faults.plan.clock(ev.stamp_rel_ns) - ev.stamp_rel_ns)

    def _render(self, ev: _Event, fate: FaultDecision) -> RenderedFrame:
        return self.cameras[ev.sensor].render(self.world, ev.stamp_rel_ns / NS, self._header_stamp_ns(ev, fate),
                                              stream_key(self.seed, ev.sensor, ev.index), self.world_key)

    def _simulate(self, ev: _Event, last_sweep: dict[str, LidarSweep], last_radar: dict[str, RadarReturns],
                  rendered: Future[RenderedFrame] | None = None) -> list[SimMessage]:
        t = ev.stamp_rel_ns / NS
        name, k = ev.sensor, ev.index
        if name == GROUND_TRUTH_SENSOR:
            gt = self.ground_truth(t, self.to_stamp_ns(ev.stamp_rel_ns), last_sweep.get(self.reference), last_radar)
            msg = SensorMessage(gt.stamp_ns, GROUND_TRUTH_SENSOR, GROUND_TRUTH_TOPIC, gt, gt.stamp_ns)
            return [SimMessage(msg, None, ev.stamp_rel_ns, ev.stamp_rel_ns)]
        if name == EGO_POSE_SENSOR:
            pose = self.ego_pose(t, self.to_stamp_ns(ev.stamp_rel_ns))
            msg = SensorMessage(pose.stamp_ns, EGO_POSE_SENSOR, EGO_POSE_TOPIC, pose, pose.stamp_ns)
            return [SimMessage(msg, None, ev.stamp_rel_ns, ev.stamp_rel_ns)]
        spec = self.rig[name]
        fate = self._fate(ev)
        plan = self.faults.plan
        stamp_ns = self._header_stamp_ns(ev, fate)
        key = stream_key(self.seed, name, k)
        truth: object
        if spec.modality is Modality.LIDAR:
            truth = self.lidars[name].sweep(self.world, ev.stamp_rel_ns, stamp_ns, key)
            last_sweep[name] = truth
            payload = truth.cloud
        elif spec.modality is Modality.RADAR:
            truth = self.radars[name].scan(self.world, t, stamp_ns, key)
            last_radar[name] = truth
            payload = truth.scan
        elif not fate.keep:
            return []  # lost: no need to render it
        elif spec.modality is Modality.CAMERA:
            truth = rendered.result() if rendered is not None else self._render(ev, fate)
            payload = truth.image
        elif spec.modality is Modality.GNSS:
            truth, payload = None, self.gnss[name].fix(self.world, t, ev.stamp_rel_ns, stamp_ns)
        elif spec.modality is Modality.IMU:
            truth, payload = None, self.imus[name].sample(self.world, t, stamp_ns, k)
        else:
            return []
        if not fate.keep:
            return []
        log_ns = self.config.start_epoch_ns + plan.clock(fate.receive_rel_ns)
        msg = SensorMessage(stamp_ns, name, spec.topic or f"/{name}", payload, log_ns)
        return [SimMessage(msg, truth, fate.receive_rel_ns, ev.stamp_rel_ns)]

    # -- truth ---------------------------------------------------------------------------------------

    def ego_pose(self, t: float, stamp_ns: int) -> EgoPose:
        """The exact pose; velocity and angular velocity in the ego frame."""
        T = self.world.ego.world_T_ego(t)
        R = T[:3, :3]
        return EgoPose(stamp_ns=stamp_ns, frame_id=WORLD_FRAME, world_T_ego=T, child_frame_id=EGO_FRAME,
                       velocity=R.T @ self.world.ego.velocity(t), angular_velocity=R.T @ self.world.ego.angular_velocity(t))

    def ground_truth(self, t: float, stamp_ns: int, sweep: LidarSweep | None, radars: dict[str, RadarReturns]) -> Detections:
        """Boxes of the objects within GT_RANGE_M, in the ego frame at ``t``.

        Velocities are world velocities expressed in the ego axes (not relative to the ego), as the
        nuScenes devkit gives them after rotating a box into the ego frame. Point counts: the sweep
        that ends at ``t`` and the latest scan of each radar at or before ``t``.
        """
        w = self.world
        n = w.n_objects
        st = w.bodies_at(t)
        ego_T_world = se3.invert(w.ego.world_T_ego(t))
        center = st.center[:n] @ ego_T_world[:3, :3].T + ego_T_world[:3, 3]
        near = np.hypot(center[:, 0], center[:, 1]) < GT_RANGE_M
        ego_yaw = se3.yaw_of(w.ego.world_T_ego(t))
        yaw = (st.yaw[:n] - ego_yaw + np.pi) % (2 * np.pi) - np.pi
        vel = st.velocity[:n] @ ego_T_world[:2, :2].T
        lidar_pts = sweep.counts(n) if sweep is not None else np.full(n, -1, np.int64)
        radar_pts = np.zeros(n, np.int64)
        for r in radars.values():
            radar_pts += r.counts(n)
        idx = np.nonzero(near)[0]
        return Detections(
            stamp_ns=stamp_ns, frame_id=EGO_FRAME, class_names=w.class_names, center=center[idx],
            size=w.size[idx].copy(), yaw=yaw[idx], velocity=vel[idx], score=np.ones(len(idx), np.float32),
            label=w.label[idx].copy(), attribute=w.attributes(st)[idx], track_id=w.track_id[idx].copy(),
            num_lidar_pts=lidar_pts[idx], num_radar_pts=radar_pts[idx],
        )

    # -- writing -------------------------------------------------------------------------------------

    def write(self, path: str | Path, storage: str = "mcap", progress: bool = False,
              on_message: Callable[[SimMessage], None] | None = None) -> dict[str, int]:
        """Write the bag at ``path`` (a new directory) and ``path/rig.yaml``; returns counts per topic.

        ``on_message`` sees every message as it is written (e.g. to keep a frame for a preview).
        """
        from perception.io.bag_writer import BagWriter

        path = Path(path)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=round(self.seconds, 3), unit="sim s", desc=f"bevfuse sim seed {self.seed}",
                       bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} sim s [{elapsed}<{remaining}]")
        done = [0]

        def tick(ns: int) -> None:
            step = ns // 100_000_000
            if bar is not None and step > done[0]:
                bar.update((step - done[0]) / 10)
                done[0] = step

        # Encoding (JPEG, PointCloud2) and writing run on a second thread while the next messages are
        # simulated (the numba kernels release the GIL). The writer lives on that thread (SQLite
        # objects must stay on theirs); one consumer, first in first out, so the bag is the same,
        # byte for byte, as one written without the thread.
        todo: queue.Queue[SimMessage | None] = queue.Queue(maxsize=64)
        failure: list[BaseException] = []
        counts: dict[str, int] = {}
        ready = threading.Event()

        def drain() -> None:
            try:
                with BagWriter(path, storage=storage, rig=self.rig,  # type: ignore[arg-type]
                               jpeg_quality=self.config.camera.jpeg_quality) as writer:
                    writer.write_rig(self.rig, self.to_stamp_ns(0))
                    ready.set()
                    while (sm := todo.get()) is not None:
                        if not failure:  # after an error: keep taking, so that the producer never blocks
                            try:
                                writer.write(sm.message)
                            except BaseException as exc:  # handed to the main thread
                                failure.append(exc)
                    counts.update(writer.counts)
            except BaseException as exc:
                failure.append(exc)
            finally:
                ready.set()

        worker = threading.Thread(target=drain, name="bevfuse-sim-writer", daemon=True)
        worker.start()
        try:
            ready.wait()
            if not failure:
                for sm in self.messages(tick):
                    if failure:
                        break
                    todo.put(sm)
                    if on_message is not None:
                        on_message(sm)
        finally:
            todo.put(None)
            worker.join()
            if bar is not None:
                bar.close()
        if failure:
            raise failure[0]
        save_rig(self.rig, path / "rig.yaml")
        return counts
