"""Next-token sampling shared by the autoregressive decoders: temperature, top-k, top-p (nucleus), and
repetition-aware resampling (VALL-E 2's remedy for a codec language model stuck in a loop)."""
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


def repetition_aware(tokens: torch.Tensor, logits: torch.Tensor, histories: list[list[int]], window: int,
                     threshold: float, temperature: float = 1.0,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Repetition-aware sampling (VALL-E 2, as CosyVoice decodes): a row whose drawn token already makes up at
    least ``threshold`` of the last ``window`` tokens of its history is drawn again from the whole tempered
    distribution (no top-k/top-p), which lets a model that keeps choosing the same few codes leave the loop
    while an unrepeated draw keeps the filtered one. ``tokens`` ``[B]``: the draws; ``logits`` ``[B, V]``;
    ``histories``: each row's tokens so far. Returns the tokens (a new tensor where any row was redrawn)."""
    if window < 1 or not 0 < threshold <= 1:
        raise ValueError(f"repetition window must be >= 1 and threshold in (0, 1], got {window}, {threshold}")
    need = max(1, round(window * threshold))
    stuck = [i for i, (t, h) in enumerate(zip(tokens.tolist(), histories)) if h[-window:].count(t) >= need]
    if not stuck:
        return tokens
    probs = (logits[stuck].float() / max(temperature, 1e-5)).softmax(-1)
    tokens = tokens.clone()
    tokens[stuck] = torch.multinomial(probs.cpu(), 1, generator=generator)[:, 0].to(tokens.device)
    return tokens


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


class Spelling:
    """Monotonic decoding along known token sequences: row ``r`` must spell ``scripts[r]`` in order, with at most
    one ``pause`` token between two entries (and before the first, after the last), and may ``stop`` only once
    the whole script is spelled. VALL-E R's phoneme-monotonic alignment for an AR whose tokens *are* phones
    (phone units: the transcript's phones are known before decoding): the model still chooses where to pause
    (and, sampling, each candidate's pauses), but cannot skip, repeat or jump back — the failures of a small AR
    that loses its place in a long sentence. Use: :meth:`restrict` the step's logits (in place) before drawing."""

    def __init__(self, scripts: list, pause: int, stop: int):
        self.scripts = [[int(t) for t in s] for s in scripts]
        if any(pause in s or stop in s for s in self.scripts):
            raise ValueError("a script may not hold the pause or stop token")
        self.pause, self.stop = int(pause), int(stop)
        self._at = [0] * len(self.scripts)  # script entries spelled so far, per row
        self._seen = [0] * len(self.scripts)  # output tokens counted so far, per row

    def position(self, row: int, out: list[int]) -> int:
        """How much of row ``row``'s script ``out`` (its output so far) has spelled."""
        for t in out[self._seen[row]:]:
            self._at[row] += t != self.pause
        self._seen[row] = len(out)
        return self._at[row]

    def restrict(self, logits: torch.Tensor, rows: torch.Tensor, out: list[list[int]]) -> torch.Tensor:
        """Set to -inf (in place) every logit of live row ``i`` (original row ``rows[i]``, output ``out[rows[i]]``)
        but its script's next entry (or ``stop`` when it is spelled) and ``pause`` (unless its last token was one)."""
        allowed = torch.zeros_like(logits, dtype=torch.bool)
        for i, r in enumerate(rows.tolist()):
            script, at = self.scripts[r], self.position(r, out[r])
            allowed[i, script[at] if at < len(script) else self.stop] = True
            if not out[r] or out[r][-1] != self.pause:
                allowed[i, self.pause] = True
        return logits.masked_fill_(~allowed, float("-inf"))
