"""3D boxes projected into camera images: position, near-plane clipping, scaling and tiling."""

from __future__ import annotations

import numpy as np

from calib import se3
from perception.types import Detections
from perception.viz.camera import camera_for_image, camera_mosaic, camera_order, draw_boxes_on_image, project_box_edges
from perception.viz.colors import class_color
from tests.perception.replay import frames as F


def _one_box(center: tuple[float, float, float], size: tuple[float, float, float] = (4.5, 1.9, 1.6)) -> Detections:
    det = F.boxes(F.T0)
    return det.select(np.array([0])).__class__(
        stamp_ns=F.T0, frame_id="ego", class_names=det.class_names, center=np.array([center]), size=np.array([size]),
        yaw=np.zeros(1), velocity=np.zeros((1, 2)), score=np.array([0.9], np.float32), label=np.array([0]))


def test_box_ahead_projects_around_the_principal_point() -> None:
    rig = F.rig()
    cam = rig["CAM_FRONT"]
    det = _one_box((20.0, 0.0, 1.0))
    [lines] = project_box_edges(det, cam.intrinsics, se3.invert(cam.ego_T_sensor))
    pts = np.concatenate(lines)
    # 20 m ahead, centred: the box spans the middle columns; its projected centre is near (cx, horizon)
    assert len(lines) == 12
    assert abs(pts[:, 0].mean() - cam.intrinsics.cx) < 30
    assert 0 < pts[:, 1].min() < cam.intrinsics.cy < pts[:, 1].max() < 900
    # a box behind the camera projects to nothing
    assert project_box_edges(_one_box((-20.0, 0.0, 1.0)), cam.intrinsics, se3.invert(cam.ego_T_sensor)) == [[]]
    # nor does one in front but beside the view (60 degrees off the axis): its outline misses the image
    assert project_box_edges(_one_box((10.0, 17.0, 1.0)), cam.intrinsics, se3.invert(cam.ego_T_sensor)) == [[]]
    # while one at the image's left edge still shows, cut by the border
    [edge] = project_box_edges(_one_box((10.0, 6.5, 1.0)), cam.intrinsics, se3.invert(cam.ego_T_sensor))
    assert edge and min(p[:, 0].min() for p in edge) < 0 < max(p[:, 0].max() for p in edge)


def test_box_through_the_camera_plane_is_clipped_not_mirrored() -> None:
    rig = F.rig()
    cam = rig["CAM_FRONT"]
    # a 20 m long truck beside the car, from 10 m behind to 10 m ahead of the camera
    det = _one_box((1.7, -3.0, 1.0), size=(20.0, 2.5, 3.0))
    [lines] = project_box_edges(det, cam.intrinsics, se3.invert(cam.ego_T_sensor))
    pts = np.concatenate(lines)
    assert len(lines) > 0
    # everything drawn lies to the right of the centre (the truck is on the right), none mirrored left
    assert pts[:, 0].min() > cam.intrinsics.cx


def test_draw_scales_intrinsics_to_the_image() -> None:
    rig = F.rig()
    cam = rig["CAM_FRONT"]
    small = camera_for_image(cam.intrinsics, 320, 180)
    assert (small.width, small.height) == (320, 180) and abs(small.fx - cam.intrinsics.fx / 5) < 1e-9
    assert camera_for_image(cam.intrinsics, 320, 320) is None  # a crop, not a resize: no guess
    img = np.full((180, 320, 3), 90, np.uint8)
    out = draw_boxes_on_image(img, _one_box((20.0, 0.0, 1.0)), cam.intrinsics, cam.ego_T_sensor, label=False)
    changed = np.argwhere(np.any(out != img, axis=-1))
    assert changed.size and abs(changed[:, 1].mean() - small.cx) < 10
    assert np.any(np.all(np.abs(out.astype(int) - class_color("car")) < 40, axis=-1))
    assert np.array_equal(img, np.full((180, 320, 3), 90, np.uint8))  # the input is not drawn on


def test_camera_order_and_mosaic() -> None:
    rig = F.rig()
    order = camera_order([(c.name, c.ego_T_sensor) for c in rig.cameras])
    assert order == ["CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT"]
    images = F.images(rig, F.T0, cameras=("CAM_FRONT", "CAM_BACK"))
    specs = [(n, rig[n].intrinsics, rig[n].ego_T_sensor) for n in order]
    mosaic = camera_mosaic(images, specs, F.boxes(F.T0), None, columns=3, cell_width=320)
    assert mosaic.shape == (2 * 180, 3 * 320, 3)
    front = mosaic[:180, 320:640]
    assert np.any(np.all(np.abs(front.astype(int) - class_color("car")) < 40, axis=-1))  # the car, in CAM_FRONT's tile
    missing = mosaic[:180, :320]
    assert np.median(missing) < 60  # CAM_FRONT_LEFT had no image: a dark tile
