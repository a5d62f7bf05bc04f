"""A semantic first codebook (audiokit/codec/semantic.py): fine-tuning starts exactly from an exported codec, the
first level's latent is what codebook 1 decodes to, and training pulls it toward the teacher's features."""
import copy

import numpy as np
import pytest
import torch

from audiokit.codec.codec import Codec
from audiokit.codec.lightning import CodecLightningModule
from audiokit.codec.model import CodecModel
from audiokit.codec.semantic import SemanticTeacher, init_generator_from, semantic_loss

GEN = dict(sample_rate=16000, encoder_dim=8, encoder_rates=[2, 4, 5, 8], decoder_dim=32, decoder_rates=[8, 5, 4, 2],
           n_codebooks=3, codebook_size=64, codebook_dim=8, quantizer_dropout=0.5, family="dac")


def _speechlike(n, seconds=0.96, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    out = []
    for _ in range(n):
        f0 = rng.uniform(100, 220)
        x = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 8))
        x *= 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 6) * t)  # syllable-rate envelope
        out.append(0.1 * x + rng.normal(0, 0.005, t.shape))
    return torch.tensor(np.stack(out), dtype=torch.float32)


def test_init_from_an_export_starts_from_exactly_its_weights(tmp_path):
    torch.manual_seed(0)
    trained = CodecModel(**GEN)
    with torch.no_grad():  # weights unlike a fresh model's, weight norm included
        for p in trained.parameters():
            p.add_(0.05 * torch.randn_like(p))
    Codec(copy.deepcopy(trained), name="src").export(tmp_path / "src")
    torch.manual_seed(1)
    module = CodecLightningModule(generator=GEN, init_from=str(tmp_path / "src"))
    x = _speechlike(2)[:, None]
    want = Codec.load(tmp_path / "src").model
    module.generator.eval()
    with torch.no_grad():
        codes = module.generator.encode(x)
        assert torch.equal(codes, want.encode(x))
        assert torch.allclose(module.generator.decode(codes), want.decode(codes), atol=1e-5)
    other = dict(GEN, codebook_size=32)
    with pytest.raises(ValueError, match="codebook_size"):
        init_generator_from(CodecModel(**other), str(tmp_path / "src"))


def test_the_first_level_latent_is_codebook_one_decoded():
    torch.manual_seed(0)
    model = CodecModel(**GEN).eval()
    x = _speechlike(2)[:, None]
    with torch.no_grad():
        out = model(x)
        assert torch.allclose(out["first"], model.quantizer.decode(out["codes"][:, :1]), atol=1e-6)


def test_semantic_loss_is_one_minus_cosine_and_resamples_time():
    proj = torch.nn.Identity()
    a = torch.randn(2, 4, 10)
    assert semantic_loss(a, proj, a).abs() < 1e-6
    assert abs(semantic_loss(a, proj, -a).item() - 2.0) < 1e-6
    steady = torch.randn(2, 4, 1)  # a teacher at twice the frame rate is resampled to the codec's frames
    assert semantic_loss(steady.expand(-1, -1, 10), proj, steady.expand(-1, -1, 20)).abs() < 1e-6
    assert semantic_loss(steady.expand(-1, -1, 10), proj, -steady.expand(-1, -1, 20)).item() > 1.99


def test_training_pulls_the_first_codebook_toward_the_teacher(tiny_en):
    """With Whisper tiny.en as the teacher, the semantic loss of a small codec falls over a few dozen steps (the
    encoder and codebook 1 learn to carry the teacher's features), and the teacher is neither trained nor saved."""
    torch.manual_seed(0)
    module = CodecLightningModule(generator=GEN, loss_weights={"adv": 0.0, "feat": 0.0, "semantic": 10.0},
                                  semantic_teacher=str(tiny_en), lr=3e-3)
    assert module.teacher.dim == 384 and not any(k.startswith("teacher") for k in module.state_dict())
    assert any(k.startswith("semantic_proj") for k in module.state_dict())
    x = _speechlike(2, seed=1)
    feats = module.teacher.features(x, 16000)
    assert feats.shape == (2, 384, 48)  # 0.96 s at 50 frames/s, the codec's frame rate here
    opt = torch.optim.Adam(list(module.generator.parameters()) + list(module.semantic_proj.parameters()), lr=3e-3)
    losses = []
    for _ in range(25):
        out = module.generator(x[:, None])
        loss = semantic_loss(out["first"], module.semantic_proj, feats)
        total = loss + 0.25 * out["commitment"] + out["codebook"]
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses
    assert all(not p.requires_grad for p in module.teacher.encoder.parameters())


def test_the_teacher_reads_a_real_folder_or_names_the_problem(tmp_path):
    from audiokit.asr.convert import CheckpointError

    with pytest.raises((CheckpointError, FileNotFoundError, ValueError)):
        SemanticTeacher(str(tmp_path / "missing"))
