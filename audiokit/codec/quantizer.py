"""Residual vector quantization.

Two codebook kinds, one residual stack:

- ``factorized`` (DAC / improved RVQGAN): each level projects the residual to a small lookup space
  (1×1 weight-normed conv, e.g. 1024 → 8), looks up the nearest code by cosine similarity (query and
  codebook L2-normalized), takes the raw codebook row, and projects back. Losses: commitment
  ``‖z_e − sg(z_q)‖²`` and codebook ``‖z_q − sg(z_e)‖²``; straight-through gradients. Dead codes (rarely
  chosen) are re-initialized from recent projected encoder outputs.
- ``ema`` (EnCodec): euclidean codebook kept in buffers and updated by exponential moving averages
  (decay 0.99, Laplace smoothing ε 1e-5), k-means initialized on the first batch, codes whose EMA
  cluster size falls under a threshold replaced by batch vectors. Commitment loss only.

Quantizer dropout: in training, each example uses the first ``n`` levels with ``n`` uniform in
``[1, N]`` with probability ``quantizer_dropout`` (else all ``N``), so any prefix of the codebooks decodes.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..nn.layers import Conv1d


def _is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


class FactorizedCodebook(nn.Module):
    """One level of factorized, L2-normalized vector quantization (DAC)."""

    def __init__(self, input_dim: int, codebook_size: int, codebook_dim: int):
        super().__init__()
        self.codebook_size, self.codebook_dim = codebook_size, codebook_dim
        self.in_proj = Conv1d(input_dim, codebook_dim, 1, padding=0)
        self.out_proj = Conv1d(codebook_dim, input_dim, 1, padding=0)
        self.codebook = nn.Embedding(codebook_size, codebook_dim)
        self.register_buffer("usage", torch.zeros(codebook_size), persistent=False)
        self._recent: torch.Tensor | None = None

    def lookup(self, z_e: torch.Tensor) -> torch.Tensor:
        """Nearest codes by cosine similarity: ``z_e`` ``[B, D, T]`` → indices ``[B, T]``."""
        q = F.normalize(z_e.transpose(1, 2).reshape(-1, self.codebook_dim).float(), dim=1)
        cb = F.normalize(self.codebook.weight.float(), dim=1)
        idx = (q @ cb.t()).argmax(dim=1)
        return idx.view(z_e.shape[0], z_e.shape[2])

    def decode_latent(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices ``[B, T]`` → projected-back latents ``[B, input_dim, T]``."""
        return self.out_proj(self.codebook(indices).transpose(1, 2))

    def expected_latent(self, probs: torch.Tensor) -> torch.Tensor:
        """Code probabilities ``[B, T, K]`` → the expected projected-back latent ``[B, input_dim, T]``."""
        return self.out_proj((probs.to(self.codebook.weight.dtype) @ self.codebook.weight).transpose(1, 2))

    def forward(self, z: torch.Tensor):
        z_e = self.in_proj(z)
        indices = self.lookup(z_e)
        z_q = self.codebook(indices).transpose(1, 2)
        commitment = F.mse_loss(z_e, z_q.detach(), reduction="none").mean(dim=(1, 2))
        codebook = F.mse_loss(z_q, z_e.detach(), reduction="none").mean(dim=(1, 2))
        if self.training:
            self._track(indices, z_e)
        z_q = z_e + (z_q - z_e).detach()
        return self.out_proj(z_q), indices, commitment, codebook

    @torch.no_grad()
    def _track(self, indices: torch.Tensor, z_e: torch.Tensor) -> None:
        counts = torch.bincount(indices.flatten(), minlength=self.codebook_size).float()
        self.usage.mul_(0.99).add_(counts, alpha=0.01)
        self._recent = z_e.detach().transpose(1, 2).reshape(-1, self.codebook_dim)

    @torch.no_grad()
    def reinit_dead_codes(self, threshold: float = 1e-3) -> int:
        """Replace codes whose usage EMA (codes per step) is under ``threshold`` by recent encoder outputs.

        Under DDP every rank computes the same dead set from all-reduced usage, and rank 0's choice of
        replacement vectors is broadcast, so codebooks stay identical across ranks.
        """
        if self._recent is None or self._recent.shape[0] == 0:
            return 0
        usage = self.usage.clone()
        if _is_dist():
            dist.all_reduce(usage)
        dead = usage < threshold
        n = int(dead.sum())
        if n == 0:
            return 0
        pick = torch.randint(0, self._recent.shape[0], (n,), device=self._recent.device)
        new = self._recent[pick].to(self.codebook.weight.dtype)
        if _is_dist():
            dist.broadcast(new, src=0)
        self.codebook.weight.data[dead] = new
        self.usage[dead] = threshold * 10  # give new codes time to be chosen
        return n


class EMACodebook(nn.Module):
    """One level of euclidean vector quantization with EMA updates and k-means init (EnCodec)."""

    def __init__(self, input_dim: int, codebook_size: int, decay: float = 0.99, epsilon: float = 1e-5,
                 kmeans_iters: int = 50, threshold_ema_dead_code: float = 2.0):
        super().__init__()
        self.codebook_size, self.codebook_dim = codebook_size, input_dim
        self.decay, self.epsilon, self.kmeans_iters, self.threshold = decay, epsilon, kmeans_iters, threshold_ema_dead_code
        self.register_buffer("inited", torch.tensor([False]))
        self.register_buffer("cluster_size", torch.zeros(codebook_size))
        self.register_buffer("embed", torch.zeros(codebook_size, input_dim))
        self.register_buffer("embed_avg", torch.zeros(codebook_size, input_dim))

    def lookup(self, z: torch.Tensor) -> torch.Tensor:
        x = z.transpose(1, 2).reshape(-1, self.codebook_dim).float()
        e = self.embed.float()
        dist_ = x.pow(2).sum(1, keepdim=True) - 2 * x @ e.t() + e.pow(2).sum(1)[None]
        return dist_.argmin(dim=1).view(z.shape[0], z.shape[2])

    def decode_latent(self, indices: torch.Tensor) -> torch.Tensor:
        return F.embedding(indices, self.embed).transpose(1, 2)

    def expected_latent(self, probs: torch.Tensor) -> torch.Tensor:
        return (probs.to(self.embed.dtype) @ self.embed).transpose(1, 2)

    @torch.no_grad()
    def _kmeans_init(self, x: torch.Tensor) -> None:
        g = torch.Generator(device="cpu").manual_seed(0)
        idx = torch.randint(0, x.shape[0], (self.codebook_size,), generator=g, device="cpu").to(x.device)
        means = x[idx].clone()
        for _ in range(self.kmeans_iters):
            assign = torch.cdist(x, means).argmin(1)
            counts = torch.bincount(assign, minlength=self.codebook_size).float()
            sums = torch.zeros_like(means).index_add_(0, assign, x)
            means = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], means)
        if _is_dist():
            dist.broadcast(means, src=0)
        self.embed.copy_(means)
        self.embed_avg.copy_(means)
        self.cluster_size.fill_(1.0)
        self.inited.fill_(True)

    def forward(self, z: torch.Tensor):
        x = z.transpose(1, 2).reshape(-1, self.codebook_dim).float()
        if self.training and not bool(self.inited):
            self._kmeans_init(x.detach())
        indices = self.lookup(z)
        z_q = self.decode_latent(indices).to(z.dtype)
        if self.training:
            self._ema_update(x.detach(), indices.flatten())
        commitment = F.mse_loss(z, z_q.detach(), reduction="none").mean(dim=(1, 2))
        z_q = z + (z_q - z).detach()
        return z_q, indices, commitment, torch.zeros_like(commitment)

    @torch.no_grad()
    def _ema_update(self, x: torch.Tensor, indices: torch.Tensor) -> None:
        onehot = F.one_hot(indices, self.codebook_size).type(x.dtype)
        counts, sums = onehot.sum(0), onehot.t() @ x
        if _is_dist():
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.epsilon) / (n + self.codebook_size * self.epsilon) * n
        self.embed.copy_(self.embed_avg / smoothed[:, None])
        dead = self.cluster_size < self.threshold
        if dead.any():
            pick = torch.randint(0, x.shape[0], (int(dead.sum()),), device=x.device)
            new = x[pick]
            if _is_dist():
                dist.broadcast(new, src=0)
            self.embed[dead] = new
            self.embed_avg[dead] = new
            self.cluster_size[dead] = self.threshold

    @torch.no_grad()
    def reinit_dead_codes(self, threshold: float = 0.0) -> int:
        return 0  # dead codes are handled inside every EMA update

    @property
    def usage(self) -> torch.Tensor:
        return self.cluster_size


class ResidualVectorQuantizer(nn.Module):
    """A stack of ``n_codebooks`` codebooks, each quantizing what the previous left over.

    Args:
        input_dim: latent channels.
        n_codebooks, codebook_size: levels and codes per level.
        codebook_dim: lookup dimension of factorized codebooks (ignored for ``ema``).
        kind: ``"factorized"`` (DAC) or ``"ema"`` (EnCodec).
        quantizer_dropout: probability that a training example uses a random prefix of levels.
    """

    def __init__(self, input_dim: int = 1024, n_codebooks: int = 9, codebook_size: int = 1024, codebook_dim: int = 8,
                 kind: str = "factorized", quantizer_dropout: float = 0.5, **ema_kwargs):
        super().__init__()
        if kind not in ("factorized", "ema"):
            raise ValueError(f"quantizer kind must be 'factorized' or 'ema', got {kind!r}")
        if not 0.0 <= float(quantizer_dropout) <= 1.0:
            raise ValueError(f"quantizer_dropout is a probability in [0, 1], got {quantizer_dropout!r}")
        self.n_codebooks, self.codebook_size, self.kind = n_codebooks, codebook_size, kind
        self.quantizer_dropout = float(quantizer_dropout)
        if kind == "factorized":
            levels = [FactorizedCodebook(input_dim, codebook_size, codebook_dim) for _ in range(n_codebooks)]
        else:
            levels = [EMACodebook(input_dim, codebook_size, **ema_kwargs) for _ in range(n_codebooks)]
        self.levels = nn.ModuleList(levels)

    def _levels_per_example(self, B: int, n_q: int | None, device) -> torch.Tensor:
        n_q = self.n_codebooks if n_q is None else n_q
        n = torch.full((B,), n_q, device=device)
        if self.training and self.quantizer_dropout > 0 and n_q > 1:
            drop = torch.rand(B, device=device) < self.quantizer_dropout
            n = torch.where(drop, torch.randint(1, n_q + 1, (B,), device=device), n)
        return n

    def forward(self, z: torch.Tensor, n_q: int | None = None) -> dict:
        """Quantize ``z`` ``[B, D, T]``.

        Returns ``z_q`` (sum over the levels each example uses), ``first`` (the first level's latent, which every
        example uses: what a semantic teacher is distilled into), ``codes`` ``[B, n_q, T]``, per-example
        ``commitment`` and ``codebook`` losses (averaged over used levels), and ``n_levels`` ``[B]``.
        """
        n_q = self.n_codebooks if n_q is None else n_q
        if not 1 <= n_q <= self.n_codebooks:
            raise ValueError(f"n_q must lie in [1, {self.n_codebooks}], got {n_q}")
        B = z.shape[0]
        n_levels = self._levels_per_example(B, n_q, z.device)
        z_q = torch.zeros_like(z)
        residual = z
        codes, commit, cbloss = [], torch.zeros(B, device=z.device), torch.zeros(B, device=z.device)
        for i, level in enumerate(self.levels[:n_q]):
            q, idx, c, k = level(residual)
            mask = (n_levels > i).to(z.dtype)[:, None, None]
            z_q = z_q + q * mask
            residual = residual - q.detach() * mask if self.kind == "ema" else residual - q * mask
            codes.append(idx)
            if i == 0:
                first = q
            commit = commit + c * mask[:, 0, 0]
            cbloss = cbloss + k * mask[:, 0, 0]
        return {
            "z_q": z_q,
            "first": first,
            "codes": torch.stack(codes, dim=1),
            "commitment": (commit / n_levels).mean(),
            "codebook": (cbloss / n_levels).mean(),
            "n_levels": n_levels,
        }

    @torch.no_grad()
    def encode(self, z: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """Codes ``[B, n_q, T]`` (inference: no dropout, no updates)."""
        n_q = self.n_codebooks if n_q is None else n_q
        residual, codes = z, []
        for level in self.levels[:n_q]:
            z_e = level.in_proj(residual) if self.kind == "factorized" else residual
            idx = level.lookup(z_e)
            residual = residual - level.decode_latent(idx)
            codes.append(idx)
        return torch.stack(codes, dim=1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, Q, T]`` (any ``Q ≤ n_codebooks``) → quantized latents ``[B, D, T]``."""
        z = None
        for i in range(codes.shape[1]):
            q = self.levels[i].decode_latent(codes[:, i])
            z = q if z is None else z + q
        return z

    def decode_expected(self, codes: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, D, T]`` from known codes ``[B, Q1, T]`` of the first levels and code probabilities
        ``[B, Q2, T, K]`` of the next ones, each of those at its expectation (``Q1 + Q2 ≤ n_codebooks``).

        Where a model is sure of a code this is the code's latent; where it is not, the probability-weighted
        mean of its candidates, the least-squares guess, instead of one arbitrary candidate's full-size vector."""
        Q1, Q2 = codes.shape[1], probs.shape[1]
        if Q1 + Q2 > self.n_codebooks or probs.shape[-1] != self.codebook_size:
            raise ValueError(f"{Q1} known + {Q2} expected levels of {probs.shape[-1]} codes, but the quantizer has "
                             f"{self.n_codebooks} levels of {self.codebook_size}")
        z = self.decode(codes)
        for j in range(Q2):
            z = z + self.levels[Q1 + j].expected_latent(probs[:, j])
        return z

    @torch.no_grad()
    def reinit_dead_codes(self, threshold: float = 1e-3) -> int:
        return sum(level.reinit_dead_codes(threshold) for level in self.levels)

    @torch.no_grad()
    def usage_stats(self) -> list[dict]:
        """Per level: share of codes in use (EMA usage above a small floor) and perplexity of the usage distribution."""
        out = []
        for level in self.levels:
            u = level.usage.float()
            p = u / u.sum().clamp(min=1e-12)
            ent = -(p * (p + 1e-12).log()).sum()
            out.append({"used": float((u > 1e-3 * u.max().clamp(min=1e-12)).float().mean()), "perplexity": float(ent.exp())})
        return out
