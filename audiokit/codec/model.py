"""The codec generator: encoder → residual VQ → decoder, with plain keyword arguments (DAC 24 kHz defaults)."""
from __future__ import annotations

import contextlib
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.layers import remove_weight_norm
from .frames import ISTFTDecoder, STFTEncoder
from .generator import Decoder, Encoder, _Family
from .quantizer import ResidualVectorQuantizer

# encoder "stft" / decoder "istft": the frame-rate networks of audiokit.codec.frames in place of the
# sample-rate convolutions (frame_dim wide, frame_layers ConvNeXt blocks, STFT of n_fft [4 hops])
FRAME_DEFAULTS = dict(encoder="conv", decoder="conv", frame_dim=384, frame_layers=8, n_fft=None)

FAMILY_DEFAULTS = {
    "dac": dict(activation="snake", padding="static", causal=False, pad_mode="constant", residual_kernel_size=7,
                dilations=(1, 3, 9), compress=1, conv_shortcut=False, lstm_layers=0, encoder_last_kernel_size=3,
                final_activation="tanh", quantizer="factorized", transpose_output_padding=True, **FRAME_DEFAULTS),
    "encodec": dict(activation="elu", padding="stream", causal=True, pad_mode="reflect", residual_kernel_size=3,
                    dilations=(1,), compress=2, conv_shortcut=True, lstm_layers=2, encoder_last_kernel_size=7,
                    final_activation=None, quantizer="ema", transpose_output_padding=True, **FRAME_DEFAULTS),
}


class CodecModel(nn.Module):
    """Audio ``[B, 1, T]`` ↔ codes ``[B, Q, T / hop]``.

    Args:
        sample_rate: audio rate in Hz.
        encoder_dim: channels after the first conv (doubling at every encoder stride).
        encoder_rates: encoder strides; their product is the hop length.
        latent_dim: channels of the latent the quantizer sees.
        decoder_dim: channels after the decoder's first conv (halving at every decoder stride).
        decoder_rates: decoder strides (product must equal the hop length).
        n_codebooks, codebook_size, codebook_dim: the residual VQ.
        quantizer_dropout: probability of training an example on a random prefix of codebooks.
        family: ``"dac"`` or ``"encodec"`` — the block style; every field of ``FAMILY_DEFAULTS`` can be
            overridden by a keyword argument of the same name. ``encoder="stft"`` / ``decoder="istft"``
            compute at the frame rate instead (:mod:`audiokit.codec.frames`; the rates then only set the hop).
    """

    def __init__(self, sample_rate: int = 24000, encoder_dim: int = 64, encoder_rates: Sequence[int] = (2, 4, 5, 8),
                 latent_dim: int | None = None, decoder_dim: int = 1536, decoder_rates: Sequence[int] = (8, 5, 4, 2),
                 n_codebooks: int = 32, codebook_size: int = 1024, codebook_dim: int = 8, quantizer_dropout: float = 0.5,
                 family: str = "dac", **overrides):
        super().__init__()
        if family not in FAMILY_DEFAULTS:
            raise ValueError(f"family must be one of {sorted(FAMILY_DEFAULTS)}, got {family!r}")
        unknown = set(overrides) - set(FAMILY_DEFAULTS[family])
        if unknown:
            raise TypeError(f"unknown codec options: {sorted(unknown)}")
        opts = {**FAMILY_DEFAULTS[family], **overrides}
        if math.prod(encoder_rates) != math.prod(decoder_rates):
            raise ValueError(f"encoder rates {list(encoder_rates)} and decoder rates {list(decoder_rates)} give different hops")
        if latent_dim is None:
            latent_dim = encoder_dim * 2 ** len(encoder_rates)
        self.config = dict(sample_rate=sample_rate, encoder_dim=encoder_dim, encoder_rates=list(encoder_rates),
                           latent_dim=latent_dim, decoder_dim=decoder_dim, decoder_rates=list(decoder_rates),
                           n_codebooks=n_codebooks, codebook_size=codebook_size, codebook_dim=codebook_dim,
                           quantizer_dropout=quantizer_dropout, family=family, **overrides)
        self.sample_rate = sample_rate
        self.static_padding = opts["padding"] == "static" or opts["encoder"] == "stft"  # whole hops
        self.hop_length = math.prod(encoder_rates)
        self.n_codebooks, self.codebook_size = n_codebooks, codebook_size
        self.latent_dim = latent_dim
        fam = _Family(opts["padding"], opts["causal"], opts["pad_mode"], opts["residual_kernel_size"], opts["dilations"],
                      opts["compress"], opts["conv_shortcut"], opts["activation"], opts["transpose_output_padding"])
        n_fft = opts["n_fft"] or 4 * self.hop_length
        if opts["encoder"] not in ("conv", "stft") or opts["decoder"] not in ("conv", "istft"):
            raise ValueError(f"encoder is 'conv' or 'stft', decoder 'conv' or 'istft'; got {opts['encoder']!r}, {opts['decoder']!r}")
        if opts["encoder"] == "stft":
            self.encoder = STFTEncoder(self.hop_length, n_fft, opts["frame_dim"], opts["frame_layers"], latent_dim)
        else:
            self.encoder = Encoder(encoder_dim, encoder_rates, latent_dim, fam, last_kernel_size=opts["encoder_last_kernel_size"],
                                   lstm_layers=opts["lstm_layers"])
        self.quantizer = ResidualVectorQuantizer(latent_dim, n_codebooks, codebook_size, codebook_dim, kind=opts["quantizer"],
                                                 quantizer_dropout=quantizer_dropout)
        if opts["decoder"] == "istft":
            self.decoder = ISTFTDecoder(latent_dim, self.hop_length, n_fft, opts["frame_dim"], opts["frame_layers"])
        else:
            self.decoder = Decoder(latent_dim, decoder_dim, decoder_rates, fam, lstm_layers=opts["lstm_layers"],
                                   final_activation=opts["final_activation"])

    # ------------------------------------------------------------------ rates
    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def n_q_for_bandwidth(self, kbps: float) -> int:
        """Codebooks that fit in ``kbps`` kilobits per second (at least 1)."""
        bits_per_codebook = self.frame_rate * math.log2(self.codebook_size)
        n = int(math.floor(kbps * 1000 / bits_per_codebook + 1e-9))
        return max(1, min(self.n_codebooks, n))

    def bandwidths(self) -> list[float]:
        """The bitrates (kbps) of 1, 2, 4, … codebooks up to all of them."""
        per = self.frame_rate * math.log2(self.codebook_size) / 1000
        qs, q = [], 1
        while q < self.n_codebooks:
            qs.append(q)
            q *= 2
        return [round(per * q, 3) for q in qs + [self.n_codebooks]]

    # ------------------------------------------------------------------ passes
    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        # Static padding (DAC) needs whole hops; stream padding (EnCodec) pads each conv for any length itself.
        if not self.static_padding:
            return x
        right = -x.shape[-1] % self.hop_length
        return F.pad(x, (0, right)) if right else x

    def forward(self, audio: torch.Tensor, n_q: int | None = None) -> dict:
        """Training pass: ``audio`` ``[B, 1, T]`` → dict with ``audio`` (same length), ``codes``, ``z``, losses."""
        length = audio.shape[-1]
        z = self.encoder(self._pad(audio))
        q = self.quantizer(z, n_q)
        y = self._fit(self.decoder(q["z_q"]), length)
        return {"audio": y, "z": z, **q}

    #: inference precision of the encoder and decoder (``torch.bfloat16`` / ``torch.float16`` run them under
    #: autocast; the weights and the quantizer's nearest-code search stay float32); ``None``: float32
    compute_dtype: torch.dtype | None = None

    def _precision(self, x: torch.Tensor):
        if self.compute_dtype in (None, torch.float32):
            return contextlib.nullcontext()
        return torch.autocast(x.device.type, dtype=self.compute_dtype)

    @torch.no_grad()
    def encode(self, audio: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """``[B, 1, T]`` → codes ``[B, n_q, ceil(T / hop)]``."""
        with self._precision(audio):
            z = self.encoder(self._pad(audio))
        return self.quantizer.encode(z.float(), n_q)

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, Q, F]`` → continuous quantized latents ``[B, latent_dim, F]`` (what the decoder reads)."""
        return self.quantizer.decode(codes)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, Q, F]`` → audio ``[B, 1, F · hop]``."""
        return self.decode_latents(self.embed(codes))

    @torch.no_grad()
    def decode_latents(self, z: torch.Tensor) -> torch.Tensor:
        """Continuous latents ``[B, latent_dim, F]`` (``embed``'s output, or a model's estimate of it) → audio
        ``[B, 1, F · hop]``."""
        with self._precision(z):
            y = self.decoder(z)
        return self._fit(y.float(), z.shape[-1] * self.hop_length)

    @staticmethod
    def _fit(y: torch.Tensor, length: int) -> torch.Tensor:
        """Trim or zero-pad the decoder output to ``length`` samples (checkpoints converted from DAC 1.0.0
        decode a few samples short of frames × hop)."""
        if y.shape[-1] >= length:
            return y[..., :length]
        return F.pad(y, (0, length - y.shape[-1]))

    def remove_weight_norm(self) -> int:
        return remove_weight_norm(self)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
