"""Next-token sampling shared by the autoregressive decoders: temperature, top-k, top-p (nucleus)."""
from __future__ import annotations

import torch


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Set to -inf every logit outside the ``top_k`` largest and outside the smallest set whose probability
    reaches ``top_p``; the most likely token always survives. ``logits``: ``[..., V]``."""
    if top_k is not None and 0 < top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and 0 < top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) >= top_p  # mass before this token already reaches top_p
        drop[..., 0] = False
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def sample(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row of ``logits`` ``[B, V]``: argmax at temperature 0, else a draw from the filtered,
    tempered distribution (with ``generator``, reproducible; it lives on the CPU, so draws are the same on
    every device)."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(-1)
    probs = filter_logits(logits.float() / temperature, top_k, top_p).softmax(-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator)[:, 0].to(logits.device)


def forbid_early_stop(logits: torch.Tensor, rows: torch.Tensor, out: list[list[int]], stop: int, min_lengths,
                      offset: int = 0) -> None:
    """Mask the ``stop`` token (in place) for every live row whose output is still shorter than
    ``min_lengths[row]``: a weak or unlucky model cannot end a sentence before it has said anything.
    ``offset``: the logits are for the token ``offset`` places after the end of ``out`` (drafted decoding)."""
    short = torch.tensor([len(out[r]) + offset < int(min_lengths[r]) for r in rows.tolist()], device=logits.device)
    if short.any():
        logits[short, stop] = float("-inf")


def append_step(out: list[list[int]], rows: torch.Tensor, tokens: torch.Tensor, stop: int, limits) -> torch.Tensor:
    """Bookkeeping of a batched decoding step: live row ``i`` is original row ``rows[i]``; its new token joins
    ``out[rows[i]]`` unless it is ``stop``. Returns which live rows are finished (stop token, or
    ``limits[row]`` tokens reached)."""
    done = torch.zeros(len(rows), dtype=torch.bool, device="cpu")
    for i, (r, t) in enumerate(zip(rows.tolist(), tokens.tolist())):
        if t == stop:
            done[i] = True
        else:
            out[r].append(t)
            done[i] = len(out[r]) >= int(limits[r])
    return done
