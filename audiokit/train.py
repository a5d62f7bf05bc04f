"""``audiokit train FAMILY``: LightningCLI over a family's LightningModule and the shared DataModule.

Every Trainer flag works from YAML or the command line (``--trainer.max_steps 100``), and ``--ckpt_path last``
resumes a killed run from its last checkpoint.
"""
from __future__ import annotations

import importlib
import os

# family -> (module, LightningModule class); families that have not landed are absent
FAMILIES = {
    "codec": ("audiokit.codec.lightning", "CodecLightningModule"),
    "asr": ("audiokit.asr.lightning", "ASRLightningModule"),
    "valle-ar": ("audiokit.valle.lightning", "ValleARModule"),
    "valle-nar": ("audiokit.valle.lightning", "ValleNARModule"),
    "tortoise-ar": ("audiokit.tortoise.lightning", "TortoiseARModule"),
    "clvp": ("audiokit.tortoise.lightning", "CLVPModule"),
    "diffusion": ("audiokit.tortoise.lightning", "DiffusionModule"),
    "diffusion-ar-latents": ("audiokit.tortoise.lightning", "DiffusionARLatentsModule"),
    "units-decoder": ("audiokit.valle.lightning", "UnitsDecoderModule"),
}
# families whose data is not the shared SpeechDataModule
DATAMODULES = {
    "valle-ar": ("audiokit.valle.data", "ValleDataModule"),
    "valle-nar": ("audiokit.valle.data", "ValleDataModule"),
    "units-decoder": ("audiokit.valle.data", "ValleDataModule"),
    **{f: ("audiokit.tortoise.data", "TortoiseDataModule") for f in ("tortoise-ar", "clvp", "diffusion", "diffusion-ar-latents")},
}
PLANNED: dict[str, str] = {}


def _load(where: tuple[str, str]):
    module, name = where
    return getattr(importlib.import_module(module), name)


def model_class(family: str):
    return _load(FAMILIES[family])


def datamodule_class(family: str):
    if family in DATAMODULES:
        return _load(DATAMODULES[family])
    from .data.datamodule import SpeechDataModule

    return SpeechDataModule


def run(family: str, args: list[str]) -> None:
    import warnings

    from lightning.pytorch.cli import LightningCLI

    # LightningCLI warns when given args while sys.argv holds others; sys.argv must stay as it is, because
    # Lightning's DDP launcher re-runs it to start the other ranks.
    warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter is intended.*")
    cli = LightningCLI(model_class(family), datamodule_class(family), args=["fit", *args],
                       save_config_kwargs={"overwrite": True}, auto_configure_optimizers=False)
    save_final_checkpoint(cli.trainer)


def save_final_checkpoint(trainer) -> None:
    """Write ``last.ckpt`` at the step the run ended on. ModelCheckpoint saves every N steps, so a run that stops
    between two saves (``max_steps`` not a multiple of N, ``max_time``) would leave ``last.ckpt`` up to N - 1
    steps behind its final weights, and the export would silently drop the end of the learning-rate schedule."""
    for cb in trainer.checkpoint_callbacks:
        if not (getattr(cb, "save_last", False) and cb.dirpath) or trainer.global_step == 0:
            continue
        if getattr(cb, "_last_global_step_saved", None) != trainer.global_step:
            trainer.save_checkpoint(os.path.join(cb.dirpath, f"{cb.CHECKPOINT_NAME_LAST}{cb.FILE_EXTENSION}"))
