"""Tortoise data, the four training stages, the pipeline (presets, reranking, k), export/load, CLI, bad input."""
import json

import lightning as L
import numpy as np
import pytest
import soundfile as sf
import torch

from audiokit.cli import main
from audiokit.nn.diffusion import DDPM, RectifiedFlow
from audiokit.codec.codec import Codec
from audiokit.codec.model import CodecModel
from audiokit.text import BPETokenizer
from audiokit.text.phonemes import TextError
from audiokit.tokens import CodecTokens, TokenStore
from audiokit.tortoise.data import TortoiseDataModule, TortoiseDataset, collate_tortoise
from audiokit.tortoise.generate import ar_latents
from audiokit.tortoise.lightning import (CheckpointStageError, CLVPModule, DiffusionARLatentsModule, DiffusionModule,
                                         TortoiseARModule, batch_voice)
from audiokit.tortoise.tts import PRESETS, TortoiseTTS, resolve_preset
from audiokit.tts import TTS, PromptError, TTSLoadError

from conftest import sine, write_wav

GEN = dict(sample_rate=16000, encoder_dim=4, encoder_rates=[4, 5, 8], decoder_dim=32, decoder_rates=[8, 5, 4],
           n_codebooks=4, codebook_size=32, codebook_dim=4)  # 100 frames/s, latents of 32 channels
SENTENCES = ["hello there", "how are you today", "the cat sat on the mat", "one two three four",
             "a grain of sugar", "the quick brown fox"]
AR = dict(text_vocab=400, codebook_size=32, n_codebooks=4, d_model=32, n_head=4, n_layer=2, n_cond_layer=1,
          max_text=60, max_speech=400, dropout=0.0, lr=3e-3, warmup_steps=2)
CLVP_ARGS = dict(text_vocab=400, codebook_size=32, clvp_layer=1, clvp_dim=32, clvp_latent=16, max_text=60,
                 max_speech=400, dropout=0.0, lr=3e-3, warmup_steps=2)
DIFF = dict(cond_dim=32, voice_dim=16, d_model=32, n_head=4, n_layer=2, n_voice_layer=1, lr=3e-3, warmup_steps=2,
            stats_batches=2)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A codec (random weights, exported), a token store of 8 utterances by 2 speakers (+ 1 alone), a BPE."""
    root = tmp_path_factory.mktemp("tortoise")
    torch.manual_seed(0)
    codec = Codec(CodecModel(**GEN), name="c0")
    codec.export(root / "codec")
    g = torch.Generator().manual_seed(0)
    entries = []
    with TokenStore.writer(root / "store", codec.info) as w:
        for i in range(9):
            T = 80 + 15 * i
            w.add(f"u{i}", CodecTokens(torch.randint(0, 32, (1, 4, T), generator=g), codec.info))
            entries.append({"id": f"u{i}", "audio": f"u{i}.wav", "duration": T / 100, "text": SENTENCES[i % 6] + ".",
                            "speaker": "solo" if i == 8 else "ab"[i % 2], "tokens": f"store:u{i}"})
    manifest = root / "train.jsonl"
    manifest.write_text("".join(json.dumps(e) + "\n" for e in entries))
    tok = BPETokenizer.train(SENTENCES * 3, vocab_size=300)
    tok.save(root / "bpe.json")
    return root, entries, codec, tok


def _dm(root, **kw):
    return TortoiseDataModule(str(root / "train.jsonl"), tokenizer=str(root / "bpe.json"), val_manifest=str(root / "train.jsonl"),
                              token_store=str(root / "store"), voice_seconds=0.5, max_batch_seconds=30.0, **kw)


def _fit(module, root, steps, name):
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=str(root / name), use_distributed_sampler=False,
                        limit_val_batches=1, val_check_interval=steps, check_val_every_n_epoch=None)
    trainer.fit(module, datamodule=_dm(root))
    path = root / f"{name}.ckpt"
    trainer.save_checkpoint(path)
    return trainer, path


# ---------------------------------------------------------------------------------------------- data
def test_dataset_draws_voice_clips_from_other_utterances_of_the_speaker(corpus):
    root, entries, codec, tok = corpus
    ds = TortoiseDataset(entries, tok, store=root / "store", voice_seconds=0.3, voice_clips=3)
    full = {e["id"]: ds.base[i]["tokens"].codes[0] for i, e in enumerate(entries)}
    for i in (0, 3, 8):
        it = ds[i]
        assert it["text"].tolist() == tok.encode(entries[i]["text"]) and torch.equal(it["codes"], full[entries[i]["id"]])
        assert it["voice"].shape == (3, 4, 30) and it["voice_frames"].tolist() == [30, 30, 30]
        same = [e["id"] for e in entries if e["speaker"] == entries[i]["speaker"] and (e["id"] != entries[i]["id"] or i == 8)]
        for clip in it["voice"]:  # each clip is a crop of one of those utterances
            assert any(any(torch.equal(clip, full[j][:, s : s + 30]) for s in range(full[j].shape[1] - 29)) for j in same)
    batch = collate_tortoise([ds[0], ds[1], ds[2]])
    assert batch["codes"].shape == (3, 4, int(batch["code_lens"].max())) and batch["voice"].shape == (9, 4, 30)
    assert batch["text"].shape == (3, int(batch["text_lens"].max())) and batch["voice_clips"] == 3
    val = TortoiseDataset(entries, tok, store=root / "store", train=False, voice_seconds=0.3)
    assert torch.equal(val[4]["voice"], val[4]["voice"])  # validation draws the same clips every time
    with pytest.raises(TextError, match="nothing to pronounce"):
        TortoiseDataset([dict(entries[0], text=" ?! ")], tok, store=root / "store")
    with pytest.raises(ValueError, match="voice_clips"):
        TortoiseDataset(entries, tok, store=root / "store", voice_clips=0)


# ---------------------------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def trained(corpus):
    """The four stages trained a few steps each, through Lightning (the recipe's order)."""
    root, entries, codec, tok = corpus
    L.seed_everything(0)
    ar, ar_ckpt = _fit(TortoiseARModule(**AR), root, 12, "ar")
    clvp, clvp_ckpt = _fit(CLVPModule(**CLVP_ARGS), root, 12, "clvp")
    diff, diff_ckpt = _fit(DiffusionModule(str(root / "codec"), **DIFF), root, 12, "diff")
    diff2, diff2_ckpt = _fit(DiffusionARLatentsModule(str(root / "codec"), str(ar_ckpt), init_from=str(diff_ckpt), **DIFF),
                             root, 4, "diff2")
    return {"ar": (ar, ar_ckpt), "clvp": (clvp, clvp_ckpt), "diffusion": (diff, diff_ckpt), "diffusion2": (diff2, diff2_ckpt)}


def test_stages_train_and_record_codec_and_tokenizer(corpus, trained):
    root, entries, codec, tok = corpus
    for name, (trainer, path) in trained.items():
        ck = torch.load(path, map_location="cpu", weights_only=False)
        assert ck["tortoise"]["codec"]["fingerprint"] == codec.info.fingerprint
        assert ck["tortoise"]["tokenizer"] == tok.to_json() or name.startswith("diffusion")
    m = trained["ar"][0].callback_metrics
    assert {"train/speech_acc", "val/speech_acc", "val/loss"} <= set(m)
    assert "val/retrieval_acc" in trained["clvp"][0].callback_metrics
    diff_metrics = trained["diffusion"][0].callback_metrics
    assert any(k.startswith("val/loss_t") for k in diff_metrics)
    d = trained["diffusion"][0].lightning_module.model
    assert not torch.allclose(d.latent_std, torch.ones_like(d.latent_std))  # measured on the data
    # stage 2 starts from stage 1's weights (and its latent statistics), and reads the AR's latents
    ck1 = torch.load(trained["diffusion"][1], map_location="cpu", weights_only=False)["state_dict"]
    d2 = trained["diffusion2"][0].lightning_module
    assert torch.equal(d2.model.latent_mean, ck1["model.latent_mean"])
    batch = collate_tortoise([d2.trainer.datamodule.datasets["train"][i] for i in range(2)])
    cond = d2.conditioning(batch)
    assert cond.shape == (2, batch["codes"].shape[-1], 32)
    ar = d2.ar[0]  # the latents are the AR's, at each frame, whatever the padding of the batch
    voice = batch_voice(ar.conditioning, batch, "cpu")
    for b in range(2):
        n = int(batch["code_lens"][b])
        ref = ar_latents(ar, voice[b], batch["text"][b, : int(batch["text_lens"][b])], [batch["codes"][b, 0, :n]])[0]
        assert torch.allclose(cond[b, :n], ref, atol=1e-4)


def test_stage_losses_fall(corpus):
    root, entries, codec, tok = corpus
    dm = _dm(root)
    dm.setup("fit")
    batch = collate_tortoise([dm.datasets["train"][i] for i in range(4)])
    torch.manual_seed(0)
    for module in (TortoiseARModule(**AR), CLVPModule(**CLVP_ARGS)):
        opt = torch.optim.AdamW(module.parameters(), lr=3e-3)
        module.log = lambda *a, **k: None
        first = None
        for _ in range(30):
            loss = module._step(batch, "train")
            first = first if first is not None else loss.item()
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert loss.item() < 0.7 * first, type(module).__name__


def test_stage_two_refuses_a_mismatched_ar(corpus, trained):
    root, *_ = corpus
    with pytest.raises(ValueError, match="cond_dim"):
        DiffusionARLatentsModule(str(root / "codec"), str(trained["ar"][1]), **dict(DIFF, cond_dim=48))
    with pytest.raises(CheckpointStageError, match="expected a Tortoise ar checkpoint, found a Tortoise clvp"):
        DiffusionARLatentsModule(str(root / "codec"), str(trained["clvp"][1]), **DIFF)


def test_flow_matching_decoder_trains_through_both_stages_and_synthesizes(corpus, trained, tmp_path):
    root, *_ = corpus
    L.seed_everything(0)
    flow = dict(DIFF, prediction="flow")
    stage1, ckpt1 = _fit(DiffusionModule(str(root / "codec"), **flow), root, 12, "flow")
    assert any(k.startswith("val/loss_t") for k in stage1.callback_metrics)
    with pytest.raises(ValueError, match="prediction 'v'"):  # a DDPM decoder is not fine-tuned as a flow
        DiffusionARLatentsModule(str(root / "codec"), str(trained["ar"][1]), init_from=str(trained["diffusion"][1]), **flow)
    _, ckpt2 = _fit(DiffusionARLatentsModule(str(root / "codec"), str(trained["ar"][1]), init_from=str(ckpt1), **flow),
                    root, 4, "flow2")
    t = TortoiseTTS.from_checkpoints(trained["ar"][1], trained["clvp"][1], ckpt2, root / "codec")
    assert isinstance(t.process, RectifiedFlow) and t.diffusion_meta["prediction"] == "flow"
    kw = dict(sample_rate=16000, preset="ultra_fast", seed=3)
    a = t.synthesize("Hello there.", _voice(), **kw)
    assert torch.equal(a.audio, t.synthesize("Hello there.", _voice(), **kw).audio)
    assert a.audio.abs().max() > 0 and torch.isfinite(a.audio).all()
    assert not torch.equal(a.audio, t.synthesize("Hello there.", _voice(), diffusion_steps=2, **kw).audio)
    loaded = TTS.load(t.export(tmp_path / "flow"))
    assert isinstance(loaded.process, RectifiedFlow)
    assert torch.allclose(loaded.synthesize("Hello there.", _voice(), **kw).audio, a.audio, atol=1e-4)
    assert isinstance(TortoiseTTS.from_checkpoints(trained["ar"][1], trained["clvp"][1], trained["diffusion2"][1],
                                                   root / "codec").process, DDPM)


def _speaks_the_same_after_export(t, folder):
    """``t`` synthesizes finite, non-silent audio, and its export, loaded, the same audio; returns the loaded model."""
    kw = dict(sample_rate=16000, preset="ultra_fast", seed=3)
    a = t.synthesize("Hello there.", _voice(), **kw)
    assert a.audio.abs().max() > 0 and torch.isfinite(a.audio).all()
    loaded = TTS.load(t.export(folder))
    assert torch.allclose(loaded.synthesize("Hello there.", _voice(), **kw).audio, a.audio, atol=1e-4)
    return loaded


def test_text_reading_decoder_trains_through_both_stages_and_synthesizes(corpus, trained, tmp_path):
    """A decoder that reads the text (``text_vocab``) trains through both stages, loads from its checkpoints
    and its export, and what it makes depends on the sentence's ids; one with a smaller vocabulary than the
    tokenizer, or a stage-1 decoder without the text, is one clear error, not an index error later."""
    root, entries, codec, tok = corpus
    L.seed_everything(0)
    reads = dict(DIFF, text_vocab=400, n_text_layer=1)
    _, ckpt1 = _fit(DiffusionModule(str(root / "codec"), **reads), root, 12, "text1")
    with pytest.raises(ValueError, match="differs"):  # the decoders' configurations must match
        DiffusionARLatentsModule(str(root / "codec"), str(trained["ar"][1]), init_from=str(trained["diffusion"][1]), **reads)
    _, ckpt2 = _fit(DiffusionARLatentsModule(str(root / "codec"), str(trained["ar"][1]), init_from=str(ckpt1), **reads),
                    root, 4, "text2")
    with pytest.raises(ValueError, match="model.text_vocab is 5"):
        _fit(DiffusionModule(str(root / "codec"), **dict(reads, text_vocab=5)), root, 1, "text-small")
    t = TortoiseTTS.from_checkpoints(trained["ar"][1], trained["clvp"][1], ckpt2, root / "codec")
    assert t.diffusion.text_vocab == 400 and t.diffusion_meta["conditioning"] == "ar-latents"
    assert _speaks_the_same_after_export(t, tmp_path / "reads").diffusion.text_vocab == 400
    cond = [torch.randn(20, 32)]
    _, voice = t.voice_latents(t.prepare_voice(_voice(), 16000))
    one, other = (t.diffuse(cond, voice, 4, 1.0, torch.Generator().manual_seed(0), text=t._sentences(s)[0][1])[0]
                  for s in ("Hello there.", "The quick brown fox."))
    assert not torch.allclose(one, other)
    with pytest.raises(ValueError, match="reads the text"):
        t.diffuse(cond, voice, 4, 1.0)


def test_decoder_given_the_first_codebook_models_the_rest_and_adds_it_back(corpus, trained, tmp_path):
    """``given_codebooks`` 1, ``codebooks`` 3: the decoder trains on the latent of codebooks 1-3 less codebook 1's
    share, and what it makes is its sample plus that share of the chosen codes, exactly — so codebook 1 reaches the
    codec unchanged, whatever the decoder does. Through both stages, export and synthesis; without the codes, or
    with a bad count, one error."""
    root, entries, codec, tok = corpus
    L.seed_everything(0)
    given = dict(DIFF, given_codebooks=1, codebooks=3)  # codebooks 2-3 modelled, codebook 4 left out
    module = DiffusionModule(str(root / "codec"), **given)
    _, ckpt1 = _fit(module, root, 6, "given1")
    dm = _dm(root)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    codes = batch["codes"]
    z, _ = module._latents(batch)  # the training target: the latent less codebook 1's share
    full, first = codec.model.embed(codes[:, :3]).transpose(1, 2), codec.model.embed(codes[:, :1]).transpose(1, 2)
    assert torch.allclose(z, full - first, atol=1e-5) and not torch.allclose(z, full, atol=1e-3)
    assert torch.allclose(module.model.compose(codec.model, z, codes[:, 0]), full, atol=1e-5)
    assert module.model.config["codebooks"] == 3 and module.model.config["given_codebooks"] == 1
    for bad, match in (({"given_codebooks": 3}, "given_codebooks must be in"), ({"codebooks": 5}, "codebooks must be in")):
        with pytest.raises(ValueError, match=match):
            DiffusionModule(str(root / "codec"), **dict(given, **bad))
    _, ckpt2 = _fit(DiffusionARLatentsModule(str(root / "codec"), str(trained["ar"][1]), init_from=str(ckpt1), **given),
                    root, 3, "given2")
    t = TortoiseTTS.from_checkpoints(trained["ar"][1], trained["clvp"][1], ckpt2, root / "codec")
    assert t.diffusion.given_codebooks == 1
    cond = [torch.randn(20, 32)]
    _, voice = t.voice_latents(t.prepare_voice(_voice(), 16000))
    a, b = torch.randint(0, 32, (20,)), torch.randint(0, 32, (20,))
    za, zb = (t.diffuse(cond, voice, 3, 1.0, torch.Generator().manual_seed(0), given=[c])[0] for c in (a, b))
    share = [codec.model.embed(c[None, None])[0] for c in (a, b)]
    assert torch.allclose(za - zb, share[0] - share[1], atol=1e-4)  # the same sample, another codebook 1 added
    with pytest.raises(ValueError, match="first codebooks"):
        t.diffuse(cond, voice, 3, 1.0)
    assert _speaks_the_same_after_export(t, tmp_path / "given").diffusion.given_codebooks == 1


# ---------------------------------------------------------------------------------------------- pipeline
@pytest.fixture(scope="module")
def tts(corpus, trained):
    root, *_ = corpus
    return TortoiseTTS.from_checkpoints(trained["ar"][1], trained["clvp"][1], trained["diffusion2"][1], root / "codec", name="t")


def _voice(seconds=1.5, sr=16000, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(sine(180.0, seconds, sr, 0.3) + rng.normal(0, 0.02, int(seconds * sr)).astype(np.float32))


def test_codec_decodes_its_own_latents_like_its_tokens(corpus):
    root, entries, codec, tok = corpus
    tokens = CodecTokens(torch.randint(0, 32, (2, 4, 60)), codec.info, lengths=[60, 45])
    a = codec.decode(tokens)
    b = codec.decode_latents(codec.embed(tokens), tokens.lengths)
    assert torch.allclose(a, b, atol=1e-5)
    long = CodecTokens(torch.randint(0, 32, (1, 4, 300)), codec.info)
    chunked = Codec(codec.model, chunk_seconds=0.5, context_seconds=0.25)  # the chunked path, same result
    assert (chunked.decode_latents(codec.embed(long)) - codec.decode_latents(codec.embed(long))).abs().max() < 1e-4
    with pytest.raises(ValueError, match="latents"):
        codec.decode_latents(torch.zeros(1, 7, 10))


def test_synthesis_is_reproducible_and_reports_stages(tts):
    a = tts.synthesize("Hello there. How are you?", [_voice(), _voice(2.0, seed=1)], sample_rate=16000,
                       preset="ultra_fast", seed=3, k=2)
    b = tts.synthesize("Hello there. How are you?", [_voice(), _voice(2.0, seed=1)], sample_rate=16000,
                       preset="ultra_fast", seed=3, k=2)
    assert torch.equal(a.audio, b.audio) and a.sentences == ["Hello there.", "How are you?"]
    assert set(a.timings) == {"ar", "clvp", "diffusion", "codec"} and all(v >= 0 for v in a.timings.values())
    assert len(a.alternatives) == 1 and a.alternatives[0].shape != () and not torch.equal(a.alternatives[0], a.audio)
    hop = tts.codec.hop_length
    assert a.audio.shape[-1] == sum(len(c) for c in a.codes) * hop + int(0.2 * 16000)


def test_clvp_reranking_picks_the_best_candidate(tts, monkeypatch):
    from audiokit.tortoise import tts as module

    seen = {}
    real = module.sample_candidates

    def spy(*a, **k):
        seen["cands"] = real(*a, **k)
        return seen["cands"]

    monkeypatch.setattr(module, "sample_candidates", spy)
    out = tts.synthesize("Hello there.", _voice(), sample_rate=16000, candidates=6, diffusion_steps=2, seed=1)
    ids = torch.tensor(tts.tokenizer.encode("Hello there."))
    scores = tts.rank(ids, seen["cands"])
    assert torch.equal(out.codes[0], seen["cands"][int(scores.argmax())])
    assert (scores[[i for i, c in enumerate(seen["cands"]) if len(c) == 0]] == float("-inf")).all()


def test_presets_and_their_checks():
    assert [PRESETS[p].candidates for p in ("ultra_fast", "fast", "standard", "high_quality")] == sorted(
        PRESETS[p].candidates for p in PRESETS)
    assert resolve_preset("fast", candidates=3, k=3).candidates == 3
    with pytest.raises(ValueError, match="k must be between 1 and the number of candidates"):
        resolve_preset("ultra_fast", k=5)  # N = 4 < k
    with pytest.raises(ValueError, match="unknown preset"):
        resolve_preset("turbo")


def test_bad_voice_and_text(tts, tmp_path):
    with pytest.raises(PromptError, match="at least one reference clip"):
        tts.synthesize("Hello.", [])
    with pytest.raises(PromptError, match="clip 2 .*silent"):
        tts.synthesize("Hello.", [_voice(), torch.zeros(16000)], sample_rate=16000)
    with pytest.raises(PromptError, match="at least 1 s"):
        tts.synthesize("Hello.", _voice(0.4), sample_rate=16000)
    with pytest.raises(TextError, match="empty"):
        tts.synthesize("  ", _voice(), sample_rate=16000)
    with pytest.raises(TextError, match="nothing to pronounce"):
        tts.synthesize("?! ...", _voice(), sample_rate=16000)
    with pytest.raises(TextError, match="text tokens"):
        tts.synthesize("supercalifragilistic " * 40, _voice(), sample_rate=16000)
    with pytest.raises(ValueError, match="k must be"):
        tts.synthesize("Hello.", _voice(), sample_rate=16000, candidates=2, k=3)
    # clips at other sample rates, stereo, and as tokens all work; a long clip is trimmed with a notice
    stereo = np.stack([sine(200, 1.5, 8000, 0.3), sine(220, 1.5, 8000, 0.3)], 1)
    p8 = tmp_path / "v8.wav"
    sf.write(p8, stereo, 8000)
    p44 = write_wav(str(tmp_path / "v44.wav"), sine(180, 12.0, 44100, 0.3), 44100)
    toks = tts.codec.encode(_voice(), 16000)
    out = tts.synthesize("Hello.", [str(p8), p44, toks], preset="ultra_fast", seed=0)
    assert out.audio.numel() > 0 and any("trimmed" in n for n in out.notices)


def test_export_load_and_cli(tts, corpus, trained, tmp_path, capsys):
    folder = tts.export(tmp_path / "tortoise")
    loaded = TTS.load(folder)
    assert isinstance(loaded, TortoiseTTS) and loaded.diffusion_meta["conditioning"] == "ar-latents"
    a = tts.synthesize("Hello there.", _voice(), sample_rate=16000, preset="ultra_fast", seed=5).audio
    b = loaded.synthesize("Hello there.", _voice(), sample_rate=16000, preset="ultra_fast", seed=5).audio
    assert torch.allclose(a, b, atol=1e-4)
    v1 = write_wav(str(tmp_path / "a.wav"), _voice().numpy())
    v2 = write_wav(str(tmp_path / "b.wav"), _voice(2.0, 22050, seed=2).numpy(), 22050)
    out = tmp_path / "out.wav"
    assert main(["tts", "--model", str(folder), "--text", "Hello there.", "--voice", v1, v2, "--preset", "ultra_fast",
                 "--seed", "0", "--out", str(out)]) == 0
    assert sf.info(out).samplerate == 16000 and "diffusion" in capsys.readouterr().out
    for bad, msg in ((["--voice", str(tmp_path / "none.wav")], "none.wav"), ([], "reference clips"),
                     (["--voice", v1, "--candidates", "0"], "candidates")):
        dst = tmp_path / "bad.wav"
        assert main(["tts", "--model", str(folder), "--text", "Hi there.", "--out", str(dst), *bad]) == 2
        assert msg in capsys.readouterr().err and not dst.exists()
    # export from the CLI; a stage other than the AR, or a missing part, is a one-line error
    root, *_ = corpus
    dst = tmp_path / "cli-export"
    assert main(["export", str(trained["ar"][1]), str(dst), "--clvp", str(trained["clvp"][1]), "--diffusion",
                 str(trained["diffusion"][1]), "--codec", str(root / "codec")]) == 0
    stage1 = TTS.load(dst)
    assert stage1.diffusion_meta["conditioning"] == "codes"  # a stage-1 decoder conditions on token embeddings
    assert stage1.synthesize("Hello.", _voice(), sample_rate=16000, preset="ultra_fast", seed=0).audio.abs().max() > 0
    card = json.loads((dst / "model.json").read_text())
    assert card["family"] == "tortoise" and set(card["training"]) == {"ar", "clvp", "diffusion"}
    assert card["files"]["diffusion.safetensors"]["bytes"] == (dst / "diffusion.safetensors").stat().st_size
    assert main(["export", str(trained["clvp"][1]), str(tmp_path / "x")]) == 2
    assert "export from the AR one" in capsys.readouterr().err
    assert main(["export", str(trained["ar"][1]), str(tmp_path / "x"), "--codec", str(root / "codec")]) == 2
    # a truncated weight file
    w = folder / "diffusion.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(TTSLoadError, match="diffusion.safetensors"):
        TTS.load(folder)
