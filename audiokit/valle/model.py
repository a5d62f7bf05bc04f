"""VALL-E's two transformers (modules only; training is in ``lightning.py``, decoding in ``generate.py``).

Both read one sequence that mixes phonemes and codec frames. Each position has a *kind* (``PAD``, ``TEXT``,
``AUDIO``) and a position index counted within its kind, so text and audio have separate embeddings and
separate sinusoidal positions, and any layout works: right-padded sections while training, a left-padded
prompt so a batch's new frames stay aligned with a KV cache while decoding.

- :class:`ValleAR`: decoder-only; text attends to text (bidirectionally), audio attends to all text and to
  earlier audio. It predicts codebook 1 and an end token, one frame at a time.
- :class:`ValleNAR`: full attention; predicts codebook ``k`` (2 … Q) of the target from the phonemes, every
  codebook of the acoustic prompt and the sum of the target's codebooks ``< k``. The stage enters through
  adaptive layer norm in every block and the final norm; the output layer of stage ``k`` is the embedding
  table of codebook ``k`` (shared weights, as in the paper).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from ..nn.transformer import AdaptiveLayerNorm, LayerNorm, Linear, ResidualAttentionBlock, padding_mask
from ..codec.units import UnitsError
from ..text.phonemes import PHONEME_VOCAB

PAD, TEXT, AUDIO = 0, 1, 2


@dataclass
class ValleDims:
    """Sizes of one VALL-E transformer (AR or NAR). ``codebook_size``/``n_codebooks`` come from the codec."""

    codebook_size: int
    n_codebooks: int
    n_phonemes: int = len(PHONEME_VOCAB)
    d_model: int = 1024
    n_head: int = 16
    n_layer: int = 12
    dropout: float = 0.1
    #: NAR: divide the tied output layer's logits by sqrt(d_model). Its weights are the codebooks' embedding tables
    #: (N(0, 1)), so unscaled logits start about sqrt(d) wide (a first loss of 45 at d = 192, and a NAR stuck at
    #: chance). New training sets it; models saved without it load as they were trained.
    scaled_logits: bool = False
    #: AR: a second start token for a prompt from *another* utterance of the speaker (a voice only: its words are
    #: not in the text), beside the first for the utterance's own prefix (its words open the text). Trained on
    #: both without it, an AR prompted by a voice alone takes the prompt for the text's first words and skips them
    #: (session 25: 47 % WER → 23 % on digits with voice-only prompts). Models saved without it load as trained.
    prompt_kinds: bool = False

    def __post_init__(self):
        if self.d_model % self.n_head:
            raise ValueError(f"d_model {self.d_model} is not divisible by {self.n_head} heads")
        if self.n_codebooks < 1 or self.codebook_size < 2:
            raise ValueError(f"a codec with {self.n_codebooks} codebooks of {self.codebook_size} codes cannot be modelled")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ValleDims":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown VALL-E dimensions {sorted(unknown)}")
        return cls(**d)


def sinusoids(pos: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embeddings of integer positions ``pos`` ``[...]`` → ``[..., dim]`` (sin half, cos half)."""
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=pos.device, dtype=torch.float32) / max(half - 1, 1))
    angle = pos.float().unsqueeze(-1) * freq
    return torch.cat([angle.sin(), angle.cos()], dim=-1)


def attention_mask(kind: torch.Tensor, causal_audio: bool) -> torch.Tensor:
    """Boolean ``[B, 1, S, S]`` mask (True = may attend) for sequences of kinds ``[B, S]``.

    Causal (AR): a text query sees the text; an audio query sees the text and audio at or before it.
    Full (NAR): every query sees every non-pad position. Each position always sees itself, so no row is
    empty (a pad row's output is never used).
    """
    B, S = kind.shape
    text_k = (kind == TEXT)[:, None, :]
    if causal_audio:
        audio_q = (kind == AUDIO)[:, :, None]
        audio_k = (kind == AUDIO)[:, None, :]
        earlier = torch.ones(S, S, dtype=torch.bool, device=kind.device).tril()
        allowed = text_k | (audio_q & audio_k & earlier)
    else:
        allowed = (kind != PAD)[:, None, :].expand(B, S, S)
    allowed = allowed | torch.eye(S, dtype=torch.bool, device=kind.device)
    return allowed[:, None]


class _Valle(nn.Module):
    """Shared parts: phoneme embedding, per-kind learned scale on the sinusoidal positions, block stack."""

    def __init__(self, dims: ValleDims, adaptive: bool):
        super().__init__()
        self.dims = dims
        d = dims.d_model
        self.text_embedding = nn.Embedding(dims.n_phonemes, d)
        self.text_alpha = nn.Parameter(torch.ones(1))
        self.audio_alpha = nn.Parameter(torch.ones(1))
        self.blocks = nn.ModuleList(
            ResidualAttentionBlock(d, dims.n_head, adaptive=adaptive, dropout=dims.dropout) for _ in range(dims.n_layer)
        )

    def _mix(self, kind: torch.Tensor, pos: torch.Tensor, text_tokens: torch.Tensor, audio_x: torch.Tensor) -> torch.Tensor:
        """Input vectors: phoneme embeddings at text positions, ``audio_x`` at audio positions, zeros at pads."""
        is_text = (kind == TEXT).unsqueeze(-1)
        is_audio = (kind == AUDIO).unsqueeze(-1)
        pe = sinusoids(pos, self.dims.d_model).to(audio_x.dtype)
        t = self.text_embedding(text_tokens.masked_fill(kind != TEXT, 0)) + self.text_alpha * pe
        a = audio_x + self.audio_alpha * pe
        return torch.where(is_text, t, torch.where(is_audio, a, torch.zeros_like(a)))


class ValleAR(_Valle):
    """Autoregressive model of codebook 1. Audio vocabulary: codes ``0 … K-1``, ``eos = K``, ``bos = K+1`` (and,
    with ``dims.prompt_kinds``, ``voice_bos = K+2`` before a prompt that is a voice only; else ``voice_bos = bos``)."""

    def __init__(self, dims: ValleDims):
        super().__init__(dims, adaptive=False)
        K = dims.codebook_size
        self.eos, self.bos = K, K + 1
        self.voice_bos = K + 2 if dims.prompt_kinds else self.bos
        self.audio_embedding = nn.Embedding(K + 2 + int(dims.prompt_kinds), dims.d_model)
        self.ln = LayerNorm(dims.d_model)
        self.head = Linear(dims.d_model, K + 1)

    def forward(self, tokens: torch.Tensor, kind: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor | None = None,
                cache=None) -> torch.Tensor:
        """Hidden states ``[B, S, d]`` of ``tokens`` ``[B, S]`` (phoneme ids at text positions, codebook-1
        codes / bos at audio positions). ``mask`` defaults to :func:`attention_mask` (causal audio); with a
        ``cache`` (``KVCache``) the keys and values are appended to it and ``mask`` covers all of them."""
        audio = self.audio_embedding(tokens.masked_fill(kind != AUDIO, 0))
        x = self._mix(kind, pos, tokens, audio)
        if mask is None:
            mask = attention_mask(kind, causal_audio=True)
        for i, block in enumerate(self.blocks):
            x = block(x, mask=mask, cache=cache.layer(i) if cache is not None else None)
        return self.ln(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(hidden).float()


class ValleNAR(_Valle):
    """Non-autoregressive model of codebooks 2 … Q, one stage per call (``stage`` = 0-based codebook index)."""

    def __init__(self, dims: ValleDims):
        if dims.n_codebooks < 2:
            raise ValueError("the NAR model needs a codec with at least 2 codebooks")
        super().__init__(dims, adaptive=True)
        Q, K, d = dims.n_codebooks, dims.codebook_size, dims.d_model
        self.audio_embeddings = nn.ModuleList(nn.Embedding(K, d) for _ in range(Q))
        self.stage_embedding = nn.Embedding(Q - 1, d)
        self.ln = AdaptiveLayerNorm(d)

    def forward(self, tokens: torch.Tensor, kind: torch.Tensor, pos: torch.Tensor, codes: torch.Tensor,
                n_sum: torch.Tensor, stage: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, S, K]`` for codebook ``stage[b]`` (1 … Q-1) at every position.

        ``tokens`` ``[B, S]``: phoneme ids at text positions. ``codes`` ``[B, Q, S]``: the codec codes at audio
        positions. ``n_sum`` ``[B, S]``: how many leading codebooks are summed into each audio position's input
        (Q for the prompt, ``stage`` for the target).
        """
        Q = self.dims.n_codebooks
        if stage.min() < 1 or stage.max() >= Q:
            raise ValueError(f"NAR stages are codebooks 1 … {Q - 1} (0-based), got {stage.tolist()}")
        audio = 0
        for j in range(Q):
            audio = audio + self.audio_embeddings[j](codes[:, j]) * (n_sum > j).unsqueeze(-1)
        x = self._mix(kind, pos, tokens, audio)
        cond = self.stage_embedding(stage - 1)
        if mask is None:
            mask = attention_mask(kind, causal_audio=False)
        for block in self.blocks:
            x = block(x, mask=mask, cond=cond)
        x = self.ln(x, cond)
        table = torch.stack([e.weight for e in self.audio_embeddings])[stage]  # [B, K, d]: tied output layer
        logits = torch.einsum("bsd,bkd->bsk", x, table.to(x.dtype)).float()
        return logits * self.dims.d_model ** -0.5 if self.dims.scaled_logits else logits


# ---------------------------------------------------------------------- VALL-E on units (valle/units.py)
@dataclass
class UnitsDecoderDims:
    """Sizes of a :class:`UnitsDecoder`: ``n_units`` units in, the codec's ``latent_dim`` out, its voice read
    from ``n_codebooks`` codebooks of ``codebook_size`` codes."""

    n_units: int
    latent_dim: int
    codebook_size: int
    n_codebooks: int
    d_model: int = 128
    n_head: int = 4
    n_layer: int = 3
    voice_dim: int = 64
    conv_kernel: int = 0  # > 0: a convolution over this many frames after each attention block (FastSpeech's FFT block)
    run_positions: bool = False  # each frame also reads how far it is from its run's start and end (up to 15)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "UnitsDecoderDims":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown units-decoder dimensions {sorted(unknown)}")
        return cls(**d)


MAX_RUN_POSITION = 15  # frames; a frame further from its run's start (or end) reads as this far


def run_positions(units: torch.Tensor, cap: int = MAX_RUN_POSITION) -> tuple[torch.Tensor, torch.Tensor]:
    """For frame units ``[B, T]``: each frame's distance in frames from the first frame of its run (a run: equal
    units in a row) and from its last, each capped at ``cap`` — where a frame sits inside its phone or unit."""
    B, T = units.shape
    idx = torch.arange(T, device=units.device).expand(B, T)
    starts = torch.ones_like(units, dtype=torch.bool)
    starts[:, 1:] = units[:, 1:] != units[:, :-1]
    since = idx - torch.where(starts, idx, torch.zeros_like(idx)).cummax(1).values
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    rev = torch.where(ends, idx, torch.full_like(idx, T)).flip(1).cummin(1).values.flip(1)
    return since.clamp(max=cap), (rev - idx).clamp(max=cap)


class _FrameConv(nn.Module):
    """A residual convolution over ``kernel`` frames (pre-norm, widening 2× then back), padding frames zeroed."""

    def __init__(self, d: int, kernel: int):
        super().__init__()
        self.ln = LayerNorm(d)
        self.conv = nn.Conv1d(d, 2 * d, kernel, padding=kernel // 2)
        self.proj = Linear(2 * d, d)

    def forward(self, h: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        x = self.ln(h).masked_fill(~valid[..., None], 0.0).transpose(1, 2)
        return h + self.proj(nn.functional.gelu(self.conv(x)).transpose(1, 2)[:, : h.shape[1]])


class UnitsDecoder(nn.Module):
    """Frame units ``[B, T]`` + a voice clip's codec codes ``[B, Q, P]`` → the codec's quantized latent.

    A transformer over the unit embeddings (plus a small sinusoidal position term), with the voice — a
    :class:`~audiokit.tortoise.model.ConditioningEncoder` over the clip's codes, one vector per item — added to
    every frame. It predicts the latent normalized by the training corpus's per-channel ``mean``/``std``
    (buffers, saved with the weights); :meth:`latents` undoes it."""

    def __init__(self, dims: UnitsDecoderDims):
        from ..tortoise.model import ConditioningEncoder

        super().__init__()
        self.dims = dims
        d = dims.d_model
        self.voice = ConditioningEncoder(dims.codebook_size, dims.n_codebooks, dims.voice_dim, 4, 1)
        self.voice_proj = Linear(dims.voice_dim, d)
        self.unit_emb = nn.Embedding(dims.n_units, d)
        self.blocks = nn.ModuleList(ResidualAttentionBlock(d, dims.n_head) for _ in range(dims.n_layer))
        if dims.conv_kernel:
            self.convs = nn.ModuleList(_FrameConv(d, dims.conv_kernel) for _ in range(dims.n_layer))
        if dims.run_positions:
            self.run_emb = nn.Embedding(2 * (MAX_RUN_POSITION + 1), d)
        self.ln = LayerNorm(d)
        self.out = Linear(d, dims.latent_dim)
        self.register_buffer("mean", torch.zeros(dims.latent_dim))
        self.register_buffer("std", torch.ones(dims.latent_dim))

    def forward(self, units: torch.Tensor, valid: torch.Tensor, voice: torch.Tensor,
                voice_frames: torch.Tensor | None = None) -> torch.Tensor:
        """Normalized latents ``[B, T, latent_dim]`` (padding positions hold whatever; ``valid`` ``[B, T]``)."""
        if int(units.max()) >= self.dims.n_units or int(units.min()) < 0:
            raise UnitsError(f"units must lie in 0 … {self.dims.n_units - 1}; got {int(units.min())} … {int(units.max())}")
        B, T = units.shape
        pos = sinusoids(torch.arange(T, device=units.device), self.dims.d_model)
        h = self.unit_emb(units) + 0.1 * pos[None] + self.voice_proj(self.voice(voice, voice_frames))[:, None]
        if self.dims.run_positions:
            since, until = run_positions(units, MAX_RUN_POSITION)
            h = h + self.run_emb(since) + self.run_emb(until + MAX_RUN_POSITION + 1)
        mask = padding_mask(valid)
        for i, block in enumerate(self.blocks):
            h = block(h, mask=mask)
            if self.dims.conv_kernel:
                h = self.convs[i](h, valid)
        return self.out(self.ln(h))

    def latents(self, units: torch.Tensor, valid: torch.Tensor, voice: torch.Tensor,
                voice_frames: torch.Tensor | None = None) -> torch.Tensor:
        """The codec's latent ``[B, latent_dim, T]`` (what :meth:`~audiokit.Codec.decode_latents` reads), zero
        where ``valid`` is False."""
        z = self(units, valid, voice, voice_frames) * self.std + self.mean
        return z.masked_fill(~valid[..., None], 0.0).transpose(1, 2)
