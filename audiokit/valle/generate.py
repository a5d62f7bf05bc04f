"""VALL-E decoding: the AR model samples codebook 1 frame by frame (KV cache, batches of sentences), then the
NAR model fills codebooks 2 … Q greedily, one stage per pass over the whole utterance.

Batch layout while decoding: ``[phonemes | pad]`` then the audio section *right-aligned*
(``[pad | bos, prompt c1]``), so every row's next frame lands at the same index and one cache serves the
batch. Rows that finish (end token or length limit) leave the batch and its cache.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..nn.sampling import Spelling, append_step, forbid_early_stop, repetition_aware, sample
from ..nn.speculative import DRAFT_MODES, accepted, block_causal_mask, make_drafts
from ..nn.transformer import KVCache
from .data import nar_inputs
from .model import AUDIO, PAD, TEXT, ValleAR, ValleNAR, attention_mask


@dataclass
class SamplingOptions:
    """AR sampling. ``temperature`` 0 is greedy; ``top_k``/``top_p`` filter before sampling; ``seed`` makes
    a result reproducible. The length limit is ``max_seconds_per_phoneme`` × phonemes (at least
    ``min_max_seconds``), since an AR model that never says "end" would otherwise babble forever; the end token
    is not sampled before ``min_length`` × that limit (a tenth by default: ~0.03 s per phoneme, a third of a
    brisk speaking rate), since one that says "end" at once would leave the sentence out.

    Greedy decoding (temperature 0) with the cache checks ``draft_tokens`` drafted frames per forward pass
    (``draft``: ``ngram``, ``jacobi`` or ``ngram+jacobi``, see :mod:`audiokit.nn.speculative`): the same
    frames as one pass per frame, in fewer passes. 0 turns it off.

    ``repetition_window`` > 0 turns on repetition-aware sampling (:func:`audiokit.nn.sampling.repetition_aware`,
    VALL-E 2): a sampled frame that already fills ``repetition_threshold`` of the row's last
    ``repetition_window`` generated frames is drawn again from the unfiltered distribution. Sampling only
    (temperature > 0); off by default."""

    temperature: float = 1.0
    top_k: int | None = 50
    top_p: float | None = None
    seed: int | None = None
    max_seconds_per_phoneme: float = 0.3
    min_max_seconds: float = 2.0
    min_length: float = 0.1
    draft_tokens: int = 8
    draft: str = "ngram+jacobi"
    repetition_window: int = 0
    repetition_threshold: float = 0.1

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not 0 <= self.min_length <= 1:
            raise ValueError(f"min_length must be a fraction in [0, 1], got {self.min_length}")
        if self.draft_tokens < 0:
            raise ValueError(f"draft_tokens must be >= 0, got {self.draft_tokens}")
        if self.repetition_window < 0 or not 0 < self.repetition_threshold <= 1:
            raise ValueError(f"repetition_window must be >= 0 and repetition_threshold in (0, 1], got "
                             f"{self.repetition_window}, {self.repetition_threshold}")
        if self.draft not in DRAFT_MODES:
            raise ValueError(f"unknown draft mode {self.draft!r}: one of {', '.join(DRAFT_MODES)}")

    def generator(self) -> torch.Generator | None:
        return torch.Generator().manual_seed(self.seed) if self.seed is not None else None

    def max_frames(self, n_phonemes: int, frame_rate: float) -> int:
        return int(max(self.min_max_seconds, self.max_seconds_per_phoneme * n_phonemes) * frame_rate)

    def draw(self, logits: torch.Tensor, histories: list[list[int]], generator: torch.Generator | None) -> torch.Tensor:
        """One sampled token per row of ``logits`` ``[B, V]`` (temperature, top-k, top-p), redrawn where it repeats
        itself in the row's ``histories`` when repetition-aware sampling is on."""
        nxt = sample(logits, self.temperature, self.top_k, self.top_p, generator)
        if self.repetition_window and self.temperature > 0:
            nxt = repetition_aware(nxt, logits, histories, self.repetition_window, self.repetition_threshold,
                                   self.temperature, generator)
        return nxt

    def min_frames(self, max_frames: int) -> int:
        """Frames before which the end token is not sampled, for a row limited to ``max_frames``."""
        return int(self.min_length * max_frames)


def _start_tokens(model: ValleAR, n: int, voice_only) -> list[int]:
    """Each row's start token: ``model.voice_bos`` where the prompt is a voice only (another utterance; its words
    are not in the text), else ``model.bos``. ``voice_only``: one bool for every row, or one per row."""
    flags = [bool(voice_only)] * n if isinstance(voice_only, bool) else [bool(v) for v in voice_only]
    if len(flags) != n:
        raise ValueError(f"voice_only has {len(flags)} entries for {n} rows")
    return [model.voice_bos if v else model.bos for v in flags]


def _prefill_layout(texts: list[torch.Tensor], prompts: list[torch.Tensor], bos: list[int], device) -> tuple[torch.Tensor, ...]:
    B = len(texts)
    Lx = max(len(t) for t in texts)
    W = 1 + max(len(p) for p in prompts)
    tokens = torch.zeros(B, Lx + W, dtype=torch.long, device="cpu")
    kind = torch.zeros_like(tokens)
    pos = torch.zeros_like(tokens)
    for b, (t, p) in enumerate(zip(texts, prompts)):
        tokens[b, : len(t)] = t
        kind[b, : len(t)] = TEXT
        pos[b, : len(t)] = torch.arange(len(t), device="cpu")
        a = torch.cat([torch.tensor([bos[b]], device="cpu"), p.cpu()])
        tokens[b, Lx + W - len(a):] = a
        kind[b, Lx + W - len(a):] = AUDIO
        pos[b, Lx + W - len(a):] = torch.arange(len(a), device="cpu")
    next_pos = torch.tensor([1 + len(p) for p in prompts], device="cpu")
    return tokens.to(device), kind.to(device), pos.to(device), next_pos.to(device)


@torch.inference_mode()
def generate_ar(model: ValleAR, texts: list[torch.Tensor], prompts: list[torch.Tensor], max_frames: list[int],
                options: SamplingOptions = SamplingOptions(), use_cache: bool = True,
                suppress_eos: bool = False, stats: dict | None = None, voice_only=False,
                spelling: Spelling | None = None) -> list[torch.Tensor]:
    """Codebook-1 frames after each prompt, one tensor per row (the end token excluded).

    ``texts``: phoneme ids (with bos/eos) per row; ``prompts``: the prompt's codebook-1 codes per row (may be
    empty); ``max_frames``: the length limit per row. ``use_cache=False`` recomputes the whole sequence at
    every step, as the common public implementations do (kept as the speed reference; greedy results are
    the same). ``suppress_eos`` forces every row to its limit (benchmarks). Greedy decoding with the cache
    drafts frames (``options.draft_tokens``). ``stats``, if given, receives ``passes`` (forward passes after
    the prompt), ``row_passes`` (the same, summed over the live rows of each pass) and ``frames``.
    ``voice_only`` (a bool, or one per row): the prompt is another utterance whose words the text does not hold
    (the voice-prompt start token of a model trained with ``prompt_kinds``; the same token otherwise).
    ``spelling`` (a :class:`~audiokit.nn.sampling.Spelling` over the rows, its stop token ``model.eos``): each row
    spells its script in order, pausing where the model chooses (phone units; one pass per frame).
    """
    if not (len(texts) == len(prompts) == len(max_frames)):
        raise ValueError("texts, prompts and max_frames must have one entry per row")
    if spelling is not None and (len(spelling.scripts) != len(texts) or spelling.stop != model.eos or suppress_eos):
        raise ValueError("a spelling needs one script per row, the model's end token, and no suppress_eos")
    stats = stats if stats is not None else {}
    if options.draft_tokens and options.temperature == 0 and use_cache and spelling is None:
        return _generate_drafted(model, texts, prompts, max_frames, options, suppress_eos, stats, voice_only)
    device = next(model.parameters()).device
    gen = options.generator()
    tokens, kind, pos, next_pos = _prefill_layout(texts, prompts, _start_tokens(model, len(texts), voice_only), device)
    B = len(texts)
    out: list[list[int]] = [[] for _ in range(B)]
    rows = torch.arange(B, device="cpu")  # original row of each live batch row
    limit = torch.tensor(max_frames, device="cpu")
    shortest = [options.min_frames(m) for m in max_frames]
    cache = KVCache() if use_cache else None
    hidden = model(tokens, kind, pos, mask=attention_mask(kind, causal_audio=True), cache=cache)[:, -1]
    stats.update(passes=0, row_passes=0)
    while True:
        logits = model.logits(hidden)
        if suppress_eos:
            logits[:, model.eos] = float("-inf")
        if spelling is None:
            forbid_early_stop(logits, rows, out, model.eos, shortest)
        else:
            spelling.restrict(logits, rows, out)
        nxt = options.draw(logits, [out[r] for r in rows.tolist()], gen)
        done = append_step(out, rows, nxt, model.eos, limit)
        if done.all():
            break
        if done.any():
            keep = (~done).nonzero()[:, 0]
            rows, nxt, next_pos = rows[keep], nxt[keep], next_pos[keep.to(device)]
            kind, tokens, pos = kind[keep.to(device)], tokens[keep.to(device)], pos[keep.to(device)]
            if cache is not None:
                cache.reorder(keep.to(device))
        stats["passes"] += 1
        stats["row_passes"] += len(rows)
        new = nxt.to(device)[:, None]
        new_kind = torch.full_like(new, AUDIO)
        new_pos = next_pos[:, None]
        kind = torch.cat([kind, new_kind], 1)
        next_pos = next_pos + 1
        if cache is not None:
            mask = (kind != PAD)[:, None, None, :]
            hidden = model(new, new_kind, new_pos, mask=mask, cache=cache)[:, -1]
        else:
            tokens, pos = torch.cat([tokens, new], 1), torch.cat([pos, new_pos], 1)
            hidden = model(tokens, kind, pos, mask=attention_mask(kind, causal_audio=True))[:, -1]
    stats["frames"] = sum(len(o) for o in out)
    return [torch.tensor(o, dtype=torch.long, device="cpu") for o in out]


def _generate_drafted(model: ValleAR, texts, prompts, max_frames, options: SamplingOptions, suppress_eos: bool,
                      stats: dict, voice_only=False) -> list[torch.Tensor]:
    """Greedy AR decoding that feeds the next frame plus ``k`` drafts per pass and keeps the agreeing prefix
    (the same frames as the plain loop). The batch accepts as many drafts as its least lucky row, so one cache
    stays aligned; a row's extra correct predictions come back as next pass's Jacobi drafts."""
    device = next(model.parameters()).device
    tokens, kind, pos, next_pos = _prefill_layout(texts, prompts, _start_tokens(model, len(texts), voice_only), device)
    B = len(texts)
    out: list[list[int]] = [[] for _ in range(B)]
    history = [p.tolist() for p in prompts]
    rows = torch.arange(B, device="cpu")
    limit = torch.tensor(max_frames, device="cpu")
    shortest = [options.min_frames(m) for m in max_frames]
    K = model.eos  # codes are 0 … K-1
    k = options.draft_tokens  # drafts in the next pass: up to draft_tokens, fewer while drafts miss
    stats.update(passes=0, row_passes=0)

    def greedy(logits: torch.Tensor, offset: int) -> torch.Tensor:
        if suppress_eos:
            logits[:, model.eos] = float("-inf")
        forbid_early_stop(logits, rows, out, model.eos, shortest, offset)
        return logits.argmax(-1).cpu()

    cache = KVCache()
    hidden = model(tokens, kind, pos, mask=attention_mask(kind, causal_audio=True), cache=cache)[:, -1]
    nxt = greedy(model.logits(hidden), 0)
    leftovers: list[list[int]] = [[] for _ in range(B)]
    while True:
        done = append_step(out, rows, nxt, model.eos, limit)
        if done.all():
            break
        if done.any():
            keep = (~done).nonzero()[:, 0]
            rows, nxt, next_pos, kind = rows[keep], nxt[keep], next_pos[keep.to(device)], kind[keep.to(device)]
            leftovers = [leftovers[i] for i in keep.tolist()]
            cache.reorder(keep.to(device))
        stats["passes"] += 1
        stats["row_passes"] += len(rows)
        drafts = make_drafts([history[r] + out[r] for r in rows.tolist()], leftovers, k, options.draft)
        drafts = drafts.masked_fill(drafts >= K, 0)  # never draft the end token: a row ends only on a prediction
        feed = torch.cat([nxt[:, None], drafts], 1).to(device)
        feed_kind = torch.full_like(feed, AUDIO)
        before = cache.length
        hidden = model(feed, feed_kind, next_pos[:, None] + torch.arange(k + 1, device=device),
                       mask=block_causal_mask(kind != PAD, k + 1), cache=cache)
        logits = model.logits(hidden)
        preds = torch.stack([greedy(logits[:, j], j) for j in range(k + 1)], 1)  # choice after nxt, d1, … dk
        room = min(int(limit[r]) - len(out[r]) for r in rows.tolist()) - 1  # no row may finish inside the block
        n = min(int(accepted(drafts, preds).min()), room)
        for j in range(n):
            append_step(out, rows, drafts[:, j], model.eos, limit)
        nxt = preds[:, n]
        leftovers = preds[:, n + 1:].tolist()
        cache.truncate(before + 1 + n)
        k = min(options.draft_tokens, 2 * n + 1)  # a rejected draft costs compute; a run of hits earns more
        kind = torch.cat([kind, feed_kind[:, : 1 + n]], 1)
        next_pos = next_pos + 1 + n
    stats["frames"] = sum(len(o) for o in out)
    return [torch.tensor(o, dtype=torch.long, device="cpu") for o in out]


@torch.inference_mode()
def generate_nar(model: ValleNAR, texts: list[torch.Tensor], prompts: list[torch.Tensor],
                 first: list[torch.Tensor], probs: list | None = None) -> list[torch.Tensor]:
    """Codebooks 2 … Q of every row, greedily: ``prompts`` ``[Q, P]`` (all codebooks), ``first`` ``[T]``
    (the AR's codebook 1). Returns ``[Q, T]`` per row. ``probs``, if given (a list), receives each row's
    code probabilities for codebooks 2 … Q, ``[Q-1, T, K]`` (what :meth:`Codec.embed_expected` reads); each
    stage is still conditioned on the codes chosen below it, as in training."""
    device = next(model.parameters()).device
    Q = model.dims.n_codebooks
    B = len(texts)
    Lx, P, T = max(len(t) for t in texts), max(p.shape[1] for p in prompts), max(max(len(f) for f in first), 1)
    zeros = lambda *shape: torch.zeros(shape, dtype=torch.long, device="cpu")  # noqa: E731
    batch = {"text": zeros(B, Lx), "prompt": zeros(B, Q, P), "target": zeros(B, Q, T),
             "text_lens": torch.tensor([len(t) for t in texts], device="cpu"), "prompt_lens": torch.tensor([p.shape[1] for p in prompts], device="cpu"),
             "target_lens": torch.tensor([len(f) for f in first], device="cpu")}
    for b in range(B):
        batch["text"][b, : len(texts[b])] = texts[b].cpu()
        batch["prompt"][b, :, : prompts[b].shape[1]] = prompts[b].cpu()
        batch["target"][b, 0, : len(first[b])] = first[b].cpu()
    stage = torch.ones(B, dtype=torch.long, device="cpu")
    x = {k: v.to(device) for k, v in nar_inputs(batch, stage).items()}
    where = x["targets"] != -100  # the target's frames
    mask = attention_mask(x["kind"], causal_audio=False)
    frames = [where[b].nonzero()[:, 0] for b in range(B)]
    row_probs: list[list[torch.Tensor]] = [[] for _ in range(B)]
    for k in range(1, Q):
        x["n_sum"] = torch.where(where, k, x["n_sum"])
        logits = model(x["tokens"], x["kind"], x["pos"], x["codes"], x["n_sum"], stage.to(device) * k, mask=mask)
        x["codes"][:, k] = torch.where(where, logits.argmax(-1), x["codes"][:, k])
        if probs is not None:  # the target's frames only: [T, K] per row and stage
            for b in range(B):
                row_probs[b].append(logits[b, frames[b]].float().softmax(-1).cpu())
    if probs is not None:
        probs += [torch.stack(p) for p in row_probs]
    return [x["codes"][b][:, frames[b]].cpu() for b in range(B)]
