from pathlib import Path

import pytest
import yaml

from audiokit.cli import main
from audiokit.codec.model import CodecModel

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "codec").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_parses_through_lightning_cli(path, capsys):
    cfg = yaml.safe_load(path.read_text())
    # a stage overlay (speech16_adversarial.yaml) is laid over its base (speech16.yaml), as its header says
    base = None if "generator" in cfg["model"] else path.with_name(path.stem.split("_")[0] + ".yaml")
    configs = ["--config", str(base), "--config", str(path)] if base else ["--config", str(path)]
    with pytest.raises(SystemExit) as e:
        main(["train", "codec", *configs, "--print_config"])
    assert e.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    generator_from = yaml.safe_load(base.read_text()) if base else cfg
    assert printed["model"]["generator"] == generator_from["model"]["generator"]
    assert printed["trainer"]["use_distributed_sampler"] is False
    if base:
        assert str(base.relative_to(path.parents[2])) in path.read_text()  # the header names its base
        assert printed["model"]["discriminator"] == cfg["model"]["discriminator"]
        assert printed["model"]["adversarial_start"] == cfg["model"]["adversarial_start"]


ASR_CONFIGS = sorted((CONFIGS[0].parents[1] / "asr").glob("*.yaml"))


@pytest.mark.parametrize("path", ASR_CONFIGS, ids=[p.stem for p in ASR_CONFIGS])
def test_asr_configs(path, capsys, tmp_path):
    """Each ASR config parses through LightningCLI and builds its model (with a stand-in BPE of 1000 tokens)."""
    from audiokit.asr.lightning import ASRLightningModule
    from audiokit.text import BPETokenizer

    cfg = yaml.safe_load(path.read_text())
    bpe = tmp_path / "bpe.json"
    BPETokenizer.train([f"sentence number {i} with words {i * 7}" for i in range(300)], vocab_size=1000).save(bpe)
    if "dims" not in cfg["model"]:  # the fine-tuning config: dimensions and vocabulary come from init_from
        from audiokit.asr.transcriber import Transcriber

        dims = dict(n_mels=80, n_audio_ctx=1500, n_audio_state=32, n_audio_head=2, n_audio_layer=1, n_text_ctx=32,
                    n_text_state=32, n_text_head=2, n_text_layer=1)
        base = ASRLightningModule(str(bpe), dims=dims)
        Transcriber(base.model, base.tok).export(tmp_path / "base")
        with pytest.raises(SystemExit) as e:
            main(["train", "asr", "--config", str(path), "--model.init_from", str(tmp_path / "base"), "--print_config"])
        assert e.value.code == 0
        assert yaml.safe_load(capsys.readouterr().out)["model"]["init_from"] == str(tmp_path / "base")
        module = ASRLightningModule(**dict(cfg["model"], init_from=str(tmp_path / "base")))
        assert module.model.dims == base.model.dims and module.hparams.lr < 1e-4
        assert 2 * dims["n_audio_ctx"] * 0.01 >= cfg["data"]["max_duration"]  # fits Whisper's 30 s windows
        return
    with pytest.raises(SystemExit) as e:
        main(["train", "asr", "--config", str(path), "--model.tokenizer", str(bpe), "--print_config"])
    assert e.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["dims"] == cfg["model"]["dims"] and printed["trainer"]["use_distributed_sampler"] is False
    module = ASRLightningModule(str(bpe), dims=cfg["model"]["dims"])
    dims = module.model.dims
    assert 2 * dims.n_audio_ctx * 0.01 >= cfg["data"]["max_duration"]  # every training utterance fits a window
    assert dims.n_vocab == module.tok.n_vocab


@pytest.mark.parametrize("name, params", [("dac_24khz", 74.7e6), ("encodec_24khz", 14.85e6)])
def test_paper_configs_have_the_published_sizes(name, params):
    cfg = yaml.safe_load((CONFIGS[0].parent / f"{name}.yaml").read_text())
    model = CodecModel(**cfg["model"]["generator"])
    assert model.num_parameters() == pytest.approx(params, rel=0.005)
    assert model.frame_rate == 75.0 and model.bandwidths()[-1] == 24.0


CODEC_OF_SIZE = {"tiny": "tiny", "cpu": "speech16", "digits": "speech16"}  # cpu, digits: the bundled speech codec's tokens
VALLE_CONFIGS = sorted((CONFIGS[0].parents[1] / "valle").glob("*.yaml"))
TORTOISE_CONFIGS = sorted((CONFIGS[0].parents[1] / "tortoise").glob("*.yaml"))
UNITS_CONFIGS = [p for p in VALLE_CONFIGS + TORTOISE_CONFIGS if "_units_" in p.stem or "_phones_" in p.stem]
VALLE_CONFIGS = [p for p in VALLE_CONFIGS if p not in UNITS_CONFIGS]
TORTOISE_CONFIGS = [p for p in TORTOISE_CONFIGS if p not in UNITS_CONFIGS]
UNITS_FAMILY = {"ar": "valle-ar", "lengths": "valle-nar", "decoder": "units-decoder"}


@pytest.mark.parametrize("path", UNITS_CONFIGS, ids=[f"{p.parent.name}-{p.stem}" for p in UNITS_CONFIGS])
def test_units_configs(path, capsys):
    """The digits recipe's units stages (20-22, 24-25) parse through LightningCLI and read the stores of ``audiokit
    units``: the runs (K = 256 units, or 51 phone units; a prompt of 42 runs on digits, about 3 s of speech on the
    12 h corpus: 85 k-means runs or 36 phones) for the ARs, the lengths NAR and CLVP, the stacked grid (units over the
    bundled codec's 12 codebooks) for the decoder."""
    cfg = yaml.safe_load(path.read_text())
    phones = "_phones_" in path.stem
    K, prompt_runs = (51, 36) if phones else (256, 42 if path.stem.startswith("digits") else 85)
    if path.parent.name == "tortoise":  # Tortoise's AR (its voice encoder reads units and lengths) and CLVP
        stage = path.stem.split("_")[-1]
        with pytest.raises(SystemExit) as e:
            main(["train", "tortoise-ar" if stage == "ar" else "clvp", "--config", str(path), "--print_config"])
        assert e.value.code == 0
        printed = yaml.safe_load(capsys.readouterr().out)
        assert printed["model"] == {**printed["model"], **cfg["model"]} and cfg["model"]["codebook_size"] == K
        voice = round(cfg["data"]["voice_seconds"] * 50)  # in runs: the prompts of the VALL-Es on the same units
        assert cfg["data"]["token_store"].endswith("units/runs") and voice == prompt_runs
        assert stage == "clvp" or cfg["model"]["n_codebooks"] == 2
        return
    family = UNITS_FAMILY[path.stem.split("_")[-1]]
    with pytest.raises(SystemExit) as e:
        main(["train", family, "--config", str(path), "--print_config"])
    assert e.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"] == {**printed["model"], **cfg["model"]}
    if family == "units-decoder":
        gen = yaml.safe_load((CONFIGS[0].parent / "speech16.yaml").read_text())["model"]["generator"]
        assert cfg["model"]["n_codebooks"] == gen["n_codebooks"] and cfg["model"]["n_units"] == K
        assert cfg["data"]["token_store"].endswith("units/stacked") and cfg["data"]["prefix_prob"] == 0.0
        assert not phones or (printed["model"]["conv_kernel"] > 0 and printed["model"]["run_positions"])
    else:
        assert cfg["model"]["codebook_size"] == K and cfg["model"]["n_codebooks"] == (1 if family == "valle-ar" else 2)
        runs = round(cfg["data"]["prompt_seconds"] * 50)  # digits: 42 runs, 1.5 s of speech; cpu: 85, about 3 s
        assert cfg["data"]["token_store"].endswith("units/runs") and runs == prompt_runs


@pytest.mark.parametrize("path", VALLE_CONFIGS, ids=[p.stem for p in VALLE_CONFIGS])
def test_valle_configs(path, capsys):
    """Each VALL-E config parses through LightningCLI with the VALL-E data module and matches its codec config."""
    cfg = yaml.safe_load(path.read_text())
    stage = path.stem.split("_")[1]
    with pytest.raises(SystemExit) as e:
        main(["train", f"valle-{stage}", "--config", str(path), "--print_config"])
    assert e.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    size = path.stem.split("_")[0]
    prompt = 1.5 if size == "digits" else 3.0  # the digits recipe's utterances are 1-4 s long
    assert printed["model"] == {**printed["model"], **cfg["model"]} and printed["data"]["prompt_seconds"] == prompt
    codec = yaml.safe_load((CONFIGS[0].parent / f"{CODEC_OF_SIZE.get(size, 'small')}.yaml").read_text())
    gen = codec["model"]["generator"]
    assert cfg["model"]["codebook_size"] == gen["codebook_size"]
    assert 2 <= cfg["model"]["n_codebooks"] <= gen["n_codebooks"]  # a NAR may stop below the codec's depth (digits: 6)


def test_valle_paper_config_has_the_published_size():
    from audiokit.valle.model import ValleAR, ValleDims

    m = yaml.safe_load((VALLE_CONFIGS[0].parent / "paper_ar.yaml").read_text())["model"]
    dims = ValleDims(**{k: m[k] for k in ("codebook_size", "n_codebooks", "d_model", "n_head", "n_layer", "dropout")})
    assert (dims.n_layer, dims.d_model, dims.n_head) == (12, 1024, 16)
    n = sum(p.numel() for p in ValleAR(dims).blocks.parameters())
    assert n == pytest.approx(12 * 12.6e6, rel=0.01)  # 12 pre-LN blocks of 1024 wide with a 4096 FFN


TORTOISE_FAMILY = {"ar": "tortoise-ar", "clvp": "clvp", "diffusion": "diffusion", "diffusion_ar": "diffusion-ar-latents"}


@pytest.mark.parametrize("path", TORTOISE_CONFIGS, ids=[p.stem for p in TORTOISE_CONFIGS])
def test_tortoise_configs(path, capsys):
    """Each Tortoise stage config parses through LightningCLI with its module and the Tortoise data module, sizes
    agree with the codec config, and the diffusion decoder's conditioning width is the AR model's."""
    size, stage = path.stem.split("_", 1)
    cfg = yaml.safe_load(path.read_text())
    with pytest.raises(SystemExit) as e:
        main(["train", TORTOISE_FAMILY[stage], "--config", str(path), "--print_config"])
    assert e.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"] == {**printed["model"], **cfg["model"]} and printed["data"]["tokenizer"].endswith("bpe.json")
    gen = yaml.safe_load((CONFIGS[0].parent / f"{CODEC_OF_SIZE.get(size, size)}.yaml").read_text())["model"]["generator"]
    ar = yaml.safe_load((path.parent / f"{size}_ar.yaml").read_text())["model"]
    if stage in ("ar", "clvp"):
        assert cfg["model"]["codebook_size"] == gen["codebook_size"]
    if stage == "ar":
        assert cfg["model"]["n_codebooks"] == gen["n_codebooks"]
    if stage.startswith("diffusion"):
        assert cfg["model"]["cond_dim"] == ar["d_model"]
        # a decoder that reads the text reads the AR's tokenizer: as many ids as the AR's text vocabulary at least
        text_vocab = cfg["model"].get("text_vocab", 0)
        assert text_vocab == 0 or text_vocab >= ar["text_vocab"]
