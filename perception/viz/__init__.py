"""Pictures of frames: the bird's-eye view, camera images with projected boxes, and videos of them.

``render_bev`` (``perception.viz.bev``), ``draw_boxes_on_image`` / ``camera_mosaic``
(``perception.viz.camera``), ``VideoWriter`` (``perception.viz.video``); colours per class in
``perception.viz.colors``. Numpy and OpenCV only, so that the runtime can draw without matplotlib.
"""

from perception.viz.bev import BevView, render_bev
from perception.viz.camera import camera_mosaic, draw_boxes_on_image, project_box_edges
from perception.viz.colors import CLASS_COLORS, class_color
from perception.viz.video import VideoWriter

__all__ = [
    "CLASS_COLORS",
    "BevView",
    "VideoWriter",
    "camera_mosaic",
    "class_color",
    "draw_boxes_on_image",
    "project_box_edges",
    "render_bev",
]
