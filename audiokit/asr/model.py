"""The Whisper-style encoder-decoder. ``ModelDimensions`` is also the checkpoint's configuration."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.transformer import KVCache, LayerNorm, ResidualAttentionBlock


@dataclass(frozen=True)
class ModelDimensions:
    n_mels: int = 80
    n_audio_ctx: int = 1500
    n_audio_state: int = 384
    n_audio_head: int = 6
    n_audio_layer: int = 4
    n_vocab: int = 51865
    n_text_ctx: int = 448
    n_text_state: int = 384
    n_text_head: int = 6
    n_text_layer: int = 4
    n_ctc_vocab: int = 0  # an auxiliary CTC head over UTF-8 bytes (256 + blank = 257); 0 = none (official Whisper)

    def to_dict(self) -> dict:
        """The fields; without a CTC head exactly Whisper's ten (openai-whisper's ``ModelDimensions(**d)`` takes them)."""
        d = asdict(self)
        if not d["n_ctc_vocab"]:
            del d["n_ctc_vocab"]
        return d


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    """Sinusoidal positions ``[length, channels]`` (sines then cosines, log-spaced timescales)."""
    if channels % 2:
        raise ValueError("sinusoidal positions need an even number of channels")
    inc = math.log(max_timescale) / (channels // 2 - 1)
    inv = torch.exp(-inc * torch.arange(channels // 2, device="cpu"))
    t = torch.arange(length, device="cpu")[:, None] * inv[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1)


class AudioEncoder(nn.Module):
    """Log-mel ``[B, n_mels, 2·n_ctx]`` → features ``[B, n_ctx, n_state]``."""

    def __init__(self, n_mels: int, n_ctx: int, n_state: int, n_head: int, n_layer: int):
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, n_state, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(n_state, n_state, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", sinusoids(n_ctx, n_state))
        self.blocks = nn.ModuleList(ResidualAttentionBlock(n_state, n_head) for _ in range(n_layer))
        self.ln_post = LayerNorm(n_state)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.shape[0] > 1 and mel.device.type == "cpu" and not torch.is_grad_enabled():
            # Inference on a CPU: one window at a time, bitwise the same. A batch's intermediates ([8 x 1500, 1536]
            # float32 is 74 MB for Whisper tiny) exceed the C allocator's mmap threshold (at most 32 MB), so each
            # is a fresh mapping whose pages fault in on first touch; a window's are reused from the heap
            # (8 windows of tiny: 1.38 -> 1.07 s on 2 cores).
            return torch.cat([self._encode(m[None]) for m in mel])
        return self._encode(mel)

    def _encode(self, mel: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).permute(0, 2, 1)
        if x.shape[1] > self.positional_embedding.shape[0]:
            raise ValueError(f"audio of {x.shape[1]} encoder frames exceeds the model's {self.positional_embedding.shape[0]}")
        x = (x + self.positional_embedding[: x.shape[1]]).to(x.dtype)
        for block in self.blocks:
            x = block(x)
        return self.ln_post(x)


class TextDecoder(nn.Module):
    """Tokens ``[B, T]`` + audio features → logits ``[B, T, n_vocab]`` (output tied to the token embedding)."""

    def __init__(self, n_vocab: int, n_ctx: int, n_state: int, n_head: int, n_layer: int):
        super().__init__()
        self.token_embedding = nn.Embedding(n_vocab, n_state)
        # small embeddings: the output layer is tied to them, and N(0, 1) rows would start with logits of std sqrt(width)
        nn.init.normal_(self.token_embedding.weight, std=n_state ** -0.5)
        self.positional_embedding = nn.Parameter(torch.empty(n_ctx, n_state))
        nn.init.normal_(self.positional_embedding, std=0.01)
        self.blocks = nn.ModuleList(ResidualAttentionBlock(n_state, n_head, cross_attention=True) for _ in range(n_layer))
        self.ln = LayerNorm(n_state)

    def forward(self, tokens: torch.Tensor, audio_features: torch.Tensor, cache: KVCache | None = None,
                positions: list[int] | None = None, offsets: list[int] | None = None) -> torch.Tensor:
        """Logits at every position, or only at ``positions`` (the vocabulary projection is the costly part)."""
        return self.project(self.states(tokens, audio_features, cache, positions, offsets))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Final states ``[..., n_state]`` → float32 logits ``[..., n_vocab]`` (the output tied to the embedding)."""
        return (x @ self.token_embedding.weight.to(x.dtype).T).float()

    def states(self, tokens: torch.Tensor, audio_features: torch.Tensor, cache: KVCache | None = None,
               positions: list[int] | None = None, offsets: list[int] | None = None) -> torch.Tensor:
        """The final layer-normed states ``[B, T, n_state]`` that :meth:`project` turns into logits.

        ``offsets`` (with a cache): row ``b``'s tokens sit at positions ``offsets[b]``... and see the cache only
        up to there, so the rows of a batch can be at different lengths (drafted decoding accepts a different
        number of tokens per row); without, every row continues at the cache's length.
        """
        T = tokens.shape[-1]
        n_ctx = self.positional_embedding.shape[0]
        mask = pos = None
        if offsets is None:
            offset = cache.length if cache is not None else 0
            if offset + T > n_ctx:
                raise ValueError(f"{offset + T} tokens exceed the decoder's context of {n_ctx}")
            x = self.token_embedding(tokens) + self.positional_embedding[offset : offset + T]
        else:
            if cache is None or len(offsets) != tokens.shape[0]:
                raise ValueError("offsets need a cache and one offset per row")
            if max(offsets) + T > n_ctx:
                raise ValueError(f"{max(offsets) + T} tokens exceed the decoder's context of {n_ctx}")
            pos = torch.tensor(offsets, device=tokens.device)[:, None] + torch.arange(T, device=tokens.device)
            x = self.token_embedding(tokens) + self.positional_embedding[pos]
            mask = (torch.arange(max(offsets) + T, device=tokens.device) <= pos[:, :, None])[:, None]  # [B, 1, T, S]
        x = x.to(audio_features.dtype)
        for i, block in enumerate(self.blocks):
            layer = cache.layer(i) if cache is not None else None
            if layer is not None:
                layer.write_at, layer.write_pos = offsets, pos
            x = block(x, source=audio_features, causal=True, cache=layer, mask=mask)
            if layer is not None:
                layer.write_at = layer.write_pos = None
        if positions is not None:
            x = x[:, positions]
        return self.ln(x)


CTC_BYTES = 256  # the CTC head's symbols: UTF-8 bytes 0..255, then the blank


class ASRModel(nn.Module):
    """Whisper's encoder-decoder; with ``dims.n_ctc_vocab`` also a CTC head on the encoder over the UTF-8 bytes of
    the text (the blank last), trained beside the decoder and used to rescore beam search's candidates."""

    def __init__(self, dims: ModelDimensions):
        super().__init__()
        if dims.n_ctc_vocab not in (0, CTC_BYTES + 1):
            raise ValueError(f"n_ctc_vocab is {dims.n_ctc_vocab}: 0 (no CTC head) or {CTC_BYTES + 1} (UTF-8 bytes + blank)")
        self.dims = dims
        self.encoder = AudioEncoder(dims.n_mels, dims.n_audio_ctx, dims.n_audio_state, dims.n_audio_head, dims.n_audio_layer)
        self.decoder = TextDecoder(dims.n_vocab, dims.n_text_ctx, dims.n_text_state, dims.n_text_head, dims.n_text_layer)
        self.ctc_head = nn.Linear(dims.n_audio_state, dims.n_ctc_vocab) if dims.n_ctc_vocab else None

    def embed_audio(self, mel: torch.Tensor) -> torch.Tensor:
        return self.encoder(mel)

    def ctc_log_probs(self, audio_features: torch.Tensor) -> torch.Tensor:
        """Encoder features ``[B, T, n_audio_state]`` → float32 log-probabilities ``[B, T, 257]`` of the CTC head."""
        if self.ctc_head is None:
            raise ValueError("this model has no CTC head (dims.n_ctc_vocab is 0)")
        return self.ctc_head(audio_features).float().log_softmax(-1)

    def ctc_score(self, audio_features: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """log P_CTC(text | window) of each text against one window's features ``[T, n_audio_state]`` (or its
        log-probabilities ``[T, 257]``): the texts' UTF-8 bytes after a space, as training aligned them; ``-inf``
        where a text has more bytes than the window has frames."""
        lp = audio_features if audio_features.shape[-1] == CTC_BYTES + 1 else self.ctc_log_probs(audio_features[None])[0]
        targets = [list((" " + t.strip()).encode("utf-8")) for t in texts]
        T, N = lp.shape[0], len(texts)
        flat = torch.tensor([b for ids in targets for b in ids], dtype=torch.long, device=lp.device)
        nll = F.ctc_loss(lp[:, None].expand(T, N, lp.shape[-1]), flat,
                         torch.full((N,), T, dtype=torch.long, device=lp.device),
                         torch.tensor([len(ids) for ids in targets], device=lp.device),
                         blank=CTC_BYTES, reduction="none", zero_infinity=False)
        return -nll

    def logits(self, tokens: torch.Tensor, audio_features: torch.Tensor, cache: KVCache | None = None,
               positions: list[int] | None = None, offsets: list[int] | None = None) -> torch.Tensor:
        return self.decoder(tokens, audio_features, cache, positions, offsets)

    def forward(self, mel: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.decoder(tokens, self.encoder(mel))

    @property
    def is_multilingual(self) -> bool:
        return self.dims.n_vocab >= 51865

    @property
    def num_languages(self) -> int:
        return self.dims.n_vocab - 51765 - int(self.is_multilingual)
