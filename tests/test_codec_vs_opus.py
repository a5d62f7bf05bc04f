"""benchmarks/codec_vs_opus.py's Opus side: the bitrate it reports is what Opus spends, and the round trip
returns the input's length at 16 kHz (the comparison is only fair if both hold)."""
import importlib.util
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import flite_wav

@pytest.fixture(autouse=True)
def opus_tools():
    """Skipped where opus-tools is missing; a failure in CI, which installs it (.ci/run)."""
    if shutil.which("opusenc") is None or shutil.which("opusdec") is None:
        if os.environ.get("CI"):
            pytest.fail("CI installs opus-tools (.ci/run), but opusenc/opusdec are missing")
        pytest.skip("opus-tools (opusenc/opusdec) not installed: apt install opus-tools")


def _bench():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "codec_vs_opus.py"
    spec = importlib.util.spec_from_file_location("codec_vs_opus", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ogg_payload_counts_packets_not_headers_or_framing():
    bench = _bench()
    def page(body: bytes) -> bytes:  # one page, one packet of < 255 bytes
        return b"OggS" + bytes(22) + bytes([1, len(body)]) + body
    stream = page(b"OpusHead" + bytes(11)) + page(b"OpusTags" + bytes(8)) + page(bytes(40)) + page(bytes(7))
    assert bench.ogg_payload_bytes(stream) == 47
    with pytest.raises(ValueError, match="not an Ogg page"):
        bench.ogg_payload_bytes(b"RIFF" + bytes(40))


def test_opus_round_trip_keeps_length_and_spends_its_bitrate(tmp_path):
    bench = _bench()
    import soundfile as sf

    wav, sr = sf.read(flite_wav(tmp_path / "in.wav", "Seven eight nine, the quick brown fox jumps over the lazy dog."), dtype="float32")
    assert sr == 16000
    for kbps in (6.0, 12.0):
        out, spent = bench.opus_round_trip(wav, kbps, str(tmp_path))
        assert out.shape == wav.shape and out.dtype == np.float32
        assert abs(spent - kbps) / kbps < 0.1, (kbps, spent)
        corr = float(np.corrcoef(wav, out)[0, 1])
        assert corr > 0.3, corr  # the same speech, time-aligned (no pre-skip offset)
