"""Long-form, batched transcription: files of any length in windows, seeking on timestamps.

Each file is cut into windows of the model's length (30 s for Whisper's dimensions). A window is decoded
(with temperature fallback); its timestamp pairs become segments; the next window starts at the last
complete segment's end (or after the window when the model says nothing follows). Windows of *different*
files are decoded together in one batch, so a folder of files transcribes at batch speed, while each file
keeps Whisper's sequential seeking and its previous-text prompt.

Silence: a window with no 20 ms frame louder than ``silence_threshold_db`` is not decoded at all, and a
decoded window whose no-speech probability is high (and whose text is unlikely) is dropped, so silent
audio gives an empty transcript rather than invented text.
"""
from __future__ import annotations

import codecs
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Sequence

import torch
import torch.nn.functional as F

from ..progress import Progress
from .decoding import DecodingOptions, DecodingResult, decode_with_fallback, detect_language
from .features import HOP_LENGTH, N_FFT, SAMPLE_RATE, mel_filters
from .model import ASRModel
from .tokenizer import WhisperTokenizer


@dataclass
class Segment:
    start: float
    end: float
    text: str
    tokens: list[int] = field(default_factory=list)
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    temperature: float = 0.0
    compression_ratio: float = 0.0


@dataclass
class Transcript:
    """What :func:`transcribe` returns for one input: the text, its timed segments, the language."""

    text: str
    segments: list[Segment]
    language: str | None
    duration: float

    def to_dict(self) -> dict:
        return {"text": self.text, "language": self.language, "duration": round(self.duration, 3),
                "segments": [dict(asdict(s), id=i) for i, s in enumerate(self.segments)]}

    def format(self, fmt: str) -> str:
        """The transcript as ``txt`` (one segment per line), ``srt``, ``vtt`` or ``json``."""
        if fmt == "txt":
            return "".join(s.text.strip() + "\n" for s in self.segments)
        if fmt == "json":
            return json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n"
        if fmt == "srt":
            return "".join(f"{i}\n{_stamp(s.start, ',')} --> {_stamp(s.end, ',')}\n{s.text.strip()}\n\n"
                           for i, s in enumerate(self.segments, 1))
        if fmt == "vtt":
            return "WEBVTT\n\n" + "".join(f"{_stamp(s.start, '.')} --> {_stamp(s.end, '.')}\n{s.text.strip()}\n\n"
                                          for s in self.segments)
        raise ValueError(f"unknown transcript format {fmt!r}; choose txt, srt, vtt or json")


FORMATS = ("txt", "srt", "vtt", "json")


def _stamp(seconds: float, decimal: str) -> str:
    ms = max(0, int(round(seconds * 1000)))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{decimal}{ms:03d}"


# ----------------------------------------------------------------------------- front end
def log_mel_long(audio: torch.Tensor, n_mels: int, pad_samples: int, chunk_frames: int = 30000) -> torch.Tensor:
    """Whisper's log-mel of ``audio`` followed by ``pad_samples`` of silence, computed in chunks.

    Equal to ``log_mel_spectrogram(audio, n_mels, padding=pad_samples)`` (one clamp against the maximum of
    the whole file), but the STFT never holds more than ``chunk_frames`` frames: an hour of audio needs
    the mel itself (115 MB at 80 bins) rather than about ten times that.
    """
    x = F.pad(audio.float()[None], (0, pad_samples))
    n_frames = x.shape[-1] // HOP_LENGTH  # torch.stft(center=True) gives one more; Whisper drops the last
    xp = F.pad(x[None], (N_FFT // 2, N_FFT // 2), mode="reflect")[0, 0]
    window = torch.hann_window(N_FFT, device=x.device)
    fb = mel_filters(n_mels, str(x.device))
    out = torch.empty(n_mels, n_frames, device=x.device)
    for a in range(0, n_frames, chunk_frames):
        b = min(n_frames, a + chunk_frames)
        seg = xp[a * HOP_LENGTH : (b - 1) * HOP_LENGTH + N_FFT]
        spec = torch.stft(seg, N_FFT, HOP_LENGTH, window=window, center=False, return_complex=True)
        out[:, a:b] = torch.clamp(fb @ spec.abs() ** 2, min=1e-10).log10()
    out = torch.maximum(out, out.max() - 8.0)
    return (out + 4.0) / 4.0


def _loud_frames(audio: torch.Tensor, threshold_db: float) -> torch.Tensor:
    """Per 20 ms frame: is its RMS above ``threshold_db`` dBFS?"""
    n = 320
    usable = audio.shape[-1] // n * n
    if usable == 0:
        return torch.zeros(0, dtype=torch.bool, device="cpu")
    rms = audio[:usable].float().view(-1, n).pow(2).mean(-1).sqrt()
    return 20 * torch.log10(rms.clamp_min(1e-10)) > threshold_db


# ----------------------------------------------------------------------------- transcription
@dataclass
class _File:
    audio: torch.Tensor
    mel: torch.Tensor
    content_frames: int
    loud: torch.Tensor | None
    language: str | None
    seek: int = 0
    tokens: list[int] = field(default_factory=list)
    prompt_reset: int = 0
    segments: list[Segment] = field(default_factory=list)
    initial_prompt: list[int] = field(default_factory=list)
    # segments' text: UTF-8 decoded across segments, so a character whose byte tokens a timestamp splits joins
    # the next segment (no U+FFFD); bytes that never form a character are dropped
    text: codecs.IncrementalDecoder = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("ignore"))


def transcribe(model: ASRModel, tok: WhisperTokenizer, audios: Sequence[torch.Tensor], options: DecodingOptions = DecodingOptions(),
               temperatures: Sequence[float] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0), compression_ratio_threshold: float | None = 2.4,
               logprob_threshold: float | None = -1.0, no_speech_threshold: float | None = 0.6,
               condition_on_previous_text: bool = True, initial_prompt: str | None = None,
               silence_threshold_db: float | None = -50.0, batch_size: int = 8, best_of: int | None = 5) -> list[Transcript]:
    """Transcribe 16 kHz mono waveforms of any length; windows of up to ``batch_size`` files decode together."""
    dims = model.dims
    window_frames = 2 * dims.n_audio_ctx  # 3000 mel frames = 30 s for Whisper's dimensions
    window_samples = window_frames * HOP_LENGTH
    precision = 2 * HOP_LENGTH / SAMPLE_RATE  # one timestamp step = one encoder frame = 20 ms
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    files = []
    for audio in audios:
        if audio.dim() != 1:
            raise ValueError(f"expected mono audio [samples], got shape {tuple(audio.shape)}")
        if not torch.isfinite(audio).all():
            raise ValueError("the audio contains NaN or infinite samples")
        mel = log_mel_long(audio.to(device), dims.n_mels, window_samples)
        loud = _loud_frames(audio, silence_threshold_db) if silence_threshold_db is not None else None
        f = _File(audio=audio, mel=mel, content_frames=mel.shape[-1] - window_frames, loud=loud, language=options.language)
        if initial_prompt:
            f.initial_prompt = tok.encode(" " + initial_prompt.strip())
        files.append(f)

    def window(f: _File) -> tuple[torch.Tensor, int]:
        size = min(window_frames, f.content_frames - f.seek)
        m = f.mel[:, f.seek : f.seek + size]
        return F.pad(m, (0, window_frames - size)), size

    def silent(f: _File, size: int) -> bool:
        if f.loud is None:
            return False
        a, b = f.seek // 2, (f.seek + size + 1) // 2  # 20 ms frames = 2 mel frames
        return not bool(f.loud[a:b].any())

    total_frames = sum(max(f.content_frames, 0) for f in files)
    frame_s = HOP_LENGTH / SAMPLE_RATE
    bar = Progress(round(total_frames * frame_s), "transcribe", unit="audio-s") if total_frames * frame_s > 60 else None
    reported = 0.0

    while True:
        if bar is not None:
            now = sum(min(f.seek, max(f.content_frames, 0)) for f in files) * frame_s
            bar.update(round(now - reported), note=f"{sum(f.seek >= f.content_frames for f in files)}/{len(files)} files")
            reported += round(now - reported)
        active = []
        for f in files:
            while f.seek < f.content_frames:
                m, size = window(f)
                if silent(f, size):
                    f.seek += size
                    continue
                active.append((f, m, size))
                break
            if len(active) == batch_size:
                break
        if not active:
            break
        mels = torch.stack([m for _, m, _ in active]).to(dtype)
        undetected = [i for i, (f, _, _) in enumerate(active) if f.language is None and tok.multilingual]
        if undetected:  # a file's language is detected on its first window with speech, then kept
            _, probs = detect_language(model, tok, mels[undetected])
            for i, p in zip(undetected, probs):
                active[i][0].language = max(p, key=p.get)
        results: list[DecodingResult | None] = [None] * len(active)
        by_language: dict[str | None, list[int]] = {}
        for i, (f, _, _) in enumerate(active):
            by_language.setdefault(f.language, []).append(i)
        for language, idx in by_language.items():
            prompts = [_prompt(active[i][0], condition_on_previous_text, dims.n_text_ctx) for i in idx]
            got = decode_with_fallback(model, tok, mels[idx], replace(options, language=language), temperatures,
                                       compression_ratio_threshold, logprob_threshold, no_speech_threshold, prompts,
                                       best_of)
            for i, r in zip(idx, got):
                results[i] = r
        for (f, _, size), r in zip(active, results):
            _advance(f, r, size, tok, precision, no_speech_threshold, logprob_threshold, condition_on_previous_text)

    if bar is not None:
        bar.update(round(total_frames * frame_s - reported), note=f"{len(files)}/{len(files)} files")
        bar.close()
    out = []
    for f in files:
        text = "".join(s.text for s in f.segments).strip()
        out.append(Transcript(text=text, segments=f.segments, language=f.language,
                              duration=f.audio.shape[-1] / SAMPLE_RATE))
    return out


def _prompt(f: _File, condition: bool, n_ctx: int) -> list[int] | None:
    previous = f.tokens[f.prompt_reset:] if condition else []
    prompt = f.initial_prompt + previous if f.prompt_reset == 0 else previous
    return prompt[-(n_ctx // 2 - 1):] or None


def _advance(f: _File, r: DecodingResult, size: int, tok: WhisperTokenizer, precision: float,
             no_speech_threshold: float | None, logprob_threshold: float | None, condition: bool) -> None:
    """Turn one window's result into segments and move the file's seek position."""
    start_seek = f.seek
    offset = f.seek * HOP_LENGTH / SAMPLE_RATE
    if no_speech_threshold is not None and r.no_speech_prob > no_speech_threshold:
        if logprob_threshold is None or r.avg_logprob <= logprob_threshold:
            f.seek += size  # silence: nothing to keep
            return
    tokens = r.tokens
    tb = tok.timestamp_begin
    is_ts = [t >= tb for t in tokens]
    single_ending = is_ts[-2:] == [False, True]
    consecutive = [i + 1 for i in range(len(tokens) - 1) if is_ts[i] and is_ts[i + 1]]
    new: list[tuple[float, float, list[int]]] = []
    if consecutive:
        slices = consecutive + ([len(tokens)] if single_ending else [])
        last = 0
        for cut in slices:
            piece = tokens[last:cut]
            new.append((offset + (piece[0] - tb) * precision, offset + (piece[-1] - tb) * precision, piece))
            last = cut
        if single_ending:
            f.seek += size
        else:
            f.seek += (tokens[last - 1] - tb) * 2  # two mel frames per timestamp step
    else:
        duration = size * HOP_LENGTH / SAMPLE_RATE
        stamps = [t for t in tokens if t >= tb]
        if stamps and stamps[-1] != tb:
            duration = (stamps[-1] - tb) * precision
        new.append((offset, offset + duration, tokens))
        f.seek += size
    if f.seek <= start_seek:  # a malformed result must not stall the file
        f.seek = start_seek + size
    duration = f.audio.shape[-1] / SAMPLE_RATE
    for start, end, piece in new:
        end = min(end, duration)  # the window is padded with silence past the end of the file
        text = f.text.decode(tok.decode_bytes([t for t in piece if t < tok.eot]))
        if end <= start or not text.strip():
            continue
        f.segments.append(Segment(start=round(start, 3), end=round(end, 3), text=text, tokens=piece,
                                  avg_logprob=r.avg_logprob, no_speech_prob=r.no_speech_prob, temperature=r.temperature,
                                  compression_ratio=r.compression_ratio))
        f.tokens.extend(piece)
    if not condition or r.temperature > 0.5:
        f.prompt_reset = len(f.tokens)
