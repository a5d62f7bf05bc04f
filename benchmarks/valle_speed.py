"""VALL-E decoding speed: the KV cache against recomputing the sequence at every step, and end-to-end RTF.

    python benchmarks/valle_speed.py --threads 2 [--seconds 10] [--repeats 1] [--device cpu|cuda] [--dtype float32|bfloat16]

Random weights (speed does not depend on them). For each size (the ``tiny``/``cpu``/``small`` configs in
``configs/valle/``), a 3 s prompt, a sentence of 120 phonemes, and exactly ``--seconds`` of output at the
size's codec frame rate (the end token is suppressed so every run does the same number of steps):

- AR decoding of codebook 1, greedy, with the KV cache and without it (the whole sequence recomputed at every
  step, as lifeiteng/vall-e and enhuiz/vall-e do); both must give the same frames;
- end to end: AR (cache) + NAR (codebooks 2 … Q) + codec decoding, and the real-time factor.

The recomputation reference is skipped for sizes listed in ``--no-reference`` (it takes minutes on a CPU).
Prints JSON lines and a Markdown table.
"""
import argparse
import json
import warnings

import torch
import yaml

from _timing import device_args, device_setup, timed

warnings.filterwarnings("ignore")

CODECS = {  # codec configs whose frame rate / codebooks the VALL-E size is trained on
    "tiny": "configs/codec/tiny.yaml", "cpu": "configs/codec/tiny.yaml", "small": "configs/codec/small.yaml",
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--sizes", nargs="+", default=["tiny", "cpu", "small"])
    ap.add_argument("--no-reference", nargs="*", default=["small"])
    ap.add_argument("--frame-rate", type=float, default=75.0, help="frame rate of the AR comparison [75, the paper's]")
    device_args(ap)
    args = ap.parse_args()
    dev, dtype, sync, machine = device_setup(args)

    from audiokit.codec.codec import Codec
    from audiokit.codec.model import CodecModel
    from audiokit.valle.generate import SamplingOptions, generate_ar, generate_nar
    from audiokit.valle.model import ValleAR, ValleDims, ValleNAR

    rows = []
    for size in args.sizes:
        m = yaml.safe_load(open(f"configs/valle/{size}_ar.yaml"))["model"]
        gen_cfg = yaml.safe_load(open(CODECS[size]))["model"]["generator"]
        torch.manual_seed(0)
        codec = Codec(CodecModel(**gen_cfg)).to(dev)
        dims = ValleDims(codebook_size=m["codebook_size"], n_codebooks=m["n_codebooks"], d_model=m["d_model"],
                         n_head=m["n_head"], n_layer=m["n_layer"], dropout=0.0)
        ar, nar = ValleAR(dims).to(dev, dtype).eval(), ValleNAR(dims).to(dev, dtype).eval()
        g = torch.Generator().manual_seed(1)
        text = torch.randint(4, 100, (120,), generator=g)
        greedy = SamplingOptions(temperature=0.0, draft_tokens=0)  # one pass per frame: benchmarks/valle_greedy.py drafts

        def ar_run(cache, fr, frames_prompt):
            prompt = torch.randint(0, dims.codebook_size, (frames_prompt,), generator=torch.Generator().manual_seed(2))
            frames = int(args.seconds * fr)
            return lambda: generate_ar(ar, [text], [prompt], [frames], greedy, use_cache=cache, suppress_eos=True)[0]

        fr = args.frame_rate
        t_cache, out_cache = timed(ar_run(True, fr, int(3 * fr)), args.repeats, sync)
        row = {"size": size, "params_ar_M": round(sum(p.numel() for p in ar.parameters()) / 1e6, 2),
               "frames": int(args.seconds * fr), "ar_cache_s": round(t_cache, 3), "machine": machine, "dtype": args.dtype}
        if size not in args.no_reference:
            t_plain, out_plain = timed(ar_run(False, fr, int(3 * fr)), args.repeats, sync)
            row.update(ar_recompute_s=round(t_plain, 3), speedup=round(t_plain / t_cache, 2),
                       same_frames=bool(torch.equal(out_cache, out_plain)))
        # end to end at the codec's own frame rate
        cfr = codec.frame_rate
        prompt_codes = torch.randint(0, dims.codebook_size, (dims.n_codebooks, int(3 * cfr)), generator=g)

        def e2e():
            first = generate_ar(ar, [text], [prompt_codes[0]], [int(args.seconds * cfr)], greedy, suppress_eos=True)
            codes = generate_nar(nar, [text], [prompt_codes], first)[0]
            from audiokit.tokens import CodecTokens

            return codec.decode(CodecTokens(codes[None].to(dev), codec.info))

        t_e2e, audio = timed(e2e, args.repeats, sync)
        row.update(codec=f"{codec.sample_rate // 1000} kHz, {cfr:g} frames/s, {dims.n_codebooks}x{dims.codebook_size}",
                   e2e_s=round(t_e2e, 3), audio_s=round(audio.shape[-1] / codec.sample_rate, 2),
                   rtf=round(t_e2e / (audio.shape[-1] / codec.sample_rate), 3))
        print(json.dumps(row), flush=True)
        rows.append(row)

    print(f"\n{args.seconds:g} s of output; AR comparison at {args.frame_rate:g} frames/s; {machine}; {args.dtype}\n")
    print("| size | AR params | AR with KV cache | AR recomputing | speed-up | same frames | end-to-end (AR+NAR+codec) | RTF |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['params_ar_M']} M | {r['ar_cache_s']:.2f} s | {r.get('ar_recompute_s', '-')} | "
              f"{str(r['speedup']) + 'x' if 'speedup' in r else '-'} | {r.get('same_frames', '-')} | "
              f"{r['e2e_s']:.2f} s for {r['audio_s']} s ({r['codec']}) | {r['rtf']} |")


if __name__ == "__main__":
    main()
