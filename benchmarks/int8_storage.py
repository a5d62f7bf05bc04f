"""What int8 storage (`audiokit export --int8`) costs the bundled models: bytes, weight error, and output changes.

    python benchmarks/int8_storage.py [--bundle pretrained] [--threads 2]

Each TTS/ASR folder of the bundle is re-exported with int8 weight matrices (per-row scales) and compared with the
folder as shipped: size of the weight files, relative L2 error of all weights, and what a user would notice — the
ASR's greedy transcripts of the demo voices, VALL-E's greedy first-codebook frames and Tortoise's greedy AR tokens
for a few sentences (share identical to the shipped model's, position by position).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

import audiokit
from audiokit.fileio import load_safetensors_file
from audiokit.pretrained import read_card

TEXTS = ["The quick brown fox jumps over the lazy dog.", "Turn out the lights before you leave.",
         "Seven hundred and twelve apples."]


def weight_error(a: Path, b: Path) -> tuple[int, int, float]:
    """Bytes of the weight files in ``a`` and ``b`` (this folder only) and the relative L2 error of b's weights."""
    num = den = 0.0
    size_a = size_b = 0
    for fa in sorted(a.glob("*.safetensors")):
        fb = b / fa.name
        size_a, size_b = size_a + fa.stat().st_size, size_b + fb.stat().st_size
        sa, sb = load_safetensors_file(fa, ValueError), load_safetensors_file(fb, ValueError)
        for k, v in sa.items():
            if v.is_floating_point():
                num += float((sb[k].float() - v.float()).pow(2).sum())
                den += float(v.float().pow(2).sum())
    return size_a, size_b, (num / max(den, 1e-30)) ** 0.5


def first_codebooks(codes) -> list[list[int]]:
    """The first codebook of each sentence's codes (a list of ``[Q, T]``, or one ``[Q, T]`` tensor)."""
    items = [codes] if isinstance(codes, torch.Tensor) and codes.dim() == 2 else list(codes)
    return [c.reshape(-1, c.shape[-1])[0].tolist() for c in items]


def same_share(x: list, y: list) -> float:
    n = max(len(x), len(y), 1)
    return sum(a == b for a, b in zip(x, y)) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default="pretrained")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    bundle = Path(a.bundle)
    voices = [bundle / "voices" / v["file"] for v in json.loads((bundle / "voices" / "voices.json").read_text())["voices"]]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("asr", "valle", "tortoise"):
            shipped = audiokit.load(bundle / name)
            out = Path(tmp) / name
            shipped.export(out, dtype=torch.int8)
            if name == "valle":  # the re-export carries copies; compare like with like
                shipped.asr = None
            q = audiokit.load(out)
            size_a, size_b, err = weight_error(bundle / name, out)
            row = {"model": name, "shipped_dtype": read_card(bundle / name)["dtype"], "bytes_shipped": size_a,
                   "bytes_int8": size_b, "weight_rel_error": round(err, 5)}
            if name == "asr":
                ta = [t.text for t in shipped.transcribe([str(v) for v in voices], temperature=0.0)]
                tb = [t.text for t in q.transcribe([str(v) for v in voices], temperature=0.0)]
                row["transcripts_identical"] = f"{sum(x == y for x, y in zip(ta, tb))}/{len(ta)}"
            else:
                shares = []
                for i, text in enumerate(TEXTS):
                    kw = dict(seed=0, temperature=0.0)
                    if name == "valle":
                        sa = shipped.synthesize(text, prompt=str(voices[i % len(voices)]), prompt_text="", **kw)
                        sb = q.synthesize(text, prompt=str(voices[i % len(voices)]), prompt_text="", **kw)
                    else:
                        kw.update(preset="ultra_fast")
                        sa = shipped.synthesize(text, voice=[str(voices[i % len(voices)])], **kw)
                        sb = q.synthesize(text, voice=[str(voices[i % len(voices)])], **kw)
                    ca, cb = first_codebooks(sa.codes), first_codebooks(sb.codes)
                    shares += [same_share(x, y) for x, y in zip(ca, cb)]
                row["first_codebook_frames_identical"] = round(sum(shares) / len(shares), 3)
            rows.append(row)
            print(json.dumps(row), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
