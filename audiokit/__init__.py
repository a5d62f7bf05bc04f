"""audiokit: speech generation and recognition over one codec token interface.

Public API (model families arrive issue by issue; what is not here yet says so when touched):

- :class:`CodecTokens`, :class:`CodecInfo`: the token contract every model family reads or writes.
- :mod:`audiokit.audio`: read/write/resample/normalize audio.
- :mod:`audiokit.text`: normalization, espeak-ng phonemes, BPE.
- :class:`Codec`: audio ↔ tokens; :class:`Transcriber`: speech → text with timed segments;
  :class:`TTS`: text + a voice prompt → speech (VALL-E).
- :mod:`audiokit.data`: manifests, bucketing sampler, datasets, DataModule, the synthetic corpus.
"""
__version__ = "0.1.0"

from .tokens import CodecInfo, CodecMismatchError, CodecTokens, TokenError, TokenStore, fingerprint

# Names of the public API whose model family has not landed yet, and what they need.
_PENDING = {
    "load": "the model families and the pretrained registry",
}


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
    if name in _PENDING:
        raise AttributeError(
            f"audiokit.{name} is not available in audiokit {__version__}: it needs {_PENDING[name]}, which has not landed yet"
        )
    raise AttributeError(f"module 'audiokit' has no attribute {name!r}")


__all__ = ["Codec", "Transcriber", "TTS", "CodecInfo", "CodecMismatchError", "CodecTokens", "TokenError", "TokenStore", "fingerprint", "__version__"]
