"""Whisper's front end: 16 kHz, 25 ms Hann windows every 10 ms, Slaney mel filters, log10, dynamic-range clamp.

``log_mel_spectrogram(audio)`` equals openai-whisper's on the same audio (tested); here it also takes batches,
clamping each item against its own maximum (Whisper clamps against the maximum of whatever tensor it is given).
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
CHUNK_SECONDS = 30
N_SAMPLES = CHUNK_SECONDS * SAMPLE_RATE  # 480000
N_FRAMES = N_SAMPLES // HOP_LENGTH  # 3000 mel frames per 30-second window
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 100
TOKENS_PER_SECOND = FRAMES_PER_SECOND // 2  # 50: the encoder halves the frame rate; a timestamp step is 20 ms


@functools.lru_cache(maxsize=4)
def mel_filters(n_mels: int, device: str = "cpu") -> torch.Tensor:
    """Slaney-normalized mel filterbank ``[n_mels, 201]`` (the same as ``librosa.filters.mel(sr=16000, n_fft=400)``)."""
    import torchaudio.functional as AF

    fb = AF.melscale_fbanks(N_FFT // 2 + 1, f_min=0.0, f_max=SAMPLE_RATE / 2, n_mels=n_mels, sample_rate=SAMPLE_RATE,
                            norm="slaney", mel_scale="slaney")
    return fb.T.contiguous().to(device)


def log_mel_spectrogram(audio: torch.Tensor, n_mels: int = 80, padding: int = 0) -> torch.Tensor:
    """Audio ``[T]`` or ``[B, T]`` at 16 kHz → log-mel ``[n_mels, frames]`` or ``[B, n_mels, frames]``."""
    single = audio.dim() == 1
    x = audio[None] if single else audio
    x = x.to(torch.float32)
    if padding:
        x = F.pad(x, (0, padding))
    window = torch.hann_window(N_FFT, device=x.device)
    stft = torch.stft(x, N_FFT, HOP_LENGTH, window=window, return_complex=True)
    magnitudes = stft[..., :-1].abs() ** 2
    mel = mel_filters(n_mels, str(x.device)) @ magnitudes
    log_spec = torch.clamp(mel, min=1e-10).log10()
    peak = log_spec.amax(dim=(-2, -1), keepdim=True)
    log_spec = torch.maximum(log_spec, peak - 8.0)
    out = (log_spec + 4.0) / 4.0
    return out[0] if single else out


def pad_or_trim(x: torch.Tensor, length: int = N_SAMPLES, dim: int = -1) -> torch.Tensor:
    """Zero-pad or cut ``x`` along ``dim`` to ``length``."""
    n = x.shape[dim]
    if n > length:
        return x.narrow(dim, 0, length)
    if n < length:
        pad = [0, 0] * (x.dim() - 1 - (dim % x.dim())) + [0, length - n]
        return F.pad(x, pad)
    return x
