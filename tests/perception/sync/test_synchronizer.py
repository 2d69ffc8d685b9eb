"""The streaming synchronizer on a synthetic drive with known truth: matching, degraded frames,
late and out-of-order messages, clock jumps, bounded queues, counters and determinism."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from perception.config import PipelineConfig, from_dict
from perception.errors import ConfigError
from perception.sync import SyncConfig, Synchronizer
from perception.types import SensorMessage, SyncedFrame
from tests.perception.sync.synthetic import Scene, merge

NS = 1_000_000_000


def run(scene: Scene, config: SyncConfig, messages: list[SensorMessage] | None = None) -> tuple[list[SyncedFrame], Synchronizer]:
    sync = Synchronizer(scene.rig, config)
    frames: list[SyncedFrame] = []
    for msg in scene.messages if messages is None else messages:
        frames += sync.push(msg)
    frames += sync.flush()
    assert sync.stats.problems() == []
    for name, c in sync.stats.sensors.items():
        assert c.pending == 0, name
    return frames, sync


def key_stamps(scene: Scene) -> list[int]:
    return [m.stamp_ns for m in scene.sweeps[::2]]


class TestCleanStream:
    def test_frames_at_10hz_with_every_triggered_camera(self, scene, scene_config):
        frames, sync = run(scene, scene_config)
        assert [f.stamp_ns for f in frames] == key_stamps(scene)
        for f in frames:
            for cam, off in scene.camera_offsets_ms.items():
                # the image triggered in this frame's sweep, not a neighbour's
                assert f.images[cam].stamp_ns == f.stamp_ns + round(off * 1e6)
                assert f.sensor_age_ns[cam] == -round(off * 1e6)
            assert f.world_T_ego.shape == (4, 4) and np.all(np.isfinite(f.world_T_ego))
            assert set(f.ego_T_sensor) == set(scene.camera_offsets_ms)
        # radars start 60 ms into the log: only the first frame can lack some
        assert all(not f.missing for f in frames[1:])
        st = sync.stats
        assert st.frames == len(frames)
        for cam in scene.camera_offsets_ms:
            assert st.sensors[cam].used == st.sensors[cam].received == len(frames)
        lidar = st.sensors["LIDAR_TOP"]
        assert lidar.received == len(scene.sweeps)
        # every sweep goes into a frame (key, or accumulated into the next one) but the last non-key one
        assert lidar.used + lidar.dropped_unmatched == lidar.received and lidar.dropped_unmatched <= 1

    def test_accumulation_and_time_lag(self, scene, scene_config):
        frames, _ = run(scene, scene_config)
        f = frames[-1]
        lags = np.unique(f.lidar.field("time_lag"))
        np.testing.assert_allclose(lags, np.arange(10) * 0.05, atol=1e-6)
        assert f.lidar.fields == ("x", "y", "z", "intensity", "time_lag")
        assert f.lidar.frame_id == "ego" and f.lidar.time_offset_ns is None
        assert f.radar is not None and f.radar.frame_id == "ego" and len(f.radar) > 0
        assert f.radar.extra["time_lag"].min() >= 0.0

    def test_camera_extrinsics_follow_the_ego_motion(self, scene, scene_config):
        frames, _ = run(scene, scene_config)
        f = frames[5]
        cam = "CAM_3"  # fired 37.5 ms before the sweep stamp: 0.56 m behind at 15 m/s
        t = f.images[cam].stamp_ns
        expected = np.linalg.inv(scene.motion.world_T_ego(f.stamp_ns)) @ scene.motion.world_T_ego(t) @ scene.rig[cam].ego_T_sensor
        np.testing.assert_allclose(f.ego_T_sensor[cam], expected, atol=2e-3)
        assert np.linalg.norm(f.ego_T_sensor[cam][:3, 3] - scene.rig[cam].ego_T_sensor[:3, 3]) > 0.5

    def test_deterministic(self, scene, scene_config):
        a, sa = run(scene, scene_config)
        b, sb = run(scene, scene_config)
        assert len(a) == len(b)
        for fa, fb in zip(a, b):
            assert fa.stamp_ns == fb.stamp_ns and fa.missing == fb.missing and fa.wait_ns == fb.wait_ns
            assert fa.sensor_age_ns == fb.sensor_age_ns
            np.testing.assert_array_equal(fa.world_T_ego, fb.world_T_ego)
            np.testing.assert_array_equal(fa.lidar.points, fb.lidar.points)
            np.testing.assert_array_equal(fa.radar.points, fb.radar.points)
            assert [im.stamp_ns for im in fa.images.values()] == [im.stamp_ns for im in fb.images.values()]
        assert sa.stats.to_dict() == sb.stats.to_dict()


class TestDegraded:
    def test_camera_outage_flags_frames(self, scene, scene_config):
        t0 = scene.sweeps[10].stamp_ns
        t1 = t0 + NS
        msgs = [m for m in scene.messages if not (m.sensor == "CAM_2" and t0 <= m.stamp_ns < t1)]
        frames, sync = run(scene, scene_config, msgs)
        hit = [f for f in frames if t0 <= f.stamp_ns + round(scene.camera_offsets_ms["CAM_2"] * 1e6) < t1]
        assert len(hit) == 10
        for f in frames[1:]:
            assert ("CAM_2" in f.missing) == (f in hit)
            assert f.degraded == (f in hit)
        assert sync.stats.sensors["CAM_2"].missing_from_frames == len(hit)
        # a degraded frame went out at its deadline, in message time; the last one as soon as the
        # camera's next image showed that none would come for it
        deadline = int(scene_config.deadline_ms * 1e6)
        assert all(f.wait_ns == deadline for f in hit[:-1])
        assert 0 < hit[-1].wait_ns < deadline
        assert all(f.wait_ns == 0 for f in frames[1:] if f not in hit)

    def test_without_pose_every_frame_says_so(self, scene, scene_config):
        msgs = [m for m in scene.messages if m.sensor != "ego_pose"]
        frames, sync = run(scene, scene_config, msgs)
        assert len(frames) == len(key_stamps(scene))
        for f in frames:
            assert "ego_pose" in f.missing and np.all(np.isnan(f.world_T_ego))
            # no motion known: only the key sweep, placed by the rig
            assert np.unique(f.lidar.field("time_lag")).tolist() == [0.0]
        assert sync.stats.sensors["ego_pose"].missing_from_frames == len(frames)

    def test_lidar_outage_keeps_the_frame_clock(self, scene, scene_config):
        t0, t1 = scene.sweeps[20].stamp_ns, scene.sweeps[20].stamp_ns + NS // 2
        msgs = [m for m in scene.messages if not (m.sensor == "LIDAR_TOP" and t0 <= m.stamp_ns < t1)]
        frames, sync = run(scene, scene_config, msgs)
        gap = [f for f in frames if f.lidar is None]
        assert len(gap) >= 4 and all("LIDAR_TOP" in f.missing for f in gap)
        assert sync.stats.frames_without_reference == len(gap)
        stamps = np.array([f.stamp_ns for f in frames])
        assert np.all(np.diff(stamps) > 0) and np.diff(stamps).max() <= 100_000_000
        # the cameras still find their frames during the outage (they were triggered on time)
        assert all(len(f.images) >= 5 for f in gap)
        without = replace(scene_config, emit_without_reference=False)
        frames2, _ = run(scene, without, msgs)
        assert all(f.lidar is not None for f in frames2) and len(frames2) == len(frames) - len(gap)

    def test_dropped_key_sweep_moves_the_frame_by_one_sweep(self, scene, scene_config):
        drop = scene.sweeps[8].stamp_ns  # a key sweep (every second one from the first)
        msgs = [m for m in scene.messages if not (m.sensor == "LIDAR_TOP" and m.stamp_ns == drop)]
        frames, _ = run(scene, scene_config, msgs)
        stamps = [f.stamp_ns for f in frames]
        assert drop not in stamps and scene.sweeps[9].stamp_ns in stamps
        assert all(b - a >= 50_000_000 for a, b in zip(stamps, stamps[1:]))


class TestLateAndOutOfOrder:
    def _swap_cameras(self, scene: Scene) -> list[SensorMessage]:
        """Deliver each camera's images in swapped pairs (out of order per sensor)."""
        out = [m for m in scene.messages if not m.sensor.startswith("CAM_")]
        cams = []
        for cam in scene.camera_offsets_ms:
            mine = [m for m in scene.cameras if m.sensor == cam]
            for a, b in zip(mine[0::2], mine[1::2]):
                # b is delivered first, a right after it: a is out of order
                cams += [(b.stamp_ns, b), (b.stamp_ns + 1, a)]
        merged = [(m.stamp_ns, 0, m) for m in out] + [(t, 1, m) for t, m in cams]
        merged.sort(key=lambda e: (e[0], e[1]))
        return [m for _, _, m in merged]

    def test_drop_policy_counts_out_of_order(self, scene, scene_config):
        frames, sync = run(scene, scene_config, self._swap_cameras(scene))
        late = sum(sync.stats.sensors[c].dropped_late for c in scene.camera_offsets_ms)
        assert late > 0
        assert any(f.degraded for f in frames)

    def test_wait_policy_restores_the_order(self, scene, scene_config):
        clean, _ = run(scene, scene_config)
        cfg = replace(scene_config, late_policy="wait", reorder_window_ms=150.0)
        frames, sync = run(scene, cfg, self._swap_cameras(scene))
        assert sum(sync.stats.sensors[c].dropped_late for c in scene.camera_offsets_ms) == 0
        assert [f.stamp_ns for f in frames] == [f.stamp_ns for f in clean]
        for a, b in zip(frames, clean):
            assert {k: v.stamp_ns for k, v in a.images.items()} == {k: v.stamp_ns for k, v in b.images.items()}
        # the price: each frame waited for the reorder window
        assert min(f.wait_ns for f in frames[1:]) >= 100_000_000

    def test_a_camera_after_its_frame_went_out_is_late(self, scene, scene_config):
        victim = scene.cameras[30]
        rest = [m for m in scene.messages if m is not victim]
        i = next(k for k, m in enumerate(rest) if m.stamp_ns > victim.stamp_ns + 400_000_000)
        msgs = rest[:i] + [victim] + rest[i:]
        frames, sync = run(scene, scene_config, msgs)
        assert sync.stats.sensors[victim.sensor].dropped_late == 1
        assert sum(victim.sensor in f.missing for f in frames) == 1

    def test_clock_jump_backwards(self, scene, scene_config):
        """The second half of the log comes again 10 s earlier (a time source reset)."""
        msgs = scene.messages
        # cut where a frame's messages begin (its first camera), so the new epoch starts in phase
        # with the cameras, which this scene triggers on every second sweep only
        cut_at = scene.sweeps[30].stamp_ns - 48_000_000  # after sweep 29, before the cameras of sweep 30
        half = next(i for i, m in enumerate(msgs) if m.stamp_ns >= cut_at)
        jump = 10 * NS
        shifted = [_shift(m, -jump) for m in msgs[half:]]
        # a pose measured before the jump but recorded after it (its latency straddles the jump)
        straggler = next(m for m in msgs[half - 20:half] if m.sensor == "ego_pose")
        frames, sync = run(scene, scene_config, msgs[:half] + shifted[:5] + [straggler] + shifted[5:])
        assert sync.stats.clock_resets == 1 and sync.stats.reset_reasons
        assert sync.stats.drop_reasons["ego_pose: from before the clock jump"] == 1
        stamps = [f.stamp_ns for f in frames]
        k = next(i for i in range(1, len(stamps)) if stamps[i] < stamps[i - 1])
        assert stamps[k] < stamps[0] and all(b > a for a, b in zip(stamps[k:], stamps[k + 1:]))
        # the new epoch starts without history: its first frames are flagged until poses and radars come
        after = frames[k:]
        assert len(after) == len(key_stamps(scene)) - 15
        assert after[0].stamp_ns == scene.sweeps[30].stamp_ns - jump
        assert all(not f.missing for f in after[1:])

    def test_bounded_queues_overflow_is_counted(self, scene, scene_config):
        cfg = replace(scene_config, queue_size=3)
        cams = [m for m in scene.cameras if m.sensor == "CAM_0"][:10]
        frames, sync = run(scene, cfg, cams)  # no LiDAR: nothing takes them
        c = sync.stats.sensors["CAM_0"]
        assert frames == [] and c.dropped_overflow == 7 and c.dropped_unmatched == 3

    def test_invalid_and_unknown_messages(self, scene, scene_config):
        cam = scene.cameras[0]
        wrong = SensorMessage(cam.stamp_ns, "LIDAR_TOP", "/lidar", cam.payload)
        stranger = SensorMessage(cam.stamp_ns, "THERMAL", "/thermal", cam.payload)
        msgs = merge([wrong, stranger], scene.messages[:200])
        _, sync = run(scene, scene_config, msgs)
        assert sync.stats.sensors["LIDAR_TOP"].dropped_invalid == 1
        assert sync.stats.ignored["THERMAL"] == 1


class TestConfig:
    def test_unknown_camera_in_offsets(self, scene):
        with pytest.raises(ConfigError, match="CAM_9"):
            Synchronizer(scene.rig, SyncConfig(camera_offsets_ms={"CAM_9": 1.0}))

    def test_yaml_tree_validation(self):
        cfg = from_dict(PipelineConfig, {"sync": {"late_policy": "wait", "camera_offsets_ms": {"CAM_FRONT": -35.5},
                                                  "pose": {"source": "gnss_imu", "heading_init_m": 5}}}, "x.yaml")
        assert cfg.sync.pose.heading_init_m == 5.0 and cfg.sync.camera_offset_ns("CAM_FRONT") == -35_500_000
        with pytest.raises(ConfigError, match="x.yaml: sync.pose.source"):
            from_dict(PipelineConfig, {"sync": {"pose": {"source": "magic"}}}, "x.yaml")
        with pytest.raises(ConfigError, match="sync.late_policy"):
            from_dict(PipelineConfig, {"sync": {"late_policy": "later"}}, "x.yaml")
        with pytest.raises(ConfigError, match="unknown key sync.slop"):
            from_dict(PipelineConfig, {"sync": {"slop": 3}}, "x.yaml")


def _shift(msg: SensorMessage, dt: int) -> SensorMessage:
    """The same message with every stamp moved by ``dt`` (payload included)."""
    p = replace(msg.payload, stamp_ns=msg.payload.stamp_ns + dt)
    return SensorMessage(msg.stamp_ns + dt, msg.sensor, msg.topic, p)
