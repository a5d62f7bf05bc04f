"""Discriminators: multi-period (HiFi-GAN / DAC), multi-scale STFT (EnCodec) and multi-band multi-resolution
STFT (DAC). Each returns, per sub-discriminator, the list of feature maps whose last entry is the logits."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.layers import weight_norm


def _wn2d(*args, **kw) -> nn.Module:
    return weight_norm(nn.Conv2d(*args, **kw))


def _stack(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor, slope: float) -> list[torch.Tensor]:
    """Run conv → leaky ReLU layers, keeping every feature map, then the post conv's logits last."""
    feats = []
    for conv in convs:
        x = F.leaky_relu(conv(x), slope)
        feats.append(x)
    feats.append(post(x))
    return feats


class PeriodDiscriminator(nn.Module):
    """Audio folded into ``[B, 1, T/p, p]`` and judged by 2-D convolutions along time (kernel (5, 1), stride (3, 1))."""

    def __init__(self, period: int, channels: Sequence[int] = (32, 128, 512, 1024, 1024)):
        super().__init__()
        self.period = period
        layers, c_in = [], 1
        for i, c in enumerate(channels):
            stride = (3, 1) if i < len(channels) - 1 else (1, 1)
            layers.append(_wn2d(c_in, c, (5, 1), stride, padding=(2, 0)))
            c_in = c
        self.convs = nn.ModuleList(layers)
        self.post = _wn2d(c_in, 1, (3, 1), 1, padding=(1, 0))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        pad = -x.shape[-1] % self.period
        x = F.pad(x, (0, pad), mode="reflect" if pad < x.shape[-1] else "constant")
        return _stack(self.convs, self.post, x.view(x.shape[0], 1, -1, self.period), 0.1)


class MultiPeriodDiscriminator(nn.Module):
    def __init__(self, periods: Sequence[int] = (2, 3, 5, 7, 11), channels: Sequence[int] = (32, 128, 512, 1024, 1024)):
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, channels) for p in periods)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        return [d(x) for d in self.discriminators]


def _complex_spec(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """``[B, 1, T]`` → real/imag channels ``[B, 2, frames, bins]`` (Hann window, centred, normalized)."""
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    spec = torch.stft(x[:, 0], n_fft, hop, window=window, center=True, normalized=True, return_complex=True)
    return torch.view_as_real(spec).permute(0, 3, 2, 1)


class STFTDiscriminator(nn.Module):
    """EnCodec-style: 2-D convs over one complex spectrogram, dilated in time, strided in frequency."""

    def __init__(self, n_fft: int, hop: int, filters: int = 32, max_filters: int = 1024, dilations: Sequence[int] = (1, 2, 4)):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        convs = [_wn2d(2, filters, (3, 9), padding=(1, 4))]
        c = filters
        for i, d in enumerate(dilations):
            c_out = min(filters * 2 ** (i + 1), max_filters)
            convs.append(_wn2d(c, c_out, (3, 9), stride=(1, 2), dilation=(d, 1), padding=(d, 4)))
            c = c_out
        convs.append(_wn2d(c, c, (3, 3), padding=(1, 1)))
        self.convs = nn.ModuleList(convs)
        self.post = _wn2d(c, 1, (3, 3), padding=(1, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return _stack(self.convs, self.post, _complex_spec(x, self.n_fft, self.hop), 0.2)


class MultiScaleSTFTDiscriminator(nn.Module):
    """EnCodec's MS-STFT discriminator: FFT sizes 1024, 2048, 512, 256, 128 with hop = n_fft / 4."""

    def __init__(self, n_ffts: Sequence[int] = (1024, 2048, 512, 256, 128), filters: int = 32, max_filters: int = 1024):
        super().__init__()
        self.discriminators = nn.ModuleList(STFTDiscriminator(n, n // 4, filters, max_filters) for n in n_ffts)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        return [d(x) for d in self.discriminators]


DAC_BANDS = ((0.0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))


class BandSTFTDiscriminator(nn.Module):
    """DAC-style: one complex spectrogram split into frequency bands, each with its own conv stack,
    concatenated along frequency and judged by a shared post conv."""

    def __init__(self, n_fft: int, channels: int = 32, bands: Sequence[tuple[float, float]] = DAC_BANDS):
        super().__init__()
        self.n_fft, self.hop = n_fft, n_fft // 4
        n_bins = n_fft // 2 + 1
        self.bands = [(int(lo * n_bins), int(hi * n_bins)) for lo, hi in bands]

        def stack():
            return nn.ModuleList([
                _wn2d(2, channels, (3, 9), padding=(1, 4)),
                _wn2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4)),
                _wn2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4)),
                _wn2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4)),
                _wn2d(channels, channels, (3, 3), padding=(1, 1)),
            ])

        self.band_convs = nn.ModuleList(stack() for _ in self.bands)
        self.post = _wn2d(channels, 1, (3, 3), padding=(1, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = x - x.mean(dim=-1, keepdim=True)
        x = 0.8 * x / (x.abs().amax(dim=-1, keepdim=True) + 1e-9)
        z = _complex_spec(x, self.n_fft, self.hop)
        feats, outs = [], []
        for (lo, hi), convs in zip(self.bands, self.band_convs):
            b = z[..., lo:hi]
            for conv in convs:
                b = F.leaky_relu(conv(b), 0.1)
                feats.append(b)
            outs.append(b)
        z = torch.cat(outs, dim=-1)
        feats.append(self.post(z))
        return feats


class MultiBandSTFTDiscriminator(nn.Module):
    """DAC's multi-band multi-resolution STFT discriminator: FFT sizes 2048, 1024, 512."""

    def __init__(self, n_ffts: Sequence[int] = (2048, 1024, 512), channels: int = 32):
        super().__init__()
        self.discriminators = nn.ModuleList(BandSTFTDiscriminator(n, channels) for n in n_ffts)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        return [d(x) for d in self.discriminators]


class Discriminator(nn.Module):
    """Any combination of ``mpd``, ``msstft`` and ``mbstft``; outputs are concatenated lists of sub-discriminators."""

    def __init__(self, kinds: Sequence[str] = ("mpd", "mbstft"), mpd_periods: Sequence[int] = (2, 3, 5, 7, 11),
                 mpd_channels: Sequence[int] = (32, 128, 512, 1024, 1024), msstft_n_ffts: Sequence[int] = (1024, 2048, 512, 256, 128),
                 msstft_filters: int = 32, mbstft_n_ffts: Sequence[int] = (2048, 1024, 512), mbstft_channels: int = 32):
        super().__init__()
        parts = {}
        for k in kinds:
            if k == "mpd":
                parts[k] = MultiPeriodDiscriminator(mpd_periods, mpd_channels)
            elif k == "msstft":
                parts[k] = MultiScaleSTFTDiscriminator(msstft_n_ffts, msstft_filters)
            elif k == "mbstft":
                parts[k] = MultiBandSTFTDiscriminator(mbstft_n_ffts, mbstft_channels)
            else:
                raise ValueError(f"unknown discriminator {k!r} (mpd, msstft, mbstft)")
        if not parts:
            raise ValueError("at least one discriminator is needed")
        self.parts = nn.ModuleDict(parts)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        out = []
        for d in self.parts.values():
            out.extend(d(x))
        return out
