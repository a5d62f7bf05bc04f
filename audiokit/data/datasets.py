"""Datasets over manifests: audio + text, and codec tokens + text, with their collate functions."""
from __future__ import annotations

import os
import random
from collections import defaultdict
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch.utils.data import Dataset

from ..tokens import CodecInfo, CodecTokens, TokenError, TokenStore
from .manifest import entry_audio, read_manifest, read_manifests


def _entries(manifest: str | os.PathLike | Sequence[dict] | Sequence[str | os.PathLike]) -> list[dict]:
    """A manifest path, several paths (read as one), or entries."""
    if isinstance(manifest, (str, os.PathLike)):
        return read_manifest(manifest)
    items = list(manifest)
    if items and all(isinstance(m, (str, os.PathLike)) for m in items):
        return read_manifests(items)
    return items


def _filter(entries: list[dict], min_duration: float | None, max_duration: float | None) -> list[dict]:
    return [
        e for e in entries
        if (min_duration is None or e["duration"] >= min_duration) and (max_duration is None or e["duration"] <= max_duration)
    ]


class _ManifestDataset(Dataset):
    """Entries of a manifest (path or list), filtered by duration; subclasses load one item."""

    def __init__(self, manifest, min_duration: float | None, max_duration: float | None,
                 transform: Callable[[dict], dict] | None):
        self.entries = _filter(_entries(manifest), min_duration, max_duration)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def durations(self) -> list[float]:
        return [e["duration"] for e in self.entries]

    def _item(self, e: dict, key: str, value) -> dict:
        item = {"id": e["id"], key: value, "text": e.get("text", ""), "speaker": e.get("speaker", ""), "duration": e["duration"]}
        return self.transform(item) if self.transform else item


class AudioTextDataset(_ManifestDataset):
    """Items ``{"id", "audio" [T] float32 at sample_rate, "text", "speaker", "duration"}``.

    Args:
        manifest: a JSONL path, a list of paths (read as one), or a list of entries.
        sample_rate: audio is resampled to this rate on load.
        min_duration, max_duration: utterances outside this range (seconds) are left out.
        segment_seconds: crop every item to this length (zero-padded if shorter), as codec training does;
            the crop is random when ``random_crop`` else taken from the start.
        transform: optional function applied to each item dict.
    """

    def __init__(self, manifest, sample_rate: int, min_duration: float | None = None, max_duration: float | None = None,
                 segment_seconds: float | None = None, random_crop: bool = True,
                 transform: Callable[[dict], dict] | None = None):
        super().__init__(manifest, min_duration, max_duration, transform)
        self.sample_rate = sample_rate
        self.segment = int(segment_seconds * sample_rate) if segment_seconds else None
        self.random_crop = random_crop

    @property
    def durations(self) -> list[float]:
        d = super().durations
        return [min(x, self.segment / self.sample_rate) for x in d] if self.segment else d

    def __getitem__(self, i: int) -> dict:
        e = self.entries[i]
        wav, _ = entry_audio(e, self.sample_rate)
        if self.segment:
            wav = self._crop(wav)
        return self._item(e, "audio", wav)

    def _crop(self, wav: torch.Tensor) -> torch.Tensor:
        n = self.segment
        if wav.shape[-1] < n:
            return torch.nn.functional.pad(wav, (0, n - wav.shape[-1]))
        start = int(torch.randint(0, wav.shape[-1] - n + 1, (), device="cpu")) if self.random_crop else 0
        return wav[start : start + n]


def collate_audio(items: list[dict]) -> dict:
    """Pad waveforms to ``[B, T]`` with ``audio_lengths`` ``[B]``; other fields become lists."""
    lengths = torch.tensor([it["audio"].shape[-1] for it in items], dtype=torch.int64, device="cpu")
    audio = torch.zeros(len(items), int(lengths.max()), dtype=items[0]["audio"].dtype, device="cpu")
    for b, it in enumerate(items):
        audio[b, : it["audio"].shape[-1]] = it["audio"]
    out = {k: [it[k] for it in items] for k in items[0] if k != "audio"}
    out["audio"], out["audio_lengths"] = audio, lengths
    return out


class TokenTextDataset(_ManifestDataset):
    """Items ``{"id", "tokens" (CodecTokens, batch of 1), "text", "speaker", "duration"}``.

    Each entry's ``tokens`` field is a CodecTokens file path, or ``store:ID`` with ``store`` given.
    With ``codec`` given, tokens of any other codec are refused when read.
    """

    def __init__(self, manifest, codec: CodecInfo | None = None, store: str | os.PathLike | TokenStore | None = None,
                 min_duration: float | None = None, max_duration: float | None = None,
                 transform: Callable[[dict], dict] | None = None):
        super().__init__(manifest, min_duration, max_duration, transform)
        self.store = store if isinstance(store, TokenStore) or store is None else TokenStore(store, expected=codec)
        self.codec = codec if codec is not None else (self.store.codec if self.store is not None else None)
        for e in self.entries:
            ref = e.get("tokens")
            if not ref:
                raise TokenError(f"manifest entry {e['id']!r} has no 'tokens' field; run `audiokit tokenize` first")
            if ref.startswith("store:") and self.store is None:
                raise TokenError(f"entry {e['id']!r} refers to a token store ({ref}) but no store was given")

    def __getitem__(self, i: int) -> dict:
        e = self.entries[i]
        ref = e["tokens"]
        if ref.startswith("store:"):
            tokens = self.store[ref[len("store:"):]]
        else:
            tokens = CodecTokens.load(Path(ref), expected=self.codec)
        if self.codec is not None:
            tokens.check_codec(self.codec, what=f"tokens of {e['id']!r}")
        return self._item(e, "tokens", tokens)


class SpeakerTokenDataset(Dataset):
    """Base of the TTS datasets: a :class:`TokenTextDataset` whose items are paired with other utterances of
    the same speaker (VALL-E's prompts, Tortoise's voice clips). Training items draw fresh randomness each
    time (:meth:`rng`); validation items (``train=False``) draw the same every epoch."""

    def __init__(self, manifest, codec=None, store=None, train: bool = True, min_duration: float | None = None,
                 max_duration: float | None = None, seed: int = 0):
        self.base = TokenTextDataset(manifest, codec=codec, store=store, min_duration=min_duration, max_duration=max_duration)
        self.entries = self.base.entries
        if not self.entries:
            raise ValueError("the manifest holds no utterances in the duration range")
        self.train, self.seed = train, seed
        self.by_speaker: dict[str, list[int]] = defaultdict(list)
        for i, e in enumerate(self.entries):
            self.by_speaker[e.get("speaker", "")].append(i)

    def __len__(self) -> int:
        return len(self.entries)

    def codes(self, i: int) -> tuple[torch.Tensor, float]:
        """Utterance ``i``'s codes ``[Q, T]`` (padding cut) and the codec's frame rate."""
        tokens = self.base[i]["tokens"]
        return tokens.codes[0, :, : int(tokens.lengths[0])], tokens.frame_rate

    def rng(self, i: int) -> random.Random:
        return random.Random(int(torch.randint(2**62, (), device="cpu")) if self.train else self.seed * 1_000_003 + i)

    def others(self, i: int) -> list[int]:
        """The other utterances of utterance ``i``'s speaker."""
        return [j for j in self.by_speaker[self.entries[i].get("speaker", "")] if j != i]


def collate_tokens(items: list[dict]) -> dict:
    """Batch ``tokens`` into one padded CodecTokens (same codec required); other fields become lists."""
    out = {k: [it[k] for it in items] for k in items[0] if k != "tokens"}
    out["tokens"] = CodecTokens.collate([it["tokens"] for it in items])
    return out
