"""Tortoise AR decoding: N candidate speech-token sequences for one text and voice, in one batch with the
shared KV cache (finished candidates leave the batch), and the AR latents of chosen candidates."""
from __future__ import annotations

import torch

from ..nn.sampling import Spelling, append_step, forbid_early_stop
from ..nn.transformer import KVCache, padded_causal_mask
from ..valle.generate import SamplingOptions
from .model import TortoiseAR, framed


@torch.inference_mode()
def sample_candidates(model: TortoiseAR, voice: torch.Tensor, text: torch.Tensor, n: int, max_frames: int,
                      options: SamplingOptions = SamplingOptions(), use_cache: bool = True,
                      suppress_stop: bool = False, script: torch.Tensor | None = None, pause: int = 0) -> list[torch.Tensor]:
    """``n`` codebook-1 sequences (stop token excluded) for BPE ids ``text`` ``[L]`` in the voice ``voice``
    ``[d]`` (a conditioning latent). ``use_cache=False`` recomputes the sequence every step (reference).
    ``script`` (phone units: the text's phones): every candidate spells it in order, each choosing its own pauses
    (``pause`` tokens; :class:`~audiokit.nn.sampling.Spelling`)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    spelling = None if script is None else Spelling([script] * n, pause, model.stop_speech)
    max_frames = min(max_frames, model.dims.max_speech)
    device = next(model.parameters()).device
    t, tv = framed([text] * n, model.start_text, model.stop_text)
    speech = torch.full((n, 1), model.start_speech, dtype=torch.long, device="cpu")
    cond = voice.to(device).expand(n, -1)
    x, valid = model.embed(cond, t.to(device), tv.to(device), speech.to(device), torch.ones_like(speech, dtype=torch.bool, device=device))
    cache = KVCache() if use_cache else None
    h = model(x, padded_causal_mask(valid), cache=cache)[:, -1]
    gen = options.generator()
    out: list[list[int]] = [[] for _ in range(n)]
    rows = torch.arange(n, device="cpu")
    while True:
        logits = model.speech_head(h).float()
        logits[:, model.start_speech] = float("-inf")
        if suppress_stop:
            logits[:, model.stop_speech] = float("-inf")
        if spelling is None:
            forbid_early_stop(logits, rows, out, model.stop_speech, [options.min_frames(max_frames)] * n)
        else:
            spelling.restrict(logits, rows, out)
        nxt = options.draw(logits, [out[r] for r in rows.tolist()], gen)
        done = append_step(out, rows, nxt, model.stop_speech, [max_frames] * n)
        if done.all():
            break
        keep = (~done).nonzero()[:, 0]
        rows, nxt = rows[keep], nxt[keep]
        step = len(out[int(rows[0])])  # every live row has the same length
        new = model.speech_embedding(nxt.to(device))[:, None] + model.speech_pos.weight[step][None, None]
        if cache is not None:
            if len(keep) < len(done):
                cache.reorder(keep.to(device))
            S = cache.length + 1
            h = model(new, torch.ones(len(rows), 1, 1, S, dtype=torch.bool, device=device), cache=cache)[:, -1]
        else:
            x = torch.cat([x[keep.to(device)], new], 1)
            h = model(x, padded_causal_mask(torch.ones(x.shape[:2], dtype=torch.bool, device=device)))[:, -1]
    return [torch.tensor(o, dtype=torch.long, device="cpu") for o in out]


@torch.inference_mode()
def ar_latents(model: TortoiseAR, voice: torch.Tensor, text: torch.Tensor, candidates: list[torch.Tensor]) -> list[torch.Tensor]:
    """The AR model's final hidden states at each frame of each candidate: ``[T_i, d]`` per candidate (what the
    diffusion decoder is conditioned on in its second training stage and at inference)."""
    device = next(model.parameters()).device
    n = len(candidates)
    t, tv = framed([text] * n, model.start_text, model.stop_text)
    s, sv = framed(candidates, model.start_speech, model.stop_speech)
    out = model.losses(voice.to(device).expand(n, -1), t.to(device), tv.to(device), s.to(device), sv.to(device))
    return [out["latents"][i, 1 : 1 + len(c)] for i, c in enumerate(candidates)]
