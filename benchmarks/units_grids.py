"""Token stores built from a units store (``units_store.py``): deduplicated runs, or units stacked on the codec.

    python benchmarks/units_grids.py --units exp/synth-digits/unit-tokens --runs exp/synth-digits/unit-runs
    python benchmarks/units_grids.py --units exp/synth-digits/unit-tokens --codec exp/synth-digits/tokens \\
        --stacked exp/synth-digits/units-codec --n-q 6

``--runs``: each utterance's units as runs, a two-row grid (the unit of each run; its length in frames), so
VALL-E's AR writes one code per run (no self-loops on a held unit) and its NAR the lengths. ``--stacked``: the
units as row 1 above the codec's first ``--n-q`` codebooks, frame for frame, so VALL-E's NAR writes the codec's
codebooks from the units. Both copy the manifests.
"""
import argparse
import shutil
from pathlib import Path

import torch

from audiokit.codec.units import deduplicate, runs_info, stacked_info
from audiokit.tokens import CodecTokens, TokenStore


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--units", required=True, help="a units token store (benchmarks/units_store.py)")
    p.add_argument("--runs", default=None, help="write the deduplicated store here")
    p.add_argument("--codec", default=None, help="the codec's token store (for --stacked)")
    p.add_argument("--stacked", default=None, help="write the units + codec store here")
    p.add_argument("--n-q", type=int, default=6)
    args = p.parse_args()
    units = TokenStore(args.units)
    info = units[units.ids()[0]].codec
    outs = []
    if args.runs:
        rinfo, total, runs = runs_info(info), 0, 0
        with TokenStore.writer(args.runs, rinfo) as w:
            for key in units.ids():
                u = units[key].codes[0, 0]
                values, lengths = deduplicate(u, info.codebook_size - 1)
                w.add(key, CodecTokens(torch.stack([values, lengths])[None], rinfo))
                total, runs = total + len(u), runs + len(values)
        print(f"{args.runs}: {runs} runs for {total} frames ({total / runs:.2f} frames per run)")
        outs.append(args.runs)
    if args.stacked:
        codec = TokenStore(args.codec)
        cinfo = codec[codec.ids()[0]].codec
        sinfo = stacked_info(info, cinfo, args.n_q)
        with TokenStore.writer(args.stacked, sinfo) as w:
            for key in units.ids():
                c = codec[key].codes[0, : args.n_q]
                u = units[key].codes[0, :, : c.shape[1]]
                if u.shape[1] != c.shape[1]:
                    raise SystemExit(f"{key}: {u.shape[1]} units for {c.shape[1]} codec frames")
                w.add(key, CodecTokens(torch.cat([u, c])[None], sinfo))
        print(f"{args.stacked}: {len(units)} utterances, {sinfo.describe()}")
        outs.append(args.stacked)
    for out in outs:
        for f in Path(args.units).glob("*.jsonl"):
            shutil.copy(f, Path(out) / f.name)


if __name__ == "__main__":
    main()
