"""Word and character error rates, and ``audiokit eval asr``: a model over a manifest."""
from __future__ import annotations

import os
from typing import Sequence

from ..text.normalize import digits_for_wer, is_digit_string, normalize_for_wer


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    """Levenshtein distance (substitutions + deletions + insertions) between two sequences."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def error_rate(refs: Sequence[str], hyps: Sequence[str], unit: str = "word") -> tuple[int, int]:
    """Total edits and reference length over a corpus (``unit`` "word" or "char"); WER = edits / length."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    split = (lambda s: s.split()) if unit == "word" else (lambda s: list(" ".join(s.split())))
    edits = words = 0
    for r, h in zip(refs, hyps):
        rs, hs = split(r), split(h)
        edits += edit_distance(rs, hs)
        words += len(rs)
    return edits, words


def scoring_forms(refs: Sequence[str], hyps: Sequence[str]) -> tuple[list[str], list[str]]:
    """References and hypotheses as WER scores them: :func:`normalize_for_wer`, and digit by digit where the
    reference is a digit string (:func:`digits_for_wer`)."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    refs = [normalize_for_wer(r) for r in refs]
    digit = [is_digit_string(r) for r in refs]
    return ([digits_for_wer(r) if d else r for r, d in zip(refs, digit)],
            [digits_for_wer(h) if d else normalize_for_wer(h) for h, d in zip(hyps, digit)])


def wer_cer(refs: Sequence[str], hyps: Sequence[str], normalize: bool = True) -> dict:
    """WER and CER after :func:`normalize_for_wer`, with jiwer (the ``eval`` extra) when installed.

    A reference that is a digit string (only digit words: a digits corpus, a phone number read out) is scored
    digit by digit (:func:`digits_for_wer`): an ASR that writes ``4719`` for "four seven one nine" is right.

    Besides the corpus WER: ``wer_capped``, the mean over utterances of each one's WER capped at 100 % (babble
    that the judge hears as a long wrong sentence counts once, not five times: steadier where a model is far
    off), and ``exact``, how many utterances were transcribed without a word wrong."""
    if normalize:
        refs, hyps = scoring_forms(refs, hyps)
    keep = [i for i, r in enumerate(refs) if r.strip()]
    refs, hyps = [refs[i] for i in keep], [hyps[i] for i in keep]
    if not refs:
        raise ValueError("no reference text to score against")
    try:
        import jiwer

        hyps_j = [h if h.strip() else "" for h in hyps]
        wer = float(jiwer.wer(refs, hyps_j))
        cer = float(jiwer.cer(refs, hyps_j))
        backend = "jiwer"
    except ImportError:
        e, n = error_rate(refs, hyps, "word")
        wer = e / n
        e, n = error_rate(refs, hyps, "char")
        cer = e / n
        backend = "audiokit"
    each = [edit_distance(r.split(), h.split()) / len(r.split()) for r, h in zip(refs, hyps)]
    return {"wer": wer, "cer": cer, "utterances": len(refs), "words": sum(len(r.split()) for r in refs), "backend": backend,
            "wer_capped": sum(min(1.0, w) for w in each) / len(each), "exact": sum(w == 0 for w in each)}


def evaluate_asr(transcriber, manifest: str | os.PathLike, max_items: int | None = None, batch_size: int = 8,
                 **transcribe_kw) -> tuple[dict, list[dict]]:
    """Transcribe a manifest's audio and score it against its text: (summary, per-utterance rows)."""
    from ..data.manifest import read_manifest

    entries = [e for e in read_manifest(manifest) if e.get("text")]
    if max_items:
        entries = entries[:max_items]
    if not entries:
        raise ValueError(f"{manifest}: no utterances with text to evaluate")
    out = transcriber.transcribe([e["audio"] for e in entries], batch_size=batch_size, **transcribe_kw)
    rows = [{"id": e.get("id"), "speaker": e.get("speaker"), "ref": e["text"], "hyp": t.text} for e, t in zip(entries, out)]
    summary = wer_cer([r["ref"] for r in rows], [r["hyp"] for r in rows])
    return summary, rows
