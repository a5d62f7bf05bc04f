"""Small file helpers shared by every writer in audiokit."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


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
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
        return False


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


def load_torch_file(path: str | os.PathLike, error: type[Exception], weights_only: bool = False,
                    what: str = "corrupt or truncated checkpoint"):
    """``torch.load`` onto the CPU; an unreadable file raises ``error``: "PATH: WHAT (the reason)"."""
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=weights_only)
    except Exception as e:
        raise error(f"{path}: {what} ({type(e).__name__}: {e})") from None


def load_safetensors_file(path: str | os.PathLike, error: type[Exception]) -> dict:
    """All tensors of a safetensors file; a missing or unreadable file raises ``error`` naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise error(f"{path}: missing, corrupt or truncated ({e})") from None
