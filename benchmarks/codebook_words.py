"""Where are the words? Held-out speech decoded from a codec's first k codebooks, read by judges (issue 22).

    python benchmarks/codebook_words.py --codec pretrained/codec --codec runs/codec-speech16-semantic/checkpoints/last.ckpt \
        --manifest data/digits/test.jsonl [--per-speaker 10] [--codebooks 1,2,3,4,6] [--json out.json]

A VALL-E's AR writes codebook 1 and its NAR guesses the others from it; a Tortoise AR writes codebook-1 tokens too.
What codebook 1 alone says is therefore the ceiling of the AR's content. For ``--per-speaker`` utterances of each
held-out speaker: the recording, then each codec's resynthesis from its first k codebooks, each read by Whisper
tiny.en (greedy; ``--judge``) and by pocketsphinx (a judge that shares nothing with Whisper, where installed),
with WER per speaker. ``--codec`` takes exported folders or Lightning checkpoints, several to compare.
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict

import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--codec", action="append", required=True, help="an exported codec or a .ckpt (repeat to compare)")
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--per-speaker", type=int, default=10)
    ap.add_argument("--codebooks", default="1,2,3,4,6")
    ap.add_argument("--judge", default="asr")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from audiokit.asr.metrics import wer_cer
    from audiokit.asr.transcriber import Transcriber
    from audiokit.audio.dsp import resample
    from audiokit.codec.codec import Codec
    from audiokit.data.manifest import entry_audio, read_manifest

    by = defaultdict(list)
    for e in read_manifest(args.manifest):
        by[e.get("speaker", "")].append(e)
    items = [e for q in by.values() for e in q[: args.per_speaker]]
    refs = [e["text"] for e in items]
    judge = Transcriber.load(args.judge)
    try:
        from audiokit.tts_eval import _Pocketsphinx

        sphinx = _Pocketsphinx()
    except ImportError:
        sphinx = None

    def score(name: str, wavs16: list[torch.Tensor]) -> dict:
        row = {"system": name}
        hyps = {"whisper": [h.text for h in judge.transcribe(wavs16, 16000, temperature=0.0)]}
        if sphinx is not None:
            hyps["pocketsphinx"] = [sphinx(w) for w in wavs16]
        for j, h in hyps.items():
            row[f"wer_{j}"] = wer_cer(refs, h)["wer"]
            row[f"by_speaker_{j}"] = {s: wer_cer([r for r, e in zip(refs, items) if e.get("speaker", "") == s],
                                                 [x for x, e in zip(h, items) if e.get("speaker", "") == s])["wer"]
                                      for s in by}
        print(json.dumps(row), flush=True)
        return row

    rows = []
    first = Codec.load(args.codec[0])
    real = [entry_audio(e, first.sample_rate)[0] for e in items]
    rows.append(score("recording", [resample(w, first.sample_rate, 16000) for w in real]))
    for path in args.codec:
        codec = first if path == args.codec[0] else Codec.load(path)
        for k in (int(x) for x in args.codebooks.split(",")):
            if k > codec.info.n_codebooks:
                continue
            out = [codec.decode(codec.encode(w, codec.sample_rate, n_q=k))[0].float().reshape(-1) for w in real]
            row = score(f"{path} @ {k}", [resample(w, codec.sample_rate, 16000) for w in out])
            rows.append({**row, "codec": path, "codebooks": k})
    judges = ["whisper"] + (["pocketsphinx"] if sphinx is not None else [])
    print("\n| system | " + " | ".join(f"WER {j}" for j in judges) + " | per speaker (Whisper) |")
    print("|---|" + "---|" * len(judges) + "---|")
    for r in rows:
        per = " / ".join(f"{100 * v:.0f}" for v in r["by_speaker_whisper"].values())
        print(f"| {r['system']} | " + " | ".join(f"{100 * r[f'wer_{j}']:.1f} %" for j in judges) + f" | {per} |")
    print("speakers:", " / ".join(by))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"manifest": args.manifest, "items": len(items), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
