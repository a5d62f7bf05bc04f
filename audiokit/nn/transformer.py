"""The shared transformer: pre-LN blocks, ``scaled_dot_product_attention``, and an explicit KV cache.

One implementation serves every transformer in audiokit (the ASR encoder and decoder, VALL-E's AR and NAR;
Tortoise later). Module names (``attn.query/key/value/out``, ``attn_ln``, ``cross_attn``, ``mlp.0/2``, ``mlp_ln``)
follow Whisper's checkpoint layout, so official weights load without renaming.

The cache is an object passed in and returned, not hooks on Linear layers: it holds, per block, the
self-attention keys/values written so far (in a preallocated buffer that grows by doubling) and the
cross-attention keys/values computed once per audio. ``KVCache.reorder`` selects batch rows (beam search).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the input dtype (as Whisper does), cast back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = None if self.weight is None else self.weight.float()
        b = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).type(x.dtype)


class Linear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight.to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))


@dataclass
class _LayerCache:
    k: torch.Tensor | None = None  # [B, H, capacity, D]
    v: torch.Tensor | None = None
    length: int = 0
    cross_k: torch.Tensor | None = None  # [B, H, S, D]
    cross_v: torch.Tensor | None = None
    #: ragged writing: row b's new keys/values go to positions write_at[b]... (set per call by the caller, who
    #: also masks every row's attention to its own positions); None: all rows append at ``length``
    write_at: list[int] | None = None
    #: the same positions as a ``[B, T]`` index (``write_at[b] + t``), made once per call for all layers
    write_pos: torch.Tensor | None = None


@dataclass
class KVCache:
    """Keys and values of every block, for incremental decoding. Start with ``KVCache()``."""

    layers: dict[int, _LayerCache] = field(default_factory=dict)

    def layer(self, i: int) -> _LayerCache:
        if i not in self.layers:
            self.layers[i] = _LayerCache()
        return self.layers[i]

    @property
    def length(self) -> int:
        """Positions already written (the offset of the next token)."""
        return next(iter(self.layers.values())).length if self.layers else 0

    def truncate(self, length: int) -> None:
        """Forget every position from ``length`` on (drafted tokens that were not accepted)."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot truncate a cache of {self.length} positions to {length}")
        for c in self.layers.values():
            c.length = length

    def reorder(self, index: torch.Tensor, cross: bool = True, self_attention: bool = True) -> None:
        """Keep batch rows ``index`` (e.g. the surviving beams), in that order.

        ``cross=False`` leaves the cross-attention rows alone: beams of one utterance share them (queries of
        ``G`` beams attend to one row of keys/values), so only dropping whole utterances touches them.
        """
        names = (("k", "v") if self_attention else ()) + (("cross_k", "cross_v") if cross else ())
        for c in self.layers.values():
            for name in names:
                t = getattr(c, name)
                if t is not None:
                    index = index.to(t.device)
                    if not t.is_contiguous() and t.transpose(-1, -2).is_contiguous():  # keep a [.., D, S] layout
                        setattr(c, name, t.transpose(-1, -2).index_select(0, index).transpose(-1, -2))
                    else:
                        setattr(c, name, t.index_select(0, index))


class MultiHeadAttention(nn.Module):
    def __init__(self, n_state: int, n_head: int):
        super().__init__()
        if n_state % n_head:
            raise ValueError(f"width {n_state} is not divisible by {n_head} heads")
        self.n_head = n_head
        self.query = Linear(n_state, n_state)
        self.key = Linear(n_state, n_state, bias=False)
        self.value = Linear(n_state, n_state)
        self.out = Linear(n_state, n_state)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        return x.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)

    def forward(self, x: torch.Tensor, source: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                causal: bool = False, cache: _LayerCache | None = None) -> torch.Tensor:
        """Self-attention (``source`` None) or cross-attention over ``source``.

        With a cache, self-attention appends this call's keys/values and attends over everything written;
        cross-attention computes ``source``'s keys/values once and reuses them.
        """
        q = self._split(self.query(x))
        if source is None:
            k, v = self._split(self.key(x)), self._split(self.value(x))
            if cache is not None:
                k, v = _append(cache, k, v)
        elif cache is not None and cache.cross_k is not None:
            k, v = cache.cross_k, cache.cross_v
        else:
            k, v = self._split(self.key(source)), self._split(self.value(source))
            if cache is not None:
                if k.device.type == "cpu":  # stored [.., D, S] in memory: the few-query product reads it in order
                    k, v = k.transpose(-1, -2).contiguous().transpose(-1, -2), v.contiguous()
                cache.cross_k, cache.cross_v = k, v
        if source is not None and k.shape[0] != q.shape[0]:
            return self._grouped(q, k, v)
        if source is not None and cache is not None and _few_queries(q):
            out = _few_query_attention(q, k, v)
        else:
            if causal and mask is None:
                T, S = q.shape[2], k.shape[2]
                if T > 1:  # queries sit at the last T of S positions
                    mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(S - T)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        B, H, T, D = out.shape
        return self.out(out.transpose(1, 2).reshape(B, T, H * D))


    def _grouped(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Cross-attention where each of ``k``'s rows serves ``G`` consecutive query rows (beams/samples)."""
        N, H, T, D = q.shape
        A = k.shape[0]
        if N % A:
            raise ValueError(f"{N} query rows cannot share {A} rows of keys")
        G = N // A
        q = q.view(A, G, H, T, D).transpose(1, 2).reshape(A, H, G * T, D)
        # no mask: every query sees the whole source
        out = _few_query_attention(q, k, v) if _few_queries(q) else F.scaled_dot_product_attention(q, k, v)
        out = out.view(A, H, G, T, D).permute(0, 2, 3, 1, 4).reshape(N, T, H * D)
        return self.out(out)


def _few_queries(q: torch.Tensor) -> bool:
    return q.device.type == "cpu" and q.shape[2] <= 32 and not torch.is_grad_enabled()


def _few_query_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Unmasked attention of a few queries over a long source (a decoding step's cross-attention) as two
    batched products: on a CPU, ~15 % faster than the flash kernel, which is built for blocks of queries."""
    scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-1, -2))
    return torch.matmul(scores.softmax(-1), v)


def padded_causal_mask(valid: torch.Tensor) -> torch.Tensor:
    """Boolean ``[B, 1, S, S]`` mask (True = may attend) for causal attention over rows whose padding
    (``valid`` False) may sit anywhere: each position sees the valid positions at or before it, and itself."""
    S = valid.shape[1]
    earlier = torch.ones(S, S, dtype=torch.bool, device=valid.device).tril()
    allowed = (earlier[None] & valid[:, None, :]) | torch.eye(S, dtype=torch.bool, device=valid.device)
    return allowed[:, None]


def padding_mask(valid: torch.Tensor) -> torch.Tensor:
    """Boolean ``[B, 1, 1, S]`` mask for full attention over the valid positions (``valid`` ``[B, S]``; every
    row needs at least one)."""
    return valid[:, None, None, :]


def masked_mean(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` ``[B, S, C]`` over the positions where ``valid`` ``[B, S]`` holds."""
    w = valid.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(1) / w.sum(1).clamp(min=1)


def _append(cache: _LayerCache, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    B, H, T, D = k.shape
    starts = cache.write_at
    need = cache.length + T if starts is None else max(starts) + T
    if cache.k is None or cache.k.shape[2] < need or cache.k.shape[0] != B:
        capacity = max(need, 2 * (cache.k.shape[2] if cache.k is not None else 32))
        # zeros, not empty: ragged rows attend over never-written positions with a mask, and a masked NaN of
        # uninitialized memory would still poison the output (0 x NaN)
        new_k = k.new_zeros(B, H, capacity, D)
        new_v = v.new_zeros(B, H, capacity, D)
        if cache.k is not None and cache.length:
            new_k[:, :, : cache.length] = cache.k[:, :, : cache.length]
            new_v[:, :, : cache.length] = cache.v[:, :, : cache.length]
        cache.k, cache.v = new_k, new_v
    if starts is None:
        cache.k[:, :, cache.length : need] = k
        cache.v[:, :, cache.length : need] = v
    else:  # one scatter per tensor, not a copy per row
        index = cache.write_pos[:, None, :, None].expand(B, H, T, D)
        cache.k.scatter_(2, index, k)
        cache.v.scatter_(2, index, v)
    cache.length = need
    return cache.k[:, :, :need], cache.v[:, :, :need]


class AdaptiveLayerNorm(nn.Module):
    """``scale(c) * LayerNorm(x) + shift(c)``: a layer norm whose affine part comes from a condition vector
    ``c`` ``[B, n_state]`` (VALL-E's NAR injects its stage this way, in every block and the final norm)."""

    def __init__(self, n_state: int, eps: float = 1e-5):
        super().__init__()
        self.n_state, self.eps = n_state, eps
        self.project = Linear(n_state, 2 * n_state)
        nn.init.zeros_(self.project.weight)  # starts as a plain LayerNorm: scale 1, shift 0
        with torch.no_grad():
            self.project.bias.copy_(torch.cat([torch.ones(n_state), torch.zeros(n_state)]))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.project(cond).unsqueeze(1).chunk(2, dim=-1)  # [B, 1, C] each
        h = F.layer_norm(x.float(), (self.n_state,), eps=self.eps).type(x.dtype)
        return scale * h + shift


class ResidualAttentionBlock(nn.Module):
    """Pre-LN block: self-attention, optional cross-attention, 4x GELU MLP.

    ``adaptive=True`` makes the norms :class:`AdaptiveLayerNorm` (``forward`` then needs ``cond``);
    ``dropout`` applies to each residual branch while training.
    """

    def __init__(self, n_state: int, n_head: int, cross_attention: bool = False, adaptive: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        norm = AdaptiveLayerNorm if adaptive else LayerNorm
        self.attn = MultiHeadAttention(n_state, n_head)
        self.attn_ln = norm(n_state)
        self.cross_attn = MultiHeadAttention(n_state, n_head) if cross_attention else None
        self.cross_attn_ln = norm(n_state) if cross_attention else None
        self.mlp = nn.Sequential(Linear(n_state, 4 * n_state), nn.GELU(), Linear(4 * n_state, n_state))
        self.mlp_ln = norm(n_state)
        self.adaptive = adaptive
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()

    def _norm(self, ln: nn.Module, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        return ln(x, cond) if self.adaptive else ln(x)

    def forward(self, x: torch.Tensor, source: torch.Tensor | None = None, causal: bool = False,
                cache: _LayerCache | None = None, mask: torch.Tensor | None = None,
                cond: torch.Tensor | None = None, source_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``source_mask``: which of ``source``'s positions each query may attend to (``[B, 1, 1, S]``, as
        :func:`padding_mask` makes for a padded source); none means all."""
        if self.adaptive and cond is None:
            raise ValueError("an adaptive-norm block needs its condition (cond)")
        x = x + self.drop(self.attn(self._norm(self.attn_ln, x, cond), mask=mask, causal=causal, cache=cache))
        if self.cross_attn is not None:
            x = x + self.drop(self.cross_attn(self._norm(self.cross_attn_ln, x, cond), source=source, cache=cache,
                                              mask=source_mask))
        return x + self.drop(self.mlp(self._norm(self.mlp_ln, x, cond)))
