"""Exact greedy AR decoding with drafted frames (n-gram lookup / Jacobi) against one pass per frame.

    python benchmarks/valle_greedy.py --threads 2 [--draft-tokens 4 8] [--sizes tiny cpu small] \\
        [--trained pretrained/valle] [--device cpu|cuda] [--dtype float32|bfloat16]

Two kinds of rows, each decoded greedily with the KV cache, once frame by frame (``draft_tokens=0``) and once
per draft setting; every row checks that the frames are identical:

- random weights at each ``configs/valle`` size, 3 s prompt, 120 phonemes, exactly ``--seconds`` of output at
  75 frames/s (end token suppressed): the worst case, since a random model's frames are noise that no draft
  predicts; it measures what a rejected draft costs;
- ``--trained DIR``: an exported VALL-E speaking held-out sentences in the bundled voices, as in use (the model
  decides when to stop). How many drafts it accepts depends on the model.

Prints JSON lines and a Markdown table (frames per pass: per row of the batch).
"""
import argparse
import json
import warnings

import torch
import yaml

from _timing import device_args, device_setup, print_table, timed

warnings.filterwarnings("ignore")

SENTENCES = ["The quick brown fox jumps over the lazy dog.", "She sells sea shells by the sea shore.",
             "A journey of a thousand miles begins with a single step.",
             "Please call Stella and ask her to bring these things with her from the store."]
VOICES = ["pretrained/voices/us-male.wav", "pretrained/voices/us-female.wav", "pretrained/voices/gb-female.wav"]


def compare(name, run, settings, repeats, sync):
    from audiokit.valle.generate import SamplingOptions

    rows = []
    stats = {}
    t0, ref = timed(lambda: run(SamplingOptions(temperature=0.0, draft_tokens=0), stats), repeats, sync)
    base = {"case": name, "plain_s": round(t0, 3), "frames": stats["frames"], "plain_passes": stats["passes"]}
    for k, mode in settings:
        stats = {}
        t, out = timed(lambda: run(SamplingOptions(temperature=0.0, draft_tokens=k, draft=mode), stats), repeats, sync)
        row = {**base, "draft_tokens": k, "draft": mode, "drafted_s": round(t, 3), "passes": stats["passes"],
               "frames_per_pass": round(stats["frames"] / max(stats["row_passes"], 1), 2), "speedup": round(t0 / t, 2),
               "identical": all(torch.equal(a, b) for a, b in zip(out, ref))}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--sizes", nargs="*", default=["tiny", "cpu", "small"])
    ap.add_argument("--trained", nargs="*", default=["pretrained/valle"])
    ap.add_argument("--draft-tokens", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--modes", nargs="+", default=["ngram+jacobi"])
    device_args(ap)
    args = ap.parse_args()
    dev, dtype, sync, machine = device_setup(args)
    settings = [(k, m) for k in args.draft_tokens for m in args.modes]

    from audiokit.valle.generate import generate_ar
    from audiokit.valle.model import ValleAR, ValleDims

    rows = []
    for size in args.sizes:
        m = yaml.safe_load(open(f"configs/valle/{size}_ar.yaml"))["model"]
        torch.manual_seed(0)
        dims = ValleDims(codebook_size=m["codebook_size"], n_codebooks=m["n_codebooks"], d_model=m["d_model"],
                         n_head=m["n_head"], n_layer=m["n_layer"], dropout=0.0)
        ar = ValleAR(dims).to(dev, dtype).eval()
        g = torch.Generator().manual_seed(1)
        text = torch.randint(4, 100, (120,), generator=g)
        prompt = torch.randint(0, dims.codebook_size, (225,), generator=g)
        frames = int(args.seconds * 75)

        def run(options, stats):
            return generate_ar(ar, [text], [prompt], [frames], options, suppress_eos=True, stats=stats)

        rows += compare(f"{size}, random weights ({sum(p.numel() for p in ar.parameters()) / 1e6:.1f} M), "
                        f"{args.seconds:g} s", run, settings, args.repeats, sync)

    for folder in args.trained:
        import audiokit
        from audiokit.text import PHONEME_VOCAB
        from audiokit.valle.data import phoneme_ids, phonemize

        tts = audiokit.load(folder)
        ar = tts.ar.to(dev, dtype)
        phonemes = phonemize(SENTENCES, "en")
        texts = [torch.tensor(phoneme_ids(p)) for p in phonemes]
        for voice in VOICES:
            tokens, _ = tts.prepare_prompt(voice, prompt_text="")
            prompt = tokens.codes[0, 0, : int(tokens.lengths[0])]

            def run(options, stats, prompt=prompt):
                limits = [options.max_frames(len(PHONEME_VOCAB.encode(p)), tts.codec.frame_rate) for p in phonemes]
                return generate_ar(ar, texts, [prompt] * len(texts), limits, options, stats=stats)

            rows += compare(f"{folder}, {voice.split('/')[-1]}, {len(texts)} sentences", run, settings,
                            args.repeats, sync)

    print(f"\n{machine}; {args.dtype}\n")
    print_table(["case", "frames", "one pass per frame", "drafts", "drafted", "passes", "frames per pass", "speed-up",
                 "identical"],
                [[r["case"], r["frames"], f"{r['plain_s']:.2f} s", f"{r['draft_tokens']} ({r['draft']})",
                  f"{r['drafted_s']:.2f} s", r["passes"], r["frames_per_pass"], f"{r['speedup']}x", r["identical"]]
                 for r in rows])


if __name__ == "__main__":
    main()
