"""VALL-E training: one LightningModule per model (``audiokit train valle-ar`` / ``valle-nar``).

Both read :class:`~audiokit.valle.data.ValleDataModule` batches (phonemes, prompt codes, target codes) and
log cross-entropy and top-1 accuracy per codebook (``acc_c1`` for the AR; ``acc_c2`` … ``acc_cQ`` for the NAR).
The checkpoint records the codec the tokens came from, so export can refuse a codec that does not match.
"""
from __future__ import annotations

from typing import Sequence

import lightning as L
import torch
import torch.nn.functional as F

from ..nn.optim import adamw_warmup_linear
from ..tokens import CodecInfo, CodecMismatchError
from .data import ar_inputs, nar_inputs
from .model import UnitsDecoder, UnitsDecoderDims, ValleAR, ValleDims, ValleNAR

IGNORE = -100


class _ValleModule(L.LightningModule):
    """Shared: dims, optimizer (AdamW, warm-up, linear decay), codec bookkeeping.

    Args:
        codebook_size, n_codebooks: the codec's (tokens with more codebooks are cut to ``n_codebooks``).
        d_model, n_head, n_layer, dropout: transformer size.
        lr, betas, eps, weight_decay, warmup_steps, final_lr_fraction: AdamW and its schedule.
        label_smoothing: of the cross-entropy.
        scaled_logits: the NAR's tied output layer divided by sqrt(d_model) (:class:`ValleDims`; the AR ignores it).
        table_lr_scale: learning-rate multiplier of the NAR's codebook tables, which are its output layer too
            (N(0, 1) tables read out at 1/sqrt(d): the tied Transformer parametrization, which under Adam wants
            their steps sqrt(d) larger; on the digits corpus codebook 2's loss fell 5.64 against 6.29 in 200
            steps). ``None``: sqrt(d_model) with scaled logits, else 1. A run saved with one learning rate for
            every table resumes so. The AR ignores it.
        prompt_kinds: the AR marks a prompt from another utterance (a voice only) with its own start token
            (:class:`ValleDims`; the NAR ignores it). Off by default so that runs saved before it resume as trained.
    """

    stage = ""
    model_class: type

    def __init__(self, codebook_size: int, n_codebooks: int, d_model: int = 1024, n_head: int = 16, n_layer: int = 12,
                 dropout: float = 0.1, lr: float = 5e-4, betas: Sequence[float] = (0.9, 0.95), eps: float = 1e-8,
                 weight_decay: float = 0.01, warmup_steps: int = 1000, final_lr_fraction: float = 0.0,
                 label_smoothing: float = 0.0, scaled_logits: bool = True, table_lr_scale: float | None = None,
                 prompt_kinds: bool = False):
        super().__init__()
        self.save_hyperparameters()
        self.dims = ValleDims(codebook_size=codebook_size, n_codebooks=n_codebooks, d_model=d_model, n_head=n_head,
                              n_layer=n_layer, dropout=dropout, scaled_logits=scaled_logits, prompt_kinds=prompt_kinds)
        self.model = self.model_class(self.dims)
        self.codec: CodecInfo | None = None
        self.table_lr_scale = table_lr_scale if table_lr_scale is not None else (d_model ** 0.5 if scaled_logits else 1.0)

    def _check_codec(self, codec: CodecInfo) -> None:
        if codec.codebook_size != self.dims.codebook_size or codec.n_codebooks < self.dims.n_codebooks:
            raise CodecMismatchError(
                f"the model is configured for {self.dims.n_codebooks} codebooks of {self.dims.codebook_size} codes, "
                f"but the tokens come from {codec.describe()}: set model.codebook_size / model.n_codebooks to match")
        if self.codec is not None:
            self.codec.check_same(codec, what="training tokens")
        self.codec = codec

    def on_fit_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        ds = getattr(dm, "datasets", {}).get("train") if dm is not None else None
        if ds is not None:
            self._check_codec(ds.base[0]["tokens"].codec)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["valle"] = {"stage": self.stage, "dims": self.dims.to_dict(),
                               "codec": self.codec.to_dict() if self.codec is not None else None}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        codec = checkpoint.get("valle", {}).get("codec")
        self.codec = CodecInfo.from_dict(codec) if codec else None
        saved = checkpoint.get("valle", {}).get("dims")
        if saved is not None:  # a run saved before scaled logits existed resumes as it was trained
            self.dims.scaled_logits = bool(saved.get("scaled_logits", False))  # the model holds this same dims
        states = checkpoint.get("optimizer_states") or []
        if states and len(states[0].get("param_groups", [])) < 3:  # saved with one rate for every table
            self.table_lr_scale = 1.0

    def _cut(self, batch: dict) -> dict:
        Q = self.dims.n_codebooks
        return dict(batch, prompt=batch["prompt"][:, :Q], target=batch["target"][:, :Q])

    def _ce(self, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean cross-entropy over scored positions, and (correct, count) for accuracy."""
        keep = targets != IGNORE
        lg, tg = logits[keep], targets[keep]
        loss = F.cross_entropy(lg, tg, label_smoothing=self.hparams.label_smoothing)
        return loss, (lg.argmax(-1) == tg).sum(), keep.sum()

    def configure_optimizers(self):
        h = self.hparams
        tables = [e.weight for e in self.model.audio_embeddings] if self.stage == "nar" else []
        return adamw_warmup_linear(self.model, self.trainer, h.lr, h.betas, h.eps, h.weight_decay, h.warmup_steps,
                                   h.final_lr_fraction, fast=tables, fast_lr_scale=self.table_lr_scale)


class ValleARModule(_ValleModule):
    """Trains :class:`~audiokit.valle.model.ValleAR` (codebook 1 + end token)."""

    stage = "ar"
    model_class = ValleAR

    def _step(self, batch: dict, split: str) -> torch.Tensor:
        x = {k: v.to(self.device) for k, v in ar_inputs(self._cut(batch), self.model.bos, self.model.eos,
                                                                    voice_bos=self.model.voice_bos).items()}
        hidden = self.model(x["tokens"], x["kind"], x["pos"])
        keep = x["targets"] != IGNORE  # the output layer only where a frame is scored (text, pad: no logits)
        loss, correct, count = self._ce(self.model.logits(hidden[keep]), x["targets"][keep])
        B = len(batch["id"])
        self.log(f"{split}/loss", loss, prog_bar=True, batch_size=B, sync_dist=split == "val")
        self.log(f"{split}/acc_c1", correct.float() / count.clamp(min=1), batch_size=B, sync_dist=split == "val")
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")


class ValleNARModule(_ValleModule):
    """Trains :class:`~audiokit.valle.model.ValleNAR`: one random stage (codebook 2 … Q) per example."""

    stage = "nar"
    model_class = ValleNAR

    def _stage_loss(self, batch: dict, stage: torch.Tensor, split: str) -> torch.Tensor:
        x = {k: v.to(self.device) for k, v in nar_inputs(batch, stage).items()}
        logits = self.model(x["tokens"], x["kind"], x["pos"], x["codes"], x["n_sum"], stage.to(self.device))
        loss, _, _ = self._ce(logits, x["targets"])
        keep = x["targets"] != IGNORE
        hit = (logits.argmax(-1) == x["targets"]) & keep
        for k in stage.unique().tolist():  # accuracy per codebook drawn in this batch
            rows = (stage == k).to(self.device)
            n = keep[rows].sum()
            self.log(f"{split}/acc_c{k + 1}", hit[rows].sum().float() / n.clamp(min=1), batch_size=int(rows.sum()),
                     sync_dist=split == "val")
        return loss

    def training_step(self, batch, batch_idx):
        batch = self._cut(batch)
        B, Q = len(batch["id"]), self.dims.n_codebooks
        loss = self._stage_loss(batch, torch.randint(1, Q, (B,), device="cpu"), "train")
        self.log("train/loss", loss, prog_bar=True, batch_size=B)
        return loss

    def validation_step(self, batch, batch_idx):
        batch = self._cut(batch)
        B, Q = len(batch["id"]), self.dims.n_codebooks
        losses = [self._stage_loss(batch, torch.full((B,), k, device="cpu"), "val") for k in range(1, Q)]  # every stage
        self.log("val/loss", torch.stack(losses).mean(), batch_size=B, sync_dist=True)


def _load_codec(path: str):
    from ..codec.codec import Codec

    codec = Codec.load(path)
    codec.model.eval().requires_grad_(False)
    return codec


def mel_windows(tensors: tuple[torch.Tensor, ...], lengths: torch.Tensor, frames: int,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
    """One random window of ``frames`` steps per row, the same for every tensor ``[B, T, ...]`` of ``tensors``
    (an utterance shorter than the window keeps its start and its padding); ``lengths`` are the rows' valid
    frames."""
    B, T = tensors[0].shape[:2]
    room = (lengths.to(tensors[0].device) - frames).clamp(min=0)
    u = torch.rand(B, generator=generator, device=tensors[0].device)
    start = (u * (room + 1).float()).floor().long().clamp(max=max(T - frames, 0))
    idx = start[:, None] + torch.arange(frames, device=tensors[0].device)[None]
    return tuple(t.gather(1, idx.view(B, frames, *([1] * (t.dim() - 2))).expand(B, frames, *t.shape[2:]))
                 for t in tensors)


class UnitsDecoderModule(L.LightningModule):
    """``audiokit train units-decoder``: trains a :class:`UnitsDecoder` on a stacked store (``audiokit units``
    writes it: row 1 the units, rows 2 … the codec's codebooks), with :class:`~audiokit.valle.data.ValleDataModule`
    batches — the target utterance's units in, the codec's latent of its codes out, the voice from the prompt
    (another utterance of the speaker with ``data.prefix_prob: 0``). Loss: mean squared error on the normalized
    latent over valid frames (the conditional mean); ``val/loss`` the same on held-out utterances.

    Args:
        codec: the exported codec folder whose codes the stacked store holds (its quantizer turns codes into the
            latent; frozen, not saved in the checkpoint).
        n_units: the units' K. ``n_codebooks``: the codec codebooks of the stacked store (target and voice).
        d_model, n_head, n_layer, voice_dim: sizes (:class:`UnitsDecoderDims`).
        lr, betas, eps, weight_decay, warmup_steps, final_lr_fraction: AdamW and its schedule.
        norm_batches: training batches whose frames give the latent's mean and std (at the first step).
        mel_weight: > 0 adds, at this weight, the multi-scale log-mel L1 between the codec decoder's audio from
            the predicted latent and from the true one (the error where the listener hears it; the codec decoder
            is frozen but runs in every step, several times slower on a CPU).
        conv_kernel, run_positions: FastSpeech-style convolutions after the attention blocks, and where each frame
            sits in its run (:class:`UnitsDecoderDims`; phone units need them: session 29).
        mel_crop_frames: > 0 computes the mel term on one random window of this many latent frames per utterance
            (the same window of prediction and truth) instead of whole utterances: the decoder is convolutional, so
            a window is heard as it is in the whole, and a step costs a fraction of the codec decoder's time.
    """

    stage = "units-decoder"

    def __init__(self, codec: str, n_units: int, n_codebooks: int, d_model: int = 128, n_head: int = 4,
                 n_layer: int = 3, voice_dim: int = 64, lr: float = 2e-3, betas=(0.9, 0.96), eps: float = 1e-8,
                 weight_decay: float = 0.01, warmup_steps: int = 50, final_lr_fraction: float = 0.0,
                 norm_batches: int = 8, mel_weight: float = 0.0,
                 mel_crop_frames: int = 0, conv_kernel: int = 0, run_positions: bool = False):
        super().__init__()
        self.save_hyperparameters()
        self._codec = _load_codec(codec)  # a plain attribute: not a submodule, so not in the checkpoint
        info = self._codec.info
        if n_codebooks > info.n_codebooks:
            raise CodecMismatchError(f"model.n_codebooks is {n_codebooks}, but the codec {info.describe()} has fewer")
        self.dims = UnitsDecoderDims(n_units, self._codec.model.latent_dim, info.codebook_size, n_codebooks, d_model,
                                     n_head, n_layer, voice_dim, conv_kernel, run_positions)
        self.model = UnitsDecoder(self.dims)
        self.grid: CodecInfo | None = None  # the stacked store's identity (export checks it against units + codec)
        self._mel = None
        if mel_weight > 0:
            from ..codec.losses import MultiScaleMelLoss

            self._mel = [MultiScaleMelLoss(info.sample_rate, n_mels=(20, 40, 80, 160), window_lengths=(128, 256, 512, 1024))]

    # ------------------------------------------------------------------ data
    def _split(self, batch: dict) -> tuple[torch.Tensor, ...]:
        Q = self.dims.n_codebooks
        target, prompt = batch["target"], batch["prompt"]
        if target.shape[1] < Q + 1:
            raise CodecMismatchError(f"the stacked store has {target.shape[1] - 1} codec codebooks under its units; "
                                     f"model.n_codebooks is {Q}")
        T = target.shape[-1]
        valid = torch.arange(T, device=target.device)[None] < batch["target_lens"].to(target.device)[:, None]
        codec = self._codec.to(target.device)
        with torch.no_grad():
            z = codec.model.embed(target[:, 1 : Q + 1]).transpose(1, 2).float()
        return target[:, 0], valid, prompt[:, 1 : Q + 1], batch["prompt_lens"], z

    def on_fit_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        ds = getattr(dm, "datasets", {}).get("train") if dm is not None else None
        if ds is None:
            return
        grid = ds.base[0]["tokens"].codec
        cinfo = self._codec.info
        if grid.codebook_size != cinfo.codebook_size or grid.n_codebooks < self.dims.n_codebooks + 1:
            raise CodecMismatchError(f"the training tokens ({grid.describe()}) are not units stacked on "
                                     f"{self.dims.n_codebooks} codebooks of {cinfo.describe()}")
        if self.grid is not None:
            self.grid.check_same(grid, what="training tokens")
        self.grid = grid
        if self.global_step == 0 and bool((self.model.std == 1).all()):
            frames = []
            for _, b in zip(range(self.hparams.norm_batches), dm.train_dataloader()):
                b = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in b.items()}
                _, valid, _, _, z = self._split(b)
                frames.append(z[valid])
            self.set_normalization(torch.cat(frames))

    @torch.no_grad()
    def set_normalization(self, frames: torch.Tensor) -> None:
        """The latent's per-channel mean and spread, from frames ``[N, latent_dim]`` (a channel that barely moves
        gets a floor of 1e-3 of the mean spread, so it is not blown up into noise)."""
        std = frames.std(0)
        self.model.mean.copy_(frames.mean(0))
        self.model.std.copy_(std.clamp(min=max(1e-3 * float(std.mean()), 1e-6)))

    def _loss(self, batch: dict, mel: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        units, valid, voice, voice_frames, z = self._split(batch)
        out = self.model(units, valid, voice, voice_frames)
        err = (out - (z - self.model.mean) / self.model.std).pow(2).mean(-1)
        mse = ((err * valid).sum(1) / valid.sum(1).clamp(min=1)).mean()
        if not mel:
            return mse
        codec, loss = self._codec.model, self._mel[0].to(z.device)
        pred = out * self.model.std + self.model.mean
        if 0 < self.hparams.mel_crop_frames < valid.shape[1]:
            pred, z, valid = mel_windows((pred, z, valid), valid.sum(1), self.hparams.mel_crop_frames)
        keep = valid.repeat_interleave(codec.hop_length, 1)[:, None].float()
        pred = pred.masked_fill(~valid[..., None], 0.0).transpose(1, 2)
        with torch.no_grad():
            y = codec.decoder(z.masked_fill(~valid[..., None], 0.0).transpose(1, 2)) * keep
        return mse, loss(codec.decoder(pred) * keep, y)

    def training_step(self, batch, batch_idx):
        B = batch["target"].shape[0]
        if self._mel is None:
            loss = self._loss(batch)
        else:
            mse, mel = self._loss(batch, mel=True)
            loss = mse + self.hparams.mel_weight * mel
            self.log_dict({"train/mse": mse, "train/mel": mel}, batch_size=B)
        self.log("train/loss", loss, prog_bar=True, batch_size=B)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self._loss(batch), prog_bar=True, batch_size=batch["target"].shape[0])

    def configure_optimizers(self):
        h = self.hparams
        return adamw_warmup_linear(self.model, self.trainer, h.lr, h.betas, h.eps, h.weight_decay, h.warmup_steps,
                                   h.final_lr_fraction)

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["units_decoder"] = {"dims": self.dims.to_dict(), "codec": self._codec.info.to_dict(),
                                       "grid": self.grid.to_dict() if self.grid is not None else None}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        grid = (checkpoint.get("units_decoder") or {}).get("grid")
        self.grid = CodecInfo.from_dict(grid) if grid else None
