"""``audiokit eval codec``: what the codec papers report, one row per bandwidth.

Mel distance (DAC's multi-scale mel L1), multi-scale STFT distance, SI-SDR, wide-band PESQ and STOI (from
the ``eval`` extra, left out with a note when it is missing), codebook usage (share of each level's codes
used on the set, and the perplexity of their distribution) and the bitrate. With ``--opus``, Opus on the same
utterances at the same bitrates, scored the same way (:func:`evaluate_opus`).
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
        scores = _Scores(sr, has_pesq, has_stoi)
        counts = torch.zeros(n_q, codec.info.codebook_size, device="cpu")
        for x, tokens in zip(audio, full):
            t = tokens.keep_codebooks(n_q)
            y = codec.decode(t)[0, : x.shape[-1]].float().cpu()  # measured on the host, whatever the codec's device
            scores.add(y, x)
            for q in range(n_q):
                counts[q] += torch.bincount(t.codes[0, q].cpu(), minlength=codec.info.codebook_size).float()
            bar.update(1, seconds=x.shape[-1] / sr, note=f"{codec.info.bitrate(n_q) / 1000:g} kbps")
        p = counts / counts.sum(1, keepdim=True)
        perplexity = torch.exp(-(p * (p + 1e-12).log()).sum(1))
        rows.append({"n_q": n_q, "kbps": round(codec.info.bitrate(n_q) / 1000, 3), "utterances": len(audio),
                     **scores.means(),
                     "codebook_usage": round(float((counts > 0).float().mean()), 4),
                     "codebook_perplexity": round(float(perplexity.mean()), 1)})
    bar.close()
    return rows


class _Scores:
    """The same figures for every system: running sums of mel/STFT distance, SI-SDR, PESQ, STOI."""

    def __init__(self, sample_rate: int, has_pesq: bool, has_stoi: bool):
        self.sr, self.has_pesq, self.has_stoi = sample_rate, has_pesq, has_stoi
        self.mel, self.stft = MultiScaleMelLoss(sample_rate), MultiScaleSTFTLoss()
        self.acc = {"mel_distance": 0.0, "stft_distance": 0.0, "si_sdr": 0.0, "pesq": 0.0, "stoi": 0.0}
        self.n = self.n_pesq = 0

    def add(self, y: torch.Tensor, x: torch.Tensor) -> None:
        ref, est = x[None, None], y[None, None]
        self.acc["mel_distance"] += float(self.mel(est, ref))
        self.acc["stft_distance"] += float(self.stft(est, ref))
        self.acc["si_sdr"] += float(si_sdr(y, x))
        if self.has_pesq:
            try:
                self.acc["pesq"] += pesq_wb(y.numpy(), x.numpy(), self.sr)
                self.n_pesq += 1
            except ValueError:  # PESQ finds no speech in the output (Opus below its range writes silence)
                pass
        if self.has_stoi:
            self.acc["stoi"] += stoi(y.numpy(), x.numpy(), self.sr)
        self.n += 1

    def means(self) -> dict:
        out = {k: round(v / self.n, 4) for k, v in self.acc.items()}
        out["pesq"] = round(self.acc["pesq"] / self.n_pesq, 4) if self.n_pesq else None
        if self.n_pesq < self.n:
            out["pesq_scored"] = self.n_pesq  # the rest had no speech left to score
        if not self.has_pesq:
            out["pesq"] = None
        if not self.has_stoi:
            out["stoi"] = None
        return out


@torch.inference_mode()
def evaluate_opus(manifest: str, sample_rate: int, kbps: list[float], max_items: int | None = None) -> list[dict]:
    """Opus (opus-tools, hard CBR) on the same utterances at each of ``kbps``, scored like the codec's rows;
    ``kbps`` is the nominal rate, ``kbps_spent`` the packets' payload."""
    from .opus import opus_round_trip, require_opus_tools

    require_opus_tools()
    entries = read_manifest(manifest)[:max_items]
    audio = [entry_audio(e, sample_rate)[0] for e in entries]
    has_pesq, has_stoi = _available("pesq"), _available("pystoi")
    rows = []
    with Progress(len(audio) * len(kbps), "eval codec: Opus", unit="steps") as bar:
        for k in kbps:
            scores, spent = _Scores(sample_rate, has_pesq, has_stoi), 0.0
            for x in audio:
                y, used = opus_round_trip(x.numpy(), sample_rate, k)
                scores.add(torch.from_numpy(y), x)
                spent += used
                bar.update(1, seconds=x.shape[-1] / sample_rate, note=f"Opus {k:g} kbps")
            rows.append({"system": "Opus", "kbps": k, "kbps_spent": round(spent / len(audio), 3),
                         "utterances": len(audio), **scores.means()})
    return rows


def format_table(rows: list[dict]) -> str:
    cols = ["kbps", "n_q", "mel_distance", "stft_distance", "si_sdr", "pesq", "stoi", "codebook_usage", "codebook_perplexity"]
    if rows and rows[0].get("system") == "Opus":
        cols = ["system", "kbps", "kbps_spent", "mel_distance", "stft_distance", "si_sdr", "pesq", "stoi"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join("n/a" if r[c] is None else (f"{r[c]:.3f}" if isinstance(r[c], float) and not math.isnan(r[c]) else str(r[c]))
                                        for c in cols) + " |")
    return "\n".join(lines)
