"""Duration-bucketing batch sampler: batches of similar-length utterances under a padded-seconds budget."""
from __future__ import annotations

import math
import random
from typing import Iterator, Sequence

import torch.distributed as dist
from torch.utils.data import Sampler


class DurationBucketSampler(Sampler[list[int]]):
    """Yields lists of dataset indices.

    Utterances are sorted by duration and split into ``num_buckets`` buckets of equal count; each epoch,
    every bucket is shuffled and packed greedily so that ``len(batch) * longest_in_batch`` (the padded
    seconds the batch will cost) stays within ``max_batch_seconds``; then the batch order is shuffled.
    An utterance longer than the budget gets a batch of its own.

    Under DDP, every rank builds the same batch list from the same seed and takes every
    ``num_replicas``-th batch, after padding the list (by repeating batches) to a multiple of
    ``num_replicas`` so all ranks step the same number of times. Call :meth:`set_epoch` each epoch
    (Lightning does this for samplers that have it).
    """

    def __init__(
        self,
        durations: Sequence[float],
        max_batch_seconds: float,
        max_batch_size: int | None = None,
        num_buckets: int = 10,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ):
        if max_batch_seconds <= 0:
            raise ValueError(f"max_batch_seconds must be positive, got {max_batch_seconds}")
        if len(durations) == 0:
            raise ValueError("cannot sample batches from an empty dataset")
        if num_replicas is None:
            num_replicas = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if rank is None:
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside [0, {num_replicas})")
        self.durations = [float(d) for d in durations]
        self.max_batch_seconds = float(max_batch_seconds)
        self.max_batch_size = max_batch_size
        self.num_buckets = max(1, min(num_buckets, len(durations)))
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        order = sorted(range(len(durations)), key=lambda i: (self.durations[i], i))
        size = math.ceil(len(order) / self.num_buckets)
        self.buckets = [order[i : i + size] for i in range(0, len(order), size)]
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _pack(self, indices: list[int]) -> list[list[int]]:
        batches, batch, longest = [], [], 0.0
        for i in indices:
            d = self.durations[i]
            new_longest = max(longest, d)
            full = self.max_batch_size is not None and len(batch) >= self.max_batch_size
            if batch and (full or new_longest * (len(batch) + 1) > self.max_batch_seconds):
                batches.append(batch)
                batch, new_longest = [], d
            batch.append(i)
            longest = new_longest
        if batch and not (self.drop_last and len(batches) > 0 and longest * len(batch) < 0.5 * self.max_batch_seconds):
            batches.append(batch)
        return batches

    def _all_batches(self) -> list[list[int]]:
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        batches: list[list[int]] = []
        for bucket in self.buckets:
            idx = list(bucket)
            if self.shuffle:
                rng.shuffle(idx)
                # re-sort loosely inside the bucket so batches stay tight while their membership varies
                idx.sort(key=lambda i: self.durations[i] * (1 + 0.1 * rng.random()))
            batches.extend(self._pack(idx))
        if self.shuffle:
            rng.shuffle(batches)
        if self.num_replicas > 1:
            if self.drop_last and len(batches) >= self.num_replicas:
                batches = batches[: len(batches) - len(batches) % self.num_replicas]
            else:
                pad = -len(batches) % self.num_replicas
                batches += [batches[i % len(batches)] for i in range(pad)]
        self._cache = (self.epoch, batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._all_batches()[self.rank :: self.num_replicas])

    def __len__(self) -> int:
        return len(self._all_batches()) // self.num_replicas
