"""``TortoiseTTS``: text + reference clips of a voice → speech, with the Tortoise stack on the codec's tokens.

The pipeline, per sentence: the AR model samples N candidate first-codebook sequences in one batch (KV cache);
CLVP scores each against the text and the best ``k`` are kept; the AR model's latents of those candidates
condition the diffusion decoder, which DDIM-samples the codec's continuous latents (classifier-free guidance);
the codec's decoder turns them into audio. Presets trade candidates and diffusion steps for speed, as the
original's do.
"""
from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from ..nn.diffusion import guided, make_process
from ..text.phonemes import TextError
from ..text.policy import prepare_text
from ..progress import Progress
from ..tokens import CodecInfo, CodecMismatchError
from ..tts import (PromptError, Synthesis, TTSLoadError, load_bundled_codec, load_part, load_state, load_voice_clip,
                   read_config, save_export, split_sentences, stage_timer, TTSModel)
from ..valle.generate import SamplingOptions
from .data import text_ids
from .diffusion import DiffusionDecoder
from .generate import ar_latents, sample_candidates
from .lightning import read_checkpoint
from .model import CLVP, TortoiseAR, TortoiseDims, framed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preset:
    """Candidates the AR samples, DDIM steps, and the classifier-free guidance scale (1 = none)."""

    candidates: int
    diffusion_steps: int
    guidance: float


# The original's presets sample 16 / 96 / 256 / 256 candidates with 30 / 80 / 200 / 400 diffusion steps; a
# DDIM sampler over a v-prediction model needs far fewer steps for the same quality.
PRESETS = {
    "ultra_fast": Preset(candidates=4, diffusion_steps=8, guidance=1.0),
    "fast": Preset(candidates=16, diffusion_steps=20, guidance=2.0),
    "standard": Preset(candidates=64, diffusion_steps=50, guidance=2.0),
    "high_quality": Preset(candidates=128, diffusion_steps=100, guidance=2.0),
}


def resolve_preset(preset: str, candidates: int | None = None, diffusion_steps: int | None = None,
                   guidance: float | None = None, k: int = 1) -> Preset:
    """A preset with any of its settings overridden; checks ``k <= candidates``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    p = PRESETS[preset]
    p = Preset(candidates if candidates is not None else p.candidates,
               diffusion_steps if diffusion_steps is not None else p.diffusion_steps,
               guidance if guidance is not None else p.guidance)
    if p.candidates < 1 or p.diffusion_steps < 1 or p.guidance < 0:
        raise ValueError(f"candidates and diffusion steps must be >= 1 and guidance >= 0, got {p}")
    if k < 1 or k > p.candidates:
        raise ValueError(f"k = {k} best candidates asked for, but only {p.candidates} are sampled: "
                         f"k must be between 1 and the number of candidates")
    return p


class TortoiseTTS(TTSModel):
    """Tortoise on codec tokens. Load with :meth:`load` (an exported folder) or :meth:`from_checkpoints`.

    Args:
        ar, clvp, diffusion: the three models; ``diffusion_meta``: its ``prediction``, ``schedule_steps`` and
            ``conditioning`` (``"ar-latents"`` after stage 2, ``"codes"`` for a stage-1 decoder).
        codec: the :class:`~audiokit.Codec` of their tokens; tokenizer: the BPE the text models read.
        max_voice_seconds: each reference clip is trimmed to this (with a notice).
    """

    family = "tortoise"
    stages = ("ar", "clvp", "diffusion", "codec")  # what ``Synthesis.timings`` splits the time into

    def __init__(self, ar: TortoiseAR, clvp: CLVP, diffusion: DiffusionDecoder, diffusion_meta: dict, codec, tokenizer,
                 name: str = "", max_voice_seconds: float = 10.0, min_voice_seconds: float = 1.0,
                 max_chars: int = 4000, seconds_per_token: float = 0.6):
        self.ar, self.clvp, self.diffusion, self.codec, self.tokenizer = ar, clvp, diffusion, codec, tokenizer
        self._check_models()
        self.diffusion_meta = dict(diffusion_meta)
        # DDPM (DDIM sampling) or rectified flow (Euler; ``self.process.solver = "midpoint"`` for second order)
        self.process = None if diffusion is None else make_process(self.diffusion_meta.get("prediction", "v"),
                                                                    self.diffusion_meta.get("schedule_steps", 1000))
        self.name = name
        self.max_voice_seconds, self.min_voice_seconds = max_voice_seconds, min_voice_seconds
        self.max_chars, self.seconds_per_token = max_chars, seconds_per_token

    def _check_speech_models(self, size: int, what: str) -> None:
        """The AR and CLVP read speech tokens of ``size`` codes (``what`` describes those tokens)."""
        for model, dims in (("AR", self.ar.dims), ("CLVP", self.clvp.dims)):
            if dims.codebook_size != size:
                raise CodecMismatchError(f"the {model} model expects codebooks of {dims.codebook_size} codes, but the "
                                         f"speech tokens are {what}")

    def _check_models(self) -> None:
        codec, diffusion = self.codec, self.diffusion
        self._check_speech_models(codec.info.codebook_size, codec.info.describe())
        if diffusion.code_embedding.num_embeddings != codec.info.codebook_size:
            raise CodecMismatchError(f"the diffusion model expects codebooks of {diffusion.code_embedding.num_embeddings} "
                                     f"codes, but the codec is {codec.info.describe()}")
        if diffusion.out.out_features != codec.model.latent_dim:
            raise CodecMismatchError(f"the diffusion decoder makes {diffusion.out.out_features}-dim latents; the codec reads {codec.model.latent_dim}")
        if diffusion.text_vocab and self.tokenizer.vocab_size > diffusion.text_vocab:
            raise TTSLoadError(f"the diffusion decoder reads {diffusion.text_vocab} text tokens; the tokenizer has "
                               f"{self.tokenizer.vocab_size}")

    def to(self, device) -> "TortoiseTTS":
        for m in (self.ar, self.clvp, self.diffusion):
            if m is not None:
                m.to(device)
        self.codec.to(device)
        return self

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_checkpoints(cls, ar_ckpt, clvp_ckpt, diffusion_ckpt, codec, name: str = "", **kw) -> "TortoiseTTS":
        """From the Lightning checkpoints of the ``tortoise-ar``, ``clvp`` and ``diffusion-ar-latents`` (or, to
        compare, stage-1 ``diffusion``) stages and the codec (path or :class:`~audiokit.Codec`) they trained on."""
        from ..codec.codec import Codec
        from ..text.bpe import BPETokenizer

        codec = Codec.load(codec) if isinstance(codec, (str, os.PathLike)) else codec
        metas = {}
        models = {}
        for part, path, stages in (("ar", ar_ckpt, ("ar",)), ("clvp", clvp_ckpt, ("clvp",)),
                                   ("diffusion", diffusion_ckpt, ("diffusion-ar-latents", "diffusion"))):
            meta, state = read_checkpoint(path, stages, TTSLoadError)
            if meta.get("codec"):
                trained_on = CodecInfo.from_dict(meta["codec"])
                codec.info.check_same(trained_on, what=f"{Path(path).name} (trained on {trained_on.describe()})")
            metas[part] = meta
            if part == "diffusion":
                models[part] = load_state(DiffusionDecoder(**meta["config"]), state, str(path))
            else:
                models[part] = load_state((TortoiseAR if part == "ar" else CLVP)(TortoiseDims.from_dict(meta["dims"])), state, str(path))
        if not metas["ar"].get("tokenizer"):
            raise TTSLoadError(f"{ar_ckpt}: the checkpoint carries no tokenizer")
        if metas["clvp"].get("tokenizer") and metas["clvp"]["tokenizer"] != metas["ar"]["tokenizer"]:
            raise TTSLoadError(f"{clvp_ckpt} and {ar_ckpt} were trained with different text tokenizers")
        d = metas["diffusion"]
        if models["diffusion"].text_vocab and d.get("tokenizer") != metas["ar"]["tokenizer"]:
            raise TTSLoadError(f"{diffusion_ckpt} reads the text with a different tokenizer from {ar_ckpt}'s")
        conditioning = "ar-latents" if d["stage"] == "diffusion-ar-latents" else "codes"
        if conditioning == "ar-latents" and d["config"]["cond_dim"] != models["ar"].dims.d_model:
            raise TTSLoadError(f"{diffusion_ckpt} was fine-tuned on {d['config']['cond_dim']}-dim AR latents; this AR "
                               f"model's are {models['ar'].dims.d_model}")
        meta = {"prediction": d["prediction"], "schedule_steps": d["schedule_steps"], "conditioning": conditioning}
        return cls(models["ar"], models["clvp"], models["diffusion"], meta, codec,
                   BPETokenizer.from_json(metas["ar"]["tokenizer"]), name=name, **kw)

    def export(self, folder: str | os.PathLike, dtype: torch.dtype = torch.float32, card: dict | None = None) -> Path:
        """Write ``config.json``, ``ar/clvp/diffusion.safetensors``, ``tokenizer.json`` and the codec in
        ``codec/``: one self-contained folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        # the codec is written in float32 whatever ``dtype`` is: its fingerprint (the tokens the models learned)
        # depends on its exact weights, and float32 holds them exactly however they were stored
        self.codec.export(folder / "codec", card={"source": "bundled with a Tortoise model"})
        self.tokenizer.save(folder / "tokenizer.json")
        extra_meta, extra_parts = self._export_decoder(folder, dtype)
        meta = {"family": self.family, "name": self.name, "ar": self.ar.dims.to_dict(), "clvp": self.clvp.dims.to_dict(),
                **extra_meta, "codec": self.codec.info.to_dict(),
                "max_voice_seconds": self.max_voice_seconds, "min_voice_seconds": self.min_voice_seconds, **(card or {})}
        return save_export(folder, {"ar": self.ar, "clvp": self.clvp, **extra_parts}, meta, dtype)

    def _export_decoder(self, folder: Path, dtype: torch.dtype) -> tuple[dict, dict]:
        """What :meth:`export` writes of the decoding side: (its ``config.json`` entries, the parts to save)."""
        return {"diffusion": {"config": self.diffusion.config, **self.diffusion_meta}}, {"diffusion": self.diffusion}

    @staticmethod
    def _load_front(folder: Path, meta: dict):
        """(codec, tokenizer, AR, CLVP) of an exported folder: what every Tortoise export has."""
        from ..text.bpe import BPETokenizer

        codec = load_bundled_codec(folder, meta)
        try:
            tokenizer = BPETokenizer.load(folder / "tokenizer.json")
        except (FileNotFoundError, ValueError) as e:
            raise TTSLoadError(str(e)) from None
        ar = load_part(folder, "ar", TortoiseAR(TortoiseDims.from_dict(meta["ar"])))
        clvp = load_part(folder, "clvp", CLVP(TortoiseDims.from_dict(meta["clvp"])))
        return codec, tokenizer, ar, clvp

    @classmethod
    def load(cls, path: str | os.PathLike, device="cpu", asr=None, meta: dict | None = None) -> "TortoiseTTS":
        """Load an exported folder (``asr`` is accepted for the common ``TTS.load`` signature; Tortoise needs none)."""
        folder = Path(path)
        meta = meta if meta is not None else read_config(folder)
        codec, tokenizer, ar, clvp = cls._load_front(folder, meta)
        d = dict(meta["diffusion"])
        diffusion = load_part(folder, "diffusion", DiffusionDecoder(**d.pop("config")))
        tts = cls(ar, clvp, diffusion, d, codec, tokenizer, name=meta.get("name", folder.name),
                  max_voice_seconds=meta.get("max_voice_seconds", 10.0), min_voice_seconds=meta.get("min_voice_seconds", 1.0))
        return tts.to(device)

    # ------------------------------------------------------------------ inputs
    def prepare_voice(self, voice, sample_rate: int | None = None, notices: list[str] | None = None) -> list[torch.Tensor]:
        """Reference clips → codes ``[Q, T]`` per clip. ``voice``: one clip or a list of clips, each an audio
        path (any rate, mono or stereo), a waveform (``sample_rate`` needed) or CodecTokens of this codec."""
        notices = notices if notices is not None else []
        clips = list(voice) if isinstance(voice, (list, tuple)) else ([] if voice is None else [voice])
        if not clips:
            raise PromptError("Tortoise needs at least one reference clip of the voice to speak in")
        sr = self.sample_rate
        out = []
        for i, clip in enumerate(clips):
            try:
                wav, tokens = load_voice_clip(clip, self.codec, sample_rate, self.min_voice_seconds)
            except PromptError as e:
                raise PromptError(f"reference clip {i + 1} ({clip if isinstance(clip, (str, os.PathLike)) else type(clip).__name__}): {e}") from None
            if wav.shape[-1] > self.max_voice_seconds * sr:
                notices.append(f"reference clip {i + 1} ({wav.shape[-1] / sr:.1f} s) was trimmed to {self.max_voice_seconds:g} s")
                wav, tokens = wav[: int(self.max_voice_seconds * sr)], None
            out.append(self.encode_voice(wav, tokens))
        return out

    def encode_voice(self, wav: torch.Tensor, tokens=None) -> torch.Tensor:
        """One reference clip (a waveform at the codec's rate, and its tokens if it came as tokens) → what
        :meth:`voice_latents` reads: its codes ``[Q, T]``."""
        if tokens is None:
            tokens = self.codec.encode(wav, self.sample_rate)
        return tokens.codes[0, :, : int(tokens.lengths[0])].cpu()

    @torch.inference_mode()
    def voice_latents(self, clips: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(AR conditioning latent ``[d]``, the decoder's voice: the diffusion voice latent ``[voice_dim]``):
        means over the clips."""
        frames = torch.tensor([c.shape[1] for c in clips], device="cpu")
        codes = torch.zeros(len(clips), clips[0].shape[0], int(frames.max()), dtype=torch.long, device="cpu")
        for i, c in enumerate(clips):
            codes[i, :, : c.shape[1]] = c
        codes, frames = codes.to(self.device), frames.to(self.device)
        return self.ar.conditioning(codes, frames).mean(0), self.diffusion.voice_encoder(codes, frames).mean(0)

    def _sentences(self, text: str, language: str = "en") -> list[tuple[str, torch.Tensor]]:
        text = prepare_text(text, ["en"], self.max_chars, language)  # the policy both families share
        out = []
        for s in split_sentences(text):
            try:
                ids = text_ids(self.tokenizer, s, what=f"sentence {s!r}")
            except TextError:
                continue  # punctuation between sentences
            limit = min(self.ar.dims.max_text, self.clvp.dims.max_text)
            if len(ids) > limit:
                raise TextError(f"sentence {s[:60]!r}… is {len(ids)} text tokens; the model takes at most {limit}")
            out.append((s, torch.tensor(ids, device="cpu")))
        if not out:
            raise TextError(f"the text has nothing to pronounce: {text[:80]!r}")
        return out

    # ------------------------------------------------------------------ stages
    @torch.inference_mode()
    def rank(self, text: torch.Tensor, candidates: list[torch.Tensor]) -> torch.Tensor:
        """CLVP score of each candidate for ``text`` (empty candidates score −inf)."""
        scores = torch.full((len(candidates),), float("-inf"), device="cpu")
        live = [i for i, c in enumerate(candidates) if len(c) > 0]
        if live:
            t, tv = framed([text] * len(live), None, None)
            s, sv = framed([candidates[i] for i in live], None, None)
            dev = self.device
            scores[live] = self.clvp.score(t.to(dev), tv.to(dev), s.to(dev), sv.to(dev)).float().cpu()
        return scores

    @torch.inference_mode()
    def diffuse(self, cond: list[torch.Tensor], voice: torch.Tensor, steps: int, guidance: float,
                generator: torch.Generator | None = None, text: torch.Tensor | None = None,
                given: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Codec latents ``[latent_dim, T_i]`` for each conditioning sequence ``[T_i, cond_dim]`` (one batch;
        conditional and unconditional passes of guidance run as one batch too). ``text``: the sentence's BPE ids
        ``[L]``, for a decoder that reads the text; ``given``: each sequence's codes ``[T_i]`` (or ``[g, T_i]``),
        for a decoder that models the latent less its first codebooks (``given_codebooks``)."""
        dev, net = self.device, self.diffusion
        if net.text_vocab and text is None:
            raise ValueError("this Tortoise's diffusion decoder reads the text: pass the sentence's ids (text=)")
        if net.given_codebooks and given is None:
            raise ValueError("this Tortoise's diffusion decoder adds to its first codebooks: pass their codes (given=)")
        ids = text.to(dev)[None] if net.text_vocab else None
        n, T = len(cond), max(c.shape[0] for c in cond)
        c = torch.zeros(n, T, cond[0].shape[-1], device=dev)
        valid = torch.zeros(n, T, dtype=torch.bool, device=dev)
        for i, x in enumerate(cond):
            c[i, : x.shape[0]] = x.float()
            valid[i, : x.shape[0]] = True
        v = voice.float().expand(n, -1)

        def run(x, t, drop):  # x has n rows, or 2n when guidance batches both halves
            r = x.shape[0] // n
            return net(x, t, c.repeat(r, 1, 1), v.repeat(r, 1), valid=valid.repeat(r, 1), drop=drop,
                       text=None if ids is None else ids.expand(r * n, -1))

        model = guided(run, guidance, batched=True)
        x0 = self.process.sample(model, (n, T, net.out.out_features), steps, generator=generator, device=dev)
        z = net.denormalize(x0)
        if net.given_codebooks:
            g = torch.zeros(n, net.given_codebooks, T, dtype=torch.long, device=dev)
            for i, codes in enumerate(given):
                codes = codes.reshape(-1, codes.shape[-1]) if codes.dim() > 1 else codes[None]
                g[i, :, : codes.shape[-1]] = codes[: net.given_codebooks].to(dev)
            z = net.compose(self.codec.model, z, g)
        return [z[i, : x.shape[0]].T for i, x in enumerate(cond)]

    # ------------------------------------------------------------------ synthesis
    def synthesize(self, text: str, voice=None, sample_rate: int | None = None, preset: str = "fast",
                   candidates: int | None = None, diffusion_steps: int | None = None, guidance: float | None = None,
                   k: int = 1, rerank: bool = True, temperature: float = 0.8, top_k: int | None = None,
                   top_p: float | None = 0.8, seed: int | None = None, sentence_pause: float = 0.2,
                   language: str = "en", prompt=None, prompt_text=None, repetition_window: int = 0,
                   repetition_threshold: float = 0.1) -> Synthesis:
        """Speak ``text`` in the voice of the reference clip(s) ``voice`` (see :meth:`prepare_voice`).

        ``preset`` sets candidates / diffusion steps / guidance (:data:`PRESETS`); each can be overridden.
        ``k`` best candidates per sentence are decoded: the result's ``audio`` is the best, ``alternatives``
        the next ``k − 1`` in rank order. ``rerank=False`` picks candidates at
        random instead of by CLVP (to measure what reranking buys). ``prompt`` is accepted as an alias of
        ``voice`` (the VALL-E signature); ``prompt_text`` and ``language`` must be left unset / English.
        ``repetition_window`` > 0: repetition-aware sampling of the speech tokens (:class:`SamplingOptions`).
        """
        start = time.perf_counter()
        if prompt is not None:
            if voice is not None:
                raise PromptError("give the reference clips as voice= or prompt=, not both")
            voice = prompt
        p = resolve_preset(preset, candidates, diffusion_steps, guidance, k)
        notices: list[str] = []
        if prompt_text:
            notices.append("Tortoise takes no prompt transcript; it was ignored")
        sentences = self._sentences(text, language)
        clips = self.prepare_voice(voice, sample_rate, notices)
        options = SamplingOptions(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                                  repetition_window=repetition_window, repetition_threshold=repetition_threshold)
        gen = options.generator()
        pick_rng = random.Random(seed)
        timings = dict.fromkeys(self.stages, 0.0)
        stage = partial(stage_timer, timings, device=self.device)
        chosen_all: list[list[torch.Tensor]] = []
        latents_all: list[list[torch.Tensor]] = []
        with stage("ar"):
            voice_ar, voice_dec = self.voice_latents(clips)
        bar = Progress(len(sentences), "Tortoise", unit="sentences", enabled=len(sentences) > 1)
        for s, ids in sentences:
            with stage("ar"):
                cands = sample_candidates(self.ar, voice_ar, ids, p.candidates, self.max_speech(s, ids), options,
                                          **self.spelling(s))
            live = [i for i, c in enumerate(cands) if len(c) > 0]
            if not live:
                notices.append(f"every candidate for {s!r} ended at once; it is left out")
                bar.update(1)
                continue
            with stage("clvp"):
                if rerank:
                    order = self.rank(ids, cands).argsort(descending=True).tolist()[: min(k, len(live))]
                else:
                    order = pick_rng.sample(live, min(k, len(live)))
            chosen = [cands[i] for i in order]
            latents_all.append(self.decode_chosen(s, ids, chosen, voice_ar, voice_dec, p, gen, stage))
            chosen_all.append(chosen)
            bar.update(1)
        bar.close()
        with stage("codec"):
            kept = min((len(x) for x in latents_all), default=1)  # candidates decoded per sentence
            ranks = [self._join([lat[r] for lat in latents_all], sentence_pause) for r in range(kept)]
        for n in notices:
            log.info("%s", n)
        return Synthesis(audio=ranks[0], sample_rate=self.sample_rate, sentences=[s for s, _ in sentences],
                         codes=[c[0] for c in chosen_all], prompt_text=None, seconds=time.perf_counter() - start,
                         notices=notices, timings=timings, alternatives=ranks[1:])

    def spelling(self, sentence: str) -> dict:
        """Extra arguments of ``sample_candidates`` for a sentence (a units model's script of phones); none here."""
        return {}

    def max_speech(self, sentence: str, ids: torch.Tensor) -> int:
        """The AR's budget of speech tokens for a sentence of BPE ids ``ids``."""
        return int(max(2.0, self.seconds_per_token * len(ids)) * self.codec.frame_rate)

    def decode_chosen(self, sentence: str, ids: torch.Tensor, chosen: list[torch.Tensor], voice_ar: torch.Tensor,
                      voice_dec, p: Preset, gen: torch.Generator | None, stage) -> list[torch.Tensor]:
        """The codec latents ``[latent_dim, T_i]`` of the chosen candidates: the AR's latents of them condition the
        diffusion decoder (a stage-1 decoder reads the codes themselves). ``stage(name)`` times a stage."""
        with stage("ar"):
            if self.diffusion_meta.get("conditioning", "ar-latents") == "ar-latents":
                cond = ar_latents(self.ar, voice_ar, ids, chosen)
            else:  # a stage-1 decoder (to compare): the chosen codes themselves
                with torch.inference_mode():
                    cond = [self.diffusion.cond_from_codes(c.to(self.device)) for c in chosen]
        with stage("diffusion"):
            return self.diffuse(cond, voice_dec, p.diffusion_steps, p.guidance, gen, text=ids, given=chosen)

    def _join(self, latents: list[torch.Tensor], sentence_pause: float) -> torch.Tensor:
        """Decode one latent sequence per sentence (one codec batch) and join them with pauses."""
        pause = torch.zeros(int(sentence_pause * self.sample_rate), device="cpu")
        if not latents:
            return pause
        lengths = torch.tensor([z.shape[1] for z in latents], device="cpu")
        z = torch.zeros(len(latents), latents[0].shape[0], int(lengths.max()), device=self.device)
        for i, x in enumerate(latents):
            z[i, :, : x.shape[1]] = x
        pieces = []
        for wav, n in zip(self.codec.decode_latents(z, lengths), lengths.tolist()):
            pieces += [wav[: n * self.codec.hop_length], pause]
        return torch.cat(pieces[:-1])
