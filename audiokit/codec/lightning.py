"""Codec training: a LightningModule with manual optimization (discriminator step, then generator step)."""
from __future__ import annotations

import logging
from typing import Sequence

import lightning as L
import torch

from .discriminators import Discriminator
from .losses import (
    Balancer,
    MultiScaleMelLoss,
    MultiScaleSTFTLoss,
    PhaseLoss,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from .metrics import si_sdr
from .model import CodecModel
from .semantic import SemanticTeacher, init_generator_from, semantic_loss

DEFAULT_WEIGHTS = {"mel": 15.0, "stft": 0.0, "phase": 0.0, "adv": 1.0, "feat": 2.0, "commitment": 0.25, "codebook": 1.0,
                   "semantic": 10.0}


class CodecLightningModule(L.LightningModule):
    """Trains a :class:`CodecModel` against a :class:`Discriminator`.

    Every batch takes one discriminator step and one generator step, so Lightning's ``global_step`` (which
    counts optimizer steps) advances by 2 per batch: ``max_steps: 20000`` is 10,000 batches.

    Args:
        generator: keyword arguments of :class:`CodecModel` (saved in checkpoints; ``Codec.load`` rebuilds from them).
        discriminator: keyword arguments of :class:`Discriminator`.
        loss_weights: ``mel``, ``stft``, ``phase`` (:class:`PhaseLoss`; 0 = off), ``adv``, ``feat``, ``commitment``, ``codebook`` (DAC's defaults).
        gan_loss: ``"lsgan"`` (DAC) or ``"hinge"`` (EnCodec).
        balancer: rescale the reconstruction/adversarial gradients with EnCodec's balancer (weights become shares).
        lr, betas, lr_decay: AdamW and the per-batch exponential decay for both networks.
        grad_clip_generator, grad_clip_discriminator: gradient-norm clipping.
        adversarial_start: batches of reconstruction-only training before the GAN losses start.
        dead_code_interval, dead_code_threshold: every this many batches, re-initialize codes whose usage EMA is
            under the threshold (0 disables).
        mel_n_mels, mel_window_lengths: the multi-scale mel loss' resolutions.
        phase_terms: what :class:`PhaseLoss` compares (``phase``, ``frequency``, ``delay``).
        init_from: an exported codec folder to fine-tune (its configuration must be ``generator``'s).
        semantic_teacher: an ASR model (folder, checkpoint, or ``"asr"``: Whisper tiny.en) whose encoder features
            the first codebook's latent is trained to predict (weight ``loss_weights["semantic"]``; a 1×1 projection,
            saved in checkpoints but not in exports): :mod:`audiokit.codec.semantic`.
    """

    def __init__(self, generator: dict | None = None, discriminator: dict | None = None, loss_weights: dict | None = None,
                 gan_loss: str = "lsgan", balancer: bool = False, lr: float = 1e-4, betas: Sequence[float] = (0.8, 0.99),
                 lr_decay: float = 0.999996, grad_clip_generator: float = 1e3, grad_clip_discriminator: float = 10.0,
                 adversarial_start: int = 0, dead_code_interval: int = 0, dead_code_threshold: float = 1e-3,
                 mel_n_mels: Sequence[int] = (5, 10, 20, 40, 80, 160, 320),
                 mel_window_lengths: Sequence[int] = (32, 64, 128, 256, 512, 1024, 2048),
                 phase_terms: Sequence[str] = ("phase", "frequency", "delay"), init_from: str | None = None,
                 semantic_teacher: str | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = CodecModel(**(generator or {}))
        self.discriminator = Discriminator(**(discriminator or {}))
        self.weights = {**DEFAULT_WEIGHTS, **(loss_weights or {})}
        if gan_loss not in ("lsgan", "hinge"):
            raise ValueError(f"gan_loss must be 'lsgan' or 'hinge', got {gan_loss!r}")
        self.mel_loss = MultiScaleMelLoss(self.generator.sample_rate, mel_n_mels, mel_window_lengths)
        self.stft_loss = MultiScaleSTFTLoss()
        self.phase_loss = PhaseLoss(terms=phase_terms)
        self.balancer = Balancer({k: self.weights[k] for k in ("mel", "stft", "phase", "adv", "feat")}) if balancer else None
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))
        if init_from:
            init_generator_from(self.generator, init_from)
        self.teacher = None
        if semantic_teacher:
            self.teacher = SemanticTeacher(semantic_teacher)
            self.semantic_proj = torch.nn.Conv1d(self.generator.latent_dim, self.teacher.dim, 1)

    # ------------------------------------------------------------------ optimization
    def configure_optimizers(self):
        h = self.hparams
        params = list(self.generator.parameters())
        if self.teacher is not None:
            params += list(self.semantic_proj.parameters())
        opt_g = torch.optim.AdamW(params, lr=h.lr, betas=tuple(h.betas))
        opt_d = torch.optim.AdamW(self.discriminator.parameters(), lr=h.lr, betas=tuple(h.betas))
        sch_g = torch.optim.lr_scheduler.ExponentialLR(opt_g, h.lr_decay)
        sch_d = torch.optim.lr_scheduler.ExponentialLR(opt_d, h.lr_decay)
        return [opt_g, opt_d], [sch_g, sch_d]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Resuming with other discriminators (say, CPU-sized ones for the adversarial stage of a run that
        trained reconstruction only) starts them, and their optimizer, fresh instead of failing to load. A
        resumed run follows the configuration's ``lr_decay`` (say, a faster one to anneal the end of a run)
        from the learning rate it had reached."""
        for sched in checkpoint.get("lr_schedulers") or []:
            if "gamma" in sched and sched["gamma"] != self.hparams.lr_decay:
                logging.getLogger("audiokit.codec").warning(
                    "lr_decay %s (was %s in the checkpoint): the learning rate decays at the new rate from here",
                    self.hparams.lr_decay, sched["gamma"])
                sched["gamma"] = self.hparams.lr_decay
        saved = {k: v.shape for k, v in checkpoint["state_dict"].items() if k.startswith("discriminator.")}
        current = {f"discriminator.{k}": v for k, v in self.discriminator.state_dict().items()}
        if saved == {k: v.shape for k, v in current.items()}:
            return
        logging.getLogger("audiokit.codec").warning(
            "the discriminators differ from the checkpoint's: starting them (and their optimizer) fresh; the "
            "generator resumes as saved")
        state = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("discriminator.")}
        checkpoint["state_dict"] = {**state, **current}
        states = checkpoint.get("optimizer_states")
        if states and len(states) == 2:
            lr = states[0]["param_groups"][0]["lr"]  # the generator's decayed rate, for both
            fresh = torch.optim.AdamW(self.discriminator.parameters(), lr=lr, betas=tuple(self.hparams.betas))
            states[1] = fresh.state_dict()

    def _adversarial(self) -> bool:
        return int(self.batches_seen) >= self.hparams.adversarial_start and (self.weights["adv"] > 0 or self.weights["feat"] > 0)

    def training_step(self, batch, batch_idx):
        h, w = self.hparams, self.weights
        opt_g, opt_d = self.optimizers()
        x = batch["audio"][:, None]
        out = self.generator(x)
        y = out["audio"]
        adversarial = self._adversarial()

        # discriminator
        opt_d.zero_grad()
        if adversarial:
            loss_d = discriminator_loss(self.discriminator(x), self.discriminator(y.detach()), h.gan_loss)
            self.manual_backward(loss_d)
            self.clip_gradients(opt_d, gradient_clip_val=h.grad_clip_discriminator, gradient_clip_algorithm="norm")
            self.log("train/loss_d", loss_d, prog_bar=True)
        opt_d.step()

        # generator
        losses = {"mel": self.mel_loss(y, x)}
        if w["stft"] > 0:
            losses["stft"] = self.stft_loss(y, x)
        if w["phase"] > 0:
            losses["phase"] = self.phase_loss(y, x)
        if adversarial:
            fake = self.discriminator(y)
            with torch.no_grad():
                real = self.discriminator(x)
            losses["adv"] = generator_adversarial_loss(fake, h.gan_loss)
            losses["feat"] = feature_matching_loss(real, fake)
        vq = w["commitment"] * out["commitment"] + w["codebook"] * out["codebook"]
        if self.teacher is not None:
            sem = semantic_loss(out["first"], self.semantic_proj, self.teacher.features(x[:, 0], self.generator.sample_rate))
            vq = vq + w["semantic"] * sem
            self.log("train/semantic", sem.detach(), prog_bar=True)
        if self.balancer is not None:
            surrogate, _ = self.balancer.surrogate(losses, y)
            total = surrogate + vq
        else:
            total = sum(w[k] * v for k, v in losses.items()) + vq
        opt_g.zero_grad()
        self.manual_backward(total)
        self.clip_gradients(opt_g, gradient_clip_val=h.grad_clip_generator, gradient_clip_algorithm="norm")
        opt_g.step()
        for sch in self.lr_schedulers():
            sch.step()

        self.batches_seen += 1
        if h.dead_code_interval and int(self.batches_seen) % h.dead_code_interval == 0:
            self.log("train/dead_codes_reset", float(self.generator.quantizer.reinit_dead_codes(h.dead_code_threshold)))
        logs = {f"train/{k}": v.detach() for k, v in losses.items() if k != "mel"}
        logs.update({"train/commitment": out["commitment"].detach(), "train/codebook": out["codebook"].detach(),
                     "train/loss_g": total.detach()})
        self.log_dict(logs, prog_bar=False)
        self.log("train/mel", losses["mel"].detach(), prog_bar=True)
        if self.trainer.log_every_n_steps and int(self.batches_seen) % self.trainer.log_every_n_steps == 0:
            for i, s in enumerate(self.generator.quantizer.usage_stats()):
                self.log(f"codebook/{i}_used", s["used"])
                self.log(f"codebook/{i}_perplexity", s["perplexity"])

    # ------------------------------------------------------------------ validation
    def validation_step(self, batch, batch_idx):
        x = batch["audio"][:, None]
        out = self.generator(x)
        y = out["audio"]
        self.log("val/mel", self.mel_loss(y, x), prog_bar=True, sync_dist=True)
        self.log("val/si_sdr", si_sdr(y[:, 0], x[:, 0]).mean(), sync_dist=True)
        low = self.generator.quantizer.n_codebooks // 4 or 1
        self.log(f"val/mel_q{low}", self.mel_loss(self.generator(x, n_q=low)["audio"], x), sync_dist=True)
        if batch_idx == 0:
            self._log_audio(x[0, 0], y[0, 0])

    def _log_audio(self, ref: torch.Tensor, rec: torch.Tensor) -> None:
        exp = getattr(self.logger, "experiment", None)
        if exp is not None and hasattr(exp, "add_audio"):  # TensorBoard
            sr = self.generator.sample_rate
            exp.add_audio("val/reference", ref.float().cpu(), int(self.batches_seen), sample_rate=sr)
            exp.add_audio("val/reconstruction", rec.float().clamp(-1, 1).cpu(), int(self.batches_seen), sample_rate=sr)
