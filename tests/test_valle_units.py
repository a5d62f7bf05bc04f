"""VALL-E and Tortoise on units (audiokit.valle.units, audiokit.tortoise.units): the stores ``audiokit units`` writes,
the units decoder's training, the units TTSs' synthesis, export/load and bad input, and the recipe's commands end to
end on a tiny corpus."""
import json

import pytest
import torch
from test_asr_transcribe import SENTENCES, _transcriber

from audiokit.cli import main
from audiokit.codec.codec import Codec
from audiokit.codec.model import CodecModel
from audiokit.codec.phones import spoken
from audiokit.codec.units import UnitTokenizer, expand, runs_info
from audiokit.tokens import CodecMismatchError, TokenStore
from audiokit.tts import TTSLoadError
from audiokit.valle.data import ValleDataset, collate_valle
from audiokit.valle.model import ValleAR, ValleDims, ValleNAR
from audiokit.valle.lightning import UnitsDecoderModule, mel_windows
from audiokit.valle.model import UnitsDecoder, UnitsDecoderDims
from audiokit.valle.units import UnitsValleTTS, lengths_from

# a tiny codec at the units' 50 frames/s (hop 320 at 16 kHz), so units and codes line up frame for frame
GEN = dict(sample_rate=16000, encoder_dim=4, encoder_rates=[4, 8, 10], decoder_dim=32, decoder_rates=[10, 8, 4],
           n_codebooks=4, codebook_size=32, codebook_dim=4)
K = 8  # units


def _codec(seed=0):
    torch.manual_seed(seed)
    return Codec(CodecModel(**GEN), name=f"c{seed}")


def _voice(seconds=2.0, sr=16000, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * sr)) / sr
    f = 150 + 100 * (t * 2).floor() % 3  # a few distinct sounds, so the units change
    return (0.3 * torch.sin(2 * torch.pi * f * t) + 0.02 * torch.randn(len(t), generator=g)).float()


@pytest.fixture(scope="module")
def work(synth_corpus, tmp_path_factory):
    """The tiny corpus tokenized by a tiny codec, an exported tiny ASR, and ``audiokit units`` run on them."""
    from audiokit.asr.tokenizer import WhisperTokenizer
    from audiokit.text import BPETokenizer

    corpus, _, _ = synth_corpus
    root = tmp_path_factory.mktemp("units")
    _codec(0).export(root / "codec")
    asr = _transcriber(WhisperTokenizer.from_bpe(BPETokenizer.train(SENTENCES, vocab_size=300)))
    asr.model.encoder.positional_embedding.zero_()
    asr.export(root / "asr")
    assert main(["-q", "tokenize", "--manifest", *(str(corpus / f"{s}.jsonl") for s in ("train", "valid", "test")),
                 "--codec", str(root / "codec"), "--out", str(root / "tokens")]) == 0
    assert main(["-q", "units", "--asr", str(root / "asr"), "--tokens", str(root / "tokens"), "--out", str(root / "units"),
                 "-k", str(K), "--fit-items", "10"]) == 0
    return root


def test_units_writes_frames_runs_and_stacked_stores_that_agree(work):
    codec, frames = TokenStore(work / "tokens"), TokenStore(work / "units/frames")
    runs, stacked = TokenStore(work / "units/runs"), TokenStore(work / "units/stacked")
    units = UnitTokenizer.load(work / "units/tokenizer")
    assert units.k == K and len(frames) == len(runs) == len(stacked) == len(codec) > 10
    for key in codec.ids():
        c, u = codec[key].codes[0], frames[key].codes[0]
        assert u.shape == (1, c.shape[1]) and int(u.max()) < K  # frame for frame with the codec
        r = runs[key].codes[0]
        assert torch.equal(expand(r[0], r[1]), u[0]) and bool((r[0, 1:] != r[0, :-1]).all() or (r[1] == K - 1).any())
        assert torch.equal(stacked[key].codes[0], torch.cat([u, c]))
    assert runs[codec.ids()[0]].codec.same_codec(runs_info(units.info))
    for s in ("train", "valid", "test"):  # every store carries the manifests
        assert (work / "units/runs" / f"{s}.jsonl").read_text() == (work / "tokens" / f"{s}.jsonl").read_text()
    before = (work / "units/stacked/index.json").stat().st_mtime_ns
    assert main(["-q", "units", "--asr", str(work / "asr"), "--tokens", str(work / "tokens"), "--out",
                 str(work / "units"), "-k", str(K)]) == 0  # a rerun keeps what is there
    assert (work / "units/stacked/index.json").stat().st_mtime_ns == before


@pytest.fixture(scope="module")
def phones(work, tmp_path_factory):
    """``audiokit units --phones`` on the tiny corpus (a CTC head of a few steps: the alignment still spells
    every transcript)."""
    out = tmp_path_factory.mktemp("phones") / "phones"
    assert main(["-q", "units", "--phones", "--asr", str(work / "asr"), "--tokens", str(work / "tokens"), "--out",
                 str(out), "--fit-items", "10", "--fit-steps", "3"]) == 0
    return out


def test_units_phones_aligns_every_utterance_to_its_transcript(work, phones):
    from audiokit.codec.phones import SILENCE, PhoneTokenizer
    from audiokit.data.manifest import entry_audio, read_manifest

    out = phones
    units = UnitTokenizer.load(out / "tokenizer")
    codec, frames, stacked = TokenStore(work / "tokens"), TokenStore(out / "frames"), TokenStore(out / "stacked")
    assert isinstance(units, PhoneTokenizer) and len(frames) == len(codec)
    for e in list(read_manifest(work / "tokens/train.jsonl"))[:4]:
        u = frames[e["id"]].codes[0, 0]
        wav, sr = entry_audio(e, 16000)
        assert torch.equal(u, units.align(wav, sr, e["text"])[: len(u)])  # the store holds the forced alignment
        heard = torch.unique_consecutive(u[u != SILENCE])
        assert len(heard) >= 0.5 * len(units.labels(e["text"]))  # the transcript's phones, not a best guess
        assert torch.equal(stacked[e["id"]].codes[0, 0], u)


def test_units_command_refuses_bad_input_in_one_line(work, tmp_path, capsys):
    for args in (["--asr", str(tmp_path / "none"), "--tokens", str(work / "tokens")],
                 ["--asr", str(work / "asr"), "--tokens", str(tmp_path)],
                 ["--asr", str(work / "asr"), "--tokens", str(work / "tokens"), "-k", "1"]):
        assert main(["units", *args, "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("audiokit: error:") and "Traceback" not in err


@pytest.mark.parametrize("fft", [False, True], ids=["attention", "conv+run-positions"])
def test_units_decoder_memorises_its_latents(work, fft):
    """The decoder's learning test: a few dozen steps on four utterances bring the latent's error far down."""
    store = work / "units/stacked"
    from audiokit.data.manifest import read_manifest

    entries = [e for e in read_manifest(store / "train.jsonl")][:4]
    ds = ValleDataset(entries, store=store, prompt_seconds=0.5, prefix_prob=0.0, train=False)
    batch = collate_valle([ds[i] for i in range(4)])
    torch.manual_seed(0)
    extra = dict(conv_kernel=5, run_positions=True) if fft else {}
    m = UnitsDecoderModule(str(work / "codec"), n_units=K, n_codebooks=4, d_model=32, n_layer=2, voice_dim=16, **extra)
    _, valid, _, _, z = m._split(batch)
    m.set_normalization(z[valid])
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = m._loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0], (losses[0], losses[-1])
    if fft:  # padding never reaches a valid frame: an item alone and beside a longer one decode the same
        units, valid, voice, voice_frames, _ = m._split(batch)
        n = int(valid[0].sum())
        with torch.no_grad():
            alone = m.model(units[:1, :n], valid[:1, :n], voice[:1], voice_frames[:1])
            both = m.model(units, valid, voice, voice_frames)[:1, :n]
        assert n < units.shape[1] and torch.allclose(alone, both, atol=1e-5)
        return
    with pytest.raises(CodecMismatchError, match="n_codebooks"):
        UnitsDecoderModule(str(work / "codec"), n_units=K, n_codebooks=5)
    # mel_weight: the codec decoder's mel error joins the loss, and its gradient reaches the decoder's weights only
    m = UnitsDecoderModule(str(work / "codec"), n_units=K, n_codebooks=4, d_model=32, n_layer=2, voice_dim=16, mel_weight=1.0)
    m.log = m.log_dict = lambda *a, **k: None
    mse, mel = m._loss(batch, mel=True)
    assert float(mel) > 0 and torch.isfinite(mel)
    m.training_step(batch, 0).backward()
    assert m.model.out.weight.grad.abs().sum() > 0 and all(p.grad is None for p in m._codec.model.parameters())
    assert "_codec" not in dict(m.named_modules()) and not any(k.startswith("_codec") for k in m.state_dict())
    # mel_crop_frames: the mel term on one window per utterance; its gradient still reaches the decoder
    m = UnitsDecoderModule(str(work / "codec"), n_units=K, n_codebooks=4, d_model=32, n_layer=2, voice_dim=16,
                           mel_weight=1.0, mel_crop_frames=5)
    m.log = m.log_dict = lambda *a, **k: None
    m.training_step(batch, 0).backward()
    assert m.model.out.weight.grad.abs().sum() > 0


def test_run_positions_tell_where_a_frame_sits_in_its_run():
    from audiokit.valle.model import run_positions

    u = torch.tensor([[3, 3, 3, 5, 7, 7, 0, 0], [1] * 8])
    since, until = run_positions(u, cap=4)
    assert since.tolist() == [[0, 1, 2, 0, 0, 1, 0, 1], [0, 1, 2, 3, 4, 4, 4, 4]]
    assert until.tolist() == [[2, 1, 0, 0, 1, 0, 1, 0], [4, 4, 4, 4, 3, 2, 1, 0]]


def test_mel_windows_take_the_same_window_inside_each_utterance():
    T, lengths = 20, torch.tensor([20, 12, 3])
    frames = torch.arange(T)[None, :, None].expand(3, T, 2).float() + 100 * torch.arange(3)[:, None, None]
    valid = torch.arange(T)[None] < lengths[:, None]
    g = torch.Generator().manual_seed(0)
    starts = set()
    for _ in range(50):
        w, v = mel_windows((frames, valid), lengths, 6, generator=g)
        assert w.shape == (3, 6, 2) and v.shape == (3, 6)
        for b in range(3):
            first = int(w[b, 0, 0]) - 100 * b
            assert w[b, :, 0].tolist() == [100 * b + first + i for i in range(6)]   # contiguous, same row
            assert v[b].tolist() == valid[b, first:first + 6].tolist()             # the mask moved with it
        assert int(w[1, -1, 0]) - 100 < 12 and int(w[2, 0, 0]) == 200              # inside; a short one keeps its start
        starts.add(int(w[0, 0, 0]))
    assert len(starts) > 5 and max(starts) == 14                                    # random, up to the last window


def test_lengths_from_reads_the_mean_or_the_mode():
    p = torch.tensor([[0.0, 0.5, 0.0, 0.5], [0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    assert lengths_from(p, "mean").tolist() == [2, 3, 1] and lengths_from(p, "mode").tolist() == [1, 3, 1]
    with pytest.raises(ValueError, match="lengths_rule"):
        lengths_from(p, "median")


@pytest.fixture(scope="module")
def tts(work):
    codec, units = Codec.load(work / "codec"), UnitTokenizer.load(work / "units/tokenizer")
    torch.manual_seed(1)
    ar = ValleAR(ValleDims(codebook_size=K, n_codebooks=1, d_model=32, n_head=4, n_layer=1, prompt_kinds=True))
    nar = ValleNAR(ValleDims(codebook_size=K, n_codebooks=2, d_model=32, n_head=4, n_layer=1))
    dec = UnitsDecoder(UnitsDecoderDims(K, codec.model.latent_dim, 32, 4, d_model=32, n_layer=1, voice_dim=16))
    return UnitsValleTTS(ar.eval(), nar.eval(), codec, units, dec, asr=False, name="random-units", prompt_runs=20)


def test_synthesis_speaks_units_over_codes_and_both_decodings_are_audio(tts):
    out = tts.synthesize("One two. Three!", _voice(), sample_rate=16000, prompt_text="", temperature=0)
    assert out.sentences == ["One two.", "Three!"] and len(out.codes) == 2
    for grid in out.codes:  # the units it spoke (row 1) over the codec codes of the decoder's latent
        assert grid.shape[0] == 1 + 4 and int(grid[0].max()) < K and int(grid[1:].max()) < 32
    from audiokit.valle.generate import SamplingOptions

    assert tts.max_runs(10, SamplingOptions()) == 40  # 3 runs a phoneme + 10: a missed stop ends early
    assert tts.max_runs(10, SamplingOptions(max_seconds_per_phoneme=0.01, min_max_seconds=0.1)) == 5
    pause = int(0.2 * 16000)
    assert out.audio.shape[-1] == sum(g.shape[1] for g in out.codes) * 320 + pause
    again = tts.synthesize("One two. Three!", _voice(), sample_rate=16000, prompt_text="", temperature=0)
    assert torch.equal(out.audio, again.audio)  # greedy: reproducible
    codes = tts.synthesize("One two.", _voice(), sample_rate=16000, prompt_text="", temperature=0, nar_decoding="codes")
    assert torch.equal(codes.codes[0], out.codes[0]) and not torch.equal(codes.audio, out.audio[: codes.audio.shape[-1]])
    tokens = tts.codec.encode(_voice(), 16000)  # codec tokens as a prompt: re-encoded to units
    grid, _ = tts.prepare_prompt(tokens, prompt_text="")
    assert grid.codec.same_codec(tts.grid) and grid.codes.shape[1] == 5


def test_export_load_round_trip_and_mismatched_parts(tts, tmp_path):
    import audiokit

    folder = tts.export(tmp_path / "units-valle")
    again = audiokit.TTS.load(folder)
    assert isinstance(again, UnitsValleTTS) and again.prompt_runs == 20 and again.units.info == tts.units.info
    a = tts.synthesize("Hello there.", _voice(), sample_rate=16000, prompt_text="", temperature=0)
    b = again.synthesize("Hello there.", _voice(), sample_rate=16000, prompt_text="", temperature=0)
    assert torch.equal(a.audio, b.audio)
    data = (folder / "decoder.safetensors").read_bytes()
    (folder / "decoder.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(TTSLoadError, match="corrupt or truncated"):
        audiokit.TTS.load(folder)
    # float16: the decoder's weights halve, its normalization (the latent's scale) stays float32, its latents barely move
    from safetensors.torch import load_file

    half = tts.export(tmp_path / "half", dtype=torch.float16)
    stored = load_file(str(half / "decoder.safetensors"))
    assert stored["mean"].dtype == stored["std"].dtype == torch.float32
    assert {v.dtype for k, v in stored.items() if k not in ("mean", "std") and v.is_floating_point()} == {torch.float16}
    dec16 = audiokit.TTS.load(half).decoder
    u, vc = torch.randint(0, K, (1, 30)), torch.randint(0, 32, (1, 4, 30))
    a, b = (d.latents(u, torch.ones(1, 30, dtype=torch.bool), vc) for d in (tts.decoder, dec16))
    assert not torch.equal(a, b) and (a - b).norm() < 0.01 * a.norm()
    wrong = ValleAR(ValleDims(codebook_size=K + 1, n_codebooks=1, d_model=32, n_head=4, n_layer=1))
    with pytest.raises(CodecMismatchError, match="AR expects"):
        UnitsValleTTS(wrong, tts.nar, tts.codec, tts.units, tts.decoder)


@pytest.fixture(scope="module")
def tortoise(tts):
    """Tortoise on the same units, lengths NAR and decoder as ``tts`` (random AR and CLVP over the runs)."""
    from audiokit.text import BPETokenizer
    from audiokit.tortoise.model import CLVP, TortoiseAR, TortoiseDims
    from audiokit.tortoise.units import UnitsTortoiseTTS

    tok = BPETokenizer.train(SENTENCES * 3, vocab_size=300)
    dims = TortoiseDims(text_vocab=300, codebook_size=K, n_codebooks=2, d_model=32, n_head=4, n_layer=1, n_cond_layer=1,
                        max_text=64, max_speech=200, clvp_layer=1, clvp_dim=32, clvp_latent=16)
    torch.manual_seed(2)
    return UnitsTortoiseTTS(TortoiseAR(dims).eval(), CLVP(dims).eval(), tts.nar, tts.decoder, tts.codec, tok, tts.units,
                            name="random-tortoise-units", voice_runs=20, prompt_runs=20)


def test_tortoise_on_units_reranks_runs_decodes_them_and_round_trips(tortoise, tmp_path):
    """CLVP ranks the AR's candidate runs; the best goes through the lengths NAR and the decoder; k = 2 gives the
    second one as the alternative; an export loads as the same model (same audio) and refuses a broken part."""
    import audiokit
    from audiokit.tortoise.units import UnitsTortoiseTTS

    voice = _voice()
    out = tortoise.synthesize("One two. Three!", voice, sample_rate=16000, candidates=4, k=2, seed=0)
    assert set(out.timings) == {"ar", "clvp", "decoder", "codec"} and len(out.codes) == 2 and len(out.alternatives) == 1
    assert all(int(c.max()) < K for c in out.codes)
    # the chosen runs are the AR's candidate CLVP scores best, drawn with the same seed
    from audiokit.tortoise.generate import sample_candidates
    from audiokit.valle.generate import SamplingOptions

    clips = tortoise.prepare_voice(voice, 16000)
    assert clips[0].shape[0] == 1 + 4  # units over the decoder's codebooks
    voice_ar, (prompt, codes) = tortoise.voice_latents(clips)
    assert prompt.shape[0] == 2 and prompt.shape[1] <= 20 and torch.equal(codes, clips[0][1:])
    ids = tortoise._sentences("One two.")[0][1]
    opts = SamplingOptions(temperature=0.8, top_p=0.8, seed=0)
    cands = sample_candidates(tortoise.ar, voice_ar, ids, 4, tortoise.max_speech("One two.", ids), opts)
    best = int(tortoise.rank(ids, cands).argmax())
    assert torch.equal(out.codes[0], cands[best])
    pause = int(0.2 * 16000)
    assert out.audio.shape[-1] > pause and out.audio.abs().max() > 0
    folder = tortoise.export(tmp_path / "tortoise-units")
    again = audiokit.TTS.load(folder)
    assert isinstance(again, UnitsTortoiseTTS) and (again.voice_runs, again.prompt_runs) == (20, 20)
    b = again.synthesize("One two. Three!", voice, sample_rate=16000, candidates=4, k=2, seed=0)
    assert torch.equal(out.audio, b.audio)
    data = (folder / "nar.safetensors").read_bytes()
    (folder / "nar.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(TTSLoadError, match="corrupt or truncated"):
        audiokit.TTS.load(folder)
    from audiokit.tortoise.model import TortoiseAR, TortoiseDims

    wrong = TortoiseAR(TortoiseDims(**{**tortoise.ar.dims.to_dict(), "n_codebooks": 4}))  # reads codec codes, not runs
    with pytest.raises(CodecMismatchError, match="voice encoder"):
        UnitsTortoiseTTS(wrong, tortoise.clvp, tortoise.nar, tortoise.decoder, tortoise.codec, tortoise.tokenizer,
                         tortoise.units)


def test_valle_and_tortoise_on_one_set_of_units_share_their_parts_in_a_bundle(tts, tortoise, tmp_path):
    """``audiokit models --share``: Tortoise's copies of the units, lengths NAR and decoder VALL-E also holds become
    links to VALL-E's; both load from the bundle and speak as before; moved apart, Tortoise names what is missing."""
    import shutil

    import audiokit
    from audiokit.pretrained import check_files, read_card, write_card

    bundle = tmp_path / "bundle"
    for name, model in (("valle", tts), ("tortoise", tortoise)):
        model.export(bundle / name)
        write_card(bundle / name)
    before = tortoise.synthesize("One two.", _voice(), sample_rate=16000, candidates=2, seed=0).audio
    assert main(["-q", "models", "--share", str(bundle / "valle"), str(bundle / "tortoise")]) == 0
    assert sorted(p.name for p in (bundle / "tortoise").glob("*.link")) == [
        "decoder.safetensors.link", "nar.safetensors.link", "units.link"]
    assert not (bundle / "tortoise" / "units").exists() and (bundle / "valle" / "units").is_dir()
    card = read_card(bundle / "tortoise")
    check_files(bundle / "tortoise", card, hashes=True)
    assert card["shared"]["units"] == "../valle/units" and card["parameters"] > sum(
        p.numel() for p in [*tortoise.ar.parameters(), *tortoise.clvp.parameters()])  # its shared parts count
    again = audiokit.TTS.load(bundle / "tortoise")
    assert torch.equal(again.synthesize("One two.", _voice(), sample_rate=16000, candidates=2, seed=0).audio, before)
    assert audiokit.TTS.load(bundle / "valle").units.info == tts.units.info
    shutil.move(str(bundle / "tortoise"), str(tmp_path / "alone"))
    with pytest.raises(TTSLoadError, match="link: points to .* not there"):
        audiokit.TTS.load(tmp_path / "alone")


def test_phone_units_tts_spell_the_text_in_order_and_free_alignment_does_not(work, phones, tmp_path):
    """VALL-E and Tortoise on phone units: with the monotonic alignment even a random AR says exactly the text's
    phones, in order (each Tortoise candidate too); ``alignment="free"`` lets it say anything; exports keep it."""
    import audiokit
    from audiokit.text import BPETokenizer
    from audiokit.tortoise.generate import sample_candidates
    from audiokit.tortoise.model import CLVP, TortoiseAR, TortoiseDims
    from audiokit.tortoise.units import UnitsTortoiseTTS
    from audiokit.valle.generate import SamplingOptions

    from audiokit.data.manifest import read_manifest

    codec, units = Codec.load(work / "codec"), UnitTokenizer.load(phones / "tokenizer")
    k = units.k  # a training sentence (the tiny table holds its phones), its last clause (one sentence)
    text = max((e["text"] for e in read_manifest(work / "tokens/train.jsonl")), key=lambda t: len(units.labels(t)))
    text = text.rstrip(".!?").split(". ")[-1].split("? ")[-1] + "."
    want = torch.unique_consecutive(units.labels(text)).tolist()
    torch.manual_seed(3)
    ar = ValleAR(ValleDims(codebook_size=k, n_codebooks=1, d_model=32, n_head=4, n_layer=1, prompt_kinds=True))
    nar = ValleNAR(ValleDims(codebook_size=k, n_codebooks=2, d_model=32, n_head=4, n_layer=1))
    dec = UnitsDecoder(UnitsDecoderDims(k, codec.model.latent_dim, 32, 4, d_model=32, n_layer=1, voice_dim=16))
    tts = UnitsValleTTS(ar.eval(), nar.eval(), codec, units, dec, asr=False, prompt_runs=20)
    assert tts.alignment == "monotonic" and len(want) >= 4
    for seed in (None, 0):  # greedy, sampled
        out = tts.synthesize(text, _voice(), sample_rate=16000, prompt_text="", temperature=0 if seed is None else 1.0,
                             seed=seed)
        assert spoken(out.codes[0][0]) == want
    told = tts.synthesize(text, _voice(), sample_rate=16000, prompt_text="three four five", temperature=0)
    assert spoken(told.codes[0][0]) == want  # a prompt transcript is context, not something to say again
    free = UnitsValleTTS(ar.eval(), nar.eval(), codec, units, dec, asr=False, prompt_runs=20, alignment="free")
    assert spoken(free.synthesize(text, _voice(), sample_rate=16000, prompt_text="", temperature=0).codes[0][0]) != want
    assert audiokit.TTS.load(free.export(tmp_path / "free")).alignment == "free"
    assert audiokit.TTS.load(tts.export(tmp_path / "mono")).alignment == "monotonic"
    with pytest.raises(ValueError, match="alignment must be"):
        UnitsValleTTS(ar, nar, codec, units, dec, asr=False, alignment="loose")
    import soundfile as sf  # the CLI's --alignment decodes an export as another export would: mono + free = free

    sf.write(tmp_path / "voice.wav", _voice().numpy(), 16000)
    said = {}
    for name, extra in (("mono", ["--alignment", "free"]), ("free", []), ("mono", [])):
        wav = tmp_path / f"{name}{len(extra)}.wav"
        assert main(["tts", "--model", str(tmp_path / name), "--text", text, "--prompt", str(tmp_path / "voice.wav"),
                     "--prompt-text", "", "--temperature", "0", "--out", str(wav), *extra]) == 0
        said[name, len(extra)] = sf.read(wav)[0]
    assert said["mono", 2].tolist() == said["free", 0].tolist() and len(said["mono", 0]) != len(said["free", 0])

    tok = BPETokenizer.train(SENTENCES * 3, vocab_size=300)
    dims = TortoiseDims(text_vocab=300, codebook_size=k, n_codebooks=2, d_model=32, n_head=4, n_layer=1, n_cond_layer=1,
                        max_text=64, max_speech=200, clvp_layer=1, clvp_dim=32, clvp_latent=16)
    tortoise = UnitsTortoiseTTS(TortoiseAR(dims).eval(), CLVP(dims).eval(), nar, dec, codec, tok, units, voice_runs=20,
                                prompt_runs=20)
    out = tortoise.synthesize(text, _voice(), sample_rate=16000, candidates=4, seed=0)
    assert spoken(out.codes[0]) == want  # CLVP's pick
    ids = tortoise._sentences(text)[0][1]
    voice_ar, _ = tortoise.voice_latents(tortoise.prepare_voice(_voice(), 16000))
    cands = sample_candidates(tortoise.ar, voice_ar, ids, 4, 200, SamplingOptions(seed=0), **tortoise.spelling(text))
    assert all(spoken(c) == want for c in cands)
    tortoise.alignment = "free"
    assert tortoise.spelling(text) == {}
    assert any(spoken(c) != want for c in sample_candidates(tortoise.ar, voice_ar, ids, 4, 200, SamplingOptions(seed=0)))


def test_train_export_tts_and_eval_from_the_cli(work, synth_corpus, tmp_path, capsys, monkeypatch):
    """The recipe's stages 20-23 on the tiny corpus: runs AR, lengths NAR, units decoder, export, tts, eval."""
    corpus, _, _ = synth_corpus
    runs, stacked = work / "units/runs", work / "units/stacked"
    small = ["--model.d_model", "32", "--model.n_head", "2", "--model.n_layer", "1", "--trainer.max_steps", "3",
             "--trainer.val_check_interval", "3", "--trainer.enable_progress_bar", "false"]

    def data(store):
        return ["--data.train_manifest", str(store / "train.jsonl"), "--data.val_manifest", str(store / "valid.jsonl"),
                "--data.token_store", str(store)]

    def out(name):
        return ["--trainer.default_root_dir", str(tmp_path / name), "--trainer.callbacks.init_args.dirpath",
                str(tmp_path / name / "ck")]

    k = ["--model.codebook_size", str(K)]
    assert main(["train", "valle-ar", "--config", "configs/valle/digits_units_ar.yaml", *k, *small, *data(runs), *out("ar")]) == 0
    assert main(["train", "valle-nar", "--config", "configs/valle/digits_units_lengths.yaml", *k, *small, *data(runs),
                 *out("lengths")]) == 0
    assert main(["train", "units-decoder", "--config", "configs/valle/digits_units_decoder.yaml", "--model.codec",
                 str(work / "codec"), "--model.n_units", str(K), "--model.n_codebooks", "4", "--model.voice_dim", "16",
                 "--model.norm_batches", "2", *small, *data(stacked), *out("decoder")]) == 0
    ck = torch.load(tmp_path / "decoder/ck/last.ckpt", map_location="cpu", weights_only=False)
    assert ck["global_step"] == 3 and ck["units_decoder"]["grid"]["n_codebooks"] == 5
    assert float(ck["state_dict"]["model.std"].sum()) != 32.0  # the latent's spread, measured before the first step
    ar, nar, dec = (str(tmp_path / n / "ck/last.ckpt") for n in ("ar", "lengths", "decoder"))
    capsys.readouterr()
    assert main(["export", dec, str(tmp_path / "x")]) == 2
    assert "export from the AR one" in capsys.readouterr().err
    assert main(["export", ar, str(tmp_path / "y"), "--nar", nar, "--codec", str(work / "codec"), "--decoder", dec]) == 2
    assert "--units" in capsys.readouterr().err
    export = ["export", ar, str(tmp_path / "valle"), "--nar", nar, "--codec", str(work / "codec"), "--decoder", dec]
    _codec(1).export(tmp_path / "other")  # another codec: the decoder was trained for the first
    assert main([*export[:6], str(tmp_path / "other"), "--decoder", dec, "--units", str(work / "units/tokenizer")]) == 2
    assert "fingerprint" in capsys.readouterr().err and not (tmp_path / "valle/config.json").exists()
    assert main([*export, "--units", str(work / "units/tokenizer")]) == 0
    card = json.loads((tmp_path / "valle/model.json").read_text())
    assert {k: v["steps"] for k, v in card["training"].items()} == {"ar": 3, "nar": 3, "decoder": 3}
    config = json.loads((tmp_path / "valle/config.json").read_text())
    assert config["units"]["prompt_runs"] == round(0.85 * 50)  # the AR's training prompt, from its checkpoint
    wav = tmp_path / "out.wav"
    prompt = str(next(iter(sorted(corpus.rglob("*.wav")))))
    assert main(["tts", "--model", str(tmp_path / "valle"), "--text", "Four seven.", "--prompt", prompt,
                 "--prompt-text", "", "--out", str(wav), "--seed", "0"]) == 0 and wav.stat().st_size > 1000
    report = tmp_path / "eval.json"
    from audiokit.asr.transcriber import Transcriber

    beams, transcribe = [], Transcriber.transcribe

    def judged(self, *a, **kw):  # what the judge is asked to decode with
        beams.append(kw.get("beam_size"))
        return transcribe(self, *a, **kw)

    monkeypatch.setattr(Transcriber, "transcribe", judged)
    assert main(["eval", "tts", "--manifest", str(corpus / "train.jsonl"), "--model", str(tmp_path / "valle"),
                 "--max-items", "2", "--no-prompt-text", "--temperature", "0", "--judge-beam", "2", "--json", str(report)]) == 0
    assert beams and set(beams) == {2}  # every system (truth, resynthesis, the model) judged with beam 2
    rows = json.loads(report.read_text())["rows"]
    assert main(["eval", "tts", "--manifest", str(corpus / "train.jsonl"), "--model", str(tmp_path / "valle"),
                 "--judge-beam", "0"]) == 2 and "--judge-beam must be at least 1" in capsys.readouterr().err
    assert [r["system"] for r in rows][:2] == ["ground truth", "codec resynthesis"] and rows[2]["rtf"] > 0
    # Tortoise on the same units: its AR and CLVP on the runs, then the same lengths NAR and decoder
    from audiokit.text import BPETokenizer

    BPETokenizer.train(SENTENCES * 3, vocab_size=300).save(tmp_path / "bpe.json")
    tiny = ["--model.text_vocab", "300", "--data.tokenizer", str(tmp_path / "bpe.json"), "--data.voice_seconds", "0.2"]
    assert main(["train", "tortoise-ar", "--config", "configs/tortoise/digits_units_ar.yaml", *k, *tiny, *small,
                 *data(runs), *out("tar")]) == 0
    assert main(["train", "clvp", "--config", "configs/tortoise/digits_units_clvp.yaml", *k, *tiny, "--model.clvp_dim",
                 "32", "--model.clvp_latent", "16", "--model.clvp_layer", "1", *small[6:], *data(runs), *out("clvp")]) == 0
    tar, clvp = str(tmp_path / "tar/ck/last.ckpt"), str(tmp_path / "clvp/ck/last.ckpt")
    units = ["--units", str(work / "units/tokenizer"), "--decoder", dec, "--codec", str(work / "codec")]
    capsys.readouterr()
    assert main(["export", tar, str(tmp_path / "t1"), "--clvp", clvp, "--nar", nar, "--diffusion", dec, *units]) == 2
    assert "no --diffusion" in capsys.readouterr().err and not (tmp_path / "t1").exists()
    assert main(["export", tar, str(tmp_path / "t2"), "--nar", nar, *units]) == 2 and "--clvp" in capsys.readouterr().err
    assert main(["export", tar, str(tmp_path / "tortoise"), "--clvp", clvp, "--nar", nar, *units]) == 0
    card = json.loads((tmp_path / "tortoise/model.json").read_text())
    assert {k: v["steps"] for k, v in card["training"].items()} == {"ar": 3, "clvp": 3, "nar": 3, "decoder": 3}
    assert json.loads((tmp_path / "tortoise/config.json").read_text())["units"]["voice_runs"] == round(0.2 * 50)
    assert main(["tts", "--model", str(tmp_path / "tortoise"), "--text", "Four seven.", "--voice", prompt,
                 "--preset", "ultra_fast", "--out", str(wav), "--seed", "0"]) == 0 and wav.stat().st_size > 1000
