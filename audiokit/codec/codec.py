"""``audiokit.Codec``: the inference face of a trained codec.

``Codec.load(path)`` reads an exported codec folder (``config.json`` + ``model.safetensors``), a Lightning
training checkpoint (``.ckpt``), or an official DAC / EnCodec checkpoint (converted on the fly). Weight norm
is folded away, the model runs in inference mode, and long audio is processed in overlapping chunks so
memory stays bounded whatever the length.
"""
from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import torch

from ..audio import AudioError, resample
from ..fileio import atomic_path, read_json_file
from ..nn.layers import guard_reduced_precision
from ..tokens import CodecInfo, CodecTokens, TokenError, fingerprint
from .model import CodecModel

log = logging.getLogger("audiokit.codec")

EXPORT_FORMAT = "audiokit.codec"


class CodecLoadError(ValueError):
    """A codec file that cannot be loaded; the message names the file and why."""


class Codec:
    """A codec ready for inference: ``encode`` audio → :class:`CodecTokens`, ``decode`` tokens → audio.

    Args:
        model: a :class:`CodecModel` (its weight norm is folded away here).
        name: a label carried in :class:`CodecInfo`.
        chunk_seconds: audio longer than this is encoded/decoded in chunks of this length.
        context_seconds: context added on each side of a chunk (covers the receptive field, so chunked and
            whole-file results agree) and the length over which neighbouring decoded chunks cross-fade.
    """

    def __init__(self, model: CodecModel, name: str = "", chunk_seconds: float = 30.0, context_seconds: float = 1.0):
        model.eval()
        model.remove_weight_norm()
        self.model = model
        self.chunk_seconds, self.context_seconds = chunk_seconds, context_seconds
        state = {k: v for k, v in model.state_dict().items()}
        self.info = CodecInfo(sample_rate=model.sample_rate, frame_rate=model.frame_rate, codebook_size=model.codebook_size,
                              n_codebooks=model.n_codebooks, fingerprint=fingerprint(state, model.config), name=name)

    # ------------------------------------------------------------------ properties
    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.model.frame_rate

    @property
    def hop_length(self) -> int:
        return self.model.hop_length

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device=None, dtype: torch.dtype | None = None) -> "Codec":
        """Move to ``device``; ``dtype`` (``torch.bfloat16``/``torch.float16``) runs the encoder and decoder in that
        precision (autocast; the nearest-code search stays float32, so codes can differ from float32's on
        near-ties); ``torch.float32`` returns to full precision. Each convolution is checked once against float32
        (:func:`audiokit.nn.layers.guard_reduced_precision`): one whose reduced-precision kernel is wrong on this
        machine stays float32, with a warning."""
        if device is not None:
            self.model.to(device)
        if dtype is not None:
            if dtype not in (torch.float32, torch.bfloat16, torch.float16):
                raise ValueError(f"dtype must be float32, bfloat16 or float16, got {dtype}")
            self.model.compute_dtype = None if dtype == torch.float32 else dtype
            if self.model.compute_dtype is not None:
                n = guard_reduced_precision(self.model, dtype)
                if n:
                    log.warning("%d convolution(s) of this codec compute wrong results in %s on this machine's kernels: "
                                "they run in float32", n, str(dtype).replace("torch.", ""))
        return self

    def n_q_for(self, bandwidth: float | None = None, n_q: int | None = None) -> int:
        if n_q is not None and bandwidth is not None:
            raise ValueError("give bandwidth or n_q, not both")
        if n_q is not None:
            if not 1 <= n_q <= self.model.n_codebooks:
                raise ValueError(f"n_q must lie in [1, {self.model.n_codebooks}], got {n_q}")
            return n_q
        if bandwidth is not None:
            if bandwidth <= 0:
                raise ValueError(f"bandwidth must be positive (kbps), got {bandwidth}")
            return self.model.n_q_for_bandwidth(bandwidth)
        return self.model.n_codebooks

    def bandwidths(self) -> list[float]:
        return self.model.bandwidths()

    # ------------------------------------------------------------------ input
    def _prepare(self, wav, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Any waveform(s) → ``[B, 1, T]`` float32 at the codec's rate, and sample lengths ``[B]``."""
        if isinstance(wav, np.ndarray):
            wav = torch.from_numpy(wav)
        if isinstance(wav, (list, tuple)):
            items = [self._prepare(w, sample_rate)[0][0, 0] for w in wav]
            lengths = torch.tensor([w.shape[-1] for w in items], device="cpu")
            batch = torch.zeros(len(items), 1, int(lengths.max()), device="cpu")
            for i, w in enumerate(items):
                batch[i, 0, : w.shape[-1]] = w
            return batch, lengths
        if not isinstance(wav, torch.Tensor):
            raise AudioError(f"audio must be a tensor, array or list of them, got {type(wav).__name__}")
        if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise AudioError(f"sample_rate must be a positive integer, got {sample_rate!r}")
        wav = wav.detach().to(torch.float32).cpu()
        if wav.dim() == 1:
            wav = wav[None, None]
        elif wav.dim() == 2:  # [C, T]: one item, channels downmixed
            if wav.shape[0] > 1:
                log.warning("%d-channel audio downmixed to mono for the codec", wav.shape[0])
            wav = wav.mean(0, keepdim=True)[None]
        elif wav.dim() == 3:
            if wav.shape[1] > 1:
                log.warning("%d-channel audio downmixed to mono for the codec", wav.shape[1])
                wav = wav.mean(1, keepdim=True)
        else:
            raise AudioError(f"audio must be [T], [C, T] or [B, C, T], got shape {tuple(wav.shape)}")
        if wav.shape[-1] == 0:
            raise AudioError("audio is empty (0 samples)")
        if not torch.isfinite(wav).all():
            raise AudioError(f"audio holds {int((~torch.isfinite(wav)).sum())} NaN or infinite samples")
        if sample_rate != self.sample_rate:
            log.warning("audio at %d Hz resampled to the codec's %d Hz", sample_rate, self.sample_rate)
            wav = resample(wav, int(sample_rate), self.sample_rate)
        peak = float(wav.abs().max())
        if peak > 1.0:
            log.warning("audio peaks at %.2f (beyond full scale); clipped to [-1, 1]", peak)
            wav = wav.clamp(-1.0, 1.0)
        return wav, torch.full((wav.shape[0],), wav.shape[-1], dtype=torch.int64, device="cpu")

    # ------------------------------------------------------------------ encode / decode
    @torch.inference_mode()
    def encode(self, wav, sample_rate: int, bandwidth: float | None = None, n_q: int | None = None) -> CodecTokens:
        """Audio → tokens.

        Args:
            wav: ``[T]``, ``[C, T]`` (downmixed), ``[B, C, T]``, or a list of 1-D waveforms of any lengths.
            sample_rate: rate of ``wav``; other rates than the codec's are resampled (with a notice).
            bandwidth: target kbps (the largest number of codebooks that fits), or ``n_q`` codebooks directly.
        """
        n_q = self.n_q_for(bandwidth, n_q)
        audio, lengths = self._prepare(wav, sample_rate)
        hop = self.hop_length
        frames = -(-lengths // hop)
        codes = self._encode_chunked(audio.to(self.device), n_q)
        total = -(-audio.shape[-1] // hop)
        codes = codes[..., :total]
        codes = codes * (torch.arange(codes.shape[-1], device=codes.device)[None, None] < frames.to(codes.device)[:, None, None])
        return CodecTokens(codes.cpu(), self.info, frames)

    def _encode_chunked(self, audio: torch.Tensor, n_q: int) -> torch.Tensor:
        hop = self.hop_length
        chunk = max(1, int(self.chunk_seconds * self.frame_rate))
        ctx = int(math.ceil(self.context_seconds * self.frame_rate))
        n_frames = -(-audio.shape[-1] // hop)
        if n_frames <= chunk + 2 * ctx:
            return self.model.encode(audio, n_q)
        parts = []
        with self._progress(n_frames, chunk, "encode") as bar:
            for a, b in _chunks(n_frames, chunk, ctx):
                s, e = max(0, a - ctx), min(n_frames, b + ctx)
                codes = self.model.encode(audio[..., s * hop : e * hop], n_q)
                parts.append(codes[..., a - s : a - s + (b - a)])
                bar.update(1, seconds=(b - a) / self.frame_rate)
        return torch.cat(parts, dim=-1)

    def _progress(self, n_frames: int, chunk: int, what: str):
        """Progress over the chunks of audio longer than a minute (:mod:`audiokit.progress`); silent otherwise."""
        from ..progress import Progress

        n_chunks = len(_chunks(n_frames, chunk, int(math.ceil(self.context_seconds * self.frame_rate))))
        return Progress(n_chunks, what, unit="chunks", enabled=n_frames / self.frame_rate > 60)

    @torch.inference_mode()
    def embed(self, tokens: CodecTokens) -> torch.Tensor:
        """Tokens → the continuous quantized latents the decoder reads, ``[B, latent_dim, T]``."""
        self._check(tokens)
        return self.model.embed(tokens.codes.to(self.device))

    @torch.inference_mode()
    def embed_expected(self, tokens: CodecTokens, probs: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, latent_dim, T]`` for ``tokens``' codebooks followed by expected ones: ``probs``
        ``[B, Q2, T, K]`` are a model's probabilities for the next ``Q2`` codebooks (a VALL-E NAR's); see
        :meth:`~audiokit.codec.quantizer.ResidualVectorQuantizer.decode_expected`. Decode with
        :meth:`decode_latents`."""
        self._check(tokens)
        if probs.shape[0] != tokens.codes.shape[0] or probs.shape[2] != tokens.codes.shape[2]:
            raise ValueError(f"probabilities {tuple(probs.shape)} do not match tokens {tuple(tokens.codes.shape)}")
        return self.model.quantizer.decode_expected(tokens.codes.to(self.device), probs.to(self.device))

    @torch.inference_mode()
    def decode(self, tokens: CodecTokens) -> torch.Tensor:
        """Tokens → audio ``[B, T]`` at ``sample_rate`` (``T = frames × hop``; samples past an item's length are 0)."""
        self._check(tokens)
        return self._masked(self._decode_chunked(tokens.codes.to(self.device), self.model.decode)[:, 0], tokens.lengths)

    @torch.inference_mode()
    def decode_latents(self, latents: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Continuous latents ``[B, latent_dim, T]`` (what :meth:`embed` returns, or a model's estimate of it, as
        Tortoise's diffusion decoder makes) → audio ``[B, T · hop]``; ``lengths`` frames per item (default all)."""
        if latents.dim() != 3 or latents.shape[1] != self.model.latent_dim:
            raise ValueError(f"expected latents [B, {self.model.latent_dim}, T] for this codec, got {tuple(latents.shape)}")
        lengths = torch.full((latents.shape[0],), latents.shape[-1], device="cpu") if lengths is None else torch.as_tensor(lengths, device="cpu")
        z = latents.to(self.device, next(self.model.parameters()).dtype)
        return self._masked(self._decode_chunked(z, self.model.decode_latents)[:, 0], lengths)

    def _masked(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = torch.arange(audio.shape[-1], device=audio.device)[None] < (lengths.to(audio.device) * self.hop_length)[:, None]
        return audio.mul_(mask).cpu()  # in place: long outputs are not copied again

    def decode_list(self, tokens: CodecTokens) -> list[torch.Tensor]:
        """Tokens → one 1-D waveform per item, each trimmed to its length."""
        audio = self.decode(tokens)
        return [audio[i, : int(n) * self.hop_length] for i, n in enumerate(tokens.lengths)]

    def _decode_chunked(self, codes: torch.Tensor, decode) -> torch.Tensor:
        """``decode`` (codes or latents ``[B, C, F]`` → audio) over chunks of frames, cross-faded."""
        hop = self.hop_length
        n_frames = codes.shape[-1]
        chunk = max(1, int(self.chunk_seconds * self.frame_rate))
        ctx = int(math.ceil(self.context_seconds * self.frame_rate))
        if n_frames <= chunk + 2 * ctx:
            return decode(codes)
        fade = max(1, ctx // 2) * hop  # cross-fade length in samples, inside the context
        out = torch.zeros(codes.shape[0], 1, n_frames * hop, device=codes.device)
        weight = torch.zeros(n_frames * hop, device=codes.device)
        bar = self._progress(n_frames, chunk, "decode")
        for a, b in _chunks(n_frames, chunk, ctx):
            s, e = max(0, a - ctx), min(n_frames, b + ctx)
            y = decode(codes[..., s:e])
            bar.update(1, seconds=(b - a) / self.frame_rate)
            # keep [a·hop − fade/2, b·hop + fade/2) with linear ramps of length `fade` at inner seams
            lo = a * hop - (fade // 2 if a > 0 else 0)
            hi = b * hop + (fade - fade // 2 if b < n_frames else 0)
            piece = y[..., lo - s * hop : hi - s * hop]
            w = torch.ones(hi - lo, device=codes.device)
            if a > 0:
                w[:fade] = torch.linspace(0, 1, fade + 2, device=codes.device)[1:-1]
            if b < n_frames:
                w[-fade:] = torch.linspace(1, 0, fade + 2, device=codes.device)[1:-1]
            out[..., lo:hi] += piece * w
            weight[lo:hi] += w
        bar.close()
        return out.div_(weight.clamp_(min=1e-8))

    def _check(self, tokens: CodecTokens) -> None:
        if not isinstance(tokens, CodecTokens):
            raise TokenError(f"expected CodecTokens, got {type(tokens).__name__}")
        self.info.check_same(tokens.codec)

    # ------------------------------------------------------------------ files
    def export(self, folder: str | os.PathLike, dtype: torch.dtype = torch.float32, card: dict | None = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (weight norm folded, ``dtype`` weights)."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().to(dtype if v.is_floating_point() else v.dtype).contiguous()
                 for k, v in self.model.state_dict().items()}
        with atomic_path(folder / "model.safetensors") as tmp:
            save_file(state, str(tmp))
        reloaded = Codec.load(folder / "model.safetensors", name=self.info.name, _config={"config": self.model.config})
        meta = {"format": EXPORT_FORMAT, "version": 1, "family": "codec", "name": self.info.name,
                "config": self.model.config, "codec": reloaded.info.to_dict(), "dtype": str(dtype).replace("torch.", ""),
                **(card or {})}
        with atomic_path(folder / "config.json") as tmp:
            tmp.write_text(json.dumps(meta, indent=1))
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike, device="cpu", name: str | None = None, _config: dict | None = None, **kw) -> "Codec":
        """Load an exported folder, a ``model.safetensors`` beside its ``config.json``, a Lightning ``.ckpt``,
        or an official DAC ``.pth`` / EnCodec ``.th`` checkpoint."""
        path = Path(path)
        if not path.exists():  # the name of a bundled codec ("codec")
            from ..pretrained import resolve

            try:
                path = resolve(path)
            except FileNotFoundError:
                raise CodecLoadError(f"{path}: no such codec file or folder") from None
        if path.is_dir():
            path = path / "model.safetensors"
            if not path.exists():
                raise CodecLoadError(f"{path.parent}: not an exported codec (no model.safetensors)")
        if path.suffix == ".safetensors":
            codec = cls._load_export(path, _config, name, **kw)
            from ..pretrained import remember_codec

            remember_codec(path.parent, codec.info.fingerprint, codec.info.name)  # its .akc files decode without --codec
        elif path.suffix == ".ckpt":
            codec = cls._load_lightning(path, name, **kw)
        elif path.suffix in (".pth", ".th", ".pt"):
            from .convert import ConversionError, convert_dac, convert_encodec

            try:
                raw = torch.load(str(path), map_location="cpu", weights_only=True)
            except Exception as e:
                raise CodecLoadError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
            is_dac = isinstance(raw, dict) and "metadata" in raw and "state_dict" in raw
            try:
                model = convert_dac(path) if is_dac else convert_encodec(path)
            except ConversionError as e:
                raise CodecLoadError(str(e)) from None
            codec = cls(model, name=name or ("dac" if is_dac else "encodec"), **kw)
        else:
            raise CodecLoadError(f"{path}: unknown codec file type {path.suffix!r} (.safetensors, .ckpt, .pth, .th)")
        return codec.to(device)

    @classmethod
    def _load_export(cls, path: Path, config: dict | None, name: str | None, **kw) -> "Codec":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        if config is None:
            cfg_path = path.parent / "config.json"
            if not cfg_path.exists():
                raise CodecLoadError(f"{path}: no config.json beside it")
            config = read_json_file(cfg_path, CodecLoadError, EXPORT_FORMAT, "codec export")
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError) as e:
            raise CodecLoadError(f"{path}: corrupt or truncated weights ({e})") from None
        model = CodecModel(**config["config"])
        model.remove_weight_norm()
        missing, unexpected = model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()},
                                                    strict=False)
        missing = [k for k in missing if not k.endswith(".usage")]
        if missing or unexpected:
            raise CodecLoadError(f"{path}: weights do not match the config (missing {missing[:3]}, unexpected {unexpected[:3]})")
        return cls(model, name=name if name is not None else config.get("name", ""), **kw)

    @classmethod
    def _load_lightning(cls, path: Path, name: str | None, **kw) -> "Codec":
        from ..fileio import load_torch_file

        ckpt = load_torch_file(path, CodecLoadError)
        hp = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
        if "generator" not in hp:
            raise CodecLoadError(f"{path}: not a codec training checkpoint (no generator hyper-parameters)")
        model = CodecModel(**hp["generator"])
        state = {k[len("generator."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("generator.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith(".usage")]
        if missing or unexpected:
            raise CodecLoadError(f"{path}: generator weights do not match its hyper-parameters "
                                 f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        return cls(model, name=name if name is not None else path.stem, **kw)


def _chunks(n_frames: int, chunk: int, ctx: int) -> list[tuple[int, int]]:
    """Frame ranges ``[a, b)`` of ``chunk`` frames covering ``n_frames``; a last piece shorter than ``ctx`` joins the
    one before it, so every seam has a full context on both sides (a cross-fade reaching past the end of a 1-frame
    tail would otherwise take samples the decoder never made)."""
    bounds = [(a, min(a + chunk, n_frames)) for a in range(0, n_frames, chunk)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < ctx:
        bounds[-2:] = [(bounds[-2][0], n_frames)]
    return bounds
