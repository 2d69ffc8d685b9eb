"""CenterPoint losses: CenterNet's focal loss on the heatmap, L1 on the regressions at box centres."""

from __future__ import annotations

import torch

__all__ = ["REGRESSION_WEIGHTS", "centerpoint_loss", "focal_loss"]

# Per regression channel (offset 2, height 1, log size 3, sin cos 2, velocity 2): CenterPoint's
# nuScenes code weights (velocity 0.2: it is noisy and must not dominate early training).
REGRESSION_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2)
# CenterPoint scales the whole regression term by 0.25 against the heatmap term.
REGRESSION_SCALE = 0.25


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss over (B, K, H, W), normalised by the number of peaks."""
    # logsigmoid is exact where sigmoid saturates (no log(0) for confident cells).
    log_p = torch.nn.functional.logsigmoid(logits)
    log_not_p = torch.nn.functional.logsigmoid(-logits)
    p = log_p.exp()
    pos = target.eq(1.0).to(logits.dtype)
    neg_weight = (1 - target).pow(beta)
    pos_loss = -(log_p * (1 - p).pow(alpha) * pos).sum()
    neg_loss = -(log_not_p * p.pow(alpha) * neg_weight * (1 - pos)).sum()
    return (pos_loss + neg_loss) / pos.sum().clamp(min=1.0)


def _gather(maps: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """maps: (B, C, H, W); index: (B, O) flat cells -> (B, O, C)."""
    b, c = maps.shape[:2]
    flat = maps.reshape(b, c, -1)
    return flat.gather(2, index[:, None, :].expand(b, c, index.shape[1])).transpose(1, 2)


def centerpoint_loss(out: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """out: the network's maps (heatmap logits); targets: batched ``Targets`` fields as tensors
    (heatmap (B, K, H, W), index (B, O), mask (B, O), regression (B, O, 10), velocity_mask (B, O)).
    Returns {'loss', 'heatmap', 'regression', and one entry per regression quantity}."""
    hm = focal_loss(out["heatmap"].float(), targets["heatmap"])
    pred = torch.cat([_gather(out[n].float(), targets["index"]) for n in ("offset", "height", "size", "rot", "velocity")], dim=2)
    mask = targets["mask"][..., None].expand_as(pred).clone()
    mask[..., 8:] *= targets["velocity_mask"][..., None]
    weights = pred.new_tensor(REGRESSION_WEIGHTS)
    err = (pred - targets["regression"]).abs() * mask
    per_channel = err.sum(dim=(0, 1)) / targets["mask"].sum().clamp(min=1.0)
    reg = (per_channel * weights).sum()
    parts = {"offset": per_channel[0:2].sum(), "height": per_channel[2], "size": per_channel[3:6].sum(),
             "rot": per_channel[6:8].sum(), "velocity": per_channel[8:10].sum()}
    return {"loss": hm + REGRESSION_SCALE * reg, "heatmap": hm, "regression": reg, **parts}
