"""No code runs from a checkpoint: a pickle whose ``__reduce__`` would write a file is planted in a ``.ckpt`` (and
in the other torch files audiokit reads) and handed to every loader; each refuses with one line naming the
file and what it asked for, and the file is never written."""
import os

import pytest
import torch

from audiokit.cli import main


class _Planted:
    """Unpickling this calls os.system: it would create ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant(path, marker, **extra):
    """A checkpoint-shaped dict (what each loader looks for) with the planted object inside."""
    ckpt = {"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": {"generator": {}}, "payload": _Planted(marker), **extra}
    torch.save(ckpt, path)
    return path


@pytest.fixture
def planted(tmp_path):
    marker = tmp_path / "ran"
    return _plant(tmp_path / "shared.ckpt", marker), marker


def _refused(exc_info, path):
    msg = str(exc_info.value)
    assert str(path) in msg and "refusing to load" in msg and "system" in msg and "\n" not in msg


def test_the_planted_pickle_would_run_under_a_plain_load(planted):
    """The test's premise: the file really runs code when unpickled without weights_only."""
    path, marker = planted
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_every_python_loader_refuses_pickled_code(planted, tmp_path):
    from audiokit.asr.convert import CheckpointError
    from audiokit.asr.lightning import _load_init
    from audiokit.asr.transcriber import Transcriber
    from audiokit.codec.codec import Codec, CodecLoadError
    from audiokit.pretrained import training_summary
    from audiokit.tortoise.lightning import read_checkpoint
    from audiokit.tts import TTSLoadError
    from audiokit.valle.tts import _read_checkpoint

    path, marker = planted
    loaders = [
        (lambda: Transcriber.load(path), CheckpointError),
        (lambda: Codec.load(path), CodecLoadError),
        (lambda: _read_checkpoint(path, "ar"), TTSLoadError),
        (lambda: read_checkpoint(path, ("ar",), TTSLoadError), TTSLoadError),
        (lambda: training_summary(path), ValueError),
        (lambda: _load_init(str(path), None), CheckpointError),  # fine-tuning's init_from
    ]
    for load, error in loaders:
        with pytest.raises(error) as e:
            load()
        _refused(e, path)
    # a Whisper .pt and a Hugging Face folder's pytorch_model.bin are torch files too
    pt = _plant(tmp_path / "tiny.pt", marker, dims={"n_mels": 80})
    with pytest.raises(CheckpointError) as e:
        Transcriber.load(pt)
    _refused(e, pt)
    assert not marker.exists()


@pytest.mark.parametrize("argv", [["export", "{ckpt}", "{out}"], ["transcribe", "{wav}", "--model", "{ckpt}"],
                                  ["eval", "codec", "--manifest", "{wav}", "--codec", "{ckpt}"]])
def test_every_command_refuses_pickled_code(planted, tmp_path, capsys, argv):
    import numpy as np
    import soundfile as sf

    path, marker = planted
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(16000, dtype=np.float32), 16000)
    out = tmp_path / "out"
    code = main([a.format(ckpt=path, out=out, wav=wav) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "refusing to load" in err[0] and str(path) in err[0], err
    assert not marker.exists() and not out.exists()
