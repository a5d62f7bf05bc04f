"""Whisper's token layout: byte-level BPE ranks followed by special tokens.

Special tokens follow the ranks, in this order: end-of-text, start-of-transcript, one per language, translate,
transcribe, start-of-LM, start-of-previous, no-speech, no-timestamps, then 1501 timestamps ``<|0.00|>`` …
``<|30.00|>`` in 20 ms steps. With the multilingual ranks (50257 entries) that puts end-of-text at 50257 and the
first timestamp at 50364, as in the official models.

The ranks come from a local tiktoken-format file (``base64-token rank`` per line, plain or gzip-compressed);
audiokit ships openai-whisper's ``gpt2.tiktoken`` and ``multilingual.tiktoken`` (MIT, see
``audiokit/assets/WHISPER_LICENSE``), so an official ``.pt`` needs no rank file of its own. Nothing is downloaded.
"""
from __future__ import annotations

import base64
import functools
import os
import re
from pathlib import Path

LANGUAGES = (
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur hr bg lt la mi ml "
    "cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si km sn yo so af oc ka be tg sd gu am "
    "yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt haw ln ha ba jw su yue"
).split()

# GPT-2's pre-tokenizer. The `regex` module knows Unicode classes; plain `re` gets the same classes spelled out
# (letters = word characters that are not digits or underscore), used when `regex` is not installed.
FALLBACK_PATTERN = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""")
try:
    import regex as _regex

    _PATTERN = _regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
except ImportError:  # pragma: no cover - depends on the environment
    _PATTERN = FALLBACK_PATTERN


class TokenizerError(ValueError):
    """A rank file or a request the tokenizer cannot serve."""


def load_ranks(path: str | os.PathLike) -> dict[bytes, int]:
    path = Path(path)
    if not path.exists():
        raise TokenizerError(f"{path}: no such vocabulary file")
    if path.suffix == ".gz":
        import gzip

        try:
            text = gzip.decompress(path.read_bytes()).decode()
        except (OSError, EOFError, UnicodeDecodeError) as e:
            raise TokenizerError(f"{path}: not a gzip-compressed rank file ({e})") from None
    else:
        text = path.read_text()
    ranks = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
        except ValueError:
            raise TokenizerError(f"{path}:{lineno}: not a 'base64-token rank' line") from None
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise TokenizerError(f"{path}: ranks are not 0..{len(ranks) - 1}")
    return ranks


def _byte_alphabet() -> dict[str, int]:
    """Byte-level BPE's printable stand-in character → the byte it stands for (GPT-2's table)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, n = {}, 0
    for b in range(256):
        if b in keep:
            chars[chr(b)] = b
        else:
            chars[chr(256 + n)] = b
            n += 1
    return chars


def bpe_to_ranks(bpe) -> dict[bytes, int]:
    """A trained byte-level :class:`~audiokit.text.BPETokenizer` → ``bytes → rank`` (its specials left out)."""
    alphabet = _byte_alphabet()
    vocab = bpe._tok.get_vocab()
    tokens = []
    for token, idx in sorted(vocab.items(), key=lambda kv: kv[1]):
        if not all(c in alphabet for c in token):
            continue  # a special token such as <pad>
        tokens.append(bytes(alphabet[c] for c in token))
    if len(set(tokens)) != len(tokens) or not set(bytes([b]) for b in range(256)) <= set(tokens):
        raise TokenizerError("the BPE is not byte-level (it lacks some of the 256 bytes)")
    return {t: i for i, t in enumerate(tokens)}


class WhisperTokenizer:
    """Text ↔ ids with Whisper's special tokens.

    Args:
        ranks: byte sequence → rank (see :func:`load_ranks`).
        num_languages: language tokens to lay out (99 for most multilingual models, 100 for large-v3).
        language, task: the defaults of :attr:`sot_sequence` (``"transcribe"`` or ``"translate"``).
    """

    def __init__(self, ranks: dict[bytes, int], num_languages: int = 99, language: str | None = "en",
                 task: str = "transcribe", multilingual: bool = True):
        self.ranks = ranks
        self.decoder = {v: k for k, v in ranks.items()}
        self.multilingual = multilingual
        self.languages = LANGUAGES[:num_languages]  # English-only vocabularies lay them out too (unused)
        specials = ["<|endoftext|>", "<|startoftranscript|>", *[f"<|{l}|>" for l in self.languages], "<|translate|>",
                    "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>",
                    *[f"<|{i * 0.02:.2f}|>" for i in range(1501)]]
        self.special = {s: len(ranks) + i for i, s in enumerate(specials)}
        self.special_decoder = {v: k for k, v in self.special.items()}
        if task not in ("transcribe", "translate"):
            raise TokenizerError(f"task must be 'transcribe' or 'translate', got {task!r}")
        if language is not None and multilingual and language not in self.languages:
            raise TokenizerError(f"language {language!r} is not one of this model's {len(self.languages)} languages")
        self.language, self.task = (language if multilingual else None), task

    @classmethod
    def from_file(cls, path: str | os.PathLike, **kw) -> "WhisperTokenizer":
        return cls(load_ranks(path), **kw)

    @classmethod
    def from_bpe(cls, bpe, **kw) -> "WhisperTokenizer":
        """The layout over a byte-level BPE trained on our corpus (:class:`audiokit.text.BPETokenizer`).

        Its merges become ranks (HF ``tokenizers`` numbers merged tokens in merge order, after the 256 bytes),
        its own special tokens are dropped, and Whisper's follow. Defaults to one language (English) with the
        multilingual layout, so ``sot_sequence`` is ``<|startoftranscript|><|en|><|transcribe|>``.
        """
        return cls(bpe_to_ranks(bpe), **{"num_languages": 1, **kw})

    def with_options(self, language: str | None = None, task: str = "transcribe") -> "WhisperTokenizer":
        """The same vocabulary with another default language / task (shares the BPE cache)."""
        other = object.__new__(WhisperTokenizer)
        other.__dict__.update(self.__dict__)
        if task not in ("transcribe", "translate"):
            raise TokenizerError(f"task must be 'transcribe' or 'translate', got {task!r}")
        if language is not None and self.multilingual and language not in self.languages:
            raise TokenizerError(f"language {language!r} is not one of this model's languages "
                                 f"({', '.join(self.languages[:10])}{' ...' if len(self.languages) > 10 else ''})")
        other.language, other.task = (language if self.multilingual else None), task
        return other

    def save(self, path: str | os.PathLike) -> Path:
        """Write the ranks as a tiktoken-format file (read back with :func:`load_ranks`)."""
        from ..fileio import atomic_path

        path = Path(path)
        lines = [f"{base64.b64encode(t).decode() or '='} {r}" for t, r in sorted(self.ranks.items(), key=lambda kv: kv[1])]
        with atomic_path(path) as tmp:
            tmp.write_text("\n".join(lines) + "\n")
        return path

    @property
    def config(self) -> dict:
        """What, besides the ranks, rebuilds this tokenizer: ``WhisperTokenizer(ranks, **config)``."""
        return {"num_languages": len(self.languages), "multilingual": self.multilingual}

    # ------------------------------------------------------------------ special ids
    @property
    def n_vocab(self) -> int:
        return len(self.ranks) + len(self.special)

    def _id(self, token: str) -> int:
        return self.special[token]

    eot = property(lambda self: self._id("<|endoftext|>"))
    sot = property(lambda self: self._id("<|startoftranscript|>"))
    transcribe = property(lambda self: self._id("<|transcribe|>"))
    translate = property(lambda self: self._id("<|translate|>"))
    sot_prev = property(lambda self: self._id("<|startofprev|>"))
    no_speech = property(lambda self: self._id("<|nospeech|>"))
    no_timestamps = property(lambda self: self._id("<|notimestamps|>"))
    timestamp_begin = property(lambda self: self._id("<|0.00|>"))

    @property
    def all_language_tokens(self) -> list[int]:
        return [self.special[f"<|{l}|>"] for l in self.languages]

    def language_token(self, language: str) -> int:
        if language not in self.languages:
            raise TokenizerError(f"language {language!r} is not one of this model's languages")
        return self._id(f"<|{language}|>")

    @property
    def sot_sequence(self) -> tuple[int, ...]:
        seq = [self.sot]
        if self.multilingual and self.language is not None:
            seq += [self.language_token(self.language), self.transcribe if self.task == "transcribe" else self.translate]
        return tuple(seq)

    # ------------------------------------------------------------------ text
    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece in _PATTERN.findall(text):
            ids.extend(self._bpe(piece.encode("utf-8")))
        return ids

    @functools.lru_cache(maxsize=65536)
    def _bpe(self, piece: bytes) -> tuple[int, ...]:
        if piece in self.ranks:
            return (self.ranks[piece],)
        parts = [piece[i : i + 1] for i in range(len(piece))]
        while len(parts) > 1:
            best, best_rank = None, None
            for i in range(len(parts) - 1):
                r = self.ranks.get(parts[i] + parts[i + 1])
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = i, r
            if best is None:
                break
            parts[best : best + 2] = [parts[best] + parts[best + 1]]
        return tuple(self.ranks[p] for p in parts)

    def decode(self, ids, skip_special: bool = True) -> str:
        """Ids → text; special tokens (timestamps included) are dropped unless ``skip_special`` is False."""
        return self.decode_bytes(ids, skip_special).decode("utf-8", errors="replace")

    def decode_bytes(self, ids, skip_special: bool = True) -> bytes:
        """Ids → the UTF-8 bytes they stand for (byte-level tokens may split a character between them)."""
        out = bytearray()
        for i in ids:
            i = int(i)
            if i in self.decoder:
                out += self.decoder[i]
            elif not skip_special and i in self.special_decoder:
                out += self.special_decoder[i].encode()
            elif i >= self.n_vocab or i < 0:
                raise TokenizerError(f"token id {i} is outside the vocabulary of {self.n_vocab}")
        return bytes(out)

    def timestamp(self, token: int) -> float:
        """Seconds of a timestamp token."""
        if not self.timestamp_begin <= token < self.timestamp_begin + 1501:
            raise TokenizerError(f"token {token} is not a timestamp")
        return (token - self.timestamp_begin) * 0.02
