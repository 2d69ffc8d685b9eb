"""Checkpoints: one file that rebuilds the model alone, read with ``torch.load(weights_only=True)``.

The file is a plain dict (no pickled classes, so ``weights_only`` loading accepts it)::

    {"format": "bevfuse.checkpoint", "version": 1,
     "config": {"grid": {...}, "model": {...}},   # the PipelineConfig sections the network needs
     "class_names": [...], "grid": {...},          # repeated at top level for readers that only want these
     "state_dict": {...}, "meta": {...}}            # meta: training facts (steps, seeds, data, time)

Every way a file can be unusable ends in one ``CheckpointError`` that names the file and says what
was expected and found: unreadable or truncated, not a bevfuse checkpoint, a config other than the
one asked for, or tensors whose shapes do not fit the network its config builds.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from perception.config import PipelineConfig, from_dict, to_dict
from perception.errors import ConfigError, InputFileError
from perception.model.errors import CheckpointError
from perception.model.network import BEVFusionNet, build_model

__all__ = ["FORMAT", "VERSION", "config_diff", "load_checkpoint", "read_checkpoint", "save_checkpoint"]

FORMAT = "bevfuse.checkpoint"
VERSION = 1
_KEYS = ("format", "version", "config", "class_names", "grid", "state_dict")


def _sections(cfg: PipelineConfig) -> dict[str, Any]:
    return {"grid": to_dict(cfg.grid), "model": to_dict(cfg.model)}


def save_checkpoint(path: str | Path, net: BEVFusionNet, meta: Mapping[str, Any] | None = None) -> Path:
    """Write ``net`` with its config to ``path`` (atomically: a temp file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = net.cfg
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": _sections(cfg),
        "class_names": list(cfg.model.classes),
        "grid": to_dict(cfg.grid),
        "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
        "meta": dict(meta or {}),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checked dict of a checkpoint file, without building the network."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: checkpoint file not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or damaged file?): {first}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a bevfuse checkpoint (expected a dict with format {FORMAT!r})")
    missing = [k for k in _KEYS if k not in data]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}")
    if data["version"] != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {data['version']}, this bevfuse reads {VERSION}")
    return data


def config_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys where two plain-data configs differ, as ``key: a != b`` lines."""
    if isinstance(a, dict) and isinstance(b, dict):
        lines = []
        for key in sorted(set(a) | set(b)):
            lines += config_diff(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else str(key))
        return lines
    same = (list(a) if isinstance(a, (list, tuple)) else a) == (list(b) if isinstance(b, (list, tuple)) else b)
    return [] if same else [f"{prefix}: {a!r} != {b!r}"]


def load_checkpoint(path: str | Path, expect: PipelineConfig | None = None) -> tuple[BEVFusionNet, dict[str, Any]]:
    """The network (eval mode, CPU) and its ``meta`` from a checkpoint file.

    ``expect``: the config the caller runs with; a checkpoint trained for another grid or model
    raises ``CheckpointError`` listing the keys that differ.
    """
    path = Path(path)
    data = read_checkpoint(path)
    try:
        cfg = from_dict(PipelineConfig, data["config"], f"{path}: config")
    except ConfigError as exc:
        raise CheckpointError(f"{path}: its config is invalid here: {exc}") from None
    if list(data["class_names"]) != list(cfg.model.classes):
        raise CheckpointError(f"{path}: class_names {data['class_names']} differ from its config's {list(cfg.model.classes)}")
    if expect is not None:
        diff = config_diff(_sections(cfg), _sections(expect))
        if diff:
            shown = "; ".join(diff[:5]) + (f"; and {len(diff) - 5} more" if len(diff) > 5 else "")
            raise CheckpointError(f"{path}: trained for config {cfg.model.name!r} ({cfg.grid.cell_m} m cells), expected "
                                  f"{expect.model.name!r} ({expect.grid.cell_m} m cells); checkpoint != expected: {shown}")
    net = build_model(cfg)
    own = net.state_dict()
    state = data["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: state_dict is a {type(state).__name__}, expected a dict of tensors")
    problems = [f"missing {k}" for k in own if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in own]
    problems += [f"{k}: checkpoint {tuple(state[k].shape)} != network {tuple(v.shape)}"
                 for k, v in own.items() if k in state and tuple(getattr(state[k], "shape", ())) != tuple(v.shape)]
    if problems:
        shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
        raise CheckpointError(f"{path}: weights do not fit the network its config builds: {shown}")
    net.load_state_dict(state)
    return net.eval(), dict(data.get("meta") or {})
