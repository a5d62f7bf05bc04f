"""``audiokit check``: a few training and inference steps of every family on one device, each family on its own.

Code that has only ever run on a CPU meets a GPU for the first time in a short, paid-for window; a tensor left on
the CPU or a dtype that bf16 autocast breaks must show in the first half-minute, not after ten. This runs the same
CLI paths a recipe runs — ``audiokit train`` (a couple of optimizer steps and a validation batch, in the precision
asked for), ``audiokit export``, the family's inference command and ``audiokit eval`` (one or two held-out items)
on the device — at the CI-sized configs, on a
corpus of a few seconds it makes itself. A family's failure is caught, written down with its traceback and the
line that names it, and the next family runs anyway::

    audiokit check --device cuda --precision bf16-mixed --json smoke.json
    audiokit check --device cpu --precision bf16-mixed            # what the test suite runs

Families (in order): ``data`` (corpus + BPE; everything else needs it), ``codec`` (train, export, encode/decode),
``tokens`` (tokenize with that codec, or the bundled one where the codec failed), ``asr`` (train, export,
transcribe), ``valle`` (AR + NAR, export, synthesize) and ``tortoise`` (AR, CLVP, diffusion, diffusion on AR
latents, export, synthesize).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("data", "codec", "tokens", "asr", "valle", "tortoise")


class CheckFailed(RuntimeError):
    """A step of the check that returned an error code; the message is its one-line reason."""


def _cli(*argv: str, quiet: bool = True) -> None:
    """One ``audiokit`` command in this process; its exceptions propagate (AUDIOKIT_DEBUG) with their traceback."""
    from .cli import main

    out = io.StringIO()
    before = os.environ.get("AUDIOKIT_DEBUG")
    os.environ["AUDIOKIT_DEBUG"] = "1"
    try:
        with contextlib.redirect_stdout(out) if quiet else contextlib.nullcontext():
            rc = main(list(argv))
    except SystemExit as e:  # LightningCLI / argparse exit on bad arguments
        rc = e.code if isinstance(e.code, int) else 2
    finally:  # the caller's setting back: later commands in this process report errors in one line again
        if before is None:
            os.environ.pop("AUDIOKIT_DEBUG", None)
        else:
            os.environ["AUDIOKIT_DEBUG"] = before
    if rc:
        raise CheckFailed(f"audiokit {' '.join(argv[:2])} exited with {rc}: {out.getvalue().strip()[-400:]}")


class Check:
    """The families' steps, sharing one work folder. ``device``: ``cpu`` or ``cuda[:N]``."""

    def __init__(self, work: str | os.PathLike, device: str = "cpu", precision: str = "bf16-mixed", steps: int = 2):
        self.work = Path(work)
        self.device = device
        self.accelerator = "cpu" if device == "cpu" else "gpu"
        self.precision = precision
        self.steps = steps
        self.corpus = self.work / "corpus"
        self.codec = self.work / "codec-export"

    # ------------------------------------------------------------------ helpers
    def _train(self, family: str, config: str, name: str, *extra: str, steps: int | None = None) -> Path:
        run = self.work / name
        steps = steps or self.steps
        _cli("train", family, "--config", str(ROOT / "configs" / config), *extra,
             "--trainer.max_steps", str(steps), "--trainer.val_check_interval", str(max(1, steps // (2 if family == "codec" else 1))),
             "--trainer.limit_val_batches", "1", "--trainer.precision", self.precision,
             "--trainer.accelerator", self.accelerator, "--trainer.devices", self._devices(),
             "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
             "--trainer.logger", "false", "--trainer.default_root_dir", str(run),
             "--trainer.callbacks.init_args.dirpath", str(run / "checkpoints"), "--trainer.callbacks.init_args.every_n_train_steps", str(steps))
        ckpt = run / "checkpoints" / "last.ckpt"
        if not ckpt.is_file():
            raise CheckFailed(f"{family}: training wrote no {ckpt}")
        return ckpt

    def _devices(self) -> str:
        return "1" if self.accelerator == "cpu" else f"[{self.device.split(':')[1]}]" if ":" in self.device else "1"

    def _tokens_args(self) -> list[str]:
        tok = self.work / "tokens"
        return ["--data.train_manifest", str(tok / "train.jsonl"), "--data.val_manifest", str(tok / "valid.jsonl"),
                "--data.token_store", str(tok)]

    def _codebook_args(self, n_codebooks: bool = True) -> list[str]:
        """The token store's codebook size (and count): the tiny configs assume the tiny codec's 4 x 256, and the
        tokens may come from the bundled codec instead (12 x 1024) when the codec check failed."""
        index = json.loads((self.work / "tokens" / "index.json").read_text())
        args = ["--model.codebook_size", str(index["codec"]["codebook_size"])]
        return args + (["--model.n_codebooks", str(index["n_q"])] if n_codebooks else [])

    def _test_wav(self) -> str:
        from .data import read_manifest

        return read_manifest(self.corpus / "test.jsonl")[0]["audio"]

    # ------------------------------------------------------------------ the families
    def data(self) -> str:
        _cli("data", "synth", "--out", str(self.corpus), "--utterances", "16", "--speakers", "3", "--test-speakers", "1",
             "--valid-fraction", "0.15", "--sample-rate", "16000", "--engines", "espeak", "--max-sentences", "1",
             "--workers", str(min(4, os.cpu_count() or 1)))
        _cli("data", "bpe", "--manifest", str(self.corpus / "train.jsonl"), "--vocab-size", "300",
             "--out", str(self.corpus / "bpe.json"))
        return "16 utterances, BPE"

    def codec_(self) -> str:
        ckpt = self._train("codec", "codec/tiny.yaml", "codec", "--data.train_manifest", str(self.corpus / "train.jsonl"),
                           "--data.val_manifest", str(self.corpus / "valid.jsonl"), steps=2 * self.steps)
        _cli("export", str(ckpt), str(self.codec), "--name", "check")
        akc = self.work / "codec.akc"
        _cli("encode", self._test_wav(), str(akc), "--codec", str(self.codec), "--device", self.device)
        _cli("decode", str(akc), str(self.work / "codec.wav"), "--codec", str(self.codec), "--device", self.device,
             "--dtype", "bfloat16" if "bf16" in self.precision else "float32")
        _cli("eval", "codec", "--manifest", str(self.corpus / "test.jsonl"), "--codec", str(self.codec), "--device",
             self.device, "--max-items", "2", "--json", str(self.work / "codec_eval.json"))
        return "trained, exported, encode/decode, evaluated"

    def tokens(self) -> str:
        codec = self.codec
        note = ""
        if not (codec / "model.safetensors").is_file():
            codec, note = ROOT / "pretrained" / "codec", " (the bundled codec: the codec check failed)"
        _cli("tokenize", "--manifest", *(str(self.corpus / f"{s}.jsonl") for s in ("train", "valid", "test")),
             "--codec", str(codec), "--out", str(self.work / "tokens"), "--accelerator", self.accelerator,
             "--devices", self._devices())
        self.codec = codec
        return "tokenized" + note

    def asr(self) -> str:
        ckpt = self._train("asr", "asr/tiny.yaml", "asr", "--model.tokenizer", str(self.corpus / "bpe.json"),
                           "--data.train_manifest", str(self.corpus / "train.jsonl"),
                           "--data.val_manifest", str(self.corpus / "valid.jsonl"))
        _cli("export", str(ckpt), str(self.work / "asr-export"), "--fp16")
        # one temperature: a model of two steps never ends a sentence, and the fallback would decode it six times over
        _cli("transcribe", self._test_wav(), "--model", str(self.work / "asr-export"), "--device", self.device,
             "--temperature", "0")
        _cli("eval", "asr", "--manifest", str(self.corpus / "test.jsonl"), "--model", str(self.work / "asr-export"),
             "--device", self.device, "--max-items", "2", "--temperature", "0", "--json", str(self.work / "asr_eval.json"))
        return "trained, exported, transcribed, evaluated"

    def valle(self) -> str:
        ar = self._train("valle-ar", "valle/tiny_ar.yaml", "valle-ar", *self._tokens_args(), *self._codebook_args())
        nar = self._train("valle-nar", "valle/tiny_nar.yaml", "valle-nar", *self._tokens_args(), *self._codebook_args())
        out = self.work / "valle-export"
        _cli("export", str(ar), str(out), "--nar", str(nar), "--codec", str(self.codec), "--fp16")
        _cli("tts", "--model", str(out), "--text", "One two three.", "--prompt", self._test_wav(), "--prompt-text",
             "a prompt", "--out", str(self.work / "valle.wav"), "--seed", "0", "--device", self.device)
        self._eval_tts(out, "valle")
        return "AR + NAR trained, exported, synthesized, evaluated"

    def _eval_tts(self, model: Path, name: str, *extra: str) -> None:
        asr = self.work / "asr-export"
        _cli("eval", "tts", "--manifest", str(self.corpus / "test.jsonl"), "--model", str(model), "--device", self.device,
             "--max-items", "1", *(["--asr", str(asr)] if (asr / "config.json").is_file() else []), *extra,
             "--json", str(self.work / f"{name}_eval.json"))

    def tortoise(self) -> str:
        common = [*self._tokens_args(), "--data.tokenizer", str(self.corpus / "bpe.json")]
        ar = self._train("tortoise-ar", "tortoise/tiny_ar.yaml", "tortoise-ar", *common, *self._codebook_args())
        clvp = self._train("clvp", "tortoise/tiny_clvp.yaml", "tortoise-clvp", *common, *self._codebook_args(False))
        diff = self._train("diffusion", "tortoise/tiny_diffusion.yaml", "tortoise-diffusion", *common,
                           "--model.codec", str(self.codec))
        diff_ar = self._train("diffusion-ar-latents", "tortoise/tiny_diffusion_ar.yaml", "tortoise-diffusion-ar", *common,
                              "--model.codec", str(self.codec), "--model.ar_checkpoint", str(ar), "--model.init_from", str(diff))
        out = self.work / "tortoise-export"
        _cli("export", str(ar), str(out), "--clvp", str(clvp), "--diffusion", str(diff_ar), "--codec", str(self.codec), "--fp16")
        _cli("tts", "--model", str(out), "--text", "One two three.", "--voice", self._test_wav(), "--preset", "ultra_fast",
             "--out", str(self.work / "tortoise.wav"), "--seed", "0", "--device", self.device)
        self._eval_tts(out, "tortoise", "--preset", "ultra_fast")
        return "AR, CLVP, diffusion (both stages) trained, exported, synthesized, evaluated"

    def run(self, families=FAMILIES, log=None) -> dict:
        """Run ``families`` in order; returns ``{family: {"ok", "seconds", "what" | "error"}}``. A family that needs one
        that failed (everything needs ``data``; the TTS families need ``tokens``) is reported as skipped. ``log``: where
        the progress lines and tracebacks go [sys.stdout, as it is at the call]."""
        log = log if log is not None else sys.stdout
        results: dict = {}
        needs = {"codec": "data", "tokens": "data", "asr": "data", "valle": "tokens", "tortoise": "tokens"}
        for family in families:
            need = needs.get(family)
            if need and not results.get(need, {}).get("ok", need not in families):
                results[family] = {"ok": False, "seconds": 0.0, "error": f"skipped: needs '{need}', which failed"}
                print(f"check {family}: SKIPPED (needs '{need}', which failed)", file=log, flush=True)
                continue
            t0 = time.perf_counter()
            try:
                what = getattr(self, "codec_" if family == "codec" else family)()
                results[family] = {"ok": True, "seconds": round(time.perf_counter() - t0, 2), "what": what}
                print(f"check {family}: ok in {results[family]['seconds']:.1f} s ({what})", file=log, flush=True)
            except (Exception, SystemExit) as e:  # noqa: BLE001 — a family's failure must not stop the others
                line = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
                results[family] = {"ok": False, "seconds": round(time.perf_counter() - t0, 2),
                                   "error": f"{type(e).__name__}: {line}"[:500]}
                print(f"check {family}: FAILED after {results[family]['seconds']:.1f} s: {results[family]['error']}",
                      file=log, flush=True)
                traceback.print_exc(file=log)
        return results


def describe_device(device: str) -> str:
    import platform

    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise CheckFailed(f"--device {device}: torch {torch.__version__} sees no CUDA device")
        return f"{torch.cuda.get_device_name(torch.device(device))}, torch {torch.__version__}"
    return f"{os.cpu_count()} CPU cores ({platform.machine()}), torch {torch.__version__}"


def main(device: str, precision: str, work: str | None, json_path: str | None, families: list[str] | None,
         steps: int = 2) -> int:
    import tempfile

    import lightning as L

    unknown = sorted(set(families or ()) - set(FAMILIES))
    if unknown:
        raise CheckFailed(f"unknown families {', '.join(unknown)}; choose from {', '.join(FAMILIES)}")
    L.seed_everything(0, verbose=False)
    what = describe_device(device)
    print(f"check on {device} ({what}), precision {precision}", flush=True)
    with contextlib.ExitStack() as stack:
        folder = work or stack.enter_context(tempfile.TemporaryDirectory(prefix="audiokit-check-"))
        t0 = time.perf_counter()
        results = Check(folder, device, precision, steps).run(families or FAMILIES)
    ok = all(r["ok"] for r in results.values())
    record = {"device": device, "machine": what, "precision": precision, "ok": ok,
              "seconds": round(time.perf_counter() - t0, 1), "families": results}
    if json_path:
        from .fileio import atomic_path

        with atomic_path(json_path) as tmp:
            tmp.write_text(json.dumps(record, indent=1))
    failed = [f for f, r in results.items() if not r["ok"]]
    print(f"check: {len(results) - len(failed)} of {len(results)} families ok in {record['seconds']} s"
          + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 0 if ok else 1
