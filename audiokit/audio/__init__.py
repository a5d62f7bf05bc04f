"""Audio in and out: files (soundfile), resampling and mel (torchaudio), normalization."""
from .dsp import loudness, loudness_normalize, normalize_audio, peak_normalize, resample, trim_silence
from .io import AudioError, audio_duration, audio_info, read_audio, write_audio

__all__ = [
    "AudioError",
    "audio_duration",
    "audio_info",
    "loudness",
    "loudness_normalize",
    "normalize_audio",
    "peak_normalize",
    "read_audio",
    "resample",
    "trim_silence",
    "write_audio",
]
