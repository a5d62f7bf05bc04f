"""The Gradio TTS demo: ``python app.py`` or ``audiokit demo``.

Two layers. :class:`DemoBackend` holds the models (loaded once, shared by every visitor) and does the work —
input checks with plain-English messages, prompt transcription, synthesis, the spectrogram figure, the timing
table — and needs no Gradio, so it is tested directly. :func:`build_demo` lays the Gradio Blocks page over it:
every error the backend names reaches the page as a message (``gr.Error``), never a traceback, and requests
wait their turn in a queue (one synthesis at a time: the models are shared and the CPU is the bottleneck).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .pretrained import PRETRAINED_DIR, resolve

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 400
MIN_PROMPT_SECONDS = 1.0
MAX_UPLOAD_SECONDS = 60.0
FAMILIES = {"VALL-E": "valle", "Tortoise": "tortoise"}
PRESETS = ["ultra_fast", "fast", "standard", "high_quality"]
# Each family's own sampling defaults (what its ``synthesize`` uses); 0 / 1.0 in the UI mean "off".
SAMPLING = {"valle": {"temperature": 1.0, "top_k": 50, "top_p": 1.0},
            "tortoise": {"temperature": 0.8, "top_k": 0, "top_p": 0.8}}
VOICES_DIR = PRETRAINED_DIR / "voices"


class DemoError(ValueError):
    """An input the demo cannot use; the message is shown in the page as it is."""


def bundled_voices() -> list[dict]:
    """The example voice prompts shipped in ``pretrained/voices`` (file path, speaker, transcript)."""
    index = VOICES_DIR / "voices.json"
    if not index.is_file():
        return []
    return [{**v, "path": str(VOICES_DIR / v["file"])} for v in json.loads(index.read_text())["voices"]]


@dataclass
class DemoOutput:
    """What one Generate click returns: 16-bit audio for the player, the figure, the timing table."""

    sample_rate: int
    audio: np.ndarray
    seconds: float
    timings: dict[str, float]
    notices: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate

    def timing_markdown(self) -> str:
        rows = "\n".join(f"| {k} | {v:.2f} s |" for k, v in self.timings.items())
        rtf = self.seconds / max(self.duration, 1e-9)
        text = (f"| stage | time |\n|---|---|\n{rows}\n| **total** | **{self.seconds:.2f} s** |\n\n"
                f"{self.duration:.2f} s of audio at {self.sample_rate} Hz; real-time factor {rtf:.2f}.")
        if self.notices:
            text += "\n\n" + "\n".join(f"- {n}" for n in self.notices)
        return text


class DemoBackend:
    """The models behind the page, loaded once (lazily, or all at once with :meth:`preload`)."""

    def __init__(self, valle: str | os.PathLike | None = "valle", tortoise: str | os.PathLike | None = "tortoise",
                 asr: str | os.PathLike | None = "asr", device: str = "cpu"):
        self.paths = {"valle": valle, "tortoise": tortoise, "asr": asr}
        self.device = device
        self._models: dict[str, object] = {}
        self._lock = threading.RLock()  # re-entrant: loading VALL-E loads the ASR

    # ------------------------------------------------------------------ models
    def _load(self, key: str):
        with self._lock:
            if key not in self._models:
                path = self.paths.get(key)
                if path is None:
                    raise DemoError(f"this demo was started without a {key} model")
                try:
                    folder = resolve(path)
                    if key == "asr":
                        from .asr.transcriber import Transcriber

                        self._models[key] = Transcriber.load(folder, device=self.device)
                    else:
                        from .tts import TTS

                        # VALL-E shares the demo's ASR (rather than loading the copy bundled in its folder)
                        asr = self._load("asr") if key == "valle" and self.paths.get("asr") is not None else None
                        self._models[key] = TTS.load(folder, device=self.device, asr=asr)
                except DemoError:
                    raise
                except Exception as e:  # a missing or damaged model folder: say which, plainly
                    raise DemoError(f"the {key} model could not be loaded from {path}: {e}") from None
            return self._models[key]

    def tts(self, family: str):
        if family not in ("valle", "tortoise"):
            raise DemoError(f"unknown model family {family!r}; choose VALL-E or Tortoise")
        return self._load(family)

    def asr(self):
        return self._load("asr")

    def measured(self) -> str:
        """What each TTS model measures, from its card (``model.json`` → ``eval.tts``, written by ``audiokit eval
        tts --card``): the judge's WER on its speech beside the recordings', and the voice similarity — so the page
        says what the bundled models can do in the same figures as their READMEs."""
        lines = []
        for family, name in (("valle", "VALL-E"), ("tortoise", "Tortoise")):
            path = self.paths.get(family)
            if path is None:
                continue
            try:
                card = json.loads((resolve(path) / "model.json").read_text())
            except (OSError, ValueError):  # no folder (FileNotFoundError), no card, or not JSON
                continue
            tts = (card.get("eval") or {}).get("tts") or {}
            rows = tts.get("rows") or []
            truth = next((r for r in rows if r.get("system") == "ground truth"), None)
            model = next((r for r in rows if r.get("system", "").startswith(name)), None)
            if not (truth and model and "wer_asr" in model):
                lines.append(f"- **{name}**: not measured yet (no evaluation in its card).")
                continue
            verdict = " — it does not say the words yet" if model["wer_asr"] > 0.5 else ""
            said = ""  # measured since session 23: how many utterances the judge wrote word for word
            if model.get("exact_asr") is not None and truth.get("exact_asr") is not None:
                said = (f", and writes {model['exact_asr']} of {model.get('utterances', '?')} utterances word for word "
                        f"({truth['exact_asr']} of the recordings)")
            lines.append(f"- **{name}**: the judge, {tts.get('judge', 'an ASR')}, gets {100 * model['wer_asr']:.0f} % of "
                         f"the words wrong in its speech ({100 * truth['wer_asr']:.0f} % in the recordings){said}{verdict}; voice "
                         f"similarity to the prompt {model['similarity']:.2f} (to another speaker's "
                         f"{model['similarity_other_speaker']:.2f}); {model.get('utterances', '?')} held-out "
                         f"utterances, measured {tts.get('measured', '?')}.")
        return "\n".join(lines)

    def preload(self) -> dict[str, float]:
        """Load every configured model now; seconds per model."""
        out = {}
        for key, path in self.paths.items():
            if path is not None:
                start = time.perf_counter()
                self._load(key)
                out[key] = time.perf_counter() - start
        return out

    # ------------------------------------------------------------------ inputs
    @staticmethod
    def read_prompt(path) -> tuple[np.ndarray, int]:
        """The uploaded or recorded prompt as a mono waveform; anything that is not usable speech audio is a
        :class:`DemoError` saying what is wrong with it."""
        from .audio import AudioError, read_audio

        if path is None or (isinstance(path, str) and not path.strip()):
            raise DemoError("Please upload or record a voice prompt: a few seconds of the voice to clone.")
        try:
            wav, sr = read_audio(path)
        except AudioError as e:  # name the file as the visitor knows it, not by its temporary upload path
            raise DemoError("The voice prompt is not a usable audio file: "
                            + str(e).replace(str(path), Path(str(path)).name)) from None
        seconds = wav.shape[-1] / sr
        if seconds > MAX_UPLOAD_SECONDS:
            raise DemoError(f"The voice prompt is {seconds:.0f} s long; upload at most {MAX_UPLOAD_SECONDS:.0f} s "
                            "(3 to 10 s of clean speech works best).")
        if seconds < MIN_PROMPT_SECONDS:
            raise DemoError(f"The voice prompt is only {seconds:.2f} s long; it needs at least {MIN_PROMPT_SECONDS:g} s "
                            "of speech (3 to 10 s works best).")
        rms = float(np.sqrt(np.mean(np.square(wav.numpy(), dtype=np.float64))))
        if rms < 10 ** (-50 / 20):
            raise DemoError("The voice prompt is silent: record or upload a clip in which someone speaks.")
        return wav.numpy(), sr

    @staticmethod
    def check_text(text) -> str:
        text = (text or "").strip()
        if not text:
            raise DemoError("Please type the text to speak.")
        if len(text) > MAX_TEXT_CHARS:
            raise DemoError(f"The text is {len(text)} characters long; the demo speaks at most {MAX_TEXT_CHARS} "
                            "(the Python API and `audiokit tts` take longer texts).")
        return text

    # ------------------------------------------------------------------ actions
    def transcribe(self, prompt_path) -> str:
        """The prompt's words, by the demo's ASR (the default: Whisper tiny.en), to fill the editable transcript box."""
        wav, sr = self.read_prompt(prompt_path)
        import torch

        return self.asr().transcribe(torch.from_numpy(wav), sr, temperature=0.0).text.strip()

    def synthesize(self, text, prompt_path, prompt_text: str | None = None, family: str = "valle", preset: str = "fast",
                   temperature: float | None = None, top_k: int | None = None, top_p: float | None = None,
                   seed: int | None = 0) -> DemoOutput:
        """Speak ``text`` in the prompt's voice with one family. ``prompt_text`` empty: the ASR transcribes the
        prompt (VALL-E; Tortoise needs no transcript). ``top_k`` 0 and ``top_p`` 1 switch those filters off;
        ``seed`` None or negative draws a fresh one."""
        from .audio import AudioError
        from .text.phonemes import TextError
        from .tts import PromptError

        start = time.perf_counter()
        text = self.check_text(text)
        wav, sr = self.read_prompt(prompt_path)
        family = FAMILIES.get(family, family)
        tts = self.tts(family)
        d = SAMPLING[family]
        sampling = {"temperature": float(temperature if temperature is not None else d["temperature"]),
                    "top_k": int(top_k if top_k is not None else d["top_k"]) or None,
                    "top_p": float(top_p if top_p is not None else d["top_p"])}
        if not 0.0 < sampling["temperature"] <= 5.0:
            raise DemoError("The temperature must be above 0 and at most 5.")
        if sampling["top_p"] >= 1.0:
            sampling["top_p"] = None
        seed = None if seed is None or int(seed) < 0 else int(seed)
        import torch

        prompt = torch.from_numpy(wav)
        timings: dict[str, float] = {}
        try:
            if family == "tortoise":
                if preset not in PRESETS:
                    raise DemoError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
                out = tts.synthesize(text, [prompt], sample_rate=sr, preset=preset, seed=seed, **sampling)
            else:
                transcript = (prompt_text or "").strip() or None
                if transcript is None:
                    with_asr = time.perf_counter()
                    transcript = self.transcribe(prompt_path)
                    timings["prompt transcript (ASR)"] = time.perf_counter() - with_asr
                out = tts.synthesize(text, prompt, sample_rate=sr, prompt_text=transcript, seed=seed, **sampling)
        except (PromptError, TextError, AudioError) as e:
            raise DemoError(str(e)) from None
        timings.update(out.timings)
        audio = out.audio.detach().cpu().float().clamp(-1, 1).numpy()
        if audio.size == 0 or not np.isfinite(audio).all() or not np.abs(audio).max() > 0:
            why = "; ".join(out.notices) or "no audio"
            raise DemoError(f"The model produced nothing to play for this text ({why}); try another seed or text.")
        return DemoOutput(sample_rate=out.sample_rate, audio=(audio * 32767).astype(np.int16),
                          seconds=time.perf_counter() - start, timings=timings, notices=list(out.notices))


def spectrogram_figure(audio: np.ndarray, sample_rate: int):
    """A log-magnitude spectrogram of ``audio`` (int16 or float) as a matplotlib Figure (no pyplot state, so
    concurrent requests do not share a canvas)."""
    import torch
    from matplotlib.figure import Figure

    x = torch.as_tensor(audio, dtype=torch.float32, device="cpu")
    if audio.dtype == np.int16:
        x = x / 32768.0
    n_fft, hop = 512, 128
    if x.numel() < n_fft:
        x = torch.nn.functional.pad(x, (0, n_fft - x.numel()))
    spec = torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), return_complex=True).abs()
    db = 20 * torch.log10(spec.clamp_min(1e-5))
    db = db.clamp_min(db.max() - 80)
    fig = Figure(figsize=(8, 3), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(db.numpy(), origin="lower", aspect="auto", cmap="magma",
              extent=(0, x.numel() / sample_rate, 0, sample_rate / 2000))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (kHz)")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------- the page
def build_demo(backend: DemoBackend):
    """The Gradio Blocks page over ``backend``."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # the demo runs offline: no telemetry calls
    import gradio as gr

    voices = bundled_voices()
    first = voices[0] if voices else None

    def ui_errors(fn):
        def wrapped(*args):
            try:
                return fn(*args)
            except DemoError as e:
                raise gr.Error(str(e), duration=None, print_exception=False) from None
            except Exception as e:  # a bug: the page gets one line, the server log the traceback
                log.exception("demo request failed")
                raise gr.Error(f"Something went wrong ({type(e).__name__}: {e}).", duration=None,
                               print_exception=False) from None

        wrapped.__name__ = fn.__name__
        return wrapped

    @ui_errors
    def generate(text, prompt, prompt_text, family, preset, temperature, top_k, top_p, seed):
        out = backend.synthesize(text, prompt, prompt_text, FAMILIES[family], preset, temperature, top_k, top_p, seed)
        return (out.sample_rate, out.audio), spectrogram_figure(out.audio, out.sample_rate), out.timing_markdown()

    @ui_errors
    def transcribe(prompt):
        if prompt is None:
            return ""
        return backend.transcribe(prompt)

    def family_changed(family):
        d = SAMPLING[FAMILIES[family]]
        return (gr.update(visible=family == "Tortoise"), gr.update(value=d["temperature"]), gr.update(value=d["top_k"]),
                gr.update(value=d["top_p"]))

    with gr.Blocks(title="audiokit TTS") as demo:
        gr.Markdown("# audiokit text-to-speech\nType a sentence, give a few seconds of a voice, and press **Generate**. "
                    "VALL-E continues the prompt in its voice; Tortoise samples candidates, reranks them with CLVP and "
                    "decodes the best through its diffusion decoder. The bundled models are small ones trained on "
                    "synthetic speech; what they measure (from `pretrained/*/README.md`):\n\n" + backend.measured())
        with gr.Row():
            with gr.Column():
                text = gr.Textbox(label="Text", lines=3, max_lines=8, elem_id="text",
                                  placeholder="Type what the voice should say.",
                                  info=f"At most {MAX_TEXT_CHARS} characters; long text is split into sentences.")
                prompt = gr.Audio(label="Voice prompt (upload or record 3 to 10 s)", sources=["upload", "microphone"],
                                  type="filepath", value=first["path"] if first else None, elem_id="prompt")
                prompt_text = gr.Textbox(label="Prompt transcript (filled in by the ASR; edit it if it is wrong)",
                                         value=first["text"] if first else "", elem_id="prompt_text")
                with gr.Row():
                    family = gr.Radio(list(FAMILIES), value="VALL-E", label="Model", elem_id="family")
                    preset = gr.Dropdown(PRESETS, value="fast", label="Tortoise preset", visible=False, elem_id="preset")
                with gr.Accordion("Sampling", open=False):
                    temperature = gr.Slider(0.1, 1.5, value=SAMPLING["valle"]["temperature"], step=0.05, label="temperature")
                    top_k = gr.Slider(0, 256, value=SAMPLING["valle"]["top_k"], step=1, label="top-k (0: off)")
                    top_p = gr.Slider(0.1, 1.0, value=SAMPLING["valle"]["top_p"], step=0.05, label="top-p (1: off)")
                    seed = gr.Number(value=0, precision=0, label="seed (-1: a new one each time)", elem_id="seed")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column():
                audio = gr.Audio(label="Speech", type="numpy", interactive=False, elem_id="output_audio")
                plot = gr.Plot(label="Spectrogram", elem_id="spectrogram")
                timing = gr.Markdown(elem_id="timing")
        if voices:
            gr.Examples(
                [["The quick brown fox jumps over the lazy dog.", voices[0]["path"], voices[0]["text"], "VALL-E"],
                 ["Please call Stella and ask her to bring these things with her.", voices[1 % len(voices)]["path"],
                  voices[1 % len(voices)]["text"], "Tortoise"],
                 ["A concise explanation is better than a long one.", voices[2 % len(voices)]["path"],
                  voices[2 % len(voices)]["text"], "VALL-E"]],
                inputs=[text, prompt, prompt_text, family], label="Examples (voices of speakers no model trained on)")
        family.change(family_changed, family, [preset, temperature, top_k, top_p], api_name=False)
        # upload and recording (not example clicks, which bring their own transcript) ask the ASR for the words
        prompt.upload(transcribe, prompt, prompt_text, api_name="transcribe")
        prompt.stop_recording(transcribe, prompt, prompt_text, api_name=False)
        button.click(generate, [text, prompt, prompt_text, family, preset, temperature, top_k, top_p, seed],
                     [audio, plot, timing], api_name="generate")
    demo.queue(default_concurrency_limit=1, max_size=32)
    return demo


def launch_kwargs(host: str, port: int | None) -> dict:
    """What ``launch`` needs to serve the page and the bundled example voices offline."""
    return {"server_name": host, "server_port": port, "show_error": True, "allowed_paths": [str(VOICES_DIR)],
            "footer_links": ["api"]}


# ---------------------------------------------------------------------------------------------- serving it elsewhere
# Headless Chromium flags for driving the page with no network beyond the local server (the browser test and the
# click-to-audio benchmark): no background fetches, updates, sync, translation or first-run pages.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-default-apps", "--disable-sync", "--disable-extensions",
                 "--no-first-run", "--metrics-recording-only", "--disable-domain-reliability",
                 "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication"]


def start_app(port: int, log_path: str | os.PathLike, args: list[str] = (), timeout: float = 180.0):
    """Run ``app.py`` in a subprocess on ``port`` (output to ``log_path``) and wait until it serves the page.
    Returns ``(process, url)``; a process that exits or does not answer in ``timeout`` raises RuntimeError
    with the end of its log."""
    import subprocess
    import sys
    import urllib.request

    app = Path(__file__).resolve().parents[1] / "app.py"
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    with open(log_path, "w") as f:
        proc = subprocess.Popen([sys.executable, str(app), "--port", str(port), *args], cwd=app.parent, env=env,
                                stdout=f, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode}:\n{Path(log_path).read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except OSError:
            if time.time() > deadline:
                proc.kill()
                raise RuntimeError(f"app.py did not serve {url} in {timeout:.0f} s:\n{Path(log_path).read_text()[-3000:]}")
            time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="audiokit demo", description="Start the Gradio TTS demo on the bundled models "
                                "(or the exported model folders you name).")
    p.add_argument("--valle", default="valle", help="VALL-E model folder or bundled name [valle]")
    p.add_argument("--tortoise", default="tortoise", help="Tortoise model folder or bundled name [tortoise]")
    p.add_argument("--asr", default="asr", help="ASR that fills in prompt transcripts [asr]")
    p.add_argument("--device", default="cpu")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads [torch's default]")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    backend = DemoBackend(valle=args.valle, tortoise=args.tortoise, asr=args.asr, device=args.device)
    try:
        loaded = backend.preload()
    except DemoError as e:
        print(f"audiokit demo: error: {e}")
        return 2
    print("models loaded: " + ", ".join(f"{k} {v:.1f} s" for k, v in loaded.items()), flush=True)
    demo = build_demo(backend)
    demo.launch(**launch_kwargs(args.host, args.port))
    return 0
