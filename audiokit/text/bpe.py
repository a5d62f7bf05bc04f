"""A byte-level BPE tokenizer trained on manifest text (HF ``tokenizers``), saved as one JSON file."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

from ..fileio import atomic_path


def _tokenizers():
    try:
        import tokenizers
    except ImportError:
        raise ImportError("the BPE tokenizer needs the 'text' extra: pip install 'audiokit[text]'") from None
    return tokenizers


class BPETokenizer:
    """Byte-level BPE: any string encodes (no unknown tokens) and decodes back exactly.

    Train with :meth:`train`, persist with :meth:`save` / :meth:`load`.
    ``special_tokens`` get the first ids in the order given.
    """

    def __init__(self, tokenizer):
        self._tok = tokenizer

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 1000, special_tokens: Sequence[str] = ("<pad>", "<bos>", "<eos>"), min_frequency: int = 2) -> "BPETokenizer":
        tk = _tokenizers()
        tok = tk.Tokenizer(tk.models.BPE())
        tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = tk.decoders.ByteLevel()
        trainer = tk.trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(special_tokens),
            initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        texts = [t for t in texts if t]
        if not texts:
            raise ValueError("cannot train a BPE tokenizer on no text")
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok)

    @classmethod
    def from_manifest(cls, manifest: str | os.PathLike, vocab_size: int = 1000, **kw) -> "BPETokenizer":
        from ..data.manifest import read_manifest

        return cls.train((e["text"] for e in read_manifest(manifest) if e.get("text")), vocab_size=vocab_size, **kw)

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        with atomic_path(path) as tmp:
            self._tok.save(str(tmp))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BPETokenizer":
        tk = _tokenizers()
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such tokenizer file")
        try:
            return cls(tk.Tokenizer.from_file(str(path)))
        except Exception as e:  # tokenizers raises a bare Exception on malformed JSON
            raise ValueError(f"{path}: not a valid tokenizer JSON file ({e})") from None

    def to_json(self) -> str:
        """The whole tokenizer as one JSON string (checkpoints carry it, so a model never loses its vocabulary)."""
        return self._tok.to_str()

    @classmethod
    def from_json(cls, text: str) -> "BPETokenizer":
        tk = _tokenizers()
        try:
            return cls(tk.Tokenizer.from_str(text))
        except Exception as e:
            raise ValueError(f"not a valid tokenizer JSON string ({e})") from None

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=True)

    def tokens(self, text: str) -> list[str]:
        return self._tok.encode(text, add_special_tokens=False).tokens
