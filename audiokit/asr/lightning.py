"""ASR training: a LightningModule over (audio, text) batches from :class:`~audiokit.data.SpeechDataModule`.

Every batch is turned into Whisper-format training windows on the fly:

- the text becomes ``<|startoftranscript|><|en|><|transcribe|>`` + ``<|notimestamps|>`` text, or, with
  probability ``timestamp_prob``, ``<|t_start|>`` text ``<|t_end|>`` (the utterance placed at a random offset);
- with probability ``concat_prob`` a second utterance of the batch follows after a short gap, as a second
  timestamped segment, so the model learns the multi-segment output that long-form seeking relies on;
- with probability ``no_speech_prob`` the window holds only faint noise and the target is ``<|nospeech|>``
  (the token whose probability after ``<|startoftranscript|>`` tells silence at inference);
- log-mel on the device, SpecAugment (frequency and time masks), cross-entropy with label smoothing;
- optionally (``ctc_weight`` > 0) a CTC loss on the encoder output over the text's UTF-8 bytes (characters
  are far easier to align than BPE pieces), through a linear head that exists only in training. Whisper has none; it is here because an encoder-decoder trained from scratch
  on a few hours of speech otherwise spends thousands of steps as a language model that ignores the audio
  (measured: with ``ctc_weight`` 0 the CPU config's validation loss was the same on shuffled audio after 1500
  steps). The exported model is a plain Whisper-layout model either way.

Validation logs loss, token accuracy and greedy-decoding WER on the first ``val_decode_batches`` batches.
"""
from __future__ import annotations

import base64
import random
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import lightning as L
import torch
import torch.nn.functional as F

from ..nn.optim import adamw_warmup_linear
from .decoding import DecodingOptions, decode
from .features import HOP_LENGTH, SAMPLE_RATE, log_mel_spectrogram
from .metrics import error_rate, scoring_forms
from .model import CTC_BYTES, ASRModel, ModelDimensions
from .tokenizer import WhisperTokenizer, load_ranks

if TYPE_CHECKING:
    from .transcriber import Transcriber

IGNORE = -100


def load_tokenizer(path: str) -> WhisperTokenizer:
    """A BPE JSON made by ``audiokit data bpe`` (one language: English), or a tiktoken rank file."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such tokenizer file (make one with: audiokit data bpe --manifest ... --out {p})")
    if p.suffix == ".tiktoken":
        return WhisperTokenizer(load_ranks(p), num_languages=1)
    from ..text.bpe import BPETokenizer

    return WhisperTokenizer.from_bpe(BPETokenizer.load(p))


def _load_init(path: str, tokenizer: str | None) -> "Transcriber":
    """The model to fine-tune (a :class:`Transcriber`, with its CTC head where it has one). ``tokenizer``: the
    rank file of an official checkpoint, or a vocabulary that must be the model's own."""
    from .transcriber import Transcriber

    p = Path(path)
    official = p.is_file() and p.suffix != ".ckpt"
    init = Transcriber.load(p, vocab=tokenizer if official else None)
    if official:
        return init  # ``tokenizer`` was its rank file
    if tokenizer is not None:
        own = load_tokenizer(tokenizer)
        if own.ranks != init.tokenizer.ranks or own.n_vocab != init.tokenizer.n_vocab:
            raise ValueError(f"{tokenizer} is not the vocabulary of {path}: fine-tuning keeps the model's own "
                             "(leave tokenizer out)")
    return init


class ASRLightningModule(L.LightningModule):
    """Trains an :class:`ASRModel`.

    Args:
        tokenizer: path of a BPE JSON (``audiokit data bpe``) or a ``.tiktoken`` rank file; stored in checkpoints.
            With ``init_from`` it may be left out (the model's own vocabulary is used).
        dims: :class:`ModelDimensions` fields; ``n_vocab`` is taken from the tokenizer. With ``init_from`` the
            model's dimensions are used and any given here must agree with them.
        init_from: fine-tune instead of training from scratch: the weights and vocabulary of an exported model
            folder (``pretrained/asr``), an ``audiokit train asr`` checkpoint (``.ckpt``, with its CTC head), or an
            official Whisper ``.pt`` (its ``.tiktoken`` rank file beside it, or given as ``tokenizer``).
        freeze_encoder: train the decoder only (the encoder keeps ``init_from``'s weights).
        lr, betas, eps, weight_decay: AdamW.
        warmup_steps: linear warm-up, then linear decay to ``final_lr_fraction`` at the last step.
        label_smoothing: of the cross-entropy.
        freq_masks, freq_width, time_masks, time_width: SpecAugment (``time_width`` is a fraction of the
            utterance's frames); 0 masks disable it.
        timestamp_prob, concat_prob, no_speech_prob: the window recipe above.
        ctc_weight: share of the auxiliary CTC loss on the encoder (0 = Whisper's objective alone).
        val_decode_batches: validation batches also decoded greedily for WER.
        speed_perturb: each training utterance is played faster or slower by a factor drawn from
            ``[1 - speed_perturb, 1 + speed_perturb]`` (tempo and pitch together, Kaldi's speed perturbation: new
            voices from few); 0 = off.
    """

    def __init__(self, tokenizer: str | None = None, dims: dict | None = None, lr: float = 1e-3,
                 betas: Sequence[float] = (0.9, 0.98), eps: float = 1e-6, weight_decay: float = 0.1,
                 warmup_steps: int = 500, final_lr_fraction: float = 0.1, label_smoothing: float = 0.1,
                 freq_masks: int = 2, freq_width: int = 10, time_masks: int = 2, time_width: float = 0.05,
                 timestamp_prob: float = 0.5, concat_prob: float = 0.3, no_speech_prob: float = 0.05,
                 ctc_weight: float = 0.0, val_decode_batches: int = 2, init_from: str | None = None,
                 freeze_encoder: bool = False, speed_perturb: float = 0.0):
        super().__init__()
        given = dict(dims or {})
        if init_from:
            init = _load_init(init_from, tokenizer)
            self.tok = init.tokenizer
            full = init.model.dims
            given.pop("n_ctc_vocab", None)  # a head is added below where ctc_weight asks for one
            differ = {k: (v, getattr(full, k)) for k, v in given.items() if getattr(full, k, None) != v}
            if differ:
                raise ValueError(f"dims {', '.join(f'{k}={a} (the model has {b})' for k, (a, b) in differ.items())} "
                                 f"differ from {init_from}'s; fine-tuning keeps the model's dimensions (leave dims out)")
        else:
            if tokenizer is None:
                raise ValueError("give a tokenizer (audiokit data bpe ... --out bpe.json) or init_from (a model to fine-tune)")
            self.tok = load_tokenizer(tokenizer)
            if "n_vocab" in given and given["n_vocab"] != self.tok.n_vocab:
                raise ValueError(f"dims.n_vocab is {given['n_vocab']} but the tokenizer {tokenizer} has {self.tok.n_vocab} tokens")
            given["n_vocab"] = self.tok.n_vocab
            full = ModelDimensions(**given)
        if ctc_weight > 0 and not full.n_ctc_vocab:
            full = replace(full, n_ctc_vocab=CTC_BYTES + 1)
        self.save_hyperparameters()
        self.hparams["dims"] = full.to_dict()  # checkpoints carry the complete dimensions
        self.model = ASRModel(full)
        if init_from:  # a model without a CTC head gets a fresh one
            missing, unexpected = self.model.load_state_dict(init.model.state_dict(), strict=False)
            if unexpected or set(missing) - {"ctc_head.weight", "ctc_head.bias"}:
                raise ValueError(f"{init_from}: weights do not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
        if freeze_encoder:
            self.model.encoder.requires_grad_(False)
        self.window_samples = 2 * full.n_audio_ctx * HOP_LENGTH
        self._rng = random.Random(0)

    # ------------------------------------------------------------------ checkpoints carry the tokenizer
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        ranks = sorted(self.tok.ranks.items(), key=lambda kv: kv[1])
        checkpoint["asr_tokenizer"] = {"ranks": [base64.b64encode(t).decode() for t, _ in ranks], "config": self.tok.config}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Checkpoints from before the CTC head moved into :class:`ASRModel` kept it as ``ctc_head.*``."""
        sd = checkpoint["state_dict"]
        for k in [k for k in sd if k.startswith("ctc_head.")]:
            sd["model." + k] = sd.pop(k)

    def on_fit_start(self) -> None:
        """Refuse training utterances longer than the model's window: their audio would be cut, their text not."""
        dm = getattr(self.trainer, "datamodule", None)
        ds = getattr(dm, "datasets", {}).get("train")
        longest = max(ds.durations, default=0.0) if ds is not None else 0.0
        window = self.window_samples / SAMPLE_RATE
        if longest > window:
            raise ValueError(f"training utterances last up to {longest:.1f} s but the model's window is {window:g} s: "
                             f"set data.max_duration to at most {window:g}")

    # ------------------------------------------------------------------ windows
    def _timestamp(self, seconds: float) -> int:
        steps = min(int(round(seconds / 0.02)), self.window_samples // (2 * HOP_LENGTH))
        return self.tok.timestamp_begin + max(0, steps)

    def make_windows(self, batch: dict, train: bool) -> tuple[torch.Tensor, torch.Tensor, list[list[int]]]:
        """Audio ``[B, window]``, token sequences ``[B, L]`` (padded with ``IGNORE``), and each window's text as
        UTF-8 bytes (the CTC targets)."""
        audio, lengths, texts = batch["audio"], batch["audio_lengths"].tolist(), batch["text"]
        B, W, tok = audio.shape[0], self.window_samples, self.tok
        h, rng = self.hparams, self._rng if train else random.Random(0)
        out = audio.new_zeros(B, W)
        seqs, texts_ids = [], []
        prefix = list(tok.sot_sequence)
        max_text = self.model.dims.n_text_ctx - len(prefix) - 4
        for b in range(B):
            if train and rng.random() < h.no_speech_prob:
                level = 10 ** (rng.uniform(-80, -45) / 20)
                out[b] = torch.randn(W, device=audio.device) * level
                seqs.append([tok.sot, tok.no_speech, tok.eot])
                texts_ids.append([])
                continue
            parts = [b]
            if train and B > 1 and rng.random() < h.concat_prob:
                parts.append((b + 1) % B)
            use_ts = train and rng.random() < h.timestamp_prob or len(parts) > 1
            pos = int(rng.uniform(0, max(0.0, min(0.5 * SAMPLE_RATE, W - lengths[b])))) if use_ts and train else 0
            body: list[int] = []
            plain: list[int] = []  # UTF-8 bytes of the window's text
            for j, i in enumerate(parts):
                clip = audio[i, : lengths[i]]
                if train and h.speed_perturb:
                    clip = self.speed(clip, rng.uniform(1 - h.speed_perturb, 1 + h.speed_perturb), W - pos)
                n = min(clip.shape[0], W - pos)
                if n <= 0 or (j > 0 and n < clip.shape[0]):
                    break  # the next utterance does not fit whole: leave it out
                out[b, pos:pos + n] = clip[:n]
                ids = tok.encode(" " + texts[i].strip())[:max_text]
                plain += list((" " + texts[i].strip()).encode("utf-8"))
                if use_ts:
                    body += [self._timestamp(pos / SAMPLE_RATE)] + ids + [self._timestamp((pos + n) / SAMPLE_RATE)]
                else:
                    body += ids
                pos += n + int(rng.uniform(0.1, 1.0) * SAMPLE_RATE)
            seq = prefix + ([] if use_ts else [tok.no_timestamps]) + body[:max_text] + [tok.eot]
            seqs.append(seq)
            texts_ids.append(plain[: self.model.dims.n_audio_ctx])  # CTC needs no more targets than frames
        L_ = max(len(s) for s in seqs)
        tokens = torch.full((B, L_), IGNORE, dtype=torch.long, device="cpu")
        for b, s in enumerate(seqs):
            tokens[b, : len(s)] = torch.tensor(s, device="cpu")
        return out, tokens.to(audio.device), texts_ids

    @staticmethod
    def speed(clip: torch.Tensor, factor: float, room: int) -> torch.Tensor:
        """``clip`` played ``factor`` times faster (resampled from ``factor`` x the rate, on a 400 Hz grid so the
        filter stays short); left as it is where the slower clip would not fit in ``room`` samples."""
        from ..audio.dsp import resample

        src = int(round(SAMPLE_RATE * factor / 400)) * 400
        if src == SAMPLE_RATE or clip.shape[0] * SAMPLE_RATE > room * src:
            return clip
        return resample(clip, src, SAMPLE_RATE)

    def spec_augment(self, mel: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Frequency and time masks (filled with each item's mean)."""
        h = self.hparams
        B, M, T = mel.shape
        mask = torch.zeros(B, M, T, dtype=torch.bool, device=mel.device)
        bins = torch.arange(M, device=mel.device)
        steps = torch.arange(T, device=mel.device)
        for _ in range(h.freq_masks):
            width = torch.randint(0, h.freq_width + 1, (B, 1), device=mel.device)
            start = (torch.rand(B, 1, device=mel.device) * (M - width + 1)).long()
            mask |= ((bins >= start) & (bins < start + width))[:, :, None]
        for _ in range(h.time_masks):
            width = (torch.rand(B, 1, device=mel.device) * h.time_width * frames[:, None]).long()
            start = (torch.rand(B, 1, device=mel.device) * (frames[:, None] - width).clamp_min(1)).long()
            mask |= ((steps >= start) & (steps < start + width))[:, None, :]
        return torch.where(mask, mel.mean(dim=(1, 2), keepdim=True), mel)

    def window_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """Log-mel ``[B, n_mels, frames]`` of windows ``[B, window]`` as transcription presents them: the frames past
        the window's last sample of sound are 0, as Whisper pads a file's last window (``transcribe``: the log-mel
        of the file, then zeros up to the window). Session 19: a digits ASR trained on windows padded with silence
        instead heard the zeros as more speech and added digits at the end of 43 % of held-out strings (greedy
        WER 16.5 % with zeros, 4.5 % with the silence it was trained on)."""
        W = audio.shape[-1]
        mel = log_mel_spectrogram(audio, self.model.dims.n_mels)[..., : 2 * self.model.dims.n_audio_ctx]
        sound = audio != 0
        ends = (W - sound.flip(-1).int().argmax(-1)) * sound.any(-1)  # after the last non-zero sample; 0 if none
        frames = torch.arange(mel.shape[-1], device=mel.device)
        return mel.masked_fill(frames[None, None, :] >= (ends // HOP_LENGTH)[:, None, None], 0.0)

    # ------------------------------------------------------------------ steps
    def _loss(self, batch: dict, train: bool):
        audio, tokens, texts_ids = self.make_windows(batch, train)
        mel = self.window_mel(audio)
        if train and (self.hparams.freq_masks or self.hparams.time_masks):
            frames = (batch["audio_lengths"].to(mel.device) // HOP_LENGTH).clamp(max=mel.shape[-1])
            mel = self.spec_augment(mel, frames)
        inputs = tokens[:, :-1].clamp_min(0)
        targets = tokens[:, 1:]
        feats = self.model.embed_audio(mel.to(self.dtype_for_model))
        logits = self.model.logits(inputs, feats)
        loss = F.cross_entropy(logits.float().transpose(1, 2), targets, ignore_index=IGNORE,
                               label_smoothing=self.hparams.label_smoothing if train else 0.0)
        valid = targets != IGNORE
        acc = ((logits.argmax(-1) == targets) & valid).sum() / valid.sum().clamp_min(1)
        self._last_ce = loss.detach()
        if self.hparams.ctc_weight > 0:
            ctc = self.ctc_loss(feats, texts_ids)
            self._last_ctc = ctc.detach()
            w = self.hparams.ctc_weight
            loss = (1 - w) * loss + w * ctc
        return loss, acc, mel

    def ctc_loss(self, feats: torch.Tensor, texts_ids: list[list[int]]) -> torch.Tensor:
        """CTC of each window's text bytes against the encoder frames (the blank absorbs silence)."""
        logp = self.model.ctc_log_probs(feats).transpose(0, 1)  # [T, B, C]
        T, B = logp.shape[:2]
        flat = [t for ids in texts_ids for t in ids]
        if not flat:  # every window is a no-speech one: no text to align (and ctc_loss refuses empty targets)
            return logp.sum() * 0.0
        targets = torch.tensor(flat, dtype=torch.long, device=feats.device)
        target_lengths = torch.tensor([len(ids) for ids in texts_ids], dtype=torch.long, device=feats.device)
        input_lengths = torch.full((B,), T, dtype=torch.long, device=feats.device)
        return F.ctc_loss(logp, targets, input_lengths, target_lengths, blank=CTC_BYTES, zero_infinity=True)

    @property
    def dtype_for_model(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def training_step(self, batch, batch_idx):
        loss, acc, _ = self._loss(batch, train=True)
        B = batch["audio"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=B)
        self.log("train/acc", acc, batch_size=B)
        if self.hparams.ctc_weight > 0:
            self.log("train/ce", self._last_ce, batch_size=B)
            self.log("train/ctc", self._last_ctc, batch_size=B)
        self.log("lr", self.optimizers().param_groups[0]["lr"], batch_size=B)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, acc, mel = self._loss(batch, train=False)
        B = batch["audio"].shape[0]
        self.log("val/loss", loss, prog_bar=True, batch_size=B, sync_dist=True)
        self.log("val/acc", acc, batch_size=B, sync_dist=True)
        if batch_idx < self.hparams.val_decode_batches:
            results = decode(self.model, self.tok, mel.to(self.dtype_for_model),
                             DecodingOptions(without_timestamps=True, sample_len=self.model.dims.n_text_ctx // 2))
            refs, hyps = scoring_forms(batch["text"], [r.text for r in results])
            errors, words = error_rate(refs, hyps)
            self.log("val/wer", errors / max(words, 1), prog_bar=True, batch_size=B, sync_dist=True)

    def configure_optimizers(self):
        h = self.hparams
        return adamw_warmup_linear(self.model, self.trainer, h.lr, h.betas, h.eps, h.weight_decay, h.warmup_steps,
                                   h.final_lr_fraction)
