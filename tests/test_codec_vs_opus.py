"""The Opus side of benchmarks/codec_vs_opus.py and ``eval codec --opus`` (audiokit/codec/opus.py): the bitrate
it reports is what Opus spends, and the round trip returns the input's length at its rate (the comparison is only
fair if both hold)."""
import os
import shutil

import numpy as np
import pytest

from conftest import flite_wav

from audiokit.codec.opus import ogg_payload_bytes, opus_round_trip


@pytest.fixture(autouse=True)
def opus_tools():
    """Skipped where opus-tools is missing; a failure in CI, which installs it (.ci/run)."""
    if shutil.which("opusenc") is None or shutil.which("opusdec") is None:
        if os.environ.get("CI"):
            pytest.fail("CI installs opus-tools (.ci/run), but opusenc/opusdec are missing")
        pytest.skip("opus-tools (opusenc/opusdec) not installed: apt install opus-tools")


def test_ogg_payload_counts_packets_not_headers_or_framing():
    def page(body: bytes) -> bytes:  # one page, one packet of < 255 bytes
        return b"OggS" + bytes(22) + bytes([1, len(body)]) + body
    stream = page(b"OpusHead" + bytes(11)) + page(b"OpusTags" + bytes(8)) + page(bytes(40)) + page(bytes(7))
    assert ogg_payload_bytes(stream) == 47
    with pytest.raises(ValueError, match="not an Ogg page"):
        ogg_payload_bytes(b"RIFF" + bytes(40))


def test_opus_round_trip_keeps_length_and_spends_its_bitrate(tmp_path):
    import soundfile as sf

    wav, sr = sf.read(flite_wav(tmp_path / "in.wav", "Seven eight nine, the quick brown fox jumps over the lazy dog."), dtype="float32")
    assert sr == 16000
    for kbps in (6.0, 12.0):
        out, spent = opus_round_trip(wav, 16000, kbps, str(tmp_path))
        assert out.shape == wav.shape and out.dtype == np.float32
        assert abs(spent - kbps) / kbps < 0.1, (kbps, spent)
        corr = float(np.corrcoef(wav, out)[0, 1])
        assert corr > 0.3, corr  # the same speech, time-aligned (no pre-skip offset)
