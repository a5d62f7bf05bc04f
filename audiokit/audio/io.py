"""Reading and writing audio files (soundfile / libsndfile) with errors that name the file and the problem."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ..fileio import atomic_path
from .dsp import resample

log = logging.getLogger("audiokit.audio")


class AudioError(ValueError):
    """An audio file or waveform that audiokit cannot use; the message names the file and why."""


def audio_info(path: str | os.PathLike) -> sf._SoundFileInfo:
    """Header of an audio file (sample rate, channels, frames) without reading samples."""
    path = Path(path)
    _check_file(path)
    try:
        return sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"{path}: corrupt or unsupported audio file ({_sf_reason(e)})") from None


def audio_duration(path: str | os.PathLike) -> float:
    info = audio_info(path)
    return info.frames / info.samplerate


def _sf_reason(e: Exception) -> str:
    msg = str(e)
    return msg.split(": ", 1)[-1] if "Error opening" in msg else msg


def _check_file(path: Path) -> None:
    if not path.exists():
        raise AudioError(f"{path}: no such audio file") from None
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: audio file is not readable (permission denied)")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: audio file is empty (0 bytes)")


def read_audio(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    mono: bool = True,
    normalize: str | None = None,
) -> tuple[torch.Tensor, int]:
    """Read an audio file to float32.

    Args:
        path: any format libsndfile reads (wav, flac, ogg, mp3 where the library supports it).
        sample_rate: resample to this rate (torchaudio); ``None`` keeps the file's rate.
        mono: downmix several channels to one (logged as a notice); ``False`` keeps channels.
        normalize: ``None``, ``"peak"`` (peak at -1 dBFS) or ``"loudness"`` (-23 LUFS), see :func:`normalize_audio`.

    Returns:
        ``(wav, sample_rate)``: ``wav`` is ``[T]`` when ``mono`` else ``[C, T]``.

    Raises:
        AudioError: missing, unreadable, corrupt, empty or zero-length file, or NaN/inf samples.
    """
    path = Path(path)
    _check_file(path)
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"{path}: corrupt or unsupported audio file ({_sf_reason(e)})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: audio file holds no samples (zero length)")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise AudioError(f"{path}: audio holds {bad} NaN or infinite samples")
    wav = torch.from_numpy(np.ascontiguousarray(data.T))  # [C, T]
    if mono:
        if wav.shape[0] > 1:
            log.warning("%s: %d channels downmixed to mono", path, wav.shape[0])
            wav = wav.mean(dim=0)
        else:
            wav = wav[0]
    if sample_rate is not None and sample_rate != sr:
        wav = resample(wav, sr, sample_rate)
        sr = sample_rate
    if normalize:
        from .dsp import normalize_audio

        wav = normalize_audio(wav, sr, normalize)
    return wav, sr


# libsndfile names some formats differently from their usual extension (MP3 is "MPEG" in older builds).
_WRITE_FORMATS = {"mp3": "MPEG", "oga": "OGG", "aif": "AIFF"}


def write_audio(path: str | os.PathLike, wav: torch.Tensor | np.ndarray, sample_rate: int, subtype: str | None = None) -> Path:
    """Write ``wav`` (``[T]`` or ``[C, T]``, float in [-1, 1]) atomically: a temporary file renamed into place.

    The format follows the extension (wav, flac, ogg). Samples beyond [-1, 1] are clipped with a warning.
    A failed write leaves no file at ``path``.
    """
    path = Path(path)
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().to("cpu", torch.float32).numpy()
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 1:
        wav = wav[None]
    if wav.ndim != 2:
        raise AudioError(f"{path}: waveform to write must be [T] or [C, T], got shape {wav.shape}")
    if wav.shape[1] == 0:
        raise AudioError(f"{path}: refusing to write an empty waveform")
    if not np.isfinite(wav).all():
        raise AudioError(f"{path}: refusing to write a waveform with NaN or infinite samples")
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioError(f"{path}: sample rate must be a positive integer, got {sample_rate!r}")
    peak = float(np.abs(wav).max())
    if peak > 1.0:
        log.warning("%s: peak %.3f exceeds full scale; clipping", path, peak)
        wav = np.clip(wav, -1.0, 1.0)
    ext = path.suffix.lower().lstrip(".")
    formats = sf.available_formats()
    fmt = ext.upper() if ext.upper() in formats else _WRITE_FORMATS.get(ext, ext.upper())
    if fmt not in formats:
        raise AudioError(f"{path}: unknown audio format '.{ext}' (use .wav, .flac, .ogg or .mp3)")
    with atomic_path(path) as tmp:
        try:
            sf.write(str(tmp), wav.T, int(sample_rate), subtype=subtype, format=fmt)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
            raise AudioError(f"{path}: cannot write audio ({e})") from None
    return path
