"""``audiokit.Transcriber``: the inference face of an ASR model.

``Transcriber.load(path)`` reads an exported folder (``config.json`` + ``model.safetensors`` + ``vocab.tiktoken``),
a Lightning training checkpoint (``.ckpt``, the tokenizer is stored inside), or an official Whisper ``.pt``
(with its ``multilingual.tiktoken`` / ``gpt2.tiktoken`` rank file beside it or given as ``vocab=``).
``transcribe`` takes file paths, waveforms (with their sample rate) or :class:`CodecTokens` (with the codec
that made them), one or a list, and returns :class:`Transcript` objects.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import torch

from ..fileio import atomic_path, cast_state, load_safetensors_file, load_torch_file, read_json_file
from .convert import CheckpointError, build_model, load_whisper_checkpoint
from .decoding import DecodingOptions, decode
from .features import SAMPLE_RATE
from .model import ASRModel, ModelDimensions
from .tokenizer import TokenizerError, WhisperTokenizer, load_ranks
from .transcribe import Transcript, transcribe

EXPORT_FORMAT = "audiokit.asr"


class Transcriber:
    """An ASR model and its tokenizer, ready to transcribe.

    Args:
        model: an :class:`ASRModel` (put in eval mode here).
        tokenizer: the :class:`WhisperTokenizer` whose vocabulary the model was trained on.
        name: a label (shown by the CLI and in exported cards).
    """

    def __init__(self, model: ASRModel, tokenizer: WhisperTokenizer, name: str = ""):
        if tokenizer.n_vocab != model.dims.n_vocab:
            raise CheckpointError(f"the tokenizer has {tokenizer.n_vocab} tokens but the model's vocabulary is "
                                  f"{model.dims.n_vocab}: they do not belong together")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.source_folder: Path | None = None  # set by load()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device=None, dtype: torch.dtype | None = None) -> "Transcriber":
        self.model.to(device=device, dtype=dtype)
        return self

    # ------------------------------------------------------------------ inference
    def _audio(self, item, sample_rate: int | None, codec) -> torch.Tensor:
        from ..audio import read_audio, resample
        from ..tokens import CodecTokens

        if isinstance(item, (str, os.PathLike)):
            wav, _ = read_audio(item, sample_rate=SAMPLE_RATE)
            return wav.reshape(-1)
        if isinstance(item, CodecTokens):
            if codec is None:
                raise ValueError("CodecTokens need the codec that made them: transcribe(tokens, codec=Codec.load(...))")
            wav = codec.decode(item)
            if wav.dim() == 2:
                if wav.shape[0] != 1:
                    raise ValueError("pass one utterance of CodecTokens at a time (or a list of them)")
                wav = wav[0]
            return resample(wav.float().cpu(), codec.sample_rate, SAMPLE_RATE)
        if hasattr(item, "__array__") and not isinstance(item, torch.Tensor):
            item = torch.as_tensor(item, device="cpu")
        if isinstance(item, torch.Tensor):
            if sample_rate is None:
                raise ValueError("a waveform needs its sample_rate: transcribe(wav, sample_rate=16000)")
            x = item.detach().float().cpu()
            if x.dim() == 2 and x.shape[0] == 1:
                x = x[0]
            if x.dim() != 1:
                raise ValueError(f"expected mono audio [samples] or [1, samples], got shape {tuple(item.shape)}; "
                                 "pass a list to transcribe several utterances")
            return resample(x, sample_rate, SAMPLE_RATE) if sample_rate != SAMPLE_RATE else x
        raise TypeError(f"cannot transcribe a {type(item).__name__}: give a file path, a waveform or CodecTokens")

    def transcribe(self, audio, sample_rate: int | None = None, *, codec=None, language: str | None = "en",
                   task: str = "transcribe", beam_size: int | None = None, patience: float | None = None,
                   length_penalty: float | None = None, best_of: int | None = 5,
                   temperature: float | Sequence[float] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0), without_timestamps: bool = False,
                   initial_prompt: str | None = None, condition_on_previous_text: bool = True,
                   compression_ratio_threshold: float | None = 2.4, logprob_threshold: float | None = -1.0,
                   no_speech_threshold: float | None = 0.6, silence_threshold_db: float | None = -50.0,
                   batch_size: int = 8, suppress_tokens: str | Sequence[int] = "-1",
                   draft_tokens: int = 0, seed: int | None = 0, ctc_weight: float | None = None) -> Transcript | list[Transcript]:
        """Transcribe one input (→ :class:`Transcript`) or a list (→ list, decoded ``batch_size`` at a time).

        Inputs: a path, a waveform with ``sample_rate`` (resampled to 16 kHz), or :class:`CodecTokens` with
        ``codec``. ``language=None`` detects each file's language (models with language tokens).
        ``draft_tokens``: greedy passes check this many drafted tokens per decoder pass (the same result in
        fewer passes; see :class:`~audiokit.asr.decoding.DecodingOptions`). Default 0, one pass per token: with
        Whisper tiny.en's real weights on speech few drafts are accepted and 8 cost 1.7x the time on a 2-core CPU
        (benchmarks/asr_speed.py); drafting pays where text repeats (its gains in RESULTS came from random weights).
        ``seed``: the sampler of the temperature fallback (and of ``temperature`` > 0) is seeded, so the same
        input gives the same transcript on every run [0]; None draws fresh randomness each time.
        ``ctc_weight``: joint CTC/attention rescoring of beam search's candidates, for models trained with a CTC
        head (see :class:`~audiokit.asr.decoding.DecodingOptions`) [0.3 where the model has one].
        """
        single = not isinstance(audio, (list, tuple))
        items = [audio] if single else list(audio)
        waves = [self._audio(x, sample_rate, codec) for x in items]
        temps = (temperature,) if isinstance(temperature, (int, float)) else tuple(temperature)
        if not temps:
            raise ValueError("temperature must be a number or a non-empty sequence")
        if not self.tokenizer.multilingual:
            language = None
        options = DecodingOptions(task=task, language=language, beam_size=beam_size, patience=patience,
                                  length_penalty=length_penalty, best_of=best_of if temps[0] > 0 else None,
                                  without_timestamps=without_timestamps, suppress_tokens=suppress_tokens,
                                  temperature=temps[0], draft_tokens=draft_tokens, seed=seed,
                                  ctc_weight=ctc_weight)
        if language is not None:
            self.tokenizer.with_options(language, task)  # an unknown language is an error here, not mid-way
        out = transcribe(self.model, self.tokenizer, waves, options, temps, compression_ratio_threshold,
                         logprob_threshold, no_speech_threshold, condition_on_previous_text, initial_prompt,
                         silence_threshold_db, batch_size, best_of)
        return out[0] if single else out

    def decode(self, mel: torch.Tensor, options: DecodingOptions = DecodingOptions()):
        """Decode prepared log-mel windows ``[B, n_mels, frames]`` (see :func:`audiokit.asr.decoding.decode`)."""
        return decode(self.model, self.tokenizer, mel.to(self.device), options)

    # ------------------------------------------------------------------ files
    def export(self, folder: str | os.PathLike, dtype: torch.dtype = torch.float32, card: dict | None = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` + ``vocab.tiktoken``."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = cast_state({k: v for k, v in self.model.state_dict().items() if k != "encoder.positional_embedding"}, dtype)
        self.tokenizer.save(folder / "vocab.tiktoken")
        with atomic_path(folder / "model.safetensors") as tmp:
            save_file(state, str(tmp))
        meta = {"format": EXPORT_FORMAT, "version": 1, "family": "asr", "name": self.name,
                "dims": self.model.dims.to_dict(), "tokenizer": self.tokenizer.config,
                "dtype": str(dtype).replace("torch.", ""), **(card or {})}
        with atomic_path(folder / "config.json") as tmp:
            tmp.write_text(json.dumps(meta, indent=1))
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike, device="cpu", vocab: str | os.PathLike | None = None,
             name: str | None = None) -> "Transcriber":
        """Load an exported folder, a Lightning ``.ckpt``, an official Whisper ``.pt`` (+ its rank file), a
        CTranslate2 (faster-whisper) folder or a Hugging Face transformers Whisper folder."""
        path = Path(path)
        if not path.exists():  # a registry name: "asr" (the default, Whisper tiny.en) or a bundled folder
            from ..pretrained import resolve

            try:
                path = resolve(path)
            except FileNotFoundError as e:
                raise CheckpointError(str(e)) from None
        if path.is_dir():
            from .layouts import detect_layout, load_ctranslate2, load_transformers

            layout = detect_layout(path)
            if layout == "audiokit":
                t = cls._load_export(path, name)
            else:
                model, tok = (load_ctranslate2 if layout == "ctranslate2" else load_transformers)(path)
                t = cls(model, tok, name=name or path.name)
        elif path.suffix == ".ckpt":
            t = cls._load_lightning(path, name)
        else:
            model = load_whisper_checkpoint(path)
            t = cls(model, _official_tokenizer(path, model, vocab), name=name or path.stem)
        t.source_folder = path  # where it came from (a VALL-E export does not copy the default ASR it resolved)
        return t.to(device)

    @classmethod
    def _load_export(cls, folder: Path, name: str | None) -> "Transcriber":
        meta = read_json_file(folder / "config.json", CheckpointError, EXPORT_FORMAT, "ASR export")
        try:
            tok = WhisperTokenizer(load_ranks(folder / "vocab.tiktoken"), **meta["tokenizer"])
        except TokenizerError as e:
            raise CheckpointError(str(e)) from None
        state = load_safetensors_file(folder / "model.safetensors", CheckpointError)
        model = build_model(ModelDimensions(**meta["dims"]), state, str(folder))
        return cls(model, tok, name=name if name is not None else meta.get("name", folder.name))

    @classmethod
    def _load_lightning(cls, path: Path, name: str | None, ckpt: dict | None = None) -> "Transcriber":
        """From a training checkpoint (``ckpt``: its contents, when the caller has read them already)."""
        ckpt = load_torch_file(path, CheckpointError) if ckpt is None else ckpt
        if not isinstance(ckpt, dict) or "asr_tokenizer" not in ckpt or "hyper_parameters" not in ckpt:
            raise CheckpointError(f"{path}: not an ASR training checkpoint (no tokenizer stored in it)")
        import base64

        ranks = {base64.b64decode(t): i for i, t in enumerate(ckpt["asr_tokenizer"]["ranks"])}
        tok = WhisperTokenizer(ranks, **ckpt["asr_tokenizer"]["config"])
        dims, state = lightning_model_state(ckpt)
        return cls(build_model(dims, state, str(path)), tok, name=name if name is not None else path.stem)


def lightning_model_state(ckpt: dict) -> tuple[ModelDimensions, dict]:
    """The :class:`ASRModel`'s dimensions and weights in an ``audiokit train asr`` checkpoint. Checkpoints before
    the CTC head moved into the model kept it beside the model (``ctc_head.*``): it is taken along."""
    dims = dict(ckpt["hyper_parameters"]["dims"])
    state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    state.update({k: v for k, v in ckpt["state_dict"].items() if k.startswith("ctc_head.")})
    if "ctc_head.weight" in state:
        dims["n_ctc_vocab"] = state["ctc_head.weight"].shape[0]
    return ModelDimensions(**dims), state


def _official_tokenizer(path: Path, model: ASRModel, vocab) -> WhisperTokenizer:
    multilingual = model.is_multilingual
    fname = "multilingual.tiktoken" if multilingual else "gpt2.tiktoken"
    from ..assets import ASSETS_DIR

    candidates = [Path(vocab)] if vocab else [path.parent / fname, path.parent / "assets" / fname, ASSETS_DIR / (fname + ".gz")]
    for c in candidates:
        if c.exists():
            try:
                tok = WhisperTokenizer.from_file(c, num_languages=model.num_languages if multilingual else 99,
                                                 multilingual=multilingual, language="en" if multilingual else None)
            except TokenizerError as e:
                raise CheckpointError(str(e)) from None
            if tok.n_vocab != model.dims.n_vocab:
                raise CheckpointError(f"{c}: {tok.n_vocab} tokens with the special tokens, but {path.name} has "
                                      f"{model.dims.n_vocab}: use {fname}")
            return tok
    raise CheckpointError(f"{path}: an official Whisper checkpoint needs its tokenizer ranks ({fname}); put the file beside "
                          f"the checkpoint or pass vocab= / --vocab (openai-whisper ships it in whisper/assets/)")
