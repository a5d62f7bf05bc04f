"""The Transcriber API and `audiokit transcribe`: loading every model form, output formats, batches, silence,
temperature fallback, and bad input."""
import json

import pytest
import soundfile as sf
import torch

from audiokit.asr.convert import CheckpointError
from audiokit.asr.decoding import DecodingOptions, decode, decode_with_fallback
from audiokit.asr.features import log_mel_spectrogram, pad_or_trim
from audiokit.asr.model import ASRModel, ModelDimensions
from audiokit.asr.tokenizer import WhisperTokenizer
from audiokit.asr.transcribe import Segment, Transcript
from audiokit.asr.transcriber import Transcriber
from audiokit.cli import main

SENTENCES = ["the cat sat on the mat", "a quick brown fox jumps over the lazy dog", "pack the books into the boxes",
             "stock prices are drifting higher", "it was all the rage that season"] * 4


@pytest.fixture(scope="module")
def tok():
    from audiokit.text import BPETokenizer

    return WhisperTokenizer.from_bpe(BPETokenizer.train(SENTENCES, vocab_size=300))


def _dims(tok, **kw):
    return ModelDimensions(**{**dict(n_mels=80, n_audio_ctx=250, n_audio_state=32, n_audio_head=2, n_audio_layer=1,
                                     n_vocab=tok.n_vocab, n_text_ctx=64, n_text_state=32, n_text_head=2, n_text_layer=1), **kw})


def _transcriber(tok, seed=0, boost=None):
    torch.manual_seed(seed)
    model = ASRModel(_dims(tok))
    if boost:
        with torch.no_grad():
            for token, scale in boost.items():
                model.decoder.token_embedding.weight[token] *= scale
    return Transcriber(model, tok, name="random")


def _voice(seconds, seed=0, sr=16000):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * sr)) / sr
    x = torch.sin(2 * torch.pi * 150 * t) * (0.5 + 0.5 * torch.sin(2 * torch.pi * 2 * t))
    return (0.3 * x + 0.02 * torch.randn(len(t), generator=g)).float()


def _key(r):
    return [(s.start, s.end, s.tokens) for s in r.segments]


def test_bpe_layout(tok):
    assert list(tok.languages) == ["en"] and tok.sot_sequence == (tok.sot, tok.language_token("en"), tok.transcribe)
    assert tok.timestamp_begin == tok.n_vocab - 1501 and tok.eot == len(tok.ranks)
    for s in SENTENCES[:5] + ["Ünïcödé 123!"]:
        assert tok.decode(tok.encode(" " + s)) == " " + s
    assert len(tok.encode(" the cat sat on the mat")) < len(" the cat sat on the mat")  # merges happened


def test_export_and_reload_every_form(tmp_path, tok):
    t = _transcriber(tok)
    audio = _voice(3.0)
    expected = t.transcribe(audio, 16000, temperature=0.0)
    t.export(tmp_path / "exp")
    meta = json.loads((tmp_path / "exp" / "config.json").read_text())
    assert meta["format"] == "audiokit.asr" and meta["dims"]["n_audio_ctx"] == 250
    again = Transcriber.load(tmp_path / "exp")
    assert again.transcribe(audio, 16000, temperature=0.0).segments == expected.segments
    # a Lightning checkpoint carries its tokenizer
    from audiokit.asr.lightning import ASRLightningModule

    tok.save(tmp_path / "vocab.tiktoken")
    module = ASRLightningModule(str(tmp_path / "vocab.tiktoken"), dims={k: v for k, v in _dims(tok).to_dict().items() if k != "n_vocab"})
    module.model.load_state_dict(t.model.state_dict())
    ckpt = {"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}
    module.on_save_checkpoint(ckpt)
    torch.save(ckpt, tmp_path / "m.ckpt")
    from_ckpt = Transcriber.load(tmp_path / "m.ckpt")
    assert from_ckpt.transcribe(audio, 16000, temperature=0.0).segments == expected.segments
    # an official-layout .pt takes its rank file from beside it, as given, or the one audiokit ships; none fits here
    torch.save({"dims": t.model.dims.to_dict(), "model_state_dict": t.model.state_dict()}, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="tokens with the special tokens"):
        Transcriber.load(tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="tokens with the special tokens"):
        Transcriber.load(tmp_path / "w.pt", vocab=tmp_path / "vocab.tiktoken")  # 300 ranks + 1608 Whisper specials


def test_load_refusals(tmp_path, tok):
    t = _transcriber(tok)
    t.export(tmp_path / "ok")
    with pytest.raises(CheckpointError, match="no such model"):
        Transcriber.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a Whisper model folder .* it holds nothing"):
        Transcriber.load(tmp_path / "empty")
    import shutil

    shutil.copytree(tmp_path / "ok", tmp_path / "cut")
    data = (tmp_path / "ok" / "model.safetensors").read_bytes()
    (tmp_path / "cut" / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        Transcriber.load(tmp_path / "cut")
    shutil.copytree(tmp_path / "ok", tmp_path / "dims")
    meta = json.loads((tmp_path / "dims" / "config.json").read_text())
    meta["dims"]["n_text_state"] = 64
    (tmp_path / "dims" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not match dims"):
        Transcriber.load(tmp_path / "dims")
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        Transcriber.load(tmp_path / "bad.ckpt")
    other = WhisperTokenizer({bytes([i]): i for i in range(256)}, num_languages=1)
    with pytest.raises(CheckpointError, match="do not belong together"):
        Transcriber(t.model, other)


def test_inputs_and_bad_input(tmp_path, tok):
    t = _transcriber(tok)
    audio = _voice(2.0)
    ref = t.transcribe(audio, 16000, temperature=0.0)
    # a file, a numpy array, [1, T], a 48 kHz waveform (resampled)
    sf.write(tmp_path / "a.wav", audio.numpy(), 16000)
    assert _key(t.transcribe(str(tmp_path / "a.wav"), temperature=0.0)) == _key(ref)
    assert _key(t.transcribe(audio.numpy(), 16000, temperature=0.0)) == _key(ref)
    assert _key(t.transcribe(audio[None], 16000, temperature=0.0)) == _key(ref)
    hi = t.transcribe(_voice(2.0, sr=48000), 48000, temperature=0.0)
    assert isinstance(hi, Transcript) and hi.duration == pytest.approx(2.0)
    with pytest.raises(ValueError, match="needs its sample_rate"):
        t.transcribe(audio)
    with pytest.raises(ValueError, match="mono audio"):
        t.transcribe(torch.stack([audio, audio]), 16000)
    with pytest.raises(ValueError, match="NaN"):
        t.transcribe(torch.full((16000,), float("nan")), 16000)
    with pytest.raises(TypeError, match="cannot transcribe a dict"):
        t.transcribe({"x": 1})
    from audiokit.audio import AudioError

    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(AudioError, match="corrupt.wav"):
        t.transcribe(str(tmp_path / "corrupt.wav"))
    with pytest.raises(ValueError, match="language 'xx'"):
        t.transcribe(audio, 16000, language="xx")
    # defined results for audio shorter than a frame and for no audio at all
    for n in (0, 100):
        r = t.transcribe(audio[:n], 16000)
        assert r.text == "" and r.segments == []


def test_silence_gives_an_empty_transcript(tok):
    t = _transcriber(tok)
    for silent in (torch.zeros(16000 * 25), 10 ** (-75 / 20) * torch.randn(16000 * 12, generator=torch.Generator().manual_seed(0))):
        r = t.transcribe(silent, 16000)
        assert r.text == "" and r.segments == [] and r.duration == pytest.approx(silent.shape[0] / 16000)
    # a very long file: 20 minutes (about 120 windows of this 10 s model) of silence, a defined empty result
    long = t.transcribe(torch.zeros(16000 * 1200), 16000)
    assert long.text == "" and long.duration == pytest.approx(1200.0)
    # the gate is what kept those windows from the decoder: without it the same audio is decoded (this random
    # model's output on it is invalid UTF-8 bytes, which are dropped, so the count of decodes is the evidence)
    import importlib

    transcribe_module = importlib.import_module("audiokit.asr.transcribe")  # the module (the package exports a function of that name)
    calls = []
    real = transcribe_module.decode_with_fallback
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(transcribe_module, "decode_with_fallback", lambda *a, **k: calls.append(1) or real(*a, **k))
        t.transcribe(torch.zeros(16000 * 3), 16000)
        assert calls == []
        t.transcribe(torch.zeros(16000 * 3), 16000, silence_threshold_db=None, no_speech_threshold=None,
                     logprob_threshold=None, temperature=0.0)
        assert len(calls) >= 1
    # the no-speech rule: a window that is probably silence and whose text is unlikely is dropped
    from audiokit.asr.decoding import DecodingResult
    from audiokit.asr.transcribe import _advance, _File

    ids = tok.encode(" the cat")
    for no_speech, logprob, kept in ((0.9, -2.0, False), (0.9, -0.5, True), (0.1, -2.0, True)):
        f = _File(audio=torch.zeros(16000), mel=torch.zeros(80, 600), content_frames=100, loud=None, language="en")
        r = DecodingResult(tokens=ids, text="the cat", avg_logprob=logprob, no_speech_prob=no_speech)
        _advance(f, r, 100, tok, 0.02, no_speech_threshold=0.6, logprob_threshold=-1.0, condition=True)
        assert bool(f.segments) == kept and f.seek == 100


def test_speech_between_silences_keeps_its_place(tok):
    t = _transcriber(tok, boost={tok.eot: 3.0})
    audio = torch.cat([torch.zeros(16000 * 12), _voice(3.0), torch.zeros(16000 * 12)])
    r = t.transcribe(audio, 16000, temperature=0.0, without_timestamps=True, no_speech_threshold=None, logprob_threshold=None)
    assert r.segments and all(10.0 <= s.start < 15.0 for s in r.segments)  # the silent windows were skipped


def test_temperature_fallback(tok):
    t = _transcriber(tok)
    mel = torch.stack([log_mel_spectrogram(pad_or_trim(_voice(2.0, seed=i), 250 * 320)) for i in range(2)])
    temps = (0.0, 0.5, 1.0)
    never_good = decode_with_fallback(t.model, tok, mel, DecodingOptions(seed=0), temps, None, logprob_threshold=10.0,
                                      no_speech_threshold=None, best_of=2)
    assert [r.temperature for r in never_good] == [1.0, 1.0]
    fine = decode_with_fallback(t.model, tok, mel, DecodingOptions(), temps, None, logprob_threshold=-1e9, no_speech_threshold=None)
    assert [r.temperature for r in fine] == [0.0, 0.0]
    greedy = decode(t.model, tok, mel, DecodingOptions())
    assert [r.tokens for r in fine] == [r.tokens for r in greedy]
    # silence (high no-speech probability with low log-probability) is not retried
    silent = decode_with_fallback(t.model, tok, mel, DecodingOptions(), temps, None, logprob_threshold=10.0, no_speech_threshold=0.0)
    assert [r.temperature for r in silent] == [0.0, 0.0]
    # repetitive output (compression ratio over the threshold) is retried
    looping = decode_with_fallback(t.model, tok, mel, DecodingOptions(seed=0), temps, compression_ratio_threshold=0.0,
                                   logprob_threshold=None, no_speech_threshold=None)
    assert [r.temperature for r in looping] == [1.0, 1.0]
    # sampling is reproducible with a seed, and best_of keeps the most likely sample
    a = decode(t.model, tok, mel, DecodingOptions(temperature=1.0, best_of=3, seed=5))
    b = decode(t.model, tok, mel, DecodingOptions(temperature=1.0, best_of=3, seed=5))
    assert [r.tokens for r in a] == [r.tokens for r in b]
    with pytest.raises(ValueError, match="best_of needs temperature"):
        DecodingOptions(best_of=2)
    with pytest.raises(ValueError, match="patience needs beam_size"):
        DecodingOptions(patience=2.0)


def test_default_transcription_is_the_same_every_run(tok):
    """The fallback samples (a random model's log-probabilities stay below the threshold, so every window
    falls back to temperature 1.0); its sampler is seeded by default: two runs give the same transcript, and
    other seeds give other samples."""
    t = _transcriber(tok, seed=4)
    audio = [_voice(2.0, seed=i) for i in range(2)]
    kw = dict(sample_rate=16000, logprob_threshold=10.0, no_speech_threshold=None, silence_threshold_db=None)
    first, again = t.transcribe(audio, **kw), t.transcribe(audio, **kw)
    assert all(s.temperature == 1.0 for r in first for s in r.segments) and any(r.segments for r in first)
    assert [_key(r) for r in first] == [_key(r) for r in again]
    others = [[_key(r) for r in t.transcribe(audio, seed=s, **kw)] for s in (1, 2, 3)]
    assert any(o != [_key(r) for r in first] for o in others)


def test_a_character_split_by_a_timestamp_joins_the_next_segment():
    """Byte-level tokens: "é" is two bytes, and a timestamp pair may fall between them. The segments' text is
    decoded across segments: no U+FFFD, the character joins the next segment; bytes that never make a
    character are dropped (as openai-whisper drops them), not replaced."""
    from audiokit.asr.decoding import DecodingResult
    from audiokit.asr.tokenizer import load_ranks
    from audiokit.asr.transcribe import _advance, _File
    from audiokit.assets import ASSETS_DIR

    tok = WhisperTokenizer(load_ranks(ASSETS_DIR / "gpt2.tiktoken.gz"), multilingual=False, language=None)
    byte = {v: k for k, v in tok.decoder.items()}
    ids = lambda b: [byte[bytes([x])] for x in b]  # noqa: E731  one token per byte
    tb = tok.timestamp_begin
    pieces = [ids(" caf".encode() + b"\xc3"), ids(b"\xa9 ok"), ids(b" bad\xff end")]
    tokens = [tb] + pieces[0] + [tb + 50, tb + 50] + pieces[1] + [tb + 100, tb + 100] + pieces[2] + [tb + 150]
    f = _File(audio=torch.zeros(16000 * 30), mel=torch.zeros(80, 6000), content_frames=3000, loud=None, language="en")
    r = DecodingResult(tokens=tokens, text="", avg_logprob=-0.1, no_speech_prob=0.0)
    _advance(f, r, 3000, tok, 0.02, 0.6, -1.0, True)
    assert [s.text for s in f.segments] == [" caf", "é ok", " bad end"]
    assert [(s.start, s.end) for s in f.segments] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    assert tok.decode(pieces[0]).endswith("\ufffd")  # what decoding each segment alone gave


def test_formats():
    r = Transcript(text="Hello there. General Kenobi.", language="en", duration=3725.5,
                   segments=[Segment(0.0, 1.5, " Hello there."), Segment(3723.25, 3725.5, " General Kenobi.")])
    assert r.format("txt") == "Hello there.\nGeneral Kenobi.\n"
    assert r.format("srt") == ("1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n"
                               "2\n01:02:03,250 --> 01:02:05,500\nGeneral Kenobi.\n\n")
    assert r.format("vtt").startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n\n01:02:03.250")
    d = json.loads(r.format("json"))
    assert d["text"] == r.text and d["segments"][1]["start"] == 3723.25 and d["segments"][1]["id"] == 1
    with pytest.raises(ValueError, match="unknown transcript format"):
        r.format("doc")


def test_codec_tokens_are_transcribed_through_their_codec(tok):
    from audiokit.codec.codec import Codec
    from audiokit.codec.model import CodecModel

    torch.manual_seed(0)
    codec = Codec(CodecModel(sample_rate=16000, encoder_dim=4, encoder_rates=[2, 4, 5], decoder_dim=32, decoder_rates=[5, 4, 2],
                             n_codebooks=2, codebook_size=64, codebook_dim=4))
    t = _transcriber(tok)
    tokens = codec.encode(_voice(2.0), 16000)
    via_tokens = t.transcribe(tokens, codec=codec, temperature=0.0, silence_threshold_db=None)
    via_audio = t.transcribe(codec.decode(tokens)[0], 16000, temperature=0.0, silence_threshold_db=None)
    assert _key(via_tokens) == _key(via_audio)
    with pytest.raises(ValueError, match="need the codec"):
        t.transcribe(tokens)


@pytest.fixture
def readable_bytes(monkeypatch):
    """Random test models emit arbitrary byte tokens, mostly invalid UTF-8, which transcription drops (no
    U+FFFD); tests of output formats need text, so here every byte above 127 reads as a letter."""
    real = WhisperTokenizer.decode_bytes
    monkeypatch.setattr(WhisperTokenizer, "decode_bytes", lambda self, ids, skip_special=True: bytes(
        b if b < 128 else 97 + b % 26 for b in real(self, ids, skip_special)))


def test_transcribe_cli(tmp_path, tok, capsys, readable_bytes):
    t = _transcriber(tok, boost={tok.eot: 3.0})
    t.export(tmp_path / "model")
    files = []
    for i, secs in enumerate((2.0, 41.0)):
        files.append(str(tmp_path / f"clip{i}.wav"))
        sf.write(files[-1], _voice(secs, seed=i).numpy(), 16000)
    assert main(["transcribe", *files, "--model", str(tmp_path / "model"), "--format", "all", "--output-dir", str(tmp_path / "out"),
                 "--temperature", "0"]) == 0
    for i in range(2):
        for fmt in ("txt", "srt", "vtt", "json"):
            assert (tmp_path / "out" / f"clip{i}.{fmt}").exists()
    d = json.loads((tmp_path / "out" / "clip1.json").read_text())
    assert d["duration"] == pytest.approx(41.0) and d["segments"][-1]["end"] <= 41.0
    alone = t.transcribe(files[1], temperature=0.0)
    assert [s["text"] for s in d["segments"]] == [s.text for s in alone.segments]
    capsys.readouterr()
    assert main(["transcribe", files[0], "--model", str(tmp_path / "model"), "--format", "srt", "--temperature", "0"]) == 0
    assert "-->" in capsys.readouterr().out
    assert main(["transcribe", files[0], "--model", str(tmp_path / "model"), "--dtype", "bfloat16", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["duration"] == pytest.approx(2.0)
    # a corrupt input: one line, nothing written
    (tmp_path / "bad.wav").write_bytes(b"nonsense")
    assert main(["transcribe", files[0], str(tmp_path / "bad.wav"), "--model", str(tmp_path / "model"),
                 "--output-dir", str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err
    assert "bad.wav" in err and "Traceback" not in err and not (tmp_path / "out2").exists()
    assert main(["transcribe", files[0], "--model", str(tmp_path / "nothing")]) == 2
    assert "no such model" in capsys.readouterr().err


def test_drafted_greedy_decoding_up_to_the_context_limit(tok):
    """A 64-token context that greedy decoding fills: drafts never run past it, and the tokens and scores are
    those of one pass per token, with and without timestamps and a previous-text prompt."""
    from audiokit.asr.decoding import DecodingOptions, decode
    from audiokit.asr.features import log_mel_spectrogram, pad_or_trim

    t = _transcriber(tok, seed=3)
    n = 2 * t.model.dims.n_audio_ctx * 160
    mels = torch.stack([log_mel_spectrogram(pad_or_trim(_voice(2.0, seed=s), n), padding=0) for s in range(2)])
    for case in (dict(without_timestamps=True), dict(), dict(prompt="the quick brown fox")):
        plain = decode(t.model, tok, mels, DecodingOptions(language=None, suppress_tokens=[tok.eot], sample_len=64, **case))
        for k in (2, 8):
            got = decode(t.model, tok, mels, DecodingOptions(language=None, suppress_tokens=[tok.eot], sample_len=64, draft_tokens=k, **case))
            assert [g.tokens for g in got] == [p.tokens for p in plain], (case, k)
            assert [g.avg_logprob for g in got] == pytest.approx([p.avg_logprob for p in plain], abs=1e-5)
    assert max(len(p.tokens) for p in plain) > 40  # the context, not the end token, stopped it


# ---------------------------------------------------------------- screened vocabulary projection (asr/screen.py)
SCREEN_KINDS = ["bfloat16", "float16", "int8"]


@pytest.fixture(params=SCREEN_KINDS)
def screen_kind(request, monkeypatch):
    """Screens built in the test use this operand (the CPU's fastest is otherwise chosen by timing)."""
    from audiokit.asr import screen as screen_mod

    pick = screen_mod._fastest_operand
    monkeypatch.setattr(screen_mod, "_fastest_operand", lambda text, weight, kind=None: pick(text, weight, request.param))
    return request.param


def test_screen_error_bound_holds_and_is_tight_enough_to_screen(screen_kind):
    """The bound every screened decision rests on: |exact - approximate| <= half-width + relative |approximate|
    for every text logit (exact in float64), at several state scales and with rows of very different norms; the
    timestamp rows are float32-exact. And the bound is not vacuous (errors reach a good part of it). For each
    operand the screen may pick (bfloat16, float16, or the two int8 products)."""
    from audiokit.asr.screen import VocabScreen

    g = torch.Generator().manual_seed(0)
    V, D, split = 6000, 384, 4500
    E = torch.nn.functional.normalize(torch.randn(V, D, generator=g), dim=1) * (0.5 + 0.5 * torch.rand(V, 1, generator=g))
    longest = E[:split].norm(dim=1).topk(32).indices
    screen = VocabScreen(E, split)
    assert screen.operand.kind == screen_kind
    worst = 0.0
    for scale in (1.0, 20.0, 300.0):
        # random states, and states along the longest rows: their logits are as large as logits get, where the
        # output's own rounding (2^-8 |a|) is the error to cover
        h = torch.cat([torch.randn(32, D, generator=g) / D ** 0.5, E[longest] / E[longest].norm(dim=1, keepdim=True)]) * scale
        approx, half = screen.approx(h)
        exact = h.double() @ E.double().T
        err = (approx.double() - exact).abs()
        bound = half.double()[:, None] + screen.relative * approx.double().abs()
        assert (err[:, :split] <= bound[:, :split]).all(), scale
        assert (err[:, split:] <= 1e-5 * exact[:, split:].abs().max()).all()
        worst = max(worst, float((err[:, :split] / bound[:, :split]).max()))
    assert worst > 0.05


def test_int8_screen_declines_what_it_cannot_bound_and_is_not_trusted_unchecked(monkeypatch):
    """States of one sign leave no room in their own range for the residual rows: the int8 operand declines
    and the screen returns exact float32 logits (half-width 0). A kernel that quantizes otherwise than
    assumed (the check at build fails) is not used: the half-precision operands are timed instead."""
    from audiokit.asr import screen as screen_mod

    g = torch.Generator().manual_seed(2)
    E = torch.randn(3000, 64, generator=g) / 8
    screen = screen_mod.VocabScreen(E, 2500, kind="int8")
    h = torch.rand(2, 64, generator=g) + 1.0  # all positive
    logits, half = screen.approx(h)
    assert torch.equal(half, torch.zeros(2)) and torch.allclose(logits, h @ E.T, atol=1e-6)
    h = torch.randn(2, 64, generator=g)
    logits, half = screen.approx(h)
    assert (half > 0).all() and not torch.equal(logits[:, :2500], h @ E[:2500].T)
    monkeypatch.setattr(screen_mod._Int8Operand, "check", lambda self, h: False)
    assert screen_mod._fastest_operand(E[:2500], E)[0].kind in ("bfloat16", "float16")
    with pytest.raises(RuntimeError, match="int8"):
        screen_mod.VocabScreen(E, 2500, kind="int8")


def _screened(opts, screen):
    from dataclasses import replace

    return replace(opts, screen_vocab=screen)


def test_screened_choice_is_the_float32_choice_on_ties_the_screen_cannot_see(tok, screen_kind):
    """Pairs of tokens whose float32 logits differ by 2e-5 (far below the screen's resolution: bfloat16 sees
    them equal and would pick the lower id; every operand's error bound is wider than the gap): the screened
    rules still pick the float32 winner, greedy and top-k (beam), and compute only a few logits exactly."""
    from audiokit.asr.decoding import _Search

    t = _transcriber(tok)
    D, tb = t.model.dims.n_text_state, tok.timestamp_begin
    g = torch.Generator().manual_seed(3)
    h = torch.nn.functional.layer_norm(torch.randn(4, D, generator=g), (D,))
    pairs = [(20, 40, +2e-5), (60, 61, -2e-5), (100, 150, +2e-5), (200, 201, +2e-5)]  # (a, b, exact b - a)
    with torch.no_grad():
        E = t.model.decoder.token_embedding.weight
        for r, (a, b, delta) in enumerate(pairs):
            E[a] = 6.0 * h[r] / h[r].norm() ** 2 + 0.01 * torch.randn(D, generator=g)  # logit ~6: the row's top
            E[b] = E[a] + delta * h[r] / h[r].norm() ** 2
    winners = [b if delta > 0 else a for a, b, delta in pairs]
    assert (h.double() @ E.double().T).argmax(-1).tolist() == winners  # in exact arithmetic, each pair tops its row
    opts = DecodingOptions(without_timestamps=True, suppress_tokens=[])
    screened, plain = _Search(t.model, tok, _screened(opts, True)), _Search(t.model, tok, _screened(opts, False))
    assert screened.screen is not None and plain.screen is None
    state = screened._seq_state(torch.full((4, 3), 5))
    approx, half = screened._project(h)
    assert (half > 2e-5).all()  # the approximation alone cannot order the pairs
    if screen_kind == "bfloat16":
        assert approx[:, :tb].max(-1).indices.tolist() == [a for a, _, _ in pairs]  # it sees them equal: lower id
    before = screened.screen.refined
    got = screened._filtered(h, approx, half, *state)
    want = plain._filtered(h, *plain._project(h), *state)
    assert got.max(-1).indices.tolist() == want.max(-1).indices.tolist() == winners
    assert screened.screen.refined - before <= 4 * 6  # a handful per row, not the vocabulary
    for top in (2, 5):
        approx, half = screened._project(h)
        got = screened._filtered(h, approx, half, *state, top=top).topk(top)
        want = plain._filtered(h, *plain._project(h), *state, top=top).topk(top)
        assert got.indices.tolist() == want.indices.tolist()
        assert torch.allclose(got.values, want.values, atol=1e-6)


@pytest.mark.parametrize("case", [dict(), dict(without_timestamps=True), dict(beam_size=3), dict(draft_tokens=4),
                                  dict(draft_tokens=4, prompt="the quick brown fox")])
def test_screened_decoding_equals_float32_decoding(tok, case, screen_kind):
    """Whole decodes (greedy, beam, drafted, timestamps, a batch of windows) with the screen forced on equal
    those with the float32 projection: tokens, and log-probabilities to 5e-4: the normaliser takes approximate
    values for the tokens far from the top, whose errors average out over 51,865 tokens (1e-5, the openai-whisper
    parity tests run screened) but less over this model's 300."""
    t = _transcriber(tok, seed=4, boost={tok.eot: 2.0})
    mels = torch.stack([log_mel_spectrogram(pad_or_trim(_voice(2.0, seed=s), 250 * 320)) for s in range(3)])
    opts = DecodingOptions(language=None, sample_len=40, **case)
    plain = decode(t.model, tok, mels, _screened(opts, False))
    screened = decode(t.model, tok, mels, _screened(opts, True))
    assert [s.tokens for s in screened] == [p.tokens for p in plain]
    assert [s.avg_logprob for s in screened] == pytest.approx([p.avg_logprob for p in plain], abs=5e-4)
    assert sum(len(p.tokens) for p in plain) > 20
    if not case.get("without_timestamps"):
        assert any(x >= tok.timestamp_begin for p in plain for x in p.tokens)


def test_screen_follows_the_weights():
    """The screen is cached on the decoder and rebuilt when the embedding changes in place."""
    from audiokit.asr.screen import screen_for

    model = ASRModel(ModelDimensions(n_mels=80, n_audio_ctx=10, n_audio_state=8, n_audio_head=2, n_audio_layer=1,
                                     n_vocab=2000, n_text_ctx=8, n_text_state=8, n_text_head=2, n_text_layer=1))
    first = screen_for(model.decoder, 1500)
    assert screen_for(model.decoder, 1500) is first
    with torch.no_grad():
        model.decoder.token_embedding.weight[3] *= 2
    second = screen_for(model.decoder, 1500)
    assert second is not first
    h = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
    want = (h @ model.decoder.token_embedding.weight.detach().T)[:, 3]
    for screen, close in ((second, True), (first, False)):
        approx, half = screen.approx(h)
        assert bool(((approx[:, 3] - want).abs() <= half + 1e-2 * want.abs()).all()) == close


def test_screen_is_used_only_where_it_pays(monkeypatch):
    """screen_vocab=None (auto) screens only products of at most as many states as paid when the screen was built
    (0: none); screen_vocab=True screens every product; the measured operand (int8, or bfloat16 / float16 where
    this PyTorch has no int8 kernel) approximates the text rows' logits within its bound."""
    from audiokit.asr import screen as screen_mod
    from audiokit.asr.decoding import DecodingOptions, _Search
    from audiokit.asr.tokenizer import WhisperTokenizer, load_ranks
    from audiokit.assets import ASSETS_DIR

    tok = WhisperTokenizer(load_ranks(ASSETS_DIR / "gpt2.tiktoken.gz"), multilingual=False, language=None)
    model = ASRModel(ModelDimensions(n_mels=80, n_audio_ctx=10, n_audio_state=8, n_audio_head=2, n_audio_layer=1,
                                     n_vocab=tok.n_vocab, n_text_ctx=8, n_text_state=8, n_text_head=2, n_text_layer=1))
    weight = model.decoder.token_embedding.weight.detach()
    operand, states = screen_mod._fastest_operand(weight[: tok.timestamp_begin], weight)
    assert operand.kind in ("int8", "bfloat16", "float16") and states in (0, 1, 9)
    h = torch.randn(3, 8)
    text = torch.empty(3, tok.timestamp_begin)
    half = operand.text_logits(h, text)
    assert (((h @ weight[: tok.timestamp_begin].T) - text).abs() <= half[:, None] + operand.relative * text.abs()).all()
    for measured, option, screened in ((0, None, {1: False, 4: False}), (1, None, {1: True, 4: False}),
                                       (9, None, {1: True, 4: True}), (0, True, {1: True, 4: True})):
        monkeypatch.setattr(screen_mod, "_fastest_operand", lambda text, weight, kind=None, m=measured:
                            (screen_mod._HalfOperand(text, text.bfloat16().T), m))
        model.decoder.__dict__.pop("_vocab_screen", None)
        search = _Search(model, tok, DecodingOptions(temperature=0.0, screen_vocab=option, language=None))
        for n, want in screened.items():
            _, half = search._project(torch.randn(n, 8))
            assert (half is not None) == want, (measured, option, n)
