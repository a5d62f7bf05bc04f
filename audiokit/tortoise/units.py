"""Tortoise on speech units: text → candidate runs of units (the AR) → CLVP's pick → their lengths → the codec's
latent → audio.

The same chain as :class:`~audiokit.valle.units.UnitsValleTTS` (why units: that module's docstring), with
Tortoise's front: its AR reads the text's BPE ids and a voice latent (the conditioning encoder over the reference
clips' runs, units and lengths), samples N candidate unit sequences and CLVP keeps the best. In place of the
diffusion decoder, the lengths NAR gives each run its length in frames and the
:class:`~audiokit.valle.model.UnitsDecoder` regresses the codec's latent from the frames' units in the voice of
the first clip. Each model is trained by an existing stage on the stores ``audiokit units`` writes:
``tortoise-ar`` and ``clvp`` on the runs store, ``valle-nar`` (the lengths) on the runs store, ``units-decoder``
on the stacked store (recipes/digits/run.sh, stages 21-26).
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import torch

from ..codec.units import deduplicate, runs_info
from ..tokens import CodecInfo
from ..tts import TTSLoadError, load_part, load_state, read_config
from ..valle.model import UnitsDecoder, UnitsDecoderDims, ValleDims, ValleNAR
from ..valle.units import (UNITS_FORMAT_VERSION, _check_alignment, _check_rule, add_decoder_part, check_runs_model,
                           check_units_decoder, load_runs_checkpoint, load_units_decoder, load_units_folder,
                           prompt_frames, speak_runs, text_script, units_part)
from .lightning import read_checkpoint
from .model import CLVP, TortoiseAR, TortoiseDims
from .tts import Preset, TortoiseTTS


@lru_cache(maxsize=1024)
def _phoneme_ids(sentence: str) -> tuple[int, ...]:
    from ..valle.data import phoneme_ids, phonemize

    return tuple(phoneme_ids(phonemize([sentence], "en")[0], what=f"sentence {sentence!r}"))


class UnitsTortoiseTTS(TortoiseTTS):
    """Tortoise over speech units (module docstring). Load with :meth:`load` (``TTS.load`` picks this class for an
    exported folder with ``units``) or :meth:`from_checkpoints`.

    Args (beyond :class:`TortoiseTTS`'s; there is no diffusion decoder): ``nar`` the lengths NAR, ``decoder`` the
    :class:`~audiokit.valle.model.UnitsDecoder`, ``units`` the :class:`~audiokit.codec.units.UnitTokenizer`;
    ``voice_runs``: the runs of each clip the AR's voice encoder reads (its training clip length);
    ``prompt_runs``: the lengths NAR's prompt, in runs; ``lengths_rule``: :func:`~audiokit.valle.units.lengths_from`;
    ``max_runs_per_phoneme``: the AR's budget (runs a phoneme, + 10); ``alignment``: with phone units,
    ``"monotonic"`` has every candidate spell the text's phones in order, each with its own pauses, ``"free"`` lets
    the AR choose every unit (:func:`~audiokit.valle.units.text_script`).
    """

    stages = ("ar", "clvp", "decoder", "codec")  # "decoder": the lengths NAR and the units decoder

    def __init__(self, ar: TortoiseAR, clvp: CLVP, nar: ValleNAR, decoder: UnitsDecoder, codec, tokenizer, units,
                 name: str = "", voice_runs: int = 42, prompt_runs: int = 42, lengths_rule: str = "mean",
                 max_runs_per_phoneme: float = 3.0, alignment: str = "monotonic", **kw):
        self.nar, self.decoder, self.units = nar.eval(), decoder.eval(), units
        self.alignment = _check_alignment(alignment)
        self.voice_runs, self.prompt_runs = int(voice_runs), int(prompt_runs)
        self.lengths_rule, self.max_runs_per_phoneme = _check_rule(lengths_rule), float(max_runs_per_phoneme)
        super().__init__(ar, clvp, None, {}, codec, tokenizer, name=name, **kw)

    def _check_models(self) -> None:
        runs = runs_info(self.units.info)
        self._check_speech_models(runs.codebook_size, runs.describe())
        check_runs_model("Tortoise AR (its voice encoder)", self.ar.dims, 2, self.units)
        check_runs_model("lengths NAR", self.nar.dims, 2, self.units)
        check_units_decoder(self.decoder, self.units, self.codec)

    @property
    def n_codebooks(self) -> int:
        """The codec codebooks of a voice clip the decoder reads."""
        return self.decoder.dims.n_codebooks

    def to(self, device) -> "UnitsTortoiseTTS":
        super().to(device)
        for m in (self.nar, self.decoder, self.units):
            m.to(device)
        return self

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_checkpoints(cls, ar_ckpt, clvp_ckpt, nar_ckpt, decoder_ckpt, codec, units, name: str = "",
                         **kw) -> "UnitsTortoiseTTS":
        """From the training checkpoints of the Tortoise AR and CLVP on the units' runs, the lengths NAR and the
        units decoder, the codec (path or :class:`~audiokit.Codec`) and the units folder."""
        from ..codec.codec import Codec
        from ..text.bpe import BPETokenizer

        codec = Codec.load(codec) if isinstance(codec, (str, os.PathLike)) else codec
        units = load_units_folder(units)
        runs = runs_info(units.info)
        models, metas = [], []
        for path, stage, model_cls in ((ar_ckpt, "ar", TortoiseAR), (clvp_ckpt, "clvp", CLVP)):
            meta, state = read_checkpoint(path, (stage,), TTSLoadError)
            if meta.get("codec"):
                trained_on = CodecInfo.from_dict(meta["codec"])
                runs.check_same(trained_on, what=f"{Path(path).name} (trained on {trained_on.describe()})")
            models.append(load_state(model_cls(TortoiseDims.from_dict(meta["dims"])), state, str(path)))
            metas.append(meta)
        if not metas[0].get("tokenizer"):
            raise TTSLoadError(f"{ar_ckpt}: the checkpoint carries no tokenizer")
        if metas[1].get("tokenizer") and metas[1]["tokenizer"] != metas[0]["tokenizer"]:
            raise TTSLoadError(f"{clvp_ckpt} and {ar_ckpt} were trained with different text tokenizers")
        nar = load_runs_checkpoint(nar_ckpt, "nar", units)
        decoder = load_units_decoder(decoder_ckpt, units, codec)
        kw.setdefault("voice_runs", prompt_frames(Path(ar_ckpt), runs.frame_rate, key="voice_seconds"))
        kw.setdefault("prompt_runs", prompt_frames(Path(nar_ckpt), runs.frame_rate))
        return cls(models[0], models[1], nar, decoder, codec, BPETokenizer.from_json(metas[0]["tokenizer"]), units,
                   name=name, **kw)

    def _export_decoder(self, folder: Path, dtype: torch.dtype) -> tuple[dict, dict]:
        """``units/``, ``decoder.safetensors`` (:func:`~audiokit.valle.units.add_decoder_part`) and the lengths
        NAR in place of the diffusion decoder."""
        self.units.save(folder / "units")
        add_decoder_part(folder, "decoder", self.decoder, dtype)
        meta = {"nar": self.nar.dims.to_dict(), "decoder": self.decoder.dims.to_dict(),
                "units": {"version": UNITS_FORMAT_VERSION, "info": self.units.info.to_dict(), "voice_runs": self.voice_runs,
                          "prompt_runs": self.prompt_runs, "lengths_rule": self.lengths_rule,
                          "max_runs_per_phoneme": self.max_runs_per_phoneme, "alignment": self.alignment}}
        return meta, {"nar": self.nar}

    @classmethod
    def load(cls, path: str | os.PathLike, device="cpu", asr=None, meta: dict | None = None) -> "UnitsTortoiseTTS":
        """Load an exported folder (``asr`` is accepted for the common ``TTS.load`` signature)."""
        folder = Path(path)
        meta = meta if meta is not None else read_config(folder)
        codec, tokenizer, ar, clvp = cls._load_front(folder, meta)
        units, u = load_units_folder(units_part(folder), meta), meta["units"]
        nar = load_part(folder, "nar", ValleNAR(ValleDims.from_dict(meta["nar"])))
        decoder = load_part(folder, "decoder", UnitsDecoder(UnitsDecoderDims.from_dict(meta["decoder"])))
        tts = cls(ar, clvp, nar, decoder, codec, tokenizer, units, name=meta.get("name", folder.name),
                  voice_runs=u.get("voice_runs", 42), prompt_runs=u.get("prompt_runs", 42),
                  lengths_rule=u.get("lengths_rule", "mean"), max_runs_per_phoneme=u.get("max_runs_per_phoneme", 3.0),
                  alignment=u.get("alignment", "monotonic"),
                  max_voice_seconds=meta.get("max_voice_seconds", 10.0), min_voice_seconds=meta.get("min_voice_seconds", 1.0))
        return tts.to(device)

    # ------------------------------------------------------------------ voice
    def encode_voice(self, wav: torch.Tensor, tokens=None) -> torch.Tensor:
        """One reference clip → its units over its codec codes, ``[1 + Q, T]`` (the stacked grid)."""
        sr = self.sample_rate
        codes = self.codec.encode(wav, sr, n_q=self.n_codebooks).codes[0]
        u = self.units.encode(wav.cpu(), sr).codes[0].to(codes.device)
        T = min(u.shape[-1], codes.shape[-1])
        return torch.cat([u[:, :T], codes[:, :T]]).cpu()

    def _runs(self, clip: torch.Tensor, keep: int) -> torch.Tensor:
        v, n = deduplicate(clip[0], self.units.k - 1)
        return torch.stack([v, n])[:, :keep]

    @torch.inference_mode()
    def voice_latents(self, clips: list[torch.Tensor]) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """(the AR's conditioning latent ``[d]``: the mean over the clips of its voice encoder on their first
        :attr:`voice_runs` runs, (the lengths NAR's prompt: the first clip's runs ``[2, P]``, the decoder's voice:
        its codes ``[Q, T]``))."""
        runs = [self._runs(c, self.voice_runs) for c in clips]
        frames = torch.tensor([r.shape[1] for r in runs], device="cpu")
        grid = torch.zeros(len(runs), 2, int(frames.max()), dtype=torch.long, device="cpu")
        for i, r in enumerate(runs):
            grid[i, :, : r.shape[1]] = r
        voice_ar = self.ar.conditioning(grid.to(self.device), frames.to(self.device)).mean(0)
        return voice_ar, (self._runs(clips[0], self.prompt_runs), clips[0][1:])

    # ------------------------------------------------------------------ synthesis
    def max_speech(self, sentence: str, ids: torch.Tensor) -> int:
        """``max_runs_per_phoneme`` runs a phoneme + 10 (speech has about 1.5: see ``UnitsValleTTS.max_runs``)."""
        return int(self.max_runs_per_phoneme * (len(_phoneme_ids(sentence)) - 2)) + 10

    def spelling(self, sentence: str) -> dict:
        """``sample_candidates``' ``script``/``pause`` for a sentence: the phones it spells (phone units,
        monotonic alignment), or nothing."""
        from ..codec.phones import SILENCE

        script = text_script(self.units, self.alignment, _phoneme_ids(sentence))
        return {} if script is None else {"script": script, "pause": SILENCE}

    def decode_chosen(self, sentence: str, ids: torch.Tensor, chosen: list[torch.Tensor], voice_ar: torch.Tensor,
                      voice_dec, p: Preset, gen: torch.Generator | None, stage) -> list[torch.Tensor]:
        """The chosen candidates' runs → their lengths → the decoder's codec latents ``[latent_dim, T_i]``."""
        prompt, codes = voice_dec
        text = torch.tensor(_phoneme_ids(sentence), device="cpu")
        with stage("decoder"):  # the lengths NAR, then the units decoder
            return [z for _, z in speak_runs(self.nar, self.decoder, [text] * len(chosen), [prompt] * len(chosen),
                                             chosen, [codes] * len(chosen), self.lengths_rule)]
