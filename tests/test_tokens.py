import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from audiokit.tokens import CodecInfo, CodecMismatchError, CodecTokens, TokenError, TokenStore, fingerprint

from conftest import random_tokens


# ----------------------------------------------------------------------------- validation
def test_valid_tokens_have_contract_fields(codec):
    t = CodecTokens(torch.randint(0, 1024, (2, 8, 5), dtype=torch.int32), codec, lengths=[5, 3])
    assert t.codes.dtype == torch.int64
    assert t.lengths.tolist() == [5, 3]
    assert (t.batch_size, t.n_q, t.n_frames) == (2, 8, 5)
    assert (t.sample_rate, t.frame_rate, t.codebook_size, t.n_codebooks, t.fingerprint) == (24000, 75.0, 1024, 8, "0123456789abcdef")
    assert t.mask().tolist() == [[True] * 5, [True] * 3 + [False] * 2]
    assert torch.allclose(t.durations(), torch.tensor([5 / 75, 3 / 75], dtype=torch.float64))


@pytest.mark.parametrize(
    "codes, lengths, message",
    [
        (torch.rand(1, 2, 3), None, "must hold integers"),
        (torch.zeros(2, 3, dtype=torch.int64), None, "shape \\[B, Q, T\\]"),
        (torch.full((1, 2, 3), 1024), None, "\\[0, 1024\\)"),
        (torch.full((1, 2, 3), -1), None, "\\[0, 1024\\)"),
        (torch.zeros(1, 9, 3, dtype=torch.int64), None, "9 codebooks"),
        (torch.zeros(1, 0, 3, dtype=torch.int64), None, "0 codebooks"),
        (torch.zeros(2, 2, 3, dtype=torch.int64), [3], "lengths must be"),
        (torch.zeros(2, 2, 3, dtype=torch.int64), [3, 4], "lengths must lie in \\[0, 3\\]"),
        (torch.zeros(2, 2, 3, dtype=torch.int64), torch.tensor([1.0, 2.0]), "lengths must be"),
    ],
)
def test_invalid_tokens_are_refused(codec, codes, lengths, message):
    with pytest.raises(TokenError, match=message):
        CodecTokens(codes, codec, lengths)


def test_codec_info_validation():
    with pytest.raises(TokenError, match="codebook_size"):
        CodecInfo(24000, 75.0, 1, 8, "x")
    with pytest.raises(TokenError, match="frame_rate"):
        CodecInfo(24000, 0.0, 1024, 8, "x")
    with pytest.raises(TokenError, match="fingerprint"):
        CodecInfo(24000, 75.0, 1024, 8, "")


def test_codec_identity_ignores_label_but_not_fingerprint(codec, other_codec):
    relabelled = CodecInfo(**{**codec.to_dict(), "name": "renamed"})
    codec.check_same(relabelled)
    with pytest.raises(CodecMismatchError) as err:
        codec.check_same(other_codec)
    assert codec.fingerprint in str(err.value) and other_codec.fingerprint in str(err.value)


def test_bitrate_matches_encodec_bandwidths(codec):
    t = random_tokens(codec, Q=8)
    assert t.bitrate == pytest.approx(6000.0)  # 75 Hz x 8 codebooks x 10 bits = EnCodec's 6 kbps
    assert t.keep_codebooks(2).bitrate == pytest.approx(1500.0)
    assert codec.bitrate() == pytest.approx(6000.0)


# ----------------------------------------------------------------------------- transforms
def test_keep_codebooks(codec):
    t = random_tokens(codec, Q=8)
    k = t.keep_codebooks(3)
    assert torch.equal(k.codes, t.codes[:, :3])
    assert k.codec == t.codec
    with pytest.raises(TokenError):
        t.keep_codebooks(9)
    with pytest.raises(TokenError):
        t.keep_codebooks(0)


def test_time_slice_clips_lengths(codec):
    codes = torch.arange(2 * 1 * 10).reshape(2, 1, 10)
    t = CodecTokens(codes, codec, lengths=[10, 4])
    s = t.time_slice(2, 7)
    assert torch.equal(s.codes, codes[:, :, 2:7])
    assert s.lengths.tolist() == [5, 2]
    assert t.time_slice(6).lengths.tolist() == [4, 0]
    assert t.time_slice(-3).codes.shape[-1] == 3
    with pytest.raises(TokenError, match="outside"):
        t.time_slice(3, 11)
    sec = t.slice_seconds(0.0, 4 / 75)
    assert sec.n_frames == 4


def test_item_selection(codec):
    t = random_tokens(codec, B=3)
    assert t[1].batch_size == 1 and torch.equal(t[1].codes[0], t.codes[1])
    assert torch.equal(t[-1].codes[0], t.codes[2])
    assert t[[0, 2]].batch_size == 2
    with pytest.raises(IndexError):
        t[3]


def test_collate_pads_and_unbatch_inverts(codec):
    a = CodecTokens(torch.randint(1, 1024, (1, 2, 5)), codec)
    b = CodecTokens(torch.randint(1, 1024, (2, 2, 8)), codec, lengths=[8, 6])
    batch = CodecTokens.collate([a, b])
    assert batch.codes.shape == (3, 2, 8)
    assert batch.lengths.tolist() == [5, 8, 6]
    assert (batch.codes[0, :, 5:] == 0).all() and (batch.codes[2, :, 6:] == 0).all()
    parts = batch.unbatch()
    assert parts[0] == a
    assert parts[1] == b[0]
    assert parts[2] == b[1].time_slice(0, 6)
    assert CodecTokens.collate([a], pad_to_multiple=4).n_frames == 8


def test_collate_refuses_other_codec_and_mixed_codebooks(codec, other_codec):
    a = random_tokens(codec, B=1, Q=2)
    with pytest.raises(CodecMismatchError, match="position 1"):
        CodecTokens.collate([a, random_tokens(other_codec, B=1, Q=2)])
    with pytest.raises(TokenError, match="codebooks"):
        CodecTokens.collate([a, random_tokens(codec, B=1, Q=3)])
    with pytest.raises(TokenError, match="empty"):
        CodecTokens.collate([])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3), st.integers(0, 12)), min_size=1, max_size=5), st.integers(1, 4))
def test_collate_unbatch_round_trip_property(codec, shapes, q):
    items = []
    g = torch.Generator().manual_seed(len(shapes))
    for b, t in shapes:
        lengths = torch.randint(0, t + 1, (b,), generator=g)
        codes = torch.randint(0, 1024, (b, q, t), generator=g)
        codes = codes * (torch.arange(t)[None, None] < lengths[:, None, None])  # padding holds 0
        items.append(CodecTokens(codes, codec, lengths))
    batch = CodecTokens.collate(items)
    expected = [one for it in items for one in it.unbatch()]
    assert batch.unbatch() == expected
    assert batch.n_frames == max(int(it.lengths.max()) for it in items)


def test_device_moves_keep_identity(codec):
    t = random_tokens(codec)
    m = t.to("meta")
    assert m.device.type == "meta" and m.lengths.device.type == "meta"
    assert m.codec is t.codec
    back = t.to(torch.device("cpu"))
    assert back == t


# ----------------------------------------------------------------------------- files
def test_save_load_round_trip(tmp_path, codec):
    t = CodecTokens(torch.randint(0, 1024, (2, 8, 30)), codec, lengths=[30, 17])
    path = t.save(tmp_path / "x.safetensors")
    back = CodecTokens.load(path, expected=codec)
    assert back == t
    assert back.codec == codec  # name included
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_large_codebooks_round_trip(tmp_path):
    big = CodecInfo(16000, 50.0, 65536, 2, "feedfeedfeedfeed")
    t = CodecTokens(torch.tensor([[[0, 65535, 40000]]]), big)
    assert CodecTokens.load(t.save(tmp_path / "big.safetensors")) == t


def test_load_refuses_other_codec(tmp_path, codec, other_codec):
    path = random_tokens(codec).save(tmp_path / "x.safetensors")
    with pytest.raises(CodecMismatchError) as err:
        CodecTokens.load(path, expected=other_codec)
    msg = str(err.value)
    assert codec.fingerprint in msg and other_codec.fingerprint in msg and "x.safetensors" in msg


def test_load_bad_files(tmp_path, codec):
    path = random_tokens(codec, T=200).save(tmp_path / "x.safetensors")
    data = path.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(TokenError, match="corrupt or truncated"):
        CodecTokens.load(tmp_path / "trunc.safetensors")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(TokenError, match="empty"):
        CodecTokens.load(tmp_path / "empty.safetensors")
    with pytest.raises(TokenError, match="no such"):
        CodecTokens.load(tmp_path / "missing.safetensors")
    with pytest.raises(TokenError, match="directory"):
        CodecTokens.load(tmp_path)
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(TokenError, match="not a CodecTokens file"):
        CodecTokens.load(tmp_path / "model.safetensors")


def test_failed_save_leaves_no_file(tmp_path, codec, monkeypatch):
    import safetensors.torch

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    with pytest.raises(OSError):
        random_tokens(codec).save(tmp_path / "x.safetensors")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- store
def test_token_store_round_trip_across_shards(tmp_path, codec):
    items = {f"utt{i}": CodecTokens(torch.randint(0, 1024, (1, 4, 5 + i)), codec) for i in range(12)}
    with TokenStore.writer(tmp_path / "store", codec, shard_frames=20) as w:
        for k, v in items.items():
            w.add(k, v)
    store = TokenStore(tmp_path / "store", expected=codec)
    assert len(store.shards) > 3
    assert len(store) == 12 and set(store.ids()) == set(items)
    for k, v in items.items():
        assert store[k] == v
        assert store.n_frames(k) == v.n_frames
    clone = pickle.loads(pickle.dumps(store))  # DataLoader workers
    assert clone["utt3"] == items["utt3"]
    with pytest.raises(KeyError):
        store["nope"]


def test_token_store_refusals(tmp_path, codec, other_codec):
    with TokenStore.writer(tmp_path / "s", codec) as w:
        w.add("a", random_tokens(codec, B=1))
        with pytest.raises(TokenError, match="duplicate"):
            w.add("a", random_tokens(codec, B=1))
        with pytest.raises(CodecMismatchError):
            w.add("b", random_tokens(other_codec, B=1))
    with pytest.raises(CodecMismatchError):
        TokenStore(tmp_path / "s", expected=other_codec)
    with pytest.raises(TokenError, match="already exists"):
        TokenStore.writer(tmp_path / "s", codec)
    with pytest.raises(TokenError, match="not a token store"):
        TokenStore(tmp_path / "nothing")
    (tmp_path / "s" / "index.json").write_text("{broken")
    with pytest.raises(TokenError, match="corrupt token store index"):
        TokenStore(tmp_path / "s")


def test_token_store_batch_items_get_suffixes(tmp_path, codec):
    t = CodecTokens(torch.randint(0, 1024, (2, 3, 6)), codec, lengths=[6, 2])
    with TokenStore.writer(tmp_path / "s", codec) as w:
        w.add("pair", t)
    store = TokenStore(tmp_path / "s")
    assert store.ids() == ["pair/0", "pair/1"]
    assert store["pair/1"] == t[1].time_slice(0, 2)


def test_fingerprint_tracks_weights_and_config():
    sd = {"w": torch.arange(6.0).reshape(2, 3), "step": torch.tensor(3)}
    a = fingerprint(sd, {"dim": 4})
    assert a == fingerprint({k: v.clone() for k, v in reversed(list(sd.items()))}, {"dim": 4})
    assert len(a) == 16
    sd2 = dict(sd, w=sd["w"] + 1e-3)
    assert fingerprint(sd2, {"dim": 4}) != a
    assert fingerprint(sd, {"dim": 5}) != a
