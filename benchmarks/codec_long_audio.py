"""Peak memory of encoding + decoding long audio with chunking, against the audio's own size.

    python benchmarks/codec_long_audio.py --minutes 1 10 60 [--codec PATH]

Each length runs in a fresh process; peak resident memory (ru_maxrss) is reported beside the size of the
float32 waveform itself, which any API that returns the whole decoded waveform must hold twice (in and out).
Without --codec a randomly initialized 24 kHz model of the `small` configuration is used.
"""
import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, torch, yaml
torch.set_num_threads(2)
from audiokit.codec import Codec, CodecModel
minutes, codec_path = float(sys.argv[1]), sys.argv[2]
if codec_path:
    codec = Codec.load(codec_path)
else:
    cfg = yaml.safe_load(open("configs/codec/small.yaml"))["model"]["generator"]
    torch.manual_seed(0)
    codec = Codec(CodecModel(**cfg))
sr = codec.sample_rate
n = int(minutes * 60 * sr)
wav = torch.randn(n) * 0.1
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
tokens = codec.encode(wav, sr)
t_enc = time.perf_counter() - t
t = time.perf_counter()
audio = codec.decode(tokens)
t_dec = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"minutes": minutes, "waveform_mb": n * 4 / 2**20, "peak_rss_mb": peak / 1024,
                  "rss_before_encode_mb": base / 1024, "encode_rtf": t_enc / (n / sr), "decode_rtf": t_dec / (n / sr)}))
"""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    p.add_argument("--codec", default="")
    args = p.parse_args()
    print("| minutes | waveform (MB) | peak RSS (MB) | RSS before encode (MB) | encode RTF | decode RTF |")
    print("|---|---|---|---|---|---|")
    for m in args.minutes:
        out = subprocess.run([sys.executable, "-c", CHILD, str(m), args.codec], capture_output=True, text=True)
        if out.returncode:
            print(out.stderr[-2000:], file=sys.stderr)
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {m:g} | {r['waveform_mb']:.0f} | {r['peak_rss_mb']:.0f} | {r['rss_before_encode_mb']:.0f} | "
              f"{r['encode_rtf']:.3f} | {r['decode_rtf']:.3f} |")


if __name__ == "__main__":
    main()
