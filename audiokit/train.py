"""``audiokit train FAMILY``: LightningCLI over a family's LightningModule and the shared DataModule.

Every Trainer flag works from YAML or the command line (``--trainer.max_steps 100``), and ``--ckpt_path last``
resumes a killed run from its last checkpoint.
"""
from __future__ import annotations

import importlib

# family -> (module, LightningModule class); families that have not landed are absent
FAMILIES = {
    "codec": ("audiokit.codec.lightning", "CodecLightningModule"),
    "asr": ("audiokit.asr.lightning", "ASRLightningModule"),
}
PLANNED = {
    "valle-ar": "the VALL-E model family", "valle-nar": "the VALL-E model family",
    "tortoise-ar": "the Tortoise model family", "clvp": "the Tortoise model family",
    "diffusion": "the Tortoise model family", "diffusion-ar-latents": "the Tortoise model family",
}


def model_class(family: str):
    module, name = FAMILIES[family]
    return getattr(importlib.import_module(module), name)


def run(family: str, args: list[str]) -> None:
    from lightning.pytorch.cli import LightningCLI

    from .data.datamodule import SpeechDataModule

    import warnings

    # LightningCLI warns when given args while sys.argv holds others; sys.argv must stay as it is, because
    # Lightning's DDP launcher re-runs it to start the other ranks.
    warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter is intended.*")
    LightningCLI(model_class(family), SpeechDataModule, args=["fit", *args], save_config_kwargs={"overwrite": True},
                 auto_configure_optimizers=False)
