"""One colour per object class, shared by every picture and by the ROS markers.

Chosen for a dark background (the BEV is black, camera images are mostly mid-grey): the nuScenes
devkit's palette draws pedestrians dark blue and traffic cones dark slate grey, which vanish on
black, so this palette keeps its orange car and spreads the other classes over bright hues.
Colours are RGB uint8; BGR is made only where OpenCV writes a file.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "CLASS_COLORS",
    "EGO_COLOR",
    "GRID_COLOR",
    "GT_COLOR",
    "RADAR_COLOR",
    "TEXT_COLOR",
    "UNKNOWN_COLOR",
    "class_color",
    "class_colors",
]

RGB = tuple[int, int, int]

CLASS_COLORS: dict[str, RGB] = {
    "car": (255, 158, 0),  # orange, as in the devkit
    "truck": (255, 60, 60),
    "construction_vehicle": (180, 110, 255),
    "bus": (255, 235, 0),
    "trailer": (200, 140, 80),
    "barrier": (170, 170, 170),
    "motorcycle": (255, 100, 220),
    "bicycle": (0, 200, 160),
    "pedestrian": (60, 150, 255),
    "traffic_cone": (0, 240, 255),
}
UNKNOWN_COLOR: RGB = (255, 255, 255)
GT_COLOR: RGB = (255, 255, 255)  # ground truth: thin white outlines, under the detections
RADAR_COLOR: RGB = (160, 255, 60)  # drawn as crosses, unlike any box
EGO_COLOR: RGB = (230, 230, 230)
GRID_COLOR: RGB = (55, 55, 55)
TEXT_COLOR: RGB = (235, 235, 235)


def class_color(name: str) -> RGB:
    """The colour of a class by name (white for a class outside the palette)."""
    return CLASS_COLORS.get(name, UNKNOWN_COLOR)


def class_colors(class_names: Sequence[str]) -> list[RGB]:
    """Colours indexed like ``class_names`` (so ``colors[label]`` works for a ``Detections``)."""
    return [class_color(n) for n in class_names]
