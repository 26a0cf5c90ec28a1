"""Audio data layer: reading audio, fairseq manifests/labels, text units (dictionaries, vocabularies), datasets, samplers.

Names are imported lazily (``from speech_ssl.data import PretrainDataset`` works) so that corpus
preparation and ``speech-ssl --help`` do not import torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "read_audio": "audio", "resampled_length": "audio", "write_audio": "audio", "audio_info": "audio",
    "DatasetConfig": "datasets", "FinetuneDataset": "datasets", "PretrainDataset": "datasets",
    "Manifest": "manifest", "ManifestEntry": "manifest", "read_labels": "manifest",
    "read_manifest": "manifest", "write_labels": "manifest", "write_manifest": "manifest",
    "DynamicBatchSampler": "sampler", "MultiCorpusBatchSampler": "sampler", "SamplerConfig": "sampler",
    "language_probs": "sampler",
    "Dictionary": "units", "WORD_SEP": "units", "infer_unit": "units", "text_to_letters": "units",
    "labels_to_text": "units", "tokens_to_text": "units", "build_dictionary": "units",
    "train_sentencepiece": "units", "SentencePieceVocab": "units",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"speech_ssl.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'speech_ssl.data' has no attribute {name!r}")
