"""Official Whisper checkpoints (``{"dims", "model_state_dict"}``) → :class:`ASRModel`, read with ``weights_only``."""
from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

import torch

from .model import ASRModel, ModelDimensions


class CheckpointError(ValueError):
    """A Whisper checkpoint that cannot be loaded; the message names the file and why."""


def load_whisper_checkpoint(path: str | os.PathLike, device="cpu") -> ASRModel:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: corrupt, truncated or not a PyTorch checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or "dims" not in ckpt or "model_state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not a Whisper checkpoint (expected 'dims' and 'model_state_dict')")
    names = {f.name for f in fields(ModelDimensions)}
    missing = names - set(ckpt["dims"])
    if missing:
        raise CheckpointError(f"{path}: dims lack {sorted(missing)}")
    dims = ModelDimensions(**{k: int(ckpt["dims"][k]) for k in names})
    model = ASRModel(dims)
    state = ckpt["model_state_dict"]
    expected = model.state_dict()
    missing_keys = [k for k in expected if k not in state and k != "encoder.positional_embedding"]
    unexpected = [k for k in state if k not in expected and not k.startswith("alignment_heads")]
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing_keys or unexpected or wrong:
        raise CheckpointError(f"{path}: weights do not match dims {dims.to_dict()} (missing {missing_keys[:3]}, "
                              f"unexpected {unexpected[:3]}, wrong shapes {wrong[:3]})")
    model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)
    return model.to(device).eval()
