"""Tortoise's diffusion decoder (module only): denoises the codec's continuous latents (``codec.embed``)
frame by frame, conditioned on a sequence (the AR latents, or — in the first training stage — embeddings of
the speech tokens) and on the voice's conditioning latent. Schedules and samplers: :mod:`audiokit.nn.diffusion`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.transformer import AdaptiveLayerNorm, Linear, ResidualAttentionBlock, padding_mask
from ..valle.model import sinusoids
from .model import ConditioningEncoder


class DiffusionDecoder(nn.Module):
    """Network output (ε or v) for noisy latents ``x_t`` ``[B, T, latent_dim]``.

    Conditioning: ``cond`` ``[B, Tc, cond_dim]`` (resampled to ``T`` frames when ``Tc != T``) is added to the
    input; the timestep and the voice latent ``[B, voice_dim]`` enter every block through adaptive layer norm.
    Rows with ``drop`` set use learned null conditioning instead (classifier-free guidance). The voice latent
    comes from the decoder's own :class:`ConditioningEncoder` (``voice_encoder``), as in the original, so
    this model trains without the AR model in its first stage.

    The latents are modelled normalized: ``latent_mean``/``latent_std`` (buffers, saved with the weights) are
    measured on the training data before the first step; :meth:`normalize` / :meth:`denormalize` convert.
    """

    def __init__(self, latent_dim: int, cond_dim: int, voice_dim: int, codebook_size: int, d_model: int = 512,
                 n_head: int = 8, n_layer: int = 8, dropout: float = 0.0, n_codebooks: int = 8, n_voice_layer: int = 2):
        super().__init__()
        self.config = dict(latent_dim=latent_dim, cond_dim=cond_dim, voice_dim=voice_dim, codebook_size=codebook_size,
                           d_model=d_model, n_head=n_head, n_layer=n_layer, dropout=dropout, n_codebooks=n_codebooks,
                           n_voice_layer=n_voice_layer)
        d = d_model
        self.d_model = d
        self.voice_encoder = ConditioningEncoder(codebook_size, n_codebooks, voice_dim,
                                                 n_head if voice_dim % n_head == 0 else 1, n_voice_layer, dropout)
        self.register_buffer("latent_mean", torch.zeros(latent_dim))
        self.register_buffer("latent_std", torch.ones(latent_dim))
        self.input = Linear(latent_dim, d)
        self.code_embedding = nn.Embedding(codebook_size, cond_dim)  # first training stage: tokens, not AR latents
        self.cond_proj = Linear(cond_dim, d)
        self.voice_proj = Linear(voice_dim, d)
        self.time_mlp = nn.Sequential(Linear(d, d), nn.SiLU(), Linear(d, d))
        self.null_cond = nn.Parameter(torch.zeros(cond_dim))
        self.null_voice = nn.Parameter(torch.zeros(voice_dim))
        self.blocks = nn.ModuleList(ResidualAttentionBlock(d, n_head, adaptive=True, dropout=dropout) for _ in range(n_layer))
        self.ln = AdaptiveLayerNorm(d)
        self.out = Linear(d, latent_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """Codec latents ``[B, T, latent_dim]`` → the model's space."""
        return (z - self.latent_mean) / self.latent_std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.latent_std + self.latent_mean

    def cond_from_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Stage-1 conditioning: embeddings of first-codebook codes ``[B, T]``."""
        return self.code_embedding(codes)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, voice: torch.Tensor,
                valid: torch.Tensor | None = None, drop: torch.Tensor | None = None) -> torch.Tensor:
        B, T, _ = x_t.shape
        if cond.shape[1] != T:
            cond = F.interpolate(cond.transpose(1, 2), size=T, mode="linear", align_corners=False).transpose(1, 2)
        if drop is not None:
            keep = (~drop).to(cond.dtype)
            cond = cond * keep[:, None, None] + self.null_cond * (1 - keep)[:, None, None]
            voice = voice * keep[:, None] + self.null_voice * (1 - keep)[:, None]
        h = self.input(x_t) + self.cond_proj(cond.to(x_t.dtype))
        c = self.time_mlp(sinusoids(t, self.d_model).to(x_t.dtype)) + self.voice_proj(voice.to(x_t.dtype))
        valid = torch.ones(B, T, dtype=torch.bool, device=x_t.device) if valid is None else valid
        mask = padding_mask(valid)
        for block in self.blocks:
            h = block(h, mask=mask, cond=c)
        return self.out(self.ln(h, c))
