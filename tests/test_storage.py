"""Compact model storage: int8 weights with per-row scales (export --int8), bundles that hold each model once
(NAME.link), and training budgets in wall-clock time (the learning-rate schedule ends with max_time)."""
import json
import shutil

import pytest
import torch

import audiokit
from audiokit.cli import main
from audiokit.fileio import INT8_SCALE, dequantize_state, int8_state, load_safetensors_file
from audiokit.pretrained import PRETRAINED_DIR, check_files, read_card, share_components


def test_int8_state_error_is_within_half_a_step_per_row():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 48, generator=g) * torch.logspace(-3, 1, 64)[:, None]  # rows of very different scales
    conv = torch.randn(32, 8, 5, generator=g)
    small, bias, ids = torch.randn(4, 8, generator=g), torch.randn(64, generator=g), torch.arange(5)
    packed = int8_state({"w": w, "conv": conv, "small": small, "bias": bias, "ids": ids})
    assert packed["w"].dtype == torch.int8 and packed["w" + INT8_SCALE].shape == (64,)
    assert packed["conv"].dtype == torch.int8 and packed["conv" + INT8_SCALE].shape == (32,)
    assert packed["small"].dtype == torch.float16 and packed["bias"].dtype == torch.float16  # < 1024 elements, 1-D
    assert packed["ids"].dtype == torch.int64 and torch.equal(packed["ids"], ids)
    back = dequantize_state(packed)
    assert set(back) == {"w", "conv", "small", "bias", "ids"}
    for name, x in (("w", w), ("conv", conv)):
        bound = x.reshape(x.shape[0], -1).abs().amax(1) / 254 * (1 + 1e-5)
        err = (back[name] - x).reshape(x.shape[0], -1).abs().amax(1)
        assert (err <= bound).all(), name
        assert (err > 0).any()  # it is a lossy format: a test of the bound, not of a copy
    # each row keeps its own scale: the smallest rows are as exact (relatively) as the largest
    rel = (back["w"] - w).abs().amax(1) / w.abs().amax(1)
    assert rel.max() <= 1 / 254 * (1 + 1e-5)
    damaged = dict(packed, **{"w" + INT8_SCALE: packed["w" + INT8_SCALE][:10]})
    with pytest.raises(ValueError, match="does not match its scale"):
        dequantize_state(damaged)


def _asr(tmp_path):
    from audiokit.asr.lightning import ASRLightningModule
    from audiokit.asr.transcriber import Transcriber
    from audiokit.text import BPETokenizer

    bpe = tmp_path / "bpe.json"
    BPETokenizer.train([f"sentence number {i} with words {i * 7}" for i in range(300)], vocab_size=300).save(bpe)
    torch.manual_seed(0)
    dims = dict(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=2, n_text_ctx=64,
                n_text_state=64, n_text_head=2, n_text_layer=2)
    m = ASRLightningModule(str(bpe), dims=dims)
    return Transcriber(m.model, m.tok, name="t")


def test_int8_export_loads_and_stays_close_to_float32(tmp_path):
    from audiokit.asr.transcriber import Transcriber

    t = _asr(tmp_path)
    t.export(tmp_path / "f32")
    t.export(tmp_path / "i8", dtype=torch.int8)
    f32 = (tmp_path / "f32" / "model.safetensors").stat().st_size
    i8 = (tmp_path / "i8" / "model.safetensors").stat().st_size
    assert i8 < 0.3 * f32
    a, b = Transcriber.load(tmp_path / "f32"), Transcriber.load(tmp_path / "i8")
    mel = torch.randn(1, 80, 3000, generator=torch.Generator().manual_seed(1))
    tokens = torch.tensor([[1, 5, 9, 13]])
    with torch.no_grad():
        ea, eb = a.model.encoder(mel), b.model.encoder(mel)
        la, lb = a.model.decoder(tokens, ea), b.model.decoder(tokens, eb)
    assert ((ea - eb).norm() / ea.norm()) < 0.03
    assert ((la - lb).norm() / la.norm()) < 0.03
    assert ((la - lb).norm() / la.norm()) > 0  # the weights really were rounded
    state = load_safetensors_file(tmp_path / "i8" / "model.safetensors", ValueError)
    assert not any(k.endswith(INT8_SCALE) for k in state) and all(v.dtype != torch.int8 for v in state.values())


def test_export_int8_from_the_cli_and_its_card(tmp_path, capsys):
    import lightning as L

    from audiokit.asr.lightning import ASRLightningModule

    t = _asr(tmp_path)
    module = ASRLightningModule(str(tmp_path / "bpe.json"), dims=t.model.dims.to_dict())
    trainer = L.Trainer(max_steps=0, logger=False, enable_checkpointing=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "asr.ckpt")
    assert main(["export", str(tmp_path / "asr.ckpt"), str(tmp_path / "out"), "--int8"]) == 0
    card = read_card(tmp_path / "out")
    assert card["dtype"] == "int8" and card["parameters"] == sum(p.numel() for p in module.model.parameters())
    capsys.readouterr()
    codec_dir = PRETRAINED_DIR / "codec"
    assert main(["export", str(codec_dir / "model.safetensors"), str(tmp_path / "c"), "--int8"]) == 2
    assert "--int8 is for ASR, VALL-E and Tortoise" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def _small_asr(folder):
    """A small Whisper-layout ASR export (an ASR a user bundles with VALL-E; the default one never is)."""
    from audiokit.asr.model import ASRModel, ModelDimensions
    from audiokit.asr.tokenizer import WhisperTokenizer, load_ranks
    from audiokit.asr.transcriber import Transcriber
    from audiokit.assets import ASSETS_DIR
    from audiokit.pretrained import write_card

    torch.manual_seed(0)
    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=16, n_audio_head=2, n_audio_layer=1, n_vocab=51864,
                           n_text_ctx=32, n_text_state=16, n_text_head=2, n_text_layer=1)
    tok = WhisperTokenizer(load_ranks(ASSETS_DIR / "gpt2.tiktoken.gz"), multilingual=False, language=None)
    Transcriber(ASRModel(dims), tok, name="small-asr").export(folder, dtype=torch.float16)
    write_card(folder)


def test_a_bundle_holds_each_model_once(tmp_path):
    bundle = tmp_path / "pretrained"
    for name in ("valle", "tortoise"):
        shutil.copytree(PRETRAINED_DIR / name, bundle / name, symlinks=False)
    # the codec their tokens came from
    shutil.copytree(PRETRAINED_DIR / read_card(PRETRAINED_DIR / "valle")["shared"]["codec"][3:], bundle / "codec")
    _small_asr(bundle / "asr")
    # make the copies the export writes: each TTS folder with its own codec (and VALL-E with the ASR given to it)
    for name, parts in (("valle", ("codec", "asr")), ("tortoise", ("codec",))):
        for part in parts:
            (bundle / name / f"{part}.link").unlink(missing_ok=True)
            shutil.copytree(bundle / part, bundle / name / part)
    (bundle / "valle" / "codec" / "config.json").write_text(
        (bundle / "valle" / "codec" / "config.json").read_text().replace('"name"', '"source": "bundled", "name"', 1))
    before = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
    done = share_components([bundle / n for n in ("codec", "asr", "valle", "tortoise")])
    assert sorted(done) == ["tortoise/codec -> ../codec", "valle/asr -> ../asr", "valle/codec -> ../codec"]
    after = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
    assert after < before - 2 * (bundle / "codec" / "model.safetensors").stat().st_size
    assert not (bundle / "valle" / "codec").exists() and (bundle / "valle" / "codec.link").read_text() == "../codec\n"
    card = read_card(bundle / "valle")
    check_files(bundle / "valle", card, hashes=True)
    assert card["shared"] == {"asr": "../asr", "codec": "../codec"} and "codec.link" in card["files"]
    assert "Shares its asr with `../asr`" in (bundle / "valle" / "README.md").read_text()
    tts = audiokit.load(bundle / "valle")
    assert tts.own_asr.name == "small-asr" and tts.codec.info == audiokit.load(bundle / "codec").info
    # a different model is not shared: change the bundle's ASR weights and VALL-E's copy stays
    assert share_components([bundle / "valle"]) == []
    # a TTS folder moved away from the folder it shares names what is missing
    shutil.move(str(bundle / "tortoise"), str(tmp_path / "alone"))
    with pytest.raises(Exception, match="codec.link: points to .* not there"):
        audiokit.load(tmp_path / "alone")


def test_share_keeps_a_copy_that_differs(tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(PRETRAINED_DIR / "codec", bundle / "codec")
    shutil.copytree(PRETRAINED_DIR / "tortoise", bundle / "tortoise")
    (bundle / "tortoise" / "codec.link").unlink()
    shutil.copytree(PRETRAINED_DIR / "codec", bundle / "tortoise" / "codec")
    w = bundle / "codec" / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 1  # one bit of the bundle's codec differs
    w.write_bytes(bytes(data))
    assert share_components([bundle / "codec", bundle / "tortoise"]) == []
    assert (bundle / "tortoise" / "codec" / "model.safetensors").is_file()


def test_share_links_a_copy_written_in_another_dtype(tmp_path):
    """An export writes the codec it was given in float32; the bundle's is float16. The same values are the same
    model: the copy becomes a link. One value off, and it stays."""
    from safetensors.torch import load_file, save_file

    for changed in (False, True):
        bundle = tmp_path / f"b{changed}"
        for name in ("codec", "valle", "tortoise"):  # Tortoise uses VALL-E's phone units, lengths NAR and decoder
            shutil.copytree(PRETRAINED_DIR / name, bundle / name)
        (bundle / "tortoise" / "codec.link").unlink(missing_ok=True)
        shutil.rmtree(bundle / "tortoise" / "codec", ignore_errors=True)
        shutil.copytree(bundle / "codec", bundle / "tortoise" / "codec")
        w = bundle / "tortoise" / "codec" / "model.safetensors"
        tensors = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(w)).items()}
        if changed:
            k = next(k for k, v in tensors.items() if v.is_floating_point())
            tensors[k] = tensors[k].clone()
            tensors[k].view(-1)[0] += 1e-3
        save_file(tensors, str(w))
        assert w.stat().st_size > (bundle / "codec" / "model.safetensors").stat().st_size  # float32 now
        done = share_components([bundle / "codec", bundle / "tortoise"])
        assert done == ([] if changed else ["tortoise/codec -> ../codec"])
        assert (bundle / "tortoise" / "codec.link").is_file() != changed


def test_the_learning_rate_schedule_ends_with_the_wall_clock_budget(monkeypatch):
    from lightning.pytorch.callbacks import Timer

    from audiokit.nn.optim import adamw_warmup_linear

    clock = Timer(duration="00:00:01:40")  # 100 s
    monkeypatch.setattr(clock, "time_elapsed", lambda stage="train": _state["elapsed"])
    monkeypatch.setattr(clock, "time_remaining", lambda stage="train": 100.0 - _state["elapsed"])
    _state = {"elapsed": 0.0}

    class Trainer:
        estimated_stepping_batches = 1_000_000  # max_steps far away: only the clock can end the schedule
        callbacks = [clock]

    model = torch.nn.Linear(4, 4)
    sched = adamw_warmup_linear(model, Trainer(), 1e-3, (0.9, 0.99), 1e-8, 0.0, 2, 0.1)["lr_scheduler"]["scheduler"]
    lrs = []
    for elapsed in (0.0, 0.0, 25.0, 50.0, 100.0):
        _state["elapsed"] = elapsed
        sched.optimizer.step()
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    assert lrs[1] == pytest.approx(1e-3, rel=1e-3)  # warm-up done (2 steps), no time spent yet
    assert lrs[2] == pytest.approx(1e-3 * (1 - 0.9 * 0.25), rel=1e-3)
    assert lrs[3] == pytest.approx(1e-3 * (1 - 0.9 * 0.5), rel=1e-3)
    assert lrs[4] == pytest.approx(1e-4, rel=1e-3)  # the budget spent: the schedule's end

    class NoBudget:
        estimated_stepping_batches = 10
        callbacks = [Timer(duration=None)]

    sched = adamw_warmup_linear(model, NoBudget(), 1e-3, (0.9, 0.99), 1e-8, 0.0, 0, 0.1)["lr_scheduler"]["scheduler"]
    for _ in range(5):
        sched.optimizer.step()
        sched.step()
    assert sched.get_last_lr()[0] == pytest.approx(1e-3 * (1 - 0.9 * 0.5), rel=1e-3)  # steps alone, as before


def test_card_names_the_engines_of_a_corpus_made_with_every_installed_one(tmp_path):
    """A corpus made without --engines records none in its config: the card names the engines its voices came
    from (speakers.json), not an empty list."""
    from audiokit.pretrained import _corpus_summary

    corpus = tmp_path / "c"
    (corpus / "wavs" / "v").mkdir(parents=True)
    (corpus / "corpus.json").write_text(json.dumps({"config": {"engines": None, "sample_rate": 16000}, "speakers": 3,
                                                    "test_speakers": ["b"], "hours": {"train": 1.0}}))
    (corpus / "speakers.json").write_text(json.dumps([{"speaker": "a", "engine": "flite"}, {"speaker": "b", "engine": "espeak"},
                                                      {"speaker": "c", "engine": "flite"}]))
    manifest = corpus / "train.jsonl"
    manifest.write_text(json.dumps({"id": "x", "audio": str(corpus / "wavs" / "v" / "x.wav"), "text": "a"}) + "\n")
    assert _corpus_summary(manifest)["engines"] == ["espeak", "flite"]
    # a card written before that (engines null) gets them named when it is refreshed (as stage 19 does), per part
    from audiokit.pretrained import _named_engines, read_card, write_card

    old = {"steps": 5, "train_manifest": str(manifest), "corpus": {"engines": None, "speakers": 3, "hours": {"train": 1.0}}}
    _small_asr(tmp_path / "m")
    card = read_card(tmp_path / "m")
    (tmp_path / "m" / "model.json").write_text(json.dumps({**card, "training": old}))
    assert write_card(tmp_path / "m")["training"]["corpus"]["engines"] == ["espeak", "flite"]
    assert "engines espeak, flite" in (tmp_path / "m" / "README.md").read_text()
    assert _named_engines(json.loads(json.dumps(old)))["corpus"]["engines"] == ["espeak", "flite"]
    parts = _named_engines({"ar": json.loads(json.dumps(old)), "nar": {**old, "corpus": {"engines": ["festival"]}}})
    assert parts["ar"]["corpus"]["engines"] == ["espeak", "flite"] and parts["nar"]["corpus"]["engines"] == ["festival"]
    (corpus / "speakers.json").unlink()
    assert _corpus_summary(manifest)["engines"] is None
    assert _named_engines(json.loads(json.dumps(old)))["corpus"]["engines"] is None  # nothing to ask: stays unknown
