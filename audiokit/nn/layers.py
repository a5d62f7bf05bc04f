"""Small building blocks shared by the models: Snake, weight-normed convolutions with explicit padding, LSTM.

Convolutions take one of two padding schemes, so one generator can express both DAC and EnCodec exactly:

- ``"static"``: fixed zero padding on both sides (DAC): ``padding`` samples left and right.
- ``"stream"``: EnCodec's length-aware padding: total ``(k-1)·d + 1 - stride``, all on the left when
  causal (else split, the extra sample on the left), plus right padding so the last window is full;
  ``pad_mode`` ``"reflect"`` or ``"constant"``. Transposed convolutions trim ``k - stride`` samples
  (on the right when causal).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations, parametrize


class Snake1d(nn.Module):
    """``x + 1/(α + ε) · sin²(α x)`` with a learnable ``α`` per channel (shape ``[1, C, 1]``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return snake(x, self.alpha)


def snake(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    if torch.is_grad_enabled():
        return x + (alpha + 1e-9).reciprocal() * torch.sin(alpha * x).pow(2)
    # inference: one new tensor instead of five (the op is memory-bound)
    y = torch.mul(x, alpha).sin_().square_()
    return y.mul_((alpha + 1e-9).reciprocal()).add_(x)


def activation(name: str, channels: int) -> nn.Module:
    if name == "snake":
        return Snake1d(channels)
    if name == "elu":
        return nn.ELU(alpha=1.0)
    if name == "leaky_relu":
        return nn.LeakyReLU(0.1)
    raise ValueError(f"unknown activation {name!r} (snake, elu, leaky_relu)")


def weight_norm(module: nn.Module) -> nn.Module:
    """Weight normalization (``weight = g · v / ‖v‖``, norm over all dims but the first)."""
    return parametrizations.weight_norm(module)


def remove_weight_norm(model: nn.Module) -> int:
    """Fold every weight-norm parametrization into a plain weight (for inference); returns how many."""
    n = 0
    for m in model.modules():
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
            n += 1
    return n


def _pad1d(x: torch.Tensor, left: int, right: int, mode: str) -> torch.Tensor:
    if left == 0 and right == 0:
        return x
    if mode == "reflect":
        # reflection needs the input longer than the padding: zero-extend first, as EnCodec does
        length = x.shape[-1]
        max_pad = max(left, right)
        if length <= max_pad:
            extra = max_pad - length + 1
            x = F.pad(x, (0, extra))
            return F.pad(x, (left, right), mode="reflect")[..., : length + left + right]
        return F.pad(x, (left, right), mode="reflect")
    return F.pad(x, (left, right))


class Conv1d(nn.Module):
    """``nn.Conv1d`` (weight-normed unless ``norm=None``) with explicit ``static`` or ``stream`` padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1,
                 padding: int | str = "stream", causal: bool = False, pad_mode: str = "constant",
                 norm: str | None = "weight_norm", bias: bool = True):
        super().__init__()
        # static zero padding goes inside the convolution (no padded copy of the input); stream padding is explicit
        inner = int(padding) if padding != "stream" else 0
        conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, dilation=dilation, padding=inner, bias=bias)
        self.conv = weight_norm(conv) if norm == "weight_norm" else conv
        self.padding, self.causal, self.pad_mode = padding, causal, pad_mode
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation

    def pad_amounts(self, length: int) -> tuple[int, int]:
        if self.padding != "stream":
            return int(self.padding), int(self.padding)
        k = (self.kernel_size - 1) * self.dilation + 1
        total = k - self.stride
        n_frames = (length - k + total) / self.stride + 1
        ideal = (math.ceil(n_frames) - 1) * self.stride + (k - total)
        extra = ideal - length
        if self.causal:
            return total, extra
        right = total // 2
        return total - right, right + extra

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding != "stream":
            return self.conv(x)
        left, right = self.pad_amounts(x.shape[-1])
        return self.conv(_pad1d(x, left, right, self.pad_mode))


class ConvTranspose1d(nn.Module):
    """Weight-normed ``nn.ConvTranspose1d``; ``static`` padding (DAC) or ``stream`` trimming (EnCodec)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int | str = "stream", causal: bool = False, norm: str | None = "weight_norm",
                 output_padding: bool = True):
        super().__init__()
        if padding == "stream":
            conv = nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride=stride)
        else:
            # With static padding ceil(s/2), an odd stride needs one sample of output padding to give exactly
            # ``s`` samples per input frame; DAC 1.0.0 omits it (its checkpoints decode 1 sample short per odd stride).
            conv = nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride=stride, padding=int(padding),
                                      output_padding=stride % 2 if output_padding else 0)
        self.conv = weight_norm(conv) if norm == "weight_norm" else conv
        self.padding, self.causal = padding, causal
        self.trim = kernel_size - stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.padding != "stream" or self.trim == 0:
            return y
        right = self.trim if self.causal else self.trim // 2
        left = self.trim - right
        return y[..., left : y.shape[-1] - right]


class LSTM(nn.Module):
    """A multi-layer LSTM over ``[B, C, T]`` with a skip connection (EnCodec's SLSTM)."""

    def __init__(self, dim: int, num_layers: int = 2, skip: bool = True):
        super().__init__()
        self.skip = skip
        self.lstm = nn.LSTM(dim, dim, num_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(2, 0, 1)
        y, _ = self.lstm(x)
        if self.skip:
            y = y + x
        return y.permute(1, 2, 0)
