"""How well an ASR (the judge of every TTS figure) understands each engine's voices in a synthetic corpus.

    python benchmarks/asr_judge.py --manifest data/judge/test.jsonl --model exp/tiny.en [--batch-size 8] [--json out.json]
        [--known SRC]   # record the table in audiokit/assets/known_whisper.json for the weights SRC holds

Transcribes the manifest (greedy, the judge's setting in `eval tts`) and reports WER and CER per engine
(espeak-ng, flite, festival: the speaker id's prefix) and per speaker, with the normalized text audiokit's WER uses.
"""
from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

import torch

from audiokit.asr.metrics import evaluate_asr, wer_cer
from audiokit.asr.transcriber import Transcriber


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-items", type=int, default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--known", default=None, help="the Whisper model (any layout) the --model folder was converted from: "
                    "its eval table goes into audiokit/assets/known_whisper.json, and into the card of every later conversion")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    asr = Transcriber.load(a.model)
    t0 = time.perf_counter()
    summary, rows = evaluate_asr(asr, a.manifest, max_items=a.max_items, batch_size=a.batch_size, temperature=0.0)
    seconds = time.perf_counter() - t0
    groups: dict[str, list[dict]] = defaultdict(list)
    speakers: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r.get("speaker") or "?").split("-")[0]].append(r)
        speakers[r.get("speaker") or "?"].append(r)
    table = []
    for name, rs in sorted(groups.items()) + [("all", rows)]:
        s = wer_cer([r["ref"] for r in rs], [r["hyp"] for r in rs])
        table.append({"engine": name, "utterances": len(rs), "wer": round(s["wer"], 4), "cer": round(s["cer"], 4)})
    per_speaker = {k: round(wer_cer([r["ref"] for r in v], [r["hyp"] for r in v])["wer"], 4) for k, v in sorted(speakers.items())}
    print(f"{a.model} on {a.manifest}: {len(rows)} utterances in {seconds:.0f} s")
    print("| engine | utterances | WER (%) | CER (%) |\n|---|---|---|---|")
    for r in table:
        print(f"| {r['engine']} | {r['utterances']} | {100 * r['wer']:.1f} | {100 * r['cer']:.1f} |")
    print("per speaker WER (%): " + ", ".join(f"{k} {100 * v:.1f}" for k, v in per_speaker.items()))
    groups_out = [{"group": r["engine"], "utterances": r["utterances"], "wer": r["wer"], "cer": r["cer"]} for r in table[:-1]]
    if a.known:
        record_known(a.known, {"manifest": a.manifest, "wer": round(summary["wer"], 4), "cer": round(summary["cer"], 4),
                               "utterances": len(rows), "words": summary.get("words"), "decoding": "greedy, float32",
                               "measured": time.strftime("%Y-%m-%d"), "groups": groups_out})
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"model": a.model, "manifest": a.manifest, "engines": table, "speakers": per_speaker, "rows": rows}, f, indent=1)


def record_known(src: str, result: dict) -> None:
    from pathlib import Path

    from audiokit.asr.layouts import KNOWN_MODELS, weights_file, detect_layout
    from audiokit.assets import ASSETS_DIR
    from audiokit.pretrained import _sha256

    path = Path(ASSETS_DIR) / KNOWN_MODELS
    known = json.loads(path.read_text())
    sha = _sha256(weights_file(Path(src), detect_layout(src)))
    if sha not in known:
        raise SystemExit(f"{src}: weights {sha[:16]}... are not in {path}; add their name, source and licence first")
    known[sha].setdefault("eval", {})["asr"] = result
    path.write_text(json.dumps(known, indent=1) + "\n")
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
