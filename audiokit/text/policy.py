"""One text policy for every TTS model (VALL-E, Tortoise), the CLI and the demo: what a model is handed is
checked and cleaned the same way, and what it cannot say is refused with one line.

- empty text, text over the model's character limit, a language the model does not speak → refused;
- numbers, currency, percentages, ordinals and abbreviations are spelled out (:func:`normalize_text`);
- letters of a script the model's languages are not written in (Cyrillic for an English model, Han, Arabic…)
  → refused, naming the script, an example word and the languages the model speaks (espeak-ng would spell
  them out letter by letter — "Japanese letter Japanese letter…" — and a byte-level BPE would spend minutes of
  AR on them);
- symbols (emoji, pictographs, math and other signs left after normalization) are dropped, by one rule for both
  families; text with nothing left to pronounce → refused, naming what it held.
"""
from __future__ import annotations

import unicodedata
from typing import Sequence

from .normalize import normalize_text
from .phonemes import TextError

# the scripts each language is written in (Unicode character-name prefixes); unknown languages: Latin
_SCRIPTS = {
    "ru": {"CYRILLIC"}, "uk": {"CYRILLIC"}, "bg": {"CYRILLIC"}, "sr": {"CYRILLIC", "LATIN"}, "be": {"CYRILLIC"},
    "mk": {"CYRILLIC"}, "kk": {"CYRILLIC"}, "el": {"GREEK"}, "ar": {"ARABIC"}, "fa": {"ARABIC"}, "ur": {"ARABIC"},
    "he": {"HEBREW"}, "hi": {"DEVANAGARI"}, "mr": {"DEVANAGARI"}, "ne": {"DEVANAGARI"}, "bn": {"BENGALI"},
    "ta": {"TAMIL"}, "te": {"TELUGU"}, "th": {"THAI"}, "ka": {"GEORGIAN"}, "hy": {"ARMENIAN"}, "ko": {"HANGUL"},
    "zh": {"CJK"}, "cmn": {"CJK"}, "yue": {"CJK"}, "ja": {"CJK", "HIRAGANA", "KATAKANA"},
}
_SCRIPT_WORDS = {"CJK": "Han (Chinese characters)", "HANGUL": "Hangul (Korean)"}


def script_of(ch: str) -> str:
    """The script of a letter, as the first word of its Unicode name (LATIN, CYRILLIC, CJK, HIRAGANA, …)."""
    try:
        return unicodedata.name(ch).split()[0]
    except ValueError:
        return "UNKNOWN"


def _scripts_for(languages: Sequence[str]) -> set[str]:
    out: set[str] = set()
    for lang in languages:
        out |= _SCRIPTS.get(lang.split("-")[0].lower(), {"LATIN"})
    return out


def prepare_text(text, languages: Sequence[str], max_chars: int, language: str | None = None) -> str:
    """``text`` checked and cleaned by the policy above for a model that speaks ``languages`` (``language``:
    the one asked for, default the first); a :class:`TextError` with one line otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise TextError("the text to synthesize is empty")
    if len(text) > max_chars:
        raise TextError(f"the text is {len(text)} characters long; the limit is {max_chars}")
    speaks = ", ".join(languages)
    language = language or languages[0]
    if language not in languages:
        raise TextError(f"this model speaks {speaks}; language {language!r} is not one of them")
    text = normalize_text(text)
    allowed = _scripts_for([language])
    for word in text.split():
        for ch in word:
            if ch.isalpha() and script_of(ch) not in allowed:
                script = script_of(ch)
                name = _SCRIPT_WORDS.get(script, script.capitalize())
                raise TextError(f"the text is written in {name} script (e.g. {word[:20]!r}); this model speaks "
                                f"{speaks} and cannot pronounce it")
    kept = "".join(" " if unicodedata.category(c).startswith("S") else c for c in text)
    kept = " ".join(kept.split())
    if not any(c.isalnum() for c in kept):
        held = "only emoji and symbols" if any(unicodedata.category(c).startswith("S") for c in text) else \
            "no letters or digits"
        raise TextError(f"the text has nothing to pronounce ({held}): {text[:40]!r}")
    return kept
