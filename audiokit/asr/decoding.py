"""Decoding a batch of 30-second windows: options and results as frozen dataclasses, logit filters that
compose, and a batched greedy decoder over the explicit KV cache.

Filters: suppress blank at the first sampled position (a space or end-of-text), and suppress a token set
(``"-1"`` means Whisper's non-speech symbols plus the task/control tokens).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..nn.transformer import KVCache
from .model import ASRModel
from .tokenizer import WhisperTokenizer


@dataclass(frozen=True)
class DecodingOptions:
    task: str = "transcribe"
    language: str | None = "en"
    sample_len: int | None = None  # default: half the text context
    suppress_tokens: str | tuple[int, ...] | None = "-1"
    suppress_blank: bool = True
    without_timestamps: bool = True


@dataclass(frozen=True)
class DecodingResult:
    tokens: list[int]
    text: str
    avg_logprob: float
    no_speech_prob: float
    language: str | None = None
    extra: dict = field(default_factory=dict)


_SYMBOLS = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』') + "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()
_MUSIC = set("♩♪♫♬♭♮♯")


def non_speech_tokens(tok: WhisperTokenizer) -> list[int]:
    """Tokens of symbols that are not speech (brackets, music notes, ...), as single tokens with or without a leading space."""
    result = {tok.encode(" -")[0], tok.encode(" '")[0]}
    for symbol in _SYMBOLS + sorted(_MUSIC):
        for ids in (tok.encode(symbol), tok.encode(" " + symbol)):
            if len(ids) == 1 or symbol in _MUSIC:
                result.add(ids[0])
    return sorted(result)


def suppressed_tokens(tok: WhisperTokenizer, spec) -> list[int]:
    if not spec:
        return []
    ids = [int(t) for t in spec.split(",")] if isinstance(spec, str) else list(spec)
    if -1 in ids:
        ids = [t for t in ids if t >= 0] + non_speech_tokens(tok)
    ids += [tok.transcribe, tok.translate, tok.sot, tok.sot_prev, tok._id("<|startoflm|>"), tok.no_speech]
    return sorted(set(ids))


@torch.inference_mode()
def decode_greedy(model: ASRModel, tok: WhisperTokenizer, mel: torch.Tensor, options: DecodingOptions = DecodingOptions()
                  ) -> list[DecodingResult]:
    """Greedy decoding of ``mel`` ``[B, n_mels, 3000]``: all items at once, each stopping at end-of-text."""
    if mel.dim() == 2:
        mel = mel[None]
    B = mel.shape[0]
    tok = WhisperTokenizer(tok.ranks, len(tok.languages), options.language, options.task, tok.multilingual)
    prompt = list(tok.sot_sequence) + ([tok.no_timestamps] if options.without_timestamps else [])
    sample_len = options.sample_len or model.dims.n_text_ctx // 2
    suppress = torch.tensor(suppressed_tokens(tok, options.suppress_tokens), dtype=torch.long, device=mel.device)
    blank = torch.tensor(tok.encode(" ") + [tok.eot], dtype=torch.long, device=mel.device)

    features = model.embed_audio(mel)
    cache = KVCache()
    tokens = torch.tensor([prompt] * B, device=mel.device)
    logits = model.logits(tokens, features, cache)
    no_speech_prob = logits[:, prompt.index(tok.sot)].float().softmax(-1)[:, tok.no_speech]
    logits = logits[:, -1]
    out = torch.empty(B, 0, dtype=torch.long, device=mel.device)
    sum_logprob = torch.zeros(B, device=mel.device)
    done = torch.zeros(B, dtype=torch.bool, device=mel.device)
    for step in range(sample_len):
        logits = logits.float()
        if suppress.numel():
            logits[:, suppress] = -float("inf")
        if options.suppress_blank and step == 0:
            logits[:, blank] = -float("inf")
        logprobs = logits.log_softmax(-1)
        nxt = logits.argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, tok.eot), nxt)
        sum_logprob += torch.where(done, 0.0, logprobs.gather(1, nxt[:, None])[:, 0])
        out = torch.cat([out, nxt[:, None]], dim=1)
        done |= nxt == tok.eot
        if done.all() or len(prompt) + out.shape[1] >= model.dims.n_text_ctx:
            break
        logits = model.logits(nxt[:, None], features, cache)[:, -1]
    results = []
    for b in range(B):
        ids = out[b].tolist()
        if tok.eot in ids:
            ids = ids[: ids.index(tok.eot)]
        results.append(DecodingResult(tokens=ids, text=tok.decode(ids).strip(),
                                      avg_logprob=float(sum_logprob[b]) / (len(ids) + 1),
                                      no_speech_prob=float(no_speech_prob[b]), language=options.language))
    return results
