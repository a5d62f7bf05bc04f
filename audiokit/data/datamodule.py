"""LightningDataModule over manifests, with duration bucketing for training batches."""
from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from ..tokens import CodecInfo
from .datasets import AudioTextDataset, TokenTextDataset, collate_audio, collate_tokens
from .sampler import DurationBucketSampler


class SpeechDataModule(L.LightningDataModule):
    """Train/val/test loaders over JSONL manifests.

    Args:
        train_manifest, val_manifest, test_manifest: JSONL paths (val and test optional); each may also be a
            list of paths read as one (e.g. a synthetic corpus and LibriSpeech together).
        kind: ``"audio"`` (waveform + text) or ``"tokens"`` (CodecTokens + text).
        sample_rate: for ``kind="audio"``, the rate audio is resampled to.
        token_store: for ``kind="tokens"``, a token store folder that ``store:ID`` references point into.
        max_batch_seconds: padded seconds of audio per batch (the bucketing budget).
        max_batch_size: optional cap on utterances per batch.
        min_duration, max_duration: utterances outside this range are left out of training.
        segment_seconds: for ``kind="audio"``, crop items to this length (random crops in training; validation
            and test take the start), as codec training does.

    Training batches come from :class:`DurationBucketSampler`, which splits batches across DDP ranks
    itself; run the Trainer with ``use_distributed_sampler=False``.
    """

    def __init__(
        self,
        train_manifest: str | list[str],
        val_manifest: str | list[str] | None = None,
        test_manifest: str | list[str] | None = None,
        kind: str = "audio",
        sample_rate: int = 24000,
        token_store: str | None = None,
        max_batch_seconds: float = 60.0,
        max_batch_size: int | None = None,
        num_buckets: int = 10,
        min_duration: float | None = None,
        max_duration: float | None = None,
        segment_seconds: float | None = None,
        num_workers: int = 0,
        seed: int = 0,
    ):
        super().__init__()
        if kind not in ("audio", "tokens"):
            raise ValueError(f"kind must be 'audio' or 'tokens', got {kind!r}")
        self.save_hyperparameters()
        self.codec: CodecInfo | None = None
        self.datasets: dict[str, object] = {}

    def _dataset(self, manifest: str | list[str], train: bool):
        h = self.hparams
        limits = dict(min_duration=h.min_duration, max_duration=h.max_duration) if train else {}
        if h.kind == "audio":
            return AudioTextDataset(manifest, sample_rate=h.sample_rate, segment_seconds=h.segment_seconds,
                                    random_crop=train, **limits)
        return TokenTextDataset(manifest, codec=self.codec, store=h.token_store, **limits)

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        if stage in (None, "fit") and "train" not in self.datasets:
            self.datasets["train"] = self._dataset(h.train_manifest, train=True)
        if stage in (None, "fit", "validate") and h.val_manifest and "val" not in self.datasets:
            self.datasets["val"] = self._dataset(h.val_manifest, train=False)
        if stage in (None, "test") and h.test_manifest and "test" not in self.datasets:
            self.datasets["test"] = self._dataset(h.test_manifest, train=False)

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        h = self.hparams
        ds = self.datasets[name]
        sampler = DurationBucketSampler(
            ds.durations, max_batch_seconds=h.max_batch_seconds, max_batch_size=h.max_batch_size,
            num_buckets=h.num_buckets, shuffle=shuffle, seed=h.seed,
        )
        return DataLoader(ds, batch_sampler=sampler, collate_fn=self._collate(), num_workers=h.num_workers,
                          persistent_workers=h.num_workers > 0)

    def _collate(self):
        return collate_audio if self.hparams.kind == "audio" else collate_tokens

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self):
        return self._loader("val", shuffle=False) if "val" in self.datasets else []

    def test_dataloader(self):
        return self._loader("test", shuffle=False) if "test" in self.datasets else []
