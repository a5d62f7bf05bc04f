"""The ``.akc`` file: one utterance's codec tokens, bit-packed, with the codec's identity and a CRC.

Layout (little-endian)::

    magic      4 bytes  b"AKC1"
    version    u8       2 (1: the same without the name)
    fingerprint 16 bytes ASCII hex (the codec's CodecInfo.fingerprint)
    sample_rate u32, frame_rate f64, codebook_size u32, n_codebooks u16, n_q u16
    num_samples u64     samples of the original audio (decoding trims to it)
    n_frames   u32
    bits       u8       bits per code, ceil(log2(codebook_size))
    name_len   u8       (version 2) then name_len bytes of UTF-8: the codec's name
    payload             n_frames × n_q codes, frame-major, each ``bits`` wide, MSB first, zero-padded to a byte
    crc32      u32      of everything before it

The file names the codec that made it (fingerprint and name), so ``audiokit decode`` finds a bundled or
previously used codec itself (:func:`audiokit.pretrained.find_codec`). A corrupt, truncated or foreign file
raises :class:`BitstreamError` (or :class:`CodecMismatchError` for a file made by another codec); writing is
atomic; version-1 files still read.
"""
from __future__ import annotations

import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from ..fileio import atomic_path
from ..tokens import CodecInfo, CodecTokens, TokenError

MAGIC = b"AKC1"
VERSION = 2
_HEADER = struct.Struct("<4sB16sIdIHHQIB")


class BitstreamError(TokenError):
    """An ``.akc`` file that cannot be read."""


def bits_per_code(codebook_size: int) -> int:
    return max(1, math.ceil(math.log2(codebook_size)))


def pack_codes(codes: np.ndarray, bits: int) -> bytes:
    """Codes ``[T, Q]`` (non-negative ints < 2**bits) → packed bytes, MSB first."""
    flat = codes.reshape(-1).astype(np.uint32)
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint32)
    bitarr = ((flat[:, None] >> shifts) & 1).astype(np.uint8)
    return np.packbits(bitarr.reshape(-1)).tobytes()


def unpack_codes(payload: bytes, n: int, bits: int) -> np.ndarray:
    bitarr = np.unpackbits(np.frombuffer(payload, dtype=np.uint8))[: n * bits].reshape(n, bits)
    weights = (1 << np.arange(bits - 1, -1, -1)).astype(np.int64)
    return bitarr.astype(np.int64) @ weights


def write_akc(path: str | os.PathLike, tokens: CodecTokens, num_samples: int | None = None) -> Path:
    """Write a single-item CodecTokens (its first ``lengths[0]`` frames) to ``path``."""
    if tokens.batch_size != 1:
        raise BitstreamError(f"an .akc file holds one utterance; got a batch of {tokens.batch_size}")
    info = tokens.codec
    fp = info.fingerprint.encode("ascii")
    if len(fp) != 16:
        raise BitstreamError(f"codec fingerprint must be 16 characters for .akc, got {info.fingerprint!r}")
    n_frames = int(tokens.lengths[0])
    codes = tokens.codes[0, :, :n_frames].cpu().numpy().T  # [T, Q]
    hop = info.sample_rate / info.frame_rate
    if num_samples is None:
        num_samples = int(round(n_frames * hop))
    bits = bits_per_code(info.codebook_size)
    name = info.name.encode("utf-8")[:255].decode("utf-8", errors="ignore").encode("utf-8")  # whole characters
    header = _HEADER.pack(MAGIC, VERSION, fp, info.sample_rate, info.frame_rate, info.codebook_size, info.n_codebooks,
                          tokens.n_q, int(num_samples), n_frames, bits) + bytes([len(name)]) + name
    body = header + pack_codes(codes, bits)
    with atomic_path(path) as tmp:
        tmp.write_bytes(body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF))
    return Path(path)


def codec_for(path: str | os.PathLike, codec: str | os.PathLike | None, error: type[Exception] = BitstreamError) -> str:
    """The codec to decode ``path`` with: ``codec`` if given, else the bundled or previously used codec whose
    fingerprint the file records; none → ``error``, one line naming the codec the file asks for."""
    if codec:
        return str(codec)
    from ..pretrained import find_codec

    info = read_akc(path)[0].codec
    found = find_codec(info.fingerprint)
    if found is None:
        raise error(f"{path}: made by {info.describe()}, which is neither bundled nor used here before: "
                    "pass it with --codec FOLDER")
    return str(found)


def read_akc(path: str | os.PathLike, expected: CodecInfo | None = None) -> tuple[CodecTokens, int]:
    """Read an ``.akc`` file → ``(tokens, num_samples)``; with ``expected``, refuse another codec's file."""
    path = Path(path)
    if not path.exists():
        raise BitstreamError(f"{path}: no such .akc file")
    if path.is_dir():
        raise BitstreamError(f"{path}: is a directory, not an .akc file")
    data = path.read_bytes()
    if len(data) < 4 or data[:4] != MAGIC:
        raise BitstreamError(f"{path}: not an audiokit codec file (bad magic bytes)")
    if len(data) < _HEADER.size + 4:
        raise BitstreamError(f"{path}: truncated .akc file ({len(data)} bytes, header alone is {_HEADER.size + 4})")
    (magic, version, fp, sr, frame_rate, codebook_size, n_codebooks, n_q, num_samples, n_frames,
     bits) = _HEADER.unpack_from(data)
    if version > VERSION:
        raise BitstreamError(f"{path}: .akc version {version} is newer than this audiokit reads ({VERSION}); upgrade audiokit")
    body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
    start, name = _HEADER.size, ""
    if version >= 2:
        start += 1 + body[_HEADER.size]
        name = body[_HEADER.size + 1: start].decode("utf-8", errors="replace")
    expected_len = start + math.ceil(n_frames * n_q * bits / 8)
    if len(body) != expected_len:
        raise BitstreamError(f"{path}: truncated or padded .akc file ({len(body)} bytes of {expected_len} expected)")
    if zlib.crc32(body) & 0xFFFFFFFF != crc:
        raise BitstreamError(f"{path}: corrupt .akc file (CRC mismatch)")
    try:
        info = CodecInfo(sample_rate=sr, frame_rate=frame_rate, codebook_size=codebook_size, n_codebooks=n_codebooks,
                         fingerprint=fp.decode("ascii"), name=name)
    except (TokenError, UnicodeDecodeError) as e:
        raise BitstreamError(f"{path}: corrupt .akc header ({e})") from None
    if expected is not None:
        expected.check_same(info, what=f"codes in {path}")
        info = expected  # keep the expected codec's name
    codes = unpack_codes(body[start:], n_frames * n_q, bits).reshape(n_frames, n_q).T
    try:
        tokens = CodecTokens(torch.from_numpy(np.ascontiguousarray(codes))[None], info)
    except TokenError as e:
        raise BitstreamError(f"{path}: {e}") from None
    return tokens, int(num_samples)
