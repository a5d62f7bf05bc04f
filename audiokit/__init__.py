"""audiokit: speech generation and recognition over one codec token interface.

Public API:

- :class:`CodecTokens`, :class:`CodecInfo`: the token contract every model family reads or writes.
- :mod:`audiokit.audio`: read/write/resample/normalize audio.
- :mod:`audiokit.text`: normalization, espeak-ng phonemes, BPE.
- :class:`Codec`: audio ↔ tokens; :class:`Transcriber`: speech → text with timed segments;
  :class:`TTS`: text + a voice prompt → speech (VALL-E, Tortoise).
- :func:`load`: any exported model folder, or a bundled one by name (``audiokit.load("valle")``).
- :mod:`audiokit.data`: manifests, bucketing sampler, datasets, DataModule, the synthetic corpus.
"""
__version__ = "0.1.0"

from .tokens import CodecInfo, CodecMismatchError, CodecTokens, TokenError, TokenStore, fingerprint


def load(name_or_path, device="cpu", **kw):
    """Any exported model folder, or a bundled model by name (``"codec"``, ``"asr"``, ``"valle"``,
    ``"tortoise"``: folders under ``pretrained/``), as its family's object — see :func:`audiokit.pretrained.load`."""
    from .pretrained import load as _load

    return _load(name_or_path, device=device, **kw)


def __getattr__(name: str):
    if name == "Codec":  # imported on first use, so `import audiokit` stays light
        from .codec import Codec

        return Codec
    if name == "Transcriber":
        from .asr import Transcriber

        return Transcriber
    if name == "TTS":
        from .tts import TTS

        return TTS
    raise AttributeError(f"module 'audiokit' has no attribute {name!r}")


__all__ = ["load", "Codec", "Transcriber", "TTS", "CodecInfo", "CodecMismatchError", "CodecTokens", "TokenError", "TokenStore", "fingerprint", "__version__"]
