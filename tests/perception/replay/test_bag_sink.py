"""detections.mcap: written through BagWriter, read back with the mcap library and with rosbags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rosbags.highlevel import AnyReader

from calib import se3
from perception.boxes import box_corners
from perception.replay.bag_sink import DETECTIONS_TOPIC, GT_MARKERS_TOPIC, MARKERS_TOPIC, RADAR_TOPIC, DetectionsBag
from perception.viz.camera import BOX_EDGES
from perception.viz.colors import class_color
from tests.perception.replay import frames as F


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rig = F.rig()
    path = tmp_path_factory.mktemp("bag") / "detections"
    sink = DetectionsBag(path, rig, marker_score=0.5)
    # frames 0 and 1 share the camera images (a camera slower than the LiDAR); frame 2 has no pose, no GT
    sink.write(F.frame(rig, 0), F.boxes(F.T0))
    sink.write(F.frame(rig, 1, image_stamp=F.T0), F.boxes(F.T0 + F.PERIOD, score=(0.9, 0.3)))
    sink.write(F.frame(rig, 2, with_gt=False, posed=False), F.boxes(F.T0 + 2 * F.PERIOD))
    sink.close()
    return path


def _mcap_messages(bag: Path) -> list[tuple[str, str, int, object]]:
    [mcap_file] = sorted(bag.glob("*.mcap"))
    out = []
    with mcap_file.open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for schema, channel, message, ros in reader.iter_decoded_messages():
            out.append((channel.topic, schema.name, message.log_time, ros))
    return out


def test_mcap_library_reads_topics_types_and_counts(bag: Path) -> None:
    msgs = _mcap_messages(bag)
    counts: dict[tuple[str, str], int] = {}
    for topic, schema, _, _ in msgs:
        counts[(topic, schema)] = counts.get((topic, schema), 0) + 1
    assert counts[(DETECTIONS_TOPIC, "vision_msgs/msg/Detection3DArray")] == 3
    assert counts[(MARKERS_TOPIC, "visualization_msgs/msg/MarkerArray")] == 3
    assert counts[(GT_MARKERS_TOPIC, "visualization_msgs/msg/MarkerArray")] == 2  # frame 2 has none
    assert counts[("/lidar_top/points", "sensor_msgs/msg/PointCloud2")] == 3
    assert counts[(RADAR_TOPIC, "sensor_msgs/msg/PointCloud2")] == 3
    assert counts[("/tf", "tf2_msgs/msg/TFMessage")] == 2  # frame 2 has no pose
    assert counts[("/tf_static", "tf2_msgs/msg/TFMessage")] == 1
    # the shared images of frames 0 and 1 are written once: two per camera, not three
    assert counts[("/cam_front/image/compressed", "sensor_msgs/msg/CompressedImage")] == 2
    assert counts[("/cam_front/camera_info", "sensor_msgs/msg/CameraInfo")] == 1


def test_detections_and_markers_carry_the_boxes(bag: Path) -> None:
    msgs = [m for m in _mcap_messages(bag) if m[0] in (DETECTIONS_TOPIC, MARKERS_TOPIC)]
    det_msgs = [ros for topic, _, _, ros in msgs if topic == DETECTIONS_TOPIC]
    first = det_msgs[0]
    assert first.header.frame_id == "ego"
    assert first.header.stamp.sec * 10**9 + first.header.stamp.nanosec == F.T0
    expected = F.boxes(F.T0)
    assert [d.results[0].hypothesis.class_id for d in first.detections] == ["car", "pedestrian"]
    assert [d.results[0].hypothesis.score for d in first.detections] == pytest.approx([0.9, 0.6], abs=1e-6)
    for d, c, s in zip(first.detections, expected.center, expected.size):
        p = d.bbox.center.position
        assert [p.x, p.y, p.z] == pytest.approx(c.tolist())
        assert [d.bbox.size.x, d.bbox.size.y, d.bbox.size.z] == pytest.approx(s.tolist())

    marker_msgs = [ros for topic, _, _, ros in msgs if topic == MARKERS_TOPIC]
    m0 = marker_msgs[0].markers
    assert m0[0].action == 3  # DELETEALL first: a viewer shows this frame's boxes only
    lines = [m for m in m0 if m.type == 5]  # LINE_LIST
    texts = [m for m in m0 if m.type == 9]  # TEXT_VIEW_FACING
    assert len(lines) == 2 and len(texts) == 2
    car = lines[0]
    assert len(car.points) == 24
    corners = box_corners(expected.center[:1], expected.size[:1], expected.yaw[:1])[0]
    got = np.array([[p.x, p.y, p.z] for p in car.points])
    np.testing.assert_allclose(got, corners[BOX_EDGES.reshape(-1)], atol=1e-9)
    r, g, b = class_color("car")
    assert (car.color.r, car.color.g, car.color.b) == pytest.approx((r / 255, g / 255, b / 255))
    assert texts[0].text == "car 0.90"
    # frame 1: the pedestrian scored 0.3, under marker_score 0.5: in the detections, not among the markers
    assert len(det_msgs[1].detections) == 2
    assert len([m for m in marker_msgs[1].markers if m.type == 5]) == 1


def test_rosbags_reads_it_and_the_pose(bag: Path) -> None:
    with AnyReader([bag]) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        assert types[DETECTIONS_TOPIC] == "vision_msgs/msg/Detection3DArray"
        assert types[MARKERS_TOPIC] == "visualization_msgs/msg/MarkerArray"
        tf_conns = [c for c in reader.connections if c.topic == "/tf"]
        tfs = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(connections=tf_conns)]
        det_conns = [c for c in reader.connections if c.topic == DETECTIONS_TOPIC]
        dets = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(connections=det_conns)]
    assert len(dets) == 3 and len(dets[2].detections) == 2
    tf = tfs[1].transforms[0]
    assert (tf.header.frame_id, tf.child_frame_id) == ("world", "ego")
    t = tf.transform.translation
    np.testing.assert_allclose([t.x, t.y, t.z], F.pose(1)[:3, 3])
    q = tf.transform.rotation
    np.testing.assert_allclose(se3.quat_to_matrix(np.array([q.w, q.x, q.y, q.z])), F.pose(1)[:3, :3], atol=1e-12)


def test_lidar_topic_carries_the_newest_sweep() -> None:
    from perception.replay.bag_sink import newest_sweep
    from perception.types import PointCloud

    pts = np.array([[1, 0, 0, 5, 0.0], [2, 0, 0, 5, 0.05], [3, 0, 0, 5, 0.0]], np.float32)
    cloud = PointCloud(F.T0, "ego", pts, ("x", "y", "z", "intensity", "time_lag"), np.array([0, -1, -2], np.int64))
    newest = newest_sweep(cloud)
    assert newest.points[:, 0].tolist() == [1.0, 3.0] and newest.time_offset_ns.tolist() == [0, -2]
    plain = PointCloud(F.T0, "ego", pts[:, :4], ("x", "y", "z", "intensity"))
    assert newest_sweep(plain) is plain


@pytest.mark.parametrize("labels, colour", [(True, None), (False, (10, 200, 30))])
@pytest.mark.parametrize("count", [0, 1, 7, 60])
def test_fast_markers_are_the_bytes_of_the_message_objects(labels, colour, count) -> None:
    from perception.io.ros_encode import serialize
    from perception.replay.bag_sink import box_markers, box_markers_cdr

    det = F.boxes(F.T0, score=(0.9, 0.3))
    rng = np.random.default_rng(count)
    idx = rng.integers(0, len(det), count)
    det = det.select(idx) if count else det.select(np.zeros(len(det), bool))
    want = serialize(box_markers(det, ns="detections", colour=colour, labels=labels), "visualization_msgs/msg/MarkerArray")
    got = box_markers_cdr(det, ns="detections", colour=colour, labels=labels)
    assert got == want
