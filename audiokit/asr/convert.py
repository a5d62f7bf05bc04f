"""Official Whisper checkpoints (``{"dims", "model_state_dict"}``) → :class:`ASRModel`, read with ``weights_only``."""
from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

from ..fileio import load_torch_file
from .model import ASRModel, ModelDimensions


class CheckpointError(ValueError):
    """A Whisper checkpoint that cannot be loaded; the message names the file and why."""


def load_whisper_checkpoint(path: str | os.PathLike, device="cpu") -> ASRModel:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    ckpt = load_torch_file(path, CheckpointError, what="corrupt, truncated or not a PyTorch checkpoint")
    if not isinstance(ckpt, dict) or "dims" not in ckpt or "model_state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not a Whisper checkpoint (expected 'dims' and 'model_state_dict')")
    names = {f.name for f in fields(ModelDimensions)} - {"n_ctc_vocab"}  # Whisper's own ten
    missing = names - set(ckpt["dims"])
    if missing:
        raise CheckpointError(f"{path}: dims lack {sorted(missing)}")
    dims = ModelDimensions(**{k: int(ckpt["dims"][k]) for k in names})
    state = {k: v for k, v in ckpt["model_state_dict"].items() if not k.startswith("alignment_heads")}
    return build_model(dims, state, str(path)).to(device).eval()


def build_model(dims: ModelDimensions, state: dict, where: str) -> ASRModel:
    """An :class:`ASRModel` of ``dims`` with ``state`` loaded (float32), or a :class:`CheckpointError` naming
    ``where`` and the missing, unexpected or wrongly shaped weights. The sinusoidal positions may be absent."""
    model = ASRModel(dims)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and k != "encoder.positional_embedding"]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        raise CheckpointError(f"{where}: weights do not match dims {dims.to_dict()} (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]}, wrong shapes {wrong[:3]})")
    model.load_state_dict({k: v.float() for k, v in state.items() if k != "encoder.positional_embedding"}, strict=False)
    return model
