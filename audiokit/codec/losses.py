"""Codec losses: multi-scale mel (DAC), multi-scale STFT, adversarial (hinge or least squares), feature
matching, and EnCodec's gradient balancer."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class MultiScaleMelLoss(nn.Module):
    """L1 between log10 mel magnitudes at several resolutions (DAC: 7 scales, 5…320 mels, windows 32…2048)."""

    def __init__(self, sample_rate: int, n_mels: Sequence[int] = (5, 10, 20, 40, 80, 160, 320),
                 window_lengths: Sequence[int] = (32, 64, 128, 256, 512, 1024, 2048), clamp_eps: float = 1e-5,
                 mag_weight: float = 0.0, log_weight: float = 1.0):
        super().__init__()
        import torchaudio.transforms as T

        if len(n_mels) != len(window_lengths):
            raise ValueError("n_mels and window_lengths must have the same length")
        self.mels = nn.ModuleList(
            T.MelSpectrogram(sample_rate, n_fft=w, win_length=w, hop_length=w // 4, n_mels=m, power=1.0, center=True,
                             norm="slaney", mel_scale="slaney", f_min=0.0, f_max=sample_rate / 2)
            for m, w in zip(n_mels, window_lengths)
        )
        self.clamp_eps, self.mag_weight, self.log_weight = clamp_eps, mag_weight, log_weight

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = y.new_zeros(())
        for mel in self.mels:
            a, b = mel(y_hat.float()), mel(y.float())
            loss = loss + self.log_weight * F.l1_loss(a.clamp(min=self.clamp_eps).log10(), b.clamp(min=self.clamp_eps).log10())
            if self.mag_weight:
                loss = loss + self.mag_weight * F.l1_loss(a, b)
        return loss


class MultiScaleSTFTLoss(nn.Module):
    """Spectral convergence + L1 of log magnitudes at several FFT sizes (hop = n_fft / 4)."""

    def __init__(self, n_ffts: Sequence[int] = (2048, 1024, 512, 256, 128), clamp_eps: float = 1e-5):
        super().__init__()
        self.n_ffts, self.clamp_eps = tuple(n_ffts), clamp_eps

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = y.new_zeros(())
        for n in self.n_ffts:
            w = torch.hann_window(n, device=y.device)
            a = torch.stft(y_hat.float().flatten(0, -2), n, n // 4, window=w, return_complex=True).abs()
            b = torch.stft(y.float().flatten(0, -2), n, n // 4, window=w, return_complex=True).abs()
            sc = torch.linalg.norm(a - b) / torch.linalg.norm(b).clamp(min=self.clamp_eps)
            loss = loss + sc + F.l1_loss(a.clamp(min=self.clamp_eps).log10(), b.clamp(min=self.clamp_eps).log10())
        return loss / len(self.n_ffts)


def discriminator_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]], kind: str = "lsgan") -> torch.Tensor:
    """Push real logits up and fake ones down; ``kind`` is ``"lsgan"`` (least squares) or ``"hinge"``."""
    loss = 0.0
    for r, f in zip(real, fake):
        r, f = r[-1], f[-1]
        if kind == "lsgan":
            loss = loss + (1 - r).pow(2).mean() + f.pow(2).mean()
        elif kind == "hinge":
            loss = loss + F.relu(1 - r).mean() + F.relu(1 + f).mean()
        else:
            raise ValueError(f"unknown GAN loss {kind!r} (lsgan, hinge)")
    return loss / len(real)


def generator_adversarial_loss(fake: list[list[torch.Tensor]], kind: str = "lsgan") -> torch.Tensor:
    loss = 0.0
    for f in fake:
        f = f[-1]
        loss = loss + ((1 - f).pow(2).mean() if kind == "lsgan" else -f.mean())
    return loss / len(fake)


def feature_matching_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Mean over sub-discriminators of the L1 distance between their inner feature maps (real ones detached)."""
    loss, n = 0.0, 0
    for r, f in zip(real, fake):
        for rf, ff in zip(r[:-1], f[:-1]):
            loss = loss + F.l1_loss(ff, rf.detach())
            n += 1
    return loss / max(n, 1)


class Balancer:
    """EnCodec's gradient balancer: each loss's gradient w.r.t. the generator output is rescaled so that it
    contributes its weight's share of the total, whatever its raw scale.

    :meth:`surrogate` computes ``g_i = ∂loss_i/∂y_hat``, tracks an EMA of each gradient's norm, and returns
    ``(y_hat · G).sum()`` with ``G = Σ w_i / Σw · total_norm · g_i / ema‖g_i‖`` held constant: back-propagating
    it gives the generator exactly the balanced gradient, and it adds to other losses (VQ) in one backward.
    """

    def __init__(self, weights: dict[str, float], total_norm: float = 1.0, ema_decay: float = 0.999, eps: float = 1e-12):
        self.weights, self.total_norm, self.decay, self.eps = dict(weights), total_norm, ema_decay, eps
        self.norms: dict[str, float] = {}
        self.counts: dict[str, float] = {}

    def surrogate(self, losses: dict[str, torch.Tensor], y_hat: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        grads, norms = {}, {}
        for name, loss in losses.items():
            (g,) = torch.autograd.grad(loss, [y_hat], retain_graph=True)
            grads[name] = g
            norm = float(g.norm(p=2, dim=tuple(range(1, g.dim()))).mean())
            self.norms[name] = self.decay * self.norms.get(name, 0.0) + norm
            self.counts[name] = self.decay * self.counts.get(name, 0.0) + 1.0
            norms[name] = self.norms[name] / self.counts[name]
        total_w = sum(self.weights[n] for n in losses)
        G = torch.zeros_like(y_hat)
        for name, g in grads.items():
            G = G + g * (self.weights[name] / total_w * self.total_norm / (self.eps + norms[name]))
        return (y_hat * G.detach()).sum(), norms
