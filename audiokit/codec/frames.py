"""A codec encoder and decoder that compute at the frame rate (issue 21): STFT in, inverse STFT out.

DAC's and EnCodec's convolutions run at the sample rate in their outer stages, which is where a CPU spends
its time; at 16 kHz and 50 frames/s those stages see 320 times more positions than the latent does. Vocos
(Siuzdak, 2023) showed that a decoder can stay at the frame rate — ConvNeXt blocks on frames, a linear head
predicting the log-magnitude and phase of each STFT frame, an inverse STFT — and match a sample-rate
generator's quality for a fraction of its compute. Here the encoder mirrors it: log-magnitude STFT frames at
two resolutions (a long window, ``n_fft`` = 4 hops, for the harmonics; a short one, hop/2 apart and stacked
per frame, for the timing inside a frame) go through a conv and ConvNeXt blocks to the latent the residual
quantizer sees. For the same CPU time the network can be ~20× wider than a sample-rate one.

Non-causal, whole-utterance: frame ``f`` is centred on sample ``f·hop`` in both directions.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvNeXtBlock(nn.Module):
    """Depthwise conv (k7) → LayerNorm → Linear ×mult → GELU → Linear, scaled, plus the input."""

    def __init__(self, dim: int, mult: int = 3, kernel_size: int = 7, layer_scale: float = 0.1):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pw1 = nn.Linear(dim, dim * mult)
        self.pw2 = nn.Linear(dim * mult, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, T]
        h = self.norm(self.dwconv(x).transpose(1, 2))
        h = self.pw2(F.gelu(self.pw1(h))) * self.gamma
        return x + h.transpose(1, 2)


class _Backbone(nn.Module):
    def __init__(self, in_dim: int, dim: int, n_layers: int, kernel_size: int = 7):
        super().__init__()
        self.embed = nn.Conv1d(in_dim, dim, kernel_size, padding=kernel_size // 2)
        self.norm = nn.LayerNorm(dim)
        self.blocks = nn.ModuleList(ConvNeXtBlock(dim) for _ in range(n_layers))
        self.final_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, in, T] -> [B, T, dim]
        x = self.norm(self.embed(x).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.final_norm(x.transpose(1, 2))


class STFTEncoder(nn.Module):
    """Audio ``[B, 1, F·hop]`` → latents ``[B, latent_dim, F]``."""

    def __init__(self, hop: int, n_fft: int, dim: int, n_layers: int, latent_dim: int):
        super().__init__()
        if hop % 2:
            raise ValueError(f"the frame encoder needs an even hop, got {hop}")
        self.hop, self.n_fft, self.short = hop, n_fft, hop  # short windows: hop samples long, hop/2 apart
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("short_window", torch.hann_window(self.short), persistent=False)
        in_dim = n_fft // 2 + 1 + 2 * (self.short // 2 + 1)
        self.backbone = _Backbone(in_dim, dim, n_layers, kernel_size=1)  # ~960 features: a 1x1 embedding, context from the blocks
        self.project = nn.Linear(dim, latent_dim)

    @staticmethod
    def _logmag(x: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor, frames: int) -> torch.Tensor:
        spec = torch.stft(x, n_fft, hop, window=window, center=True, pad_mode="constant", return_complex=True)[..., :frames]
        return spec.abs().clamp(min=1e-5).log()  # [B, bins, frames]

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = audio[:, 0].float()
        frames = x.shape[-1] // self.hop
        long = self._logmag(x, self.n_fft, self.hop, self.window, frames)
        short = self._logmag(F.pad(x, (self.hop // 4, 0)), self.short, self.hop // 2, self.short_window, 2 * frames)
        short = short.view(short.shape[0], short.shape[1], frames, 2).transpose(2, 3).flatten(1, 2)
        h = self.backbone(torch.cat([long, short], 1).to(audio.dtype))
        return self.project(h).transpose(1, 2)


class ISTFTDecoder(nn.Module):
    """Latents ``[B, latent_dim, F]`` → audio ``[B, 1, F·hop]`` through an inverse STFT of predicted
    log-magnitudes and phases (Vocos' head: phase as an angle, cos/sin of it)."""

    def __init__(self, latent_dim: int, hop: int, n_fft: int, dim: int, n_layers: int):
        super().__init__()
        self.hop, self.n_fft = hop, n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.backbone = _Backbone(latent_dim, dim, n_layers)
        self.head = nn.Linear(dim, n_fft + 2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.synthesize(self.head(self.backbone(z)).float().transpose(1, 2))

    def synthesize(self, out: torch.Tensor) -> torch.Tensor:
        """The head's output ``[B, n_fft + 2, F]`` (log-magnitudes, then phases) → audio ``[B, 1, F·hop]``."""
        frames = out.shape[-1]
        log_mag, phase = out.chunk(2, dim=1)
        mag = log_mag.clamp(max=7.0).exp()  # e^7 ≈ 1100: far above speech's STFT magnitudes, bounds early steps
        spec = torch.polar(mag, phase)  # frame f centred on sample f·hop, as the encoder's frames are
        return torch.istft(spec, self.n_fft, self.hop, window=self.window, center=True, length=frames * self.hop)[:, None]
