"""The ``model`` section of the config tree, and the ``tiny`` and ``base`` presets.

The BEV grid is not repeated here: the network reads ``PipelineConfig.grid`` (the pillar grid, the
radar raster and, divided by ``fuse_stride``, the grid where the branches meet and the head runs).
``check_model_grid`` says, with the key to change, when a grid and a model do not fit together;
``PipelineConfig`` calls it, so a YAML file with a grid the backbone cannot halve fails at load.

A preset spans two sections (the grid and the model), so ``preset(name)`` returns a whole
``PipelineConfig``; ``resolve_config`` accepts a preset name or a YAML file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from perception.classes import NUSCENES_CLASSES
from perception.errors import ConfigError

if TYPE_CHECKING:
    from perception.config import GridConfig, PipelineConfig

__all__ = [
    "PRESETS",
    "BackboneConfig",
    "CameraBranchConfig",
    "HeadConfig",
    "LidarBranchConfig",
    "ModelConfig",
    "RadarBranchConfig",
    "check_model_grid",
    "preset",
    "resolve_config",
]

# The camera backbone halves the image three times: feature maps are 1/8 of the input image.
CAMERA_STRIDE = 8


def _rng(default: object, **limits: object) -> object:
    # perception.config.rng, repeated here because perception.config imports this module.
    return field(default=default, metadata=limits)


@dataclass(frozen=True)
class LidarBranchConfig:
    """PointPillars: ``max_pillars`` pillars of ``max_points_per_pillar`` points, ``point_features``
    values each (x y z intensity time_lag, offsets to the pillar mean x y z and centre x y: 10), as
    the pillarization op writes them; ``channels`` out of the pillar feature net."""

    max_pillars: int = _rng(30000, ge=1)
    max_points_per_pillar: int = _rng(20, ge=1)
    point_features: int = _rng(10, ge=3)
    channels: int = _rng(64, ge=1)


@dataclass(frozen=True)
class CameraBranchConfig:
    """Images ``image_height`` x ``image_width`` (after the preprocess op's resize and crop) from
    ``num_cameras`` cameras, through a CNN with ``backbone_channels`` per stride-2 stage (three
    stages: 1/8 resolution), reduced to ``channels`` and lifted to BEV at ``heights_m`` (ego z)."""

    num_cameras: int = _rng(6, ge=1, le=16)
    image_height: int = _rng(256, ge=CAMERA_STRIDE)
    image_width: int = _rng(704, ge=CAMERA_STRIDE)
    backbone_channels: tuple[int, int, int] = _rng((32, 64, 128))
    channels: int = _rng(64, ge=1)
    heights_m: tuple[float, ...] = _rng((0.25, 0.75, 1.25, 1.75))

    def __post_init__(self) -> None:
        for name in ("image_height", "image_width"):
            if getattr(self, name) % CAMERA_STRIDE:
                raise ConfigError(f"{name}: expected a multiple of {CAMERA_STRIDE} (the camera backbone's stride), "
                                  f"got {getattr(self, name)}")
        if any(c < 1 for c in self.backbone_channels):
            raise ConfigError(f"backbone_channels: expected positive channel counts, got {list(self.backbone_channels)}")
        if not self.heights_m:
            raise ConfigError("heights_m: expected at least one height")

    @property
    def feature_height(self) -> int:
        return self.image_height // CAMERA_STRIDE

    @property
    def feature_width(self) -> int:
        return self.image_width // CAMERA_STRIDE


@dataclass(frozen=True)
class RadarBranchConfig:
    """The radar raster's ``input_channels`` (occupancy, max RCS, mean compensated vx vy, newest
    time lag: 5, as the radar raster op writes them) and the channels of its stem."""

    input_channels: int = _rng(5, ge=1)
    channels: int = _rng(16, ge=1)


@dataclass(frozen=True)
class BackboneConfig:
    """Fuser (one ``fuser_kernel`` convolution to ``fuser_channels``) and BEV backbone over the fused
    map: stage i runs at stride 2**i with ``channels[i]`` and ``layers[i]`` 3x3 convolutions; an FPN
    merges the stages back to stride 1 with ``fpn_channels``."""

    fuser_channels: int = _rng(128, ge=1)
    fuser_kernel: int = _rng(3, choices=(1, 3))
    channels: tuple[int, ...] = _rng((64, 128, 256))
    layers: tuple[int, ...] = _rng((2, 3, 3))
    fpn_channels: int = _rng(128, ge=1)

    def __post_init__(self) -> None:
        if not self.channels or len(self.channels) != len(self.layers):
            raise ConfigError(f"layers: expected one entry per stage ({len(self.channels)} channels), got {list(self.layers)}")
        if any(c < 1 for c in self.channels) or any(n < 1 for n in self.layers):
            raise ConfigError(f"channels/layers: expected positive values, got {list(self.channels)} / {list(self.layers)}")


@dataclass(frozen=True)
class HeadConfig:
    """CenterPoint head of ``channels``: an optional shared 3x3 convolution (``shared_conv``), then a
    heatmap branch and a regression trunk (one 3x3 convolution each) with 1x1 outputs."""

    channels: int = _rng(64, ge=1)
    shared_conv: bool = True


@dataclass(frozen=True)
class ModelConfig:
    """The network. Defaults are the ``base`` preset (nuScenes-scale input over the default grid)."""

    name: str = "base"
    classes: tuple[str, ...] = NUSCENES_CLASSES
    fuse_stride: int = _rng(2, choices=(1, 2, 4))
    lidar: LidarBranchConfig = field(default_factory=LidarBranchConfig)
    camera: CameraBranchConfig = field(default_factory=CameraBranchConfig)
    radar: RadarBranchConfig = field(default_factory=RadarBranchConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    head: HeadConfig = field(default_factory=HeadConfig)

    def __post_init__(self) -> None:
        if not self.classes:
            raise ConfigError("classes: expected at least one class")
        if len(set(self.classes)) != len(self.classes):
            raise ConfigError(f"classes: duplicate names in {list(self.classes)}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def check_model_grid(grid: GridConfig, model: ModelConfig) -> None:
    """Raise ``ConfigError`` if the BEV grid cannot be divided the way the network divides it.

    The fused map is the grid divided by ``fuse_stride``; the backbone halves it once per stage
    after the first, and the FPN upsamples by exact factors of 2, so both sides must divide.
    """
    factor = model.fuse_stride * 2 ** (len(model.backbone.channels) - 1)
    for axis, n in (("x", grid.nx), ("y", grid.ny)):
        if n % factor:
            raise ConfigError(f"model.fuse_stride/model.backbone.channels: the grid's {n} cells along {axis} are not a "
                              f"multiple of {factor} (fuse_stride {model.fuse_stride} x 2^{len(model.backbone.channels) - 1} "
                              f"backbone stages); change grid.cell_m or the model")


def _tiny_model() -> ModelConfig:
    # Small enough to train on a shared 2-core CPU (~1.8 GFLOPs a frame, tools/model_stats.py):
    # 4000 pillars (a 3-sweep simulator frame fills about 2000 of the 16384 cells),
    # 0.8 m cells (128 x 128) from the pillars to the head, 96 x 256 images, narrow branches, a 1x1
    # fuser (the first backbone stage mixes space) and no shared head convolution.
    return ModelConfig(
        name="tiny",
        fuse_stride=1,
        lidar=LidarBranchConfig(max_pillars=4000, max_points_per_pillar=12, channels=24),
        camera=CameraBranchConfig(image_height=96, image_width=256, backbone_channels=(16, 24, 32), channels=24,
                                  heights_m=(0.4, 1.0, 1.6)),
        radar=RadarBranchConfig(channels=8),
        backbone=BackboneConfig(fuser_channels=32, fuser_kernel=1, channels=(24, 48, 64), layers=(1, 2, 2), fpn_channels=24),
        head=HeadConfig(channels=24, shared_conv=False),
    )


def _tiny() -> PipelineConfig:
    from perception.config import GridConfig, PipelineConfig
    from perception.sync.config import SyncConfig

    # Three accumulated sweeps (0.1 s at 20 Hz) instead of ten: a third of the points to pillarize
    # and to keep per training frame, at the cost of sparser far-range returns.
    return PipelineConfig(grid=GridConfig(cell_m=0.8), sync=SyncConfig(lidar_sweeps=3), model=_tiny_model())


def _base() -> PipelineConfig:
    from perception.config import GridConfig, PipelineConfig

    return PipelineConfig(grid=GridConfig(cell_m=0.2), model=ModelConfig())


# Preset name -> builder of the whole config (grid and model belong together).
PRESETS: dict[str, Callable[[], PipelineConfig]] = {"tiny": _tiny, "base": _base}


def preset(name: str) -> PipelineConfig:
    """The ``PipelineConfig`` of a named preset (``tiny`` or ``base``)."""
    try:
        build = PRESETS[name]
    except KeyError:
        raise ConfigError(f"model preset {name!r}: expected one of {sorted(PRESETS)} or a YAML file") from None
    return build()


def resolve_config(name_or_path: str) -> PipelineConfig:
    """A preset by name, or a YAML config file (loaded strictly) by path."""
    if name_or_path in PRESETS:
        return preset(name_or_path)
    from perception.config import load_config

    return load_config(name_or_path)
