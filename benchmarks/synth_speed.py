"""Synthetic-corpus speed: seconds of audio made per wall-clock second.

    python benchmarks/synth_speed.py --utterances 2000 --workers 2 [--engines espeak]

Prints one JSON line per run (engines, workers, utterances, audio seconds, wall seconds, ratio) and the
machine it ran on. The corpus goes to a temporary folder that is deleted afterwards.
"""
import argparse
import json
import os
import platform
import tempfile

from audiokit.data.synth import SynthConfig, synthesize_corpus


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--utterances", type=int, default=2000)
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--engines", default="espeak", help="comma-separated; 'all' for every installed engine")
    p.add_argument("--sample-rate", type=int, default=24000)
    args = p.parse_args()
    engines = None if args.engines == "all" else tuple(args.engines.split(","))
    with tempfile.TemporaryDirectory() as d:
        s = synthesize_corpus(SynthConfig(out=os.path.join(d, "c"), utterances=args.utterances, engines=engines,
                                          workers=args.workers, sample_rate=args.sample_rate))
    print(json.dumps({
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "engines": args.engines, "workers": s["workers"], "sample_rate": args.sample_rate,
        "utterances": sum(s["utterances"].values()), "audio_seconds": s["audio_seconds"],
        "wall_seconds": s["wall_seconds"], "audio_seconds_per_second": s["audio_seconds_per_second"],
    }))


if __name__ == "__main__":
    main()
