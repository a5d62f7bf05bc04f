"""CodecTokens: the grid of discrete codec tokens every audiokit model reads or writes.

A batch of tokens is ``codes`` (int64, ``[B, Q, T]``: batch, codebooks, frames), ``lengths``
(int64, ``[B]``: valid frames per item; frames past an item's length are padding and hold 0)
and ``codec``, the identity of the codec that made them (:class:`CodecInfo`). Models trained on
one codec refuse tokens of another through :meth:`CodecInfo.check_same`.

Files: one item or batch is a ``.safetensors`` file whose metadata carries the codec identity
(:meth:`CodecTokens.save` / :meth:`CodecTokens.load`); a corpus is a sharded
:class:`TokenStore` directory (``index.json`` + ``shard-*.safetensors``).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import torch

from .fileio import atomic_path

FORMAT_NAME = "audiokit.codec_tokens"
FORMAT_VERSION = 1
STORE_FORMAT_NAME = "audiokit.token_store"


class TokenError(ValueError):
    """Tokens that break the CodecTokens contract (bad dtype, shape, range or file)."""


class CodecMismatchError(TokenError):
    """Tokens made by one codec given to a model or batch of another."""


@dataclass(frozen=True)
class CodecInfo:
    """Identity of a codec: what a token grid means.

    ``n_codebooks`` is how many codebooks the codec has in all; a token grid may carry fewer
    (the first ``Q``), which is a lower bitrate of the same codec, not another codec.
    ``fingerprint`` is a hash of the codec's weights and configuration (:func:`fingerprint`).
    """

    sample_rate: int
    frame_rate: float
    codebook_size: int
    n_codebooks: int
    fingerprint: str
    name: str = ""

    def __post_init__(self):
        if not (isinstance(self.sample_rate, int) and self.sample_rate > 0):
            raise TokenError(f"codec sample_rate must be a positive int, got {self.sample_rate!r}")
        if not (self.frame_rate > 0 and math.isfinite(self.frame_rate)):
            raise TokenError(f"codec frame_rate must be a positive number, got {self.frame_rate!r}")
        if not (isinstance(self.codebook_size, int) and self.codebook_size >= 2):
            raise TokenError(f"codec codebook_size must be an int >= 2, got {self.codebook_size!r}")
        if not (isinstance(self.n_codebooks, int) and self.n_codebooks >= 1):
            raise TokenError(f"codec n_codebooks must be an int >= 1, got {self.n_codebooks!r}")
        if not isinstance(self.fingerprint, str) or not self.fingerprint:
            raise TokenError("codec fingerprint must be a non-empty string")

    def describe(self) -> str:
        label = f"'{self.name}' " if self.name else ""
        return (
            f"codec {label}[fingerprint {self.fingerprint}, {self.sample_rate} Hz, "
            f"{self.frame_rate:g} frames/s, {self.n_codebooks}x{self.codebook_size} codes]"
        )

    def same_codec(self, other: "CodecInfo") -> bool:
        """True when both describe the same codec (the name is only a label and is ignored)."""
        return (
            self.fingerprint == other.fingerprint
            and self.sample_rate == other.sample_rate
            and math.isclose(self.frame_rate, other.frame_rate, rel_tol=1e-9)
            and self.codebook_size == other.codebook_size
            and self.n_codebooks == other.n_codebooks
        )

    def check_same(self, other: "CodecInfo", what: str = "tokens") -> None:
        """Raise :class:`CodecMismatchError` naming both codecs unless ``other`` is this codec."""
        if not self.same_codec(other):
            raise CodecMismatchError(
                f"{what} were made by {other.describe()}, but this expects {self.describe()}; "
                "re-tokenize the audio with the expected codec"
            )

    def bitrate(self, n_q: int | None = None) -> float:
        """Bits per second when ``n_q`` codebooks (default all) are used."""
        n_q = self.n_codebooks if n_q is None else n_q
        return self.frame_rate * n_q * math.log2(self.codebook_size)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "CodecInfo":
        try:
            return cls(
                sample_rate=int(d["sample_rate"]),
                frame_rate=float(d["frame_rate"]),
                codebook_size=int(d["codebook_size"]),
                n_codebooks=int(d["n_codebooks"]),
                fingerprint=str(d["fingerprint"]),
                name=str(d.get("name", "")),
            )
        except KeyError as e:
            raise TokenError(f"codec description lacks the field {e.args[0]!r}") from None


def fingerprint(state_dict: Mapping[str, torch.Tensor], config: Mapping | None = None) -> str:
    """A short stable hash of a model's weights and configuration (16 hex digits).

    Tensors are hashed in key order, as float32/int64 bytes on the CPU, so the same weights
    give the same fingerprint on any device and whatever their storage dtype.
    """
    h = hashlib.sha256()
    if config is not None:
        h.update(json.dumps(config, sort_keys=True, default=str).encode())
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu()
        t = t.to(torch.float32) if t.is_floating_point() else t.to(torch.int64)
        h.update(key.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _as_codes(codes) -> torch.Tensor:
    if not isinstance(codes, torch.Tensor):
        raise TokenError(f"codes must be a torch.Tensor, got {type(codes).__name__}")
    if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
        raise TokenError(f"codes must hold integers, got dtype {codes.dtype}")
    if codes.dim() != 3:
        raise TokenError(f"codes must have shape [B, Q, T], got {tuple(codes.shape)}")
    return codes.to(torch.int64)


class CodecTokens:
    """A batch of codec tokens with per-item lengths and the identity of the codec that made them.

    Args:
        codes: integer tensor ``[B, Q, T]``; stored as int64.
        codec: the :class:`CodecInfo` of the codec.
        lengths: int tensor ``[B]`` of valid frames per item; defaults to ``T`` for every item.
    """

    __slots__ = ("codes", "lengths", "codec")

    def __init__(self, codes: torch.Tensor, codec: CodecInfo, lengths: torch.Tensor | Sequence[int] | None = None):
        codes = _as_codes(codes)
        if not isinstance(codec, CodecInfo):
            raise TokenError(f"codec must be a CodecInfo, got {type(codec).__name__}")
        B, Q, T = codes.shape
        if Q < 1 or Q > codec.n_codebooks:
            raise TokenError(f"codes have {Q} codebooks; {codec.describe()} has 1 to {codec.n_codebooks}")
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.int64, device=codes.device)
        else:
            lengths = torch.as_tensor(lengths, device=codes.device)
            if lengths.is_floating_point() or lengths.dim() != 1 or lengths.shape[0] != B:
                raise TokenError(f"lengths must be an int tensor of shape [{B}], got {tuple(lengths.shape)} {lengths.dtype}")
            lengths = lengths.to(torch.int64)
            if B and (int(lengths.min()) < 0 or int(lengths.max()) > T):
                raise TokenError(f"lengths must lie in [0, {T}], got {lengths.tolist()}")
        if codes.numel():
            lo, hi = int(codes.min()), int(codes.max())
            if lo < 0 or hi >= codec.codebook_size:
                raise TokenError(
                    f"codes must lie in [0, {codec.codebook_size}) for {codec.describe()}, found values in [{lo}, {hi}]"
                )
        self.codes = codes
        self.lengths = lengths
        self.codec = codec

    # ------------------------------------------------------------------ properties
    @property
    def batch_size(self) -> int:
        return self.codes.shape[0]

    @property
    def n_q(self) -> int:
        """Codebooks carried (may be fewer than ``codec.n_codebooks``)."""
        return self.codes.shape[1]

    @property
    def n_frames(self) -> int:
        return self.codes.shape[2]

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.codec.frame_rate

    @property
    def codebook_size(self) -> int:
        return self.codec.codebook_size

    @property
    def n_codebooks(self) -> int:
        return self.codec.n_codebooks

    @property
    def fingerprint(self) -> str:
        return self.codec.fingerprint

    @property
    def device(self) -> torch.device:
        return self.codes.device

    @property
    def bitrate(self) -> float:
        """Bits per second at this number of codebooks."""
        return self.codec.bitrate(self.n_q)

    def durations(self) -> torch.Tensor:
        """Seconds of audio per item, ``[B]`` float."""
        return self.lengths.to(torch.float64) / self.frame_rate

    def mask(self) -> torch.Tensor:
        """Boolean ``[B, T]``, True on valid frames."""
        return torch.arange(self.n_frames, device=self.device)[None, :] < self.lengths[:, None]

    def __len__(self) -> int:
        return self.batch_size

    def __repr__(self) -> str:
        return (
            f"CodecTokens(batch={self.batch_size}, n_q={self.n_q}, frames={self.n_frames}, "
            f"lengths={self.lengths.tolist() if self.batch_size <= 8 else '...'}, {self.codec.describe()})"
        )

    def __eq__(self, other) -> bool:
        if not isinstance(other, CodecTokens):
            return NotImplemented
        return (
            self.codec.same_codec(other.codec)
            and self.codes.shape == other.codes.shape
            and torch.equal(self.lengths.cpu(), other.lengths.cpu())
            and torch.equal(self.codes.cpu(), other.codes.cpu())
        )

    __hash__ = None  # mutable tensors inside

    # ------------------------------------------------------------------ transforms
    def _new(self, codes: torch.Tensor, lengths: torch.Tensor) -> "CodecTokens":
        out = object.__new__(CodecTokens)  # values already validated
        out.codes, out.lengths, out.codec = codes, lengths, self.codec
        return out

    def check_codec(self, expected: CodecInfo, what: str = "tokens") -> "CodecTokens":
        """Return self if made by ``expected``, else raise :class:`CodecMismatchError`."""
        expected.check_same(self.codec, what)
        return self

    def to(self, device) -> "CodecTokens":
        return self._new(self.codes.to(device), self.lengths.to(device))

    def cpu(self) -> "CodecTokens":
        return self.to("cpu")

    def keep_codebooks(self, n: int) -> "CodecTokens":
        """The first ``n`` codebooks: the same audio at a lower bitrate."""
        if not 1 <= n <= self.n_q:
            raise TokenError(f"can keep 1 to {self.n_q} codebooks, asked for {n}")
        return self._new(self.codes[:, :n].contiguous(), self.lengths.clone())

    def time_slice(self, start: int, end: int | None = None) -> "CodecTokens":
        """Frames ``[start, end)`` of every item; lengths are clipped to what remains."""
        T = self.n_frames
        end = T if end is None else end
        if start < 0:
            start += T
        if end < 0:
            end += T
        if not 0 <= start <= end <= T:
            raise TokenError(f"time slice [{start}, {end}) lies outside the {T} frames")
        lengths = (self.lengths - start).clamp(min=0, max=end - start)
        return self._new(self.codes[:, :, start:end].contiguous(), lengths)

    def slice_seconds(self, start_s: float, end_s: float | None = None) -> "CodecTokens":
        start = int(round(start_s * self.frame_rate))
        end = None if end_s is None else int(round(end_s * self.frame_rate))
        return self.time_slice(min(start, self.n_frames), None if end is None else min(end, self.n_frames))

    def __getitem__(self, index) -> "CodecTokens":
        """Select items of the batch: ``tokens[i]``, ``tokens[1:3]``, ``tokens[[0, 2]]``."""
        if isinstance(index, int):
            if not -self.batch_size <= index < self.batch_size:
                raise IndexError(f"item {index} of a batch of {self.batch_size}")
            index = slice(index, index + 1 if index != -1 else None)
        return self._new(self.codes[index], self.lengths[index])

    def unbatch(self) -> list["CodecTokens"]:
        """One single-item CodecTokens per batch item, trimmed to its length."""
        return [self[i].time_slice(0, int(self.lengths[i])) for i in range(self.batch_size)]

    @staticmethod
    def collate(items: Sequence["CodecTokens"], pad_to_multiple: int = 1) -> "CodecTokens":
        """Pad and stack items (each of any batch size) into one batch.

        All items must come from the same codec and carry the same number of codebooks.
        """
        if not items:
            raise TokenError("cannot collate an empty list of tokens")
        first = items[0]
        for i, it in enumerate(items):
            first.codec.check_same(it.codec, what=f"tokens at position {i} of the batch")
            if it.n_q != first.n_q:
                raise TokenError(f"cannot batch {first.n_q} codebooks with {it.n_q} (item {i}); use keep_codebooks first")
        T = max(int(it.lengths.max()) if it.batch_size else 0 for it in items)
        T = max(T, 0)
        if pad_to_multiple > 1:
            T = -(-T // pad_to_multiple) * pad_to_multiple
        B = sum(it.batch_size for it in items)
        codes = torch.zeros(B, first.n_q, T, dtype=torch.int64, device=first.device)
        lengths = torch.empty(B, dtype=torch.int64, device=first.device)
        b = 0
        for it in items:
            for j in range(it.batch_size):
                n = int(it.lengths[j])
                codes[b, :, :n] = it.codes[j, :, :n].to(first.device)
                lengths[b] = n
                b += 1
        return first._new(codes, lengths)

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> Path:
        """Write to a ``.safetensors`` file atomically; the codec identity goes in its metadata."""
        from safetensors.torch import save_file

        path = Path(path)
        store_dtype = _storage_dtype(self.codebook_size)
        metadata = {
            "format": FORMAT_NAME,
            "version": str(FORMAT_VERSION),
            "codec": json.dumps(self.codec.to_dict()),
        }
        tensors = {"codes": self.codes.cpu().to(store_dtype).contiguous(), "lengths": self.lengths.cpu().contiguous()}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, expected: CodecInfo | None = None, device="cpu") -> "CodecTokens":
        """Read a file written by :meth:`save`; with ``expected``, refuse tokens of another codec."""
        path = Path(path)
        tensors, metadata = _read_safetensors(path)
        if metadata.get("format") != FORMAT_NAME:
            raise TokenError(f"{path}: not a CodecTokens file (format {metadata.get('format')!r})")
        if int(metadata.get("version", "0")) > FORMAT_VERSION:
            raise TokenError(f"{path}: written by a newer audiokit (format version {metadata['version']}); upgrade audiokit")
        try:
            codec = CodecInfo.from_dict(json.loads(metadata["codec"]))
            codes, lengths = tensors["codes"], tensors["lengths"]
        except (KeyError, json.JSONDecodeError) as e:
            raise TokenError(f"{path}: CodecTokens file is missing or has a malformed part ({e})") from None
        try:
            tokens = cls(codes.to(torch.int64), codec, lengths)
        except TokenError as e:
            raise TokenError(f"{path}: {e}") from None
        if expected is not None:
            tokens.check_codec(expected, what=f"tokens in {path}")
        return tokens.to(device)


def _storage_dtype(codebook_size: int) -> torch.dtype:
    # int16 holds codes < 32768, half the bytes of int32; larger vocabularies need int32.
    return torch.int16 if codebook_size <= 2**15 else torch.int32


def _read_safetensors(path: Path, names: Iterable[str] | None = None) -> tuple[dict, dict]:
    from safetensors import SafetensorError, safe_open

    if not path.exists():
        raise TokenError(f"{path}: no such tokens file")
    if path.is_dir():
        raise TokenError(f"{path}: is a directory, not a tokens file")
    if path.stat().st_size == 0:
        raise TokenError(f"{path}: tokens file is empty")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            keys = list(f.keys()) if names is None else list(names)
            tensors = {k: f.get_tensor(k) for k in keys}
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise TokenError(f"{path}: corrupt or truncated tokens file ({e})") from None
    return tensors, metadata


class TokenStore:
    """A sharded on-disk store of many utterances' tokens, all from one codec.

    Layout: ``index.json`` (codec identity, shard list, and for every id its shard, offset,
    frame count) and ``shard-NNNNN.safetensors`` files each holding one ``[Q, frames]`` int
    tensor that concatenates many utterances in time. Items load lazily: reading one item
    reads only its frames.

    Write with :meth:`TokenStore.writer`; read with ``TokenStore(path)``.
    """

    def __init__(self, root: str | os.PathLike, expected: CodecInfo | None = None):
        self.root = Path(root)
        index_path = self.root / "index.json"
        if not index_path.exists():
            raise TokenError(f"{self.root}: not a token store (no index.json)")
        try:
            index = json.loads(index_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise TokenError(f"{index_path}: corrupt token store index ({e})") from None
        if index.get("format") != STORE_FORMAT_NAME:
            raise TokenError(f"{index_path}: not a token store index (format {index.get('format')!r})")
        self.codec = CodecInfo.from_dict(index["codec"])
        if expected is not None:
            expected.check_same(self.codec, what=f"token store {self.root}")
        self.n_q: int = int(index["n_q"])
        self.shards: list[str] = index["shards"]
        self._items: dict[str, tuple[int, int, int]] = {k: tuple(v) for k, v in index["items"].items()}
        self._open: dict[int, object] = {}

    @staticmethod
    def writer(root: str | os.PathLike, codec: CodecInfo, n_q: int | None = None, shard_frames: int = 2_000_000) -> "TokenStoreWriter":
        return TokenStoreWriter(root, codec, n_q, shard_frames)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def ids(self) -> list[str]:
        return list(self._items)

    def n_frames(self, key: str) -> int:
        return self._items[key][2]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def _shard(self, i: int):
        from safetensors import SafetensorError, safe_open

        if i not in self._open:
            path = self.root / self.shards[i]
            try:
                self._open[i] = safe_open(str(path), framework="pt")
            except (SafetensorError, OSError) as e:
                raise TokenError(f"{path}: corrupt or missing token shard ({e})") from None
        return self._open[i]

    def __getitem__(self, key: str) -> CodecTokens:
        try:
            shard, offset, n = self._items[key]
        except KeyError:
            raise KeyError(f"no item {key!r} in token store {self.root}") from None
        try:
            codes = self._shard(shard).get_slice("codes")[:, offset : offset + n]
        except Exception as e:  # safetensors raises several types for a damaged shard
            raise TokenError(f"{self.root / self.shards[shard]}: cannot read item {key!r} ({e})") from None
        return CodecTokens(codes.to(torch.int64)[None], self.codec)

    def __getstate__(self):  # picklable for DataLoader workers: drop open file handles
        state = self.__dict__.copy()
        state["_open"] = {}
        return state


class TokenStoreWriter:
    """Writes a :class:`TokenStore`; use as a context manager. The index is written last, atomically."""

    def __init__(self, root, codec: CodecInfo, n_q: int | None, shard_frames: int):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        if (self.root / "index.json").exists():
            raise TokenError(f"{self.root}: a token store already exists here")
        self.codec = codec
        self.n_q = n_q
        self.shard_frames = shard_frames
        self.items: dict[str, tuple[int, int, int]] = {}
        self.shards: list[str] = []
        self._buf: list[torch.Tensor] = []
        self._buf_frames = 0

    def add(self, key: str, tokens: CodecTokens) -> None:
        """Add every item of ``tokens`` (a batch of one unless ``key`` gets a suffix ``/i``)."""
        self.codec.check_same(tokens.codec, what=f"tokens for {key!r}")
        if self.n_q is None:
            self.n_q = tokens.n_q
        if tokens.n_q < self.n_q:
            raise TokenError(f"{key!r} has {tokens.n_q} codebooks; this store holds {self.n_q}")
        parts = tokens.unbatch()
        for i, item in enumerate(parts):
            k = key if len(parts) == 1 else f"{key}/{i}"
            if k in self.items:
                raise TokenError(f"duplicate id {k!r} in token store")
            codes = item.codes[0, : self.n_q].cpu()
            self.items[k] = (len(self.shards), self._buf_frames, codes.shape[1])
            self._buf.append(codes)
            self._buf_frames += codes.shape[1]
            if self._buf_frames >= self.shard_frames:
                self._flush()

    def _flush(self) -> None:
        from safetensors.torch import save_file

        if not self._buf:
            return
        name = f"shard-{len(self.shards):05d}.safetensors"
        codes = torch.cat(self._buf, dim=1).to(_storage_dtype(self.codec.codebook_size)).contiguous()
        with atomic_path(self.root / name) as tmp:
            save_file({"codes": codes}, str(tmp), metadata={"format": STORE_FORMAT_NAME})
        self.shards.append(name)
        self._buf, self._buf_frames = [], 0

    def close(self) -> TokenStore:
        self._flush()
        index = {
            "format": STORE_FORMAT_NAME,
            "version": FORMAT_VERSION,
            "codec": self.codec.to_dict(),
            "n_q": self.n_q or self.codec.n_codebooks,
            "shards": self.shards,
            "items": self.items,
        }
        with atomic_path(self.root / "index.json") as tmp:
            tmp.write_text(json.dumps(index))
        return TokenStore(self.root)

    def __enter__(self) -> "TokenStoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        return False
