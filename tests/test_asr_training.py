"""ASR training: the windows it builds, SpecAugment, a loss that falls, the `audiokit train asr` / export / eval CLI."""
import json
import os
import subprocess
import sys

import pytest
import torch

from audiokit.asr.lightning import IGNORE, ASRLightningModule
from audiokit.asr.metrics import error_rate, wer_cer
from audiokit.cli import main
from audiokit.data import read_manifest
from audiokit.data.datamodule import SpeechDataModule

DIMS = dict(n_mels=80, n_audio_ctx=250, n_audio_state=48, n_audio_head=2, n_audio_layer=1, n_text_ctx=64,
            n_text_state=48, n_text_head=2, n_text_layer=1)


@pytest.fixture(scope="module")
def bpe(synth_corpus, tmp_path_factory):
    from audiokit.text import BPETokenizer

    path = tmp_path_factory.mktemp("bpe") / "bpe.json"
    BPETokenizer.from_manifest(synth_corpus[0] / "train.jsonl", vocab_size=300).save(path)
    return str(path)


def _batch(corpus, n=6):
    dm = SpeechDataModule(str(corpus / "train.jsonl"), kind="audio", sample_rate=16000, max_duration=4.9,
                          max_batch_size=n, max_batch_seconds=1000)
    dm.setup("fit")
    from audiokit.data.datasets import collate_audio

    ds = dm.datasets["train"]
    return collate_audio([ds[i] for i in range(n)])


def test_training_windows(bpe, synth_corpus):
    module = ASRLightningModule(bpe, dims=DIMS, timestamp_prob=1.0, concat_prob=1.0, no_speech_prob=0.0)
    tok = module.tok
    batch = _batch(synth_corpus[0])
    audio, tokens, _ = module.make_windows(batch, train=True)
    assert audio.shape == (6, 250 * 320)
    for b in range(6):
        seq = [t for t in tokens[b].tolist() if t != IGNORE]
        assert seq[:3] == list(tok.sot_sequence) and seq[-1] == tok.eot
        stamps = [t for t in seq if t >= tok.timestamp_begin]
        assert len(stamps) in (2, 4) and stamps == sorted(stamps) and stamps[-1] <= tok.timestamp_begin + 250
        texts = tok.decode(seq).strip()
        assert texts.startswith(batch["text"][b].strip())
        if len(stamps) == 4:  # a second utterance follows after a gap, as its own segment
            assert texts.endswith(batch["text"][(b + 1) % 6].strip()) and stamps[2] > stamps[1]
        start = (stamps[0] - tok.timestamp_begin) * 320  # the audio sits where its first timestamp says
        n = int(batch["audio_lengths"][b])
        pos = int(audio[b].abs().gt(0).nonzero()[0]) - int(batch["audio"][b].abs().gt(0).nonzero()[0])
        assert abs(start - pos) <= 160  # 20 ms timestamp steps
        assert torch.equal(audio[b, pos:pos + n], batch["audio"][b, :n])
    plain = ASRLightningModule(bpe, dims=DIMS)
    audio, tokens, ctc = plain.make_windows(batch, train=False)  # validation: no timestamps, no mixing
    for b in range(6):
        seq = [t for t in tokens[b].tolist() if t != IGNORE]
        assert seq[3] == tok.no_timestamps and tok.decode(seq[4:-1]).strip() == batch["text"][b].strip()
        assert bytes(ctc[b]).decode() == " " + batch["text"][b].strip()  # the CTC target: the text's bytes
        assert torch.equal(audio[b, : int(batch["audio_lengths"][b])], batch["audio"][b, : int(batch["audio_lengths"][b])])
    silent = ASRLightningModule(bpe, dims=DIMS, no_speech_prob=1.0)
    audio, tokens, ctc_silent = silent.make_windows(batch, train=True)
    assert tokens[0, :3].tolist() == [tok.sot, tok.no_speech, tok.eot] and audio.abs().max() < 0.05
    assert ctc_silent[0] == []


def test_speed_perturbation_changes_tempo_and_pitch_of_training_windows_only(bpe, synth_corpus):
    import numpy as np

    t = torch.arange(16000) / 16000
    tone = torch.sin(2 * torch.pi * 200 * t)
    for factor in (0.9, 1.1):  # played factor x faster: factor x the pitch, 1/factor x the length
        out = ASRLightningModule.speed(tone, factor, room=10 ** 6)
        assert abs(out.shape[0] - 16000 / factor) <= 2
        peak = np.argmax(np.abs(np.fft.rfft(out.numpy()))) * 16000 / out.shape[0]
        assert abs(peak - 200 * factor) < 3
    assert ASRLightningModule.speed(tone, 0.9, room=16500) is tone  # slower would overflow the window: unchanged
    batch = _batch(synth_corpus[0])
    lengths = [int(n) for n in batch["audio_lengths"]]
    module = ASRLightningModule(bpe, dims=DIMS, timestamp_prob=0.0, concat_prob=0.0, no_speech_prob=0.0, speed_perturb=0.1)
    audio, tokens, _ = module.make_windows(batch, train=True)
    heard = [int(audio[b].abs().gt(0).nonzero()[-1]) + 1 for b in range(6)]
    assert any(abs(h - n) > 0.02 * n for h, n in zip(heard, lengths))  # tempo changed
    assert all(0.88 * n <= h <= 1.12 * n + 1 for h, n in zip(heard, lengths))
    seqs = [[t for t in tokens[b].tolist() if t != IGNORE] for b in range(6)]
    assert [module.tok.decode(s[4:-1]).strip() for s in seqs] == [x.strip() for x in batch["text"]]  # text kept
    audio, _, _ = module.make_windows(batch, train=False)  # validation hears the recordings as they are
    for b, n in enumerate(lengths):
        assert torch.equal(audio[b, :n], batch["audio"][b, :n])


def test_training_windows_are_padded_as_transcription_pads_them(bpe, synth_corpus):
    """The log-mel of a training window equals the transcriber's window of the same recording: the file's log-mel,
    then zeros past its end (Whisper's padding). A model trained on silence-padded windows instead hears the zeros
    as more speech and adds words at the end (RESULTS, session 19)."""
    import torch.nn.functional as F

    from audiokit.asr.transcribe import log_mel_long

    module = ASRLightningModule(bpe, dims=DIMS)
    batch = _batch(synth_corpus[0])
    audio, _, _ = module.make_windows(batch, train=False)
    mel = module.window_mel(audio)
    frames = 2 * DIMS["n_audio_ctx"]
    assert mel.shape == (6, 80, frames)
    assert torch.equal(module._loss(batch, train=False)[2], mel)  # what training and validation feed the model
    for b in range(6):
        n = int(batch["audio"][b, : int(batch["audio_lengths"][b])].abs().gt(0).nonzero()[-1]) + 1
        file_mel = log_mel_long(batch["audio"][b, :n], 80, module.window_samples)
        content = file_mel.shape[-1] - frames
        want = F.pad(file_mel[:, :content], (0, frames - content))
        assert content < frames and torch.allclose(mel[b], want, atol=1e-4), b
        assert mel[b, :, content:].abs().sum() == 0 and mel[b, :, : content - 2].abs().sum() > 0
    noise = torch.randn(2, module.window_samples) * 1e-3  # sound to the end (a no-speech window): nothing zeroed
    assert (module.window_mel(noise)[:, :, -1] != 0).all()


def test_ctc_of_no_speech_windows(bpe):
    """A batch of no-speech windows only (a one-utterance batch drawn as no speech) has no text to align: the CTC
    term is 0, not a crash (session 19's digits run stopped at step 4,351 on one); mixed batches score the rest."""
    module = ASRLightningModule(bpe, dims=DIMS, ctc_weight=0.3)
    feats = torch.randn(2, 250, DIMS["n_audio_state"], requires_grad=True)
    empty = module.ctc_loss(feats, [[], []])
    assert empty.item() == 0.0
    empty.backward()
    mixed = module.ctc_loss(feats, [[], list(b" one two")])
    assert torch.isfinite(mixed) and mixed.item() > 0


def test_spec_augment_masks_within_the_utterance(bpe):
    module = ASRLightningModule(bpe, dims=DIMS, freq_masks=2, freq_width=10, time_masks=2, time_width=0.2)
    torch.manual_seed(0)
    mel = torch.randn(4, 80, 500)
    frames = torch.tensor([500, 300, 100, 50])
    out = module.spec_augment(mel, frames)
    changed = out != mel
    assert out.shape == mel.shape and changed.any()
    for b, n in enumerate(frames.tolist()):
        time_cols = changed[b].all(dim=0)
        assert not time_cols[n:].any()  # time masks stay inside the utterance (frequency masks span everything)
    off = ASRLightningModule(bpe, dims=DIMS, freq_masks=0, time_masks=0)
    assert torch.equal(off.spec_augment(mel, frames), mel)


@pytest.mark.parametrize("ctc_weight", [0.0, 0.3])
def test_loss_goes_down(bpe, synth_corpus, ctc_weight):
    torch.manual_seed(0)
    module = ASRLightningModule(bpe, dims=DIMS, freq_masks=0, time_masks=0, concat_prob=0.0, no_speech_prob=0.0, timestamp_prob=0.0,
                                ctc_weight=ctc_weight)
    assert (module.model.ctc_head is not None) == (ctc_weight > 0)
    batch = _batch(synth_corpus[0], n=4)
    opt = torch.optim.AdamW(module.parameters(), lr=3e-3)
    losses, ctcs = [], []
    for _ in range(40):
        loss, acc, _ = module._loss(batch, train=True)
        if ctc_weight:
            ctcs.append(float(module._last_ctc))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], losses[::5]
    _, acc, _ = module._loss(batch, train=False)
    assert float(acc) > 0.5  # it memorised the batch
    if ctc_weight:
        assert ctcs[-1] < 0.8 * ctcs[0] and all(map(torch.isfinite, map(torch.tensor, ctcs)))  # the encoder's CTC term learns too


def test_fine_tuning_starts_from_an_export_or_a_checkpoint(tmp_path, bpe, synth_corpus):
    """init_from: the exact weights and vocabulary (a .ckpt also its CTC head); freeze_encoder trains the decoder
    alone; dimensions or a vocabulary other than the model's are refused."""
    from audiokit.asr.transcriber import Transcriber

    torch.manual_seed(0)
    base = ASRLightningModule(bpe, dims=DIMS, ctc_weight=0.3)
    Transcriber(base.model, base.tok, "base").export(tmp_path / "exp")
    ckpt = {"hyper_parameters": dict(base.hparams), "state_dict": base.state_dict()}
    base.on_save_checkpoint(ckpt)
    torch.save(ckpt, tmp_path / "base.ckpt")

    from_ckpt = ASRLightningModule(init_from=str(tmp_path / "base.ckpt"), ctc_weight=0.3)
    assert all(torch.equal(v, base.state_dict()[k]) for k, v in from_ckpt.state_dict().items())  # CTC head too
    ft = ASRLightningModule(init_from=str(tmp_path / "exp"), tokenizer=bpe, freeze_encoder=True, freq_masks=0, time_masks=0,
                            concat_prob=0.0, no_speech_prob=0.0, timestamp_prob=0.0)
    assert ft.tok.ranks == base.tok.ranks and ft.hparams["dims"] == base.hparams["dims"]
    assert all(torch.equal(v, base.model.state_dict()[k]) for k, v in ft.model.state_dict().items())
    before = {k: v.clone() for k, v in ft.model.state_dict().items()}
    batch = _batch(synth_corpus[0], n=4)
    opt = torch.optim.AdamW([p for p in ft.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(15):
        loss, _, _ = ft._loss(batch, train=True)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    after = ft.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("encoder."))
    assert not torch.equal(before["decoder.token_embedding.weight"], after["decoder.token_embedding.weight"])
    assert losses[-1] < 0.8 * losses[0], losses[::3]

    # a model without a CTC head (official Whisper, or one trained without) gets a fresh one for ctc_weight > 0
    Transcriber(ASRLightningModule(bpe, dims=DIMS).model, base.tok, "plain").export(tmp_path / "plain")
    headed = ASRLightningModule(init_from=str(tmp_path / "plain"), ctc_weight=0.3)
    assert headed.model.ctc_head is not None and headed.hparams["dims"]["n_ctc_vocab"] == 257
    assert Transcriber.load(tmp_path / "plain").model.ctc_head is None

    with pytest.raises(ValueError, match="n_text_layer=2 .the model has 1."):
        ASRLightningModule(init_from=str(tmp_path / "exp"), dims=dict(DIMS, n_text_layer=2))
    from audiokit.text import BPETokenizer

    BPETokenizer.from_manifest(synth_corpus[0] / "train.jsonl", vocab_size=280).save(tmp_path / "other.json")
    with pytest.raises(ValueError, match="is not the vocabulary of"):
        ASRLightningModule(init_from=str(tmp_path / "exp"), tokenizer=str(tmp_path / "other.json"))
    with pytest.raises(ValueError, match="give a tokenizer"):
        ASRLightningModule(dims=DIMS)


def test_training_refuses_utterances_longer_than_the_window(tmp_path, bpe, synth_corpus):
    """Their audio would be cut at the window and their text not: a clear error before the first step."""
    import lightning as L

    corpus = synth_corpus[0]
    longest = max(e["duration"] for e in read_manifest(corpus / "train.jsonl"))
    module = ASRLightningModule(bpe, dims=dict(DIMS, n_audio_ctx=50))  # a 1-second window
    dm = SpeechDataModule(str(corpus / "train.jsonl"), kind="audio", sample_rate=16000, max_batch_seconds=1000)
    trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=str(tmp_path), use_distributed_sampler=False)
    with pytest.raises(ValueError, match=f"up to {longest:.1f} s but the model's window is 1 s: set data.max_duration"):
        trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 0


def test_error_rates_match_jiwer():
    jiwer = pytest.importorskip("jiwer", reason="the 'eval' extra provides jiwer")
    refs = ["the cat sat on the mat", "hello world", "a b c d"]
    hyps = ["the cat sat on mat", "hello there world", "a x c d e"]
    e, n = error_rate(refs, hyps)
    assert e / n == pytest.approx(jiwer.wer(refs, hyps))
    e, n = error_rate(refs, hyps, "char")
    assert e / n == pytest.approx(jiwer.cer(refs, hyps))
    scores = wer_cer(["Hello, World!", "It's 5 o'clock."], ["hello world", "its five o'clock"])
    assert scores["wer"] == pytest.approx(1 / 5) and scores["backend"] == "jiwer"
    with pytest.raises(ValueError, match="no reference"):
        wer_cer([""], ["x"])


def test_capped_wer_counts_babble_once():
    """A hypothesis far longer than its reference (babble the judge hears as a sentence) weighs 100 % in the
    capped WER however long it is, while the corpus WER grows with it; ``exact`` counts utterances said right."""
    refs = ["one two", "three four", "five six"]
    hyps = ["one two", "three for", "the quick brown fox jumps over the lazy dog again"]
    s = wer_cer(refs, hyps, normalize=False)
    assert s["wer"] == pytest.approx((0 + 1 + 10) / 6)
    assert s["wer_capped"] == pytest.approx((0 + 0.5 + 1.0) / 3)
    assert s["exact"] == 1


def test_digit_strings_are_scored_digit_by_digit():
    """A reference made only of digit words is scored digit by digit — Whisper writes "4719", "4-7-1-9" or
    "four seven one nine" for the same speech — and "oh" is zero; other references keep the usual form."""
    refs = ["Four seven one nine.", "Oh seven two.", "Zero six five five one five.", "It cost 5 dollars."]
    assert wer_cer(refs, ["4719", "zero, seven, 2", "0 6 5 5 1 5", "it cost five dollars"])["wer"] == 0
    assert wer_cer(refs[:1], ["4-7-1-9"])["wer"] == 0
    assert wer_cer(refs[:1], ["for seven one nine"])["wer"] == pytest.approx(1 / 4)
    assert wer_cer(refs[:1], ["4,700 19"])["wer"] > 0  # a wrong digit is wrong, however it is written
    assert wer_cer(["It cost 5 dollars."], ["it cost 5 dollar"])["wer"] == pytest.approx(1 / 4)
    with pytest.raises(ValueError, match="2 references but 1"):
        wer_cer(refs[:2], ["x"])


def test_train_export_eval_cli(tmp_path, bpe, synth_corpus, capsys):
    corpus = synth_corpus[0]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "audiokit.cli", "train", "asr", "--config", os.path.join(os.getcwd(), "configs", "asr", "tiny.yaml"),
           "--model.tokenizer", bpe, "--data.train_manifest", str(corpus / "train.jsonl"),
           "--data.val_manifest", str(corpus / "valid.jsonl"), "--trainer.max_steps", "6", "--trainer.val_check_interval", "3",
           "--trainer.limit_val_batches", "1", "--trainer.default_root_dir", str(tmp_path / "run"),
           "--trainer.callbacks.init_args.dirpath", str(tmp_path / "ckpt"), "--trainer.callbacks.init_args.every_n_train_steps", "4",
           "--trainer.enable_progress_bar", "false"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=os.getcwd(), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    ckpt = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    # saved every 4 steps, yet last.ckpt holds the final step (6), not the last multiple (4)
    assert ckpt["global_step"] == 6 and "asr_tokenizer" in ckpt and ckpt["hyper_parameters"]["dims"]["n_vocab"] > 300
    assert main(["export", str(tmp_path / "ckpt" / "last.ckpt"), str(tmp_path / "exp"), "--name", "tiny-asr"]) == 0
    assert "ASR model" in capsys.readouterr().out
    assert json.loads((tmp_path / "exp" / "config.json").read_text())["name"] == "tiny-asr"
    card = json.loads((tmp_path / "exp" / "model.json").read_text())  # the registry entry export writes
    assert card["family"] == "asr" and card["training"]["steps"] == 6 and card["training"]["corpus"]["speakers"] == 3
    assert main(["eval", "asr", "--manifest", str(corpus / "test.jsonl"), "--model", str(tmp_path / "exp"), "--max-items", "3",
                 "--json", str(tmp_path / "eval.json"), "--card", "--temperature", "0"]) == 0
    assert "WER" in capsys.readouterr().out
    recorded = json.loads((tmp_path / "exp" / "model.json").read_text())["eval"]["asr"]
    assert recorded["temperature"] == 0  # the card says how it decoded (one temperature: six steps never stop early)
    assert recorded["utterances"] == 3 and recorded["wer"] == json.loads((tmp_path / "eval.json").read_text())["wer"]
    assert f"WER {100 * recorded['wer']:.1f} %" in (tmp_path / "exp" / "README.md").read_text()
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["utterances"] == 3 and len(report["rows"]) == 3 and report["wer"] >= 0
    assert report["rows"][0]["ref"] == read_manifest(corpus / "test.jsonl")[0]["text"]


def test_librispeech_layout_trains(tmp_path, synth_corpus):
    """A LibriSpeech-layout tree (flac + upper-case .trans.txt) → `audiokit data manifest` → BPE → training steps."""
    import soundfile as sf

    from audiokit.text import BPETokenizer

    entries = read_manifest(synth_corpus[0] / "train.jsonl")[:6]
    d = tmp_path / "LibriSpeech" / "train-clean-100" / "19" / "198"
    d.mkdir(parents=True)
    lines = []
    for k, e in enumerate(entries):
        wav, sr = sf.read(e["audio"], dtype="float32")
        sf.write(str(d / f"19-198-{k:04d}.flac"), wav, sr)
        lines.append(f"19-198-{k:04d} {e['text'].upper().replace(',', '').replace('.', '')}")
    (d / "19-198.trans.txt").write_text("\n".join(lines) + "\n")
    assert main(["data", "manifest", "librispeech", str(tmp_path / "LibriSpeech"), "--out", str(tmp_path / "ls.jsonl")]) == 0
    BPETokenizer.from_manifest(tmp_path / "ls.jsonl", vocab_size=300).save(tmp_path / "bpe.json")
    torch.manual_seed(0)
    module = ASRLightningModule(str(tmp_path / "bpe.json"), dims=DIMS, freq_masks=0, time_masks=0)
    dm = SpeechDataModule(str(tmp_path / "ls.jsonl"), kind="audio", sample_rate=16000, max_duration=4.9, max_batch_size=6,
                          max_batch_seconds=1000)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert all(t.isupper() for t in batch["text"])
    opt = torch.optim.AdamW(module.parameters(), lr=3e-3)
    first = None
    for _ in range(15):
        loss, _, _ = module._loss(batch, train=False)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.7 * first


def test_checkpoints_from_before_the_ctc_head_moved_into_the_model(tmp_path, bpe):
    """Sessions up to 19 kept the CTC head on the Lightning module (``ctc_head.*`` beside ``model.*``): such a
    checkpoint resumes into the module, loads as a Transcriber and exports with the head in the model."""
    from audiokit.asr.transcriber import Transcriber

    torch.manual_seed(0)
    new = ASRLightningModule(bpe, dims=DIMS, ctc_weight=0.3)
    legacy_state = {(k[len("model."):] if k.startswith("model.ctc_head.") else k): v for k, v in new.state_dict().items()}
    assert "ctc_head.weight" in legacy_state and "model.ctc_head.weight" not in legacy_state
    hp = dict(new.hparams, dims={k: v for k, v in new.hparams["dims"].items() if k != "n_ctc_vocab"})
    ckpt = {"hyper_parameters": hp, "state_dict": legacy_state}
    new.on_save_checkpoint(ckpt)
    torch.save(ckpt, tmp_path / "legacy.ckpt")

    resumed = ASRLightningModule(**{k: v for k, v in hp.items()})
    loaded = torch.load(tmp_path / "legacy.ckpt", weights_only=False)
    resumed.on_load_checkpoint(loaded)
    resumed.load_state_dict(loaded["state_dict"])
    assert torch.equal(resumed.model.ctc_head.weight, new.model.ctc_head.weight)
    t = Transcriber.load(tmp_path / "legacy.ckpt")
    assert t.model.dims.n_ctc_vocab == 257 and torch.equal(t.model.ctc_head.bias, new.model.ctc_head.bias)
    again = Transcriber.load(t.export(tmp_path / "export"))
    assert torch.equal(again.model.ctc_head.weight, new.model.ctc_head.weight)
