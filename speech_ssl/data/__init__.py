"""Audio data layer: reading audio, fairseq manifests/labels/dictionaries, vocabularies, datasets, samplers."""

from speech_ssl.data.audio import read_audio, resampled_length, write_audio
from speech_ssl.data.datasets import DatasetConfig, FinetuneDataset, PretrainDataset
from speech_ssl.data.manifest import (
    Dictionary,
    Manifest,
    ManifestEntry,
    read_labels,
    read_manifest,
    write_manifest,
)
from speech_ssl.data.sampler import (
    DynamicBatchSampler,
    MultiCorpusBatchSampler,
    SamplerConfig,
    language_probs,
)
from speech_ssl.data.vocab import letters_to_text, text_to_letters

__all__ = [
    "DatasetConfig", "Dictionary", "DynamicBatchSampler", "FinetuneDataset", "Manifest", "ManifestEntry",
    "MultiCorpusBatchSampler", "PretrainDataset", "SamplerConfig", "language_probs", "letters_to_text",
    "read_audio", "read_labels", "read_manifest", "resampled_length", "text_to_letters", "write_audio",
    "write_manifest",
]
