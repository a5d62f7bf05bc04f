"""Exact greedy decoding, several tokens per forward pass: draft, verify, keep what the model agrees with.

Plain greedy decoding runs the model once per token. Here each pass feeds the next token (known exactly) plus
``k`` *drafted* tokens; the model's greedy prediction at every fed position is computed in that one pass, and
the drafts are accepted up to the first disagreement. The prediction after the last accepted token is exact
too, so a pass yields between 1 and ``k + 1`` tokens and the result is the plain greedy sequence: a draft is
kept only where it equals what greedy decoding would have chosen after the same prefix.

Drafts cost nothing to make:

* **n-gram lookup** (prompt lookup): the most recent earlier occurrence of the last ``n`` tokens of the
  history (prompt + output), for ``n`` from ``max_n`` down to 1, proposes the tokens that followed it. Codec
  tokens repeat a lot (silence, held vowels, a speaker's recurring sounds in the prompt).
* **Jacobi**: the predictions of the previous pass *beyond* the accepted prefix. They were made after a wrong
  draft token, but they are the next Jacobi iterate of the block, and are often right again.

A pass over ``k + 1`` tokens costs little more than a pass over one while decoding is bound by reading the
weights and the cache (small batches), which is where the speed-up comes from.
"""
from __future__ import annotations

import torch

DRAFT_MODES = ("ngram", "jacobi", "ngram+jacobi")


def ngram_draft(history: list[int], k: int, max_n: int = 3) -> list[int]:
    """Up to ``k`` tokens that followed the latest earlier occurrence of the longest suffix (``max_n`` … 1
    tokens) of ``history``; ``[]`` if none recurs."""
    L = len(history)
    for n in range(min(max_n, L - 1), 0, -1):
        tail = history[L - n:]
        for start in range(L - n - 1, -1, -1):  # latest occurrence first, excluding the suffix itself
            if history[start : start + n] == tail:
                return history[start + n : start + n + k]
    return []


def make_drafts(histories: list[list[int]], leftovers: list[list[int]], k: int, mode: str = "ngram+jacobi",
                max_n: int = 3) -> torch.Tensor:
    """``[B, k]`` draft tokens, one row per history. ``mode``: ``"ngram"``, ``"jacobi"`` (``leftovers``: the
    previous pass's predictions past its accepted prefix) or ``"ngram+jacobi"`` (the n-gram draft where the
    history has a recurring n-gram, else the leftovers). Short drafts are padded by repeating their last token
    (or the history's)."""
    if mode not in DRAFT_MODES:
        raise ValueError(f"unknown draft mode {mode!r}: one of {', '.join(DRAFT_MODES)}")
    rows = []
    for hist, left in zip(histories, leftovers):
        d = ngram_draft(hist, k, max_n) if mode != "jacobi" else []
        if mode != "ngram" and not d:
            d = list(left[:k])
        if len(d) < k:
            d = d + [d[-1] if d else hist[-1]] * (k - len(d))
        rows.append(d[:k])
    return torch.tensor(rows, dtype=torch.long, device="cpu").reshape(len(histories), k)


def accepted(drafts: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
    """Per row, how many leading drafts match: ``drafts`` ``[B, k]``, ``predictions`` ``[B, k + 1]``
    (the model's choice after the known token and after each draft); draft ``j`` is right when it equals the
    prediction made before it, ``predictions[:, j]``."""
    match = (drafts == predictions[:, :-1]).long()
    return match.cumprod(-1).sum(-1)


def block_causal_mask(valid_before: torch.Tensor, new: int) -> torch.Tensor:
    """``[B, 1, new, S + new]`` attention mask for ``new`` tokens appended after ``S`` cached positions:
    each sees the valid cached positions (``valid_before`` ``[B, S]``) and the new tokens up to itself."""
    B, S = valid_before.shape
    tri = torch.ones(new, new, dtype=torch.bool, device=valid_before.device).tril()
    return torch.cat([valid_before[:, None, :].expand(B, new, S), tri.expand(B, new, new)], -1)[:, None]
