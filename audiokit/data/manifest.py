"""JSONL manifests: one utterance per line.

Fields: ``id`` (str, unique), ``audio`` (path; relative paths are relative to the manifest's folder),
``duration`` (seconds > 0), and optionally ``text``, ``speaker``, ``language`` (str) and ``tokens``
(path of a CodecTokens file, or ``store:ID`` inside a token store), plus any extra fields, kept as they are.
Errors name the file and line.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..fileio import atomic_path

REQUIRED = {"id": str, "audio": str, "duration": (int, float)}
OPTIONAL = {"text": str, "speaker": str, "language": str, "tokens": str}


class ManifestError(ValueError):
    """A manifest line that breaks the format; the message starts with ``file:line:``."""


class ManifestEntry(dict):
    """One manifest line as read: a plain dict (it is written back as one) that remembers where it came from,
    ``where`` = ``"manifest:line"``, so that an error in its audio names the line too."""

    __slots__ = ("where",)


def entry_audio(entry: Mapping, sample_rate: int | None = None):
    """``read_audio`` of an entry's audio; an unreadable file's error names the manifest line as well."""
    from ..audio import AudioError, read_audio

    try:
        return read_audio(entry["audio"], sample_rate=sample_rate)
    except AudioError as e:
        where = getattr(entry, "where", None)
        raise AudioError(f"{where}: {e}" if where else str(e)) from None


def validate_entry(entry, where: str = "entry", need_duration: bool = True) -> dict:
    """Check one manifest entry; returns it unchanged or raises :class:`ManifestError`. ``need_duration=False``:
    audio not yet measured (``audiokit data transcribe`` adds it); a duration that is there is still checked."""
    if not isinstance(entry, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(entry).__name__}")
    for key, kind in REQUIRED.items():
        if key == "duration" and not need_duration and key not in entry:
            continue
        if key not in entry:
            raise ManifestError(f"{where}: missing required field {key!r}")
        if not isinstance(entry[key], kind) or isinstance(entry[key], bool):
            raise ManifestError(f"{where}: field {key!r} must be {_kind_name(kind)}, got {entry[key]!r}")
    if not entry["id"]:
        raise ManifestError(f"{where}: field 'id' is empty")
    if not entry["audio"]:
        raise ManifestError(f"{where}: field 'audio' is empty")
    d = entry.get("duration", 1.0)
    if not (math.isfinite(d) and d > 0):
        raise ManifestError(f"{where}: field 'duration' must be a positive number of seconds, got {d!r}")
    for key, kind in OPTIONAL.items():
        if key in entry and entry[key] is not None and not isinstance(entry[key], kind):
            raise ManifestError(f"{where}: field {key!r} must be {_kind_name(kind)}, got {entry[key]!r}")
    return entry


def _kind_name(kind) -> str:
    return {str: "a string", (int, float): "a number"}.get(kind, str(kind))


def read_manifest(path: str | os.PathLike, resolve_paths: bool = True, need_duration: bool = True) -> list[dict]:
    """Read and validate a JSONL manifest.

    Blank lines are skipped. With ``resolve_paths``, relative ``audio`` / ``tokens`` paths become
    absolute (relative to the manifest's folder). Duplicate ids are an error. ``need_duration=False`` reads
    manifests of audio not yet measured (see :func:`validate_entry`).
    """
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"{path}: no such manifest")
    base = path.resolve().parent
    entries: list[dict] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as e:
                raise ManifestError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None
            validate_entry(entry, where, need_duration)
            entry = ManifestEntry(entry)
            entry.where = where
            if entry["id"] in seen:
                raise ManifestError(f"{where}: duplicate id {entry['id']!r} (first on line {seen[entry['id']]})")
            seen[entry["id"]] = lineno
            if resolve_paths:
                for key in ("audio", "tokens"):
                    v = entry.get(key)
                    if isinstance(v, str) and v and not v.startswith("store:") and not os.path.isabs(v):
                        entry[key] = str(base / v)
            entries.append(entry)
    return entries


def read_manifests(paths: Sequence[str | os.PathLike]) -> list[dict]:
    """Several manifests read as one (e.g. a synthetic corpus and LibriSpeech); an id in two of them is an error."""
    entries: list[dict] = []
    first: dict[str, str] = {}
    for path in paths:
        for e in read_manifest(path):
            if e["id"] in first:
                raise ManifestError(f"{path}: id {e['id']!r} is also in {first[e['id']]}; ids must be unique across "
                                    "the manifests trained on together (make a second synthetic corpus with "
                                    "audiokit data synth --id-prefix)")
            first[e["id"]] = str(path)
            entries.append(e)
    return entries


def write_manifest(path: str | os.PathLike, entries: Iterable[Mapping], relative_to_manifest: bool = True) -> Path:
    """Validate and write entries as JSONL, atomically.

    With ``relative_to_manifest``, audio and token paths under the manifest's folder are stored relative
    to it, so a corpus folder can be moved as a whole.
    """
    path = Path(path)
    base = path.resolve().parent
    lines = []
    seen = set()
    for i, entry in enumerate(entries):
        entry = dict(entry)
        validate_entry(entry, f"entry {i} for {path}")
        if entry["id"] in seen:
            raise ManifestError(f"entry {i} for {path}: duplicate id {entry['id']!r}")
        seen.add(entry["id"])
        if relative_to_manifest:
            for key in ("audio", "tokens"):
                v = entry.get(key)
                if isinstance(v, str) and os.path.isabs(v):
                    try:
                        entry[key] = str(Path(v).resolve().relative_to(base))
                    except ValueError:
                        pass
        lines.append(json.dumps(entry, ensure_ascii=False))
    with atomic_path(path) as tmp:
        tmp.write_text("".join(l + "\n" for l in lines), encoding="utf-8")
    return path


def manifest_stats(entries: list[dict]) -> dict:
    """Utterances, hours, speakers and duration range of a manifest."""
    durs = [e["duration"] for e in entries]
    return {
        "utterances": len(entries),
        "hours": sum(durs) / 3600,
        "speakers": len({e.get("speaker") for e in entries if e.get("speaker")}),
        "min_duration": min(durs) if durs else 0.0,
        "max_duration": max(durs) if durs else 0.0,
    }
