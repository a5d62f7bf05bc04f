"""Tortoise training data: BPE text + the utterance's codec tokens + reference clips of the same voice.

Every Tortoise model trains on the same items, so one DataModule serves all four stages:

- ``text``: BPE ids (the corpus tokenizer, recipe stage 1) of the normalized transcript;
- ``codes``: the utterance's codec tokens, all codebooks (the AR and CLVP read the first; the diffusion
  decoder's target is ``codec.embed`` of all of them);
- ``voice``: ``voice_clips`` random crops (≤ ``voice_seconds``) of *other* utterances of the same speaker —
  the conditioning the models see at inference, where the reference clips never say the text. A speaker with
  one utterance lends its own.
"""
from __future__ import annotations


import torch

from ..data.datamodule import SpeechDataModule
from ..data.datasets import SpeakerTokenDataset
from ..text.normalize import normalize_text
from ..text.phonemes import TextError


def load_tokenizer(path):
    from ..text.bpe import BPETokenizer

    return BPETokenizer.load(path)


def text_ids(tokenizer, text: str, what: str = "text") -> list[int]:
    """BPE ids of the normalized text; nothing left to say is a :class:`TextError`."""
    text = normalize_text(text).strip() if isinstance(text, str) else ""
    if not any(c.isalnum() for c in text):
        raise TextError(f"{what} has nothing to pronounce: {text[:80]!r}")
    return tokenizer.encode(text)


class TortoiseDataset(SpeakerTokenDataset):
    """Items ``{"id", "text" [L], "codes" [Q, T], "voice" [V, Q, P], "voice_frames" [V]}`` over a tokenized
    manifest. Validation items (``train=False``) draw the same clips every epoch."""

    def __init__(self, manifest, tokenizer, codec=None, store=None, train: bool = True, voice_seconds: float = 3.0,
                 voice_clips: int = 2, min_duration: float | None = None, max_duration: float | None = None,
                 seed: int = 0):
        if voice_clips < 1:
            raise ValueError(f"voice_clips must be >= 1, got {voice_clips}")
        super().__init__(manifest, codec=codec, store=store, train=train, min_duration=min_duration,
                         max_duration=max_duration, seed=seed)
        self.tokenizer = tokenizer if hasattr(tokenizer, "encode") else load_tokenizer(tokenizer)
        self.voice_seconds, self.voice_clips = voice_seconds, voice_clips
        self.text = [text_ids(self.tokenizer, e.get("text", ""), what=f"utterance {e['id']!r}") for e in self.entries]

    @property
    def durations(self) -> list[float]:
        return [d + self.voice_clips * self.voice_seconds for d in self.base.durations]

    def __getitem__(self, i: int) -> dict:
        rng = self.rng(i)
        codes, frame_rate = self.codes(i)
        P = max(1, round(self.voice_seconds * frame_rate))
        others = self.others(i) or [i]
        clips = []
        for _ in range(self.voice_clips):
            c = codes if (j := rng.choice(others)) == i else self.codes(j)[0]
            s = rng.randrange(c.shape[1] - P + 1) if c.shape[1] > P else 0
            clips.append(c[:, s : s + P])
        frames = torch.tensor([c.shape[1] for c in clips], device="cpu")
        voice = torch.zeros(len(clips), codes.shape[0], int(frames.max()), dtype=torch.long, device="cpu")
        for v, c in enumerate(clips):
            voice[v, :, : c.shape[1]] = c
        return {"id": self.entries[i]["id"], "text": torch.tensor(self.text[i], device="cpu"), "codes": codes, "voice": voice,
                "voice_frames": frames}


def collate_tortoise(items: list[dict]) -> dict:
    """``text`` ``[B, L]`` + ``text_lens``; ``codes`` ``[B, Q, T]`` + ``code_lens``; ``voice`` ``[B·V, Q, P]`` +
    ``voice_frames`` (clip ``b·V + v`` is item b's v-th), ``voice_clips`` = V."""
    B, V = len(items), items[0]["voice"].shape[0]
    Q = items[0]["codes"].shape[0]
    text_lens = torch.tensor([len(it["text"]) for it in items], device="cpu")
    code_lens = torch.tensor([it["codes"].shape[1] for it in items], device="cpu")
    text = torch.zeros(B, int(text_lens.max()), dtype=torch.long, device="cpu")
    codes = torch.zeros(B, Q, int(code_lens.max()), dtype=torch.long, device="cpu")
    P = max(it["voice"].shape[-1] for it in items)
    voice = torch.zeros(B * V, Q, P, dtype=torch.long, device="cpu")
    for b, it in enumerate(items):
        text[b, : len(it["text"])] = it["text"]
        codes[b, :, : it["codes"].shape[1]] = it["codes"]
        voice[b * V : (b + 1) * V, :, : it["voice"].shape[-1]] = it["voice"]
    return {"id": [it["id"] for it in items], "text": text, "text_lens": text_lens, "codes": codes,
            "code_lens": code_lens, "voice": voice, "voice_frames": torch.cat([it["voice_frames"] for it in items]),
            "voice_clips": V}


class TortoiseDataModule(SpeechDataModule):
    """:class:`SpeechDataModule` over tokenized manifests, items as :class:`TortoiseDataset` makes them.

    Extra args: ``tokenizer`` (the BPE JSON, ``audiokit data bpe``), ``voice_seconds`` (crop of each
    reference clip), ``voice_clips`` (clips per item; a voice is their mean).
    """

    def __init__(self, train_manifest: str, tokenizer: str, val_manifest: str | None = None,
                 test_manifest: str | None = None, token_store: str | None = None, voice_seconds: float = 3.0,
                 voice_clips: int = 2, max_batch_seconds: float = 60.0, max_batch_size: int | None = None,
                 num_buckets: int = 10, min_duration: float | None = None, max_duration: float | None = None,
                 num_workers: int = 0, seed: int = 0, kind: str = "tokens"):
        if kind != "tokens":
            raise ValueError("Tortoise trains on codec tokens: data.kind must be 'tokens' (run `audiokit tokenize` first)")
        super().__init__(train_manifest, val_manifest, test_manifest, kind="tokens", token_store=token_store,
                         max_batch_seconds=max_batch_seconds, max_batch_size=max_batch_size, num_buckets=num_buckets,
                         min_duration=min_duration, max_duration=max_duration, num_workers=num_workers, seed=seed)
        self.tokenizer = load_tokenizer(tokenizer)

    def _dataset(self, manifest: str, train: bool):
        h = self.hparams
        limits = dict(min_duration=h.min_duration, max_duration=h.max_duration) if train else {}
        return TortoiseDataset(manifest, self.tokenizer, store=h.token_store, train=train, voice_seconds=h.voice_seconds,
                               voice_clips=h.voice_clips, seed=h.seed, **limits)

    def _collate(self):
        return collate_tortoise
