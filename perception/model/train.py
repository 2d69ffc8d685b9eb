"""The training loop: seeded, resumable, with a progress bar, a JSONL log and a PNG of the curves.

``train(cfg, frames, out, options)`` trains ``build_model(cfg)`` on ``TrainFrame``s (see
``perception.model.data``) with AdamW and a one-cycle learning rate, CenterPoint losses, global BEV
augmentation and modality dropout. Every ``checkpoint_every`` steps and at the end it writes the
checkpoint ``out`` (weights + config: what ships) and ``out.resume.pt`` (optimizer, scheduler, step and
random states: what ``resume=True`` continues from, bit for bit on the same machine and threads).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from perception.config import PipelineConfig
from perception.model.augment import AugmentConfig
from perception.model.checkpoint import read_checkpoint, save_checkpoint
from perception.model.data import DropoutConfig, TrainFrame, make_batch
from perception.model.errors import CheckpointError
from perception.model.losses import centerpoint_loss
from perception.model.network import build_model

__all__ = ["TrainOptions", "plot_log", "train"]


@dataclass(frozen=True)
class TrainOptions:
    """How to train. ``steps`` optimizer steps of ``batch_size`` frames drawn without replacement
    (reshuffled each pass); the learning rate follows a one-cycle schedule peaking at ``lr``."""

    steps: int = 2000
    batch_size: int = 4
    lr: float = 2e-3
    weight_decay: float = 0.01
    grad_clip: float = 10.0
    seed: int = 0
    threads: int = 2
    device: str = "cpu"
    checkpoint_every: int = 200
    log_every: int = 10
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)
    dropout: DropoutConfig = field(default_factory=DropoutConfig)


def _resume_path(out: Path) -> Path:
    return out.with_name(out.name + ".resume.pt")


def _rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state(), "python": random.getstate()}


def train(cfg: PipelineConfig, frames: Sequence[TrainFrame], out: str | Path, options: TrainOptions = TrainOptions(),
          resume: bool = False, meta: dict[str, Any] | None = None, progress: bool = True,
          on_step: Callable[[int, dict[str, float]], None] | None = None) -> Path:
    """Train on ``frames``; write ``out`` (checkpoint), ``out.resume.pt``, ``out.log.jsonl``, ``out.png``."""
    out = Path(out)
    if not frames:
        raise CheckpointError(f"{out}: no training frames")
    torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)
    random.seed(options.seed)
    rng = np.random.default_rng(options.seed)
    device = torch.device(options.device)
    net = build_model(cfg).train().to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=options.lr, total_steps=options.steps,
                                                    pct_start=0.3, div_factor=10.0, final_div_factor=100.0)
    step, order, pos, elapsed = 0, rng.permutation(len(frames)), 0, 0.0
    log_path = out.with_name(out.name + ".log.jsonl")
    if resume and _resume_path(out).is_file():
        state = torch.load(_resume_path(out), map_location="cpu", weights_only=True)
        ckpt = read_checkpoint(out)
        net.load_state_dict({k: v.to(device) for k, v in ckpt["state_dict"].items()})
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, order, pos, elapsed = state["step"], np.asarray(state["order"]), state["pos"], state["elapsed_s"]
        rng.bit_generator.state = state["rng"]["numpy"]
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])
    elif log_path.exists():
        log_path.unlink()
    run_meta = {"options": _plain(asdict(options)), "frames": len(frames), **(meta or {})}

    def save() -> None:
        info = {**run_meta, "steps": step, "train_seconds": round(elapsed, 1)}
        save_checkpoint(out, net, meta=info)
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step,
                    "order": order.tolist(), "pos": pos, "elapsed_s": elapsed, "rng": _rng_state(rng)},
                   _resume_path(out))

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=options.steps, initial=step, unit="step", dynamic_ncols=True)
    window: dict[str, list[float]] = {}
    try:
        with log_path.open("a") as log:
            while step < options.steps:
                t0 = time.perf_counter()
                picked = []
                for _ in range(min(options.batch_size, len(frames))):
                    if pos >= len(order):
                        order, pos = rng.permutation(len(frames)), 0
                    picked.append(frames[order[pos]])
                    pos += 1
                inputs, targets = make_batch(picked, cfg, rng, options.augment, options.dropout)
                losses = centerpoint_loss(net({k: torch.from_numpy(v).to(device) for k, v in inputs.items()}),
                                          {k: torch.from_numpy(v).to(device) for k, v in targets.items()})
                optimizer.zero_grad(set_to_none=True)
                losses["loss"].backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(net.parameters(), options.grad_clip)
                optimizer.step()
                scheduler.step()
                step += 1
                elapsed += time.perf_counter() - t0
                for k, v in losses.items():
                    window.setdefault(k, []).append(float(v.detach()))
                window.setdefault("grad_norm", []).append(float(grad_norm))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{window['loss'][-1]:.3f}", hm=f"{window['heatmap'][-1]:.3f}")
                logged = None
                if step % options.log_every == 0 or step == options.steps:
                    logged = {"step": step, "lr": scheduler.get_last_lr()[0], "elapsed_s": round(elapsed, 2),
                              **{k: float(np.mean(v)) for k, v in window.items()}}
                    log.write(json.dumps(logged) + "\n")
                    log.flush()
                    window.clear()
                if step % options.checkpoint_every == 0 or step == options.steps:
                    save()
                if on_step is not None and logged is not None:
                    on_step(step, logged)
    finally:
        if bar is not None:
            bar.close()
    plot_log(log_path, out.with_name(out.name + ".png"))
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def plot_log(log_path: str | Path, png: str | Path) -> Path:
    """Loss curves (total, heatmap, regression parts) and the learning rate from a JSONL log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    steps = [r["step"] for r in records]
    fig, (ax, ax_lr) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("loss", "heatmap", "regression", "offset", "size", "rot", "velocity"):
        if records and key in records[0]:
            ax.plot(steps, [r[key] for r in records], label=key, lw=2 if key == "loss" else 1)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("training losses")
    ax.legend(fontsize=8)
    ax_lr.plot(steps, [r["lr"] for r in records])
    ax_lr.set_xlabel("step")
    ax_lr.set_title("learning rate")
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return Path(png)
