"""One config source: a tree of frozen dataclasses loaded from YAML with strict validation.

An unknown key, a wrong type or an out-of-range value raises ``ConfigError`` naming the file and
the dotted key (``base.yaml: grid.cell_m: expected > 0, got -0.2``). The BEV grid is defined here
once and feeds the kernels, the model, the export and the engine build.

Each section is a frozen dataclass; a field's allowed range is given in its ``metadata``
(``ge``/``gt``/``le``/``lt``/``choices``). Sections owned by a subsystem live beside it
(``perception.sync.config.SyncConfig``) and are composed here.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from perception.errors import ConfigError, InputFileError
from perception.model.config import ModelConfig, check_model_grid
from perception.sync.config import SyncConfig

__all__ = ["GridConfig", "PipelineConfig", "from_dict", "load_config", "rng", "to_dict"]

T = TypeVar("T")


def rng(default: Any, **limits: Any) -> Any:
    """A dataclass field with a default and validation limits: ``rng(0.2, gt=0)``."""
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=limits)
    return field(default=default, metadata=limits)


@dataclass(frozen=True)
class GridConfig:
    """The BEV grid: x forward and y left in the ego frame, metres. Cell (0, 0) is at (x_min, y_min).

    ``nx = (x_max - x_min) / cell_m`` columns along x, ``ny`` rows along y; pillars span z_min..z_max.
    """

    x_min: float = rng(-51.2, lt=0)
    x_max: float = rng(51.2, gt=0)
    y_min: float = rng(-51.2, lt=0)
    y_max: float = rng(51.2, gt=0)
    z_min: float = rng(-5.0)
    z_max: float = rng(3.0)
    cell_m: float = rng(0.2, gt=0, le=10)

    def __post_init__(self) -> None:
        if self.z_max <= self.z_min:
            raise ConfigError(f"z_max: expected > z_min ({self.z_min}), got {self.z_max}")
        for axis in ("x", "y"):
            span = getattr(self, f"{axis}_max") - getattr(self, f"{axis}_min")
            n = span / self.cell_m
            if abs(n - round(n)) > 1e-6:
                raise ConfigError(f"cell_m: the {axis} span {span} m is not a whole number of {self.cell_m} m cells")

    @property
    def nx(self) -> int:
        return round((self.x_max - self.x_min) / self.cell_m)

    @property
    def ny(self) -> int:
        return round((self.y_max - self.y_min) / self.cell_m)


@dataclass(frozen=True)
class PipelineConfig:
    """The root of the config tree."""

    grid: GridConfig = field(default_factory=GridConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self) -> None:
        # The model divides the grid (fuse stride, backbone stages): a mismatch fails at load.
        check_model_grid(self.grid, self.model)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key, source)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key, source)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{source}: {key}: expected {' or '.join(_type_name(a) for a in args)}, got {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key}: expected a list, got {type(value).__name__} {value!r}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(value))
        if origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"{source}: {key}: expected {len(args)} items, got {len(value)}")
            return tuple(_convert(v, a, f"{key}[{i}]", source) for i, (v, a) in enumerate(zip(value, args)))
        conv = [_convert(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(value)] if args else list(value)
        return tuple(conv) if origin is tuple else conv
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key}: expected a mapping, got {type(value).__name__}")
        kt, vt = args if args else (Any, Any)
        return {_convert(k, kt, key, source): _convert(v, vt, f"{key}.{k}", source) for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: {key}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {key}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {key}: expected a string, got {type(value).__name__} {value!r}")
        return value
    return value


def _check_limits(value: Any, meta: typing.Mapping[str, Any], key: str, source: str) -> None:
    if value is None:
        return
    checks = {"gt": (lambda v, b: v > b, ">"), "ge": (lambda v, b: v >= b, ">="),
              "lt": (lambda v, b: v < b, "<"), "le": (lambda v, b: v <= b, "<=")}
    for name, (ok, sym) in checks.items():
        if name in meta and not ok(value, meta[name]):
            raise ConfigError(f"{source}: {key}: expected {sym} {meta[name]}, got {value!r}")
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{source}: {key}: expected one of {list(meta['choices'])}, got {value!r}")


def _build(cls: type[T], data: Any, prefix: str, source: str) -> T:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix or '<root>'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"{source}: unknown key {where}{unknown[0]}; allowed here: {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        conv = _convert(value, hints[name], key, source)
        _check_limits(conv, fields[name].metadata, key, source)
        kwargs[name] = conv
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        msg = str(exc)
        raise ConfigError(msg if msg.startswith(source) else f"{source}: {prefix + '.' if prefix else ''}{msg}") from None


def from_dict(cls: type[T], data: Any, source: str = "<dict>") -> T:
    """Build the dataclass ``cls`` from plain data with strict validation."""
    return _build(cls, data, "", source)


def to_dict(obj: Any) -> Any:
    """The plain-data form of a config dataclass (what a YAML file of it holds)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def load_config(path: str | Path, cls: type[T] = PipelineConfig) -> T:  # type: ignore[assignment]
    """Load a YAML config file into ``cls`` (default: the whole ``PipelineConfig``)."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: config file not found")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    return from_dict(cls, data, str(p))
