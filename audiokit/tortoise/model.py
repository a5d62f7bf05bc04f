"""Tortoise's transformers (modules only): the conditioning encoder, the autoregressive speech-token model and
CLVP. All are built from the shared block in :mod:`audiokit.nn.transformer`.

- :class:`ConditioningEncoder`: codec tokens of reference clips (all codebooks, summed embeddings) → one
  latent per clip (masked mean of a small transformer); a voice is the mean over its clips. (The original
  reads log-mel; reading the codec's tokens keeps training on the token store alone, and clips at any sample
  rate or given as ``.akc`` files reach the model the same way.)
- :class:`TortoiseAR`: GPT-2-style decoder over ``[conditioning latent ; <st> text <et> ; <ss> speech <es>]``
  (text = BPE ids, speech = the codec's first codebook), causal over the whole sequence, with a text head and
  a speech head. Its final hidden states over the speech positions are the "AR latents" the diffusion
  decoder is conditioned on.
- :class:`CLVP`: a text encoder and a speech-token encoder mapped to one normalized space, trained with a
  symmetric contrastive loss; ``score`` ranks candidate speech for a text.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.transformer import LayerNorm, Linear, ResidualAttentionBlock, masked_mean, padded_causal_mask, padding_mask


@dataclass
class TortoiseDims:
    """Sizes of the Tortoise models. ``text_vocab`` from the BPE, ``codebook_size`` from the codec."""

    text_vocab: int
    codebook_size: int
    n_codebooks: int = 8
    d_model: int = 1024
    n_head: int = 16
    n_layer: int = 30
    n_cond_layer: int = 6
    max_text: int = 400
    max_speech: int = 1000
    clvp_layer: int = 20
    clvp_dim: int = 768
    clvp_latent: int = 512
    dropout: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TortoiseDims":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown Tortoise dimensions {sorted(unknown)}")
        return cls(**d)


def framed(seqs: list[torch.Tensor], start: int | None, stop: int | None, pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``[B, L]`` ids with ``start``/``stop`` around each sequence (either may be None), and the
    validity mask."""
    rows = [torch.cat([torch.tensor([start] if start is not None else [], dtype=torch.long, device="cpu"), s.long().cpu(),
                       torch.tensor([stop] if stop is not None else [], dtype=torch.long, device="cpu")]) for s in seqs]
    L = max(len(r) for r in rows)
    ids = torch.full((len(rows), L), pad, dtype=torch.long, device="cpu")
    valid = torch.zeros(len(rows), L, dtype=torch.bool, device="cpu")
    for b, r in enumerate(rows):
        ids[b, : len(r)] = r
        valid[b, : len(r)] = True
    return ids, valid


def _blocks(d: int, h: int, n: int, dropout: float) -> nn.ModuleList:
    return nn.ModuleList(ResidualAttentionBlock(d, h, dropout=dropout) for _ in range(n))


class ConditioningEncoder(nn.Module):
    """Codes ``[N, Q, T]`` of N reference clips → latents ``[N, d]``. Clips with fewer codebooks than
    ``n_codebooks`` use what they have; more are cut."""

    def __init__(self, codebook_size: int, n_codebooks: int, d: int, n_head: int, n_layer: int, dropout: float = 0.0):
        super().__init__()
        self.codebook_size, self.n_codebooks = codebook_size, n_codebooks
        self.embedding = nn.Embedding(n_codebooks * codebook_size, d)
        nn.init.normal_(self.embedding.weight, std=d ** -0.5)
        self.conv = nn.Conv1d(d, d, 3, padding=1)
        self.blocks = _blocks(d, n_head, n_layer, dropout)
        self.ln = LayerNorm(d)

    def forward(self, codes: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
        """``frames`` ``[N]``: valid frames per clip (the rest is padding and changes nothing)."""
        codes = codes[:, : self.n_codebooks]
        N, Q, T = codes.shape
        valid = torch.ones(N, T, dtype=torch.bool, device=codes.device) if frames is None else \
            torch.arange(T, device=codes.device)[None] < frames.to(codes.device)[:, None]
        offsets = torch.arange(Q, device=codes.device)[None, :, None] * self.codebook_size
        x = self.embedding(codes + offsets).sum(1) * valid[..., None]  # padded frames read as the conv's zero padding
        x = self.conv(x.transpose(1, 2)).transpose(1, 2)
        mask = padding_mask(valid)
        for block in self.blocks:
            x = block(x, mask=mask)
        return masked_mean(self.ln(x), valid)


class TortoiseAR(nn.Module):
    """The autoregressive model. Text ids: BPE ``0 … V-1``, start ``V``, stop ``V+1``. Speech ids: codes
    ``0 … K-1``, start ``K``, stop ``K+1``."""

    def __init__(self, dims: TortoiseDims):
        super().__init__()
        self.dims = dims
        d, V, K = dims.d_model, dims.text_vocab, dims.codebook_size
        self.start_text, self.stop_text = V, V + 1
        self.start_speech, self.stop_speech = K, K + 1
        self.conditioning = ConditioningEncoder(K, dims.n_codebooks, d, dims.n_head, dims.n_cond_layer, dims.dropout)
        self.text_embedding = nn.Embedding(V + 2, d)
        self.speech_embedding = nn.Embedding(K + 2, d)
        self.text_pos = nn.Embedding(dims.max_text + 2, d)
        self.speech_pos = nn.Embedding(dims.max_speech + 2, d)
        for e in (self.text_embedding, self.speech_embedding, self.text_pos, self.speech_pos):
            nn.init.normal_(e.weight, std=0.02)
        self.blocks = _blocks(d, dims.n_head, dims.n_layer, dims.dropout)
        self.ln = LayerNorm(d)
        self.text_head = Linear(d, V + 2)
        self.speech_head = Linear(d, K + 2)

    def embed(self, cond: torch.Tensor, text: torch.Tensor, text_valid: torch.Tensor, speech: torch.Tensor,
              speech_valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs ``[B, 1 + Lt + Ls, d]`` and validity for ``[cond ; text ; speech]``: ``text``/``speech`` already
        framed with their start/stop ids, right-padded; positions count within each section."""
        if text.shape[1] > self.dims.max_text + 2 or speech.shape[1] > self.dims.max_speech + 2:
            raise ValueError(f"sequence too long for this model: {text.shape[1] - 2} text tokens (max "
                             f"{self.dims.max_text}), {speech.shape[1] - 2} speech frames (max {self.dims.max_speech})")
        t = self.text_embedding(text) + self.text_pos(torch.arange(text.shape[1], device=text.device))
        s = self.speech_embedding(speech) + self.speech_pos(torch.arange(speech.shape[1], device=speech.device))
        x = torch.cat([cond[:, None].to(t.dtype), t, s], 1)
        valid = torch.cat([torch.ones_like(text_valid[:, :1]), text_valid, speech_valid], 1)
        return x, valid

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cache=None) -> torch.Tensor:
        """Final hidden states (after the last norm) of input vectors ``x`` under ``mask``."""
        for i, block in enumerate(self.blocks):
            x = block(x, mask=mask, cache=cache.layer(i) if cache is not None else None)
        return self.ln(x)

    def losses(self, cond: torch.Tensor, text: torch.Tensor, text_valid: torch.Tensor, speech: torch.Tensor,
               speech_valid: torch.Tensor) -> dict:
        """Teacher-forced text and speech cross-entropies, speech accuracy, and the AR latents.

        ``text``/``speech`` framed with start/stop ids and right-padded; the speech latents ``[B, Ls, d]`` are the
        hidden states *at* each speech input position (the state that predicts the next frame).
        """
        x, valid = self.embed(cond, text, text_valid, speech, speech_valid)
        h = self(x, padded_causal_mask(valid))
        Lt = text.shape[1]
        ht, hs = h[:, 1 : 1 + Lt], h[:, 1 + Lt :]
        tl = self.text_head(ht[:, :-1]).float()
        sl = self.speech_head(hs[:, :-1]).float()
        t_tgt = text[:, 1:].masked_fill(~text_valid[:, 1:], -100)
        s_tgt = speech[:, 1:].masked_fill(~speech_valid[:, 1:], -100)
        text_loss = F.cross_entropy(tl.transpose(1, 2), t_tgt, ignore_index=-100)
        speech_loss = F.cross_entropy(sl.transpose(1, 2), s_tgt, ignore_index=-100)
        keep = s_tgt != -100
        acc = (sl.argmax(-1) == s_tgt)[keep].float().mean()
        return {"text_loss": text_loss, "speech_loss": speech_loss, "speech_acc": acc, "latents": hs}


class _SequenceEncoder(nn.Module):
    def __init__(self, vocab: int, dims: TortoiseDims, max_len: int):
        super().__init__()
        d = dims.clvp_dim
        self.embedding = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(max_len, d)
        nn.init.normal_(self.embedding.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)
        self.blocks = _blocks(d, max(1, d // 64), dims.clvp_layer, dims.dropout)
        self.ln = LayerNorm(d)
        self.project = Linear(d, dims.clvp_latent, bias=False)

    def forward(self, ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if ids.shape[1] > self.pos.num_embeddings:
            raise ValueError(f"{ids.shape[1]} tokens; CLVP takes at most {self.pos.num_embeddings}")
        x = self.embedding(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))
        mask = padding_mask(valid)
        for block in self.blocks:
            x = block(x, mask=mask)
        return F.normalize(self.project(masked_mean(self.ln(x), valid)).float(), dim=-1)


class CLVP(nn.Module):
    """Contrastive text/speech model: ``loss`` trains it, ``score`` ranks speech-token candidates for a text."""

    def __init__(self, dims: TortoiseDims):
        super().__init__()
        self.dims = dims
        self.text = _SequenceEncoder(dims.text_vocab, dims, dims.max_text)
        self.speech = _SequenceEncoder(dims.codebook_size, dims, dims.max_speech)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's learned temperature

    def embed(self, text, text_valid, speech, speech_valid) -> tuple[torch.Tensor, torch.Tensor]:
        return self.text(text, text_valid), self.speech(speech, speech_valid)

    def loss(self, text, text_valid, speech, speech_valid, negatives: torch.Tensor | None = None,
             negatives_valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Symmetric InfoNCE over the batch's pairs, and retrieval accuracy (text → its own speech).

        ``negatives`` ``[N, T']`` (``negatives_valid``): more speech for each text to be told apart from, beyond
        the batch's other utterances — hard negatives such as its own speech with a word dropped, repeated or
        swapped (:func:`~audiokit.tortoise.lightning.corrupt_speech`), which is what CLVP must rank at inference:
        candidates for *one* text that differ in a word."""
        t, s = self.embed(text, text_valid, speech, speech_valid)
        scale = self.log_scale.clamp(max=math.log(100)).exp()
        logits = scale * t @ s.T
        target = torch.arange(len(t), device=t.device)
        to_speech = logits
        if negatives is not None:
            to_speech = torch.cat([logits, scale * t @ self.speech(negatives, negatives_valid).T], 1)
        loss = (F.cross_entropy(to_speech, target) + F.cross_entropy(logits.T, target)) / 2
        return loss, (logits.argmax(-1) == target).float().mean()

    @torch.inference_mode()
    def score(self, text, text_valid, speech, speech_valid) -> torch.Tensor:
        """Cosine similarity of each text row with the speech row beside it ``[B]``."""
        t, s = self.embed(text, text_valid, speech, speech_valid)
        return (t * s).sum(-1)
