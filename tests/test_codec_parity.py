"""Official DAC and EnCodec checkpoints load into audiokit's codec with identical codes and audio.

The reference packages (the ``reference`` extra, installed by CI) build each model at its official
configuration with random weights, which we save in the official file format, convert, and compare.
"""
import math
import warnings

import pytest
import torch

from audiokit.codec.convert import ConversionError, convert_dac, convert_encodec

from conftest import reference

warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=FutureWarning)

DAC_CONFIGS = {
    "16khz": dict(encoder_dim=64, encoder_rates=[2, 4, 5, 8], decoder_dim=1536, decoder_rates=[8, 5, 4, 2], n_codebooks=12,
                  codebook_size=1024, codebook_dim=8, sample_rate=16000),
    "24khz": dict(encoder_dim=64, encoder_rates=[2, 4, 5, 8], decoder_dim=1536, decoder_rates=[8, 5, 4, 2], n_codebooks=32,
                  codebook_size=1024, codebook_dim=8, sample_rate=24000),
    "44khz": dict(encoder_dim=64, encoder_rates=[2, 4, 8, 8], decoder_dim=1536, decoder_rates=[8, 8, 4, 2], n_codebooks=9,
                  codebook_size=1024, codebook_dim=8, sample_rate=44100),
}


@pytest.mark.parametrize("config", list(DAC_CONFIGS))
def test_dac_checkpoint_parity(tmp_path, config):
    reference("dac")
    from dac.model import DAC

    kwargs = DAC_CONFIGS[config]
    torch.manual_seed(0)
    ref = DAC(**kwargs).eval()
    with torch.no_grad():  # snake alphas start at 1 in DAC; randomize so every parameter is exercised
        for name, p in ref.named_parameters():
            if name.endswith("alpha"):
                p.uniform_(0.5, 1.5)
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": ref.state_dict(), "metadata": {"kwargs": kwargs}}, path)
    ours = convert_dac(path).eval()
    sr = kwargs["sample_rate"]
    x = torch.randn(2, 1, sr // 2 + 77) * 0.1
    with torch.no_grad():
        z, ref_codes, *_ = ref.encode(ref.preprocess(x, sr))
        codes = ours.encode(x)
        assert torch.equal(codes, ref_codes)
        ref_audio = ref.decode(z)
        audio = ours.decode(codes)[..., : ref_audio.shape[-1]]
    assert (audio - ref_audio).abs().max() < 1e-5
    assert ours.frame_rate == pytest.approx(sr / math.prod(kwargs["encoder_rates"]))


def test_encodec_checkpoint_parity(tmp_path):
    reference("encodec")
    from encodec import EncodecModel

    torch.manual_seed(0)
    ref = EncodecModel.encodec_model_24khz(pretrained=False).eval()
    x = torch.randn(2, 1, 24000 // 2 + 77) * 0.1
    with torch.no_grad():  # a fresh model's codebooks are zeros awaiting k-means: seed them, as k-means would, from latents
        frames = ref.encoder(torch.randn(4, 1, 24000) * 0.1).transpose(1, 2).reshape(-1, 128)
        for i, layer in enumerate(ref.quantizer.vq.layers):
            cb = layer._codebook
            pick = frames[torch.randint(0, frames.shape[0], (1024,))]
            cb.embed.copy_((pick + 0.1 * pick.std() * torch.randn_like(pick)) * 0.5**i)
            cb.embed_avg.copy_(cb.embed)
            cb.cluster_size.fill_(1.0)
            cb.inited.fill_(True)
    path = tmp_path / "encodec_24khz.th"
    torch.save(ref.state_dict(), path)
    ours = convert_encodec(path).eval()
    for bandwidth, n_q in [(1.5, 2), (6.0, 8), (24.0, 32)]:
        ref.set_target_bandwidth(bandwidth)
        assert ours.n_q_for_bandwidth(bandwidth) == n_q
        with torch.no_grad():
            frames = ref.encode(x)
            ref_codes = frames[0][0]
            codes = ours.encode(x, n_q=n_q)
            assert torch.equal(codes, ref_codes)
            assert len(codes[:, 0].unique()) > 10  # real lookups, not a degenerate codebook
            ref_audio = ref.decode(frames)
            audio = ours.decode(codes)[..., : ref_audio.shape[-1]]
        assert (audio - ref_audio).abs().max() < 1e-5


def test_conversion_refuses_wrong_files(tmp_path):
    with pytest.raises(ConversionError, match="no such checkpoint"):
        convert_dac(tmp_path / "none.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ConversionError, match="not a readable PyTorch checkpoint"):
        convert_dac(tmp_path / "junk.pth")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ConversionError, match="not a DAC checkpoint"):
        convert_dac(tmp_path / "other.pth")
    with pytest.raises(ConversionError, match="not an EnCodec state dict"):
        convert_encodec(tmp_path / "other.pth")
    torch.save({"state_dict": {"encoder.block.0.weight_g": torch.zeros(1), "bogus.key": torch.zeros(1)},
                "metadata": {"kwargs": {}}}, tmp_path / "bad.pth")
    with pytest.raises(ConversionError, match="unexpected key"):
        convert_dac(tmp_path / "bad.pth")
