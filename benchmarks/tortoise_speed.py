"""Tortoise real-time factor per preset, with the time of each stage (AR sampling + latents, CLVP, diffusion, codec).

    python benchmarks/tortoise_speed.py --threads 2 [--sizes tiny small] [--presets ultra_fast fast ...]
                                        [--seconds 5] [--device cpu|cuda] [--dtype float32|bfloat16]

Random weights (speed does not depend on them) at the sizes of ``configs/tortoise/{size}_*.yaml`` over the
codec of ``configs/codec/{size}.yaml``. Two 3 s reference clips, one sentence, and exactly ``--seconds`` of
output for every candidate (the stop token is suppressed, so every run does the same work). The whole of
``TortoiseTTS.synthesize`` is timed, reference-clip encoding included. Prints JSON lines and a Markdown table.
"""
import argparse
import json
import warnings

import torch
import yaml

from _timing import device_args, device_setup, timed

warnings.filterwarnings("ignore")

TEXT = "The quick brown fox jumps over the lazy dog while the children watch from the garden."


def build(size: str, device):
    from audiokit.codec.codec import Codec
    from audiokit.codec.model import CodecModel
    from audiokit.text import BPETokenizer
    from audiokit.tortoise.diffusion import DiffusionDecoder
    from audiokit.tortoise.model import CLVP, TortoiseAR, TortoiseDims
    from audiokit.tortoise.tts import TortoiseTTS

    cfg = {s: yaml.safe_load(open(f"configs/tortoise/{size}_{s}.yaml"))["model"] for s in ("ar", "clvp", "diffusion")}
    torch.manual_seed(0)
    codec = Codec(CodecModel(**yaml.safe_load(open(f"configs/codec/{size}.yaml"))["model"]["generator"]))
    keys = {f.name for f in __import__("dataclasses").fields(TortoiseDims)}
    ar = TortoiseAR(TortoiseDims(**{k: v for k, v in cfg["ar"].items() if k in keys}))
    clvp = CLVP(TortoiseDims(**{k: v for k, v in cfg["clvp"].items() if k in keys}))
    d = cfg["diffusion"]
    diffusion = DiffusionDecoder(latent_dim=codec.model.latent_dim, cond_dim=d["cond_dim"], voice_dim=d["voice_dim"],
                                 codebook_size=codec.info.codebook_size, d_model=d["d_model"], n_head=d["n_head"],
                                 n_layer=d["n_layer"], n_codebooks=codec.info.n_codebooks, n_voice_layer=d["n_voice_layer"])
    with torch.no_grad():
        ar.speech_head.bias[ar.stop_speech] = -1e9  # never stops: every candidate runs to the length limit
    tok = BPETokenizer.train([TEXT] * 4 + ["hello there", "a grain of sugar"], vocab_size=300)
    tts = TortoiseTTS(ar.eval(), clvp.eval(), diffusion.eval(), {"prediction": "v", "schedule_steps": 1000,
                      "conditioning": "ar-latents"}, codec, tok, name=size)
    return tts.to(device)  # lower precision runs under autocast


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--sizes", nargs="+", default=["tiny", "small"])
    ap.add_argument("--presets", nargs="+", default=["ultra_fast", "fast", "standard", "high_quality"])
    device_args(ap)
    args = ap.parse_args()
    dev, dtype, sync, machine = device_setup(args)
    from audiokit.tortoise.tts import PRESETS

    rows = []
    for size in args.sizes:
        tts = build(size, dev)
        sr = tts.sample_rate
        g = torch.Generator().manual_seed(0)
        clips = [torch.randn(3 * sr, generator=g) * 0.1 for _ in range(2)]
        n_text = len(tts.tokenizer.encode(TEXT))
        tts.seconds_per_token = args.seconds / n_text
        params = {k: round(sum(p.numel() for p in m.parameters()) / 1e6, 2)
                  for k, m in (("ar", tts.ar), ("clvp", tts.clvp), ("diffusion", tts.diffusion))}
        for preset in args.presets:
            with torch.autocast(dev.type, dtype=dtype, enabled=dtype != torch.float32):
                t, out = timed(lambda: tts.synthesize(TEXT, clips, sample_rate=sr, preset=preset, seed=0), args.repeats, sync)
            p = PRESETS[preset]
            row = {"size": size, "preset": preset, "candidates": p.candidates, "steps": p.diffusion_steps,
                   "guidance": p.guidance, "params_M": params, "total_s": round(t, 3), "audio_s": round(out.duration, 2),
                   "rtf": round(t / out.duration, 3), **{f"{k}_s": round(v, 3) for k, v in out.timings.items()},
                   "machine": machine, "dtype": args.dtype,
                   "codec": f"{sr // 1000} kHz, {tts.codec.frame_rate:g} frames/s, {tts.codec.info.n_codebooks}x{tts.codec.info.codebook_size}"}
            print(json.dumps(row), flush=True)
            rows.append(row)

    print(f"\n{args.seconds:g} s of speech per candidate; {machine}; {args.dtype}\n")
    print("| size (AR / CLVP / diffusion params) | preset | N | DDIM steps | guidance | AR | CLVP | diffusion | codec | total | RTF |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        pm = r["params_M"]
        print(f"| {r['size']} ({pm['ar']} / {pm['clvp']} / {pm['diffusion']} M) | {r['preset']} | {r['candidates']} | {r['steps']} | "
              f"{r['guidance']:g} | {r['ar_s']:.2f} s | {r['clvp_s']:.2f} s | {r['diffusion_s']:.2f} s | {r['codec_s']:.2f} s | "
              f"{r['total_s']:.2f} s | {r['rtf']} |")


if __name__ == "__main__":
    main()
