"""Codec speed against the reference packages, side by side in one run with the same weights.

    python benchmarks/codec_speed.py --seconds 10 --threads 2 [--repeats 5] [--device cpu|cuda]
        [--dtype float32|bfloat16|float16] [--batch 16] [--only encodec|dac]

For EnCodec 24 kHz at 6 kbps (the ``encodec`` package) and DAC 24 kHz (``descript-audio-codec``): builds the
reference model with random weights at the official configuration, saves it in the official format, loads it
into audiokit with the converter, compares codes (frames whose codes differ are counted) and audio (with
``--dtype bfloat16``: also against audiokit's float32 decoding of the same codes), and times
encode and decode of the same input (median of ``--repeats``, reference and audiokit run in turn after a warm-up,
so drift of the machine falls on both alike). Prints a JSON line per codec and a
Markdown table. Needs the ``reference`` extra.
"""
import argparse
import json
import platform
import tempfile
import warnings

import torch

from _timing import print_table, timed_alternating

warnings.filterwarnings("ignore")


def no_grad(fn):
    """``fn`` run under ``torch.no_grad()`` (how the reference packages are called for inference)."""
    def run():
        with torch.no_grad():
            return fn()
    return run


def frames_differing(ours, ref):
    """"all" when every code is the same, else how many frames (of how many) have a different code."""
    differ = int((ours != ref).any(dim=1).sum())
    return "all" if differ == 0 else f"{differ} of {ref.shape[0] * ref.shape[-1]} frames differ"


def precision_error(ours, tokens, audio, dtype):
    """Relative error of the decoded ``audio`` against audiokit's own float32 decoding of the same ``tokens``
    (what reduced precision costs, apart from codes that change); None in float32."""
    if dtype == torch.float32:
        return None
    full = ours.to(dtype=torch.float32).decode(tokens)
    ours.to(dtype=dtype)
    return float((audio - full).norm() / full.norm())


def bench_encodec(x, repeats, device, sync, d, dtype):
    from encodec import EncodecModel

    from audiokit.codec.codec import Codec

    torch.manual_seed(0)
    ref = EncodecModel.encodec_model_24khz(pretrained=False).eval()
    with torch.no_grad():
        frames = ref.encoder(torch.randn(4, 1, 24000) * 0.1).transpose(1, 2).reshape(-1, 128)
        for i, layer in enumerate(ref.quantizer.vq.layers):
            cb = layer._codebook
            pick = frames[torch.randint(0, frames.shape[0], (1024,))]
            cb.embed.copy_((pick + 0.1 * pick.std() * torch.randn_like(pick)) * 0.5**i)
            cb.embed_avg.copy_(cb.embed)
            cb.inited.fill_(True)
    torch.save(ref.state_dict(), f"{d}/encodec.th")
    ours = Codec.load(f"{d}/encodec.th", device=device).to(dtype=dtype)
    ref = ref.to(device)
    ref.set_target_bandwidth(6.0)
    xd = x.to(device)
    (t_ref_enc, frames), (t_enc, tokens) = timed_alternating(
        [no_grad(lambda: ref.encode(xd)), lambda: ours.encode(x, 24000, bandwidth=6.0)], repeats, sync)
    (t_ref_dec, ref_audio), (t_dec, audio) = timed_alternating(
        [no_grad(lambda: ref.decode(frames)), lambda: ours.decode(tokens)], repeats, sync)
    same = frames_differing(tokens.codes, frames[0][0].cpu())
    diff = float((audio[:, : ref_audio.shape[-1]] - ref_audio[:, 0].cpu()).abs().max())
    return "EnCodec 24 kHz, 6 kbps", t_ref_enc, t_ref_dec, t_enc, t_dec, same, diff, precision_error(ours, tokens, audio, dtype)


def bench_dac(x, repeats, device, sync, d, dtype):
    from dac.model import DAC

    from audiokit.codec.codec import Codec

    kwargs = dict(encoder_dim=64, encoder_rates=[2, 4, 5, 8], decoder_dim=1536, decoder_rates=[8, 5, 4, 2], n_codebooks=32,
                  codebook_size=1024, codebook_dim=8, sample_rate=24000)
    torch.manual_seed(0)
    ref = DAC(**kwargs).eval()
    torch.save({"state_dict": ref.state_dict(), "metadata": {"kwargs": kwargs}}, f"{d}/dac.pth")
    ours = Codec.load(f"{d}/dac.pth", device=device).to(dtype=dtype)
    ref = ref.to(device)
    xd = x.to(device)
    (t_ref_enc, enc), (t_enc, tokens) = timed_alternating(
        [no_grad(lambda: ref.encode(ref.preprocess(xd, 24000))), lambda: ours.encode(x, 24000)], repeats, sync)
    codes = enc[1]
    (t_ref_dec, ref_audio), (t_dec, audio) = timed_alternating(
        [no_grad(lambda: ref.decode(ref.quantizer.from_codes(codes)[0])), lambda: ours.decode(tokens)], repeats, sync)
    same = frames_differing(tokens.codes, codes.cpu())
    n = ref_audio.shape[-1]
    diff = float((audio[:, :n] - ref_audio[:, 0].cpu()).abs().max())
    return "DAC 24 kHz (32 codebooks)", t_ref_enc, t_ref_dec, t_enc, t_dec, same, diff, precision_error(ours, tokens, audio, dtype)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="audiokit's encoder/decoder precision (the references run float32, as they ship)")
    p.add_argument("--batch", type=int, default=1, help="inputs per call (different signals), for throughput")
    p.add_argument("--only", choices=["encodec", "dac"], default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    torch.manual_seed(1)
    x = torch.randn(args.batch, 1, int(args.seconds * 24000)) * 0.1
    audio_s = args.batch * args.seconds
    machine = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{platform.processor() or platform.machine()}, {args.threads} threads"
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name, fn in [("encodec", bench_encodec), ("dac", bench_dac)]:
            if args.only and args.only != name:
                continue
            label, re, rd, oe, od, same, diff, low = fn(x, args.repeats, args.device, sync, d, getattr(torch, args.dtype))
            row = {"codec": label, "machine": machine, "seconds": args.seconds, "batch": args.batch, "dtype": args.dtype,
                   "reference_encode_rtf": re / audio_s, "reference_decode_rtf": rd / audio_s,
                   "audiokit_encode_rtf": oe / audio_s, "audiokit_decode_rtf": od / audio_s,
                   "encode_speedup": re / oe, "decode_speedup": rd / od, "same_codes": same, "max_audio_diff": diff,
                   "decode_error_vs_float32": low}
            print(json.dumps(row))
            rows.append(row)
    print(f"\nbatch {args.batch} x {args.seconds:g} s, audiokit {args.dtype}, references float32, {machine}; "
          "RTF = time per second of audio; throughput (audio seconds per second) = 1 / RTF\n")
    print_table(["codec", "encode RTF ref", "encode RTF audiokit", "speed-up", "decode RTF ref", "decode RTF audiokit", "speed-up",
                 "throughput enc / dec (audio s/s, audiokit)", "same codes", "max audio diff", "decode error vs fp32"],
                [[r["codec"], f"{r['reference_encode_rtf']:.3f}", f"{r['audiokit_encode_rtf']:.3f}", f"{r['encode_speedup']:.2f}x",
                  f"{r['reference_decode_rtf']:.3f}", f"{r['audiokit_decode_rtf']:.3f}", f"{r['decode_speedup']:.2f}x",
                  f"{1 / r['audiokit_encode_rtf']:.0f} / {1 / r['audiokit_decode_rtf']:.0f}", r["same_codes"],
                  f"{r['max_audio_diff']:.1e}",
                  "-" if r["decode_error_vs_float32"] is None else f"{r['decode_error_vs_float32']:.1%}"] for r in rows])


if __name__ == "__main__":
    main()
