"""``ValleTTS``: text + a voice prompt → speech, with VALL-E's AR and NAR models and the codec they were
trained on (and optionally the toolkit's ASR, to transcribe a prompt whose words are not given).

The prompt's transcript decides how the prompt is used. With a transcript (given, or from the ASR), the model
*continues* the prompt: its phonemes are ``prompt text + sentence`` and its audio starts with the prompt's
frames (the paper's inference). Without one (``prompt_text=""``, or no ASR), the prompt is a voice reference
before the sentence's phonemes; the models trained on both cases (see ``data.py``).
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import torch

from ..fileio import load_torch_file
from ..text.phonemes import PHONEME_VOCAB, TextError
from ..text.policy import prepare_text
from ..progress import Progress
from ..tokens import CodecInfo, CodecMismatchError, CodecTokens
from .data import phoneme_ids, phonemize
from .generate import SamplingOptions, generate_ar, generate_nar
from ..tts import (Synthesis, TTSLoadError, load_bundled_codec, load_part, load_state, load_voice_clip, read_config,
                   TTSModel, save_export, split_sentences, stage_timer)
from .model import ValleAR, ValleDims, ValleNAR

log = logging.getLogger(__name__)

def _read_checkpoint(path: Path, stage: str) -> tuple[ValleDims, dict, CodecInfo | None]:
    if not path.exists():
        raise TTSLoadError(f"{path}: no such checkpoint")
    ckpt = load_torch_file(path, TTSLoadError)
    meta = ckpt.get("valle") if isinstance(ckpt, dict) else None
    if not meta or meta.get("stage") != stage:
        found = f"a VALL-E {meta['stage'].upper()} checkpoint" if meta else "not a VALL-E training checkpoint"
        raise TTSLoadError(f"{path}: expected a VALL-E {stage.upper()} checkpoint, found {found}")
    state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    codec = CodecInfo.from_dict(meta["codec"]) if meta.get("codec") else None
    return ValleDims.from_dict(meta["dims"]), state, codec


def _is_default(asr) -> bool:
    """Whether a Transcriber is the default ASR (it is resolved by name on every machine, never copied into exports)."""
    from ..pretrained import DEFAULT_ASR_FOLDER, cache_dir

    src = getattr(asr, "source_folder", None)
    return src is not None and Path(src).resolve() == (cache_dir() / DEFAULT_ASR_FOLDER).resolve()


def bundled_asr(folder: Path, asr):
    """The ASR a TTS folder is loaded with: ``asr`` (a path or Transcriber) if given, else the one in ``folder/asr``
    (or its link), else ``None`` (the default ASR, loaded when first needed)."""
    from ..asr.transcriber import Transcriber
    from ..pretrained import component

    if isinstance(asr, (str, os.PathLike)):
        return Transcriber.load(asr)
    if asr is None and (bundled := component(folder, "asr", TTSLoadError)) is not None:
        return Transcriber.load(bundled)
    return asr


class ValleTTS(TTSModel):
    """Zero-shot TTS with VALL-E. Load with :meth:`load` (an exported folder) or :meth:`from_checkpoints`.

    Args:
        ar, nar: the two models; codec: the :class:`~audiokit.Codec` their tokens come from.
        asr: a :class:`~audiokit.Transcriber` for prompts given without a transcript; ``None`` (the default): the
            default ASR (``"asr"``, Whisper tiny.en), loaded on first use; ``False``: none.
        languages: the manifest languages the models were trained on (``"en"``).
        max_prompt_seconds: longer prompts are trimmed to this, with a notice.
        nar_decoding: how codebooks 2 … Q become audio: ``"expected"`` (the default) decodes each at the
            expectation of the NAR's probabilities (:meth:`~audiokit.Codec.embed_expected`: a code the NAR is
            sure of counts in full, an unsure one as the mean of its candidates); ``"codes"`` decodes the NAR's
            most likely codes, as the reference implementations do. The returned codes are the most likely
            ones either way (the codec token interface).
    """

    family = "valle"

    def __init__(self, ar: ValleAR, nar: ValleNAR, codec, asr=None, name: str = "", languages=("en",),
                 max_prompt_seconds: float = 6.0, min_prompt_seconds: float = 1.0, max_chars: int = 4000,
                 nar_decoding: str = "expected"):
        self._check_models(ar, nar, codec)
        self.ar, self.nar, self.codec = ar, nar, codec
        self._asr = asr or None  # the ASR given or bundled; the default one is loaded when a prompt first needs it
        self._asr_default = asr is None
        self._asr_missing: str | None = None  # why there is no ASR, when the default one could not be loaded
        self._device = torch.device("cpu")
        self.name, self.languages = name, tuple(languages)
        self.max_prompt_seconds, self.min_prompt_seconds, self.max_chars = max_prompt_seconds, min_prompt_seconds, max_chars
        self.nar_decoding = _check_nar_decoding(nar_decoding)

    def _check_models(self, ar: ValleAR, nar: ValleNAR, codec) -> None:
        for what, dims in (("AR", ar.dims), ("NAR", nar.dims)):
            if dims.codebook_size != codec.info.codebook_size or dims.n_codebooks > codec.info.n_codebooks:
                raise CodecMismatchError(f"the {what} model expects {dims.n_codebooks} codebooks of {dims.codebook_size} "
                                         f"codes, but the codec is {codec.info.describe()}")

    @property
    def n_codebooks(self) -> int:
        return self.nar.dims.n_codebooks

    @property
    def asr(self):
        """The ASR that transcribes prompts given without a transcript (None: none); the default one loads here."""
        if self._asr is None and self._asr_default:
            self._asr_default = False
            from ..asr.convert import CheckpointError
            from ..asr.transcriber import Transcriber
            from ..pretrained import DEFAULT_ASR

            try:
                self._asr = Transcriber.load(DEFAULT_ASR, device=self._device)
            except CheckpointError as e:
                self._asr_missing = str(e)
        return self._asr

    @asr.setter
    def asr(self, asr) -> None:
        self._asr, self._asr_default = asr or None, False

    @property
    def own_asr(self):
        """The ASR given to (or bundled with) this model, which an export copies; None when it uses the default one."""
        return self._asr if self._asr is not None and not _is_default(self._asr) else None

    def to(self, device) -> "ValleTTS":
        self.ar.to(device)
        self.nar.to(device)
        self.codec.to(device)
        self._device = torch.device(device)
        if self._asr is not None:
            self._asr.to(device)
        return self

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_checkpoints(cls, ar_ckpt, nar_ckpt, codec, asr=None, name: str = "", **kw) -> "ValleTTS":
        """From the Lightning checkpoints of ``audiokit train valle-ar`` / ``valle-nar`` and a codec (path or
        :class:`~audiokit.Codec`); the checkpoints' codec must be this one."""
        from ..codec.codec import Codec

        codec = Codec.load(codec) if isinstance(codec, (str, os.PathLike)) else codec
        models = []
        for stage, path, model_cls in (("ar", Path(ar_ckpt), ValleAR), ("nar", Path(nar_ckpt), ValleNAR)):
            dims, state, trained_on = _read_checkpoint(path, stage)
            if trained_on is not None:
                codec.info.check_same(trained_on, what=f"{path.name} (trained on {trained_on.describe()})")
            models.append(load_state(model_cls(dims), state, str(path)))
        if isinstance(asr, (str, os.PathLike)):
            from ..asr.transcriber import Transcriber

            asr = Transcriber.load(asr)
        return cls(models[0], models[1], codec, asr=asr, name=name, **kw)

    def export(self, folder: str | os.PathLike, dtype: torch.dtype = torch.float32, card: dict | None = None) -> Path:
        """Write ``config.json``, ``ar.safetensors``, ``nar.safetensors``, the codec in ``codec/`` and the ASR
        given to this model (if any; not the default one, which every installation resolves itself) in ``asr/``:
        one self-contained folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        # the codec is written in float32 whatever ``dtype`` is: its fingerprint (the tokens the models learned)
        # depends on its exact weights, and float32 holds them exactly however they were stored
        self.codec.export(folder / "codec", card={"source": "bundled with a VALL-E model"})
        bundled = self.own_asr
        if bundled is not None:
            bundled.export(folder / "asr", dtype=dtype, card={"source": "bundled with a VALL-E model"})
        meta = {"family": self.family, "name": self.name, "ar": self.ar.dims.to_dict(), "nar": self.nar.dims.to_dict(),
                "codec": self.codec.info.to_dict(), "languages": list(self.languages),
                "max_prompt_seconds": self.max_prompt_seconds, "min_prompt_seconds": self.min_prompt_seconds,
                "nar_decoding": self.nar_decoding,
                "asr": bundled is not None, **(card or {})}
        return save_export(folder, {"ar": self.ar, "nar": self.nar}, meta, dtype)

    @classmethod
    def load(cls, path: str | os.PathLike, device="cpu", asr=None, meta: dict | None = None) -> "ValleTTS":
        """Load an exported folder. ``asr`` (a path or Transcriber) replaces the bundled ASR, if any; without
        either, prompts are transcribed by the default ASR (Whisper tiny.en), loaded when first needed."""
        folder = Path(path)
        meta = meta if meta is not None else read_config(folder)
        codec = load_bundled_codec(folder, meta)
        ar = load_part(folder, "ar", ValleAR(ValleDims.from_dict(meta["ar"])))
        nar = load_part(folder, "nar", ValleNAR(ValleDims.from_dict(meta["nar"])))
        asr = bundled_asr(folder, asr)
        tts = cls(ar, nar, codec, asr=asr, name=meta.get("name", folder.name), languages=meta.get("languages", ["en"]),
                  max_prompt_seconds=meta.get("max_prompt_seconds", 6.0), min_prompt_seconds=meta.get("min_prompt_seconds", 1.0),
                  nar_decoding=meta.get("nar_decoding", "codes"))  # folders exported before it decode as measured
        return tts.to(device)

    # ------------------------------------------------------------------ inputs
    def prepare_prompt(self, prompt, sample_rate: int | None = None, prompt_text: str | None = None,
                       notices: list[str] | None = None) -> tuple[CodecTokens, str | None]:
        """The prompt as codec tokens ``[1, Q, P]`` and its transcript (``None``: none to use).

        ``prompt``: an audio path, a waveform (with ``sample_rate``; resampled to the codec's rate) or
        CodecTokens of this codec. ``prompt_text=None`` asks the ASR (when there is one); ``""`` uses no
        transcript. Too short (< ``min_prompt_seconds``) or silent prompts are errors; longer than
        ``max_prompt_seconds`` is trimmed, with a notice.
        """
        notices = notices if notices is not None else []
        sr = self.sample_rate
        wav, tokens = load_voice_clip(prompt, self.codec, sample_rate, self.min_prompt_seconds)
        seconds = wav.shape[-1] / sr
        if seconds > self.max_prompt_seconds:
            wav = wav[: int(self.max_prompt_seconds * sr)]
            notices.append(f"the prompt ({seconds:.1f} s) was trimmed to its first {self.max_prompt_seconds:g} s")
            if prompt_text:
                notices.append("its transcript no longer matches the trimmed audio and is not used")
                prompt_text = None
            tokens = None
        if tokens is None or tokens.codec.fingerprint != self.prompt_info.fingerprint:  # a units model re-encodes
            tokens = self.encode_prompt(wav)
        tokens = tokens.keep_codebooks(self.prompt_rows) if tokens.n_q > self.prompt_rows else tokens
        if prompt_text is None and self.asr is not None:
            prompt_text = self.asr.transcribe(wav, sr, temperature=0.0).text.strip()
            notices.append(f"prompt transcribed by the ASR: {prompt_text!r}" if prompt_text else
                           "the ASR heard no words in the prompt: it is used as a voice reference only")
        if not prompt_text:
            if prompt_text is None:
                why = f" ({self._asr_missing})" if self._asr_missing else ""
                notices.append(f"no transcript for the prompt, and no ASR{why}: it is used as a voice reference only")
            prompt_text = None
        return tokens.cpu(), prompt_text

    @property
    def prompt_info(self) -> CodecInfo:
        """The identity of the prompts :meth:`generate` reads (the codec's; a units model's own grid)."""
        return self.codec.info

    @property
    def prompt_rows(self) -> int:
        """Rows of a prompt :meth:`generate` reads (the codebooks the models use)."""
        return self.n_codebooks

    def encode_prompt(self, wav: torch.Tensor) -> CodecTokens:
        """A voice clip at the codec's rate → the prompt tokens :meth:`generate` reads ``[1, Q, P]``."""
        return self.codec.encode(wav, self.sample_rate, n_q=self.n_codebooks)

    def _sentences(self, text: str, language: str) -> tuple[list[str], list[str]]:
        text = prepare_text(text, self.languages, self.max_chars, language)  # the policy both families share
        sentences = split_sentences(text)
        phonemes = phonemize(sentences, language)
        keep = [(s, p) for s, p in zip(sentences, phonemes) if any(c.isalpha() for c in p)]
        if not keep:
            raise TextError(f"the text has nothing to pronounce: {text[:80]!r}")
        return [s for s, _ in keep], [p for _, p in keep]

    # ------------------------------------------------------------------ synthesis
    def generate(self, rows: list[tuple[list[int], int, torch.Tensor]], options: SamplingOptions,
                 batch_size: int = 8, timings: dict | None = None, probs: list | None = None,
                 voice_only=False) -> list[torch.Tensor]:
        """Codes ``[Q, T]`` for each row ``(phoneme ids, phonemes to speak, prompt codes [Q, P])``: the AR in
        batches of ``batch_size`` rows, then the NAR. Every row may have its own prompt. Seconds spent in
        each model are added to ``timings["ar"]`` / ``["nar"]``. ``probs``, if given (a list), receives each
        row's NAR probabilities ``[Q-1, T, K]`` (:meth:`audio` reads them). ``voice_only`` (a bool, or one per
        row): the row's prompt has no transcript in its phonemes (:func:`~audiokit.valle.generate.generate_ar`)."""
        timings = timings if timings is not None else {}
        out: list[torch.Tensor] = []
        fr = self.codec.frame_rate
        n_batches = -(-len(rows) // batch_size)
        bar = Progress(len(rows), "VALL-E", unit="sentences", enabled=n_batches > 1)  # long text: batch by batch
        for i in range(0, len(rows), batch_size):
            chunk = rows[i : i + batch_size]
            flags = voice_only if isinstance(voice_only, bool) else voice_only[i : i + batch_size]
            texts = [torch.tensor(ids, device="cpu") for ids, _, _ in chunk]
            prompts = [p for _, _, p in chunk]
            with stage_timer(timings, "ar", self.device):
                first = generate_ar(self.ar, texts, [p[0] for p in prompts], [options.max_frames(n, fr) for _, n, _ in chunk],
                                    options, voice_only=flags)
            with stage_timer(timings, "nar", self.device):
                out += generate_nar(self.nar, texts, prompts, first, probs=probs)
            bar.update(len(chunk))
        bar.close()
        return out

    def audio(self, codes: list[torch.Tensor], probs: list[torch.Tensor] | None = None,
              nar_decoding: str | None = None) -> list[torch.Tensor]:
        """Waveforms of generated rows (codes ``[Q, T]``, and the NAR's probabilities ``[Q-1, T, K]`` from
        :meth:`generate`), decoded as ``nar_decoding`` says (default: the model's :attr:`nar_decoding`)."""
        mode = _check_nar_decoding(nar_decoding or self.nar_decoding)
        if not codes:
            return []
        tokens = CodecTokens.collate([CodecTokens(c[None], self.codec.info) for c in codes])
        if mode == "codes" or probs is None or self.n_codebooks < 2:
            return self.codec.decode_list(tokens)
        rows = [self.codec.embed_expected(CodecTokens(c[None, :1], self.codec.info), p[None])[0]
                for c, p in zip(codes, probs)]  # row by row: probabilities are T x K per codebook
        latents = torch.zeros(len(rows), rows[0].shape[0], int(tokens.lengths.max()), dtype=rows[0].dtype,
                              device=rows[0].device)
        for b, z in enumerate(rows):
            latents[b, :, : z.shape[1]] = z
        audio = self.codec.decode_latents(latents, tokens.lengths)
        return [audio[b, : int(n) * self.codec.hop_length] for b, n in enumerate(tokens.lengths)]

    def synthesize(self, text: str, prompt, prompt_text: str | None = None, sample_rate: int | None = None,
                   language: str = "en", temperature: float = 1.0, top_k: int | None = 50, top_p: float | None = None,
                   seed: int | None = None, batch_size: int = 8, sentence_pause: float = 0.2,
                   nar_decoding: str | None = None, repetition_window: int = 0,
                   repetition_threshold: float = 0.1) -> Synthesis:
        """Speak ``text`` in the voice of ``prompt`` (see :meth:`prepare_prompt`). Long text is split into
        sentences, synthesized as a batch with the same prompt, and joined with ``sentence_pause`` seconds of
        silence. ``seed`` makes the result reproducible. ``nar_decoding``: see the class (default: the model's).
        ``repetition_window`` > 0: repetition-aware sampling of codebook 1 (:class:`SamplingOptions`)."""
        start = time.perf_counter()
        notices: list[str] = []
        timings = {"text": 0.0, "prompt": 0.0, "ar": 0.0, "nar": 0.0, "codec": 0.0}
        with stage_timer(timings, "text"):
            sentences, phonemes = self._sentences(text, language)
        options = SamplingOptions(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                                  repetition_window=repetition_window, repetition_threshold=repetition_threshold)
        with stage_timer(timings, "prompt", self.device):  # codec encoding, and the ASR when it transcribes
            tokens, prompt_text = self.prepare_prompt(prompt, sample_rate, prompt_text, notices)
        with stage_timer(timings, "text"):
            prefix = phonemize([prompt_text], language)[0] + " " if prompt_text else ""
            codes = tokens.codes[0, :, : int(tokens.lengths[0])]
            rows = [(phoneme_ids(prefix + p, what=f"sentence {s!r}"), len(PHONEME_VOCAB.encode(p)), codes)
                    for s, p in zip(sentences, phonemes)]
        probs: list[torch.Tensor] = []
        generated = self.generate(rows, options, batch_size, timings, probs=probs, voice_only=not prompt_text)
        keep = [i for i, c in enumerate(generated) if c.shape[1] > 0]
        for s, c in zip(sentences, generated):
            if c.shape[1] == 0:
                notices.append(f"the model ended {s!r} at once; it is left out")
        pause = torch.zeros(int(sentence_pause * self.sample_rate), device="cpu")
        pieces = []
        with stage_timer(timings, "codec", self.device):
            for wav in self.audio([generated[i] for i in keep], [probs[i] for i in keep], nar_decoding):
                pieces += [wav, pause]
            audio = torch.cat(pieces[:-1]) if pieces else pause
        for n in notices:
            log.info("%s", n)
        return Synthesis(audio=audio, sample_rate=self.sample_rate, sentences=sentences, codes=generated,
                         prompt_text=prompt_text, seconds=time.perf_counter() - start, notices=notices, timings=timings)


NAR_DECODINGS = ("expected", "codes")


def _check_nar_decoding(mode: str) -> str:
    if mode not in NAR_DECODINGS:
        raise ValueError(f"nar_decoding must be one of {', '.join(NAR_DECODINGS)}, got {mode!r}")
    return mode
