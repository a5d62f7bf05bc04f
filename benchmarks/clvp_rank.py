"""Does CLVP pick the candidate that says the text? Tortoise on phone units, measured without a judge.

    python benchmarks/clvp_rank.py --model exp/synth-digits/tortoise-phones-export \\
        --manifest data/digits/test-judged.jsonl --items 40 --temperature 1.5 2.5

For each held-out item (the voice: 3 s of another utterance of the same speaker, as ``eval tts`` picks it) the
export's AR samples ``--candidates`` candidates *freely* (``alignment="free"``: with the monotonic alignment
every candidate spells the text's phones exactly and there is nothing for CLVP to tell apart), and each
candidate's phone error is the edit distance of the phones it says (pauses dropped, repeats merged) to the
text's phones, over their number. Per temperature, the mean phone error and the share of candidates that say
the text exactly: CLVP's pick, a random candidate (the mean over all candidates), the best and the worst
candidate, and how often CLVP's pick is among the exact ones when any is. This is what CLVP judges (the units);
the judge's WER of the audio adds the decoder's errors, which no ranking of units can see.
"""
import argparse
import json
import warnings

import torch
from tortoise_diagnose import held_out

warnings.filterwarnings("ignore")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a Tortoise export on phone units")
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--items", type=int, default=40)
    ap.add_argument("--candidates", type=int, default=16)
    ap.add_argument("--temperature", type=float, nargs="+", default=[1.5])
    ap.add_argument("--top-p", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import audiokit
    from audiokit.asr.metrics import edit_distance
    from audiokit.codec.phones import spoken
    from audiokit.tortoise.generate import sample_candidates
    from audiokit.tortoise.units import _phoneme_ids
    from audiokit.valle.generate import SamplingOptions
    from audiokit.valle.units import text_script

    torch.set_grad_enabled(False)
    tts = audiokit.TTS.load(args.model)
    if not hasattr(tts.units, "script"):
        raise SystemExit(f"{args.model} is not a Tortoise on phone units")
    tts.alignment = "free"
    texts, _, _, voices = held_out(args.manifest, tts.sample_rate, args.items, args.seed, tts.min_voice_seconds)

    prepared = []  # per item: the sentence's BPE ids, the phones it must say, the AR's voice latent, its budget
    for text, voice in zip(texts, voices):
        sentence, ids = tts._sentences(text)[0]
        want = spoken(text_script(tts.units, "monotonic", _phoneme_ids(sentence)))
        voice_ar, _ = tts.voice_latents(tts.prepare_voice(voice, tts.sample_rate))
        prepared.append((ids, want, voice_ar, tts.max_speech(sentence, ids)))

    rows = []
    for temp in args.temperature:
        pick, rand, best, worst, pick_exact, any_exact, exact_share = [], [], [], [], 0, 0, []
        for i, (ids, want, voice_ar, budget) in enumerate(prepared):
            cands = sample_candidates(tts.ar, voice_ar, ids, args.candidates, budget,
                                      SamplingOptions(temperature=temp, top_p=args.top_p, seed=args.seed + i))
            err = [edit_distance(want, spoken(c)) / max(1, len(want)) for c in cands]
            top = int(tts.rank(ids, cands).argmax())
            pick.append(err[top])
            rand.append(sum(err) / len(err))
            best.append(min(err))
            worst.append(max(err))
            exact = [e == 0 for e in err]
            exact_share.append(sum(exact) / len(exact))
            if any(exact):
                any_exact += 1
                pick_exact += exact[top]
        n = len(pick)
        row = {"temperature": temp, "items": n, "candidates": args.candidates,
               "phone_error": {"clvp": sum(pick) / n, "random": sum(rand) / n, "best": sum(best) / n, "worst": sum(worst) / n},
               "exact": {"clvp": sum(e == 0 for e in pick) / n, "random": sum(exact_share) / n},
               "clvp_exact_when_possible": pick_exact / max(1, any_exact), "items_with_an_exact_candidate": any_exact}
        rows.append(row)
        pe, ex = row["phone_error"], row["exact"]
        print(f"T {temp}: phone error CLVP {100 * pe['clvp']:.1f} %  random {100 * pe['random']:.1f} %  "
              f"best {100 * pe['best']:.1f} %  worst {100 * pe['worst']:.1f} % | exact CLVP {100 * ex['clvp']:.0f} %  "
              f"random {100 * ex['random']:.0f} % | CLVP exact where a candidate is: {pick_exact}/{any_exact} "
              f"({n} items, {args.candidates} candidates)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "manifest": args.manifest, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
