"""Speech units (audiokit.codec.units): k-means, the tokenizer's frames, identity, save/load, bad folders, and the
grids built from units (runs; units stacked on a codec)."""
import json

import pytest
import torch
from test_asr_transcribe import SENTENCES, _transcriber

from audiokit.codec.units import UnitsError, UnitTokenizer, deduplicate, expand, kmeans, runs_info, stacked_info
from audiokit.tokens import CodecInfo, CodecTokens, TokenError, TokenStore


def _tone(freq, seconds=1.0, sr=16000, seed=0):
    t = torch.arange(int(seconds * sr)) / sr
    noise = 0.01 * torch.randn(len(t), generator=torch.Generator().manual_seed(seed))
    return 0.5 * torch.sin(2 * torch.pi * freq * t) + noise


@pytest.fixture(scope="module")
def asr():
    from audiokit.asr.tokenizer import WhisperTokenizer
    from audiokit.text import BPETokenizer

    t = _transcriber(WhisperTokenizer.from_bpe(BPETokenizer.train(SENTENCES, vocab_size=300)))
    t.model.encoder.positional_embedding.zero_()  # random weights: else the features tell positions, not sounds
    return t


def test_kmeans_finds_separated_clusters_and_is_seeded():
    g = torch.Generator().manual_seed(0)
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([c + 0.3 * torch.randn(200, 2, generator=g) for c in centers])
    c = kmeans(x, 3, seed=1)
    assert torch.cdist(centers, c).min(1).values.max() < 0.2  # every true center found
    assert torch.equal(c, kmeans(x, 3, seed=1))
    with pytest.raises(UnitsError, match="at least k"):
        kmeans(x[:2], 3)


def test_units_tell_sounds_apart_and_line_up_with_the_codec_frames(asr):
    clips = [(_tone(f, seed=i), 16000) for i, f in enumerate((200, 200, 1500, 1500, 3500))]
    tok = UnitTokenizer.fit(asr, clips, k=8, seed=0)
    a, a2, b = (tok.encode(_tone(f, 1.3, seed=s), 16000).codes[0, 0] for f, s in ((200, 7), (200, 8), (3500, 9)))
    assert len(a) == -(-int(1.3 * 16000) // 320) == 65  # ceil(samples / 320): the bundled codec's frame count
    common = lambda u: torch.mode(u[2:-2]).values
    assert common(a) == common(a2) and common(a) != common(b)  # one sound, one unit; another sound, another
    assert tok.encode(_tone(200, 1.31), 16000).codes.shape[-1] == 66  # a part frame: ceil, as the codec counts
    batch = tok.encode([_tone(200, 0.5), _tone(3500, 0.9)], 16000)
    assert batch.codes.shape == (2, 1, 45) and batch.lengths.tolist() == [25, 45]
    at8k = tok.encode(_tone(200, 1.0)[::2], 8000)  # other rates are resampled; frames follow the duration
    assert at8k.codes.shape[-1] == 50 and at8k.codec.same_codec(tok.info)
    with pytest.raises(UnitsError, match="one codebook"):
        tok.encode(_tone(200), 16000, n_q=2)
    with pytest.raises(UnitsError, match="empty"):
        tok.encode(torch.zeros(0), 16000)


def test_identity_save_load_and_bad_folders(asr, tmp_path):
    clips = [(_tone(f, seed=i), 16000) for i, f in enumerate((200, 900, 1500, 3500))]
    tok = UnitTokenizer.fit(asr, clips, k=6, seed=0, name="test-units")
    other = UnitTokenizer.fit(asr, clips, k=6, seed=1)
    info = tok.info
    assert (info.codebook_size, info.n_codebooks, info.sample_rate, info.frame_rate) == (6, 1, 16000, 50.0)
    assert not info.same_codec(other.info)  # other centroids: other units, refused as another codec's
    tok.save(tmp_path / "u")
    back = UnitTokenizer.load(tmp_path / "u")
    wav = _tone(900, 2.0, seed=5)
    assert back.info.same_codec(info) and torch.equal(back.encode(wav, 16000).codes, tok.encode(wav, 16000).codes)
    assert back.name == "test-units"
    with pytest.raises(UnitsError, match="no config.json"):
        UnitTokenizer.load(tmp_path / "missing")
    cfg = json.loads((tmp_path / "u/config.json").read_text())
    (tmp_path / "u/config.json").write_text(json.dumps({**cfg, "format": "audiokit.codec"}))
    with pytest.raises(UnitsError, match="not an audiokit units folder"):
        UnitTokenizer.load(tmp_path / "u")
    tok.save(tmp_path / "v")
    data = (tmp_path / "v/units.safetensors").read_bytes()
    (tmp_path / "v/units.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(UnitsError, match="corrupt or truncated"):
        UnitTokenizer.load(tmp_path / "v")


def test_units_fill_a_token_store(asr, tmp_path):
    clips = [(_tone(f, seed=i), 16000) for i, f in enumerate((200, 900, 1500, 3500))]
    tok = UnitTokenizer.fit(asr, clips, k=6, seed=0)
    units = tok.encode(_tone(200, 0.7), 16000)
    with TokenStore.writer(tmp_path / "store", tok.info) as w:
        w.add("a", units)
    store = TokenStore(tmp_path / "store", expected=tok.info)
    assert torch.equal(store["a"].codes, units.codes) and units.codes.shape == (1, 1, 35)


def test_runs_round_trip_split_long_runs_and_have_their_own_identity():
    u = torch.tensor([5, 5, 5, 2, 7, 7] + [3] * 9)
    values, lengths = deduplicate(u, max_run=4)
    assert values.tolist() == [5, 2, 7, 3, 3, 3] and lengths.tolist() == [3, 1, 2, 4, 4, 1]  # 9 frames of 3: 4+4+1
    assert torch.equal(expand(values, lengths), u)
    assert expand(torch.tensor([1, 2]), torch.tensor([0, 2])).tolist() == [1, 2, 2]  # a zero length still sounds
    with pytest.raises(UnitsError, match="one non-empty row"):
        deduplicate(torch.zeros(0, dtype=torch.long), 4)
    units = CodecInfo(16000, 50.0, 256, 1, "u1", "units")
    runs = runs_info(units)
    assert (runs.n_codebooks, runs.codebook_size) == (2, 256) and runs.fingerprint != units.fingerprint
    CodecTokens(torch.stack([values, lengths])[None], runs)  # a valid grid of that identity


def test_stacked_grid_identity_depends_on_both_and_refuses_a_mismatch():
    units, codec = CodecInfo(16000, 50.0, 256, 1, "u1", "units"), CodecInfo(16000, 50.0, 1024, 12, "c1", "codec")
    s = stacked_info(units, codec, 6)
    assert (s.n_codebooks, s.codebook_size, s.frame_rate) == (7, 1024, 50.0)
    other = stacked_info(CodecInfo(16000, 50.0, 256, 1, "u2", "units"), codec, 6)
    assert other.fingerprint != s.fingerprint != stacked_info(units, codec, 4).fingerprint
    with pytest.raises(UnitsError, match="frame rates or codebook sizes"):
        stacked_info(units, CodecInfo(24000, 75.0, 1024, 8, "c2"), 6)
    with pytest.raises(TokenError):  # codes past the codec's codebook size are not of this grid
        CodecTokens(torch.full((1, 7, 3), 1024), s)
