"""``audiokit eval tts``: VALL-E's zero-shot protocol on held-out speakers, for every TTS family.

For each test utterance the prompt (VALL-E) or reference clip (Tortoise) is a ``prompt_seconds`` crop of
*another* utterance of the same speaker; the model speaks the utterance's text in that voice. Rows:

- ``ground truth``: the real recording;
- ``codec resynthesis``: the recording through the codec at the model's codebooks (the ceiling the model
  can reach);
- the model's output; for Tortoise also the output from a *random* candidate instead of CLVP's best (same
  samples, same seed), so the table shows what reranking buys.

Each row gets WER through audiokit's own ASR (when one is given or bundled) and through pocketsphinx (the
``eval`` extra: an independent judge with its own English model), speaker similarity between prompt and
speech (cosine of resemblyzer embeddings, the ``eval`` extra) beside the similarity to *another* speaker's
prompt (the baseline a model that ignores its prompt would reach), and, for the model, the real-time factor.
"""
from __future__ import annotations

import logging
import os
import random
import time
from collections import defaultdict

import numpy as np
import torch

from .asr.metrics import wer_cer
from .audio import resample
from .data.manifest import entry_audio
from .progress import Progress
from .tts import stage_timer

log = logging.getLogger(__name__)


class _Pocketsphinx:
    def __init__(self):
        from pocketsphinx import Decoder

        self.decoder = Decoder(samprate=16000, logfn=os.devnull)

    def __call__(self, wav: torch.Tensor) -> str:
        pcm = (wav.clamp(-1, 1) * 32767).to(torch.int16).numpy().tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return hyp.hypstr if hyp is not None else ""


class _Resemblyzer:
    def __init__(self):
        from resemblyzer import VoiceEncoder, preprocess_wav

        self.encoder = VoiceEncoder(device="cpu", verbose=False)
        self.preprocess = preprocess_wav

    def embed(self, wav16: torch.Tensor) -> np.ndarray | None:
        w = self.preprocess(wav16.numpy().astype(np.float32), source_sr=16000)
        return self.encoder.embed_utterance(w) if len(w) > 1600 else None


def _optional(factory, what: str):
    try:
        return factory()
    except ImportError as e:
        log.warning("%s needs the 'eval' extra (%s); its column is left empty", what, e)
        return None


def pick_prompts(entries: list[dict], pool: list[dict], seed: int = 0, min_seconds: float = 1.0) -> list[dict | None]:
    """For each entry, another utterance of the same speaker from ``pool``, at least ``min_seconds`` long
    (None when there is none)."""
    by_speaker = defaultdict(list)
    for e in pool:
        if e.get("duration", 0) >= min_seconds:
            by_speaker[e.get("speaker", "")].append(e)
    rng = random.Random(seed)
    out = []
    for e in entries:
        others = [o for o in by_speaker[e.get("speaker", "")] if o["id"] != e["id"]]
        out.append(rng.choice(others) if others else None)
    return out


def evaluate_tts(tts, manifest, asr=None, max_items: int | None = None, prompt_seconds: float = 3.0, seed: int = 0,
                 batch_size: int = 8, temperature: float | None = None, top_k: int | None = 50,
                 transcribe_prompts: bool = True, options: dict | None = None,
                 nar_decoding: str | None = None, top_p: float | None = None, repetition_window: int = 0,
                 repetition_threshold: float = 0.1, judge_beam: int | None = None) -> tuple[list[dict], list[dict]]:
    """Score ``tts`` on ``manifest`` (audio + text + speaker). Returns (rows per system, per-utterance items).

    ``transcribe_prompts`` (VALL-E): the prompts' transcripts come from the TTS's ASR (continuation, the
    paper's inference); False uses every prompt as a voice reference only. ``options`` go to Tortoise's
    ``synthesize`` (``preset``, ``candidates``, …); ``nar_decoding`` is VALL-E's (``ValleTTS``; default: the
    model's). ``top_p`` (default: each family's) and ``repetition_window``/``repetition_threshold``
    (repetition-aware sampling, off at 0) go to both families' sampling. ``asr``: the judge [the default ASR,
    Whisper tiny.en; without it, the TTS model's own ASR]; ``judge_beam``: it decodes with beam search of this
    width [greedy] (tiny.en greedy cuts some short outputs off after their first word: RESULTS session 32)."""
    from .data.manifest import read_manifest

    entries = [e for e in read_manifest(manifest) if e.get("text")]
    min_seconds = getattr(tts, "min_prompt_seconds", getattr(tts, "min_voice_seconds", 1.0))
    prompts = pick_prompts(entries, entries, seed, min_seconds)
    pairs = [(e, p) for e, p in zip(entries, prompts) if p is not None]
    if max_items:
        pairs = pairs[:max_items]
    if not pairs:
        raise ValueError(f"{manifest}: no utterance has another utterance of its speaker to take a prompt from")
    if asr is None:  # the default judge, Whisper tiny.en; else the TTS model's own ASR, if it has one
        from .asr.convert import CheckpointError
        from .asr.transcriber import Transcriber
        from .pretrained import DEFAULT_ASR

        try:
            asr = Transcriber.load(DEFAULT_ASR, device=getattr(tts, "device", "cpu"))
        except CheckpointError:
            asr = getattr(tts, "asr", None)
    sr = tts.sample_rate
    rng = random.Random(seed)
    items = []
    for e, p in pairs:
        wav, _ = entry_audio(e, sr)
        pwav, _ = entry_audio(p, sr)
        n = int(prompt_seconds * sr)
        if pwav.shape[-1] > n:
            s = rng.randrange(pwav.shape[-1] - n + 1)
            pwav = pwav[s : s + n]
        items.append({"id": e["id"], "speaker": e.get("speaker"), "text": e["text"], "prompt_id": p["id"],
                      "real": wav, "prompt": pwav})
    sampling = {"repetition_window": repetition_window, "repetition_threshold": repetition_threshold,
                **({"top_p": top_p} if top_p is not None else {})}
    if tts.family == "tortoise":
        systems, seconds, stages = _tortoise_outputs(tts, items, seed, temperature, top_k, **sampling, **(options or {}))
    else:
        systems, seconds, stages = _valle_outputs(tts, items, seed, temperature, top_k, batch_size, transcribe_prompts,
                                                  nar_decoding, sampling)
    out_seconds = sum(it["model"].shape[-1] for it in items) / sr
    n_q = getattr(tts, "n_codebooks", tts.codec.info.n_codebooks)
    for it in items:
        it["codec"] = tts.codec.decode(tts.codec.encode(it["real"], sr, n_q=n_q))[0].float().cpu()
    systems = [("ground truth", "real"), ("codec resynthesis", "codec"), *systems]

    sphinx = _optional(_Pocketsphinx, "pocketsphinx WER")
    speaker = _optional(_Resemblyzer, "resemblyzer speaker similarity")
    if speaker is not None:
        prompt_emb = [speaker.embed(resample(it["prompt"], sr, 16000)) for it in items]
        other = _other_speaker(items)
    rows = []
    for name, key in systems:
        w16 = {it["id"]: resample(it[key], sr, 16000) for it in items}
        row = {"system": name, "utterances": len(items)}
        if asr is not None:
            hyps = asr.transcribe([w16[it["id"]] for it in items], 16000, temperature=0.0, beam_size=judge_beam)
            scores = wer_cer([it["text"] for it in items], [h.text for h in hyps])
            row.update(wer_asr=scores["wer"], wer_asr_capped=scores["wer_capped"], exact_asr=scores["exact"])
            for it, h in zip(items, hyps):
                it[f"{key}_asr"] = h.text
        if sphinx is not None:
            hyps = [sphinx(w16[it["id"]]) for it in items]
            row["wer_pocketsphinx"] = wer_cer([it["text"] for it in items], hyps)["wer"]
            for it, h in zip(items, hyps):
                it[f"{key}_pocketsphinx"] = h
        if speaker is not None:  # against the prompt, and (the baseline) against another speaker's prompt
            emb = [speaker.embed(w16[it["id"]]) for it in items]
            for it, e, p in zip(items, emb, prompt_emb):
                it[f"{key}_similarity"] = _mean_cos([e], [p])
            row["similarity"] = _mean_cos(emb, prompt_emb)
            row["similarity_other_speaker"] = _mean_cos(emb, [prompt_emb[j] for j in other])
        if key == "model":
            row["rtf"] = seconds / max(out_seconds, 1e-9)
            row["rtf_stages"] = {k: round(v / max(out_seconds, 1e-9), 4) for k, v in stages.items()}
        row["by_speaker"] = _by_speaker(items, key)
        rows.append(row)
    per_item = [{k: v for k, v in it.items() if not isinstance(v, torch.Tensor)} for it in items]
    return rows, per_item


def _valle_outputs(tts, items: list[dict], seed: int, temperature: float | None, top_k: int | None, batch_size: int,
                   transcribe_prompts: bool, nar_decoding: str | None = None,
                   sampling: dict | None = None) -> tuple[list[tuple[str, str]], float]:
    """VALL-E: prompts prepared one by one (ASR transcripts where available), sentences decoded in batches.
    Returns the systems it added, the seconds the model took, and their split by stage."""
    from .text.phonemes import PHONEME_VOCAB
    from .valle.data import phoneme_ids, phonemize
    from .valle.generate import SamplingOptions

    sr = tts.sample_rate
    rows_in = []
    start = time.perf_counter()
    timings = {"text": 0.0, "prompt": 0.0, "ar": 0.0, "nar": 0.0, "codec": 0.0}
    with stage_timer(timings, "text"):
        texts = phonemize([it["text"] for it in items], "en")
    bar = Progress(2 * len(items), "eval tts (VALL-E)", unit="steps")  # a prompt each, then a decode each
    for it, ph in zip(items, texts):
        with stage_timer(timings, "prompt", tts.device):  # codec encoding, and the ASR when it transcribes
            tokens, ptext = tts.prepare_prompt(it["prompt"], sr, None if transcribe_prompts else "")
        prefix = phonemize([ptext], "en")[0] + " " if ptext else ""
        rows_in.append((phoneme_ids(prefix + ph, what=it["id"]), len(PHONEME_VOCAB.encode(ph)),
                        tokens.codes[0, :, : int(tokens.lengths[0])]))
        it["prompt_text"] = ptext
        bar.update(1)
    options = SamplingOptions(temperature=1.0 if temperature is None else temperature, top_k=top_k, seed=seed,
                              **(sampling or {}))
    probs: list = []
    codes = tts.generate(rows_in, options, batch_size, timings, probs=probs,
                         voice_only=[not it["prompt_text"] for it in items])
    for it, c, p in zip(items, codes, probs):
        # outputs are judged on the CPU (resemblyzer, pocketsphinx and the metrics take host arrays)
        with stage_timer(timings, "codec", tts.device):
            it["model"] = tts.audio([c], [p], nar_decoding)[0].float().cpu() if c.shape[1] \
                else torch.zeros(sr // 10, device="cpu")
        bar.update(1, seconds=it["model"].shape[-1] / sr)
    bar.close()
    return [(f"VALL-E ({tts.name or 'model'})", "model")], time.perf_counter() - start, timings


def _tortoise_outputs(tts, items: list[dict], seed: int, temperature: float | None, top_k: int | None,
                      preset: str = "fast", **kw) -> tuple[list[tuple[str, str]], float]:
    """Tortoise: each item synthesized twice from the same candidates (same seed): CLVP's best, and a random
    one. The seconds returned (for the RTF) are the reranked run's, with their split by stage."""
    sampling = dict(temperature=0.8 if temperature is None else temperature, top_k=top_k, seed=seed)
    sr = tts.sample_rate
    start = time.perf_counter()
    bar = Progress(2 * len(items), "eval tts (Tortoise)", unit="syntheses")  # CLVP's pick, then a random one
    timings: dict[str, float] = {}
    for it in items:
        out = tts.synthesize(it["text"], it["prompt"], sample_rate=sr, preset=preset, **sampling, **kw)
        it["model"] = torch.as_tensor(out.audio, device="cpu").float()
        it["timings"] = out.timings
        for k, v in out.timings.items():
            timings[k] = timings.get(k, 0.0) + v
        bar.update(1, seconds=it["model"].shape[-1] / sr)
    seconds = time.perf_counter() - start
    for it in items:
        it["random"] = torch.as_tensor(tts.synthesize(it["text"], it["prompt"], sample_rate=sr, preset=preset, rerank=False,
                                                      **sampling, **kw).audio, device="cpu").float()
        bar.update(1, seconds=it["random"].shape[-1] / sr)
    bar.close()
    name = tts.name or "model"
    return [(f"Tortoise ({name}, {preset}, CLVP best of N)", "model"),
            (f"Tortoise ({name}, {preset}, random candidate)", "random")], seconds, timings


def _mean_cos(a: list, b: list) -> float | None:
    sims = [float(np.dot(x, y)) for x, y in zip(a, b) if x is not None and y is not None]
    return float(np.mean(sims)) if sims else None


def _other_speaker(items: list[dict]) -> list[int]:
    """For each item, the index of the next item (cyclically) spoken by someone else (itself if none is)."""
    n = len(items)
    return [next((j % n for j in range(i + 1, i + n) if items[j % n]["speaker"] != items[i]["speaker"]), i) for i in range(n)]


def _by_speaker(items: list[dict], key: str) -> dict:
    """One system's figures per held-out voice: voices differ more than systems do (a judge that reads one
    engine's speech at 2 % WER reads another's at 30 %), so each voice's ground truth sits beside its model."""
    groups = defaultdict(list)
    for it in items:
        groups[it.get("speaker") or "?"].append(it)
    out = {}
    for spk, its in sorted(groups.items()):
        d = {"utterances": len(its)}
        if all(f"{key}_asr" in it for it in its):
            d["wer_asr"] = wer_cer([it["text"] for it in its], [it[f"{key}_asr"] for it in its])["wer"]
        sims = [it[f"{key}_similarity"] for it in its if it.get(f"{key}_similarity") is not None]
        if sims:
            d["similarity"] = float(np.mean(sims))
        out[spk] = d
    return out


def format_speaker_table(rows: list[dict]) -> str:
    """Per held-out voice: each system's WER (and similarity to the prompt) side by side."""
    voices = sorted({v for r in rows for v in r.get("by_speaker", {})})
    if len(voices) < 2:
        return ""
    head = "| voice | utterances | " + " | ".join(f"{r['system']}: WER (%) / similarity" for r in rows) + " |"
    lines = [head, "|---|---|" + "---|" * len(rows)]
    for v in voices:
        cells = []
        for r in rows:
            d = r.get("by_speaker", {}).get(v, {})
            w, s = d.get("wer_asr"), d.get("similarity")
            cells.append(f"{'-' if w is None else f'{100 * w:.1f}'} / {'-' if s is None else f'{s:.3f}'}")
        n = next((r["by_speaker"][v]["utterances"] for r in rows if v in r.get("by_speaker", {})), 0)
        lines.append(f"| {v} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_table(rows: list[dict], judge: str = "ASR") -> str:
    """The rows as Markdown; ``judge`` names the ASR whose WER the first column is (the judge's model name)."""
    def f(v, pct=False):
        return "-" if v is None else (f"{100 * v:.1f}" if pct else f"{v:.3f}")

    lines = [f"| system | WER {judge} (%) | capped (%) | said exactly | WER pocketsphinx (%) | similarity to the prompt | "
             "to another speaker's prompt | RTF |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        exact = "-" if r.get("exact_asr") is None else f"{r['exact_asr']} / {r['utterances']}"
        lines.append(f"| {r['system']} | {f(r.get('wer_asr'), True)} | {f(r.get('wer_asr_capped'), True)} | {exact} | "
                     f"{f(r.get('wer_pocketsphinx'), True)} | "
                     f"{f(r.get('similarity'))} | {f(r.get('similarity_other_speaker'))} | {f(r.get('rtf'))} |")
    return "\n".join(lines)
