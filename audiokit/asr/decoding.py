"""Decoding 30-second windows: greedy, sampling (best-of-n) and beam search over the explicit KV cache,
batched over utterances, with Whisper's logit rules.

What is decoded, and how, is a frozen :class:`DecodingOptions`; :func:`decode` returns one
:class:`DecodingResult` per window. The rules, applied to each step's logits in this order:

- suppress blank: at the first sampled position, no space and no end-of-text;
- suppress tokens: ``"-1"`` means Whisper's non-speech symbols; the task/control tokens are always suppressed;
- timestamp rules (unless ``without_timestamps``): timestamps come in pairs (except right before end-of-text),
  never decrease, the first token is a timestamp no later than ``max_initial_timestamp``, and when the
  timestamps together are more probable than any single text token, a timestamp is taken.

Tokens and scores equal openai-whisper's for greedy and beam search (tested). Differences that are not
visible in the results: rows that have finished leave the batch (their cache rows are dropped), beams
share their utterance's cross-attention keys/values instead of copying them every step, and items whose
prompts differ in length are decoded in groups of equal length.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from typing import Sequence

import torch

from ..nn.speculative import DRAFT_MODES, accepted, make_drafts
from ..nn.transformer import KVCache
from .model import ASRModel
from .screen import screen_for
from .tokenizer import WhisperTokenizer


DEFAULT_CTC_WEIGHT = 0.3  # joint rescoring: measured on the digits recipe's ASR (benchmarks/RESULTS.md, session 20)


@dataclass(frozen=True)
class DecodingOptions:
    """How to decode a window.

    Args:
        task: ``"transcribe"`` or ``"translate"``.
        language: a language code, or None to detect it per window (models with language tokens).
        temperature: 0 picks the most likely token (greedy or beam search); above 0 samples.
        sample_len: most tokens to sample [half the text context].
        best_of: with temperature > 0, sample this many sequences and keep the most likely.
        beam_size: beam search with this many beams (temperature 0).
        patience: beam search stops once ``round(beam_size * patience)`` sequences have finished [1.0].
        length_penalty: None ranks finished sequences by log-probability / length; a value α in [0, 1]
            divides by ((5 + length) / 6) ** α instead (Google NMT).
        prompt: previous text (a string or token ids), given after ``<|startofprev|>``.
        prefix: text (or ids) the transcript must start with.
        suppress_tokens: comma-separated ids or a sequence; ``"-1"`` = non-speech symbols.
        suppress_blank: no blank at the first position.
        without_timestamps: decode text only (``<|notimestamps|>``).
        max_initial_timestamp: seconds; the first timestamp is no later than this.
        seed: seed of the sampler's generator (temperature > 0), for reproducible sampling.
        draft_tokens: greedy decoding (temperature 0, no beam) checks up to this many drafted tokens per
            decoder pass — n-gram lookup in the prompt and the text so far, else Jacobi leftovers
            (``draft``; :mod:`audiokit.nn.speculative`). Same tokens and scores as one pass per token;
            0 turns it off.
        screen_vocab: temperature 0, float32 weights: screen the vocabulary with an int8 (or half-precision)
            copy of the output embedding and compute exactly only the tokens that can win
            (:mod:`audiokit.asr.screen`): the same decisions as the float32 projection at a quarter to half its
            memory traffic. None [default]: on a CPU for vocabularies of 16k+ text tokens (where reading the
            embedding dominates a step), for as many states per step as it pays (measured once); False: off.
        ctc_weight: rank beam search's (or best-of's) candidates by ``(1 - w) · log P_attention + w · log P_CTC``,
            the second from the model's CTC head on the window (joint CTC/attention rescoring, as in ESPnet;
            both divided by the length as the ranking without it is). The CTC alignment has to account for every
            sound in the window, so a candidate that stops early or adds words loses. None [default]: 0.3 for a
            model with a CTC head, 0 for one without (official Whisper); 0 turns it off.
    """

    task: str = "transcribe"
    language: str | None = "en"
    temperature: float = 0.0
    sample_len: int | None = None
    best_of: int | None = None
    beam_size: int | None = None
    patience: float | None = None
    length_penalty: float | None = None
    prompt: str | Sequence[int] | None = None
    prefix: str | Sequence[int] | None = None
    suppress_tokens: str | Sequence[int] | None = "-1"
    suppress_blank: bool = True
    without_timestamps: bool = False
    max_initial_timestamp: float | None = 1.0
    seed: int | None = None
    draft_tokens: int = 0
    draft: str = "ngram+jacobi"
    screen_vocab: bool | None = None
    ctc_weight: float | None = None

    def __post_init__(self):
        if self.ctc_weight is not None and not 0 <= self.ctc_weight <= 1:
            raise ValueError(f"ctc_weight must be in [0, 1], got {self.ctc_weight}")
        if self.beam_size is not None and self.best_of is not None:
            raise ValueError("beam_size and best_of cannot be given together")
        if self.temperature == 0 and self.best_of is not None:
            raise ValueError("best_of needs temperature > 0 (greedy decoding has one answer)")
        if self.patience is not None and self.beam_size is None:
            raise ValueError("patience needs beam_size")
        if self.length_penalty is not None and not 0 <= self.length_penalty <= 1:
            raise ValueError(f"length_penalty must be in [0, 1], got {self.length_penalty}")
        if self.beam_size is not None and self.beam_size < 1:
            raise ValueError(f"beam_size must be at least 1, got {self.beam_size}")
        if self.best_of is not None and self.best_of < 1:
            raise ValueError(f"best_of must be at least 1, got {self.best_of}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.task not in ("transcribe", "translate"):
            raise ValueError(f"task must be 'transcribe' or 'translate', got {self.task!r}")
        if self.draft_tokens < 0:
            raise ValueError(f"draft_tokens must be >= 0, got {self.draft_tokens}")
        if self.draft not in DRAFT_MODES:
            raise ValueError(f"unknown draft mode {self.draft!r}: one of {', '.join(DRAFT_MODES)}")


@dataclass(frozen=True)
class DecodingResult:
    tokens: list[int]
    text: str
    avg_logprob: float
    no_speech_prob: float
    language: str | None = None
    language_probs: dict | None = None
    temperature: float = 0.0
    compression_ratio: float = 0.0
    extra: dict = field(default_factory=dict)


def compression_ratio(text: str) -> float:
    """Bytes / zlib-compressed bytes: high for repetitive (looping) output."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


# ----------------------------------------------------------------------------- suppression
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def word_start_tokens(tok: WhisperTokenizer) -> set[int]:
    """Tokens that begin a space-prefixed word (" T...", " a..."). In Whisper's GPT-2 ranks these are " T", " a":
    never the lone space. A small corpus BPE may lack " T", so "Tractable" starts with the lone space — a token
    ordinary speech needs, which no suppression rule may take away."""
    return {tok.encode(" " + c)[0] for c in _LETTERS}


def blank_tokens(tok: WhisperTokenizer) -> list[int]:
    """What ``suppress_blank`` forbids at the first sampled position: end-of-text, and the lone space unless words
    need it to start (:func:`word_start_tokens`)."""
    space = tok.encode(" ")
    return ([] if set(space) & word_start_tokens(tok) else space) + [tok.eot]


_SYMBOLS = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』') + "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()
_MUSIC = set("♩♪♫♬♭♮♯")


def non_speech_tokens(tok: WhisperTokenizer) -> list[int]:
    """Tokens of symbols that are not speech (brackets, music notes, ...), as single tokens with or without a leading space."""
    result = {tok.encode(" -")[0], tok.encode(" '")[0]}
    for symbol in _SYMBOLS + sorted(_MUSIC):
        for ids in (tok.encode(symbol), tok.encode(" " + symbol)):
            if len(ids) == 1 or symbol in _MUSIC:
                result.add(ids[0])
    return sorted(result - word_start_tokens(tok))  # with a corpus BPE " -" may begin with the lone space


def suppressed_tokens(tok: WhisperTokenizer, spec) -> list[int]:
    ids = []
    if spec:
        ids = [int(t) for t in spec.split(",")] if isinstance(spec, str) else [int(t) for t in spec]
        if -1 in ids:
            ids = [t for t in ids if t >= 0] + non_speech_tokens(tok)
    ids += [tok.transcribe, tok.translate, tok.sot, tok.sot_prev, tok._id("<|startoflm|>"), tok.no_speech]
    bad = [t for t in ids if not 0 <= t < tok.n_vocab]
    if bad:
        raise ValueError(f"suppress_tokens {bad[:5]} are outside the vocabulary of {tok.n_vocab}")
    return sorted(set(ids))


# ----------------------------------------------------------------------------- language
@torch.inference_mode()
def detect_language(model: ASRModel, tok: WhisperTokenizer, mel_or_features: torch.Tensor
                    ) -> tuple[torch.Tensor, list[dict[str, float]]]:
    """Most likely language token per window, and each window's distribution over the model's languages."""
    if not tok.multilingual:
        raise ValueError("this model has no language tokens (an English-only vocabulary): it cannot detect a language")
    x = mel_or_features if mel_or_features.dim() == 3 else mel_or_features[None]
    feats = x if x.shape[-2:] == (model.dims.n_audio_ctx, model.dims.n_audio_state) else model.embed_audio(x)
    sot = torch.full((feats.shape[0], 1), tok.sot, dtype=torch.long, device=feats.device)
    logits = model.logits(sot, feats)[:, 0].float()
    lang_ids = torch.tensor(tok.all_language_tokens, device=logits.device)
    probs = logits[:, lang_ids].softmax(-1)
    best = lang_ids[probs.argmax(-1)]
    dists = [{code: float(p) for code, p in zip(tok.languages, row.tolist())} for row in probs.cpu()]
    return best, dists


# ----------------------------------------------------------------------------- decoding
def _prompt_ids(tok: WhisperTokenizer, text_or_ids) -> list[int]:
    if text_or_ids is None:
        return []
    if isinstance(text_or_ids, str):
        return tok.encode(" " + text_or_ids.strip()) if text_or_ids.strip() else []
    return [int(t) for t in text_or_ids]


def initial_tokens(tok: WhisperTokenizer, options: DecodingOptions, n_ctx: int, prompt=None) -> list[int]:
    """``[<|startofprev|> prompt] <|startoftranscript|> [lang task] [<|notimestamps|>] [prefix]``."""
    seq = list(tok.sot_sequence) + ([tok.no_timestamps] if options.without_timestamps else [])
    prefix = _prompt_ids(tok, options.prefix)
    if prefix:
        sample_len = options.sample_len or n_ctx // 2
        seq += prefix[-(n_ctx // 2 - sample_len):] if n_ctx // 2 - sample_len > 0 else []
    prompt = _prompt_ids(tok, options.prompt if prompt is None else prompt)
    if prompt:
        seq = [tok.sot_prev] + prompt[-(n_ctx // 2 - 1):] + seq
    return seq


@torch.inference_mode()
def decode(model: ASRModel, tok: WhisperTokenizer, mel: torch.Tensor, options: DecodingOptions = DecodingOptions(),
           prompts: Sequence | None = None) -> list[DecodingResult]:
    """Decode windows ``mel`` ``[B, n_mels, frames]`` (or encoder features ``[B, n_audio_ctx, n_audio_state]``).

    ``prompts`` optionally gives each item its own previous text (string or ids), overriding ``options.prompt``.
    """
    if mel.dim() == 2:
        mel = mel[None]
    B = mel.shape[0]
    if prompts is not None and len(prompts) != B:
        raise ValueError(f"{len(prompts)} prompts for {B} windows")
    tok = tok.with_options(options.language if options.language else (tok.languages[0] if tok.multilingual else None),
                           options.task)
    feats = mel if mel.shape[-2:] == (model.dims.n_audio_ctx, model.dims.n_audio_state) else model.embed_audio(mel)

    languages = [options.language] * B
    lang_probs: list[dict | None] = [None] * B
    lang_tokens = None
    if options.language is None and tok.multilingual:
        lang_tokens, lang_probs = detect_language(model, tok, feats)
        languages = [max(p, key=p.get) for p in lang_probs]

    rows = []
    for b in range(B):
        seq = initial_tokens(tok, options, model.dims.n_text_ctx, None if prompts is None else prompts[b])
        if lang_tokens is not None:
            seq[seq.index(tok.sot) + 1] = int(lang_tokens[b])
        rows.append(seq)
    if max(len(r) for r in rows) >= model.dims.n_text_ctx:
        raise ValueError(f"the prompt and prefix fill the decoder's context of {model.dims.n_text_ctx} tokens")

    results: list[DecodingResult | None] = [None] * B
    by_length: dict[int, list[int]] = {}
    for b, r in enumerate(rows):
        by_length.setdefault(len(r), []).append(b)
    for idx in by_length.values():
        index = torch.tensor(idx, device=feats.device)
        group = _Search(model, tok, options).run(feats.index_select(0, index), torch.tensor([rows[i] for i in idx], device="cpu"))
        for i, (tokens, sum_logprob, no_speech) in zip(idx, group):
            text = tok.decode(tokens).strip()
            results[i] = DecodingResult(tokens=tokens, text=text, avg_logprob=sum_logprob / (len(tokens) + 1),
                                        no_speech_prob=no_speech, language=languages[i], language_probs=lang_probs[i],
                                        temperature=options.temperature, compression_ratio=compression_ratio(text))
    return results  # type: ignore[return-value]


class _Search:
    """One batch of windows whose initial token sequences have the same length."""

    def __init__(self, model: ASRModel, tok: WhisperTokenizer, options: DecodingOptions):
        self.model, self.tok, self.o = model, tok, options
        self.n_ctx = model.dims.n_text_ctx
        self.sample_len = options.sample_len or self.n_ctx // 2
        self.beam = options.beam_size
        self.n_group = options.beam_size or options.best_of or 1
        self.max_candidates = round(self.beam * (options.patience or 1.0)) if self.beam else 0
        if self.beam and self.max_candidates < 1:
            raise ValueError(f"beam_size {options.beam_size} with patience {options.patience} keeps no candidates")
        V = model.dims.n_vocab
        if tok.n_vocab != V:
            raise ValueError(f"the tokenizer has {tok.n_vocab} tokens but the model {V}: they do not belong together")
        past_window = range(tok.timestamp_begin + model.dims.n_audio_ctx + 1, V)  # timestamps of longer windows
        self.suppress = torch.tensor(sorted(set(suppressed_tokens(tok, options.suppress_tokens)) | set(past_window)),
                                     dtype=torch.long)
        self.blank = torch.tensor(blank_tokens(tok))
        self.tb = tok.timestamp_begin
        precision = 0.02  # seconds per timestamp step: one encoder frame
        self.max_initial = (round(options.max_initial_timestamp / precision)
                            if options.max_initial_timestamp and not options.without_timestamps else None)
        self.stamp_ids = torch.arange(self.tb, V)
        weight = model.decoder.token_embedding.weight
        screen = options.screen_vocab
        if screen is None:
            screen = weight.device.type == "cpu" and self.tb >= 16384
        screen = screen and options.temperature == 0 and weight.dtype == torch.float32
        self.screen = screen_for(model.decoder, self.tb) if screen else None
        # auto: screen only products of as few states as pay on this CPU (measured once per screen); forced: all
        self.screen_states = (self.screen.max_states if self.screen is not None and options.screen_vocab is None
                              else 1 << 30)
        self.ctc_weight = DEFAULT_CTC_WEIGHT if options.ctc_weight is None and model.ctc_head is not None else options.ctc_weight or 0.0
        if self.ctc_weight and model.ctc_head is None:
            raise ValueError(f"ctc_weight {options.ctc_weight} needs a model with a CTC head; this one has none "
                             "(official Whisper models have none: leave ctc_weight out)")
        self.generator = None
        if options.temperature > 0 and options.seed is not None:
            self.generator = torch.Generator(device="cpu").manual_seed(options.seed)

    # ------------------------------------------------------------------ rules
    def _seq_state(self, seq: torch.Tensor) -> tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`_rule_state` of the sampled tokens ``seq`` ``[N, i]`` (rows of one length)."""
        N, i = seq.shape
        none = torch.full((N,), -1, dtype=torch.long, device=seq.device)
        latest = torch.where(seq >= self.tb, seq, -1).amax(dim=1) if i else none
        return [i] * N, seq[:, -1] if i >= 1 else none, seq[:, -2] if i >= 2 else none, latest

    def _rule_state(self, seqs: list[list[int]], device) -> tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor]:
        """What the rules read of each row's sampled tokens (rows of different lengths): length, last token,
        the one before (-1 where absent), latest timestamp token (-1 if none)."""
        tb = self.tb
        last = [s[-1] if s else -1 for s in seqs]
        penult = [s[-2] if len(s) >= 2 else -1 for s in seqs]
        latest = [max((t for t in s if t >= tb), default=-1) for s in seqs]
        as_t = lambda v: torch.tensor(v, dtype=torch.long, device=device)  # noqa: E731
        return [len(s) for s in seqs], as_t(last), as_t(penult), as_t(latest)

    def _drafted_rule_state(self, state: tuple, drafts: torch.Tensor) -> tuple:
        """Rule state (:meth:`_rule_state` of ``B`` rows) → that of the ``B * (k + 1)`` positions of a drafted
        pass, row-major: position ``j`` of row ``b`` follows the row's tokens and its first ``j`` drafts
        (``drafts`` ``[B, k]``)."""
        n, last, penult, latest = state
        k = drafts.shape[1]
        toks = torch.cat([penult[:, None], last[:, None], drafts], 1)
        stamps = torch.where(drafts >= self.tb, drafts, -1)
        latest_j = torch.cat([latest[:, None], stamps], 1).cummax(1).values
        return ([i + j for i in n for j in range(k + 1)], toks[:, 1:].flatten(), toks[:, :-1].flatten(),
                latest_j.flatten())

    def _project(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Final decoder states ``[..., D]`` → (logits ``[..., V]``, None), or with the screen (approximate text
        logits, their half-widths ``[...]``) for :meth:`_filtered` to refine."""
        if self.screen is None or h.dtype != torch.float32 or h.numel() // h.shape[-1] > self.screen_states:
            return self.model.decoder.project(h), None
        logits, half = self.screen.approx(h.reshape(-1, h.shape[-1]))
        return logits.view(*h.shape[:-1], -1), half.view(h.shape[:-1])

    def _filtered(self, h: torch.Tensor, logits: torch.Tensor, half: torch.Tensor | None, n: list[int],
                  last: torch.Tensor, penult: torch.Tensor, latest: torch.Tensor, top: int = 1) -> torch.Tensor:
        """The rules applied to one position's :meth:`_project` output (states ``h`` ``[N, D]``) for rows in
        :meth:`_rule_state` ``n, last, penult, latest``; with the screen, every token that can be among the
        ``top`` best after the rules is exact (the timestamp rule's comparison needs only those and the
        timestamp rows, which are exact)."""
        logits = self._token_rules(logits, n, last, penult, latest)
        if half is not None:
            self.screen.refine(logits, h, half, top)
        return self._timestamp_mass_rule(logits)

    def _token_rules(self, logits: torch.Tensor, n: list[int], last: torch.Tensor, penult: torch.Tensor,
                     latest: torch.Tensor) -> torch.Tensor:
        """Suppressed tokens, blank at the start and the timestamp grammar, in place (tokens become -inf)
        on ``logits`` ``[N, V]``, which the caller owns; each rule touches only its rows and columns."""
        inf, tb, eot = -float("inf"), self.tb, self.tok.eot
        device = logits.device
        if self.suppress.device != device:
            self.suppress, self.blank, self.stamp_ids = (t.to(device) for t in (self.suppress, self.blank, self.stamp_ids))
        logits.index_fill_(1, self.suppress, inf)
        fresh = torch.tensor([i == 0 for i in n], device=device)  # nothing sampled yet
        fresh_rows = fresh.nonzero()[:, 0]
        if self.o.suppress_blank and len(fresh_rows):
            logits[fresh_rows[:, None], self.blank] = inf
        if self.o.without_timestamps:
            return logits
        logits[:, self.tok.no_timestamps] = inf
        stamps = logits[:, tb:]
        if any(i >= 1 for i in n):
            two = torch.tensor([i >= 2 for i in n], device=device)
            last_ts = ~fresh & (last >= tb)
            penult_ts = ~two | (penult >= tb)  # one token so far: counts as after a timestamp pair
            stamps.masked_fill_((last_ts & penult_ts)[:, None], inf)  # a pair closed: text or end next
            logits[:, :eot].index_fill_(0, (last_ts & ~penult_ts).nonzero()[:, 0], inf)  # one open: a timestamp next
            limit = torch.where(last_ts & ~penult_ts, latest, latest + 1)
            limit = torch.where(latest >= 0, limit, tb)  # no timestamp yet: no bound
            stamps.masked_fill_(~fresh[:, None] & (self.stamp_ids < limit[:, None]), inf)  # time only moves on
        if len(fresh_rows):
            logits[:, :tb].index_fill_(0, fresh_rows, inf)  # a window starts with a timestamp
            if self.max_initial is not None:
                logits[:, tb + self.max_initial + 1:].index_fill_(0, fresh_rows, inf)
        return logits

    def _timestamp_mass_rule(self, logits: torch.Tensor) -> torch.Tensor:
        """Text is suppressed where the timestamps together are more likely than the best text token."""
        if self.o.without_timestamps:
            return logits
        tb = self.tb
        # compared as logits: the log-softmax normaliser is common to both sides
        ts_mass = logits[:, tb:].logsumexp(-1)
        best_text = logits[:, :tb].amax(-1)
        logits[:, :tb].index_fill_(0, (ts_mass > best_text).nonzero()[:, 0], -float("inf"))
        return logits

    # ------------------------------------------------------------------ search
    def _prefill(self, feats: torch.Tensor, init: torch.Tensor) -> tuple[KVCache, torch.Tensor, list[float]]:
        """Run the initial tokens: (cache, states of the first sampled position ``[A, D]``, no-speech
        probability per window)."""
        cache = KVCache()
        sot_index = init[0].tolist().index(self.tok.sot)
        states = self.model.decoder.states(init, feats, cache, positions=[sot_index, init.shape[1] - 1])
        no_speech = self.model.decoder.project(states[:, 0]).softmax(-1)[:, self.tok.no_speech].tolist()
        return cache, states[:, -1], no_speech

    def _greedy_candidates(self, seq: list[int], lp: float) -> list[tuple[list[int], float]]:
        return [(seq[: seq.index(self.tok.eot)] if self.tok.eot in seq else seq, lp)]

    def run(self, feats: torch.Tensor, init: torch.Tensor) -> list[tuple[list[int], float, float]]:
        model, G = self.model, self.n_group
        A = feats.shape[0]
        device = feats.device
        init = init.to(device)
        if self.o.draft_tokens and self.o.temperature == 0 and not self.beam and G == 1:
            return self._run_drafted(feats, init)
        # the prompt is identical within a group: run it once per window, then repeat the cache rows
        cache, h, no_speech = self._prefill(feats, init)
        if G > 1:
            rep = torch.arange(A, device=device).repeat_interleave(G)
            cache.reorder(rep, cross=False)
            h = h.index_select(0, rep)
        # cross-attention keys/values stay one row per window; self-attention rows are window*G + member
        alive = list(range(A))  # windows still decoding, in row order
        seq = torch.empty(A * G, 0, dtype=torch.long, device=device)
        sum_lp = torch.zeros(A * G, device=device)
        if self.beam:
            sum_lp.view(A, G)[:, 1:] = -float("inf")  # all beams start equal: only the first one counts
        finished: list[dict[tuple, float]] = [{} for _ in range(A)]  # beam search: window → {tokens: score}
        final: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # greedy/sampling: window → (seqs, sum_lp)
        length = init.shape[1]
        for step in range(self.sample_len):
            logits = self._filtered(h, *self._project(h), *self._seq_state(seq), top=self.beam + 1 if self.beam else 1)
            if self.beam:
                seq, sum_lp, src, done = self._beam_step(logits, seq, sum_lp, alive, finished)
                cache.reorder(src, cross=False)
            else:
                seq, sum_lp, done = self._sample_step(logits, seq, sum_lp)
            length += 1
            if length > self.n_ctx or step == self.sample_len - 1:
                break
            if done.any():  # whole windows finished: drop their rows (and their cross-attention rows)
                keep_w = (~done).nonzero()[:, 0]
                for w in done.nonzero()[:, 0].tolist():
                    if self.beam:  # too few finished (patience < 1): the live beams at this step make up the rest
                        self._finalize_beams(finished[alive[w]], seq[w * G:(w + 1) * G], sum_lp[w * G:(w + 1) * G])
                    else:
                        final[alive[w]] = (seq[w * G:(w + 1) * G], sum_lp[w * G:(w + 1) * G])
                if keep_w.numel() == 0:
                    alive = []
                    break
                rows = (keep_w[:, None] * G + torch.arange(G, device=device)).reshape(-1)
                cache.reorder(rows, cross=False)
                cache.reorder(keep_w, self_attention=False)
                seq, sum_lp = seq.index_select(0, rows), sum_lp.index_select(0, rows)
                alive = [alive[w] for w in keep_w.tolist()]
            h = model.decoder.states(seq[:, -1:], feats, cache)[:, -1]
        for w, a in enumerate(alive):
            if not self.beam:
                final[a] = (seq[w * G:(w + 1) * G], sum_lp[w * G:(w + 1) * G])
            else:
                self._finalize_beams(finished[a], seq[w * G:(w + 1) * G], sum_lp[w * G:(w + 1) * G])
        out = []
        for a in range(A):
            if self.beam:
                cands = [(list(t), s) for t, s in finished[a].items()]
            else:
                seqs, lps = final[a]
                cands = [c for row, lp in zip(seqs.tolist(), lps.tolist()) for c in self._greedy_candidates(row, lp)]
            out.append((*self._rank(cands, feats[a]), no_speech[a]))
        return out

    def _run_drafted(self, feats: torch.Tensor, init: torch.Tensor) -> list[tuple[list[int], float, float]]:
        """Greedy decoding that feeds the chosen token plus drafted ones per pass and keeps the drafts the rules
        and the model agree with (:mod:`audiokit.nn.speculative`); same tokens and log-probabilities as
        :meth:`run`'s one pass per token. Each window keeps its own accepted count: rows of the batch drift to
        different lengths (``offsets``: each row writes and attends at its own positions), so one unlucky window
        does not hold the others back."""
        model, eot = self.model, self.tok.eot
        device = feats.device
        cache, h, no_speech = self._prefill(feats, init)
        start = init.shape[1]
        max_tokens = min(self.sample_len, self.n_ctx - start + 1)  # what run() would sample at most
        windows = list(range(feats.shape[0]))
        history = init.tolist()  # the prompt (previous text) is a source of drafts too
        seqs: list[list[int]] = [[] for _ in windows]
        sum_lp = torch.zeros(len(windows), device=device)
        final: dict[int, tuple[list[int], float]] = {}
        leftovers: list[list[int]] = [[] for _ in windows]
        ks = [self.o.draft_tokens] * len(windows)
        filtered = self._filtered(h, *self._project(h), *self._rule_state(seqs, device))  # the newest position's
        while True:
            nxt = filtered.max(-1).indices  # first of equal maxima, as argmax (and 3x faster on a CPU)
            sum_lp = sum_lp + filtered.log_softmax(-1).gather(1, nxt[:, None])[:, 0]
            for row, t in zip(seqs, nxt.tolist()):
                row.append(t)
            done = [row[-1] == eot or len(row) >= max_tokens for row in seqs]
            if any(done):  # finished windows leave the batch (and the cache)
                for r in (r for r, d in enumerate(done) if d):
                    final[windows[r]] = (seqs[r], float(sum_lp[r]))
                keep = [r for r, d in enumerate(done) if not d]
                if not keep:
                    break
                keep_t = torch.tensor(keep, device=device)
                cache.reorder(keep_t)
                sum_lp, nxt = sum_lp[keep_t], nxt[keep_t]
                windows, seqs, leftovers, ks = ([x[r] for r in keep] for x in (windows, seqs, leftovers, ks))
            # as many drafts as the rows want on average (a pass costs rows x positions once the batch is large),
            # never past the context or sample_len: the longest row bounds the drafts of all
            k = max(0, min(sum(ks) // len(ks), max_tokens - max(map(len, seqs)) - 1))
            drafts = make_drafts([history[w] + row for w, row in zip(windows, seqs)], leftovers, k, self.o.draft)
            drafts = drafts.masked_fill(drafts == eot, 0).to(device)  # a window ends on a prediction only
            offsets = [start + len(row) - 1 for row in seqs]  # where each row's newest token goes
            states = model.decoder.states(torch.cat([nxt[:, None], drafts], 1), feats, cache, offsets=offsets)
            block, halves = self._project(states)
            B = len(seqs)
            f = self._filtered(states.flatten(0, 1), block.flatten(0, 1), None if halves is None else halves.flatten(),
                               *self._drafted_rule_state(self._rule_state(seqs, device), drafts)).view(B, k + 1, -1)
            preds_t = f.max(-1).indices  # [B, k + 1]: the choice after each drafted prefix
            got = [min(a, max_tokens - len(row) - 1) for a, row in zip(accepted(drafts, preds_t).tolist(), seqs)]
            got_t = torch.tensor(got, device=device)
            if max(got):
                lps = f[:, : max(got)].log_softmax(-1).gather(2, drafts[:, : max(got), None])[..., 0]
                for j in range(max(got)):  # one addition per token, in order, as the plain loop does
                    sum_lp = sum_lp + torch.where(got_t > j, lps[:, j], 0.0)
            for row, d, g in zip(seqs, drafts.tolist(), got):
                row.extend(d[:g])
            # the position after each row's accepted drafts is the next newest: its rules have run already
            filtered = f[torch.arange(B, device=device), got_t]
            leftovers = [p[g + 1:] for p, g in zip(preds_t.tolist(), got)]
            ks = [min(self.o.draft_tokens, 2 * g + 1) for g in got]
        return [(*self._rank(self._greedy_candidates(*final[a])), no_speech[a]) for a in range(len(no_speech))]

    def _sample_step(self, logits, seq, sum_lp):
        eot, G = self.tok.eot, self.n_group
        if self.o.temperature == 0:
            nxt = logits.max(-1).indices
        else:
            probs = (logits / self.o.temperature).softmax(-1)
            nxt = torch.multinomial(probs.cpu() if self.generator else probs, 1, generator=self.generator)[:, 0].to(logits.device)
        logprobs = logits.log_softmax(-1)
        ended = seq[:, -1] == eot if seq.shape[1] else torch.zeros_like(nxt, dtype=torch.bool)
        sum_lp = sum_lp + torch.where(ended, 0.0, logprobs.gather(1, nxt[:, None])[:, 0])
        nxt = torch.where(ended, eot, nxt)
        seq = torch.cat([seq, nxt[:, None]], dim=1)
        done = (nxt == eot).view(-1, G).all(dim=1)
        return seq, sum_lp, done

    def _beam_step(self, logits, seq, sum_lp, alive, finished):
        K, eot = self.beam, self.tok.eot
        N = logits.shape[0]
        A = N // K
        logprobs = logits.log_softmax(-1)
        top_lp, top_id = logprobs.topk(K + 1, dim=-1)  # [N, K+1]
        scores = (sum_lp[:, None] + top_lp).view(A, K * (K + 1))
        cand = top_id.view(A, K * (K + 1))
        source = torch.arange(N, device=logits.device)[:, None].expand(N, K + 1).reshape(A, K * (K + 1))
        order = scores.argsort(dim=1, descending=True, stable=True)
        scores, cand, source = scores.gather(1, order), cand.gather(1, order), source.gather(1, order)
        is_eot = cand == eot
        before = torch.cumsum(~is_eot, dim=1) - (~is_eot).long()  # non-EOT candidates ranked above this one
        keep = ~is_eot & (before < K)
        ended = is_eot & (before < K)
        old = seq
        src = source[keep].view(A, K).reshape(-1)
        new_sum = scores[keep].view(A * K)
        seq = torch.cat([seq.index_select(0, src), cand[keep].view(A * K, 1)], dim=1)
        if ended.any():
            for w, j in ended.nonzero().tolist():  # in score order, as the candidates are sorted
                store = finished[alive[w]]
                if len(store) < self.max_candidates:
                    store.setdefault(tuple(old[int(source[w, j])].tolist()), float(scores[w, j]))
        done = torch.tensor([len(finished[a]) >= self.max_candidates for a in alive], device=logits.device)
        return seq, new_sum, src, done

    def _finalize_beams(self, store: dict, seqs: torch.Tensor, lps: torch.Tensor) -> None:
        if len(store) >= self.beam:
            return
        for j in lps.argsort(descending=True, stable=True).tolist():
            store.setdefault(tuple(seqs[j].tolist()), float(lps[j]))
            if len(store) >= self.beam:
                break

    def _rank(self, cands: list[tuple[list[int], float]], feats: torch.Tensor | None = None) -> tuple[list[int], float]:
        """The best candidate: by log-probability over the length penalty, joint with the CTC head's score of the
        window ``feats`` where ``ctc_weight`` asks for it (and there is a choice to make)."""
        joint = [c[1] for c in cands]
        if self.ctc_weight and feats is not None and len(cands) > 1:
            w = self.ctc_weight
            texts = [self.tok.decode(c[0]) for c in cands]  # timestamps dropped
            ctc = self.model.ctc_score(feats, texts).tolist()
            joint = [(1 - w) * a + w * b for a, b in zip(joint, ctc)]

        def score(i):
            n = len(cands[i][0])
            penalty = n if self.o.length_penalty is None else ((5 + n) / 6) ** self.o.length_penalty
            return joint[i] / penalty if penalty else joint[i]

        best = max(range(len(cands)), key=lambda i: (score(i), -i))
        return cands[best]


def decode_with_fallback(model: ASRModel, tok: WhisperTokenizer, mel: torch.Tensor, options: DecodingOptions = DecodingOptions(),
                         temperatures: Sequence[float] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
                         compression_ratio_threshold: float | None = 2.4, logprob_threshold: float | None = -1.0,
                         no_speech_threshold: float | None = 0.6, prompts: Sequence | None = None,
                         best_of: int | None = None) -> list[DecodingResult]:
    """Decode at the first temperature; windows whose result looks wrong (too repetitive: compression ratio
    above the threshold; too unlikely: average log-probability below it) are decoded again at the next
    temperature, unless they look like silence (no-speech probability above its threshold and low
    log-probability). Beam search / patience apply at temperature 0 only; above it, ``best_of`` samples
    (default: ``options.best_of``) are drawn and the most likely kept."""
    B = mel.shape[0] if mel.dim() == 3 else 1
    results: list[DecodingResult | None] = [None] * B
    todo = list(range(B))
    for t in temperatures:
        kw = dict(temperature=t)
        if t > 0:
            kw.update(beam_size=None, patience=None, best_of=best_of or options.best_of)
        else:
            kw.update(best_of=None)
        opts = replace(options, **kw)
        index = torch.tensor(todo, device=mel.device)
        sub = mel.index_select(0, index) if mel.dim() == 3 else mel[None]
        got = decode(model, tok, sub, opts, None if prompts is None else [prompts[i] for i in todo])
        retry = []
        for i, r in zip(todo, got):
            results[i] = r
            bad = ((compression_ratio_threshold is not None and r.compression_ratio > compression_ratio_threshold)
                   or (logprob_threshold is not None and r.avg_logprob < logprob_threshold))
            silent = (no_speech_threshold is not None and r.no_speech_prob > no_speech_threshold
                      and logprob_threshold is not None and r.avg_logprob < logprob_threshold)
            if bad and not silent:
                retry.append(i)
        todo = retry
        if not todo:
            break
    return results  # type: ignore[return-value]
