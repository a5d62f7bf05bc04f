"""The model registry (model.json + README.md written by export, eval tables added by eval --card), audiokit.load,
and the models bundled under pretrained/."""
import json

import pytest
import torch

import audiokit
from audiokit.cli import main
from audiokit.codec.codec import Codec
from audiokit.pretrained import PRETRAINED_DIR, ModelCardError, available, check_files, read_card, render_card, training_summary

from test_codec_cli import GEN

BUNDLED = {"codec": "codec", "valle": "valle", "tortoise": "tortoise"}  # the ASR is the default one: test_default_asr.py


def _checkpoint(path, manifest):
    from audiokit.codec.lightning import CodecLightningModule

    module = CodecLightningModule(generator=GEN, discriminator=dict(kinds=["mpd"], mpd_periods=[2], mpd_channels=[4]))
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict(), "global_step": 42, "epoch": 1,
                "datamodule_hyper_parameters": {"train_manifest": str(manifest)}}, path)
    return path


def test_export_writes_the_card_and_eval_fills_it(tmp_path, synth_corpus, capsys):
    corpus, _, summary = synth_corpus
    ckpt = _checkpoint(tmp_path / "m.ckpt", corpus / "train.jsonl")
    out = tmp_path / "mine"
    assert main(["export", str(ckpt), str(out), "--name", "mine", "--notes", "a test model", "--fp16"]) == 0
    printed = capsys.readouterr().out
    assert "card in" in printed
    card = read_card(out)
    assert card["family"] == "codec" and card["name"] == "mine" and card["sample_rate"] == 16000
    assert card["codec"]["name"] == "mine" and card["dtype"] == "float16"
    # the fingerprint printed is the exported (float16) weights', the one its tokens will carry
    assert card["codec_fingerprint"] in printed and card["codec_fingerprint"] != Codec.load(ckpt).info.fingerprint
    assert set(card["files"]) == {"config.json", "model.safetensors"}
    assert card["files"]["model.safetensors"]["bytes"] == (out / "model.safetensors").stat().st_size
    assert card["codec_fingerprint"] == Codec.load(out).info.fingerprint
    model = Codec.load(out).model
    assert card["parameters"] == sum(v.numel() for v in model.state_dict().values())
    t = card["training"]
    assert t["steps"] == 42 and t["epochs"] == 2 and t["corpus"]["speakers"] == summary["speakers"]
    readme = (out / "README.md").read_text()
    assert "# mine" in readme and "42 optimizer steps" in readme and "a test model" in readme and "Not evaluated yet" in readme
    # eval --card puts its table in the card (and the README), keeping what export wrote
    assert main(["eval", "codec", "--manifest", str(corpus / "test.jsonl"), "--codec", str(out), "--max-items", "2",
                 "--card"]) == 0
    card = read_card(out)
    assert [r["n_q"] for r in card["eval"]["codec"]["rows"]] == [1, 2, 4] and card["training"]["steps"] == 42
    assert card["eval"]["codec"]["max_items"] == 2
    assert "| kbps | n_q | mel distance |" in (out / "README.md").read_text()
    # audiokit.load dispatches on the card's family
    assert isinstance(audiokit.load(out), Codec)
    assert main(["models", str(out), "--verify"]) == 0
    assert "mine" in capsys.readouterr().out


def test_load_checks_files_against_the_card(tmp_path, synth_corpus, capsys):
    ckpt = _checkpoint(tmp_path / "m.ckpt", synth_corpus[0] / "train.jsonl")
    out = tmp_path / "m"
    assert main(["export", str(ckpt), str(out)]) == 0
    weights = out / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelCardError, match="truncated or replaced"):
        audiokit.load(out)
    weights.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, one bit changed
    check_files(out)  # sizes agree
    with pytest.raises(ModelCardError, match="SHA-256"):
        check_files(out, hashes=True)
    assert main(["models", str(out), "--verify"]) == 2
    assert "SHA-256" in capsys.readouterr().err
    (out / "model.json").write_text("{not json")
    with pytest.raises(ModelCardError, match="not valid JSON"):
        audiokit.load(out)
    with pytest.raises(FileNotFoundError, match="no bundled model of that name"):
        audiokit.load("no-such-model")


def test_bundled_models_are_complete_and_load():
    assert set(BUNDLED) <= set(available())
    total = 0
    for name, family in BUNDLED.items():
        folder = PRETRAINED_DIR / name
        card = read_card(folder)
        check_files(folder, card, hashes=True)
        assert card["family"] == family and card["training"] and card["notes"]
        total += sum(f["bytes"] for f in card["files"].values())
        kind = {"codec": "codec"}.get(family, "tts")
        assert kind in card["eval"], f"{name}: no {kind} eval in its card"
        if family != "codec":  # the codec stays float32: the TTS models learned its exact tokens
            assert card["dtype"] in ("float16", "int8")
    assert total <= 57e6  # the tracked tree stays <= 60 MiB (tests/test_gpu_oneshot.py), so a GPU run can be sent
    # each model once: VALL-E and Tortoise link to the bundled codec, the one whose tokens they learned; no ASR is
    # bundled (the default one is resolved)
    assert isinstance(audiokit.load("codec"), Codec)
    assert not (PRETRAINED_DIR / "asr").exists() and not (PRETRAINED_DIR / "valle" / "asr").exists()
    parts = {"units": "../valle/units", "nar.safetensors": "../valle/nar.safetensors",
             "decoder.safetensors": "../valle/decoder.safetensors"}
    for name, more in (("valle", {}), ("tortoise", parts)):  # both on VALL-E's phone units, lengths NAR and decoder
        shared = read_card(PRETRAINED_DIR / name)["shared"]
        assert shared == {"codec": "../codec", **more}  # both speak the bundled speech codec's tokens
        sibling = shared["codec"][3:]
        assert sibling in available() and read_card(PRETRAINED_DIR / sibling)["family"] == "codec"
        tts = audiokit.load(name)
        assert tts.family == name and tts.codec.info.fingerprint == audiokit.load(sibling).info.fingerprint
    tts_eval = read_card(PRETRAINED_DIR / "valle")["eval"]["tts"]["rows"]
    assert [r["system"] for r in tts_eval][:2] == ["ground truth", "codec resynthesis"]
    codec_eval = read_card(PRETRAINED_DIR / "codec")["eval"]["codec"]["rows"]
    assert all(r["pesq"] is not None and r["stoi"] is not None for r in codec_eval)


def test_models_command_lists_the_bundle(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in BUNDLED:
        assert f"\n{name} " in "\n" + out
    assert "WER" in out and "PESQ" in out
    voices = json.loads((PRETRAINED_DIR / "voices" / "voices.json").read_text())["voices"]
    assert voices and all((PRETRAINED_DIR / "voices" / v["file"]).is_file() for v in voices)


def test_training_summary_of_a_fine_tuned_model_on_two_corpora(tmp_path, synth_corpus):
    """A run over a list of manifests (two corpora) that started from another model: the card says both."""
    corpus = synth_corpus[0]
    one = json.loads((corpus / "corpus.json").read_text())
    other = tmp_path / "more"
    other.mkdir()
    (other / "corpus.json").write_text(json.dumps(dict(one, speakers=10, test_speakers=[])))
    (other / "train.jsonl").write_text((corpus / "train.jsonl").read_text())
    ckpt = {"global_step": 7, "epoch": 1, "hyper_parameters": {"init_from": "base.ckpt"},
            "datamodule_hyper_parameters": {"train_manifest": [str(corpus / "train.jsonl"), str(other / "train.jsonl")]}}
    torch.save(ckpt, tmp_path / "ft.ckpt")
    t = training_summary(tmp_path / "ft.ckpt")
    assert t["steps"] == 7 and t["epochs"] == 2 and t["init_from"] == "base.ckpt" and len(t["train_manifest"]) == 2
    c = t["corpus"]
    assert c["corpora"] == 2 and c["speakers"] == one["speakers"] + 10 and c["test_speakers"] == len(one["test_speakers"])
    assert c["hours"]["train"] == pytest.approx(2 * one["hours"]["train"], abs=2e-3)
    text = render_card({"name": "x", "family": "asr", "parameters": 1, "dtype": "float16", "sample_rate": 16000,
                        "training": t, "files": {}})
    assert "fine-tuned from `base.ckpt`" in text and "2 synthetic corpora" in text and " + `" in text
