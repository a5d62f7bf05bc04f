"""Corpus tokenization through ``trainer.predict``: every device Lightning can use encodes its share.

Each rank writes its own token store part (``OUT/part-R``); rank 0 then merges the parts' indices into one
:class:`TokenStore` at ``OUT`` (the shards stay where they are) and writes, for every input manifest, a copy
with ``tokens: store:ID`` references next to it in ``OUT``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader

from ..data.datasets import AudioTextDataset, collate_audio
from ..data.manifest import read_manifest, write_manifest
from ..data.sampler import DurationBucketSampler
from ..fileio import atomic_path
from ..progress import Progress
from ..tokens import STORE_FORMAT_NAME, FORMAT_VERSION, TokenStore, TokenStoreWriter
from .codec import Codec


class TokenizeModule(L.LightningModule):
    def __init__(self, codec: Codec, n_q: int):
        super().__init__()
        self.codec = codec
        self.model = codec.model  # registered, so Lightning moves it to the device
        self.n_q = n_q

    def predict_step(self, batch, batch_idx):
        items = [batch["audio"][i, : int(n)] for i, n in enumerate(batch["audio_lengths"])]
        tokens = self.codec.encode(items, self.codec.sample_rate, n_q=self.n_q)
        return {"id": batch["id"], "tokens": tokens}


class _StoreWriter(BasePredictionWriter):
    def __init__(self, out: Path, codec: Codec, n_q: int):
        super().__init__(write_interval="batch")
        self.out, self.codec, self.n_q = out, codec, n_q
        self.writer: TokenStoreWriter | None = None
        self.bar: Progress | None = None  # audiokit's progress (a bar on a terminal, lines in logs): rank 0 only

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        if self.bar is None and trainer.is_global_zero:
            self.bar = Progress(int(sum(trainer.num_predict_batches)), "tokenize", unit="batches")
        if self.bar is not None:
            self.bar.update(1, seconds=float(batch["audio_lengths"].sum()) / self.codec.sample_rate)
        if self.writer is None:
            self.writer = TokenStore.writer(self.out / f"part-{trainer.global_rank}", self.codec.info, self.n_q)
        for uid, item in zip(prediction["id"], prediction["tokens"].unbatch()):
            if uid not in self.writer.items:  # DDP pads the last batches with repeats
                self.writer.add(uid, item)

    def on_predict_end(self, trainer, pl_module):
        if self.writer is not None:
            self.writer.close()


def merge_parts(out: Path, codec: Codec, n_q: int) -> TokenStore:
    items, shards = {}, []
    for part in sorted(p for p in out.glob("part-*") if (p / "index.json").exists()):
        index = json.loads((part / "index.json").read_text())
        base = len(shards)
        shards += [f"{part.name}/{s}" for s in index["shards"]]
        for uid, (shard, offset, n) in index["items"].items():
            items.setdefault(uid, (base + shard, offset, n))
    index = {"format": STORE_FORMAT_NAME, "version": FORMAT_VERSION, "codec": codec.info.to_dict(), "n_q": n_q,
             "shards": shards, "items": items}
    with atomic_path(out / "index.json") as tmp:
        tmp.write_text(json.dumps(index))
    return TokenStore(out)


def tokenize(manifests: list[str], codec: Codec, out: str | os.PathLike, n_q: int | None = None,
             batch_seconds: float = 200.0, trainer_kwargs: dict | None = None) -> TokenStore:
    """Encode every utterance of ``manifests`` into a token store at ``out``; returns the store."""
    out = Path(out)
    if (out / "index.json").exists():
        raise FileExistsError(f"{out}: a token store is already there; choose another --out or delete it")
    n_q = codec.n_q_for(n_q=n_q)
    entries = [e for m in manifests for e in read_manifest(m)]
    if not entries:
        raise ValueError("the manifests hold no utterances")
    ds = AudioTextDataset(entries, sample_rate=codec.sample_rate)
    sampler = DurationBucketSampler(ds.durations, max_batch_seconds=batch_seconds, shuffle=False)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collate_audio)
    kw = dict(accelerator="auto", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
              use_distributed_sampler=False)
    kw.update(trainer_kwargs or {})
    trainer = L.Trainer(callbacks=[_StoreWriter(out, codec, n_q)], **kw)
    with torch.inference_mode():
        trainer.predict(TokenizeModule(codec, n_q), loader, return_predictions=False)
    for cb in trainer.callbacks:
        if isinstance(cb, _StoreWriter) and cb.bar is not None:
            cb.bar.close()
    trainer.strategy.barrier()
    if trainer.is_global_zero:
        store = merge_parts(out, codec, n_q)
        for m in manifests:
            tokenized = [dict(e, tokens=f"store:{e['id']}") for e in read_manifest(m) if e["id"] in store]
            write_manifest(out / Path(m).name, tokenized, relative_to_manifest=False)
    trainer.strategy.barrier()
    return TokenStore(out)
