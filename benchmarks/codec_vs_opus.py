"""A speech codec against Opus at the same bitrates, judged by what a listener would notice (issue 21).

    python benchmarks/codec_vs_opus.py --codec pretrained/codec --manifest data/synth/speech16/test.jsonl \
        [--voices pretrained/voices] [--kbps 1.5,3,6] [--max-per-engine 20] [--json out.json]

Per engine of the held-out speakers (the speaker id's prefix: espeak-ng, flite, festival; and the demo's voices
with --voices), for the original audio, audiokit's codec at each bitrate (the fewest codebooks that fit it) and
Opus at the same nominal bitrate (Debian's ``opus-tools``: ``opusenc --hard-cbr``, ``opusdec --rate 16000``):

- the judge's word error rate (the default ASR, Whisper tiny.en, beam 5) — ground truth beside it;
- wide-band PESQ and STOI against the original;
- resemblyzer similarity of the decoded speech to the original (the voice kept);
- the bitrate actually spent: the codec's tokens; Opus's packets (Ogg pages' payload without the header pages).

Needs the ``eval`` extra (pesq, pystoi, resemblyzer, jiwer) and ``apt install opus-tools``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections import defaultdict

import numpy as np
import torch

from audiokit.codec.opus import OpusToolsMissing, opus_round_trip, require_opus_tools

SR = 16000


def engine_of(speaker: str) -> str:
    return speaker.split("-")[0] if speaker.split("-")[0] in ("espeak", "flite", "festival") else "other"


def items_of(manifest: str | None, voices: str | None, max_per_engine: int) -> list[dict]:
    from audiokit.data.manifest import read_manifest

    out, per = [], defaultdict(int)
    for e in read_manifest(manifest) if manifest else []:
        g = engine_of(e["speaker"])
        if per[g] < max_per_engine:
            per[g] += 1
            out.append({**e, "group": g})
    if voices:
        meta = json.load(open(os.path.join(voices, "voices.json")))
        out += [{"audio": os.path.join(voices, v["file"]), "text": v["text"], "speaker": v["speaker"], "group": "demo voices"}
                for v in meta["voices"]]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codec", default="codec", help="an exported codec folder or registry name [codec]")
    ap.add_argument("--manifest", default=None, help="held-out utterances (16 kHz, with text and speaker)")
    ap.add_argument("--voices", default=None, help="a voices folder (voices.json): the demo's voices as a group")
    ap.add_argument("--kbps", default="1.5,3,6")
    ap.add_argument("--max-per-engine", type=int, default=20)
    ap.add_argument("--asr", default="asr", help="the judge [asr: Whisper tiny.en]")
    ap.add_argument("--beam-size", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if not (a.manifest or a.voices):
        raise SystemExit("give --manifest and/or --voices")
    try:
        require_opus_tools()
    except OpusToolsMissing as e:
        raise SystemExit(str(e)) from None
    torch.set_num_threads(a.threads)

    from audiokit.asr.metrics import wer_cer
    from audiokit.asr.transcriber import Transcriber
    from audiokit.audio import read_audio
    from audiokit.codec.codec import Codec
    from audiokit.codec.metrics import pesq_wb, stoi
    from audiokit.tts_eval import _Resemblyzer

    codec = Codec.load(a.codec)
    if codec.sample_rate != SR:
        raise SystemExit(f"{a.codec}: a {codec.sample_rate} Hz codec; this benchmark compares at {SR} Hz")
    judge = Transcriber.load(a.asr)
    voice = _Resemblyzer()
    levels = [float(x) for x in a.kbps.split(",")]
    items = items_of(a.manifest, a.voices, a.max_per_engine)
    # systems: (name, kbps or None, function audio -> (decoded, kbps spent))
    systems: list[tuple[str, float | None, object]] = [("original", None, lambda x: (x, None))]
    for k in levels:
        n_q = codec.n_q_for(bandwidth=k)

        def ours(x, n_q=n_q):
            tokens = codec.encode(torch.from_numpy(x), SR).keep_codebooks(n_q)
            y = codec.decode(tokens)[0].float().cpu().numpy()[: len(x)]
            return np.pad(y, (0, len(x) - len(y))), codec.info.bitrate(n_q) / 1000

        systems.append((f"audiokit {codec.info.bitrate(n_q) / 1000:g} kbps ({n_q} codebooks)", k, ours))
    work = tempfile.mkdtemp()
    for k in levels:
        systems.append((f"Opus {k:g} kbps", k, lambda x, k=k: opus_round_trip(x, SR, k, work)))

    rows: dict[tuple[str, str], dict] = {}
    with torch.inference_mode():
        for name, k, fn in systems:
            per_group = defaultdict(lambda: defaultdict(list))
            for it in items:
                x = read_audio(it["audio"], sample_rate=SR)[0].numpy().astype(np.float32)
                y, spent = fn(x)
                g = per_group[it["group"]]
                g["ref"].append(it["text"])
                g["hyp"].append(judge.transcribe(torch.from_numpy(y), SR, temperature=0.0, beam_size=a.beam_size).text)
                if name != "original":
                    g["pesq"].append(pesq_wb(y, x, SR))
                    g["stoi"].append(stoi(y, x, SR))
                    ex, ey = voice.embed(torch.from_numpy(x)), voice.embed(torch.from_numpy(y))
                    if ex is not None and ey is not None:
                        g["sim"].append(float(np.dot(ex, ey) / (np.linalg.norm(ex) * np.linalg.norm(ey))))
                    g["kbps"].append(spent)
            for group, g in per_group.items():
                r = {"system": name, "group": group, "utterances": len(g["ref"]),
                     "wer": round(100 * wer_cer(g["ref"], g["hyp"])["wer"], 1)}
                for m in ("pesq", "stoi", "sim", "kbps"):
                    r[m] = round(float(np.mean(g[m])), 3) if g[m] else None
                rows[(name, group)] = r
                print(json.dumps(r), flush=True)
    shutil.rmtree(work, ignore_errors=True)
    groups = sorted({g for _, g in rows})
    print(f"\ncodec {a.codec} ({codec.info.n_codebooks} x {codec.info.codebook_size} at {codec.info.frame_rate:g} Hz); "
          f"judge {a.asr} beam {a.beam_size}; {len(items)} utterances\n")
    print("| group | system | kbps spent | WER % (ratio to original) | PESQ-wb | STOI | voice similarity |")
    print("|---|---|---|---|---|---|---|")
    for group in groups:
        base = rows[("original", group)]["wer"]
        for name, _, _ in systems:
            r = rows[(name, group)]
            ratio = f" ({r['wer'] / base:.2f}x)" if base and name != "original" else ""
            fmt = lambda v: "—" if v is None else f"{v:g}"  # noqa: E731
            print(f"| {group} | {name} | {fmt(r['kbps'])} | {r['wer']}{ratio} | {fmt(r['pesq'])} | {fmt(r['stoi'])} | {fmt(r['sim'])} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"codec": a.codec, "judge": a.asr, "beam_size": a.beam_size, "rows": list(rows.values())}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
