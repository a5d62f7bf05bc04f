"""Official checkpoints → audiokit codec modules (no reference package needed at run time).

- DAC (descript-audio-codec): ``torch.save({"state_dict", "metadata": {"kwargs"}})`` with legacy weight-norm
  keys ``weight_g`` / ``weight_v``.
- EnCodec 24 kHz (encodec): a plain state dict of the SEANet model and its EMA codebooks.

Both load with ``weights_only=True`` (no pickled code runs) and ``strict=True``: a key that does not map, or
a missing one, is an error naming it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from .model import CodecModel


class ConversionError(ValueError):
    """A checkpoint that is not the official format it was said to be."""


def _wn(key: str) -> str:
    """Legacy weight-norm names → parametrization names."""
    return re.sub(r"\.weight_g$", ".parametrizations.weight.original0",
                  re.sub(r"\.weight_v$", ".parametrizations.weight.original1", key))


_DAC_RU = {"0": "act1", "1": "conv1.conv", "2": "act2", "3": "conv2.conv"}


def dac_key(key: str, n_stages: int) -> str:
    """Map one DAC state-dict key to audiokit's module names."""
    k = key
    rules = [
        (r"^encoder\.block\.0\.", "encoder.input.conv."),
        (r"^encoder\.block\.(\d+)\.block\.([0-2])\.block\.([0-3])\.",
         lambda m: f"encoder.stages.{int(m[1]) - 1}.residuals.{m[2]}.{_DAC_RU[m[3]]}."),
        (r"^encoder\.block\.(\d+)\.block\.3\.", lambda m: f"encoder.stages.{int(m[1]) - 1}.act."),
        (r"^encoder\.block\.(\d+)\.block\.4\.", lambda m: f"encoder.stages.{int(m[1]) - 1}.down.conv."),
        (rf"^encoder\.block\.{n_stages + 1}\.", "encoder.act."),
        (rf"^encoder\.block\.{n_stages + 2}\.", "encoder.output.conv."),
        (r"^quantizer\.quantizers\.(\d+)\.(in_proj|out_proj)\.", lambda m: f"quantizer.levels.{m[1]}.{m[2]}.conv."),
        (r"^quantizer\.quantizers\.(\d+)\.codebook\.", lambda m: f"quantizer.levels.{m[1]}.codebook."),
        (r"^decoder\.model\.0\.", "decoder.input.conv."),
        (r"^decoder\.model\.(\d+)\.block\.0\.", lambda m: f"decoder.stages.{int(m[1]) - 1}.act."),
        (r"^decoder\.model\.(\d+)\.block\.1\.", lambda m: f"decoder.stages.{int(m[1]) - 1}.up.conv."),
        (r"^decoder\.model\.(\d+)\.block\.([2-4])\.block\.([0-3])\.",
         lambda m: f"decoder.stages.{int(m[1]) - 1}.residuals.{int(m[2]) - 2}.{_DAC_RU[m[3]]}."),
        (rf"^decoder\.model\.{n_stages + 1}\.", "decoder.act."),
        (rf"^decoder\.model\.{n_stages + 2}\.", "decoder.output.conv."),
    ]
    for pattern, repl in rules:
        new, n = re.subn(pattern, repl, k)
        if n:
            return _wn(new)
    raise ConversionError(f"unexpected key in DAC checkpoint: {key!r}")


def encodec_key(key: str, n_stages: int) -> str:
    """Map one EnCodec (SEANet) state-dict key to audiokit's module names."""
    last = 3 * n_stages + 3  # index of the encoder's / decoder's output conv (15 for 4 stages)
    lstm = 3 * n_stages + 1  # index of the encoder's LSTM (13 for 4 stages)

    def enc(m):
        i = int(m[1])
        if i == 0:
            return "encoder.input.conv."
        if i == lstm:
            return "encoder.lstm.lstm."
        if i == last:
            return "encoder.output.conv."
        stage, pos = divmod(i - 1, 3)
        if pos == 0:
            part = {"block.1": "conv1", "block.3": "conv2", "shortcut": "shortcut"}[m[2]]
            return f"encoder.stages.{stage}.residuals.0.{part}.conv."
        if pos == 2:
            return f"encoder.stages.{stage}.down.conv."
        raise ConversionError(f"unexpected key in EnCodec checkpoint: {key!r}")

    def dec(m):
        i = int(m[1])
        if i == 0:
            return "decoder.input.conv."
        if i == 1:
            return "decoder.lstm.lstm."
        if i == last:
            return "decoder.output.conv."
        stage, pos = divmod(i - 2, 3)
        if pos == 1:
            return f"decoder.stages.{stage}.up.conv."
        if pos == 2:
            part = {"block.1": "conv1", "block.3": "conv2", "shortcut": "shortcut"}[m[2]]
            return f"decoder.stages.{stage}.residuals.0.{part}.conv."
        raise ConversionError(f"unexpected key in EnCodec checkpoint: {key!r}")

    rules = [
        (r"^encoder\.model\.(\d+)\.(block\.[13]|shortcut)\.conv\.conv\.", enc),
        (r"^encoder\.model\.(\d+)\.(conv)\.conv\.", enc),
        (r"^encoder\.model\.(\d+)\.()lstm\.", enc),
        (r"^decoder\.model\.(\d+)\.(block\.[13]|shortcut)\.conv\.conv\.", dec),
        (r"^decoder\.model\.(\d+)\.(conv)\.conv\.", dec),
        (r"^decoder\.model\.(\d+)\.()convtr\.convtr\.", dec),
        (r"^decoder\.model\.(\d+)\.()lstm\.", dec),
        (r"^quantizer\.vq\.layers\.(\d+)\._codebook\.", lambda m: f"quantizer.levels.{m[1]}."),
    ]
    for pattern, repl in rules:
        new, n = re.subn(pattern, repl, key)
        if n:
            return _wn(new)
    raise ConversionError(f"unexpected key in EnCodec checkpoint: {key!r}")


def _load(path: str | os.PathLike):
    path = Path(path)
    if not path.exists():
        raise ConversionError(f"{path}: no such checkpoint")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, pickle with code, not a torch file
        raise ConversionError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from None


def _load_into(model: CodecModel, state: dict, what: str) -> CodecModel:
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith(".usage")]
    if missing or unexpected:
        raise ConversionError(f"{what}: keys do not match audiokit's model (missing {missing[:5]}, unexpected {unexpected[:5]})")
    return model


def dac_model_kwargs(kwargs: dict) -> dict:
    return dict(sample_rate=int(kwargs.get("sample_rate", 44100)), encoder_dim=int(kwargs.get("encoder_dim", 64)),
                encoder_rates=list(kwargs.get("encoder_rates", [2, 4, 8, 8])), latent_dim=kwargs.get("latent_dim"),
                decoder_dim=int(kwargs.get("decoder_dim", 1536)), decoder_rates=list(kwargs.get("decoder_rates", [8, 8, 4, 2])),
                n_codebooks=int(kwargs.get("n_codebooks", 9)), codebook_size=int(kwargs.get("codebook_size", 1024)),
                codebook_dim=int(kwargs.get("codebook_dim", 8)), quantizer_dropout=0.0, family="dac",
                transpose_output_padding=False)  # DAC 1.0.0's decoder layout, for identical output


def convert_dac(path: str | os.PathLike) -> CodecModel:
    """Load an official DAC ``.pth`` checkpoint into a :class:`CodecModel`."""
    ckpt = _load(path)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "metadata" not in ckpt:
        raise ConversionError(f"{path}: not a DAC checkpoint (expected 'state_dict' and 'metadata')")
    kwargs = dict(ckpt["metadata"].get("kwargs", {}))
    if isinstance(kwargs.get("codebook_dim"), (list, tuple)):
        raise ConversionError(f"{path}: per-level codebook dimensions are not supported")
    model = CodecModel(**dac_model_kwargs(kwargs))
    n = len(model.config["encoder_rates"])
    state = {dac_key(k, n): v for k, v in ckpt["state_dict"].items()}
    return _load_into(model, state, str(path))


ENCODEC_24KHZ = dict(sample_rate=24000, encoder_dim=32, encoder_rates=[2, 4, 5, 8], latent_dim=128, decoder_dim=512,
                     decoder_rates=[8, 5, 4, 2], n_codebooks=32, codebook_size=1024, codebook_dim=128, quantizer_dropout=0.0,
                     family="encodec")


def convert_encodec(path: str | os.PathLike) -> CodecModel:
    """Load the official EnCodec 24 kHz state dict into a :class:`CodecModel`."""
    state = _load(path)
    if isinstance(state, dict) and "best_state" in state:  # audiocraft-style wrapper
        state = state["best_state"]
    if not isinstance(state, dict) or not any(k.startswith("quantizer.vq.layers.") for k in state):
        raise ConversionError(f"{path}: not an EnCodec state dict (no quantizer.vq.layers.* keys)")
    n_q = len({k.split(".")[3] for k in state if k.startswith("quantizer.vq.layers.")})
    model = CodecModel(**{**ENCODEC_24KHZ, "n_codebooks": n_q})
    mapped = {encodec_key(k, 4): v for k, v in state.items()}
    return _load_into(model, mapped, str(path))
