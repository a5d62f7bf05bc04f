import logging

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiokit.audio import (
    AudioError,
    audio_duration,
    loudness,
    loudness_normalize,
    peak_normalize,
    read_audio,
    resample,
    trim_silence,
    write_audio,
)

from conftest import sine, write_wav


@pytest.mark.parametrize("ext, subtype, tol", [("wav", "FLOAT", 1e-7), ("wav", "PCM_16", 1e-4), ("flac", None, 1e-4), ("ogg", None, 0.05)])
def test_round_trip_formats(tmp_path, ext, subtype, tol):
    x = torch.from_numpy(sine(440, 0.5, 16000))
    path = write_audio(tmp_path / f"a.{ext}", x, 16000, subtype=subtype)
    y, sr = read_audio(path)
    assert sr == 16000 and y.dtype == torch.float32 and y.shape == x.shape
    if ext == "ogg":  # lossy: compare energy, not samples
        assert abs(y.pow(2).mean().sqrt() - x.pow(2).mean().sqrt()) < tol
    else:
        assert torch.allclose(y, x, atol=tol)
    assert audio_duration(path) == pytest.approx(0.5)


def test_mp3_round_trip_where_libsndfile_supports_it(tmp_path):
    if not {"MP3", "MPEG"} & set(sf.available_formats()):
        pytest.skip(f"this libsndfile ({sf.__libsndfile_version__}) has no MP3 support")
    x = torch.from_numpy(sine(440, 1.0, 16000))
    y, sr = read_audio(write_audio(tmp_path / "a.mp3", x, 16000))
    assert sr == 16000 and abs(y.shape[0] - x.shape[0]) < 2000  # the encoder pads a little
    assert torch.fft.rfft(y).abs().argmax() == torch.fft.rfft(x).abs().argmax()


def test_stereo_is_downmixed_with_a_notice(tmp_path, caplog):
    left, right = sine(300, 0.2), sine(500, 0.2)
    path = write_wav(str(tmp_path / "st.wav"), np.stack([left, right], axis=1), subtype="FLOAT")
    with caplog.at_level(logging.WARNING, logger="audiokit.audio"):
        y, _ = read_audio(path)
    assert "downmixed to mono" in caplog.text and "st.wav" in caplog.text
    assert torch.allclose(y, torch.from_numpy((left + right) / 2), atol=1e-6)
    both, _ = read_audio(path, mono=False)
    assert both.shape == (2, len(left))


def test_resample_on_read_keeps_pitch_and_duration(tmp_path):
    path = write_wav(str(tmp_path / "a.wav"), sine(1000, 1.0, 16000), 16000, subtype="FLOAT")
    y, sr = read_audio(path, sample_rate=24000)
    assert sr == 24000 and y.shape[0] == 24000
    spectrum = torch.fft.rfft(y).abs()
    assert int(spectrum.argmax()) == 1000  # 1 s of audio: bin k is k Hz
    assert torch.equal(resample(y, 24000, 24000), y)


def test_errors_name_the_file_and_problem(tmp_path):
    with pytest.raises(AudioError, match="missing.wav: no such audio file"):
        read_audio(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="is a directory"):
        read_audio(tmp_path)
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty.wav: audio file is empty"):
        read_audio(tmp_path / "empty.wav")
    (tmp_path / "junk.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(40))
    with pytest.raises(AudioError, match="junk.wav: corrupt or unsupported"):
        read_audio(tmp_path / "junk.wav")
    sf.write(str(tmp_path / "zero.wav"), np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="zero.wav: audio file holds no samples"):
        read_audio(tmp_path / "zero.wav")
    bad = sine(200, 0.1)
    bad[10] = np.nan
    bad[20] = np.inf
    sf.write(str(tmp_path / "nan.wav"), bad, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav: audio holds 2 NaN or infinite samples"):
        read_audio(tmp_path / "nan.wav")
    with pytest.raises(AudioError, match="junk.wav: corrupt"):
        audio_duration(tmp_path / "junk.wav")


def test_truncated_file_is_an_error_or_shorter_never_garbage(tmp_path):
    path = write_audio(tmp_path / "a.flac", torch.from_numpy(sine(300, 1.0)), 16000)
    data = path.read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[:60])
    with pytest.raises(AudioError, match="cut.flac"):
        read_audio(tmp_path / "cut.flac")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=1, max_size=400), st.sampled_from(["wav", "flac", "ogg", "mp3"]))
def test_random_bytes_raise_audio_error_only(tmp_path, data, ext):
    path = tmp_path / f"fuzz.{ext}"
    path.write_bytes(data)
    try:
        wav, sr = read_audio(path)
    except AudioError as e:
        assert "fuzz." in str(e)
    else:  # libsndfile accepted the bytes: the result must still honour the contract
        assert wav.dtype == torch.float32 and wav.numel() > 0 and torch.isfinite(wav).all() and sr > 0


def test_write_is_atomic(tmp_path):
    path = tmp_path / "out.wav"
    write_audio(path, torch.zeros(100), 16000)
    before = path.read_bytes()
    bad = torch.zeros(100)
    bad[3] = float("nan")
    with pytest.raises(AudioError, match="NaN"):
        write_audio(path, bad, 16000)
    with pytest.raises(AudioError, match="empty"):
        write_audio(tmp_path / "new.wav", torch.zeros(0), 16000)
    with pytest.raises(AudioError, match="unknown audio format"):
        write_audio(tmp_path / "x.xyz", torch.zeros(10), 16000)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]


def test_write_clips_with_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="audiokit.audio"):
        write_audio(tmp_path / "loud.wav", torch.tensor([0.0, 2.0, -3.0]), 8000, subtype="FLOAT")
    assert "clipping" in caplog.text
    y, _ = read_audio(tmp_path / "loud.wav")
    assert y.tolist() == [0.0, 1.0, -1.0]


def test_peak_and_loudness_normalization():
    x = torch.from_numpy(sine(440, 2.0, 16000, amp=0.1))
    p = peak_normalize(x, -6.0)
    assert float(p.abs().max()) == pytest.approx(10 ** (-6 / 20), rel=1e-5)
    assert torch.equal(peak_normalize(torch.zeros(10)), torch.zeros(10))
    l = loudness_normalize(x, 16000, target_lufs=-23.0)
    assert loudness(l, 16000) == pytest.approx(-23.0, abs=0.1)
    quiet_target = loudness_normalize(x, 16000, target_lufs=0.0, peak_limit_db=-1.0)
    assert float(quiet_target.abs().max()) <= 10 ** (-1 / 20) + 1e-6


def test_read_with_normalization(tmp_path):
    path = write_wav(str(tmp_path / "a.wav"), sine(440, 1.0, 16000, amp=0.05), subtype="FLOAT")
    y, _ = read_audio(path, normalize="peak")
    assert float(y.abs().max()) == pytest.approx(10 ** (-1 / 20), rel=1e-4)
    with pytest.raises(ValueError, match="unknown normalization"):
        read_audio(path, normalize="bogus")


def test_trim_silence():
    sr = 16000
    speech = torch.from_numpy(sine(300, 0.5, sr))
    x = torch.cat([torch.zeros(sr), speech, torch.zeros(2 * sr)])
    y = trim_silence(x, sr, keep_s=0.1)
    assert y.shape[0] == pytest.approx(0.7 * sr, abs=0.02 * sr)
    assert torch.equal(trim_silence(torch.zeros(100), sr), torch.zeros(100))
