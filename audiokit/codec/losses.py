"""Codec losses: multi-scale mel (DAC), multi-scale STFT, phase (instantaneous phase, frequency and group
delay), adversarial (hinge or least squares), feature
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


class PhaseLoss(nn.Module):
    """How far the output's STFT phase is from the reference's, where the reference has energy.

    Mel and magnitude losses leave phase free, and a decoder that predicts phase (the iSTFT head) then
    produces frames whose phases do not follow on from each other: rough, "phasy" speech that PESQ marks down
    even when every magnitude is right. This loss compares, at several resolutions, the phase itself, its
    change from frame to frame (instantaneous frequency) and its change from bin to bin (group delay), as
    ``1 − cos`` of the difference (no wrapping to handle, as APNet's anti-wrapping losses do by hand), weighted
    by the reference's magnitude and normalised by its sum, so each term lies in [0, 2] whatever the loudness.

    The output's phasors are ``z / max(|z|, ε)`` with ε a thousandth of the *reference's* peak magnitude: the
    gradient stays bounded where the output is nearly silent, and a bin quieter than ε counts as partly
    wrong, so neither going quiet nor adding a loud spike lowers the loss (a first version took ε from the
    output and was gamed exactly that way: one spike made every other bin "free").
    """

    def __init__(self, n_ffts: Sequence[int] = (256, 512, 1024), terms: Sequence[str] = ("phase", "frequency", "delay")):
        super().__init__()
        unknown = set(terms) - {"phase", "frequency", "delay"}
        if unknown or not terms:
            raise ValueError(f"terms must be some of 'phase', 'frequency', 'delay'; got {list(terms)}")
        self.n_ffts, self.terms = tuple(n_ffts), tuple(terms)

    @staticmethod
    def _term(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return (w * (1 - (a * b.conj()).real)).sum() / w.sum().clamp(min=1e-8)

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = y.new_zeros(())
        for n in self.n_ffts:
            win = torch.hann_window(n, device=y.device)
            zh = torch.stft(y_hat.float().flatten(0, -2), n, n // 4, window=win, return_complex=True)
            z = torch.stft(y.float().flatten(0, -2), n, n // 4, window=win, return_complex=True).detach()
            w = z.abs()
            eps = 1e-3 * w.amax(dim=(-2, -1), keepdim=True).clamp(min=1e-8)
            uh, u = zh / zh.abs().clamp(min=eps), z / w.clamp(min=1e-12)  # |uh| ≤ 1, |u| = 1
            dt = lambda v: v[..., 1:] * v[..., :-1].conj()  # noqa: E731  (frame to frame)
            df = lambda v: v[..., 1:, :] * v[..., :-1, :].conj()  # noqa: E731  (bin to bin)
            wt, wf = (w[..., 1:] * w[..., :-1]).sqrt(), (w[..., 1:, :] * w[..., :-1, :]).sqrt()
            if "phase" in self.terms:
                loss = loss + self._term(uh, u, w)
            if "frequency" in self.terms:
                loss = loss + self._term(dt(uh), dt(u), wt)
            if "delay" in self.terms:
                loss = loss + self._term(df(uh), df(u), wf)
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
