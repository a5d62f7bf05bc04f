"""Phonemes: espeak-ng (through phonemizer-fork and the library in the espeakng-loader wheel) and a fixed vocabulary.

``Phonemizer("en-us")(["Hello, world!"])`` → ``["həlˈoʊ, wˈɜːld!"]``; ``PHONEME_VOCAB.encode(...)`` turns
that into ids. The vocabulary is fixed (not learned from data) so every model trained with it agrees on ids.
"""
from __future__ import annotations

import functools
import logging
import threading
from typing import Iterable, Sequence

from .normalize import normalize_text


class TextError(ValueError):
    """Text audiokit cannot process: empty, too long, or in an unsupported language."""


PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
_SPECIALS = [PAD, UNK, BOS, EOS]
# Word boundary and punctuation kept as prosody marks.
_PUNCTUATION = " !'(),-.:;?\"¡¿…«»"
# IPA symbols espeak-ng emits across its languages: letters, stress, length and tone marks, diacritics.
_IPA = (
    "abcdefghijklmnopqrstuvwxyz"
    "æçðøħŋœǀǁǂǃɐɑɒɓɔɕɖɗɘəɚɛɜɝɞɟɠɡɢɣɤɥɦɧɨɪɫɬɭɮɯɰɱɲɳɴɵɶɸɹɺɻɽɾʀʁʂʃʄʈʉʊʋʌʍʎʏʐʑʒʔʕʘʙʛʜʝʟʡʢʤʧ"
    "βθχᵻⱱ"
    "ˈˌːˑ˞ʰʱʲʷˠˤ↓↑→↗↘"
    "\u0303\u0308\u030a\u0329\u032a\u032f\u0361\u0325\u031a\u0330\u0334"
)


class PhonemeVocab:
    """Fixed symbol table: 4 specials (pad 0, unk 1, bos 2, eos 3), punctuation, IPA symbols."""

    def __init__(self, symbols: Sequence[str] = tuple(_PUNCTUATION + _IPA)):
        seen: list[str] = []
        for s in symbols:
            if s not in seen:
                seen.append(s)
        self.symbols = _SPECIALS + seen
        self._id = {s: i for i, s in enumerate(self.symbols)}

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def pad_id(self) -> int:
        return self._id[PAD]

    @property
    def unk_id(self) -> int:
        return self._id[UNK]

    @property
    def bos_id(self) -> int:
        return self._id[BOS]

    @property
    def eos_id(self) -> int:
        return self._id[EOS]

    def encode(self, phonemes: str, add_bos_eos: bool = False) -> list[int]:
        """One id per symbol; symbols outside the vocabulary become ``<unk>``."""
        ids = [self._id.get(c, self.unk_id) for c in phonemes]
        return [self.bos_id, *ids, self.eos_id] if add_bos_eos else ids

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.symbols[i] for i in ids if i >= len(_SPECIALS))

    def unknown(self, phonemes: str) -> set[str]:
        """Symbols of ``phonemes`` that the vocabulary lacks."""
        return {c for c in phonemes if c not in self._id}


PHONEME_VOCAB = PhonemeVocab()


@functools.lru_cache(maxsize=1)
def _espeak_backend_class():
    try:
        import espeakng_loader
        from phonemizer.backend import EspeakBackend
        from phonemizer.backend.espeak.wrapper import EspeakWrapper
    except ImportError as e:
        raise ImportError(
            f"phonemization needs the 'text' extra ({e.name} is missing): pip install 'audiokit[text]'"
        ) from None
    EspeakWrapper.set_library(espeakng_loader.get_library_path())
    EspeakWrapper.set_data_path(espeakng_loader.get_data_path())
    return EspeakBackend


def supported_languages() -> dict[str, str]:
    """espeak-ng language codes (``"en-us"``, ``"fr-fr"``, …) to their names."""
    return dict(_espeak_backend_class().supported_languages())


class Phonemizer:
    """Text → IPA phoneme strings with espeak-ng, punctuation and stress kept.

    Args:
        language: an espeak-ng language code (see :func:`supported_languages`).
        normalize: spell out numbers and abbreviations first (English only).
        max_chars: longer inputs are refused with :class:`TextError`.
    """

    def __init__(self, language: str = "en-us", normalize: bool = True, max_chars: int = 2000):
        backend_cls = _espeak_backend_class()
        langs = backend_cls.supported_languages()
        if language not in langs:
            close = sorted(l for l in langs if l.split("-")[0] == language.split("-")[0])
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise TextError(f"language {language!r} is not supported by espeak-ng{hint}")
        self.language = language
        self.normalize = normalize and language.startswith("en")
        self.max_chars = max_chars
        # phonemizer warns on every call whose punctuation changes its word count; that is expected here
        quiet = logging.getLogger("audiokit.phonemizer")
        quiet.setLevel(logging.ERROR)
        self._backend = backend_cls(language, preserve_punctuation=True, with_stress=True, language_switch="remove-flags",
                                    logger=quiet)
        self._lock = threading.Lock()  # the espeak library is not re-entrant

    def __call__(self, texts: str | Sequence[str]) -> list[str]:
        from phonemizer.separator import Separator

        if isinstance(texts, str):
            texts = [texts]
        prepared = []
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise TextError(f"text {i} is empty")
            if len(t) > self.max_chars:
                raise TextError(f"text {i} is {len(t)} characters long; the limit is {self.max_chars} (split it into sentences)")
            prepared.append(normalize_text(t) if self.normalize else t.strip())
        with self._lock:
            out = self._backend.phonemize(prepared, separator=Separator(phone="", word=" ", syllable=""), strip=True, njobs=1)
        return [" ".join(p.split()) for p in out]

    def ids(self, text: str, vocab: PhonemeVocab = PHONEME_VOCAB, add_bos_eos: bool = True) -> list[int]:
        return vocab.encode(self([text])[0], add_bos_eos=add_bos_eos)
