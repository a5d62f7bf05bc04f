"""VALL-E training data: phonemes + codec tokens of an utterance, paired with an acoustic prompt.

Each item draws its prompt one of two ways (``prefix_prob`` picks):

- *another utterance of the same speaker*, a random ``prompt_seconds`` crop (the paper's setup). The text is
  the target's only, so the prompt teaches the voice, not the words: this is how the model clones a voice
  from a prompt whose transcript is unknown.
- *a prefix of the same utterance* (25–50 % of it, at most ``prompt_seconds``). The text covers prompt and
  target, so the model learns to continue speech whose words it was told: inference with the prompt's
  transcript (given or from the ASR) is this case.

Utterances of a speaker with no other utterance always take the prefix. The layouts the two models train on
are built here too (:func:`ar_inputs`, :func:`nar_inputs`).
"""
from __future__ import annotations

import logging
from collections import defaultdict

import torch

from ..data.datamodule import SpeechDataModule
from ..data.datasets import SpeakerTokenDataset
from ..text.phonemes import PHONEME_VOCAB, Phonemizer, TextError
from .model import AUDIO, TEXT

log = logging.getLogger(__name__)

# manifest language codes → espeak-ng voices; a model lists the languages it was trained on
ESPEAK_LANGUAGE = {"en": "en-us", "en-us": "en-us", "en-gb": "en-gb"}


def espeak_language(language: str) -> str:
    if language not in ESPEAK_LANGUAGE:
        raise TextError(f"language {language!r} is not supported by VALL-E here (supported: {', '.join(sorted(ESPEAK_LANGUAGE))})")
    return ESPEAK_LANGUAGE[language]


_PHONEMIZERS: dict[str, Phonemizer] = {}


def phonemize(texts: list[str], language: str = "en") -> list[str]:
    lang = espeak_language(language)
    if lang not in _PHONEMIZERS:
        _PHONEMIZERS[lang] = Phonemizer(lang)
    return _PHONEMIZERS[lang](texts)


def phoneme_ids(phonemes: str, what: str = "text") -> list[int]:
    """``<bos> phonemes <eos>`` ids. Symbols outside the vocabulary are dropped (with a warning); a text with
    nothing to pronounce (empty, punctuation only, only unknown characters) is a :class:`TextError`."""
    unknown = PHONEME_VOCAB.unknown(phonemes)
    if unknown:
        log.warning("%s: dropping symbols the phoneme vocabulary lacks: %s", what, " ".join(sorted(unknown)))
        phonemes = "".join(c for c in phonemes if c not in unknown)
    if not any(c.isalpha() for c in phonemes):
        raise TextError(f"{what} has nothing to pronounce (phonemes: {phonemes!r})")
    return PHONEME_VOCAB.encode(phonemes, add_bos_eos=True)


class ValleDataset(SpeakerTokenDataset):
    """Items ``{"id", "text" [L], "prompt" [Q, P], "target" [Q, T], "prompt_scored"}`` over a tokenized manifest.

    ``prompt_scored`` is True when the prompt is a prefix of the target's own utterance (its frames are then
    also valid AR targets). Phonemes come from the manifest's ``phonemes`` field where present, else from
    espeak-ng once, when the dataset is made. Validation items (``train=False``) draw the same prompt every
    epoch.
    """

    def __init__(self, manifest, codec=None, store=None, train: bool = True, prompt_seconds: float = 3.0,
                 prefix_prob: float = 0.5, min_duration: float | None = None, max_duration: float | None = None,
                 seed: int = 0):
        super().__init__(manifest, codec=codec, store=store, train=train, min_duration=min_duration,
                         max_duration=max_duration, seed=seed)
        self.prompt_seconds, self.prefix_prob = prompt_seconds, prefix_prob
        self.text = self._phonemes()

    def _phonemes(self) -> list[list[int]]:
        out: list[list[int] | None] = [None] * len(self.entries)
        todo: dict[str, list[int]] = defaultdict(list)
        for i, e in enumerate(self.entries):
            if e.get("phonemes"):
                out[i] = phoneme_ids(e["phonemes"], what=f"utterance {e['id']!r}")
            else:
                todo[e.get("language", "en")].append(i)
        for lang, idx in todo.items():
            for i, p in zip(idx, phonemize([self.entries[i]["text"] for i in idx], lang)):
                out[i] = phoneme_ids(p, what=f"utterance {self.entries[i]['id']!r}")
        return out  # type: ignore[return-value]

    @property
    def durations(self) -> list[float]:
        return [d + self.prompt_seconds for d in self.base.durations]  # what a batch holds: target + prompt

    def __getitem__(self, i: int) -> dict:
        rng = self.rng(i)
        codes, frame_rate = self.codes(i)
        P = max(1, round(self.prompt_seconds * frame_rate))
        others = self.others(i)
        T = codes.shape[1]
        if others and (T < 2 or rng.random() >= self.prefix_prob):
            prompt, _ = self.codes(rng.choice(others))
            if prompt.shape[1] > P:
                s = rng.randrange(prompt.shape[1] - P + 1)
                prompt = prompt[:, s : s + P]
            target, scored = codes, False
        else:
            n = min(P, max(1, int(T * rng.uniform(0.25, 0.5)))) if T >= 2 else 0
            prompt, target, scored = codes[:, :n], codes[:, n:], True
        return {"id": self.entries[i]["id"], "text": torch.tensor(self.text[i], device="cpu"), "prompt": prompt, "target": target,
                "prompt_scored": scored}


def collate_valle(items: list[dict]) -> dict:
    """Pad each field to the batch's longest; lengths alongside."""
    B, Q = len(items), items[0]["target"].shape[0]

    def pad(key: str) -> tuple[torch.Tensor, torch.Tensor]:
        lens = torch.tensor([it[key].shape[-1] for it in items], device="cpu")
        shape = (B, int(lens.max())) if key == "text" else (B, Q, int(lens.max()))
        out = torch.zeros(shape, dtype=torch.long, device="cpu")
        for b, it in enumerate(items):
            out[b, ..., : it[key].shape[-1]] = it[key]
        return out, lens

    text, text_lens = pad("text")
    prompt, prompt_lens = pad("prompt")
    target, target_lens = pad("target")
    return {"id": [it["id"] for it in items], "text": text, "text_lens": text_lens, "prompt": prompt,
            "prompt_lens": prompt_lens, "target": target, "target_lens": target_lens,
            "prompt_scored": torch.tensor([it["prompt_scored"] for it in items], device="cpu")}


def _text_section(batch: dict, S: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    B = batch["text"].shape[0]
    Lx = batch["text"].shape[1]
    tokens = torch.zeros(B, S, dtype=torch.long, device="cpu")
    kind = torch.zeros(B, S, dtype=torch.long, device="cpu")
    pos = torch.zeros(B, S, dtype=torch.long, device="cpu")
    tokens[:, :Lx] = batch["text"]
    ar = torch.arange(Lx, device="cpu")
    kind[:, :Lx] = torch.where(ar[None] < batch["text_lens"][:, None], TEXT, 0)
    pos[:, :Lx] = ar
    return tokens, kind, pos, Lx


def ar_inputs(batch: dict, bos: int, eos: int, ignore_index: int = -100, voice_bos: int | None = None) -> dict:
    """The AR layout: ``[phonemes | pad | bos, prompt c1, target c1 | pad]`` with targets shifted by one and
    an end token after the target. Prompt frames are scored only when they are the utterance's own prefix;
    a prompt from another utterance starts with ``voice_bos`` (``bos`` when None)."""
    P, T = batch["prompt_lens"], batch["target_lens"]
    La = 1 + P + T
    S = batch["text"].shape[1] + int(La.max())
    tokens, kind, pos, o = _text_section(batch, S)
    targets = torch.full_like(tokens, ignore_index)
    for b in range(tokens.shape[0]):
        p, t = int(P[b]), int(T[b])
        c1 = torch.cat([batch["prompt"][b, 0, :p], batch["target"][b, 0, :t]])
        n = 1 + p + t
        start_token = bos if voice_bos is None or batch["prompt_scored"][b] else voice_bos
        tokens[b, o : o + n] = torch.cat([torch.tensor([start_token], device="cpu"), c1])
        kind[b, o : o + n] = AUDIO
        pos[b, o : o + n] = torch.arange(n, device="cpu")
        start = 0 if batch["prompt_scored"][b] else p
        targets[b, o + start : o + n] = torch.cat([c1, torch.tensor([eos], device="cpu")])[start:]
    return {"tokens": tokens, "kind": kind, "pos": pos, "targets": targets}


def nar_inputs(batch: dict, stage: torch.Tensor, ignore_index: int = -100) -> dict:
    """The NAR layout: ``[phonemes | pad | prompt (all codebooks), target (codebooks < stage) | pad]``; targets
    are the target's codebook ``stage`` (0-based, per item)."""
    P, T = batch["prompt_lens"], batch["target_lens"]
    Q = batch["target"].shape[1]
    S = batch["text"].shape[1] + int((P + T).max())
    tokens, kind, pos, o = _text_section(batch, S)
    B = tokens.shape[0]
    codes = torch.zeros(B, Q, S, dtype=torch.long, device="cpu")
    n_sum = torch.zeros(B, S, dtype=torch.long, device="cpu")
    targets = torch.full_like(tokens, ignore_index)
    for b in range(B):
        p, t = int(P[b]), int(T[b])
        codes[b, :, o : o + p] = batch["prompt"][b, :, :p]
        codes[b, :, o + p : o + p + t] = batch["target"][b, :, :t]
        kind[b, o : o + p + t] = AUDIO
        pos[b, o : o + p + t] = torch.arange(p + t, device="cpu")
        n_sum[b, o : o + p] = Q
        n_sum[b, o + p : o + p + t] = stage[b]
        targets[b, o + p : o + p + t] = batch["target"][b, stage[b], :t]
    return {"tokens": tokens, "kind": kind, "pos": pos, "codes": codes, "n_sum": n_sum, "targets": targets}


class ValleDataModule(SpeechDataModule):
    """:class:`SpeechDataModule` over tokenized manifests, with prompts paired as :class:`ValleDataset` does.

    Extra args: ``prompt_seconds`` (prompt crop, 3 s as in the paper), ``prefix_prob`` (share of prompts taken
    from the utterance itself).
    """

    def __init__(self, train_manifest: str, val_manifest: str | None = None, test_manifest: str | None = None,
                 token_store: str | None = None, prompt_seconds: float = 3.0, prefix_prob: float = 0.5,
                 max_batch_seconds: float = 60.0, max_batch_size: int | None = None, num_buckets: int = 10,
                 min_duration: float | None = None, max_duration: float | None = None, num_workers: int = 0,
                 seed: int = 0, kind: str = "tokens"):
        if kind != "tokens":
            raise ValueError("VALL-E trains on codec tokens: data.kind must be 'tokens' (run `audiokit tokenize` first)")
        super().__init__(train_manifest, val_manifest, test_manifest, kind="tokens", token_store=token_store,
                         max_batch_seconds=max_batch_seconds, max_batch_size=max_batch_size, num_buckets=num_buckets,
                         min_duration=min_duration, max_duration=max_duration, num_workers=num_workers, seed=seed)

    def _dataset(self, manifest: str, train: bool):
        h = self.hparams
        limits = dict(min_duration=h.min_duration, max_duration=h.max_duration) if train else {}
        return ValleDataset(manifest, store=h.token_store, train=train, prompt_seconds=h.prompt_seconds,
                            prefix_prob=h.prefix_prob, seed=h.seed, **limits)

    def _collate(self):
        return collate_valle
