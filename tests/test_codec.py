import logging
import math

import pytest
import torch

from audiokit.audio import AudioError
from audiokit.codec.bitstream import BitstreamError, read_akc, write_akc
from audiokit.codec.codec import Codec, CodecLoadError
from audiokit.codec.discriminators import Discriminator
from audiokit.codec.losses import (
    Balancer,
    MultiScaleMelLoss,
    MultiScaleSTFTLoss,
    PhaseLoss,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from audiokit.codec.metrics import si_sdr
from audiokit.codec.model import CodecModel
from audiokit.codec.quantizer import EMACodebook, ResidualVectorQuantizer
from audiokit.nn.layers import guard_reduced_precision
from audiokit.tokens import CodecMismatchError, CodecTokens

TINY = dict(sample_rate=16000, encoder_dim=4, encoder_rates=(2, 4, 5), decoder_dim=32, decoder_rates=(5, 4, 2),
            n_codebooks=4, codebook_size=64, codebook_dim=4)
TINY_ENCODEC = dict(TINY, family="encodec", latent_dim=16, codebook_dim=16)


def tiny_model(seed=0, **kw):
    torch.manual_seed(seed)
    return CodecModel(**{**TINY, **kw})


@pytest.fixture(scope="module")
def codec():
    return Codec(tiny_model(), name="tiny", chunk_seconds=0.5, context_seconds=0.25)


# ----------------------------------------------------------------------------- model
@pytest.mark.parametrize("cfg", [TINY, TINY_ENCODEC], ids=["dac", "encodec"])
@pytest.mark.parametrize("length", [1, 39, 40, 41, 1000])
def test_any_length_round_trips_frame_counts(cfg, length):
    m = CodecModel(**cfg).eval()
    x = torch.randn(2, 1, length) * 0.1
    codes = m.encode(x)
    assert codes.shape == (2, 4, math.ceil(length / 40)) and codes.dtype == torch.int64
    assert m.decode(codes).shape == (2, 1, codes.shape[-1] * 40)
    out = m(x)
    assert out["audio"].shape == x.shape


def test_bandwidth_to_codebooks():
    m = CodecModel(**{**TINY, "n_codebooks": 8, "codebook_size": 1024})  # 400 frames/s x 10 bits = 4 kbps per codebook
    assert m.n_q_for_bandwidth(8.0) == 2 and m.n_q_for_bandwidth(1.0) == 1 and m.n_q_for_bandwidth(1000) == 8
    assert m.bandwidths() == [4.0, 8.0, 16.0, 32.0]
    with pytest.raises(ValueError, match="different hops"):
        CodecModel(**{**TINY, "decoder_rates": (4, 4, 2)})
    with pytest.raises(TypeError, match="unknown codec options"):
        CodecModel(**TINY, lstm=3)


def test_weight_norm_folding_keeps_outputs():
    m = tiny_model().eval()
    x = torch.randn(1, 1, 800) * 0.1
    before = m.decode(m.encode(x))
    assert m.remove_weight_norm() > 10
    assert torch.allclose(m.decode(m.encode(x)), before, atol=1e-6)


@pytest.mark.parametrize("cfg", [TINY, TINY_ENCODEC, dict(TINY_ENCODEC, causal=True, pad_mode="constant"),
                                 dict(TINY, activation="leaky_relu")], ids=["dac", "encodec", "encodec-causal", "leaky"])
@pytest.mark.parametrize("length", [3, 41, 1000])
def test_channels_last_inference_matches_training_layout(cfg, length, monkeypatch):
    """CPU inference runs the generator on [B, C, 1, T] channels-last tensors with the activation fused into the
    padded buffer; it must compute what the [B, C, T] training path computes, at every length (short inputs
    take the unfused padding)."""
    import audiokit.nn.layers as layers

    m = CodecModel(**cfg).eval()
    m.remove_weight_norm()
    x = m._pad(torch.randn(2, 1, length) * 0.3)  # DAC's static padding needs whole hops
    with torch.enable_grad():
        z_ref = m.encoder(x)
        audio_ref = m.decoder(z_ref)
    calls = []
    conv2d = layers.F.conv2d
    monkeypatch.setattr(layers.F, "conv2d", lambda *a, **k: calls.append(a[0].shape) or conv2d(*a, **k))
    with torch.inference_mode():
        z = m.encoder(x)
        audio = m.decoder(z)
    assert calls and all(len(s) == 4 and s[2] == 1 for s in calls)  # the 2-D kernels ran
    assert z.shape == z_ref.shape and z.is_contiguous() and audio.is_contiguous()
    torch.testing.assert_close(z, z_ref.detach(), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(audio, audio_ref.detach(), atol=1e-5, rtol=1e-4)


# ----------------------------------------------------------------------------- quantizer
def test_quantizer_dropout_is_per_example_and_respects_n_q():
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(16, n_codebooks=8, codebook_size=32, codebook_dim=4, quantizer_dropout=0.5).train()
    out = rvq(torch.randn(64, 16, 5))
    n = out["n_levels"]
    assert (n == 8).sum() > 16 and (n < 8).sum() > 16 and n.min() >= 1  # about half the batch drops levels
    assert rvq(torch.randn(8, 16, 5), n_q=3)["n_levels"].max() == 3  # n_q holds in training too (DAC ignores it)
    rvq.eval()
    assert (rvq(torch.randn(8, 16, 5))["n_levels"] == 8).all()
    with pytest.raises(ValueError, match="probability"):
        ResidualVectorQuantizer(16, quantizer_dropout=2)


def test_quantizer_straight_through_and_losses():
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(16, n_codebooks=3, codebook_size=32, codebook_dim=4, quantizer_dropout=0.0)
    z = torch.randn(2, 16, 7, requires_grad=True)
    out = rvq(z)
    out["z_q"].sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert out["commitment"] > 0 and torch.allclose(out["commitment"], out["codebook"])
    rvq.eval()
    codes = rvq.encode(z.detach())
    assert torch.allclose(rvq.decode(codes), rvq(z.detach())["z_q"], atol=1e-5)
    # a prefix of the codes is what a lower bitrate gives
    assert torch.equal(rvq.encode(z.detach(), n_q=2), codes[:, :2])
    assert torch.allclose(rvq.decode(codes[:, :2]), rvq(z.detach(), n_q=2)["z_q"], atol=1e-5)


def test_dead_codes_are_reinitialized_from_encoder_outputs():
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(8, n_codebooks=1, codebook_size=16, codebook_dim=4, quantizer_dropout=0.0).train()
    level = rvq.levels[0]
    with torch.no_grad():
        level.codebook.weight[8:] = -100  # unreachable under cosine similarity? push them far and opposite
        level.codebook.weight[8:, 0] = 1e-6
    for _ in range(200):
        rvq(torch.randn(4, 8, 10).abs())
    before = level.codebook.weight.detach().clone()
    n = rvq.reinit_dead_codes(threshold=1e-2)
    assert n > 0
    changed = (level.codebook.weight != before).any(dim=1)
    assert int(changed.sum()) == n


def test_ema_codebook_kmeans_init_and_updates():
    torch.manual_seed(0)
    cb = EMACodebook(4, codebook_size=8, kmeans_iters=10).train()
    centers = torch.randn(8, 4) * 5
    data = (centers[torch.randint(0, 8, (400,))] + 0.01 * torch.randn(400, 4)).T[None]  # [1, 4, 400]
    q, idx, commit, _ = cb(data)
    assert bool(cb.inited) and commit < 0.1 * data.var()  # k-means found the clusters
    assert len(idx.unique()) >= 6
    before = cb.embed.clone()
    cb(data + 1.0)
    assert not torch.equal(cb.embed, before)  # EMA moved towards the new data


# ----------------------------------------------------------------------------- Codec API
def test_encode_decode_embed(codec, caplog):
    x = torch.randn(16000) * 0.1
    t = codec.encode(x, 16000)
    assert isinstance(t, CodecTokens) and t.n_q == 4 and t.n_frames == 400
    assert t.codec == codec.info
    assert t.bitrate == pytest.approx(400 * 4 * 6)
    y = codec.decode(t)
    assert y.shape == (1, 16000)
    assert codec.embed(t).shape == (1, codec.model.config["latent_dim"], 400)
    low = codec.encode(x, 16000, bandwidth=2.4)
    assert low.n_q == 1 and torch.equal(low.codes[:, 0], t.codes[:, 0])
    with pytest.raises(ValueError, match="not both"):
        codec.encode(x, 16000, bandwidth=2.4, n_q=1)


@pytest.mark.parametrize("cfg", [TINY, TINY_ENCODEC], ids=["dac", "encodec"])
def test_reduced_precision_inference(cfg):
    """``Codec.to(dtype=torch.bfloat16)`` runs encoder and decoder in bfloat16 (autocast) and the code search in
    float32: the convolutions really run in bfloat16, the outputs are float32 and close to full precision's."""
    codec = Codec(CodecModel(**cfg).eval(), name="tiny")
    x = torch.randn(2, 1, 4000) * 0.3
    full = codec.encode(x, 16000)
    codec.to(dtype=torch.bfloat16)
    seen = []
    hook = codec.model.encoder.input.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    half = codec.encode(x, 16000)
    hook.remove()
    assert seen == [torch.bfloat16] and half.codes.dtype == torch.int64
    assert (half.codes[:, 0] == full.codes[:, 0]).float().mean() > 0.8  # first level: ties aside, the same codes
    y = codec.decode(full)
    assert y.dtype == torch.float32
    y_ref = codec.to(dtype=torch.float32).decode(full)
    assert codec.model.compute_dtype is None
    assert (y - y_ref).norm() < 0.05 * y_ref.norm()
    with pytest.raises(ValueError, match="dtype must be"):
        codec.to(dtype=torch.int8)


def test_wrong_reduced_precision_kernels_stay_float32(caplog):
    """oneDNN's bfloat16 kernels are wrong for some small shapes on some CPUs: ``Codec.to(dtype=...)`` checks each
    convolution against float32 and keeps the wrong ones in float32. Simulated here on one layer (its kernel
    answers with the wrong sign under autocast), so the test does not depend on this machine's bugs."""
    codec = Codec(CodecModel(**TINY).eval(), name="tiny")
    codec.model.remove_weight_norm()
    x = torch.randn(1, 1, 4000) * 0.3
    tokens = codec.encode(x, 16000)
    y_ref = codec.decode(tokens)
    guard_reduced_precision(codec.model, torch.bfloat16)  # this machine's own wrong kernels, if any
    baseline = {n for n, m in codec.model.named_modules() if getattr(m, "full_precision", False)}
    broken = codec.model.decoder.stages[0].up
    kernel = broken._kernel
    broken._kernel = lambda t: -kernel(t) if torch.is_autocast_enabled(t.device.type) else kernel(t)
    with caplog.at_level(logging.WARNING, logger="audiokit.codec"):
        codec.to(dtype=torch.bfloat16)
    marked = {n for n, m in codec.model.named_modules() if getattr(m, "full_precision", False)}
    assert marked == baseline | {"decoder.stages.0.up"} and "run in float32" in caplog.text
    y = codec.decode(tokens)
    assert (y - y_ref).norm() < 0.05 * y_ref.norm()
    broken.full_precision = False  # what an unguarded bfloat16 decode would give
    assert (codec.decode(tokens) - y_ref).norm() > 0.2 * y_ref.norm()


def test_batch_of_different_lengths(codec):
    a, b = torch.randn(1000) * 0.1, torch.randn(2500) * 0.1
    t = codec.encode([a, b], 16000)
    assert t.lengths.tolist() == [25, 63]
    # the batch's padding reaches item 0 only through its last frames' receptive field (non-causal convolutions)
    assert torch.equal(t[0].codes[..., :20], codec.encode(a, 16000).codes[..., :20])
    assert (t.codes[0, :, 25:] == 0).all()
    parts = codec.decode_list(t)
    assert [p.shape[0] for p in parts] == [1000, 2520]


@pytest.mark.parametrize("frames", [1200, 405, 424], ids=["whole-chunks", "1-frame-tail", "tail-under-fade"])
def test_chunked_processing_matches_whole_file(frames):
    # chunks of 200 frames with 100 of context: 405 and 424 frames end in a tail shorter than the cross-fade
    whole = Codec(tiny_model(), chunk_seconds=1000)
    chunked = Codec(tiny_model(), chunk_seconds=0.5, context_seconds=0.25)
    x = torch.randn(frames * 40) * 0.1
    t = chunked.encode(x, 16000)
    assert torch.equal(t.codes, whole.encode(x, 16000).codes)
    a, b = chunked.decode(t), whole.decode(t)
    assert a.shape == b.shape == (1, frames * 40)
    assert (a - b).abs().max() < 1e-4  # the seams cannot be told from the whole-file output
    z = whole.embed(t)  # latents (Tortoise's and VALL-E's path) take the same chunks
    assert (chunked.decode_latents(z) - whole.decode_latents(z)).abs().max() < 1e-4


def test_bad_input(codec, caplog):
    with pytest.raises(AudioError, match="NaN or infinite"):
        codec.encode(torch.tensor([0.0, float("nan")] * 100), 16000)
    with pytest.raises(AudioError, match="empty"):
        codec.encode(torch.zeros(0), 16000)
    with pytest.raises(AudioError, match="shape"):
        codec.encode(torch.zeros(1, 1, 1, 10), 16000)
    with pytest.raises(AudioError, match="sample_rate"):
        codec.encode(torch.zeros(10), 0)
    assert codec.encode(torch.zeros(3), 16000).n_frames == 1  # shorter than a frame: one frame
    assert codec.decode(codec.encode(torch.zeros(16000), 16000)).abs().max() < 1.0  # silence is fine
    with caplog.at_level(logging.WARNING, logger="audiokit.codec"):
        stereo = codec.encode(torch.randn(2, 800) * 0.1, 16000)
        resampled = codec.encode(torch.randn(4800) * 0.1, 48000)
        clipped = codec.encode(torch.randn(800) * 5, 16000)
    assert stereo.n_frames == 20 and resampled.n_frames == 40 and clipped.n_frames == 20
    assert "downmixed" in caplog.text and "resampled" in caplog.text and "clipped" in caplog.text


def test_tokens_from_another_codec_are_refused(codec):
    other = Codec(tiny_model(seed=1))
    t = other.encode(torch.randn(800) * 0.1, 16000)
    with pytest.raises(CodecMismatchError, match=other.info.fingerprint):
        codec.decode(t)
    with pytest.raises(CodecMismatchError):
        codec.embed(t)


def test_export_and_load(tmp_path, codec):
    codec.export(tmp_path / "c")
    again = Codec.load(tmp_path / "c")
    assert again.info == codec.info
    x = torch.randn(4000) * 0.1
    assert torch.equal(again.encode(x, 16000).codes, codec.encode(x, 16000).codes)
    half = Codec.load(codec.export(tmp_path / "h", dtype=torch.float16))
    assert (tmp_path / "h" / "model.safetensors").stat().st_size < 0.6 * (tmp_path / "c" / "model.safetensors").stat().st_size
    assert (half.decode(half.encode(x, 16000)) - codec.decode(codec.encode(x, 16000))).abs().mean() < 0.05
    data = (tmp_path / "c" / "model.safetensors").read_bytes()
    (tmp_path / "c" / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CodecLoadError, match="corrupt or truncated"):
        Codec.load(tmp_path / "c")
    with pytest.raises(CodecLoadError, match="no such"):
        Codec.load(tmp_path / "none")
    (tmp_path / "x.bin").write_bytes(b"x")
    with pytest.raises(CodecLoadError, match="unknown codec file type"):
        Codec.load(tmp_path / "x.bin")


# ----------------------------------------------------------------------------- bitstream
def test_akc_round_trip_and_refusals(tmp_path, codec):
    t = codec.encode(torch.randn(3000) * 0.1, 16000, n_q=3)
    path = write_akc(tmp_path / "a.akc", t, 3000)
    name = len(codec.info.name.encode())
    assert path.stat().st_size == 54 + 1 + name + math.ceil(75 * 3 * 6 / 8) + 4  # header, name, 6 bits per code, CRC
    back, n = read_akc(path, expected=codec.info)
    assert back == t and n == 3000
    data = path.read_bytes()
    flipped = bytearray(data)
    flipped[70] ^= 0x10
    (tmp_path / "flip.akc").write_bytes(bytes(flipped))
    with pytest.raises(BitstreamError, match="CRC"):
        read_akc(tmp_path / "flip.akc")
    (tmp_path / "cut.akc").write_bytes(data[:-10])
    with pytest.raises(BitstreamError, match="truncated"):
        read_akc(tmp_path / "cut.akc")
    (tmp_path / "wav.akc").write_bytes(b"RIFF" + data[4:])
    with pytest.raises(BitstreamError, match="magic"):
        read_akc(tmp_path / "wav.akc")
    other = Codec(tiny_model(seed=1))
    with pytest.raises(CodecMismatchError):
        read_akc(path, expected=other.info)
    with pytest.raises(BitstreamError, match="one utterance"):
        write_akc(tmp_path / "b.akc", CodecTokens.collate([t, t]))


# ----------------------------------------------------------------------------- losses and discriminators
def test_losses():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 4000) * 0.1
    mel = MultiScaleMelLoss(16000, n_mels=(10, 40), window_lengths=(64, 512))
    assert mel(x, x) == 0
    assert mel(x * 0.5, x) > mel(x * 0.9, x) > 0
    stft = MultiScaleSTFTLoss(n_ffts=(256, 64))
    assert stft(x, x) == 0 and stft(x + 0.05 * torch.randn_like(x), x) > 0
    real, fake = [[torch.ones(2, 3)]], [[torch.zeros(2, 3)]]
    assert discriminator_loss(real, fake, "lsgan") == 0 and discriminator_loss(fake, real, "lsgan") == 2
    assert discriminator_loss(real, [[-torch.ones(2, 3)]], "hinge") == 0
    assert generator_adversarial_loss(real) == 0 and generator_adversarial_loss([[torch.full((2,), 3.0)]], "hinge") == -3
    assert feature_matching_loss([[torch.ones(3), torch.zeros(1)]], [[torch.zeros(3), torch.ones(1)]]) == 1


def test_phase_loss_sees_what_magnitude_losses_miss():
    torch.manual_seed(0)
    t = torch.arange(8000) / 16000
    x = (0.3 * torch.sin(2 * math.pi * 180 * t * (1 + t)) + 0.02 * torch.randn(8000))[None, None]
    phase, mel = PhaseLoss(n_ffts=(256, 512)), MultiScaleMelLoss(16000, n_mels=(20, 80), window_lengths=(128, 512))
    assert phase(x, x) < 0.05  # bins under a thousandth of the peak count as slightly wrong even when exact
    assert phase(x.roll(1, -1), x) < phase(x.roll(4, -1), x) < phase(x.roll(16, -1), x)
    # the same STFT magnitudes with random phases: the magnitude loss barely notices, the phase loss does
    w = torch.hann_window(512)
    z = torch.stft(x[0], 512, 128, window=w, return_complex=True)
    scrambled = torch.istft(torch.polar(z.abs(), 2 * math.pi * torch.rand(z.shape)), 512, 128, window=w, length=8000)[None]
    noise = 0.1 * torch.randn_like(x)
    assert mel(scrambled, x) < 0.5 * mel(noise, x)
    assert phase(scrambled, x) > 0.5 * phase(noise, x) and phase(scrambled, x) > 1.0
    # it cannot be gamed: neither a quieter output nor a loud spike (which once made every other bin "free")
    spike = torch.zeros_like(x)
    spike[..., 4000] = 50.0
    late = x.roll(8, -1)
    assert phase(1e-4 * late, x) > 2 * phase(late, x)
    assert phase(noise + spike, x) > 0.98 * phase(noise, x) and phase(late + spike, x) > 0.98 * phase(late, x)
    # without the absolute phase, a shift of a sample or two is (nearly) free: what is left is how phase moves
    relative = PhaseLoss(n_ffts=(256, 512), terms=("frequency", "delay"))
    assert relative(x.roll(2, -1), x) < 0.1 * relative(noise, x) and relative(scrambled, x) > 0.5 * relative(noise, x)
    with pytest.raises(ValueError, match="terms"):
        PhaseLoss(terms=("magnitude",))
    # a silent output has a finite loss and gradient (the phasors are regularised, not divided by zero)
    silent = torch.zeros_like(x, requires_grad=True)
    (g,) = torch.autograd.grad(phase(silent, x), silent)
    assert torch.isfinite(g).all()


def test_balancer_gives_each_loss_its_share():
    y = torch.randn(4, 1, 100, requires_grad=True)
    losses = {"big": (y * 1000).pow(2).mean(), "small": (y * 0.001).abs().mean()}
    bal = Balancer({"big": 3.0, "small": 1.0})
    surrogate, norms = bal.surrogate(losses, y)
    (g,) = torch.autograd.grad(surrogate, y)
    gb = torch.autograd.grad(losses["big"], y, retain_graph=True)[0]
    gs = torch.autograd.grad(losses["small"], y)[0]
    # the balanced gradient is 3/4 of the big loss' unit direction plus 1/4 of the small one's, whatever their scales
    expected = 0.75 * gb / norms["big"] + 0.25 * gs / norms["small"]
    assert torch.allclose(g, expected, rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("kinds", [("mpd",), ("msstft",), ("mbstft",), ("mpd", "msstft", "mbstft")])
def test_discriminators(kinds):
    d = Discriminator(kinds, mpd_periods=(2, 3), mpd_channels=(4, 8), msstft_n_ffts=(256, 128), msstft_filters=4,
                      mbstft_n_ffts=(256,), mbstft_channels=4)
    out = d(torch.randn(2, 1, 4000))
    assert len(out) == {"mpd": 2, "msstft": 2, "mbstft": 1}[kinds[0]] if len(kinds) == 1 else len(out) == 5
    for feats in out:
        assert len(feats) >= 3 and all(f.shape[0] == 2 for f in feats)
    with pytest.raises(ValueError, match="unknown discriminator"):
        Discriminator(("nope",))


def test_si_sdr():
    x = torch.randn(2, 1000)
    assert (si_sdr(x * 0.5, x) > 60).all()  # scale-invariant
    assert si_sdr(x + torch.randn_like(x), x).mean() == pytest.approx(0.0, abs=1.0)
