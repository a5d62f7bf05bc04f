"""Small file helpers shared by every writer in audiokit."""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path


def _usual(mode: int) -> int:
    """``mode`` less the process umask: the permissions a plain ``open``/``mkdir`` would have given."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


class atomic_path:
    """Context manager giving a temporary path beside ``path``; renamed onto it on success.

    Nothing is left at ``path`` (and the temporary file is removed) if the block raises.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp" + self.path.suffix, dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            os.chmod(self.tmp, _usual(0o666))  # mkstemp makes 0600 files
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
        return False


def write_folder(dst: str | os.PathLike, write) -> None:
    """``write(tmp)`` into a temporary folder beside ``dst``, renamed onto ``dst`` only when it succeeded: a failed
    conversion leaves no half-written folder, and an existing ``dst`` is replaced whole."""
    import shutil

    dst_path = Path(dst)
    dst_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst_path.name}.", dir=dst_path.parent))
    os.chmod(tmp, _usual(0o777))  # mkdtemp makes 0700 folders
    old = None
    try:
        write(tmp)
        if dst_path.exists():  # replaced whole, once the new folder is complete
            old = Path(tempfile.mkdtemp(prefix=f".{dst_path.name}.old.", dir=dst_path.parent))
            dst_path.rename(old / "x")
        tmp.rename(dst_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def read_json_file(path: str | os.PathLike, error: type[Exception], expected_format: str | None = None,
                   what: str = "file") -> dict:
    """A JSON file's object; invalid JSON, or a ``format`` field other than ``expected_format``, raises ``error``
    naming the file ("PATH: not an audiokit WHAT (format ...)")."""
    import json

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise error(f"{path}: not valid JSON ({e})") from None
    if expected_format is not None and (not isinstance(data, dict) or data.get("format") != expected_format):
        found = data.get("format") if isinstance(data, dict) else None
        raise error(f"{path}: not an audiokit {what} (format {found!r})")
    return data


class RefusedPickle(Exception):
    """Marks the error :func:`load_torch_file` raises for a pickle that asks for code (a subclass of the
    caller's error type too, so callers that catch that still catch it)."""


_REFUSED: dict[type, type] = {}


def _refused(error: type[Exception]) -> type[Exception]:
    if error not in _REFUSED:
        _REFUSED[error] = type(error.__name__, (error, RefusedPickle), {"__module__": error.__module__})
    return _REFUSED[error]


def load_torch_file(path: str | os.PathLike, error: type[Exception], what: str = "corrupt or truncated checkpoint",
                    mmap: bool = False):
    """``torch.load`` onto the CPU with ``weights_only=True``, always: tensors and plain data (dicts, lists,
    numbers, strings) load; a pickle that asks for anything else (a class, a function — the way a shared
    checkpoint runs code) is refused before any of it runs: "PATH: refusing to load ... (GLOBAL name)". An
    unreadable file raises ``error``: "PATH: WHAT (the reason)"."""
    import pickle

    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        found = re.search(r"(?:[Uu]nsupported (?:global|class):? )?GLOBAL ([\w.]+)", str(e))
        if found:  # a pickle that names a class or function to call: the way a checkpoint runs code
            detail = f"it asks for {found.group(1)}"
            raise _refused(error)(f"{path}: refusing to load: the file holds Python objects besides tensors and "
                                  f"plain data ({detail}); audiokit never runs code from a checkpoint") from None
        raise error(f"{path}: {what} ({type(e).__name__}: {e})") from None
    except Exception as e:
        raise error(f"{path}: {what} ({type(e).__name__}: {e})") from None


def load_safetensors_file(path: str | os.PathLike, error: type[Exception]) -> dict:
    """All tensors of a safetensors file (int8-stored weights dequantized to float32, see :func:`int8_state`); a
    missing or unreadable file raises ``error`` naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise error(f"{path}: missing, corrupt or truncated ({e})") from None
    try:
        return dequantize_state(state)
    except ValueError as e:
        raise error(f"{path}: {e}") from None


# ---------------------------------------------------------------------------------------------- int8 storage
INT8_SCALE = ".int8_scale"  # suffix of the per-row scale stored beside an int8 weight
INT8_MIN_NUMEL = 1024       # smaller tensors (norm gains, biases, small tables) stay in float16


def int8_state(state: dict) -> dict:
    """``state`` for storage in a quarter of float32's bytes: every floating tensor of 2+ dimensions and at least
    :data:`INT8_MIN_NUMEL` elements (linear, convolution and embedding weights) becomes int8 with one float32 scale
    per output row (symmetric, ``scale = max|row| / 127``; the rounding error of an element is at most half a step,
    ``max|row| / 254``); every other floating tensor is stored in float16. :func:`dequantize_state` undoes it."""
    import torch

    out = {}
    for k, v in state.items():
        v = v.detach().cpu()
        if not v.is_floating_point():
            out[k] = v.contiguous()
        elif v.dim() >= 2 and v.numel() >= INT8_MIN_NUMEL:
            rows = v.float().reshape(v.shape[0], -1)
            scale = rows.abs().amax(dim=1).clamp_min(1e-12) / 127.0
            out[k] = torch.round(rows / scale[:, None]).clamp_(-127, 127).to(torch.int8).reshape(v.shape).contiguous()
            out[k + INT8_SCALE] = scale.contiguous()
        else:
            out[k] = v.to(torch.float16).contiguous()
    return out


def cast_state(state: dict, dtype) -> dict:
    """``state`` on the CPU for writing: floating tensors in ``dtype``, or int8 with scales for ``torch.int8``."""
    import torch

    if dtype == torch.int8:
        return int8_state(state)
    return {k: v.detach().cpu().to(dtype if v.is_floating_point() else v.dtype).contiguous() for k, v in state.items()}


def dequantize_state(state: dict) -> dict:
    """The float32 weights of a state written by :func:`int8_state` (a state without int8 weights is returned as
    it is). A scale without its weight, or of the wrong length, is a ValueError."""
    import torch

    scales = {k[: -len(INT8_SCALE)]: v for k, v in state.items() if k.endswith(INT8_SCALE)}
    if not scales:
        return state
    out = {k: v for k, v in state.items() if not k.endswith(INT8_SCALE)}
    for k, scale in scales.items():
        w = out.get(k)
        if w is None or w.dtype != torch.int8 or scale.dim() != 1 or w.dim() < 1 or w.shape[0] != scale.shape[0]:
            raise ValueError(f"int8 weight {k!r} does not match its scale (damaged file?)")
        out[k] = w.float() * scale.float().reshape(-1, *([1] * (w.dim() - 1)))
    return out
