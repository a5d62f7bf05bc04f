"""``audiokit.TTS.load(path)``: any exported text-to-speech model, whatever its family."""
from __future__ import annotations

import os

from .pretrained import resolve


class TTS:
    """Loader for exported TTS folders (``audiokit export`` writes them): ``TTS.load("exp/valle")`` or the name
    of a bundled model. The returned object has ``synthesize(text, prompt=..., ...)``."""

    @staticmethod
    def load(path: str | os.PathLike, device="cpu", asr=None):
        from .valle.tts import TTSLoadError, ValleTTS, read_config

        folder = resolve(path)
        meta = read_config(folder)
        if meta.get("family") == "valle":
            return ValleTTS.load(folder, device=device, asr=asr, meta=meta)
        raise TTSLoadError(f"{folder}: unknown TTS family {meta.get('family')!r}")
