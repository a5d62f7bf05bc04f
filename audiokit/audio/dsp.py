"""Signal helpers on waveform tensors: resampling, normalization, silence trimming."""
from __future__ import annotations

import functools
import math

import torch
import torchaudio.functional as AF


@functools.lru_cache(maxsize=32)
def _resampler(orig: int, new: int):
    import torchaudio.transforms as T

    # The kernel is built once per rate pair; the default sinc window is fine for speech.
    return T.Resample(orig, new)


def resample(wav: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Resample ``[..., T]`` from ``orig_sr`` to ``new_sr`` (torchaudio's band-limited sinc)."""
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
    if orig_sr == new_sr:
        return wav
    r = _resampler(int(orig_sr), int(new_sr))
    return r.to(wav.device, wav.dtype if wav.is_floating_point() else torch.float32)(wav)


def db_to_gain(db: float) -> float:
    return 10.0 ** (db / 20.0)


def peak_normalize(wav: torch.Tensor, peak_db: float = -1.0) -> torch.Tensor:
    """Scale so the largest absolute sample sits at ``peak_db`` dBFS; silence is returned unchanged."""
    peak = wav.abs().max()
    if peak <= 0:
        return wav
    return wav * (db_to_gain(peak_db) / peak)


def loudness(wav: torch.Tensor, sample_rate: int) -> float:
    """Integrated loudness in LUFS (ITU-R BS.1770, torchaudio); RMS dBFS for clips under 0.4 s."""
    x = wav if wav.dim() == 2 else wav[None]
    if x.shape[-1] < int(0.4 * sample_rate):
        rms = x.pow(2).mean().sqrt().item()
        return 20 * math.log10(max(rms, 1e-10))
    value = AF.loudness(x.to(torch.float32), sample_rate).item()
    return value


def loudness_normalize(wav: torch.Tensor, sample_rate: int, target_lufs: float = -23.0, peak_limit_db: float = -0.5) -> torch.Tensor:
    """Scale to ``target_lufs`` integrated loudness, never letting the peak exceed ``peak_limit_db``."""
    current = loudness(wav, sample_rate)
    if not math.isfinite(current) or current < -70:  # silence or near-silence: nothing to measure
        return wav
    out = wav * db_to_gain(target_lufs - current)
    peak = out.abs().max()
    limit = db_to_gain(peak_limit_db)
    if peak > limit:
        out = out * (limit / peak)
    return out


def normalize_audio(wav: torch.Tensor, sample_rate: int, mode: str) -> torch.Tensor:
    """``mode``: ``"peak"`` (-1 dBFS) or ``"loudness"`` (-23 LUFS, the EBU R128 target)."""
    if mode == "peak":
        return peak_normalize(wav)
    if mode == "loudness":
        return loudness_normalize(wav, sample_rate)
    raise ValueError(f"unknown normalization {mode!r}; use 'peak' or 'loudness'")


def trim_silence(wav: torch.Tensor, sample_rate: int, threshold_db: float = -45.0, keep_s: float = 0.1) -> torch.Tensor:
    """Cut leading and trailing silence of a ``[T]`` waveform, keeping ``keep_s`` seconds around the speech.

    Silence is judged on 10 ms frames whose RMS is more than ``|threshold_db|`` below the loudest frame.
    """
    hop = max(1, sample_rate // 100)
    n = wav.shape[-1] // hop
    if n < 2:
        return wav
    frames = wav[..., : n * hop].reshape(-1, n, hop) if wav.dim() > 1 else wav[: n * hop].reshape(n, hop)
    rms = frames.pow(2).mean(-1).sqrt()
    if rms.dim() > 1:
        rms = rms.max(0).values
    ref = rms.max()
    if ref <= 0:
        return wav
    voiced = (rms > ref * db_to_gain(threshold_db)).nonzero().flatten()
    keep = int(keep_s * sample_rate)
    start = max(0, int(voiced[0]) * hop - keep)
    end = min(wav.shape[-1], (int(voiced[-1]) + 1) * hop + keep)
    return wav[..., start:end]
