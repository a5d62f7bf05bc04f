"""recipes/gpu/oneshot.sh rehearsed on the CPU (--dry-run: every step of the GPU run at tiny size), what it returns
checked against the limits of a lent machine, the bundle it returns installed by recipes/gpu/adopt.sh, and the
tracked tree kept small enough for a GPU run to be sent at all."""
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes" / "gpu"))

import check_out  # noqa: E402
import trim_wheel  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="the recipes are bash scripts")
STEPS = {"check", "corpus", "codec", "tokens", "codec-eval", "asr", "asr-export", "asr-eval", "valle-ar", "valle-nar",
         "valle-export", "valle-eval", "tortoise-ar", "clvp", "diffusion", "diffusion-ar", "tortoise-export",
         "tortoise-eval", "throughput", "bundle"}


def _env():
    return dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))


def _bash(script, *args, cwd=ROOT):
    return subprocess.run(["bash", str(ROOT / script), *map(str, args)], cwd=cwd, env=_env(), capture_output=True, text=True)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("oneshot")
    r = _bash("recipes/gpu/oneshot.sh", "--dry-run", "--work", base / "work", "--out", base / "out")
    return base / "work", base / "out", r


def test_the_dry_run_runs_every_step_and_returns_what_fits(dry_run):
    work, out, r = dry_run
    log = (out / "oneshot.log").read_text()
    assert r.returncode == 0, log[-4000:]
    assert check_out.problems(out) == []
    assert sorted(p.name for p in out.iterdir()) == ["bundle.tgz.00", "figures.json", "logs.tgz", "oneshot.log"]
    fig = json.loads((out / "figures.json").read_text())
    assert fig["size"] == "tiny" and fig["command"] == f"bash recipes/gpu/oneshot.sh --dry-run --work {work} --out {out}"
    # the CUDA smoke (here on the CPU, in bf16-mixed): every family trained, exported and ran inference
    assert fig["check"]["ok"] and fig["check"]["precision"] == "bf16-mixed"
    assert set(fig["check"]["families"]) == {"data", "codec", "tokens", "asr", "valle", "tortoise"}
    check = work / "check"  # every training stage, export, inference output and evaluation of the check
    for run in ("codec", "asr", "valle-ar", "valle-nar", "tortoise-ar", "tortoise-clvp", "tortoise-diffusion",
                "tortoise-diffusion-ar"):
        ck = torch.load(check / run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
        assert ck["global_step"] == (4 if run == "codec" else 2), run
    for wav in ("codec.wav", "valle.wav", "tortoise.wav"):
        assert (check / wav).stat().st_size > 1000
    for name in ("codec", "asr", "valle", "tortoise"):
        assert json.loads((check / f"{name}_eval.json").read_text()), name
    # each of the 8 training runs in bf16 autocast (Lightning says so when it sets the precision up)
    assert (work / "logs" / "check.log").read_text().count("Using bfloat16 Automatic Mixed Precision") >= 8
    assert set(fig["steps"]) == STEPS and all(s["rc"] == 0 for s in fig["steps"].values()), fig["steps"]
    assert fig["steps"]["asr"]["steps"] == 4 and fig["steps"]["asr"]["stopped_by"] == "max_steps"
    for name in STEPS:
        assert f"] {name}: ok in" in log
    assert set(fig["eval"]) == {"codec", "asr", "valle", "tortoise"}
    assert [r["system"] for r in fig["eval"]["valle"]["rows"]][:2] == ["ground truth", "codec resynthesis"]
    rows = fig["throughput"]["rows"]
    assert {(r["model"], r["dtype"]) for r in rows} == {(m, d) for m in ("codec", "asr") for d in ("float32", "bfloat16")}
    assert all(r["audio_s_per_s"] > 0 for r in rows)
    bundle = fig["bundle"]
    # the ASR trained here is measured but not bundled: the bundle's ASR is the default one, Whisper tiny.en
    assert {k: v["dtype"] for k, v in bundle.items()} == {"codec": "float32", "valle": "int8", "tortoise": "int8"}
    assert bundle["valle"]["shared"] == {"codec": "../codec"}
    with tarfile.open(out / "logs.tgz") as t:
        names = t.getnames()
    assert "logs/valle-ar.log" in names and "status/tortoise-eval" in names
    assert any(n.endswith("metrics.csv") or "lightning_logs" in n for n in names)


def test_the_dry_run_trained_every_stage_of_the_recipe(dry_run):
    """What the synthetic recipe's stages left in the run's folder (recipes/synth/run.sh, driven by the one-shot)."""
    from audiokit.asr.transcriber import Transcriber
    from audiokit.codec.codec import Codec
    from audiokit.text import BPETokenizer
    from audiokit.tokens import TokenStore

    work, out, r = dry_run
    assert r.returncode == 0
    corpus = work / "data" / "tiny"
    summary = json.loads((corpus / "corpus.json").read_text())
    assert 0.02 < sum(summary["hours"].values()) < 0.05 and len(summary["test_speakers"]) == 2
    tok = BPETokenizer.load(corpus / "bpe.json")
    assert tok.decode(tok.encode("A new sentence.")) == "A new sentence."
    exp = work / "exp" / "oneshot-tiny"

    def step(run):
        return torch.load(exp / run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)

    codec = Codec.load(exp / "codec-export")
    assert step("codec")["global_step"] == 4 and codec.info.name == "oneshot-tiny" and codec.sample_rate == 16000
    assert len(TokenStore(exp / "tokens", expected=codec.info)) == sum(summary["utterances"].values())
    rows = json.loads((exp / "codec_eval.json").read_text())["rows"]
    assert [r["n_q"] for r in rows] == [1, 2, 4] and rows[0]["utterances"] == summary["utterances"]["test"]
    assert step("asr")["global_step"] == 4 and Transcriber.load(exp / "asr-export").name == "oneshot-tiny-asr"
    assert json.loads((exp / "asr_eval.json").read_text())["utterances"] == summary["utterances"]["test"]
    for run in ("valle-ar", "valle-nar"):
        ck = step(run)
        assert ck["global_step"] == 4 and ck["valle"]["codec"]["fingerprint"] == codec.info.fingerprint
    for run in ("tortoise-ar", "tortoise-clvp", "tortoise-diffusion", "tortoise-diffusion-ar"):
        ck = step(run)
        assert ck["global_step"] == 4 and ck["tortoise"]["codec"]["fingerprint"] == codec.info.fingerprint
    rows = json.loads((exp / "tortoise_eval.json").read_text())["rows"]
    assert [r["system"] for r in rows][2:] == ["Tortoise (oneshot-tiny-tortoise, ultra_fast, CLVP best of N)",
                                               "Tortoise (oneshot-tiny-tortoise, ultra_fast, random candidate)"]
    assert all("wer_asr" in r for r in rows) and rows[2]["rtf"] > 0 and rows[0]["utterances"] == 1
    # the recipe's stage 0 keeps a corpus that is already there
    again = _bash("recipes/synth/run.sh", "--size", "tiny", "--out", work / "data", "--stage", "0", "--stop-stage", "0")
    assert again.returncode == 0 and "already made" in again.stdout


def test_adopt_installs_the_returned_bundle_and_its_figures(dry_run, tmp_path):
    import audiokit
    from audiokit.pretrained import check_files, read_card

    work, out, r = dry_run
    assert r.returncode == 0
    pre, results, figs = tmp_path / "pretrained", tmp_path / "RESULTS.md", tmp_path / "gpu.json"
    shutil.copytree(ROOT / "pretrained" / "voices", pre / "voices")
    results.write_text("# Results\n\nearlier text\n")
    refused = _bash("recipes/gpu/adopt.sh", out, "--pretrained", pre, "--results", results, "--figures", figs)
    assert refused.returncode == 1 and "dry run's tiny models" in refused.stderr and not (pre / "codec").exists()
    args = ["--pretrained", pre, "--results", results, "--figures", figs, "--force"]
    for _ in range(2):  # twice: the second run replaces the models and the RESULTS section, it adds nothing
        done = _bash("recipes/gpu/adopt.sh", out, *args)
        assert done.returncode == 0, done.stderr
    text = results.read_text()
    assert text.startswith("# Results\n\nearlier text\n") and text.count("<!-- oneshot:begin -->") == 1
    assert "bash recipes/gpu/oneshot.sh --dry-run" in text and "| ground truth |" in text and "| codec | float32 |" in text
    assert json.loads(figs.read_text()) == json.loads((out / "figures.json").read_text())
    assert sorted(p.name for p in pre.iterdir()) == ["codec", "tortoise", "valle", "voices"]
    for name in ("codec", "valle", "tortoise"):
        card = read_card(pre / name)
        check_files(pre / name, card, hashes=True)
        assert "recipes/gpu/oneshot.sh --budget-minutes 30 --hours 0.03 --dry-run --size tiny --max-steps 4" in card["notes"]
    assert (pre / "valle" / "codec.link").is_file() and not (pre / "valle" / "codec").exists()
    tts = audiokit.load(pre / "valle")
    assert tts._asr is None and tts.codec.info == audiokit.load(pre / "codec").info  # the default ASR, when needed
    # parts that do not add up are refused before anything changes
    cut = tmp_path / "cut"
    shutil.copytree(out, cut)
    part = cut / "bundle.tgz.00"
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    before = (pre / "codec" / "model.json").read_text()
    bad = _bash("recipes/gpu/adopt.sh", cut, *args)
    assert bad.returncode == 1 and "do not unpack" in bad.stderr and (pre / "codec" / "model.json").read_text() == before
    # installed TTS models on phone units (the real bundle) stay, and the codec they link to; the figures come in
    real, big = tmp_path / "real", tmp_path / "big"
    for name in ("codec", "valle", "tortoise"):
        shutil.copytree(ROOT / "pretrained" / name, real / name, symlinks=True)
    shutil.copytree(out, big)
    fig = json.loads((big / "figures.json").read_text())
    (big / "figures.json").write_text(json.dumps({**fig, "size": "oneshot"}))  # not a dry run's, as a GPU's would be
    kept = _bash("recipes/gpu/adopt.sh", big, "--pretrained", real, "--results", results, "--figures", figs)
    assert kept.returncode == 0, kept.stderr
    assert "keeping the installed valle tortoise and codec" in kept.stdout
    for part in ("codec/model.safetensors", "valle/ar.safetensors", "tortoise/ar.safetensors"):
        assert (real / part).read_bytes() == (ROOT / "pretrained" / part).read_bytes()
    assert type(audiokit.load(real / "tortoise")).__name__ == "UnitsTortoiseTTS"


def test_oneshot_options_are_checked():
    bad = _bash("recipes/gpu/oneshot.sh", "--size", "huge")
    assert bad.returncode == 2 and "--size must be" in bad.stderr
    assert _bash("recipes/gpu/oneshot.sh", "--frobnicate").returncode == 2
    helped = _bash("recipes/gpu/oneshot.sh", "--help")
    assert helped.returncode == 0 and "--budget-minutes" in helped.stdout
    bad = _bash("recipes/synth/run.sh", "--size", "huge")
    assert bad.returncode == 2 and "--size must be" in bad.stderr


def test_the_return_limits_are_checked(tmp_path):
    ok = tmp_path / "ok"
    (ok / "a" / "b").mkdir(parents=True)
    (ok / "a" / "b" / "deep.json").write_text("{}")
    (ok / "log.txt").write_bytes(b"x" * 1000)
    assert check_out.problems(ok) == []
    bad = tmp_path / "bad"
    (bad / "a" / "b" / "c").mkdir(parents=True)
    (bad / "a" / "b" / "c" / "too-deep").write_text("x")
    (bad / "odd name.txt").write_text("x")
    with open(bad / "big.bin", "wb") as f:
        f.truncate(16 * 2**20 + 1)
    for i in range(6):
        (bad / f"f{i}").write_text("x")
    (bad / "link").symlink_to(bad / "f0")
    found = "\n".join(check_out.problems(bad))
    assert "too-deep: more than 2 folders deep" in found and "odd name.txt: file name outside" in found
    assert "big.bin: 16777217 bytes, over 16777216" in found and "link: not a plain file" in found
    assert "10 files, over 8" in found
    many = tmp_path / "many"
    many.mkdir()
    for i in range(5):
        with open(many / f"p{i}", "wb") as f:
            f.truncate(15 * 2**20)
    assert check_out.problems(many) == [f"{5 * 15 * 2**20} bytes in all, over {64 * 2**20}"]


def _tracked_bytes() -> int:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    return sum((ROOT / f.decode()).stat().st_size for f in files if f and (ROOT / f.decode()).is_file())


@pytest.mark.skipif(not (ROOT / ".git").exists() or shutil.which("git") is None, reason="needs the git checkout")
def test_the_tracked_tree_leaves_room_for_a_gpu_run():
    """A device call carries the tracked tree and the wheels (.whl/), 64 MiB at most: the tree stays <= 60 MiB,
    and with the wheels recipes/gpu/wheels.txt lists, under 64 MiB."""
    tracked = _tracked_bytes()
    assert tracked <= 60 * 2**20, f"the tracked tree is {tracked / 2**20:.1f} MiB"
    declared = next(int(line.split()[2]) for line in (ROOT / "recipes/gpu/wheels.txt").read_text().splitlines()
                    if line.startswith("# bytes:"))
    wheels = sum(p.stat().st_size for p in (ROOT / ".whl").glob("*.whl")) if (ROOT / ".whl").is_dir() else declared
    assert tracked + max(declared, wheels) <= 64 * 2**20
    assert wheels <= declared * 1.05, "recipes/gpu/wheels.txt's byte count is out of date"


def test_trim_wheel_drops_files_and_rewrites_record(tmp_path):
    whl = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("pkg/__init__.py", "x = 1\n")
        z.writestr("pkg/data/en_dict", b"E" * 100)
        z.writestr("pkg/data/fr_dict", b"F" * 1000)
        z.writestr("pkg/data/ru_dict", b"R" * 1000)
        z.writestr("pkg-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n")
        z.writestr("pkg-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr("pkg-1.0.dist-info/RECORD", "stale\n")
    n, size = trim_wheel.trim(str(whl), ["pkg/data/*_dict"], ["*/en_dict"])
    assert (n, size) == (2, 2000)
    with zipfile.ZipFile(whl) as z:
        assert sorted(z.namelist()) == ["pkg-1.0.dist-info/METADATA", "pkg-1.0.dist-info/RECORD", "pkg-1.0.dist-info/WHEEL",
                                        "pkg/__init__.py", "pkg/data/en_dict"]
        record = z.read("pkg-1.0.dist-info/RECORD").decode().splitlines()
    assert len(record) == 5 and record[-1] == "pkg-1.0.dist-info/RECORD,,"
    assert record[1].startswith("pkg/data/en_dict,sha256=") and record[1].endswith(",100")
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", str(target), str(whl)],
                   check=True, capture_output=True)
    assert (target / "pkg" / "data" / "en_dict").read_bytes() == b"E" * 100 and not (target / "pkg" / "data" / "fr_dict").exists()


def test_a_family_that_fails_does_not_stop_the_others(tmp_path, monkeypatch):
    """audiokit check: the codec's failure is named with its reason, the tokens fall back to the bundled codec, and
    VALL-E still trains, exports and speaks; the exit status says something failed."""
    from audiokit import devcheck

    monkeypatch.delenv("AUDIOKIT_DEBUG", raising=False)

    def broken(self):
        raise RuntimeError("Expected all tensors to be on the same device, but found at least two devices")

    monkeypatch.setattr(devcheck.Check, "codec_", broken)
    results = devcheck.Check(tmp_path, "cpu", "bf16-mixed").run(["data", "codec", "tokens", "valle"], log=open(os.devnull, "w"))
    assert not results["codec"]["ok"] and "same device" in results["codec"]["error"]
    assert results["tokens"]["ok"] and "bundled codec" in results["tokens"]["what"]
    assert results["valle"]["ok"] and (tmp_path / "valle.wav").is_file()
    rc = devcheck.main("cpu", "bf16-mixed", str(tmp_path / "again"), str(tmp_path / "c.json"), ["data", "codec"])
    record = json.loads((tmp_path / "c.json").read_text())
    assert rc == 1 and not record["ok"] and record["families"]["data"]["ok"]
    assert "AUDIOKIT_DEBUG" not in os.environ  # later commands in this process still answer in one line
