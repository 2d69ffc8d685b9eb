"""The synchronizer on simulated logs, whose truth is known (perception.sim).

- a clean 2 s drive at 15 m/s in memory: the cameras triggered in a sweep land in its frame; the
  deskewed ground and static points agree with where they really were within 5 cm (and not
  without deskew); the accumulated sweeps too; the GNSS+IMU track follows the exact ego poses;
- a 4 s log with faults (5 % drops, 10 ms jitter, a 2 s camera outage, out-of-order delivery, the
  clock jumping back), written as a ROS 2 bag and read back, and pushed in recording order: no
  exception, counters that add up, degraded frames flagged; through frames_from_log in recording
  order, the clock jump counted and the ground truth in its own epoch.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from calib import se3
from calib.rig import Rig, load_rig
from perception.io.base import open_log
from perception.sync import PoseConfig, SyncConfig, Synchronizer, frames_from_log
from perception.types import Deferred, SyncedFrame
from tests.perception.sync.synthetic import MemoryLog

sim_mod = pytest.importorskip("perception.sim.simulator", reason="the simulator (perception/sim) is not there yet")
sim_config = pytest.importorskip("perception.sim.config")
sim_faults = pytest.importorskip("perception.sim.faults")

REPO = Path(__file__).resolve().parents[3]
RIG = REPO / "data" / "rigs" / "nuscenes_like.yaml"
FAULTS = "drop=0.05,jitter_ms=10,outage=CAM_FRONT@0.8+2,reorder=0.05,clock_jump=-1.5@3.2"
NS = 1_000_000_000


def small_config():
    """Small images, every other LiDAR column: what is checked here does not depend on resolution."""
    cfg = sim_config.SimConfig().with_image_size(64, 36)
    return replace(cfg, lidar=replace(cfg.lidar, columns=542),
                   scenario=replace(cfg.scenario, ego_max_speed_mps=20.0, curviness=1.0))


def sync_config(sim) -> SyncConfig:
    """Each camera expected where the LiDAR head crosses its axis (the simulator's trigger model),
    relative to the sweep stamp at the sweep's end; the slop half a camera period, so that an image
    taken during a frame's sweep is always the nearest one."""
    lidar = sim.lidars[sim.reference]
    offsets = {name: (cam.trigger_offset_ns - lidar.period_ns) / 1e6 for name, cam in sim.cameras.items()}
    return SyncConfig(camera_offsets_ms=offsets, camera_slop_ms=41.0)


@pytest.fixture(scope="module")
def rig() -> Rig:
    return load_rig(RIG)


def pick_seed(seconds: float) -> int:
    """The first seed whose drive holds 15 m/s on a bend for the whole log (the worlds are cheap to
    draw; the issue's figures are at 15 m/s, and a bend makes the deskew turn as well as translate)."""
    from perception.sim.world import build_world

    cfg = small_config()
    t = np.arange(0.0, seconds, 0.1)
    for seed in range(40):
        ego = build_world(seed, seconds, cfg.scenario).ego
        speed = [np.linalg.norm(ego.velocity(x)) for x in t]
        turn = [abs(ego.angular_velocity(x)[2]) for x in t]
        if 14.0 < min(speed) and max(speed) < 17.0 and min(turn) > 0.03:
            return seed
    pytest.fail("no seed among 40 drives at 14-17 m/s on a bend: the simulator's scenario draws changed")


@pytest.fixture(scope="module")
def clean(rig):
    sim = sim_mod.Simulator(rig, pick_seed(2.0), 2.0, small_config())  # the world depends on the length too
    return sim, list(sim.messages())


def push_all(sync: Synchronizer, messages) -> list[SyncedFrame]:
    frames = [f for m in messages for f in sync.push(m)]
    return frames + sync.flush()


def truth_world(sim, sweep_truth, ego_T_lidar: np.ndarray) -> np.ndarray:
    """(N, 3) where each return really was: the measured point through the exact pose at its firing
    time (the simulated world is flat: x, y, yaw per point)."""
    p = se3.transform_points(ego_T_lidar, sweep_truth.cloud.points[:, :3].astype(np.float64))
    x, y, yaw = sim.world.ego.planar(sweep_truth.fire_time_s)
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([c * p[:, 0] - s * p[:, 1] + x, s * p[:, 0] + c * p[:, 1] + y, p[:, 2]], axis=1)


def static_mask(sim, sweep_truth) -> np.ndarray:
    """Returns of the ground (body -1) and of bodies that never move (no speed profile)."""
    body = sweep_truth.body
    hit = body >= 0
    still = np.zeros(len(body), bool)
    still[hit] = sim.world.profile[body[hit]] < 0
    return (body == -1) | still


class TestCleanDrive:
    def test_speed_is_15_mps_on_a_bend(self, clean):
        sim, _ = clean
        t = np.arange(0.0, 2.0, 0.25)
        speed = [np.linalg.norm(sim.world.ego.velocity(x)) for x in t]
        assert 14.0 < min(speed) and max(speed) < 17.0
        assert min(abs(sim.world.ego.angular_velocity(x)[2]) for x in t) > 0.03

    def test_cameras_triggered_in_the_sweep_land_in_its_frame(self, clean):
        sim, msgs = clean
        sync = Synchronizer(sim.rig, sync_config(sim))
        frames = push_all(sync, [m.message for m in msgs])
        assert sync.stats.problems() == []
        period = sim.lidars[sim.reference].period_ns
        images = {}
        for m in msgs:
            if m.message.sensor in sim.cameras:
                images.setdefault(m.message.sensor, []).append(m.message.stamp_ns)
        checked = 0
        for f in frames:
            for cam, stamps in images.items():
                during = [s for s in stamps if f.stamp_ns - period < s <= f.stamp_ns]
                if during:
                    assert f.images[cam].stamp_ns == during[0], (cam, f.stamp_ns)
                    checked += 1
        assert checked >= 0.5 * len(frames) * len(images)  # 12 Hz cameras: ~60 % of 50 ms sweeps hold an image

    @pytest.mark.parametrize("deskew", [True, False])
    def test_deskewed_points_agree_with_the_world(self, clean, deskew):
        sim, msgs = clean
        truth = {m.message.stamp_ns: m.truth for m in msgs if m.message.sensor == sim.reference}
        sync = Synchronizer(sim.rig, replace(sync_config(sim), deskew=deskew))
        frames = push_all(sync, [m.message for m in msgs])
        ego_T_lidar = sim.rig[sim.reference].ego_T_sensor
        errs, errs_acc = [], []
        cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for f in frames[3::2]:
            lag = f.lidar.field("time_lag")
            world = se3.transform_points(f.world_T_ego, f.lidar.points[:, :3].astype(np.float64))
            start = 0
            for value in np.unique(lag):  # sweeps in the order accumulated: key first, then older
                n = int(np.sum(lag == value))
                stamp = f.stamp_ns - int(round(float(value) * 1e9 / 1e6)) * 1_000_000
                key = min(truth, key=lambda s, st=stamp: abs(s - st))
                sw = truth[key]
                assert len(sw.cloud) == n
                if key not in cache:
                    cache[key] = (truth_world(sim, sw, ego_T_lidar), static_mask(sim, sw))
                where, still = cache[key]
                d = np.linalg.norm(world[start:start + n] - where, axis=1)[still]
                (errs if value == 0 else errs_acc).append(d)
                start += n
        errs, errs_acc = np.concatenate(errs), np.concatenate(errs_acc)
        if deskew:
            # the bar: within 5 cm at 15 m/s, key sweeps and accumulated ones
            assert np.percentile(errs, 99.9) < 0.05 and np.median(errs) < 0.01
            assert np.percentile(errs_acc, 99.9) < 0.05
        else:
            # a 50 ms sweep at 15 m/s: 0.75 m of travel, more at range while turning
            assert np.median(errs) > 0.2 and np.percentile(errs, 99) > 0.6

    def test_deskew_with_gnss_imu_poses(self, clean):
        """The same with the poses of the GNSS+IMU filter instead of the exact ones: what a car has."""
        sim, msgs = clean
        truth = {m.message.stamp_ns: m.truth for m in msgs if m.message.sensor == sim.reference}
        cfg = replace(sync_config(sim), pose=PoseConfig(source="gnss_imu"))
        frames = push_all(Synchronizer(sim.rig, cfg), [m.message for m in msgs])
        ego_T_lidar = sim.rig[sim.reference].ego_T_sensor
        errs = []
        for f in frames:
            if "gnss_imu" in f.missing:  # before the filter has its heading (the first 5 m)
                continue
            key = f.lidar.field("time_lag") == 0
            sw = truth[f.stamp_ns]
            # in the true ego frame at the stamp: only the motion during the sweep is under test here
            ego_T_world = se3.invert(sim.world.ego.world_T_ego((f.stamp_ns - sim.config.start_epoch_ns) / NS))
            want = se3.transform_points(ego_T_world, truth_world(sim, sw, ego_T_lidar))
            errs.append(np.linalg.norm(f.lidar.points[key, :3] - want, axis=1)[static_mask(sim, sw)])
        assert len(errs) >= 12
        e = np.concatenate(errs)
        # the figures (2026-11-27): median 7 mm, 99.9th percentile 5.5 cm out to 100 m of range
        assert np.median(e) < 0.02 and np.percentile(e, 99) < 0.05

    def test_gnss_imu_track_follows_the_truth(self, clean):
        """Against the exact poses, absolutely: the simulator's world is ENU at its GNSS origin."""
        sim, msgs = clean
        from calib.geodesy import EnuOrigin
        from perception.sync import GnssImuPoseSource
        from perception.types import EgoPose

        g = sim.config.gnss
        src = GnssImuPoseSource(sim.rig, PoseConfig(history_s=10), origin=EnuOrigin(g.origin_lat_deg, g.origin_lon_deg,
                                                                                     g.origin_alt_m))
        exact = []
        for m in msgs:
            if isinstance(m.message.payload, EgoPose):
                exact.append(m.message.payload)
            elif src.accepts(m.message):
                assert src.add(m.message) == "used"
        traj = src.trajectory()
        lo, hi = traj.span_ns
        truth = [p for p in exact if lo <= p.stamp_ns <= hi]
        assert len(truth) >= 80  # 50 Hz exact poses over the covered span
        est = traj.world_T_ego_many(np.array([p.stamp_ns for p in truth], np.int64))
        W = np.stack([p.world_T_ego for p in truth])
        pos = np.linalg.norm(est[:, :2, 3] - W[:, :2, 3], axis=1)
        yaw = np.degrees([abs(math.remainder(se3.yaw_of(a) - se3.yaw_of(b), 2 * math.pi)) for a, b in zip(est, W)])
        # the bar is 0.3 m and 0.5 deg; measured 2026-11-27: 3 cm and 0.1 deg
        assert pos.max() < 0.3 and yaw.max() < 0.5


@pytest.fixture(scope="module")
def faulty(rig, tmp_path_factory):
    """The faulty log, written as a ROS 2 bag, and every message in the order the recorder got it."""
    sim = sim_mod.Simulator(rig, pick_seed(4.0), 4.0, small_config(), sim_faults.parse_faults(FAULTS))
    path = tmp_path_factory.mktemp("sync_sim") / "faulty"
    recorded = []
    sim.write(path, on_message=recorded.append)
    return sim, path, recorded


class TestFaults:
    def test_recording_order_as_live(self, faulty):
        """Pushed as the recorder received them: out of order, jittered, with the clock jump."""
        sim, _, recorded = faulty
        drop_late = None
        for policy in ("drop", "wait"):
            cfg = replace(sync_config(sim), late_policy=policy, reorder_window_ms=60.0)
            sync = Synchronizer(sim.rig, cfg)
            frames = push_all(sync, [m.message for m in recorded])
            st = sync.stats
            assert st.problems() == []
            assert all(c.pending == 0 for c in st.sensors.values())
            assert st.clock_resets == 1
            assert len(frames) >= 30
            _outage_flagged(frames, sim, until_s=2.7)
            late = sum(c.dropped_late for n, c in st.sensors.items() if n in sim.cameras)
            if policy == "drop":
                assert late > 0  # reordered images arrive after newer ones of their camera
                drop_late = late
            else:
                assert late < drop_late  # the reorder buffer put most of them back

    def test_deferred_assembly_builds_the_same_frames(self, faulty):
        """``defer_assembly=True`` (the node's synchronizer): the LiDAR cloud and radar scan come as
        ``Deferred``, and built after the whole log was pushed (every later push has changed the
        synchronizer's state by then) they equal the eagerly built ones array for array."""
        sim, _, recorded = faulty
        msgs = [m.message for m in recorded]
        eager = push_all(Synchronizer(sim.rig, sync_config(sim)), msgs)
        lazy = push_all(Synchronizer(sim.rig, sync_config(sim), defer_assembly=True), msgs)
        assert len(lazy) == len(eager) >= 30
        assert all(isinstance(f.lidar, Deferred) for f in lazy if f.lidar is not None)
        assert sum(isinstance(f.radar, Deferred) for f in lazy) == len(lazy)
        for a, b in zip(eager, lazy):
            built = b.assembled()
            assert built.assembled() is built  # nothing left to build
            assert (a.stamp_ns, a.missing, a.sensor_age_ns) == (built.stamp_ns, built.missing, built.sensor_age_ns)
            assert (a.lidar is None) == (built.lidar is None)
            if a.lidar is not None:
                assert a.lidar.fields == built.lidar.fields
                np.testing.assert_array_equal(a.lidar.points, built.lidar.points)
            for key in ("points", "rcs", "radial_velocity", "velocity", "velocity_comp"):
                np.testing.assert_array_equal(getattr(a.radar, key), getattr(built.radar, key))
            assert a.radar.extra.keys() == built.radar.extra.keys()
            for key in a.radar.extra:
                np.testing.assert_array_equal(a.radar.extra[key], built.radar.extra[key])

    def test_bag_read_back(self, faulty):
        """The same log through the ROS 2 bag, the reader and frames_from_log, ground truth attached.

        Read in stamp order here (``order="stamp"``; frames_from_log's default is the recorded order,
        tested below), which undoes the out-of-order delivery and also
        the clock jump: the 1.5 s re-stamped after the jump interleave with the 1.5 s before it
        (stamps 1.7 s to 3.2 s of the log). Up to there, the frames are checked as in recording order.
        """
        sim, path, recorded = faulty
        with open_log(path) as reader:
            stream = frames_from_log(reader, config=sync_config(sim), order="stamp")
            frames = list(stream)
        st = stream.stats
        assert st.problems() == []
        assert all(c.pending == 0 for c in st.sensors.values())
        assert len(frames) >= 30
        _outage_flagged(frames, sim, until_s=1.65)
        with_gt = [f for f in frames if f.ground_truth is not None]
        assert len(with_gt) >= 0.8 * sum(f.lidar is not None for f in frames)
        assert all(f.ground_truth.frame_id == "ego" for f in with_gt)
        # what the recorder got is what the synchronizer received: the 5 % drops happened before it
        sent: dict[str, int] = {}
        for m in recorded:
            sent[m.message.sensor] = sent.get(m.message.sensor, 0) + 1
        for cam in sim.cameras:
            assert st.sensors[cam].received == sent.get(cam, 0)


    def test_frames_from_log_in_recorded_order(self, faulty):
        """The log as recorded, through frames_from_log (what a reader that reads a bag in record order
        gives it): the clock jump is seen and counted, every message ends in a counter, and the ground
        truth goes to its own epoch's frames, before and after the jump."""
        sim, _, recorded = faulty
        stream = frames_from_log(MemoryLog(sim.rig, [m.message for m in recorded]), config=sync_config(sim))
        frames = list(stream)
        st = stream.stats
        assert stream.order == "record"
        assert st.clock_resets == 1
        assert st.problems() == []
        sent = Counter(m.message.sensor for m in recorded if m.message.sensor != "ground_truth")
        for name, c in st.sensors.items():
            assert c.received == sent[name], name
            assert c.received == c.used + c.dropped and c.pending == 0, name
        assert len(frames) >= 30
        _outage_flagged(frames, sim, until_s=2.7)
        stamps = [f.stamp_ns for f in frames]
        k = next(i for i in range(1, len(stamps)) if stamps[i] < stamps[i - 1])
        for side in (frames[:k], frames[k:]):
            with_gt = [f for f in side if f.ground_truth is not None]
            assert len(with_gt) >= 0.8 * sum(f.lidar is not None for f in side)
            assert all(f.ground_truth.stamp_ns == f.stamp_ns for f in with_gt)

    def test_bag_reader_in_recorded_order(self, faulty):
        """The bag itself: its records are in recording order (the clock jump included); the ROS bag
        reader gives them in file order (``messages(order='record')``, not rosbags' log-time merge,
        which the jump takes back too), so frames_from_log sees the jump (docs/SYNC.md)."""
        sim, path, _ = faulty
        with open_log(path) as reader:
            stream = frames_from_log(reader, config=sync_config(sim))
            list(stream)
        assert stream.order == "record"
        assert stream.stats.clock_resets == 1 and stream.stats.problems() == []


def _outage_flagged(frames: list[SyncedFrame], sim, until_s: float) -> None:
    """Every frame of the CAM_FRONT outage (0.8 s to 2.8 s of the log) up to ``until_s`` and before any
    clock reset flags it; before the outage, only the 5 % drops take CAM_FRONT out of a frame."""
    stamps = [f.stamp_ns for f in frames]
    reset = next((i for i in range(1, len(stamps)) if stamps[i] < stamps[i - 1]), len(frames))
    before_jump = frames[:reset]
    start = sim.config.start_epoch_ns
    during = [f for f in before_jump if start + int(0.9 * NS) <= f.stamp_ns <= start + int(until_s * NS)]
    assert len(during) >= 7
    assert all("CAM_FRONT" in f.missing and f.degraded for f in during)
    early = [f for f in before_jump if start + int(0.2 * NS) <= f.stamp_ns <= start + int(0.7 * NS)]
    assert sum("CAM_FRONT" in f.missing for f in early) <= 2
