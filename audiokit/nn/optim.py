"""The optimizer every transformer family trains with: AdamW (no decay on gains and biases), linear warm-up,
then linear decay to a fraction of the peak over the run's estimated steps — or over its wall-clock budget
(``trainer.max_time``), whichever ends first, so a run stopped by the clock ends its schedule too."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn


def adamw_warmup_linear(model: nn.Module, trainer, lr: float, betas: Sequence[float], eps: float, weight_decay: float,
                        warmup_steps: int, final_lr_fraction: float, fast: Sequence[nn.Parameter] = (),
                        fast_lr_scale: float = 1.0) -> dict:
    """A ``configure_optimizers`` return value (optimizer + per-step scheduler) for ``model``'s parameters.

    ``fast``: parameters that step at ``fast_lr_scale`` × ``lr`` (with weight decay), in a third group — tables
    of unit scale whose output is read at 1/sqrt(d), which Adam's fixed-size steps would otherwise move sqrt(d)
    times too slowly. Without them (or at scale 1) the optimizer has its usual two groups."""
    fast_ids = {id(p) for p in fast} if fast_lr_scale != 1.0 else set()
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2 and id(p) not in fast_ids]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2 and id(p) not in fast_ids]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if fast_ids:
        groups.append({"params": [p for p in fast if p.requires_grad], "weight_decay": weight_decay,
                       "lr": lr * fast_lr_scale})
    opt = torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps)
    total = trainer.estimated_stepping_batches if trainer is not None else 0
    total = int(total) if total and math.isfinite(total) else 0
    clock = time_progress(trainer)

    def schedule(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        frac = min(1.0, (step - warmup_steps) / (total - warmup_steps)) if total > warmup_steps else 0.0
        frac = max(frac, clock())
        return 1.0 - (1.0 - final_lr_fraction) * frac

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def time_progress(trainer):
    """A function giving the share of ``trainer.max_time`` spent in training so far (0 to 1; always 0 without a
    wall-clock budget). It reads Lightning's Timer callback, which a resumed run restores from its checkpoint."""
    from lightning.pytorch.callbacks import Timer

    timers = [cb for cb in getattr(trainer, "callbacks", None) or [] if isinstance(cb, Timer)]
    if not timers:
        return lambda: 0.0
    timer = timers[0]

    def progress() -> float:
        left = timer.time_remaining("train")
        if left is None:  # no max_time
            return 0.0
        elapsed = timer.time_elapsed("train")
        return min(1.0, elapsed / (elapsed + left)) if elapsed + left > 0 else 0.0

    return progress
