"""Offline speech synthesizers used to make the synthetic corpus.

- ``espeak``: the espeak-ng library from the ``espeakng-loader`` wheel, driven through its C API
  (ctypes), in-process: no subprocess and no system package needed.
- ``flite``: Debian's ``flite`` program (voices awb, rms, slt, kal) when installed.
- ``festival``: Debian's ``text2wave`` with the festvox voices that are installed.

Every engine returns ``(float32 numpy waveform, sample_rate)`` for ``synthesize(text, voice)``.
"""
from __future__ import annotations

import ctypes
import functools
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf


class EngineError(RuntimeError):
    """A synthesizer that is missing or failed."""


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: an engine, its voice name, and prosody offsets that make it distinct.

    For espeak, ``name`` is ``language+variant`` (e.g. ``en-us+f3``), ``pitch`` and ``range`` are espeak's
    0–100 scales and ``rate`` is words per minute. Other engines ignore the prosody fields.
    """

    engine: str
    name: str
    pitch: int = 50
    range: int = 50
    rate: int = 165
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def speaker_id(self) -> str:
        base = f"{self.engine}-{self.name}".replace("+", "-").replace(" ", "_")
        return f"{base}-p{self.pitch}-r{self.rate}" if self.engine == "espeak" else base


# --------------------------------------------------------------------------- espeak-ng (C API)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4}
_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakEngine:
    """The espeak-ng C library, one instance per process (the library keeps global state)."""

    name = "espeak"

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError:
            raise EngineError("the espeak engine needs the 'text' extra: pip install 'audiokit[text]'") from None
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data = espeakng_loader.get_data_path().encode()
        # The data path is the folder that holds espeak-ng-data.
        parent = os.path.dirname(data.rstrip(b"/"))
        sr = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, ctypes.c_char_p(parent), _INITIALIZE_DONT_EXIT)
        if sr <= 0:
            raise EngineError(f"espeak-ng failed to initialize (data at {data.decode()})")
        self.sample_rate = sr
        self._chunks: list[np.ndarray] = []

        def _collect(wav, n, events):
            if n > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        self._callback = _SynthCallback(_collect)  # keep a reference: the library holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                          ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self._voice: Voice | None = None

    def set_voice(self, voice: Voice) -> None:
        if voice == self._voice:
            return
        if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise EngineError(f"espeak-ng has no voice {voice.name!r}")
        for key in ("rate", "pitch", "range"):
            self.lib.espeak_SetParameter(_PARAM[key], int(getattr(voice, key)), 0)
        self._voice = voice

    def synthesize(self, text: str, voice: Voice) -> tuple[np.ndarray, int]:
        self.set_voice(voice)
        self._chunks = []
        buf = ctypes.create_string_buffer(text.encode("utf-8"))
        err = self.lib.espeak_Synth(buf, len(buf), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise EngineError(f"espeak-ng failed to speak {text!r} (error {err})")
        if not self._chunks:
            raise EngineError(f"espeak-ng produced no audio for {text!r}")
        wav = np.concatenate(self._chunks).astype(np.float32) / 32768.0
        return wav, self.sample_rate

    @staticmethod
    def voice_variants() -> list[str]:
        import espeakng_loader

        return sorted(os.listdir(os.path.join(espeakng_loader.get_data_path(), "voices", "!v")))

    @staticmethod
    def available() -> bool:
        try:
            import espeakng_loader  # noqa: F401
        except ImportError:
            return False
        return True


# --------------------------------------------------------------------------- flite / festival (programs)
def _run_to_wav(cmd: list[str], what: str, stdin: str | None = None) -> tuple[np.ndarray, int]:
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "out.wav")
        cmd = [c.replace("{out}", out) for c in cmd]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0 or not os.path.exists(out):
            raise EngineError(f"{what} failed ({proc.returncode}): {proc.stderr.strip()[:300]}")
        wav, sr = sf.read(out, dtype="float32", always_2d=True)
    return wav.mean(axis=1), sr


class FliteEngine:
    name = "flite"
    VOICES = ("awb", "rms", "slt", "kal16")

    @staticmethod
    def available() -> bool:
        return shutil.which("flite") is not None

    @staticmethod
    @functools.lru_cache(maxsize=1)
    def voices() -> list[str]:
        if not FliteEngine.available():
            return []
        out = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout
        have = out.split(":", 1)[-1].split()
        return [v for v in FliteEngine.VOICES if v in have]

    def synthesize(self, text: str, voice: Voice) -> tuple[np.ndarray, int]:
        return _run_to_wav(["flite", "-voice", voice.name, "-t", text, "-o", "{out}"], f"flite voice {voice.name}")


class FestivalEngine:
    name = "festival"
    VOICE_DIRS = "/usr/share/festival/voices"

    @staticmethod
    def available() -> bool:
        return shutil.which("text2wave") is not None

    @staticmethod
    @functools.lru_cache(maxsize=1)
    def voices() -> list[str]:
        if not FestivalEngine.available() or not os.path.isdir(FestivalEngine.VOICE_DIRS):
            return []
        names = []
        for lang in sorted(os.listdir(FestivalEngine.VOICE_DIRS)):
            if lang not in ("english", "us"):
                continue
            names += sorted(os.listdir(os.path.join(FestivalEngine.VOICE_DIRS, lang)))
        return names

    def synthesize(self, text: str, voice: Voice) -> tuple[np.ndarray, int]:
        return _run_to_wav(["text2wave", "-eval", f"(voice_{voice.name})", "-o", "{out}"], f"festival voice {voice.name}", stdin=text)


ENGINES = {"espeak": EspeakEngine, "flite": FliteEngine, "festival": FestivalEngine}
