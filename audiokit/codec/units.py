"""Discrete speech units: an ASR encoder's frames, each replaced by the nearest of K k-means centroids.

Why (issue 22, benchmarks/RESULTS.md session 24): the bundled codec spreads the words over its codebooks, so a
TTS model that writes codebook 1 writes a quarter of them, and no model we can train on a CPU fills in the rest
(sessions 17-23). Units from the encoder of an ASR model (HuBERT-style units, here from a Whisper-style encoder)
hold the phones, frame by frame, at the codec's 50 frames/s: a small regressor from the units of a held-out
digit string to the codec's latent reads at 26 % WER to the judge where one from codebook 1 reads at 74 %.

A :class:`UnitTokenizer` speaks the token contract: ``encode`` returns :class:`~audiokit.tokens.CodecTokens` of one
codebook of K codes whose :class:`~audiokit.tokens.CodecInfo` fingerprints the encoder and the centroids, so a
model trained on one set of units refuses another's. It encodes only (units have no decoder of their own).
Folder: ``config.json`` (format ``audiokit.units``, the encoder's sizes, K) + ``units.safetensors`` (the
encoder's weights and the centroids): self-contained, no ASR folder needed once fitted.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from ..tokens import CodecInfo, CodecTokens, fingerprint

FORMAT = "audiokit.units"
SAMPLE_RATE = 16000


class UnitsError(ValueError):
    """A units folder that cannot be read, or input the tokenizer cannot encode."""


def kmeans(x: torch.Tensor, k: int, iters: int = 25, seed: int = 0) -> torch.Tensor:
    """Centroids ``[k, D]`` of the rows of ``x`` ``[N, D]`` (Lloyd's algorithm from k distinct random rows; an
    emptied cluster restarts at a random row). Deterministic for a seed."""
    if x.dim() != 2 or len(x) < k:
        raise UnitsError(f"k-means needs at least k = {k} rows of features, got {tuple(x.shape)}")
    g = torch.Generator().manual_seed(seed)
    x = x.float()
    x = x.cpu()
    c = x[torch.randperm(len(x), generator=g, device="cpu")[:k]].clone()
    for _ in range(iters):
        a = torch.cdist(x, c).argmin(1)
        sums = torch.zeros_like(c).index_add_(0, a, x)
        counts = torch.bincount(a, minlength=k)
        empty = counts == 0
        c = sums / counts.clamp(min=1)[:, None].float()
        if empty.any():
            c[empty] = x[torch.randint(len(x), (int(empty.sum()),), generator=g, device="cpu")]
    return c


def asr_encoder(asr) -> tuple[dict, dict]:
    """``asr``'s encoder (a :class:`~audiokit.asr.transcriber.Transcriber`, or anything ``Transcriber.load`` reads):
    its sizes and its float32 weights."""
    from ..asr.transcriber import Transcriber

    t = asr if isinstance(asr, Transcriber) else Transcriber.load(asr)
    d = t.model.dims
    dims = {"n_mels": d.n_mels, "n_audio_ctx": d.n_audio_ctx, "n_audio_state": d.n_audio_state,
            "n_audio_head": d.n_audio_head, "n_audio_layer": d.n_audio_layer}
    return dims, {k: v.float() for k, v in t.model.encoder.state_dict().items()}


class _UnitModel(nn.Module):
    """The encoder and the centroids, as one module (``tokenize`` moves ``.model`` to its device)."""

    def __init__(self, dims: dict, k: int):
        super().__init__()
        from ..asr.model import AudioEncoder

        self.dims = dims
        self.encoder = AudioEncoder(dims["n_mels"], dims["n_audio_ctx"], dims["n_audio_state"], dims["n_audio_head"],
                                    dims["n_audio_layer"])
        self.register_buffer("centroids", torch.zeros(k, dims["n_audio_state"]))


class UnitTokenizer:
    """Audio → units (:class:`CodecTokens`, one codebook of ``k`` codes, 50 frames/s). Build with :meth:`fit`
    from an ASR model, or :meth:`load` a saved folder."""

    def __init__(self, model: _UnitModel, name: str = ""):
        self.model = model.eval().requires_grad_(False)
        self.name = name
        state = model.state_dict()
        self.info = CodecInfo(sample_rate=SAMPLE_RATE, frame_rate=SAMPLE_RATE / 320, codebook_size=self.k,
                              n_codebooks=1, fingerprint=fingerprint(state, {"format": FORMAT, **model.dims}),
                              name=name or "units")

    # ------------------------------------------------------------------ properties the token tools read
    @property
    def k(self) -> int:
        return self.model.centroids.shape[0]

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def frame_rate(self) -> float:
        return self.info.frame_rate

    @property
    def device(self) -> torch.device:
        return next(self.model.encoder.parameters()).device

    def n_q_for(self, bandwidth: float | None = None, n_q: int | None = None) -> int:
        if n_q not in (None, 1) or bandwidth is not None:
            raise UnitsError("units have one codebook: no bandwidth or n_q other than 1")
        return 1

    def to(self, device=None) -> UnitTokenizer:
        self.model.to(device)
        return self

    # ------------------------------------------------------------------ encoding
    @torch.inference_mode()
    def features(self, wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """One clip ``[T]`` → encoder features ``[frames, D]``, in windows of the encoder's length (each window's
        positions start at 0; a last piece under 40 ms is dropped, as ``encode`` pads it back)."""
        from ..asr.features import log_mel_spectrogram
        from ..audio.dsp import resample

        wav = torch.as_tensor(wav, device=self.device).float()
        if wav.dim() != 1:
            raise UnitsError(f"expected one mono clip [T], got {tuple(wav.shape)}")
        if sample_rate != SAMPLE_RATE:
            wav = resample(wav, sample_rate, SAMPLE_RATE)
        window = 2 * self.model.dims["n_audio_ctx"] * 160
        out = []
        for s in range(0, wav.shape[-1], window):
            piece = wav[s : s + window]
            if piece.shape[-1] < 640 and out:
                break
            mel = log_mel_spectrogram(piece[None], self.model.dims["n_mels"])
            mel = mel[..., : max(2, mel.shape[-1] // 2 * 2)]
            out.append(self.model.encoder(mel)[0])
        return torch.cat(out).float()

    def encode(self, wav, sample_rate: int, bandwidth: float | None = None, n_q: int | None = None) -> CodecTokens:
        """Audio ``[T]``, ``[B, T]`` or a list of clips → units ``[B, 1, frames]`` (``ceil(samples / 320)``
        frames per clip at 16 kHz, the bundled codec's count, so the two grids line up frame for frame)."""
        self.n_q_for(bandwidth, n_q)
        clips = list(wav) if isinstance(wav, (list, tuple)) or torch.as_tensor(wav, device="cpu").dim() == 2 else [wav]
        rows = []
        for c in clips:
            c = torch.as_tensor(c, device="cpu").float()
            n = -(-round(c.shape[-1] * SAMPLE_RATE / sample_rate) // 320)
            if n == 0:
                raise UnitsError("cannot encode an empty clip")
            u = self._frame_units(c, sample_rate)
            rows.append(torch.cat([u, u[-1:].expand(max(0, n - len(u)))])[:n])
        lengths = torch.tensor([len(r) for r in rows], device="cpu")
        codes = torch.zeros(len(rows), 1, int(lengths.max()), dtype=torch.long, device="cpu")
        for i, r in enumerate(rows):
            codes[i, 0, : len(r)] = r
        return CodecTokens(codes, self.info, lengths)

    def _frame_units(self, wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """One clip → its units ``[frames]`` (on the CPU): the nearest centroid of each encoder frame."""
        return torch.cdist(self.features(wav, sample_rate), self.model.centroids.float()).argmin(1).cpu()

    # ------------------------------------------------------------------ building, saving, loading
    @classmethod
    def fit(cls, asr, clips: Iterable[tuple[torch.Tensor, int]], k: int = 256, max_frames: int = 200_000,
            iters: int = 25, seed: int = 0, name: str = "") -> UnitTokenizer:
        """Units of ``asr``'s encoder (a :class:`~audiokit.asr.transcriber.Transcriber`, or anything
        ``Transcriber.load`` reads), clustered into ``k`` by k-means over up to ``max_frames`` frames (a random
        subset, seeded) of ``clips`` (``(audio, sample_rate)`` pairs)."""
        dims, encoder = asr_encoder(asr)
        model = _UnitModel(dims, k)
        model.encoder.load_state_dict(encoder)
        tok = cls(model, name)
        feats = torch.cat([tok.features(w, sr).cpu() for w, sr in clips])
        if len(feats) > max_frames:
            feats = feats[torch.randperm(len(feats), generator=torch.Generator().manual_seed(seed), device="cpu")[:max_frames]]
        model.centroids.copy_(kmeans(feats, k, iters, seed))
        return cls(model, name)

    def save(self, folder: str | os.PathLike) -> Path:
        from safetensors.torch import save_file

        from ..fileio import write_folder

        def write(tmp: Path) -> None:
            state = {k: v.contiguous() for k, v in self.model.state_dict().items()}
            save_file(state, str(tmp / "units.safetensors"))
            (tmp / "config.json").write_text(json.dumps({"format": FORMAT, "version": 1, "name": self.name,
                                                         "k": self.k, "dims": self.model.dims, **self._config()},
                                                        indent=1))

        write_folder(folder, write)
        return Path(folder)

    @classmethod
    def load(cls, folder: str | os.PathLike, device="cpu") -> UnitTokenizer:
        from ..fileio import load_safetensors_file, read_json_file

        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise UnitsError(f"{folder}: not a units folder (no config.json)")
        config = read_json_file(folder / "config.json", UnitsError, FORMAT, what="units folder")
        kind = config.get("kind", "kmeans")
        if kind == "phones":
            from .phones import PhoneTokenizer as cls
        elif kind == "kmeans":
            cls = UnitTokenizer
        else:
            raise UnitsError(f"{folder}/config.json: units of an unknown kind {kind!r} (a newer audiokit's?)")
        try:
            model = cls._new_model(config)
        except (KeyError, TypeError, ValueError) as e:
            raise UnitsError(f"{folder}/config.json: not a units configuration ({e})") from None
        state = load_safetensors_file(folder / "units.safetensors", UnitsError)
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise UnitsError(f"{folder}/units.safetensors does not match its config.json: {str(e).splitlines()[0]}") from None
        return cls._from_model(model, config).to(device)

    # the hooks a kind of units overrides (k-means here; phones in :mod:`audiokit.codec.phones`)
    def _config(self) -> dict:
        return {}

    @classmethod
    def _new_model(cls, config: dict) -> nn.Module:
        return _UnitModel(config["dims"], int(config["k"]))

    @classmethod
    def _from_model(cls, model: nn.Module, config: dict) -> UnitTokenizer:
        return cls(model, config.get("name", ""))


# ---------------------------------------------------------------------- grids built from units
def deduplicate(units: torch.Tensor, max_run: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Units ``[T]`` → (the unit of each run ``[N]``, its length in frames ``[N]``), runs longer than ``max_run``
    split (so a run's length is a code below a codebook's size). ``expand`` undoes it."""
    if units.dim() != 1 or not len(units):
        raise UnitsError(f"deduplicate takes one non-empty row of units, got shape {tuple(units.shape)}")
    values, counts = torch.unique_consecutive(units, return_counts=True)
    pieces = -(-counts // max_run)  # runs over max_run become several
    values = values.repeat_interleave(pieces)
    lengths = torch.full((int(pieces.sum()),), max_run, dtype=torch.long, device="cpu")
    ends = pieces.cumsum(0) - 1
    lengths[ends] = counts - (pieces - 1) * max_run
    return values, lengths


def expand(values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Runs → frames: each unit repeated its length (lengths below 1 count as 1, so a model's output always
    leaves every unit it wrote audible)."""
    return values.repeat_interleave(lengths.clamp(min=1))


def runs_info(units: CodecInfo) -> CodecInfo:
    """The identity of a grid of deduplicated units: row 1 the units of the runs, row 2 their lengths (frames)."""
    return CodecInfo(units.sample_rate, units.frame_rate, units.codebook_size, 2,
                     fingerprint({}, {"runs": units.fingerprint}), f"{units.name}-runs" if units.name else "runs")


def stacked_info(units: CodecInfo, codec: CodecInfo, n_q: int) -> CodecInfo:
    """The identity of a grid whose row 1 is the units and rows 2 … ``n_q + 1`` the codec's first ``n_q``
    codebooks, frame for frame (same frame rate; the units' codes fit under the codec's codebook size)."""
    if units.frame_rate != codec.frame_rate or units.codebook_size > codec.codebook_size:
        raise UnitsError(f"cannot stack {units.describe()} on {codec.describe()}: frame rates or codebook sizes differ")
    return CodecInfo(codec.sample_rate, codec.frame_rate, codec.codebook_size, n_q + 1,
                     fingerprint({}, {"units": units.fingerprint, "codec": codec.fingerprint, "n_q": n_q}),
                     f"{units.name}+{codec.name}")


# ---------------------------------------------------------------------- the stores a units TTS trains on
def write_unit_stores(asr, tokens: str | os.PathLike, out: str | os.PathLike, k: int = 256, fit_items: int = 1000,
                      n_q: int | None = None, seed: int = 0, log=print, phones: bool = False,
                      fit_steps: int = 2000) -> dict[str, Path]:
    """From a codec token store (``audiokit tokenize``; its manifests give the audio) and an ASR (the recipe's own,
    never the judge's), write under ``out``:

    * ``tokenizer/``: the :class:`UnitTokenizer` (k-means over the encoder frames of ``fit_items`` random
      training utterances; with ``phones``, a :class:`~audiokit.codec.phones.PhoneTokenizer` whose CTC head trains
      ``fit_steps`` steps on them and their transcripts; loaded instead when it is there);
    * ``frames/``: every utterance's units, frame for frame with the codec's store;
    * ``runs/``: the units as runs (:func:`deduplicate`; row 1 the unit, row 2 its length) — the AR and the
      lengths NAR train here;
    * ``stacked/``: the units above the codec's first ``n_q`` codebooks (all of them by default) — the units
      decoder trains here.

    Each store carries the codec store's manifests. A store already complete is kept (a rerun resumes), so delete
    ``out`` to rebuild after changing the ASR or ``k``. Returns the four paths."""
    import random
    import shutil

    from ..data.manifest import entry_audio, read_manifest
    from ..progress import Progress
    from ..tokens import TokenStore

    src, out = Path(tokens), Path(out)
    splits = {s: read_manifest(src / f"{s}.jsonl") for s in ("train", "valid", "test") if (src / f"{s}.jsonl").exists()}
    if "train" not in splits:
        raise UnitsError(f"{src}: no train.jsonl (a token store from `audiokit tokenize`)")
    paths = {name: out / name for name in ("tokenizer", "frames", "runs", "stacked")}
    if (paths["tokenizer"] / "config.json").exists():
        units = UnitTokenizer.load(paths["tokenizer"])
    else:
        entries = list(splits["train"])
        random.Random(seed).shuffle(entries)
        if phones:
            from .phones import PhoneTokenizer

            entries = [e for e in entries if e.get("text")]
        bar = Progress(min(fit_items, len(entries)), f"units: {'phone' if phones else 'k-means'} features",
                       unit="utterances")
        clips = (bar.update(1) or entry_audio(e) for e in entries[:fit_items])
        if phones:
            items = [(*clip, e["text"]) for clip, e in zip(clips, entries)]
            units = PhoneTokenizer.fit(asr, items, steps=fit_steps, seed=seed, log=log,
                                       name=f"{out.resolve().parent.name}-phones")
        else:
            units = UnitTokenizer.fit(asr, clips, k=k, seed=seed, name=f"{out.resolve().parent.name}-units{k}")
        bar.close()
        units.save(paths["tokenizer"])
        log(f"{paths['tokenizer']}: {units.info.describe()}")
    codec = TokenStore(src)
    ids = [e["id"] for entries in splits.values() for e in entries if e["id"] in codec]
    if not ids:
        raise UnitsError(f"{src}: its manifests name no utterance of its token store")
    cinfo = codec[ids[0]].codec
    n_q = cinfo.n_codebooks if n_q is None else n_q

    def done(path: Path) -> bool:  # the writer writes the index last: a store without one is rewritten
        return (path / "index.json").exists()

    def finish(path: Path) -> None:
        for s in splits:
            shutil.copy(src / f"{s}.jsonl", path / f"{s}.jsonl")

    if not done(paths["frames"]):
        bar = Progress(len(ids), "units", unit="utterances")
        by_id = {e["id"]: e for entries in splits.values() for e in entries}
        with TokenStore.writer(paths["frames"], units.info) as w:
            for key in ids:
                e = by_id[key]
                if hasattr(units, "align") and e.get("text"):  # phones: aligned to the transcript
                    u = units.align(*entry_audio(e, SAMPLE_RATE), e["text"])[None, None]
                else:
                    u = units.encode(*entry_audio(e)).codes
                n = codec.n_frames(key)
                u = torch.cat([u, u[..., -1:].expand(1, 1, max(0, n - u.shape[-1]))], -1)[..., :n]
                w.add(key, CodecTokens(u, units.info))
                bar.update(1)
        bar.close()
    finish(paths["frames"])
    frames = TokenStore(paths["frames"])
    if not done(paths["runs"]):
        rinfo, total, runs = runs_info(units.info), 0, 0
        with TokenStore.writer(paths["runs"], rinfo) as w:
            for key in ids:
                u = frames[key].codes[0, 0]
                values, lengths = deduplicate(u, units.k - 1)
                w.add(key, CodecTokens(torch.stack([values, lengths])[None], rinfo))
                total, runs = total + len(u), runs + len(values)
        log(f"{paths['runs']}: {runs} runs for {total} frames ({total / max(runs, 1):.2f} frames per run)")
    if not done(paths["stacked"]):
        sinfo = stacked_info(units.info, cinfo, n_q)
        with TokenStore.writer(paths["stacked"], sinfo) as w:
            for key in ids:
                c = codec[key].codes[0, :n_q]
                w.add(key, CodecTokens(torch.cat([frames[key].codes[0, :, : c.shape[1]], c])[None], sinfo))
        log(f"{paths['stacked']}: {sinfo.describe()}")
    finish(paths["runs"])
    finish(paths["stacked"])
    return paths
