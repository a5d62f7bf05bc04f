"""Long commands show where they are (audiokit/progress.py): lines on standard error when it is not a terminal,
a bar when it is, nothing with --quiet; standard output keeps only the results."""
import io
import os
import subprocess
import sys

import pytest

from audiokit.progress import Progress, set_quiet


def test_lines_when_not_a_terminal_with_rate_eta_and_a_last_line():
    out = io.StringIO()
    with Progress(4, "job", unit="files", every_seconds=0, stream=out) as p:
        for _ in range(4):
            p.update(1, seconds=30.0, note="WER 5 %")
    lines = out.getvalue().strip().splitlines()
    assert lines[0].startswith("job: 1/4 files (25 %), ") and "files/s" in lines[0] and "audio-s/s" in lines[0]
    assert "ETA" in lines[0] and "WER 5 %" in lines[0]
    assert lines[-1].startswith("job: 4/4 files (100 %)") and "done in" in lines[-1]


def test_short_work_and_quiet_print_nothing():
    out = io.StringIO()
    with Progress(4, "job", every_seconds=60, stream=out) as p:  # finishes before the first interval
        p.update(4)
    assert out.getvalue() == ""
    set_quiet(True)
    try:
        with Progress(4, "job", every_seconds=0, stream=out) as p:
            p.update(4)
    finally:
        set_quiet(False)
    assert out.getvalue() == ""


def test_a_bar_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    with Progress(10, "job", unit="files", stream=out) as p:
        p.update(10)
    assert "job" in out.getvalue() and "10/10" in out.getvalue() and "files" in out.getvalue()


def _matplotlib():
    """Reports draw with the demo extra's matplotlib: skipped where it is missing, a failure in CI (which installs it)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("matplotlib is not installed (pip install -e '.[demo]')")


def _run(args, env_extra=None):
    env = {**os.environ, "AUDIOKIT_PROGRESS_SECONDS": "0", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "audiokit.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("progress") / "c"
    r = _run(["data", "synth", "--utterances", "8", "--engines", "espeak", "--speakers", "3", "--test-speakers", "1",
              "--sample-rate", "16000", "--out", str(out)])
    return out, r


def test_data_synth_and_eval_codec_show_progress_lines_and_quiet_removes_them(small_corpus, tmp_path):
    out, r = small_corpus
    assert r.returncode == 0, r.stderr
    assert "data synth: " in r.stderr and "utterances/s" in r.stderr and "audio-s/s" in r.stderr
    assert "data synth:" not in r.stdout and "utterances" in r.stdout  # results on stdout, progress on stderr
    r = _run(["--quiet", "data", "synth", "--utterances", "8", "--engines", "espeak", "--speakers", "3",
              "--test-speakers", "1", "--sample-rate", "16000", "--out", str(tmp_path / "q")])
    assert r.returncode == 0 and "data synth:" not in r.stderr, r.stderr
    few = ["--max-items", "2", "--bandwidth", "1.5", "6"]  # two items at two levels show the lines as well as all
    r = _run(["eval", "codec", "--manifest", str(out / "test.jsonl"), "--codec", "codec", *few])
    assert r.returncode == 0, r.stderr
    assert "eval codec: " in r.stderr and "kbps" in r.stderr and "eval codec:" not in r.stdout
    r = _run(["-q", "eval", "codec", "--manifest", str(out / "test.jsonl"), "--codec", "codec", *few])
    assert r.returncode == 0 and "eval codec:" not in r.stderr


def test_eval_codec_report_holds_every_figure_and_its_plot(small_corpus, tmp_path):
    """--report: an HTML page whose tables name every figure of the --json record, and the plots beside it."""
    import json

    _matplotlib()
    out, _ = small_corpus
    r = _run(["-q", "eval", "codec", "--manifest", str(out / "test.jsonl"), "--codec", "codec", "--max-items", "2",
              "--bandwidth", "1.5", "3", "6", "--json", str(tmp_path / "e.json"), "--report", str(tmp_path / "rep")])
    assert r.returncode == 0, r.stderr
    page = (tmp_path / "rep" / "index.html").read_text()
    record = json.loads((tmp_path / "e.json").read_text())
    assert (tmp_path / "rep" / "quality_vs_bitrate.png").stat().st_size > 5000
    assert '<img src="quality_vs_bitrate.png"' in page
    for row in record["rows"]:
        for key, value in row.items():
            assert f"<th>{key}</th>" in page
            if isinstance(value, float):
                assert f"{value:.4g}" in page


def test_asr_and_tts_reports_draw_per_speaker_figures(tmp_path):
    _matplotlib()
    from audiokit.report import write_report

    asr = {"model": "m", "manifest": "t.jsonl", "wer": 0.25, "rows": [
        {"id": "a", "speaker": "flite-slt", "ref": "one two", "hyp": "one two"},
        {"id": "b", "speaker": "espeak-en-f1", "ref": "three four", "hyp": "three for"}]}
    page = write_report("asr", asr, tmp_path / "asr").read_text()
    for png in ("wer_per_speaker.png", "wer_per_engine.png", "wer_histogram.png"):
        assert (tmp_path / "asr" / png).exists() and png in page
    tts = {"model": "v", "rows": [{"system": "ground truth", "wer_asr": 0.1, "similarity": 0.9, "similarity_other_speaker": 0.6},
                                  {"system": "VALL-E", "wer_asr": 0.5, "similarity": 0.7, "similarity_other_speaker": 0.6, "rtf": 2.0,
                                   "rtf_stages": {"prompt": 0.1, "ar": 1.5, "nar": 0.3, "codec": 0.1}}],
           "items": [{"id": "a", "speaker": "s1", "text": "one two", "model_asr": "one", "real_asr": "one two",
                      "model_similarity": 0.7, "real_similarity": 0.9},
                     {"id": "b", "speaker": "s2", "text": "three", "model_asr": "three", "real_asr": "three",
                      "model_similarity": 0.6, "real_similarity": 0.8}]}
    page = write_report("tts", tts, tmp_path / "tts").read_text()
    for png in ("wer_per_system.png", "similarity.png", "rtf_per_stage.png", "wer_per_speaker.png", "similarity_per_speaker.png"):
        assert (tmp_path / "tts" / png).exists() and png in page
    assert "<th>rtf</th>" in page and "<th>rtf_stages</th>" in page and "VALL-E" in page


def test_the_card_links_the_report(tmp_path, small_corpus):
    """--card with --report: the model card names the report page."""
    _matplotlib()
    import shutil

    out, _ = small_corpus
    from audiokit.pretrained import PRETRAINED_DIR

    shutil.copytree(PRETRAINED_DIR / "codec", tmp_path / "codec")
    r = _run(["-q", "eval", "codec", "--manifest", str(out / "test.jsonl"), "--codec", str(tmp_path / "codec"),
              "--max-items", "2", "--bandwidth", "6", "--card", "--report", str(tmp_path / "rep")])
    assert r.returncode == 0, r.stderr
    readme = (tmp_path / "codec" / "README.md").read_text()
    assert f"codec report with plots: [{tmp_path / 'rep' / 'index.html'}]" in readme


def test_eval_codec_opus_puts_opus_beside_the_codec_in_json_table_and_report(small_corpus, tmp_path):
    """--opus: Opus on the same utterances at each level's bitrate, in the record, the printed table and the page;
    without opus-tools, one line saying so."""
    import json
    import shutil

    _matplotlib()
    out, _ = small_corpus
    args = ["-q", "eval", "codec", "--manifest", str(out / "test.jsonl"), "--codec", "codec", "--max-items", "2",
            "--bandwidth", "1.5", "6", "--opus", "--json", str(tmp_path / "e.json"), "--report", str(tmp_path / "rep")]
    r = _run(args, {"PATH": str(tmp_path)})  # no opusenc on this PATH
    assert r.returncode != 0 and "opus-tools" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "e.json").exists() and not (tmp_path / "rep").exists()
    if shutil.which("opusenc") is None:
        if os.environ.get("CI"):
            pytest.fail("CI installs opus-tools (.ci/run), but opusenc is missing")
        pytest.skip("opus-tools not installed: apt install opus-tools")
    r = _run(args)
    assert r.returncode == 0, r.stderr
    record = json.loads((tmp_path / "e.json").read_text())
    assert [o["kbps"] for o in record["opus"]] == [c["kbps"] for c in record["rows"]]
    for o in record["opus"]:
        assert o["system"] == "Opus" and o["utterances"] == 2 and 0 <= o["stoi"] <= 1 and o["kbps_spent"] > 0
    assert record["opus"][-1]["stoi"] > 0.3  # at the top level Opus passes speech (below ~1 kbps it writes silence)
    assert "| Opus |" in r.stdout
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "<h2>opus</h2>" in page and "<th>kbps_spent</th>" in page


def test_export_shows_its_steps_and_quiet_removes_them(tmp_path):
    from audiokit.pretrained import PRETRAINED_DIR

    src = str(PRETRAINED_DIR / "codec" / "model.safetensors")
    r = _run(["export", src, str(tmp_path / "a")])
    assert r.returncode == 0, r.stderr
    assert "export: 1/3 steps" in r.stderr and "export: 3/3 steps" in r.stderr and "card written" in r.stderr
    assert "export:" not in r.stdout and (tmp_path / "a" / "model.json").exists()
    r = _run(["--quiet", "export", src, str(tmp_path / "b")])
    assert r.returncode == 0 and "export:" not in r.stderr, r.stderr


def test_tts_of_several_sentences_shows_its_progress(monkeypatch, capsys):
    """Long text: Tortoise counts sentences, VALL-E its batches of sentences (lines on standard error); one
    sentence shows nothing."""
    import audiokit
    from audiokit.pretrained import PRETRAINED_DIR

    monkeypatch.setenv("AUDIOKIT_PROGRESS_SECONDS", "0")
    voice = str(PRETRAINED_DIR / "voices" / "us-male.wav")
    tortoise = audiokit.load("tortoise")
    tortoise.synthesize("One two. Three four.", voice, preset="ultra_fast", seed=0)
    err = capsys.readouterr().err
    assert "Tortoise: 1/2 sentences" in err and "Tortoise: 2/2 sentences" in err
    tortoise.synthesize("One two.", voice, preset="ultra_fast", seed=0)
    assert "Tortoise:" not in capsys.readouterr().err
    audiokit.load("valle").synthesize("One two. Three four.", voice, prompt_text="", seed=0, batch_size=1)
    assert "VALL-E: 2/2 sentences" in capsys.readouterr().err
