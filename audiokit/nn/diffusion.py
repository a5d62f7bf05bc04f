"""Diffusion schedules and samplers (DDPM training targets, DDIM sampling, classifier-free guidance).

A :class:`CosineSchedule` (Nichol & Dhariwal) over ``steps`` training steps. The network predicts ε (the noise)
or v (``√ᾱ·ε − √(1−ᾱ)·x₀``, Salimans & Ho), and both convert to an estimate of x₀; :func:`ddim_sample`
walks any subset of the training steps deterministically (``eta`` 0) or stochastically.
"""
from __future__ import annotations

import math
from typing import Callable

import torch


class CosineSchedule:
    def __init__(self, steps: int = 1000, s: float = 0.008, max_beta: float = 0.999):
        t = torch.linspace(0, steps, steps + 1, dtype=torch.float64) / steps
        f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
        self.steps = steps
        self.alpha_bar = torch.cumprod(1 - betas, 0).float()  # ᾱ_t for t = 0 … steps-1

    def _ab(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        ab = self.alpha_bar.to(like.device)[t]
        return ab.view(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε."""
        ab = self._ab(t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, prediction: str) -> torch.Tensor:
        if prediction == "eps":
            return noise
        if prediction == "v":
            ab = self._ab(t, x0)
            return ab.sqrt() * noise - (1 - ab).sqrt() * x0
        raise ValueError(f"prediction must be 'eps' or 'v', got {prediction!r}")

    def to_x0_eps(self, x_t: torch.Tensor, t: torch.Tensor, out: torch.Tensor, prediction: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(x₀, ε) estimated from the network output ``out`` at ``x_t``."""
        ab = self._ab(t, x_t)
        if prediction == "eps":
            eps = out
            x0 = (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()
        elif prediction == "v":
            x0 = ab.sqrt() * x_t - (1 - ab).sqrt() * out
            eps = (1 - ab).sqrt() * x_t + ab.sqrt() * out
        else:
            raise ValueError(f"prediction must be 'eps' or 'v', got {prediction!r}")
        return x0, eps


def guided(model: Callable, scale: float, batched: bool = False) -> Callable:
    """Classifier-free guidance: ``uncond + scale · (cond − uncond)`` (scale 1 is the conditional output alone,
    computed once).

    ``model(x, t, drop)``: with ``batched=False`` ``drop`` is one bool for the whole batch and the model runs
    twice; with ``batched=True`` the conditional and unconditional halves run as *one* batch of 2B rows and
    ``drop`` is a per-row bool tensor (None when nothing is dropped) — half the launches.
    """
    if scale == 1.0:
        return lambda x, t: model(x, t, None if batched else False)
    if batched:
        def fn(x, t):
            B = x.shape[0]
            drop = torch.arange(2 * B, device=x.device) >= B
            c, u = model(torch.cat([x, x]), torch.cat([t, t]), drop).chunk(2)
            return u + scale * (c - u)
        return fn

    def fn(x, t):
        c, u = model(x, t, False), model(x, t, True)
        return u + scale * (c - u)
    return fn


@torch.no_grad()
def ddim_sample(model: Callable, schedule: CosineSchedule, shape: tuple, steps: int, prediction: str = "v",
                eta: float = 0.0, generator: torch.Generator | None = None, device="cpu",
                clip_x0: float | None = None) -> torch.Tensor:
    """Sample ``shape`` with DDIM over ``steps`` evenly spaced training steps; ``model(x_t, t)`` → network output
    (wrap with :func:`guided` for guidance). Noise is drawn on the CPU from ``generator`` (reproducible on
    every device)."""
    if not 1 <= steps <= schedule.steps:
        raise ValueError(f"steps must be in 1 … {schedule.steps}, got {steps}")
    ts = torch.linspace(schedule.steps - 1, 0, steps).round().long().tolist()
    x = torch.randn(shape, generator=generator).to(device)
    for i, t in enumerate(ts):
        tt = torch.full((shape[0],), t, dtype=torch.long, device=device)
        x0, eps = schedule.to_x0_eps(x, tt, model(x, tt), prediction)
        if clip_x0 is not None:
            x0 = x0.clamp(-clip_x0, clip_x0)
        if i == len(ts) - 1:
            return x0
        ab, ab_prev = schedule.alpha_bar[t].item(), schedule.alpha_bar[ts[i + 1]].item()
        sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
        x = math.sqrt(ab_prev) * x0 + math.sqrt(max(1 - ab_prev - sigma**2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * torch.randn(shape, generator=generator).to(device)
    return x
