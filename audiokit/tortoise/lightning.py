"""Tortoise training: one LightningModule per recipe stage, all over :class:`~audiokit.tortoise.data.TortoiseDataModule`.

- ``audiokit train tortoise-ar`` — :class:`TortoiseARModule`: speech-token cross-entropy (+ a small text loss),
  logs ``speech_acc``;
- ``audiokit train clvp`` — :class:`CLVPModule`: symmetric contrastive loss, logs ``retrieval_acc`` (text →
  its own speech among the batch);
- ``audiokit train diffusion`` — :class:`DiffusionModule`: the diffusion decoder on the codec's latents,
  conditioned on first-codebook *token embeddings* (stage 1 of the Tortoise trick), logs the loss per noise
  level (``loss_t0`` … ``loss_t3``, quarters of the schedule, low noise first);
- ``audiokit train diffusion-ar-latents`` — :class:`DiffusionARLatentsModule`: the same decoder, started from a
  stage-1 checkpoint and fine-tuned on the frozen AR model's latents (stage 2).

Checkpoints carry ``checkpoint["tortoise"]``: the stage, the model's sizes, the codec the tokens came from and
the BPE tokenizer itself (export needs nothing else).
"""
from __future__ import annotations

import os
import random
from typing import Sequence

import lightning as L
import torch

from ..fileio import load_torch_file
from ..nn.diffusion import make_process
from ..nn.optim import adamw_warmup_linear
from ..tokens import CodecInfo, CodecMismatchError
from .diffusion import DiffusionDecoder
from .model import CLVP, TortoiseAR, TortoiseDims, framed

STAGES = ("ar", "clvp", "diffusion", "diffusion-ar-latents")
NOISE_BINS = 4


class CheckpointStageError(ValueError):
    """A checkpoint that is not the Tortoise stage asked for (or no Tortoise checkpoint at all)."""


def read_checkpoint(path: str | os.PathLike, stages: Sequence[str], error: type[Exception] = CheckpointStageError) -> tuple[dict, dict]:
    """``(checkpoint["tortoise"], model state)`` of a Tortoise training checkpoint of one of ``stages``."""
    if not os.path.isfile(path):
        raise error(f"{path}: no such checkpoint")
    ckpt = load_torch_file(path, error)
    meta = ckpt.get("tortoise") if isinstance(ckpt, dict) else None
    if not meta or meta.get("stage") not in stages:
        found = f"a Tortoise {meta['stage']} checkpoint" if meta else "not a Tortoise training checkpoint"
        raise error(f"{path}: expected a Tortoise {' or '.join(stages)} checkpoint, found {found}")
    state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    return meta, state


def batch_text(batch: dict, start: int | None, stop: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    return framed([t[:n] for t, n in zip(batch["text"], batch["text_lens"].tolist())], start, stop)


def batch_speech(batch: dict, start: int | None, stop: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    return framed([c[0, :n] for c, n in zip(batch["codes"], batch["code_lens"].tolist())], start, stop)


def batch_voice(encoder, batch: dict, device) -> torch.Tensor:
    """One voice latent per item: the mean of its clips' latents."""
    lat = encoder(batch["voice"].to(device), batch["voice_frames"].to(device))
    return lat.view(-1, batch["voice_clips"], lat.shape[-1]).mean(1)


CORRUPTIONS = ("drop", "repeat", "swap")


def corrupt_speech(seqs: list[torch.Tensor], rng: random.Random, span: tuple[float, float] = (0.1, 0.3)) -> list[torch.Tensor]:
    """A near miss of each token sequence: a span of ``span`` of its length (at least one token) dropped,
    repeated in place, or swapped for a span of another sequence of the batch — the errors an AR makes (a
    skipped word, a stutter or loop, a wrong word). CLVP's hard negatives (:meth:`CLVP.loss`)."""
    out = []
    for i, seq in enumerate(seqs):
        n = len(seq)
        w = max(1, min(n - 1, round(n * rng.uniform(*span)))) if n > 1 else 1
        a = rng.randrange(0, max(1, n - w + 1))
        kind = rng.choice(CORRUPTIONS if len(seqs) > 1 else CORRUPTIONS[:2])
        if kind == "drop" and n > 1:
            new = torch.cat([seq[:a], seq[a + w:]])
        elif kind == "swap":
            other = seqs[rng.choice([j for j in range(len(seqs)) if j != i])]
            b = rng.randrange(0, max(1, len(other) - w + 1))
            new = torch.cat([seq[:a], other[b: b + w], seq[a + w:]])
            if torch.equal(new, seq):  # the same tokens there: repeat instead
                new = torch.cat([seq[: a + w], seq[a: a + w], seq[a + w:]])
        else:
            new = torch.cat([seq[: a + w], seq[a: a + w], seq[a + w:]])
        out.append(new)
    return out


class _TortoiseModule(L.LightningModule):
    """Shared: AdamW with warm-up and linear decay, and the codec/tokenizer bookkeeping."""

    stage = ""

    def __init__(self):
        super().__init__()
        self.codec_info: CodecInfo | None = None
        self.tokenizer_json: str | None = None

    def _expect(self, codebook_size: int, text_vocab: int | None) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        ds = getattr(dm, "datasets", {}).get("train") if dm is not None else None
        if ds is None:
            return
        codec = ds.base[0]["tokens"].codec
        if codec.codebook_size != codebook_size:
            raise CodecMismatchError(f"the model is configured for codebooks of {codebook_size} codes, but the tokens "
                                     f"come from {codec.describe()}: set model.codebook_size to match")
        if self.codec_info is not None:
            self.codec_info.check_same(codec, what="training tokens")
        self.codec_info = codec
        if text_vocab is not None and ds.tokenizer.vocab_size > text_vocab:
            raise ValueError(f"model.text_vocab is {text_vocab} but the tokenizer has {ds.tokenizer.vocab_size} "
                             f"tokens: set model.text_vocab to at least {ds.tokenizer.vocab_size}")
        self.tokenizer_json = ds.tokenizer.to_json()

    def _meta(self) -> dict:
        return {}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["tortoise"] = {"stage": self.stage, "codec": self.codec_info.to_dict() if self.codec_info else None,
                                  "tokenizer": self.tokenizer_json, **self._meta()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        meta = checkpoint.get("tortoise", {})
        self.codec_info = CodecInfo.from_dict(meta["codec"]) if meta.get("codec") else None
        self.tokenizer_json = meta.get("tokenizer")

    def configure_optimizers(self):
        h = self.hparams
        return adamw_warmup_linear(self.model, self.trainer, h.lr, h.betas, h.eps, h.weight_decay, h.warmup_steps,
                                   h.final_lr_fraction)


_OPT_DEFAULTS = dict(lr=3e-4, betas=(0.9, 0.96), eps=1e-8, weight_decay=0.01, warmup_steps=500, final_lr_fraction=0.0)


class TortoiseARModule(_TortoiseModule):
    """Trains :class:`~audiokit.tortoise.model.TortoiseAR` (and its conditioning encoder).

    Args: the :class:`~audiokit.tortoise.model.TortoiseDims` fields the AR uses (``text_vocab`` = the BPE's
    size, ``codebook_size`` / ``n_codebooks`` = the codec's), ``text_loss_weight`` (the original's 0.01), and
    AdamW's settings.
    """

    stage = "ar"

    def __init__(self, text_vocab: int, codebook_size: int, n_codebooks: int = 8, d_model: int = 1024, n_head: int = 16,
                 n_layer: int = 30, n_cond_layer: int = 6, max_text: int = 400, max_speech: int = 1000,
                 dropout: float = 0.1, text_loss_weight: float = 0.01, lr: float = 3e-4,
                 betas: Sequence[float] = (0.9, 0.96), eps: float = 1e-8, weight_decay: float = 0.01,
                 warmup_steps: int = 500, final_lr_fraction: float = 0.0):
        super().__init__()
        self.save_hyperparameters()
        self.dims = TortoiseDims(text_vocab=text_vocab, codebook_size=codebook_size, n_codebooks=n_codebooks,
                                 d_model=d_model, n_head=n_head, n_layer=n_layer, n_cond_layer=n_cond_layer,
                                 max_text=max_text, max_speech=max_speech, dropout=dropout)
        self.model = TortoiseAR(self.dims)

    def on_fit_start(self) -> None:
        self._expect(self.dims.codebook_size, self.dims.text_vocab)

    def _meta(self) -> dict:
        return {"dims": self.dims.to_dict()}

    def _step(self, batch: dict, split: str) -> torch.Tensor:
        m, dev = self.model, self.device
        t, tv = batch_text(batch, m.start_text, m.stop_text)
        s, sv = batch_speech(batch, m.start_speech, m.stop_speech)
        out = m.losses(batch_voice(m.conditioning, batch, dev), t.to(dev), tv.to(dev), s.to(dev), sv.to(dev))
        loss = out["speech_loss"] + self.hparams.text_loss_weight * out["text_loss"]
        B = len(batch["id"])
        self.log(f"{split}/loss", loss, prog_bar=True, batch_size=B, sync_dist=split == "val")
        self.log(f"{split}/speech_loss", out["speech_loss"], batch_size=B, sync_dist=split == "val")
        self.log(f"{split}/speech_acc", out["speech_acc"], batch_size=B, sync_dist=split == "val")
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")


class CLVPModule(_TortoiseModule):
    """Trains :class:`~audiokit.tortoise.model.CLVP` on (text, first-codebook tokens) pairs.

    ``hard_negatives``: each text is also told apart from a near miss of its own speech (a span dropped,
    repeated or swapped for another utterance's: :func:`corrupt_speech`), not only from the batch's other
    utterances; at inference CLVP ranks candidates for one text, which differ that way (session 27: without them,
    CLVP's pick of the digits Tortoise on units was no better than a random candidate)."""

    stage = "clvp"

    def __init__(self, text_vocab: int, codebook_size: int, clvp_layer: int = 20, clvp_dim: int = 768,
                 clvp_latent: int = 512, max_text: int = 400, max_speech: int = 1000, dropout: float = 0.1,
                 lr: float = 3e-4, betas: Sequence[float] = (0.9, 0.96), eps: float = 1e-8, weight_decay: float = 0.01,
                 warmup_steps: int = 500, final_lr_fraction: float = 0.0, hard_negatives: bool = False):
        super().__init__()
        self.save_hyperparameters()
        self.dims = TortoiseDims(text_vocab=text_vocab, codebook_size=codebook_size, clvp_layer=clvp_layer,
                                 clvp_dim=clvp_dim, clvp_latent=clvp_latent, max_text=max_text, max_speech=max_speech,
                                 dropout=dropout)
        self.model = CLVP(self.dims)

    def on_fit_start(self) -> None:
        self._expect(self.dims.codebook_size, self.dims.text_vocab)

    def _meta(self) -> dict:
        return {"dims": self.dims.to_dict()}

    def _step(self, batch: dict, split: str) -> torch.Tensor:
        dev = self.device
        t, tv = batch_text(batch, None, None)
        s, sv = batch_speech(batch, None, None)
        neg = (None, None)
        if self.hparams.hard_negatives:  # the same near misses at every validation; new ones at every step
            rng = random.Random(f"{split}:{self.global_step if split == 'train' else 0}:{','.join(batch['id'])}")
            seqs = [c[0, :n] for c, n in zip(batch["codes"], batch["code_lens"].tolist())]
            neg = tuple(x.to(dev) for x in framed(corrupt_speech(seqs, rng), None, None))
        loss, acc = self.model.loss(t.to(dev), tv.to(dev), s.to(dev), sv.to(dev), *neg)
        B = len(batch["id"])
        self.log(f"{split}/loss", loss, prog_bar=True, batch_size=B, sync_dist=split == "val")
        self.log(f"{split}/retrieval_acc", acc, batch_size=B, sync_dist=split == "val")
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")


class DiffusionModule(_TortoiseModule):
    """Trains :class:`~audiokit.tortoise.diffusion.DiffusionDecoder` on ``codec.embed`` of the utterance's
    tokens, conditioned on embeddings of its first-codebook tokens (stage 1).

    Args:
        codec: the codec the tokens came from (an exported folder or checkpoint); it stays frozen and outside
            the checkpoint. Its latent size, codebook size and codebooks shape the decoder.
        cond_dim: width of the conditioning sequence — must equal the AR model's ``d_model``, because stage 2
            swaps the token embeddings for the AR latents.
        voice_dim, d_model, n_head, n_layer, n_voice_layer, dropout: network size.
        text_vocab: > 0 makes a decoder that also reads the text (cross-attention; at least the tokenizer's
            size, as the AR's ``text_vocab``), with ``n_text_layer`` blocks encoding it; 0 (the original's
            decoder) reads only the codes or AR latents. ``text_prior``: the width g of the guided-attention
            prior on its cross-attention (:class:`~audiokit.tortoise.diffusion.DiffusionDecoder`; 0: none).
        given_codebooks: g > 0 makes a decoder of the latent less the first g codebooks' share, which the chosen
            candidate's codes give exactly at inference (0: the whole latent, the original's); codebooks: n > 0
            models the latent of the first n codebooks only (0: all).
        prediction: ``"v"`` or ``"eps"`` (DDPM, cosine schedule over ``schedule_steps`` levels, DDIM sampling),
            or ``"flow"`` (rectified flow: velocity target, Euler sampling; :mod:`audiokit.nn.diffusion`);
        cond_drop: share of examples trained without conditioning (classifier-free guidance);
        stats_batches: batches measured for the latents' mean/std before the first step.
    """

    stage = "diffusion"

    def __init__(self, codec: str, cond_dim: int = 1024, voice_dim: int = 512, d_model: int = 512, n_head: int = 8,
                 n_layer: int = 8, n_voice_layer: int = 2, dropout: float = 0.0, prediction: str = "v",
                 schedule_steps: int = 1000, cond_drop: float = 0.1, stats_batches: int = 8, lr: float = 3e-4,
                 betas: Sequence[float] = (0.9, 0.96), eps: float = 1e-8, weight_decay: float = 0.01,
                 warmup_steps: int = 500, final_lr_fraction: float = 0.0, text_vocab: int = 0, n_text_layer: int = 2,
                 text_prior: float = 0.2, given_codebooks: int = 0, codebooks: int = 0):
        super().__init__()
        from ..codec.codec import Codec

        self.process = make_process(prediction, schedule_steps)  # an unknown prediction fails here, before loading
        if text_vocab < 0 or text_prior < 0:
            raise ValueError(f"text_vocab and text_prior must be >= 0 (0: no text / no prior), got {text_vocab}, {text_prior}")
        self.save_hyperparameters()
        self.codec = Codec.load(codec)
        info = self.codec.info
        self.model = DiffusionDecoder(latent_dim=self.codec.model.latent_dim, cond_dim=cond_dim, voice_dim=voice_dim,
                                      codebook_size=info.codebook_size, d_model=d_model, n_head=n_head, n_layer=n_layer,
                                      dropout=dropout, n_codebooks=info.n_codebooks, n_voice_layer=n_voice_layer,
                                      text_vocab=text_vocab, n_text_layer=n_text_layer, text_prior=text_prior,
                                      given_codebooks=given_codebooks, codebooks=codebooks)
        self.codec_info = info
        self.register_buffer("stats_ready", torch.tensor(False))

    def on_fit_start(self) -> None:
        self._expect(self.codec_info.codebook_size, self.model.text_vocab or None)
        self.codec.to(self.device)
        if not bool(self.stats_ready):
            self._measure_latents()

    def _meta(self) -> dict:
        return {"config": self.model.config, "prediction": self.hparams.prediction,
                "schedule_steps": self.hparams.schedule_steps}

    @torch.no_grad()
    def _latents(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Codec latents ``[B, T, D]`` of the batch's tokens and their validity ``[B, T]``."""
        codes = batch["codes"].to(self.device)
        z = self.model.target(self.codec.model, codes)
        valid = torch.arange(codes.shape[-1], device=self.device)[None] < batch["code_lens"].to(self.device)[:, None]
        return z, valid

    @torch.no_grad()
    def _measure_latents(self, batches=None) -> None:
        """The latents' per-channel mean/std over ``stats_batches`` batches (the training loader's by default)."""
        loader = self.trainer.datamodule.train_dataloader() if batches is None else batches
        frames = []
        for i, batch in enumerate(loader):
            if i >= self.hparams.stats_batches:
                break
            z, valid = self._latents(batch)
            frames.append(z[valid])
        z = torch.cat(frames)
        self.model.latent_mean.copy_(z.mean(0))
        self.model.latent_std.copy_(z.std(0).clamp(min=1e-4))
        self.stats_ready.fill_(True)

    def conditioning(self, batch: dict) -> torch.Tensor:
        """Stage 1: embeddings of the first-codebook tokens ``[B, T, cond_dim]``."""
        return self.model.cond_from_codes(batch["codes"][:, 0].to(self.device))

    def _step(self, batch: dict, split: str, generator: torch.Generator | None = None) -> torch.Tensor:
        z, valid = self._latents(batch)
        x0 = self.model.normalize(z)
        B = x0.shape[0]
        t = self.process.draw(B, generator).to(self.device)
        noise = torch.randn(x0.shape, generator=generator, device="cpu").to(self.device)
        drop = (torch.rand(B, generator=generator, device="cpu") < self.hparams.cond_drop).to(self.device) if split == "train" else None
        voice = batch_voice(self.model.voice_encoder, batch, self.device)
        x_t = self.process.noisy(x0, t, noise)
        text = text_valid = None
        if self.model.text_vocab:
            text = batch["text"].to(self.device)
            text_valid = torch.arange(text.shape[1], device=self.device)[None] < batch["text_lens"].to(self.device)[:, None]
        out = self.model(x_t, self.process.net_time(t), self.conditioning(batch), voice, valid=valid, drop=drop,
                         text=text, text_valid=text_valid)
        err = (out.float() - self.process.target(x0, noise, t)).pow(2).mean(-1)
        per_item = (err * valid).sum(1) / valid.sum(1)
        loss = per_item.mean()
        self.log(f"{split}/loss", loss, prog_bar=True, batch_size=B, sync_dist=split == "val")
        bins = (self.process.level(t) * NOISE_BINS).long().clamp(max=NOISE_BINS - 1)
        for k in bins.unique().tolist():
            rows = bins == k
            self.log(f"{split}/loss_t{k}", per_item[rows].mean(), batch_size=int(rows.sum()), sync_dist=split == "val")
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val", torch.Generator().manual_seed(batch_idx))  # the same noise every validation


class DiffusionARLatentsModule(DiffusionModule):
    """Stage 2 of the Tortoise trick: the stage-1 decoder (``init_from``) fine-tuned on the latents of the
    frozen AR model (``ar_checkpoint``), teacher-forced on the utterance's own tokens, as at inference the AR
    latents of the chosen candidate condition it. ``cond_dim`` must be the AR's ``d_model``."""

    stage = "diffusion-ar-latents"

    def __init__(self, codec: str, ar_checkpoint: str, init_from: str | None = None, cond_dim: int = 1024,
                 voice_dim: int = 512, d_model: int = 512, n_head: int = 8, n_layer: int = 8, n_voice_layer: int = 2,
                 dropout: float = 0.0, prediction: str = "v", schedule_steps: int = 1000, cond_drop: float = 0.1,
                 stats_batches: int = 8, lr: float = 1e-4, betas: Sequence[float] = (0.9, 0.96), eps: float = 1e-8,
                 weight_decay: float = 0.01, warmup_steps: int = 100, final_lr_fraction: float = 0.0,
                 text_vocab: int = 0, n_text_layer: int = 2, text_prior: float = 0.2, given_codebooks: int = 0,
                 codebooks: int = 0):
        super().__init__(codec, cond_dim=cond_dim, voice_dim=voice_dim, d_model=d_model, n_head=n_head, n_layer=n_layer,
                         n_voice_layer=n_voice_layer, dropout=dropout, prediction=prediction,
                         schedule_steps=schedule_steps, cond_drop=cond_drop, stats_batches=stats_batches, lr=lr,
                         betas=betas, eps=eps, weight_decay=weight_decay, warmup_steps=warmup_steps,
                         final_lr_fraction=final_lr_fraction, text_vocab=text_vocab, n_text_layer=n_text_layer,
                         text_prior=text_prior, given_codebooks=given_codebooks, codebooks=codebooks)
        self.save_hyperparameters()
        meta, state = read_checkpoint(ar_checkpoint, ("ar",))
        dims = TortoiseDims.from_dict(meta["dims"])
        if dims.d_model != cond_dim:
            raise ValueError(f"cond_dim is {cond_dim} but the AR model's latents are {dims.d_model} wide: "
                             f"set model.cond_dim {dims.d_model} (and train stage 1 with it)")
        if meta.get("codec"):
            self.codec_info.check_same(CodecInfo.from_dict(meta["codec"]), what=f"{ar_checkpoint} (the AR's tokens)")
        ar = TortoiseAR(dims)
        ar.load_state_dict(state)
        self.ar = [ar.eval().requires_grad_(False)]  # a list: frozen, outside this module's state and optimizer
        if init_from:
            meta1, state1 = read_checkpoint(init_from, ("diffusion", "diffusion-ar-latents"))
            if meta1.get("config") != self.model.config:
                raise ValueError(f"{init_from}: its decoder {meta1.get('config')} differs from this one {self.model.config}")
            if meta1.get("prediction", "v") != prediction:
                raise ValueError(f"{init_from} was trained with prediction {meta1.get('prediction', 'v')!r}; "
                                 f"fine-tune it with the same (model.prediction), not {prediction!r}")
            self.model.load_state_dict(state1)
            self.stats_ready.fill_(True)

    def on_fit_start(self) -> None:
        self.ar[0].to(self.device)
        super().on_fit_start()

    @torch.no_grad()
    def conditioning(self, batch: dict) -> torch.Tensor:
        """The AR model's latents at each frame of the utterance ``[B, T, d]`` (teacher-forced)."""
        ar, dev = self.ar[0], self.device
        t, tv = batch_text(batch, ar.start_text, ar.stop_text)
        s, sv = batch_speech(batch, ar.start_speech, ar.stop_speech)
        voice = batch_voice(ar.conditioning, batch, dev)
        hs = ar.losses(voice, t.to(dev), tv.to(dev), s.to(dev), sv.to(dev))["latents"]
        return hs[:, 1 : 1 + batch["codes"].shape[-1]].float()
