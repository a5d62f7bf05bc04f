"""What every TTS family shares: ``audiokit.TTS.load(path)`` (any exported TTS model, whatever its family), the
:class:`Synthesis` result, sentence splitting, voice-clip loading and the export folder's ``config.json``."""
from __future__ import annotations

import json
import math
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .audio import read_audio, resample
from .pretrained import resolve

TTS_FORMAT = "audiokit.tts"


class TTSLoadError(ValueError):
    """A TTS model folder or checkpoint that cannot be loaded; the message names the file and why."""


class PromptError(ValueError):
    """A voice prompt or reference clip a model cannot use (missing, silent, too short); the message says why."""


@dataclass
class Synthesis:
    """The result of a ``synthesize`` call: audio ``[T]`` at ``sample_rate``, the codec codes of each sentence
    (all codebooks for VALL-E; the first codebook the AR chose for Tortoise), what happened on the way
    (``notices``: prompt trimmed, transcript used, …), seconds spent per stage (``timings``) and, where a model
    keeps several candidates (Tortoise's ``k``), the runners-up's audio (``alternatives``)."""

    audio: torch.Tensor
    sample_rate: int
    sentences: list[str]
    codes: list[torch.Tensor]
    prompt_text: str | None
    seconds: float
    notices: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    alternatives: list[torch.Tensor] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.audio.shape[-1] / self.sample_rate

    @property
    def rtf(self) -> float:
        """Real-time factor: compute seconds per second of audio."""
        return self.seconds / max(self.duration, 1e-9)

    def save(self, path: str | os.PathLike) -> Path:
        from .audio import write_audio

        return write_audio(path, self.audio, self.sample_rate)


_SENTENCE_END = re.compile(r"(?<=[.!?;…])\s+")
_CLAUSE_END = re.compile(r"(?<=[,:])\s+")


def split_sentences(text: str, max_chars: int = 200) -> list[str]:
    """Sentences of ``text``; a sentence longer than ``max_chars`` is cut at commas, then between words."""
    out: list[str] = []
    for sent in _SENTENCE_END.split(" ".join(text.split())):
        pieces = [sent] if len(sent) <= max_chars else _CLAUSE_END.split(sent)
        for piece in pieces:
            while len(piece) > max_chars:
                cut = piece.rfind(" ", 0, max_chars)
                cut = cut if cut > 0 else max_chars
                out.append(piece[:cut].strip())
                piece = piece[cut:].strip()
            if piece:
                out.append(piece)
    return out




@contextmanager
def stage_timer(timings: dict, name: str, device: torch.device | None = None):
    """Add the wall time of the block (queued GPU work included) to ``timings[name]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def read_config(folder: Path) -> dict:
    """The ``config.json`` of an exported TTS folder, checked for format."""
    from .fileio import read_json_file

    if not folder.is_dir() or not (folder / "config.json").exists():
        raise TTSLoadError(f"{folder}: not an exported TTS model folder (no config.json)")
    return read_json_file(folder / "config.json", TTSLoadError, TTS_FORMAT, "TTS export")


def load_state(model, state: dict, where: str):
    """``model`` with ``state`` loaded (cast to float32), in eval mode; weights that do not fit are a
    :class:`TTSLoadError` naming ``where``."""
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    if missing or unexpected:
        raise TTSLoadError(f"{where}: weights do not match the model's sizes (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.eval()


def save_export(folder: Path, parts: dict, meta: dict, dtype: torch.dtype) -> Path:
    """Write each model of ``parts`` as ``NAME.safetensors`` (floating weights in ``dtype``; ``torch.int8``: int8
    weights with per-row scales, see :func:`audiokit.fileio.int8_state`) and ``meta`` as ``config.json`` (format,
    version and dtype added), all atomically."""
    from safetensors.torch import save_file

    from .fileio import atomic_path, cast_state

    for part, model in parts.items():
        state = cast_state(model.state_dict(), dtype)
        with atomic_path(folder / f"{part}.safetensors") as tmp:
            save_file(state, str(tmp))
    meta = {"format": TTS_FORMAT, "version": 1, **meta, "dtype": str(dtype).replace("torch.", "")}
    with atomic_path(folder / "config.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=1))
    return folder


def load_part(folder: Path, part: str, model):
    """``model`` with the weights of ``folder/PART.safetensors`` (or the file its ``PART.safetensors.link`` names:
    a part shared within the bundle)."""
    from .fileio import load_safetensors_file
    from .pretrained import component

    path = component(folder, f"{part}.safetensors", TTSLoadError) or folder / f"{part}.safetensors"
    return load_state(model, load_safetensors_file(path, TTSLoadError), str(path))


def load_bundled_codec(folder: Path, meta: dict):
    """The codec in ``folder/codec`` (or the folder its ``codec.link`` names), checked against the one
    ``config.json`` names."""
    from .codec.codec import Codec
    from .pretrained import component
    from .tokens import CodecInfo

    where = component(folder, "codec", TTSLoadError)
    if where is None:
        raise TTSLoadError(f"{folder}: no codec/ folder (nor codec.link) beside config.json")
    codec = Codec.load(where)
    codec.info.check_same(CodecInfo.from_dict(meta["codec"]), what=f"{where}")
    return codec


def load_voice_clip(clip, codec, sample_rate: int | None = None, min_seconds: float = 1.0):
    """A voice clip as a mono waveform at the codec's rate, and its tokens when it was given as tokens.

    ``clip``: an audio path (any rate, mono or stereo), a waveform (``sample_rate`` required; resampled), or
    :class:`~audiokit.CodecTokens` of ``codec``. Shorter than ``min_seconds`` or silent is a
    :class:`PromptError`.
    """
    from .tokens import CodecTokens

    sr = codec.sample_rate
    tokens = None
    if isinstance(clip, CodecTokens):
        clip.check_codec(codec.info, what="voice tokens")
        tokens = clip[0] if clip.batch_size > 1 else clip
        wav = codec.decode_list(tokens)[0].cpu()
    elif isinstance(clip, (str, os.PathLike)):
        wav, _ = read_audio(clip, sample_rate=sr)
    else:
        if sample_rate is None:
            raise PromptError("a voice waveform needs its sample_rate")
        wav = torch.as_tensor(clip, dtype=torch.float32, device="cpu")
        if wav.dim() == 2:
            wav = wav.mean(0)
        wav = resample(wav, sample_rate, sr) if sample_rate != sr else wav
    seconds = wav.shape[-1] / sr
    if seconds < min_seconds:
        raise PromptError(f"the voice clip is {seconds:.2f} s long; it needs at least {min_seconds:g} s of speech")
    rms = float(wav.pow(2).mean().sqrt())
    if rms < 10 ** (-50 / 20):
        raise PromptError(f"the voice clip is silent (RMS {20 * math.log10(max(rms, 1e-12)):.0f} dBFS)")
    return wav, tokens


class TTSModel:
    """What every TTS family's model object shares: it speaks through ``self.codec`` and runs where its AR model
    ``self.ar`` is."""

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    @property
    def device(self) -> torch.device:
        return next(self.ar.parameters()).device


class TTS:
    """Loader for exported TTS folders (``audiokit export`` writes them): ``TTS.load("exp/valle")`` or the name
    of a bundled model. The family (``valle``, ``tortoise``) comes from the folder's ``config.json``; the
    returned object has ``synthesize(text, ...)``."""

    @staticmethod
    def load(path: str | os.PathLike, device="cpu", asr=None):
        folder = resolve(path)
        meta = read_config(folder)
        family = meta.get("family")
        if family == "valle" and "units" in meta:
            from .valle.units import UnitsValleTTS

            return UnitsValleTTS.load(folder, device=device, asr=asr, meta=meta)
        if family == "valle":
            from .valle.tts import ValleTTS

            return ValleTTS.load(folder, device=device, asr=asr, meta=meta)
        if family == "tortoise" and "units" in meta:
            from .tortoise.units import UnitsTortoiseTTS

            return UnitsTortoiseTTS.load(folder, device=device, asr=asr, meta=meta)
        if family == "tortoise":
            from .tortoise.tts import TortoiseTTS

            return TortoiseTTS.load(folder, device=device, asr=asr, meta=meta)
        raise TTSLoadError(f"{folder}: unknown TTS family {family!r}")
