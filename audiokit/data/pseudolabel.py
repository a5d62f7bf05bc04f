"""Pseudo-labels: untranscribed audio → a training manifest, transcribed by an ASR (VALL-E's data was made so).

``audiokit data transcribe FOLDER|MANIFEST... --model asr --out labels.jsonl`` transcribes in batches and appends
one manifest line per utterance as each batch finishes, so a killed run resumes where it stopped (utterances already
in the output, or in its ``.rejected.jsonl``, are skipped; a line cut short by the kill is dropped). Each line carries
the transcript and what Whisper's own fallback rules look at — average log-probability, no-speech probability,
compression ratio, the temperature that was needed — and an utterance that fails the thresholds goes to
``OUT.rejected.jsonl`` instead, so the main manifest can be trained on as it is.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


@dataclass
class Thresholds:
    """An utterance is kept when every test passes (None switches a test off)."""

    min_avg_logprob: float | None = -1.0     # Whisper's logprob_threshold
    max_no_speech_prob: float | None = 0.6   # Whisper's no_speech_threshold
    max_compression_ratio: float | None = 2.4  # Whisper's compression_ratio_threshold (repetition)
    min_words: int = 1

    def why_not(self, row: dict) -> str | None:
        c = row["asr"]
        if len(row["text"].split()) < self.min_words:
            return "no words"
        if self.min_avg_logprob is not None and c["avg_logprob"] < self.min_avg_logprob:
            return f"avg_logprob {c['avg_logprob']:.2f} < {self.min_avg_logprob}"
        if self.max_no_speech_prob is not None and c["no_speech_prob"] > self.max_no_speech_prob:
            return f"no_speech_prob {c['no_speech_prob']:.2f} > {self.max_no_speech_prob}"
        if self.max_compression_ratio is not None and c["compression_ratio"] > self.max_compression_ratio:
            return f"compression_ratio {c['compression_ratio']:.2f} > {self.max_compression_ratio}"
        return None


def collect(inputs: list[str | os.PathLike]) -> list[dict]:
    """Manifest entries (``id``, ``audio``, ``speaker`` and whatever else a manifest gave) of folders (audio files
    below them, ids from their paths, the speaker from the first folder level) and JSONL manifests, in a stable
    order; an id seen twice is an error naming both."""
    from .manifest import ManifestError, read_manifest

    entries, seen = [], {}
    for inp in inputs:
        p = Path(inp)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file())
            if not files:
                raise ManifestError(f"{p}: no audio files ({', '.join(AUDIO_SUFFIXES)}) below this folder")
            new = []
            for f in files:  # SPEAKER/.../x.wav: the first folder level names the speaker (else the folder itself)
                rel = f.relative_to(p)
                new.append({"id": rel.with_suffix("").as_posix().replace("/", "_"), "audio": str(f),
                            "speaker": rel.parts[0] if len(rel.parts) > 1 else p.name})
        elif p.is_file():
            new = read_manifest(p, need_duration=False)  # untranscribed: no text, maybe no duration yet
        else:
            raise ManifestError(f"{p}: no such folder or manifest")
        for e in new:
            if e["id"] in seen:
                raise ManifestError(f"utterance id {e['id']!r} is in both {seen[e['id']]} and {p}")
            seen[e["id"]] = str(p)
        entries += new
    return entries


def _done_ids(path: Path) -> set[str]:
    """Ids already written to ``path``; a last line cut short by a kill is cut off the file."""
    if not path.is_file():
        return set()
    data = path.read_bytes()
    keep = data if data.endswith(b"\n") or not data else data[: data.rfind(b"\n") + 1]
    if keep != data:
        path.write_bytes(keep)
    return {json.loads(line)["id"] for line in keep.decode().splitlines() if line.strip()}


def _confidence(transcript) -> dict:
    segs = transcript.segments
    n = sum(max(len(s.tokens), 1) for s in segs) or 1
    return {"avg_logprob": round(sum(s.avg_logprob * max(len(s.tokens), 1) for s in segs) / n, 4) if segs else -10.0,
            "no_speech_prob": round(max((s.no_speech_prob for s in segs), default=1.0), 4),
            "compression_ratio": round(max((s.compression_ratio for s in segs), default=0.0), 3),
            "temperature": max((s.temperature for s in segs), default=0.0)}


def label(inputs: list[str | os.PathLike], transcriber, out: str | os.PathLike, batch_size: int = 16,
          thresholds: Thresholds = Thresholds(), language: str | None = "en", progress=None) -> dict:
    """Transcribe every utterance of ``inputs`` not yet in ``out`` (or its rejected file) and append the results;
    returns counts ``{"total", "skipped", "kept", "rejected"}``. ``progress(done, total)`` is called per batch."""
    from ..audio import AudioError, audio_duration

    out = Path(out)
    rejected_path = out.with_name(out.name.removesuffix(".jsonl") + ".rejected.jsonl")
    entries = collect(inputs)
    done = _done_ids(out) | _done_ids(rejected_path)
    todo = [e for e in entries if e["id"] not in done]
    counts = {"total": len(entries), "skipped": len(entries) - len(todo), "kept": 0, "rejected": 0}
    out.parent.mkdir(parents=True, exist_ok=True)
    model_name = getattr(transcriber, "name", "") or "asr"
    with open(out, "a") as kept_f, open(rejected_path, "a") as rej_f:
        for i in range(0, len(todo), batch_size):
            batch = todo[i : i + batch_size]
            readable = []
            for e in batch:
                try:
                    e.setdefault("duration", round(audio_duration(e["audio"]), 3))
                    readable.append(e)
                except AudioError as err:  # a file that is not audio is set aside with its reason
                    rej_f.write(json.dumps({**e, "text": "", "rejected": str(err)}) + "\n")
                    counts["rejected"] += 1
            results = transcriber.transcribe([e["audio"] for e in readable], batch_size=batch_size, language=language)
            for e, t in zip(readable, results):
                row = {**e, "text": t.text.strip(), "language": t.language or language,
                       "asr": {"model": model_name, **_confidence(t)}}
                why = thresholds.why_not(row)
                if why is None:
                    kept_f.write(json.dumps(row) + "\n")
                    counts["kept"] += 1
                else:
                    rej_f.write(json.dumps({**row, "rejected": why}) + "\n")
                    counts["rejected"] += 1
            kept_f.flush()
            rej_f.flush()
            if progress is not None:
                progress(counts["skipped"] + min(i + batch_size, len(todo)), len(entries))
    return counts
