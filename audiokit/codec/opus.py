"""Opus beside the codec: the round trip through Debian's ``opus-tools`` at a given bitrate (issues 21, 24).

``opusenc --hard-cbr --bitrate K`` then ``opusdec --rate SR``; the bitrate reported is what Opus actually spent:
the Ogg stream's packet payload without its two header pages (OpusHead, OpusTags) and the pages' framing.
Used by ``audiokit eval codec --opus`` and ``benchmarks/codec_vs_opus.py``; nothing else in audiokit needs it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import numpy as np


class OpusToolsMissing(RuntimeError):
    pass


def require_opus_tools() -> None:
    for tool in ("opusenc", "opusdec"):
        if shutil.which(tool) is None:
            raise OpusToolsMissing(f"{tool} not found: Opus comparisons need opus-tools (apt install opus-tools)")


def ogg_payload_bytes(data: bytes) -> int:
    """Bytes of the Opus packets in an Ogg stream, without the two header pages and the pages' own framing:
    what the codec itself spends."""
    pos, page, total = 0, 0, 0
    while pos + 27 <= len(data):
        if data[pos:pos + 4] != b"OggS":
            raise ValueError(f"not an Ogg page at byte {pos}")
        n_seg = data[pos + 26]
        body = sum(data[pos + 27: pos + 27 + n_seg])
        if page >= 2:
            total += body
        pos += 27 + n_seg + body
        page += 1
    return total


def opus_round_trip(wav: np.ndarray, sample_rate: int, kbps: float, workdir: str | None = None) -> tuple[np.ndarray, float]:
    """(decoded float32 mono audio of the input's length and rate, kbps spent) through opusenc/opusdec at ``kbps``."""
    import soundfile as sf

    require_opus_tools()
    own = workdir is None
    workdir = tempfile.mkdtemp(prefix="audiokit-opus-") if own else workdir
    try:
        src, enc, dec = (os.path.join(workdir, n) for n in ("in.wav", "x.opus", "out.wav"))
        sf.write(src, np.asarray(wav, dtype=np.float32), sample_rate, subtype="PCM_16")
        for cmd in (["opusenc", "--quiet", "--hard-cbr", "--bitrate", f"{kbps:g}", src, enc],
                    ["opusdec", "--quiet", "--rate", str(sample_rate), enc, dec]):
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"{cmd[0]} failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
        out, sr = sf.read(dec, dtype="float32")
        if sr != sample_rate:
            raise RuntimeError(f"opusdec wrote {sr} Hz, asked for {sample_rate}")
        out = out if out.ndim == 1 else out.mean(1)
        out = np.pad(out, (0, max(0, len(wav) - len(out))))[: len(wav)]
        with open(enc, "rb") as f:
            payload = ogg_payload_bytes(f.read())
        return out.astype(np.float32), payload * 8 / (len(wav) / sample_rate) / 1000
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
