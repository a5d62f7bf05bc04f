"""Screened vocabulary projection: float32 decisions at a fraction of the float32 projection's memory traffic.

On a CPU, a decoding step of a small Whisper is bound by reading the output embedding (tiny: 51,865 × 384
float32 = 80 MB per pass, most of the pass). The decisions of greedy and beam search only need the exact
logits of the few tokens that can win. So:

1. **screen**: multiply by a bfloat16 (or float16, whichever the CPU multiplies faster) copy of the text rows
   (half the bytes), with a
   guaranteed bound on each approximate logit's error (below); the 1,501 timestamp rows stay float32 (they
   are small, and the timestamp rule sums their probabilities);
2. **refine**: every text token whose approximate logit could still reach the best token's lower bound is
   computed exactly in float32 (:meth:`VocabScreen.exact`): usually a handful;
3. the decision (argmax, top-k) over these exact values is provably the float32 decision: a token left
   approximate is, exactly, below the winner.

The bound. States ``h`` (float32) are split into two bfloat16 rows, ``h ≈ hi + lo``, multiplied in one product
(a whole-vocabulary error ``(h − hi)·e`` would otherwise shift the log-sum-exp coherently); ``ê`` is a row's
bfloat16 rounding, ``a`` the approximate logit (each product accumulated in float32, rounded to bfloat16,
summed)::

    |h·e − a| ≤ ‖h − hi − lo‖·max‖e‖ + ‖hi + lo‖·max‖e − ê‖              (Cauchy–Schwarz on the roundings)
                + 1e-4·(‖hi‖ + ‖lo‖)·max‖ê‖ + 2·2⁻⁷·‖lo‖·max‖ê‖           (accumulation; lo's output rounding)
                + 2⁻⁷·|a|                                                (hi's output rounding, 2⁻⁸ relative)

The first two lines are :meth:`VocabScreen.approx`'s per-state half-width. The log-probability normaliser
(log-sum-exp) takes the approximate values of the tokens left approximate; their errors are independent per
token and average out (about 1e-5 per step over Whisper's 51,865 tokens, 1e-4 over a few hundred).
"""
from __future__ import annotations

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
    """A bfloat16 copy of the text rows ``weight[:split]`` of a tied output embedding, for screening.

    Build one per weight version (:func:`screen_for` caches it on the decoder).
    """

    def __init__(self, weight: torch.Tensor, split: int):
        if weight.dtype != torch.float32:
            raise ValueError(f"screening refines to float32 logits; the embedding is {weight.dtype}")
        self.weight, self.split = weight, split
        text = weight[:split]
        # the [D, split] half-precision operand: bfloat16 or float16, a transposed copy (oneDNN's fast layout for
        # few rows on CPUs with AVX-512 BF16 / AMX) or a view of the [split, D] rows (16x faster for bfloat16 on an
        # AVX2-only EPYC: 2.9 against 46 ms for 2 x 384 x 50,257; float16 there: 2.2 ms); which one, and whether
        # screening beats the plain float32 product at all, is measured once here (a few products), since it
        # depends on the CPU's kernels. The bound below holds for either type (float16 rounds more finely).
        self.low_t, self.max_states = _fastest_operand(text, weight)  # where screening pays: up to this many states
        self.exact_t = weight[split:].T.contiguous()  # [D, V - split] float32
        low = self.low_t.T.float()
        self.row_max = float(text.norm(dim=1).max())
        self.low_row_max = float(low.norm(dim=1).max())
        self.err_row_max = float((text - low).norm(dim=1).max())
        self.key = _key(weight)
        self.refined = 0  # text logits computed exactly so far (a diagnostic: the screen's selectivity)

    def approx(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """States ``[N, D]`` float32 → (logits ``[N, V]``: approximate for the text rows, exact for the rest;
        half-widths ``[N]``: the error bound of each row's approximate logits, before the output rounding)."""
        N = h.shape[0]
        # h as the sum of two bfloat16 rows (hi + lo): one GEMM of 2N rows reads the embedding once, and h is
        # represented to ~16 bits. Rounding h to one bfloat16 would shift every logit by (h - hi)·e, an error
        # coherent across the vocabulary that biases the log-sum-exp (1e-4 per step measured); the output
        # roundings left are independent per token and average out in it.
        dtype = self.low_t.dtype
        hi = h.to(dtype)
        lo = (h - hi.float()).to(dtype)
        both = torch.mm(torch.cat([hi, lo]), self.low_t)  # [2N, split] in bfloat16 / float16
        out = h.new_empty(N, self.weight.shape[0])
        text = out[:, : self.split]
        text.copy_(both[:N])
        text += both[N:]
        out[:, self.split :] = h @ self.exact_t
        hi_f, lo_f = hi.float(), lo.float()
        lo_norm = lo_f.norm(dim=1)
        half = ((h - hi_f - lo_f).norm(dim=1) * self.row_max  # what hi + lo leave of h
                + (hi_f + lo_f).norm(dim=1) * self.err_row_max  # the embedding's rounding
                + (hi_f.norm(dim=1) + lo_norm) * ACCUMULATION * self.low_row_max  # float32 accumulation
                + 2 * OUTPUT_ROUNDING * lo_norm * self.low_row_max  # lo's output rounding (hi's: 2⁻⁷|a| in refine)
                + 2 * SUBNORMAL)  # float16 outputs below its normal range round absolutely (both products)
        if dtype == torch.float16 and not bool(torch.isfinite(hi).all()):  # beyond float16's range: no bound
            half = torch.full_like(half, float("inf"))
        return out, half

    def exact(self, h: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Float32 logits of the tokens ``cols`` for the states ``h[rows]``."""
        self.refined += int(rows.numel())
        return (h[rows] * self.weight[cols]).sum(-1)

    def refine(self, logits: torch.Tensor, h: torch.Tensor, half: torch.Tensor, top: int = 1) -> torch.Tensor:
        """Make exact, in place, every text logit of ``logits`` ``[N, V]`` (the output of :meth:`approx`, any
        tokens masked to -inf since) that could be among the ``top`` largest; returns ``logits``.

        Let ``low`` be a lower bound of the exact ``top``-th largest logit (from the approximate one). A text token
        whose approximate logit is below ``thr = u⁻¹(low)``, ``u(a) = a + half + 2⁻⁷|a|`` the upper bound of an
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
        low = kth - half - OUTPUT_ROUNDING * kth.abs()
        y = low - half
        thr = torch.where(y >= 0, y / (1 + OUTPUT_ROUNDING), y / (1 - OUTPUT_ROUNDING))
        thr = torch.where(torch.isfinite(kth), thr, float("inf"))[:, None]  # every token masked: nothing to refine
        # (text >= thr).nonzero() for a few hits in a wide tensor: only the blocks whose maximum reaches thr
        # (nonzero over the whole width is the slow part on a CPU), then the text past the last whole block
        r, b = (block_max >= thr).nonzero(as_tuple=True)
        i, c = (blocks[r, b] >= thr[r]).nonzero(as_tuple=True)
        tr, tc = (text[:, full:] >= thr).nonzero(as_tuple=True)
        rows, cols = torch.cat([r[i], tr]), torch.cat([b[i] * BLOCK + c, tc + full])
        logits[rows, cols] = self.exact(h, rows, cols)
        return logits


def _fastest_operand(text: torch.Tensor, weight: torch.Tensor, repeats: int = 3) -> tuple[torch.Tensor, int]:
    """The fastest [D, split] half-precision operand (bfloat16 or float16; a transposed copy or a view of the rows)
    for one state (2 rows: hi and lo), and the most states per product for which screening beats the float32
    product with the whole embedding by 20 % (measured at 1 and 9 states; 0: never). Off the CPU: the bfloat16
    copy, always."""
    import time

    if weight.device.type != "cpu":
        return text.to(torch.bfloat16).T.contiguous(), 1 << 30
    D = text.shape[1]

    def cost(fn) -> float:
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        return best

    options = []
    with torch.no_grad():
        for dtype in (torch.bfloat16, torch.float16):
            low = text.to(dtype)
            for m in (low.T.contiguous(), low.T):
                x = torch.zeros(2, D, dtype=dtype, device="cpu")
                options.append((cost(lambda m=m, x=x: torch.mm(x, m)), m))
        best, m = min(options, key=lambda o: o[0])
        many = cost(lambda: torch.mm(torch.zeros(18, D, dtype=m.dtype, device="cpu"), m))
        plain = [cost(lambda n=n: torch.zeros(n, D, device="cpu") @ weight.T) for n in (1, 9)]
    return m, 9 if many < 0.8 * plain[1] else 1 if best < 0.8 * plain[0] else 0


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
