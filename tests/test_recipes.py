import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import torch

from audiokit.codec.codec import Codec
from audiokit.text import BPETokenizer
from audiokit.tokens import TokenStore

ROOT = Path(__file__).resolve().parents[1]


def _run(*args, cwd):
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.run(["bash", str(ROOT / "recipes/synth/run.sh"), *args], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("bash") is None, reason="the recipes are bash scripts")
def test_synth_recipe_tiny_stages(tmp_path):
    out = tmp_path / "data"
    r = _run("--size", "tiny", "--out", str(out), "--exp", str(tmp_path / "exp"), "--max-steps", "8", "--hours", "0.08", cwd=ROOT)
    assert r.returncode == 0, r.stderr
    corpus = out / "tiny"
    summary = json.loads((corpus / "corpus.json").read_text())
    assert 0.06 < sum(summary["hours"].values()) < 0.1 and len(summary["test_speakers"]) == 2
    tok = BPETokenizer.load(corpus / "bpe.json")
    assert tok.decode(tok.encode("A new sentence.")) == "A new sentence."
    exp = tmp_path / "exp" / "synth-tiny"
    assert torch.load(exp / "codec/checkpoints/last.ckpt", map_location="cpu", weights_only=False)["global_step"] == 8
    codec = Codec.load(exp / "codec-export")
    assert codec.info.name == "synth-tiny" and codec.sample_rate == 16000
    store = TokenStore(exp / "tokens", expected=codec.info)
    assert len(store) == sum(summary["utterances"].values())
    rows = json.loads((exp / "codec_eval.json").read_text())["rows"]
    assert [r["n_q"] for r in rows] == [1, 2, 4] and rows[0]["utterances"] == summary["utterances"]["test"]
    from audiokit.asr.transcriber import Transcriber

    assert torch.load(exp / "asr/checkpoints/last.ckpt", map_location="cpu", weights_only=False)["global_step"] == 8
    assert Transcriber.load(exp / "asr-export").name == "synth-tiny-asr"
    asr = json.loads((exp / "asr_eval.json").read_text())
    assert asr["utterances"] == summary["utterances"]["test"] and 0 <= asr["cer"]
    for part in ("ar", "nar"):
        ck = torch.load(exp / f"valle-{part}/checkpoints/last.ckpt", map_location="cpu", weights_only=False)
        assert ck["global_step"] == 8 and ck["valle"]["codec"]["fingerprint"] == codec.info.fingerprint
    import audiokit

    tts = audiokit.TTS.load(exp / "valle-export")
    assert tts.name == "synth-tiny-valle" and tts.asr is not None and tts.codec.info == codec.info
    rows = json.loads((exp / "tts_eval.json").read_text())["rows"]
    assert [r["system"] for r in rows][:2] == ["ground truth", "codec resynthesis"] and rows[0]["utterances"] > 0
    assert all("wer_asr" in r for r in rows)
    for part in ("ar", "clvp", "diffusion", "diffusion-ar"):
        ck = torch.load(exp / f"tortoise-{part}/checkpoints/last.ckpt", map_location="cpu", weights_only=False)
        assert ck["global_step"] == 8 and ck["tortoise"]["codec"]["fingerprint"] == codec.info.fingerprint
    tortoise = audiokit.TTS.load(exp / "tortoise-export")
    assert tortoise.family == "tortoise" and tortoise.diffusion_meta["conditioning"] == "ar-latents"
    rows = json.loads((exp / "tortoise_eval.json").read_text())["rows"]
    assert [r["system"] for r in rows][2:] == ["Tortoise (synth-tiny-tortoise, fast, CLVP best of N)",
                                               "Tortoise (synth-tiny-tortoise, fast, random candidate)"]
    assert all("wer_asr" in r for r in rows) and rows[2]["rtf"] > 0
    # stage 19: the four models as a bundle, each with a verified card holding its eval table
    bundle = exp / "pretrained"
    from audiokit.pretrained import check_files, read_card

    for name, kind in (("codec", "codec"), ("asr", "asr"), ("valle", "tts"), ("tortoise", "tts")):
        card = read_card(bundle / name)
        check_files(bundle / name, card, hashes=True)
        assert card["family"] == name and kind in card["eval"] and card["training"]
        assert "recipes/synth/run.sh --size tiny --max-steps 8" in card["notes"]
        assert f"audiokit.load('{(bundle / name).as_posix()}')" in (bundle / name / "README.md").read_text()
    assert read_card(bundle / "valle")["dtype"] == "float16" and read_card(bundle / "codec")["dtype"] == "float32"
    assert audiokit.load(bundle / "tortoise").family == "tortoise"
    again = _run("--size", "tiny", "--out", str(out), "--stage", "0", "--stop-stage", "0", cwd=tmp_path)
    assert again.returncode == 0 and "already made" in again.stdout
    bad = _run("--size", "huge", cwd=tmp_path)
    assert bad.returncode == 2 and "--size must be" in bad.stderr


def test_libritts_recipe_prepares_manifests_and_runs_the_shared_stages(tmp_path, synth_corpus):
    """A LibriTTS-layout tree (SUBSET/SPEAKER/CHAPTER/*.wav + .normalized.txt) made from the synthetic corpus:
    stage 0 writes train/valid/test manifests by subset, stage 1 (the synthetic recipe's BPE) runs on them."""
    from audiokit.data import read_manifest

    corpus, _, _ = synth_corpus
    rows = read_manifest(corpus / "train.jsonl")[:9]
    root = tmp_path / "LibriTTS"
    for i, row in enumerate(rows):
        subset = ["train-clean-100", "dev-clean", "test-clean"][i % 3]
        d = root / subset / f"{100 + i % 3}" / "7"
        d.mkdir(parents=True, exist_ok=True)
        uid = f"{100 + i % 3}_7_{i:06d}_000000"
        shutil.copy(row["audio"], d / f"{uid}.wav")
        (d / f"{uid}.normalized.txt").write_text(row["text"])
    out = tmp_path / "prepared"
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    r = subprocess.run(["bash", str(ROOT / "recipes/libritts/run.sh"), "--root", str(root), "--out", str(out), "--exp",
                        str(tmp_path / "exp"), "--size", "tiny", "--stop-stage", "1"], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "stage 0: LibriTTS manifests" in r.stdout and "stage 1: BPE tokenizer" in r.stdout
    assert "stage 2" not in r.stdout
    for split, n in (("train", 3), ("valid", 3), ("test", 3)):
        assert len(read_manifest(out / f"{split}.jsonl")) == n
    assert {e["speaker"] for e in read_manifest(out / "test.jsonl")} == {"102"}
    assert BPETokenizer.load(out / "bpe.json").encode("hello")
    missing = subprocess.run(["bash", str(ROOT / "recipes/libritts/run.sh"), "--size", "tiny"], cwd=tmp_path, env=env,
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "--root" in missing.stderr
