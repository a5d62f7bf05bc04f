"""The LibriTTS recipe, and the synthetic recipe's bundle stage. The synthetic recipe's stages run end to end in
the one-shot GPU recipe's dry run (tests/test_gpu_oneshot.py), which drives recipes/synth/run.sh stage by stage."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from audiokit.text import BPETokenizer

ROOT = Path(__file__).resolve().parents[1]


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


def test_digits_recipe_makes_digit_strings_and_tokenizes_them_with_the_given_codec(tmp_path):
    """recipes/digits/run.sh: stage 0 speaks digit strings (flite rms and festival ked held out) and as many again
    in 48 more espeak voices for the ASR; the shared stages skip the codec's training and tokenize with the given
    (bundled) codec."""
    from audiokit.codec.codec import Codec
    from audiokit.data import read_manifest
    from audiokit.pretrained import PRETRAINED_DIR
    from audiokit.text.normalize import is_digit_string, normalize_for_wer
    from audiokit.tokens import TokenStore

    from conftest import system_voices_or_skip

    system_voices_or_skip()
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
               AUDIOKIT_QUIET="1")
    out, exp = tmp_path / "digits", tmp_path / "exp"  # 100 strings: 3 a voice, so stage 28 finds each a prompt
    r = subprocess.run(["bash", str(ROOT / "recipes/digits/run.sh"), "--out", str(out), "--utterances", "100",
                        "--codec", str(PRETRAINED_DIR / "codec"), "--exp", str(exp), "--stop-stage", "4"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "stage 0: spoken digit strings" in r.stdout and "stages 2-3: the codec is given" in r.stdout
    assert "stage 2: codec training" not in r.stdout and "stage 4: tokenize" in r.stdout
    test = read_manifest(out / "test.jsonl")
    assert {"flite-rms", "festival-ked_diphone"} <= {e["speaker"] for e in test}
    rows = read_manifest(out / "train.jsonl") + test
    assert all(is_digit_string(normalize_for_wer(e["text"])) for e in rows)
    assert not {e["text"] for e in test} & {e["text"] for e in read_manifest(out / "train.jsonl")}
    # the ASR's extra voices: espeak only, none of them a held-out voice's variant, none of the test strings
    import json

    voices = json.loads((tmp_path / "digits-voices" / "speakers.json").read_text())
    held = {s["voice"].split("+")[-1] for s in json.loads((out / "speakers.json").read_text()) if s["split"] == "test"}
    assert len(voices) == 48 and {v["engine"] for v in voices} == {"espeak"}
    assert not {v["voice"].split("+")[-1] for v in voices} & held
    extra = read_manifest(tmp_path / "digits-voices" / "train.jsonl")
    assert extra and not {e["text"] for e in extra} & {e["text"] for e in test}
    store = TokenStore(exp / "synth-digits" / "tokens")
    assert store.codec.fingerprint == Codec.load(PRETRAINED_DIR / "codec").info.fingerprint and len(store) == len(rows) + len(
        read_manifest(out / "valid.jsonl"))

    # stages 20-28: phone units, VALL-E and Tortoise on them (two steps each, from a random tiny ASR export where
    # stage 7 would put one), their evaluations, and the held-out voices the judge reads
    from test_asr_transcribe import SENTENCES, _transcriber

    from audiokit.asr.tokenizer import WhisperTokenizer
    from audiokit.text import BPETokenizer
    from audiokit.tts import TTS

    units = exp / "synth-digits"
    from audiokit.pretrained import write_card

    _transcriber(WhisperTokenizer.from_bpe(BPETokenizer.train(SENTENCES, vocab_size=300))).export(units / "asr-export")
    write_card(units / "asr-export")  # as stage 7's export has: stage 8 records its figures there
    # a run across stage 8 into 9-12 evaluates the ASR and stops there: the codec-token TTS stages are opt-in
    r = subprocess.run(["bash", str(ROOT / "recipes/digits/run.sh"), "--out", str(out), "--codec", str(PRETRAINED_DIR / "codec"),
                        "--exp", str(exp), "--stage", "8", "--stop-stage", "12"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "stage 8: ASR evaluation" in r.stdout and "stages 9-18" in r.stdout and "stage 9:" not in r.stdout
    assert json.loads((units / "asr_eval.json").read_text())["utterances"] == len(test)
    r = subprocess.run(["bash", str(ROOT / "recipes/digits/run.sh"), "--out", str(out), "--codec", str(PRETRAINED_DIR / "codec"),
                        "--exp", str(exp), "--stage", "20", "--max-steps", "2", "--tts-items", "2", "--judged-items", "3",
                        "--judge", str(units / "asr-export")], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "stage 4: tokenize" not in r.stdout and "stage 19" not in r.stdout  # the bundle is not this recipe's
    assert "stage 24: export VALL-E on phones" in r.stdout and "stage 27: export Tortoise on phones" in r.stdout
    assert len(TokenStore(units / "phunits/runs")) == len(store)
    phones = TTS.load(units / "valle-phones-export")
    assert type(phones).__name__ == "UnitsValleTTS" and phones.alignment == "monotonic"
    assert type(phones.units).__name__ == "PhoneTokenizer" and phones.ar.dims.codebook_size == phones.units.k
    card = json.loads((units / "valle-phones-export/model.json").read_text())
    assert {k: v["steps"] for k, v in card["training"].items()} == {"ar": 2, "nar": 2, "decoder": 2} and "tts" in card["eval"]
    report = json.loads((units / "tortoise_phones_eval.json").read_text())
    assert [r["utterances"] for r in report["rows"]] == [2, 2, 2, 2]  # truth, resynthesis, CLVP's pick, a random one
    card = json.loads((units / "tortoise-phones-export/model.json").read_text())
    assert {k: v["steps"] for k, v in card["training"].items()} == {"ar": 2, "clvp": 2, "nar": 2, "decoder": 2}
    judged = read_manifest(out / "test-judged.jsonl")  # stage 28: flite rms and festival ked only
    assert judged and {e["speaker"] for e in judged} == {"flite-rms", "festival-ked_diphone"}
    for family, n in (("valle", 3), ("tortoise", 4)):
        report = json.loads((units / f"{family}_phones_judged.json").read_text())
        assert [r["utterances"] for r in report["rows"]] == [3] * n  # --judged-items, not --tts-items
        assert {it["speaker"] for it in report["items"]} <= {"flite-rms", "festival-ked_diphone"}
    ranked = json.loads((units / "clvp_rank.json").read_text())["rows"]  # CLVP's pick between a random and the best
    assert [(r["temperature"], r["items"]) for r in ranked] == [(0.8, 3), (1.5, 3), (2.5, 3)]
    assert all(r["phone_error"]["best"] <= min(r["phone_error"]["clvp"], r["phone_error"]["random"]) for r in ranked)

    # recipes/synth/run.sh's bundle stage on the phone models: Tortoise links to VALL-E's units, lengths and decoder
    bundle = tmp_path / "bundle"
    r = subprocess.run(["bash", str(ROOT / "recipes/synth/run.sh"), "--size", "digits", "--corpus", str(out),
                        "--codec", str(PRETRAINED_DIR / "codec"), "--exp", str(exp), "--stage", "28", "--stop-stage", "28",
                        "--pretrained", str(bundle)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    shared = json.loads((bundle / "tortoise/model.json").read_text())["shared"]
    assert shared == {"codec": "../codec", "units": "../valle/units", "nar.safetensors": "../valle/nar.safetensors",
                      "decoder.safetensors": "../valle/decoder.safetensors"}
    said = TTS.load(bundle / "tortoise").synthesize("Four two.", voice=str(PRETRAINED_DIR / "voices/us-male.wav"),
                                                    candidates=2, seed=0)
    from audiokit.codec.phones import spoken

    assert spoken(said.codes[0]) == torch.unique_consecutive(phones.units.labels("Four two.")).tolist()  # it spells the text


def test_bundle_stage_replaces_only_the_families_that_were_exported(tmp_path):
    """Stage 19 with one family exported (here Tortoise, as a fresh export writes it: its own float32 copy of the
    bundle's float16 codec) replaces that family, keeps the other's folder as it was, and the export's codec copy
    becomes a link to the bundle's codec (the same values in another dtype)."""
    import filecmp

    from safetensors.torch import load_file, save_file

    from audiokit.pretrained import PRETRAINED_DIR, read_card

    bundle, exp = tmp_path / "pretrained", tmp_path / "exp"
    for name in ("codec", "valle", "tortoise"):
        shutil.copytree(PRETRAINED_DIR / name, bundle / name)
    export = exp / "synth-cpu" / "tortoise-export"
    shutil.copytree(PRETRAINED_DIR / "tortoise", export)
    (export / "codec.link").unlink()
    shutil.copytree(PRETRAINED_DIR / "codec", export / "codec")
    weights = export / "codec" / "model.safetensors"
    save_file({k: v.float() for k, v in load_file(str(weights)).items()}, str(weights))
    (bundle / "tortoise" / "clvp.safetensors").unlink()  # the old folder, told apart from the export
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    r = subprocess.run(["bash", str(ROOT / "recipes/synth/run.sh"), "--size", "cpu", "--exp", str(exp), "--pretrained",
                        str(bundle), "--codec", str(bundle / "codec"), "--stage", "19", "--stop-stage", "19"],
                       cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "valle-export is not exported" in r.stdout
    assert filecmp.cmp(bundle / "valle" / "ar.safetensors", PRETRAINED_DIR / "valle" / "ar.safetensors", shallow=False)
    assert (bundle / "tortoise" / "clvp.safetensors").is_file()  # the export replaced it
    assert (bundle / "tortoise" / "codec.link").read_text().strip() == "../codec"
    assert not (bundle / "tortoise" / "codec").exists() and read_card(bundle / "tortoise")["shared"] == {
        "codec": "../codec", "units": "../valle/units", "nar.safetensors": "../valle/nar.safetensors",
        "decoder.safetensors": "../valle/decoder.safetensors"}  # on VALL-E's phone units, lengths NAR and decoder
