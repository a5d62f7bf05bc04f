from pathlib import Path

import pytest
import yaml

from audiokit.cli import main
from audiokit.codec.model import CodecModel

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "codec").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_parses_through_lightning_cli(path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "codec", "--config", str(path), "--print_config"])
    assert e.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["generator"] == yaml.safe_load(path.read_text())["model"]["generator"]
    assert printed["trainer"]["use_distributed_sampler"] is False


@pytest.mark.parametrize("name, params", [("dac_24khz", 74.7e6), ("encodec_24khz", 14.85e6)])
def test_paper_configs_have_the_published_sizes(name, params):
    cfg = yaml.safe_load((CONFIGS[0].parent / f"{name}.yaml").read_text())
    model = CodecModel(**cfg["model"]["generator"])
    assert model.num_parameters() == pytest.approx(params, rel=0.005)
    assert model.frame_rate == 75.0 and model.bandwidths()[-1] == 24.0
