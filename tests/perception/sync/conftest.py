"""Fixtures of the sync tests: one synthetic drive, built once per session (it takes a second or two)."""

from __future__ import annotations

import pytest

from perception.sync.config import SyncConfig
from tests.perception.sync.synthetic import Scene, make_scene


@pytest.fixture(scope="session")
def scene() -> Scene:
    return make_scene(duration_s=3.0, speed=15.0, yaw_rate=0.1)


@pytest.fixture(scope="session")
def scene_config(scene: Scene) -> SyncConfig:
    """Cameras expected where the LiDAR triggers them; a slop well under half the camera period."""
    return SyncConfig(camera_offsets_ms=scene.camera_offsets_ms, camera_slop_ms=20.0)
