"""Small building blocks shared by the models: Snake, weight-normed convolutions with explicit padding, LSTM.

Convolutions take one of two padding schemes, so one generator can express both DAC and EnCodec exactly:

- ``"static"``: fixed zero padding on both sides (DAC): ``padding`` samples left and right.
- ``"stream"``: EnCodec's length-aware padding: total ``(k-1)·d + 1 - stride``, all on the left when
  causal (else split, the extra sample on the left), plus right padding so the last window is full;
  ``pad_mode`` ``"reflect"`` or ``"constant"``. Transposed convolutions trim ``k - stride`` samples
  (on the right when causal).

Every layer here also accepts the *channels-last* inference layout: ``[B, C, 1, T]`` tensors stored
time-major (``torch.channels_last``), run through the 2-D kernels. On a CPU oneDNN's convolutions are 1.3-10x
faster in that layout than on ``[B, C, T]`` (a 1x1 convolution over 240k samples: 0.49 s -> 0.04 s), so the codec's
encoder and decoder switch to it for inference (:func:`use_channels_last`); training keeps ``[B, C, T]``.
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


def snake(x: torch.Tensor, alpha: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Snake of ``x``; at inference ``out`` (same shape, any strides) receives the result."""
    if x.dim() == 4:  # channels-last inference layout [B, C, 1, T]
        alpha = alpha.unsqueeze(-1)
    if torch.is_grad_enabled():
        return x + (alpha + 1e-9).reciprocal() * torch.sin(alpha * x).pow(2)
    # inference: one new tensor instead of five (the op is memory-bound); under autocast x may be bfloat16,
    # and stays so (no float32 copy)
    alpha = alpha.to(x.dtype)
    y = torch.mul(x, alpha, out=out).sin_().square_()
    return y.mul_((alpha + 1e-9).reciprocal()).add_(x)


def activation(name: str, channels: int) -> nn.Module:
    if name == "snake":
        return Snake1d(channels)
    if name == "elu":
        return nn.ELU(alpha=1.0)
    if name == "leaky_relu":
        return nn.LeakyReLU(0.1)
    raise ValueError(f"unknown activation {name!r} (snake, elu, leaky_relu)")


def activate_fresh(act: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``act(x)`` for an ``x`` that nothing else holds: computed in place when no gradient is needed (one large
    allocation fewer per call, which on a CPU is mostly page faults). Snake needs its input to the end, so it
    allocates."""
    if torch.is_grad_enabled() or not isinstance(act, (nn.ELU, nn.LeakyReLU)):
        return act(x)
    return activate_into(act, x, out=x)


def activate_into(act: nn.Module, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Write ``act(x)`` into ``out`` (inference; e.g. the middle of a padded buffer, so padding costs no copy)."""
    if isinstance(act, Snake1d):
        return snake(x, act.alpha, out=out)
    if isinstance(act, nn.ELU):
        return torch.ops.aten.elu.out(x, act.alpha, 1, 1, out=out)
    if isinstance(act, nn.LeakyReLU):
        return torch.ops.aten.leaky_relu.out(x, act.negative_slope, out=out)
    return out.copy_(act(x))


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


def use_channels_last(x: torch.Tensor) -> bool:
    """Whether a ``[B, C, T]`` input should run in the channels-last layout: CPU inference (measured faster
    there; GPU and training keep ``[B, C, T]``)."""
    return x.dim() == 3 and x.device.type == "cpu" and not torch.is_grad_enabled()


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, T]`` → ``[B, C, 1, T]`` stored time-major."""
    return x.unsqueeze(2).contiguous(memory_format=torch.channels_last)


def from_channels_last(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, 1, T]`` → contiguous ``[B, C, T]``."""
    return x.squeeze(2).contiguous()


def _activate_padded(act: nn.Module, x: torch.Tensor, left: int, right: int, mode: str) -> torch.Tensor:
    """``_pad1d(act(x), ...)`` in one allocation and one pass: the activation writes into the padded buffer's
    middle, then the few edge samples are filled (inference; the input must be longer than the padding)."""
    length = x.shape[-1]
    shape = (*x.shape[:-1], length + left + right)
    buf = torch.empty(shape, dtype=x.dtype, device=x.device,
                      memory_format=torch.channels_last if x.dim() == 4 else torch.contiguous_format)
    mid = activate_into(act, x, buf[..., left : left + length])
    if mode == "reflect":
        buf[..., :left] = mid[..., 1 : left + 1].flip(-1)
        buf[..., left + length :] = mid[..., length - 1 - right : length - 1].flip(-1)
    else:
        buf[..., :left] = 0
        buf[..., left + length :] = 0
    return buf


def _pad1d(x: torch.Tensor, left: int, right: int, mode: str) -> torch.Tensor:
    if left == 0 and right == 0:
        return x
    # the last dimension only; a 4-D (channels-last) input needs the 2-D padding kernels' 4-tuple
    pads = (left, right) if x.dim() == 3 else (left, right, 0, 0)
    if mode == "reflect":
        # reflection needs the input longer than the padding: zero-extend first, as EnCodec does
        length = x.shape[-1]
        max_pad = max(left, right)
        if length <= max_pad:
            x = F.pad(x, (0, max_pad - length + 1))
            return F.pad(x, pads, mode="reflect")[..., : length + left + right]
        return F.pad(x, pads, mode="reflect")
    return F.pad(x, pads)


class _PrecisionGuarded(nn.Module):
    """A convolution that can be told to stay float32 under autocast (:func:`guard_reduced_precision`)."""

    #: run in float32 even under autocast: this layer's reduced-precision kernel was found wrong on this machine
    full_precision = False

    def _kernel(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _convolve(self, x: torch.Tensor) -> torch.Tensor:
        if self.full_precision and torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return self._kernel(x.float())
        return self._kernel(x)


def guard_reduced_precision(model: nn.Module, dtype: torch.dtype, tol: float = 0.05) -> int:
    """Run every distinct convolution of ``model`` once in float32 and once under ``dtype`` autocast, on a random
    input in the layout inference uses; mark those whose results differ by more than ``tol`` (relative) to run
    in float32. Returns how many layers were marked.

    Why: oneDNN's AMX bfloat16 convolution kernels return wrong results for some small shapes (on this
    project's Xeon with torch 2.14: 4-16 input channels with kernels of 4-16 taps, errors of 100 %; a known
    class of bugs, e.g. pytorch/pytorch#169688). The official DAC and EnCodec shapes pass; tiny models do not.
    """
    verdict: dict[tuple, bool] = {}
    marked = 0
    with torch.inference_mode():
        for m in model.modules():
            if not isinstance(m, _PrecisionGuarded):
                continue
            c = m.conv
            key = (type(m), c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding, c.dilation,
                   c.output_padding, getattr(m, "padding", None), getattr(m, "pad_mode", None))
            if key not in verdict:
                device = c.weight.device
                length = 4 * ((c.kernel_size[0] - 1) * c.dilation[0] + 1) + 4 * c.stride[0]
                x = torch.randn(1, c.in_channels, length, generator=torch.Generator().manual_seed(0), device="cpu").to(device)
                if use_channels_last(x):
                    x = to_channels_last(x)
                m.full_precision = False
                ref = m(x).float()
                with torch.autocast(device.type, dtype=dtype):
                    low = m(x).float()
                verdict[key] = bool((low - ref).norm() > tol * ref.norm())
            m.full_precision = verdict[key]
            marked += m.full_precision
    return marked


class Conv1d(_PrecisionGuarded):
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

    def forward(self, x: torch.Tensor, act: nn.Module | None = None) -> torch.Tensor:
        """``conv(act(x))``; ``act`` (optional) is an activation applied first, fused with stream padding at inference."""
        if self.padding == "stream":
            left, right = self.pad_amounts(x.shape[-1])
            if act is not None and not torch.is_grad_enabled() and x.shape[-1] > max(left, right) > 0:
                x = _activate_padded(act, x, left, right, self.pad_mode)
            else:
                x = _pad1d(act(x) if act is not None else x, left, right, self.pad_mode)
        elif act is not None:
            x = act(x)
        return self._convolve(x)

    def _kernel(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            return self.conv(x)
        c = self.conv
        y = F.conv2d(x, c.weight.unsqueeze(2), c.bias, stride=(1, self.stride), padding=(0, c.padding[0]),
                     dilation=(1, self.dilation))
        # a one-channel input is both layouts at once, and oneDNN then answers in [B, C, 1, T]
        return y.contiguous(memory_format=torch.channels_last)


class ConvTranspose1d(_PrecisionGuarded):
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

    def _kernel(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        if x.dim() == 3:
            return c(x)
        return F.conv_transpose2d(x, c.weight.unsqueeze(2), c.bias, stride=(1, c.stride[0]), padding=(0, c.padding[0]),
                                  output_padding=(0, c.output_padding[0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._convolve(x)
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
        four_d = x.dim() == 4
        x = (x.squeeze(2) if four_d else x).permute(2, 0, 1)
        y, _ = self.lstm(x)
        if self.skip:
            y = y + x
        y = y.permute(1, 2, 0)
        return to_channels_last(y) if four_d else y
