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
    # an official-layout .pt needs its rank file: beside it, or given
    torch.save({"dims": t.model.dims.to_dict(), "model_state_dict": t.model.state_dict()}, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="needs its tokenizer ranks"):
        Transcriber.load(tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="tokens with the special tokens"):
        Transcriber.load(tmp_path / "w.pt", vocab=tmp_path / "vocab.tiktoken")  # 300 ranks + 1608 Whisper specials


def test_load_refusals(tmp_path, tok):
    t = _transcriber(tok)
    t.export(tmp_path / "ok")
    with pytest.raises(CheckpointError, match="no such model"):
        Transcriber.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
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
    # the same audio without the energy gate is decoded, and this random model does "hear" something in it
    assert t.transcribe(torch.zeros(16000 * 3), 16000, silence_threshold_db=None, no_speech_threshold=None,
                        logprob_threshold=None, temperature=0.0).text != ""
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


def test_transcribe_cli(tmp_path, tok, capsys):
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
