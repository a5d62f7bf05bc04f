"""Convolutional encoder and decoder of the codec, configurable to express DAC and EnCodec (SEANet) exactly.

A stage of the encoder is ``residual units → activation → strided conv`` (channels double); a stage of the
decoder is ``activation → transposed conv → residual units`` (channels halve). What differs between the
families is only configuration:

====================  =========================  ==============================
                      DAC                        EnCodec (SEANet)
====================  =========================  ==============================
activation            snake                      elu
residual unit         k7, dilations 1, 3, 9,     k3 then k1, hidden dim/2,
                      identity skip              1×1 conv shortcut
LSTM                  none                       2 layers after the encoder /
                                                 before the decoder
padding               static, symmetric          stream (causal or not, reflect)
last encoder kernel   3                          7
output activation     tanh                       none
====================  =========================  ==============================
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..nn.layers import (LSTM, Conv1d, ConvTranspose1d, activate_fresh, activation, from_channels_last,
                         to_channels_last, use_channels_last)


class ResidualUnit(nn.Module):
    """``act → conv(k, dilation) → act → conv(1)`` plus a skip (identity or 1×1 conv)."""

    def __init__(self, dim: int, kernel_size: int, dilation: int, act: str, compress: int = 1, conv_shortcut: bool = False,
                 **conv):
        super().__init__()
        hidden = dim // compress
        static = conv.get("padding") == "static"
        pad = ((kernel_size - 1) * dilation) // 2 if static else "stream"
        pad1 = 0 if static else "stream"
        conv = {k: v for k, v in conv.items() if k != "padding"}
        self.act1 = activation(act, dim)
        self.conv1 = Conv1d(dim, hidden, kernel_size, dilation=dilation, padding=pad, **conv)
        self.act2 = activation(act, hidden)
        self.conv2 = Conv1d(hidden, dim, 1, padding=pad1, **conv)
        self.shortcut = Conv1d(dim, dim, 1, padding=pad1, **conv) if conv_shortcut else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(activate_fresh(self.act2, self.conv1(x, act=self.act1)))
        if self.shortcut is not None:
            skip = self.shortcut(x)
        else:
            crop = (x.shape[-1] - y.shape[-1]) // 2
            skip = x[..., crop : x.shape[-1] - crop] if crop > 0 else x
        return y + skip if torch.is_grad_enabled() else y.add_(skip)


class _Family:
    """Padding and residual-unit arguments shared by the encoder and decoder."""

    def __init__(self, padding: str, causal: bool, pad_mode: str, residual_kernel_size: int, dilations: Sequence[int],
                 compress: int, conv_shortcut: bool, act: str, transpose_output_padding: bool = True):
        self.transpose_output_padding = transpose_output_padding
        self.padding, self.causal, self.pad_mode = padding, causal, pad_mode
        self.residual_kernel_size, self.dilations = residual_kernel_size, tuple(dilations)
        self.compress, self.conv_shortcut, self.act = compress, conv_shortcut, act

    def conv_args(self) -> dict:
        return {"padding": self.padding, "causal": self.causal, "pad_mode": self.pad_mode}

    def same(self, kernel_size: int) -> int | str:
        """Padding that keeps the length for an odd kernel."""
        return (kernel_size - 1) // 2 if self.padding == "static" else "stream"

    def strided(self, stride: int) -> int | str:
        return math.ceil(stride / 2) if self.padding == "static" else "stream"

    def residuals(self, dim: int) -> nn.ModuleList:
        return nn.ModuleList(
            ResidualUnit(dim, self.residual_kernel_size, d, self.act, self.compress, self.conv_shortcut, **self.conv_args())
            for d in self.dilations
        )


class EncoderStage(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, stride: int, fam: _Family):
        super().__init__()
        self.residuals = fam.residuals(dim_in)
        self.act = activation(fam.act, dim_in)
        self.down = Conv1d(dim_in, dim_out, 2 * stride, stride=stride, **{**fam.conv_args(), "padding": fam.strided(stride)})

    def forward(self, x):
        for r in self.residuals:
            x = r(x)
        return self.down(x, act=self.act)


class DecoderStage(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, stride: int, fam: _Family):
        super().__init__()
        self.act = activation(fam.act, dim_in)
        self.up = ConvTranspose1d(dim_in, dim_out, 2 * stride, stride=stride, padding=fam.strided(stride), causal=fam.causal,
                                  output_padding=fam.transpose_output_padding)
        self.residuals = fam.residuals(dim_out)

    def forward(self, x):
        x = self.up(activate_fresh(self.act, x))
        for r in self.residuals:
            x = r(x)
        return x


class Encoder(nn.Module):
    """Audio ``[B, 1, T]`` → latents ``[B, latent_dim, T / hop]``; channels double at every stride."""

    def __init__(self, dim: int, rates: Sequence[int], latent_dim: int, fam: _Family, kernel_size: int = 7,
                 last_kernel_size: int = 3, lstm_layers: int = 0):
        super().__init__()
        args = fam.conv_args()
        self.input = Conv1d(1, dim, kernel_size, **{**args, "padding": fam.same(kernel_size)})
        self.stages = nn.ModuleList()
        for stride in rates:
            self.stages.append(EncoderStage(dim, dim * 2, stride, fam))
            dim *= 2
        self.lstm = LSTM(dim, lstm_layers) if lstm_layers else None
        self.act = activation(fam.act, dim)
        self.output = Conv1d(dim, latent_dim, last_kernel_size, **{**args, "padding": fam.same(last_kernel_size)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if use_channels_last(x):
            return from_channels_last(self(to_channels_last(x)))
        x = self.input(x)
        for s in self.stages:
            x = s(x)
        if self.lstm is not None:
            x = self.lstm(x)
        return self.output(x, act=self.act)


class Decoder(nn.Module):
    """Latents ``[B, latent_dim, F]`` → audio ``[B, 1, F · hop]``; channels halve at every stride."""

    def __init__(self, latent_dim: int, dim: int, rates: Sequence[int], fam: _Family, kernel_size: int = 7,
                 last_kernel_size: int = 7, lstm_layers: int = 0, final_activation: str | None = "tanh"):
        super().__init__()
        args = fam.conv_args()
        self.input = Conv1d(latent_dim, dim, kernel_size, **{**args, "padding": fam.same(kernel_size)})
        self.lstm = LSTM(dim, lstm_layers) if lstm_layers else None
        self.stages = nn.ModuleList()
        for stride in rates:
            self.stages.append(DecoderStage(dim, dim // 2, stride, fam))
            dim //= 2
        self.act = activation(fam.act, dim)
        self.output = Conv1d(dim, 1, last_kernel_size, **{**args, "padding": fam.same(last_kernel_size)})
        if final_activation not in (None, "tanh"):
            raise ValueError(f"final_activation must be 'tanh' or None, got {final_activation!r}")
        self.final_tanh = final_activation == "tanh"

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if use_channels_last(z):
            return from_channels_last(self(to_channels_last(z)))
        x = self.input(z)
        if self.lstm is not None:
            x = self.lstm(x)
        for s in self.stages:
            x = s(x)
        x = self.output(x, act=self.act)
        return torch.tanh(x) if self.final_tanh else x
