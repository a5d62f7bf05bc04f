"""VALL-E data, training, the TTS API and CLI, bad input, and the recipe's commands end to end."""
import json
import math

import numpy as np
import pytest
import torch

from audiokit.cli import main
from audiokit.codec.codec import Codec
from audiokit.codec.model import CodecModel
from audiokit.text.phonemes import TextError
from audiokit.tokens import CodecMismatchError, CodecTokens, TokenStore
from audiokit.valle.data import ValleDataset, collate_valle, espeak_language, phoneme_ids
from audiokit.valle.lightning import ValleARModule, ValleNARModule
from audiokit.valle.model import ValleAR, ValleDims, ValleNAR
from audiokit.tts import PromptError, TTSLoadError, split_sentences
from audiokit.valle.tts import ValleTTS

from conftest import sine, write_wav

GEN = dict(sample_rate=16000, encoder_dim=4, encoder_rates=[4, 5, 8], decoder_dim=32, decoder_rates=[8, 5, 4],
           n_codebooks=4, codebook_size=32, codebook_dim=4)  # 100 frames/s
DIMS = ValleDims(codebook_size=32, n_codebooks=4, d_model=32, n_head=4, n_layer=2, dropout=0.0)


def _codec(seed=0):
    torch.manual_seed(seed)
    return Codec(CodecModel(**GEN), name=f"c{seed}")


@pytest.fixture(scope="module")
def tts():
    codec = _codec(0)
    torch.manual_seed(1)
    return ValleTTS(ValleAR(DIMS).eval(), ValleNAR(DIMS).eval(), codec, name="random")


def _voice(seconds=1.5, sr=16000, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(sine(180.0, seconds, sr, 0.3) + rng.normal(0, 0.02, int(seconds * sr)).astype(np.float32))


# ---------------------------------------------------------------------------------------------- text
def test_split_sentences_keeps_every_word():
    text = "First one. Second, with a clause! " + "word " * 80 + "end."
    parts = split_sentences(text, max_chars=100)
    assert parts[:2] == ["First one.", "Second, with a clause!"]
    assert all(len(p) <= 100 for p in parts)
    assert " ".join(parts).split() == text.split()


def test_phoneme_ids_refuse_text_with_nothing_to_pronounce():
    ids = phoneme_ids("həlˈoʊ")
    assert ids[0] == 2 and ids[-1] == 3 and len(ids) == 8
    assert phoneme_ids("hé☃lo") == phoneme_ids("hélo")  # unknown symbols dropped
    with pytest.raises(TextError, match="nothing to pronounce"):
        phoneme_ids("?! ...")
    with pytest.raises(TextError, match="not supported"):
        espeak_language("tlh")


# ---------------------------------------------------------------------------------------------- data
@pytest.fixture(scope="module")
def token_corpus(tmp_path_factory):
    codec = _codec(0)
    root = tmp_path_factory.mktemp("valle_tokens")
    g = torch.Generator().manual_seed(0)
    entries = []
    with TokenStore.writer(root / "store", codec.info) as w:
        for i in range(6):
            T = 150 + 40 * i
            w.add(f"u{i}", CodecTokens(torch.randint(0, 32, (1, 4, T), generator=g), codec.info))
            entries.append({"id": f"u{i}", "audio": f"u{i}.wav", "duration": T / 100, "text": "hello there",
                            "phonemes": "həlˈoʊ ðˈɛɹ", "speaker": "a" if i < 4 else f"solo{i}", "tokens": f"store:u{i}"})
    return entries, root / "store", codec


def test_dataset_pairs_prompts_from_the_same_speaker_or_the_own_prefix(token_corpus):
    entries, store, codec = token_corpus
    ds = ValleDataset(entries, store=store, train=True, prompt_seconds=1.0, prefix_prob=0.0)
    full = {e["id"]: ds.base[i]["tokens"].codes[0] for i, e in enumerate(entries)}
    for _ in range(5):
        it = ds[0]  # speaker "a" has others: the prompt is a 1 s crop of another utterance, the target whole
        assert torch.equal(it["target"], full["u0"]) and not it["prompt_scored"] and it["prompt"].shape == (4, 100)
        crop = it["prompt"]
        assert any(any(torch.equal(crop, full[o][:, s : s + 100]) for s in range(full[o].shape[1] - 99)) for o in ("u1", "u2", "u3"))
    solo = ds[4]  # no other utterance of this speaker: its own prefix (25-50 %, at most 1 s)
    assert solo["prompt_scored"] and 1 <= solo["prompt"].shape[1] <= 100
    assert torch.equal(torch.cat([solo["prompt"], solo["target"]], 1), full["u4"])
    val = ValleDataset(entries, store=store, train=False, prompt_seconds=1.0, prefix_prob=0.5)
    assert all(torch.equal(val[i]["prompt"], val[i]["prompt"]) for i in range(6))  # the same prompt every epoch
    assert ds.durations[0] == pytest.approx(entries[0]["duration"] + 1.0)


def test_training_lowers_the_loss_of_both_models(token_corpus):
    entries, store, _ = token_corpus
    ds = ValleDataset(entries, store=store, prompt_seconds=1.0, train=False)
    batch = collate_valle([ds[i] for i in range(4)])
    for cls in (ValleARModule, ValleNARModule):
        torch.manual_seed(0)
        m = cls(codebook_size=32, n_codebooks=4, d_model=32, n_head=4, n_layer=2, dropout=0.0, lr=3e-3, warmup_steps=1)
        m.log = lambda *a, **k: None
        opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
        losses = []
        for _ in range(60):
            loss = m.training_step(batch, 0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        # the NAR starts near chance (ln 32 = 3.47: its tied logits are scaled), so "falls" is measured from there
        assert losses[-1] < 0.8 * min(losses[0], math.log(32)), (cls.__name__, losses[0], losses[-1])


def test_training_refuses_tokens_of_another_codebook_size(token_corpus):
    _, _, codec = token_corpus
    m = ValleARModule(codebook_size=1024, n_codebooks=4, d_model=32, n_head=4, n_layer=1)
    with pytest.raises(CodecMismatchError, match="model.codebook_size"):
        m._check_codec(codec.info)


# ---------------------------------------------------------------------------------------------- synthesis
def test_synthesize_is_reproducible_and_joins_sentences(tts):
    a = tts.synthesize("One sentence. Another one!", _voice(), sample_rate=16000, prompt_text="a voice", seed=5)
    b = tts.synthesize("One sentence. Another one!", _voice(), sample_rate=16000, prompt_text="a voice", seed=5)
    c = tts.synthesize("One sentence. Another one!", _voice(), sample_rate=16000, prompt_text="a voice", seed=6)
    assert a.sentences == ["One sentence.", "Another one!"] and len(a.codes) == 2
    assert a.sample_rate == 16000 and a.audio.dim() == 1 and a.duration > 0
    assert torch.equal(a.audio, b.audio) and not torch.equal(a.audio, c.audio)
    pause = int(0.2 * 16000)
    assert a.audio.shape[-1] == sum(x.shape[1] for x in a.codes) * 160 + pause
    assert a.prompt_text == "a voice" and a.rtf > 0


def test_prompt_inputs_and_their_defined_results(tts):
    notes: list[str] = []
    tokens, text = tts.prepare_prompt(_voice(1.5, sr=24000), 24000, None, notes)  # another rate: resampled
    assert tokens.n_frames == 150 and text is None and any("voice reference only" in n for n in notes)
    stereo = torch.stack([_voice(1.5), _voice(1.5, seed=1)])
    assert tts.prepare_prompt(stereo, 16000, "words")[0].n_frames == 150
    notes = []
    tokens, text = tts.prepare_prompt(_voice(9.0), 16000, "these words", notes)
    assert tokens.n_frames == 600 and text is None  # trimmed to 6 s; the transcript no longer fits
    assert any("trimmed" in n for n in notes) and any("no longer matches" in n for n in notes)
    with pytest.raises(PromptError, match="at least 1 s"):
        tts.prepare_prompt(_voice(0.5), 16000)
    with pytest.raises(PromptError, match="silent"):
        tts.prepare_prompt(torch.zeros(32000), 16000)
    with pytest.raises(PromptError, match="sample_rate"):
        tts.prepare_prompt(_voice(), None)
    own = tts.codec.encode(_voice(), 16000)
    assert torch.equal(tts.prepare_prompt(own, None, "x")[0].codes, own.codes)
    other = _codec(1).encode(_voice(), 16000)
    with pytest.raises(CodecMismatchError):
        tts.prepare_prompt(other, None)


@pytest.mark.parametrize("text, match", [("", "empty"), ("   ", "empty"), ("?! ... ,", "nothing to pronounce"),
                                         ("x" * 5000, "limit")])
def test_bad_text_is_a_clear_error(tts, text, match):
    with pytest.raises(TextError, match=match):
        tts.synthesize(text, _voice(), sample_rate=16000, prompt_text="")


def test_unsupported_language_is_a_clear_error(tts):
    with pytest.raises(TextError, match="speaks en"):
        tts.synthesize("Bonjour.", _voice(), sample_rate=16000, language="fr")


def test_export_load_round_trip_and_broken_folders(tts, tmp_path):
    import audiokit

    folder = tts.export(tmp_path / "valle")
    again = audiokit.TTS.load(folder)
    a = tts.synthesize("Hello there.", _voice(), sample_rate=16000, prompt_text="", seed=1)
    b = again.synthesize("Hello there.", _voice(), sample_rate=16000, prompt_text="", seed=1)
    assert torch.equal(a.audio, b.audio) and again.codec.info == tts.codec.info
    data = (folder / "ar.safetensors").read_bytes()
    (folder / "ar.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(TTSLoadError, match="corrupt or truncated"):
        audiokit.TTS.load(folder)
    with pytest.raises(FileNotFoundError, match="no bundled model"):
        audiokit.TTS.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TTSLoadError, match="no config.json"):
        audiokit.TTS.load(tmp_path / "empty")


def test_tts_cli_writes_audio_and_bad_prompts_leave_no_file(tts, tmp_path, capsys):
    folder = tts.export(tmp_path / "valle")
    prompt = write_wav(str(tmp_path / "voice.wav"), _voice(2.0).numpy())
    out = tmp_path / "out.wav"
    assert main(["tts", "--model", str(folder), "--text", "Hello there. Bye.", "--prompt", prompt, "--prompt-text", "",
                 "--out", str(out), "--seed", "0"]) == 0
    import soundfile as sf

    wav, sr = sf.read(out)
    assert sr == 16000 and len(wav) > 0 and "2 sentence(s)" in capsys.readouterr().out
    akc = tmp_path / "voice.akc"  # a codec bitstream of the model's codec is a prompt too
    assert main(["encode", prompt, str(akc), "--codec", str(folder / "codec")]) == 0
    assert main(["tts", "--model", str(folder), "--text", "Hello.", "--prompt", str(akc), "--prompt-text", "",
                 "--out", str(tmp_path / "out2.wav"), "--repetition-window", "4"]) == 0
    short = write_wav(str(tmp_path / "short.wav"), _voice(0.4).numpy())
    bad = tmp_path / "bad.wav"
    for args in (["--prompt", short], ["--prompt", str(tmp_path / "missing.wav")], ["--prompt", prompt, "--text", "..."],
                 ["--prompt", prompt, "--repetition-window", "-1"], ["--prompt", prompt, "--alignment", "free"]):
        argv = ["tts", "--model", str(folder), "--text", "Hello.", "--out", str(bad), *args]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("audiokit: error:") and "Traceback" not in err
        assert not bad.exists()


# ---------------------------------------------------------------------------------------------- the recipe's commands
def test_train_export_tts_and_eval_from_the_cli(synth_corpus, tmp_path, capsys):
    corpus, _, _ = synth_corpus
    _codec(0).export(tmp_path / "codec")
    assert main(["tokenize", "--manifest", str(corpus / "train.jsonl"), str(corpus / "valid.jsonl"), str(corpus / "test.jsonl"),
                 "--codec", str(tmp_path / "codec"), "--out", str(tmp_path / "tokens")]) == 0
    common = ["--model.codebook_size", "32", "--model.d_model", "32", "--model.n_head", "2", "--model.n_layer", "1",
              "--data.train_manifest", str(tmp_path / "tokens/train.jsonl"), "--data.val_manifest", str(tmp_path / "tokens/valid.jsonl"),
              "--data.token_store", str(tmp_path / "tokens"), "--data.prompt_seconds", "1.0", "--trainer.max_steps", "3",
              "--trainer.val_check_interval", "3", "--trainer.enable_progress_bar", "false"]
    for stage in ("ar", "nar"):
        run = tmp_path / f"valle-{stage}"
        assert main(["train", f"valle-{stage}", "--config", f"configs/valle/tiny_{stage}.yaml", *common,
                     "--trainer.default_root_dir", str(run), "--trainer.callbacks.init_args.dirpath", str(run / "ck")]) == 0
        ck = torch.load(run / "ck/last.ckpt", map_location="cpu", weights_only=False)
        assert ck["global_step"] == 3 and ck["valle"]["stage"] == stage and ck["valle"]["codec"]["codebook_size"] == 32
    capsys.readouterr()
    assert main(["export", str(tmp_path / "valle-nar/ck/last.ckpt"), str(tmp_path / "x")]) == 2
    assert "export from the AR one" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "valle-ar/ck/last.ckpt"), str(tmp_path / "valle"), "--nar",
                 str(tmp_path / "valle-nar/ck/last.ckpt"), "--codec", str(tmp_path / "codec")]) == 0
    _codec(1).export(tmp_path / "other")
    assert main(["export", str(tmp_path / "valle-ar/ck/last.ckpt"), str(tmp_path / "bad"), "--nar",
                 str(tmp_path / "valle-nar/ck/last.ckpt"), "--codec", str(tmp_path / "other")]) == 2
    assert "fingerprint" in capsys.readouterr().err and not (tmp_path / "bad/config.json").exists()
    report = tmp_path / "eval.json"
    card = json.loads((tmp_path / "valle" / "model.json").read_text())
    assert card["family"] == "valle" and {k: v["steps"] for k, v in card["training"].items()} == {"ar": 3, "nar": 3}
    assert main(["eval", "tts", "--manifest", str(corpus / "train.jsonl"), "--model", str(tmp_path / "valle"),
                 "--max-items", "2", "--json", str(report), "--card", "--temperature", "0"]) == 0
    rows = json.loads(report.read_text())["rows"]
    card_eval = json.loads((tmp_path / "valle" / "model.json").read_text())["eval"]["tts"]
    assert card_eval["rows"] == rows and card_eval["temperature"] == 0  # the card says how the AR sampled
    assert [r["system"] for r in rows][:2] == ["ground truth", "codec resynthesis"] and rows[2]["rtf"] > 0
    stages = rows[2]["rtf_stages"]  # the model's time split by stage, each a share of the whole
    assert set(stages) == {"text", "prompt", "ar", "nar", "codec"} and stages["ar"] > 0
    assert sum(stages.values()) <= rows[2]["rtf"] * 1.01
    assert all(r["utterances"] == 2 for r in rows)
    for r in rows:  # babble counts at most once per utterance in the capped WER
        assert min(1.0, r["wer_asr"]) >= r["wer_asr_capped"] - 1e-9 and 0 <= r["wer_asr_capped"] <= 1
        assert r["exact_asr"] in (0, 1, 2) and (r["exact_asr"] == 2) == (r["wer_asr"] == 0)
    readme = (tmp_path / "valle" / "README.md").read_text()
    assert "| capped % | said exactly |" in readme
    out = capsys.readouterr().out
    assert f"| {100 * rows[2]['wer_asr_capped']:.1f} | {rows[2]['exact_asr']} / 2 |" in out
    assert "| ground truth |" in out
    from audiokit.asr.transcriber import Transcriber

    assert f"| WER {Transcriber.load('asr').name} (%) |" in out  # the table names the judge that read it


def test_tts_eval_breaks_figures_down_by_voice():
    """Each held-out voice gets its own WER and similarity per system, so a voice the judge reads badly (ground
    truth's own WER high) is not averaged into one that it reads well."""
    from audiokit.tts_eval import _by_speaker, format_speaker_table

    items = [{"speaker": "flite-rms", "text": "Four seven one nine.", "real_asr": "4719", "model_asr": "4 7 1 9",
              "model_similarity": 0.8},
             {"speaker": "flite-rms", "text": "Oh six.", "real_asr": "06", "model_asr": "0 5", "model_similarity": 0.6},
             {"speaker": "espeak-x", "text": "Two two.", "real_asr": "two", "model_asr": "22", "model_similarity": None}]
    model, real = _by_speaker(items, "model"), _by_speaker(items, "real")
    assert model["flite-rms"] == {"utterances": 2, "wer_asr": 1 / 6, "similarity": 0.7}
    assert model["espeak-x"] == {"utterances": 1, "wer_asr": 0.0} and real["espeak-x"]["wer_asr"] == 0.5
    assert real["flite-rms"] == {"utterances": 2, "wer_asr": 0.0}
    table = format_speaker_table([{"system": "ground truth", "by_speaker": real}, {"system": "VALL-E", "by_speaker": model}])
    assert "| espeak-x | 1 | 50.0 / - | 0.0 / - |" in table and "| flite-rms | 2 | 0.0 / - | 16.7 / 0.700 |" in table
    assert format_speaker_table([{"system": "VALL-E", "by_speaker": {"one": {"utterances": 1}}}]) == ""


# ---------------------------------------------------------------------------------------------- NAR decoding
@pytest.mark.parametrize("kind", ["factorized", "ema"])
def test_expected_latents_are_the_codes_latents_when_sure_and_the_mean_when_not(kind):
    from audiokit.codec.quantizer import ResidualVectorQuantizer

    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(input_dim=16, n_codebooks=4, codebook_size=32, codebook_dim=4, kind=kind)
    for level in rvq.levels:  # EMA codebooks start at zero until k-means: give every kind distinct codes
        if kind == "ema":
            level.embed.normal_()
    codes = torch.randint(0, 32, (2, 4, 7))
    sure = torch.nn.functional.one_hot(codes[:, 1:], 32).float()  # [B, 3, T, K]
    assert torch.allclose(rvq.decode_expected(codes[:, :1], sure), rvq.decode(codes), atol=1e-5)
    flat = torch.full((2, 1, 7, 32), 1 / 32)
    mean = sum(rvq.levels[1].decode_latent(torch.full((2, 7), c)) for c in range(32)) / 32
    assert torch.allclose(rvq.decode_expected(codes[:, :1], flat), rvq.decode(codes[:, :1]) + mean, atol=1e-5)
    with pytest.raises(ValueError, match="levels"):
        rvq.decode_expected(codes, sure)


def test_nar_probabilities_match_its_codes_and_expected_decoding_is_audio(tts, tmp_path):
    from audiokit.valle.generate import SamplingOptions

    torch.manual_seed(0)
    prompt = torch.randint(0, 32, (4, 20))
    rows = [(phoneme_ids("həlˈoʊ"), 6, prompt), (phoneme_ids("ðˈɛɹ wˈʌn"), 8, prompt)]
    probs: list = []
    codes = tts.generate(rows, SamplingOptions(temperature=0.0, draft_tokens=0), probs=probs)
    assert len(probs) == 2
    for c, p in zip(codes, probs):
        assert p.shape == (3, c.shape[1], 32) and torch.allclose(p.sum(-1), torch.ones(3, c.shape[1]))
        assert torch.equal(p.argmax(-1), c[1:])  # each stage's most likely code is the code returned
    expected, argmax = tts.audio(codes, probs, "expected"), tts.audio(codes, probs, "codes")
    for c, e, a in zip(codes, expected, argmax):
        assert e.shape == a.shape == (c.shape[1] * tts.codec.hop_length,) and torch.isfinite(e).all()
    sure = [torch.nn.functional.one_hot(c[1:], 32).float() for c in codes]  # a certain NAR: the same audio
    for e, a in zip(tts.audio(codes, sure, "expected"), argmax):
        assert torch.allclose(e, a, atol=1e-4)
    assert not torch.allclose(expected[0], argmax[0], atol=1e-4)  # an unsure (random) NAR: not the same
    with pytest.raises(ValueError, match="nar_decoding"):
        tts.audio(codes, probs, "soft")

    tts.export(tmp_path / "new")  # a new export records its decoding; an older folder decodes its codes
    assert ValleTTS.load(tmp_path / "new").nar_decoding == "expected"
    meta = json.loads((tmp_path / "new" / "config.json").read_text())
    meta.pop("nar_decoding")
    (tmp_path / "new" / "config.json").write_text(json.dumps(meta))
    assert ValleTTS.load(tmp_path / "new").nar_decoding == "codes"
