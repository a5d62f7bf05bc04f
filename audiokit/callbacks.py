"""Lightning callbacks shared by the training recipes (``--trainer.callbacks+=audiokit.callbacks.StepRate``)."""
from __future__ import annotations

import time

import lightning as L


class StepRate(L.Callback):
    """Prints the training speed every ``every`` optimizer steps: ``step N/M: R steps/s, T s elapsed, ETA E s``.

    The rate is measured over the last ``every`` steps (validation time excluded), so a recipe can size a
    run to a time budget from a short probe, and a user sees at once whether data loading keeps up.
    """

    def __init__(self, every: int = 50):
        if every < 1:
            raise ValueError(f"StepRate: every must be >= 1, got {every}")
        self.every = every
        self._mark: tuple[int, float] | None = None
        self._start = 0.0
        self._paused = 0.0

    def on_train_start(self, trainer, pl_module):
        self._start = time.perf_counter()
        self._mark = None

    def on_validation_start(self, trainer, pl_module):
        self._paused = time.perf_counter()

    def on_validation_end(self, trainer, pl_module):
        if self._mark is not None and self._paused:
            step, t = self._mark
            self._mark = (step, t + time.perf_counter() - self._paused)  # validation is not training speed
        self._paused = 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step, now = trainer.global_step, time.perf_counter()
        if self._mark is None:
            self._mark = (step, now)  # the first step (warm-up, compilation) is left out of the rate
            return
        last_step, last_t = self._mark
        if step - last_step < self.every:
            return
        rate = (step - last_step) / max(now - last_t, 1e-9)
        self._mark = (step, now)
        if trainer.is_global_zero:
            total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
            etas = [(total - step) / rate] if total else []
            left = _time_left(trainer)
            if left is not None:  # a wall-clock budget (max_time) ends the run first when it is the shorter
                etas.append(left)
            eta = f", ETA {min(etas):.0f} s" if etas else ""
            print(f"step {step}{f'/{total}' if total else ''}: {rate:.2f} steps/s, "
                  f"{now - self._start:.0f} s elapsed{eta}", flush=True)

    def on_train_end(self, trainer, pl_module):
        if trainer.is_global_zero and self._start:
            elapsed = time.perf_counter() - self._start
            print(f"trained to step {trainer.global_step} in {elapsed:.0f} s "
                  f"({trainer.global_step / max(elapsed, 1e-9):.2f} steps/s overall)", flush=True)


def _time_left(trainer) -> float | None:
    """Seconds left of the run's ``max_time`` budget (Lightning's Timer callback), or None without one."""
    from lightning.pytorch.callbacks import Timer

    for cb in trainer.callbacks:
        if isinstance(cb, Timer):
            return cb.time_remaining("train")
    return None
