"""Codec and ASR throughput on one device in float32, bfloat16 and float16 (the oneshot run's speed rows).

    python recipes/gpu/throughput.py --codec DIR --asr DIR --manifest test.jsonl --device cuda --json out.json

Each row: seconds of audio processed per second of wall clock (codec: encode + decode of a batch; ASR: greedy
transcription of a batch), the median of ``--repeats`` timed runs after a warm-up, with the ratio to float32 and
how far the reduced-precision output is from float32's (codec: share of identical codes and relative decode error;
ASR: share of identical transcripts). The machine is stated in the output.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from audiokit.asr.transcriber import Transcriber
from audiokit.audio import read_audio
from audiokit.codec.codec import Codec
from audiokit.data import read_manifest

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn, device: str, repeats: int):
    out = fn()  # warm-up (kernel selection, caches)
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return out, statistics.median(times)


def dtype_rows(model: str, load, run, compare, wavs: list, device: str, repeats: int) -> list[dict]:
    """One row per dtype: ``run(load(dtype))`` timed; ``compare(out, float32_out)`` adds how far it is from float32."""
    rows, ref = [], None
    seconds = sum(w.shape[-1] for w in wavs) / 16000
    for name, dtype in DTYPES.items():
        if device == "cpu" and dtype is torch.float16:
            continue
        m = load(dtype)
        out, t = _timed(lambda: run(m), device, repeats)
        row = {"model": model, "dtype": name, "batch": len(wavs), "audio_seconds": round(seconds, 2),
               "seconds": round(t, 4), "audio_s_per_s": round(seconds / t, 1)}
        if ref is None:
            ref = (out, t)
        else:
            row["speedup_vs_float32"] = round(ref[1] / t, 2)
            row.update(compare(out, ref[0]))
        rows.append(row)
    return rows


def codec_rows(folder: str, wavs: list, device: str, repeats: int) -> list[dict]:
    def run(codec):
        tokens = codec.encode(wavs, 16000)
        return tokens.codes.cpu(), codec.decode(tokens).float().cpu()

    def compare(out, ref):
        return {"codes_identical": round(float((out[0] == ref[0]).float().mean()), 4),
                "decode_rel_error": round(float((out[1] - ref[1]).norm() / ref[1].norm().clamp_min(1e-12)), 4)}

    return dtype_rows("codec", lambda dt: Codec.load(folder, device=device).to(dtype=dt), run, compare, wavs, device, repeats)


def asr_rows(folder: str, wavs: list, device: str, repeats: int) -> list[dict]:
    def run(asr):
        return [r.text for r in asr.transcribe(wavs, 16000, temperature=0.0, batch_size=len(wavs))]

    def compare(out, ref):
        return {"transcripts_identical": round(sum(a == b for a, b in zip(out, ref)) / len(out), 4)}

    return dtype_rows("asr", lambda dt: Transcriber.load(folder, device=device).to(dtype=dt), run, compare, wavs, device,
                      repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codec", required=True)
    ap.add_argument("--asr", default=None)
    ap.add_argument("--manifest", required=True, help="utterances to process (the first --batch of them)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="a batch of 2, one repeat (the dry run)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if a.quick:
        a.batch, a.repeats = 2, 1
    wavs = [read_audio(e["audio"], sample_rate=16000)[0].reshape(-1) for e in read_manifest(a.manifest)[: a.batch]]
    machine = torch.cuda.get_device_name(torch.device(a.device)) if a.device.startswith("cuda") else "CPU"
    rows = codec_rows(a.codec, wavs, a.device, a.repeats)
    if a.asr:
        rows += asr_rows(a.asr, wavs, a.device, a.repeats)
    record = {"machine": machine, "torch": torch.__version__, "device": a.device, "rows": rows}
    for r in rows:
        print(json.dumps(r))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
