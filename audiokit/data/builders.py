"""Manifest builders for public corpus layouts (the corpora themselves are downloaded by the user).

- LibriTTS: ``ROOT/<subset>/<speaker>/<chapter>/<speaker>_<chapter>_<p1>_<p2>.wav`` with
  ``.normalized.txt`` (preferred) or ``.original.txt`` beside each wav.
- LJSpeech: ``ROOT/metadata.csv`` (``id|text|normalized text``) and ``ROOT/wavs/<id>.wav``; one speaker.
- LibriSpeech: ``ROOT/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` (``ID TEXT`` lines)
  and ``<ID>.flac``.

Each returns manifest entries (audio paths absolute, durations read from file headers) and logs the
utterances it had to skip (missing audio or transcript, unreadable header).
"""
from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

from ..audio import AudioError, audio_duration

log = logging.getLogger("audiokit.data")


def _root(root: str | os.PathLike) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: corpus folder not found")
    return root


def _entry(uid: str, audio: Path, text: str, speaker: str, language: str = "en") -> dict | None:
    try:
        duration = audio_duration(audio)
    except AudioError as e:
        log.warning("skipping %s: %s", uid, e)
        return None
    if duration <= 0:
        log.warning("skipping %s: zero-length audio", uid)
        return None
    return {"id": uid, "audio": str(audio.resolve()), "duration": round(duration, 4), "text": text.strip(),
            "speaker": speaker, "language": language}


def build_libritts(root: str | os.PathLike, subsets: list[str] | None = None) -> list[dict]:
    """Entries for every LibriTTS utterance under ``root`` (optionally only the named subsets)."""
    root = _root(root)
    entries = []
    dirs = [root / s for s in subsets] if subsets else [root]
    for d in dirs:
        for wav in sorted(d.rglob("*.wav")):
            uid = wav.stem
            text_file = wav.with_suffix(".normalized.txt")
            if not text_file.exists():
                text_file = wav.with_suffix(".original.txt")
            if not text_file.exists():
                log.warning("skipping %s: no transcript beside it", wav)
                continue
            speaker = uid.split("_")[0]
            e = _entry(uid, wav, text_file.read_text(encoding="utf-8"), speaker)
            if e:
                entries.append(e)
    return entries


def build_ljspeech(root: str | os.PathLike) -> list[dict]:
    """Entries for LJSpeech (speaker ``LJ``); the normalized transcript column is used where present."""
    root = _root(root)
    meta = root / "metadata.csv"
    if not meta.exists():
        raise FileNotFoundError(f"{meta}: LJSpeech metadata.csv not found")
    entries = []
    with open(meta, encoding="utf-8", newline="") as f:
        for lineno, row in enumerate(csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE), 1):
            if not row or not row[0]:
                continue
            if len(row) < 2:
                log.warning("%s:%d: no transcript, skipped", meta, lineno)
                continue
            uid = row[0]
            text = row[2] if len(row) > 2 and row[2] else row[1]
            wav = root / "wavs" / f"{uid}.wav"
            if not wav.exists():
                log.warning("skipping %s: %s missing", uid, wav)
                continue
            e = _entry(uid, wav, text, "LJ")
            if e:
                entries.append(e)
    return entries


def build_librispeech(root: str | os.PathLike, subsets: list[str] | None = None) -> list[dict]:
    """Entries for LibriSpeech; transcripts are upper case in the corpus and kept as they are."""
    root = _root(root)
    entries = []
    dirs = [root / s for s in subsets] if subsets else [root]
    for d in dirs:
        for trans in sorted(d.rglob("*.trans.txt")):
            for line in trans.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                uid, _, text = line.partition(" ")
                audio = trans.parent / f"{uid}.flac"
                if not audio.exists():
                    log.warning("skipping %s: %s missing", uid, audio)
                    continue
                e = _entry(uid, audio, text, uid.split("-")[0])
                if e:
                    entries.append(e)
    return entries


BUILDERS = {"libritts": build_libritts, "ljspeech": build_ljspeech, "librispeech": build_librispeech}
