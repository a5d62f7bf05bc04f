"""Speech units for a tokenized corpus: fit a UnitTokenizer from an ASR model, then write a token store of every
utterance's units beside the codec's, with the same manifests (so any recipe stage can train on units).

    python benchmarks/units_store.py --asr exp/synth-digits/asr-export --tokens exp/synth-digits/tokens \\
        --units exp/synth-digits/units-256 --out exp/synth-digits/unit-tokens --k 256

``--units`` is loaded if it exists, else fitted there (k-means over the encoder frames of ``--fit-items`` random
training utterances) and saved. The ASR must not be the judge's model (Whisper tiny.en judges the TTS output):
use the recipe's own. Prints the frame counts that differ from the codec's store (0 expected).
"""
import argparse
import random
import shutil
import time
from pathlib import Path

from audiokit.codec.units import UnitTokenizer
from audiokit.data.manifest import entry_audio, read_manifest
from audiokit.progress import Progress
from audiokit.tokens import TokenStore


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--asr", required=True, help="the ASR whose encoder makes the units (the recipe's own)")
    p.add_argument("--tokens", required=True, help="the codec's token store folder (train/valid/test.jsonl)")
    p.add_argument("--units", required=True, help="the UnitTokenizer folder (loaded if there, else fitted and saved)")
    p.add_argument("--out", required=True, help="the units' token store folder to write")
    p.add_argument("--k", type=int, default=256)
    p.add_argument("--fit-items", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    src, out, t0 = Path(args.tokens), Path(args.out), time.time()
    if Path(args.units, "config.json").exists():
        units = UnitTokenizer.load(args.units)
    else:
        entries = read_manifest(src / "train.jsonl")
        random.Random(args.seed).shuffle(entries)
        units = UnitTokenizer.fit(args.asr, (entry_audio(e) for e in entries[: args.fit_items]), k=args.k,
                                  seed=args.seed, name=Path(args.units).name)
        units.save(args.units)
        print(f"fitted {units.info.describe()} in {time.time() - t0:.0f} s", flush=True)
    splits = {s: read_manifest(src / f"{s}.jsonl") for s in ("train", "valid", "test") if (src / f"{s}.jsonl").exists()}
    bar = Progress(sum(len(v) for v in splits.values()), "units", unit="utterances")
    with TokenStore.writer(out, units.info) as w:
        for entries in splits.values():
            for e in entries:
                w.add(e["id"], units.encode(*entry_audio(e)))
                bar.update(1)
    bar.close()
    for s in splits:
        shutil.copy(src / f"{s}.jsonl", out / f"{s}.jsonl")
    codec, store = TokenStore(src), TokenStore(out)
    off = sum(store.n_frames(i) != codec.n_frames(i) for i in store.ids())
    print(f"{out}: {len(store)} utterances, {off} frame counts differ from the codec's; {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
