import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from audiokit.data import (
    AudioTextDataset,
    DurationBucketSampler,
    ManifestError,
    SpeechDataModule,
    TokenTextDataset,
    build_librispeech,
    build_libritts,
    build_ljspeech,
    collate_audio,
    read_manifest,
    write_manifest,
)
from audiokit.tokens import CodecMismatchError, CodecTokens, TokenError, TokenStore

from conftest import random_tokens, sine, write_wav


# ----------------------------------------------------------------------------- manifests
def _entry(i, **kw):
    return {"id": f"u{i}", "audio": f"wavs/u{i}.wav", "duration": 1.0 + i, "text": f"text {i}", "speaker": "s1", **kw}


def test_manifest_round_trip_and_relative_paths(tmp_path):
    entries = [_entry(i, extra={"k": i}) for i in range(3)]
    path = write_manifest(tmp_path / "m.jsonl", entries)
    back = read_manifest(path)
    assert [e["id"] for e in back] == ["u0", "u1", "u2"]
    assert back[1]["audio"] == str(tmp_path / "wavs/u1.wav")  # resolved against the manifest folder
    assert back[2]["extra"] == {"k": 2}  # unknown fields kept
    assert read_manifest(path, resolve_paths=False)[0]["audio"] == "wavs/u0.wav"
    # absolute paths under the manifest's folder are stored relative, so the folder can move
    write_manifest(tmp_path / "m2.jsonl", back)
    assert json.loads((tmp_path / "m2.jsonl").read_text().splitlines()[0])["audio"] == "wavs/u0.wav"


@pytest.mark.parametrize("line, message", [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"audio": "a.wav", "duration": 1}', "missing required field 'id'"),
    ('{"id": "x", "duration": 1}', "missing required field 'audio'"),
    ('{"id": "x", "audio": "a.wav", "duration": "long"}', "'duration' must be a number"),
    ('{"id": "x", "audio": "a.wav", "duration": -1}', "'duration' must be a positive number of seconds"),
    ('{"id": "x", "audio": "a.wav", "duration": true}', "'duration' must be a number"),
    ('{"id": 5, "audio": "a.wav", "duration": 1}', "'id' must be a string"),
    ('{"id": "x", "audio": "a.wav", "duration": 1, "text": 3}', "'text' must be a string"),
    ('{"id": "u0", "audio": "a.wav", "duration": 1}', "duplicate id 'u0' \\(first on line 1\\)"),
])
def test_manifest_errors_carry_line_numbers(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(_entry(0)) + "\n\n" + line + "\n")
    with pytest.raises(ManifestError, match=f"bad.jsonl:3: (field )?{message}"):
        read_manifest(path)


def test_write_manifest_validates(tmp_path):
    with pytest.raises(ManifestError, match="duplicate id"):
        write_manifest(tmp_path / "m.jsonl", [_entry(0), _entry(0)])
    with pytest.raises(ManifestError, match="missing required field 'duration'"):
        write_manifest(tmp_path / "m.jsonl", [{"id": "a", "audio": "a.wav"}])
    assert not (tmp_path / "m.jsonl").exists()
    with pytest.raises(ManifestError, match="no such manifest"):
        read_manifest(tmp_path / "none.jsonl")


# ----------------------------------------------------------------------------- sampler
def _durations(n=200, seed=0):
    return list(np.random.default_rng(seed).uniform(0.5, 15.0, n))


def test_bucket_sampler_covers_every_item_once_within_budget():
    d = _durations()
    s = DurationBucketSampler(d, max_batch_seconds=40.0, num_buckets=8, seed=1)
    batches = list(s)
    assert len(batches) == len(s)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(d)))
    for b in batches:
        assert max(d[i] for i in b) * len(b) <= 40.0 or len(b) == 1
    # bucketing keeps padding low: on average under 25% of each batch is padding
    pad = [1 - sum(d[i] for i in b) / (max(d[i] for i in b) * len(b)) for b in batches]
    assert np.mean(pad) < 0.25


def test_bucket_sampler_is_deterministic_per_epoch_and_varies_across_epochs():
    d = _durations()
    a = DurationBucketSampler(d, 40.0, seed=3)
    b = DurationBucketSampler(d, 40.0, seed=3)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    assert list(DurationBucketSampler(d, 40.0, shuffle=False)) == list(DurationBucketSampler(d, 40.0, shuffle=False))


def test_bucket_sampler_caps_batch_size_and_isolates_long_items():
    d = [1.0] * 50 + [100.0]
    batches = list(DurationBucketSampler(d, max_batch_seconds=10.0, max_batch_size=4))
    assert all(len(b) <= 4 for b in batches)
    assert [50] in batches


def test_bucket_sampler_splits_across_ranks():
    d = _durations(101)
    ranks = [DurationBucketSampler(d, 30.0, seed=5, num_replicas=3, rank=r) for r in range(3)]
    per_rank = [list(r) for r in ranks]
    assert len({len(p) for p in per_rank}) == 1 and len(per_rank[0]) == len(ranks[0])
    seen = {i for p in per_rank for b in p for i in b}
    assert seen == set(range(101))
    with pytest.raises(ValueError, match="rank"):
        DurationBucketSampler(d, 30.0, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="empty"):
        DurationBucketSampler([], 30.0)


# ----------------------------------------------------------------------------- datasets
@pytest.fixture
def audio_manifest(tmp_path):
    entries = []
    for i, secs in enumerate([0.5, 1.0, 0.25, 0.75]):
        path = write_wav(str(tmp_path / "wavs" / f"u{i}.wav"), sine(200 + 100 * i, secs, 16000), 16000, subtype="FLOAT")
        entries.append({"id": f"u{i}", "audio": path, "duration": secs, "text": f"utterance {i}", "speaker": f"s{i % 2}"})
    return write_manifest(tmp_path / "train.jsonl", entries)


def test_audio_dataset_and_collate(audio_manifest):
    ds = AudioTextDataset(audio_manifest, sample_rate=8000, max_duration=0.8)
    assert len(ds) == 3 and ds.durations == [0.5, 0.25, 0.75]
    item = ds[0]
    assert item["audio"].shape == (4000,) and item["text"] == "utterance 0"
    batch = collate_audio([ds[0], ds[1]])
    assert batch["audio"].shape == (2, 4000)
    assert batch["audio_lengths"].tolist() == [4000, 2000]
    assert (batch["audio"][1, 2000:] == 0).all()
    assert batch["id"] == ["u0", "u2"]


def test_datamodule_yields_bucketed_audio_batches(audio_manifest):
    dm = SpeechDataModule(str(audio_manifest), val_manifest=str(audio_manifest), sample_rate=16000, max_batch_seconds=1.6)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert sorted(i for b in batches for i in b["id"]) == ["u0", "u1", "u2", "u3"]
    for b in batches:
        assert b["audio"].shape[0] * b["audio"].shape[1] <= 1.6 * 16000
    assert len(list(dm.val_dataloader())) >= 1
    with pytest.raises(ValueError, match="kind"):
        SpeechDataModule("x.jsonl", kind="video")


def test_datamodule_feeds_a_lightning_fit(audio_manifest, tmp_path, capsys):
    import re

    import lightning as L

    from audiokit.callbacks import StepRate

    class Energy(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.gain = torch.nn.Parameter(torch.tensor(0.0))
            self.seen = []

        def training_step(self, batch, _):
            self.seen += batch["id"]
            return ((batch["audio"] * self.gain - batch["audio"]) ** 2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=1.0)

    model = Energy()
    dm = SpeechDataModule(str(audio_manifest), sample_rate=8000, max_batch_seconds=1.0)
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
                        default_root_dir=tmp_path, callbacks=[StepRate(every=2)])
    trainer.fit(model, datamodule=dm)
    assert sorted(model.seen) == sorted(["u0", "u1", "u2", "u3"] * 2)  # every utterance once per epoch
    assert float(model.gain) > 0.1  # the loss was minimized through the batches
    # the speed report: every 2 steps after the first, with a positive rate
    reports = re.findall(r"^step (\d+): ([0-9.]+) steps/s, \d+ s elapsed$", capsys.readouterr().out, re.M)
    steps = [int(s) for s, _ in reports]
    assert steps and steps == list(range(3, trainer.global_step + 1, 2))[: len(steps)]
    assert all(float(r) > 0 for _, r in reports)
    with pytest.raises(ValueError, match="every"):
        StepRate(every=0)


def test_token_dataset_from_files_and_store(tmp_path, codec, other_codec):
    entries = []
    with TokenStore.writer(tmp_path / "store", codec) as w:
        for i in range(3):
            t = random_tokens(codec, B=1, Q=4, T=5 + i, seed=i)
            w.add(f"u{i}", t)
            path = t.save(tmp_path / f"u{i}.safetensors")
            entries.append({"id": f"u{i}", "audio": "x.wav", "duration": (5 + i) / 75, "text": "t", "tokens": str(path)})
    ds = TokenTextDataset(entries, codec=codec)
    assert ds[2]["tokens"].n_frames == 7
    store_entries = [dict(e, tokens=f"store:{e['id']}") for e in entries]
    ds2 = TokenTextDataset(store_entries, store=tmp_path / "store")
    assert ds2.codec == codec and ds2[1]["tokens"] == ds[1]["tokens"]
    from audiokit.data import collate_tokens

    batch = collate_tokens([ds2[0], ds2[2]])
    assert isinstance(batch["tokens"], CodecTokens) and batch["tokens"].lengths.tolist() == [5, 7]
    with pytest.raises(CodecMismatchError):
        TokenTextDataset(entries, codec=other_codec)[0]
    with pytest.raises(TokenError, match="no 'tokens' field"):
        TokenTextDataset([{"id": "a", "audio": "a.wav", "duration": 1.0}])
    with pytest.raises(TokenError, match="no store was given"):
        TokenTextDataset(store_entries)


def test_token_datamodule(tmp_path, codec):
    entries = []
    with TokenStore.writer(tmp_path / "store", codec) as w:
        for i in range(6):
            w.add(f"u{i}", random_tokens(codec, B=1, Q=2, T=10 + i, seed=i))
            entries.append({"id": f"u{i}", "audio": "x.wav", "duration": (10 + i) / 75, "tokens": f"store:u{i}"})
    m = write_manifest(tmp_path / "tok.jsonl", entries)
    dm = SpeechDataModule(str(m), kind="tokens", token_store=str(tmp_path / "store"), max_batch_seconds=0.5)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert sum(b["tokens"].batch_size for b in batches) == 6


# ----------------------------------------------------------------------------- builders
def _wav(path, secs=0.3):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, sine(300, secs, 24000), 24000)


def test_build_libritts(tmp_path):
    root = tmp_path / "LibriTTS"
    for spk, ch, n in [("19", "198", 2), ("26", "495", 1)]:
        for k in range(n):
            stem = root / "train-clean-100" / spk / ch / f"{spk}_{ch}_000000_00000{k}"
            _wav(str(stem) + ".wav", 0.3 + 0.1 * k)
            stem.with_suffix(".normalized.txt").write_text(f"Normalized {spk} {k}.")
            stem.with_suffix(".original.txt").write_text(f"original {spk} {k}")
    _wav(str(root / "dev-clean" / "84" / "121" / "84_121_000000_000000.wav"))  # no transcript: skipped
    entries = build_libritts(root)
    assert [e["id"] for e in entries] == ["19_198_000000_000000", "19_198_000000_000001", "26_495_000000_000000"]
    assert entries[1]["text"] == "Normalized 19 1." and entries[1]["speaker"] == "19"
    assert entries[1]["duration"] == pytest.approx(0.4, abs=1e-3)
    assert build_libritts(root, subsets=["dev-clean"]) == []


def test_build_ljspeech(tmp_path):
    root = tmp_path / "LJSpeech-1.1"
    _wav(str(root / "wavs" / "LJ001-0001.wav"))
    _wav(str(root / "wavs" / "LJ001-0002.wav"), 0.5)
    (root / "metadata.csv").write_text(
        "LJ001-0001|Printing, in 1 sense|Printing, in one sense\n"
        "LJ001-0002|in being comparatively modern.|\n"
        "LJ001-0003|missing audio|missing audio\n"
    )
    entries = build_ljspeech(root)
    assert [(e["id"], e["text"], e["speaker"]) for e in entries] == [
        ("LJ001-0001", "Printing, in one sense", "LJ"), ("LJ001-0002", "in being comparatively modern.", "LJ")]
    with pytest.raises(FileNotFoundError, match="metadata.csv"):
        build_ljspeech(tmp_path)


def test_build_librispeech(tmp_path):
    root = tmp_path / "LibriSpeech"
    d = root / "test-clean" / "1089" / "134686"
    for k in range(2):
        os.makedirs(d, exist_ok=True)
        sf.write(str(d / f"1089-134686-000{k}.flac"), sine(300, 0.2 * (k + 1), 16000), 16000)
    (d / "1089-134686.trans.txt").write_text("1089-134686-0000 HE HOPED THERE WOULD BE STEW\n1089-134686-0001 STUFF IT INTO YOU\n1089-134686-0002 NO AUDIO\n")
    entries = build_librispeech(root)
    assert [e["id"] for e in entries] == ["1089-134686-0000", "1089-134686-0001"]
    assert entries[0]["text"] == "HE HOPED THERE WOULD BE STEW" and entries[0]["speaker"] == "1089"
    assert entries[1]["duration"] == pytest.approx(0.4)
    with pytest.raises(FileNotFoundError):
        build_librispeech(tmp_path / "nope")


def test_several_manifests_train_as_one(audio_manifest, tmp_path):
    """A list of manifests (e.g. two corpora) is read as one; an id in two of them is an error naming both."""
    more = write_manifest(tmp_path / "more" / "train.jsonl", [
        {"id": "m0", "audio": str(tmp_path / "wavs" / "u0.wav"), "duration": 0.5, "text": "more", "speaker": "s9"}])
    dm = SpeechDataModule([str(audio_manifest), str(more)], kind="audio", sample_rate=16000, max_batch_seconds=100)
    dm.setup("fit")
    ds = dm.datasets["train"]
    assert [e["id"] for e in ds.entries] == ["u0", "u1", "u2", "u3", "m0"] and ds[4]["text"] == "more"
    assert sum(len(b["id"]) for b in dm.train_dataloader()) == 5
    clash = write_manifest(tmp_path / "clash.jsonl", [
        {"id": "u1", "audio": str(tmp_path / "wavs" / "u1.wav"), "duration": 1.0, "text": "x", "speaker": "s1"}])
    with pytest.raises(ManifestError, match="'u1' is also in .*train.jsonl.*--id-prefix"):
        AudioTextDataset([str(audio_manifest), str(clash)], sample_rate=16000)


def test_an_unreadable_audio_file_names_its_manifest_line(tmp_path):
    """The manifest's line, not only the audio file, is in the error of an entry whose audio is broken."""
    from audiokit.audio import AudioError
    from audiokit.data.datasets import AudioTextDataset
    from audiokit.data.manifest import read_manifest, write_manifest

    good = tmp_path / "good.wav"
    sf.write(good, np.zeros(1600, dtype=np.float32), 16000)
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really a wav file")
    write_manifest(tmp_path / "m.jsonl", [{"id": "a", "audio": str(good), "duration": 0.1},
                                         {"id": "b", "audio": str(tmp_path / "bad.wav"), "duration": 0.1}])
    entries = read_manifest(tmp_path / "m.jsonl")
    assert entries[1] == {"id": "b", "audio": str(tmp_path / "bad.wav"), "duration": 0.1}  # still a plain entry
    ds = AudioTextDataset(str(tmp_path / "m.jsonl"), sample_rate=16000)
    ds[0]
    with pytest.raises(AudioError) as e:
        ds[1]
    assert str(e.value).startswith(f"{tmp_path / 'm.jsonl'}:2: ") and "bad.wav" in str(e.value)
