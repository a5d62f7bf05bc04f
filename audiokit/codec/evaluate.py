"""``audiokit eval codec``: what the codec papers report, one row per bandwidth.

Mel distance (DAC's multi-scale mel L1), multi-scale STFT distance, SI-SDR, wide-band PESQ and STOI (from
the ``eval`` extra, left out with a note when it is missing), codebook usage (share of each level's codes
used on the set, and the perplexity of their distribution) and the bitrate.
"""
from __future__ import annotations

import math

import torch

from ..data.manifest import entry_audio, read_manifest
from ..progress import Progress
from .codec import Codec
from .losses import MultiScaleMelLoss, MultiScaleSTFTLoss
from .metrics import pesq_wb, si_sdr, stoi


def _available(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@torch.inference_mode()
def evaluate_codec(codec: Codec, manifest: str, bandwidths: list[float] | None = None, max_items: int | None = None) -> list[dict]:
    entries = read_manifest(manifest)[:max_items]
    if not entries:
        raise ValueError(f"{manifest}: no utterances to evaluate")
    sr = codec.sample_rate
    mel, stft = MultiScaleMelLoss(sr), MultiScaleSTFTLoss()
    has_pesq, has_stoi = _available("pesq"), _available("pystoi")  # each judge where its package is installed
    n_qs = sorted({codec.n_q_for(bandwidth=b) for b in bandwidths}) if bandwidths else \
        sorted({codec.n_q_for(bandwidth=b) for b in codec.bandwidths()})
    audio = [entry_audio(e, sr)[0] for e in entries]
    bar = Progress(len(entries) * (1 + len(n_qs)), "eval codec", unit="steps")  # encode each, then decode per level
    full = []
    for x in audio:
        full.append(codec.encode(x, sr))
        bar.update(1, seconds=x.shape[-1] / sr)
    rows = []
    for n_q in n_qs:
        acc = {"mel_distance": 0.0, "stft_distance": 0.0, "si_sdr": 0.0, "pesq": 0.0, "stoi": 0.0}
        counts = torch.zeros(n_q, codec.info.codebook_size, device="cpu")
        for x, tokens in zip(audio, full):
            t = tokens.keep_codebooks(n_q)
            y = codec.decode(t)[0, : x.shape[-1]].float().cpu()  # measured on the host, whatever the codec's device
            ref, est = x[None, None], y[None, None]
            acc["mel_distance"] += float(mel(est, ref))
            acc["stft_distance"] += float(stft(est, ref))
            acc["si_sdr"] += float(si_sdr(y, x))
            if has_pesq:
                acc["pesq"] += pesq_wb(y.numpy(), x.numpy(), sr)
            if has_stoi:
                acc["stoi"] += stoi(y.numpy(), x.numpy(), sr)
            for q in range(n_q):
                counts[q] += torch.bincount(t.codes[0, q].cpu(), minlength=codec.info.codebook_size).float()
            bar.update(1, seconds=x.shape[-1] / sr, note=f"{codec.info.bitrate(n_q) / 1000:g} kbps")
        n = len(audio)
        p = counts / counts.sum(1, keepdim=True)
        perplexity = torch.exp(-(p * (p + 1e-12).log()).sum(1))
        row = {"n_q": n_q, "kbps": round(codec.info.bitrate(n_q) / 1000, 3), "utterances": n,
               **{k: round(v / n, 4) for k, v in acc.items()},
               "codebook_usage": round(float((counts > 0).float().mean()), 4),
               "codebook_perplexity": round(float(perplexity.mean()), 1)}
        if not has_pesq:
            row["pesq"] = None
        if not has_stoi:
            row["stoi"] = None
        rows.append(row)
    bar.close()
    return rows


def format_table(rows: list[dict]) -> str:
    cols = ["kbps", "n_q", "mel_distance", "stft_distance", "si_sdr", "pesq", "stoi", "codebook_usage", "codebook_perplexity"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join("n/a" if r[c] is None else (f"{r[c]:.3f}" if isinstance(r[c], float) and not math.isnan(r[c]) else str(r[c]))
                                        for c in cols) + " |")
    return "\n".join(lines)
