"""`audiokit data transcribe`: untranscribed audio → a training manifest with the ASR's confidence, resumable, with
doubtful utterances set aside."""
import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from audiokit.cli import main

from conftest import flite_wav  # tiny_en: the default ASR, a conftest fixture
from audiokit.data.pseudolabel import Thresholds, collect, label

TEXTS = ["Please call Stella and ask her to bring these things with her from the store.",
         "Turn out the lights before you leave the house.", "Four seven one nine two eight."]


def _folder(tmp_path):
    audio = tmp_path / "untranscribed"
    (audio / "part1").mkdir(parents=True)
    for i, (text, voice) in enumerate(zip(TEXTS, ["slt", "rms", "kal"])):
        sub = audio / ("part1" if i < 2 else "")
        flite_wav(sub / f"u{i}.wav", text, voice)
    sf.write(audio / "silence.wav", np.zeros(16000 * 2, dtype=np.float32), 16000)
    return audio


def test_pseudo_labels_with_the_real_tiny_en_resume_and_filter(tmp_path, tiny_en, capsys):
    audio = _folder(tmp_path)
    out = tmp_path / "labels.jsonl"
    args = ["data", "transcribe", str(audio), "--model", str(tiny_en), "--out", str(out), "--batch-size", "2"]
    assert main(args) == 0
    assert "3 kept, 1 rejected" in capsys.readouterr().out
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(rows) == {"part1_u0", "part1_u1", "u2"}
    assert rows["part1_u0"]["text"] == TEXTS[0] and rows["part1_u1"]["text"] == TEXTS[1]
    assert "".join(c for c in rows["u2"]["text"] if c.isdigit()).startswith("4719")  # Whisper writes digits
    assert [rows[i]["speaker"] for i in ("part1_u0", "part1_u1", "u2")] == ["part1", "part1", "untranscribed"]
    for r in rows.values():
        c = r["asr"]
        assert r["duration"] > 1 and r["language"] == "en" and c["model"] == "whisper-tiny.en"
        assert -1.0 < c["avg_logprob"] <= 0 and 0 <= c["no_speech_prob"] < 0.6 and 0 < c["compression_ratio"] < 2.4
    rejected = [json.loads(line) for line in out.with_name("labels.rejected.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rejected] == ["silence"] and rejected[0]["rejected"]
    # a killed run: the last line cut in half; the resumed run drops it and transcribes only that utterance
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:-1]) + lines[-1][:20])
    assert main(args) == 0
    said = capsys.readouterr().out
    assert "1 kept, 0 rejected" in said and "3 already there" in said
    again = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in again) == sorted(rows) and len(again) == 3


def _random_asr():
    import torch

    from audiokit.asr.model import ASRModel, ModelDimensions
    from audiokit.asr.tokenizer import WhisperTokenizer
    from audiokit.asr.transcriber import Transcriber
    from audiokit.text import BPETokenizer

    tok = WhisperTokenizer.from_bpe(BPETokenizer.train(["the cat sat on the mat", "a quick brown fox"] * 10, vocab_size=280))
    torch.manual_seed(0)
    dims = ModelDimensions(n_mels=80, n_audio_ctx=250, n_audio_state=32, n_audio_head=2, n_audio_layer=1,
                           n_vocab=tok.n_vocab, n_text_ctx=16, n_text_state=32, n_text_head=2, n_text_layer=1)
    return Transcriber(ASRModel(dims), tok, name="random")


def test_manifests_thresholds_and_unreadable_files(tmp_path, synth_corpus):
    corpus, _, _ = synth_corpus
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    manifest = tmp_path / "in.jsonl"
    entries = [json.loads(line) for line in (corpus / "test.jsonl").read_text().splitlines()][:3]
    for e in entries:
        e.pop("text")  # untranscribed, with their speakers
        e["audio"] = str(corpus / e["audio"])  # this manifest lives elsewhere
    manifest.write_text("".join(json.dumps(e) + "\n" for e in entries + [{"id": "bad", "audio": str(bad)}]))
    out = tmp_path / "o.jsonl"
    keep_all = Thresholds(min_avg_logprob=None, max_no_speech_prob=None, max_compression_ratio=None, min_words=0)
    c = label([manifest], _random_asr(), out, batch_size=2, thresholds=keep_all)
    assert c == {"total": 4, "skipped": 0, "kept": 3, "rejected": 1}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["speaker"] for r in rows] == [e["speaker"] for e in entries]  # manifest fields kept
    rej = json.loads(out.with_name("o.rejected.jsonl").read_text())
    assert rej["id"] == "bad" and "corrupt or unsupported audio" in rej["rejected"]
    assert label([manifest], _random_asr(), out, thresholds=keep_all) == {"total": 4, "skipped": 4, "kept": 0, "rejected": 0}
    strict = Thresholds(min_avg_logprob=0.5)  # nothing is that sure
    c = label([manifest], _random_asr(), tmp_path / "s.jsonl", thresholds=strict)
    assert c["kept"] == 0 and c["rejected"] == 4
    sub = tmp_path / "sub"
    sub.mkdir()
    shutil.copy(entries[0]["audio"], sub / "x.wav")
    (sub / "m.jsonl").write_text(json.dumps({"id": "x", "audio": "x.wav"}) + "\n")
    assert collect([sub / "m.jsonl"])[0]["audio"] == str(sub / "x.wav")  # relative to the manifest's folder
    with pytest.raises(Exception, match="is in both"):
        collect([manifest, manifest])
    with pytest.raises(Exception, match="no audio files"):
        collect([tmp_path / "empty"] if (tmp_path / "empty").mkdir() is None else [])


def test_the_untranscribed_recipe_labels_then_trains(tmp_path, tiny_en):
    """recipes/untranscribed/run.sh: stage 0 labels the training and held-out folders, splits off validation, and
    the synthetic recipe's stage 1 (BPE) trains on the labels."""
    import os
    import sys
    from pathlib import Path

    audio = _folder(tmp_path)
    held = tmp_path / "held-out" / "spk9"
    held.mkdir(parents=True)
    flite_wav(held / "a.wav", "Seven cats and one dog.", "awb")
    out = tmp_path / "labelled"
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    r = subprocess.run(["bash", str(root / "recipes/untranscribed/run.sh"), "--audio", str(audio), "--test",
                        str(tmp_path / "held-out"), "--asr", str(tiny_en), "--out", str(out), "--exp", str(tmp_path / "exp"),
                        "--size", "tiny", "--stop-stage", "1"], cwd=root, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    train = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    valid = (out / "valid.jsonl").read_text().splitlines()
    assert len(train) + len(valid) == 3 and all(t["text"] for t in train)
    test = [json.loads(line) for line in (out / "test.jsonl").read_text().splitlines()]
    assert [t["speaker"] for t in test] == ["spk9"] and "cat" in test[0]["text"].lower()
    assert (out / "bpe.json").is_file() and "stage 1: BPE tokenizer" in r.stdout
    missing = subprocess.run(["bash", str(root / "recipes/untranscribed/run.sh"), "--size", "tiny"], cwd=tmp_path, env=env,
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "--audio" in missing.stderr
