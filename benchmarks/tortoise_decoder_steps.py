"""Tortoise's decoder: quality against sampling steps, DDPM (DDIM sampling) vs rectified flow (Euler / midpoint).

    python benchmarks/tortoise_decoder_steps.py --models ddpm=exp/tortoise-cpu/export flow=exp/tortoise-cpu/export-flow \\
        --manifest data/synth/asr16/test.jsonl [--steps 1 2 4 8 16 32] [--guidance 2.0] [--max-items 40] [--threads 2]

Every model is an exported Tortoise folder (its decoder's objective is in its config). For each held-out
utterance the decoder is conditioned as in synthesis — on the AR latents of the utterance's own tokens (stage-2
decoders; token embeddings for stage-1 ones) and on the voice latent of a 3 s crop of another utterance of the
same speaker — and samples the codec latents with the given number of steps and guidance, seeded. What it
makes is compared with what the codec makes of the true tokens (so the codec's own loss is left out):

- ``mel``: DAC's multi-scale mel distance between the two decoded waveforms (lower is better);
- ``latent``: mean squared error of the latents in the decoder's normalized space (lower is better);
- network evaluations per sample (guidance runs its two halves as one batch: counted once) and seconds.

Prints JSON lines and a Markdown table.
"""
import argparse
import json
import time
import warnings

import torch

from _timing import print_table

warnings.filterwarnings("ignore")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", required=True, help="NAME=DIR (exported Tortoise folders)")
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    ap.add_argument("--solvers", nargs="+", default=["euler", "midpoint"], help="for flow decoders")
    ap.add_argument("--guidance", type=float, default=2.0)
    ap.add_argument("--max-items", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from audiokit.audio import read_audio
    from audiokit.codec.losses import MultiScaleMelLoss
    from audiokit.data.manifest import read_manifest
    from audiokit.tortoise.generate import ar_latents
    from audiokit.tortoise.tts import TortoiseTTS
    from audiokit.tts_eval import pick_prompts

    entries = read_manifest(args.manifest)
    items = [e for e, p in zip(entries, pick_prompts(entries, entries, args.seed, 3.0)) if p is not None][: args.max_items]
    prompts = dict(zip([e["id"] for e in items], pick_prompts(items, entries, args.seed, 3.0)))
    rows = []
    for spec in args.models:
        name, folder = spec.split("=", 1)
        tts = TortoiseTTS.load(folder)
        codec, sr = tts.codec, tts.sample_rate
        mel = MultiScaleMelLoss(sr)
        prepared = []
        with torch.inference_mode():
            for e in items:
                wav = read_audio(e["audio"], sample_rate=sr)[0]
                tokens = codec.encode(wav, sr)
                codes = tokens.codes[0, :, : int(tokens.lengths[0])]
                ref = codec.decode_latents(codec.embed(tokens))[0]
                voice_wav = read_audio(prompts[e["id"]]["audio"], sample_rate=sr)[0][: 3 * sr]
                voice_ar, voice_diff = tts.voice_latents(tts.prepare_voice(voice_wav, sr))
                ids = torch.cat([ids for _, ids in tts._sentences(e["text"])])
                if tts.diffusion_meta.get("conditioning", "ar-latents") == "ar-latents":
                    cond = ar_latents(tts.ar, voice_ar, ids, [codes[0]])[0]
                else:
                    cond = tts.diffusion.cond_from_codes(codes[0])
                prepared.append((cond, voice_diff, ref, codec.embed(tokens)[0], ids, codes[0]))
        solvers = args.solvers if tts.diffusion_meta.get("prediction") == "flow" else ["ddim"]
        for solver in solvers:
            if solver != "ddim":
                tts.process.solver = solver
            for steps in args.steps:
                acc = {"mel": 0.0, "latent": 0.0, "seconds": 0.0}
                with torch.inference_mode():
                    for i, (cond, voice, ref, z_true, ids, first) in enumerate(prepared):
                        t = time.perf_counter()
                        z = tts.diffuse([cond], voice, steps, args.guidance, torch.Generator().manual_seed(args.seed + i),
                                        text=ids, given=[first])[0]
                        acc["seconds"] += time.perf_counter() - t
                        y = codec.decode_latents(z[None])[0]
                        n = min(y.shape[-1], ref.shape[-1])
                        acc["mel"] += float(mel(y[None, None, :n], ref[None, None, :n]))
                        net = tts.diffusion
                        acc["latent"] += float((net.normalize(z.T) - net.normalize(z_true.T)).pow(2).mean())
                k = len(prepared)
                row = {"model": name, "objective": tts.diffusion_meta.get("prediction"), "solver": solver, "steps": steps,
                       "evaluations": steps * (2 if solver == "midpoint" else 1), "guidance": args.guidance,
                       "mel": round(acc["mel"] / k, 3), "latent_mse": round(acc["latent"] / k, 3),
                       "seconds_per_utt": round(acc["seconds"] / k, 3), "utterances": k}
                print(json.dumps(row), flush=True)
                rows.append(row)

    print(f"\n{len(items)} held-out utterances of {args.manifest}; guidance {args.guidance:g}; {args.threads} threads\n")
    print_table(["decoder", "sampler", "steps", "network evaluations", "mel distance", "latent MSE", "s per utterance"],
                [[f"{r['model']} ({r['objective']})", r["solver"], r["steps"], r["evaluations"], f"{r['mel']:.3f}",
                  f"{r['latent_mse']:.3f}", f"{r['seconds_per_utt']:.3f}"] for r in rows])


if __name__ == "__main__":
    main()
