"""Data: JSONL manifests, the duration-bucketing sampler, datasets, the DataModule, corpus builders, the synthetic corpus."""
from .builders import BUILDERS, build_librispeech, build_libritts, build_ljspeech
from .datamodule import SpeechDataModule
from .datasets import AudioTextDataset, TokenTextDataset, collate_audio, collate_tokens
from .manifest import ManifestError, manifest_stats, read_manifest, validate_entry, write_manifest
from .sampler import DurationBucketSampler

__all__ = [
    "BUILDERS",
    "AudioTextDataset",
    "DurationBucketSampler",
    "ManifestError",
    "SpeechDataModule",
    "TokenTextDataset",
    "build_librispeech",
    "build_libritts",
    "build_ljspeech",
    "collate_audio",
    "collate_tokens",
    "manifest_stats",
    "read_manifest",
    "validate_entry",
    "write_manifest",
]
