"""Which half of a VALL-E fails? The AR and the NAR judged apart, each beside ground truth at the same bitrate.

    python benchmarks/valle_diagnose.py --manifest exp/synth-digits/tokens/test.jsonl \\
        --store exp/synth-digits/tokens --ar exp/synth-digits/valle-ar/checkpoints/last.ckpt \\
        --nar exp/synth-digits/valle-nar/checkpoints/last.ckpt --items 24

A VALL-E that babbles can fail in either model. For held-out utterances (taken from each speaker in turn; the
prompt is another utterance of the same speaker, as in ``audiokit eval tts``):

- the recordings themselves, read by the judge (the floor every row stands on);
- ``--ar``: the AR writes codebook 1 (greedy, and top-k 50 sampling); the codec decodes those frames with its
  first codebook only; beside it, ground truth's own codebook 1 through the same decode (0.5 kbps of a
  12-codebook codec is rough audio, so that ceiling is not 0 %). Length ratio: generated frames / truth's.
- ``--nar``: the NAR fills codebooks 2 … Q greedily on ground truth's codebook 1; decoded at 1, 3, 6 and Q
  codebooks beside ground truth decoded at the same number (does each stage add what the truth's does?), with
  the NAR's accuracy per codebook against the truth; once with its most likely codes, once with each codebook at
  the expectation of its probabilities (``nar_decoding``, ``Codec.embed_expected``).

The judge is Whisper tiny.en unless ``--judge``. ``--ar``/``--nar`` take a Lightning checkpoint or an exported
VALL-E folder. Prints JSON lines and a Markdown table (WER in total and per speaker).
"""
import argparse
import json
import warnings
from collections import defaultdict

import torch

from _timing import print_table

warnings.filterwarnings("ignore")


def load(path: str, part: str):
    if path.endswith(".ckpt"):
        from audiokit.valle.lightning import ValleARModule, ValleNARModule

        cls = ValleARModule if part == "ar" else ValleNARModule
        return cls.load_from_checkpoint(path, map_location="cpu").model.eval()
    from audiokit.valle.tts import ValleTTS

    return getattr(ValleTTS.load(path), part).eval()


def spread(entries: list[dict], n: int) -> list[int]:
    """``n`` indices taking each speaker in turn, so every held-out voice is represented."""
    by = defaultdict(list)
    for i, e in enumerate(entries):
        by[e.get("speaker", "")].append(i)
    queues, out = list(by.values()), []
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--manifest", required=True)
    p.add_argument("--store", default=None)
    p.add_argument("--ar", default=None)
    p.add_argument("--nar", default=None)
    p.add_argument("--codec", default="pretrained/codec")
    p.add_argument("--judge", default="asr")
    p.add_argument("--items", type=int, default=24)
    p.add_argument("--prompt-seconds", type=float, default=1.5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if not (args.ar or args.nar):
        p.error("give --ar, --nar or both")

    from audiokit.asr.metrics import wer_cer
    from audiokit.asr.transcriber import Transcriber
    from audiokit.codec.codec import Codec
    from audiokit.tokens import CodecTokens
    from audiokit.valle.data import ValleDataset
    from audiokit.valle.generate import SamplingOptions, generate_ar, generate_nar

    ds = ValleDataset(args.manifest, store=args.store, train=False, prompt_seconds=args.prompt_seconds,
                      prefix_prob=0.0, seed=args.seed)
    idx = spread(ds.entries, args.items)
    items = [ds[i] for i in idx]
    refs = [ds.entries[i]["text"] for i in idx]
    speakers = [ds.entries[i].get("speaker", "") for i in idx]
    codec, judge = Codec.load(args.codec), Transcriber.load(args.judge)
    texts, truth = [it["text"] for it in items], [it["target"] for it in items]

    def recordings() -> list[str]:
        from audiokit.audio.io import read_audio

        wavs = [read_audio(ds.entries[i]["audio"], codec.info.sample_rate)[0] for i in idx]
        return [h.text for h in judge.transcribe(wavs, codec.info.sample_rate, temperature=0.0)]

    def hear(codes: list[torch.Tensor], n: int) -> list[str]:
        """Codes ``[q, T]`` per item, decoded with their first ``n`` codebooks, transcribed."""
        codes = [c[:n] if c.shape[1] else torch.zeros(n, 1, dtype=torch.long) for c in codes]
        batch = CodecTokens.collate([CodecTokens(c.unsqueeze(0), codec.info) for c in codes])
        return [h.text for h in judge.transcribe(codec.decode_list(batch), codec.info.sample_rate, temperature=0.0)]

    rows = []

    def hear_expected(first: list[torch.Tensor], probs: list[torch.Tensor], n: int) -> list[str]:
        """Codebook 1's codes and codebooks 2 … n at the expectation of the NAR's probabilities."""
        wavs = []
        for f, p in zip(first, probs):
            z = codec.embed_expected(CodecTokens(f.view(1, 1, -1), codec.info), p[None, : n - 1])
            wavs.append(codec.decode_latents(z)[0])
        return [h.text for h in judge.transcribe(wavs, codec.info.sample_rate, temperature=0.0)]

    def row(system: str, codes: list[torch.Tensor] | None, n: int, hyps: list[str] | None = None, **extra):
        hyps = hyps if hyps is not None else hear(codes, n) if codes is not None else recordings()
        names = list(dict.fromkeys(speakers))
        per = {s: wer_cer([r for r, t in zip(refs, speakers) if t == s],
                          [h for h, t in zip(hyps, speakers) if t == s])["wer"] for s in names}
        r = {"system": system, "codebooks": n, "wer": wer_cer(refs, hyps)["wer"], "by_speaker": per, **extra,
             "examples": [{"ref": a, "hyp": b} for a, b in list(zip(refs, hyps))[:4]]}
        rows.append(r)
        print(json.dumps(r), flush=True)

    row("recording", None, 0)
    if args.ar:
        ar = load(args.ar, "ar")
        row("ground truth", truth, 1)
        for name, opts in (("AR greedy", SamplingOptions(temperature=0.0, top_k=None, draft_tokens=0)),
                           ("AR top-k 50", SamplingOptions(temperature=1.0, top_k=50, seed=args.seed))):
            with torch.no_grad():
                first = generate_ar(ar, texts, [it["prompt"][0] for it in items],
                                    [3 * t.shape[1] for t in truth], opts)
            ratio = sum(len(f) for f in first) / sum(t.shape[1] for t in truth)
            row(name, [f.view(1, -1) for f in first], 1, length_ratio=round(ratio, 3))
    if args.nar:
        nar = load(args.nar, "nar")
        Q = nar.dims.n_codebooks  # may be below the codec's: the model decodes at its own count
        probs: list[torch.Tensor] = []
        with torch.no_grad():
            filled = generate_nar(nar, texts, [it["prompt"][:Q] for it in items], [t[0] for t in truth], probs=probs)
        hit = torch.stack([(f == t[:Q]).float().sum(1) for f, t in zip(filled, truth)]).sum(0)
        acc = (hit / sum(t.shape[1] for t in truth)).tolist()
        for n in dict.fromkeys(k for k in (1, 3, 6, Q) if k <= Q):
            if n > 1:
                row("ground truth", truth, n)
                row("NAR on truth's codebook 1, codes", filled, n, accuracy_by_codebook=[round(a, 3) for a in acc[1:n]])
                row("NAR on truth's codebook 1, expected", None, n, hyps=hear_expected([t[0] for t in truth], probs, n))
            elif not args.ar:
                row("ground truth", truth, 1)
    names = list(dict.fromkeys(speakers))
    print()
    print_table(["system", "codebooks", "WER", *names],
                [[r["system"], r["codebooks"], f"{100 * r['wer']:.1f} %",
                  *(f"{100 * r['by_speaker'][s]:.0f} %" for s in names)] for r in rows])


if __name__ == "__main__":
    main()
