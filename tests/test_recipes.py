"""The LibriTTS recipe. The synthetic recipe's stages run end to end in the one-shot GPU recipe's dry run
(tests/test_gpu_oneshot.py), which drives recipes/synth/run.sh stage by stage."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

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
