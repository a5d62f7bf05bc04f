"""Screened vocabulary projection: float32 decisions at a fraction of the float32 projection's memory traffic.

On a CPU, a decoding step of a small Whisper is bound by reading the output embedding (tiny: 51,865 × 384
float32 = 80 MB per pass, most of the pass). The decisions of greedy and beam search only need the exact
logits of the few tokens that can win. So:

1. **screen**: multiply by a low-precision copy of the text rows — two int8 products with per-row scales
   (:class:`_Int8Operand`, a quarter of float32's bytes: 0.7 ms per product against 7 ms on this project's
   2-core EPYC), or bfloat16 / float16 where the PyTorch build has no int8 kernel — with a guaranteed bound on
   each approximate logit's error; the 1,501 timestamp rows stay float32 (they are small, and the timestamp
   rule sums their probabilities);
2. **refine**: every text token whose approximate logit could still reach the best token's lower bound is
   computed exactly in float32 (:meth:`VocabScreen.exact`): usually one or two;
3. the decision (argmax, top-k) over these exact values is provably the float32 decision: a token left
   approximate is, exactly, below the winner.

The half-precision bound (the int8 one is in :class:`_Int8Operand`). States ``h`` (float32) are split into two bfloat16 rows, ``h ≈ hi + lo``, multiplied in one product
(a whole-vocabulary error ``(h − hi)·e`` would otherwise shift the log-sum-exp coherently); ``ê`` is a row's
bfloat16 rounding, ``a`` the approximate logit (each product accumulated in float32, rounded to bfloat16,
summed)::

    |h·e − a| ≤ ‖h − hi − lo‖·max‖e‖ + ‖hi + lo‖·max‖e − ê‖              (Cauchy–Schwarz on the roundings)
                + 1e-4·(‖hi‖ + ‖lo‖)·max‖ê‖ + 2·2⁻⁷·‖lo‖·max‖ê‖           (accumulation; lo's output rounding)
                + 2⁻⁷·|a|                                                (hi's output rounding, 2⁻⁸ relative)

The first two lines are the per-state half-width. The log-probability normaliser
(log-sum-exp) takes the approximate values of the tokens left approximate; their errors are independent per
token and average out (about 1e-5 per step over Whisper's 51,865 tokens, 1e-4 over a few hundred).
"""
from __future__ import annotations

import math

import torch

#: relative error of a float32 value rounded to bfloat16 (8 significant bits: 2⁻⁸), with margin
OUTPUT_ROUNDING = 2.0 ** -7
#: absolute rounding of a float16 output in its subnormal range (2⁻²⁴ is its spacing there), with margin
SUBNORMAL = 2.0 ** -23
#: float32 accumulation error allowed, relative to ‖ĥ‖·‖ê‖
ACCUMULATION = 1e-4
#: columns per block when looking for the tokens to refine
BLOCK = 256


class VocabScreen:
    """A low-precision copy of the text rows ``weight[:split]`` of a tied output embedding, for screening.

    Build one per weight version (:func:`screen_for` caches it on the decoder). ``kind`` forces an operand
    (``"bfloat16"``, ``"float16"``, ``"int8"``); None: the fastest on this CPU, and where screening pays.
    """

    def __init__(self, weight: torch.Tensor, split: int, kind: str | None = None):
        if weight.dtype != torch.float32:
            raise ValueError(f"screening refines to float32 logits; the embedding is {weight.dtype}")
        self.weight, self.split = weight, split
        text = weight[:split]
        # which operand, and up to how many states screening beats the plain float32 product, is measured once
        # here (a few products), since it depends on the CPU's kernels (see _fastest_operand)
        self.operand, self.max_states = _fastest_operand(text, weight, kind)
        self.relative = self.operand.relative  # the output's relative rounding, beside the half-width
        self.exact_t = weight[split:].T.contiguous()  # [D, V - split] float32
        self.key = _key(weight)
        self.refined = 0  # text logits computed exactly so far (a diagnostic: the screen's selectivity)

    def approx(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """States ``[N, D]`` float32 → (logits ``[N, V]``: approximate for the text rows, exact for the rest;
        half-widths ``[N]``: the error bound of each row's approximate logits, before the output's relative
        rounding ``relative·|a|``)."""
        out = h.new_empty(h.shape[0], self.weight.shape[0])
        half = self.operand.text_logits(h, out[:, : self.split])
        if half is None:  # the operand declines these states: exact float32 logits, no error
            torch.mm(h, self.weight.T, out=out) if out.is_contiguous() else out.copy_(h @ self.weight.T)
            return out, h.new_zeros(h.shape[0])
        out[:, self.split :] = h @ self.exact_t
        return out, half

    def exact(self, h: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Float32 logits of the tokens ``cols`` for the states ``h[rows]``."""
        self.refined += int(rows.numel())
        return (h[rows] * self.weight[cols]).sum(-1)

    def refine(self, logits: torch.Tensor, h: torch.Tensor, half: torch.Tensor, top: int = 1) -> torch.Tensor:
        """Make exact, in place, every text logit of ``logits`` ``[N, V]`` (the output of :meth:`approx`, any
        tokens masked to -inf since) that could be among the ``top`` largest; returns ``logits``.

        Let ``low`` be a lower bound of the exact ``top``-th largest logit (from the approximate one). A text token
        whose approximate logit is below ``thr = u⁻¹(low)``, ``u(a) = a + half + R|a|`` the upper bound of an
        exact logit, is exactly below ``low``: it cannot be among the ``top``. The others are computed exactly.
        """
        text = logits[:, : self.split]
        full = self.split // BLOCK * BLOCK
        blocks = text[:, :full].unflatten(1, (-1, BLOCK))
        block_max = blocks.amax(-1)  # [N, blocks]: finds the hits below, and the maximum here
        if top == 1:
            kth = torch.maximum(block_max.amax(-1), logits[:, full:].amax(-1))
        else:
            vals = logits.topk(top, dim=-1).values
            kth = torch.where(torch.isfinite(vals), vals, float("inf")).amin(-1)  # fewer than top allowed tokens
        R = self.relative
        low = kth - half - R * kth.abs()
        y = low - half
        thr = torch.where(y >= 0, y / (1 + R), y / (1 - R))
        thr = torch.where(torch.isfinite(kth), thr, float("inf"))[:, None]  # every token masked: nothing to refine
        # (text >= thr).nonzero() for a few hits in a wide tensor: only the blocks whose maximum reaches thr
        # (nonzero over the whole width is the slow part on a CPU), then the text past the last whole block
        r, b = (block_max >= thr).nonzero(as_tuple=True)
        i, c = (blocks[r, b] >= thr[r]).nonzero(as_tuple=True)
        tr, tc = (text[:, full:] >= thr).nonzero(as_tuple=True)
        rows, cols = torch.cat([r[i], tr]), torch.cat([b[i] * BLOCK + c, tc + full])
        logits[rows, cols] = self.exact(h, rows, cols)
        return logits


class _HalfOperand:
    """The text rows in bfloat16 or float16 ``[D, split]`` (a transposed copy, or a view of the ``[split, D]``
    rows): states split into two half-precision rows ``hi + lo`` multiplied in one product (the bound: module
    docstring)."""

    relative = OUTPUT_ROUNDING

    def __init__(self, text: torch.Tensor, low_t: torch.Tensor):
        self.low_t, self.kind = low_t, str(low_t.dtype).removeprefix("torch.")
        low = low_t.T.float()
        self.row_max = float(text.norm(dim=1).max())
        self.low_row_max = float(low.norm(dim=1).max())
        self.err_row_max = float((text - low).norm(dim=1).max())

    def text_logits(self, h: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        N, dtype = h.shape[0], self.low_t.dtype
        # h as the sum of two half-precision rows (hi + lo): one GEMM of 2N rows reads the embedding once, and h is
        # represented to ~16 bits. Rounding h to one bfloat16 would shift every logit by (h - hi)·e, an error
        # coherent across the vocabulary that biases the log-sum-exp (1e-4 per step measured); the output
        # roundings left are independent per token and average out in it.
        hi = h.to(dtype)
        lo = (h - hi.float()).to(dtype)
        both = torch.mm(torch.cat([hi, lo]), self.low_t)  # [2N, split]
        text.copy_(both[:N])
        text += both[N:]
        hi_f, lo_f = hi.float(), lo.float()
        lo_norm = lo_f.norm(dim=1)
        half = ((h - hi_f - lo_f).norm(dim=1) * self.row_max  # what hi + lo leave of h
                + (hi_f + lo_f).norm(dim=1) * self.err_row_max  # the embedding's rounding
                + (hi_f.norm(dim=1) + lo_norm) * ACCUMULATION * self.low_row_max  # float32 accumulation
                + 2 * OUTPUT_ROUNDING * lo_norm * self.low_row_max  # lo's output rounding (hi's: 2⁻⁷|a| in refine)
                + 2 * SUBNORMAL)  # float16 outputs below its normal range round absolutely (both products)
        if dtype == torch.float16 and not bool(torch.isfinite(hi).all()):  # beyond float16's range: no bound
            half = torch.full_like(half, float("inf"))
        return half


class _Int8Operand:
    """The text rows as two int8 products with per-row scales, ``e ≈ ê₁ + ê₂`` (``ê₂`` quantizes what ``ê₁``
    leaves), through PyTorch's dynamically quantized linear (FBGEMM/oneDNN: int8 × uint8 into int32, exact).

    That kernel quantizes its whole input ``X`` per tensor (7-bit codes, ``reduce_range``). Here ``X`` stacks the
    states ``h``, ``K·r`` and ``K²·r₂`` (``r = h − ĥ``, ``r₂ = r − r̂``, ``K`` a power of two ≤ 64 for which both
    stay inside ``h``'s range): its range is ``h``'s, so its codes are exactly those of
    ``torch.quantize_per_tensor_dynamic(h)``'s parameters, which :meth:`check` verifies against the kernel when
    the operand is built. The sum ``A₀ + A₁/K + A₂/K² + B₀ + B₁/K`` (``A = X·ê₁ᵀ``, ``B = X[:2N]·ê₂ᵀ``) then
    carries ``h`` to ~21 bits and ``e`` to ~14 bits, and per text logit::

        |h·e − a| ≤ ‖r₂ − r̂₂‖·max‖ê₁‖ + ‖r₂‖·max‖ê₂‖ + ‖h‖·max‖e − ê₁ − ê₂‖       (+ float32 roundings, 1e-6|a|)

    with ``‖r₂ − r̂₂‖ ≤ √D·s/(2K²)``, ``s`` the activation scale. The log-sum-exp error left is ~2e-5 per step
    on tiny.en's states (measured), and it reads a quarter of float16's bytes: 0.7 ms per product here
    against 7 ms float32.
    """

    relative = 1e-6  # int32 accumulation is exact; the float32 scaling and the five-term sum round ~1e-7
    kind = "int8"

    def __init__(self, text: torch.Tensor):
        import warnings

        self.D = text.shape[1]
        with warnings.catch_warnings():  # quantized-tensor constructors warn of their future; the check guards it
            warnings.simplefilter("ignore")
            self.p1, e1 = _pack_rows(text)
            self.p2, e2 = _pack_rows(text - e1)
        self.e1_max = float(e1.norm(dim=1).max())
        self.e2_max = float(e2.norm(dim=1).max())
        self.rest_max = float((text - e1 - e2).norm(dim=1).max())
        self.e1 = e1  # for check(); dropped after it

    def _codes(self, h: torch.Tensor) -> tuple | None:
        """(X, scale, ‖r₂‖ per row) for states ``h``, or None where the residual rows cannot share h's range."""
        q = torch.quantize_per_tensor_dynamic(h, torch.quint8, True)
        s, zp = q.q_scale(), q.q_zero_point()
        r = h - q.dequantize()
        lo, hi = (float(v) for v in torch.aminmax(h))
        rlo, rhi = (float(v) for v in torch.aminmax(r))
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        room = min(hi / rhi if rhi > 0 else 64.0, lo / rlo if rlo < 0 else 64.0)  # |r| ≤ s/2: room ≈ 64-127
        if not room >= 8:  # h nearly one-signed, or not finite: decline (the caller computes exactly)
            return None
        K = 2.0 ** min(6, int(math.floor(math.log2(room))))
        r2 = r - torch.quantize_per_tensor(K * r, s, zp, torch.quint8).dequantize() / K
        return torch.cat([h, K * r, (K * K) * r2]), K, s, r2.norm(dim=1), zp

    def text_logits(self, h: torch.Tensor, text: torch.Tensor) -> torch.Tensor | None:
        codes = self._codes(h)
        if codes is None:
            return None
        X, K, s, r2_norm, _ = codes
        N = h.shape[0]
        A = torch.ops.quantized.linear_dynamic(X, self.p1, True)
        B = torch.ops.quantized.linear_dynamic(X[: 2 * N], self.p2, True)
        text.copy_(A[:N])
        text.add_(A[N : 2 * N], alpha=1 / K).add_(A[2 * N :], alpha=1 / (K * K))
        text.add_(B[:N]).add_(B[N:], alpha=1 / K)
        return (math.sqrt(self.D) * s / (2 * K * K) * 1.01 * self.e1_max  # r₂'s codes (1 % margin on s)
                + r2_norm * self.e2_max + h.norm(dim=1) * self.rest_max + 1e-30)

    def check(self, h: torch.Tensor) -> bool:
        """The kernel quantizes ``X`` as :meth:`_codes` assumes: its product equals the codes' product."""
        codes = self._codes(h)
        if codes is None:
            return False
        X, _, s, _, zp = codes
        got = torch.ops.quantized.linear_dynamic(X, self.p1, True)
        want = torch.quantize_per_tensor(X, s, zp, torch.quint8).dequantize() @ self.e1.T
        # a code off by one moves a logit by s·|ê| ~ 1e-2·‖ê‖∞·s; float32 sums differ by ~1e-6 of the magnitude
        return bool(((got - want).abs() <= 1e-4 * (want.abs().amax() + 1)).all())


def _pack_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows → (the dynamically quantized linear's packed int8 weight, per-row scales; its float32 value)."""
    scale = (x.abs().amax(1) / 127).double().clamp_min(1e-30)
    q = torch.quantize_per_channel(x, scale, torch.zeros(x.shape[0], dtype=torch.long, device="cpu"), 0, torch.qint8)
    return torch.ops.quantized.linear_prepack(q, None), q.dequantize()


def _int8_operand(text: torch.Tensor) -> _Int8Operand | None:
    """The int8 operand where this PyTorch build has the kernel and it quantizes as assumed (else None)."""
    try:
        op = _Int8Operand(text)
        g = torch.Generator().manual_seed(0)
        D = text.shape[1]
        probes = [torch.randn(n, D, generator=g, device="cpu") * scale + shift for n, scale, shift in
                  ((1, 1.0, 0.0), (1, 50.0, 3.0), (5, 10.0, -1.0), (9, 0.3, 0.0))]
        ok = all(op.check(p) for p in probes)
    except (RuntimeError, AttributeError, NotImplementedError):  # no quantized engine / API on this build
        return None
    del op.e1
    return op if ok else None


def _fastest_operand(text: torch.Tensor, weight: torch.Tensor, kind: str | None = None,
                     repeats: int = 3) -> tuple[object, int]:
    """The fastest screening operand for one state, of bfloat16 / float16 (a transposed copy or a view of the
    rows) and int8 (:class:`_Int8Operand`), and the most states per product (1 or 9; 0: never) for which
    screening beats the float32 product with the whole embedding by 20 %, both measured here. ``kind`` forces
    the operand (and screening at any size). Off the CPU: the bfloat16 copy, always."""
    import time

    if weight.device.type != "cpu":
        return _HalfOperand(text, text.to(torch.bfloat16).T.contiguous()), 1 << 30
    D = text.shape[1]

    def cost(fn) -> float:
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        return best

    def state(n: int) -> torch.Tensor:  # states the size of a decoder's (layer-normed, scaled)
        return torch.nn.functional.layer_norm(torch.randn(n, D, generator=torch.Generator().manual_seed(n), device="cpu"),
                                              (D,)) * 10

    options = []
    with torch.no_grad():
        # int8 first: a quarter of float32's bytes; the half-precision kinds are timed where it is unavailable
        op = _int8_operand(text) if kind in (None, "int8") else None
        if op is not None:
            out = text.new_empty(1, text.shape[0])
            options.append((cost(lambda: op.text_logits(state(1), out)), op))
        elif kind == "int8":
            raise RuntimeError("this PyTorch build has no usable int8 dynamically quantized linear")
        for dtype in (torch.bfloat16, torch.float16):
            if options or kind not in (None, str(dtype).removeprefix("torch.")):
                continue
            low = text.to(dtype)
            for m in (low.T.contiguous(), low.T):
                x = torch.zeros(2, D, dtype=dtype, device="cpu")
                options.append((cost(lambda m=m, x=x: torch.mm(x, m)), _HalfOperand(text, m)))
        best, op = min(options, key=lambda o: o[0])
        if kind is not None:
            return op, 1 << 30
        out = text.new_empty(9, text.shape[0])
        many = cost(lambda: op.text_logits(state(9), out))
        plain = [cost(lambda n=n: state(n) @ weight.T) for n in (1, 9)]
    return op, 9 if many < 0.8 * plain[1] else 1 if best < 0.8 * plain[0] else 0


def _key(weight: torch.Tensor) -> tuple:
    return weight.data_ptr(), weight._version, weight.device, weight.shape


def screen_for(decoder: torch.nn.Module, split: int) -> VocabScreen:
    """The decoder's screen for its current output embedding (rebuilt when the weights change in place or move)."""
    weight = decoder.token_embedding.weight.detach()
    screen = getattr(decoder, "_vocab_screen", None)
    if screen is None or screen.key != _key(weight) or screen.split != split:
        screen = VocabScreen(weight, split)
        decoder._vocab_screen = screen  # a plain attribute: not a buffer, never saved
    return screen
