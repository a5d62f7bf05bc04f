"""The frame-rate codec networks (audiokit/codec/frames.py): shapes and hop alignment, that the inverse-STFT
head can express a given signal, that the encoder sees timing inside a frame, and a CodecModel built on them
trains, exports and round-trips like the convolutional one."""
import math

import pytest
import torch

from audiokit.codec.codec import Codec
from audiokit.codec.frames import ISTFTDecoder, STFTEncoder
from audiokit.codec.model import CodecModel

FRAMES = dict(sample_rate=16000, encoder_rates=[4, 5, 8], decoder_rates=[8, 5, 4], latent_dim=32, n_codebooks=4,
              codebook_size=64, codebook_dim=4, encoder="stft", decoder="istft", frame_dim=32, frame_layers=2)


def test_shapes_follow_the_hop_for_any_length():
    m = CodecModel(**FRAMES)
    for n in (160 * 2 - 7, 16000, 16000 + 33):
        x = torch.randn(2, 1, n)
        out = m(x)
        frames = math.ceil(n / 160)
        assert out["audio"].shape == x.shape and out["codes"].shape == (2, 4, frames)
        assert m.decode(m.encode(x)).shape == (2, 1, frames * 160)


def test_the_istft_head_can_express_a_signal_frame_for_frame():
    """Given a signal's own STFT frames as log-magnitude and phase, the head's inverse STFT gives the waveform
    back, aligned to the samples (frame f centred on sample f·hop, as the encoder reads it)."""
    dec = ISTFTDecoder(latent_dim=8, hop=80, n_fft=320, dim=16, n_layers=0)
    t = torch.arange(80 * 20) / 16000
    target = 0.3 * torch.sin(2 * math.pi * (200 + 2000 * t) * t)
    spec = torch.stft(target, 320, 80, window=torch.hann_window(320), center=True, return_complex=True)[:, :20]
    y = dec.synthesize(torch.cat([spec.abs().clamp(min=1e-5).log(), spec.angle()])[None])
    assert y.shape == (1, 1, 1600)
    err = (y[0, 0] - target).abs()[:-160].max()  # the last two hops miss frame 20's share of the overlap-add
    assert err < 1e-4, float(err)
    shifted = (y[0, 0, 80:-160] - target[:-240]).abs().max()
    assert shifted > 0.1  # a hop off is far off: the test sees alignment


def test_the_encoder_sees_timing_inside_a_frame():
    """Two clicks 5 ms apart inside one frame give different latents: the short-window features carry what
    a 4-hop window alone blurs."""
    torch.manual_seed(0)
    enc = STFTEncoder(hop=160, n_fft=640, dim=16, n_layers=1, latent_dim=8)
    a, b = torch.zeros(1, 1, 1600), torch.zeros(1, 1, 1600)
    a[..., 800 - 40] = 1.0
    b[..., 800 + 40] = 1.0
    za, zb = enc(a), enc(b)
    assert za.shape == (1, 8, 10)
    assert (za[..., 5] - zb[..., 5]).abs().max() > 1e-3


def test_a_frame_codec_learns_to_reconstruct_and_exports(tmp_path):
    """A few dozen steps of mel loss lower it; the exported folder reloads with the same codes and audio."""
    from audiokit.codec.losses import MultiScaleMelLoss

    torch.manual_seed(0)
    m = CodecModel(**FRAMES)
    mel = MultiScaleMelLoss(16000, n_mels=(20, 40, 80), window_lengths=(128, 256, 512))
    t = torch.arange(3200) / 16000
    x = torch.stack([0.4 * torch.sin(2 * math.pi * f * t) * (1 + torch.sin(2 * math.pi * 3 * t)) / 2
                     for f in (220.0, 330.0, 440.0, 660.0)])[:, None]
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        out = m(x)
        loss = mel(out["audio"], x) + out["commitment"].mean() * 0.25 + out["codebook"].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(mel(out["audio"].detach(), x)))
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5, (losses[:5], losses[-5:])
    m.eval()
    codec = Codec(m, name="frames")
    codec.export(tmp_path / "c")
    back = Codec.load(tmp_path / "c")
    assert back.model.config["encoder"] == "stft" and back.model.config["decoder"] == "istft"
    tok = codec.encode(x[0, 0], 16000)
    assert torch.equal(back.encode(x[0, 0], 16000).codes, tok.codes)
    assert torch.allclose(back.decode(tok), codec.decode(tok), atol=1e-5)


def test_unknown_kinds_are_refused():
    with pytest.raises(ValueError, match="encoder is 'conv' or 'stft'"):
        CodecModel(**{**FRAMES, "encoder": "mel"})
