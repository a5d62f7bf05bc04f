import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import torch

from audiokit.codec.codec import Codec
from audiokit.codec.lightning import CodecLightningModule

ROOT = Path(__file__).resolve().parents[1]
GEN = dict(sample_rate=16000, encoder_dim=4, encoder_rates=[2, 4, 5], decoder_dim=32, decoder_rates=[5, 4, 2],
           n_codebooks=4, codebook_size=64, codebook_dim=4)
DISC = dict(kinds=["mpd", "mbstft"], mpd_periods=[2, 3], mpd_channels=[4, 8], mbstft_n_ffts=[256], mbstft_channels=4)


def test_codec_learns_reconstruction(synth_corpus):
    out, _, _ = synth_corpus
    torch.manual_seed(0)
    model = CodecLightningModule(generator=GEN, discriminator=DISC, lr=3e-3, adversarial_start=36,
                                 mel_n_mels=[20, 40], mel_window_lengths=[128, 512])
    history = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, module, *a):
            history.append(float(trainer.callback_metrics["train/mel"]))

    # one fixed batch of real speech, seen again and again: the generator must fit it
    from audiokit.data import AudioTextDataset, collate_audio

    ds = AudioTextDataset(str(out / "train.jsonl"), sample_rate=16000, segment_seconds=0.4, random_crop=False)
    batch = collate_audio([ds[i] for i in range(4)])
    loader = torch.utils.data.DataLoader([batch] * 40, batch_size=None)
    trainer = L.Trainer(max_steps=80, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[Record()])
    trainer.fit(model, loader)
    assert len(history) == 40 and int(model.batches_seen) == 40
    assert history[35] < 0.7 * history[0]  # reconstruction alone: the mel loss goes down
    assert "train/loss_d" in trainer.callback_metrics  # the GAN started after 36 batches
    codec = Codec(model.generator, name="trained")
    assert codec.encode(torch.randn(1600) * 0.1, 16000).n_frames == 40


def _train(tmp_path, corpus, *extra, env_extra=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tests") + os.pathsep + os.environ.get("PYTHONPATH", ""),
               **(env_extra or {}))
    cmd = [sys.executable, "-m", "audiokit.cli", "train", "codec", "--config", str(ROOT / "configs/codec/tiny.yaml"),
           "--data.train_manifest", str(corpus / "train.jsonl"), "--data.val_manifest", str(corpus / "valid.jsonl"),
           "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
           "--trainer.callbacks.init_args.dirpath", str(tmp_path / "ckpt"),
           "--trainer.callbacks.init_args.every_n_train_steps", "10", "--trainer.val_check_interval", "10",
           "--trainer.accelerator", "cpu", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)


def test_killed_run_resumes_from_last_checkpoint(tmp_path, synth_corpus):
    corpus = synth_corpus[0]
    died = _train(tmp_path, corpus, "--trainer.max_steps", "40",
                  "--trainer.callbacks+=callbacks.DieAtStep", "--trainer.callbacks.step", "35")
    assert died.returncode == 3, died.stderr[-2000:]
    last = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 30  # killed at 36: less than one interval (10) lost
    assert not [p for p in (tmp_path / "ckpt").iterdir() if p.name.startswith(".")]  # no partial files
    resumed = _train(tmp_path, corpus, "--trainer.max_steps", "40", "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Restored all states" in resumed.stderr + resumed.stdout
    final = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    assert final["global_step"] == 40 and int(final["state_dict"]["batches_seen"]) == 20
    codec = Codec.load(tmp_path / "ckpt" / "last.ckpt")
    assert codec.info.sample_rate == 16000 and codec.info.n_codebooks == 4


def test_ddp_on_cpu_with_two_processes(tmp_path, synth_corpus):
    r = _train(tmp_path, synth_corpus[0], "--trainer.max_steps", "6", "--trainer.devices", "2", "--trainer.strategy", "ddp_find_unused_parameters_true",
               "--trainer.limit_val_batches", "1", env_extra={"PL_DISABLE_FORK": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    ckpt = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 6
    gen = {k: v for k, v in ckpt["state_dict"].items() if k.startswith("generator.quantizer.levels.0.codebook")}
    assert gen  # the quantizer (re-initialized under DDP by broadcast) is in the checkpoint


def test_resuming_with_other_discriminators_starts_them_fresh(caplog):
    """The adversarial stage of a long run swaps in smaller discriminators on resume: the generator, its
    optimizer and the step counters come back as saved, the new discriminators (and their optimizer) fresh."""
    torch.manual_seed(0)
    old = CodecLightningModule(generator=GEN, discriminator=DISC, lr=1e-3)
    opt_g = torch.optim.AdamW(old.generator.parameters(), lr=7e-4)
    opt_d = torch.optim.AdamW(old.discriminator.parameters(), lr=7e-4)
    ckpt = {"state_dict": old.state_dict(), "optimizer_states": [opt_g.state_dict(), opt_d.state_dict()]}
    other = dict(DISC, mpd_channels=[2, 4], mbstft_channels=2)
    new = CodecLightningModule(generator=GEN, discriminator=other, lr=1e-3)
    with caplog.at_level("WARNING", logger="audiokit.codec"):
        new.on_load_checkpoint(ckpt)
    assert "discriminators differ" in caplog.text
    new.load_state_dict(ckpt["state_dict"])  # strict: every key and shape now fits
    for k, v in old.generator.state_dict().items():
        assert torch.equal(new.generator.state_dict()[k], v)
    fresh_d = torch.optim.AdamW(new.discriminator.parameters())
    fresh_d.load_state_dict(ckpt["optimizer_states"][1])  # fits the new discriminators
    assert fresh_d.param_groups[0]["lr"] == 7e-4  # at the generator's (decayed) rate
    # the same discriminators: the checkpoint is left exactly as it was
    same = {"state_dict": dict(old.state_dict()), "optimizer_states": [opt_g.state_dict(), opt_d.state_dict()]}
    before = same["optimizer_states"][1]
    CodecLightningModule(generator=GEN, discriminator=DISC, lr=1e-3).on_load_checkpoint(same)
    assert same["optimizer_states"][1] is before


def test_a_resumed_run_follows_the_configured_lr_decay(caplog):
    """Resuming with another lr_decay (a faster one anneals the end of a long run) continues from the learning
    rate the run had reached, decaying at the new rate; the same decay leaves the checkpoint as it was."""
    torch.manual_seed(0)
    old = CodecLightningModule(generator=GEN, discriminator=DISC, lr=1e-3, lr_decay=0.9)
    (opt_g, opt_d), (sch_g, sch_d) = old.configure_optimizers()
    for _ in range(3):
        opt_g.step(), opt_d.step(), sch_g.step(), sch_d.step()
    ckpt = {"state_dict": old.state_dict(), "optimizer_states": [opt_g.state_dict(), opt_d.state_dict()],
            "lr_schedulers": [sch_g.state_dict(), sch_d.state_dict()]}
    new = CodecLightningModule(generator=GEN, discriminator=DISC, lr=1e-3, lr_decay=0.5)
    with caplog.at_level("WARNING", logger="audiokit.codec"):
        new.on_load_checkpoint(ckpt)
    assert "lr_decay 0.5 (was 0.9" in caplog.text
    (opt_g, opt_d), (sch_g, sch_d) = new.configure_optimizers()
    opt_g.load_state_dict(ckpt["optimizer_states"][0])  # Lightning's restore order: optimizers, then schedulers
    sch_g.load_state_dict(ckpt["lr_schedulers"][0])
    reached = 1e-3 * 0.9 ** 3
    assert abs(opt_g.param_groups[0]["lr"] - reached) < 1e-12
    opt_g.step(), sch_g.step()
    assert abs(opt_g.param_groups[0]["lr"] - reached * 0.5) < 1e-12
    caplog.clear()
    same = CodecLightningModule(generator=GEN, discriminator=DISC, lr=1e-3, lr_decay=0.5)
    with caplog.at_level("WARNING", logger="audiokit.codec"):
        same.on_load_checkpoint(ckpt)
    assert caplog.text == "" and ckpt["lr_schedulers"][0]["gamma"] == 0.5
