"""Bundled models: folders under ``pretrained/`` in the source tree, found by name.

``resolve("valle")`` → ``pretrained/valle`` when it exists; any existing path is returned as it is.
"""
from __future__ import annotations

import os
from pathlib import Path

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained"


def available() -> list[str]:
    """Names of the bundled model folders."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / "config.json").exists())


def resolve(name_or_path: str | os.PathLike) -> Path:
    """An existing path, or the bundled model of that name; a clear FileNotFoundError otherwise."""
    path = Path(name_or_path)
    if path.exists():
        return path
    bundled = PRETRAINED_DIR / str(name_or_path)
    if (bundled / "config.json").exists():
        return bundled
    names = available()
    raise FileNotFoundError(f"{name_or_path}: no such model folder, and no bundled model of that name "
                            f"(bundled: {', '.join(names) if names else 'none yet'})")
