"""The synthetic multi-speaker corpus: English speech with exact transcripts, made offline.

Speakers are espeak-ng voice variants × accents × prosody (pitch, range, rate), plus flite and festival
voices where those programs are installed. Sentences are WordNet 3.0 example sentences (shipped in
``audiokit/assets``; WordNet licence in ``audiokit/assets/WORDNET_LICENSE``), normalized so that the
transcript is exactly what was spoken. Everything is planned from one seed in the parent process, so
the corpus is identical whatever the number of worker processes.

Layout written under ``out``::

    wavs/<speaker>/<id>.wav       16-bit PCM at the chosen rate, loudness-normalized, silence trimmed
    train.jsonl valid.jsonl test.jsonl
    speakers.json                 every speaker's voice, engine and split
    corpus.json                   seed, sample rate, counts and hours per split, timing
"""
from __future__ import annotations

import gzip
import json
import logging
import multiprocessing as mp
import os
import random
import re
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Collection, Sequence

import numpy as np
import torch

from ..audio import loudness_normalize, resample, trim_silence, write_audio
from ..text.normalize import normalize_text
from .engines import ENGINES, EngineError, FestivalEngine, FliteEngine, Voice
from .manifest import read_manifest, write_manifest

log = logging.getLogger("audiokit.data")

SENTENCE_ASSET = "wordnet_sentences.txt.gz"

# espeak-ng accents (voice names) and variants that give intelligible, distinct speakers. Variants that
# are deliberately robotic or distorted (robosoft*, UniRobot, Demonic, croak, whisper, ...) are left out.
ESPEAK_ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
ESPEAK_VARIANTS = (
    "f1", "f2", "f3", "f4", "f5", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8",
    "klatt", "klatt2", "klatt3", "klatt4",
    "Alex", "Alicia", "Andrea", "Andy", "Annie", "Denis", "Gene", "Hugo", "Jacky", "Lee", "Michael", "Mike",
    "Reed", "Storm", "adam", "anika", "aunty", "belinda", "benjamin", "boris", "caleb", "david", "ed", "edward",
    "grandma", "grandpa", "gustave", "ian", "iven", "john", "linda", "marcelo", "max", "michel", "miguel",
    "norbert", "pablo", "paul", "pedro", "quincy", "rob", "robert", "sandro", "shelby", "steph", "travis",
)


# --------------------------------------------------------------------------- sentences
_ALLOWED = re.compile(r"^[A-Za-z][A-Za-z ,.;:'?!-]*$")


def clean_sentence(s: str, min_words: int = 3, max_words: int = 20) -> str | None:
    """Turn a raw example sentence into a transcript (capitalized, final punctuation), or ``None`` to drop it."""
    s = normalize_text(s.strip().strip('"').strip())
    s = re.sub(r"\s+([,.;:?!])", r"\1", s)
    if not s or not _ALLOWED.match(s) or "--" in s or "''" in s:
        return None
    n = len(s.split())
    if not min_words <= n <= max_words:
        return None
    s = s[0].upper() + s[1:]
    if s[-1] not in ".?!":
        s = s.rstrip(",;:-' ") + "."
    return s


def wordnet_sentences(wordnet_dir: str | os.PathLike = "/usr/share/wordnet") -> list[str]:
    """All usable example sentences of a WordNet 3.0 database (``data.noun`` etc.), cleaned, unique, sorted."""
    wordnet_dir = Path(wordnet_dir)
    found = set()
    for pos in ("noun", "verb", "adj", "adv"):
        path = wordnet_dir / f"data.{pos}"
        if not path.exists():
            raise FileNotFoundError(f"{path}: WordNet data file not found (Debian package wordnet-base)")
        with open(path, encoding="latin-1") as f:
            for line in f:
                if line.startswith("  "):
                    continue  # licence header
                gloss = line.partition("|")[2]
                for ex in re.findall(r'"([^"]+)"', gloss):
                    s = clean_sentence(ex)
                    if s:
                        found.add(s)
    return sorted(found)


def write_sentences(sentences: Sequence[str], path: str | os.PathLike) -> Path:
    """Write one sentence per line, gzip-compressed when ``path`` ends in ``.gz`` (reproducibly: no timestamp)."""
    path = Path(path)
    data = "".join(s + "\n" for s in sentences).encode("utf-8")
    if path.suffix == ".gz":
        import io

        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as f:
            f.write(data)
        data = buf.getvalue()
    from ..fileio import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


DIGITS = "digits"  # --sentences digits: spoken digit strings instead of a file


def digit_sentences(count: int = 20000, seed: int = 0, min_digits: int = 2, max_digits: int = 8) -> list[str]:
    """``count`` distinct digit strings read out ("Four seven oh one nine."), 2-8 digits, zero said as
    "zero" or "oh" at random: Kaldi's yesno / TIDIGITS kind of corpus, whose vocabulary is small enough for a
    TTS recipe to converge on a CPU."""
    words = "zero one two three four five six seven eight nine".split()
    rng = random.Random(seed)
    out: dict[str, None] = {}
    while len(out) < count:
        n = rng.randint(min_digits, max_digits)
        said = [("oh" if rng.random() < 0.5 else "zero") if d == 0 else words[d] for d in (rng.randrange(10) for _ in range(n))]
        out.setdefault(" ".join(said).capitalize() + ".")
    return list(out)


def load_sentences(path: str | os.PathLike | None = None) -> list[str]:
    """Sentences from a text file (one per line, ``.gz`` allowed), ``"digits"`` (:func:`digit_sentences`) or,
    by default, the bundled WordNet set."""
    if str(path) == DIGITS and not os.path.exists(DIGITS):
        return digit_sentences()
    if path is None:
        data = resources.files("audiokit.assets").joinpath(SENTENCE_ASSET).read_bytes()
        text = gzip.decompress(data).decode("utf-8")
    else:
        path = Path(path)
        raw = path.read_bytes()
        text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode("utf-8")
    sentences = [l.strip() for l in text.splitlines() if l.strip()]
    if not sentences:
        raise ValueError(f"no sentences in {path or SENTENCE_ASSET}")
    return sentences


# --------------------------------------------------------------------------- speakers
def available_engines() -> list[str]:
    return [name for name, cls in ENGINES.items() if cls.available() and (name == "espeak" or cls.voices())]


def voice_identity(v: Voice) -> str:
    """What makes a voice recognizably the same speaker: the espeak variant (``en-us+f3`` → ``espeak:f3``,
    whatever the accent and prosody), or the flite/festival voice."""
    return f"{v.engine}:{v.name.partition('+')[2] or v.name}" if v.engine == "espeak" else f"{v.engine}:{v.name}"


def make_speakers(n_espeak: int, engines: Sequence[str], seed: int, avoid: Collection[str] = ()) -> list[Voice]:
    """``n_espeak`` distinct espeak speakers (variant × accent × prosody) plus every flite/festival voice asked for,
    none with a :func:`voice_identity` in ``avoid``."""
    rng = random.Random(seed)
    speakers: list[Voice] = []
    if "espeak" in engines and n_espeak > 0:
        variants = [v for v in ESPEAK_VARIANTS if f"espeak:{v}" not in avoid]
        if not variants:
            raise ValueError("every espeak variant is excluded")
        rng.shuffle(variants)
        seen = set()
        i = 0
        while len(speakers) < n_espeak:
            variant = variants[i % len(variants)]
            i += 1
            v = Voice("espeak", f"{rng.choice(ESPEAK_ACCENTS)}+{variant}", pitch=rng.randrange(25, 76, 5),
                      range=rng.randrange(30, 81, 10), rate=rng.randrange(140, 191, 10))
            if v.speaker_id not in seen:
                seen.add(v.speaker_id)
                speakers.append(v)
    if "flite" in engines:
        speakers += [Voice("flite", name) for name in FliteEngine.voices()]
    if "festival" in engines:
        speakers += [Voice("festival", name) for name in FestivalEngine.voices()]
    return [v for v in speakers if voice_identity(v) not in avoid]


def held_out_of(corpus: str | os.PathLike) -> tuple[set[str], list[str]]:
    """The test split of an existing synthetic corpus: its speakers' :func:`voice_identity` and its texts."""
    corpus = Path(corpus)
    table, test = corpus / "speakers.json", corpus / "test.jsonl"
    if not table.exists() or not test.exists():
        raise FileNotFoundError(f"{corpus}: not a synthetic corpus folder (needs speakers.json and test.jsonl)")
    voices = {voice_identity(Voice(s["engine"], s["voice"])) for s in json.loads(table.read_text())
              if s.get("split") == "test"}
    return voices, [e["text"] for e in read_manifest(test, resolve_paths=False)]


# --------------------------------------------------------------------------- planning and synthesis
@dataclass
class SynthConfig:
    out: str
    utterances: int | None = None
    hours: float | None = None
    espeak_speakers: int = 24
    test_speakers: int = 3
    valid_fraction: float = 0.05
    sample_rate: int = 24000
    engines: tuple[str, ...] | None = None  # None: every engine installed here
    max_sentences: int = 2
    seed: int = 0
    workers: int | None = None
    sentences: str | None = None  # None: the bundled WordNet sentences
    exclude: str | None = None  # a corpus folder whose held-out voices and test sentences this one must not use
    id_prefix: str = ""  # put before every utterance id: corpora trained on together need ids of their own
    hold_out: tuple[str, ...] = ()  # speaker ids held out besides the test_speakers drawn (e.g. a flite voice)

    def __post_init__(self):
        if (self.utterances is None) == (self.hours is None):
            raise ValueError("give exactly one of utterances or hours")
        if self.utterances is not None and self.utterances < 1:
            raise ValueError(f"utterances must be at least 1, got {self.utterances}")
        if self.hours is not None and self.hours <= 0:
            raise ValueError(f"hours must be positive, got {self.hours}")
        if self.sample_rate not in (16000, 22050, 24000, 44100, 48000):
            raise ValueError(f"sample_rate must be one of 16000, 22050, 24000, 44100, 48000, got {self.sample_rate}")
        if not 0 <= self.valid_fraction < 1:
            raise ValueError(f"valid_fraction must lie in [0, 1), got {self.valid_fraction}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]*", self.id_prefix):
            raise ValueError(f"id_prefix may hold letters, digits and _ . - only (it names files), got {self.id_prefix!r}")


@dataclass
class _Job:
    id: str
    speaker: str
    voice: Voice
    text: str
    path: str
    sample_rate: int


def _estimate_seconds(text: str, voice: Voice) -> float:
    # about 6 characters per word including the space; rate is words per minute (flite/festival ≈ 170)
    wpm = voice.rate if voice.engine == "espeak" else 170
    return len(text) / 6 / wpm * 60 + 0.3


def plan(cfg: SynthConfig) -> tuple[list[Voice], set[str], list[_Job]]:
    engines = tuple(cfg.engines) if cfg.engines else tuple(available_engines())
    missing = [e for e in engines if e not in ENGINES or not ENGINES[e].available()]
    if missing:
        raise EngineError(f"engine(s) not available here: {', '.join(missing)} (available: {', '.join(available_engines())})")
    avoid_voices, avoid_texts = held_out_of(cfg.exclude) if cfg.exclude else (set(), [])
    speakers = make_speakers(cfg.espeak_speakers, engines, cfg.seed, avoid_voices)
    if len(speakers) < cfg.test_speakers + 1:
        raise ValueError(f"{len(speakers)} speakers cannot hold {cfg.test_speakers} held-out test speakers and a training set")
    rng = random.Random(cfg.seed + 1)
    # held-out speakers: drawn from espeak speakers first (there are many), so every engine keeps training voices
    ids = {s.speaker_id for s in speakers}
    unknown = sorted(set(cfg.hold_out) - ids)
    if unknown:
        raise ValueError(f"hold_out names speakers this corpus does not have: {', '.join(unknown)} "
                         f"(non-espeak speakers here: {', '.join(sorted(i for i in ids if not i.startswith('espeak')))})")
    pool = [s.speaker_id for s in speakers if s.engine == "espeak"] or [s.speaker_id for s in speakers]
    pool = [i for i in pool if i not in cfg.hold_out]
    test = set(rng.sample(pool, min(cfg.test_speakers, len(pool)))) | set(cfg.hold_out)
    if len(test) >= len(speakers):
        raise ValueError(f"{len(test)} held-out speakers leave no training speaker of {len(speakers)}")
    sentences = load_sentences(cfg.sentences)
    if avoid_texts:
        joined = "\n".join(avoid_texts)
        sentences = [x for x in sentences if x not in joined]
        if not sentences:
            raise ValueError(f"every sentence occurs in {cfg.exclude}/test.jsonl")
    order = list(range(len(sentences)))
    rng.shuffle(order)
    jobs: list[_Job] = []
    out = os.path.abspath(cfg.out)  # manifests store paths relative to themselves; plan with absolute ones
    seconds, k = 0.0, 0
    n_target = cfg.utterances
    while (n_target is not None and len(jobs) < n_target) or (n_target is None and seconds < cfg.hours * 3600):
        voice = speakers[len(jobs) % len(speakers)]
        n_sent = rng.randint(1, max(1, cfg.max_sentences))
        text = " ".join(sentences[order[(k + j) % len(order)]] for j in range(n_sent))
        k += n_sent
        uid = f"{cfg.id_prefix}{voice.speaker_id}_{len(jobs):07d}"
        path = os.path.join(out, "wavs", voice.speaker_id, f"{uid}.wav")
        jobs.append(_Job(uid, voice.speaker_id, voice, text, path, cfg.sample_rate))
        seconds += _estimate_seconds(text, voice)
    return speakers, test, jobs


BLOCK_SIZE = 32  # utterances per task; fixed by the plan, never by the worker count


def _synthesize_block(jobs: list[_Job]) -> list[dict]:
    """Synthesize a block of jobs in a process of its own.

    espeak-ng keeps state from one utterance to the next (even across re-initialization), so an
    utterance's samples depend on what the process spoke before. Each block therefore runs in a freshly
    forked worker (``maxtasksperchild=1``) with the same history whatever the number of workers.
    """
    torch.set_num_threads(1)
    engines: dict[str, object] = {}
    out = []
    for job in jobs:
        engine = engines.get(job.voice.engine)
        if engine is None:
            engine = engines[job.voice.engine] = ENGINES[job.voice.engine]()
        try:
            wav, sr = engine.synthesize(job.text, job.voice)
        except EngineError as e:
            out.append({"id": job.id, "error": str(e)})
            continue
        x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))
        x = trim_silence(x, sr, keep_s=0.15)
        x = resample(x, sr, job.sample_rate)
        x = loudness_normalize(x, job.sample_rate, target_lufs=-20.0)
        write_audio(job.path, x, job.sample_rate, subtype="PCM_16")
        out.append({"id": job.id, "audio": job.path, "duration": round(x.shape[-1] / job.sample_rate, 4), "text": job.text,
                    "speaker": job.speaker, "language": "en"})
    return out


def synthesize_corpus(cfg: SynthConfig) -> dict:
    """Make the corpus described by ``cfg``; returns the summary also written to ``corpus.json``. Progress
    (utterances, audio-seconds per second) goes to standard error (:mod:`audiokit.progress`)."""
    from ..progress import Progress

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "corpus.json").exists():
        raise FileExistsError(f"{out}: a corpus is already there (corpus.json); choose another --out or delete it")
    t0 = time.perf_counter()
    speakers, test_speakers, jobs = plan(cfg)
    workers = cfg.workers or os.cpu_count() or 1
    blocks = [jobs[i : i + BLOCK_SIZE] for i in range(0, len(jobs), BLOCK_SIZE)]
    entries: list[dict] = []
    failed: list[dict] = []
    with mp.get_context("fork").Pool(min(workers, len(blocks)), maxtasksperchild=1) as pool, \
            Progress(len(jobs), "data synth", unit="utterances") as bar:
        for results in pool.imap(_synthesize_block, blocks):
            for r in results:
                (failed if "error" in r else entries).append(r)
            bar.update(len(results), seconds=sum(r.get("duration", 0.0) for r in results))
    if failed:
        log.warning("%d utterances failed to synthesize, e.g. %s", len(failed), failed[0]["error"])
    if not entries:
        raise EngineError(f"no utterance could be synthesized ({failed[0]['error'] if failed else 'nothing planned'})")
    wall = time.perf_counter() - t0

    rng = random.Random(cfg.seed + 2)
    splits: dict[str, list[dict]] = {"train": [], "valid": [], "test": []}
    for e in entries:
        if e["speaker"] in test_speakers:
            splits["test"].append(e)
        elif rng.random() < cfg.valid_fraction:
            splits["valid"].append(e)
        else:
            splits["train"].append(e)
    if cfg.valid_fraction > 0 and not splits["valid"] and len(splits["train"]) > 1:
        splits["valid"].append(splits["train"].pop())
    for name, items in splits.items():
        write_manifest(out / f"{name}.jsonl", items)

    speaker_table = [
        {"speaker": v.speaker_id, "engine": v.engine, "voice": v.name, "pitch": v.pitch, "range": v.range, "rate": v.rate,
         "split": "test" if v.speaker_id in test_speakers else "train"}
        for v in speakers
    ]
    (out / "speakers.json").write_text(json.dumps(speaker_table, indent=1))
    audio_s = sum(e["duration"] for e in entries)
    summary = {
        "config": {k: v for k, v in asdict(cfg).items() if k != "out"},
        "sentences": ("digit strings read out, 2-8 digits (audiokit.data.synth.digit_sentences)" if cfg.sentences == DIGITS
                      else cfg.sentences or f"bundled WordNet 3.0 example sentences ({SENTENCE_ASSET}, WordNet licence)"),
        "speakers": len(speakers),
        "test_speakers": sorted(test_speakers),
        **({"excluded_voices": sorted(held_out_of(cfg.exclude)[0])} if cfg.exclude else {}),
        "utterances": {k: len(v) for k, v in splits.items()},
        "hours": {k: round(sum(e["duration"] for e in v) / 3600, 4) for k, v in splits.items()},
        "failed": len(failed),
        "audio_seconds": round(audio_s, 2),
        "wall_seconds": round(wall, 2),
        "audio_seconds_per_second": round(audio_s / wall, 1),
        "workers": workers,
    }
    (out / "corpus.json").write_text(json.dumps(summary, indent=1))
    return summary
