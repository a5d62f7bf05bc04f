"""Diffusion schedules and samplers (DDPM training targets, DDIM sampling, rectified flow, classifier-free
guidance).

A :class:`CosineSchedule` (Nichol & Dhariwal) over ``steps`` training steps. The network predicts ε (the noise)
or v (``√ᾱ·ε − √(1−ᾱ)·x₀``, Salimans & Ho), and both convert to an estimate of x₀; :func:`ddim_sample`
walks any subset of the training steps deterministically (``eta`` 0) or stochastically.

:class:`RectifiedFlow` (Liu et al. 2022; flow matching with straight paths, Lipman et al.) is the alternative:
``x_t = (1 − t)·x₀ + t·ε`` for t in [0, 1], the network predicts the velocity ``ε − x₀``, and sampling
integrates the ODE from noise (t = 1) to data (t = 0) in a few Euler or midpoint steps.

Training and sampling code sees either through one interface — :func:`make_process` returns a :class:`DDPM`
or a :class:`RectifiedFlow` with ``draw`` (training times), ``noisy``, ``target``, ``level`` (noise level in
[0, 1], for per-level losses), ``time_at`` (its inverse), ``x0_from`` (one-step estimate of the data) and
``sample``; the network always receives a time on the 0 … ``steps`` scale.
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
    ts = torch.linspace(schedule.steps - 1, 0, steps, device="cpu").round().long().tolist()
    x = torch.randn(shape, generator=generator, device="cpu").to(device)
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
            x = x + sigma * torch.randn(shape, generator=generator, device="cpu").to(device)
    return x


class DDPM:
    """Denoising diffusion with a :class:`CosineSchedule` over ``steps`` levels, predicting ``"eps"`` or ``"v"``;
    sampled with DDIM."""

    def __init__(self, prediction: str = "v", steps: int = 1000):
        if prediction not in ("eps", "v"):
            raise ValueError(f"prediction must be 'eps' or 'v', got {prediction!r}")
        self.prediction, self.steps = prediction, steps
        self.schedule = CosineSchedule(steps)

    def draw(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(0, self.steps, (n,), generator=generator, device="cpu")

    def noisy(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.schedule.q_sample(x0, t, noise)

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.schedule.target(x0, noise, t, self.prediction)

    def net_time(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def level(self, t: torch.Tensor) -> torch.Tensor:
        return t.float() / self.steps

    def time_at(self, level: float, n: int = 1) -> torch.Tensor:
        """Training times ``[n]`` at a noise level in [0, 1] (the inverse of :meth:`level`)."""
        return torch.full((n,), min(self.steps - 1, round(level * self.steps)), dtype=torch.long, device="cpu")

    def x0_from(self, x_t: torch.Tensor, t: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The data estimated in one step from the network's output ``out`` at ``x_t``."""
        return self.schedule.to_x0_eps(x_t, t.to(x_t.device), out, self.prediction)[0]

    def sample(self, model: Callable, shape: tuple, steps: int, generator: torch.Generator | None = None,
               device="cpu", **kw) -> torch.Tensor:
        return ddim_sample(model, self.schedule, shape, steps, self.prediction, generator=generator, device=device, **kw)


class RectifiedFlow:
    """Straight paths from data (t = 0) to noise (t = 1); the network predicts the velocity ``ε − x₀`` and sees
    ``t · steps`` (the DDPM's time scale, so one network serves both). ``solver``: ``"euler"`` (one network
    evaluation per step) or ``"midpoint"`` (two, second order)."""

    prediction = "flow"

    def __init__(self, steps: int = 1000, solver: str = "euler"):
        if solver not in ("euler", "midpoint"):
            raise ValueError(f"solver must be 'euler' or 'midpoint', got {solver!r}")
        self.steps, self.solver = steps, solver

    def draw(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.rand(n, generator=generator, device="cpu")

    def _t(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return t.to(like.device, like.dtype).view(-1, *([1] * (like.dim() - 1)))

    def noisy(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        tt = self._t(t, x0)
        return (1 - tt) * x0 + tt * noise

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return noise - x0

    def net_time(self, t: torch.Tensor) -> torch.Tensor:
        return t * self.steps

    def level(self, t: torch.Tensor) -> torch.Tensor:
        return t.float()

    def time_at(self, level: float, n: int = 1) -> torch.Tensor:
        return torch.full((n,), float(level), device="cpu")

    def x0_from(self, x_t: torch.Tensor, t: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return x_t - self._t(t, x_t) * out

    @torch.no_grad()
    def sample(self, model: Callable, shape: tuple, steps: int, generator: torch.Generator | None = None,
               device="cpu") -> torch.Tensor:
        """Integrate from noise to data in ``steps`` equal steps; ``model(x_t, t · self.steps)`` → velocity.
        Noise is drawn on the CPU from ``generator`` (reproducible on every device)."""
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        x = torch.randn(shape, generator=generator, device="cpu").to(device)
        ts = torch.linspace(1.0, 0.0, steps + 1, device="cpu").tolist()

        def velocity(x, t):
            return model(x, torch.full((shape[0],), t * self.steps, device=device))

        for t, t_next in zip(ts[:-1], ts[1:]):
            h = t_next - t  # negative: towards the data
            if self.solver == "euler":
                x = x + h * velocity(x, t)
            else:
                x = x + h * velocity(x + 0.5 * h * velocity(x, t), t + 0.5 * h)
        return x


def make_process(prediction: str, steps: int = 1000, solver: str = "euler") -> DDPM | RectifiedFlow:
    """``"eps"`` / ``"v"``: a :class:`DDPM`; ``"flow"``: a :class:`RectifiedFlow` (with ``solver``)."""
    if prediction == "flow":
        return RectifiedFlow(steps, solver)
    if prediction not in ("eps", "v"):
        raise ValueError(f"prediction must be 'v', 'eps' (DDPM) or 'flow' (rectified flow), got {prediction!r}")
    return DDPM(prediction, steps)
