import json

import pytest
import soundfile as sf
import torch

from audiokit.cli import main
from audiokit.codec.codec import Codec
from audiokit.codec.model import CodecModel
from audiokit.data import TokenTextDataset, read_manifest
from audiokit.tokens import TokenStore

GEN = dict(sample_rate=16000, encoder_dim=4, encoder_rates=[2, 4, 5], decoder_dim=32, decoder_rates=[5, 4, 2],
           n_codebooks=4, codebook_size=64, codebook_dim=4)


def _codec(seed=0):
    torch.manual_seed(seed)
    return Codec(CodecModel(**GEN), name=f"tiny{seed}")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("codec")
    _codec(0).export(d / "a")
    _codec(1).export(d / "b")
    return d / "a", d / "b"


def test_encode_decode_files(tmp_path, exported, synth_corpus, capsys):
    a, b = exported
    wav = read_manifest(synth_corpus[0] / "train.jsonl")[0]["audio"]
    n = sf.info(wav).frames
    assert main(["encode", wav, str(tmp_path / "x.akc"), "--codec", str(a), "--bandwidth", "4.8"]) == 0
    assert "2 codebooks" in capsys.readouterr().out
    assert main(["decode", str(tmp_path / "x.akc"), str(tmp_path / "x.wav"), "--codec", str(a)]) == 0
    info = sf.info(str(tmp_path / "x.wav"))
    assert info.samplerate == 16000 and info.frames == n  # trimmed to the original length
    # bfloat16 encoder/decoder: the same file format, the same length, audio close to float32's
    assert main(["encode", wav, str(tmp_path / "h.akc"), "--codec", str(a), "--bandwidth", "4.8", "--dtype", "bfloat16"]) == 0
    assert main(["decode", str(tmp_path / "h.akc"), str(tmp_path / "h.wav"), "--codec", str(a), "--dtype", "bfloat16"]) == 0
    full, half = sf.read(str(tmp_path / "x.wav"))[0], sf.read(str(tmp_path / "h.wav"))[0]
    assert len(half) == n and ((half - full) ** 2).sum() < 0.1 * (full ** 2).sum()
    # another codec's file: a clear error and no output file
    assert main(["decode", str(tmp_path / "x.akc"), str(tmp_path / "y.wav"), "--codec", str(b)]) == 2
    err = capsys.readouterr().err
    assert "were made by codec" in err and "Traceback" not in err and not (tmp_path / "y.wav").exists()
    (tmp_path / "bad.akc").write_bytes((tmp_path / "x.akc").read_bytes()[:-7])
    assert main(["decode", str(tmp_path / "bad.akc"), str(tmp_path / "z.wav"), "--codec", str(a)]) == 2
    assert "truncated" in capsys.readouterr().err and not (tmp_path / "z.wav").exists()
    (tmp_path / "empty.wav").write_bytes(b"")
    assert main(["encode", str(tmp_path / "empty.wav"), str(tmp_path / "e.akc"), "--codec", str(a)]) == 2
    assert "empty" in capsys.readouterr().err and not (tmp_path / "e.akc").exists()


def test_export_from_training_checkpoint(tmp_path, capsys):
    from audiokit.codec.lightning import CodecLightningModule

    module = CodecLightningModule(generator=GEN, discriminator=dict(kinds=["mpd"], mpd_periods=[2], mpd_channels=[4]))
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, tmp_path / "m.ckpt")
    assert main(["export", str(tmp_path / "m.ckpt"), str(tmp_path / "out"), "--name", "mine", "--fp16"]) == 0
    meta = json.loads((tmp_path / "out" / "config.json").read_text())
    assert meta["name"] == "mine" and meta["dtype"] == "float16" and meta["codec"]["n_codebooks"] == 4
    assert Codec.load(tmp_path / "out").info.fingerprint == meta["codec"]["fingerprint"]
    sd = {k: v for k, v in module.state_dict().items() if "encoder.input" not in k}
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": sd}, tmp_path / "partial.ckpt")
    assert main(["export", str(tmp_path / "partial.ckpt"), str(tmp_path / "p")]) == 2
    assert "do not match" in capsys.readouterr().err and not (tmp_path / "p").exists()
    torch.save({"hyper_parameters": {}, "state_dict": {}}, tmp_path / "other.ckpt")
    assert main(["export", str(tmp_path / "other.ckpt"), str(tmp_path / "o")]) == 2
    assert "not a codec training checkpoint" in capsys.readouterr().err


def test_tokenize_writes_a_store_and_manifests(tmp_path, exported, synth_corpus, capsys):
    a, _ = exported
    corpus = synth_corpus[0]
    out = tmp_path / "tok"
    assert main(["tokenize", "--manifest", str(corpus / "train.jsonl"), str(corpus / "test.jsonl"), "--codec", str(a),
                 "--out", str(out), "--accelerator", "cpu"]) == 0
    train = read_manifest(corpus / "train.jsonl")
    store = TokenStore(out)
    assert len(store) == len(train) + len(read_manifest(corpus / "test.jsonl"))
    codec = Codec.load(a)
    from audiokit.audio import read_audio

    e = train[0]
    single = codec.encode(read_audio(e["audio"])[0], 16000)
    assert store[e["id"]].n_frames == single.n_frames
    assert torch.equal(store[e["id"]].codes[..., :-5], single.codes[..., :-5])  # batching only touches the last frames
    ds = TokenTextDataset(out / "train.jsonl", codec=codec.info, store=out)
    assert len(ds) == len(train) and ds[0]["text"] == train[0]["text"]
    assert main(["tokenize", "--manifest", str(corpus / "train.jsonl"), "--codec", str(a), "--out", str(out)]) == 2
    assert "already there" in capsys.readouterr().err


def test_eval_codec(tmp_path, exported, synth_corpus, capsys):
    a, _ = exported
    corpus = synth_corpus[0]
    assert main(["eval", "codec", "--manifest", str(corpus / "test.jsonl"), "--codec", str(a), "--max-items", "2",
                 "--json", str(tmp_path / "r.json")]) == 0
    table = capsys.readouterr().out
    assert "| kbps | n_q | mel_distance" in table
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert [r["n_q"] for r in rows] == [1, 2, 4]
    assert all(r["mel_distance"] > 0 and 0 < r["codebook_usage"] <= 1 for r in rows)
    assert rows[0]["kbps"] == pytest.approx(2.4)
    assert main(["eval", "tts", "--manifest", "x.jsonl"]) == 2
    assert "needs --model" in capsys.readouterr().err


def test_akc_names_its_codec_and_decodes_without_codec(tmp_path, exported, synth_corpus, capsys, monkeypatch):
    """An .akc file records the codec's fingerprint and name: the bundled codec's files and those of a codec
    used here before decode without --codec; an unknown one gets one line naming what to pass, and no output;
    version-1 files (no name) still decode with --codec."""
    import struct
    import zlib

    from audiokit.codec.bitstream import _HEADER, read_akc

    a, _ = exported
    wav = read_manifest(synth_corpus[0] / "train.jsonl")[0]["audio"]
    assert main(["encode", wav, str(tmp_path / "b.akc"), "--codec", "codec"]) == 0  # the bundled codec
    assert main(["decode", str(tmp_path / "b.akc"), str(tmp_path / "b.wav")]) == 0
    assert main(["encode", wav, str(tmp_path / "x.akc"), "--codec", str(a)]) == 0  # a codec used here
    tokens, _ = read_akc(tmp_path / "x.akc")
    assert tokens.codec.name == "tiny0" and tokens.codec.fingerprint == Codec.load(a).info.fingerprint
    assert main(["decode", str(tmp_path / "x.akc"), str(tmp_path / "x.wav")]) == 0
    assert sf.info(str(tmp_path / "x.wav")).frames == sf.info(wav).frames
    capsys.readouterr()
    monkeypatch.setenv("AUDIOKIT_CACHE", str(tmp_path / "fresh-cache"))  # a machine that never used codec a
    assert main(["decode", str(tmp_path / "x.akc"), str(tmp_path / "y.wav")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'tiny0'" in err[0] and tokens.codec.fingerprint in err[0] and "--codec" in err[0]
    assert not (tmp_path / "y.wav").exists()
    # the same file in version 1's layout: no name; it decodes with --codec
    data = (tmp_path / "x.akc").read_bytes()[:-4]
    head = list(_HEADER.unpack_from(data))
    head[1] = 1
    v1 = _HEADER.pack(*head) + data[_HEADER.size + 1 + data[_HEADER.size]:]
    (tmp_path / "v1.akc").write_bytes(v1 + struct.pack("<I", zlib.crc32(v1) & 0xFFFFFFFF))
    old, _ = read_akc(tmp_path / "v1.akc")
    assert old.codec.name == "" and torch.equal(old.codes, tokens.codes)
    assert main(["decode", str(tmp_path / "v1.akc"), str(tmp_path / "v1.wav"), "--codec", str(a)]) == 0
