"""Whisper-style ASR model: front end and model parity with openai-whisper, KV cache, checkpoint refusals."""
import os

import numpy as np
import pytest
import torch

from audiokit.asr.convert import CheckpointError, load_whisper_checkpoint
from audiokit.asr.features import N_FRAMES, N_SAMPLES, log_mel_spectrogram, mel_filters, pad_or_trim
from audiokit.asr.model import ASRModel, ModelDimensions
from audiokit.nn.transformer import KVCache

TINY = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=4, n_audio_layer=2, n_vocab=51865,
                       n_text_ctx=448, n_text_state=64, n_text_head=4, n_text_layer=2)


def _whisper():
    try:
        import whisper  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("CI installs the 'reference' extra, but openai-whisper is missing")
        pytest.skip("parity needs the 'reference' extra (openai-whisper); CI installs it")
    import whisper

    return whisper


def _speechlike(seconds=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * 16000)) / 16000
    f0 = 120 + 30 * torch.sin(2 * torch.pi * 0.5 * t)
    x = sum(torch.sin(2 * torch.pi * k * torch.cumsum(f0, 0) / 16000) / k for k in range(1, 8))
    return (0.1 * x * (0.5 + 0.5 * torch.sin(2 * torch.pi * 3 * t)) + 0.01 * torch.randn(len(t), generator=g)).float()


def test_mel_filters_match_librosa():
    librosa = pytest.importorskip("librosa", reason="the 'test' extra provides librosa")
    for n in (80, 128):
        ref = librosa.filters.mel(sr=16000, n_fft=400, n_mels=n)
        assert np.abs(mel_filters(n).numpy() - ref).max() < 1e-6


def test_log_mel_matches_openai_whisper():
    whisper = _whisper()
    x = _speechlike()
    ours = log_mel_spectrogram(x)
    ref = whisper.log_mel_spectrogram(x)
    assert ours.shape == ref.shape == (80, 300)
    assert (ours - ref).abs().max() < 1e-4
    batch = log_mel_spectrogram(torch.stack([x, 0.01 * x]))
    assert (batch[1] - whisper.log_mel_spectrogram(0.01 * x)).abs().max() < 1e-4  # each item clamped on its own
    assert log_mel_spectrogram(pad_or_trim(x), n_mels=128).shape == (128, N_FRAMES)
    assert pad_or_trim(torch.zeros(N_SAMPLES + 5)).shape[-1] == N_SAMPLES


def test_official_checkpoint_parity(tmp_path):
    _whisper()
    from whisper.model import ModelDimensions as RefDims
    from whisper.model import Whisper

    torch.manual_seed(0)
    ref = Whisper(RefDims(**TINY.to_dict())).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0, 0.05)
    torch.save({"dims": TINY.to_dict(), "model_state_dict": ref.state_dict()}, tmp_path / "tiny.pt")
    ours = load_whisper_checkpoint(tmp_path / "tiny.pt")
    mel = log_mel_spectrogram(pad_or_trim(_speechlike()))[None]
    tokens = torch.tensor([[50258, 50259, 50359, 50363, 440, 1723, 322]])
    with torch.no_grad():
        ref_feat = ref.embed_audio(mel)
        feat = ours.embed_audio(mel)
        assert (feat - ref_feat).abs().max() < 1e-4
        ref_logits = ref.logits(tokens, ref_feat)
        logits = ours.logits(tokens, feat)
    assert (logits - ref_logits).abs().max() < 1e-4
    assert torch.equal(logits.argmax(-1), ref_logits.argmax(-1))
    assert ours.is_multilingual and ours.num_languages == 99


def _tiny_decoder_inputs(rows: int):
    """A random TINY model, its audio features for ``rows`` random windows, and 12 random tokens per row."""
    torch.manual_seed(0)
    model = ASRModel(TINY).eval()
    mel = torch.randn(rows, 80, 3000)
    tokens = torch.randint(0, 51865, (rows, 12))
    with torch.no_grad():
        return model, model.embed_audio(mel), tokens


def test_kv_cache_decoding_equals_full_recompute():
    model, feats, tokens = _tiny_decoder_inputs(3)
    with torch.no_grad():
        full = model.logits(tokens, feats)
        cache = KVCache()
        parts = [model.logits(tokens[:, :4], feats, cache)]  # prompt prefill, then one token at a time
        for i in range(4, 12):
            parts.append(model.logits(tokens[:, i : i + 1], feats, cache))
        assert cache.length == 12
    assert (torch.cat(parts, dim=1) - full).abs().max() < 1e-4
    # beam search reorders the cache: continuing row 2 from a reordered cache equals decoding row 2 alone
    with torch.no_grad():
        cache.reorder(torch.tensor([2, 2, 0]))
        nxt = torch.randint(0, 51865, (3, 1))
        step = model.logits(nxt, feats[[2, 2, 0]], cache)
        alone = model.logits(torch.cat([tokens[2:3], nxt[:1]], dim=1), feats[2:3])[:, -1]
    assert (step[0, -1] - alone[0]).abs().max() < 1e-4


def test_cpu_inference_encodes_window_by_window_with_the_batched_result():
    torch.manual_seed(0)
    model = ASRModel(TINY).eval()
    mel = torch.randn(3, TINY.n_mels, 2 * TINY.n_audio_ctx)
    batched = model.encoder(mel)  # gradients on: the whole batch at once (training's path)
    with torch.no_grad():
        fast = model.encoder(mel)  # one window at a time
        alone = [model.encoder(mel[i : i + 1]) for i in range(3)]
    assert fast.shape == batched.shape == (3, TINY.n_audio_ctx, TINY.n_audio_state)
    assert (fast - batched).abs().max() < 1e-5  # same values, rows in order
    assert all(torch.equal(fast[i : i + 1], a) for i, a in enumerate(alone))


def test_ragged_rows_continue_at_their_own_offsets():
    """Drafted decoding lets the rows of a batch drift to different lengths: each row writes its keys/values at its
    own positions and attends only up to them, so stale entries (a rejected draft, a longer neighbour) are
    invisible and the logits equal each row decoded alone."""
    model, feats, tokens = _tiny_decoder_inputs(2)
    with torch.no_grad():
        cache = KVCache()
        model.logits(tokens[:, :5], feats, cache)  # shared prompt length
        wrong = torch.randint(0, 51865, (2, 3))  # pass 1: row 0 is fed tokens it will reject
        model.logits(torch.stack([torch.cat([tokens[0, 5:6], wrong[0, 1:]]), tokens[1, 5:8]]), feats, cache, offsets=[5, 5])
        # pass 2: row 0 kept one token (continues at 6, over its stale 6 and 7), row 1 kept three (continues at 8)
        got = model.logits(torch.stack([tokens[0, 6:9], tokens[1, 8:11]]), feats, cache, offsets=[6, 8])
        alone0 = model.logits(tokens[:1, :9], feats[:1])[0, 6:9]
        alone1 = model.logits(tokens[1:, :11], feats[1:])[0, 8:11]
        with pytest.raises(ValueError, match="exceed the decoder's context"):
            model.logits(tokens[:, :3], feats, cache, offsets=[446, 8])
    assert (got[0] - alone0).abs().max() < 1e-4 and (got[1] - alone1).abs().max() < 1e-4


def test_context_limits_are_clear_errors():
    model = ASRModel(TINY).eval()
    with pytest.raises(ValueError, match="exceed the decoder's context of 448"):
        model.logits(torch.zeros(1, 449, dtype=torch.long), torch.zeros(1, 10, 64))
    with pytest.raises(ValueError, match="exceeds the model's 1500"):
        model.embed_audio(torch.zeros(1, 80, 3002))


def test_checkpoint_refusals(tmp_path):
    with pytest.raises(CheckpointError, match="no such"):
        load_whisper_checkpoint(tmp_path / "none.pt")
    model = ASRModel(TINY)
    torch.save({"dims": TINY.to_dict(), "model_state_dict": model.state_dict()}, tmp_path / "ok.pt")
    data = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        load_whisper_checkpoint(tmp_path / "cut.pt")
    wrong = dict(TINY.to_dict(), n_text_state=128)
    torch.save({"dims": wrong, "model_state_dict": model.state_dict()}, tmp_path / "dims.pt")
    with pytest.raises(CheckpointError, match="do not match dims"):
        load_whisper_checkpoint(tmp_path / "dims.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a Whisper checkpoint"):
        load_whisper_checkpoint(tmp_path / "other.pt")
    assert load_whisper_checkpoint(tmp_path / "ok.pt").dims == TINY


# ----------------------------------------------------------------------------- tokenizer
TEXTS = ["Hello, world!", " The quick brown fox jumps over the lazy dog.", "It's 5 o'clock; isn't it?",
         "Ünïcödé café naïve — déjà vu", "   spaces   and\ttabs\nnewlines", "数字 123 and ½ symbols #@!", "x'll y've"]


@pytest.mark.parametrize("multilingual", [True, False])
def test_tokenizer_matches_openai_whisper(multilingual):
    whisper = _whisper()
    from pathlib import Path

    from audiokit.asr.tokenizer import LANGUAGES, WhisperTokenizer

    ref = whisper.tokenizer.get_tokenizer(multilingual, num_languages=99, language="en" if multilingual else None)
    assets = Path(whisper.__file__).parent / "assets"
    ours = WhisperTokenizer.from_file(assets / ("multilingual.tiktoken" if multilingual else "gpt2.tiktoken"),
                                      multilingual=multilingual, language="en" if multilingual else None)
    assert list(LANGUAGES) == list(whisper.tokenizer.LANGUAGES)
    for name in ("eot", "sot", "transcribe", "translate", "sot_prev", "no_speech", "no_timestamps", "timestamp_begin"):
        assert getattr(ours, name) == getattr(ref, name), name
    assert ours.sot_sequence == tuple(ref.sot_sequence)
    assert ours.n_vocab == ref.encoding.n_vocab
    for text in TEXTS:
        ids = ours.encode(text)
        assert ids == ref.encode(text), text
        assert ours.decode(ids) == text
    assert ours.decode([ours.timestamp_begin + 50, ours.eot], skip_special=False) == "<|1.00|><|endoftext|>"
    assert ours.timestamp(ours.timestamp_begin + 1500) == pytest.approx(30.0)


def test_tokenizer_refusals(tmp_path):
    from audiokit.asr.tokenizer import TokenizerError, WhisperTokenizer, load_ranks

    with pytest.raises(TokenizerError, match="no such vocabulary"):
        load_ranks(tmp_path / "none.tiktoken")
    (tmp_path / "bad.tiktoken").write_text("YQ== 0\nnot-a-line\n")
    with pytest.raises(TokenizerError, match="bad.tiktoken:2"):
        load_ranks(tmp_path / "bad.tiktoken")
    ranks = {bytes([i]): i for i in range(256)}
    tok = WhisperTokenizer(ranks)
    assert tok.encode("hi") == [104, 105] and tok.decode([104, 105]) == "hi"
    with pytest.raises(TokenizerError, match="'xx' is not one"):
        WhisperTokenizer(ranks, language="xx")
    with pytest.raises(TokenizerError, match="outside the vocabulary"):
        tok.decode([10**6])
    with pytest.raises(TokenizerError, match="not a timestamp"):
        tok.timestamp(tok.eot)


def test_fallback_pretokenizer_splits_like_regex():
    regex = pytest.importorskip("regex", reason="compares against the regex module (installed with the reference extra)")
    from audiokit.asr.tokenizer import _PATTERN, FALLBACK_PATTERN

    assert isinstance(_PATTERN, regex.Pattern)
    for text in TEXTS + ["snake_case__x", "a_b 3_4"]:
        assert FALLBACK_PATTERN.findall(text) == _PATTERN.findall(text), text


def _random_reference(tmp_path_factory, eot_scale: float, timestamp_scale: float):
    """openai-whisper's model at TINY with random weights (LayerNorms left at identity, so the audio reaches the
    logits), end-of-text and timestamp embeddings scaled up; the same weights loaded by audiokit; the tokenizer."""
    whisper = _whisper()
    from pathlib import Path

    from whisper.model import ModelDimensions as RefDims
    from whisper.model import Whisper

    from audiokit.asr.tokenizer import WhisperTokenizer

    torch.manual_seed(1)
    ref = Whisper(RefDims(**TINY.to_dict())).eval()
    tok = WhisperTokenizer.from_file(Path(whisper.__file__).parent / "assets" / "multilingual.tiktoken")
    with torch.no_grad():
        for p in ref.parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.1)
        ref.decoder.token_embedding.weight[tok.eot] *= eot_scale
        ref.decoder.token_embedding.weight[tok.timestamp_begin:] *= timestamp_scale
    path = tmp_path_factory.mktemp("whisper") / "tiny.pt"
    torch.save({"dims": TINY.to_dict(), "model_state_dict": ref.state_dict()}, path)
    return whisper, ref, load_whisper_checkpoint(path), tok


@pytest.fixture(scope="module")
def ref_pair(tmp_path_factory):
    """openai-whisper's model with random weights, the same weights loaded by audiokit, and both tokenizers.

    End-of-text and timestamp embeddings are scaled up, so sequences end at different lengths and carry timestamps.
    """
    whisper, ref, ours, tok = _random_reference(tmp_path_factory, eot_scale=3.5, timestamp_scale=1.3)
    audio = [_speechlike(seed=0), torch.randn(48000, generator=torch.Generator().manual_seed(0)) * 0.3, 3 * _speechlike(seed=2)]
    mels = torch.stack([log_mel_spectrogram(pad_or_trim(a)) for a in audio])
    return whisper, ref, ours, tok, mels


DECODE_CASES = [
    dict(without_timestamps=True),
    dict(without_timestamps=False),
    dict(beam_size=5, without_timestamps=True),
    dict(beam_size=5),
    dict(beam_size=3, patience=2.0, length_penalty=0.5),
    dict(beam_size=4, patience=0.5),
    dict(language=None, without_timestamps=True),
    dict(prompt="hello there friends", beam_size=2),
    dict(prefix="Well", without_timestamps=True),
    # drafted greedy decoding (several tokens checked per pass): still exactly openai-whisper's greedy result
    dict(draft_tokens=4, without_timestamps=True),
    dict(draft_tokens=8),
    dict(draft_tokens=3, draft="jacobi", prompt="hello there friends"),
    dict(draft_tokens=5, draft="ngram", prefix="Well", without_timestamps=True),
]
DRAFTING = ("draft_tokens", "draft")


@pytest.mark.parametrize("case", DECODE_CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_batched_decoding_matches_openai_whisper(ref_pair, case):
    """Greedy and beam search, with and without timestamps, language detection, prompt and prefix: the same tokens
    and scores as openai-whisper decoding each window alone, while audiokit decodes the three windows as one batch."""
    whisper, ref, ours, tok, mels = ref_pair
    from audiokit.asr.decoding import DecodingOptions, decode

    opts = {"language": "en", "sample_len": 60, **case}
    ref_opts = {k: v for k, v in opts.items() if k not in DRAFTING}
    expected = [whisper.decode(ref, m, whisper.DecodingOptions(**ref_opts, temperature=0.0, fp16=False)) for m in mels]
    got = decode(ours, tok, mels, DecodingOptions(**opts))
    assert len({round(e.avg_logprob, 3) for e in expected}) == 3  # the items differ, so mixing rows would show
    for e, g in zip(expected, got):
        assert g.tokens == e.tokens
        assert g.text == e.text
        assert g.language == e.language
        assert g.avg_logprob == pytest.approx(e.avg_logprob, abs=1e-4)
        assert g.no_speech_prob == pytest.approx(e.no_speech_prob, abs=1e-4)
        assert g.compression_ratio == pytest.approx(e.compression_ratio)
    if not case.get("without_timestamps"):
        assert any(t >= tok.timestamp_begin for g in got for t in g.tokens)
    if case.get("beam_size") == 5 and "without_timestamps" not in case:
        assert len({len(g.tokens) for g in got}) > 1  # sequences end at different steps


def test_non_speech_tokens_match_openai_whisper(ref_pair):
    whisper, _, _, tok, _ = ref_pair
    from audiokit.asr.decoding import non_speech_tokens

    ref_tok = whisper.tokenizer.get_tokenizer(True, num_languages=99, language="en", task="transcribe")
    assert non_speech_tokens(tok) == sorted(ref_tok.non_speech_tokens)


def test_language_detection_matches_openai_whisper(ref_pair):
    whisper, ref, ours, tok, mels = ref_pair
    from audiokit.asr.decoding import detect_language

    ref_ids, ref_probs = whisper.decoding.detect_language(ref, mels, whisper.tokenizer.get_tokenizer(True, num_languages=99))
    ids, probs = detect_language(ours, tok, mels)
    assert ids.tolist() == ref_ids.tolist()
    for p, r in zip(probs, ref_probs):
        assert p["en"] == pytest.approx(r["en"], abs=1e-5) and max(p, key=p.get) == max(r, key=r.get)


def test_chunked_log_mel_equals_whole_file():
    from audiokit.asr.features import log_mel_spectrogram
    from audiokit.asr.transcribe import log_mel_long

    audio = torch.cat([_speechlike(7, seed=4), torch.zeros(16000), 0.5 * _speechlike(5, seed=5)])
    whole = log_mel_spectrogram(audio, padding=N_SAMPLES)
    for chunk in (777, 3000, 100000):
        assert log_mel_long(audio, 80, N_SAMPLES, chunk_frames=chunk).shape == whole.shape
        assert (log_mel_long(audio, 80, N_SAMPLES, chunk_frames=chunk) - whole).abs().max() < 1e-5


@pytest.fixture(scope="module")
def seeking_pair(tmp_path_factory):
    """A random-weight model whose timestamps are likely enough that long-form decoding makes several
    segments per window and seeks on them."""
    return _random_reference(tmp_path_factory, eot_scale=3.0, timestamp_scale=1.35)


def test_long_form_transcription_matches_openai_whisper(seeking_pair):
    """65 s of audio: the same segments (times, tokens, text) and seeks as whisper.transcribe (with drafted
    greedy decoding); and a batch of three files, decoded window-by-window together, gives each file the result it gets alone."""
    whisper, ref, ours, tok = seeking_pair
    from audiokit.asr.decoding import DecodingOptions
    from audiokit.asr.transcribe import transcribe

    audio = torch.cat([_speechlike(20, seed=0), torch.zeros(16000 * 5), 2 * _speechlike(40, seed=3)])
    expected = whisper.transcribe(ref, audio, temperature=0.0, language="en", fp16=False, verbose=None)
    segments = [s for s in expected["segments"] if s["text"].strip() and s["end"] > s["start"]]
    # drafted greedy decoding (8 tokens checked per pass) here; one pass per token in the batch below
    got = transcribe(ours, tok, [audio], DecodingOptions(language="en", draft_tokens=8), temperatures=(0.0,),
                     silence_threshold_db=None)[0]
    assert len(segments) >= 4 and max(s["start"] for s in segments) > 30  # it did seek past the first window
    assert len(got.segments) == len(segments)
    for e, g in zip(segments, got.segments):
        assert g.tokens == e["tokens"] and g.text == e["text"]
        assert g.start == pytest.approx(e["start"], abs=1e-3) and g.end == pytest.approx(min(e["end"], 65.0), abs=1e-3)
    assert got.text == "".join(s["text"] for s in segments).strip()
    others = [_speechlike(12, seed=6), audio[: 16000 * 33]]
    batch = transcribe(ours, tok, [others[0], audio, others[1]], DecodingOptions(language="en"), temperatures=(0.0,),
                       silence_threshold_db=None, batch_size=3)
    assert [s.tokens for s in batch[1].segments] == [s.tokens for s in got.segments]
    for x, b in zip(others, (batch[0], batch[2])):
        alone = transcribe(ours, tok, [x], DecodingOptions(language="en"), temperatures=(0.0,), silence_threshold_db=None)[0]
        assert [(s.start, s.end, s.tokens) for s in b.segments] == [(s.start, s.end, s.tokens) for s in alone.segments]


def test_convert_whisper_and_large_v3_layout(tmp_path, capsys):
    """`audiokit convert whisper` on a large-v3-layout checkpoint (128 mels, 100 languages) at small widths:
    the folder and the .pt transcribe alike, and language detection sees all 100 languages."""
    whisper = _whisper()
    from pathlib import Path

    from audiokit.asr.transcriber import Transcriber
    from audiokit.cli import main

    dims = dict(TINY.to_dict(), n_mels=128, n_vocab=51866)
    torch.manual_seed(0)
    model = ASRModel(ModelDimensions(**dims))
    torch.save({"dims": dims, "model_state_dict": model.state_dict()}, tmp_path / "large-v3-mini.pt")
    vocab = str(Path(whisper.__file__).parent / "assets" / "multilingual.tiktoken")
    assert main(["convert", "whisper", str(tmp_path / "large-v3-mini.pt"), str(tmp_path / "conv"), "--vocab", vocab]) == 0
    assert "multilingual" in capsys.readouterr().out
    a = Transcriber.load(tmp_path / "large-v3-mini.pt", vocab=vocab)
    b = Transcriber.load(tmp_path / "conv")
    assert a.tokenizer.n_vocab == b.tokenizer.n_vocab == 51866 and b.tokenizer.languages[-1] == "yue"
    audio = _speechlike(4.0)
    ra = a.transcribe(audio, 16000, temperature=0.0, language=None, silence_threshold_db=None)
    rb = b.transcribe(audio, 16000, temperature=0.0, language=None, silence_threshold_db=None)
    assert [s.tokens for s in ra.segments] == [s.tokens for s in rb.segments] and ra.language == rb.language
    assert ra.language in a.tokenizer.languages
    # no rank file given: the one audiokit ships (openai-whisper's, gzip-compressed) is the same
    c = Transcriber.load(tmp_path / "large-v3-mini.pt")
    assert c.tokenizer.ranks == a.tokenizer.ranks and c.tokenizer.n_vocab == 51866
    assert main(["convert", "whisper", str(tmp_path / "large-v3-mini.pt"), str(tmp_path / "conv2")]) == 0
    assert Transcriber.load(tmp_path / "conv2").tokenizer.ranks == a.tokenizer.ranks


def test_fine_tuning_an_official_checkpoint(tmp_path):
    """init_from an official .pt with its rank file: the same weights, Whisper's own prompt tokens
    (<|startoftranscript|><|en|><|transcribe|>) in the training windows, and a finite loss with gradients."""
    whisper = _whisper()
    from pathlib import Path

    from audiokit.asr.lightning import ASRLightningModule

    torch.manual_seed(0)
    model = ASRModel(TINY)
    torch.save({"dims": TINY.to_dict(), "model_state_dict": model.state_dict()}, tmp_path / "tiny.pt")
    vocab = str(Path(whisper.__file__).parent / "assets" / "multilingual.tiktoken")
    module = ASRLightningModule(init_from=str(tmp_path / "tiny.pt"), tokenizer=vocab, no_speech_prob=0.0, timestamp_prob=0.0,
                                concat_prob=0.0)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in module.model.state_dict().items())
    ref_tok = whisper.tokenizer.get_tokenizer(True, num_languages=99, language="en", task="transcribe")
    audio = _speechlike(4.0)
    batch = {"audio": audio[None], "audio_lengths": torch.tensor([audio.shape[-1]]), "text": ["Hello there."]}
    _, tokens, _ = module.make_windows(batch, train=True)
    expected = list(ref_tok.sot_sequence) + [ref_tok.no_timestamps] + ref_tok.encode(" Hello there.") + [ref_tok.eot]
    assert tokens[0].tolist() == expected
    loss, _, _ = module._loss(batch, train=True)
    loss.backward()
    assert torch.isfinite(loss) and module.model.decoder.token_embedding.weight.grad.abs().sum() > 0


def _ctc_model(ctc: bool):
    """A small English Whisper-layout model (random weights), with or without a CTC head, and its tokenizer."""
    from dataclasses import replace

    from audiokit.asr.tokenizer import WhisperTokenizer
    from audiokit.assets import ASSETS_DIR

    tok = WhisperTokenizer.from_file(ASSETS_DIR / "gpt2.tiktoken.gz", multilingual=False)
    torch.manual_seed(0)
    dims = replace(TINY, n_vocab=tok.n_vocab, n_audio_ctx=100, n_text_ctx=64, n_ctc_vocab=257 if ctc else 0)
    return ASRModel(dims).eval(), tok


def test_ctc_score_is_the_ctc_log_likelihood_of_the_text_bytes():
    import torch.nn.functional as F

    model, _ = _ctc_model(ctc=True)
    feats = torch.randn(100, TINY.n_audio_state)
    texts = ["one two", " three", "x" * 120]  # the last has more bytes than the window has frames
    got = model.ctc_score(feats, texts)
    lp = model.ctc_log_probs(feats[None])[0]
    for text, g in zip(texts[:2], got[:2]):
        ids = torch.tensor([list((" " + text.strip()).encode())])
        want = -F.ctc_loss(lp[:, None], ids, torch.tensor([100]), torch.tensor([ids.shape[1]]), blank=256, reduction="sum")
        assert g.item() == pytest.approx(want.item(), rel=1e-5)
    assert got[2].item() == float("-inf")
    assert torch.equal(model.ctc_score(lp, texts), got)  # log-probabilities given instead of features
    with pytest.raises(ValueError, match="n_ctc_vocab is 100"):
        ASRModel(ModelDimensions(n_ctc_vocab=100))
    plain, _ = _ctc_model(ctc=False)
    assert plain.ctc_head is None and "ctc_head.weight" not in plain.state_dict()
    with pytest.raises(ValueError, match="no CTC head"):
        plain.ctc_log_probs(feats[None])


def test_joint_ctc_rescoring_ranks_beam_candidates():
    """Beam search's candidates ranked by (1 - w) log P_att + w log P_CTC over the length: a head that hears
    " one" overturns the decoder's preference for " two" at w = 0.3 (the default for a model with a head), not
    at w = 0; a model without a head ranks as before and refuses a weight; beam search with the head off gives
    the same tokens as the model without one."""
    from audiokit.asr.decoding import DecodingOptions, _Search, decode

    model, tok = _ctc_model(ctc=True)
    with torch.no_grad():
        model.ctc_head.weight.zero_()
        model.ctc_head.bias.fill_(-8.0)
        model.ctc_head.bias[256] = 0.0  # blank
        for b in b" one":
            model.ctc_head.bias[b] = 0.0
    feats = torch.randn(100, TINY.n_audio_state)
    one, two = tok.encode(" one"), tok.encode(" two")
    assert len(one) == len(two) == 1
    cands = [(two, -1.0), (one, -1.5)]
    pick = lambda m, **o: _Search(m, tok, DecodingOptions(beam_size=2, **o))._rank(cands, feats)[0]
    assert pick(model, ctc_weight=0.0) == two
    assert pick(model) == pick(model, ctc_weight=0.3) == one
    plain, _ = _ctc_model(ctc=False)
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("ctc_head.")})
    assert pick(plain) == two
    with pytest.raises(ValueError, match="needs a model with a CTC head"):
        pick(plain, ctc_weight=0.3)
    with pytest.raises(ValueError, match="ctc_weight must be in"):
        DecodingOptions(beam_size=2, ctc_weight=1.5)
    mel = log_mel_spectrogram(_speechlike(2.0))[None, :, :200]
    off = decode(model, tok, mel, DecodingOptions(beam_size=3, ctc_weight=0.0, sample_len=8, without_timestamps=True, screen_vocab=False))
    base = decode(plain, tok, mel, DecodingOptions(beam_size=3, sample_len=8, without_timestamps=True, screen_vocab=False))
    assert off[0].tokens == base[0].tokens and off[0].avg_logprob == pytest.approx(base[0].avg_logprob)
