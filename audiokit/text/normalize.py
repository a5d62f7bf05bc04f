"""English text normalization for TTS and ASR: numbers and abbreviations spelled out, whitespace and quotes tidied.

``normalize_text("Dr. Smith paid $5.50 on the 3rd of May, 1999.")``
→ ``"Doctor Smith paid five dollars fifty cents on the third of May, nineteen ninety-nine."``

``normalize_for_wer`` goes further (lower case, no punctuation) so that WER compares words only.
"""
from __future__ import annotations

import re
import unicodedata

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = [(10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand")]
_ORDINAL_WORDS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}

ABBREVIATIONS = {
    "mr": "mister", "mrs": "missus", "ms": "miss", "dr": "doctor", "prof": "professor", "st": "saint",
    "jr": "junior", "sr": "senior", "gen": "general", "gov": "governor", "lt": "lieutenant", "capt": "captain",
    "col": "colonel", "sgt": "sergeant", "rev": "reverend", "hon": "honorable", "mt": "mount", "ft": "fort",
    "vs": "versus", "etc": "et cetera", "approx": "approximately", "no": "number", "dept": "department",
}
_ABBREV_RE = re.compile(r"\b(" + "|".join(sorted(ABBREVIATIONS, key=len, reverse=True)) + r")\.(?=\s|$)", re.IGNORECASE)
_NUMBER_ABBREV_RE = re.compile(r"\bno\.\s*(?=\d)", re.IGNORECASE)

_QUOTES = {"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"',
           "\u2013": "-", "\u2014": " - ", "\u2026": "...", "\u00a0": " "}


def int_to_words(n: int) -> str:
    """Cardinal number in English words: ``1234`` → ``"one thousand two hundred thirty-four"``."""
    if n < 0:
        return "minus " + int_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("-" + _ONES[ones] if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _ONES[hundreds] + " hundred" + (" " + int_to_words(rest) if rest else "")
    for value, name in _SCALES:
        if n >= value:
            head, rest = divmod(n, value)
            return int_to_words(head) + " " + name + (" " + int_to_words(rest) if rest else "")
    raise AssertionError("unreachable")


def ordinal_to_words(n: int) -> str:
    """``21`` → ``"twenty-first"``."""
    words = int_to_words(n)
    head, sep, last = words.rpartition("-") if "-" in words.split(" ")[-1] else words.rpartition(" ")
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last = last + "th"
    return head + sep + last


def year_to_words(n: int) -> str:
    """Years read in pairs: ``1999`` → ``"nineteen ninety-nine"``, ``2005`` → ``"two thousand five"``."""
    if 2000 <= n <= 2009 or n % 1000 == 0 or not 1000 < n < 10000:
        return int_to_words(n)
    high, low = divmod(n, 100)
    if low == 0:
        return int_to_words(high) + " hundred"
    return int_to_words(high) + (" oh " + _ONES[low] if low < 10 else " " + int_to_words(low))


def _digits(s: str) -> str:
    return " ".join(_ONES[int(c)] for c in s)


def _money(m: re.Match) -> str:
    symbol, whole, cents = m.group(1), m.group(2).replace(",", ""), m.group(3)
    unit, sub = {"$": ("dollar", "cent"), "£": ("pound", "penny"), "€": ("euro", "cent")}[symbol]
    n = int(whole)
    out = int_to_words(n) + " " + unit + ("" if n == 1 else "s")
    if cents and int(cents):
        c = int(cents.ljust(2, "0")[:2])
        sub_word = sub if c == 1 else ("pence" if sub == "penny" else sub + "s")
        out += " " + int_to_words(c) + " " + sub_word
    return out


def _number_words(text: str) -> str:
    whole, _, frac = text.replace(",", "").partition(".")
    if not frac and len(whole) == 4 and "," not in text and 1100 <= int(whole) <= 2099:
        return year_to_words(int(whole))
    words = int_to_words(int(whole))
    if frac:
        words += " point " + _digits(frac)
    return words


def _number(m: re.Match) -> str:
    return _number_words(m.group(0))


_MONEY_RE = re.compile(r"([$£€])(\d[\d,]*)(?:\.(\d{1,2}))?\b")
_PERCENT_RE = re.compile(r"(\d+(?:\.\d+)?)\s?%")
_ORDINAL_RE = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_NUMBER_RE = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
# Clock times: "3:15" three fifteen, "7:05" seven oh five, "3:00" three o'clock.
_TIME_RE = re.compile(r"(?<![\d:.,])([01]?\d|2[0-4]):([0-5]\d)(?![\d:])")


def _time(m: re.Match) -> str:
    hour, minute = int(m.group(1)), int(m.group(2))
    if minute == 0:
        return f"{int_to_words(hour)} o'clock"
    return f"{int_to_words(hour)} {'oh ' if minute < 10 else ''}{int_to_words(minute)}"


# Codes read one digit at a time: hyphen-joined digit groups ("555-1234", "3-3-7"; Whisper writes spoken digit
# strings so) other than a rising two-group range of equal widths ("10-20", "1990-1995") or a rising sequence of
# four or more ("1-4-7-10-13"), and numerals with a leading zero ("0471").
_CODE_RE = re.compile(r"(?<![\d.,])(?:\d+(?:-\d+)+|0\d+)(?![\d.,]\d)")


def _code(m: re.Match) -> str:
    groups = m.group(0).split("-")
    values = [int(g) for g in groups]
    rising = all(a < b for a, b in zip(values, values[1:])) and not any(g.startswith("0") for g in groups)
    if rising and ((len(groups) == 2 and len(groups[0]) == len(groups[1])) or len(groups) >= 4):
        return m.group(0)  # a range or a sequence: left to the number rule
    return " ".join(_digits(g) for g in groups)
_SPACE_RE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Spell out numbers, currency, percentages, ordinals and common abbreviations; tidy quotes and spaces.

    Case and punctuation are kept (they carry prosody for TTS).
    """
    text = unicodedata.normalize("NFKC", text)
    text = "".join(_QUOTES.get(c, c) for c in text)
    text = _NUMBER_ABBREV_RE.sub(lambda m: _match_case("number", m.group(0)) + " ", text)
    text = _ABBREV_RE.sub(lambda m: _match_case(ABBREVIATIONS[m.group(1).lower()], m.group(1)), text)
    text = _MONEY_RE.sub(_money, text)
    text = _PERCENT_RE.sub(lambda m: _number_words(m.group(1)) + " percent", text)
    text = _ORDINAL_RE.sub(lambda m: ordinal_to_words(int(m.group(1))), text)
    text = _TIME_RE.sub(_time, text)
    text = _CODE_RE.sub(_code, text)
    text = _NUMBER_RE.sub(_number, text)
    text = text.replace("&", " and ")
    return _SPACE_RE.sub(" ", text).strip()


def _match_case(word: str, like: str) -> str:
    return word.capitalize() if like[:1].isupper() else word


_WER_DROP_RE = re.compile(r"[^\w\s']|_")


_DIGIT_WORDS = frozenset(_ONES[:10]) | {"oh"}


def is_digit_string(normalized: str) -> bool:
    """True for a WER-normalized text made only of digit words (``"four seven oh nine"``)."""
    words = normalized.split()
    return bool(words) and all(w in _DIGIT_WORDS for w in words)


def digits_for_wer(text: str) -> str:
    """The form a digit string is scored in: every numeral read out one digit at a time (``"4719"`` and
    ``"47-19"`` are ``"four seven one nine"``), ``oh`` read as ``zero``, the rest as :func:`normalize_for_wer`."""
    text = re.sub(r"\d", lambda m: f" {_ONES[int(m.group())]} ", text)
    return " ".join("zero" if w == "oh" else w for w in normalize_for_wer(text).split())


def normalize_for_wer(text: str) -> str:
    """Lower case, numbers spelled out, punctuation dropped, hyphens split: the form WER is computed on."""
    text = normalize_text(text).lower().replace("-", " ")
    text = _WER_DROP_RE.sub(" ", text)
    text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)
    return _SPACE_RE.sub(" ", text).strip()
