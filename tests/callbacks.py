"""Callbacks the tests inject into `audiokit train` runs (importable by the subprocesses through PYTHONPATH)."""
import os

from lightning.pytorch.callbacks import Callback


class DieAtStep(Callback):
    """Kill the process abruptly (no clean-up, like SIGKILL or a lost machine) once global_step reaches `step`."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step >= self.step:
            os._exit(3)
