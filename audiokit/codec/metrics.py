"""Codec quality metrics: SI-SDR, mel distance, STFT distance, and the optional PESQ / STOI judges."""
from __future__ import annotations

import numpy as np
import torch


def si_sdr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant signal-to-distortion ratio in dB, per item of ``[..., T]`` inputs."""
    estimate = estimate - estimate.mean(-1, keepdim=True)
    reference = reference - reference.mean(-1, keepdim=True)
    scale = (estimate * reference).sum(-1, keepdim=True) / (reference.pow(2).sum(-1, keepdim=True) + eps)
    target = scale * reference
    noise = estimate - target
    return 10 * torch.log10((target.pow(2).sum(-1) + eps) / (noise.pow(2).sum(-1) + eps))


def pesq_wb(estimate: np.ndarray, reference: np.ndarray, sample_rate: int) -> float:
    """Wide-band PESQ (the ``pesq`` package from the ``eval`` extra), computed at 16 kHz."""
    try:
        from pesq import pesq
    except ImportError:
        raise ImportError("PESQ needs the 'eval' extra: pip install 'audiokit[eval]'") from None
    ref, est = _to_16k(reference, sample_rate), _to_16k(estimate, sample_rate)
    return float(pesq(16000, ref, est, "wb"))


def stoi(estimate: np.ndarray, reference: np.ndarray, sample_rate: int) -> float:
    try:
        from pystoi import stoi as _stoi
    except ImportError:
        raise ImportError("STOI needs the 'eval' extra: pip install 'audiokit[eval]'") from None
    n = min(len(estimate), len(reference))
    return float(_stoi(reference[:n], estimate[:n], sample_rate, extended=False))


def _to_16k(x: np.ndarray, sample_rate: int) -> np.ndarray:
    if sample_rate == 16000:
        return x.astype(np.float32)
    from ..audio import resample

    return resample(torch.from_numpy(x.astype(np.float32)), sample_rate, 16000).numpy()
