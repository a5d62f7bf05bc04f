import json
import os
import subprocess
import sys

import pytest
import soundfile as sf

from audiokit.cli import PENDING, build_parser, main

from conftest import sine

SUBCOMMANDS = ["data", "train", "encode", "decode", "tokenize", "eval", "convert", "export", "transcribe", "tts", "demo", "models",
               "check", *PENDING]


@pytest.mark.parametrize("cmd", SUBCOMMANDS + ["data synth", "data manifest", "data validate", "data bpe", "data phonemize", "data sentences",
                                             "data transcribe"])
def test_every_subcommand_has_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([*cmd.split(), "--help"])
    assert e.value.code == 0
    assert "usage: audiokit" in capsys.readouterr().out


def test_pending_commands_say_so_plainly(capsys, monkeypatch):
    import audiokit.cli as cli

    monkeypatch.setitem(cli.PENDING, "later", ("do a later thing", "a later model family"))
    assert main(["later", "some", "args"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("audiokit: error: 'audiokit later' is not available yet: it needs a later model family")
    assert "Traceback" not in err


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "audiokit.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("audiokit ")


def test_bad_manifest_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "audio": "a.wav", "duration": 1}\n{"id": "b"}\n')
    assert main(["data", "validate", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("bad.jsonl:2: missing required field 'audio'") and "\n" not in err


def test_data_manifest_validate_and_bpe(tmp_path, capsys):
    root = tmp_path / "LJ"
    os.makedirs(root / "wavs")
    lines = []
    for i in range(3):
        sf.write(str(root / "wavs" / f"LJ001-000{i}.wav"), sine(300, 0.3, 22050), 22050)
        lines.append(f"LJ001-000{i}|the cat number {i}|the cat number {i}")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "lj.jsonl"
    assert main(["data", "manifest", "ljspeech", str(root), "--out", str(out)]) == 0
    assert "3 utterances" in capsys.readouterr().out
    assert main(["data", "validate", str(out), "--check-audio"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["utterances"] == 3 and stats["speakers"] == 1
    assert main(["data", "bpe", "--manifest", str(out), "--vocab-size", "270", "--out", str(tmp_path / "bpe.json")]) == 0
    assert (tmp_path / "bpe.json").exists()
    assert main(["data", "manifest", "ljspeech", str(tmp_path / "nothing"), "--out", str(out)]) == 2
    assert "corpus folder not found" in capsys.readouterr().err


def test_data_phonemize(capsys):
    assert main(["data", "phonemize", "Hello, world!"]) == 0
    phonemes, ids = capsys.readouterr().out.splitlines()
    assert phonemes == "həlˈoʊ, wˈɜːld!" and len(ids.split()) == len(phonemes)
    assert main(["data", "phonemize", "hi", "--language", "klingon"]) == 2


def test_data_synth_with_a_relative_out_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["data", "synth", "--out", "rel/c", "--utterances", "3", "--speakers", "2", "--test-speakers", "1",
                 "--engines", "espeak", "--workers", "1"]) == 0
    from audiokit.data import read_manifest

    monkeypatch.chdir("/")
    entries = [e for s in ("train", "valid", "test") for e in read_manifest(tmp_path / "rel/c" / f"{s}.jsonl")]
    assert len(entries) == 3 and all(os.path.exists(e["audio"]) for e in entries)
    raw = json.loads((tmp_path / "rel/c/train.jsonl").read_text().splitlines()[0])
    assert raw["audio"].startswith("wavs/")  # stored relative to the manifest: the folder can move


def test_data_synth_command(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["data", "synth", "--out", str(out), "--utterances", "6", "--speakers", "3", "--test-speakers", "1",
                 "--engines", "espeak", "--sample-rate", "16000", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "6 utterances" in printed and "train.jsonl" in printed
    assert sorted(p.name for p in out.iterdir()) == ["corpus.json", "speakers.json", "test.jsonl", "train.jsonl", "valid.jsonl", "wavs"]
    assert main(["data", "synth", "--out", str(out), "--utterances", "2"]) == 2
    assert "already there" in capsys.readouterr().err


def test_parser_requires_a_command():
    with pytest.raises(SystemExit):
        build_parser().parse_args([])


def test_train_refuses_unlanded_and_unknown_families(capsys, monkeypatch):
    import audiokit.train

    monkeypatch.setitem(audiokit.train.PLANNED, "later-ar", "a later model family")
    assert main(["train", "later-ar", "--config", "x.yaml"]) == 2
    assert "not available yet" in capsys.readouterr().err
    assert main(["train", "nonsense"]) == 2
    assert "unknown model family" in capsys.readouterr().err


def test_export_names_come_from_the_run_folder_and_a_missing_file_says_what_export_takes(tmp_path, capsys):
    from audiokit.cli import _name_from_run

    assert _name_from_run("runs/codec-speech16/checkpoints/last.ckpt") == "codec-speech16"
    assert _name_from_run("exp/asr/ckpt/epoch=3-step=40.ckpt") == "asr"
    assert _name_from_run("exp/my-asr-v2.ckpt") == "my-asr-v2"
    assert main(["export", str(tmp_path / "nothing.ckpt"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such checkpoint" in err[0] and ".ckpt" in err[0] and "codec file" not in err[0]
    assert not (tmp_path / "out").exists()


def test_a_lightning_message_is_printed_once():
    """In a fresh process (as the CLI runs; pytest's own log handlers would hide the duplicate): a Lightning
    log line comes out once, not once from Lightning's handler and again through the root logger's."""
    code = ("import logging\nfrom audiokit.cli import main\nmain(['models'])\nimport lightning.pytorch\n"
            "logging.getLogger('lightning.pytorch.utilities.rank_zero').info('Trainer.fit stopped: once')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (out.stdout + out.stderr).count("Trainer.fit stopped: once") == 1, out.stderr


def test_an_error_exit_imports_no_model_family_it_did_not_use(tmp_path):
    """Building the list of user errors imports nothing: a failed decode loads the codec side only (the error
    exit used to import every model family, ~3x a success's time)."""
    code = ("import sys\nfrom audiokit.cli import main\n"
            f"rc = main(['decode', {str(tmp_path / 'missing.akc')!r}, {str(tmp_path / 'o.wav')!r}])\n"
            "print(rc, sorted(m for m in ('audiokit.valle', 'audiokit.tortoise', 'audiokit.asr.transcriber') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "2 []", (out.stdout, out.stderr)
    assert "missing.akc" in out.stderr and len(out.stderr.strip().splitlines()) == 1
