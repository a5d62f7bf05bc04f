"""A semantic first codebook: an ASR encoder's features distilled into the codec's first quantizer level
(SpeechTokenizer's idea, with a Whisper-style encoder as the teacher), and fine-tuning from an exported codec.

Why (issue 22, benchmarks/RESULTS.md session 19): a VALL-E's AR writes codebook 1 only and its NAR guesses the rest;
in the bundled speech codec the words are spread over codebooks 1-6 (ground truth decoded from codebook 1 alone reads
at 73 % WER to Whisper tiny.en, 43 % from two, 12 % from six), so the NAR has to carry the words and cannot. A
teacher's phonetic features regressed from the first level's latent push the words into codebook 1.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import parametrize


class SemanticTeacher:
    """The frozen encoder of a Whisper-style ASR model (a folder, a checkpoint, or ``"asr"``: Whisper tiny.en).

    Deliberately not an ``nn.Module`` attribute of the training module: its weights are neither trained nor saved
    in the codec's checkpoints.
    """

    def __init__(self, name_or_path: str):
        from ..asr.features import SAMPLE_RATE
        from ..asr.transcriber import Transcriber

        t = Transcriber.load(name_or_path)
        self.encoder = t.model.encoder.eval().requires_grad_(False)
        self.n_mels = t.model.dims.n_mels
        self.dim = t.model.dims.n_audio_state
        self.sample_rate = SAMPLE_RATE

    @torch.no_grad()
    def features(self, audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """``[B, T]`` audio → encoder features ``[B, D, frames]`` (50 frames/s), for clips up to the encoder's
        window (the positional embedding is cut to the clip, as for short-window streaming)."""
        from ..asr.features import log_mel_spectrogram
        from ..audio.dsp import resample

        if sample_rate != self.sample_rate:
            audio = resample(audio, sample_rate, self.sample_rate)
        enc = self.encoder
        if next(enc.parameters()).device != audio.device:
            enc.to(audio.device)
        mel = log_mel_spectrogram(audio.float(), self.n_mels)
        mel = mel[..., : mel.shape[-1] // 2 * 2]
        return enc(mel).transpose(1, 2)


def semantic_loss(first: torch.Tensor, proj: nn.Module, teacher: torch.Tensor) -> torch.Tensor:
    """1 − cosine similarity, per frame, between the projected first-level latent ``[B, D, T]`` and the teacher's
    features ``[B, D', T']`` (resampled in time to ``T`` where the frame rates differ)."""
    pred = proj(first)
    if teacher.shape[-1] != pred.shape[-1]:
        teacher = F.interpolate(teacher, size=pred.shape[-1], mode="linear", align_corners=False)
    return (1 - F.cosine_similarity(pred, teacher.to(pred.dtype), dim=1)).mean()


@torch.no_grad()
def init_generator_from(generator: nn.Module, folder: str) -> None:
    """Load an exported codec's weights (weight norm folded) into a training generator (weight norm applied):
    each weight-normed weight is set through its parametrization (norm and direction recomputed), the rest copied.
    The exported codec must have the generator's configuration."""
    from .codec import Codec

    plain = Codec.load(folder).model
    if plain.config != generator.config:
        diff = sorted(k for k in set(plain.config) | set(generator.config) if plain.config.get(k) != generator.config.get(k))
        raise ValueError(f"init_from {folder}: its codec differs from this configuration's generator in {diff}")
    source = dict(plain.named_modules())
    for name, module in generator.named_modules():
        if parametrize.is_parametrized(module, "weight"):
            module.weight = source[name].weight.detach().clone()
    own = generator.state_dict()
    rest = {k: v for k, v in plain.state_dict().items() if k in own}
    generator.load_state_dict(rest, strict=False)
