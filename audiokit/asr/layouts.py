"""Whisper models in the layouts users hold them, read without their libraries: CTranslate2 folders (faster-whisper:
``model.bin`` + ``config.json`` + ``tokenizer.json``/``vocabulary.txt``) and Hugging Face transformers folders
(``config.json`` + ``model.safetensors`` + ``tokenizer.json``). Each becomes an :class:`ASRModel` with the official
``.pt``'s weight names, and a :class:`WhisperTokenizer` with the official token layout.

CTranslate2's ``model.bin`` (binary version 6, written by ``ctranslate2.specs.ModelSpec._serialize``), little-endian:
``u32 version``, ``string spec name``, ``u32 spec revision``, ``u32 n``, then ``n`` variables — ``string name``,
``u8 rank``, ``u32`` × rank dims, ``u8 dtype`` (0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16),
``u32 bytes``, the raw data — then ``u32 n`` aliases (``string alias``, ``string target``). A string is ``u16``
length (with its terminating NUL) and UTF-8 bytes. Quantized weights carry ``NAME_scale`` (int8: one float per
row, ``weight = q / scale``; int16: one scalar). Whisper's spec fuses the self-attention projections (``linear_0``
= query, key, value stacked) and the cross-attention key and value (``linear_1``); the key bias, which Whisper does
not have, is stored as zeros.
"""
from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path

import numpy as np
import torch

from .convert import CheckpointError, build_model
from .model import ASRModel, ModelDimensions
from .tokenizer import TokenizerError, WhisperTokenizer, _byte_alphabet

CT2_VERSION = 6
_CT2_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, None)  # 5: bfloat16, read through torch


# ---------------------------------------------------------------------------------------------- layout detection
def detect_layout(path: str | os.PathLike) -> str:
    """``"openai"`` (a ``.pt`` file), ``"ctranslate2"`` (a folder with ``model.bin``), ``"transformers"`` (a folder with
    ``model.safetensors`` or ``pytorch_model.bin`` and a Whisper ``config.json``) or ``"audiokit"`` (an exported
    folder); a :class:`CheckpointError` naming what was found otherwise."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix in (".pt", ".pth"):
            return "openai"
        raise CheckpointError(f"{path}: not a Whisper model (a .pt file, or a CTranslate2 or Hugging Face folder)")
    config = path / "config.json"
    if (path / "model.bin").exists():
        return "ctranslate2"
    if config.is_file():
        try:
            cfg = json.loads(config.read_text())
        except ValueError as e:
            raise CheckpointError(f"{config}: not valid JSON ({e})") from None
        if isinstance(cfg, dict) and cfg.get("format") == "audiokit.asr":
            return "audiokit"
        if (path / "model.safetensors").exists() or (path / "pytorch_model.bin").exists():
            if cfg.get("model_type") != "whisper":
                raise CheckpointError(f"{config}: a Hugging Face {cfg.get('model_type')!r} model, not Whisper")
            return "transformers"
    files = ", ".join(sorted(p.name for p in path.iterdir())[:8]) or "nothing"
    raise CheckpointError(f"{path}: not a Whisper model folder (CTranslate2: model.bin + config.json + tokenizer.json; "
                          f"Hugging Face: config.json + model.safetensors + tokenizer.json); it holds {files}")


# ---------------------------------------------------------------------------------------------- CTranslate2 model.bin
class _Reader:
    def __init__(self, path: Path):
        self.path = path
        self.data = path.read_bytes()
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise CheckpointError(f"{self.path}: truncated ({len(self.data)} bytes; a record at byte {self.pos} needs {n} more)")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        raw = self.take(self.u("H"))
        return raw[:-1].decode("utf-8") if raw.endswith(b"\0") else raw.decode("utf-8")


def read_ct2(path: str | os.PathLike) -> tuple[str, int, dict[str, torch.Tensor]]:
    """``(spec name, spec revision, variables)`` of a CTranslate2 ``model.bin``; aliases resolved, quantized
    weights dequantized to float32 (their ``*_scale`` entries consumed), other floats as stored."""
    r = _Reader(Path(path))
    version = r.u("I")
    if version != CT2_VERSION:
        raise CheckpointError(f"{path}: CTranslate2 binary version {version}; this reader knows version {CT2_VERSION} "
                              "(convert the model with a current ctranslate2)")
    name, revision = r.string(), r.u("I")
    raw: dict[str, torch.Tensor] = {}
    for _ in range(r.u("I")):
        var = r.string()
        shape = [r.u("I") for _ in range(r.u("B"))]
        dtype_id, nbytes = r.u("B"), r.u("I")
        if dtype_id >= len(_CT2_DTYPES):
            raise CheckpointError(f"{path}: variable {var!r} has an unknown dtype id {dtype_id}")
        data = r.take(nbytes)
        if dtype_id == 5:
            t = torch.frombuffer(bytearray(data), dtype=torch.bfloat16) if nbytes else torch.zeros(0, dtype=torch.bfloat16, device="cpu")
        else:
            t = torch.from_numpy(np.frombuffer(data, dtype=_CT2_DTYPES[dtype_id]).copy())
        if t.numel() != int(np.prod(shape)):
            raise CheckpointError(f"{path}: variable {var!r} holds {t.numel()} values for shape {shape}")
        raw[var] = t.reshape(shape)
    for _ in range(r.u("I")):
        alias, target = r.string(), r.string()
        if target not in raw:
            raise CheckpointError(f"{path}: alias {alias!r} names a missing variable {target!r}")
        raw[alias] = raw[target]
    if r.pos != len(r.data):
        raise CheckpointError(f"{path}: {len(r.data) - r.pos} bytes after the last record (damaged file?)")
    out = {}
    for var, t in raw.items():
        if var.endswith("_scale") and var[: -len("_scale")] in raw:
            continue
        scale = raw.get(var + "_scale")
        if t.dtype in (torch.int8, torch.int16) and scale is not None:
            s = scale.float()
            t = t.float() / (s.reshape(-1, *([1] * (t.dim() - 1))) if s.dim() == 1 else s)
        out[var] = t
    return name, revision, out


def write_ct2(path: str | os.PathLike, variables: dict[str, torch.Tensor], name: str = "WhisperSpec", revision: int = 3,
              aliases: dict[str, str] | None = None) -> None:
    """Write ``variables`` as a CTranslate2 ``model.bin`` (binary version 6), for faster-whisper and CTranslate2
    users and for the tests of :func:`read_ct2`. float32, float16, bfloat16, int8, int16 and int32 tensors."""
    codes = {torch.float32: 0, torch.int8: 1, torch.int16: 2, torch.int32: 3, torch.float16: 4, torch.bfloat16: 5}

    def string(s: str) -> bytes:
        b = s.encode("utf-8") + b"\0"
        return struct.pack("<H", len(b)) + b

    parts = [struct.pack("<I", CT2_VERSION), string(name), struct.pack("<I", revision), struct.pack("<I", len(variables))]
    for var, t in sorted(variables.items()):
        t = t.detach().cpu().contiguous()
        if t.dtype not in codes:
            raise ValueError(f"{var}: dtype {t.dtype} has no CTranslate2 code")
        data = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        parts += [string(var), struct.pack("<B", t.dim()), *(struct.pack("<I", d) for d in t.shape),
                  struct.pack("<B", codes[t.dtype]), struct.pack("<I", len(data)), data]
    aliases = aliases or {}
    parts.append(struct.pack("<I", len(aliases)))
    for alias, target in sorted(aliases.items()):
        parts += [string(alias), string(target)]
    Path(path).write_bytes(b"".join(parts))


# ---------------------------------------------------------------------------------------------- name mapping
_ATTN = ("query", "key", "value")


def _layers(names, prefix: str) -> int:
    found = {int(m.group(1)) for n in names if (m := re.match(re.escape(prefix) + r"(\d+)/", n))}
    return max(found) + 1 if found else 0


def _ct2_pairs(n_enc: int, n_dec: int) -> list[tuple[str, str, str | tuple[str, ...]]]:
    """``(kind, CTranslate2 scope, Whisper module or the modules fused there)`` for every weight group; one table
    read in both directions. kinds: ``norm`` (gamma/beta ↔ weight/bias), ``linear`` (weight/bias), ``fused``."""
    pairs = []
    for side, n in (("encoder", n_enc), ("decoder", n_dec)):
        for i in range(n):
            src, dst = f"{side}/layer_{i}", f"{side}.blocks.{i}"
            pairs += [("norm", f"{src}/self_attention/layer_norm", f"{dst}.attn_ln"),
                      ("fused", f"{src}/self_attention/linear_0", tuple(f"{dst}.attn.{n}" for n in _ATTN)),
                      ("linear", f"{src}/self_attention/linear_1", f"{dst}.attn.out")]
            if side == "decoder":
                pairs += [("norm", f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln"),
                          ("linear", f"{src}/attention/linear_0", f"{dst}.cross_attn.query"),
                          ("fused", f"{src}/attention/linear_1", (f"{dst}.cross_attn.key", f"{dst}.cross_attn.value")),
                          ("linear", f"{src}/attention/linear_2", f"{dst}.cross_attn.out")]
            pairs += [("norm", f"{src}/ffn/layer_norm", f"{dst}.mlp_ln"), ("linear", f"{src}/ffn/linear_0", f"{dst}.mlp.0"),
                      ("linear", f"{src}/ffn/linear_1", f"{dst}.mlp.2")]
    return pairs + [("linear", "encoder/conv1", "encoder.conv1"), ("linear", "encoder/conv2", "encoder.conv2"),
                    ("norm", "encoder/layer_norm", "encoder.ln_post"), ("norm", "decoder/layer_norm", "decoder.ln")]


_LEAVES = {"norm": (("gamma", "weight"), ("beta", "bias")), "linear": (("weight", "weight"), ("bias", "bias"))}


def ct2_to_whisper(variables: dict[str, torch.Tensor], where: str) -> tuple[ModelDimensions, dict[str, torch.Tensor]]:
    """CTranslate2's Whisper variables → the official checkpoint's dims and ``model_state_dict`` names."""
    v = variables
    need = ["encoder/conv1/weight", "encoder/position_encodings/encodings", "decoder/embeddings/weight",
            "decoder/position_encodings/encodings", "encoder/num_heads", "decoder/num_heads"]
    missing = [n for n in need if n not in v]
    if missing:
        raise CheckpointError(f"{where}: not a Whisper model.bin (missing {', '.join(missing)})")
    n_enc, n_dec = _layers(v, "encoder/layer_"), _layers(v, "decoder/layer_")
    d_audio, n_mels = v["encoder/conv1/weight"].shape[:2]
    dims = ModelDimensions(n_mels=int(n_mels), n_vocab=int(v["decoder/embeddings/weight"].shape[0]),
                           n_audio_ctx=int(v["encoder/position_encodings/encodings"].shape[0]), n_audio_state=int(d_audio),
                           n_audio_head=int(v["encoder/num_heads"]), n_audio_layer=n_enc,
                           n_text_ctx=int(v["decoder/position_encodings/encodings"].shape[0]),
                           n_text_state=int(v["decoder/embeddings/weight"].shape[1]),
                           n_text_head=int(v["decoder/num_heads"]), n_text_layer=n_dec)

    def get(name: str) -> torch.Tensor:
        if name not in v:
            raise CheckpointError(f"{where}: model.bin lacks {name!r}")
        return v[name]

    s: dict[str, torch.Tensor] = {}
    for kind, src, dst in _ct2_pairs(n_enc, n_dec):
        if kind == "fused":
            w, b = get(src + "/weight"), get(src + "/bias")
            for name, wi, bi in zip(dst, w.chunk(len(dst)), b.chunk(len(dst))):
                s[name + ".weight"] = wi
                if not name.endswith(".key"):  # Whisper's key projection has no bias (CTranslate2 stores zeros)
                    s[name + ".bias"] = bi
        else:
            for ct2_leaf, leaf in _LEAVES[kind]:
                s[f"{dst}.{leaf}"] = get(f"{src}/{ct2_leaf}")
    s["decoder.token_embedding.weight"] = get("decoder/embeddings/weight")
    s["decoder.positional_embedding"] = get("decoder/position_encodings/encodings")
    return dims, {k: t.float() for k, t in s.items()}


def whisper_to_ct2(model: ASRModel, dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    """The inverse of :func:`ct2_to_whisper` (weights in ``dtype``; float16 is what faster-whisper's converter
    writes), with the scalar attributes CTranslate2's Whisper spec needs; write the projection as an alias of the
    embedding."""
    s = {k: t.detach().cpu() for k, t in model.state_dict().items()}
    d = model.dims
    v: dict[str, torch.Tensor] = {}
    for kind, ct2, ours in _ct2_pairs(d.n_audio_layer, d.n_text_layer):
        if kind == "fused":
            v[ct2 + "/weight"] = torch.cat([s[n + ".weight"] for n in ours]).to(dtype)
            v[ct2 + "/bias"] = torch.cat([s[n + ".bias"] if not n.endswith(".key") else torch.zeros(s[n + ".weight"].shape[0], device="cpu")
                                          for n in ours]).to(dtype)
        else:
            for ct2_leaf, leaf in _LEAVES[kind]:
                v[f"{ct2}/{ct2_leaf}"] = s[f"{ours}.{leaf}"].to(dtype)
    v["encoder/position_encodings/encodings"] = s["encoder.positional_embedding"].to(dtype)
    v["decoder/position_encodings/encodings"] = s["decoder.positional_embedding"].to(dtype)
    v["decoder/embeddings/weight"] = s["decoder.token_embedding.weight"].to(dtype)
    v["encoder/num_heads"] = torch.tensor(d.n_audio_head, dtype=torch.int16, device="cpu")
    v["decoder/num_heads"] = torch.tensor(d.n_text_head, dtype=torch.int16, device="cpu")
    for side in ("encoder", "decoder"):
        v[f"{side}/activation"] = torch.tensor(3, dtype=torch.int8, device="cpu")  # GELU
        v[f"{side}/pre_norm"] = torch.tensor(1, dtype=torch.int8, device="cpu")
    return v


_HF_LAYER = {"self_attn_layer_norm": "attn_ln", "self_attn.q_proj": "attn.query", "self_attn.k_proj": "attn.key",
             "self_attn.v_proj": "attn.value", "self_attn.out_proj": "attn.out", "encoder_attn_layer_norm": "cross_attn_ln",
             "encoder_attn.q_proj": "cross_attn.query", "encoder_attn.k_proj": "cross_attn.key",
             "encoder_attn.v_proj": "cross_attn.value", "encoder_attn.out_proj": "cross_attn.out",
             "final_layer_norm": "mlp_ln", "fc1": "mlp.0", "fc2": "mlp.2"}
_HF_TOP = {"model.encoder.conv1": "encoder.conv1", "model.encoder.conv2": "encoder.conv2",
           "model.encoder.layer_norm": "encoder.ln_post", "model.decoder.layer_norm": "decoder.ln",
           "model.decoder.embed_tokens": "decoder.token_embedding", "model.decoder.embed_positions": "decoder.positional_embedding",
           "model.encoder.embed_positions": "encoder.positional_embedding"}


def hf_to_whisper(state: dict[str, torch.Tensor], config: dict, where: str) -> tuple[ModelDimensions, dict[str, torch.Tensor]]:
    """transformers' ``WhisperForConditionalGeneration`` weights and config → the official dims and names."""
    try:
        dims = ModelDimensions(n_mels=int(config["num_mel_bins"]), n_vocab=int(config["vocab_size"]),
                               n_audio_ctx=int(config["max_source_positions"]), n_audio_state=int(config["d_model"]),
                               n_audio_head=int(config["encoder_attention_heads"]), n_audio_layer=int(config["encoder_layers"]),
                               n_text_ctx=int(config["max_target_positions"]), n_text_state=int(config["d_model"]),
                               n_text_head=int(config["decoder_attention_heads"]), n_text_layer=int(config["decoder_layers"]))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: config.json lacks Whisper's {e} (not a transformers Whisper config?)") from None
    out = {}
    for k, t in state.items():
        if k == "proj_out.weight":  # tied to the token embedding
            continue
        m = re.match(r"model\.(encoder|decoder)\.layers\.(\d+)\.(.+)\.(weight|bias)$", k)
        if m and m.group(3) in _HF_LAYER:
            out[f"{m.group(1)}.blocks.{m.group(2)}.{_HF_LAYER[m.group(3)]}.{m.group(4)}"] = t
            continue
        base, _, leaf = k.rpartition(".")
        if base in _HF_TOP:
            name = _HF_TOP[base]
            out[name if name.endswith("positional_embedding") else f"{name}.{leaf}"] = t
            continue
        raise CheckpointError(f"{where}: unexpected weight {k!r} for a Whisper model")
    return dims, {k: t.float() for k, t in out.items()}


# ---------------------------------------------------------------------------------------------- tokenizers
def ranks_from_tokenizer_json(path: Path) -> dict[bytes, int]:
    """The byte-level BPE ranks of a transformers ``tokenizer.json`` (its special tokens left out)."""
    try:
        tj = json.loads(path.read_text())
        vocab, added = tj["model"]["vocab"], {t["content"] for t in tj.get("added_tokens", [])}
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: not a transformers tokenizer.json ({e})") from None
    return _ranks([(tok, i) for tok, i in vocab.items() if tok not in added], path)


def ranks_from_vocabulary_txt(path: Path) -> dict[bytes, int]:
    """CTranslate2's ``vocabulary.txt`` (one token per line, in id order): the tokens before ``<|endoftext|>``."""
    lines = path.read_text(encoding="utf-8").split("\n")
    if "<|endoftext|>" not in lines:
        raise CheckpointError(f"{path}: no <|endoftext|> line (not a Whisper vocabulary)")
    return _ranks([(tok, i) for i, tok in enumerate(lines[: lines.index("<|endoftext|>")])], path)


def _ranks(items: list[tuple[str, int]], where: Path) -> dict[bytes, int]:
    alphabet = _byte_alphabet()
    ranks = {}
    for tok, i in items:
        try:
            ranks[bytes(alphabet[c] for c in tok)] = int(i)
        except KeyError:
            raise CheckpointError(f"{where}: token {tok!r} is not byte-level BPE") from None
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise CheckpointError(f"{where}: token ids are not 0..{len(ranks) - 1} before the special tokens")
    return ranks


def tokenizer_for(folder: Path, model: ASRModel) -> WhisperTokenizer:
    """The folder's tokenizer (``tokenizer.json``, else ``vocabulary.txt``) in Whisper's layout for ``model``."""
    if (folder / "tokenizer.json").is_file():
        ranks = ranks_from_tokenizer_json(folder / "tokenizer.json")
    elif (folder / "vocabulary.txt").is_file():
        ranks = ranks_from_vocabulary_txt(folder / "vocabulary.txt")
    else:
        raise CheckpointError(f"{folder}: no tokenizer.json or vocabulary.txt beside the weights")
    multilingual = model.is_multilingual
    try:
        tok = WhisperTokenizer(ranks, num_languages=model.num_languages if multilingual else 99,
                               multilingual=multilingual, language="en" if multilingual else None)
    except TokenizerError as e:
        raise CheckpointError(f"{folder}: {e}") from None
    if tok.n_vocab != model.dims.n_vocab:
        raise CheckpointError(f"{folder}: the tokenizer has {tok.n_vocab} tokens with Whisper's special tokens, the "
                              f"model {model.dims.n_vocab}")
    return tok


# ---------------------------------------------------------------------------------------------- loading
def load_ctranslate2(folder: str | os.PathLike) -> tuple[ASRModel, WhisperTokenizer]:
    folder = Path(folder)
    for f in ("model.bin", "config.json"):
        if not (folder / f).is_file():
            raise CheckpointError(f"{folder}: a CTranslate2 folder needs {f}, which is missing")
    name, _, variables = read_ct2(folder / "model.bin")
    if name != "WhisperSpec":
        raise CheckpointError(f"{folder / 'model.bin'}: a CTranslate2 {name}, not Whisper")
    dims, state = ct2_to_whisper(variables, str(folder / "model.bin"))
    model = build_model(dims, state, str(folder / "model.bin")).eval()
    return model, tokenizer_for(folder, model)


def load_transformers(folder: str | os.PathLike) -> tuple[ASRModel, WhisperTokenizer]:
    folder = Path(folder)
    from ..fileio import load_safetensors_file, load_torch_file, read_json_file

    config = read_json_file(folder / "config.json", CheckpointError)
    if config.get("model_type") != "whisper":
        raise CheckpointError(f"{folder / 'config.json'}: a Hugging Face {config.get('model_type')!r} model, not Whisper")
    if (folder / "model.safetensors").is_file():
        state = load_safetensors_file(folder / "model.safetensors", CheckpointError)
    else:
        state = load_torch_file(folder / "pytorch_model.bin", CheckpointError)
    dims, mapped = hf_to_whisper(state, config, str(folder))
    model = build_model(dims, mapped, str(folder)).eval()
    return model, tokenizer_for(folder, model)


# ---------------------------------------------------------------------------------------------- conversion
KNOWN_MODELS = "known_whisper.json"  # in audiokit/assets: figures measured on exact weight files, by their SHA-256
LAYOUT_WORDS = {"openai": "the official Whisper checkpoint", "ctranslate2": "the CTranslate2 (faster-whisper) folder",
                 "transformers": "the Hugging Face transformers folder", "audiokit": "the audiokit folder"}


def weights_file(src: Path, layout: str) -> Path | None:
    if layout == "openai":
        return src
    for name in {"ctranslate2": ("model.bin",), "transformers": ("model.safetensors", "pytorch_model.bin"),
                 "audiokit": ("model.safetensors",)}[layout]:
        if (src / name).is_file():
            return src / name
    return None


def known_model(src: str | os.PathLike) -> dict | None:
    """What audiokit has measured on these exact weights (``assets/known_whisper.json``, keyed by the SHA-256 of the
    weight file): name, licence, where they come from and the eval tables; None for weights it has not measured."""
    from ..assets import ASSETS_DIR
    from ..pretrained import _sha256

    src = Path(src)
    weights = weights_file(src, detect_layout(src))
    known = json.loads((ASSETS_DIR / KNOWN_MODELS).read_text())
    return known.get(_sha256(weights)) if weights is not None else None


def convert_whisper(src: str | os.PathLike, dst: str | os.PathLike, fp16: bool = False, vocab: str | os.PathLike | None = None,
                    name: str | None = None, load_as: str | None = None, command: str | None = None):
    """Any Whisper model (OpenAI ``.pt``, CTranslate2 or Hugging Face folder, audiokit export) as an audiokit ASR
    folder with its card — source, licence, the conversion command and, for weights audiokit has measured, their eval
    tables. Written whole or not at all. ``load_as`` (the README's ``audiokit.load`` argument) defaults to ``dst`` as
    given; ``command`` (the conversion, as the card records it) to this conversion's. Returns the
    :class:`Transcriber` and the layout it came from."""
    from ..fileio import write_folder
    from ..pretrained import add_eval, write_card
    from .transcriber import Transcriber

    src, dst = Path(src), Path(dst)
    layout = detect_layout(src)  # refuses anything else with the reason, before a folder is written
    known = known_model(src) or {}
    t = Transcriber.load(src, vocab=vocab, name=name or known.get("name") or dst.name)
    card = {"source": f"converted from {LAYOUT_WORDS[layout]} {known.get('source') or src.name}",
            "conversion": command or f"audiokit convert whisper {src} {dst}{' --fp16' if fp16 else ''}",
            **({"license": known["license"]} if known.get("license") else {})}

    def write(tmp: Path) -> None:
        t.export(tmp, dtype=torch.float16 if fp16 else torch.float32, card=card)
        write_card(tmp, notes=known.get("notes"), load_as=load_as or str(dst))
        for kind, result in (known.get("eval") or {}).items():
            add_eval(tmp, kind, result)

    write_folder(dst, write)
    return t, layout
